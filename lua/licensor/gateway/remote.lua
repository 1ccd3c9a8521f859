-- licensor.gateway.remote -- a worker's store on PostgreSQL: the methods
-- of licensor.store, each run in nginx's thread pool by
-- licensor.gateway.thread, so the worker's event loop never waits on the
-- network.  Activations and admin writes always go to the database.
--
-- Reads of a license (remote:license, the eligibility path) are kept in
-- this worker's memory for at most stale_ms (constants.STALE_MS): an answer is
-- never older than that.  Ages are on the monotonic clock
-- (core.monotonic_ms), not ngx.now(): that is the wall clock, which can be
-- set back and would then keep an entry for as long.  The catalogue is
-- compiled here, once per version, from its text in the database.
local Store = require("licensor.store").Store
local common = require "licensor.store.common"
local monotonic_ms = require("licensor.core").monotonic_ms
local STALE_MS = require("licensor.constants").STALE_MS

local ngx = ngx
local setmetatable, type, tostring = setmetatable, type, tostring

local _M = {}

local THREAD_MODULE = "licensor.gateway.thread"

local Remote = {}

-- The answer of ngx.run_worker_thread: true, true, results...; a failure
-- of the store is true, false, message, code; a thread that could not run
-- the function is false, why.
local function unwrap(ran, done, ...)
  if not ran then
    ngx.log(ngx.ERR, "licensor: worker thread: ", tostring(done))
    return nil, "the store's worker thread failed", "store_error"
  end
  if not done then return nil, ... end
  return ...
end

-- (lua-nginx-module 0.10.23's API; luacheck's ngx_lua predates it.)
local run_worker_thread = ngx.run_worker_thread   -- luacheck: ignore 143

local function run(self, fn, ...)
  return unwrap(run_worker_thread(self.pool, THREAD_MODULE, fn, self.db, self.key_file, ...))
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
  return cat
end

-- remote:license(key) -> license table, catalogue: from this worker's
-- memory when read less than stale_ms ago.
function methods.license(self, key)
  local now = monotonic_ms()
  local hit = self.cache[key]
  if hit and now - hit.at < self.stale_ms then return hit.lic, hit.cat end
  local lic, version, code = run(self, "call", "get_versioned", key)
  if not lic then return nil, version, code end
  if version == nil then return nil, "no catalogue has been imported into this store", "no_catalogue" end
  local cat, msg
  cat, msg, code = catalogue_at(self, version)
  if not cat then return nil, msg, code end
  common.remember(self, key, { lic = lic, cat = cat, at = now })
  return lic, cat
end

-- new{db=, signing_key_file=, stale_ms=constants.STALE_MS, pool="licensor"}
function _M.new(opts)
  return setmetatable({ db = opts.db, key_file = opts.signing_key_file, pool = opts.pool or "licensor",
                        stale_ms = opts.stale_ms or STALE_MS, cache = {}, cache_size = 0, cache_misses = 0,
                        signing_key = opts.signing_key_file ~= nil, remote = true }, Remote)
end

return _M
