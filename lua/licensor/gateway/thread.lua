-- licensor.gateway.thread -- the gateway's store calls on PostgreSQL, run
-- in nginx's thread pool (ngx.run_worker_thread) so that no worker's event
-- loop ever waits on the network.  Each thread's Lua VM keeps its own
-- connection, opened at its first call and re-established by the store
-- when the server goes away; licensor.gateway.remote is the worker's side.
--
-- Every function answers true, results... or false, message, code.
local licensor = require "licensor"
local work = require "licensor.gateway.work"

local _M = {}

-- This VM's stores, by database and signing key file.
local stores = {}

local function store_for(db, key_file)
  local id = db .. "\0" .. (key_file or "")
  local s = stores[id]
  if s then return s end
  local msg, code
  -- stale_ms 0: the worker keeps the cache (and its staleness bound).
  s, msg, code = licensor.open(db, { stale_ms = 0 })
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

-- call(db, key_file, method, ...): store:method(...).
function _M.call(db, key_file, method, ...)
  local s, msg, code = store_for(db, key_file)
  if not s then return false, msg, code end
  return answer(s[method](s, ...))
end

-- admin(db, key_file, id, fingerprint, desc): licensor.gateway.work.admin.
function _M.admin(db, key_file, id, fingerprint, desc)
  local s, msg, code = store_for(db, key_file)
  if not s then return false, msg, code end
  return answer(work.admin(s, id, fingerprint, desc))
end

return _M
