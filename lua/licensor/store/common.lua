-- licensor.store.common -- what every part of the store shares: the Store
-- class, the transaction boundary, argument checks, the catalogue cache,
-- license reads and the event log.  The workflows live by concern in
-- store/licenses.lua, store/installations.lua, store/sweep.lua and
-- store/outbox.lua, each adding its methods to the same Store class.
--
-- Errors follow licensor.failure: inside a workflow a refusal is raised
-- with refuse(code, message); transaction() and guarded() are the public
-- boundary that rolls back and answers `nil, message, code`.  Wrong
-- argument types raise at once, before any transaction (bad_argument).
local core = require "licensor.core"
local failure = require "licensor.failure"
local has_cjson, cjson_module = pcall(require, "cjson")
if not has_cjson then
  error("licensor.store needs lua-cjson (Debian: apt-get install lua-cjson; " ..
        "elsewhere: luarocks install lua-cjson)", 0)
end

local type, pairs, pcall, error, select, tonumber = type, pairs, pcall, error, select, tonumber
local unpack = table.unpack or unpack   -- luacheck: ignore unpack
local gmatch = string.gmatch

local _M = {}

local cjson = cjson_module.new()
cjson.encode_sparse_array(true)
_M.cjson = cjson

local Store = {}
Store.__index = Store
_M.Store = Store

-- A refusal inside a workflow.
local refuse = failure.raise
_M.refuse = refuse

-- A programming error in the caller of store method `fn`; depth 1 when
-- called from the method itself, 2 from a helper of the method.
function _M.bad_argument(n, fn, expected, depth)
  error("bad argument #" .. n .. " to '" .. fn .. "' (" .. expected .. ")", 2 + (depth or 1))
end

function _M.check_on(on)
  if on == nil then return core.today() end
  if type(on) == "string" and core.day(on) then return on end
  refuse("invalid_date", "on: date YYYY-MM-DD expected")
end

function _M.normalise_key(key)
  return failure.try(core.normalise_key(key))
end

-- The day `days` after `date`; invalid_date past the calendar's ends.
function _M.add_days(date, days)
  return (failure.try(core.date(core.day(date) + days)))
end

------------------------------------------------------------------------
-- The boundary
------------------------------------------------------------------------

local function pack(...)
  return { n = select("#", ...), ... }
end

-- Commits after a workflow that ran to its end; rolls back otherwise,
-- and after a workflow that ended in a refusal (_M.discard).
local function finish(self, db, ok, ...)
  self.in_transaction = false
  if ok and self.discard_wanted then
    self.discard_wanted = false
    local rolled_back, err = pcall(db.rollback, db)
    if rolled_back then return ... end
    return failure.answer(false, err)
  end
  if ok then
    local committed, err = pcall(db.commit, db)
    if committed then return ... end
    db:rollback()
    return failure.answer(false, err)
  end
  db:rollback()
  return failure.answer(false, ...)
end

-- One run of fn in a transaction of its own; deferred: SQLite's BEGIN
-- DEFERRED (see checking_transaction) instead of BEGIN IMMEDIATE.
local function attempt(self, deferred, fn, ...)
  local db = self.db
  local began, err = pcall(db.begin, db, deferred)
  if not began then return failure.answer(false, err) end
  self.in_transaction, self.may_discard, self.discard_wanted = true, true, false
  return finish(self, db, pcall(fn, self, ...))
end

-- A workflow whose answer is a refusal calls this: its transaction is
-- rolled back instead of committed, so a refusal writes nothing (not even
-- the commit of its row lock).  A workflow joined to another transaction
-- leaves the decision to that one.
function _M.discard(self)
  if self.may_discard then self.discard_wanted = true end
end

-- Runs fn inside the open transaction, which it may not discard.
local function joined(self, fn, ...)
  local may = self.may_discard
  self.may_discard = false
  local results = pack(fn(self, ...))
  self.may_discard = may
  return unpack(results, 1, results.n)
end

-- How often a PostgreSQL transaction that lost a deadlock is run again.
local PG_ATTEMPTS = 5

