-- postgres.lua -- throwaway PostgreSQL clusters for the specs and the
-- benchmark: Debian's initdb and postgres (/usr/lib/postgresql/*/bin)
-- into a temporary directory, listening only on a Unix socket there.
--
-- The server runs as the `postgres` user when we are root (it refuses
-- root), as the leader of a process group of its own with a death signal
-- tied to this process (core.process.spawn): cluster:stop() ends the whole
-- group, and a suite that dies takes its clusters with it.  Every group
-- started is written to $LICENSOR_SERVER_REGISTRY, which the suite's last
-- spec (spec/support/leftovers.lua) checks is empty of live processes.
-- Nothing outside the temporary directory is used or changed.
local core = require "licensor.core"
local process = core.process
local register = require "support.registry"
local child_env = require "support.child_env"

local _M = {}

-- Tools (pg_isready, ls, rm) run without the suite's sanitizer preload, on
-- its clock; the server itself inherits the suite's environment (the
-- PostgreSQL suite is not the sanitized one), faketime's included.
local CLEAN_ENV = child_env.shell

local function sh(command)
  local result = os.execute(CLEAN_ENV .. "sh -c '" .. command:gsub("'", "'\\''") .. "' >/dev/null 2>&1")
  return result == true or result == 0
end

local function capture(command)
  local p = assert(io.popen(CLEAN_ENV .. command .. " 2>/dev/null"))
  local out = p:read("*a")
  p:close()
  return out
end

-- The newest installed server's bin directory, or nil.
function _M.bindir()
  local dirs = capture("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1"):match("^%s*(.-)%s*$")
  if dirs ~= "" and sh("test -x " .. dirs .. "/postgres") then return dirs end
  return nil
end

local function as_root()
  return capture("id -u"):match("^%s*0%s*$") ~= nil
end


local Cluster = {}
Cluster.__index = Cluster

-- A libpq URL for database `db` (default "licensor") on this cluster,
-- with extra query parameters (e.g. "options=-csearch_path%3Ds1").
function Cluster:url(db, extra)
  return "postgresql:///" .. (db or "licensor") .. "?host=" .. self.socket_dir .. "&port=" .. self.port ..
    "&user=postgres" .. (extra and ("&" .. extra) or "")
end

-- Runs SQL as the superuser on database `db` (default "postgres"), on a
-- connection of its own (per_thread false), closed at once.
function Cluster:exec(sql, db)
  local conn = core.open_pg(self:url(db or "postgres"), 0, false)
  local ok, err = pcall(conn.exec, conn, sql)
  conn:close()
  if not ok then error(tostring(err), 2) end
end

-- The rows of a reading statement (SELECT, SHOW) on database `db`
-- (default "postgres"), within 5 s; works on a standby too.
function Cluster:rows(sql, db)
  local conn = core.open_pg(self:url(db or "postgres"), 0, false)
  local ok, rows = pcall(conn.query, conn, 5000, sql)
  conn:close()
  if not ok then error(tostring(rows), 2) end
  return rows
end

-- The first column of the first row of a reading statement.
function Cluster:value(sql, db)
  local row = self:rows(sql, db)[1]
  if not row then return nil end
  local _, v = next(row)
  return v
end

-- Runs one of the server's tools as the server's user; true, or false and
-- its log.
function Cluster:tool(name, args, log)
  local argv = { self.bin .. "/" .. name }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local pid = assert(process.spawn(argv, self.dir .. "/" .. log, self.user))
  if process.wait(pid, 120000) == 0 then return true end
  process.stop(pid, 0)
  return false, capture("cat " .. self.dir .. "/" .. log)
end

-- Starts the postgres server of this cluster's data directory.
function Cluster:start_server()
  local user = self.user
  self.pid = assert(process.spawn({ self.bin .. "/postgres", "-D", self.data }, self.dir .. "/server.log",
                                  user))
  register(self.pid, "postgres " .. self.data)
  for _ = 1, 300 do
    if sh(self.bin .. "/pg_isready -q -h " .. self.socket_dir .. " -p " .. self.port) then return self end
    if not process.alive(self.pid) then break end
    sh("sleep 0.05")
  end
  error("postgres did not start: " .. (capture("tail -20 " .. self.dir .. "/server.log")))
end

-- Fast shutdown (SIGINT: clients are disconnected), then the group.
function Cluster:stop_server()
  if self.pid then
    process.signal(self.pid, "SIGINT")
    process.stop(self.pid, 5000)
    self.pid = nil
  end
end

-- SIGKILL to the postmaster alone (a crash); its backends notice and end.
function Cluster:kill_server()
  process.signal(self.pid, "SIGKILL")
  process.stop(self.pid, 2000)
  self.pid = nil
end

function Cluster:stop()
  self:stop_server()
  if self.dir then sh("rm -rf " .. self.dir) end
  self.dir = nil
end

local SETTINGS = [[
listen_addresses = ''
unix_socket_directories = '%s'
port = %d
max_connections = 300
shared_buffers = 64MB
fsync = %s
synchronous_commit = on
wal_level = replica
max_wal_senders = 4
hot_standby = on
wal_keep_size = 256MB
wal_log_hints = on
log_min_messages = warning
]]

