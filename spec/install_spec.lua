-- One install (issue 18, item 2): `make install` into a scratch DESTDIR for
-- Lua 5.4 and again for LuaJIT, then, with nothing of the checkout on any
-- path (LUA_PATH and LUA_CPATH name only the DESTDIR's share/lua and
-- lib/lua before the system's, PATH only its bin before the system's, run
-- from another directory), the installed commands work as a new user
-- would use them, and nginx with doc/gateway.md's snippet answers from
-- the installed tree.  The layout is the one list (make -s modules), and
-- the rock installs that list too (the rockspec runs make rock-install).
-- Not a test of the rock itself: spec/support/rockcheck.sh is.
local core = require "licensor.core"
local cjson = require "cjson"
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local register = require "support.registry"
local child_env = require "support.child_env"
local files = require "support.files"

local process = core.process
local CHECKOUT = os.getenv("PWD") or "."
local PREFIX = "/usr/local"
-- Each VM's install: its ABI directory and the command it installs.
local VMS = {
  { lua = "lua5.4", abi = "5.4", command = "licensor" },
  { lua = "luajit", abi = "5.1", command = "licensor-luajit" },
}

local function quoted(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

-- sh(command) -> exit status, output (stdout and stderr): without the
-- suite's sanitizer preload (support.child_env).
local function sh(command)
  local p = assert(io.popen(child_env.shell .. "sh -c " .. quoted(command .. " 2>&1; echo \"exit=$?\"")))
  local out = p:read("*a")
  p:close()
  local text, status = out:match("^(.-)\n?exit=(%d+)\n$")
  return tonumber(status), text
end

local read = require("support.files").read

local function is_root()
  return (read("/proc/self/status") or ""):match("\nUid:%s+0%s") ~= nil
end

-- A new directory that nginx's workers (nobody, under a root suite) can
-- enter; remove_dir removes it.
local function open_dir()
  local dir = files.temp_dir()
  assert(sh("chmod 755 " .. quoted(dir)) == 0)
  return dir
end

-- The files under dir, as paths below it, sorted.
local function tree(dir)
  local _, out = sh("cd " .. quoted(dir) .. " && find . -type f -o -type l | sed 's|^\\./||' | sort")
  local list = {}
  for line in out:gmatch("[^\n]+") do list[#list + 1] = line end
  return list
end

describe("make install", function()
  local dest, work, modules
  local vm_env = {}   -- abi -> the shell prefix of a command with only the install on its paths

  setup(function()
    dest, work = open_dir(), open_dir()
    -- A module an older install left (since moved or removed) must go.
    local stale = dest .. PREFIX .. "/share/lua/5.4/licensor"
    assert(sh("mkdir -p " .. quoted(stale)) == 0)
    files.write(stale .. "/gone.lua", "error('a stale module')\n")
    for _, vm in ipairs(VMS) do
      local status, out = sh(("make -s --no-print-directory -C %s install DESTDIR=%s PREFIX=%s LUA=%s")
        :format(quoted(CHECKOUT), quoted(dest), PREFIX, vm.lua))
      assert(status == 0, "make install LUA=" .. vm.lua .. " failed:\n" .. out)
      local root = dest .. PREFIX
      local share, lib = root .. "/share/lua/" .. vm.abi, root .. "/lib/lua/" .. vm.abi
      vm_env[vm.abi] = ("cd %s && env -u LUA_INIT -u LUA_INIT_5_4 -u LUA_PATH_5_4 -u LUA_CPATH_5_4 " ..
        "LUA_PATH=%s LUA_CPATH=%s PATH=%s "):format(quoted(work),
        quoted(share .. "/?.lua;" .. share .. "/?/init.lua;;"), quoted(lib .. "/?.so;;"),
        quoted(root .. "/bin:/usr/bin:/bin"))
    end
    local status, out = sh("make -s --no-print-directory -C " .. quoted(CHECKOUT) .. " modules")
    assert(status == 0, out)
    modules = {}
    for line in out:gmatch("[^\n]+") do modules[#modules + 1] = line end
  end)

  teardown(function()
    if dest then files.remove_dir(dest) end
    if work then files.remove_dir(work) end
  end)

  it("installs every module of the one list for each VM, and nothing else (no stale module)", function()
    assert.is_true(#modules > 40)
    for _, vm in ipairs(VMS) do
      assert.are.same(modules, tree(dest .. PREFIX .. "/share/lua/" .. vm.abi))
      assert.are.same({ "licensor/core.so" }, tree(dest .. PREFIX .. "/lib/lua/" .. vm.abi))
    end
  end)

  it("keeps one command per VM: LuaJIT's install never replaces Lua 5.4's", function()
    assert.are.same({ "licensor", "licensor-luajit" }, tree(dest .. PREFIX .. "/bin"))
    assert.are.equal("#!/usr/bin/env lua5.4", read(dest .. PREFIX .. "/bin/licensor"):match("^[^\n]*"))
    assert.are.equal("#!/usr/bin/env luajit", read(dest .. PREFIX .. "/bin/licensor-luajit"):match("^[^\n]*"))
  end)

  it("installs the rock from the same list: the rockspec names no module and runs make rock-install", function()
    -- A rockspec is Lua assigning globals (LuaJIT's load takes an env too).
    local rockspec = {}
    assert(load(assert(read(CHECKOUT .. "/rockspec/licensor-scm-1.rockspec")), "rockspec", "t", rockspec))()
    assert.are.same({ "make", "rock", "rock-install", nil },
      { rockspec.build.type, rockspec.build.build_target, rockspec.build.install_target, rockspec.build.modules })
    local rock = dest .. "/rock"
    local status, out = sh(("make -s --no-print-directory -C %s rock-install LUADIR=%s LIBDIR=%s")
      :format(quoted(CHECKOUT), quoted(rock .. "/lua"), quoted(rock .. "/lib")))
    assert.are.equal(0, status, out)
    assert.are.same(modules, tree(rock .. "/lua"))
    assert.are.same({ "licensor/core.so" }, tree(rock .. "/lib"))
    assert.are.equal(0, (sh("rm -rf " .. quoted(rock))))
  end)

  for _, vm in ipairs(VMS) do
    describe("then " .. vm.command .. " (" .. vm.lua .. "), with nothing of the checkout on its paths", function()
      local db, receiver

      -- The installed command, found on PATH, in the scratch directory.
      local function licensor(...)
        local words = { vm.command, "--db", quoted(db) }
        for _, word in ipairs({ ... }) do words[#words + 1] = quoted(word) end
        return sh(vm_env[vm.abi] .. table.concat(words, " "))
      end

      setup(function()
        db = work .. "/" .. vm.command .. ".db"
      end)
      teardown(function()
        if receiver then
          process.stop(receiver.pid, 0)
          receiver = nil
        end
      end)

      it("loads every module from the install, and the system's own paths hold no licensor", function()
        local probe = work .. "/probe.lua"
        files.write(probe, [[
          local function dir(list) return list:match("^(.-)/%?") end
          for _, path in ipairs(arg) do
            local name = path:gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
            local found = package.searchpath(name, package.path)
            assert(found and found:find(dir(os.getenv("LUA_PATH")), 1, true), name .. ": " .. tostring(found))
          end
          local core = package.searchpath("licensor.core", package.cpath)
          assert(core and core:find(dir(os.getenv("LUA_CPATH")), 1, true), tostring(core))
          local system = package.path:match(";;(.*)$") or package.path:match("^.-/init%.lua;(.*)$")
          assert(not package.searchpath("licensor", system), "a licensor outside the install")
          require "licensor.cli"
          print("ok " .. #arg)
        ]])
        local words = { vm.lua, quoted(probe) }
        for _, path in ipairs(modules) do words[#words + 1] = quoted(path) end
        local status, out = sh(vm_env[vm.abi] .. table.concat(words, " "))
        assert.are.same({ 0, "ok " .. #modules }, { status, out })
      end)

      it("runs init, import, issue, templates --out NEWDIR and deliver to a webhook receiver", function()
        local status, out = licensor("init")
        assert.are.same({ 0, true }, { status, out:find("ready (schema", 1, true) ~= nil }, out)
        status, out = licensor("import", "smartertools")
        assert.are.same({ 0, "imported catalogue version 1" }, { status, out })
        status, out = licensor("--json", "issue", "--product", "smartertrack", "--edition", "enterprise",
          "--level", "5", "--owner", "acme", "--email", "ops@example.com", "--start", "2018-06-01")
        assert.are.equal(0, status, out)
        local key = cjson.decode(out).key
        assert.is_string(key)
        local new_dir = work .. "/" .. vm.command .. "-templates/mail"
        status, out = licensor("templates", "--out", new_dir)
        assert.are.equal(0, status, out)
        assert.is_truthy(read(new_dir .. "/ms_expiring.txt"))
        status, out = licensor("sweep", "--on", "2019-05-01")
        assert.are.equal(0, status, out)
        local log = work .. "/" .. vm.command .. "-receiver.log"
        receiver = {}
        receiver.pid, receiver.port = require("licensor.receiver").start(log)
        register(receiver.pid, "webhook receiver (install spec)")
        local secret = work .. "/" .. vm.command .. "-secret"
        files.write(secret, "install-spec-secret\n")
        status, out = licensor("deliver", "--webhook", "http://127.0.0.1:" .. receiver.port .. "/hooks",
          "--secret-file", secret)
        assert.are.same({ 0, "delivered 1, failed 0 (dead-lettered 0), pending 0" }, { status, out })
        local got = files.json_lines(log)
        assert.are.equal(1, #got)
        assert.are.equal("ms_expiring", cjson.decode(got[1].body).action)
        assert.are.equal(key, cjson.decode(got[1].body).key)
        process.stop(receiver.pid, 0)
        receiver = nil
      end)
    end)
  end

  describe("then nginx with doc/gateway.md's snippet", function()
    local prefix, pid, port

    -- The snippet of "In an existing nginx or OpenResty", as written, with
    -- its paths pointed into the scratch install; nginx.conf adds only what
    -- an existing configuration already has (pid, error_log, events).
    local function snippet()
      local doc = assert(read(CHECKOUT .. "/doc/gateway.md"))
      local block = doc:match("\n## In an existing nginx.-\n```nginx\n(.-)\n```\n")
      assert(block, "doc/gateway.md has no nginx snippet under 'In an existing nginx'")
      local function swap(text, from, to)
        local start = text:find(from, 1, true)
        assert(start, "the snippet no longer holds " .. from)
        return text:sub(1, start - 1) .. to .. text:sub(start + #from)
      end
      block = block:gsub("/usr/local/", function() return dest .. "/usr/local/" end)
      block = swap(block, "/var/lib/licensor/licenses.db", prefix .. "/data/licenses.db")
      block = swap(block, "/etc/licensor/token", prefix .. "/token")
      block = swap(block, "listen 8080;", "listen 127.0.0.1:" .. port .. ";")
      return block
    end

    -- request(method, path[, body]) -> status (or LuaSocket's error), body, headers
    local function request(method, path, body)
      local chunks = {}
      local _, status, headers = http.request{ url = "http://127.0.0.1:" .. port .. path, method = method,
        headers = body and { ["Content-Length"] = tostring(#body) } or {},
        source = body and ltn12.source.string(body), sink = ltn12.sink.table(chunks) }
      return status, table.concat(chunks), headers
    end

    setup(function()
      prefix = open_dir()
      port = assert(socket.bind("127.0.0.1", 0))
      local _, bound = port:getsockname()
      port:close()
      port = tonumber(bound)
      for _, dir in ipairs({ "conf", "logs", "data" }) do assert(sh("mkdir -m 755 " .. quoted(prefix .. "/" .. dir)) == 0) end
      -- The snippet's load_module lines are relative to nginx's prefix.
      local modules_dir = io.open("/usr/lib/nginx/modules/ngx_http_lua_module.so") and "/usr/lib/nginx/modules"
        or "/usr/share/nginx/modules"
      assert(sh(("ln -s %s %s"):format(modules_dir, quoted(prefix .. "/modules"))) == 0)
      files.write(prefix .. "/token", "install-spec-token\n")
      files.write(prefix .. "/conf/nginx.conf", snippet() .. ("\npid %s;\nerror_log %s warn;\nevents {}\n")
        :format(prefix .. "/nginx.pid", prefix .. "/logs/error.log"))
    end)

    teardown(function()
      if pid then
        process.stop(pid, 0)
        pid = nil
      end
      if prefix then files.remove_dir(prefix) end
    end)

    it("answers /healthz and an activation from the installed tree, and JSON for nginx's own errors", function()
      local data = prefix .. "/data/licenses.db"
      local licensor = vm_env["5.4"] .. "licensor --db " .. quoted(data) .. " "
      assert.are.equal(0, (sh(licensor .. "init")))
      assert.are.equal(0, (sh(licensor .. "import smartertools")))
      local status, out = sh(licensor .. "--json issue --product smartertrack --edition enterprise --level 5 --owner acme")
      assert.are.equal(0, status, out)
      local key = cjson.decode(out).key
      status, out = sh(licensor .. "--json eligible " .. quoted(key))
      assert.are.equal(0, status, out)
      local build = cjson.decode(out).number
      assert.is_number(build)
      -- The workers of a root master run as nobody: the database is theirs.
      if is_root() then assert.are.equal(0, (sh("chown -R nobody " .. quoted(prefix .. "/data")))) end
      assert.are.equal(0, (sh("chmod 644 " .. quoted(prefix .. "/token"))))
      pid = assert(process.spawn(child_env.argv({ "/usr/sbin/nginx", "-p", prefix, "-c", prefix .. "/conf/nginx.conf",
        "-g", "daemon off;" }), prefix .. "/logs/start.log"))
      register(pid, prefix .. " (install spec nginx)")
      for _ = 1, 100 do
        if type(request("GET", "/healthz")) == "number" then break end
        socket.sleep(0.05)
      end
      local log = function() return (read(prefix .. "/logs/start.log") or "") .. (read(prefix .. "/logs/error.log") or "") end
      local body
      status, body = request("GET", "/healthz")
      assert.are.same({ 200, '{"ok":true}' }, { status, body }, log())
      status, body = request("POST", "/v1/activate", cjson.encode({ key = key, server = "install-spec", build = build }))
      assert.are.equal(200, status, body .. log())
      local answer = cjson.decode(body)
      assert.are.same({ true, build }, { answer.ok, answer.eligible.number })
      -- nginx's own refusals through the snippet's error pages: JSON.
      local headers
      status, body, headers = request("GET", "/no/such/route")
      assert.are.same({ 404, "application/json" }, { status, headers["content-type"] })
      assert.is_false(cjson.decode(body).ok)
      status, body = request("POST", "/v1/activate", ("x"):rep(20000))
      assert.are.same({ 413, "too_large" }, { status, cjson.decode(body).code })
      assert(process.stop(pid, 0), "nginx outlived its stop")
      pid = nil
    end)
  end)
end)
