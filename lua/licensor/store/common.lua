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

local type, pairs, ipairs, next, pcall, error, select = type, pairs, ipairs, next, pcall, error, select
local tonumber, tostring = tonumber, tostring
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

-- licensor.policy, loaded the first time a store meets a policy file or a
-- license's own override: a store with neither never loads it (the
-- catalogue's policy alone, as the C core reads it).
local policy_module
local function policy_lib()
  policy_module = policy_module or require "licensor.policy"
  return policy_module
end
_M.policy_lib = policy_lib

-- The policy file of `version` compiled against the catalogue `cat`.
function _M.compile_policy(self, version, cat)
  local row = self.db:first(self.sql.policy_source, version)
  if row == nil then refuse("no_policy", "no policy version " .. tostring(version)) end
  local P, msg = policy_lib().compile(row.source, row.name or ("policy version " .. version), cat)
  if not P then refuse("invalid_policy", "policy version " .. version .. ": " .. msg) end
  P.version = version
  return P
end

-- The active policy (version `pversion`, nil: none) for the compiled
-- catalogue: self.active_policy (the compiled file, or nil),
-- self.live_policy (the same, or nil when it changes nothing) and
-- self.bound (the catalogue workflows and store:catalogue answer: the
-- policy's hooks bound to it, or the C catalogue itself).
-- A stored version that does not compile on this host is left out, as a
-- failing hook is (licensor.policy.stored logs and counts it).
local function policy_at(self, pversion)
  local row = pversion and self.db:first(self.sql.policy_source, pversion)
  if row then
    self.active_policy, self.live_policy, self.bound = policy_lib().in_force(row.source, pversion, row.name,
                                                                             self.cat)
  else
    self.active_policy, self.live_policy, self.bound = nil, nil, self.cat
  end
  self.policy_version = pversion or false
end

-- The catalogue of `version`, compiled once and kept until a newer one,
-- with the policy file of `pversion` (nil: none) bound to it.  Answers
-- the catalogue workflows use (a bound one when the policy has hooks);
-- self.cat is the C catalogue, self.cat_policy its policy values.
local function catalogue_at(self, version, pversion)
  if version == nil then refuse("no_catalogue", "no catalogue has been imported into this store") end
  if self.cat_version ~= version then
    local cat = failure.try(_M.compile(self.db:value(self.sql.catalogue_source, version), version))
    self.cat, self.cat_version, self.cat_policy = cat, version, cat:policy()
    self.policy_version = nil      -- compiled against the catalogue before
  end
  if self.policy_version ~= (pversion or false) then policy_at(self, pversion) end
  return self.bound, version
end
_M.catalogue_at = catalogue_at

-- The active catalogue: the newest version, imported by any process, and
-- the newest policy file with it.
function _M.active_catalogue(self)
  local v = self.db:first(self.sql.active_versions)
  return catalogue_at(self, v.catalogue, v.policy)
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

-- Tags: words of lowercase letters, digits, "_" and "-" (the first a
-- letter or digit), at most MAX_TAGS on a license, each at most
-- MAX_TAG_BYTES; stored space-separated, sorted.
_M.MAX_TAGS, _M.MAX_TAG_BYTES = 16, 40

-- check_tag(word) -> word, or nil, why not, "invalid_request".
function _M.check_tag(word)
  if type(word) ~= "string" or not word:find("^[a-z0-9][a-z0-9_%-]*$") then
    return nil, "tag '" .. tostring(word):sub(1, 60) .. "' must be a word of a-z, 0-9, _ and - " ..
      "(beginning with a letter or digit)", "invalid_request"
  end
  if #word > _M.MAX_TAG_BYTES then
    return nil, "tag '" .. word:sub(1, 20) .. "...' is longer than " .. _M.MAX_TAG_BYTES .. " bytes",
      "invalid_request"
  end
  return word
end

-- A set of tags as a sorted list (nil for none): what events and
-- exports show.
function _M.tag_list(set)
  local list = {}
  for word in pairs(set or {}) do list[#list + 1] = word end
  if #list == 0 then return nil end
  table.sort(list)
  return list
end

-- The set of the tags column's words ({msp = true}), nil for none.
function _M.tag_set(text)
  if text == nil or text == "" then return nil end
  local set = {}
  for word in gmatch(text, "%S+") do set[word] = true end
  return set
end

-- A set of tags as the column keeps it: sorted words, nil for none.
function _M.tags_text(set)
  local list = _M.tag_list(set)
  return list and table.concat(list, " ")
end

-- A policy override as the column keeps it: JSON with its keys sorted
-- (so one override is always one text, and "the same again" is seen),
-- nil for none.  Values are whole numbers, strings, and the reminders'
-- table of lists (an empty table is a list: only reminder lists are).
local function canonical(v)
  if type(v) ~= "table" then return cjson.encode(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  if #keys == 0 or #v == #keys then
    local parts = {}
    for i = 1, #v do parts[i] = canonical(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = cjson.encode(tostring(k)) .. ":" .. canonical(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function _M.override_text(t)
  if t == nil or next(t) == nil then return nil end
  return canonical(t)
end

-- The license's resolved policy values on `on` (licensor.policy.values:
-- the policy file's layers and the license's own override over the
-- catalogue's), or nil when nothing overrides the catalogue.
local function attach_policy(self, lic, on)
  local P = self.live_policy
  if P == nil and lic.policy_override == nil then return nil end
  local pv, msg, code = policy_lib().values(P, self.cat, lic, on or core.today())
  if pv == nil and msg then
    local who = lic.key and ("license " .. lic.key) or "the new license"
    refuse(code or "invalid_policy", who .. ": " .. msg)
  end
  lic.policy = pv
end

-- The license row and its add-ons as a rules.md section 3 table, and the
-- active catalogue version (read by the same statement).  A workflow
-- holds its key's lock from here on (lock_key).  The license carries its
-- tags (a set), its stored override (policy_override) and, when a policy
-- file or that override changes anything, its resolved values on `on`
-- (lic.policy, which every catalogue method reads instead of the
-- catalogue's); `plain` leaves the resolved values out (a table that
-- crosses threads: store:get_versioned).
local function load_license(self, key, on, plain)
  lock_key(self, key)
  local lic = self.db:first(self.sql.license, key)
  if lic == nil then refuse("unknown_key", "no license with key " .. key) end
  lic.failover = lic.failover == 1
  lic.level = _M.level_value(lic.level)
  lic.catalogue = nil
  local active, pversion = lic.active_catalogue, lic.active_policy
  lic.active_catalogue, lic.active_policy = nil, nil
  local list = lic.addon_list
  if list then
    local map = {}
    for addon, through in gmatch(list, "([^\30\31]+)\31([^\30]+)") do map[addon] = through end
    lic.addons, lic.addon_list = map, nil
  end
  local override, tags = lic.policy, lic.tags
  lic.policy, lic.tags = nil, _M.tag_set(tags)
  if override then lic.policy_override = _M.decode_detail(override) end
  if (override or pversion) and active and not plain then
    catalogue_at(self, active, pversion)
    attach_policy(self, lic, on)
  end
  return lic, active, pversion
end
_M.load_license = load_license
_M.attach_policy = attach_policy

-- The license and the active catalogue (bound to the active policy's
-- hooks, if any), read with one statement; the license's values on `on`.
function _M.license_and_catalogue(self, key, on)
  local lic, version, pversion = load_license(self, key, on)
  return lic, (catalogue_at(self, version, pversion))
end

-- The policy values of a license: its own when anything overrides the
-- catalogue's, else the catalogue's (the table or the resolved value
-- index alike: values.KEY).
function _M.policy_of(self, lic)
  return lic and lic.policy or self.cat_policy
end

-- Every table of policy values some license of the store may resolve
-- its values from, as far as they can be told without reading every
-- license: the catalogue's, each product's and edition's layer of the
-- active policy file, and each license's own override; and `open`, true
-- when some license's values cannot be told (a settings hook answers per
-- license).  A license's resolved value of a key is one of these tables'
-- value of it, so the widest of them bounds a prefilter (the sweep's
-- SQL) that must not leave any license out.
function _M.value_tables(self, on)
  local tables, P = { self.cat_policy }, self.live_policy
  if P and P:has("settings") then return tables, true end
  if P then
    for _, product in ipairs(self.cat:products()) do
      for _, edition in ipairs(product.editions) do
        local layer = P:overrides({ product = product.id, edition = edition }, on)
        if layer then tables[#tables + 1] = layer end
      end
    end
  end
  for _, row in ipairs(self.db:all(self.sql.licenses_with_policy)) do
    tables[#tables + 1] = _M.decode_detail(row.policy)
  end
  return tables, false
end

-- The detail of an event of a decision made while a policy file is
-- active: `policy = VERSION` added (detail is changed and answered).
function _M.provenance(self, detail)
  if self.live_policy then detail.policy = self.live_policy.version end
  return detail
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
-- A catalogue bound to a policy with a price hook answers the price the
-- hook decides (cat:renewal_price).
function _M.renewal_price(cat, lic, on)
  local percent = cat:policy(lic).ms_percent
  local build = cat:eligible(lic, on)
  if percent == 0 or not build then return nil end
  for _, p in ipairs(cat:prices(lic.product)) do
    if p.major == build.major and p.edition == lic.edition and p.level == lic.level then
      local price, currency = math.floor(p.price * percent / 100), cat:currency()
      if cat.renewal_price then return cat:renewal_price(lic, on, price, currency) end
      return price, currency
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
