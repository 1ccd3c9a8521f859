-- slowloris.lua -- a slow client for the gateway spec, run as its own
-- process (it needs more file descriptors than the suite has):
--
--   lua slowloris.lua PORT COUNT SECONDS READY_FILE
--
-- Opens COUNT connections from 127.0.0.1, sends each a request header that
-- never ends (one more header line now and then), writes how many it holds
-- to READY_FILE once all are open, and exits after SECONDS.
local socket = require "socket"

local port, count, seconds, ready_file = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3]), arg[4]
local held = {}
for i = 1, count do
  local c = socket.tcp()
  c:settimeout(2)
  if c:connect("127.0.0.1", port) then
    c:send("POST /v1/activate HTTP/1.1\r\nHost: slow\r\nX-Slow-" .. i .. ": ")
    held[#held + 1] = c
  else
    c:close()
  end
end
local f = assert(io.open(ready_file, "w"))
f:write(#held, "\n")
f:close()
local stop = socket.gettime() + seconds
while socket.gettime() < stop do
  socket.sleep(1)
  for _, c in ipairs(held) do c:send("x") end   -- a byte a second: never a whole header
end
for _, c in ipairs(held) do c:close() end
