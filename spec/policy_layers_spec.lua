-- Per-license policy values in the core: cat:resolve_policy(overrides)
-- makes a value holding the catalogue's policy with the overrides applied
-- (the same bounds and messages as the catalogue's own policy), and a
-- license table carrying it as `policy` has the rules that read policy
-- values (R3-R7 for trials, R9-R11) read its values instead.
local licensor = require "licensor"
local fixtures = require "support.fixtures"

local cat = fixtures.catalogue()
local lic = fixtures.faq_license({ ms_expires = "2030-01-01" })

local function install(server, first_seen, last_seen, deactivated)
  return { server = server, first_seen = first_seen, last_seen = last_seen, deactivated = deactivated }
end

local function with(base, fields)
  local copy = {}
  for k, v in pairs(base) do copy[k] = v end
  for k, v in pairs(fields) do copy[k] = v end
  return copy
end

local function resolve(overrides, on_cat)
  return assert((on_cat or cat):resolve_policy(overrides))
end

-- Server "b" appears on 2019-03-01 next to "a": the excess starts there.
local two = { install("a", "2019-01-01", "2019-06-01"), install("b", "2019-03-01", "2019-06-01") }

describe("cat:resolve_policy", function()
  it("holds the catalogue's policy with the overrides applied", function()
    local pv = resolve({ migration_days = 45, checkin_grace_days = 14, renewal_basis = "from_renewal",
                         reminders = { trial = { 3 } } })
    local expected = cat:policy()
    expected.migration_days, expected.checkin_grace_days = 45, 14
    expected.renewal_basis = "from_renewal"
    expected.reminders.trial = { 3 }
    assert.are.same(expected, pv:table())
    assert.are.equal(45, pv.migration_days)
    assert.are.equal(cat:policy().trial_days, pv.trial_days)
    assert.are.equal("from_renewal", pv.renewal_basis)
    assert.are.same({ 3 }, pv.reminders.trial)
    assert.are.same(cat:policy().reminders.ms, pv.reminders.ms)
    assert.is_nil(pv.checkout_url)
    assert.is_nil(pv.no_such_setting)
    assert.is_nil(pv[1])
  end)

  it("with no overrides is the catalogue's policy", function()
    assert.are.same(cat:policy(), resolve(nil):table())
    assert.are.same(cat:policy(), resolve({}):table())
    assert.are.equal("licensor.policy (no overrides)", tostring(resolve({})))
  end)

  it("names the settings its overrides gave in tostring", function()
    assert.are.equal("licensor.policy (migration_days, checkin_grace_days)",
                     tostring(resolve({ checkin_grace_days = 14, migration_days = 45 })))
  end)

  it("leaves the catalogue's policy and the overrides table as they were", function()
    local overrides = { migration_days = 45 }
    local before = cat:policy()
    resolve(overrides)
    assert.are.same(before, cat:policy())
    assert.are.same({ migration_days = 45 }, overrides)
  end)

  it("reads a whole policy: a checkout_url and fingerprint_match too", function()
    local pv = resolve({ checkout_url = "https://shop.example/renew", fingerprint_match = "all" })
    assert.are.equal("https://shop.example/renew", pv.checkout_url)
    assert.are.equal("all", pv:table().fingerprint_match)
  end)

  it("closes without harm (a value holds nothing to free)", function()
    local pv = resolve({ migration_days = 45 })
    local close = getmetatable(pv).__close
    close(pv)
    close(pv)
    assert.are.equal(45, pv.migration_days)
  end)

  describe("refuses bad overrides, naming the setting", function()
    local cases = {
      { "an unknown key", { migration_dayz = 45 }, "policy.migration_dayz is not a policy setting (misspelt?)" },
      { "a key that is not a name", { [1] = 45 }, "policy keys are names of settings" },
      { "a value below its bounds", { migration_days = 0 }, "policy.migration_days must be a whole number from 1 to 36500" },
      { "a value above its bounds", { ms_percent = 101 }, "policy.ms_percent must be a whole number from 0 to 100" },
      { "a fraction", { trial_days = 1.5 }, "policy.trial_days must be a whole number from 1 to 36500" },
      { "a string for a number", { checkin_grace_days = "14" },
        "policy.checkin_grace_days must be a whole number from 0 to 36500" },
      { "NaN", { grace_days = 0 / 0 }, "policy.grace_days must be a whole number from 0 to 3650" },
      { "an infinity", { drift_days = math.huge }, "policy.drift_days must be a whole number from 1 to 36500" },
      { "an unknown renewal basis", { renewal_basis = "yearly" },
        "policy.renewal_basis must be \"from_expiry\" or \"from_renewal\"" },
      { "an unknown fingerprint match", { fingerprint_match = 3 },
        "policy.fingerprint_match must be \"most\", \"all\" or \"any\"" },
      { "a bad reminder list", { reminders = { trial = { -1 } } },
        "policy.reminders.trial[1] must be a whole number of days from 0 to 3650" },
      { "an unknown reminder kind", { reminders = { renewal = { 3 } } },
        "policy.reminders: the kinds are ms, trial, lease and addon" },
      { "a checkout_url that is not http(s)", { checkout_url = "javascript:alert(1)" },
        "policy.checkout_url must be an http:// or https:// URL" },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local pv, message, code = cat:resolve_policy(case[2])
        assert.is_nil(pv)
        assert.are.equal("invalid_policy", code)
        assert.are.equal(case[3], message:sub(1, #case[3]))
      end)
    end

    it("a phone step after the disable step, against the catalogue's other value (the cross-check)", function()
      -- The catalogue disables after 14 days: phoning after 20 would come later.
      assert.are.same({ nil, "policy.disable_after_days must not come before policy.phone_after_days",
                        "invalid_policy" }, { cat:resolve_policy({ phone_after_days = 20 }) })
      assert.are.equal(20, resolve({ phone_after_days = 20, disable_after_days = 20 }).phone_after_days)
    end)
  end)

  it("raises for overrides that are not a table (a programming error)", function()
    assert.has_error(function() cat:resolve_policy("migration_days=45") end)
    assert.has_error(function() cat:resolve_policy(45) end)
  end)
end)

describe("a license's policy value", function()
  it("changes cat:migration's deadline (migration_days = 45)", function()
    local own = with(lic, { policy = resolve({ migration_days = 45 }) })
    assert.are.same({ "migrating", "2019-03-30" },
                    { cat:migration(lic, two, "2019-03-10").state, cat:migration(lic, two, "2019-03-10").deadline })
    local m = cat:migration(own, two, "2019-03-10")
    assert.are.same({ state = "migrating", allowed = 1, active = 2, since = "2019-03-01",
                      deadline = "2019-04-14" }, m)
    assert.are.equal("fraud", cat:migration(lic, two, "2019-03-31").state)
    assert.are.equal("migrating", cat:migration(own, two, "2019-04-14").state)
    assert.are.equal("fraud", cat:migration(own, two, "2019-04-15").state)
  end)

  it("changes admission (migration_days, migration_extra)", function()
    -- Excess from 2019-03-01 to 03-19, and a new server on 04-01 (the same
    -- run): the catalogue's 30-day window is over, a 45-day one is not.
    local moved = { install("a", "2019-01-01", "2019-06-01"), install("b", "2019-03-01", "2019-03-19", "2019-03-20") }
    assert.are.equal("migration_window_over", select(3, cat:admission(lic, moved, "2019-04-01")))
    assert.is_true((cat:admission(with(lic, { policy = resolve({ migration_days = 45 }) }), moved, "2019-04-01")))
    -- A third server: one extra allowed by the catalogue, two by the value.
    assert.are.equal("too_many_installations", select(3, cat:admission(lic, two, "2019-03-05")))
    local roomy = with(lic, { policy = resolve({ migration_extra = 2 }) })
    local admitted, window = cat:admission(roomy, two, "2019-03-05")
    assert.is_true(admitted)
    assert.are.equal(3, window.active)
    local _, message = cat:admission(with(lic, { policy = resolve({ migration_extra = 0 }) }), two, "2019-03-05")
    assert.are.equal("2 installations are active, 1 allowed, and a migration may add only 0 more", message)
  end)


  it("raises R9's allowance (extra_servers): the servers it adds are no excess for R10", function()
    local msp = with(lic, { policy = resolve({ extra_servers = 1 }) })
    -- Two servers for months: with the catalogue's allowance of one, a
    -- migration that turned fraud; with one extra server, no excess at all.
    assert.are.equal("fraud", cat:migration(lic, two, "2019-05-01").state)
    assert.are.same({ state = "ok", allowed = 2, active = 2 },
                    { state = cat:migration(msp, two, "2019-05-01").state,
                      allowed = cat:migration(msp, two, "2019-05-01").allowed,
                      active = cat:migration(msp, two, "2019-05-01").active })
    -- A third server is a migration beyond the raised allowance, a fourth
    -- beyond what a migration may add.
    local admitted, window = cat:admission(msp, two, "2019-05-01")
    assert.is_true(admitted)
    assert.are.same({ "migrating", 3, 2 }, { window.state, window.active, window.allowed })
    local three = { two[1], two[2], install("c", "2019-05-01", "2019-06-01") }
    local ok, message, code = cat:admission(msp, three, "2019-05-02")
    assert.is_false(ok)
    assert.are.equal("too_many_installations", code)
    assert.are.equal("3 installations are active, 2 allowed, and a migration may add only 1 more", message)
  end)
  it("changes installation_active and installation_holds (checkin_grace_days)", function()
    local quiet = install("a", "2019-01-01", "2019-01-10")
    local own = with(lic, { policy = resolve({ checkin_grace_days = 14 }) })
    assert.is_true(cat:installation_active(quiet, "2019-01-17"))
    assert.is_false(cat:installation_active(quiet, "2019-01-18"))
    assert.is_false(cat:installation_active(quiet, "2019-01-18", lic))
    assert.is_true(cat:installation_active(quiet, "2019-01-18", own))
    assert.is_true(cat:installation_active(quiet, "2019-01-24", own))
    assert.is_false(cat:installation_active(quiet, "2019-01-25", own))
    assert.is_false(cat:installation_holds(quiet, "2019-01-18"))
    assert.is_true(cat:installation_holds(quiet, "2019-01-24", own))
    -- The window counts with the same grace.
    assert.are.equal(0, cat:migration(lic, { quiet }, "2019-01-20").active)
    assert.are.equal(1, cat:migration(own, { quiet }, "2019-01-20").active)
  end)

  it("changes eligible, can_install and status of a trial (trial_days)", function()
    local trial = { key = "T-1", product = "smartertrack", kind = "trial", start = "2019-01-01" }
    local long = with(trial, { policy = resolve({ trial_days = 60 }) })
    assert.are.equal("expired", select(3, cat:eligible(trial, "2019-02-10")))
    assert.are.equal(6947, cat:eligible(long, "2019-02-10").number)
    assert.is_true((cat:can_install(long, 6947, "2019-02-10")))
    assert.are.equal("expired", select(3, cat:can_install(trial, 6947, "2019-02-10")))
    assert.are.equal("expired", cat:status(trial, "2019-02-10").state)
    assert.are.equal("active", cat:status(long, "2019-02-10").state)
    assert.are.equal("expired", select(3, cat:eligible(long, "2019-03-02")))
    assert.are.equal("license 'T-1' expired: the trial ended on 2019-03-01", select(2, cat:eligible(long, "2019-03-02")))
    -- The license's own trial_days still wins over any policy.
    assert.are.equal("expired", select(3, cat:eligible(with(long, { trial_days = 10 }), "2019-01-11")))
  end)

  it("changes the ladder (phone_after_days)", function()
    local case = { since = "2019-03-01", first_step = "2019-04-01" }
    local quick = with(lic, { policy = resolve({ phone_after_days = 3 }) })
    assert.are.same({}, cat:ladder(case, "2019-04-04"))
    assert.are.same({}, cat:ladder(case, "2019-04-04", lic))
    assert.are.same({ "phone_customer" }, cat:ladder(case, "2019-04-04", quick))
    -- migration_days moves the fraud day the first step waits for.
    local slow = with(lic, { policy = resolve({ migration_days = 45 }) })
    assert.are.same({ "email_customer", "notify_fraud_team" }, cat:ladder({ since = "2019-03-01" }, "2019-03-31"))
    assert.are.same({}, cat:ladder({ since = "2019-03-01" }, "2019-03-31", slow))
    assert.are.same({ "email_customer", "notify_fraud_team" }, cat:ladder({ since = "2019-03-01" }, "2019-04-15", slow))
  end)

  it("is what cat:policy(lic) answers", function()
    local own = with(lic, { policy = resolve({ migration_days = 45 }) })
    assert.are.equal(45, cat:policy(own).migration_days)
    assert.are.same(cat:policy(), cat:policy(lic))
    assert.are.same(cat:policy(), cat:policy(nil))
  end)

  it("is self-contained: one from another catalogue works, also once that one is closed", function()
    local t = fixtures.catalogue_table()
    t.policy.migration_days = 20
    local other = assert(licensor.catalogue(t))
    local pv = resolve({ checkin_grace_days = 14 }, other)
    other:close()
    other = nil   -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    local own = with(lic, { policy = pv })
    assert.are.equal(20, pv.migration_days)
    assert.are.equal("2019-03-20", cat:migration(own, two, "2019-03-10").deadline)
    assert.is_true(cat:installation_active(install("a", "2019-01-01", "2019-01-10"), "2019-01-24", own))
    assert.are.equal(6947, cat:eligible(own, "2019-02-10").number)
  end)

  it("serves many licenses at once, each its own", function()
    local a = with(lic, { key = "A", policy = resolve({ migration_days = 10 }) })
    local b = with(lic, { key = "B", policy = resolve({ migration_days = 60 }) })
    assert.are.equal("2019-03-10", cat:migration(a, two, "2019-03-05").deadline)
    assert.are.equal("2019-04-29", cat:migration(b, two, "2019-03-05").deadline)
    assert.are.equal("2019-03-30", cat:migration(lic, two, "2019-03-05").deadline)
  end)

  describe("that is not a value of cat:resolve_policy is a data error", function()
    local bad = { { "a table", { migration_days = 45 } }, { "a string", "migration_days=45" },
                  { "a number", 45 }, { "true", true }, { "another userdata", cat } }
    for _, case in ipairs(bad) do
      it(case[1], function()
        local own = with(lic, { policy = case[2] })
        local message = "license 'ST-FAQ': policy must be a value of cat:resolve_policy"
        local refused = { nil, message, "invalid_license" }
        assert.are.same(refused, { cat:eligible(own, "2019-03-10") })
        assert.are.same(refused, { cat:status(own, "2019-03-10") })
        assert.are.same(refused, { cat:migration(own, two, "2019-03-10") })
        assert.are.same(refused, { cat:addon_status(own, "eas", "2019-03-10") })
        assert.are.same(refused, { cat:quote_upgrade(own, { level = 10 }, "2019-03-10") })
        assert.are.same(refused, { cat:installation_active(two[1], "2019-03-10", own) })
        assert.are.same(refused, { cat:installation_holds(two[1], "2019-03-10", own) })
        assert.are.same(refused, { cat:ladder({ since = "2019-03-01" }, "2019-03-10", own) })
        assert.are.same(refused, { cat:policy(own) })
        assert.are.same(refused, { cat:admission(own, two, "2019-03-10") })
        assert.are.same({ false, message, "invalid_license" }, { cat:can_install(own, 6947, "2019-03-10") })
      end)
    end

    it("a license argument that is not a table raises (a programming error)", function()
      assert.has_error(function() cat:installation_active(two[1], "2019-03-10", "ST-FAQ") end)
      assert.has_error(function() cat:ladder({ since = "2019-03-01" }, "2019-03-10", 5) end)
      assert.has_error(function() cat:policy("ST-FAQ") end)
    end)
  end)
end)

describe("cat:status overrides", function()
  it("copies the license's policy_override into the answer", function()
    local stored = { migration_days = 60, reminders = { ms = { 14 } } }
    local status = cat:status(with(lic, { policy_override = stored }), "2019-03-10")
    assert.are.same(stored, status.overrides)
    status.overrides.migration_days = 1
    assert.are.equal(60, stored.migration_days)
  end)

  it("has none without one", function()
    assert.is_nil(cat:status(lic, "2019-03-10").overrides)
  end)

  it("refuses a policy_override that is not a table", function()
    assert.are.same({ nil, "license 'ST-FAQ': field 'policy_override' must be a table of policy settings",
                      "invalid_license" }, { cat:status(with(lic, { policy_override = "x" }), "2019-03-10") })
  end)
end)

describe("without a policy value", function()
  -- Every rule answers as the catalogue's policy says: the same as a value
  -- holding no overrides, on a grid of licenses and days.
  local plain_pv = cat:resolve_policy({})
  local licenses = {
    lic, fixtures.faq_license(), fixtures.faq_license({ failover = true }),
    { key = "T", product = "smartertrack", kind = "trial", start = "2019-01-01" },
    { key = "T2", product = "smartertrack", kind = "trial", start = "2019-01-01", trial_days = 90 },
    { key = "L", product = "smartermail", kind = "lease", start = "2017-01-01", edition = "professional",
      level = 250 },
    { key = "D", product = "smartermail", start = "2016-10-01", ms_expires = "2017-10-01",
      disabled = "2018-01-01" },
    { key = "V", product = "smartermail", start = "2016-10-01", version_lock = 14 },
  }
  local days = { "2016-12-01", "2017-06-01", "2018-12-06", "2019-01-20", "2019-02-10", "2019-03-10",
                 "2019-04-05", "2020-01-01" }

  local function answers(l, on)
    return { { cat:eligible(l, on) }, { cat:status(l, on) }, { cat:migration(l, two, on) },
             { cat:admission(l, two, on) }, { cat:can_install(l, 6911, on) },
             { cat:installation_active(two[1], on, l) }, { cat:installation_holds(two[1], on, l) },
             { cat:ladder({ since = "2019-03-01", first_step = "2019-04-01" }, on, l) } }
  end

  it("answers exactly as a value with no overrides does", function()
    local compared = 0
    for _, l in ipairs(licenses) do
      for _, on in ipairs(days) do
        assert.are.same(answers(l, on), answers(with(l, { policy = plain_pv }), on))
        compared = compared + 1
      end
    end
    assert.are.equal(#licenses * #days, compared)
  end)

  it("answers the optional-license methods as without the argument", function()
    for _, on in ipairs(days) do
      assert.are.equal(cat:installation_active(two[1], on), cat:installation_active(two[1], on, lic))
      assert.are.equal(cat:installation_holds(two[2], on), cat:installation_holds(two[2], on, lic))
      assert.are.same(cat:ladder({ since = "2019-03-01" }, on), cat:ladder({ since = "2019-03-01" }, on, lic))
    end
  end)

  it("leaves the catalogue's policy as it was", function()
    assert.are.same(fixtures.catalogue():policy(), cat:policy())
  end)
end)
