-- licensor.store.history -- the store's rows in bulk, for reading every
-- license's history at once (licensor.replay): one ordered pass over the
-- licenses, their add-ons, installations, fraud cases and event days, by
-- key, a page of licenses at a time, merged here into one entry per
-- license.  Nothing here writes, and nothing is read per key.
--
-- history.snapshot runs the pass inside one read transaction: on SQLite a
-- deferred BEGIN (its first read fixes the snapshot the rest see; no
-- write lock is ever taken), on PostgreSQL REPEATABLE READ, READ ONLY (the
-- server refuses any write, and every page sees the same snapshot).  Both
-- end in a rollback: there is nothing to commit.
--
-- Not a backup or an export (store/copy.lua, store/bulk.lua): only what a
-- decision needs comes back, and the event log only as the days a license
-- had decisions on.
local core = require "licensor.core"
local failure = require "licensor.failure"
local common = require "licensor.store.common"

local type, ipairs, pcall, select, tonumber = type, ipairs, pcall, select, tonumber
local concat, gmatch = table.concat, string.gmatch
local unpack = table.unpack or unpack   -- luacheck: ignore unpack

local level_value = common.level_value

local _M = {}

-- Licenses per page: each page is five statements, and what they bring is
-- all a page holds in memory.
_M.PAGE = 2000

-- The events whose days are decision days of a license (the eligible
-- build was decided, or the license changed): activations, check-ins that
-- changed the build, certificates, downloads, renewals, upgrades, the end
-- of a lease.  The sweep's own events (ladder steps, reminders) and
-- administrative ones (issue, import, set, transfer: logged on the day
-- they were done, not a day of the license's use) are left out.
_M.DECISION_EVENTS = { "activate", "checkin", "certificate", "download", "renew", "upgrade",
                       "add_addon", "end_lease", "self_deactivated", "deactivate" }

local function in_list(names)
  local quoted = {}
  for i, name in ipairs(names) do quoted[i] = "'" .. name .. "'" end
  return "(" .. concat(quoted, ", ") .. ")"
end

local FIRST_LICENSES = "SELECT * FROM licenses ORDER BY key LIMIT ?"
local NEXT_LICENSES = "SELECT * FROM licenses WHERE key > ? ORDER BY key LIMIT ?"
local ADDONS = "SELECT key, addon, paid_through FROM addons WHERE key >= ? AND key <= ? ORDER BY key, addon"
local INSTALLATIONS = [[SELECT key, seq, server, build, first_seen, last_seen, deactivated, held_until, freed
  FROM installations WHERE key >= ? AND key <= ? ORDER BY key, seq]]
local CASES = [[SELECT key, id, since, opened, first_step, phoned, disabled, closed, closed_reason
  FROM fraud_cases WHERE key >= ? AND key <= ? ORDER BY key, id]]
-- In the key's own order (its primary key: no sort); the caller takes
-- each day once.
local EVENT_DAYS = "SELECT key, at FROM events WHERE key >= ? AND key <= ? " ..
  "AND at >= ? AND at <= ? AND kind IN " .. in_list(_M.DECISION_EVENTS) .. " ORDER BY key, seq"

local function pack(...)
  return { n = select("#", ...), ... }
end

-- history.snapshot(store, fn, ...) -> fn(store, ...)'s results, run
-- inside one read-only transaction (above), or nil, message, code.  The
-- store's workflows cannot run inside it (the store is marked as in a
-- transaction that may not be discarded, and PostgreSQL refuses writes).
function _M.snapshot(self, fn, ...)
  if self.in_transaction then
    error("a history snapshot cannot be taken inside another transaction", 2)
  end
  local db = self.db
  local began, err = pcall(db.begin, db, true)
  if not began then return failure.answer(false, err) end
  self.in_transaction, self.may_discard = true, false
  local args = pack(...)
  local results = pack(pcall(function()
    if self.kind == "postgresql" then
      -- The first statement after BEGIN: the whole transaction is one snapshot.
      db:exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    end
    return fn(self, unpack(args, 1, args.n))
  end))
  self.in_transaction, self.may_discard = false, false
  db:rollback()
  return failure.answer(unpack(results, 1, results.n))
