-- docs_spec.lua -- every shell and Lua example of README.md and doc/*.md
-- (rules.md and cli.md included) is run, and fails the suite when it breaks
-- or prints something other than the document shows.  It proves no rule;
-- it proves the manuals.  The convention, which doc/operations.md ("How
-- the examples are tested") repeats for writers:
--
-- * Which blocks.  Fenced blocks whose info string starts with `sh` or
--   `lua`.  `sh no-run: REASON` (or `lua no-run: REASON`) is not run, and
--   the reason is printed; the counts of run and not-run blocks are
--   printed and asserted, so they cannot silently drop.  Blocks of other
--   languages (`c`, `nginx`, `json`, `text`) are not run here: the
--   product's C is spec/verifier_spec.lua's (it compiles and runs
--   spec/verifier/example.c, the program doc/offline.md excerpts).
-- * Where.  Each file's blocks run in order, in one scratch directory of
--   their own (os.tmpname-based: spec/support/scratch.lua puts it in the
--   suite's scratch directory), so a block may use what an earlier block
--   of the same file made.  PATH starts with a `licensor` that runs the
--   checkout's lua/bin/licensor on the VM under test (then /usr/bin, for
--   Debian's python3); LUA_PATH and LUA_CPATH are the checkout's.
-- * Shell blocks run once per suite with `sh -e`: a command that fails
--   fails the block unless its line says it fails.  Variables a block
--   assigns (`export LICENSOR_DB=...`, `PG=...`) are kept for the file's
--   later blocks.
-- * Shown output.  A trailing `# -> TEXT` on a command's (last) line: the
--   command must exit 0 and its output (stdout and stderr) must contain
--   TEXT, runs of blanks compared as one space.  `# exit N` (or
--   `# exit N -> TEXT`): the command must exit N.  Any other comment is
--   for readers.
-- * Placeholders, filled before a block runs: KEY, the key printed by the
--   file's latest `licensor issue` (in an earlier block); FP, a machine
--   fingerprint as `licensor fingerprint` prints one (mid, uuid, mac and
--   host components); a port a file's blocks show as `127.0.0.1:NNNN` is
--   replaced, wherever that number appears in the file's blocks, by a free
--   port the spec picks (so NNNN must not stand for anything else there).
-- * Servers.  `sh server WAIT [unprivileged]`: the block is one command
--   that serves until stopped (a gateway, an SMTP server, a webhook
--   receiver, PostgreSQL).  The spec starts it in a process group of its
--   own, registered like spec/support/gateway.lua's (so the suite's last
--   spec sees it gone), waits until WAIT answers (HOST:PORT accepts a
--   connection, or a path exists), runs the file's later blocks, and stops
--   it when the file is done, whatever happened.
-- * `unprivileged` (on any block of a file): when the suite runs as root,
--   all the file's blocks run as the `postgres` user, in a directory of
--   theirs (initdb and postgres refuse root; a gateway started as root
--   hands its workers to `nobody`).
-- * Lua blocks run on the VM running the suite.  A block of `> ` lines is
--   a `licensor repl` transcript on the file's database: each line is
--   entered in turn, and the lines shown after it (if any) must be what
--   the REPL printed.  Any other block is a script run in the file's
--   directory; it must not raise (checks are written as `assert`s; a
--   `-->` comment is for readers).  A block that is one expression (a
--   catalogue table) is evaluated as `return` that expression.
local process = require("licensor.core").process
local child_env = require "support.child_env"
local register = require "support.registry"
local cli = require "licensor.cli"
local socket = require "socket"

local ROOT = os.getenv("PWD") or "."
local VM = jit and "luajit" or "lua5.4"
local VM_NAME = jit and "LuaJIT" or "Lua 5.4"
local BLOCK_TIMEOUT_MS = 180000
local FP = "v1:mid=0123456789abcdef,uuid=fedcba9876543210,mac=00112233aabbccdd,host=0a1b2c3d4e5f6071"
local FILES = { "README.md" }
do
  local p = assert(io.popen("ls " .. ROOT .. "/doc/*.md 2>/dev/null"))
  for path in p:lines() do FILES[#FILES + 1] = path:sub(#ROOT + 2) end
  p:close()
end

local read = require("support.files").read

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function quoted(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

local function sh_ok(command)
  local r = os.execute(child_env.shell .. "sh -c " .. quoted(command) .. " >/dev/null 2>&1")
  return r == true or r == 0
end

local function as_root()
  local p = io.popen("id -u")
  local id = p:read("*l")
  p:close()
  return id == "0"
end

local ROOT_USER = as_root()

-- blocks(text) -> list of {info=, lang=, body=, line=} for ```sh and ```lua.
local function blocks(text)
  local list, open, n = {}, nil, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if open then
      if line:match("^```%s*$") then
        list[#list + 1] = open
        open = nil
      else
        open.lines[#open.lines + 1] = line
      end
    else
      local info = line:match("^```(.*)$")
      if info then
        open = { info = info, lang = info:match("^(%S+)") or "", lines = {}, line = n }
      end
    end
  end
  for _, b in ipairs(list) do b.body = table.concat(b.lines, "\n") end
  return list
end

local function squeeze(text)
  return (text:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

-- A free loopback port.
local function free_port()
  for _ = 1, 50 do
    local port = math.random(20000, 60000)
    local probe = socket.tcp()
    local ok = probe:bind("127.0.0.1", port)
    probe:close()
    if ok then return port end
  end
  error("no free loopback port")
end

-- The state of one file's run.
local Run = {}
Run.__index = Run

-- new_run(file, text): the file's scratch directory, its `licensor`, and a
-- free port for each loopback port the file's blocks name.
local function new_run(file, text)
  local dir = os.tmpname()
  os.remove(dir)
  assert(sh_ok("mkdir -p " .. quoted(dir .. "/.docs/bin")))
  local run = setmetatable({ file = file, dir = dir, ports = {}, servers = {}, n = 0 }, Run)
  run.issued = dir .. "/.docs/issued"
  run.root = ROOT
  run:write_command()
  write(dir .. "/.docs/env", "")
  for port in text:gmatch("127%.0%.0%.1:(%d%d%d%d%d?)") do run.ports[port] = false end
  return run
end

-- The checkout's command on the VM under test; the output of `issue` is
-- kept, for KEY.
function Run:write_command()
  local root = self.root
  write(self.dir .. "/.docs/bin/licensor", table.concat({
    "#!/bin/sh",
    "# licensor for docs_spec.lua: the checkout's lua/bin/licensor on " .. VM,
    "case \" $* \" in",
    "  *' issue '*) out=$(" .. VM .. " " .. root .. "/lua/bin/licensor \"$@\"); s=$?",
    "    printf '%s\\n' \"$out\"; printf '%s\\n' \"$out\" >> " .. self.issued .. "; exit $s ;;",
    "esac",
    "exec " .. VM .. " " .. root .. "/lua/bin/licensor \"$@\"", "" }, "\n"))
  assert(sh_ok("chmod 755 " .. quoted(self.dir .. "/.docs/bin/licensor")))
end

-- A checkout the postgres user cannot read (e.g. one under /root) is
-- copied, its modules and builds only, where it can: the blocks of an
-- unprivileged file run on that copy.
function Run:readable_checkout()
  if sh_ok("runuser -u postgres -- test -r " .. quoted(ROOT .. "/lua/bin/licensor")) then return end
  local copy = self.dir .. "/.docs/checkout"
  assert(sh_ok("mkdir -p " .. quoted(copy .. "/build") .. " && cp -r " .. quoted(ROOT .. "/lua") .. " " ..
    quoted(copy) .. " && cp -r " .. quoted(ROOT .. "/build/" .. VM) .. " " .. quoted(copy .. "/build/") ..
    " && { [ ! -d " .. quoted(ROOT .. "/build/luajit") .. " ] || cp -r " .. quoted(ROOT .. "/build/luajit") ..
    " " .. quoted(copy .. "/build/") .. "; } && chmod -R a+rX " .. quoted(copy)), "copying the checkout")
  self.root = copy
  self:write_command()
end

-- The environment every block and server starts from.
function Run:prelude()
  return table.concat({
    "export PATH=" .. quoted(self.dir .. "/.docs/bin:/usr/bin:" .. (os.getenv("PATH") or "")),
    "export LUA_PATH=" .. quoted(self.root .. "/lua/?.lua;" .. self.root .. "/lua/?/init.lua;;"),
    "export LUA_CPATH=" .. quoted(self.root .. "/build/" .. VM .. "/?.so;;"),
    "export LICENSOR_GATEWAY_CPATH=" .. quoted(self.root .. "/build/luajit"),
    "export HOME=" .. quoted(self.dir),
    "unset LICENSOR_DB",
    "cd " .. quoted(self.dir),
    ". ./.docs/env", "" }, "\n")
end

-- The key of the file's latest `licensor issue`, or nil.
function Run:key()
  local text = read(self.issued) or ""
  local key
  for k in text:gmatch("%f[%w]key%s+(%w+%-%w+%-%w+%-%w+)") do key = k end
  for k in text:gmatch('"key":"([%w%-]+)"') do key = k end
  return key
end

function Run:fill(text)
  if text:find("%f[%w_]KEY%f[^%w_]") then
    local key = self:key()
    assert(key, self.file .. ": KEY is used before any `licensor issue` printed a key")
    text = text:gsub("%f[%w_]KEY%f[^%w_]", key)
  end
  text = text:gsub("%f[%w_]FP%f[^%w_]", FP)
  for port, free in pairs(self.ports) do
    if text:find("%f[%d]" .. port .. "%f[%D]") then
      if not free then   -- picked when first used, so that nobody takes it meanwhile
        free = tostring(free_port())
        self.ports[port] = free
      end
      text = text:gsub("%f[%d]" .. port .. "%f[%D]", free)
    end
  end
  return text
end

-- The names a block assigns, to keep for the file's later blocks.
local function assigned(body)
  local names, seen = {}, {}
  for line in (body .. "\n"):gmatch("([^\n]*)\n") do
    local name = line:match("^%s*export%s+([%a_][%w_]*)=") or line:match("^%s*([%a_][%w_]*)=")
    if name and not seen[name] then
      seen[name] = true
      names[#names + 1] = name
    end
  end
  return names
end

-- script(block) -> shell text, checks: each marked command runs inside a
-- check of its exit status, its output kept in .docs/out.N.
function Run:script(body, first_line)
  local out, checks = {}, {}
  local lines = {}
  for line in (body .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local i = 1
  while i <= #lines do
    local start = i
    while lines[i]:match("\\%s*$") and i < #lines do i = i + 1 end
    local last = lines[i]
    local code, status, shown
    local before, marker = last:match("^(.-)%s+#%s*(exit%s+%d+.*)$")
    if before then
      code, status = before, tonumber(marker:match("^exit%s+(%d+)"))
      shown = marker:match("%->%s*(.-)%s*$")
    else
      before, shown = last:match("^(.-)%s+#%s*%->%s*(.-)%s*$")
      if before then code, status = before, 0 end
    end
    if code then
      self.n = self.n + 1
      local n = self.n
      local command = {}
      for j = start, i - 1 do command[#command + 1] = lines[j] end
      command[#command + 1] = code
      local where = ("%s:%d"):format(self.file, first_line + start)
      out[#out + 1] = "if { " .. table.concat(command, "\n") .. "\n} > .docs/out." .. n .. " 2>&1; " ..
        "then __s=0; else __s=$?; fi; cat .docs/out." .. n
      out[#out + 1] = ("[ \"$__s\" = %d ] || { echo 'docs: %s: exit '\"$__s\"', expected %d' >&2; exit 97; }")
        :format(status, where, status)
      checks[#checks + 1] = { n = n, shown = shown, where = where }
    else
      for j = start, i do out[#out + 1] = lines[j] end
    end
    i = i + 1
  end
  local keep = {}
  for _, name in ipairs(assigned(body)) do
    keep[#keep + 1] = ("printf 'export %s=%%s\\n' " ..
      "\"$(printf '%%s' \"${%s-}\" | sed \"s/'/'\\\\\\\\''/g; s/^/'/; s/\\$/'/\")\" >> .docs/env")
      :format(name, name)
  end
  return "set -e\n" .. table.concat(out, "\n") .. "\n" .. table.concat(keep, "\n") .. "\n", checks
end

-- Runs argv in a process group, output to log; -> exit code, log text.
function Run:spawn(argv, log, user)
  local pid = assert(process.spawn(child_env.argv(argv), log, user))
  register(pid, "docs " .. self.file)
  local code, err = process.wait(pid, BLOCK_TIMEOUT_MS)
  if not code then
    process.stop(pid, 0)
    return nil, (read(log) or "") .. "\n" .. tostring(err)
  end
  return code, read(log) or ""
end

-- The user a file's blocks run as: `postgres` for a file with an
-- `unprivileged` block when the suite runs as root, else the suite's.
function Run:user()
  return self.unprivileged and "postgres" or nil
end

function Run:shell_block(b)
  local body = self:fill(b.body)
  local script, checks = self:script(body, b.line)
  local path = ("%s/.docs/block-%d.sh"):format(self.dir, b.line)
  write(path, self:prelude() .. script)
  local code, log = self:spawn({ "sh", path }, path .. ".log", self:user())
  assert(code == 0, ("%s:%d: the block exits %s:\n%s"):format(self.file, b.line, tostring(code), log))
  for _, c in ipairs(checks) do
    if c.shown and c.shown ~= "" then
      local got = read(self.dir .. "/.docs/out." .. c.n) or ""
      assert(squeeze(got):find(squeeze(c.shown), 1, true),
        ("%s: the command's output does not show %q:\n%s"):format(c.where, c.shown, got))
    end
  end
end

function Run:server_block(b)
  local wait = assert(self:fill(b.info):match("^sh%s+server%s+(%S+)"), "sh server WAIT")
  local body = self:fill(b.body)
  local path = ("%s/.docs/server-%d.sh"):format(self.dir, b.line)
  write(path, self:prelude() .. "exec " .. body:gsub("%s+#[^\n]*", "") .. "\n")
  local pid = assert(process.spawn(child_env.argv({ "sh", path }), path .. ".log", self:user()))
  register(pid, "docs server " .. self.file)
  self.servers[#self.servers + 1] = pid
  local host, port = wait:match("^([%d%.]+):(%d+)$")
  for _ = 1, 600 do
    local up
    if host then
      local c = socket.tcp()
      c:settimeout(0.2)
      up = c:connect(host, tonumber(port))
      c:close()
    else
      up = read(wait:sub(1, 1) == "/" and wait or (self.dir .. "/" .. wait)) ~= nil or
        sh_ok("test -e " .. quoted(self.dir .. "/" .. wait))
    end
    if up then return end
    assert(process.alive(pid), ("%s:%d: the server ended:\n%s"):format(self.file, b.line, read(path .. ".log") or ""))
    socket.sleep(0.05)
  end
  error(("%s:%d: the server did not answer at %s:\n%s"):format(self.file, b.line, wait, read(path .. ".log") or ""))
end

-- The file's database for the REPL: LICENSOR_DB as the blocks left it.
function Run:database()
  local p = assert(io.popen(child_env.shell .. "sh -c " .. quoted(self:prelude() .. 'printf "%s" "${LICENSOR_DB:-licensor.db}"')))
  local db = p:read("*a")
  p:close()
  if not db:find("^/") and not db:find("^postgresql:") and not db:find("=") then db = self.dir .. "/" .. db end
  return db
end

-- A transcript: `> input` lines, each followed by the lines it prints.
function Run:repl_block(b)
  local entries = {}
  for line in (self:fill(b.body) .. "\n"):gmatch("([^\n]*)\n") do
    local input = line:match("^> (.*)$")
    if input then entries[#entries + 1] = { input = input, shown = {} }
    elseif #entries > 0 and line ~= "" then table.insert(entries[#entries].shown, line) end
  end
  local i, printed = 0, { [0] = {} }
  local status = cli.main({ "--db", self:database(), "repl" }, {
    out = function() end, err = function() end,
    repl = { read = function()
               i = i + 1
               printed[i] = {}
               return entries[i] and entries[i].input
             end,
             write = function(text)
               if text ~= "> " and text ~= ">> " then table.insert(printed[i], text) end
             end } })
  assert.are.equal(0, status)
  for n, e in ipairs(entries) do
    local got = table.concat(printed[n]):gsub("%s+$", ""):gsub("[ \t]+\n", "\n")
    assert.is_nil(got:find("stack traceback", 1, true))
    if #e.shown > 0 then
      assert.are.equal(table.concat(e.shown, "\n"), got, ("%s:%d: > %s"):format(self.file, b.line, e.input))
    end
  end
end

function Run:lua_block(b)
  local body = self:fill(b.body)
  local chunk = load(body, "=block")
  if not chunk and load("return " .. body, "=block") then body = "return " .. body end
  local path = ("%s/.docs/block-%d.lua"):format(self.dir, b.line)
  write(path, body)
  local script = ("%s/.docs/block-%d.sh"):format(self.dir, b.line)
  write(script, self:prelude() .. "exec " .. VM .. " " .. quoted(path) .. "\n")
  local code, log = self:spawn({ "sh", script }, path .. ".log", self:user())
  assert(code == 0, ("%s:%d: the Lua block fails on %s:\n%s"):format(self.file, b.line, VM_NAME, log))
end

function Run:stop()
  for i = #self.servers, 1, -1 do process.stop(self.servers[i], 2000) end
  self.servers = {}
end

local ran, skipped, other = 0, {}, 0

describe("the documents' examples (" .. VM_NAME .. ")", function()
  for _, file in ipairs(FILES) do
    it(file, function()
      local text = assert(read(ROOT .. "/" .. file), file)
      local list = blocks(text)
      local code = {}
      for _, b in ipairs(list) do code[#code + 1] = b.info .. "\n" .. b.body end
      local run = new_run(file, table.concat(code, "\n"))
      finally(function()
        run:stop()
        sh_ok("rm -rf " .. quoted(run.dir))
      end)
      if ROOT_USER then
        for _, b in ipairs(list) do
          if b.info:find("unprivileged", 1, true) then
            run:readable_checkout()
            assert(sh_ok("chown -R postgres " .. quoted(run.dir)))
            run.unprivileged = true
            break
          end
        end
      end
      for _, b in ipairs(list) do
        local reason = b.info:match("no%-run:%s*(.*)$")
        if reason then
          skipped[#skipped + 1] = ("%s:%d: %s"):format(file, b.line, reason)
        elseif b.lang == "sh" and b.info:match("^sh%s+server") then
          ran = ran + 1
          run:server_block(b)
        elseif b.lang == "sh" then
          ran = ran + 1
          run:shell_block(b)
        elseif b.lang == "lua" and b.body:match("^> ") then
          ran = ran + 1
          run:repl_block(b)
        elseif b.lang == "lua" then
          ran = ran + 1
          run:lua_block(b)
        else
          other = other + 1
        end
      end
    end)
  end

  it("runs nearly all of them", function()
    io.stderr:write(("\ndocs_spec (%s): %d examples run, %d not run, %d blocks of other languages\n")
      :format(VM_NAME, ran, #skipped, other))
    for _, why in ipairs(skipped) do io.stderr:write("  not run: ", why, "\n") end
    -- 40 run and 4 not run when this was written: a document that loses
    -- its examples, or hides them behind no-run, fails here.
    assert.is_true(ran >= 36, "only " .. ran .. " examples ran")
    assert.is_true(#skipped <= 6, #skipped .. " examples are not run")
  end)
end)
