-- licensor.gateway.work -- the gateway's admin workflows as data: a
-- description {method=, args=, n=, field=} that a worker runs on its own
-- store (SQLite) or sends to a thread of the pool that runs it on the
-- thread's connection (PostgreSQL, licensor.gateway.thread).  Data, not
-- closures, because only data crosses into nginx's worker threads.
local failure = require "licensor.failure"
local ipairs = ipairs
local cjson = require("cjson.safe").new()

local unpack = table.unpack or unpack   -- luacheck: ignore 143 unpack
local ngx = ngx   -- luacheck: ignore 113 (nil outside nginx)

cjson.encode_sparse_array(true)

local _M = {}

-- desc(method, field, ...) -> a description of store:method(...), whose
-- result is answered as {ok=true, [field]=result}.
function _M.desc(method, field, ...)
  return { method = method, field = field, args = { ... }, n = select("#", ...) }
end

-- The JSON answer of an admin workflow's result.
local function admin_json(result)
  result.ok = true
  -- lua-cjson writes an empty table as {}; a list must read as [].
  if result.taken and #result.taken == 0 then return '{"ok":true,"taken":[]}' end
  return cjson.encode(result)
end

-- A list as JSON: [] when empty (lua-cjson would write {}).
local function json_list(list)
  return #list == 0 and "[]" or cjson.encode(list)
end

-- The sweep's answer: the steps taken and the keys it could not work,
-- each of those also in nginx's error log for the operator.
local function sweep_json(taken, skipped)
  for _, k in ipairs(skipped) do
    if ngx then ngx.log(ngx.ERR, "licensor sweep skipped ", k.key, ": ", k.why) end
  end
  return '{"ok":true,"taken":' .. json_list(taken) .. ',"skipped":' .. json_list(skipped) .. '}'
end

-- perform(store, desc) -> JSON text, or nil, message, code.
local function perform(s, desc)
  local result, message, code = s[desc.method](s, unpack(desc.args, 1, desc.n))
  if result == nil then return nil, message, code end
  if desc.method == "sweep" then return sweep_json(result, message or {}) end
  return admin_json({ [desc.field] = result })
end
_M.perform = perform

-- admin(store, id, fingerprint, desc) -> JSON text, replayed; or nil,
-- message, code.  With an Idempotency-Key id the work runs once per id
-- (store:idempotent); without, it simply runs.
function _M.admin(s, id, fingerprint, desc)
  if id == nil then return perform(s, desc) end
  return s:idempotent(id, fingerprint, function(store)
    local json, message, code = perform(store, desc)
    if json == nil then failure.raise(code, message) end
    return json
  end)
end

return _M
