-- licensor.replay (`licensor policy test`): every license's stored history
-- decided again under a proposed policy file and catalogue next to the
-- ones in force, each changed decision counted with examples, and nothing
-- written -- on SQLite and PostgreSQL (spec/support/with-postgres.lua),
-- Lua 5.4 and LuaJIT.
local stores = require "support.stores"
local fixtures = require "support.fixtures"
local core = require "licensor.core"
local replay = require "licensor.replay"

local ON = "2019-01-20"

-- The fixtures catalogue pricing a year of M&S at 20 % (renewal prices).
local function priced()
  local t = fixtures.catalogue_table()
  t.policy.ms_percent = 20
  return t
end

-- A license on server "old" from 2018-11-01 and "new" from 2018-12-05,
-- both checking in daily through ON: excess from 2018-12-05, fraud from
-- 2019-01-04 under the catalogue's 30 days.
local function two_servers(store, fields, builds)
  local lic = stores.issue(store, fields)
  assert(store:activate(lic.key, "old", builds[1], "2018-11-01").ok)
  assert(store:activate(lic.key, "new", builds[2], "2018-12-05").ok)
  for day = core.day("2018-11-02"), core.day(ON) do
    assert(store:checkin(lic.key, "old", core.date(day)).ok)
    if day >= core.day("2018-12-05") then assert(store:checkin(lic.key, "new", core.date(day)).ok) end
  end
  return lic.key
end

-- An existing customer brought in by import-licenses with three servers
-- running at once: R10 would have refused the third (too many during a
-- migration), another system let it in.
local IMPORTED = table.concat({
  "owner,product,edition,level,kind,start,ms_expires,installations",
  'msp-customer,smartertrack,enterprise,5,perpetual,2018-06-01,2019-05-31,"[' ..
    '{""server"":""a"",""build"":6855,""first_seen"":""2018-11-01"",""last_seen"":""2019-01-20""},' ..
    '{""server"":""b"",""build"":6855,""first_seen"":""2018-12-05"",""last_seen"":""2019-01-20""},' ..
    '{""server"":""c"",""build"":6855,""first_seen"":""2018-12-10"",""last_seen"":""2019-01-20""}]"',
}, "\n") .. "\n"

-- The store every example reads: a SmarterTrack and a SmarterMail key on
-- two servers, the imported key on three, sweeps on 2019-01-05 (first
-- steps) and 2019-01-12 (phone calls).
local function build()
  local store, path = stores.new()
  assert(store:import(priced()))
  local keys = {}
  keys.track = two_servers(store, {}, { 6855, 6911 })
  keys.mail = two_servers(store, { product = "smartermail", edition = "professional", level = 250 },
                          { 6347, 6380 })
  keys.imported = assert(store:import_licenses(IMPORTED, "customers.csv"))[1]
  assert(store:sweep("2019-01-05"))
  assert(store:sweep("2019-01-12"))
  return store, path, keys
end

local function keys_of(list)
  local set = {}
  for _, e in ipairs(list) do set[e.key] = true end
  return set
end

local function total_decisions(report)
  local n = 0
  for _, kind in ipairs(replay.KINDS) do n = n + report.decisions[kind] end
  return n
end

