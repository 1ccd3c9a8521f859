-- licensor.gateway.thread -- the gateway's store calls on PostgreSQL, run
-- in nginx's thread pool (ngx.run_worker_thread) so that no worker's event
-- loop ever waits on the network; licensor.gateway.remote is the worker's
-- side.
--
-- lua-nginx-module runs each call in a Lua VM of its own pool, on any of
-- the pool's OS threads.  The stores opened here use the OS thread's
-- connection (licensor.open{per_thread=true}, csrc/l_pg.c), so a worker
-- holds at most one connection per thread of each pool, whatever the
-- number of VMs or requests in flight.
--
-- Each call carries its deadline (core.monotonic_ms): a call that waited
-- in the pool's queue past it is answered "timeout" without touching the
-- database, and the store ends every wait by it (store:deadline).
--
-- Every function answers true, results... or false, message, code.
-- Policy hooks that fail here count in /metrics as the worker's do: the
-- shared dict is reachable from the pool's VMs.
local licensor = require "licensor"
local work = require "licensor.gateway.work"
local metrics = require "licensor.gateway.metrics"
local monotonic_ms = require("licensor.core").monotonic_ms

local ngx = ngx   -- luacheck: ignore 113 (the pool's VMs have ngx.shared)
local has_dict, dict = pcall(function() return ngx.shared.licensor_metrics end)
if not has_dict then dict = nil end
metrics.watch_policies(dict)

local _M = {}

-- This VM's stores, by database and signing key file.
local stores = {}

local function store_for(db, key_file, deadline)
  local id = db .. "\0" .. (key_file or "")
  local s = stores[id]
  if s then return s end
  local msg, code
  -- stale_ms 0: the worker keeps the cache (and its staleness bound).
  s, msg, code = licensor.open(db, { stale_ms = 0, per_thread = true, deadline_ms = deadline })
  if not s then return nil, msg, code end
  if key_file then
    local ok
    ok, msg, code = s:use_signing_key(key_file)
    if not ok then
      s:close()
      return nil, msg, code
    end
  end
  stores[id] = s
  return s
end

local function answer(first, ...)
  if first == nil then return false, ... end
  return true, first, ...
end

local LATE = "the request waited for a database thread until its deadline passed"

-- What a store that cannot open answers the client: 503, never a 4xx
-- about the request (its words, which name the database, go to the log).
local OPEN_CODES = { store_unavailable = true, timeout = true, busy = true }

-- The store for a call that is still in time, its deadline set.
local function ready(db, key_file, deadline)
  if monotonic_ms() >= deadline then return nil, LATE, "timeout" end
  local s, msg, code = store_for(db, key_file, deadline)
  if not s then return nil, msg, OPEN_CODES[code] and code or "store_error" end
  s:deadline(deadline)
  return s
end

-- The answer of a call, once the policy its store compiled is watched.
local function watched(s, ...)
  if dict then metrics.watch_policy(dict, s.active_policy) end
  return answer(...)
end

-- call(db, key_file, deadline, method, ...): store:method(...).
function _M.call(db, key_file, deadline, method, ...)
  local s, msg, code = ready(db, key_file, deadline)
  if not s then return false, msg, code end
  return watched(s, s[method](s, ...))
end

-- admin(db, key_file, deadline, id, fingerprint, desc): licensor.gateway.work.admin.
function _M.admin(db, key_file, deadline, id, fingerprint, desc)
  local s, msg, code = ready(db, key_file, deadline)
  if not s then return false, msg, code end
  return watched(s, work.admin(s, id, fingerprint, desc))
end

-- Statements of the standby reads, by store.
local statements = setmetatable({}, { __mode = "k" })

local function statement(s, name, sql)
  local mine = statements[s] or {}
  statements[s] = mine
  mine[name] = mine[name] or s.db:prepare(sql)
  return mine[name]
end

-- wal_lsn(db, key_file, deadline): the primary's WAL position now (every
-- commit acknowledged before this call is at or before it).
function _M.wal_lsn(db, key_file, deadline)
  local s, msg, code = ready(db, key_file, deadline)
  if not s then return false, msg, code end
  local ok, lsn = pcall(s.db.value, s.db, statement(s, "lsn", "SELECT pg_current_wal_lsn()::text"))
  if not ok then return false, tostring(lsn.message or lsn), lsn.code or "store_error" end
  return true, lsn
end

-- read(read_db, deadline, min_lsn, key): store:get_versioned(key) on the
-- standby read_db, when it has replayed the primary's WAL up to min_lsn
-- (read first: the license read after it sees at least that much); false,
-- why, "stale" when it has not, or when read_db is no standby at all (a
-- --read-db that names some other primary, a typo, must never answer).
function _M.read(read_db, deadline, min_lsn, key)
  local s, msg, code = ready(read_db, nil, deadline)
  if not s then return false, msg, code end
  local ok, caught_up = pcall(s.db.value, s.db, statement(s, "caught_up",
    "SELECT (pg_is_in_recovery() AND pg_wal_lsn_diff(pg_last_wal_replay_lsn(), ?::pg_lsn) >= 0)::text"),
    min_lsn)
  if not ok then return false, tostring(caught_up.message or caught_up), caught_up.code or "store_error" end
  if caught_up ~= "true" then return false, "the standby has not replayed up to " .. min_lsn, "stale" end
  return answer(s:get_versioned(key))
end

return _M
