-- licensor.pretty: tables as sorted, indented Lua-like text for people at
-- the REPL and the command line.
local pretty = require "licensor.pretty"

describe("pretty", function()
  it("formats records with sorted keys and lists in order, nested", function()
    assert.are.equal('{\n  a = 1,\n  b = "x",\n  list = {\n    1,\n    2,\n  },\n}',
      pretty.format({ b = "x", a = 1, list = { 1, 2 } }))
    assert.are.equal("{}", pretty.format({}))
    assert.are.equal('"text"', pretty.format("text"))
  end)

  it("marks cycles instead of looping", function()
    local t = { name = "loop" }
    t.self = t
    assert.matches("self = <cycle>", pretty.format(t))
  end)

  it("makes a REPL print that formats tables and leaves other values alone", function()
    local out
    local print_for_repl = pretty.repl_print(function(line) out = line end)
    print_for_repl({ number = 6911 }, 5, nil)
    assert.are.equal("{\n  number = 6911,\n}\t5\tnil", out)
  end)
end)
