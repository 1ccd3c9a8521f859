-- Installations and the fraud window: R9 (allowance, activity), R10
-- (migration window) and R11 (the escalation ladder, cat:ladder).
local fixtures = require "support.fixtures"

local cat = fixtures.catalogue()
local lic = fixtures.faq_license({ ms_expires = "2030-01-01" })

local function install(server, first_seen, last_seen, deactivated)
  return { server = server, first_seen = first_seen, last_seen = last_seen, deactivated = deactivated }
end

describe("R9 installations", function()
  it("allow one active installation without failover", function()
    local m = cat:migration(lic, { install("a", "2019-01-01", "2019-02-01") }, "2019-02-01")
    assert.are.same({ state = "ok", allowed = 1, active = 1 }, m)
  end)

  it("allow two with failover", function()
    local failover = fixtures.faq_license({ failover = true })
    local m = cat:migration(failover, { install("a", "2019-01-01", "2019-02-01"),
                                        install("b", "2019-01-01", "2019-02-01") }, "2019-02-01")
    assert.are.same({ state = "ok", allowed = 2, active = 2 }, m)
  end)

  it("count an installation from first_seen until deactivated (exclusive)", function()
    local list = { install("a", "2019-01-01", "2019-03-01"), install("b", "2019-02-01", "2019-03-01", "2019-02-20") }
    assert.are.equal(2, cat:migration(lic, list, "2019-02-19").active)
    assert.are.equal(1, cat:migration(lic, list, "2019-02-20").active)
    assert.are.equal(1, cat:migration(lic, list, "2019-01-31").active)
  end)

  it("stop counting an installation silent for more than checkin_grace_days", function()
    local list = { install("a", "2019-01-01", "2019-01-10") }
    assert.are.equal(1, cat:migration(lic, list, "2019-01-17").active)  -- 7 days after
    assert.are.equal(0, cat:migration(lic, list, "2019-01-18").active)  -- 8 days after
  end)

  it("validate installations and the failover flag", function()
    assert.are.equal("invalid_date", select(3, cat:migration(lic, { install("a", "2019-02-30") }, "2019-03-01")))
    assert.are.equal("invalid_date", select(3, cat:migration(lic, { { server = "a" } }, "2019-03-01")))
    assert.are.equal("invalid_request", select(3, cat:migration(lic, { "a" }, "2019-03-01")))
    assert.are.equal("invalid_license",
      select(3, cat:migration(fixtures.faq_license({ failover = "yes" }), {}, "2019-03-01")))
    assert.has_error(function() cat:migration(lic, "a", "2019-03-01") end)
  end)
end)