describe("replay.run (" .. stores.backend .. ")", function()
  local store, path, keys

  setup(function()
    store, path, keys = build()
  end)

  teardown(function()
    store:close()
    stores.remove(path)
  end)

  it("decides every license again and reports no change when nothing changes", function()
    local report = assert(replay.run(store, { policy = "return { name = 'nothing' }", on = ON }))
    assert.are.same({ eligible = 0, admission = 0, active = 0, ladder = 0, reminders = 0, price = 0 }, report.changes)
    assert.are.equal(0, report.changed)
    assert.are.same({ 3, 7 }, { report.licenses, report.installations })
    for _, kind in ipairs(replay.KINDS) do
      assert.is_true(report.decisions[kind] > 0, kind)
      assert.are.same({}, report.examples[kind])
    end
  end)

  it("the catalogue in force, given as the proposal, changes nothing either", function()
    local report = assert(replay.run(store, { catalogue = priced(), on = ON }))
    assert.are.equal(0, report.changed)
    assert.is_true(total_decisions(report) > 20)
  end)

  it("a proposed catalogue with a new build changes the eligible builds of that product only", function()
    local t = priced()
    table.insert(t.products[1].builds, { number = 6950, version = "13.5.6950", released = "2019-01-15" })
    local report = assert(replay.run(store, { catalogue = t, on = ON }))
    assert.are.same({ eligible = 2, admission = 0, active = 0, ladder = 0, reminders = 0, price = 0 },
      report.changes)
    assert.are.same({ [keys.track] = true, [keys.imported] = true }, keys_of(report.examples.eligible))
    for _, e in ipairs(report.examples.eligible) do
      assert.are.same({ ON, 6947, 6950 }, { e.day, e.before, e.after })
    end
  end)

  it("a product layer (smartermail migration_days = 45) changes the ladder of SmarterMail keys only", function()
    local report = assert(replay.run(store, { on = ON, examples = 20, policy = [[
      return { products = { smartermail = { migration_days = 45 } } }
    ]] }))
    assert.is_true(report.changes.ladder > 0)
    assert.are.same({ eligible = 0, admission = 0, active = 0, reminders = 0, price = 0 },
      { eligible = report.changes.eligible, admission = report.changes.admission, active = report.changes.active,
        reminders = report.changes.reminders, price = report.changes.price })
    assert.are.same({ [keys.mail] = true }, keys_of(report.examples.ladder))
    local seen, case = {}, nil
    for _, e in ipairs(report.examples.ladder) do
      seen[e.day .. " " .. tostring(e.what)] = e
      case = case or tostring(e.what):match("^case (%d+)$")
    end
    -- The first steps taken on 2019-01-05 would not have been due: the
    -- excess turns fraud on 2019-01-19 under 45 days.
    local first = assert(seen["2019-01-05 case " .. tostring(case)])
    assert.are.same({ "email_customer,notify_fraud_team", "none" }, { first.before, first.after })
    local window = assert(seen[ON .. " window"])
    assert.are.same({ "fraud since 2018-12-05 (deadline 2019-01-03)", "fraud since 2018-12-05 (deadline 2019-01-18)" },
      { window.before, window.after })
    -- The window is decided on the day the second server came in, too.
    local came = assert(seen["2018-12-05 window"])
    assert.are.same({ "migrating since 2018-12-05 (deadline 2019-01-03)",
                      "migrating since 2018-12-05 (deadline 2019-01-18)" }, { came.before, came.after })
  end)

  it("a settings hook (the license layer) changes the decisions of the licenses it answers for", function()
    local report = assert(replay.run(store, { on = ON, policy = [[
      return { settings = function(ctx)
        if ctx.license.owner == "msp-customer" then return { migration_days = 60, because = "MSP" } end
      end }
    ]] }))
    assert.is_true(report.changes.ladder > 0)
    assert.are.same({ [keys.imported] = true }, keys_of(report.examples.ladder))
    assert.are.equal(report.changes.ladder, report.changed)
  end)

  it("a ladder hook changes the steps due on the days they were taken", function()
    local report = assert(replay.run(store, { on = ON, policy = [[
      return { ladder = function(ctx)
        local steps = {}
        for _, s in ipairs(ctx.steps) do if s ~= "phone_customer" then steps[#steps + 1] = s end end
        return { steps = steps, because = "no phone calls" }
      end }
    ]] }))
    -- The phone calls of 2019-01-12, one per key.
    assert.are.equal(3, report.changes.ladder)
    for _, e in ipairs(report.examples.ladder) do
      assert.are.same({ "2019-01-12", "phone_customer", "none" }, { e.day, e.before, e.after })
    end
  end)

  it("an eligible hook changes eligible builds, each example with its key, day, before and after", function()
    local report = assert(replay.run(store, { on = ON, policy = [[
      return {
        eligible = function(ctx)
          if ctx.license.product == "smartertrack" and ctx.build and ctx.build.number > 6855 then
            return { build = 6855, because = "held back" }
          end
        end,
      }
    ]] }))
    assert.is_true(report.changes.eligible > 0)
    assert.are.equal(0, report.changes.admission)
    assert.is_nil(keys_of(report.examples.eligible)[keys.mail])
    for _, e in ipairs(report.examples.eligible) do
      assert.is_string(e.key)
      assert.is_truthy(core.day(e.day))
      assert.is_true(e.before == 6911 or e.before == 6947)
      assert.are.equal(6855, e.after)
    end
    -- Examples come by key, then day: the same on every backend.
    for i = 2, #report.examples.eligible do
      local a, b = report.examples.eligible[i - 1], report.examples.eligible[i]
      assert.is_true(a.key < b.key or (a.key == b.key and a.day <= b.day))
    end
  end)

  it("--since leaves out the days before it", function()
    local policy = [[
      return { eligible = function(ctx)
        if ctx.build and ctx.build.number > 6855 and ctx.license.product == "smartertrack" then
          return { build = 6855 }
        end
      end }
    ]]
    local all = assert(replay.run(store, { on = ON, policy = policy }))
    local late = assert(replay.run(store, { on = ON, policy = policy, since = "2019-01-10" }))
    assert.is_true(late.changes.eligible < all.changes.eligible)
    assert.is_true(late.decisions.eligible < all.decisions.eligible)
    assert.is_true(#late.examples.eligible > 0)
    for _, kind in ipairs(replay.KINDS) do
      for _, e in ipairs(late.examples[kind]) do assert.is_true(e.day >= "2019-01-10", kind .. " " .. e.day) end
    end
    assert.are.equal("2019-01-10", late.since)
  end)

  it("an admission hook that admits a third server changes the past admission that R10 refused", function()
    local report = assert(replay.run(store, { on = ON, policy = [[
      return {
        admission = function(ctx)
          if not ctx.admit and ctx.after.active <= 3 then return { admit = true, because = "three" } end
        end,
      }
    ]] }))
    assert.are.equal(1, report.changes.admission)
    assert.are.same({ key = keys.imported, day = "2018-12-10", what = "c", before = "too_many_installations",
                      after = "admitted" }, report.examples.admission[1])
  end)

  it("a price hook changes renewal prices and upgrade quotes", function()
    local report = assert(replay.run(store, { on = ON, policy = [[
      return { price = function(ctx) return { price = ctx.price - 100 } end }
    ]] }))
    assert.is_true(report.changes.price > 0)
    local renewal
    for _, e in ipairs(report.examples.price) do
      if e.what == "renewal" and e.key == keys.track then renewal = e end
    end
    -- 20 % of SmarterTrack Enterprise 5 in major 13 (49900).
    assert.are.same({ ON, 9980, 9880 }, { renewal.day, renewal.before, renewal.after })
  end)

  it("a reminders hook and reminder offsets change the reminder days", function()
    local report = assert(replay.run(store, { on = ON, since = "2018-01-01", policy = [[
      return { products = { smartermail = { reminders = { ms = { 60 } } } } }
    ]] }))
    assert.are.equal(1, report.changes.reminders)
    local e = report.examples.reminders[1]
    assert.are.same({ keys.mail, "ms", "2019-05-01, 2019-05-24, 2019-06-01", "2019-04-01" },
      { e.key, e.what, e.before, e.after })
  end)

  it("hooks that loop forever, raise or answer nonsense leave the built-in decisions, their failures counted", function()
    local report = assert(replay.run(store, { on = ON, policy = [[
      return {
        eligible = function(ctx) while true do end end,
        admission = function(ctx) error(setmetatable({}, { __tostring = function() while true do end end })) end,
        price = function(ctx) return { price = 0 / 0 } end,
      }
    ]] }))
    assert.are.equal(0, report.changed)
    local failures = report.failures or {}
    assert.are.same({ true, true, true }, { failures["eligible instructions"] > 0,
      failures["admission error"] > 0, failures["price answer"] > 0 })
    -- Logged into the report, not onto the terminal: a few lines.
    assert.is_true(#report.hook_log > 0 and #report.hook_log <= 10)
  end)

  it("a policy file that does not compile is refused, naming its line", function()
    local report, msg, code = replay.run(store, { on = ON, policy_name = "bad.lua",
                                                  policy = "return {\n  nonsense = 1,\n}\n" })
    assert.is_nil(report)
    assert.are.equal("invalid_policy", code)
    assert.matches("^bad%.lua:%d+: ", msg)
    report, msg, code = replay.run(store, { on = ON, policy_name = "syntax.lua", policy = "return {" })
    assert.are.same({ nil, "invalid_policy" }, { report, code })
    assert.matches("^syntax%.lua:%d+: ", msg)
  end)

  it("a proposed catalogue that does not compile, or never ends, is refused before anything is read", function()
    assert.are.same({ nil, "proposed.lua: products: the catalogue lists no product", "invalid_catalogue" },
      { replay.run(store, { on = ON, catalogue = "return { products = {} }", catalogue_name = "proposed.lua" }) })
    local report, msg, code = replay.run(store, { on = ON, catalogue = "return {", catalogue_name = "proposed.lua" })
    assert.are.same({ nil, "invalid_catalogue" }, { report, code })
    assert.matches("^proposed%.lua:1: ", msg)
    report, msg, code = replay.run(store, { on = ON, catalogue = "while true do end", catalogue_name = "loop.lua" })
    assert.are.same({ nil, "catalogue_limit" }, { report, code })
    assert.matches("^loop%.lua: ", msg)
  end)

  it("refuses bad days and calls progress from 0 to the total", function()
    assert.are.same({ nil, "on: date YYYY-MM-DD expected", "invalid_date" },
      { replay.run(store, { on = "2019-02-30" }) })
    local _, _, code = replay.run(store, { on = ON, since = "2019-02-01" })
    assert.are.equal("invalid_date", code)
    assert.has_error(function() replay.run(store, "policy.lua") end)
    local calls = {}
    assert(replay.run(store, { on = ON, progress = function(done, total) calls[#calls + 1] = { done, total } end }))
    assert.are.same({ 0, 3 }, calls[1])
    assert.are.same({ 3, 3 }, calls[#calls])
  end)

  it("writes nothing, and reads in one read-only snapshot", function()
    local before = stores.dump(store)
    local inside = {}
    assert(replay.run(store, { on = ON, policy = "return { products = { smartermail = { migration_days = 45 } } }",
      progress = function(done)
        if done > 0 then return end
        if stores.postgresql then
          inside.read_only = store.db:query(1000, "SHOW transaction_read_only")[1].transaction_read_only
          inside.isolation = store.db:query(1000, "SHOW transaction_isolation")[1].transaction_isolation
        else
          -- A read transaction: another connection takes the write lock meanwhile.
          local other = stores.raw(path)
          other:begin()
          other:rollback()
          other:close()
          inside.writer = true
        end
      end }))
    if stores.postgresql then
      assert.are.same({ read_only = "on", isolation = "repeatable read" }, inside)
    else
      assert.are.same({ writer = true }, inside)
    end
    assert.are.equal(before, stores.dump(store))
    -- Not even a workflow run from inside the replay (its progress
    -- callback) is kept: PostgreSQL refuses it, SQLite's is rolled back.
    local report, msg = replay.run(store, { on = ON, progress = function(done)
      if done == 0 then store:issue({ product = "smartertrack", edition = "enterprise", level = 5 }) end
    end })
    if stores.postgresql then
      assert.is_nil(report)
      assert.matches("read%-only transaction", msg)
    else
      assert.are.equal(4, report.licenses)   -- the replay's own transaction saw it, then rolled it back
    end
    assert.are.equal(before, stores.dump(store))
    -- The store works on as before.
    assert.is_false(store.in_transaction)
    assert(store:checkin(keys.track, "new", ON).ok)
  end)
end)

describe("replay.run against the policy in force (" .. stores.backend .. ")", function()
  local MAIL_45 = "return { name = 'mail-45', products = { smartermail = { migration_days = 45 } } }"
  local store, path, mail, pinned

  setup(function()
    store, path = stores.new()
    local fields = { product = "smartermail", edition = "professional", level = 250 }
    mail = two_servers(store, fields, { 6347, 6380 })
    pinned = two_servers(store, fields, { 6347, 6380 })
    -- The license's own override is the most specific layer, on both sides.
    assert(store:set(pinned, { policy = { migration_days = 30 }, reason = "the customer's contract" }))
    assert(store:sweep("2019-01-05"))
    assert(store:import_policy(MAIL_45, "mail-45.lua"))
  end)

  teardown(function()
    store:close()
    stores.remove(path)
  end)

  it("the file in force, proposed again, changes nothing", function()
    local report = assert(replay.run(store, { on = ON, policy = MAIL_45 }))
    assert.are.equal(0, report.changed)
    assert.is_number(report.current.policy)
  end)

  it("no policy file at all takes the product layer away, and a license's own override stays", function()
    local report = assert(replay.run(store, { on = ON }))
    assert.is_true(report.changes.ladder > 0)
    assert.are.same({ [mail] = true }, keys_of(report.examples.ladder))
    local window
    for _, e in ipairs(report.examples.ladder) do if e.what == "window" then window = e end end
    assert.are.same({ "fraud since 2018-12-05 (deadline 2019-01-18)", "fraud since 2018-12-05 (deadline 2019-01-03)" },
      { window.before, window.after })
  end)
end)

describe("replay.run on check-in grace, hook failures and windows (" .. stores.backend .. ")", function()
  local GRACE = assert(io.open(assert(package.searchpath("licensor.policies.large_customer_grace",
                                                         package.path)))):read("a")
  local PLAIN = "return { name = 'plain' }"
  local store, path, globex, gone

  setup(function()
    store, path = stores.new()
    assert(store:import(fixtures.catalogue_table()))
    assert(store:import_policy(GRACE, "large_customer_grace.lua", "2019-01-01"))
    globex = stores.issue(store, { owner = "globex", start = "2018-12-07" }).key
    assert(store:activate(globex, "dc1.globex.example", 6911, "2019-01-10").ok)
    assert(store:checkin(globex, "dc1.globex.example", "2019-03-11").ok)
    -- A deactivated server is no decision: nothing would check it in.
    gone = stores.issue(store, { owner = "globex", start = "2018-12-07" }).key
    assert(store:activate(gone, "dc2.globex.example", 6911, "2019-01-10").ok)
    assert(store:checkin(gone, "dc2.globex.example", "2019-03-11").ok)
    assert(store:deactivate(gone, "dc2.globex.example", "2019-03-12"))
  end)

  teardown(function()
    store:close()
    stores.remove(path)
  end)

  it("a check-in grace taken away shows as the installation no longer active", function()
    local report = assert(replay.run(store, { on = "2019-03-20", policy = PLAIN }))
    assert.are.same({ 1, 1 }, { report.changes.active, report.changed })
    assert.are.equal(1, report.decisions.active)
    assert.are.same({ key = globex, day = "2019-03-20", what = "dc1.globex.example", before = "active",
                      after = "inactive" }, report.examples.active[1])
    -- Within the catalogue's 7 days both sides let it in.
    assert.are.equal(0, assert(replay.run(store, { on = "2019-03-15", policy = PLAIN })).changed)
    -- The file in force again changes nothing.
    assert.are.equal(0, assert(replay.run(store, { on = "2019-03-20", policy = GRACE })).changed)
  end)

  it("what it reports is what the store then does: the check-in is refused", function()
    local copy, copy_path = stores.new()
    assert(copy:import(fixtures.catalogue_table()))
    assert(copy:import_policy(GRACE, "large_customer_grace.lua", "2019-01-01"))
    local key = stores.issue(copy, { owner = "globex", start = "2018-12-07" }).key
    assert(copy:activate(key, "dc1.globex.example", 6911, "2019-01-10").ok)
    assert(copy:checkin(key, "dc1.globex.example", "2019-03-11").ok)
    assert(copy:import_policy(PLAIN, "plain.lua", "2019-03-19"))
    local r = copy:checkin(key, "dc1.globex.example", "2019-03-20")
    copy:close()
    stores.remove(copy_path)
    assert.are.same({ false, "not_activated" }, { r.ok, r.code })
  end)

  it("a settings hook answering a misspelt key and an eligible hook that raises are failures, not changes",
     function()
    local report = assert(replay.run(store, { on = "2019-03-15", policy_name = "typo.lua", policy = [[
      return {
        settings = function(ctx) return { checkin_grace_dayz = 60 } end,
        eligible = function(ctx) if ctx.buidl.number then return nil end end,
      }
    ]] }))
    assert.are.equal(0, report.changed)
    assert.is_true(report.failures["settings answer"] > 0)
    assert.is_true(report.failures["eligible error"] > 0)
    local text = table.concat(report.hook_log, "\n")
    assert.matches("checkin_grace_dayz", text, 1, true)
    assert.matches("buidl", text, 1, true)
    -- Each line once, though the hooks failed on every day replayed.
    local seen = {}
    for _, line in ipairs(report.hook_log) do
      assert.is_nil(seen[line], line)
      seen[line] = true
    end
    assert.is_true(report.failures["eligible error"] > #report.hook_log)
    assert.is_nil(report.hook_log_seen)
  end)
end)
