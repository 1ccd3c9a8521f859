-- Renewals (R15, licensor.renew) and transfers (R14, licensor.transfer).
local licensor = require "licensor"

local function bought(start, ms_expires, extra)
  local lic = { key = "K", product = "smartertrack", edition = "enterprise", level = 5,
                start = start, ms_expires = ms_expires, addons = { eas = ms_expires } }
  for k, v in pairs(extra or {}) do lic[k] = v end
  return lic
end

describe("R15 renewals", function()
  it("on time extend ms_expires to the next anniversary", function()
    local renewed = licensor.renew(bought("2017-12-07", "2018-12-06"), "2018-11-30")
    assert.are.equal("2019-12-06", renewed.ms_expires)
  end)

  it("anchor anniversaries on the original start, never on clamped dates", function()
    local lic = bought("2024-02-29", "2025-02-27")
    local expiries = {}
    for year = 2025, 2027 do
      lic = licensor.renew(lic, year .. "-02-01")
      expiries[#expiries + 1] = lic.ms_expires
    end
    -- Anniversaries 2026-02-28, 2027-02-28, 2028-02-29.
    assert.are.same({ "2026-02-27", "2027-02-27", "2028-02-28" }, expiries)
  end)

  it("renew add-ons with M&S on the same anniversary", function()
    local lic = bought("2017-12-07", "2018-12-06", { addons = { eas = "2018-12-06", message_sniffer = "2018-06-06" } })
    local renewed = licensor.renew(lic, "2018-12-01")
    assert.are.same({ eas = "2019-12-06", message_sniffer = "2019-12-06" }, renewed.addons)
  end)

  it("after a lapse, from_expiry (default) pays the lapsed time: anniversaries unchanged", function()
    local lic = bought("2017-12-07", "2018-12-06")
    assert.are.equal("2019-12-06", licensor.renew(lic, "2019-03-01").ms_expires)
    -- Even when that leaves M&S still lapsed.
    local late = licensor.renew(lic, "2020-06-01")
    assert.are.equal("2019-12-06", late.ms_expires)
    assert.is_nil(late.ms_start)
  end)

  it("after a lapse, from_renewal starts a new term on the renewal day", function()
    local renewed = licensor.renew(bought("2017-12-07", "2018-12-06"), "2019-03-01", { basis = "from_renewal" })
    assert.are.equal("2020-02-29", renewed.ms_expires)
    assert.are.equal("2019-03-01", renewed.ms_start)
    assert.are.equal("2020-02-29", renewed.addons.eas)
    -- Later on-time renewals follow the new anchor.
    assert.are.equal("2021-02-28", licensor.renew(renewed, "2020-02-20").ms_expires)
  end)

  it("from_renewal changes nothing for an on-time renewal", function()
    local renewed = licensor.renew(bought("2017-12-07", "2018-12-06"), "2018-12-06", { basis = "from_renewal" })
    assert.are.equal("2019-12-06", renewed.ms_expires)
    assert.is_nil(renewed.ms_start)
  end)

  it("honours months and a license bought without M&S", function()
    local lic = bought("2018-01-31", nil)
    lic.addons = nil
    assert.are.equal("2019-01-30", licensor.renew(lic, "2018-03-01").ms_expires)
    -- Monthly terms from 2018-01-31: anniversaries 02-28, 03-31.
    assert.are.equal("2018-03-30", licensor.renew(bought("2018-01-31", "2018-02-27"), "2018-02-01", { months = 1 }).ms_expires)
  end)

  it("leaves the input untouched and copies every other field", function()
    local lic = bought("2017-12-07", "2018-12-06", { owner = "acme" })
    local renewed = licensor.renew(lic, "2018-12-01")
    assert.are.equal("2018-12-06", lic.ms_expires)
    assert.are.equal("2018-12-06", lic.addons.eas)
    assert.are.equal("acme", renewed.owner)
    assert.are_not.equal(lic.addons, renewed.addons)
  end)

  it("refuses leases, trials and malformed licenses with a code; raises on bad options", function()
    assert.are.equal("invalid_license", select(3, licensor.renew({ kind = "lease", start = "2018-01-01" }, "2018-06-01")))
    assert.are.equal("invalid_date", select(3, licensor.renew(bought("2018-02-30", "2019-01-01"), "2018-06-01")))
    assert.are.equal("invalid_date", select(3, licensor.renew(bought("2018-01-01", "2018-12-31"), "June")))
    assert.has_error(function() licensor.renew(bought("2018-01-01", "2018-12-31"), "2018-06-01", { basis = "never" }) end)
    assert.has_error(function() licensor.renew(bought("2018-01-01", "2018-12-31"), "2018-06-01", { months = 0 }) end,
      "bad argument #3 to 'renew' (months must be a whole number from 1 to 120000)")
    assert.has_error(function() licensor.renew("K", "2018-06-01") end)
  end)
end)

describe("R14 transfers", function()
  it("need a written-consent reference", function()
    local lic = bought("2018-01-01", "2018-12-31", { owner = "acme" })
    local copy, msg, code = licensor.transfer(lic, "globex")
    assert.is_nil(copy)
    assert.are.equal("transfer_requires_consent", code)
    assert.matches("consent", msg)
    assert.are.equal("transfer_requires_consent", select(3, licensor.transfer(lic, "globex", { consent = "  " })))
  end)

  it("change the owner on a copy and keep the consent reference", function()
    local lic = bought("2018-01-01", "2018-12-31", { owner = "acme" })
    local copy = licensor.transfer(lic, "globex", { consent = "EULA-2019-0042" })
    assert.are.equal("globex", copy.owner)
    assert.are.equal("EULA-2019-0042", copy.transfer_consent)
    assert.are.equal("acme", lic.owner)
  end)

  it("raise on arguments of the wrong type", function()
    assert.has_error(function() licensor.transfer("K", "globex", { consent = "x" }) end)
    assert.has_error(function() licensor.transfer({}, 5, { consent = "x" }) end)
  end)
end)
