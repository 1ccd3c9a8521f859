-- Files and modes: what licensor creates is private (0600, or the umask's
-- narrower) and never lands through a symlink or on an existing file.
local licensor = require "licensor"
local certificate = require "licensor.certificate"
local helpers = require "spec.support.files"

local function sh(command)
  local r = os.execute(command)
  return r == true or r == 0
end

local function mode_of(path)
  local p = assert(io.popen("stat -c %a '" .. path .. "' 2>/dev/null"))
  local m = p:read("*l")
  p:close()
  return m
end

describe("a new SQLite database", function()
  local dir
  before_each(function() dir = helpers.temp_dir() end)
  after_each(function() helpers.remove_dir(dir) end)

  it("is created 0600, and so are its -wal and -shm files", function()
    local path = dir .. "/licenses.db"
    local store = assert(licensor.open(path))   -- migrating it wrote the WAL
    assert.are.equal("600", mode_of(path))
    assert.are.equal("600", mode_of(path .. "-wal"))
    assert.are.equal("600", mode_of(path .. "-shm"))
    store:close()
    assert.are.equal("600", mode_of(path))
  end)

  it("keeps the mode of a database that exists already", function()
    local path = dir .. "/licenses.db"
    assert(licensor.open(path)):close()
    assert.is_true(sh("chmod 640 " .. path))
    assert(licensor.open(path)):close()
    assert.are.equal("640", mode_of(path))
  end)
end)

describe("a new SQLite database through a symlink", function()
  local dir
  before_each(function() dir = helpers.temp_dir() end)
  after_each(function() helpers.remove_dir(dir) end)

  it("is refused when the symlink's target does not exist (SQLite would create it 0644)", function()
    assert.is_true(sh("ln -s " .. dir .. "/target.db " .. dir .. "/link.db"))
    local store, msg = licensor.open(dir .. "/link.db")
    assert.is_nil(store)
    assert.matches("link.db: a symlink to no file (a new database is never created through a symlink", msg, 1, true)
    assert.is_nil(io.open(dir .. "/target.db"))
  end)

  it("opens an existing database through a symlink", function()
    assert(licensor.open(dir .. "/target.db")):close()
    assert.is_true(sh("ln -s " .. dir .. "/target.db " .. dir .. "/link.db"))
    assert(licensor.open(dir .. "/link.db")):close()
    assert.are.equal("600", mode_of(dir .. "/target.db"))
  end)
end)

describe("store:backup and copy's SQLite target", function()
  local dir, store
  before_each(function()
    dir = helpers.temp_dir()
    store = assert(licensor.open(dir .. "/licenses.db"))
    -- A table, not a file: a file's catalogue runs in a sandbox process,
    -- which does not survive the valgrind round this spec is part of.
    assert(store:import(require("support.fixtures").catalogue_table()))
  end)
  after_each(function()
    store:close()
    helpers.remove_dir(dir)
  end)
  local copy = require("licensor.store.copy").copy

  it("create a new file 0600", function()
    assert(store:backup(dir .. "/backup.db"))
    assert.are.equal("600", mode_of(dir .. "/backup.db"))
    assert(copy(dir .. "/licenses.db", dir .. "/copy.db"))
    assert.are.equal("600", mode_of(dir .. "/copy.db"))
    assert(licensor.open(dir .. "/copy.db")):close()
  end)

  it("never write through a symlink, dangling or not, nor over an existing name", function()
    helpers.write(dir .. "/victim", "precious")
    assert.is_true(sh("ln -s " .. dir .. "/victim " .. dir .. "/to-victim"))
    assert.is_true(sh("ln -s " .. dir .. "/nothing " .. dir .. "/to-nothing"))
    for _, path in ipairs({ dir .. "/to-victim", dir .. "/to-nothing", dir .. "/victim" }) do
      local ok, msg, code = store:backup(path)
      assert.are.same({ nil, "exists" }, { ok, code }, msg)
      ok, msg, code = copy(dir .. "/licenses.db", path)
      assert.are.same({ nil, "exists" }, { ok, code }, msg)
      assert.is_nil(io.open(path .. "-journal"))
    end
    local f = assert(io.open(dir .. "/victim"))
    assert.are.equal("precious", f:read("*a"))
    f:close()
    assert.is_nil(io.open(dir .. "/nothing"))
  end)
end)

describe("certificate.new_key_files (keys new --out)", function()
  local dir
  before_each(function() dir = helpers.temp_dir() end)
  after_each(function() helpers.remove_dir(dir) end)

  it("writes the key 0600 and the public key beside it", function()
    local pub, id = certificate.new_key_files(dir .. "/k")
    assert.matches("^licensor%-public%-key 1\nid: " .. id, pub)
    assert.are.equal("600", mode_of(dir .. "/k"))
    local m = mode_of(dir .. "/k.pub")
    assert.is_true(m == "644" or m == "640" or m == "600", m)
    local f = assert(io.open(dir .. "/k.pub"))
    assert.are.equal(pub, f:read("*a"))
    f:close()
  end)

  it("never writes k.pub through a symlink, and leaves no k behind", function()
    helpers.write(dir .. "/victim", "precious")
    assert.is_true(sh("ln -s " .. dir .. "/victim " .. dir .. "/k.pub"))
    local pub, msg, code = certificate.new_key_files(dir .. "/k")
    assert.is_nil(pub)
    assert.are.equal("exists", code)
    assert.matches("public key " .. dir .. "/k.pub", msg, 1, true)
    local f = assert(io.open(dir .. "/victim"))
    assert.are.equal("precious", f:read("*a"))
    f:close()
    assert.is_nil(io.open(dir .. "/k"))
  end)

  it("never writes over an existing k.pub or k", function()
    helpers.write(dir .. "/k.pub", "old public")
    local pub, _, code = certificate.new_key_files(dir .. "/k")
    assert.is_nil(pub)
    assert.are.equal("exists", code)
    assert.is_nil(io.open(dir .. "/k"))
    os.remove(dir .. "/k.pub")
    helpers.write(dir .. "/k", "old secret")
    pub, _, code = certificate.new_key_files(dir .. "/k")
    assert.is_nil(pub)
    assert.are.equal("exists", code)
    assert.is_nil(io.open(dir .. "/k.pub"))
    local f = assert(io.open(dir .. "/k"))
    assert.are.equal("old secret", f:read("*a"))
    f:close()
  end)
end)
