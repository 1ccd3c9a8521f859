-- licensor.files: the one reader and the one writer.  A read never
-- truncates and names what and where; a write leaves either the whole
-- file, mode 0600 (or the umask's narrower), or nothing, and never
-- follows a symlink or replaces a file unless asked.
local files = require "licensor.files"
local helpers = require "spec.support.files"

local function mode_of(path)
  local p = assert(io.popen("stat -c %a " .. path))
  local m = p:read("*l")
  p:close()
  return m
end

-- Did a shell test succeed (Lua 5.4 answers true, LuaJIT 0)?
local function sh(command)
  local r = os.execute(command)
  return r == true or r == 0
end

local function exists(path)
  return sh("test -e " .. path .. " -o -L " .. path)
end

local function listing(dir)
  local p = assert(io.popen("ls -A " .. dir))
  local names = {}
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return table.concat(names, " ")
end

describe("files.read", function()
  local dir
  before_each(function() dir = helpers.temp_dir() end)
  after_each(function() helpers.remove_dir(dir) end)

  it("answers the whole text, past 64 KiB, never truncated", function()
    local text = string.rep("0123456789abcdef", 20000) .. "end"
    helpers.write(dir .. "/big", text)
    assert.are.equal(text, files.read(dir .. "/big", "catalogue"))
    helpers.write(dir .. "/empty", "")
    assert.are.equal("", files.read(dir .. "/empty", "token file"))
    assert.are.equal("", files.read(dir .. "/empty", "token file", 10))
  end)

  it("answers nil, 'WHAT PATH: reason', io_error for a missing file or a directory", function()
    local text, msg, code = files.read(dir .. "/nope", "signing key")
    assert.is_nil(text)
    assert.are.equal("signing key " .. dir .. "/nope: No such file or directory", msg)
    assert.are.equal("io_error", code)
    text, msg, code = files.read(dir, "token file")
    assert.is_nil(text)
    assert.are.equal("token file " .. dir .. ": Is a directory", msg)
    assert.are.equal("io_error", code)
  end)

  it("refuses a file larger than an explicit max as too_large, naming the limit", function()
    helpers.write(dir .. "/f", string.rep("x", 101))
    local text, msg, code = files.read(dir .. "/f", "secret file", 100)
    assert.is_nil(text)
    assert.are.equal("secret file " .. dir .. "/f: is larger than 100 bytes", msg)
    assert.are.equal("too_large", code)
    assert.are.equal(string.rep("x", 101), files.read(dir .. "/f", "secret file", 101))
  end)
end)

describe("files.write", function()
  local dir
  before_each(function() dir = helpers.temp_dir() end)
  after_each(function() helpers.remove_dir(dir) end)

  it("creates a new file 0600 by default, with exactly the text", function()
    assert.is_true(files.write(dir .. "/k", "secret\n"))
    assert.are.equal("secret\n", files.read(dir .. "/k"))
    assert.are.equal("600", mode_of(dir .. "/k"))
    assert.are.equal("k", listing(dir))   -- no temporary left behind
  end)

  it("lets the umask narrow the mode, never widen it", function()
    assert.is_true(files.write(dir .. "/pub", "public\n", { mode = tonumber("644", 8) }))
    local m = mode_of(dir .. "/pub")
    assert.is_true(m == "644" or m == "640" or m == "600", m)
  end)

  it("never replaces an existing file unless asked", function()
    helpers.write(dir .. "/f", "old")
    local ok, msg, code = files.write(dir .. "/f", "new", { what = "export" })
    assert.is_nil(ok)
    assert.are.equal("export " .. dir .. "/f: File exists", msg)
    assert.are.equal("exists", code)
    assert.are.equal("old", files.read(dir .. "/f"))
    assert.is_true(files.write(dir .. "/f", "new", { replace = true }))
    assert.are.equal("new", files.read(dir .. "/f"))
    assert.are.equal("600", mode_of(dir .. "/f"))
    assert.are.equal("f", listing(dir))
  end)

  it("never follows a symlink, dangling or not, and replaces the link itself when asked", function()
    helpers.write(dir .. "/target", "victim")
    assert.is_true(sh("ln -s " .. dir .. "/target " .. dir .. "/link"))
    assert.is_true(sh("ln -s " .. dir .. "/nowhere " .. dir .. "/dangling"))
    local ok, _, code = files.write(dir .. "/link", "attack")
    assert.is_nil(ok)
    assert.are.equal("exists", code)
    ok, _, code = files.write(dir .. "/dangling", "attack")
    assert.is_nil(ok)
    assert.are.equal("exists", code)
    assert.is_false(exists(dir .. "/nowhere"))
    assert.is_true(files.write(dir .. "/link", "new", { replace = true }))
    assert.are.equal("victim", files.read(dir .. "/target"))
    assert.are.equal("new", files.read(dir .. "/link"))
    assert.is_true(sh("test ! -L " .. dir .. "/link"))
  end)

  it("refuses a directory, and a directory that does not exist, leaving nothing", function()
    local ok, msg, code = files.write(dir, "x", { replace = true })
    assert.is_nil(ok)
    assert.are.equal("io_error", code)
    assert.matches("Is a directory", msg)
    ok, msg, code = files.write(dir .. "/no/such/f", "x")
    assert.is_nil(ok)
    assert.are.equal("io_error", code)
    assert.matches("No such file or directory", msg)
    assert.are.equal("", listing(dir))
  end)

  it("answers io_error for a full disk (/dev/full) when asked to write a device", function()
    local ok, msg, code = files.write("/dev/full", "some text", { device = true, what = "export" })
    assert.is_nil(ok)
    assert.are.equal("export /dev/full: No space left on device", msg)
    assert.are.equal("io_error", code)
    assert.is_true(files.write("/dev/null", "some text", { device = true }))
  end)

  it("writes a FIFO in place when asked, and refuses a device it was not told about", function()
    assert.is_true(sh("mkfifo " .. dir .. "/fifo"))
    local reader = assert(io.popen("cat " .. dir .. "/fifo"))
    assert.is_true(files.write(dir .. "/fifo", "through the pipe", { device = true }))
    assert.are.equal("through the pipe", reader:read("*a"))
    reader:close()
    local ok, _, code = files.write("/dev/null", "x")
    assert.is_nil(ok)
    assert.are.equal("exists", code)
    ok, _, code = files.write("/dev/null", "x", { replace = true })
    assert.is_nil(ok)
    assert.are.equal("exists", code)
  end)

  it("leaves no temporary file when a write fails half way (a read-only directory)", function()
    assert.is_true(sh("chmod 500 " .. dir))
    local ok, _, code = files.write(dir .. "/f", "x")
    assert.is_true(sh("chmod 700 " .. dir))
    if not sh("test $(id -u) = 0") then
      assert.is_nil(ok)
      assert.are.equal("io_error", code)
    end
    local names = listing(dir)
    assert.is_true(names == "" or names == "f", names)
  end)
end)

describe("files.lstat", function()
  local dir
  before_each(function() dir = helpers.temp_dir() end)
  after_each(function() helpers.remove_dir(dir) end)

  it("answers the name's own owner, permission bits and kind, never a symlink's target's", function()
    helpers.write(dir .. "/f", "x")
    assert.is_true(sh("chmod 1750 " .. dir .. " && chmod 640 " .. dir .. "/f && ln -s f " .. dir .. "/l"))
    local uid = tonumber(io.popen("id -u"):read("*l"))
    assert.are.same({ uid = uid, mode = 1000, kind = "directory", special = false }, files.lstat(dir))  -- 01750
    assert.are.same({ uid = uid, mode = 416, kind = "file", special = false }, files.lstat(dir .. "/f"))  -- 0640
    assert.are.equal("link", files.lstat(dir .. "/l").kind)
    local st, msg, code = files.lstat(dir .. "/none")
    assert.are.same({ nil, dir .. "/none: No such file or directory", "io_error" }, { st, msg, code })
  end)

  it("files.stat answers what a symlink names, and says which names are devices, FIFOs or sockets", function()
    helpers.write(dir .. "/f", "x")
    assert.is_true(sh("ln -s f " .. dir .. "/l && ln -s /dev/null " .. dir .. "/null && mkfifo " .. dir .. "/p"))
    assert.are.same({ "file", false }, { files.stat(dir .. "/l").kind, files.stat(dir .. "/l").special })
    assert.is_true(files.stat(dir .. "/null").special)                 -- a character device, through a link
    assert.is_true(files.stat(dir .. "/p").special)                    -- a FIFO: looked at, never opened
    assert.is_false(files.lstat(dir .. "/null").special)               -- the link itself
    assert.are.equal("io_error", select(3, files.stat(dir .. "/none")))
  end)
end)
