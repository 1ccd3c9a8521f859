-- licensor.receiver -- a small webhook receiver on 127.0.0.1, for trying a
-- `licensor deliver` setup (make demo) and for the specs: each POST is
-- appended to a log as one JSON line {path=, signature=, body=,
-- answered=}, and answered as a mode file says when it arrives: "ok"
-- (200, the default), "fail" (500), "slow" (200 after 0.2 s) or "hang"
-- (no answer for 30 s).  One connection at a time; it runs until killed.
-- With a certificate and key it speaks https (LuaSec), so the specs can
-- offer licensor.tls a certificate that is good, self-signed, expired or
-- for another name; a client that refuses the handshake is logged as
-- nothing.  start(log, mode, tls) runs one in a child process of this
-- interpreter.
local socket = require "socket"
local cjson = require "cjson"

local _M = {}

local function read_mode(path)
  local f = path and io.open(path)
  local mode = f and f:read("*l") or "ok"
  if f then f:close() end
  return mode
end

local function read_request(conn)
  local line = conn:receive("*l")
  local headers = {}
  while true do
    local h = conn:receive("*l")
    if not h or h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.*)$")
    if name then headers[name:lower()] = value end
  end
  local body = conn:receive(tonumber(headers["content-length"]) or 0) or ""
  return line and line:match("^%S+%s+(%S+)"), headers, body
end

-- The server side of https: conn wrapped and its handshake done, or nil
-- (conn closed) when the client refused it.
local function accept_tls(conn, ctx)
  local ssl = require "ssl"
  local wrapped = ssl.wrap(conn, ctx)
  if not wrapped then conn:close(); return nil end
  wrapped:settimeout(5)
  if not wrapped:dohandshake() then wrapped:close(); return nil end
  return wrapped
end

-- serve(port, log_path, mode_path[, tls]): never returns.  tls:
-- {certificate=PEM file, key=PEM file} for https.
function _M.serve(port, log_path, mode_path, tls)
  local server = assert(socket.bind("127.0.0.1", port))
  local ctx = tls and assert(require("ssl").newcontext{ mode = "server", protocol = "any",
                                                         certificate = tls.certificate, key = tls.key })
  while true do
    local conn = server:accept()
    conn:settimeout(5)
    if ctx then conn = accept_tls(conn, ctx) end
    if conn then _M.answer(conn, log_path, mode_path) end
  end
end

-- answer(conn, log_path, mode_path): one request read, logged, answered.
function _M.answer(conn, log_path, mode_path)
  local path, headers, body = read_request(conn)
  local mode = read_mode(mode_path)
  if path then
    local log = assert(io.open(log_path, "a"))
    log:write(cjson.encode({ path = path, signature = headers["x-licensor-signature"], body = body,
                             answered = mode }), "\n")
    log:close()
  end
  if mode == "hang" then socket.sleep(30) elseif mode == "slow" then socket.sleep(0.2) end
  local status = mode == "fail" and "500 Internal Server Error" or "200 OK"
  conn:send("HTTP/1.1 " .. status .. "\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
  conn:close()
end

-- start(log_path [, mode_path [, tls]]) -> pid, port: serve() in a child
-- process (this interpreter, this LUA_PATH and LUA_CPATH) on a free
-- loopback port, once the port answers.  core.process.stop(pid) ends it.
function _M.start(log_path, mode_path, tls)
  local core = require "licensor.core"
  local probe = assert(socket.bind("127.0.0.1", 0))
  local _, port = probe:getsockname()
  probe:close()
  local serve = ("require('licensor.receiver').serve(%d, %q, %s, %s)"):format(port, log_path,
    mode_path and ("%q"):format(mode_path) or "nil",
    tls and ("{ certificate = %q, key = %q }"):format(tls.certificate, tls.key) or "nil")
  local pid = assert(core.process.spawn({ "env", "LUA_PATH=" .. package.path, "LUA_CPATH=" .. package.cpath,
                                          jit and "luajit" or "lua5.4", "-e", serve }))
  for _ = 1, 100 do
    local conn = socket.tcp()
    local up = conn:connect("127.0.0.1", port)
    conn:close()
    if up then break end
    socket.sleep(0.05)
  end
  return pid, tonumber(port)
end

return _M
