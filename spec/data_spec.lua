-- Catalogue data as text (csrc/data.c, csrc/l_data.c): what the store keeps
-- and gateways read back.  The reader runs no code and accepts nothing but
-- literal data; the writer reads tables raw and always writes the same text
-- for the same data.
local core = require "licensor.core"
local fixtures = require "support.fixtures"

describe("the data reader", function()
  it("reads what the writer wrote, for the whole fixture catalogue", function()
    local t = fixtures.catalogue_table()
    local text = assert(core.write_data(t))
    assert.are.same(t, assert(core.read_data(text)))
    assert.are.equal(text, core.write_data(core.read_data(text)))
  end)

  it("reads Lua's literal forms: both quotes, escapes, bare values, ';' and a trailing separator", function()
    local t = assert(core.read_data([=[return { 'a', "b\tc\\\"", [3] = -1.5e3, x = { true, false; }, ["k y"] = "\65\x42", }]=]))
    assert.are.same({ "a", 'b\tc\\"', -1500, x = { true, false }, ["k y"] = "AB" }, t)
  end)

  it("refuses code, names and anything that is not a literal, with the line", function()
    for _, text in ipairs({
      "return os.exit()", "return { a = b }", "return { a = 1 + 1 }", "return function() end",
      "return { a = nil }", "return {} {}", "return { a = 1 } --comment", "return {\n\n a = }",
      "return { [{}] = 1 }", "return 'unfinished", "return { a = 0x10 }", "return { 1e400 }",
      "return " .. string.rep("{", 70) .. string.rep("}", 70), "return \"bad \\q escape\"", "",
    }) do
      local t, msg, code = core.read_data(text, "catalogue version 1")
      assert.are.same({ nil, "invalid_catalogue" }, { t, code }, text)
      assert.matches("^catalogue version 1: line %d+: ", msg)
    end
    assert.matches("line 3:", select(2, core.read_data("return {\n\n a = }")))
  end)
end)

describe("the data writer", function()
  it("writes keys in a stable order and never calls a metamethod", function()
    local loop = function() error("a metamethod ran") end
    local t = setmetatable({ b = 1, a = setmetatable({ 2, 1 }, { __index = loop, __pairs = loop }), [2] = "x" },
      { __index = loop, __newindex = loop, __pairs = loop, __len = loop })
    assert.are.equal('return {[2]="x",a={[1]=2,[2]=1},b=1}', core.write_data(t))
  end)

  it("refuses cycles, infinities and non-data roots with invalid_catalogue", function()
    local cyclic = {}
    cyclic.self = cyclic
    assert.are.equal("invalid_catalogue", select(3, core.write_data(cyclic)))
    assert.are.equal("invalid_catalogue", select(3, core.write_data({ x = math.huge })))
    assert.are.equal("invalid_catalogue", select(3, core.write_data(print)))
  end)
end)
