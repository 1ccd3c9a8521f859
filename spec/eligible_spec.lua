-- Eligibility (R1-R7) and cat:can_install (R5): which build a license may
-- install on a day, and the codes in the order of doc/rules.md section 5.
local fixtures = require "support.fixtures"

local cat = fixtures.catalogue()
local faq = fixtures.faq_license

local function eligible_number(lic, on)
  local build, msg, code = cat:eligible(lic, on)
  if not build then return code, msg end
  return build.number
end

describe("R1 perpetual licenses", function()
  it("never expire: a license without M&S is still valid decades later", function()
    local lic = faq({ start = "2018-06-01" })
    lic.ms_expires = nil
    assert.are.equal(6700, eligible_number(lic, "2090-01-01"))
    assert.is_true(cat:status(lic, "2090-01-01").valid)
  end)

  it("only disabled ends them, from the disabled day on", function()
    local lic = faq({ disabled = "2019-02-01" })
    assert.are.equal(6911, eligible_number(lic, "2019-01-31"))
    local build, msg, code = cat:eligible(lic, "2019-02-01")
    assert.is_nil(build)
    assert.are.equal("disabled", code)
    assert.matches("ST%-FAQ", msg)
    assert.matches("2019%-02%-01", msg)
  end)

  it("are not valid before their start (not_started)", function()
    local lic = faq({ start = "2018-06-01", ms_expires = "2019-05-31" })
    assert.are.equal("not_started", eligible_number(lic, "2018-05-31"))
    assert.are.equal(6700, eligible_number(lic, "2018-06-01"))
  end)
end)

describe("R2 active M&S", function()
  it("may install the newest build released on or before the day", function()
    assert.are.equal(6855, eligible_number(faq(), "2018-12-02"))
    assert.are.equal(6911, eligible_number(faq(), "2018-12-03"))
  end)

  it("is active through ms_expires inclusive", function()
    local lic = faq({ ms_expires = "2019-01-11" })
    assert.are.equal(6947, eligible_number(lic, "2019-01-11"))
  end)
end)

describe("R3 lapsed M&S", function()
  it("FAQ: M&S expired 2018-12-06 -> SmarterTrack build 6911 (released 2018-12-03)", function()
    local build = cat:eligible(faq(), "2019-06-01")
    assert.are.same({ number = 6911, version = "13.5.6911", major = 13, released = "2018-12-03" }, build)
  end)

  it("stays on the build of its expiry however much later it is asked", function()
    assert.are.equal(6911, eligible_number(faq(), "2030-01-01"))
  end)

  it("without any M&S: the newest build released on or before start", function()
    local lic = faq({ start = "2018-10-08" })
    lic.ms_expires = nil
    assert.are.equal(6855, eligible_number(lic, "2019-06-01"))
  end)

  it("no_build when nothing was released by the cutoff", function()
    local lic = faq({ start = "2018-01-01" })
    lic.ms_expires = nil
    assert.are.equal("no_build", eligible_number(lic, "2019-06-01"))
  end)
end)

describe("R4 version lock", function()
  local locked = { key = "SM-14", product = "smartermail", edition = "professional", level = 250,
                   start = "2016-10-01", version_lock = 14 }

  it("FAQ: a SmarterMail 14.x license may activate on 14.7.6347, the last 14.x", function()
    assert.are.same({ number = 6347, version = "14.7.6347", major = 14, released = "2017-05-18" },
      cat:eligible(locked, "2026-11-26"))
  end)

  it("takes the last build of its major released by the day, whatever its M&S", function()
    assert.are.equal(6290, eligible_number(locked, "2017-04-01"))
    local with_ms = {}
    for k, v in pairs(locked) do with_ms[k] = v end
    with_ms.ms_expires = "2030-01-01"
    assert.are.equal(6347, eligible_number(with_ms, "2019-01-01"))
  end)

  it("no_build when its major has no build yet or at all", function()
    local early = {}
    for k, v in pairs(locked) do early[k] = v end
    early.start = "2016-01-01"
    assert.are.equal("no_build", eligible_number(early, "2016-06-01"))
    early.version_lock = 99
    assert.are.equal("no_build", eligible_number(early, "2026-06-01"))
  end)
end)

describe("R5 backwards compatibility (cat:can_install)", function()
  it("allows the eligible build and any earlier build, of any major", function()
    assert.is_true(cat:can_install(faq(), 6911, "2019-06-01"))
    assert.is_true(cat:can_install(faq(), 6790, "2019-06-01"))
    assert.is_true(cat:can_install(faq(), 6700, "2019-06-01"))
  end)

  it("refuses a newer build with newer_than_eligible", function()
    local ok, msg, code = cat:can_install(faq(), 6947, "2019-06-01")
    assert.is_false(ok)
    assert.are.equal("newer_than_eligible", code)
    assert.matches("6947", msg)
  end)

  it("orders its codes: unknown_product, unknown_build, eligible code, newer_than_eligible", function()
    assert.are.equal("unknown_product", select(3, cat:can_install(faq({ product = "x" }), 1, "2019-06-01")))
    assert.are.equal("unknown_build", select(3, cat:can_install(faq({ kind = "bogus" }), 1, "2019-06-01")))
    assert.are.equal("invalid_license", select(3, cat:can_install(faq({ kind = "bogus" }), 6911, "2019-06-01")))
    assert.are.equal("disabled",
      select(3, cat:can_install(faq({ disabled = "2019-01-01" }), 7100, "2019-06-01")))
    assert.is_false((cat:can_install(faq({ disabled = "2019-01-01" }), 6700, "2019-06-01")))
  end)

  it("raises when the build number is not a number", function()
    assert.has_error(function() cat:can_install(faq(), "6911", "2019-06-01") end)
  end)
end)

