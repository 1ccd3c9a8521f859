-- licensor.store -- licenses in SQLite: the store and workflows of
-- rules.md section 6.
--
-- Every workflow is one BEGIN IMMEDIATE transaction (licensor.core's db
-- layer waits out other writers): it happens whole and is logged, or not at
-- all.  This file opens the store and answers reads; the workflows are in
-- store/licenses.lua (the license's own life), store/installations.lua
-- (R5, R9, R10), store/sweep.lua (R10, R11) and store/outbox.lua (the
-- actions' delivery).  The rules themselves are the C core's; the store
-- only stores.
local core = require "licensor.core"
local failure = require "licensor.failure"
local constants = require "licensor.constants"
local loader = require "licensor.loader"
local schema = require "licensor.schema"
local common = require "licensor.store.common"
local SQL = require "licensor.store.sql"
require "licensor.store.licenses"
require "licensor.store.installations"
require "licensor.store.sweep"
require "licensor.store.outbox"
require "licensor.store.certificates"
require "licensor.store.lists"
require "licensor.store.bulk"
require "licensor.store.portal"
require "licensor.store.downloads"
require "licensor.store.policies"
require "licensor.store.explain"

local type, pairs, ipairs, pcall, setmetatable = type, pairs, ipairs, pcall, setmetatable
local tostring = tostring

local Store = common.Store
local refuse, bad_argument = common.refuse, common.bad_argument
local transaction, guarded = common.transaction, common.guarded
local normalise_key, load_license = common.normalise_key, common.load_license
local active_catalogue, license_and_catalogue = common.active_catalogue, common.license_and_catalogue

local _M = {}

------------------------------------------------------------------------
-- Opening
------------------------------------------------------------------------

-- Runs fn(db) in one transaction of the connection, before the store exists.
local function within_transaction(db, fn)
  db:begin()
  local ok, err = pcall(fn, db)
  if ok then
    db:commit()
  else
    db:rollback()
    error(err, 0)
  end
end

local function migrate_sqlite(db)
  local version = db:value(db:prepare("PRAGMA user_version"))
  for n = version + 1, #schema.migrations do
    db:exec(schema.migrations[n])
    db:exec("PRAGMA user_version = " .. n)
  end
end

-- PostgreSQL: one process at a time migrates (an advisory lock), and the
-- version lives in licensor_schema.
local MIGRATION_LOCK = 7340212

local function migrate_postgresql(db)
  -- Up to date already: nothing to lock or create.  A hot standby (the
  -- gateway's --read-db) refuses both, and it only ever is up to date.
  if db:value(db:prepare("SELECT to_regclass('licensor_schema')::text")) and
     db:value(db:prepare("SELECT coalesce(max(version), 0) FROM licensor_schema")) >= #schema.postgresql then
    return
  end
  db:exec("SELECT pg_advisory_xact_lock(" .. MIGRATION_LOCK .. ")")
  db:exec("CREATE TABLE IF NOT EXISTS licensor_schema (version INTEGER NOT NULL)")
  local version = db:value(db:prepare("SELECT coalesce(max(version), 0) FROM licensor_schema"))
  local target = #schema.postgresql
  if version >= target then return end
  for n = version + 1, target do
    if schema.postgresql[n] ~= "" then db:exec(schema.postgresql[n]) end
  end
  db:exec("DELETE FROM licensor_schema; INSERT INTO licensor_schema VALUES (" .. target .. ")")
end

local function prepare_all(db, kind)
  local ids = {}
  for name, sql in pairs(SQL.statements(kind)) do ids[name] = db:prepare(sql) end
  return ids
end

-- A libpq connection string: a postgresql:// (or postgres://) URL, or
-- keyword=value pairs ("host=/run/postgresql dbname=licensor").
local function is_postgresql(path)
  return path:match("^postgres[%a]*://") ~= nil or path:match("^%s*[%a_]+%s*=") ~= nil
end
_M.is_postgresql = is_postgresql

-- The path or connection string without its password, for messages.
local function display_name(path)
  if path:match("^postgres[%a]*://") then
    return (path:gsub("(//[^:/@]*):[^@/]*@", "%1:***@"):gsub("([?&]password=)[^&]*", "%1***"))
  end
  return (path:gsub("password%s*=%s*'[^']*'", "password=***")       -- a quoted value, blanks and all
              :gsub("password%s*=%s*[^%s']%S*", "password=***"))
end
_M.display_name = display_name

local function connect(path, opts)
  if is_postgresql(path) then
    return core.open_pg(path, opts.stale_ms, opts.per_thread, opts.deadline_ms), "postgresql"
  end
  return core.open(path, opts.synchronous == "full", opts.busy_ms), "sqlite"
end

-- Opens, migrates and prepares; failures name the path.
local function open(path, opts)
  local name = display_name(path)
  local ok, db, kind = pcall(connect, path, opts)
  if not ok then
    if failure.is(db) then refuse(db.code, name .. ": " .. db.message) end
    error(db, 0)
  end
  local migrate = kind == "postgresql" and migrate_postgresql or migrate_sqlite
  local migrated, err = pcall(within_transaction, db, migrate)
  if not migrated then
    db:close()
    if failure.is(err) then refuse(err.code, name .. ": " .. err.message) end
    refuse("store_error", name .. ": " .. tostring(err))
  end
  local prepared, sql = pcall(prepare_all, db, kind)
  if not prepared then
    db:close()
    refuse("store_error", name .. ": not a licensor database of this version (" ..
      (failure.is(sql) and sql.message or tostring(sql)) .. ")")
  end
  return setmetatable({ db = db, sql = sql, path = name, kind = kind, handlers = {},
                        query_ms = opts.query_ms, cache_misses = 0, row_locks = kind == "postgresql",
                        claim_token = core.random_hex(12), claim_ms = opts.claim_ms }, Store)
end

local function check_ms(opts, field, default, min)
  local v = opts[field]
  if v == nil then return default end
  if type(v) ~= "number" or v < min or v > 3600000 or v % 1 ~= 0 then
    bad_argument(2, "open", field .. " must be a whole number of milliseconds", 2)
  end
  return v
end

-- licensor.open(path_or_url, {synchronous="full"|"normal", busy_ms=,
-- query_ms=, stale_ms=, claim_ms=}) -> store.  A postgresql:// URL (or a libpq
-- keyword=value string) opens a PostgreSQL store, anything else an SQLite
-- file, created 0600 (its -wal and -shm too; see csrc/store.c); stale_ms
-- (PostgreSQL, default constants.STALE_MS) bounds how old store:license's
-- cached reads may be; claim_ms (default constants.DELIVERY.claim_ms) how
-- long store:deliver holds the rows it claimed.  per_thread (PostgreSQL,
-- the gateway's thread pool) uses the calling OS thread's connection
-- instead of one of the store's own (csrc/l_pg.c); deadline_ms (on
-- core.monotonic_ms's clock) bounds connecting, as store:deadline bounds
-- the calls.
function _M.open(path, opts)
  if type(path) ~= "string" then bad_argument(1, "open", "path expected") end
  if opts ~= nil and type(opts) ~= "table" then bad_argument(2, "open", "options table expected") end
  opts = opts or {}
  local sync = opts.synchronous or "full"
  if sync ~= "full" and sync ~= "normal" then
    bad_argument(2, "open", "synchronous must be \"full\" or \"normal\"")
  end
  local checked = { synchronous = sync, busy_ms = check_ms(opts, "busy_ms", 10000, 0),
                    query_ms = check_ms(opts, "query_ms", 10000, 1),
                    stale_ms = check_ms(opts, "stale_ms", constants.STALE_MS, 0),
                    claim_ms = check_ms(opts, "claim_ms", constants.DELIVERY.claim_ms, 1),
                    per_thread = opts.per_thread == true, deadline_ms = opts.deadline_ms }
  return failure.call(open, path, checked)
end

function Store:close()
  self.cat, self.bound, self.active_policy, self.live_policy = nil, nil, nil, nil
  return self.db:close()
end
Store.__close = Store.close
Store.__gc = Store.close      -- Lua 5.4; under LuaJIT the db's own __gc runs

function Store:__tostring()
  return "licensor.store (" .. self.path .. ")"
end

local function schema_version(self)
  if self.kind == "postgresql" then
    return self.db:query(self.query_ms, "SELECT max(version) AS v FROM licensor_schema")[1].v
  end
  return self.db:query(self.query_ms, "PRAGMA user_version")[1].user_version
end

-- store:schema_version() -> the number of schema migrations applied.
function Store:schema_version()
  return guarded(self, schema_version)
end

------------------------------------------------------------------------
-- Catalogues
------------------------------------------------------------------------

-- store:catalogue() -> the active catalogue (reloaded when a newer version
-- has been imported, by this or any other process): bound to the active
-- policy file's hooks when it has any (licensor.policy.bind: W.raw is the
-- C catalogue), else the C catalogue itself.
function Store:catalogue()
  return guarded(self, active_catalogue)
end

local function catalogue_version(self)
  local _, version = active_catalogue(self)
  return version
end

-- store:catalogue_version() -> the active version number.
function Store:catalogue_version()
  return guarded(self, catalogue_version)
end

-- A catalogue that leaves licenses without their product is refused
-- whole: the sweep, the gateway and every query of those licenses would
-- have nothing to answer with.
local function keeps_licensed_products(self, cat)
  local missing = {}
  for _, row in ipairs(self.db:all(self.sql.licenses_per_product)) do
    if not cat:product(row.product) then
      local n = row.n .. (row.n == 1 and " license" or " licenses")
      missing[#missing + 1] = "'" .. row.product .. "' (" .. n .. ")"
    end
  end
  if #missing > 0 then
    refuse("invalid_catalogue", "the catalogue leaves out products that still have licenses: " ..
      table.concat(missing, ", "))
  end
end

-- A catalogue under which the active policy file no longer compiles (a
-- product or edition it names gone), or a license's own override no
-- longer resolves, is refused whole: every read of those licenses would
-- fail.
local function keeps_policies(self, cat)
  local pversion = self.db:value(self.sql.policy_version)
  if pversion then
    local ok, err = pcall(common.compile_policy, self, pversion, cat)
    if not ok then
      if not failure.is(err) then error(err, 0) end
      refuse("invalid_catalogue", "the active policy does not fit the catalogue: " .. err.message)
    end
  end
  for _, row in ipairs(self.db:all(self.sql.licenses_with_policy)) do
    local pv, msg = cat:resolve_policy(common.decode_detail(row.policy))
    if not pv then
      refuse("invalid_catalogue", "license " .. row.key .. "'s own policy override does not fit the " ..
        "catalogue: " .. tostring(msg))
    end
  end
end

local function import(self, t, today)
  local cat, msg, code = core.catalogue(t)
  if not cat then refuse(code, msg) end
  keeps_licensed_products(self, cat)
  keeps_policies(self, cat)
  -- Kept as data text, read back by the data-only reader (no code runs).
  local source = failure.try(core.write_data(t))
  local active = self.db:value(self.sql.catalogue_version)
  if active and self.db:value(self.sql.catalogue_source, active) == source then return active, true end
  local _, version = self.db:run(self.sql.insert_catalogue, today, source,
    common.cjson.encode(cat:policy()))
  return version, false
end

-- store:import(table_or_path) -> version number, unchanged.  Importing
-- the active catalogue again adds no version (unchanged is true).  A
-- file's validation errors read "file:line: message".
function Store:import(t)
  if type(t) == "string" then
    local cat, read, code = loader.load(t)
    if not cat then return nil, read, code end
    t = read
  elseif type(t) ~= "table" then
    bad_argument(1, "import", "catalogue table or path expected")
  end
  return transaction(self, import, t, core.today())
end

------------------------------------------------------------------------
-- Reads
------------------------------------------------------------------------

local function get(self, key)
  return (load_license(self, normalise_key(key)))
end

local function get_versioned(self, key)
  return load_license(self, normalise_key(key), nil, true)
end

-- store:get(key) -> the license table alone (so that
-- cat:eligible(store:get "KEY") asks about today)
function Store:get(key)
  return guarded(self, get, key)
end

-- store:get_versioned(key) -> license table, the active catalogue version,
-- the active policy version (one statement, never cached: what a gateway
-- on PostgreSQL caches itself).  The table crosses threads: it carries the
-- license's override and tags but not its resolved values (lic.policy),
-- which the caller attaches (store.common.attach_policy).
function Store:get_versioned(key)
  return guarded(self, get_versioned, key)
end

-- Read-through cache of Store:license, valid while the database's
-- generation (see csrc/store.h) is the one seen before the rows were read:
-- any commit, by any process, empties it.  So does a new day while the
-- policy has a settings hook: its answer, in each license's values, may
-- depend on the day.
local function cached_license(self, key)
  local generation = self.db:generation()
  local day = self.live_policy and self.live_policy.hooks.settings and core.today() or false
  if generation ~= self.cache_generation or day ~= self.cache_day then
    self.cache, self.cache_size, self.cache_generation, self.cache_day = {}, 0, generation, day
  end
  -- Cached under canonical keys: a canonical key hits without normalising.
  local hit = self.cache[key]
  if hit then return hit end
  key = normalise_key(key)
  hit = self.cache[key]
  if hit then return hit end
  hit = { license_and_catalogue(self, key) }
  common.remember(self, key, hit)
  return hit
end

-- store:license(key) -> license table, active catalogue.  For read paths
-- that ask about the same keys again and again (the gateway): answers come
-- from memory until anything is committed to the database.  The license
-- table may be shared between calls: treat it as read-only.
-- store.cache_misses counts the reads that went to the database.
function Store:license(key)
  local pair, msg, code = guarded(self, cached_license, key)
  if not pair then return nil, msg, code end
  return pair[1], pair[2]
end

local function catalogue_source(self, version)
  local source = self.db:value(self.sql.catalogue_source, version)
  if source == nil then refuse("no_catalogue", "no catalogue version " .. tostring(version)) end
  return source
end

-- store:catalogue_source(version) -> the catalogue as data text.
function Store:catalogue_source(version)
  if type(version) ~= "number" then bad_argument(1, "catalogue_source", "version number expected") end
  return guarded(self, catalogue_source, version)
end

local function events(self, key)
  key = normalise_key(key)
  local rows = self.db:all(self.sql.events, key)
  if #rows == 0 then load_license(self, key) end
  for _, row in ipairs(rows) do row.detail = common.decode_detail(row.detail) end
  return rows
end

-- store:events(key) -> list of {at=, kind=, detail=} oldest first
function Store:events(key)
  return guarded(self, events, key)
end

local function idempotent(self, id, fingerprint, work)
  local db, sql = self.db, self.sql
  if self.row_locks then db:defer(sql.lock_idempotency, id) end
  local seen = db:first(sql.idempotency_get, id)
  if seen then
    if seen.fingerprint ~= fingerprint then
      refuse("idempotency_conflict", "Idempotency-Key " .. id .. " was used for another request")
    end
    return seen.answer, true
  end
  local answer = work(self)
  if type(answer) ~= "string" then bad_argument(3, "idempotent", "work must answer a string") end
  db:defer(sql.idempotency_put, id, fingerprint, answer, os.date("!%Y-%m-%dT%H:%M:%SZ"))
  return answer, false
end

-- store:idempotent(id, fingerprint, work) -> answer, replayed.  Runs
-- work(store) -- workflows included -- once per id, in one transaction
-- that also keeps its answer (a string): the same id and fingerprint later
-- answer the kept string and true without running work; another
-- fingerprint is idempotency_conflict.  Any failure of the work rolls all
-- of it back, and nothing is kept.
function Store:idempotent(id, fingerprint, work)
  if type(id) ~= "string" or type(fingerprint) ~= "string" then
    bad_argument(1, "idempotent", "id and fingerprint strings expected")
  end
  if type(work) ~= "function" then bad_argument(3, "idempotent", "function expected") end
  return transaction(self, idempotent, id, fingerprint, work)
end

local function ping(self)
  self.db:value(self.sql.catalogue_version)
  return true
end

-- store:ping() -> true when the database answers a read (the gateway's
-- /healthz), or nil, message, code.
function Store:ping()
  return guarded(self, ping)
end

-- store:deadline(at_ms): the store calls that follow end by at_ms, a time
-- on core.monotonic_ms's clock (nil: no deadline).  On PostgreSQL a
-- statement still running then is cancelled (nil, message, "timeout"), and
-- a COMMIT still waiting is answered store_unavailable with a message that
-- begins constants.OUTCOME_UNKNOWN: it may have happened.  SQLite has its
-- busy timeout (busy_ms) instead, and ignores this.
function Store:deadline(at_ms)
  if at_ms ~= nil and (type(at_ms) ~= "number" or at_ms < 0 or at_ms % 1 ~= 0) then
    bad_argument(1, "deadline", "a time in whole milliseconds of core.monotonic_ms expected")
  end
  if self.kind == "postgresql" then self.db:deadline(at_ms) end
  return true
end

local function probe_write(self)
  if self.kind == "postgresql" then
    -- A row written makes the COMMIT a real one: it is flushed and waits
    -- for the synchronous standbys as every write does (a transaction id
    -- alone would not: a commit that wrote no WAL does not wait).  The
    -- row is the schema's own, written as it is: nothing changes.
    self.probe_id = self.probe_id or self.db:prepare("UPDATE licensor_schema SET version = version " ..
      "WHERE version = (SELECT max(version) FROM licensor_schema)")
    self.db:run(self.probe_id)
  end
  return true
end

-- store:probe_write() -> true when a write can commit now (PostgreSQL: a
-- transaction that rewrites one row commits; SQLite: the write lock
-- is taken and let go), or nil, message, code.  The gateway's /healthz.
function Store:probe_write()
  return transaction(self, probe_write)
end

local function backup(self, path)
  if path == "" or path == ":memory:" or path:find("^file:") then
    refuse("invalid_request", "a backup needs a file path (not '" .. path .. "')")
  end
  -- The new file is made here, empty and 0600, never through a symlink
  -- and never over an existing name (even a dangling symlink); SQLite
  -- then fills it (an empty file is an empty database).
  local made, why, code = require("licensor.files").write(path, "", { mode = constants.PRIVATE_MODE })
  if not made then
    if code == "exists" then
      refuse("exists", path .. " exists already (a backup never overwrites a file)")
    end
    refuse(code, why)
  end
  -- A backup that fails (a full disk) leaves nothing behind, its journal
  -- included, so that the retry does not meet a partial or 0-byte file
  -- that says "exists".
  local ok, err = pcall(self.db.backup, self.db, path)
  if not ok then
    for _, suffix in ipairs({ "", "-journal", "-wal", "-shm" }) do os.remove(path .. suffix) end
    error(err, 0)
  end
  return true
end

-- store:backup(path) -> true: a consistent copy of the whole database in a
-- new file (0600, never through a symlink), made with SQLite's online
-- backup API while other processes (the gateway) go on reading and
-- writing; "exists" when path does (a symlink too),
-- "invalid_request" for "" or ":memory:", and nothing left when it fails.
function Store:backup(path)
  if type(path) ~= "string" then bad_argument(1, "backup", "path expected") end
  return guarded(self, backup, path)
end

local function query(self, sql, ...)
  return self.db:query(self.query_ms, sql, ...)
end

-- store:query(sql, ...) -> rows of a read-only SQL statement (for support
-- staff at the REPL), or nil, message, code: "invalid_request" for SQL
-- that would write, BEGIN, ATTACH or set a PRAGMA, "timeout" for a query
-- still running after the store's query_ms (default 10 s).
function Store:query(sql, ...)
  if type(sql) ~= "string" then bad_argument(1, "query", "SQL string expected") end
  return guarded(self, query, sql, ...)
end

_M.Store = Store
return _M