describe("R10 migration window", function()
  -- Server "b" appears on 2019-03-01 next to "a": the excess starts there.
  local list = { install("a", "2019-01-01", "2019-06-01"), install("b", "2019-03-01", "2019-06-01") }

  it("FAQ: a key seen on two servers for 10 days is migrating", function()
    local m = cat:migration(lic, list, "2019-03-10")
    assert.are.same({ state = "migrating", allowed = 1, active = 2, since = "2019-03-01",
                      deadline = "2019-03-30" }, m)
  end)

  it("FAQ: after 30 days (day T+30) it is fraud", function()
    assert.are.equal("migrating", cat:migration(lic, list, "2019-03-30").state)
    local m = cat:migration(lic, list, "2019-03-31")
    assert.are.equal("fraud", m.state)
    assert.are.equal("2019-03-01", m.since)
    assert.are.equal("fraud", cat:migration(lic, list, "2019-04-10").state)
  end)

  it("counts from the first day of the current unbroken run of excess", function()
    local gap = { install("a", "2019-01-01", "2019-06-01"),
                  install("b", "2019-02-01", "2019-02-05", "2019-02-06"),
                  install("c", "2019-04-01", "2019-06-01") }
    local m = cat:migration(lic, gap, "2019-04-05")
    assert.are.equal("2019-04-01", m.since)
    assert.are.equal("migrating", m.state)
  end)

  it("joins runs separated by fewer than migration_gap_days days without excess (amended R10)", function()
    -- Excess 02-01..02-05, none from 02-06; excess again 13 days later.
    local joined = { install("a", "2019-01-01", "2019-06-01"),
                     install("b", "2019-02-01", "2019-02-05", "2019-02-06"),
                     install("c", "2019-02-19", "2019-06-01") }
    local m = cat:migration(lic, joined, "2019-03-05")
    assert.are.same({ "fraud", "2019-02-01", "2019-03-02" }, { m.state, m.since, m.deadline })
    -- 14 days without excess: a new run, and a new window.
    joined[3] = install("c", "2019-02-20", "2019-06-01")
    m = cat:migration(lic, joined, "2019-03-05")
    assert.are.same({ "migrating", "2019-02-20" }, { m.state, m.since })
  end)

  it("takes migration_gap_days from the policy (0: every gap starts a new run)", function()
    local t = fixtures.catalogue_table()
    t.policy.migration_gap_days = 0
    local strict = assert(require("licensor").catalogue(t))
    local gap = { install("a", "2019-01-01", "2019-06-01"),
                  install("b", "2019-02-01", "2019-02-05", "2019-02-06"),
                  install("c", "2019-02-07", "2019-06-01") }
    assert.are.equal("2019-02-07", strict:migration(lic, gap, "2019-02-10").since)
    assert.are.equal("2019-02-01", cat:migration(lic, gap, "2019-02-10").since)
  end)

  it("keeps the run when one extra server replaces another without a gap", function()
    local relay = { install("a", "2019-01-01", "2019-06-01"),
                    install("b", "2019-02-01", "2019-03-01", "2019-03-01"),
                    install("c", "2019-03-01", "2019-06-01") }
    local m = cat:migration(lic, relay, "2019-03-10")
    assert.are.equal("2019-02-01", m.since)
    assert.are.equal("fraud", m.state)
  end)

  it("is ok again once the excess ends", function()
    local ended = { install("a", "2019-01-01", "2019-06-01"), install("b", "2019-03-01", "2019-04-10", "2019-04-11") }
    assert.are.same({ state = "ok", allowed = 1, active = 1 }, cat:migration(lic, ended, "2019-04-11"))
  end)

  it("honours the policy's migration_days and checkin_grace_days", function()
    local t = fixtures.catalogue_table()
    t.policy = { migration_days = 10, checkin_grace_days = 0 }
    local short = assert(require("licensor").catalogue(t))
    assert.are.equal("fraud", short:migration(lic, list, "2019-03-11").state)
    assert.are.equal(0, short:migration(lic, { install("a", "2019-01-01", "2019-01-10") }, "2019-01-11").active)
  end)
end)

describe("R11 escalation ladder (cat:ladder)", function()
  -- The case's excess began 2019-03-01: fraud from 2019-03-31.
  local function due(case, on)
    case.since = case.since or "2019-03-01"
    return cat:ladder(case, on)
  end

  it("takes no step while the case is still a migration", function()
    assert.are.same({}, due({}, "2019-03-30"))
  end)

  it("emails the customer and notifies the fraud team on the first sweep on or after the fraud day", function()
    assert.are.same({ "email_customer", "notify_fraud_team" }, due({}, "2019-03-31"))
    assert.are.same({ "email_customer", "notify_fraud_team" }, due({}, "2019-05-20"))
  end)

  it("phones 7 days after the first step was actually taken", function()
    assert.are.same({}, due({ first_step = "2019-05-20" }, "2019-05-26"))
    assert.are.same({ "phone_customer" }, due({ first_step = "2019-05-20" }, "2019-05-27"))
  end)

  it("disables the key 14 days after the first step, so a late sweep never shortens the warning", function()
    assert.are.same({ "phone_customer", "disable_key" }, due({ first_step = "2019-04-01" }, "2019-04-15"))
    assert.are.same({ "disable_key" },
      due({ first_step = "2019-04-01", phoned = "2019-04-08" }, "2019-04-15"))
  end)

  it("never repeats a step already taken", function()
    assert.are.same({}, due({ first_step = "2019-04-01", phoned = "2019-04-08", disabled = "2019-04-15" },
      "2019-06-01"))
  end)

  it("validates the case", function()
    assert.are.equal("invalid_date", select(3, cat:ladder({}, "2019-01-01")))
    assert.are.equal("invalid_date", select(3, cat:ladder({ since = "2019-03-01", phoned = 5 }, "2019-01-01")))
  end)
end)
