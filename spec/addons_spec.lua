-- Add-ons (R8) and cat:status: an add-on works while the license is valid,
-- its own year is paid and M&S runs, and only on the newest major.
local fixtures = require "support.fixtures"

local cat = fixtures.catalogue()

-- The FAQ license with EAS paid to its M&S expiry.
local function with_eas(overrides)
  local lic = fixtures.faq_license({ addons = { eas = "2018-12-06" } })
  for k, v in pairs(overrides or {}) do lic[k] = v end
  return lic
end

describe("R8 add-ons", function()
  it("are active while the license is valid, paid and on M&S", function()
    assert.are.equal("active", cat:addon_status(with_eas(), "eas", "2018-12-06"))
  end)

  it("FAQ: stop working when M&S lapses, even if the add-on year was paid on", function()
    local lic = with_eas({ addons = { eas = "2019-06-30" } })
    assert.are.equal("ms_expired", cat:addon_status(lic, "eas", "2018-12-07"))
  end)

  it("expire when their own year lapses (expired beats ms_expired)", function()
    assert.are.equal("expired", cat:addon_status(with_eas(), "eas", "2018-12-07"))
    local renewed_ms = with_eas({ ms_expires = "2019-12-06" })
    assert.are.equal("expired", cat:addon_status(renewed_ms, "eas", "2019-01-01"))
  end)

  it("are not_owned when the license never bought them, whatever else", function()
    assert.are.equal("not_owned", cat:addon_status(with_eas(), "message_sniffer", "2018-06-01"))
    assert.are.equal("not_owned",
      cat:addon_status(with_eas({ disabled = "2018-01-01" }), "message_sniffer", "2018-06-01"))
  end)

  it("report license_invalid before their own expiry", function()
    local lic = with_eas({ disabled = "2018-06-01" })
    assert.are.equal("license_invalid", cat:addon_status(lic, "eas", "2019-06-01"))
    assert.are.equal("license_invalid", cat:addon_status(with_eas(), "eas", "2017-01-01"))
  end)

  it("require the newest major released by the day when the installed build is given", function()
    local lic = with_eas({ ms_expires = "2019-12-06", addons = { eas = "2019-12-06" } })
    assert.are.equal("active", cat:addon_status(lic, "eas", "2019-03-01", 6947))
    assert.are.equal("requires_upgrade", cat:addon_status(lic, "eas", "2019-03-15", 6947))
    assert.are.equal("active", cat:addon_status(lic, "eas", "2019-03-15", 7010))
    lic.addons = { eas = "2020-06-30" }
    assert.are.equal("ms_expired", cat:addon_status(lic, "eas", "2019-12-07", 6947))
  end)

  it("work for active leases and trials, which have no M&S", function()
    local lease = { product = "smartertrack", kind = "lease", start = "2018-01-01",
                    addons = { eas = "2019-12-31" } }
    assert.are.equal("active", cat:addon_status(lease, "eas", "2019-06-01"))
    lease.lease_ended = "2019-03-01"
    assert.are.equal("license_invalid", cat:addon_status(lease, "eas", "2019-06-01"))
    local trial = { product = "smartertrack", kind = "trial", start = "2019-01-01",
                    addons = { eas = "2019-01-30" } }
    assert.are.equal("active", cat:addon_status(trial, "eas", "2019-01-15"))
    assert.are.equal("license_invalid", cat:addon_status(trial, "eas", "2019-02-15"))
  end)

  it("answer data problems with nil, message, code", function()
    local _, msg, code = cat:addon_status(with_eas({ addons = { eas = "2018-02-30" } }), "eas", "2018-06-01")
    assert.are.equal("invalid_date", code)
    assert.matches("eas", msg)
    assert.are.equal("unknown_build", select(3, cat:addon_status(with_eas(), "eas", "2018-06-01", 1)))
    assert.are.equal("invalid_license", select(3, cat:addon_status(with_eas({ addons = "eas" }), "eas", "2018-06-01")))
    assert.has_error(function() cat:addon_status(with_eas(), nil, "2018-06-01") end)
  end)
end)

describe("cat:status", function()
  it("summarises a lapsed perpetual license as the FAQ's license page does", function()
    local status = cat:status(with_eas(), "2019-06-01")
    assert.are.same({
      valid = true, state = "active", kind = "perpetual", ms = "expired",
      ms_expires = "2018-12-06", updates = false,
      eligible = { number = 6911, version = "13.5.6911", major = 13, released = "2018-12-03" },
      addons = { eas = "expired" },
    }, status)
  end)

  it("reports active M&S with updates and active add-ons", function()
    local status = cat:status(with_eas(), "2018-12-01")
    assert.are.equal("active", status.ms)
    assert.is_true(status.updates)
    assert.are.same({ eas = "active" }, status.addons)
  end)

  it("reports disabled and expired licenses with their code and no eligible build", function()
    local disabled = cat:status(with_eas({ disabled = "2018-06-01" }), "2018-07-01")
    assert.are.same({ false, "disabled", "disabled" }, { disabled.valid, disabled.state, disabled.code })
    assert.is_nil(disabled.eligible)
    local lease = cat:status({ product = "smartertrack", kind = "lease", start = "2018-01-01",
                               lease_ended = "2018-09-01" }, "2019-01-01")
    assert.are.same({ false, "expired", "none", false }, { lease.valid, lease.state, lease.ms, lease.updates })
  end)

  it("says ms = none for a perpetual license bought without M&S", function()
    local lic = with_eas({ start = "2018-06-01" })
    lic.ms_expires = nil
    assert.are.equal("none", cat:status(lic, "2019-01-01").ms)
  end)

  it("leaves the shared build records untouched", function()
    cat:status(with_eas(), "2019-06-01")
    assert.are.same({ number = 6911, version = "13.5.6911", major = 13, released = "2018-12-03" },
      cat:build("smartertrack", 6911))
    assert.are.equal(7, #cat:builds("smartertrack"))
  end)

  it("returns nil, message, code for malformed licenses", function()
    assert.are.equal("unknown_product", select(3, cat:status({ product = "x", start = "2018-01-01" })))
    assert.are.equal("invalid_date", select(3, cat:status(with_eas({ start = "soon" }))))
  end)
end)
