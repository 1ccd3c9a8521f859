-- The policy files that ship (lua/licensor/policies/, doc/policies.md "The
-- examples"): each imported into a store holding the bundled catalogue
-- and proved by the decision it makes -- and by the licenses it does not
-- concern deciding exactly as in a store without it.  The store specs'
-- rounds run this file on both VMs and, with LICENSOR_TEST_PG, on
-- PostgreSQL (spec/support/stores.lua).
local licensor = require "licensor"
local core = require "licensor.core"
local stores = require "support.stores"
local fixtures = require "support.fixtures"
local read = require("support.files").read

local DIR = "lua/licensor/policies/"
local EXAMPLES = { "smartermail_migration", "msp_third_server", "education_upgrades",
                   "fallback_bugfixes", "reseller_no_phone", "large_customer_grace" }

local function source(name)
  return assert(read(DIR .. name .. ".lua"), name)
end

-- A store with the bundled catalogue and, when named, one shipped policy.
local function new_store(name)
  local store = stores.new(":memory:")
  assert(store:import(licensor.catalogue_path("smartertools")))
  if name then assert(store:import_policy(source(name), name .. ".lua", "2018-01-01")) end
  return store
end

-- A license issued with these fields (SmarterTrack Enterprise 5 by default).
local function issue(store, fields)
  local spec = { product = "smartertrack", edition = "enterprise", level = 5, start = "2018-06-01",
                 owner = "acme" }
  for k, v in pairs(fields or {}) do spec[k] = v end
  local tags = spec.tags
  spec.tags = nil
  local lic = assert(store:issue(spec, spec.start))
  if tags then lic = assert(store:set(lic.key, { tags = tags }, spec.start)) end
  return lic
end

-- The key on "old" from 2018-11-01 and "new" from 2018-12-05, both checking
-- in daily through `through` (excess from 2018-12-05, R10).
local function two_servers(store, through, fields)
  local lic = issue(store, fields)
  local old, new = 6855, 6911
  if lic.product == "smartermail" then old, new = 6798, 6837 end
  assert.is_true(store:activate(lic.key, "old", old, "2018-11-01").ok)
  assert.is_true(store:activate(lic.key, "new", new, "2018-12-05").ok)
  for day = core.day("2018-11-02"), core.day(through) do
    store:checkin(lic.key, "old", core.date(day))
    if day >= core.day("2018-12-05") then store:checkin(lic.key, "new", core.date(day)) end
  end
  return lic
end

local function ladder(taken, key)
  local list = {}
  for _, t in ipairs(taken) do
    if t.case and t.key == key then list[#list + 1] = t.action end
  end
  return list
end

local function number(build) return build and build.number end

describe("the shipped policies", function()
  for _, name in ipairs(EXAMPLES) do
    it(name .. ".lua imports against the bundled catalogue and names itself", function()
      local store = new_store()
      local version = assert(store:import_policy(source(name), name .. ".lua", "2018-01-01"))
      local history = store:policy_history()
      assert.are.equal(version, history[#history].version)
      assert.are.equal((name:gsub("_", "-")), history[#history].name)
      assert.are.equal(source(name), store:policy_source(version))
    end)
  end

  it("name builds that are in the bundled catalogue, as their comments say", function()
    local cat = assert(licensor.load_catalogue(licensor.catalogue_path("smartertools")))
    for number_, version in pairs({ [6730] = "16.3.6730", [6798] = "16.3.6798", [6837] = "100.0.6837" }) do
      assert.are.equal(version, cat:build("smartermail", number_).version)
    end
    assert.are.equal("2018-06-05", cat:build("smartermail", 6730).released)
    assert.are.equal("2018-08-12", cat:build("smartermail", 6798).released)
    assert.are.same({ "13.5.6802", "2018-08-16" },
      { cat:build("smartertrack", 6802).version, cat:build("smartertrack", 6802).released })
    assert.are.same({ "13.5.6855", "2018-10-08" },
      { cat:build("smartertrack", 6855).version, cat:build("smartertrack", 6855).released })
  end)
end)

describe("smartermail_migration.lua (products layer: R10's window)", function()
  it("gives SmarterMail 45 days of migration and leaves SmarterTrack at the catalogue's 30", function()
    local store = new_store("smartermail_migration")
    local mail = two_servers(store, "2019-01-19", { product = "smartermail", level = 250 })
    local track = two_servers(store, "2019-01-19")
    -- Excess from 2018-12-05: SmarterTrack turns fraud on 2019-01-04, SmarterMail on 2019-01-19.
    local m = store:checkin(mail.key, "old", "2019-01-10").migration
    local t = store:checkin(track.key, "old", "2019-01-10").migration
    assert.are.same({ "migrating", "2019-01-18" }, { m.state, m.deadline })
    assert.are.same({ "fraud", "2019-01-03" }, { t.state, t.deadline })
    local taken = store:sweep("2019-01-10")
    assert.are.same({}, ladder(taken, mail.key))
    assert.are.same({ "email_customer", "notify_fraud_team" }, ladder(taken, track.key))
    assert.are.same({}, ladder(store:sweep("2019-01-18"), mail.key))
    assert.are.same({ "email_customer", "notify_fraud_team" }, ladder(store:sweep("2019-01-19"), mail.key))
  end)

  it("is the same window as the catalogue's without the file", function()
    local store = new_store()
    local mail = two_servers(store, "2019-01-10", { product = "smartermail", level = 250 })
    local m = store:checkin(mail.key, "old", "2019-01-10").migration
    assert.are.same({ "fraud", "2019-01-03" }, { m.state, m.deadline })
  end)
end)

describe("msp_third_server.lua (settings hook: extra_servers, R9-R11)", function()
  it("lets a license tagged msp run three servers, without a window or a ladder", function()
    local store = new_store("msp_third_server")
    local lic = issue(store, { tags = { "msp" } })
    for _, server in ipairs({ "a", "b", "c" }) do
      assert.is_true(store:activate(lic.key, server, 6911, "2019-01-10").ok)
    end
    for day = core.day("2019-01-11"), core.day("2019-03-01") do
      for _, server in ipairs({ "a", "b", "c" }) do store:checkin(lic.key, server, core.date(day)) end
    end
    local m = store:checkin(lic.key, "a", "2019-03-01").migration
    assert.are.same({ "ok", 3, 3 }, { m.state, m.active, m.allowed })
    assert.are.same({}, ladder(store:sweep("2019-03-01"), lic.key))
    assert.are.equal(2, store:get(lic.key).policy.extra_servers)
  end)

  it("counts a fourth server as excess, R10's migration, and refuses a fifth", function()
    local store = new_store("msp_third_server")
    local lic = issue(store, { tags = { "msp" } })
    for _, server in ipairs({ "a", "b", "c" }) do
      assert.is_true(store:activate(lic.key, server, 6911, "2019-01-10").ok)
    end
    local fourth = store:activate(lic.key, "d", 6911, "2019-01-10")
    assert.are.same({ true, "migrating", "2019-02-08" }, { fourth.ok, fourth.migration.state, fourth.migration.deadline })
    local fifth = store:activate(lic.key, "e", 6911, "2019-01-10")
    assert.are.same({ false, "too_many_installations" }, { fifth.ok, fifth.code })
  end)

  it("gives a fail-over license with the tag one server more, three in all", function()
    local store = new_store("msp_third_server")
    local lic = issue(store, { failover = true, tags = { "msp" } })
    assert.are.equal(1, store:get(lic.key).policy.extra_servers)
    for _, server in ipairs({ "a", "b", "c" }) do
      assert.is_true(store:activate(lic.key, server, 6911, "2019-01-10").ok)
    end
    assert.are.equal("ok", store:checkin(lic.key, "a", "2019-01-10").migration.state)
  end)

  it("leaves a license without the tag to R9 and R10", function()
    local store, plain = new_store("msp_third_server"), new_store()
    local lic = issue(store, { tags = { "reseller" } })
    local same = issue(plain, { tags = { "reseller" } })
    assert.is_nil(store:get(lic.key).policy)
    for _, s in ipairs({ { store, lic }, { plain, same } }) do
      assert.is_true(s[1]:activate(s[2].key, "a", 6911, "2019-01-10").ok)
      local second = s[1]:activate(s[2].key, "b", 6911, "2019-01-10")
      assert.are.same({ true, "migrating" }, { second.ok, second.migration.state })
      local third = s[1]:activate(s[2].key, "c", 6911, "2019-01-10")
      assert.are.same({ false, "too_many_installations" }, { third.ok, third.code })
    end
  end)
end)

describe("education_upgrades.lua (price hook: R12)", function()
  it("halves an education license's upgrade quotes until 2027-06-30 and takes that amount", function()
    local store = new_store("education_upgrades")
    local plain = new_store()
    local fields = { start = "2027-01-04", tags = { "education" } }
    local lic, other = issue(store, fields), issue(plain, fields)
    local cat, plain_cat = store:catalogue(), plain:catalogue()
    local full = assert(plain_cat:quote_upgrade(plain:get(other.key), { level = 10 }, "2027-06-30"))
    assert.are.equal(math.floor(full / 2), cat:quote_upgrade(store:get(lic.key), { level = 10 }, "2027-06-30"))
    assert.are.equal(full, cat:quote_upgrade(store:get(lic.key), { level = 10 }, "2027-07-01"))
    local refused = { store:upgrade(lic.key, { level = 10 }, "2027-06-30", { paid = full }) }
    assert.are.equal("wrong_amount", refused[3])
    assert.are.equal(10, assert(store:upgrade(lic.key, { level = 10 }, "2027-06-30",
                                              { paid = math.floor(full / 2) })).level)
  end)

  it("leaves renewals and licenses without the tag at the built-in price", function()
    local store = new_store("education_upgrades")
    local plain = new_store()
    local school = issue(store, { start = "2027-01-04", tags = { "education" } })
    local shop, plain_shop = issue(store, { start = "2027-01-04" }), issue(plain, { start = "2027-01-04" })
    local full = plain:catalogue():quote_upgrade(plain:get(plain_shop.key), { level = 10 }, "2027-03-01")
    assert.are.equal(full, store:catalogue():quote_upgrade(store:get(shop.key), { level = 10 }, "2027-03-01"))
    assert.are.same({ plain:renewal_price(plain:get(plain_shop.key), "2027-03-01") },
                    { store:renewal_price(store:get(school.key), "2027-03-01") })
  end)

  it("rounds half of an odd price down, to whole minor units", function()
    local P = assert(require("licensor.policy").compile(source("education_upgrades"), "education_upgrades.lua"))
    local answer = P:decide("price", { item = "upgrade", price = 33001, currency = "USD", day = "2027-02-01",
                                       license = { tags = { education = true } } })
    assert.are.equal(16500, answer.price)
    if math.type then assert.are.equal("integer", math.type(answer.price)) end
  end)
end)

describe("fallback_bugfixes.lua (eligible hook: R3)", function()
  -- M&S bought 2017-08-20 expires 2018-08-19: the fallback is 13.5.6802
  -- (2018-08-16); 13.5.6855 (2018-10-08) is a bugfix 50 days later.
  local LAPSED = { start = "2017-08-20" }

  it("lets a lapsed license install its minor line's bugfix released within 60 days of the expiry", function()
    local store, plain = new_store("fallback_bugfixes"), new_store()
    local lic, same = issue(store, LAPSED), issue(plain, LAPSED)
    assert.are.equal(6802, number(plain:catalogue():eligible(plain:get(same.key), "2019-06-01")))
    assert.are.equal(6855, number(store:catalogue():eligible(store:get(lic.key), "2019-06-01")))
    local refused = store:activate(lic.key, "a", 6911, "2019-06-01")   -- 100.0: another line
    assert.are.same({ false, "newer_than_eligible", 6855 }, { refused.ok, refused.code, number(refused.eligible) })
    assert.is_true(store:activate(lic.key, "a", 6855, "2019-06-01").ok)
    local denied = plain:activate(same.key, "a", 6855, "2019-06-01")
    assert.are.same({ false, "newer_than_eligible" }, { denied.ok, denied.code })
  end)

  it("puts the cap in the certificate, so the offline verifier allows the bugfix and nothing above it", function()
    local key_path = fixtures.new_key()
    finally(function() os.remove(key_path); os.remove(key_path .. ".pub") end)
    local store = new_store("fallback_bugfixes")
    assert(store:use_signing_key(key_path))
    local lic = issue(store, LAPSED)
    assert.is_true(store:activate(lic.key, "a", 6855, "2019-06-01", fixtures.machine(1)).ok)
    local text = assert(store:certificate(lic.key, "a", "2019-06-01"))
    assert.matches("\nbuild_cap: 6855\nbuild_cap_released: 2018%-10%-08\n", text)
    assert.is_true(core.may_run_build(text, 6855, "2018-10-08", 13, "2019-06-02"))
    assert.is_false(core.may_run_build(text, 6911, "2018-12-03", 100, "2019-06-02"))
    -- Without the file the same license's certificate has no cap (format 1).
    local plain = new_store()
    assert(plain:use_signing_key(key_path))
    local same = issue(plain, LAPSED)
    assert.is_true(plain:activate(same.key, "a", 6802, "2019-06-01", fixtures.machine(1)).ok)
    local text1 = assert(plain:certificate(same.key, "a", "2019-06-01"))
    assert.is_nil(text1:find("build_cap", 1, true))
    assert.is_false(core.may_run_build(text1, 6855, "2018-10-08", 13, "2019-06-02"))
  end)

  it("does not give a bugfix before it is released", function()
    local store = new_store("fallback_bugfixes")
    local lic = issue(store, LAPSED)
    assert.are.equal(6802, number(store:catalogue():eligible(store:get(lic.key), "2018-09-30")))
    assert.are.equal(6855, number(store:catalogue():eligible(store:get(lic.key), "2018-10-08")))
  end)

  it("takes SmarterMail 16.3.6730's bugfix 16.3.6798, not 100.0.6837", function()
    local store = new_store("fallback_bugfixes")
    local lic = issue(store, { product = "smartermail", level = 250, start = "2017-07-01" })   -- M&S to 2018-06-30
    assert.are.equal(6798, number(store:catalogue():eligible(store:get(lic.key), "2020-01-01")))
  end)

  it("is 'builds within 60 days' in the build-number era, where every version is 100.0", function()
    local store = new_store("fallback_bugfixes")
    local lic = issue(store, { start = "2018-06-01" })   -- M&S to 2019-05-31: falls back to 100.0.7077
    -- 100.0.7120 (2019-06-30) is 30 days after the expiry, 100.0.7154 (2019-08-03) 64 days.
    assert.are.equal(7120, number(store:catalogue():eligible(store:get(lic.key), "2020-01-01")))
  end)

  it("leaves licenses on M&S, without a bugfix in the window, locked to a major or leased as the built-in says", function()
    local store, plain = new_store("fallback_bugfixes"), new_store()
    local cases = {
      { fields = { start = "2018-06-01" }, days = { "2018-07-01", "2019-01-10", "2019-05-31" } },   -- on M&S
      -- M&S to 2018-05-31: 13.4.6712, the last of its line
      { fields = { start = "2017-06-01" }, days = { "2018-07-01", "2019-01-10", "2020-01-01" } },
      { fields = { product = "smartermail", level = 250, start = "2016-06-01", version_lock = 14 },
        days = { "2017-07-01", "2019-01-10", "2020-01-01" } },
      { fields = { kind = "lease", start = "2018-06-01" }, days = { "2018-07-01", "2019-01-10" } },
      { fields = { kind = "trial", start = "2018-06-01" }, days = { "2018-06-10", "2018-08-01" } },
    }
    for _, case in ipairs(cases) do
      local a, b = issue(store, case.fields), issue(plain, case.fields)
      for _, on in ipairs(case.days) do
        local want = { plain:catalogue():eligible(plain:get(b.key), on) }
        local got = { store:catalogue():eligible(store:get(a.key), on) }
        assert.are.same({ number(want[1]), want[3] }, { number(got[1]), got[3] }, case.fields.start .. " " .. on)
      end
    end
  end)
end)

describe("reseller_no_phone.lua (ladder hook: R11)", function()
  it("notifies the reseller instead of phoning a reseller's customer, once, and still disables", function()
    local store = new_store("reseller_no_phone")
    local sold = two_servers(store, "2019-01-18", { tags = { "reseller" } })
    local direct = two_servers(store, "2019-01-18")
    local first = store:sweep("2019-01-04")
    assert.are.same({ "email_customer", "notify_fraud_team" }, ladder(first, sold.key))
    assert.are.same({ "email_customer", "notify_fraud_team" }, ladder(first, direct.key))
    local week = store:sweep("2019-01-11")
    assert.are.same({ "notify_reseller" }, ladder(week, sold.key))
    assert.are.same({ "phone_customer" }, ladder(week, direct.key))
    assert.are.same({}, ladder(store:sweep("2019-01-12"), sold.key))
    assert.are.same({ "disable_key" }, ladder(store:sweep("2019-01-18"), sold.key))
    local actions = {}
    for _, row in ipairs(store:outbox{ state = "all" }) do
      if row.key == sold.key then actions[#actions + 1] = row.action end
    end
    table.sort(actions)
    assert.are.same({ "disable_key", "email_customer", "notify_fraud_team", "notify_reseller" }, actions)
  end)
end)

describe("large_customer_grace.lua (settings hook: R9's grace)", function()
  it("keeps the large customer's silent server active for 60 days, others for the catalogue's 7", function()
    local store = new_store("large_customer_grace")
    local big = issue(store, { owner = "globex" })
    local small = issue(store, { owner = "initech" })
    assert.is_true(store:activate(big.key, "a", 6911, "2019-01-10").ok)
    assert.is_true(store:activate(small.key, "a", 6911, "2019-01-10").ok)
    assert.is_true(store:checkin(big.key, "a", "2019-03-11").ok)           -- 60 days of silence
    local lapsed = store:checkin(small.key, "a", "2019-01-18")             -- 8 days
    assert.are.same({ false, "not_activated" }, { lapsed.ok, lapsed.code })
    assert.are.equal(60, store:get(big.key).policy.checkin_grace_days)
  end)

  it("is what one key's stored override does without a file", function()
    local store = new_store()
    local lic = issue(store, { owner = "initech" })
    assert(store:set(lic.key, { policy = { checkin_grace_days = 60 }, reason = "change windows" }, "2019-01-10"))
    assert.is_true(store:activate(lic.key, "a", 6911, "2019-01-10").ok)
    assert.is_true(store:checkin(lic.key, "a", "2019-03-11").ok)
  end)
end)
