-- licensor -- the public module: the C core plus what is better said in Lua.
local core = require "licensor.core"

local _M = {}
for name, fn in pairs(core) do _M[name] = fn end

return _M
