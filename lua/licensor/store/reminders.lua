-- licensor.store.reminders -- the reminders a sweep takes (doc/rules.md
-- section 6): the end of M&S, of a trial, of a lease with a set end and
-- of a paid add-on, each `days` before it (M&S also after it, negative
-- days), written to the outbox as ms_expiring, ms_lapsed, trial_ending,
-- lease_ending and addon_expiring.
--
-- Each is taken once per term: the reminders table keeps (key, item, the
-- term's last day, days), so a renewal -- a new last day -- brings new
-- ones.  A sweep that runs late sends the reminder due most recently, once
-- (those it overtook are not sent any more); a reminder before the event
-- is not sent once the event has passed, one after it only within
-- AFTER_WINDOW days of its day.
local core = require "licensor.core"
local common = require "licensor.store.common"

local ipairs, tonumber = ipairs, tonumber
local day, date = core.day, core.date

local _M = {}

-- How long a reminder after the event stays worth sending.
_M.AFTER_WINDOW = 7

-- The offset (days before the last day `last`, a day number) due on day
-- number `on`: the one whose day came most recently, while it is worth
-- sending; nil for none.
local function due(offsets, last, on)
  local best
  for _, d in ipairs(offsets) do
    if last - d <= on and (best == nil or d < best) then best = d end
  end
  if best == nil then return nil end
  if best >= 0 then return on <= last and best or nil end
  return on < last - best + _M.AFTER_WINDOW and best or nil
end
_M.due = due

-- The window of last days a sweep on `on` can remind of: from the oldest
-- an after-event reminder still covers to the furthest a before-event one
-- looks ahead.
local function window(offsets, on)
  local ahead, behind = 0, 0
  for _, d in ipairs(offsets) do
    if d > ahead then ahead = d end
    if d < 0 and _M.AFTER_WINDOW - d > behind then behind = _M.AFTER_WINDOW - d end
  end
  return date(on - behind), date(on + ahead)
end

local ACTION = { trial = "trial_ending", lease = "lease_ending", addon = "addon_expiring" }

-- Takes the reminder `days` before `last` of (key, item) once, writing it
-- to the outbox; detail goes to the handler.
local function take(self, key, item, kind, last, days, on, detail, taken)
  local db, sql = self.db, self.sql
  local last_text, on_text = date(last), date(on)
  local fresh = db:run(sql.take_reminder, key, item, last_text, days, on_text)
  if fresh ~= 1 then return end
  local action = kind == "ms" and (days >= 0 and "ms_expiring" or "ms_lapsed") or ACTION[kind]
  detail.days, detail.item = days, item
  db:defer(sql.insert_reminder, key, action, on_text, last_text, common.cjson.encode(detail))
  common.log(self, key, on_text, action, { item = item, refers_to = last_text, days = days })
  taken[#taken + 1] = { key = key, action = action, on = on_text, refers_to = last_text, item = item,
                        days = days }
end

local function remind_ms(self, offsets, on, taken)
  local from, to = window(offsets, on)
  for _, row in ipairs(self.db:all(self.sql.ms_reminder_candidates, from, to)) do
    local last = day(row.ms_expires)
    local days = due(offsets, last, on)
    if days then
      local lic = common.load_license(self, row.key)
      local price, currency = self:renewal_price(lic, date(on))
      take(self, row.key, "ms", "ms", last, days, on, { price = price, currency = currency }, taken)
    end
  end
end

local function remind_leases(self, offsets, on, taken)
  local from, to = window(offsets, on)
  -- The lease's last day is the day before lease_ended.
  for _, row in ipairs(self.db:all(self.sql.lease_reminder_candidates, date(day(from) + 1),
                                   date(day(to) + 1))) do
    local last = day(row.lease_ended) - 1
    local days = due(offsets, last, on)
    if days then take(self, row.key, "lease", "lease", last, days, on, {}, taken) end
  end
end

local function remind_trials(self, offsets, on, taken)
  local from = window(offsets, on)
  local longest = tonumber(self.db:value(self.sql.longest_trial)) or self.policy.trial_days
  for _, row in ipairs(self.db:all(self.sql.trial_reminder_candidates, date(day(from) - longest))) do
    local last = day(row.start) + (row.trial_days or self.policy.trial_days) - 1
    local days = due(offsets, last, on)
    if days then take(self, row.key, "trial", "trial", last, days, on, {}, taken) end
  end
end

local function remind_addons(self, offsets, on, taken)
  local from, to = window(offsets, on)
  for _, row in ipairs(self.db:all(self.sql.addon_reminder_candidates, from, to)) do
    local last = day(row.paid_through)
    local days = due(offsets, last, on)
    if days then take(self, row.key, row.addon, "addon", last, days, on, {}, taken) end
  end
end

-- Takes every reminder due on `on` (a date), appending to `taken`, in the
-- sweep's transaction.
function _M.take_due(self, on, taken)
  local reminders, n = self.policy.reminders, day(on)
  if #reminders.ms > 0 then remind_ms(self, reminders.ms, n, taken) end
  if #reminders.trial > 0 then remind_trials(self, reminders.trial, n, taken) end
  if #reminders.lease > 0 then remind_leases(self, reminders.lease, n, taken) end
  if #reminders.addon > 0 then remind_addons(self, reminders.addon, n, taken) end
end

return _M
