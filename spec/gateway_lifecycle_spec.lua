-- gateway_lifecycle_spec.lua -- `licensor gateway` (the command, started as
-- a user starts it) coming and going: a prefix that another running
-- gateway holds and a listen address already in use are refused before
-- anything is written; SIGTERM drains (every request in flight gets its
-- whole answer, new connections are refused, the command exits by itself)
-- within its bound, and a request that never finishes cannot hold it past
-- drain-seconds + the margin; the rendered nginx.conf holds the pools, the
-- queue and the deadlines asked; and across a restart under load (three
-- activators, SIGTERM, a new gateway on the same prefix and port) no
-- request is done and left unanswered.  SQLite-backed whatever the
-- round's backend (the command's side is the same on both).  About 14 s.
local licensor = require "licensor"
local cjson = require "cjson.safe"
local runner = require "licensor.gateway.runner"
local gateway = require "support.gateway"
local child_env = require "support.child_env"
local helpers = require "support.files"
local process = require("licensor.core").process
local socket = require "socket"

local ROOT = os.getenv("PWD") or "."
local VM = jit and "luajit" or "lua5.4"
local DAY = "2019-06-01"
local ME = process.user().name

teardown(function() gateway.stop_all() end)

local read = helpers.read

-- A database of its own in dir, with the bundled catalogue and `licenses`
-- licenses issued on DAY: the database and their keys.
local function fresh_db(dir, licenses)
  local path = dir .. "/licenses.db"
  local store = assert(licensor.open(path))
  assert(store:import("lua/licensor/catalogues/smartertools.lua"))
  local keys = {}
  for i = 1, licenses or 0 do
    keys[i] = assert(store:issue{ product = "smartertrack", edition = "enterprise", level = 5, start = DAY,
                                  owner = "acme" }).key
  end
  store:close()
  return path, keys
end

