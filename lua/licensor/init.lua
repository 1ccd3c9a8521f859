-- licensor -- the public module: the C core plus what is better said in Lua.
local core = require "licensor.core"
local fast = require "licensor.ffi"
local loader = require "licensor.loader"

local _M = {}
for name, fn in pairs(core) do
  if name:sub(1, 1) ~= "_" then _M[name] = fn end
end

-- Under LuaJIT cat:eligible and cat:close go through the FFI path.
if fast.enabled then
  core.catalogue_methods.eligible = fast.eligible
  core.catalogue_methods.close = fast.close
end
_M.ffi = fast.enabled

-- licensor.load_catalogue(path) -> catalogue, table | nil, "file:line: msg", code
_M.load_catalogue = loader.load
-- licensor.read_catalogue(path) -> table (unvalidated) | nil, msg, code
_M.read_catalogue = loader.read

return _M