local function new_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(sh("mkdir -m 0755 " .. dir))
  return dir
end

local function configure(c, fsync)
  local f = assert(io.open(c.data .. "/postgresql.auto.conf", "a"))
  f:write(SETTINGS:format(c.socket_dir, c.port, fsync and "on" or "off"))
  f:close()
end

-- _M.start{fsync=false, database="licensor"} -> a running cluster with an
-- empty database, or nil, why (no server installed).
function _M.start(opts)
  opts = opts or {}
  local bin = _M.bindir()
  if not bin then return nil, "no PostgreSQL server in /usr/lib/postgresql" end
  local c = setmetatable({ bin = bin, user = as_root() and "postgres" or nil }, Cluster)
  c.dir = new_dir()
  c.data, c.socket_dir, c.port = c.dir .. "/data", c.dir, opts.port or 5432
  if c.user then assert(sh("chown postgres: " .. c.dir)) end
  local pid = assert(process.spawn({ bin .. "/initdb", "-D", c.data, "-A", "trust", "-U", "postgres",
                                     "-E", "UTF8", "--locale=C", "--no-sync" },
                                   c.dir .. "/initdb.log", c.user))
  if process.wait(pid, 120000) ~= 0 then
    local log = capture("cat " .. c.dir .. "/initdb.log")
    c:stop()
    error("initdb failed: " .. log)
  end
  configure(c, opts.fsync)
  local ok, err = pcall(c.start_server, c)
  if not ok then c:stop(); error(err, 0) end
  c:exec("CREATE DATABASE " .. (opts.database or "licensor"))
  return c
end

-- This cluster's own socket and port, and a standby's stream from
-- `primary`, appended to postgresql.auto.conf (later lines win).
function Cluster:configure_standby(primary)
  local f = assert(io.open(self.data .. "/postgresql.auto.conf", "a"))
  f:write(("unix_socket_directories = '%s'\nport = %d\n"):format(self.socket_dir, self.port))
  f:write(("primary_conninfo = 'host=%s port=%d user=postgres application_name=%s'\n")
    :format(primary.socket_dir, primary.port, self.name or "standby"))
  f:close()
  local signal = self.data .. "/standby.signal"
  assert(sh("touch " .. signal .. (self.user and (" && chown postgres: " .. signal) or "")))
end

-- primary:standby{keep_sync=false} -> a hot standby streaming from this
-- cluster, synchronous (the primary waits for it at each commit).  With
-- keep_sync the primary's synchronous_standby_names = '*' is written
-- before the base backup, so the standby has it too and keeps it when
-- promoted (the runbook's trap: doc/postgresql.md).
function Cluster:standby(opts)
  opts = opts or {}
  if opts.keep_sync then self:exec("ALTER SYSTEM SET synchronous_standby_names = '*'") end
  local s = setmetatable({ bin = self.bin, user = self.user, name = "standby" }, Cluster)
  s.dir = new_dir()
  s.data, s.socket_dir, s.port = s.dir .. "/data", s.dir, self.port + 1
  if s.user then assert(sh("chown postgres: " .. s.dir)) end
  local pid = assert(process.spawn({ self.bin .. "/pg_basebackup", "-D", s.data, "-h", self.socket_dir,
                                     "-p", tostring(self.port), "-U", "postgres", "-R", "-X", "stream",
                                     "--checkpoint=fast", "--no-sync" }, s.dir .. "/basebackup.log", s.user))
  if process.wait(pid, 120000) ~= 0 then
    local log = capture("cat " .. s.dir .. "/basebackup.log")
    s:stop()
    error("pg_basebackup failed: " .. log)
  end
  s:configure_standby(self)
  s:start_server()
  self:exec("ALTER SYSTEM SET synchronous_standby_names = '*'")
  self:exec("SELECT pg_reload_conf()")
  return s
end

-- Promotes a standby to primary.
function Cluster:promote()
  assert(sh("runuser -u postgres -- " .. self.bin .. "/pg_ctl promote -w -D " .. self.data) or
         sh(self.bin .. "/pg_ctl promote -w -D " .. self.data))
end

-- old:rewind_from(new) rebuilds a lost primary as a standby of the
-- promoted `new` (doc/postgresql.md, "High availability: the runbook"):
-- pg_rewind takes back what the old timeline wrote after the fork (it
-- finishes a killed server's crash recovery first; wal_log_hints = on
-- makes it possible), then standby.signal and primary_conninfo, and the
-- server starts read-only, streaming from `new`.  pg_rewind copies the
-- source's configuration, so this cluster's socket and port are written
-- again after it.  A CHECKPOINT on `new` first: until one, its control
-- file still names the old timeline, and pg_rewind would see no fork.
function Cluster:rewind_from(new)
  self:stop_server()
  new:exec("CHECKPOINT")
  local ok, log = self:tool("pg_rewind", { "-D", self.data, "--source-server=host=" .. new.socket_dir ..
    " port=" .. new.port .. " user=postgres dbname=postgres", "--no-sync" }, "rewind.log")
  if not ok then error("pg_rewind failed: " .. log, 2) end
  self.name = "rewound"
  self:configure_standby(new)
  self:start_server()
  return self
end

return _M