-- Runs `licensor gateway ARGS...` on this suite's VM in a process group of
-- its own, its output in out (a file).  Returns its pid.
local function spawn_command(db, out, args)
  local argv = { "LUA_PATH=lua/?.lua;lua/?/init.lua;;", "LUA_CPATH=build/" .. VM .. "/?.so;;",
                 "LICENSOR_GATEWAY_CPATH=" .. ROOT .. "/build/luajit", VM, "lua/bin/licensor", "--db", db,
                 "gateway", "--today", DAY, "--rate-per-ip", "0", "--rate-per-key", "0", "--user", ME }
  for _, word in ipairs(args) do argv[#argv + 1] = word end
  local pid = assert(process.spawn(child_env.argv(argv), out))
  gateway.register(pid, out)
  return pid
end

-- A running gateway: {pid=, prefix=, port=, out=, client=, master=}; its
-- nginx master is registered too, so nothing outlives a failed spec.
local function start_command(dir, db, extra, port)
  local g = { prefix = dir .. "/gw", port = port or gateway.free_port(), out = dir .. "/gateway.out" }
  local args = { "--prefix", g.prefix, "--listen", "127.0.0.1:" .. g.port }
  for _, word in ipairs(extra or {}) do args[#args + 1] = word end
  g.out = g.out .. (port and ".again" or "")
  g.pid = spawn_command(db, g.out, args)
  g.client = gateway.client(g.port)
  for _ = 1, 200 do
    if g.client:request("GET", "/healthz") then break end
    socket.sleep(0.05)
  end
  g.master = tonumber(read(g.prefix .. "/nginx.pid"))
  assert(g.master, "the gateway did not start: " .. tostring(read(g.out)))
  gateway.register(g.master, g.prefix)
  return g
end

local function stop(g)
  process.stop(g.pid, 0)
  if g.master then process.stop(g.master, 0) end
end

-- Runs a command that must refuse before nginx starts: its exit status
-- and output (a gateway that started anyway is stopped, and fails).
local function refused_command(dir, db, args)
  local out = dir .. "/refused.out"
  local pid = spawn_command(db, out, args)
  local status = process.wait(pid, 15000)
  if not status then process.stop(pid, 0) end
  return status, read(out) or ""
end

-- The accept queue of the socket listening on port: the connections the
-- kernel completed that nginx has not accepted yet (/proc/net/tcp's
-- rx_queue of a LISTEN row).
local function accept_queue(port)
  local waiting = 0
  for line in (read("/proc/net/tcp") or ""):gmatch("[^\n]+") do
    local local_port, state, rx = line:match("^%s*%d+: %x+:(%x+) %x+:%x+ (%x+) %x+:(%x+)")
    if local_port and tonumber(local_port, 16) == port and state == "0A" then
      waiting = waiting + tonumber(rx, 16)
    end
  end
  return waiting
end

-- Waits until nginx has accepted every connection made to port.
local function all_accepted(port)
  for _ = 1, 100 do
    if accept_queue(port) == 0 then return true end
    socket.sleep(0.02)
  end
  return false
end

-- An activation sent but for its body's last byte: nginx has the request
-- and waits for the rest, so it is in flight until `finish`.
local function hold_activation(port, key, server)
  local body = assert(cjson.encode{ key = key, server = server, build = 6911 })
  local conn = socket.tcp()
  conn:settimeout(20)
  assert(conn:connect("127.0.0.1", port))
  assert(conn:send("POST /v1/activate HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" ..
    "Content-Length: " .. #body .. "\r\n\r\n" .. body:sub(1, -2)))
  return { conn = conn, rest = body:sub(-1) }
end

-- Sends the held request's last byte (unless it was sent) and reads the
-- whole answer: status and decoded JSON body, or nil when the connection
-- ended without one.
local function finish(held)
  if held.rest then assert(held.conn:send(held.rest)) end
  local response = held.conn:receive("*a") or ""
  held.conn:close()
  local status = tonumber(response:match("^HTTP/1%.%d (%d+)"))
  return status, cjson.decode(response:match("\r\n\r\n(.*)$") or "")
end

-- Whether a new connection to port is refused now.
local function refuses(port)
  local conn = socket.tcp()
  conn:settimeout(1)
  local ok = conn:connect("127.0.0.1", port)
  conn:close()
  return not ok
end

-- Polls until test() is true, up to seconds: true if it became so.
local function eventually(seconds, test)
  local deadline = socket.gettime() + seconds
  repeat
    if test() then return true end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  return false
end

-- The worker processes of an nginx master.
local function workers(master)
  local pids = {}
  for child in (read("/proc/" .. master .. "/task/" .. master .. "/children") or ""):gmatch("%d+") do
    pids[#pids + 1] = tonumber(child)
  end
  return pids
end

-- `count` clients activating new servers through port for `seconds`
-- (spec/support/activator.lua, each accepted one deactivated again), each
-- with its own list of keys: load.wait(ms), and load.requests() -> every
-- request's {route=, status=, server=, key=}, status 0 for no answer.
local function activators(dir, port, keys, count, seconds)
  local load = { pids = {}, details = {} }
  for i = 1, count do
    local keys_file, detail = dir .. "/keys" .. i, dir .. "/detail" .. i
    helpers.write(keys_file, keys[i] .. "\n")
    load.details[i] = detail
    load.pids[i] = assert(process.spawn(child_env.argv({ "LUA_PATH=lua/?.lua;lua/?/init.lua;spec/?.lua;;",
      "LUA_CPATH=build/" .. VM .. "/?.so;;", VM, "spec/support/activator.lua", "http://127.0.0.1:" .. port,
      keys_file, dir .. "/answers" .. i, tostring(seconds), detail })))
    gateway.register(load.pids[i], "activator")
  end
  function load.wait(ms)
    for _, pid in ipairs(load.pids) do assert(process.wait(pid, ms), "an activator did not end") end
  end
  function load.stop()
    for _, pid in ipairs(load.pids) do process.stop(pid, 0) end
  end
  function load.requests()
    local list = {}
    for _, path in ipairs(load.details) do
      for line in (read(path) or ""):gmatch("[^\n]+") do
        local route, status, key, server = line:match("^(%S+) (%d+) %S+ (%S+) (%S+) ")
        if route then list[#list + 1] = { route = route, status = tonumber(status), key = key, server = server } end
      end
    end
    return list
  end
  return load
end

describe("licensor gateway refuses to start", function()
  local dir, db, first
  setup(function()
    dir = helpers.temp_dir()
    db = fresh_db(dir)
    first = start_command(dir, db)
  end)
  teardown(function()
    stop(first)
    helpers.remove_dir(dir)
  end)

  it("on a prefix another running gateway holds (prefix_in_use, exit 1), and the first keeps serving", function()
    local conf = read(first.prefix .. "/conf/nginx.conf")
    local status, out = refused_command(dir, db, { "--prefix", first.prefix,
                                                   "--listen", "127.0.0.1:" .. gateway.free_port() })
    assert.are.equal(1, status, out)
    assert.matches("licensor: prefix_in_use: gateway: prefix " .. first.prefix .. " is in use by the gateway " ..
      "of nginx pid " .. first.master .. " (stop it, or pass --prefix DIR)", out, 1, true)
    assert.are.equal(tostring(first.master), read(first.prefix .. "/nginx.pid"):match("%d+"))
    assert.are.equal(conf, read(first.prefix .. "/conf/nginx.conf"))
    assert.are.equal(200, (first.client:request("GET", "/healthz")))
  end)

  it("on an address something listens on (address_in_use, exit 1), nginx's reuseport or not", function()
    local status, out = refused_command(dir, db, { "--prefix", dir .. "/second",
                                                   "--listen", "127.0.0.1:" .. first.port })
    assert.are.equal(1, status, out)
    assert.matches("licensor: address_in_use: gateway: 127.0.0.1:" .. first.port .. " is already in use", out,
      1, true)
    assert.is_nil(read(dir .. "/second/conf/nginx.conf"))
    local other = assert(socket.bind("127.0.0.1", 0))
    finally(function() other:close() end)
    local _, port = other:getsockname()
    status, out = refused_command(dir, db, { "--prefix", dir .. "/third", "--listen", "127.0.0.1:" .. port })
    assert.are.equal(1, status, out)
    assert.matches("127.0.0.1:" .. port .. " is already in use", out, 1, true)
    assert.are.equal(200, (first.client:request("GET", "/healthz")))
  end)

  it("never for a stale nginx.pid: a dead process's, a live one's that is not nginx, another prefix's", function()
    local function render(prefix)
      return runner.render{ db = db, prefix = prefix, listen = "127.0.0.1:" .. gateway.free_port(),
                            cpath = ROOT .. "/build/luajit", user = ME }
    end
    local dead = assert(process.spawn(child_env.argv({ "true" })))
    assert.are.equal(0, process.wait(dead, 5000))
    assert.is_true(gateway.run("mkdir -p '" .. dir .. "/stale' '" .. dir .. "/other'"))
    helpers.write(dir .. "/stale/nginx.pid", dead .. "\n")
    assert.are.equal(dir .. "/stale", (render(dir .. "/stale")))
    -- This spec's own process: alive, and not nginx.
    local me = read("/proc/self/stat"):match("^(%d+)")
    helpers.write(dir .. "/other/nginx.pid", me .. "\n")
    assert.are.equal(dir .. "/other", (render(dir .. "/other")))
    -- A pid reused by the nginx master of another prefix (the first
    -- gateway's).
    assert.is_true(gateway.run("mkdir -p '" .. dir .. "/reused'"))
    helpers.write(dir .. "/reused/nginx.pid", first.master .. "\n")
    assert.are.equal(dir .. "/reused", (render(dir .. "/reused")))
  end)
end)

describe("licensor gateway on SIGTERM", function()
  local dir
  before_each(function() dir = helpers.temp_dir() end)
  after_each(function() helpers.remove_dir(dir) end)

  it("drains: requests in flight all get their answers, new connections are refused, and it exits", function()
    local db, keys = fresh_db(dir, 5)
    local g = start_command(dir, db, { "--workers", "1", "--drain-seconds", "5" })
    finally(function() stop(g) end)
    -- Four activations waiting for their bodies' last byte...
    local held = {}
    for i = 1, 4 do held[i] = hold_activation(g.port, keys[i], "held-" .. i) end
    assert.is_true(all_accepted(g.port), "nginx did not accept the held requests")
    socket.sleep(0.2)   -- (their headers read: the event loop is idle)
    -- ...and one in the store, waiting for SQLite's write lock, which
    -- holds the worker's event loop too (/healthz does not answer).
    local other = assert(licensor.open(db, { busy_ms = 0 }))
    finally(function() other:close() end)
    other.db:exec("BEGIN IMMEDIATE")
    local in_store = hold_activation(g.port, keys[5], "in-store")
    assert(in_store.conn:send(in_store.rest))
    in_store.rest = nil
    local probe = socket.tcp()
    probe:settimeout(0.5)
    assert(probe:connect("127.0.0.1", g.port))
    probe:send("GET /healthz HTTP/1.0\r\n\r\n")
    local line, err = probe:receive("*l")
    assert.are.same({ nil, "timeout" }, { line, err })
    probe:close()
    local started = socket.gettime()
    assert.is_true(process.signal(g.pid, "SIGTERM"))
    assert.is_true(eventually(5, function() return (read(g.out) or ""):find("draining (SIGTERM)...", 1, true) end))
    other.db:rollback()
    -- nginx closed its listeners; the held requests are still in flight.
    assert.is_true(eventually(3, function() return refuses(g.port) end), "a new connection was accepted")
    local answers = { finish(in_store) }
    assert.are.same({ 200, true }, { answers[1], answers[2] and answers[2].ok })
    for i = 1, 4 do
      local status, answer = finish(held[i])
      assert.are.same({ 200, true }, { status, answer and answer.ok }, "held request " .. i .. " was dropped")
    end
    assert.are.equal(0, process.wait(g.pid, 12000))
    local took = socket.gettime() - started
    assert.is_true(took < 5 + runner.DRAIN_MARGIN_SECONDS, ("the drain took %.1f s"):format(took))
    local out = read(g.out)
    assert.matches("licensor gateway: stopped (SIGTERM)\n", out, 1, true)
    assert.is_false(process.alive(g.master))
    assert.is_nil(read(g.prefix .. "/nginx.pid"))
    -- Each answer was committed: the store has every server.
    local store = assert(licensor.open(db))
    finally(function() store:close() end)
    for i, name in ipairs({ "held-1", "held-2", "held-3", "held-4", "in-store" }) do
      local list = assert(store:installations(keys[i]))
      assert.are.same({ 1, name }, { #list, list[1] and list[1].server })
    end
  end)

  it("drops no request in flight across a restart under load (SIGTERM, a new gateway on the prefix and port)",
     function()
    local db, keys = fresh_db(dir, 3)
    local g = start_command(dir, db, { "--workers", "2", "--drain-seconds", "5" })
    finally(function() stop(g) end)
    local load = activators(dir, g.port, keys, 3, 3)
    finally(function() load.stop() end)
    socket.sleep(1)
    -- Three requests in flight (mid-body) among the load's when SIGTERM
    -- comes: each gets its whole answer from the draining gateway.
    local held = {}
    for i = 1, 3 do held[i] = hold_activation(g.port, keys[i], "held-" .. i) end
    assert.is_true(all_accepted(g.port), "nginx did not accept the held requests")
    socket.sleep(0.2)
    assert.is_true(process.signal(g.pid, "SIGTERM"))
    assert.is_true(eventually(5, function() return (read(g.out) or ""):find("draining (SIGTERM)...", 1, true) end))
    for i = 1, 3 do
      local status, answer = finish(held[i])
      assert.are.same({ 200, true }, { status, answer and answer.ok }, "held request " .. i .. " was dropped")
    end
    assert.are.equal(0, process.wait(g.pid, 12000))
    local again = start_command(dir, db, { "--workers", "2", "--drain-seconds", "5" }, g.port)
    finally(function() stop(again) end)
    load.wait(20000)
    assert.is_true(process.signal(again.pid, "SIGTERM"))
    assert.are.equal(0, process.wait(again.pid, 12000))
    -- A request without an answer (refused while no gateway listened, or
    -- reset in the kernel's accept queue when nginx closed it) must have
    -- done nothing: done and unanswered is dropped in flight.
    local store = assert(licensor.open(db))
    finally(function() store:close() end)
    local installed = {}
    for _, key in ipairs(keys) do
      for _, i in ipairs(assert(store:installations(key))) do installed[i.server] = i end
    end
    local answered, unanswered, dropped = 0, 0, {}
    for _, r in ipairs(load.requests()) do
      if r.status ~= 0 then
        answered = answered + 1
      else
        unanswered = unanswered + 1
        local i = installed[r.server]
        if (r.route == "activate" and i) or (r.route == "deactivate" and i and i.deactivated) then
          dropped[#dropped + 1] = r.route .. " " .. r.server
        end
      end
    end
    print(("\nrestart under load: %d answered, %d without an answer (none done), %d dropped"):format(answered,
      unanswered, #dropped))
    assert.are.same({}, dropped)
    assert.is_true(answered > 20, answered .. " answers")
  end)

  it("cuts a request that never finishes at --drain-seconds (worker_shutdown_timeout), then exits", function()
    local db, keys = fresh_db(dir, 1)
    local g = start_command(dir, db, { "--workers", "1", "--drain-seconds", "1" })
    finally(function() stop(g) end)
    local held = hold_activation(g.port, keys[1], "never")
    assert.is_true(all_accepted(g.port))
    socket.sleep(0.2)
    local started = socket.gettime()
    assert.is_true(process.signal(g.pid, "SIGTERM"))
    assert.are.equal(0, process.wait(g.pid, 10000))
    local took = socket.gettime() - started
    assert.is_true(took > 0.8 and took < 1 + runner.DRAIN_MARGIN_SECONDS, ("exited after %.1f s"):format(took))
    held.rest = nil
    assert.is_nil((finish(held)))
    local out = read(g.out)
    assert.matches("licensor gateway: draining (SIGTERM)...\nlicensor gateway: stopped (SIGTERM)\n", out, 1, true)
    assert.is_false(process.alive(g.master))
  end)

  it("stops nginx hard after drain-seconds + the margin when a worker never ends its request", function()
    local db, keys = fresh_db(dir, 1)
    local g = start_command(dir, db, { "--workers", "1", "--drain-seconds", "1" })
    finally(function() stop(g) end)
    local held = hold_activation(g.port, keys[1], "stuck")
    assert.is_true(all_accepted(g.port))
    socket.sleep(0.2)
    -- A worker stuck in a call (a stopped process: not even
    -- worker_shutdown_timeout can end its request).
    local stuck = workers(g.master)
    assert.are.equal(1, #stuck)
    assert.is_true(process.signal(stuck[1], "SIGSTOP"))
    local started = socket.gettime()
    assert.is_true(process.signal(g.pid, "SIGTERM"))
    assert.are.equal(0, process.wait(g.pid, 15000))
    local took, bound = socket.gettime() - started, 1 + runner.DRAIN_MARGIN_SECONDS
    assert.is_true(took > bound - 0.5 and took < bound + 2, ("stopped after %.1f s"):format(took))
    assert.matches("stopped (SIGTERM; the drain did not end by itself within " .. bound .. " s: nginx was " ..
      "stopped hard)", read(g.out), 1, true)
    -- The group, the stopped worker included, is gone (a zombie at most,
    -- until whoever adopted it reaps it).
    assert.is_false(process.alive(g.master))
    local state = (read("/proc/" .. stuck[1] .. "/stat") or "gone"):match("%) (%a)") or "gone"
    assert.is_truthy(state == "gone" or state == "Z", "the stuck worker is " .. state)
    held.rest = nil
    assert.is_nil((finish(held)))
  end)
end)

-- On PostgreSQL (the suite's PostgreSQL round) a store call runs in a
-- worker thread, where nginx sees no timer of the request's: the drain
-- must still wait for it.
describe("licensor gateway on PostgreSQL, on SIGTERM", function()
  local stores = require "support.stores"
  if not stores.postgresql then return end
  local core = require "licensor.core"
  local dir
  before_each(function() dir = helpers.temp_dir() end)
  after_each(function() helpers.remove_dir(dir) end)

  it("answers a request whose store call is running in a worker thread", function()
    local url = stores.path()
    local store = assert(licensor.open(url))
    assert(store:import("lua/licensor/catalogues/smartertools.lua"))
    local key = assert(store:issue{ product = "smartertrack", edition = "enterprise", level = 5, start = DAY,
                                    owner = "acme" }).key
    store:close()
    local g = start_command(dir, url, { "--workers", "1", "--drain-seconds", "5", "--db-timeout-ms", "8000" })
    finally(function() stop(g) end)
    -- The activation's call waits in its thread for a lock the spec holds.
    local locker = core.open_pg(url, 0)
    finally(function() locker:close() end)
    locker:exec("BEGIN; LOCK TABLE installations IN ACCESS EXCLUSIVE MODE")
    local held = hold_activation(g.port, key, "in-thread")
    assert(held.conn:send(held.rest))
    held.rest = nil
    socket.sleep(0.5)
    assert.is_true(process.signal(g.pid, "SIGTERM"))
    assert.is_true(eventually(5, function() return (read(g.out) or ""):find("draining (SIGTERM)...", 1, true) end))
    socket.sleep(0.5)   -- nginx's workers are shutting down, the call still waits
    locker:exec("ROLLBACK")
    local status, answer = finish(held)
    assert.are.same({ 200, true }, { status, answer and answer.ok }, read(g.prefix .. "/logs/error.log"))
    assert.are.equal(0, process.wait(g.pid, 12000))
    assert.matches("licensor gateway: stopped (SIGTERM)\n", read(g.out), 1, true)
  end)
end)

describe("the rendered nginx.conf", function()
  local dir
  before_each(function() dir = helpers.temp_dir() end)
  after_each(function() helpers.remove_dir(dir) end)

  -- nginx -t on a rendered configuration: true when nginx accepts it.
  local function nginx_accepts(prefix, conf)
    local log = dir .. "/nginx-t.log"
    local pid = assert(process.spawn(child_env.argv({ runner.nginx_binary(), "-t", "-q", "-p", prefix, "-c",
                                                      conf }), log))
    return process.wait(pid, 10000) == 0, read(log)
  end

  it("has the PostgreSQL pools, the queue, the kept VMs, the drain bound and the deadlines asked", function()
    local url = "postgresql://gw@127.0.0.1:1/licensor"
    local prefix, conf = assert(runner.render{ db = url, prefix = dir .. "/gw",
      listen = "127.0.0.1:" .. gateway.free_port(), cpath = ROOT .. "/build/luajit", user = ME, threads = 3,
      queue = 77, drain_seconds = 7, db_timeout_ms = 2500, health_timeout_ms = 700,
      read_db = url .. "?target_session_attrs=standby" })
    local text = read(conf)
    -- The VM pool bounds the calls in flight, 3 running + 77 waiting + 1
    -- probe; no queue may refuse a call (lua-nginx-module 0.10.23 aborts
    -- the worker then), so each queue is as long as the VM pool.
    assert.are.equal(81, runner.thread_vms(3, 77))
    assert.matches("\nthread_pool licensor threads=3 max_queue=81;\n", text, 1, true)
    assert.matches("\nthread_pool licensor_health threads=1 max_queue=81;\n", text, 1, true)
    assert.matches("\nworker_shutdown_timeout 7s;", text, 1, true)
    local http = text:match("\nhttp {(.-)\n  server {")
    assert.matches("\n  lua_worker_thread_vm_pool_size 81;", http, 1, true)
    for _, want in ipairs({ "db_timeout_ms=2500", "health_timeout_ms=700", "threads=3", "queue=77",
                            'read_db="' .. url .. '?target_session_attrs=standby"' }) do
      assert.matches(want, text:match("init_worker%((.-)%)\n"), 1, true)
    end
    assert.is_true(nginx_accepts(prefix, conf))
  end)

  it("on SQLite: no thread pools, the default deadlines and drain bound; --read-db refused", function()
    local db = fresh_db(dir)
    local prefix, conf = assert(runner.render{ db = db, prefix = dir .. "/gw", cpath = ROOT .. "/build/luajit",
      listen = "127.0.0.1:" .. gateway.free_port(), user = ME })
    local text = read(conf)
    assert.is_nil(text:find("thread_pool", 1, true))
    assert.is_nil(text:find("lua_worker_thread_vm_pool_size", 1, true))
    assert.matches("\nworker_shutdown_timeout 10s;", text, 1, true)
    assert.matches("db_timeout_ms=5000", text, 1, true)
    assert.matches("health_timeout_ms=1000", text, 1, true)
    assert.is_true(nginx_accepts(prefix, conf))
    local status, out = refused_command(dir, db, { "--prefix", dir .. "/gw2", "--read-db",
                                                   "postgresql://gw:secret@127.0.0.1:1/licensor" })
    assert.are.equal(2, status, out)
    assert.matches("--read-db needs a PostgreSQL --db", out, 1, true)
    assert.is_nil(out:find("secret", 1, true))
    local _, msg, code = runner.render{ db = "postgresql://127.0.0.1:1/licensor", read_db = db,
                                        prefix = dir .. "/gw3", cpath = ROOT .. "/build/luajit", user = ME }
    assert.are.same({ "invalid_request", "gateway: --read-db " .. db .. " is not a PostgreSQL connection " ..
      "string (it names a hot standby of the PostgreSQL --db)" }, { code, msg })
    _, msg, code = runner.render{ db = db, prefix = dir .. "/gw3", cpath = ROOT .. "/build/luajit", user = ME,
                                  db_timeout_ms = 500, health_timeout_ms = 600 }
    assert.are.same({ "invalid_request", "gateway: --health-timeout-ms 600 is above --db-timeout-ms 500 (the " ..
      "probe's deadline may not be longer than the calls')" }, { code, msg })
    -- Without --health-timeout-ms, /healthz's deadline is the smaller one.
    _, conf = assert(runner.render{ db = db, prefix = dir .. "/gw4", cpath = ROOT .. "/build/luajit", user = ME,
                                    listen = "127.0.0.1:" .. gateway.free_port(), db_timeout_ms = 400,
                                    drain_seconds = 0 })
    text = read(conf)
    assert.matches("health_timeout_ms=400", text, 1, true)
    assert.is_nil(text:find("\nworker_shutdown_timeout", 1, true))
  end)
end)
