-- Upgrades (R12): the difference between two prices of one major's table.
local fixtures = require "support.fixtures"

local cat = fixtures.catalogue()
local faq = fixtures.faq_license

describe("R12 upgrades", function()
  it("cost price(target) - price(current) in the eligible build's major", function()
    assert.are.equal(79900 - 49900, cat:quote_upgrade(faq(), { level = 10 }, "2019-06-01"))
    assert.are.equal(149900 - 49900, cat:quote_upgrade(faq(), { level = "unlimited" }, "2019-06-01"))
  end)

  it("FAQ: price within the same major version, chosen by the eligible build", function()
    -- Lapsed M&S keeps the license on 13.x even when 14.x exists.
    assert.are.equal(30000, cat:quote_upgrade(faq(), { level = 10 }, "2019-12-01"))
    local current = faq({ ms_expires = "2019-12-06" })
    assert.are.equal(83900 - 52900, cat:quote_upgrade(current, { level = 10 }, "2019-12-01"))
  end)

  it("prices an edition change with the license's own level", function()
    local pro = faq({ edition = "professional", level = 10 })
    assert.are.equal(79900 - 29900, cat:quote_upgrade(pro, { edition = "enterprise" }, "2019-06-01"))
  end)

  it("refuses a lower edition or level with downgrade", function()
    assert.are.equal("downgrade", select(3, cat:quote_upgrade(faq(), { edition = "professional" }, "2019-06-01")))
    local big = faq({ level = 10 })
    assert.are.equal("downgrade", select(3, cat:quote_upgrade(big, { edition = "enterprise", level = 5 }, "2019-06-01")))
    assert.are.equal("downgrade",
      select(3, cat:quote_upgrade(faq({ edition = "professional", level = 10 }),
        { edition = "enterprise", level = 5 }, "2019-06-01")))
  end)

  it("refuses another major with different_major", function()
    assert.are.equal("different_major", select(3, cat:quote_upgrade(faq(), { level = 10, major = 14 }, "2019-06-01")))
    assert.are.equal(30000, cat:quote_upgrade(faq(), { level = 10, major = 13 }, "2019-06-01"))
  end)

  it("refuses the license's own edition and level with same_license", function()
    assert.are.equal("same_license", select(3, cat:quote_upgrade(faq(), {}, "2019-06-01")))
    assert.are.equal("same_license", select(3, cat:quote_upgrade(faq(), { edition = "enterprise", level = 5 }, "2019-06-01")))
  end)

  it("refuses a missing price with no_price", function()
    local mail = { product = "smartermail", edition = "enterprise", level = 250, start = "2017-01-01",
                   ms_expires = "2017-12-31" }
    assert.are.same({ nil, "product 'smartermail' major 15 has no price for the license's own enterprise level 250 " ..
                      "(priced levels: none)", "no_price" }, { cat:quote_upgrade(mail, { level = 500 }, "2018-06-01") })
    mail.ms_expires = nil
    mail.version_lock = 14
    assert.are.same({ nil, "product 'smartermail' major 14 has no price for enterprise level 500 (priced levels: 250)",
                      "no_price" }, { cat:quote_upgrade(mail, { level = 500 }, "2018-06-01") })
    local unpriced = faq({ level = 7 })
    assert.are.same({ nil, "product 'smartertrack' major 13 has no price for the license's own enterprise level 7 " ..
                      "(priced levels: 5, 10, unlimited)", "no_price" },
      { cat:quote_upgrade(unpriced, { level = 10 }, "2019-06-01") })
  end)

  it("orders codes: eligible code, different_major, same_license, downgrade, no_price", function()
    local lease = faq({ kind = "lease", lease_ended = "2018-06-01" })
    assert.are.equal("expired", select(3, cat:quote_upgrade(lease, { level = 10, major = 99 }, "2019-06-01")))
    assert.are.equal("different_major", select(3, cat:quote_upgrade(faq(), { major = 99 }, "2019-06-01")))
    assert.are.equal("same_license", select(3, cat:quote_upgrade(faq({ level = 7 }), {}, "2019-06-01")))
    assert.are.equal("downgrade", select(3, cat:quote_upgrade(faq({ level = 7 }), { level = 6 }, "2019-06-01")))
  end)

  it("needs the license's edition and level and a well-formed target", function()
    local lic = faq()
    lic.level = nil
    assert.are.equal("invalid_license", select(3, cat:quote_upgrade(lic, { level = 10 }, "2019-06-01")))
    assert.are.equal("invalid_request", select(3, cat:quote_upgrade(faq(), { edition = "gold" }, "2019-06-01")))
    assert.are.equal("invalid_request", select(3, cat:quote_upgrade(faq(), { level = 0 }, "2019-06-01")))
    assert.are.equal("invalid_request", select(3, cat:quote_upgrade(faq(), { major = "13" }, "2019-06-01")))
    assert.has_error(function() cat:quote_upgrade(faq(), "enterprise", "2019-06-01") end)
  end)
end)
