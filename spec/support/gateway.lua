-- gateway.lua -- real nginx gateways for the specs: each on a free
-- loopback port with its own prefix and database, started and stopped by
-- the spec, and a small HTTP client (LuaSocket) that decodes JSON answers.
local runner = require "licensor.gateway.runner"
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require("cjson.safe")

local _M = {}

local ROOT = os.getenv("PWD") or "."

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Tools run without the suite's sanitizer preload (pgrep, for one,
-- deadlocks with libasan preloaded).
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "

-- os.execute succeeded (Lua 5.4 says true, LuaJIT says 0).
local function run(command)
  local result = os.execute(CLEAN_ENV .. "sh -c '" .. command:gsub("'", "'\\''") .. "'")
  return result == true or result == 0
end

local function popen(command)
  return io.popen(CLEAN_ENV .. command)
end

_M.run = run

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

-- A loopback port nobody listens on now.
function _M.free_port()
  for _ = 1, 50 do
    local port = math.random(20000, 60000)
    local probe = socket.tcp()
    local ok = probe:bind("127.0.0.1", port)
    probe:close()
    if ok then return port end
  end
  error("no free loopback port")
end

local Server = {}
Server.__index = Server

-- A Server for an nginx started some other way (port, prefix; pid later).
function _M.attach(port, prefix)
  return setmetatable({ opts = {}, port = port, prefix = prefix, url = "http://127.0.0.1:" .. port }, Server)
end

-- start{db=, today=, token=, rate_per_ip=, rate_per_key=, workers=, synchronous=}
function _M.start(opts)
  local self = setmetatable({ opts = opts }, Server)
  self.port = opts.port or _M.free_port()
  self.prefix = opts.prefix or (os.tmpname() .. ".gw")
  self.url = "http://127.0.0.1:" .. self.port
  if opts.token then
    self.token_file = self.prefix .. ".token"
    local f = assert(io.open(self.token_file, "w"))
    f:write(opts.token, "\n")
    f:close()
  end
  local prefix, conf = assert(runner.render{
    db = opts.db, listen = "127.0.0.1:" .. self.port, workers = opts.workers or 2, today = opts.today,
    admin_token_file = self.token_file, prefix = self.prefix, cpath = ROOT .. "/build/luajit",
    rate_per_ip = opts.rate_per_ip or 100000, rate_per_key = opts.rate_per_key or 100000,
    synchronous = opts.synchronous })
  self.conf = conf
  -- Sanitizer settings of the suite are not nginx's business.
  assert(run(runner.nginx_binary() .. " -p " .. sh_quote(prefix) ..
    " -c " .. sh_quote(conf) .. " 2>>" .. sh_quote(prefix .. "/logs/start.log")), "nginx did not start")
  self.pid = tonumber(read_file(prefix .. "/nginx.pid"))
  for _ = 1, 100 do
    local status = self:request("GET", "/healthz")
    if status then return self end
    socket.sleep(0.05)
  end
  error("nginx did not answer on " .. self.url .. ": " .. tostring(read_file(prefix .. "/logs/error.log")))
end

-- Alive and not a zombie (orphans are reaped late on some machines).
local function alive(pid)
  local text = read_file("/proc/" .. pid .. "/stat")
  return text ~= nil and not text:match("^%d+ %b() Z")
end

local function children_of(pid)
  local pipe = popen("pgrep -P " .. pid .. " 2>/dev/null")
  local list = {}
  for line in pipe:lines() do list[#list + 1] = tonumber(line) end
  pipe:close()
  return list
end

-- Stops nginx, master and workers.  By default with SIGKILL: nginx's own
-- shutdown takes about a second here, and the store is built to survive
-- exactly that (see store_faults_spec).  stop("graceful") sends QUIT.
function Server:stop(how)
  if not self.pid then return end
  local pids = children_of(self.pid)
  pids[#pids + 1] = self.pid
  if how == "graceful" then
    run("kill -QUIT " .. self.pid .. " 2>/dev/null")
  else
    run("kill -9 " .. table.concat(pids, " ") .. " 2>/dev/null")
  end
  for _ = 1, 500 do
    local any = false
    for _, pid in ipairs(pids) do any = any or alive(pid) end
    if not any then break end
    socket.sleep(0.01)
  end
  self.pid = nil
end

function Server:error_log()
  return read_file(self.prefix .. "/logs/error.log") or ""
end

-- request(method, path, body, headers) -> status, json (or raw text), headers
function Server:request(method, path, body, headers)
  local chunks = {}
  headers = headers or {}
  if body ~= nil and type(body) ~= "string" then body = assert(cjson.encode(body)) end
  if body then headers["Content-Length"] = tostring(#body) end
  local _, status, response_headers = http.request{
    url = self.url .. path, method = method, headers = headers,
    source = body and ltn12.source.string(body), sink = ltn12.sink.table(chunks),
  }
  if type(status) ~= "number" then return nil, status end
  local text = table.concat(chunks)
  local json = cjson.decode(text)
  return status, json or text, response_headers
end

-- Admin request with the bearer token.
function Server:admin(workflow, body)
  return self:request("POST", "/v1/admin/" .. workflow, body or {},
    { Authorization = "Bearer " .. self.opts.token })
end

-- Sends raw bytes and returns the status line's code (or nil).
function Server:raw(bytes)
  local conn = socket.tcp()
  conn:settimeout(5)
  assert(conn:connect("127.0.0.1", self.port))
  conn:send(bytes)
  local line = conn:receive("*l")
  local rest = conn:receive("*a")
  conn:close()
  return tonumber(line and line:match("^HTTP/1%.%d (%d+)")), (line or "") .. "\n" .. (rest or "")
end

return _M
