-- The store (doc/rules.md section 6): licenses in SQLite and every workflow, with
-- the event log that records each change.
local licensor = require "licensor"
local core = require "licensor.core"
local fixtures = require "support.fixtures"
local stores = require "support.stores"

local function kinds(events)
  local list = {}
  for _, e in ipairs(events) do list[#list + 1] = e.kind end
  return list
end

describe("licensor.open", function()
  it("creates a database with the current schema and reopens it with its data", function()
    local store, path = stores.new()
    local lic = stores.issue(store)
    assert.are.equal(#require("licensor.schema").migrations, store:schema_version())
    if stores.sqlite then assert.are.equal("wal", store:query("PRAGMA journal_mode")[1].journal_mode) end
    assert.is_true(store:close())
    local again = assert(licensor.open(path))
    assert.are.equal(lic.start, again:get(lic.key).start)
    again:close()
    stores.remove(path)
  end)

  it("opens :memory: stores and refuses unusable paths with a code", function()
    assert.matches("licensor.store", tostring(assert(licensor.open(":memory:"))))
    local store, msg, code = licensor.open("/nonexistent/dir/x.db")
    assert.is_nil(store)
    assert.are.equal("store_error", code)
    assert.matches("/nonexistent/dir/x.db", msg)
  end)

  it("raises on bad arguments", function()
    assert.has_error(function() licensor.open() end)
    assert.has_error(function() licensor.open(":memory:", { synchronous = "sometimes" }) end)
    assert.has_error(function() licensor.open(":memory:", "full") end)
  end)
end)

describe("catalogue versions", function()
  it("import tables and files as new versions; older versions stay", function()
    local store = stores.new(":memory:")
    assert.are.equal(2, store:import("lua/licensor/catalogues/smartertools.lua"))
    assert.are.equal(2, store:catalogue_version())
    assert.matches("3 products", tostring(store:catalogue()))
    assert.are.equal(2, #store:query("SELECT version FROM catalogues"))
  end)

  it("keep the policy with the version", function()
    local store = stores.new(":memory:")
    local t = fixtures.catalogue_table()
    t.policy = { ms_months = 24, renewal_basis = "from_renewal" }
    store:import(t)
    assert.are.equal(24, store:catalogue():policy().ms_months)
    local lic = stores.issue(store, { start = "2018-01-10" })
    assert.are.equal("2020-01-09", lic.ms_expires)
  end)

  it("refuse invalid catalogues whole, and answer no_catalogue before the first import", function()
    local store = assert(licensor.open(":memory:"))
    assert.are.equal("no_catalogue", select(3, store:catalogue()))
    assert.are.equal("no_catalogue", select(3, store:issue{ product = "smartertrack", edition = "enterprise", level = 5 }))
    assert.are.equal("invalid_catalogue", select(3, store:import({ products = {} })))
    assert.are.equal("io_error", select(3, store:import("/nonexistent.lua")))
    assert.is_nil(store:query("SELECT * FROM catalogues")[1])
  end)

  it("are seen by other connections to the same file", function()
    local store, path = stores.new()
    local other = assert(licensor.open(path))
    assert.are.equal(1, other:catalogue_version())
    store:import("lua/licensor/catalogues/smartertools.lua")
    assert.are.equal(2, other:catalogue_version())
    assert.is_table(other:catalogue():product("smarterstats"))
    store:close(); other:close(); stores.remove(path)
  end)
end)

describe("store:issue and store:get", function()
  local store = stores.new(":memory:")

  it("issue a perpetual license with 12 months of M&S and add-ons paid to the same day", function()
    local lic = stores.issue(store, { start = "2017-12-07", addons = { "eas" } })
    assert.are.same({ key = lic.key, product = "smartertrack", edition = "enterprise", level = 5,
                      kind = "perpetual", start = "2017-12-07", ms_expires = "2018-12-06",
                      failover = false, owner = "acme", addons = { eas = "2018-12-06" } }, lic)
    assert.are.equal(lic.key, core.normalise_key(lic.key))
  end)

  it("issue leases and trials (trial length from the policy)", function()
    local lease = stores.issue(store, { kind = "lease", failover = true })
    assert.are.same({ "lease", true }, { lease.kind, lease.failover })
    assert.is_nil(lease.ms_expires)
    local trial = stores.issue(store, { kind = "trial", edition = "professional" })
    assert.are.equal(30, trial.trial_days)
    assert.is_nil(trial.ms_expires)
  end)

  it("refuse what the catalogue refuses, with its code", function()
    assert.are.equal("unknown_product", select(3, store:issue{ product = "x", edition = "e", level = 1 }))
    assert.are.equal("invalid_license", select(3, stores.issue_result(store, { edition = "gold" })))
    assert.are.equal("invalid_license", select(3, stores.issue_result(store, { level = 0 })))
    assert.are.equal("invalid_date", select(3, stores.issue_result(store, { start = "2018-02-30" })))
    assert.are.equal("unknown_addon", select(3, stores.issue_result(store, { addons = { "ews" } })))
    assert.are.equal("invalid_license", select(3, store:issue{ product = "smartertrack", level = 5 }))
  end)

  it("raise on arguments of the wrong type", function()
    assert.has_error(function() store:issue("smartertrack") end)
    assert.has_error(function() store:issue{ product = "smartertrack", failover = "yes" } end)
    assert.has_error(function() store:issue{ product = "smartertrack", addons = "eas" } end)
  end)

  it("get a license by key in any case, refusing malformed and unknown keys distinctly", function()
    local lic = stores.issue(store)
    assert.are.same(lic, store:get(lic.key:lower()))
    assert.are.equal("invalid_key", select(3, store:get("nope")))
    assert.are.equal("invalid_key", select(3, store:get(42)))
    assert.are.equal("unknown_key", select(3, store:get(core.new_key())))
  end)

  it("log the issue as the first event", function()
    local lic = stores.issue(store, { addons = { "eas" } })
    local events = store:events(lic.key)
    assert.are.same({ "issue" }, kinds(events))
    assert.are.equal("acme", events[1].detail.owner)
    assert.are.same({ "eas" }, events[1].detail.addons)
  end)
end)

describe("R15 store:renew", function()
  it("extends M&S and its add-ons to the next anniversary and records the term", function()
    local store = stores.new(":memory:")
    local lic = stores.issue(store, { start = "2017-12-07", addons = { "eas" } })
    local renewed = assert(store:renew(lic.key, "2018-12-01"))
    assert.are.same({ "2019-12-06", "2019-12-06" }, { renewed.ms_expires, renewed.addons.eas })
    assert.are.equal(4, #store:query("SELECT * FROM terms WHERE key = ?", lic.key))
    local last = store:events(lic.key)[2]
    assert.are.same({ "renew", "2018-12-06", "2019-12-06" }, { last.kind, last.detail.from, last.detail.to })
  end)

  it("follows the policy's renewal_basis after a lapse", function()
    local store = stores.new(":memory:")
    local lic = stores.issue(store, { start = "2017-12-07" })
    assert.are.equal("2019-12-06", store:renew(lic.key, "2019-03-01").ms_expires)
    local t = fixtures.catalogue_table()
    t.policy = { renewal_basis = "from_renewal" }
    store:import(t)
    local other = stores.issue(store, { start = "2017-12-07" })
    local renewed = store:renew(other.key, "2019-03-01")
    assert.are.same({ "2020-02-29", "2019-03-01" }, { renewed.ms_expires, renewed.ms_start })
  end)

  it("refuses leases (no M&S) and bad input with codes", function()
    local store = stores.new(":memory:")
    local lease = stores.issue(store, { kind = "lease" })
    assert.are.equal("invalid_license", select(3, store:renew(lease.key, "2019-01-01")))
    assert.are.equal("invalid_date", select(3, store:renew(lease.key, "2019-13-01")))
    assert.are.equal("unknown_key", select(3, store:renew(core.new_key(), "2019-01-01")))
  end)
end)

describe("store:add_addon, store:upgrade, store:end_lease, store:transfer", function()
  local store = stores.new(":memory:")

  it("add_addon buys an add-on paid to the current M&S expiry", function()
    local lic = stores.issue(store, { start = "2018-06-01" })
    local bought = assert(store:add_addon(lic.key, "message_sniffer", "2018-09-01"))
    assert.are.same({ message_sniffer = "2019-05-31" }, bought.addons)
    assert.are.equal("add_addon", store:events(lic.key)[2].kind)
    assert.are.equal("already_owned", select(3, store:add_addon(lic.key, "message_sniffer", "2018-10-01")))
    assert.are.equal("unknown_addon", select(3, store:add_addon(lic.key, "ews", "2018-10-01")))
    assert.are.equal("ms_expired", select(3, store:add_addon(lic.key, "eas", "2019-06-01")))
  end)

  it("upgrade needs exactly the quoted amount and logs it", function()
    local lic = stores.issue(store, { start = "2018-06-01" })
    assert.are.equal("wrong_amount", select(3, store:upgrade(lic.key, { level = 10 }, "2018-09-01", { paid = 29999 })))
    assert.are.equal("downgrade", select(3, store:upgrade(lic.key, { edition = "professional" }, "2018-09-01", { paid = 0 })))
    local up = assert(store:upgrade(lic.key, { level = 10 }, "2018-09-01", { paid = 30000 }))
    assert.are.equal(10, up.level)
    local e = store:events(lic.key)[2]
    assert.are.same({ "upgrade", 30000, 5, 10 }, { e.kind, e.detail.paid, e.detail.from.level, e.detail.to.level })
    assert.has_error(function() store:upgrade(lic.key, { level = 20 }, "2018-09-01") end)
  end)

  it("end_lease ends a lease once (R6)", function()
    local lease = stores.issue(store, { kind = "lease" })
    local ended = assert(store:end_lease(lease.key, "2019-01-01"))
    assert.are.equal("2019-01-01", ended.lease_ended)
    assert.are.equal("expired", select(3, store:end_lease(lease.key, "2019-02-01")))
    assert.are.equal("invalid_license", select(3, store:end_lease(stores.issue(store).key, "2019-02-01")))
    assert.are.equal("expired", select(3, store:catalogue():eligible(ended, "2019-01-01")))
  end)

  it("transfer needs a consent reference and logs it (R14)", function()
    local lic = stores.issue(store)
    assert.are.equal("transfer_requires_consent", select(3, store:transfer(lic.key, "globex")))
    assert.are.equal("acme", store:get(lic.key).owner)
    local moved = assert(store:transfer(lic.key, "globex", { consent = "EULA-7" }))
    assert.are.same({ "globex", "EULA-7" }, { moved.owner, moved.transfer_consent })
    local e = store:events(lic.key)[2]
    assert.are.same({ "transfer", "acme", "globex", "EULA-7" }, { e.kind, e.detail.from, e.detail.to, e.detail.consent })
  end)

  it("disable and enable with a reason, each logged once", function()
    local lic = stores.issue(store)
    local off = assert(store:disable(lic.key, "2019-01-01", "chargeback"))
    assert.are.same({ "2019-01-01", "chargeback" }, { off.disabled, off.disabled_reason })
    store:disable(lic.key, "2019-01-05", "again")
    assert.are.equal("2019-01-01", store:get(lic.key).disabled)
    local on = assert(store:enable(lic.key, "2019-02-01"))
    assert.is_nil(on.disabled)
    assert.are.same({ "issue", "disable", "enable" }, kinds(store:events(lic.key)))
    assert.are.equal("chargeback", store:events(lic.key)[2].detail.reason)
  end)
end)

describe("activations (R5, R9, R10)", function()
  local store, lic
  before_each(function()
    store = stores.new(":memory:")
    lic = stores.issue(store, { start = "2018-06-01" })
  end)

  it("activate an eligible build and record the installation", function()
    local v = store:activate(lic.key, "mail1", 6911, "2018-12-05")
    assert.is_true(v.ok)
    assert.are.equal(6911, v.eligible.number)
    assert.are.same({ state = "ok", allowed = 1, active = 1 }, v.migration)
    assert.are.same({ { server = "mail1", build = 6911, first_seen = "2018-12-05", last_seen = "2018-12-05" } },
      store:installations(lic.key))
  end)

  it("refuse a build newer than the eligible one (R5) without writing", function()
    local v = store:activate(lic.key, "mail1", 6947, "2018-12-05")
    assert.are.same({ false, "newer_than_eligible" }, { v.ok, v.code })
    assert.matches("6947", v.message)
    assert.are.same({}, store:installations(lic.key))
  end)

  it("allow a migration to one more server, refuse a third (too_many_installations)", function()
    store:activate(lic.key, "old", 6855, "2018-12-01")
    local v = store:activate(lic.key, "new", 6911, "2018-12-05")
    assert.is_true(v.ok)
    assert.are.same({ "migrating", "2018-12-05", "2019-01-03" }, { v.migration.state, v.migration.since, v.migration.deadline })
    local third = store:activate(lic.key, "third", 6911, "2018-12-06")
    assert.are.same({ false, "too_many_installations" }, { third.ok, third.code })
  end)

  -- "old" since November, "new" from 2018-12-05, both checking in: the
  -- excess runs from 2018-12-05 and is fraud from 2019-01-04.
  local function two_servers_until(last_day)
    store:activate(lic.key, "old", 6855, "2018-11-01")
    store:activate(lic.key, "new", 6911, "2018-12-05")
    for day = core.day("2018-11-01"), core.day(last_day), 5 do
      store:checkin(lic.key, "old", core.date(day))
      if day >= core.day("2018-12-05") then store:checkin(lic.key, "new", core.date(day)) end
    end
  end

  it("refuse a new server once the excess is fraud (migration_window_over), but not check-ins", function()
    two_servers_until("2019-01-10")
    local v = store:activate(lic.key, "third", 6911, "2019-01-10")
    assert.are.same({ false, "migration_window_over", "fraud" }, { v.ok, v.code, v.migration.state })
    assert.is_true(store:checkin(lic.key, "old", "2019-01-10").ok)
    assert.is_true(store:checkin(lic.key, "new", "2019-01-10").ok)
  end)

  it("end the migration when the extra server is deactivated", function()
    two_servers_until("2018-12-20")
    local v = store:deactivate(lic.key, "old", "2018-12-21")
    assert.are.same({ "ok", 1 }, { v.migration.state, v.migration.active })
    assert.is_true(store:activate(lic.key, "spare", 6911, "2018-12-22").ok)
  end)

  it("let failover licenses run two servers", function()
    local failover = stores.issue(store, { failover = true })
    assert.is_true(store:activate(failover.key, "a", 6911, "2018-12-05").ok)
    local v = store:activate(failover.key, "b", 6911, "2018-12-05")
    assert.are.same({ true, "ok", 2 }, { v.ok, v.migration.state, v.migration.allowed })
  end)

  it("treat activating an installed server again as a check-in", function()
    store:activate(lic.key, "mail1", 6855, "2018-12-01")
    assert.is_true(store:activate(lic.key, "mail1", 6911, "2018-12-05").ok)
    local list = store:installations(lic.key)
    assert.are.equal(1, #list)
    assert.are.same({ 6911, "2018-12-05" }, { list[1].build, list[1].last_seen })
  end)

  it("refuse keys that are disabled, unknown or malformed", function()
    store:disable(lic.key, "2018-11-01", "admin")
    assert.are.equal("disabled", store:activate(lic.key, "mail1", 6911, "2018-12-05").code)
    assert.are.equal("unknown_key", select(3, store:activate(core.new_key(), "m", 6911, "2018-12-05")))
    assert.are.equal("invalid_key", select(3, store:activate("ABC", "m", 6911, "2018-12-05")))
    assert.has_error(function() store:activate(lic.key, nil, 6911) end)
    assert.has_error(function() store:activate(lic.key, "m", "6911") end)
  end)

  it("check in: move last_seen, change the build, refuse a rollback across a barrier (R13)", function()
    store:renew(lic.key, "2019-05-01")
    store:activate(lic.key, "mail1", 6911, "2019-01-28")
    local v = store:checkin(lic.key, "mail1", "2019-02-01", 6947)
    assert.is_true(v.ok)
    assert.are.same({ 6947, "2019-02-01" }, { store:installations(lic.key)[1].build, store:installations(lic.key)[1].last_seen })
    local back = store:checkin(lic.key, "mail1", "2019-02-02", 6911)
    assert.are.same({ false, "rollback_barrier" }, { back.ok, back.code })
    assert.are.equal("not_activated", store:checkin(lic.key, "other", "2019-02-02").code)
    assert.are.same({ "issue", "renew", "activate", "checkin" }, kinds(store:events(lic.key)))
  end)

  it("run idempotent work once per id, and keep nothing of work that failed", function()
    local renewals = 0
    local function work(s)
      renewals = renewals + 1
      return assert(s:renew(lic.key, "2019-05-01")).ms_expires
    end
    assert.are.same({ "2020-05-31", false }, { store:idempotent("r1", "renew", work) })
    assert.are.same({ "2020-05-31", true }, { store:idempotent("r1", "renew", work) })
    assert.are.same({ 1, "2020-05-31" }, { renewals, store:get(lic.key).ms_expires })
    assert.are.equal("idempotency_conflict", select(3, store:idempotent("r1", "other", work)))
    -- A failing step after a workflow rolls the workflow back too.
    local before = stores.dump(store)
    local _, _, code = store:idempotent("r2", "renew", function(s)
      assert(s:renew(lic.key, "2019-05-01"))
      return (s:renew(core.new_key(), "2019-05-01"))   -- unknown_key: raised to the boundary
    end)
    assert.are.equal("unknown_key", code)
    assert.are.equal(before, stores.dump(store))
  end)

  it("issue only what the catalogue can serve: a priced level, a version lock on a perpetual's built major", function()
    local before = stores.dump(store)
    local _, msg, code = store:issue{ product = "smartertrack", edition = "enterprise", level = 15, start = "2018-06-01" }
    assert.are.same({ "invalid_license",
                      "product 'smartertrack' enterprise has no level 15 (levels: 5, 10, unlimited)" }, { code, msg })
    assert.are.equal("invalid_license", select(3, store:issue{ product = "smartertrack", edition = "professional",
      level = 5, kind = "lease", version_lock = 13 }))
    _, msg, code = store:issue{ product = "smartertrack", edition = "professional", level = 5, version_lock = 99 }
    assert.are.same({ "invalid_license", "product 'smartertrack' has no builds of major 99" }, { code, msg })
    assert.are.equal(before, stores.dump(store))
    assert.is_truthy(store:issue{ product = "smartertrack", edition = "professional", level = 5, version_lock = 13 })
  end)

  it("refuse at issue a license whose terms would leave year 9999", function()
    local before = stores.dump(store)
    local lic2, msg, code = store:issue{ product = "smartertrack", edition = "enterprise", level = 5,
                                         start = "9999-12-31" }
    assert.are.same({ nil, "invalid_date" }, { lic2, code })
    assert.matches("9999%-12%-31", msg)
    assert.are.equal("invalid_date", select(3, store:issue{ product = "smartertrack", edition = "enterprise",
      level = 5, kind = "trial", start = "9999-12-20" }))
    assert.are.equal(before, stores.dump(store))
    assert.is_truthy(store:issue{ product = "smartertrack", edition = "enterprise", level = 5, kind = "lease",
      start = "9999-12-31" })
  end)

  it("take server names as data: over 255 bytes, broken UTF-8 or control characters are invalid_request", function()
    local before = stores.dump(store)
    for _, name in ipairs({ string.rep("s", 256), "a\255", "a\0b", "" }) do
      assert.are.equal("invalid_request", select(3, store:activate(lic.key, name, 6911, "2018-12-05")), name)
    end
    assert.are.equal(before, stores.dump(store))
    assert.is_true(store:activate(lic.key, string.rep("s", 255), 6911, "2018-12-05").ok)
  end)

  it("refuse a check-in from a lapsed installation: it must activate again, through R10 (amended R9)", function()
    local other = stores.issue(store, { start = "2018-06-01" })
    assert.is_true(store:activate(other.key, "A", 6911, "2019-01-10").ok)
    assert.is_true(store:activate(other.key, "B", 6911, "2019-02-01").ok)
    assert.is_true(store:activate(other.key, "C", 6911, "2019-02-02").ok)    -- migrating, +1
    assert.are.equal("too_many_installations", store:activate(other.key, "D", 6911, "2019-02-02").code)
    local before = stores.dump(store)
    local v = store:checkin(other.key, "A", "2019-02-02")                     -- 23 days silent
    assert.are.same({ false, "not_activated", 2 }, { v.ok, v.code, v.migration.active })
    assert.are.equal(before, stores.dump(store))
    assert.are.equal("2019-01-10", store:installations(other.key)[1].last_seen)
    -- Its activation goes through admission like any new server's.
    assert.are.equal("too_many_installations", store:activate(other.key, "A", 6911, "2019-02-02").code)
  end)

  it("deactivate ends an installation and is logged", function()
    store:activate(lic.key, "mail1", 6911, "2018-12-05")
    local v = store:deactivate(lic.key, "mail1", "2018-12-20")
    assert.are.same({ true, 0 }, { v.ok, v.migration.active })
    assert.are.equal("2018-12-20", store:installations(lic.key)[1].deactivated)
    assert.are.equal("not_activated", store:deactivate(lic.key, "mail1", "2018-12-21").code)
    assert.are.same({ "issue", "activate", "deactivate" }, kinds(store:events(lic.key)))
  end)
end)

describe("store:license (the read path of the gateway)", function()
  -- SQLite sees any commit at once; PostgreSQL after stale_ms at most.
  it("answers the license and the active catalogue, fresh after any process commits", function()
    local store, path = stores.new(nil, { stale_ms = 100 })
    local lic = stores.issue(store)
    local other = assert(licensor.open(path))
    local function settle() if stores.postgresql then require("socket").sleep(0.15) end end
    local first, cat = store:license(lic.key)
    assert.are.same({ lic.key, "1" }, { first.key, tostring(other:catalogue_version()) })
    assert.is_userdata(cat)
    -- Served from memory; on PostgreSQL a new stale_ms period may begin
    -- between two reads (the cache's generation changes then), so one
    -- more read shows it.
    local again = store:license(lic.key:lower())
    if again ~= first and stores.postgresql then first, again = again, store:license(lic.key:lower()) end
    assert.are.equal(first, again)
    other:disable(lic.key, "2019-01-01", "elsewhere")            -- another connection commits
    settle()
    local after = store:license(lic.key)
    assert.are.equal("2019-01-01", after.disabled)
    other:import("lua/licensor/catalogues/smartertools.lua")
    settle()
    local _, newer = store:license(lic.key)
    assert.are_not.equal(cat, newer)
    assert.is_table(newer:product("smarterstats"))
    assert.are.equal("unknown_key", select(3, store:license(core.new_key())))
    assert.are.equal("invalid_key", select(3, store:license("nope")))
    other:close(); store:close(); stores.remove(path)
  end)

  it("counts each read that fills the cache, and empties the cache whole at 50,000 keys", function()
    local common = require "licensor.store.common"
    local cache = { cache = {}, cache_size = 0, cache_misses = 0 }
    common.remember(cache, "a", 1)
    common.remember(cache, "a", 2)                                   -- a stale entry replaced
    assert.are.same({ 1, 2, 2 }, { cache.cache_size, cache.cache_misses, cache.cache.a })
    for i = 2, 50000 do common.remember(cache, "k" .. i, i) end
    assert.are.equal(50000, cache.cache_size)
    common.remember(cache, "one more", 0)
    assert.are.same({ 1, 0 }, { cache.cache_size, cache.cache["one more"] })
    assert.is_nil(cache.cache.a)
  end)
end)

describe("store:list", function()
  it("finds licenses by filters that combine, a page at a time, by key", function()
    local store = stores.new(":memory:")
    local a = stores.issue(store, { owner = "acme", start = "2018-06-01" })             -- M&S to 2019-05-31
    local b = stores.issue(store, { owner = "acme", start = "2018-01-15" })             -- M&S to 2019-01-14
    local c = stores.issue(store, { owner = "globex", kind = "lease", start = "2018-01-01" })
    local d = stores.issue(store, { owner = "globex", start = "2017-03-01", edition = "professional" })
    store:disable(d.key, "2018-12-01", "admin")
    local function keys(rows)
      local list = {}
      for _, r in ipairs(rows) do list[#list + 1] = r.key end
      table.sort(list)
      return list
    end
    local function sorted(...)
      local list = { ... }
      table.sort(list)
      return list
    end
    assert.are.same(sorted(a.key, b.key), keys(store:list{ owner = "acme" }))
    assert.are.same({ c.key }, keys(store:list{ owner = "globex", kind = "lease" }))
    assert.are.same({ b.key }, keys(store:list{ ms_expiring = 30, on = "2018-12-20" }))
    assert.are.same(sorted(a.key, b.key), keys(store:list{ ms_expiring = 200, on = "2018-12-20" }))
    assert.are.same(sorted(b.key, d.key), keys(store:list{ lapsed = true, on = "2019-03-01" }))
    assert.are.same({ d.key }, keys(store:list{ disabled = true }))
    assert.are.same({ d.key }, keys(store:list{ edition = "professional", product = "smartertrack" }))
    assert.are.same({}, store:list{ owner = "nobody" })
    local all = store:list{}
    assert.are.equal(4, #all)
    assert.are.same({ all[2].key }, keys(store:list{ limit = 1, offset = 1 }))
    assert.are.equal("invalid_request", select(3, store:list{ limit = 0 }))
    assert.are.equal("invalid_date", select(3, store:list{ lapsed = true, on = "someday" }))
  end)

  it("lists open fraud cases with their ladder state", function()
    local store = stores.new(":memory:")
    local lic = stores.issue(store, { start = "2018-06-01" })
    store:activate(lic.key, "old", 6855, "2018-12-01")
    store:activate(lic.key, "new", 6911, "2018-12-05")
    for day = core.day("2018-12-02"), core.day("2019-01-04") do
      store:checkin(lic.key, "old", core.date(day))
      if day >= core.day("2018-12-05") then store:checkin(lic.key, "new", core.date(day)) end
    end
    store:sweep("2019-01-04")
    local rows = store:list{ fraud = true }
    assert.are.same({ lic.key, "2018-12-05", "2019-01-04" }, { rows[1].key, rows[1].fraud_since, rows[1].first_step })
  end)
end)
