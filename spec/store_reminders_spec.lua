-- Reminders (doc/rules.md section 6): the sweep writes ms_expiring,
-- ms_lapsed, trial_ending, lease_ending and addon_expiring to the outbox,
-- each once per term, late ones once, stale ones never.
local stores = require "support.stores"
local fixtures = require "support.fixtures"
local reminders = require "licensor.store.reminders"

-- The reminders among a sweep's steps, as "action days refers_to".
local function swept(store, on)
  local list = {}
  for _, t in ipairs(assert(store:sweep(on))) do
    if t.refers_to then list[#list + 1] = t.action .. " " .. t.days .. " " .. t.refers_to end
  end
  return list
end

-- Sweeps every day from `from` to `to`; the reminders taken, by day.
local function daily(store, from, to)
  local core = require "licensor.core"
  local seen = {}
  for d = core.day(from), core.day(to) do
    for _, r in ipairs(swept(store, core.date(d))) do seen[#seen + 1] = core.date(d) .. " " .. r end
  end
  return seen
end

describe("reminders of the end of M&S", function()
  it("go out 30 and 7 days before it and the day after it lapsed, each once", function()
    local store = stores.new(":memory:")
    stores.issue(store)   -- M&S through 2019-05-31
    assert.are.same({ "2019-05-01 ms_expiring 30 2019-05-31", "2019-05-24 ms_expiring 7 2019-05-31",
                      "2019-06-01 ms_lapsed -1 2019-05-31" }, daily(store, "2019-04-01", "2019-07-01"))
  end)

  it("start again with a renewal: a new term is a new last day", function()
    local store = stores.new(":memory:")
    local key = stores.issue(store).key
    assert.are.same({ "ms_expiring 30 2019-05-31" }, swept(store, "2019-05-01"))
    assert(store:renew(key, "2019-05-10"))
    assert.are.same({ "ms_expiring 30 2020-05-31" }, swept(store, "2020-05-01"))
    assert.are.same({}, swept(store, "2019-06-01"))              -- the old term's lapse never came
  end)

  it("late: the reminder due most recently goes out once, the ones it overtook never", function()
    local store = stores.new(":memory:")
    stores.issue(store)
    assert.are.same({ "ms_expiring 7 2019-05-31" }, swept(store, "2019-05-28"))
    assert.are.same({}, daily(store, "2019-05-28", "2019-05-31"))
  end)

  it("stale: nothing before the event once it passed, nothing after it once its week is over", function()
    local store = stores.new(":memory:")
    stores.issue(store)
    assert.are.same({}, swept(store, "2019-06-08"))    -- lapsed 2019-06-01: its week ended 06-07
    local other = stores.new(":memory:")
    stores.issue(other)
    assert.are.same({ "ms_lapsed -1 2019-05-31" }, swept(other, "2019-06-07"))
  end)

  it("carry the renewal price from the catalogue to the handler, with the day they refer to", function()
    local store = stores.new(":memory:")
    local t = fixtures.catalogue_table()
    t.policy = { ms_percent = 20 }
    assert(store:import(t))
    local lic = stores.issue(store)
    local price, currency = store:renewal_price(lic, "2019-05-01")
    assert.is_number(price)
    local seen
    store:on("ms_expiring", function(action) seen = action; return true end)
    swept(store, "2019-05-01")
    assert.are.equal(1, (store:deliver()))
    assert.are.same({ key = lic.key, action = "ms_expiring", on = "2019-05-01", refers_to = "2019-05-31",
                      detail = { days = 30, offset = 30, item = "ms", price = price, currency = currency } },
                    { key = seen.key, action = seen.action, on = seen.on, refers_to = seen.refers_to,
                      detail = seen.detail })
    assert.are.equal("ms_expiring", store:events(lic.key)[2].kind)
  end)

  it("late: say the days actually left on the sweep's day, the policy's offset beside them", function()
    local store = stores.new(":memory:")
    local lic = stores.issue(store, { start = "2025-12-20" })                   -- M&S through 2026-12-19
    assert.are.equal("2026-12-19", lic.ms_expires)
    local seen = {}
    local function keep(action) seen[#seen + 1] = action; return true end
    store:on("ms_expiring", keep)
    store:on("ms_lapsed", keep)
    assert.are.same({ "ms_expiring 30 2026-12-19" }, swept(store, "2026-12-01"))  -- 30 was due on 11-19
    assert.are.equal(1, (store:deliver()))
    assert.are.same({ days = 18, offset = 30, item = "ms" },
                    { days = seen[1].detail.days, offset = seen[1].detail.offset, item = seen[1].detail.item })
    assert.are.same({ "ms_lapsed -1 2026-12-19" }, swept(store, "2026-12-24"))   -- late after it too
    assert.are.equal(1, (store:deliver()))
    assert.are.same({ -5, -1 }, { seen[2].detail.days, seen[2].detail.offset })
    assert.are.same({ 18, 30 }, { store:outbox{ state = "all" }[1].detail.days,
                                  store:outbox{ state = "all" }[1].detail.offset })
  end)

  it("follow the policy: other days, or none", function()
    local store = stores.new(":memory:")
    local t = fixtures.catalogue_table()
    t.policy = { reminders = { ms = { 60, -3 } } }
    assert(store:import(t))
    stores.issue(store)
    assert.are.same({ "2019-04-01 ms_expiring 60 2019-05-31", "2019-06-03 ms_lapsed -3 2019-05-31" },
      daily(store, "2019-03-01", "2019-07-01"))
    local quiet = stores.new(":memory:")
    t.policy = { reminders = { ms = {} } }
    assert(quiet:import(t))
    stores.issue(quiet)
    assert.are.same({}, daily(quiet, "2019-04-25", "2019-06-05"))
  end)

  it("skip disabled keys", function()
    local store = stores.new(":memory:")
    local key = stores.issue(store).key
    assert(store:disable(key, "2019-04-01", "chargeback"))
    assert.are.same({}, swept(store, "2019-05-01"))
  end)
end)

describe("reminders of trials, leases and add-ons", function()
  it("trials: 7 and 1 days before the last trial day", function()
    local store = stores.new(":memory:")
    stores.issue(store, { kind = "trial", edition = "professional", start = "2019-01-01" })   -- 30 days
    assert.are.same({ "2019-01-23 trial_ending 7 2019-01-30", "2019-01-29 trial_ending 1 2019-01-30" },
      daily(store, "2018-12-25", "2019-02-10"))
  end)

  it("leases with a set end: 30 days before their last day", function()
    local store = stores.new(":memory:")
    stores.issue(store, { kind = "lease", start = "2019-01-01" })
    assert.are.same({}, daily(store, "2019-01-01", "2019-03-01"))      -- running, no end set
    local other = stores.new(":memory:")
    local later = stores.issue(other, { kind = "lease", start = "2019-01-01" }).key
    assert(other:end_lease(later, "2019-06-01"))                       -- expired from 06-01: last day 05-31
    assert.are.same({ "2019-05-01 lease_ending 30 2019-05-31" }, daily(other, "2019-04-01", "2019-06-30"))
  end)

  it("paid add-ons: 30 days before they are paid through", function()
    local store = stores.new(":memory:")
    stores.issue(store, { addons = { "eas" } })                         -- paid through 2019-05-31
    local list = daily(store, "2019-04-30", "2019-05-02")
    assert.are.same({ "2019-05-01 ms_expiring 30 2019-05-31", "2019-05-01 addon_expiring 30 2019-05-31" }, list)
  end)
end)

describe("reminders.due", function()
  it("picks the reminder due most recently while it is worth sending", function()
    local last = 100
    assert.is_nil(reminders.due({ 30, 7, -1 }, last, 69))
    assert.are.same({ 30, 30, 7, 7, -1, -1 }, { reminders.due({ 30, 7, -1 }, last, 70),
      reminders.due({ 7, 30, -1 }, last, 92), reminders.due({ 30, 7, -1 }, last, 93),
      reminders.due({ 30, 7, -1 }, last, 100), reminders.due({ 30, 7, -1 }, last, 101),
      reminders.due({ 30, 7, -1 }, last, 107) })
    assert.is_nil(reminders.due({ 30, 7, -1 }, last, 108))
    assert.is_nil(reminders.due({ 30, 7 }, last, 101))
  end)
end)

describe("the reminders policy", function()
  it("is checked when the catalogue is built, and reported by cat:policy()", function()
    local core = require "licensor.core"
    local t = fixtures.catalogue_table()
    assert.are.same({ ms = { 30, 7, -1 }, trial = { 7, 1 }, lease = { 30 }, addon = { 30 } },
      assert(core.catalogue(t)):policy().reminders)
    for _, bad in ipairs({ { trial = { -1 } }, { week = { 1 } }, { ms = { 1, 1 } }, { ms = "30" },
                           { ms = { 1, 2, 3, 4, 5, 6, 7, 8, 9 } }, { addon = { 4000 } } }) do
      t.policy = { reminders = bad }
      local cat, msg, code = core.catalogue(t)
      assert.are.same({ nil, "invalid_catalogue" }, { cat, code })
      assert.matches("policy%.reminders", msg)
    end
  end)
end)
