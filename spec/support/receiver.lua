-- receiver.lua PORT LOG MODE_FILE -- a webhook receiver for the specs on
-- 127.0.0.1:PORT: each POST is appended to LOG as one JSON line {path=,
-- signature=, body=}, and answered as MODE_FILE says when it arrives:
-- "ok" (200, the default), "fail" (500) or "hang" (no answer for 30 s).
local socket = require "socket"
local cjson = require "cjson"

local port, log_path, mode_path = tonumber(arg[1]), arg[2], arg[3]
local server = assert(socket.bind("127.0.0.1", port))

local function mode()
  local f = io.open(mode_path)
  local m = f and f:read("*l") or "ok"
  if f then f:close() end
  return m
end

while true do
  local conn = server:accept()
  conn:settimeout(5)
  local line = conn:receive("*l")
  local headers = {}
  while true do
    local h = conn:receive("*l")
    if not h or h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.*)$")
    if name then headers[name:lower()] = value end
  end
  local body = conn:receive(tonumber(headers["content-length"]) or 0) or ""
  local m = mode()
  local log = assert(io.open(log_path, "a"))
  log:write(cjson.encode({ path = line and line:match("^%S+%s+(%S+)"),
                           signature = headers["x-licensor-signature"],
                           body = body, answered = m }), "\n")
  log:close()
  if m == "hang" then socket.sleep(30) end
  local status = m == "fail" and "500 Internal Server Error" or "200 OK"
  conn:send("HTTP/1.1 " .. status .. "\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
  conn:close()
end
