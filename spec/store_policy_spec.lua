-- Layered policies in the store (doc/rules.md section 11): a license's own
-- override (store:set policy), tags, policy files imported and versioned
-- (store:import_policy, policy, policy_history, policy_source), every
-- workflow reading the license's own values, the hooks the sweep and the
-- renewal price go through, and the policy version on each decision's
-- event.  On SQLite, and on PostgreSQL under spec/support/with-postgres.lua.
local core = require "licensor.core"
local licensor = require "licensor"
local schema = require "licensor.schema"
local stores = require "support.stores"
local fixtures = require "support.fixtures"
local run = require "support.cli"

local FP = "v1:mid=1111111111111111,uuid=2222222222222222,mac=3333333333333333,host=4444444444444444"

-- The events of key of one kind, their details.
local function events_of(store, key, kind)
  local list = {}
  for _, e in ipairs(assert(store:events(key))) do
    if e.kind == kind then list[#list + 1] = e.detail end
  end
  return list
end

-- Activates server on day with the build the license may install then.
local function activate(store, lic, server, day, fingerprint)
  local build = assert(assert(store:catalogue()):eligible(assert(store:get(lic.key)), day)).number
  return store:activate(lic.key, server, build, day, fingerprint)
end

local function set_policy(store, key, values, why)
  return store:set(key, { policy = values, reason = why or "a large customer", by = "ann" })
end

-- Sweeps on `on`: "ACTION KEY" for each step taken.
local function swept(store, on)
  local list = {}
  for _, t in ipairs(assert(store:sweep(on))) do list[#list + 1] = t.action .. " " .. t.key end
  table.sort(list)
  return list
end

describe("a license's own policy values (store:set policy)", function()
  local store, a, b

  before_each(function()
    store = stores.new(":memory:")
    a, b = stores.issue(store), stores.issue(store)
  end)
  after_each(function() store:close() end)

  it("change that license's migration window and nobody else's", function()
    assert(set_policy(store, a.key, { migration_days = 60 }))
    for _, lic in ipairs({ a, b }) do
      assert.is_true(activate(store, lic, "old", "2018-12-01").ok)
    end
    local va = activate(store, a, "new", "2018-12-05")
    local vb = activate(store, b, "new", "2018-12-05")
    assert.are.same({ "migrating", "2019-02-02" }, { va.migration.state, va.migration.deadline })
    assert.are.same({ "migrating", "2019-01-03" }, { vb.migration.state, vb.migration.deadline })
    local lic = assert(store:get(a.key))
    assert.are.same({ migration_days = 60 }, lic.policy_override)
    assert.are.equal(60, lic.policy.migration_days)
    assert.is_nil(assert(store:get(b.key)).policy)
    -- cat:status shows the override; the catalogue itself is unchanged.
    local cat = assert(store:catalogue())
    assert.are.same({ migration_days = 60 }, assert(cat:status(lic, "2018-12-05")).overrides)
    assert.are.equal(30, cat:policy().migration_days)
  end)

  it("change that license's certificates (refresh-by, grace, match) and nobody else's", function()
    local key_path = fixtures.new_key()
    assert(store:use_signing_key(key_path))
    assert(set_policy(store, a.key, { certificate_days = 10, grace_days = 3, fingerprint_match = "all" }))
    local certs = {}
    for _, lic in ipairs({ a, b }) do
      assert.is_true(store:activate(lic.key, "mail1", 6911, "2018-12-05", FP).ok)
      certs[#certs + 1] = assert(core.read_certificate(assert(store:certificate(lic.key, "mail1", "2018-12-05"))))
    end
    os.remove(key_path)
    os.remove(key_path .. ".pub")
    assert.are.same({ "2018-12-15", 3, "all" }, { certs[1].refresh_by, certs[1].grace_days, certs[1].match })
    assert.are.same({ "2019-01-04", 14, "most" }, { certs[2].refresh_by, certs[2].grace_days, certs[2].match })
    -- The slot is held as long as that license's certificate verifies.
    assert.are.equal("2018-12-18", store:installations(a.key)[1].held_until)
    assert.are.equal("2019-01-18", store:installations(b.key)[1].held_until)
  end)

  it("are logged with who, why, from and to; the same again is no event; false removes a key", function()
    assert(store:set(a.key, { policy = { migration_days = 60 }, reason = "ticket 1", by = "ann" }))
    assert(store:set(a.key, { policy = { migration_days = 60 }, reason = "again", by = "bob" }))
    assert(store:set(a.key, { policy = { grace_days = 20 }, reason = "ticket 2", by = "bob" }))
    assert(store:set(a.key, { policy = { migration_days = false }, reason = "ticket 3", by = "cy" }))
    local lic = assert(store:set(a.key, { policy = { grace_days = false }, reason = "ticket 4", by = "cy" }))
    assert.is_nil(lic.policy_override)
    assert.is_nil(lic.policy)
    assert.are.same({
      { field = "policy", to = { migration_days = 60 }, by = "ann", why = "ticket 1" },
      { field = "policy", from = { migration_days = 60 }, to = { migration_days = 60, grace_days = 20 },
        by = "bob", why = "ticket 2" },
      { field = "policy", from = { migration_days = 60, grace_days = 20 }, to = { grace_days = 20 },
        by = "cy", why = "ticket 3" },
      { field = "policy", from = { grace_days = 20 }, by = "cy", why = "ticket 4" },
    }, events_of(store, a.key, "set"))
    assert.are.same({}, events_of(store, b.key, "set"))
  end)

  it("are refused out of bounds, unknown or without a reason, naming the field, and nothing is written", function()
    assert(set_policy(store, a.key, { migration_days = 60 }))
    local before = stores.dump(store)
    local cases = {
      { { migration_days = 0 }, "policy.migration_days must be a whole number from 1 to 36500" },
      { { migration_days = 36501 }, "policy.migration_days must be a whole number from 1 to 36500" },
      { { migration_days = 1.5 }, "policy.migration_days must be a whole number" },
      { { migration_days = 0 / 0 }, "policy.migration_days" },
      { { migraton_days = 45 }, "policy.migraton_days is not a policy setting" },
      { { fingerprint_match = "some" }, "policy.fingerprint_match" },
      { { reminders = { ms = { 4000 } } }, "policy.reminders.ms[1]" },
      { { phone_after_days = 30 }, "phone_after_days" },           -- after disable_after_days (14)
    }
    for _, c in ipairs(cases) do
      local ok, msg, code = set_policy(store, a.key, c[1])
      assert.is_nil(ok)
      assert.are.equal("invalid_policy", code)
      assert.matches(c[2], msg, 1, true)
    end
    local ok, msg, code = store:set(a.key, { policy = { grace_days = 3 }, by = "ann" })
    assert.are.same({ "invalid_request", true }, { code, ok == nil and msg:find("reason", 1, true) ~= nil })
    assert.are.equal("invalid_request", select(3, store:set(a.key, { policy = { grace_days = 3 },
                                                                      reason = ("x"):rep(1001) })))
    assert.are.equal("invalid_request", select(3, store:set(a.key, { policy = { grace_days = 3 }, reason = "x",
                                                                      by = "ann\nforged line" })))
    assert.has_error(function() store:set(a.key, { policy = "migration_days=3", reason = "x" }) end)
    assert.are.equal(before, stores.dump(store))
    assert.are.same({ migration_days = 60 }, assert(store:get(a.key)).policy_override)
  end)

  it("refuse a misspelt key, set or removed, naming the nearest setting; removing what is not held is no event",
     function()
    assert(set_policy(store, a.key, { migration_days = 60 }))
    local before = stores.dump(store)
    local cases = {
      { { migration_day = 45 }, "policy.migration_day is not a policy setting (misspelt?) " ..
                                "(did you mean 'migration_days'?)" },
      { { chekin_grace_days = false }, "policy.chekin_grace_days is not a policy setting (misspelt?) " ..
                                       "(did you mean 'checkin_grace_days'?)" },
      { { migration_days = false, zzz = false }, "policy.zzz is not a policy setting (misspelt?)" },
      { { reminders = { msx = false } }, "policy.reminders.msx: no such kind of reminders " ..
                                         "(the kinds are addon, lease, ms, trial) (did you mean 'ms'?)" },
    }
    for _, c in ipairs(cases) do
      local ok, msg, code = set_policy(store, a.key, c[1])
      assert.are.same({ true, "invalid_policy" }, { ok == nil, code })
      assert.matches(c[2], msg, 1, true)
    end
    local _, msg = set_policy(store, a.key, { xyzzy_plugh = 1 })
    assert.not_matches("did you mean", msg, 1, true)                -- nothing within two edits
    assert.are.equal(before, stores.dump(store))
    -- A setting the override does not hold, and one the catalogue leaves
    -- unset (checkout_url): removing them changes nothing and is no event.
    local lic = assert(set_policy(store, a.key, { checkin_grace_days = false, checkout_url = false,
                                                  reminders = { ms = false } }))
    assert.are.same({ migration_days = 60 }, lic.policy_override)
    assert.are.equal(before, stores.dump(store))
  end)

  it("merge reminders kind by kind and drive that license's reminders alone", function()
    assert(set_policy(store, a.key, { reminders = { ms = { 60 } } }))
    assert(set_policy(store, a.key, { reminders = { trial = { 3 } } }))
    local lic = assert(store:get(a.key))
    assert.are.same({ ms = { 60 }, trial = { 3 } }, lic.policy_override.reminders)
    -- M&S of both ends 2019-05-31: a's reminder 60 days before, b's 30.
    assert.are.same({ "ms_expiring " .. a.key }, swept(store, "2019-04-01"))
    assert.are.same({ "ms_expiring " .. b.key }, swept(store, "2019-05-01"))
    assert.are.same({ "ms_lapsed " .. b.key }, swept(store, "2019-06-01"))
  end)

  it("give one license a longer check-in grace, which the sweep honours (its prefilter too)", function()
    local lic = stores.two_servers(store, "2018-12-20")
    local other = stores.two_servers(store, "2018-12-20")
    assert(set_policy(store, lic.key, { checkin_grace_days = 60 }))
    -- Nobody checks in after 2018-12-20: within 60 days the excess goes on
    -- for lic, and is over after 7 for the other.
    local on = "2019-01-04"
    assert.are.same({ "email_customer " .. lic.key, "notify_fraud_team " .. lic.key }, swept(store, on))
    assert.are.equal("ok", assert(store:catalogue()):migration(assert(store:get(other.key)),
                                                              store:installations(other.key), on).state)
  end)

  it("renew with the license's own term length and basis", function()
    assert(set_policy(store, a.key, { ms_months = 24, renewal_basis = "from_renewal" }))
    local renewed = assert(store:renew(a.key, "2019-07-01"))
    assert.are.same({ "2019-07-01", "2021-06-30" }, { renewed.ms_start, renewed.ms_expires })
    assert.are.equal("2020-05-31", assert(store:renew(b.key, "2019-05-01")).ms_expires)
  end)
end)

describe("tags", function()
  it("are issued, added, removed and read back as a set; bad ones are refused", function()
    local store = stores.new(":memory:")
    local lic = stores.issue(store, { tags = { "msp", "edu-2027" } })
    assert.are.same({ msp = true, ["edu-2027"] = true }, lic.tags)
    lic = assert(store:set(lic.key, { tags = { edu_2027 = true, ["edu-2027"] = false }, by = "ann" }))
    assert.are.same({ msp = true, edu_2027 = true }, lic.tags)
    assert(store:set(lic.key, { tags = { msp = true }, by = "ann" }))          -- no change, no event
    local sets = events_of(store, lic.key, "set")
    assert.are.same({ { field = "tags", from = { "edu-2027", "msp" }, to = { "edu_2027", "msp" }, by = "ann" } },
                    sets)
    local before = stores.dump(store)
    for _, bad in ipairs({ "MSP", "a b", "-x", "", "x;drop", ("x"):rep(41) }) do
      local ok, _, code = store:set(lic.key, { tags = { bad } })
      assert.are.same({ true, "invalid_request" }, { ok == nil, code })
    end
    local many = {}
    for i = 1, 17 do many[i] = "t" .. i end
    assert.are.equal("invalid_request", select(3, store:set(lic.key, { tags = many })))
    assert.are.equal("invalid_request", select(3, stores.issue_result(store, { tags = { "A" } })))
    assert.has_error(function() store:set(lic.key, { tags = { "msp", edu = true } }) end)
    assert.has_error(function() store:set(lic.key, { tags = { msp = "yes" } }) end)
    assert.are.equal(before, stores.dump(store))
    lic = assert(store:set(lic.key, { tags = {} }))
    assert.is_nil(lic.tags)
    store:close()
  end)

  it("filter store:list, whole words only, every one given; tags_in_use finds who has them", function()
    local store = stores.new(":memory:")
    local both = stores.issue(store, { tags = { "msp", "edu_x" } })
    local msp = stores.issue(store, { tags = { "msp" } })
    local near = stores.issue(store, { tags = { "eduax", "msp-eu" } })
    stores.issue(store)
    local function keys(tags)
      local list = {}
      for _, row in ipairs(assert(store:list{ tags = tags })) do list[row.key] = true end
      return list
    end
    assert.are.same({ [both.key] = true, [msp.key] = true }, keys({ "msp" }))
    assert.are.same({ [both.key] = true }, keys({ "msp", "edu_x" }))
    assert.are.same({ [both.key] = true }, keys({ "edu_x" }))           -- "_" is no wildcard
    assert.are.same({ [near.key] = true }, keys({ "eduax" }))
    assert.are.same({}, keys({ "ms" }))                                 -- a word, not a prefix
    assert.are.same({}, keys({ "eu" }))
    assert.are.equal(4, #assert(store:list{ tags = {} }))
    for _, bad in ipairs({ "MSP", "%", "a b", "x' OR '1'='1" }) do
      assert.are.equal("invalid_request", select(3, store:list{ tags = { bad } }))
    end
    assert.has_error(function() store:list{ tags = "msp" } end)
    assert.are.same({ msp = true, eduax = true }, assert(store:tags_in_use({ "msp", "eduax", "mps", "edu" })))
    assert.are.same({ msp = true }, assert(store:tags_in_use({ "msp", "edu_x" }, both.key)))
    assert.are.same({}, assert(store:tags_in_use({ "eduax" }, near.key)))
    assert.are.equal("invalid_request", select(3, store:tags_in_use({ "M_" })))
    store:close()
  end)

  it("and overrides travel through export and import-licenses", function()
    local store = stores.new(":memory:")
    local lic = stores.issue(store, { tags = { "msp" } })
    assert(set_policy(store, lic.key, { migration_days = 60, reminders = { ms = { 14 } } }))
    local text = assert(store:export_text("csv"))
    assert.matches(',"{""migration_days"":60,""reminders"":{""ms"":%[14%]}}",msp\n', text)
    local target = stores.new(":memory:")
    assert(target:import_licenses(text, "out.csv"))
    assert.are.equal(text, assert(target:export_text("csv")))
    local copy = assert(target:get(lic.key))
    assert.are.same({ { migration_days = 60, reminders = { ms = { 14 } } }, { msp = true }, 60 },
                    { copy.policy_override, copy.tags, copy.policy.migration_days })
    local bad = text:gsub('migration_days"":60', 'migration_days"":0'):gsub(lic.key, "")
    local ok, msg = target:import_licenses(bad, "bad.csv")
    assert.is_nil(ok)
    assert.matches("bad.csv:2: policy: policy.migration_days must be a whole number", msg, 1, true)
    store:close()
    target:close()
  end)
end)

describe("policy files in the store", function()
  local store

  before_each(function() store = stores.new(":memory:") end)
  after_each(function() store:close() end)

  it("change a product's licenses through its layer, and an edition's through its own", function()
    local mail = stores.issue(store, { product = "smartermail", edition = "professional", level = 250 })
    local mail_ent = stores.issue(store, { product = "smartermail", edition = "enterprise", level = 250 })
    local track = stores.issue(store)
    local version = assert(store:import_policy([[
return {
  name = "acme-2027",
  products = {
    smartermail = { migration_days = 45, editions = { enterprise = { checkin_grace_days = 14 } } },
  },
}]], "acme.lua", "2018-11-01"))
    assert.are.equal(1, version)
    local function days(key) return assert(store:get(key)).policy end
    assert.are.same({ 45, 7 }, { days(mail.key).migration_days, days(mail.key).checkin_grace_days })
    assert.are.same({ 45, 14 }, { days(mail_ent.key).migration_days, days(mail_ent.key).checkin_grace_days })
    assert.is_nil(days(track.key))
    -- A license's own override sits on top of the layers.
    assert(set_policy(store, mail_ent.key, { migration_days = 90 }))
    assert.are.same({ 90, 14 }, { days(mail_ent.key).migration_days, days(mail_ent.key).checkin_grace_days })
    for _, lic in ipairs({ mail, track }) do
      assert.is_true(activate(store, lic, "old", "2018-12-01").ok)
    end
    assert.are.equal("2019-01-18", activate(store, mail, "new", "2018-12-05").migration.deadline)
    assert.are.equal("2019-01-03", activate(store, track, "new", "2018-12-05").migration.deadline)
    -- The catalogue is the C one (no hooks to bind), its policy unchanged.
    assert.are.equal(30, assert(store:catalogue()):policy().migration_days)
  end)

  it("are refused whole, naming the line, and nothing is stored", function()
    local before = stores.dump(store)
    local bad = {
      { "return {\n  products = {\n    nope = { migration_days = 45 } } }", "bad.lua:3:" },
      { "return { products = { smartermail = { migration_days = 0 } } }", "policy.migration_days" },
      { "return {\n\n  elegible = function() end }", "bad.lua:3: 'elegible' is not a hook" },
      { "return { products = { smartermail = { editions = { gold = {} } } } }", "no edition 'gold'" },
      { "return { products = { smartermail = { migration_day = 45 } } }",
        "products.smartermail: policy.migration_day is not a policy setting (misspelt?) " ..
        "(did you mean 'migration_days'?)" },
      { "return { products = { smartermail = { editions = { enterprise = { grace_dayz = 3 } } } } }",
        "products.smartermail.editions.enterprise: policy.grace_dayz is not a policy setting (misspelt?) " ..
        "(did you mean 'grace_days'?)" },
      { "return {", "bad.lua:1:" },
      { "\27Lua", "bytecode" },
      { "os.exit(1)", "bad.lua:1:" },
    }
    for _, c in ipairs(bad) do
      local ok, msg, code = store:import_policy(c[1], "bad.lua")
      assert.are.same({ true, "invalid_policy" }, { ok == nil, code }, c[1])
      assert.matches(c[2], msg, 1, true)
    end
    assert.are.equal(before, stores.dump(store))
    assert.are.same({}, assert(store:policy_history()))
    assert.is_nil(store:policy())
    assert.are.equal("no_policy", select(3, store:policy_source()))
  end)

  it("are versioned: history, source, the same file again unchanged, return {} turning them off", function()
    local one = "return { name = 'first', products = { smartermail = { migration_days = 45 } } }"
    local two = "return { ladder = function(ctx) return nil end }"
    assert.are.same({ 1, false }, { store:import_policy(one, "one.lua", "2019-01-01") })
    assert.are.same({ 1, true }, { store:import_policy(one, "one.lua", "2019-01-02") })
    assert.are.same({ 2, false }, { store:import_policy(two, "two.lua", "2019-01-03") })
    assert.are.same({
      { version = 1, imported = "2019-01-01", name = "first", hooks = {} },
      { version = 2, imported = "2019-01-03", name = "two.lua", hooks = { "ladder" }, active = true },
    }, assert(store:policy_history()))
    assert.are.equal(one, assert(store:policy_source(1)))
    assert.are.equal(two, assert(store:policy_source()))
    local P = assert(store:policy())
    assert.are.same({ 2, true }, { P.version, P:has("ladder") })
    assert.are.equal(P, store:policy())                                   -- compiled once
    assert.are.equal("table", type(assert(store:catalogue())))            -- bound to the hook
    assert.are.equal(3, assert(store:import_policy("return {}", "off.lua")))
    assert.are.equal("userdata", type(assert(store:catalogue())))         -- the C catalogue again
    local lic = stores.issue(store, { product = "smartermail", edition = "professional", level = 250 })
    assert.is_nil(lic.policy)
  end)

  it("are copied with the licenses' overrides and tags, and the copy imports the next version", function()
    local src, from = stores.new()
    assert(src:import_policy("return { products = { smartermail = { migration_days = 45 } } }", "p.lua"))
    local lic = stores.issue(src, { tags = { "msp" } })
    assert(set_policy(src, lic.key, { grace_days = 3 }))
    local to = stores.path()
    assert(require("licensor.store.copy").copy(from, to))
    local copy = assert(licensor.open(to))
    assert.are.equal(stores.dump(src), stores.dump(copy))
    src:close()
    stores.remove(from)
    assert.are.same({ 3, { msp = true } }, { assert(copy:get(lic.key)).policy.grace_days, copy:get(lic.key).tags })
    assert.are.equal(2, assert(copy:import_policy("return {}", "off.lua")))
    copy:close()
    stores.remove(to)
  end)

  it("keep a catalogue that drops what they name from being imported", function()
    assert(store:import_policy("return { products = { smartermail = { migration_days = 45 } } }", "p.lua"))
    local t = fixtures.catalogue_table()
    for i = #t.products, 1, -1 do
      if t.products[i].id == "smartermail" then table.remove(t.products, i) end
    end
    local ok, msg, code = store:import(t)
    assert.are.same({ true, "invalid_catalogue" }, { ok == nil, code })
    assert.matches("the active policy does not fit the catalogue", msg, 1, true)
  end)

  it("mark each decision made under them with their version", function()
    local lic = stores.issue(store)
    assert.is_true(activate(store, lic, "a", "2018-12-01").ok)
    assert.is_nil(events_of(store, lic.key, "activate")[1].policy)
    local version = assert(store:import_policy("return { products = { smartertrack = { migration_days = 20 } } }",
                                               "p.lua"))
    assert.is_true(activate(store, lic, "b", "2018-12-05").ok)
    assert(store:renew(lic.key, "2019-05-01"))
    assert(store:deactivate(lic.key, "b", "2018-12-06"))
    assert.are.same({ version }, { events_of(store, lic.key, "activate")[2].policy })
    assert.are.same({ version }, { events_of(store, lic.key, "renew")[1].policy })
    assert.are.same({ version }, { events_of(store, lic.key, "deactivate")[1].policy })
    local other = stores.two_servers(store, "2019-01-01")
    assert(store:sweep("2018-12-26"))                                     -- 20 days: fraud
    assert.are.same({ version }, { events_of(store, other.key, "email_customer")[1].policy })
    assert.are.same({ version }, { events_of(store, other.key, "case_opened")[1].policy })
  end)
end)

describe("a policy file's hooks in the store's workflows", function()
  local store

  before_each(function() store = stores.new(":memory:") end)
  after_each(function() store:close() end)

  it("route a ladder hook's notify_reseller to the outbox, once per case, for tagged keys alone", function()
    assert(store:import_policy([[
return {
  ladder = function(ctx)
    if not ctx.license.tags.reseller then return nil end
    local steps = {}
    for _, s in ipairs(ctx.steps) do
      if s == "email_customer" then steps[#steps + 1] = "notify_reseller"
      elseif s ~= "phone_customer" then steps[#steps + 1] = s end
    end
    return { steps = steps, because = "reseller-managed keys go through their reseller" }
  end,
}]], "reseller.lua"))
    local sold = stores.two_servers(store, "2019-01-20", { tags = { "reseller" } })
    local direct = stores.two_servers(store, "2019-01-20")
    local first = { "email_customer " .. direct.key, "notify_fraud_team " .. direct.key,
                    "notify_fraud_team " .. sold.key, "notify_reseller " .. sold.key }
    table.sort(first)
    assert.are.same(first, swept(store, "2019-01-04"))
    assert.are.same({}, swept(store, "2019-01-05"))                       -- once per case
    assert.are.same({ "phone_customer " .. direct.key }, swept(store, "2019-01-11"))
    local last = { "disable_key " .. direct.key, "disable_key " .. sold.key }
    table.sort(last)
    assert.are.same(last, swept(store, "2019-01-18"))
    local rows = {}
    for _, row in ipairs(assert(store:outbox({ state = "all" }))) do
      if row.key == sold.key then rows[#rows + 1] = row.action end
    end
    assert.are.same({ "notify_reseller", "notify_fraud_team", "disable_key" }, rows)
  end)

  it("take each license's reminder offsets from a reminders hook", function()
    assert(store:import_policy([[
return {
  reminders = function(ctx)
    if ctx.kind == "ms" and ctx.license.tags.early then return { offsets = { 90 } } end
  end,
}]], "early.lua"))
    local early = stores.issue(store, { tags = { "early" } })
    local plain = stores.issue(store)
    assert.are.same({ "ms_expiring " .. early.key }, swept(store, "2019-03-02"))
    assert.are.same({ "ms_expiring " .. plain.key }, swept(store, "2019-05-01"))
  end)

  it("price renewals through a price hook, never below zero (a bad answer leaves the built-in price)", function()
    local t = fixtures.catalogue_table()
    t.policy.ms_percent = 20
    assert(store:import(t))
    local lic = stores.issue(store, { tags = { "edu" } })
    local full = assert(store:renewal_price(lic, "2019-05-01"))
    assert(store:import_policy([[
return {
  price = function(ctx)
    if ctx.item == "renewal" and ctx.license.tags.edu then return { price = math.floor(ctx.price / 2) } end
    if ctx.item == "renewal" then return { price = -5 } end
  end,
}]], "edu.lua"))
    lic = assert(store:get(lic.key))
    assert.are.equal(math.floor(full / 2), store:renewal_price(lic, "2019-05-01"))
    local P = assert(store:policy())
    P.log = function() end
    local other = stores.issue(store)
    assert.are.equal(full, store:renewal_price(other, "2019-05-01"))
    assert.are.equal(1, P.failures["price answer"])
  end)

  it("refuse a license's override that clashes with their layers for it, and write nothing", function()
    local lic = stores.issue(store)
    assert(store:import_policy("return { products = { smartertrack = { phone_after_days = 10 } } }", "p.lua",
                               "2018-11-01"))
    -- disable 8 fits the catalogue's phone 7, not the product's phone 10.
    local ok, msg, code = store:set(lic.key, { policy = { disable_after_days = 8 }, reason = "faster", by = "ann" })
    assert.is_nil(ok)
    assert.are.equal("invalid_policy", code)
    assert.are.equal("policy.disable_after_days must not come before policy.phone_after_days (with the policy " ..
                     "file's layers for this license)", msg)
    assert.is_nil(assert(store:get(lic.key)).policy_override)
    assert(store:set(lic.key, { policy = { disable_after_days = 12 }, reason = "faster", by = "ann" }))
    assert.are.same({ 10, 12 }, { assert(store:get(lic.key)).policy.phone_after_days,
                                  assert(store:get(lic.key)).policy.disable_after_days })
  end)

  it("are not asked when a license is issued: issuing decides nothing a hook answers", function()
    assert(store:import_policy([[
return { eligible = function(ctx) return { build = 6911, because = "pinned" } end }]], "pin.lua", "2018-01-01"))
    local P = assert(store:policy())
    local lines = {}
    P.log = function(line) lines[#lines + 1] = line end
    -- 6911 came out on 2018-12-03: on the start day, 2018-06-01, the pin
    -- would be off-contract, and a failure if asked then.
    local lic = stores.issue(store, { start = "2018-06-01" })
    assert.are.same({}, lines)
    assert.is_nil(next(P.failures))
    assert.are.equal(6911, assert(store:catalogue()):eligible(assert(store:get(lic.key)), "2019-06-01").number)
  end)

  it("leave the built-in decisions in force when the stored version does not compile on this host", function()
    local lic = stores.issue(store)
    local policy = require "licensor.policy"
    local lines, log = {}, policy.log
    policy.log = function(line) lines[#lines + 1] = line end
    -- As a host of another licensor or VM would find it: stored, but not
    -- a file this host can compile.
    store.db:run(store.sql.insert_policy, "2018-11-01",
                 "return { eligible = function(ctx) return { build = ctx.build.number // 1 end }", "newer.lua")
    local ok, cat = pcall(store.catalogue, store)
    local got = ok and cat and store:get(lic.key)
    local eligible = got and cat:eligible(got, "2019-06-01")
    policy.log = log
    assert.is_true(ok)
    assert.is_nil(store:policy())
    assert.are.equal("userdata", type(cat))          -- the C catalogue: no hook bound
    assert.is_truthy(eligible.number)
    assert.is_true(activate(store, lic, "mail1", "2019-06-01").ok)
    assert.are.equal(1, #lines)
    assert.matches("^policy v1 does not compile on this host %(.*%): its layers and hooks are not applied here; " ..
                   "the built%-in decisions stand$", lines[1])
  end)

  it("keep a license readable when a settings hook's answer of some days clashes with its own override", function()
    local lic = stores.issue(store)
    assert(set_policy(store, lic.key, { disable_after_days = 10 }))
    assert(store:import_policy([[
return {
  settings = function(ctx)
    if ctx.day >= "2019-01-01" then return { phone_after_days = 20, disable_after_days = 30 } end
  end,
}]], "later.lua", "2018-11-01"))
    local P = assert(store:policy())
    local lines = {}
    P.log = function(line) lines[#lines + 1] = line end
    assert.is_true(activate(store, lic, "mail1", "2019-02-01").ok)
    local cat = assert(store:catalogue())
    local values = assert(require("licensor.policy").values(P, cat.raw or cat, assert(store:get(lic.key)),
                                                            "2019-02-01"))
    assert.are.same({ 7, 10 }, { values.phone_after_days, values.disable_after_days })
    assert.is_truthy(lines[1]:find("settings hook (license " .. lic.key .. "): answered settings the other " ..
                                   "layers refuse", 1, true))
  end)

  it("resolve a settings hook per license, and the sweep still finds every key it widens", function()
    assert(store:import_policy([[
return {
  settings = function(ctx)
    if ctx.license.tags.big then return { checkin_grace_days = 60 } end
  end,
}]], "big.lua"))
    local big = stores.two_servers(store, "2018-12-20", { tags = { "big" } })
    stores.two_servers(store, "2018-12-20")
    assert.are.equal(60, assert(store:get(big.key)).policy.checkin_grace_days)
    assert.are.same({ "email_customer " .. big.key, "notify_fraud_team " .. big.key }, swept(store, "2019-01-04"))
  end)
end)

describe("licensor set and show", function()
  local path

  before_each(function()
    path = stores.path()
    stores.new(path):close()
  end)
  after_each(function() stores.remove(path) end)

  local function issue()
    local status, out = run("--db", path, "--json", "issue", "--product", "smartertrack", "--edition",
                            "enterprise", "--level", "5", "--start", "2018-06-01", "--tag", "msp")
    assert.are.equal(0, status)
    return require("cjson").decode(out).key
  end

  it("set a license's policy values with a reason and who, and show them with its tags", function()
    local key = issue()
    local status, out, err = run("--db", path, "set", key, "--policy", "migration_days=60", "--policy",
                                 "reminders.ms=14,1", "--reason", "ticket 9", "--by", "ann", "--tag", "big")
    assert.are.same({ 0, "licensor: tag 'big' is new: no other license has it" }, { status, err })
    assert.matches("migration_days=60", out, 1, true)
    status, out = run("--db", path, "show", key, "--on", "2018-12-01")
    assert.are.equal(0, status)
    assert.matches("tags%s+big msp", out)
    assert.matches("policy_override%s+migration_days=60, reminders: ms: 14, 1", out)
    status, out = run("--db", path, "--json", "show", key, "--on", "2018-12-01")
    assert.are.equal(0, status)
    local t = require("cjson").decode(out)
    assert.are.same({ "big", "msp" }, t.license.tags)
    assert.are.same({ 60, 60 }, { t.license.policy_override.migration_days, t.license.policy.migration_days })
    local store = assert(licensor.open(path))
    local set = events_of(store, key, "set")
    store:close()
    assert.are.same({ field = "policy", to = { migration_days = 60, reminders = { ms = { 14, 1 } } }, by = "ann",
                      why = "ticket 9" }, set[1])
    status, out = run("--db", path, "set", key, "--policy", "migration_days=", "--reason", "done", "--untag", "big")
    assert.are.equal(0, status)
    assert.not_matches("migration_days", out)
  end)

  it("refuse --policy without --reason, a malformed pair, and an out-of-bounds value (exit 2)", function()
    local key = issue()
    local status, _, err = run("--db", path, "set", key, "--policy", "migration_days=60")
    assert.are.same({ 2, true }, { status, err:find("--reason", 1, true) ~= nil })
    status, _, err = run("--db", path, "set", key, "--policy", "migration_days", "--reason", "x")
    assert.are.same({ 2, true }, { status, err:find("KEY=VALUE", 1, true) ~= nil })
    status, _, err = run("--db", path, "set", key, "--policy", "migration_days=0", "--reason", "x")
    assert.are.equal(2, status)
    assert.matches("invalid_policy: policy.migration_days must be a whole number from 1 to 36500", err, 1, true)
    status, _, err = run("--db", path, "set", key)
    assert.are.same({ 2, true }, { status, err:find("--policy", 1, true) ~= nil })
  end)

  it("refuse a misspelt --policy key, set or removed, with the nearest setting, and show a value refused", function()
    local key = issue()
    local status, _, err = run("--db", path, "set", key, "--policy", "migration_day=45", "--reason", "x")
    assert.are.equal(2, status)
    assert.matches("policy.migration_day is not a policy setting (misspelt?) (did you mean 'migration_days'?)",
                   err, 1, true)
    status, _, err = run("--db", path, "set", key, "--policy", "chekin_grace_days=", "--reason", "x")
    assert.are.equal(2, status)
    assert.matches("(did you mean 'checkin_grace_days'?)", err, 1, true)
    status, _, err = run("--db", path, "set", key, "--policy", "migration_days=45,grace_days=20", "--reason", "x")
    assert.are.equal(2, status)
    assert.matches("policy.migration_days must be a whole number from 1 to 36500 " ..
                   "(--policy migration_days=45,grace_days=20; one KEY=VALUE per --policy)", err, 1, true)
    status, _, err = run("--db", path, "set", key, "--policy", "checkin_grace_days=99999", "--reason", "x")
    assert.are.equal(2, status)
    assert.matches("from 0 to 36500 (--policy checkin_grace_days=99999)", err, 1, true)
    local store = assert(licensor.open(path))
    assert.are.same({}, events_of(store, key, "set"))
    store:close()
  end)

  it("change nothing, with a note, for a removal of what the license does not hold", function()
    local key = issue()
    local status, out, err = run("--db", path, "set", key, "--policy", "checkin_grace_days=", "--policy",
                                 "reminders.trial=", "--reason", "x", "--untag", "msp-typo")
    assert.are.equal(0, status)
    assert.matches("tags%s+msp", out)
    assert.are.equal("licensor: --policy checkin_grace_days=: nothing to remove (the license's own values do " ..
                     "not set it)\nlicensor: --policy reminders.trial=: nothing to remove (the license's own " ..
                     "values do not set it)\nlicensor: tag msp-typo: the license has no such tag", err)
    local store = assert(licensor.open(path))
    assert.are.same({}, events_of(store, key, "set"))
    store:close()
  end)

  it("note a tag no other license has, on issue and on set, and list by tags", function()
    local first = issue()                                   -- msp: new
    local status, out, err = run("--db", path, "--json", "issue", "--product", "smartertrack", "--edition",
                                 "enterprise", "--level", "5", "--start", "2018-06-01", "--tag", "msp",
                                 "--tag", "mps")
    assert.are.same({ 0, "licensor: tag 'mps' is new: no other license has it" }, { status, err })
    local second = require("cjson").decode(out).key
    local _
    status, _, err = run("--db", path, "set", first, "--tag", "msp", "--tag", "edu", "--tag", "mps")
    assert.are.same({ 0, "licensor: tag 'edu' is new: no other license has it" }, { status, err })
    status, out = run("--db", path, "--json", "list", "--tag", "msp", "--tag", "mps")
    assert.are.equal(0, status)
    local keys = {}
    for _, row in ipairs(require("cjson").decode(out)) do keys[#keys + 1] = row.key end
    table.sort(keys)
    local want = { first, second }
    table.sort(want)
    assert.are.same(want, keys)
    status, out = run("--db", path, "--json", "list", "--tag", "edu")
    assert.are.same({ 0, first }, { status, require("cjson").decode(out)[1].key })
    status, _, err = run("--db", path, "list", "--tag", "Edu")
    assert.are.same({ 2, true }, { status, err:find("invalid_request", 1, true) ~= nil })
  end)
end)

describe("schema 12", function()
  it("migrates a store of schema 11 and keeps its data", function()
    local path = stores.path()
    local raw = stores.raw(path)
    local list = stores.postgresql and schema.postgresql or schema.migrations
    for n = 1, 11 do
      if list[n] ~= "" then raw:exec(list[n]) end
    end
    if stores.postgresql then
      raw:exec("CREATE TABLE licensor_schema (version INTEGER NOT NULL); INSERT INTO licensor_schema VALUES (11)")
    else
      raw:exec("PRAGMA user_version = 11")
    end
    local source, key = assert(core.write_data(fixtures.catalogue_table())), core.new_key()
    raw:run(raw:prepare("INSERT INTO catalogues (imported, source, policy) VALUES (?, ?, ?)"), "2018-01-01",
            source, "{}")
    raw:run(raw:prepare([[INSERT INTO licenses (key, product, edition, level, kind, start, ms_expires, failover,
      owner, catalogue, email) VALUES (?, 'smartertrack', 'enterprise', '5', 'perpetual', '2018-06-01',
      '2019-05-31', 0, 'acme', 1, 'it@acme.example')]]), key)
    raw:close()
    local store = assert(licensor.open(path))
    assert.are.equal(12, store:schema_version())
    local lic = assert(store:get(key))
    assert.are.same({ "acme", "it@acme.example", "2019-05-31" }, { lic.owner, lic.email, lic.ms_expires })
    assert.are.same({ nil, nil, nil }, { lic.tags, lic.policy_override, lic.policy })
    assert(set_policy(store, lic.key, { migration_days = 60 }))
    assert.are.equal(60, assert(store:get(lic.key)).policy.migration_days)
    store:close()
    stores.remove(path)
  end)
end)
