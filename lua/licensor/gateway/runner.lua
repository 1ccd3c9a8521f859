-- licensor.gateway.runner -- `licensor gateway`: renders an nginx
-- configuration into a private prefix directory and runs nginx in the
-- foreground with licensor answering on --listen.  No system service: the
-- prefix holds the configuration, logs and temp files (started as root,
-- a root-owned one; see root_owned_prefix).
-- No shell ever sees a path: commands run from argument vectors, and
-- nginx runs in a process group of its own that never outlives this
-- command: SIGTERM or SIGQUIT drains it (nginx's graceful quit, bounded by
-- --drain-seconds), SIGINT or SIGHUP stops it, master and workers, at once.
-- A prefix that another running gateway holds, and a --listen address
-- that something already listens on, are refused before anything is
-- written (see in_use).
--
-- Started as root, the workers run as `nobody` (constants.GATEWAY_USER)
-- or the `user` option's user (`licensor gateway --user NAME`): that user
-- must be able to write an SQLite database's directory and files (SQLite
-- keeps DB-wal and DB-shm beside DB) and to read the licensor modules and
-- the signing key; the runner checks before nginx starts and refuses with
-- the command that fixes it.  The admin token is read here, before nginx
-- starts (a token file that cannot be read is a refusal, never admin
-- routes silently off), and reaches the workers as its SHA-256 digest only.
local core = require "licensor.core"
local constants = require "licensor.constants"
local files = require "licensor.files"
local links = require "licensor.links"
local download = require "licensor.gateway.download"

local _M = {}

local format, concat, type, tostring = string.format, table.concat, type, tostring

local MODULE_DIRS = { "/usr/lib/nginx/modules", "/usr/share/nginx/modules" }

