-- Catalogue files (licensor.load_catalogue): a sandboxed Lua script whose
-- failures read "file:line: message".
local licensor = require "licensor"

local function write(source)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(source)
  f:close()
  return path
end

local function load_source(source)
  local path = write(source)
  local a, b, c = licensor.load_catalogue(path)
  os.remove(path)
  return a, b, c, path
end

local GOOD = [[
return {
  products = {
    { id = "app", editions = { "pro" },
      builds = { { number = 1, version = "1.0.1", released = "2020-01-01" } } },
  },
}
]]

describe("catalogue files", function()
  it("load a file that returns a catalogue table", function()
    local cat, t = load_source(GOOD)
    assert.is_userdata(cat)
    assert.are.equal("app", t.products[1].id)
    assert.are.equal(1, cat:build("app", 1).number)
  end)

  it("load a file that declares products and policy as globals", function()
    local cat = load_source([[
policy = { trial_days = 14 }
products = { { id = "app", editions = { "pro" }, builds = {} } }
]])
    assert.are.equal(14, cat:policy().trial_days)
  end)

  it("name the file and line of the build at fault", function()
    local _, msg, code, path = load_source([[
return { products = {
  { id = "app", editions = { "pro" },
    builds = {
      { number = 1, version = "1.0.1", released = "2020-01-01" },
      { number = 2, version = "1.0.2", released = "2019-01-01" },
    } } } }
]])
    assert.are.equal("invalid_catalogue", code)
    assert.are.equal(path .. ":5: product 'app': build 2 released 2019-01-01 is older than build 1 released 2020-01-01", msg)
  end)

  it("name the line of a misspelt policy setting", function()
    local _, msg, code, path = load_source("return {\n  products = {},\n  policy = {\n    ms_months = 12,\n" ..
                                           "    ms_percnt = 20,\n  },\n}\n")
    assert.are.same({ "invalid_catalogue", path .. ":5: policy.ms_percnt is not a policy setting (misspelt?)" },
                    { code, msg })
  end)

  it("report syntax and runtime errors with file:line", function()
    local _, msg, code, path = load_source("return {\n  products = {\n")
    assert.are.equal("invalid_catalogue", code)
    assert.are.equal(path .. ":3:", msg:sub(1, #path + 3))
    _, msg, code, path = load_source("local x = nil\nreturn x.y\n")
    assert.are.equal("invalid_catalogue", code)
    assert.are.equal(path .. ":2:", msg:sub(1, #path + 3))
  end)

  it("run without os, io, require, load, dofile or debug", function()
    for _, name in ipairs({ "os", "io", "require", "load", "loadstring", "dofile", "loadfile", "debug", "package" }) do
      local _, msg, code = load_source("return " .. name .. " and error('reachable') or error('absent')")
      assert.are.equal("invalid_catalogue", code)
      assert.matches("absent", msg, nil, nil, name)
    end
  end)

  it("stop endless loops with an instruction budget (catalogue_limit)", function()
    local _, msg, code = load_source("while true do end")
    assert.are.equal("catalogue_limit", code)
    assert.matches("instruction budget", msg)
  end)

  it("stop runaway memory with a memory budget (catalogue_limit)", function()
    local _, msg, code = load_source("local t = {} for i = 1, 1e9 do t[i] = { i } end")
    assert.are.equal("catalogue_limit", code)
    assert.matches("budget exhausted", msg)
  end)

  it("refuse files that define no catalogue, and missing files with io_error", function()
    assert.are.equal("invalid_catalogue", select(3, load_source("return function() end")))
    local _, msg, code = load_source("local x = 1")
    assert.are.equal("invalid_catalogue", code)
    assert.matches("neither returns", msg)
    assert.are.equal("io_error", select(3, licensor.load_catalogue("/nonexistent/catalogue.lua")))
    assert.has_error(function() licensor.load_catalogue(42) end)
  end)
end)

-- The wall of issue-style attacks: each ends with a clear code within
-- seconds, and leaves the caller untouched.
describe("the catalogue wall", function()
  local function read_source(source)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(source)
    f:close()
    local t0 = os.time()
    local t, msg, code = licensor.read_catalogue(path)
    os.remove(path)
    assert.is_true(os.time() - t0 <= 15, "took " .. (os.time() - t0) .. " s")
    return t, msg, code
  end

  for _, case in ipairs({
    { "a loop that catches its own budget errors", "local function g() while true do end end while true do pcall(g) end" },
    { "string doubling", "local s = 'x' while true do s = s .. s end" },
    { "string.rep with a separator", "return string.rep('x', 1e9, ',')" },
    { "table.concat", "local t = {} for i = 1, 1e6 do t[i] = ('y'):rep(1000) end return table.concat(t)" },
    { "finalizers that loop while the file still runs",
      "for _ = 1, 1e7 do setmetatable({}, { __gc = function() while true do end end }) end return {}" },
  }) do
    it("ends " .. case[1] .. " with catalogue_limit", function()
      local t, msg, code = read_source(case[2])
      assert.are.same({ nil, "catalogue_limit" }, { t, code }, tostring(msg))
    end)
  end

  it("hands back plain data: no metatable, no __index or __gc ever runs in the caller", function()
    local t = assert(read_source([[
      local loop = function() while true do end end
      local inner = setmetatable({ id = "x" }, { __index = loop, __gc = loop, __pairs = loop })
      return setmetatable({ products = { inner } }, { __index = loop, __gc = loop, __len = loop })]]))
    assert.is_nil(getmetatable(t))
    assert.is_nil(getmetatable(t.products[1]))
    assert.are.equal("x", t.products[1].id)
    assert.is_nil(t.missing)           -- would loop forever through __index
    collectgarbage()                   -- would loop forever through __gc
  end)

  it("keeps each file to itself: a patched string library or string metatable stays in its file", function()
    local host_add = getmetatable("").__add   -- Lua 5.4 has one (string arithmetic), LuaJIT none
    assert(read_source([[
      string.format = nil
      string.rep = function() return "patched" end
      local mt = getmetatable("")
      mt.__add = function() return "patched" end
      mt.__index = { upper = function() return "patched" end }
      return { products = {} }]]))
    local t = assert(read_source("return { products = {}, check = string.format('%d-%s', 1, ('x'):upper()) }"))
    assert.are.equal("1-X", t.check)
    assert.are.equal(host_add, getmetatable("").__add)
    assert.are.equal("AB", ("ab"):upper())
    assert.are.equal("xx", string.rep("x", 2))
  end)

  it("keeps the catalogue's data only: functions and other values do not cross", function()
    local t = assert(read_source("return { products = {}, f = function() end, n = 1.5, s = 'a\\0b' }"))
    assert.are.same({ products = {}, n = 1.5, s = "a\0b" }, t)
  end)
end)