-- Runs fn(self, ...) in one transaction (SQLite: BEGIN IMMEDIATE, which
-- waits out other writers; PostgreSQL: READ COMMITTED, each workflow
-- taking its key's lock first) and returns its results; on any failure
-- the transaction is rolled back and the answer is nil, message, code
-- (bugs are raised again after the rollback).  On PostgreSQL a deadlock
-- or serialization failure ("busy") runs the whole workflow again, up to
-- PG_ATTEMPTS times.  Called inside another transaction (store:idempotent's
-- work), fn joins it and its failures go to that transaction's boundary,
-- which rolls back all.
function _M.transaction(self, fn, ...)
  if self.in_transaction then return joined(self, fn, ...) end
  if self.kind ~= "postgresql" then return attempt(self, false, fn, ...) end
  for n = 1, PG_ATTEMPTS do
    local results = pack(attempt(self, false, fn, ...))
    if results[1] ~= nil or results[3] ~= "busy" or n == PG_ATTEMPTS then
      return unpack(results, 1, results.n)
    end
  end
end

-- The same for a workflow that checks before it writes and whose answer
-- is often a refusal (activate, checkin, deactivate).  On SQLite it runs
-- first under BEGIN DEFERRED: its reads share the database with a writer
-- of another connection, and a refusal, which writes nothing, answers
-- without ever taking the write lock, however long another holds it.  Its
-- first write takes the write lock without waiting: "busy" at once when
-- another connection holds it or committed since this one's reads began
-- (SQLITE_BUSY_SNAPSHOT), so nothing stale is ever written.  The whole
-- workflow then runs once more under BEGIN IMMEDIATE, which waits out the
-- writer as every workflow does (busy after the store's busy_ms): an
-- accepted answer waits for the lock as before, and reads what the other
-- writer committed.  PostgreSQL: transaction(), unchanged.
function _M.checking_transaction(self, fn, ...)
  if self.in_transaction or self.kind == "postgresql" then return _M.transaction(self, fn, ...) end
  local results = pack(attempt(self, true, fn, ...))
  if results[1] ~= nil or results[3] ~= "busy" then return unpack(results, 1, results.n) end
  return attempt(self, false, fn, ...)
end

-- The same for reads: no transaction, failures answered the same way.
function _M.guarded(self, fn, ...)
  return failure.call(fn, self, ...)
end

------------------------------------------------------------------------
-- Catalogues
------------------------------------------------------------------------

-- compile(source, version) -> the catalogue of a version's data text (read
-- by the data-only reader, never run), or nil, message, code.  Leniently:
-- a version stored before unknown policy keys were refused still opens.
function _M.compile(source, version)
  local t, msg, code = core.read_data(source, "catalogue version " .. version)
  if not t then return nil, msg, code end
  local cat, err = core.catalogue(t, true)
  if not cat then return nil, err, "invalid_catalogue" end
  return cat
end

-- The catalogue of `version`, compiled once and kept until a newer one.
local function catalogue_at(self, version)
  if version == nil then refuse("no_catalogue", "no catalogue has been imported into this store") end
  if self.cat_version ~= version then
    local cat = failure.try(_M.compile(self.db:value(self.sql.catalogue_source, version), version))
    self.cat, self.cat_version, self.policy = cat, version, cat:policy()
  end
  return self.cat, version
end
_M.catalogue_at = catalogue_at

-- The active catalogue: the newest version, imported by any process.
function _M.active_catalogue(self)
  return catalogue_at(self, self.db:value(self.sql.catalogue_version))
end

------------------------------------------------------------------------
-- Licenses and the event log
------------------------------------------------------------------------

-- A level as SQLite gives it back: a whole number, or "unlimited"
-- (PostgreSQL keeps the column as text).
function _M.level_value(level)
  if type(level) == "string" and level ~= "unlimited" then return tonumber(level) or level end
  return level
end

-- Keeps value under key in self.cache, the read cache of licenses of a
-- store (Store:license) or of a gateway worker (gateway.remote), each with
-- its own rule for when an entry is stale; counts the read that fetched
-- it.  The cache is emptied whole once it holds CACHE_LIMIT keys.
local CACHE_LIMIT = 50000

function _M.remember(self, key, value)
  self.cache_misses = self.cache_misses + 1
  if self.cache_size >= CACHE_LIMIT then self.cache, self.cache_size = {}, 0 end
  if self.cache[key] == nil then self.cache_size = self.cache_size + 1 end
  self.cache[key] = value
end

-- PostgreSQL, inside a workflow: takes the key's lock (sql.lock_key),
-- held until the transaction ends, before the statements that follow.
-- It is sent with the next statement that needs an answer (one round
-- trip), and that statement, READ COMMITTED, takes its snapshot only once
-- the lock is granted: it sees every change of the lock's previous
-- holder.  Taking it again in one transaction costs nothing: advisory
-- locks stack, and all go at its end (or at a ROLLBACK TO SAVEPOINT of
-- the savepoint that took them).  Each distinct key takes a slot of the
-- server's lock table until then (unlike a row lock), so a transaction
-- can lock some thousands of keys, not any number.  SQLite needs none:
-- its write lock serialises every writer.
local function lock_key(self, key)
  if self.row_locks and self.in_transaction then self.db:defer(self.sql.lock_key, key) end
end
_M.lock_key = lock_key

-- The license row and its add-ons as a rules.md section 3 table, and the
-- active catalogue version (read by the same statement).  A workflow
-- holds its key's lock from here on (lock_key).
local function load_license(self, key)
  lock_key(self, key)
  local lic = self.db:first(self.sql.license, key)
  if lic == nil then refuse("unknown_key", "no license with key " .. key) end
  lic.failover = lic.failover == 1
  lic.level = _M.level_value(lic.level)
  lic.catalogue = nil
  local active = lic.active_catalogue
  lic.active_catalogue = nil
  local list = lic.addon_list
  if list then
    local map = {}
    for addon, through in gmatch(list, "([^\30\31]+)\31([^\30]+)") do map[addon] = through end
    lic.addons, lic.addon_list = map, nil
  end
  return lic, active
end
_M.load_license = load_license

-- The license and the active catalogue, read with one statement.
function _M.license_and_catalogue(self, key)
  local lic, version = load_license(self, key)
  return lic, (catalogue_at(self, version))
end

-- Appends an event of key; its seq is the key's next, so on PostgreSQL
-- the caller holds the key's lock (load_license, or lock_key for a key
-- whose license it never reads).  Not taken here: an import logs each new
-- key, which nobody else can see before it commits, and each advisory
-- lock of a transaction takes a slot of the server's lock table
-- (max_locks_per_transaction x max_connections, 6,400 by default).
function _M.log(self, key, at, kind, detail)
  self.db:defer(self.sql.insert_event, key, at, kind, cjson.encode(detail or {}))
