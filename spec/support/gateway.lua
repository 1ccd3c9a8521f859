-- gateway.lua -- real nginx gateways for the specs: each on a free
-- loopback port with its own prefix and database, and a small HTTP client
-- (LuaSocket) that decodes JSON answers.
--
-- nginx runs in the foreground as the leader of a process group of its own
-- (core.process.spawn): stopping a server stops the whole group, master
-- and workers, and waits until none is left; a server the spec forgot is
-- stopped by gateway.stop_all (each spec file's teardown), and nginx gets
-- SIGTERM if the suite itself dies.  Every group started is written to
-- $LICENSOR_SERVER_REGISTRY, which the suite's last spec
-- (spec/support/leftovers.lua) checks is empty of live processes.
local runner = require "licensor.gateway.runner"
local register = require "support.registry"
local child_env = require "support.child_env"
local process = require("licensor.core").process
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require("cjson.safe")

local _M = {}

local ROOT = os.getenv("PWD") or "."

-- os.execute succeeded (Lua 5.4 says true, LuaJIT says 0).  Tools run
-- without the suite's sanitizer preload, on its clock (support.child_env).
local function run(command)
  local result = os.execute(child_env.shell .. "sh -c '" .. command:gsub("'", "'\\''") .. "'")
  return result == true or result == 0
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

-- Servers started and not yet stopped, by pid.
local live = {}

-- Notes a started group in this suite's registry ("pid prefix" lines).
function _M.register(pid, prefix)
  live[pid] = true
  register(pid, prefix)
end

-- Stops every group this file started that is still running.
function _M.stop_all()
  for pid in pairs(live) do
    process.stop(pid, 0)
    live[pid] = nil
  end
end

-- A Server for the gateway on `port` that something else started and
-- stops (the `licensor gateway` command): a client only.
function _M.client(port)
  return setmetatable({ opts = {}, port = port, url = "http://127.0.0.1:" .. port }, Server)
end

-- start{db=, today=, token=, rate_per_ip=, rate_per_key=, workers=, synchronous=, stale_ms=, threads=,
-- user=, db_timeout_ms=, health_timeout_ms=, read_db=, queue=, drain_seconds=, artifacts=,
-- link_secret_file=, public_url=} (as runner.render takes them)
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
    conn_per_ip = opts.conn_per_ip, signing_key_file = opts.signing_key_file,
    expose_timing = opts.expose_timing, stale_ms = opts.stale_ms, threads = opts.threads,
    synchronous = opts.synchronous, db_timeout_ms = opts.db_timeout_ms,
    health_timeout_ms = opts.health_timeout_ms, read_db = opts.read_db, queue = opts.queue,
    drain_seconds = opts.drain_seconds,
    artifacts = opts.artifacts, link_secret_file = opts.link_secret_file, public_url = opts.public_url,
    -- The suite's databases are its own user's: the workers keep that
    -- user unless a spec asks for another (runner's `user` option).
    user = opts.user or process.user().name })
  self.conf = conf
  -- Sanitizer settings of the suite are not nginx's business: `env` drops
  -- them (keeping faketime's) and execs nginx in the same process (the
  -- group leader); the configuration keeps the clock's variables in the
  -- workers (runner.render's env lines).
  self.pid = assert(process.spawn(child_env.argv(runner.command(prefix, conf)), prefix .. "/logs/start.log"))
  _M.register(self.pid, prefix)
  for _ = 1, 100 do
    local status = self:request("GET", "/healthz")
    if status then return self end
    socket.sleep(0.05)
  end
  self:stop()
  error("nginx did not answer on " .. self.url .. ": " .. tostring(read_file(prefix .. "/logs/error.log")))
end

-- Stops nginx, master and workers, and waits until none is left.  By
-- default at once (SIGKILL after SIGTERM): the store is built to survive
-- exactly that (see store_faults_spec).  stop("graceful") gives nginx 5 s
-- to shut down by itself first.
function Server:stop(how)
  if not self.pid then return end
  assert(process.stop(self.pid, how == "graceful" and 5000 or 0), "nginx outlived its stop")
  live[self.pid] = nil
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
