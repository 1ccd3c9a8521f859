-- The gateway's edges on a real nginx: every status nginx itself answers
-- is JSON in the gateway's failure shape (never nginx's HTML), the
-- workers of a gateway started as root drop to nobody (or the runner's
-- `user`), and an admin token file that cannot be read stops the gateway
-- before nginx starts (or, under init_worker alone, answers 503).
local licensor = require "licensor"
local cjson = require "cjson.safe"
local constants = require "licensor.constants"
local runner = require "licensor.gateway.runner"
local gateway = require "support.gateway"
local stores = require "support.stores"
local child_env = require "support.child_env"
local helpers = require "spec.support.files"
local process = require("licensor.core").process
local socket = require "socket"

local TOKEN = "edges-admin-token-0123456789"
local ROOT = os.getenv("PWD") or "."
local AS_ROOT = process.user().uid == 0

teardown(function() gateway.stop_all() end)

local function fresh_db(path)
  path = path or stores.path()
  local store = assert(licensor.open(path))
  assert(store:import("lua/licensor/catalogues/smartertools.lua"))
  store:close()
  return path
end

local read = require("support.files").read

-- A chunked body's data.
local function dechunk(body)
  local out, pos = {}, 1
  while true do
    local size, after = body:match("^(%x+)[^\r\n]*\r\n()", pos)
    if not size or tonumber(size, 16) == 0 then break end
    out[#out + 1] = body:sub(after, after + tonumber(size, 16) - 1)
    pos = after + tonumber(size, 16) + 2
  end
  return table.concat(out)
end

-- The status, headers and decoded JSON body of a raw answer.
local function parse(text)
  local status = tonumber(text:match("^HTTP/1%.%d (%d+)"))
  local head, body = text:match("^(.-)\r\n\r\n(.*)$")
  head, body = head or text, body or ""
  if head:lower():find("\ntransfer%-encoding: chunked") then body = dechunk(body) end
  return status, head, cjson.decode(body), body
end

describe("the gateway's answers to what nginx refuses itself", function()
  local db, server

  setup(function()
    db = fresh_db()
    server = gateway.start{ db = db, today = "2019-06-01", token = TOKEN }
  end)

  teardown(function()
    server:stop()
    stores.remove(db)
  end)

  local CASES = {
    { 505, "an HTTP/2.0 request line", "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n" },
    { 505, "an HTTP/3.1 request line", "GET /healthz HTTP/3.1\r\nHost: x\r\n\r\n" },
    { 501, "Transfer-Encoding: gzip",
      "POST /v1/activate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n" },
    { 400, "a request line that is not HTTP", "GARBAGE\r\n\r\n" },
    { 400, "no Host header in HTTP/1.1", "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n" },
    { 405, "TRACE", "TRACE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" },
    { 414, "a request line over 8 KiB", "GET /" .. string.rep("a", 9000) .. " HTTP/1.1\r\nHost: x\r\n\r\n" },
    { 431, "a header over 8 KiB",
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " .. string.rep("b", 9000) .. "\r\nConnection: close\r\n\r\n" },
    { 413, "a body over " .. constants.MAX_BODY_BYTES .. " bytes",
      "POST /v1/activate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n" ..
      "Content-Length: " .. (constants.MAX_BODY_BYTES + 1) .. "\r\n\r\n" .. string.rep("x", constants.MAX_BODY_BYTES + 1) },
  }

  for _, case in ipairs(CASES) do
    local want, what, bytes = case[1], case[2], case[3]
    it("answers " .. want .. " as JSON for " .. what, function()
      local _, text = server:raw(bytes)
      local status, head, json, body = parse(text)
      assert.are.equal(want, status, text:sub(1, 300))
      assert.matches("\r\n[Cc]ontent%-[Tt]ype: application/json", "\r\n" .. head)
      assert.is_nil(body:find("<html", 1, true), body)
      assert.is_table(json, body)
      local words = constants.GATEWAY_ERRORS[want == 431 and 494 or want]
      assert.are.same({ false, words[1], words[2] }, { json.ok, json.code, json.message })
    end)
  end

  it("renders an error page for every status of constants.GATEWAY_ERRORS", function()
    local conf = read(server.conf)
    for status in pairs(constants.GATEWAY_ERRORS) do
      assert.matches("error_page " .. status .. " /.licensor%-error/" .. status .. ";", conf)
    end
    assert.matches("client_max_body_size " .. constants.MAX_BODY_BYTES .. ";", conf)
  end)

  it("keeps its configuration (the admin token's digest) private: 0600, no token in it", function()
    local p = assert(io.popen("stat -c %a '" .. server.conf .. "'"))
    local mode = p:read("*l")
    p:close()
    assert.are.equal("600", mode)
    assert.is_nil(read(server.conf):find(TOKEN, 1, true))
  end)
end)

describe("an admin token file that cannot be read", function()
  local dir
  before_each(function() dir = helpers.temp_dir() end)
  after_each(function() helpers.remove_dir(dir) end)

  local function render(token_file)
    return runner.render{ db = dir .. "/licenses.db", prefix = dir .. "/gw", listen = "127.0.0.1:1",
                          cpath = ROOT .. "/build/luajit", admin_token_file = token_file,
                          user = process.user().name }
  end

  it("stops licensor gateway before nginx starts: a missing file, a directory, an empty file", function()
    local prefix, msg, code = render(dir .. "/missing.token")
    assert.is_nil(prefix)
    assert.are.equal("gateway: admin token file " .. dir .. "/missing.token: No such file or directory", msg)
    assert.are.equal("io_error", code)
    prefix, msg, code = render(dir)
    assert.is_nil(prefix)
    assert.are.equal("gateway: admin token file " .. dir .. ": Is a directory", msg)
    assert.are.equal("io_error", code)
    helpers.write(dir .. "/empty.token", " \n")
    prefix, msg, code = render(dir .. "/empty.token")
    assert.is_nil(prefix)
    assert.matches("empty.token: holds no token", msg, 1, true)
    assert.are.equal("invalid_request", code)
    assert.is_nil(read(dir .. "/gw/conf/nginx.conf"))
  end)

  it("refuses a token of fewer than 16 characters and a file of two tokens, before nginx starts", function()
    helpers.write(dir .. "/short.token", "123456789012345\n")
    local prefix, msg, code = render(dir .. "/short.token")
    assert.is_nil(prefix)
    assert.are.equal("gateway: admin token file " .. dir .. "/short.token: the token is shorter than 16 characters",
      msg)
    assert.are.equal("invalid_request", code)
    helpers.write(dir .. "/two.token", TOKEN .. "\n\n" .. TOKEN .. "-second\n")
    prefix, msg, code = render(dir .. "/two.token")
    assert.is_nil(prefix)
    assert.matches("two.token: holds more than one line (one token expected)", msg, 1, true)
    assert.are.equal("invalid_request", code)
    assert.is_nil(read(dir .. "/gw/conf/nginx.conf"))
    helpers.write(dir .. "/ok.token", "  1234567890123456 \r\n\n")
    assert.is_not_nil(render(dir .. "/ok.token"))
  end)

  it("answers 503 admin_unavailable on every admin route when init_worker alone cannot read it", function()
    local db = fresh_db(dir .. "/licenses.db")
    helpers.write(dir .. "/good.token", TOKEN .. "\n")
    local port = gateway.free_port()
    local prefix, conf = assert(runner.render{ db = db, prefix = dir .. "/gw", listen = "127.0.0.1:" .. port,
      cpath = ROOT .. "/build/luajit", admin_token_file = dir .. "/good.token", user = process.user().name,
      rate_per_ip = 0 })
    -- The README's snippet: init_worker given a token file, here one
    -- that does not exist.
    local text = read(conf):gsub('admin_token_sha256%s*=%s*"%x+"', 'admin_token_file="' .. dir .. '/gone.token"')
    assert.matches("gone.token", text, 1, true)
    local f = assert(io.open(conf, "wb"))
    f:write(text)
    f:close()
    local pid = assert(process.spawn(child_env.argv(runner.command(prefix, conf)), prefix .. "/logs/start.log"))
    gateway.register(pid, prefix)
    finally(function() process.stop(pid, 0) end)
    local client = gateway.client(port)
    for _ = 1, 100 do
      if client:request("GET", "/healthz") then break end
      socket.sleep(0.05)
    end
    local status, answer = client:request("POST", "/v1/admin/issue", {}, { Authorization = "Bearer " .. TOKEN })
    assert.are.equal(503, status)
    assert.are.equal("admin_unavailable", answer.code)
    assert.matches("gone.token: No such file or directory", answer.message, 1, true)
    assert.matches("%[alert%].*gone%.token", read(prefix .. "/logs/error.log"))
  end)
end)

describe("the gateway's Lua search paths", function()
  local dir
  before_each(function() dir = helpers.temp_dir() end)
  after_each(function() helpers.remove_dir(dir) end)

  it("are LuaJIT's own: nginx does not inherit LUA_CPATH, LUA_PATH or LUA_INIT from the command", function()
    local cjson54 = "/usr/lib/x86_64-linux-gnu/lua/5.4"
    local db = fresh_db(dir .. "/licenses.db")
    local port = gateway.free_port()
    local prefix, conf = assert(runner.render{ db = db, prefix = dir .. "/gw", listen = "127.0.0.1:" .. port,
      cpath = ROOT .. "/build/luajit", user = process.user().name, rate_per_ip = 0 })
    -- Lua 5.4's cjson.so first in LUA_CPATH, as a Lua 5.4 CLI's may be.
    local argv = { "env", "LUA_CPATH=" .. cjson54 .. "/?.so;;", "LUA_PATH=" .. dir .. "/?.lua;;",
                   "LUA_INIT=error('LUA_INIT ran')" }
    for _, word in ipairs(runner.command(prefix, conf)) do argv[#argv + 1] = word end
    local pid = assert(process.spawn(child_env.argv(argv), prefix .. "/logs/start.log"))
    gateway.register(pid, prefix)
    finally(function() process.stop(pid, 0) end)
    local client = gateway.client(port)
    local status, answer
    for _ = 1, 100 do
      status, answer = client:request("GET", "/healthz")
      if status then break end
      socket.sleep(0.05)
    end
    assert.are.equal(200, status, read(prefix .. "/logs/error.log"))
    assert.are.equal("table", type(answer))
  end)
end)

describe("the gateway's workers", function()
  local dir
  before_each(function()
    dir = helpers.temp_dir()
    assert.is_true(gateway.run("chmod 755 '" .. dir .. "'"))
  end)
  after_each(function() helpers.remove_dir(dir) end)

  -- The uid of each worker of the nginx master `master` (read from /proc:
  -- no tool that a sanitizer's preload could hold up).
  local function worker_uids(master)
    local uids = {}
    for child in assert(read("/proc/" .. master .. "/task/" .. master .. "/children")):gmatch("%d+") do
      uids[#uids + 1] = tonumber(assert(read("/proc/" .. child .. "/status")):match("\nUid:%s+(%d+)"))
    end
    return uids
  end

  if AS_ROOT then
    it("run as nobody when started as root, and the runner refuses a database nobody cannot write", function()
      local db = fresh_db(dir .. "/licenses.db")
      local prefix, msg, code = runner.render{ db = db, prefix = dir .. "/gw", listen = "127.0.0.1:1",
                                               cpath = ROOT .. "/build/luajit" }
      assert.is_nil(prefix)
      assert.are.equal("permission_denied", code)
      assert.matches("the workers run as nobody, who cannot write the database's directory " .. dir, msg, 1, true)
      assert.matches("chown nobody:", msg, 1, true)
      assert.is_true(gateway.run("chown nobody '" .. dir .. "' '" .. db .. "'"))
      -- The prefix stays root's, out of the database's (nobody's) directory.
      local gw = helpers.temp_dir()
      finally(function() helpers.remove_dir(gw) end)
      local server = gateway.start{ db = db, today = "2019-06-01", token = TOKEN, user = "nobody",
                                    prefix = gw .. "/gw" }
      finally(function() server:stop() end)
      local conf = read(server.conf)
      assert.matches("\nuser nobody %S+;", conf)
      local master = tonumber(read(gw .. "/gw/nginx.pid"))
      local uids = worker_uids(master)
      assert.is_true(#uids >= 1)
      local nobody = process.user("nobody").uid
      for _, uid in ipairs(uids) do assert.are.equal(nobody, uid) end
      -- The workers write the database as nobody.
      local status = server:admin("issue", { product = "smartertrack", edition = "enterprise", level = 5,
                                              owner = "acme" })
      assert.are.equal(200, status)
      local p = assert(io.popen("stat -c '%U %a' '" .. db .. "-wal'"))
      assert.are.equal("nobody 600", p:read("*l"))
      p:close()
    end)

    it("keep the prefix root's: one that nobody can write, or under a directory nobody can, is refused", function()
      local db = fresh_db(dir .. "/licenses.db")
      assert.is_true(gateway.run("chown nobody '" .. dir .. "' '" .. db .. "'"))
      local function render(prefix)
        return runner.render{ db = db, prefix = prefix, listen = "127.0.0.1:1", cpath = ROOT .. "/build/luajit" }
      end
      -- DB.gateway inside the workers' directory: nobody could rename it
      -- away, or plant logs/error.log -> a root file.
      local prefix, msg, code = render(db .. ".gateway")
      assert.is_nil(prefix)
      assert.are.equal("permission_denied", code)
      assert.matches(dir .. " must be a directory owned by root that no one else can write", msg, 1, true)
      local root_dir = helpers.temp_dir()
      finally(function() helpers.remove_dir(root_dir) end)
      -- A prefix, or its logs/, that nobody owns or anyone may write.
      assert.is_true(gateway.run("mkdir -p '" .. root_dir .. "/a/logs' '" .. root_dir .. "/b/logs' && " ..
        "chown nobody '" .. root_dir .. "/a' && chmod 0777 '" .. root_dir .. "/b/logs'"))
      prefix, msg = render(root_dir .. "/a")
      assert.is_nil(prefix)
      assert.matches(root_dir .. "/a must be a directory owned by root", msg, 1, true)
      prefix, msg = render(root_dir .. "/b")
      assert.is_nil(prefix)
      assert.matches(root_dir .. "/b/logs must be a directory owned by root", msg, 1, true)
      -- A symlinked logs/ (to a directory root owns) is refused too.
      assert.is_true(gateway.run("mkdir -p '" .. root_dir .. "/c' && ln -s /tmp '" .. root_dir .. "/c/logs'"))
      prefix, msg = render(root_dir .. "/c")
      assert.is_nil(prefix)
      assert.matches(root_dir .. "/c/logs must be a directory owned by root that no one else can write " ..
        "(found link", msg, 1, true)
      assert.is_not_nil(render(root_dir .. "/d"))
      -- Without --prefix: under /run/licensor, root's, 0755.
      prefix = assert(runner.render{ db = db, listen = "127.0.0.1:1", cpath = ROOT .. "/build/luajit",
                                     user = "root" })
      finally(function() os.execute("rm -rf '" .. prefix .. "'") end)
      assert.matches("^/run/licensor/%x+$", prefix)
      for _, path in ipairs({ "/run/licensor", prefix, prefix .. "/logs", prefix .. "/conf" }) do
        local p = assert(io.popen("stat -c '%U %a' '" .. path .. "'"))
        assert.are.equal("root 755", p:read("*l"))
        p:close()
      end
      assert.is_nil(io.open(db .. ".gateway"))
    end)

    it("run as the runner's user when asked, and an unknown user is refused", function()
      local db = fresh_db(dir .. "/licenses.db")
      local prefix, msg, code = runner.render{ db = db, prefix = dir .. "/gw", listen = "127.0.0.1:1",
                                               cpath = ROOT .. "/build/luajit", user = "no-such-user-x" }
      assert.is_nil(prefix)
      assert.are.same({ "gateway: --user: no user no-such-user-x", "invalid_request" }, { msg, code })
      local server = gateway.start{ db = db, today = "2019-06-01", user = "root", prefix = dir .. "/gw" }
      finally(function() server:stop() end)
      assert.matches("\nuser root root;", read(server.conf))
      for _, uid in ipairs(worker_uids(tonumber(read(dir .. "/gw/nginx.pid")))) do assert.are.equal(0, uid) end
    end)
  else
    it("keep this user when not started as root, and --user another is refused", function()
      local db = fresh_db(dir .. "/licenses.db")
      local prefix, msg, code = runner.render{ db = db, prefix = dir .. "/gw", listen = "127.0.0.1:1",
                                               cpath = ROOT .. "/build/luajit", user = "root" }
      assert.is_nil(prefix)
      assert.are.equal("invalid_request", code)
      assert.matches("needs a gateway started as root", msg, 1, true)
      prefix = assert(runner.render{ db = db, prefix = dir .. "/gw", listen = "127.0.0.1:1",
                                     cpath = ROOT .. "/build/luajit" })
      assert.matches("# not started as root", read(prefix .. "/conf/nginx.conf"), 1, true)
    end)
  end
end)
