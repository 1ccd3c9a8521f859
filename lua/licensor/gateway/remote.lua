-- licensor.gateway.remote -- a worker's store on PostgreSQL: the methods
-- of licensor.store, each run in nginx's thread pool by
-- licensor.gateway.thread, so the worker's event loop never waits on the
-- network.  Activations and admin writes always go to the database.
-- Each request's calls share a deadline, timeout_ms after the first one
-- (licensor gateway --db-timeout-ms); /healthz's write probe runs in a pool of its own
-- (HEALTH_POOL) with health_timeout_ms, so it never queues behind stuck
-- commits.  At most `threads` calls are in flight per worker (take_slot);
-- up to `queue` more wait for a slot until their deadline (then 503
-- timeout), and beyond that a request is 503 busy at once.
--
-- Reads of a license (remote:license, the eligibility path) are kept in
-- this worker's memory for at most stale_ms (constants.STALE_MS): an answer is
-- never older than that.  Ages are on the monotonic clock
-- (core.monotonic_ms), not ngx.now(): that is the wall clock, which can be
-- set back and would then keep an entry for as long.  The catalogue is
-- compiled here, once per version, from its text in the database, and so
-- is the active policy file (licensor.policy, against that catalogue):
-- a license read answers the catalogue bound to the policy's hooks and
-- the license with its resolved values, as store:license does.
--
-- With read_db (a hot standby, --read-db), license reads go there when
-- the standby has replayed the primary's WAL up to a position sampled at
-- most stale_ms / 2 ago, and such an entry is kept only until stale_ms
-- after that sample: an answer is never older than stale_ms either way.
-- A standby that lags or cannot answer is passed over for the primary.
-- stale_ms 0 (no staleness at all) reads the primary only.
local Store = require("licensor.store").Store
local common = require "licensor.store.common"
local failure = require "licensor.failure"
local monotonic_ms = require("licensor.core").monotonic_ms
local constants = require "licensor.constants"
local STALE_MS = constants.STALE_MS

local ngx = ngx
local semaphore = require "ngx.semaphore"
local setmetatable, type, tostring, pcall, select, error = setmetatable, type, tostring, pcall, select, error
local max = math.max
local unpack = table.unpack or unpack   -- luacheck: ignore 143 unpack

local _M = {}

local THREAD_MODULE = "licensor.gateway.thread"
local HEALTH_POOL = "licensor_health"
_M.HEALTH_POOL = HEALTH_POOL

local Remote = {}

-- The answer of ngx.run_worker_thread: true, true, results...; a failure
-- of the store is true, false, message, code; a thread that could not run
-- the function is false, why.
-- lua-nginx-module's words for a pool with no room: no VM left
-- (lua_worker_thread_vm_pool_size) or nginx's queue full (max_queue).
local FULL = { ["no available Lua vm"] = true, ["ngx_thread_task_post failed"] = true }

local function unwrap(ran, done, ...)
  if not ran then
    if FULL[done] then return nil, "every database thread is busy and the queue is full", "busy" end
    ngx.log(ngx.ERR, "licensor: worker thread: ", tostring(done))
    return nil, "the store's worker thread failed", "store_error"
  end
  if not done then return nil, ... end
  return ...
end

-- (lua-nginx-module 0.10.23's API; luacheck's ngx_lua predates it.)
local run_worker_thread = ngx.run_worker_thread   -- luacheck: ignore 143

-- The request's deadline: timeout_ms after its first store call, shared
-- by all of them (an activation and its certificate end by one deadline).
local function deadline_of(self)
  local ctx = ngx.ctx
  local at = ctx.licensor_deadline
  if not at then
    at = monotonic_ms() + self.timeout_ms
    ctx.licensor_deadline = at
  end
  return at
end

local BUSY = "every database thread is busy and the queue is full"
local LATE = "the request waited for a database thread until its deadline passed"

-- One of the worker's `threads` slots, waited for until the deadline by
-- at most `queue` requests at a time.  The calls in flight are bounded
-- here, not by nginx: lua-nginx-module makes a Lua VM, in the worker's
-- event loop, for each call in flight, so a burst of 500 requests stalled
-- every worker for seconds while it made hundreds of VMs (and kept them,
-- ~185 MB a worker).  With the slots, a worker makes at most threads VMs
-- for the store pool, and requests wait as coroutines.
local function take_slot(self, at)
  local slots = self.slots
  if slots:count() > 0 and slots:wait(0) then return true end
  if self.waiting >= self.queue then return nil, BUSY, "busy" end
  self.waiting = self.waiting + 1
  local ok = slots:wait(max(0, at - monotonic_ms()) / 1000)
  self.waiting = self.waiting - 1
  if ok then return true end
  return nil, LATE, "timeout"
end

local function pack(...)
  return { n = select("#", ...), ... }
end

-- nginx's graceful shutdown (SIGTERM's drain) ends a worker once no timer
-- of its own is left, and a request waiting for a worker thread has none:
-- its answer would be lost.  While calls are in flight, a timer of the
-- worker's (keep_alive) sleeps in steps, which nginx waits for.
local in_flight, keeping = 0, false

local function keep_alive()
  while in_flight > 0 do ngx.sleep(0.05) end
  keeping = false
end

local function hold_worker()
  in_flight = in_flight + 1
  if not keeping then keeping = ngx.timer.at(0, keep_alive) ~= nil end
end

local function on_thread(self, at, fn, db, ...)
  local ok, why, code = take_slot(self, at)
  if not ok then return nil, why, code end
  hold_worker()
  local results = pack(pcall(run_worker_thread, self.pool, THREAD_MODULE, fn, db, ...))
  in_flight = in_flight - 1
  self.slots:post(1)
  if not results[1] then error(results[2], 0) end
  return unwrap(unpack(results, 2, results.n))
