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

  it("stop endless loops with an instruction budget", function()
    local _, msg, code = load_source("while true do end")
    assert.are.equal("invalid_catalogue", code)
    assert.matches("instruction budget", msg)
  end)

  it("stop runaway memory with a memory budget and bounded string.rep", function()
    local _, msg = load_source("local t = {} for i = 1, 1e9 do t[i] = { i } end")
    assert.matches("memory budget", msg)
    _, msg = load_source("local s = ('x'):rep(1e10) return {}")
    assert.matches("string%.rep", msg)
    -- The caller's string metatable is restored afterwards.
    assert.are.equal(("ab"):rep(3), "ababab")
    assert.are.equal(string, getmetatable("").__index)
  end)

  it("refuse files that define no catalogue, and missing files with io_error", function()
    local _, msg, code = load_source("local x = 1")
    assert.are.equal("invalid_catalogue", code)
    assert.matches("neither returns", msg)
    assert.are.equal("io_error", select(3, licensor.load_catalogue("/nonexistent/catalogue.lua")))
    assert.has_error(function() licensor.load_catalogue(42) end)
  end)
end)