describe("R6 leases", function()
  local lease = { key = "L1", product = "smartertrack", kind = "lease", edition = "professional",
                  level = 10, start = "2018-06-01" }

  it("may install the newest build while active", function()
    assert.are.equal(7100, eligible_number(lease, "2026-01-01"))
  end)

  it("expire from lease_ended on, and may install nothing", function()
    local ended = {}
    for k, v in pairs(lease) do ended[k] = v end
    ended.lease_ended = "2019-01-11"
    assert.are.equal(6911, eligible_number(ended, "2019-01-10"))
    assert.are.equal("expired", eligible_number(ended, "2019-01-11"))
    assert.is_false((cat:can_install(ended, 6700, "2019-02-01")))
  end)
end)

describe("R7 trials", function()
  local trial = { product = "smartertrack", kind = "trial", start = "2019-01-01" }

  it("may install the newest build during the policy's 30 days: S .. S+29", function()
    assert.are.equal(6947, eligible_number(trial, "2019-01-30"))
    assert.are.equal("expired", eligible_number(trial, "2019-01-31"))
  end)

  it("honours its own trial_days", function()
    local short = { product = "smartertrack", kind = "trial", start = "2019-01-01", trial_days = 10 }
    assert.are.equal(6911, eligible_number(short, "2019-01-10"))
    assert.are.equal("expired", eligible_number(short, "2019-01-11"))
  end)
end)

describe("license validation on every call", function()
  local function code_of(overrides, on)
    return select(3, cat:eligible(faq(overrides), on or "2019-06-01"))
  end

  it("unknown_product comes first, before any other problem", function()
    assert.are.equal("unknown_product", code_of({ product = "nope", start = "bad", kind = "x" }))
  end)

  it("refuses wrong kinds, unknown editions and bad levels with invalid_license", function()
    assert.are.equal("invalid_license", code_of({ product = 42 }))
    assert.are.equal("invalid_license", code_of({ kind = "forever" }))
    assert.are.equal("invalid_license", code_of({ kind = 1 }))
    assert.are.equal("invalid_license", code_of({ edition = "gold" }))
    assert.are.equal("invalid_license", code_of({ edition = 5 }))
    for _, level in ipairs({ 0, -5, 2.5, "ten", 0 / 0, math.huge, -math.huge, {} }) do
      assert.are.equal("invalid_license", code_of({ level = level }), tostring(level))
    end
    assert.are.equal("invalid_license", code_of({ version_lock = 0 }))
    assert.are.equal("invalid_license", code_of({ version_lock = "14" }))
    assert.are.equal("invalid_license", code_of({ kind = "trial", trial_days = 0 }))
  end)

  it("accepts unlimited and integral float levels", function()
    assert.is_table(cat:eligible(faq({ level = "unlimited" }), "2019-06-01"))
    assert.is_table(cat:eligible(faq({ level = 5.0 }), "2019-06-01"))
  end)

  it("refuses malformed dates with invalid_date naming the field", function()
    for field, value in pairs({ start = "2018-02-30", ms_expires = "2018-2-3",
                                disabled = "2018-02-03T00:00", lease_ended = 20180203 }) do
      local overrides = { [field] = value }
      if field == "lease_ended" then overrides.kind = "lease" end
      local _, msg, code = cat:eligible(faq(overrides), "2019-06-01")
      assert.are.equal("invalid_date", code)
      assert.matches(field, msg)
    end
    local lic = faq()
    lic.start = nil
    local _, msg, code = cat:eligible(lic, "2019-06-01")
    assert.are.equal("invalid_date", code)
    assert.matches("start", msg)
  end)

  it("refuses a malformed `on` with invalid_date naming `on`", function()
    for _, on in ipairs({ "2019-02-29", 20190101, true, "today" }) do
      local _, msg, code = cat:eligible(faq(), on)
      assert.are.equal("invalid_date", code)
      assert.matches("^on", msg)
    end
  end)

  it("uses today (UTC) when `on` is omitted", function()
    assert.are.same(cat:eligible(faq(), require("licensor").today()), cat:eligible(faq()))
  end)

  it("orders codes: invalid before disabled before not_started before expired before no_build", function()
    assert.are.equal("invalid_date", code_of({ disabled = "2017-01-01", start = "x" }))
    assert.are.equal("disabled", code_of({ disabled = "2017-01-01" }, "2017-06-01"))
    assert.are.equal("not_started", code_of({ kind = "trial", start = "2019-07-01" }))
    local lease = faq({ kind = "lease", lease_ended = "2018-01-02", start = "2018-01-01" })
    assert.are.equal("expired", select(3, cat:eligible(lease, "2018-06-01")))
  end)

  it("raises on a license that is not a table", function()
    assert.has_error(function() cat:eligible("ST-FAQ", "2019-06-01") end)
    assert.has_error(function() cat:eligible(nil, "2019-06-01") end)
  end)

  it("returns the same shared record table for the same build", function()
    assert.are.equal(cat:eligible(faq(), "2019-06-01"), cat:build("smartertrack", 6911))
  end)
end)
