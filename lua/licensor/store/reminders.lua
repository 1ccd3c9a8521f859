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
-- AFTER_WINDOW days of its day.  Its detail.days is the days actually left
-- on the sweep's day (negative: gone since), the words a customer reads;
-- detail.offset is the policy's nominal day that brought it.
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

-- The outbox action of each term's reminders (licensor.actions).
local ACTION = require("licensor.actions").reminder

-- Takes the reminder `days` (the policy's offset) before `last` of (key,
-- item) once on day number `on`, writing it to the outbox; detail goes to
-- the handler, with the days left on `on` (a late sweep's "in 18 days",
-- not the offset's 30).
local function take(self, key, item, kind, last, days, on, detail, taken)
  local db, sql = self.db, self.sql
  local last_text, on_text = date(last), date(on)
  -- The key's lock, as every writer of a key's rows takes it: the event
  -- appended below must not race a workflow on the same key.
  common.lock_key(self, key)
  local fresh = db:run(sql.take_reminder, key, item, last_text, days, on_text)
  if fresh ~= 1 then return end
  local action = ACTION[kind][days >= 0 and "before" or "after"]
  detail.days, detail.offset, detail.item = last - on, days, item
  db:defer(sql.insert_reminder, key, action, on_text, last_text, common.cjson.encode(detail))
  common.log(self, key, on_text, action, { item = item, refers_to = last_text, days = days })
  taken[#taken + 1] = { key = key, action = action, on = on_text, refers_to = last_text, item = item,
                        days = days }
end

-- Each kind: its candidate rows for a sweep on `on`, a row's last day
-- (a day number), its item and, for M&S, the details a reminder carries.
local KINDS = {
  { kind = "ms",
    rows = function(self, offsets, on)
      return self.db:all(self.sql.ms_reminder_candidates, window(offsets, on))
    end,
    last = function(_, row) return day(row.ms_expires) end,
    detail = function(self, row, on)
      local price, currency = self:renewal_price(common.load_license(self, row.key), date(on))
      return { price = price, currency = currency }
    end },
  { kind = "trial",
    rows = function(self, offsets, on)
      local from = window(offsets, on)
      local longest = tonumber(self.db:value(self.sql.longest_trial)) or self.policy.trial_days
      return self.db:all(self.sql.trial_reminder_candidates, date(day(from) - longest))
    end,
    last = function(self, row) return day(row.start) + (row.trial_days or self.policy.trial_days) - 1 end },
  { kind = "lease",
    -- A lease's last day is the day before lease_ended.
    rows = function(self, offsets, on)
      local from, to = window(offsets, on)
      return self.db:all(self.sql.lease_reminder_candidates, date(day(from) + 1), date(day(to) + 1))
    end,
    last = function(_, row) return day(row.lease_ended) - 1 end },
  { kind = "addon",
    rows = function(self, offsets, on)
      return self.db:all(self.sql.addon_reminder_candidates, window(offsets, on))
    end,
    last = function(_, row) return day(row.paid_through) end,
    item = function(row) return row.addon end },
}

local function take_row(self, k, row, offsets, n, taken)
  local last = k.last(self, row)
  local days = due(offsets, last, n)
  if days then
    take(self, row.key, k.item and k.item(row) or k.kind, k.kind, last, days, n,
         k.detail and k.detail(self, row, n) or {}, taken)
  end
end

-- Takes every reminder due on `on` (a date), appending to `taken`, in the
-- sweep's transaction; each row through protect(key, fn, ...), which
-- runs it and keeps one key's failure from stopping the others.
function _M.take_due(self, on, taken, protect)
  local n = day(on)
  for _, k in ipairs(KINDS) do
    local offsets = self.policy.reminders[k.kind]
    if #offsets > 0 then
      for _, row in ipairs(k.rows(self, offsets, n)) do
        protect(row.key, take_row, self, k, row, offsets, n, taken)
      end
    end
  end
end

return _M
