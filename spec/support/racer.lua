-- racer.lua DB KEY ID COUNT -- tries COUNT new servers on KEY as fast as it
-- can, racing other racers; prints "ok refused failed" counts.
local licensor = require "licensor"

local path, key, id, count = arg[1], arg[2], arg[3], tonumber(arg[4])
local store = assert(licensor.open(path, { synchronous = "normal", busy_ms = 30000 }))
local ok, refused, failed = 0, 0, 0
for n = 1, count do
  local verdict, msg = store:activate(key, "racer" .. id .. "-" .. n, 6911, "2019-01-01")
  if not verdict then
    failed = failed + 1
    io.stderr:write(tostring(msg), "\n")
  elseif verdict.ok then
    ok = ok + 1
  else
    refused = refused + 1
  end
end
print(ok, refused, failed)
