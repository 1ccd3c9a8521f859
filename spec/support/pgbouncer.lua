-- pgbouncer.lua -- a throwaway PgBouncer (Debian's /usr/sbin/pgbouncer) in
-- front of a throwaway cluster of spec/support/postgres.lua, for the
-- specs: transaction pooling by default, listening only on a Unix socket
-- in a temporary directory of its own (listen_addr empty), trusting every
-- client (auth_type = trust).
--
-- Like the cluster it runs as the `postgres` user when we are root (it
-- refuses root), in the foreground, as the leader of a process group of
-- its own tied to this process (core.process.spawn), and is written to
-- $LICENSOR_SERVER_REGISTRY for spec/support/leftovers.lua.  Nothing
-- outside its temporary directory is used; the system's pgbouncer service
-- and port 6432 are left alone.
local files = require "support.files"
local core = require "licensor.core"
local process = core.process
local register = require "support.registry"
local socket = require "socket"

local _M = {}

_M.BINARY = "/usr/sbin/pgbouncer"
_M.MISSING = "pgbouncer is not installed (make deps installs it)"

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- Is Debian's pgbouncer there?
function _M.installed()
  return exists(_M.BINARY)
end

local write = files.write

local function read(path)
  return files.read(path) or ""
end

local CONFIG = [[
[databases]
* = host=%s port=%d user=postgres

[pgbouncer]
listen_addr =
listen_port = %d
unix_socket_dir = %s
auth_type = trust
auth_file = %s/userlist.txt
pool_mode = %s
default_pool_size = %d
max_client_conn = 2000
logfile = %s/pgbouncer.log
admin_users = postgres
]]

local Bouncer = {}
Bouncer.__index = Bouncer

-- A libpq URL for database `db` (default "licensor") through this
-- PgBouncer, with extra query parameters (e.g. "prepared_statements=off").
function Bouncer:url(db, extra)
  return "postgresql:///" .. (db or "licensor") .. "?host=" .. self.dir .. "&port=" .. self.port ..
    "&user=postgres" .. (extra and ("&" .. extra) or "")
end

function Bouncer:log()
  return read(self.dir .. "/pgbouncer.log")
end

-- Stops the server (SIGTERM, PgBouncer's immediate shutdown; SIGKILL
-- after 3 s) and removes its directory.
function Bouncer:stop()
  if self.pid then
    process.stop(self.pid, 3000)
    self.pid = nil
  end
  if self.dir then os.execute("rm -rf '" .. self.dir .. "'") end
  self.dir = nil
end

-- A connection through the bouncer works (a query on a server connection).
local function answers(url)
  local ok, conn = pcall(core.open_pg, url, 0)
  if not ok then return false end
  local fine = pcall(conn.query, conn, 2000, "SELECT 1 AS one")
  conn:close()
  return fine
end

-- start(cluster, {pool_mode="transaction", pool_size=4, port=6433}) ->
-- a running PgBouncer in front of cluster; errors with _M.MISSING when
-- pgbouncer is not installed.
function _M.start(cluster, opts)
  opts = opts or {}
  assert(_M.installed(), _M.MISSING)
  local self = setmetatable({ port = opts.port or 6433 }, Bouncer)
  self.dir = os.tmpname()
  os.remove(self.dir)
  assert(os.execute("mkdir -m 0755 '" .. self.dir .. "'"))
  write(self.dir .. "/userlist.txt", '"postgres" ""\n')
  write(self.dir .. "/pgbouncer.ini", CONFIG:format(cluster.socket_dir, cluster.port, self.port, self.dir,
    self.dir, opts.pool_mode or "transaction", opts.pool_size or 4, self.dir))
  if cluster.user then assert(os.execute("chown -R " .. cluster.user .. ": '" .. self.dir .. "'")) end
  self.pid = assert(process.spawn({ _M.BINARY, self.dir .. "/pgbouncer.ini" }, self.dir .. "/start.log",
                                  cluster.user))
  register(self.pid, "pgbouncer " .. self.dir)
  for _ = 1, 100 do
    if answers(self:url("postgres", "application_name=probe")) then return self end
    if not process.alive(self.pid) then break end
    socket.sleep(0.05)
  end
  local why = read(self.dir .. "/start.log") .. self:log()
  self:stop()
  error("pgbouncer did not start: " .. why)
end

return _M