end

-- history.count(store) -> the number of licenses (for a progress line).
function _M.count(self)
  return tonumber(self.db:query(self.query_ms, "SELECT count(*) AS n FROM licenses")[1].n)
end

local function words(text)
  local set
  for w in gmatch(text, "%S+") do
    set = set or {}
    set[w] = true
  end
  return set
end

-- A licenses row as the license table the store's reads give (rules.md
-- section 3, as common.load_license makes it): failover a boolean, level
-- a number or "unlimited", the stored policy override decoded into
-- policy_override and tags a set (schema 12), no catalogue column.
local function license_of(row)
  row.failover = row.failover == 1 or row.failover == true
  row.level = level_value(row.level)
  row.catalogue = nil
  local override = row.policy
  row.policy = nil
  if type(override) == "string" and override ~= "" then
    row.policy_override = common.decode_detail(override)
  end
  local tags = row.tags
  row.tags = nil
  if type(tags) == "string" then row.tags = words(tags) end
  return row
end
_M.license_of = license_of

-- Groups rows (ordered by key) into by_key[key] = list, field `what`
-- kept as-is; rows are reused, their key field removed.
local function group(rows, by_key, field)
  local list, key
  for _, r in ipairs(rows) do
    if r.key ~= key then
      key = r.key
      list = {}
      by_key[key][field] = list
    end
    r.key = nil
    list[#list + 1] = r
  end
end

-- history.walk(store, {since=, on=, page=}, visit) -> the number of
-- licenses visited.  Calls visit(entry) for every license, by key (the
-- database's order), entry = {license=, installations=, cases=, days=}:
-- the license table (add-ons included), its installations in activation
-- order ({seq=, server=, build=, first_seen=, last_seen=, deactivated=,
-- held_until=, freed=}), its fraud cases oldest first ({id=, since=,
-- opened=, first_step=, phoned=, disabled=, closed=, closed_reason=}), and
-- the days from since to on (both included) of its DECISION_EVENTS, in
-- the log's order (a day may come more than once).  The lists are empty
-- when there are none; entries are the caller's to keep or change.  Run it inside
-- history.snapshot for one consistent view.
function _M.walk(self, opts, visit)
  local db, ms = self.db, self.query_ms
  local since, on = opts.since or "0001-01-01", opts.on
  local page = opts.page or _M.PAGE
  local last, n = nil, 0
  repeat
    local rows = last and db:query(ms, NEXT_LICENSES, last, page) or db:query(ms, FIRST_LICENSES, page)
    local count = #rows
    if count == 0 then break end
    local first_key = rows[1].key
    last = rows[count].key
    local by_key = {}
    for i = 1, count do
      local lic = license_of(rows[i])
      by_key[lic.key] = { license = lic }
    end
    for _, a in ipairs(db:query(ms, ADDONS, first_key, last)) do
      local lic = by_key[a.key].license
      local addons = lic.addons or {}
      addons[a.addon], lic.addons = a.paid_through, addons
    end
    group(db:query(ms, INSTALLATIONS, first_key, last), by_key, "installations")
    group(db:query(ms, CASES, first_key, last), by_key, "cases")
    local days_of
    for _, e in ipairs(db:query(ms, EVENT_DAYS, first_key, last, since, on)) do
      -- The event log refers to no license row: a key it has that the
      -- licenses do not is no license's history.
      local entry = by_key[e.key]
      if entry then
        days_of = entry.days
        if not days_of then
          days_of = {}
          entry.days = days_of
        end
        days_of[#days_of + 1] = e.at
      end
    end
    for i = 1, count do
      local entry = by_key[rows[i].key]
      entry.installations = entry.installations or {}
      entry.cases = entry.cases or {}
      entry.days = entry.days or {}
      for _, inst in ipairs(entry.installations) do inst.build = tonumber(inst.build) end
      visit(entry)
    end
    n = n + count
  until count < page
  return n
end

-- The check of a day bound: nil, or a date.
function _M.check_day(value, name)
  if value == nil then return nil end
  if type(value) ~= "string" or not core.day(value) then
    failure.raise("invalid_date", name .. ": date YYYY-MM-DD expected")
  end
  return value
end

return _M
