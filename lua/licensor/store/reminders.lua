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
--
-- The offsets are each license's own (its policy layers and override,
-- then a policy file's reminders hook): the candidates' SQL takes the
-- widest window of any layer (of the catalogue's bounds when a hook
-- decides), and each row is then judged with its license's offsets.
local core = require "licensor.core"
local common = require "licensor.store.common"

local ipairs, tonumber, type = ipairs, tonumber, type
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

-- The catalogue's bounds of each kind's offsets (csrc/l_compile.c,
-- read_reminder_list): what a hook's answer stays within.
_M.OFFSET_BOUNDS = { ms = { -365, 3650 }, trial = { 0, 3650 }, lease = { 0, 3650 }, addon = { 0, 3650 } }

-- The offsets of `kind` that bound every license's: each value table's
-- list together (common.value_tables), or the kind's bounds when a hook
-- decides.
local function widest_offsets(tables, open, kind)
  if open then return _M.OFFSET_BOUNDS[kind] end
  local all, seen = {}, {}
  for _, t in ipairs(tables) do
    local list = type(t.reminders) == "table" and t.reminders[kind]
    for _, d in ipairs(type(list) == "table" and list or {}) do
      if not seen[d] then seen[d], all[#all + 1] = true, d end
    end
  end
  return all
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
  common.log(self, key, on_text, action, common.provenance(self, { item = item, refers_to = last_text,
                                                                  days = days }))
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
      local price, currency = self:renewal_price(common.load_license(self, row.key, date(on)), date(on))
      return { price = price, currency = currency }
    end },
  { kind = "trial",
    rows = function(self, offsets, on, longest_default)
      local from = window(offsets, on)
      local longest = tonumber(self.db:value(self.sql.longest_trial)) or longest_default
      if longest < longest_default then longest = longest_default end
      return self.db:all(self.sql.trial_reminder_candidates, date(day(from) - longest))
    end,
    last = function(self, row, lic)
      return day(row.start) + (row.trial_days or common.policy_of(self, lic).trial_days) - 1
    end },
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

-- The offsets of the row's license on day number `n`: its own values,
-- then the policy file's reminders hook (the bound catalogue's
-- reminder_offsets; the C catalogue has none).
local function license_offsets(self, k, lic, n)
  local offsets = common.policy_of(self, lic).reminders[k.kind]
  local bound = self.bound
  if bound.reminder_offsets then return bound:reminder_offsets(lic, k.kind, date(n), offsets) or offsets end
  return offsets
end

-- offsets: the catalogue's, when every license has them; nil: the
-- license's own, read for the row.
local function take_row(self, k, row, offsets, n, taken)
  local lic
  if offsets == nil then
    lic = common.load_license(self, row.key, date(n))
    offsets = license_offsets(self, k, lic, n)
  end
  local last = k.last(self, row, lic)
  local days = due(offsets, last, n)
  if days then
    take(self, row.key, k.item and k.item(row) or k.kind, k.kind, last, days, n,
         k.detail and k.detail(self, row, n) or {}, taken)
  end
end

-- Takes every reminder due on `on` (a date), appending to `taken`, in the
-- sweep's transaction; each row through protect(key, fn, ...), which
-- runs it and keeps one key's failure from stopping the others.  While
-- every license has the catalogue's offsets (no policy file, no override)
-- no license is read for its offsets.
function _M.take_due(self, on, taken, protect)
  local n = day(on)
  local tables, open = common.value_tables(self, on)
  local P = self.live_policy
  open = open or (P ~= nil and P:has("reminders"))
  local own = open or #tables > 1
  local longest_default = 0
  for _, t in ipairs(tables) do
    local days = t.trial_days
    if type(days) == "number" and days > longest_default then longest_default = days end
  end
  if open then longest_default = 36500 end   -- trial_days' bound (csrc/catalogue.c)
  for _, k in ipairs(KINDS) do
    local offsets = self.cat_policy.reminders[k.kind]
    local widest = own and widest_offsets(tables, open, k.kind) or offsets
    if #widest > 0 then
      for _, row in ipairs(k.rows(self, widest, n, longest_default)) do
        protect(row.key, take_row, self, k, row, not own and offsets or nil, n, taken)
      end
    end
  end
end

return _M
