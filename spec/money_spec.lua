-- Money for people (lua/licensor/money.lua): integer minor units written
-- with the currency's symbol, thousands separators and two decimals.
local money = require "licensor.money"

describe("money", function()
  it("writes minor units with a symbol, separators and decimals", function()
    assert.are.same({ "$330.00", "$1,100.00", "$0.05", "-$12.34", "$1,234,567.89" },
      { money.format(33000), money.format(110000, "USD"), money.format(5), money.format(-1234),
        money.format(123456789) })
    assert.are.same({ "€99.00", "£1.50", "CHF 12.50", "¥1,200" },
      { money.format(9900, "EUR"), money.format(150, "GBP"), money.format(1250, "CHF"), money.format(1200, "JPY") })
  end)
end)
