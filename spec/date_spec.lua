-- Dates (doc/rules.md section 1): strict YYYY-MM-DD, day numbers, terms and
-- anniversaries with month-end clamping.
local licensor = require "licensor"

local function civil_string(y, m, d)
  return string.format("%04d-%02d-%02d", y, m, d)
end

local function days_in(y, m)
  local lengths = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
  if m == 2 and (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) then return 29 end
  return lengths[m]
end

describe("dates", function()
  it("round-trips every day from 0001-01-01 to 9999-12-31 in order", function()
    local day = licensor.day("0001-01-01")
    local mismatches, count = 0, 0
    for y = 1, 9999 do
      for m = 1, 12 do
        for d = 1, days_in(y, m) do
          local s = civil_string(y, m, d)
          if licensor.day(s) ~= day or licensor.date(day) ~= s then mismatches = mismatches + 1 end
          day = day + 1
          count = count + 1
        end
      end
    end
    assert.are.equal(0, mismatches)
    assert.are.equal(3652059, count)
    assert.are.equal(licensor.day("9999-12-31") + 1, day)
  end)

  it("counts days from 1970-01-01 and matches build-number days since 2000-01-01", function()
    assert.are.equal(0, licensor.day("1970-01-01"))
    assert.are.equal(10957, licensor.day("2000-01-01"))
    assert.are.equal(6911, licensor.day("2018-12-03") - licensor.day("2000-01-01"))
  end)

  it("rejects every malformed date with invalid_date naming the field", function()
    local bad = { "2018-02-30", "2018-2-3", "2018-02-03T00:00", "2019-02-29", "1900-02-29",
                  "0000-01-01", "10000-01-01", "2018-13-01", "2018-00-10", "2018-01-00",
                  "2018-01-32", " 2018-01-01", "2018-01-01 ", "2018/01/01", "", "abcd-ef-gh",
                  "2018-01-0\0", "+018-01-01", "-018-01-01" }
    for _, s in ipairs(bad) do
      local v, msg, code = licensor.day(s)
      assert.is_nil(v, s)
      assert.are.equal("invalid_date", code)
      assert.matches("date", msg)
    end
    for _, v in ipairs({ 20180203, true, {}, 0 / 0 }) do
      local r, _, code = licensor.day(v)
      assert.is_nil(r)
      assert.are.equal("invalid_date", code)
    end
  end)

  it("accepts leap days only in leap years", function()
    assert.is_number(licensor.day("2000-02-29"))
    assert.is_number(licensor.day("2024-02-29"))
    assert.is_nil((licensor.day("2100-02-29")))
  end)

  it("licensor.date refuses days outside years 1..9999", function()
    assert.are.equal("invalid_date", select(3, licensor.date(licensor.day("9999-12-31") + 1)))
    assert.are.equal("invalid_date", select(3, licensor.date(licensor.day("0001-01-01") - 1)))
    assert.has_error(function() licensor.date(1.5) end)
    assert.has_error(function() licensor.date("x") end)
  end)

  it("today is a valid date string", function()
    assert.matches("^%d%d%d%d%-%d%d%-%d%d$", licensor.today())
    assert.is_number(licensor.day(licensor.today()))
  end)
end)

describe("terms (doc/rules.md section 1)", function()
  it("M&S bought 2017-12-07 for 12 months expires 2018-12-06", function()
    assert.are.equal("2018-12-06", licensor.term("2017-12-07", 12))
  end)

  it("clamps the anniversary to the end of a shorter month", function()
    assert.are.equal("2025-02-27", licensor.term("2024-02-29", 12))  -- A = 2025-02-28
    assert.are.equal("2019-02-27", licensor.term("2018-01-31", 1 + 12))  -- A = 2019-02-28
    assert.are.equal("2018-04-29", licensor.term("2018-01-31", 3))  -- A = 2018-04-30
    assert.are.equal("2024-02-28", licensor.term("2024-01-31", 1))  -- A = 2024-02-29
  end)

  it("covers whole months across year ends", function()
    assert.are.equal("2019-01-14", licensor.term("2018-02-15", 11))
    assert.are.equal("2020-12-31", licensor.term("2020-01-01", 12))
  end)

  it("refuses a term that leaves the calendar and bad arguments", function()
    assert.are.equal("invalid_date", select(3, licensor.term("9999-06-01", 12)))
    assert.are.equal("invalid_date", select(3, licensor.term("2018-02-30", 12)))
    assert.has_error(function() licensor.term("2018-01-01", 0) end)
    assert.has_error(function() licensor.term("2018-01-01", 1.5) end)
    assert.has_error(function() licensor.term("2018-01-01") end)
  end)
end)
