-- licensor.gateway.runner -- `licensor gateway`: renders an nginx
-- configuration into a private prefix directory and runs nginx in the
-- foreground with licensor answering on --listen.  No system service: the
-- prefix holds the configuration, logs and temp files (started as root,
-- a root-owned one; see root_owned_prefix).
-- No shell ever sees a path: commands run from argument vectors, and
-- nginx runs in a process group of its own that is stopped, master and
-- workers, when this command gets SIGTERM, SIGINT or SIGHUP.
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

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local pwd = os.getenv("PWD") or "."
  return pwd .. "/" .. path
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
local function worker_needs(db, postgresql, lua_dir, cpath, signing_key_file)
  local needs = { { "-r", lua_dir .. "/licensor/init.lua", "read the licensor modules in " .. lua_dir },
                  { "-r", cpath .. "/licensor/core.so", "read " .. cpath .. "/licensor/core.so" } }
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
local function user_line(opts, db, postgresql, lua_dir, cpath, signing_key_file)
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
    for _, need in ipairs(worker_needs(db, postgresql, lua_dir, cpath, signing_key_file)) do
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

-- Threads per worker for PostgreSQL calls: each holds one connection.
_M.THREADS = 8

local function is_postgresql(db)
  return require("licensor").is_postgresql(db)
end

-- render{db=, listen=, workers=, admin_token_file=, today=, prefix=, conn_per_ip=,
-- rate_per_ip=, rate_per_key=, synchronous=, error_log=, threads=, stale_ms=, user=}
-- -> prefix, conf path.  db is an SQLite path or a PostgreSQL URL; with a
-- URL the prefix defaults to ./licensor.gateway.
function _M.render(opts)
  if type(opts.db) ~= "string" then return nil, "gateway: --db is required", "invalid_request" end
  local postgresql = is_postgresql(opts.db)
  local db = postgresql and opts.db or absolute(opts.db)
  local me = core.process.user()
  local as_root = me ~= nil and me.uid == 0
  local prefix = absolute(opts.prefix or default_prefix(db, postgresql, as_root))
  local threads = opts.threads or _M.THREADS
  if type(threads) ~= "number" or threads < 1 or threads > 512 or threads % 1 ~= 0 then
    return nil, "gateway: --threads must be a whole number from 1 to 512", "invalid_request"
  end
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
  local conn_per_ip = opts.conn_per_ip or _M.CONN_PER_IP
  if type(conn_per_ip) ~= "number" or conn_per_ip < 1 or conn_per_ip > 100000 or conn_per_ip % 1 ~= 0 then
    return nil, "gateway: --conn-per-ip must be a whole number from 1 to 100000", "invalid_request"
  end
  local workers = opts.workers or 2
  if type(workers) ~= "number" or workers < 1 or workers > 64 then
    return nil, "gateway: --workers must be 1 to 64", "invalid_request"
  end
  local token_file = opts.admin_token_file and absolute(opts.admin_token_file)
  local signing_key_file = opts.signing_key_file and absolute(opts.signing_key_file)
  local digest, why, code = admin_digest(token_file)
  if token_file and not digest then return nil, why, code end
  local user
  user, why, code = user_line(opts, db, postgresql, lua_dir, cpath, signing_key_file)
  if not user then return nil, why, code end
  local worker_opts = { db = db, today = opts.today, synchronous = opts.synchronous,
    admin_token_sha256 = digest, signing_key_file = signing_key_file,
    expose_timing = opts.expose_timing, stale_ms = opts.stale_ms,
    rate_per_ip = opts.rate_per_ip, rate_per_key = opts.rate_per_key }
  local chunk
  chunk, why = core.write_data(worker_opts)
  if not chunk then return nil, "gateway: " .. why, "invalid_request" end
  local made, mwhy, mcode = make_prefix(prefix, as_root)
  if not made then return nil, mwhy, mcode end
  local conf = prefix .. "/conf/nginx.conf"
  local q = nginx_string
  -- PostgreSQL calls run in this pool, never in a worker's event loop.
  local pool = postgresql and format("thread_pool licensor threads=%d max_queue=65536;", threads)
    or "# SQLite: no thread pool"
  local text = format(TEMPLATE, module_lines(), user, pool, env_lines(), workers, q(prefix .. "/nginx.pid"),
    q(opts.error_log or (prefix .. "/logs/error.log")), conn_per_ip,
    q(prefix .. "/tmp/body"), q(prefix .. "/tmp/proxy"),
    q(prefix .. "/tmp/fastcgi"), q(prefix .. "/tmp/uwsgi"), q(prefix .. "/tmp/scgi"),
    q(lua_dir .. "/?.lua;" .. lua_dir .. "/?/init.lua;;"), q(cpath .. "/?.so;;"),
    (chunk:gsub("^return ", "")), listen, conn_per_ip, constants.MAX_BODY_BYTES, constants.MAX_BODY_BYTES,
    error_pages())
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
-- itself or this process gets SIGTERM, SIGINT or SIGHUP (then nginx is
-- stopped, master and workers, and the run counts as done).
function _M.run(opts)
  local prefix, conf, code = _M.render(opts)
  if not prefix then return nil, conf, code end
  local out = opts.out or print
  out(format("licensor gateway: http://%s  (store %s, nginx prefix %s%s)", opts.listen or "127.0.0.1:8080",
    require("licensor.store").display_name(opts.db), prefix,
    opts.today and (", day pinned to " .. opts.today) or ""))
  local status, stop_signal = core.process.run(_M.command(prefix, conf))
  if status == nil then return nil, "gateway: " .. stop_signal, "nginx_failed" end
  if stop_signal then
    out("licensor gateway: stopped (" .. stop_signal .. ")")
    return true
  end
  if status ~= 0 then
    return nil, "nginx exited with status " .. status .. " (see " .. prefix .. "/logs)", "nginx_failed"
  end
  return true
end

return _M
