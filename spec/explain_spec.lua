-- explain (issue 21, item 3): the chain of rules behind a decision for one
-- license -- each rule by its R-number, its inputs, the policy layer that
-- set each value it read, the hook that changed it and the outcome -- from
-- cat:explain, store:explain and `licensor explain`, as text and JSON.
-- Every outcome is the catalogue's own answer, so each chain is checked
-- against the call it explains.  Runs in the SQLite suites and the
-- PostgreSQL one (the store parts).
local licensor = require "licensor"
local core = require "licensor.core"
local explain = require "licensor.explain"
local fixtures = require "support.fixtures"
local stores = require "support.stores"
local cjson = require "cjson"

local cat = fixtures.catalogue()

-- The rules of a report's steps, in order ("R3", or "R3 eligible" for a hook's step).
local function rules(report)
  local list = {}
  for _, s in ipairs(report.steps) do list[#list + 1] = s.rule .. (s.hook and (" " .. s.hook) or "") end
  return list
end

local function step_of(report, rule)
  for _, s in ipairs(report.steps) do
    if s.rule == rule and not s.hook then return s end
  end
end

describe("cat:explain, the build a license may install (R1-R7)", function()
  it("R3: a lapsed license, with the build cat:eligible answers", function()
    local lic = fixtures.faq_license()
    local r = assert(cat:explain(lic, { on = "2019-06-01" }))
    assert.same({ "R1", "R3", "R15" }, rules(r))
    assert.is_true(r.ok)
    assert.are.equal(cat:eligible(lic, "2019-06-01").number, r.eligible)
    assert.are.equal(6911, r.eligible)
    assert.are.equal("license", r.question)
    assert.are.equal("2018-12-06", step_of(r, "R3").inputs.ms_expires)
    assert.matches("M&S ended 2018%-12%-06", step_of(r, "R3").outcome)
    assert.matches("^R3: .*build 6911", r.because)
  end)

  it("R2: M&S active, R4: a version lock, R6: a lease, R7: a trial", function()
    local cases = {
      { fixtures.faq_license({ ms_expires = "2019-12-06" }), "R2", 6947 },
      { { product = "smartermail", edition = "professional", level = 250, start = "2016-10-01",
          ms_expires = "2017-09-30", version_lock = 14 }, "R4", 6347 },
      { { product = "smartertrack", kind = "lease", start = "2018-01-01" }, "R6", 6947 },
      { { product = "smartertrack", kind = "trial", start = "2019-01-01" }, "R7", 6947 },
    }
    for _, case in ipairs(cases) do
      local lic, rule, build = case[1], case[2], case[3]
      local r = assert(cat:explain(lic, { on = "2019-01-20" }))
      assert.are.equal(rule, r.steps[2].rule)
      assert.are.equal(build, r.eligible)
      assert.are.equal(cat:eligible(lic, "2019-01-20").number, r.eligible)
    end
  end)

  it("a trial's days come from the policy, shown with the layer that set them", function()
    local r = assert(cat:explain({ product = "smartertrack", kind = "trial", start = "2019-01-01" },
                                 { on = "2019-03-01" }))
    local r7 = step_of(r, "R7")
    assert.is_false(r.ok)
    assert.are.equal("expired", r.code)
    assert.are.equal(30, r7.inputs.trial_days)
    assert.are.equal("catalogue", r7.layers.trial_days)
    assert.are.equal("2019-01-30", r7.inputs.last_day)
  end)

  it("R1 refusals: disabled, not started, an unknown product, each with the code cat:eligible gives", function()
    for _, case in ipairs({
      { fixtures.faq_license({ disabled = "2019-01-01" }), "disabled" },
      { fixtures.faq_license({ start = "2020-01-01", ms_expires = "2020-12-31" }), "not_started" },
      { fixtures.faq_license({ product = "nothing" }), "unknown_product" },
    }) do
      local r = assert(cat:explain(case[1], { on = "2019-06-01" }))
      assert.is_false(r.ok)
      assert.are.equal(case[2], r.code)
      assert.are.equal(case[2], select(3, cat:eligible(case[1], "2019-06-01")))
      assert.are.equal("R1", r.steps[1].rule)
      assert.is_nil(step_of(r, "R2") or step_of(r, "R3"))   -- nothing past R1 decides
      assert.matches("^R1: ", r.because)
      assert.matches("may install nothing", r.outcome)
    end
  end)

  it("--build N: R5 allows an earlier build and refuses a newer one, with the eligible build's rule", function()
    local lic = fixtures.faq_license()
    local yes = assert(cat:explain(lic, { on = "2019-06-01", build = 6855 }))
    assert.is_true(yes.ok)
    assert.are.equal("build", yes.question)
    assert.same({ "R1", "R3", "R5", "R13" }, rules(yes))
    local no = assert(cat:explain(lic, { on = "2019-06-01", build = 6947 }))
    assert.is_false(no.ok)
    assert.are.equal("newer_than_eligible", no.code)
    assert.are.equal(select(3, cat:can_install(lic, 6947, "2019-06-01")), no.code)
    assert.same({ "R1", "R3", "R5" }, rules(no))
    assert.matches("^R5: refused %(newer_than_eligible%).*; R3: M&S ended 2018%-12%-06", no.because)
    assert.are.equal("may not install build 6947", no.outcome)
    local unknown = assert(cat:explain(lic, { on = "2019-06-01", build = 1 }))
    assert.are.equal("unknown_build", unknown.code)
  end)

  it("--build N: R13 names the rollback barrier above N, and refuses going back from a build past it", function()
    local lic = fixtures.faq_license({ ms_expires = "2019-12-06" })
    local r = assert(cat:explain(lic, { on = "2019-06-01", build = 6911 }))
    local r13 = step_of(r, "R13")
    assert.are.equal(6947, r13.inputs.barrier)
    assert.matches("build 6947 or newer may not roll back to 6911", r13.outcome)
    assert.is_true(r.ok)
    local back = assert(cat:explain(lic, { on = "2019-06-01", build = 6911, from = 7010 }))
    assert.is_false(back.ok)
    assert.are.equal("rollback_barrier", back.code)
    assert.are.equal(select(3, cat:can_rollback(lic, 7010, 6911)), back.code)
    assert.matches("^R13: refused %(rollback_barrier%)", back.because)
    local fine = assert(cat:explain(lic, { on = "2019-06-01", build = 6855, from = 6911 }))
    assert.is_true(fine.ok)
    assert.matches("is allowed", step_of(fine, "R13").outcome)
  end)

  it("R13: the barrier named is the lowest refusing build above N, among 200 builds with two barriers", function()
    local builds = {}
    for i = 0, 199 do
      builds[#builds + 1] = { number = 1000 + i, version = "1.0." .. (1000 + i),
                              released = core.date(core.day("2018-01-01") + i),
                              no_rollback = (i == 30 or i == 120) or nil }
    end
    local many = assert(licensor.catalogue({ products = { { id = "p", name = "P", editions = { "e" },
                                                            builds = builds } } }))
    local lic = { product = "p", edition = "e", start = "2018-01-01", ms_expires = "2030-01-01" }
    local function barrier(n)
      return step_of(assert(many:explain(lic, { on = "2019-01-01", build = n })), "R13").inputs.barrier
    end
    assert.are.equal(1030, barrier(1000))
    assert.are.equal(1030, barrier(1029))
    assert.are.equal(1120, barrier(1030))
    assert.are.equal(1120, barrier(1100))
    assert.is_nil(barrier(1120))
    assert.is_nil(barrier(1198))
    local brief = assert(many:explain(lic, { on = "2019-01-01", build = 1000, brief = true }))
    assert.is_nil(step_of(brief, "R13"))
  end)
end)

describe("cat:explain, may a server come in (R9, R10)", function()
  local lic = fixtures.faq_license({ ms_expires = "2019-12-06" })
  local two = { { server = "a", first_seen = "2019-01-01", last_seen = "2019-01-05" },
                { server = "b", first_seen = "2019-01-02", last_seen = "2019-01-05" } }

  it("a first server is admitted within the allowance, with fail-over's allowance said", function()
    local r = assert(cat:explain(lic, { on = "2019-01-05", server = "a", installations = {} }))
    assert.is_true(r.ok)
    assert.are.equal("server", r.question)
    assert.same({ "R1", "R2", "R9", "R10" }, rules(r))
    assert.is_false(step_of(r, "R9").inputs.failover)
    assert.are.equal(1, step_of(r, "R9").inputs.allowed)
    local f = assert(cat:explain(fixtures.faq_license({ failover = true }), { on = "2019-01-05", server = "c",
                                                                             installations = { two[1] } }))
    assert.are.equal(2, step_of(f, "R9").inputs.allowed)
    assert.matches("within the allowance, 2 of 2", step_of(f, "R10").outcome)
  end)

  it("a third server during a migration is refused as cat:admission refuses it, with the window's values", function()
    local r = assert(cat:explain(lic, { on = "2019-01-05", server = "c", installations = two }))
    assert.is_false(r.ok)
    assert.are.equal("too_many_installations", r.code)
    assert.are.equal(select(3, cat:admission(lic, two, "2019-01-05")), r.code)
    local r10 = step_of(r, "R10")
    assert.are.equal("migrating", r10.inputs.state)
    assert.are.equal(30, r10.inputs.migration_days)
    assert.are.equal("catalogue", r10.layers.migration_days)
    assert.are.equal(1, r10.inputs.migration_extra)
    assert.matches("^R10: refused %(too_many_installations%)", r.because)
  end)

  it("once the window is over a new server is migration_window_over; an active one checks in", function()
    local r = assert(cat:explain(lic, { on = "2019-02-04", server = "c", installations = {
      { server = "a", first_seen = "2019-01-01", last_seen = "2019-02-04" },
      { server = "b", first_seen = "2019-01-02", last_seen = "2019-02-04" } } }))
    assert.are.equal("migration_window_over", r.code)
    local again = assert(cat:explain(lic, { on = "2019-01-05", server = "a", installations = two }))
    assert.is_true(again.ok)
    assert.same({ "R1", "R2", "R9" }, rules(again))
    assert.matches("check%-in", step_of(again, "R9").outcome)
  end)

  it("with --build a refused build is the answer before admission", function()
    local r = assert(cat:explain(fixtures.faq_license(), { on = "2019-06-01", server = "a", build = 6947,
                                                            installations = {} }))
    assert.is_false(r.ok)
    assert.are.equal("newer_than_eligible", r.code)
    assert.is_nil(step_of(r, "R10"))
  end)

  it("a silent server's check-in is R9's not_activated (explain.because picks that step)", function()
    local r = assert(cat:explain(lic, { on = "2019-01-20", server = "a", installations = { two[1] } }))
    assert.is_true(r.ok)   -- it would be admitted again as a new server
    assert.matches("^R9: server 'a' has no installation active on 2019%-01%-20",
                   explain.because(r, "not_activated"))
    assert.are.equal("R10: 2 of 1", explain.because(r, "too_many_installations", "2 of 1"))
    assert.are.equal("R9: another machine", explain.because(nil, "wrong_machine", "another machine"))
    assert.are.equal("odd: what happened", explain.because(nil, "odd", "what happened"))
  end)
end)

describe("cat:explain, the window, the ladder and prices (R10, R11, R12, R15)", function()
  it("R11: the steps due on the day are cat:ladder's, with the ladder's policy values", function()
    local lic = fixtures.faq_license({ ms_expires = "2019-12-06" })
    local installs = { { server = "a", first_seen = "2019-01-01", last_seen = "2019-02-20" },
                       { server = "b", first_seen = "2019-01-02", last_seen = "2019-02-20" } }
    local case = { id = 7, since = "2019-01-02", first_step = "2019-02-05" }
    local r = assert(cat:explain(lic, { on = "2019-02-12", installations = installs, case = case }))
    local r11 = step_of(r, "R11")
    assert.same(cat:ladder(case, "2019-02-12"), { "phone_customer" })
    assert.are.equal("due on 2019-02-12: phone_customer", r11.outcome)
    assert.are.equal(7, r11.inputs.phone_after_days)
    assert.are.equal("fraud", step_of(r, "R10").inputs.state)
    local later = assert(cat:explain(lic, { on = "2019-02-13", installations = installs,
                                            case = { id = 7, since = "2019-01-02", first_step = "2019-02-05",
                                                     phoned = "2019-02-12" } }))
    assert.are.equal("nothing due on 2019-02-13; disable on 2019-02-19", step_of(later, "R11").outcome)
  end)

  it("R15: the renewal price is ms_percent of the license's price in its eligible major", function()
    local t = fixtures.catalogue_table()
    t.policy.ms_percent = 25
    local priced = assert(licensor.catalogue(t))
    local r = assert(priced:explain(fixtures.faq_license(), { on = "2019-06-01" }))
    local r15 = step_of(r, "R15")
    assert.are.equal(12475, r.renewal_price)     -- 25 % of 499.00, major 13
    assert.are.equal(49900, r15.inputs.license_price)
    assert.are.equal("2019-12-06", r15.inputs.renews_to)
    assert.are.equal(25, r15.inputs.ms_percent)
    assert.matches("%$124%.75", r15.outcome)
  end)

  it("R12: with a target, the upgrade quote is cat:quote_upgrade's", function()
    local lic = fixtures.faq_license()
    local r = assert(cat:explain(lic, { on = "2019-06-01", target = { level = 10 } }))
    assert.matches("costs %$300%.00", step_of(r, "R12").outcome)
    assert.are.equal(30000, cat:quote_upgrade(lic, { level = 10 }, "2019-06-01"))
    local down = assert(cat:explain(lic, { on = "2019-06-01", target = { edition = "professional" } }))
    assert.are.equal("downgrade", step_of(down, "R12").code)
  end)
end)

describe("the report's forms", function()
  local lic = fixtures.faq_license()

  it("text: the outcome first, the because, then numbered steps of short lines with layers", function()
    local r = assert(cat:explain(lic, { on = "2019-06-01", build = 6947 }))
    local text = explain.text(r)
    local lines = {}
    for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.matches("^License ST%-FAQ on 2019%-06%-01: may not install build", lines[1])
    assert.matches("^Because R5", text:match("\n(Because[^\n]*)"))
    assert.matches("\n 1%. R1 Perpetual licenses: ", text)
    assert.matches("\n 3%. R5 Backwards compatible: refused", text)
    for _, line in ipairs(lines) do assert.is_true(#line <= 78, line) end
    assert.are.equal(text, tostring(r))
    assert.are.equal(text, require("licensor.pretty").format(r))    -- the REPL shows it so
    local with_policy = explain.text(assert(cat:explain(lic, { on = "2019-06-01" })))
    assert.matches("policy: ms_months 12 %(catalogue%)", with_policy)
  end)

  it("JSON: the same report as data", function()
    local r = assert(cat:explain(lic, { on = "2019-06-01", build = 6947 }))
    local back = cjson.decode(explain.json(r))
    assert.are.equal("ST-FAQ", back.key)
    assert.are.equal("2019-06-01", back.day)
    assert.are.equal(false, back.ok)
    assert.are.equal(r.because, back.because)
    assert.are.equal("R5", back.steps[3].rule)
    assert.are.equal(6947, back.steps[3].inputs.build)
    assert.are.equal("Backwards compatible", back.steps[3].name)
  end)

  it("bad days are invalid_date; wrong argument types raise", function()
    local r, msg, code = cat:explain(lic, { on = "2019-02-30" })
    assert.is_nil(r)
    assert.are.equal("on: date YYYY-MM-DD expected", msg)
    assert.are.equal("invalid_date", code)
    assert.has_error(function() cat:explain("ST-FAQ") end)
    assert.has_error(function() cat:explain(lic, { build = "6911" }) end)
    assert.has_error(function() cat:explain(lic, 5) end)
  end)
end)

describe("store:explain on " .. stores.backend, function()
  local store

  before_each(function() store = stores.new() end)
  after_each(function() store:close() end)

  it("loads the installations and the case a sweep works, and writes nothing", function()
    local lic = stores.two_servers(store, "2019-01-12")
    assert(store:sweep("2019-01-05"))      -- the first step: case opened, customer mailed
    local before = stores.dump(store)
    local r = assert(store:explain(lic.key, { on = "2019-01-12" }))
    assert.are.equal(lic.key, r.key)
    local r11 = step_of(r, "R11")
    assert.are.equal("2019-01-05", r11.inputs.first_step)
    assert.are.equal("due on 2019-01-12: phone_customer", r11.outcome)
    local server = assert(store:explain(lic.key, { on = "2019-01-12", server = "third", build = 6911 }))
    assert.are.equal("migration_window_over", server.code)
    local verdict = store:activate(lic.key, "third", 6911, "2019-01-12")
    assert.are.equal(verdict.code, server.code)
    assert.are.equal(before, stores.dump(store))
  end)

  it("a server's rollback starts from the build its installation runs", function()
    local lic = stores.issue(store, { ms_expires = "2019-12-06" })
    assert.is_true(store:activate(lic.key, "a", 7010, "2019-04-01").ok)
    local r = assert(store:explain(lic.key, { on = "2019-04-02", server = "a", build = 6911 }))
    assert.are.equal("rollback_barrier", r.code)
    assert.are.equal("rollback_barrier", store:checkin(lic.key, "a", "2019-04-02", 6911).code)
  end)

  it("an unknown key is unknown_key, a malformed one invalid_key", function()
    local r, msg, code = store:explain(core.new_key(), { on = "2019-01-01" })
    assert.is_nil(r)
    assert.are.equal("unknown_key", code)
    assert.matches("no license", msg)
    assert.are.equal("invalid_key", select(3, store:explain("nope", {})))
    assert.are.equal("invalid_request", select(3, store:explain(stores.issue(store).key, { server = "a\tb" })))
    assert.are.equal("invalid_date", select(3, store:explain(stores.issue(store).key, { on = "tomorrow" })))
  end)
end)

describe("store:explain with a policy file on " .. stores.backend, function()
  local store

  before_each(function() store = stores.new() end)
  after_each(function() store:close() end)

  local function source(name)
    local path = assert(package.searchpath("licensor.policies." .. name, package.path))
    local f = assert(io.open(path))
    local text = f:read("*a")
    f:close()
    return text
  end

  it("a product layer's migration_days = 45 shows 'product smartermail' as the layer", function()
    assert(store:import_policy(source("smartermail_migration"), "smartermail_migration.lua", "2018-01-01"))
    local mail = stores.issue(store, { product = "smartermail", edition = "professional", level = 250,
                                       start = "2018-06-01" })
    assert.is_true(store:activate(mail.key, "mail1", 6900, "2018-12-01").ok)
    assert.is_true(store:activate(mail.key, "mail2", 6900, "2018-12-02").ok)
    local r = assert(store:explain(mail.key, { on = "2018-12-02", server = "mail3" }))
    local r10 = step_of(r, "R10")
    assert.are.equal(45, r10.inputs.migration_days)
    assert.are.equal("product smartermail", r10.layers.migration_days)
    assert.are.equal("product smartermail", r10.layer)
    assert.are.equal("catalogue", r10.layers.migration_extra)
    assert.are.equal(1, r.policy)
    assert.matches("migration_days 45 %(product smartermail%)", (explain.text(r):gsub("%s+", " ")))
    assert.matches("Layer product smartermail sets migration_days", explain.text(r))
    -- SmarterTrack keeps the catalogue's 30 days
    local track = stores.two_servers(store, "2018-12-06")
    local t = assert(store:explain(track.key, { on = "2018-12-06", server = "third" }))
    assert.are.equal(30, step_of(t, "R10").inputs.migration_days)
    assert.are.equal("catalogue", step_of(t, "R10").layers.migration_days)
  end)

  it("a license's stored override is the license layer", function()
    local lic = stores.issue(store)
    assert(store:set(lic.key, { policy = { checkin_grace_days = 60 }, reason = "change windows" }, "2018-07-01"))
    local r = assert(store:explain(lic.key, { on = "2018-07-02", server = "a" }))
    local r9 = step_of(r, "R9")
    assert.are.equal(60, r9.inputs.checkin_grace_days)
    assert.are.equal("license", r9.layers.checkin_grace_days)
  end)

  it("a hook's change shows the hook, the policy version and its because", function()
    assert(store:import_policy([[
return {
  name = "bugfix-6947",
  eligible = function(ctx)
    if ctx.build and ctx.build.number == 6911 then
      return { build = 6947, because = "6947 only fixes 6911's mail loop" }
    end
  end,
}]], "bugfix.lua", "2018-01-01"))
    local lic = stores.issue(store, { start = "2017-12-07" })      -- M&S to 2018-12-06: build 6911
    local before = stores.dump(store)
    local r = assert(store:explain(lic.key, { on = "2019-06-01", build = 6947 }))
    assert.is_true(r.ok)
    assert.same({ "R1", "R3", "R3 eligible", "R5" }, rules(r))
    local hook = r.steps[3]
    assert.are.equal("eligible", hook.hook)
    assert.are.equal(1, hook.version)
    assert.are.equal("6947 only fixes 6911's mail loop", hook.because)
    assert.are.equal("build 6947 instead of build 6911", hook.outcome)
    assert.are.equal(6947, r.eligible)
    assert.matches("R3 eligible hook %(policy v1%): build 6947 instead of build 6911 %-%- 6947 only fixes",
                   r.because)
    local text = explain.text(r)
    assert.matches("R3 eligible hook, policy version 1: build 6947 instead of build 6911", text)
    assert.matches("because: 6947 only fixes 6911's mail loop", text)
    assert.are.equal("bugfix-6947", cjson.decode(explain.json(r)).policy_name)
    assert.are.equal(before, stores.dump(store))
  end)

  it("a price hook's renewal price, over a product layer's ms_percent, is the store's", function()
    assert(store:import_policy([[
return {
  products = { smartertrack = { ms_percent = 25 } },
  price = function(ctx)
    if ctx.item == "renewal" then return { price = 9900, because = "renewal promotion" } end
  end,
}]], "promo.lua", "2018-01-01"))
    local lic = stores.issue(store, { start = "2017-12-07" })
    local r = assert(store:explain(lic.key, { on = "2019-06-01" }))
    local r15 = step_of(r, "R15")
    assert.are.equal(25, r15.inputs.ms_percent)
    assert.are.equal("product smartertrack", r15.layers.ms_percent)
    assert.matches("%$124%.75 %(25%% of %$499%.00%)", r15.outcome)
    assert.are.equal(9900, r.renewal_price)
    local stored = assert(store:license(lic.key))       -- with its resolved values
    assert.are.equal(store:renewal_price(stored, "2019-06-01"), r.renewal_price)
    local hook = r.steps[#r.steps]
    assert.are.equal("R15", hook.rule)
    assert.are.equal("price", hook.hook)
    assert.are.equal("9900 instead of 12475", hook.outcome)
    assert.are.equal("renewal promotion", hook.because)
  end)

  it("a hook that fails shows the failure, and the built-in decision stands", function()
    assert(store:import_policy([[
return { eligible = function(ctx) error("no such table") end }]], "broken.lua", "2018-01-01"))
    local lic = stores.issue(store, { start = "2017-12-07" })
    local r = assert(store:explain(lic.key, { on = "2019-06-01" }))
    assert.are.equal(6911, r.eligible)
    local hook = r.steps[3]
    assert.are.equal("eligible", hook.hook)
    assert.are.equal("error", hook.failure)
    assert.matches("the built%-in decision stands", hook.outcome)
  end)

  it("shows a hook's failure without logging or counting it again (it was, when the decision was made)", function()
    assert(store:import_policy([[
return { eligible = function(ctx) error("no such table") end }]], "broken.lua", "2018-01-01"))
    local lic = stores.issue(store, { start = "2017-12-07" })
    local P = assert(store:policy())
    local lines = {}
    P.log = function(line) lines[#lines + 1] = line end
    local bound = assert(store:catalogue())
    assert.are.equal(6911, bound:eligible(assert(store:get(lic.key)), "2019-06-01").number)
    local counted, logged = P.failures["eligible error"], #lines
    assert.are.equal(1, logged)
    local r = assert(store:explain(lic.key, { on = "2019-06-01" }))
    assert.are.equal("error", r.steps[3].failure)
    assert.are.same({ counted, logged }, { P.failures["eligible error"], #lines })
    assert.is_nil(P.quiet)
  end)
end)

describe("licensor explain and licensor policy (the command line) on " .. stores.backend, function()
  local run = require "support.cli"
  local db, store, key

  before_each(function()
    store, db = stores.new()
    key = stores.issue(store, { start = "2017-12-07" }).key   -- M&S to 2018-12-06
  end)
  after_each(function()
    store:close()
    stores.remove(db)
  end)

  it("explain KEY --build N --on DAY: the text, exit 0 whatever the answer", function()
    local status, out = run("--db", db, "explain", key, "--build", "6947", "--on", "2019-06-01")
    assert.are.equal(0, status)
    assert.matches("^License " .. key:gsub("%-", "%%-") .. " on 2019%-06%-01: may not install build 6947",
                   (out:gsub("%s+", " ")))
    assert.matches("\n 3%. R5 Backwards compatible: refused", out)
  end)

  it("explain --json: the report; an unknown key exits 1 with unknown_key", function()
    local status, out = run("--db", db, "--json", "explain", key, "--server", "s1", "--on", "2019-06-01")
    assert.are.equal(0, status)
    local r = cjson.decode(out)
    assert.are.equal("server", r.question)
    assert.is_true(r.ok)
    local s2, _, err = run("--db", db, "explain", core.new_key())
    assert.are.equal(1, s2)
    assert.matches("unknown_key", err)
    assert.are.equal(2, (run("--db", db, "explain", key, "--build", "x")))
  end)

  it("policy import (a bundled name), history, show; a bad file is invalid_policy, exit 2", function()
    local status, out = run("--db", db, "policy", "import", "smartermail_migration")
    assert.are.equal(0, status)
    assert.are.equal("imported policy version 1", out)
    local _, again = run("--db", db, "policy", "import", "smartermail_migration")
    assert.matches("unchanged", again)
    local _, hist = run("--db", db, "--json", "policy", "history")
    local list = cjson.decode(hist)
    assert.are.equal(1, #list)
    assert.are.equal("smartermail-migration", list[1].name)
    assert.same({}, list[1].hooks)
    assert.matches("^%[", hist)
    local _, text = run("--db", db, "policy", "show", "1")
    assert.matches("migration_days = 45", text)
    local bad = os.tmpname()
    local f = assert(io.open(bad, "w"))
    f:write("return { bogus = 1 }\n")
    f:close()
    local s3, _, err = run("--db", db, "policy", "import", bad)
    os.remove(bad)
    assert.are.equal(2, s3)
    assert.matches("invalid_policy: .*:1: 'bogus'", err)
    assert.are.equal(2, (run("--db", db, "policy", "frobnicate")))
    assert.are.equal(1, (run("--db", db, "policy", "show", "9")))
  end)

  it("policy test: exit 0 when nothing would change, 1 when something would, JSON lists as arrays", function()
    assert.is_true(store:activate(key, "a", 6855, "2018-12-01").ok)
    local status, out = run("--db", db, "policy", "test", "smartermail_migration", "--on", "2019-01-20")
    assert.are.equal(0, status)
    assert.matches("0 decisions would change", out)
    local proposed = os.tmpname()
    local f = assert(io.open(proposed, "w"))
    f:write("return { eligible = function(ctx)\n",
            "  if ctx.build and ctx.build.number == 6911 then return { build = 6947 } end\nend }\n")
    f:close()
    local s2, json = run("--db", db, "--json", "policy", "test", proposed, "--on", "2019-06-01")
    os.remove(proposed)
    assert.are.equal(1, s2)
    local r = cjson.decode(json)
    assert.is_true(r.changed > 0)
    assert.are.equal("table", type(r.examples.eligible))
  end)
end)