end

-- What the catalogue can serve: a level its price table has for the
-- edition (when the product has prices at all), and a version lock only
-- on a perpetual license and on a major that has builds.
function _M.check_servable(cat, lic)
  local prices = cat:prices(lic.product)
  if #prices > 0 then
    local levels, seen, found = {}, {}, false
    for _, p in ipairs(prices) do
      if p.edition == lic.edition then
        found = found or p.level == lic.level
        if not seen[p.level] then seen[p.level], levels[#levels + 1] = true, tostring(p.level) end
      end
    end
    if not found then
      refuse("invalid_license", "product '" .. lic.product .. "' " .. lic.edition .. " has no level " ..
        tostring(lic.level) .. " (levels: " .. (#levels > 0 and table.concat(levels, ", ") or "none") .. ")")
    end
  end
  if lic.version_lock then
    if lic.kind ~= "perpetual" then
      refuse("invalid_license", "only perpetual licenses are tied to a major")
    end
    if not cat:first_build_of(lic.product, lic.version_lock) then
      refuse("invalid_license", "product '" .. lic.product .. "' has no builds of major " .. lic.version_lock)
    end
  end
end

-- The newest installation of server that was never deactivated (it may
-- still have lapsed: cat:installation_active says).
function _M.current_of(installs, server)
  for i = #installs, 1, -1 do
    local inst = installs[i]
    if inst.server == server and inst.deactivated == nil then return inst end
  end
end

-- renewal_price(cat, lic, on) -> the price of one M&S term and the
-- currency (the policy's ms_percent of the license's price in the major of
-- its eligible build), or nil when the catalogue prices no M&S: the one
-- copy of the formula (store:renewal_price, the portal's view).
function _M.renewal_price(cat, lic, on)
  local percent = cat:policy().ms_percent
  local build = cat:eligible(lic, on)
  if percent == 0 or not build then return nil end
  for _, p in ipairs(cat:prices(lic.product)) do
    if p.major == build.major and p.edition == lic.edition and p.level == lic.level then
      return math.floor(p.price * percent / 100), cat:currency()
    end
  end
end

-- The newest installation of server, deactivated or not.
function _M.latest_of(installs, server)
  for i = #installs, 1, -1 do
    if installs[i].server == server then return installs[i] end
  end
end

-- Closes a fraud case; `reason` is "excess_ended" (it may resume, R11) or
-- "enabled" (an admin decided), `why` the words for the event log.
function _M.close_case(self, key, case_id, on, reason, why)
  self.db:defer(self.sql.close_case, on, reason, case_id)
  _M.log(self, key, on, "case_closed", { case = case_id, why = why })
end

-- cjson decodes every number as a float; whole numbers come back as the
-- integers they were (Lua 5.4; LuaJIT has one number type).
local tointeger = math.tointeger
local function whole_numbers(t)
  if not tointeger then return t end
  for k, v in pairs(t) do
    if type(v) == "number" then t[k] = tointeger(v) or v
    elseif type(v) == "table" then whole_numbers(v) end
  end
  return t
end

function _M.decode_detail(text)
  return whole_numbers(cjson.decode(text))
end

return _M