end

local function run(self, fn, ...)
  local at = deadline_of(self)
  return on_thread(self, at, fn, self.db, self.key_file, at, ...)
end

-- Any store method: run on a thread's connection.
local methods = {}
Remote.__index = function(_, name)
  local m = methods[name]
  if m == nil and type(Store[name]) == "function" then
    m = function(self, ...) return run(self, "call", name, ...) end
    methods[name] = m
  end
  return m
end

-- remote:admin(id, fingerprint, desc): licensor.gateway.work.admin on a thread.
function methods.admin(self, id, fingerprint, desc)
  return run(self, "admin", id, fingerprint, desc)
end

local function catalogue_at(self, version)
  if self.cat_version == version then return self.cat end
  local source, msg, code = run(self, "call", "catalogue_source", version)
  if not source then return nil, msg, code end
  local cat
  cat, msg, code = common.compile(source, version)
  if not cat then return nil, msg, code end
  self.cat, self.cat_version = cat, version
  self.policy_version = nil      -- compiled against the catalogue before
  return cat
end

-- The catalogue answers go through for policy version `pversion` (nil:
-- none) of the compiled catalogue: bound to its hooks, or the catalogue
-- itself.  Sets active_policy (the compiled file; /metrics watches it) and
-- live_policy (the same, or nil when it changes nothing), as the store does.
local function policy_at(self, pversion)
  if self.policy_version == (pversion or false) then return self.bound end
  local P, live, bound = nil, nil, self.cat
  if pversion then
    local source, msg, code = run(self, "call", "policy_source", pversion)
    if not source then return nil, msg, code end
    -- As the store runs it (one that does not compile here is left out).
    P, live, bound = require("licensor.policy").in_force(source, pversion, nil, self.cat)
  end
  self.active_policy, self.live_policy, self.bound, self.policy_version = P, live, bound, pversion or false
  return bound
end

-- remote:probe_write(): store:probe_write in the health pool, within
-- health_timeout_ms.
function methods.probe_write(self)
  hold_worker()
  local results = pack(pcall(run_worker_thread, HEALTH_POOL, THREAD_MODULE, "call", self.db, self.key_file,
                             monotonic_ms() + self.health_timeout_ms, "probe_write"))
  in_flight = in_flight - 1
  if not results[1] then error(results[2], 0) end
  return unwrap(unpack(results, 2, results.n))
end

-- The primary's WAL position, sampled at most stale_ms / 2 ago, and when.
local function primary_lsn(self, now)
  if self.lsn and now - self.lsn_at <= self.stale_ms / 2 then return self.lsn, self.lsn_at end
  local lsn = run(self, "wal_lsn")
  if lsn then self.lsn, self.lsn_at = lsn, now end
  return lsn, now
end

-- The license from the standby when it is recent enough (and since when
-- it is known to be), or nil: ask the primary.
local function standby_read(self, key, now)
  local lsn, since = primary_lsn(self, now)
  if not lsn then return nil end
  local at = deadline_of(self)
  local lic, version, code = on_thread(self, at, "read", self.read_db, at, lsn, key)
  if lic == nil and code ~= "unknown_key" then
    self.standby_misses = self.standby_misses + 1
    return nil
  end
  self.standby_reads = self.standby_reads + 1
  return lic, version, code, since
end

-- remote:license(key) -> license table, catalogue: from this worker's
-- memory when read less than stale_ms ago.
function methods.license(self, key)
  local now = monotonic_ms()
  local hit = self.cache[key]
  if hit and now - hit.at < self.stale_ms then return hit.lic, hit.cat end
  -- a read answers the license, the catalogue version and the policy
  -- version (or nil, message, code)
  local lic, version, pversion, since
  if self.read_db and self.stale_ms > 0 then lic, version, pversion, since = standby_read(self, key, now) end
  if since == nil then lic, version, pversion = run(self, "call", "get_versioned", key) end
  if not lic then return nil, version, pversion end
  if version == nil then return nil, "no catalogue has been imported into this store", "no_catalogue" end
  local cat, msg, code = catalogue_at(self, version)
  if not cat then return nil, msg, code end
  cat, msg, code = policy_at(self, pversion)
  if not cat then return nil, msg, code end
  -- the license's own values (store.common.attach_policy: the policy's
  -- layers and its stored override), as store:license resolves them
  if self.live_policy or lic.policy_override then
    local _
    _, msg, code = failure.call(common.attach_policy, self, lic)
    if msg then return nil, msg, code end
  end
  common.remember(self, key, { lic = lic, cat = cat, at = since or now })
  return lic, cat
end

-- new{db=, signing_key_file=, stale_ms=constants.STALE_MS, pool="licensor",
-- timeout_ms=constants.DB_TIMEOUT_MS, health_timeout_ms=constants.HEALTH_TIMEOUT_MS, read_db=,
-- threads=8, queue=256}
function _M.new(opts)
  local threads = opts.threads or 8
  return setmetatable({ db = opts.db, key_file = opts.signing_key_file, pool = opts.pool or "licensor",
                        slots = assert(semaphore.new(threads)), waiting = 0, queue = opts.queue or 256,
                        stale_ms = opts.stale_ms or STALE_MS, cache = {}, cache_size = 0, cache_misses = 0,
                        timeout_ms = opts.timeout_ms or constants.DB_TIMEOUT_MS,
                        health_timeout_ms = opts.health_timeout_ms or constants.HEALTH_TIMEOUT_MS,
                        read_db = opts.read_db, standby_reads = 0, standby_misses = 0,
                        signing_key = opts.signing_key_file ~= nil, remote = true }, Remote)
end

return _M