-- Default: requests in progress at once from one client address.
_M.CONN_PER_IP = 256

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- An absolute path, written one way: "//", "/./" and "dir/.." folded, no
-- trailing "/" (a prefix spelled "/srv//gw" or "/srv/./gw" is the same
-- prefix as "/srv/gw" for the check that refuses a prefix in use).
-- Symbolic links are not followed (as root a prefix may not be one).
local function absolute(path)
  if path:sub(1, 1) ~= "/" then path = (os.getenv("PWD") or ".") .. "/" .. path end
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      parts[#parts] = nil
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  return "/" .. concat(parts, "/")
end

-- A path as an nginx quoted string: whatever it holds (spaces, quotes,
-- semicolons, braces) stays one argument of one directive.
local function nginx_string(text)
  return '"' .. text:gsub('[\\"]', "\\%0") .. '"'
end

-- Paths go into nginx's configuration and Lua's search paths: control
-- characters have no business there, and ";" or "?" would change a path
-- list's meaning.
local function usable_path(path)
  return not path:find("[%z\1-\31\127]")
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- The directory holding licensor/init.lua, for lua_package_path.
local function lua_root()
  local init = package.searchpath("licensor", package.path)
  if not init then return nil end
  return dirname(dirname(absolute(init)))
end

-- The directory holding a LuaJIT build of licensor/core.so: nginx runs
-- LuaJIT whatever VM runs this command.
local function luajit_cpath_root()
  local env = os.getenv("LICENSOR_GATEWAY_CPATH")
  if env and exists(env .. "/licensor/core.so") then return env end
  for template in package.cpath:gmatch("[^;]+") do
    local dir = template:match("^(.*)/%?%.so$")
    if dir then
      for _, candidate in ipairs({ dir:gsub("lua5%.4$", "luajit"), (dir:gsub("/5%.4$", "/5.1")), dir }) do
        if type(candidate) == "string" and exists(candidate .. "/licensor/core.so") and
           (candidate:find("luajit") or candidate:find("/5%.1$")) then
          return absolute(candidate)
        end
      end
    end
  end
  return nil
end

local function module_lines()
  for _, dir in ipairs(MODULE_DIRS) do
    if exists(dir .. "/ngx_http_lua_module.so") then
      local lines = {}
      if exists(dir .. "/ndk_http_module.so") then
        lines[#lines + 1] = "load_module " .. dir .. "/ndk_http_module.so;"
      end
      lines[#lines + 1] = "load_module " .. dir .. "/ngx_http_lua_module.so;"
      return concat(lines, "\n")
    end
  end
  return "# lua-nginx-module is built in"
end

local TEMPLATE = [[
# Rendered by `licensor gateway`; edit the options, not this file.
%s
%s
%s
%s
worker_processes %d;
pid %s;
error_log %s warn;
# Room for many idle or slow clients: one address holding thousands of
# half-sent requests must not exhaust the connections of everyone else.
worker_rlimit_nofile 20000;
events { worker_connections 8192; }

http {
  access_log off;
  # Slow clients: a header or body that does not arrive in time ends the
  # connection with a reset (no lingering), so slow connections free up.
  client_header_timeout 10s;
  client_body_timeout 10s;
  send_timeout 10s;
  keepalive_timeout 30s;
  reset_timedout_connection on;
  # At most %d requests in progress per client address (429 beyond).
  limit_conn_zone $binary_remote_addr zone=licensor_conn:10m;
  limit_conn_status 429;
  client_body_temp_path %s;
  proxy_temp_path %s;
  fastcgi_temp_path %s;
  uwsgi_temp_path %s;
  scgi_temp_path %s;
  server_tokens off;

  lua_package_path %s;
  lua_package_cpath %s;
%s
  lua_shared_dict licensor_limits 16m;
  lua_shared_dict licensor_metrics 1m;
  init_worker_by_lua_block {
    require("licensor.gateway").init_worker(%s)
  }

  server {
    listen %s reuseport;
    limit_conn licensor_conn %d;
    client_max_body_size %d;
    client_body_buffer_size %d;
    large_client_header_buffers 4 8k;
    default_type application/json;
    add_header Cache-Control no-store always;
%s
%s
    location / {
      content_by_lua_block { require("licensor.gateway").handle() }
    }
    location ^~ /.licensor-error/ {
      internal;
      content_by_lua_block { require("licensor.gateway").error_page() }
    }
  }
}
]]

-- nginx's own refusals (oversized body, bad request line, HTTP/2.0,
-- Transfer-Encoding: gzip...) answered as JSON by the gateway's error
-- page: one line for each status of constants.GATEWAY_ERRORS.
local function error_pages()
  local statuses = {}
  for status in pairs(constants.GATEWAY_ERRORS) do statuses[#statuses + 1] = status end
  table.sort(statuses)
  local lines = {}
  for _, status in ipairs(statuses) do
    lines[#lines + 1] = format("    error_page %d /.licensor-error/%d;", status, status)
  end
  return concat(lines, "\n")
end

-- Does `user` pass `test FLAG path`?  Asked of the kernel, as that user
-- (a child process), so groups and ACLs count as they will for nginx.
-- No preload reaches `test` (a sanitizer's would check it for leaks).
local function user_may(user, flag, path)
  local pid = core.process.spawn({ "env", "-u", "LD_PRELOAD", "test", flag, path }, nil, user)
  return pid ~= nil and core.process.wait(pid, 10000) == 0
end

-- The paths a worker running as `user` must reach, each with what it needs.
local function worker_needs(db, postgresql, lua_dir, cpath, signing_key_file, artifacts)
  local needs = { { "-r", lua_dir .. "/licensor/init.lua", "read the licensor modules in " .. lua_dir },
                  { "-r", cpath .. "/licensor/core.so", "read " .. cpath .. "/licensor/core.so" } }
  if artifacts then
    -- nginx's workers open the files: they must enter the directory and
    -- read it (its files: licensor artifacts check, run as that user)
    needs[#needs + 1] = { "-x", artifacts, "enter the artifact directory " .. artifacts }
    needs[#needs + 1] = { "-r", artifacts, "read the artifact directory " .. artifacts }
  end
  if signing_key_file then
    needs[#needs + 1] = { "-r", signing_key_file, "read the signing key " .. signing_key_file }
  end
  if not postgresql then
    local dir = dirname(db)
    needs[#needs + 1] = { "-w", dir, "write the database's directory " .. dir .. " (SQLite keeps " ..
      db .. "-wal and -shm there)" }
    for _, path in ipairs({ db, db .. "-wal", db .. "-shm" }) do
      if exists(path) then needs[#needs + 1] = { "-w", path, "write " .. path } end
    end
  end
  return needs
end

-- nginx's `user` line.  Started as root, the workers run as opts.user or
-- nobody, and that user must reach what a worker opens; otherwise the
-- workers keep this process's user (opts.user must then be that user).
local function user_line(opts, db, postgresql, lua_dir, cpath, signing_key_file, artifacts)
  local me = core.process.user()
  if not me or me.uid ~= 0 then
    local name = me and me.name or "this user"
    if opts.user ~= nil and opts.user ~= name then
      return nil, format("gateway: --user %s needs a gateway started as root (this one runs as %s)",
        tostring(opts.user), name), "invalid_request"
    end
    return "# not started as root: the workers run as " .. name
  end
  local name = opts.user or constants.GATEWAY_USER
  if type(name) ~= "string" or not name:match("^[%w_][%w_.-]*%$?$") then
    return nil, "gateway: --user: a user name expected", "invalid_request"
  end
  local user, why = core.process.user(name)
  if not user then return nil, "gateway: --user: " .. why, "invalid_request" end
  if not user.group then
    return nil, format("gateway: --user %s: the user's group %d has no name", name, user.gid),
      "invalid_request"
  end
  if user.uid ~= 0 then
    for _, need in ipairs(worker_needs(db, postgresql, lua_dir, cpath, signing_key_file, artifacts)) do
      if not user_may(name, need[1], need[2]) then
        return nil, format("gateway: started as root, the workers run as %s, who cannot %s; give it to " ..
          "them (chown %s:%s PATH) or choose their user with --user NAME", name, need[3], name, user.group),
          "permission_denied"
      end
    end
  end
  return format("user %s %s;", name, user.group)
end

-- The shortest admin token accepted.
_M.MIN_TOKEN_LENGTH = 16

-- The admin token's SHA-256 digest (hex), read from its file here: a file
-- that was given and cannot be read, or holds no token, is a refusal.
local function admin_digest(path)
  if path == nil then return nil end
  local text, why, code = files.read(path, "gateway: admin token file", 4096)
  if not text then return nil, why, code end
  local token = text:match("^%s*(.-)%s*$")
  if token == "" then
    return nil, "gateway: admin token file " .. path .. ": holds no token", "invalid_request"
  end
  -- One token on one line: a second line would become part of a token
  -- that no client can send, and the admin routes would open to no one.
  if token:find("[\r\n]") then
    return nil, "gateway: admin token file " .. path .. ": holds more than one line (one token expected)",
      "invalid_request"
  end
  if #token < _M.MIN_TOKEN_LENGTH then
    return nil, format("gateway: admin token file %s: the token is shorter than %d characters", path,
      _M.MIN_TOKEN_LENGTH), "invalid_request"
  end
  return core.sha256(token, true)
end

-- The clock's environment of this process, name -> value: TZ, and
-- libfaketime's settings when it runs under faketime (FAKETIME,
-- FAKETIME_*, and LD_PRELOAD cut to its libfaketime entries).  nginx
-- clears its workers' environment, and libfaketime reads FAKETIME again
-- every few seconds: without these a worker would fall back to the real
-- clock and answer another day than the process that started it.  Read
-- from /proc/self/environ (Lua cannot list the environment), else the
-- usual names.
function _M.clock_environment()
  local env = {}
  local environ = files.read("/proc/self/environ", "environment")
  if environ then
    for name, value in environ:gmatch("([^%z=]+)=([^%z]*)") do env[name] = value end
  else
    for _, name in ipairs({ "TZ", "LD_PRELOAD", "FAKETIME", "FAKETIME_SHARED" }) do
      env[name] = os.getenv(name)
    end
  end
  local clock = {}
  for name, value in pairs(env) do
    if name == "TZ" or name == "FAKETIME" or name:find("^FAKETIME_") then clock[name] = value end
  end
  local preload = {}
  for entry in (env.LD_PRELOAD or ""):gmatch("[^%s:]+") do
    if entry:find("faketime", 1, true) then preload[#preload + 1] = entry end
  end
  if #preload > 0 then clock.LD_PRELOAD = concat(preload, " ") end
  return clock
end

-- nginx's `env` lines keeping the clock's environment in the workers.
local function env_lines()
  local names = {}
  for name in pairs(_M.clock_environment()) do
    if name:match("^[%w_]+$") then names[#names + 1] = name end
  end
  if #names == 0 then return "# no clock settings to keep (TZ, faketime)" end
  table.sort(names)
  for i, name in ipairs(names) do names[i] = "env " .. name .. ";" end
  return concat(names, "\n")
end

-- Where a gateway started as root keeps its default prefix: one
-- directory per database (a short hash of its path or URL), created 0755
-- by root, out of the workers' reach (the database's directory is theirs).
_M.ROOT_PREFIX_DIR = "/run/licensor"

local function default_prefix(db, postgresql, as_root)
  if as_root then return _M.ROOT_PREFIX_DIR .. "/" .. core.sha256(db, true):sub(1, 16) end
  return postgresql and "licensor.gateway" or (db .. ".gateway")
end

-- Started as root, nginx's master (root) writes the prefix's conf/ and
-- logs/: no one else may write them, nor the prefix, nor any directory
-- above it (whoever can write a parent can rename the prefix away and put
-- their own in its place), except a sticky directory such as /tmp, where
-- only root can rename root's entries.  Each must be a real directory
-- (not a symlink) owned by root, not writable by group or others.
local function has_bit(mode, bit)
  return math.floor(mode / bit) % 2 == 1
end

local function root_owned_prefix(prefix, existing_only)
  local checks = {}
  for _, sub in ipairs({ "/conf", "/logs", "/tmp" }) do checks[#checks + 1] = { prefix .. sub, false } end
  local path = prefix
  while path ~= "" do
    checks[#checks + 1] = { path, path ~= prefix }
    path = path:match("^(.*)/[^/]*$") or ""
  end
  checks[#checks + 1] = { "/", true }
  for _, check in ipairs(checks) do
    local dir, sticky_ok = check[1], check[2]
    local st, why = files.lstat(dir)
    if not st and existing_only then goto next end
    if not st then return nil, "gateway: prefix " .. why end
    local writable = (has_bit(st.mode, 16) or has_bit(st.mode, 2)) and   -- 0020, 0002
      not (sticky_ok and has_bit(st.mode, 512))                             -- 01000: sticky
    if st.kind ~= "directory" or st.uid ~= 0 or writable then
      return nil, format("gateway: started as root, nginx writes its prefix as root: %s must be a " ..
        "directory owned by root that no one else can write (found %s, owner %d, mode %04o); choose " ..
        "another --prefix or fix it (chown root: and chmod go-w)", dir, st.kind, st.uid, st.mode)
    end
    ::next::
  end
  return true
end

-- Creates the prefix and its conf/, logs/ and tmp/ (0755); as root,
-- checks who can write what exists first (nothing is created in a
-- directory someone else controls) and everything afterwards.
local function make_prefix(prefix, as_root)
  if as_root then
    local ok, why = root_owned_prefix(prefix, true)
    if not ok then return nil, why, "permission_denied" end
  end
  local dirs = { "", "/conf", "/logs", "/tmp" }
  if as_root and prefix:sub(1, #_M.ROOT_PREFIX_DIR + 1) == _M.ROOT_PREFIX_DIR .. "/" then
    table.insert(dirs, 1, false)
  end
  for _, dir in ipairs(dirs) do
    local path = dir and prefix .. dir or _M.ROOT_PREFIX_DIR
    if core.process.run({ "mkdir", "-p", "-m", "0755", "--", path }) ~= 0 then
      return nil, "gateway: cannot create " .. path, "io_error"
    end
  end
  if as_root then
    local ok, why = root_owned_prefix(prefix)
    if not ok then return nil, why, "permission_denied" end
  end
  return true
end

local function is_postgresql(db)
  return require("licensor").is_postgresql(db)
end

-- The whole-number options: flag, least, greatest, default.  The one
-- table of them: render checks against it and `licensor gateway`'s flags
-- (licensor.cli) take their bounds and defaults from it.
_M.LIMITS = {
  workers = { flag = "--workers", min = 1, max = 64, default = 2 },
  -- Threads per worker for PostgreSQL calls: each holds one connection.
  threads = { flag = "--threads", min = 1, max = 512, default = 8 },
  conn_per_ip = { flag = "--conn-per-ip", min = 1, max = 100000, default = _M.CONN_PER_IP },
  -- PostgreSQL: every store call's deadline, and /healthz's (never above
  -- it); the defaults are the workers' own (init_worker without them).
  db_timeout_ms = { flag = "--db-timeout-ms", min = 100, max = 600000, default = constants.DB_TIMEOUT_MS },
  health_timeout_ms = { flag = "--health-timeout-ms", min = 100, max = 60000,
                        default = constants.HEALTH_TIMEOUT_MS },
  -- Calls per worker that may wait for a database thread; beyond them
  -- the gateway answers 503 busy (see pool_lines).
  queue = { flag = "--queue", min = 1, max = 65536, default = 256 },
  -- SIGTERM: how long requests in flight may take to finish.
  drain_seconds = { flag = "--drain-seconds", min = 0, max = 300, default = 10 },
}
_M.THREADS = _M.LIMITS.threads.default

-- /healthz's write probe runs in a pool of its own (one thread, so one
-- connection per worker) and never queues behind the store calls.  The
-- pools' names are licensor.gateway.remote's ("licensor", HEALTH_POOL),
-- which loads only inside nginx; their sizes are pool_lines'.

-- After the drain's bound, the time nginx still gets to end by itself
-- (a worker finishing a store call, at most its deadline away, before it
-- exits) before the command stops the group hard.
_M.DRAIN_MARGIN_SECONDS = 5

-- opts[name] checked against _M.LIMITS[name]; its default when nil.
local function whole_option(opts, name)
  local limit, value = _M.LIMITS[name], opts[name]
  if value == nil then return limit.default end
  if type(value) ~= "number" or value % 1 ~= 0 or value < limit.min or value > limit.max then
    return nil, format("gateway: %s must be a whole number from %d to %d", limit.flag, limit.min, limit.max),
      "invalid_request"
  end
  return value
end

-- The checked whole-number options, name -> value, or nil, message, code.
-- /healthz's deadline defaults to the smaller of its own default and the
-- store calls' deadline, and may not be above that one.
local function whole_options(opts)
  local values = {}
  for _, name in ipairs({ "workers", "threads", "conn_per_ip", "db_timeout_ms", "health_timeout_ms", "queue",
                          "drain_seconds" }) do
    local value, why, code = whole_option(opts, name)
    if not value then return nil, why, code end
    values[name] = value
  end
  if opts.health_timeout_ms == nil then
    values.health_timeout_ms = math.min(values.health_timeout_ms, values.db_timeout_ms)
  elseif values.health_timeout_ms > values.db_timeout_ms then
    return nil, format("gateway: --health-timeout-ms %d is above --db-timeout-ms %d (the probe's deadline " ..
      "may not be longer than the calls')", values.health_timeout_ms, values.db_timeout_ms), "invalid_request"
  end
  return values
end

-- The pid a prefix's nginx.pid names when that process is a live nginx
-- master of this prefix, else nil.  A pid file left by a gateway that died
-- (SIGKILL, a crash) is no refusal: its pid is gone, a zombie, a process
-- that is not nginx (/proc's name), or, reused, the master of another
-- prefix (a master's command line reads "nginx: master process nginx -p
-- PREFIX ..."; one without -p is taken to be this prefix's).
local function live_nginx(prefix)
  local text = files.read(prefix .. "/nginx.pid", "pid file", 64)
  local pid = text and tonumber(text:match("^%s*(%d+)%s*$"))
  if not pid then return nil end
  local stat = files.read("/proc/" .. pid .. "/stat", "process", 4096)
  local name, state = (stat or ""):match("^%d+ %((.*)%) (%a)")
  if not name or state == "Z" then return nil end
  local args = (files.read("/proc/" .. pid .. "/cmdline", "process", 65536) or ""):gsub("%z", " ") .. " "
  if name ~= "nginx" or not args:find("^nginx: master process ") then return nil end
  if args:find(" -p ", 1, true) and not args:find(" -p " .. prefix .. " ", 1, true) and
     not args:find(" -p " .. prefix .. "/ ", 1, true) then
    return nil
  end
  return pid
end

-- listen's host and port as a socket binds them ("8080" and "*:8080" are
-- every IPv4 address, "[::1]:8080" is IPv6).
local function listen_address(listen)
  local host, port = listen:match("^%[(.*)%]:(%d+)$")
  if not host then host, port = listen:match("^(.*):(%d+)$") end
  if not host then host, port = "0.0.0.0", listen:match("^(%d+)$") end
  if host == "*" then host = "0.0.0.0" end
  return host, tonumber(port)
end

-- Whether something listens on listen already: a bind without
-- SO_REUSEPORT fails when any socket holds the address (nginx's, which
-- has reuseport, included); a second gateway with reuseport would
-- otherwise share the port silently, each answering part of the clients.
-- Other bind failures (a privileged port, an address not of this host)
-- are nginx's to report.  Without LuaSocket nothing is checked.
local function address_taken(listen)
  local has_socket, socket = pcall(require, "socket")
  local host, port = listen_address(listen)
  if not has_socket or not port then return false end
  local server, why = socket.bind(host, port)
  if server then
    server:close()
    return false
  end
  return tostring(why):find("in use", 1, true) ~= nil
end

-- Refuses a prefix another running gateway holds (its nginx.pid, its
-- configuration and logs would be shared, and stopping one would delete
-- the other's pid file) and a listen address already in use.
-- Check-then-start: a gateway started between this check and nginx's
-- bind (well under a second) is not seen; nginx's own refusal to take a
-- pid file or an address covers only part of that window, so two
-- gateways started at the same instant on one prefix may still collide.
local function in_use(prefix, listen)
  local pid = live_nginx(prefix)
  if pid then
    return format("gateway: prefix %s is in use by the gateway of nginx pid %d (stop it, or pass " ..
      "--prefix DIR)", prefix, pid), "prefix_in_use"
  end
  if address_taken(listen) then return "gateway: " .. listen .. " is already in use", "address_in_use" end
  return nil
end

-- The replica for reads (--read-db): a PostgreSQL connection string, and
-- only beside a PostgreSQL --db; nil when none.
local function read_db_option(read_db, postgresql)
  if read_db == nil then return nil end
  local display = require("licensor.store").display_name
  if type(read_db) ~= "string" or read_db == "" then
    return nil, "gateway: --read-db takes a PostgreSQL connection string", "invalid_request"
  end
  if not is_postgresql(read_db) then
    return nil, "gateway: --read-db " .. display(read_db) .. " is not a PostgreSQL connection string " ..
      "(it names a hot standby of the PostgreSQL --db)", "invalid_request"
  end
  if not postgresql then
    return nil, "gateway: --read-db needs a PostgreSQL --db (an SQLite store has no standby to read from)",
      "invalid_request"
  end
  if not usable_path(read_db) then
    return nil, "gateway: --read-db may not hold control characters", "invalid_request"
  end
  return read_db
end

-- nginx's thread pools (main context), the drain's bound and the kept
-- thread VMs (http context).  Only PostgreSQL calls run in threads
-- (SQLite's are local and short: the worker makes them itself).
--
-- lua-nginx-module 0.10.23 (Debian 12's) takes a Lua VM from a per-worker
-- pool for each ngx.run_worker_thread call before it queues the call,
-- keeps every VM it made until the worker exits, and answers "no available
-- Lua vm" at once, cleanly, when lua_worker_thread_vm_pool_size VMs are
-- taken: 503 busy (licensor.gateway.remote).  But a call that nginx's own
-- queue refuses (max_queue reached) takes a path of that version that
-- frees a wrong pointer: the worker aborts, with every request it held
-- (fixed upstream in 0.10.32).  So the VM pool is the bound, and no queue
-- may ever be the one that refuses: each pool's max_queue is the VM
-- pool's size, which no queue can exceed (every queued call holds a VM).
-- The worker bounds its calls first (licensor.gateway.remote: --threads
-- in flight, --queue more waiting as coroutines, 503 busy beyond), so it
-- makes about threads + 1 VMs; the VM pool, --threads + --queue + 1 for
-- /healthz's probe, is the guard behind that bound, and a call past it is
-- 503 busy too.  Connections are bounded apart from VMs: one per thread
-- (the store's per-thread ones).
local function pool_lines(postgresql, values)
  local drain = values.drain_seconds > 0 and
    format("worker_shutdown_timeout %ds;   # --drain-seconds: SIGTERM's bound on requests in flight",
      values.drain_seconds) or "# --drain-seconds 0: SIGTERM stops nginx at once"
  if not postgresql then
    return "# SQLite: no thread pool\n" .. drain, "  # SQLite: no worker-thread VMs"
  end
  local vms = _M.thread_vms(values.threads, values.queue)
  local main = concat({
    "# PostgreSQL calls run in these pools, never in a worker's event loop; the VM pool",
    "# (lua_worker_thread_vm_pool_size) bounds the calls in flight, never max_queue.",
    format("thread_pool licensor threads=%d max_queue=%d;", values.threads, vms),
    format("thread_pool licensor_health threads=1 max_queue=%d;", vms), drain }, "\n")
  return main, format("  lua_worker_thread_vm_pool_size %d;   # --threads + --queue + 1 (/healthz)", vms)
end

-- The Lua VMs of one worker's thread calls: the calls it may have in
-- flight (threads running, queue waiting, /healthz's probe).
function _M.thread_vms(threads, queue)
  return threads + queue + 1
end

-- licensor's own connection-string parameter (csrc/pg.c) checked before
-- nginx starts: a typo would otherwise be every request's 503.  The store
-- parses it for real (quoted keyword values included); this is the
-- plain case, said early.
-- --artifacts DIR, --link-secret FILE and --public-url URL (doc/portal.md):
-- {artifacts=, keys=, public_url=} with the link keys derived from the
-- secret (licensor.links), or nil, why, code.  Downloads and the portal
-- sign what they hand out, so --artifacts needs --link-secret.
local function link_options(opts)
  local out = { public_url = opts.public_url }
  if opts.artifacts ~= nil then
    out.artifacts = absolute(opts.artifacts)
    local st = files.stat(out.artifacts)
    if not st or st.kind ~= "directory" then
      return nil, "gateway: --artifacts " .. opts.artifacts .. " is not a directory", "invalid_request"
    end
    if not usable_path(out.artifacts) or out.artifacts:find('["\\;{}$]') then
      return nil, "gateway: --artifacts may not hold control characters, quotes, ';', '{', '}' or '$'",
        "invalid_request"
    end
  end
  if opts.link_secret_file ~= nil then
    local secret, why, code = links.read(absolute(opts.link_secret_file))
    if not secret then return nil, "gateway: " .. why, code end
    out.keys = links.keys(secret)
  elseif out.artifacts then
    return nil, "gateway: --artifacts needs --link-secret FILE (download links are signed)", "invalid_request"
  end
  if out.public_url ~= nil and not out.public_url:match("^https?://[%w%.%-%[%]:]+$") then
    return nil, "gateway: --public-url is http(s)://HOST[:PORT], without a path", "invalid_request"
  end
  return out
end

local function bad_own_parameter(url, flag)
  local seen = 0
  for value in (" " .. url):gmatch("[%s?&]prepared_statements%s*=%s*([^%s&]*)") do
    seen = seen + 1
    if (value ~= "on" and value ~= "off") or seen > 1 then
      return "gateway: " .. flag .. ": prepared_statements is on or off, once (not '" .. value .. "')"
    end
  end
  return nil
end

-- render{db=, listen=, workers=, admin_token_file=, today=, prefix=, conn_per_ip=,
-- rate_per_ip=, rate_per_key=, synchronous=, error_log=, threads=, stale_ms=, user=,
-- db_timeout_ms=, health_timeout_ms=, read_db=, queue=, drain_seconds=}
-- -> prefix, conf path.  db is an SQLite path or a PostgreSQL URL; with a
-- URL the prefix defaults to ./licensor.gateway.  Refuses (prefix_in_use,
-- address_in_use) before writing anything when another gateway holds the
-- prefix or something listens on the address.
function _M.render(opts)
  if type(opts.db) ~= "string" then return nil, "gateway: --db is required", "invalid_request" end
  local postgresql = is_postgresql(opts.db)
  local db = postgresql and opts.db or absolute(opts.db)
  local me = core.process.user()
  local as_root = me ~= nil and me.uid == 0
  local prefix = absolute(opts.prefix or default_prefix(db, postgresql, as_root))
  local values, why, code = whole_options(opts)
  if not values then return nil, why, code end
  local read_db
  read_db, why, code = read_db_option(opts.read_db, postgresql)
  if why then return nil, why, code end
  why = postgresql and (bad_own_parameter(db, "--db") or
                         (read_db and bad_own_parameter(read_db, "--read-db")))
  if why then return nil, why, "invalid_request" end
  local lua_dir = lua_root()
  local cpath = opts.cpath or luajit_cpath_root()
  if not lua_dir then return nil, "gateway: cannot find the licensor Lua modules", "not_found" end
  if not cpath then
    return nil, "gateway: no LuaJIT build of licensor.core (make LUA=luajit, or set LICENSOR_GATEWAY_CPATH)",
      "not_found"
  end
  if not usable_path(db) or not usable_path(prefix) then
    return nil, "gateway: --db and --prefix may not hold control characters", "invalid_request"
  end
  if lua_dir:find("[;?]") or cpath:find("[;?]") then
    return nil, "gateway: the licensor modules' directory may not hold ';' or '?'", "invalid_request"
  end
  local listen = opts.listen or "127.0.0.1:8080"
  if not listen:match("^[%w%.%-%[%]:]+$") then
    return nil, "gateway: bad --listen " .. listen, "invalid_request"
  end
  why, code = in_use(prefix, listen)
  if why then return nil, why, code end
  local token_file = opts.admin_token_file and absolute(opts.admin_token_file)
  local signing_key_file = opts.signing_key_file and absolute(opts.signing_key_file)
  local digest
  digest, why, code = admin_digest(token_file)
  if token_file and not digest then return nil, why, code end
  local link_opts
  link_opts, why, code = link_options(opts)
  if not link_opts then return nil, why, code end
  local user
  user, why, code = user_line(opts, db, postgresql, lua_dir, cpath, signing_key_file, link_opts.artifacts)
  if not user then return nil, why, code end
  local worker_opts = { db = db, today = opts.today, synchronous = opts.synchronous,
    artifacts = link_opts.artifacts, link_keys = link_opts.keys, public_url = link_opts.public_url,
    admin_token_sha256 = digest, signing_key_file = signing_key_file,
    expose_timing = opts.expose_timing, stale_ms = opts.stale_ms,
    rate_per_ip = opts.rate_per_ip, rate_per_key = opts.rate_per_key,
    db_timeout_ms = values.db_timeout_ms, health_timeout_ms = values.health_timeout_ms, read_db = read_db,
    threads = postgresql and values.threads or nil, queue = postgresql and values.queue or nil }
  local chunk
  chunk, why = core.write_data(worker_opts)
  if not chunk then return nil, "gateway: " .. why, "invalid_request" end
  local made, mwhy, mcode = make_prefix(prefix, as_root)
  if not made then return nil, mwhy, mcode end
  local conf = prefix .. "/conf/nginx.conf"
  local q = nginx_string
  local pools, vms = pool_lines(postgresql, values)
  local text = format(TEMPLATE, module_lines(), user, pools, env_lines(), values.workers,
    q(prefix .. "/nginx.pid"), q(opts.error_log or (prefix .. "/logs/error.log")), values.conn_per_ip,
    q(prefix .. "/tmp/body"), q(prefix .. "/tmp/proxy"),
    q(prefix .. "/tmp/fastcgi"), q(prefix .. "/tmp/uwsgi"), q(prefix .. "/tmp/scgi"),
    q(lua_dir .. "/?.lua;" .. lua_dir .. "/?/init.lua;;"), q(cpath .. "/?.so;;"), vms,
    (chunk:gsub("^return ", "")), listen, values.conn_per_ip, constants.MAX_BODY_BYTES,
    constants.MAX_BODY_BYTES, error_pages(), download.nginx_lines(link_opts))
  -- The configuration holds the admin token's digest: private to root.
  local ok, msg, wcode = files.write(conf, text, { replace = true, what = "gateway: configuration" })
  if not ok then return nil, msg, wcode end
  return prefix, conf
end

local function nginx_binary()
  for _, path in ipairs({ "/usr/sbin/nginx", "/usr/local/openresty/nginx/sbin/nginx", "/usr/bin/nginx" }) do
    if exists(path) then return path end
  end
  return "nginx"
end
_M.nginx_binary = nginx_binary

-- The Lua search-path variables nginx must not inherit from this command:
-- `;;` in lua_package_path and lua_package_cpath would splice them in (a
-- Lua 5.4 cjson.so in a LuaJIT worker fails init_worker, and every answer
-- is nginx's HTML 500), and LUA_INIT would run code in every worker.
_M.UNSET_ENV = { "LUA_PATH", "LUA_CPATH", "LUA_INIT" }
for _, name in ipairs({ "LUA_PATH", "LUA_CPATH", "LUA_INIT" }) do
  for _, version in ipairs({ "5_1", "5_2", "5_3", "5_4" }) do
    _M.UNSET_ENV[#_M.UNSET_ENV + 1] = name .. "_" .. version
  end
end

-- The command that runs nginx on a rendered prefix, in the foreground, as
-- an argument vector (no shell), through `env` (which execs nginx in the
-- same process) without the Lua variables of _M.UNSET_ENV.
function _M.command(prefix, conf)
  local argv = { "env" }
  for _, name in ipairs(_M.UNSET_ENV) do
    argv[#argv + 1] = "-u"
    argv[#argv + 1] = name
  end
  for _, word in ipairs({ nginx_binary(), "-p", prefix, "-c", conf, "-g", "daemon off;" }) do
    argv[#argv + 1] = word
  end
  return argv
end

-- run(opts) renders and runs nginx in the foreground until it stops by
-- itself or this process is asked to stop (the run then counts as done).
-- SIGTERM or SIGQUIT drains: nginx's graceful quit (SIGQUIT: it closes its
-- listeners and finishes the requests in flight, each cut at
-- worker_shutdown_timeout, --drain-seconds), waited for up to
-- drain-seconds + DRAIN_MARGIN_SECONDS, then nginx's group is stopped hard.
-- SIGINT (Ctrl-C: someone at the terminal wants it gone now) and SIGHUP
-- (the terminal went away) stop it hard at once, as does a second stop
-- signal during a drain.  Lines are flushed as they are said: standard
-- output may be a pipe to a log that must show them when they happen.
function _M.run(opts)
  local prefix, conf, code = _M.render(opts)
  if not prefix then return nil, conf, code end
  local out = opts.out or print
  local function say(line)
    out(line)
    io.stdout:flush()
  end
  local display_name = require("licensor.store").display_name
  say(format("licensor gateway: http://%s  (store %s, nginx prefix %s%s%s)", opts.listen or "127.0.0.1:8080",
    display_name(opts.db), prefix, opts.read_db and (", reads from " .. display_name(opts.read_db)) or "",
    opts.today and (", day pinned to " .. opts.today) or ""))
  local drain = opts.drain_seconds or _M.LIMITS.drain_seconds.default
  local status, stop_signal, drained = core.process.run(_M.command(prefix, conf), {
    drain_ms = drain > 0 and (drain + _M.DRAIN_MARGIN_SECONDS) * 1000 or 0, drain_signal = "SIGQUIT",
    on_drain = function(signal) say("licensor gateway: draining (" .. signal .. ")...") end })
  if status == nil then return nil, "gateway: " .. stop_signal, "nginx_failed" end
  if stop_signal then
    local late = drain > 0 and (stop_signal == "SIGTERM" or stop_signal == "SIGQUIT") and not drained
    say("licensor gateway: stopped (" .. stop_signal .. (late and
      format("; the drain did not end by itself within %d s: nginx was stopped hard",
        drain + _M.DRAIN_MARGIN_SECONDS) or "") .. ")")
    return true
  end
  if status ~= 0 then
    return nil, "nginx exited with status " .. status .. " (see " .. prefix .. "/logs)", "nginx_failed"
  end
  return true
end

return _M
