-- Policy files (licensor.policy, doc/policies.md): compiling one and its
-- refusals naming the line, the layers of values it adds, each hook's
-- answer checked against its contract, the purity of hooks, and the
-- catalogue with the hooks applied (P:bind).
local policy = require "licensor.policy"
local sandbox = require "licensor.policy.sandbox"
local fixtures = require "spec.support.fixtures"

local ON = "2019-06-01"

-- A policy compiled against the fixture catalogue; its log lines collected.
local function compile(source, cat)
  local P, msg, code = policy.compile(source, "test.lua", cat)
  assert(P, msg)
  P.lines = {}
  P.log = function(line) P.lines[#P.lines + 1] = line end
  return P, msg, code
end

describe("policy.compile", function()
  local cat
  before_each(function() cat = fixtures.catalogue() end)

  it("compiles a file of layers and hooks, naming its hooks", function()
    local P = compile([[
return {
  name = "acme-2027",
  products = { smartermail = { migration_days = 45, editions = { enterprise = { checkin_grace_days = 14 } } } },
  eligible = function(ctx) return nil end,
  price = function(ctx) return nil end,
}
]], cat)
    assert.are.equal("acme-2027", P.name)
    assert.same({ eligible = true, price = true }, P.hooks)
    assert.is_true(P:has("eligible"))
    assert.is_false(P:has("admission"))
    assert.matches("^return {", P.source)
  end)

  it("refuses text that is not Lua with the line load names", function()
    assert.same({ nil, "test.lua:3: unexpected symbol near '}'", "invalid_policy" },
                { policy.compile("return {\n  eligible = function(ctx)\n}\n", "test.lua") })
  end)

  it("refuses bytecode", function()
    local _, msg, code = policy.compile(string.dump(function() return {} end), "test.lua")
    assert.are.equal("test.lua:1: a policy file is Lua text, not bytecode", msg)
    assert.are.equal("invalid_policy", code)
  end)

  it("refuses a file that returns no table", function()
    assert.same({ nil, "test.lua:1: a policy file must return a table (it returned a nil)", "invalid_policy" },
                { policy.compile("local x = 1\n", "test.lua") })
  end)

  it("refuses an unknown top-level key on its line, with the nearest name", function()
    assert.same({ nil, "test.lua:3: 'nmae' is not a hook or key of a policy file (did you mean 'name'?)",
                  "invalid_policy" },
                { policy.compile("return {\n  products = {},\n  nmae = 'x',\n}\n", "test.lua") })
  end)

  it("refuses an unknown hook on the line its function starts", function()
    assert.same({ nil, "test.lua:4: 'eligble' is not a hook or key of a policy file (did you mean 'eligible'?)",
                  "invalid_policy" },
                { policy.compile("return {\n  name = 'x',\n\n  eligble = function(ctx)\n  end,\n}\n", "test.lua") })
  end)

  it("refuses a hook that is not a function", function()
    assert.same({ nil, "test.lua:2: admission must be a function (it is a boolean)", "invalid_policy" },
                { policy.compile("return {\n  admission = true,\n}\n", "test.lua") })
  end)

  it("reports the first problem of the file in its order", function()
    local _, msg = policy.compile("return {\n  price = 1,\n  colour = 'red',\n}\n", "test.lua")
    assert.are.equal("test.lua:2: price must be a function (it is a number)", msg)
  end)

  it("refuses an unknown policy key of a product on its line", function()
    local _, msg, code = policy.compile([[
return {
  products = {
    smartermail = {
      migraton_days = 45,
    },
  },
}
]], "test.lua")
    assert.are.equal("test.lua:4: products.smartermail: policy.migraton_days is not a policy setting (misspelt?) "
                     .. "(did you mean 'migration_days'?)", msg)
    assert.are.equal("invalid_policy", code)
  end)

  it("refuses a value that is not data", function()
    local _, msg = policy.compile("return { products = {\n  smartermail = { migration_days = function() end } } }", "test.lua")
    assert.are.equal("test.lua:2: products.smartermail: policy.migration_days must be a whole number from 1 to 36500", msg)
  end)

  it("refuses a value out of the catalogue's bounds in an edition, on its line", function()
    local _, msg = policy.compile([[
return {
  products = {
    smartermail = { migration_days = 45,
      editions = {
        enterprise = { checkin_grace_days = -1 },
      },
    },
  },
}
]], "test.lua", cat)
    assert.are.equal("test.lua:5: products.smartermail.editions.enterprise: policy.checkin_grace_days must be a whole"
                     .. " number from 0 to 36500", msg)
  end)

  it("refuses a product or edition the catalogue does not have, when it is given", function()
    local source = "return {\n  products = {\n    smartermial = { migration_days = 45 },\n  },\n}\n"
    assert.same({ nil, "test.lua:3: products.smartermial: the catalogue has no product 'smartermial'",
                  "invalid_policy" }, { policy.compile(source, "test.lua", cat) })
    assert.is_table(policy.compile(source, "test.lua"))   -- without a catalogue: only the values are checked
    local _, msg = policy.compile("return { products = { smartermail = {\n  editions = { gold = {} } } } }",
                                  "test.lua", cat)
    assert.are.equal("test.lua:2: products.smartermail.editions: product 'smartermail' has no edition 'gold'", msg)
  end)

  it("runs the top level in the sandbox: an error names its line, a global assignment is refused", function()
    assert.same({ nil, "test.lua:2: boom", "invalid_policy" },
                { policy.compile("local x = 1\nerror('boom')\nreturn {}\n", "test.lua") })
    local _, msg = policy.compile("\nhelper = 1\nreturn {}\n", "test.lua")
    assert.are.equal("test.lua:2: assignment to global 'helper': a policy's globals are read-only", msg)
    local _, msg2 = policy.compile("local f = io.open('/etc/passwd')\nreturn {}\n", "test.lua")
    assert.matches("^test.lua:1: .*io", msg2)
  end)

  it("runs the top level under the budgets", function()
    assert.same({ nil, "test.lua:1: the file's top level runs before each hook call and must fit in 100,000 "
                  .. "instructions", "invalid_policy" },
                { policy.compile("while true do end\n", "test.lua") })
    assert.same({ nil, "test.lua:1: the file's top level ran past its memory budget", "invalid_policy" },
                { policy.compile("local t = {}\nfor i = 1, 1e9 do t[i] = ('x'):rep(100000, tostring(i)) end\n",
                                 "test.lua") })
  end)
end)

describe("policy.compile's top level", function()
  -- A hook that uses the file's locals runs the top level again before
  -- each call, inside that call's budget of 1,000,000.
  local function looping(n)
    return ("local n = 0\nfor i = 1, %d do n = n + i end\n"
            .. "return { price = function(ctx) return { price = n %% 7 } end }\n"):format(n)
  end

  it("must fit in a tenth of a call's instruction budget", function()
    assert.are.equal(100000, math.floor(policy.INSTRUCTIONS / policy.TOP_LEVEL_SHARE))
    -- A loop step is two instructions: 600,000 steps are past a call's
    -- budget too, 300,000 would leave a call 400,000, 60,000 just past
    -- the tenth; all are refused.
    for _, n in ipairs({ 600000, 300000, 60000 }) do
      assert.same({ nil, "big.lua:1: the file's top level runs before each hook call and must fit in 100,000 "
                    .. "instructions", "invalid_policy" }, { policy.compile(looping(n), "big.lua") })
    end
  end)

  it("that fits leaves each call of a hook using its locals the rest of the budget", function()
    local P = assert(policy.compile(looping(10000), "small.lua"))
    for _ = 1, 3 do
      assert.are.equal((10000 * 10001 / 2) % 7, P:decide("price", { day = ON, price = 5, item = "upgrade" }).price)
    end
    assert.same({}, P.failures)
  end)
end)

describe("policy.compile's dialect check", function()
  local BOTH = ": policy files run on Lua 5.4 and LuaJIT"
  -- Each construct parses on one VM only; in a string or comment it is text.
  local CASES = {
    { "local a = 7 // 2", "`//` is Lua 5.4 only" },
    { "local a = 6 & 3", "`&` is Lua 5.4 only" },
    { "local a = 6 | 3", "`|` is Lua 5.4 only" },
    { "local a = 6 ~ 3", "`~` is Lua 5.4 only" },
    { "local a = ~6", "`~` is Lua 5.4 only" },
    { "local a = 1 << 3", "`<<` is Lua 5.4 only" },
    { "local a = 8 >> 3", "`>>` is Lua 5.4 only" },
    { "local a <const> = 1", "`<const>` is Lua 5.4 only" },
    { "local a <close> = nil", "`<close>` is Lua 5.4 only" },
    { "local a = 12LL", "`LL` is LuaJIT only" },
    { "local a = 12ULL", "`ULL` is LuaJIT only" },
    { "local a = 0x1fll", "`ll` is LuaJIT only" },
    { "local a = 3i", "`i` is LuaJIT only" },
    { "local a = 1.5e-3i", "`i` is LuaJIT only" },
    { "local a = 0xffffffffffffffff", "`0xffffffffffffffff` is read differently by Lua 5.4 and LuaJIT (a whole "
      .. "number past 2^53)" },
    { "local a = 9007199254740993", "`9007199254740993` is read differently by Lua 5.4 and LuaJIT (a whole "
      .. "number past 2^53)" },
  }

  it("refuses in code what only one VM parses, naming the line, alike on both", function()
    for _, c in ipairs(CASES) do
      local source = "-- a policy\nlocal x = 1\n" .. c[1] .. "\nreturn {}\n"
      assert.same({ nil, "d.lua:3: " .. c[2] .. BOTH, "invalid_policy" }, { policy.compile(source, "d.lua") })
    end
  end)

  it("accepts each of them inside a string or a comment", function()
    for _, c in ipairs(CASES) do
      local text = c[1]
      local sources = {
        ("local s = %q\nreturn {}\n"):format(text),
        ("local s = '%s'\nreturn {}\n"):format(text),
        ("local s = [[%s]]\nreturn {}\n"):format(text),
        ("local s = [==[\n]] %s ]=]\n]==]\nreturn {}\n"):format(text),
        ("-- %s\nreturn {}\n"):format(text),
        ("--[[ %s\n]] return {}\n"):format(text),
        ("--[=[ ]] %s ]=] return {}\n"):format(text),
      }
      for _, source in ipairs(sources) do
        local P, msg = policy.compile(source, "ok.lua")
        assert(P, msg)
      end
    end
  end)

  it("accepts what both read alike: ~=, <= and >=, comparisons, exponents and hex numbers", function()
    local P, msg = policy.compile([[
local a, b = 1e-3 + 0x1p+4 + 0xAB + 2E+2 + .5 + 9007199254740991 + 0x1fffffffffffff + 1e300, 3
local s = 'it\'s' .. "a\"//" .. "x\
| y"
return { price = function(ctx)
  if a ~= b and a <= b or a >= b or (a < b and b > a) then return { price = #s } end
end }
]], "ok.lua")
    assert(P, msg)
    assert.are.equal(13, P:decide("price", { day = ON, price = 5, item = "upgrade" }).price)
  end)
end)

describe("policy layers", function()
  local cat, P
  local FILE = [[
return {
  products = {
    smartermail = { migration_days = 45, checkin_grace_days = 10,
                    editions = { enterprise = { checkin_grace_days = 14 } } },
  },
  settings = function(ctx)
    if ctx.license.owner ~= "globex" then return nil end
    return { checkin_grace_days = 60, because = "globex: change windows" }
  end,
}
]]
  local function mail(overrides)
    local lic = { key = "SM-1", product = "smartermail", edition = "enterprise", level = 250,
                  start = "2017-06-01", ms_expires = "2018-05-31", owner = "acme" }
    for k, v in pairs(overrides or {}) do lic[k] = v end
    return lic
  end
  before_each(function()
    cat = fixtures.catalogue()
    P = compile(FILE, cat)
  end)

  it("merge product, edition and the settings hook, most specific last", function()
    assert.same({ migration_days = 45, checkin_grace_days = 14 }, P:overrides(mail(), ON, cat))
    assert.same({ migration_days = 45, checkin_grace_days = 10 }, P:overrides(mail({ edition = "professional" }), ON))
    assert.same({ migration_days = 45, checkin_grace_days = 60 }, P:overrides(mail({ owner = "globex" }), ON))
    assert.is_nil(P:overrides(fixtures.faq_license(), ON))
  end)

  it("list the layers for explain, the catalogue first and the stored override last", function()
    local layers = P:layers(mail({ owner = "globex", policy_override = { migration_days = 50 } }), ON)
    local names = {}
    for i, l in ipairs(layers) do names[i] = l.layer end
    assert.same({ "catalogue", "product smartermail", "edition smartermail enterprise", "settings hook", "license" },
                names)
    assert.are.equal(30, layers[1].values.migration_days)
    assert.same({ migration_days = 45, checkin_grace_days = 10 }, layers[2].values)
    assert.same({ checkin_grace_days = 60 }, layers[4].values)
    assert.are.equal("globex: change windows", layers[4].because)
    assert.same({ migration_days = 50 }, layers[5].values)
    assert.same({ "catalogue" }, { P:layers(fixtures.faq_license(), ON, cat)[1].layer })
    assert.are.equal(1, #P:layers(fixtures.faq_license(), ON, cat))
  end)

  it("resolve to a policy value, the stored override on top, and nothing when nothing overrides", function()
    local pv = policy.values(P, cat, mail(), ON)
    assert.are.equal(45, pv.migration_days)
    assert.are.equal(14, pv.checkin_grace_days)
    assert.are.equal(7, cat:policy().checkin_grace_days)
    local stored = policy.values(P, cat, mail({ policy_override = { checkin_grace_days = 3 } }), ON)
    assert.are.equal(3, stored.checkin_grace_days)
    assert.are.equal(45, stored.migration_days)
    assert.is_nil(policy.values(P, cat, fixtures.faq_license(), ON))
    assert.is_nil(policy.values(nil, cat, fixtures.faq_license(), ON))
    assert.are.equal(9, policy.values(nil, cat, fixtures.faq_license({ policy_override = { migration_days = 9 } }),
                                      ON).migration_days)
  end)

  it("share one policy value between licenses whose layers say the same", function()
    local a = policy.values(P, cat, mail({ key = "A" }), ON)
    local b = policy.values(P, cat, mail({ key = "B" }), ON)
    assert.are.equal(a, b)
    assert.are_not.equal(a, policy.values(P, cat, mail({ key = "C", owner = "globex" }), ON))
  end)

  it("feed the resolved value to the rules", function()
    local lic = mail()
    lic.policy = policy.values(P, cat, lic, ON)
    assert.are.equal(45, cat:policy(lic).migration_days)
  end)

  it("refuse a stored override the catalogue refuses", function()
    assert.same({ nil, "policy.migration_days must be a whole number from 1 to 36500", "invalid_policy" },
                { policy.values(P, cat, mail({ policy_override = { migration_days = 0 } }), ON) })
  end)

  it("leave out a settings answer the catalogue refuses, logging it", function()
    local bad = compile("return { settings = function(ctx) return { checkin_grace_days = 99999 } end }", cat)
    assert.is_nil(policy.values(bad, cat, mail(), ON))
    assert.are.equal(1, bad.failures["settings answer"])
    assert.matches("^policy %(not imported%) settings hook %(license SM%-1%): answered policy.checkin_grace_days"
                   .. " must be a whole number from 0 to 36500; the built%-in decision stands$", bad.lines[1])
  end)

  it("hand the settings hook the values of the layers below it", function()
    local seen = compile([[
return {
  products = { smartermail = { migration_days = 45 } },
  settings = function(ctx) return { migration_extra = math.floor(ctx.policy.migration_days / 15) } end,
}
]], cat)
    assert.are.equal(3, policy.values(seen, cat, mail(), ON).migration_extra)
  end)
end)

-- The decisions of one hook: a policy whose hook is `body`.
local function hook(name, body, cat)
  return compile(("return { %s = function(ctx) %s end }"):format(name, body), cat)
end

describe("hook answers", function()
  local cat, lic
  before_each(function()
    cat = fixtures.catalogue()
    lic = fixtures.faq_license()
  end)

  local function eligible(body)
    local P = hook("eligible", body, cat)
    local answer, reason, why = P:decide("eligible", { day = ON, license = lic, build = cat:eligible(lic, ON) }, cat)
    return P, answer, reason, why
  end

  it("eligible: a build of the product released by the day", function()
    local P, answer = eligible("return { build = 6855, because = 'the 13.4 line' }")
    assert.are.equal(6855, answer.build)
    assert.are.equal("13.4.6855", answer.record.version)
    assert.are.equal("the 13.4 line", answer.because)
    assert.same({}, P.failures)
  end)

  for _, case in ipairs({
    { "return { build = 999 }", "answered build 999, which product smartertrack does not have" },
    { "return { build = 7100 }", "answered build 7100, released on 2019-06-13, after the day of the decision (2019-06-01)" },
    { "return { build = 6855.5 }", "answered build 6855.5, which is not a whole number" },
    { "return { build = 0/0 }", "answered build NaN, which is not a number" },
    { "return { build = -6855 }", "answered build -6855, which is negative" },
    { "return { build = '6855' }", "answered build '6855', which is not a number" },
    { "return { build = 6855, biuld = 1 }", "answered an unknown key 'biuld'" },
    { "return { build = 6855, because = ('x'):rep(201) }", "answered a because of 201 bytes (at most 200)" },
    { "return { build = 6855, because = 'two\\nlines' }", "answered a because that is not one line of text" },
    { "return { because = 'why' }", "answered no build" },
    { "return 6855", "answered 6855, not a table or nil" },
  }) do
    it("eligible: refuses " .. case[1], function()
      local P, answer, reason, why = eligible(case[1])
      assert.is_nil(answer)
      assert.are.equal("answer", reason)
      assert.are.equal(case[2], why)
      assert.same({ ["eligible answer"] = 1 }, P.failures)
      assert.same({ "policy (not imported) eligible hook (license ST-FAQ): " .. case[2]
                    .. "; the built-in decision stands" }, P.lines)
    end)
  end

  it("names the policy's version in its log line, and tells on_failure", function()
    local P = hook("eligible", "return { build = 999 }", cat)
    P.version = 3
    local told = {}
    P.on_failure = function(h, reason) told[#told + 1] = h .. " " .. reason end
    P:decide("eligible", { day = ON, license = lic }, cat)
    assert.are.equal("policy v3 eligible hook (license ST-FAQ): answered build 999, which product smartertrack"
                     .. " does not have; the built-in decision stands", P.lines[1])
    assert.same({ "eligible answer" }, told)
  end)

  it("goes to policy.log and policy.on_failure when the policy has none of its own", function()
    local P = assert(policy.compile("return { price = function(ctx) return { price = -1 } end }", "m.lua"))
    local saved_log, saved_cb = policy.log, policy.on_failure
    local lines, told = {}, {}
    policy.log = function(line) lines[#lines + 1] = line end
    policy.on_failure = function(h, reason, p) told[#told + 1] = { h, reason, p == P } end
    local ok, err = pcall(P.decide, P, "price", { day = ON, license = lic, item = "renewal", price = 100 }, cat)
    policy.log, policy.on_failure = saved_log, saved_cb
    assert(ok, err)
    assert.same({ { "price", "answer", true } }, told)
    assert.matches("answered price %-1, which is negative", lines[1])
  end)

  local function price(body, item)
    local P = hook("price", body, cat)
    local answer, reason, why = P:decide("price", { day = ON, license = lic, item = item or "upgrade", price = 33000,
                                                    currency = "USD" }, cat)
    return P, answer, reason, why
  end

  it("price: a whole number of minor units from 0 to 2^53-1", function()
    assert.are.equal(16500, select(2, price("return { price = math.floor(ctx.price / 2) }")).price)
    assert.are.equal(0, select(2, price("return { price = 0 }")).price)
    assert.are.equal(9007199254740991, select(2, price("return { price = 9007199254740991 }")).price)
    local _, answer = price("return { price = ctx.price * 0.5 }")   -- 16500.0 on Lua 5.4: a whole number still
    assert.are.equal(16500, answer.price)
    assert.are.equal(string.format("%d", 16500), string.format("%d", answer.price))
  end)

  for _, case in ipairs({
    { "return { price = -1 }", "answered price -1, which is negative" },
    { "return { price = 0/0 }", "answered price NaN, which is not a number" },
    { "return { price = 1/0 }", "answered price infinity, which is above 2^53-1" },
    { "return { price = -1/0 }", "answered price -infinity, which is negative" },
    { "return { price = 9007199254740992 }", "answered price 9007199254740992, which is above 2^53-1" },
    { "return { price = 99.5 }", "answered price 99.5, which is not a whole number" },
    { "return { price = '100' }", "answered price '100', which is not a number" },
    { "return { price = true }", "answered price a boolean, which is not a number" },
  }) do
    it("price: refuses " .. case[1], function()
      local P, answer, reason, why = price(case[1])
      assert.is_nil(answer)
      assert.are.equal("answer", reason)
      assert.are.equal(case[2], why)
      assert.are.equal(1, P.failures["price answer"])
    end)
  end

  local function ladder(body)
    local P = hook("ladder", body, cat)
    return P, P:decide("ladder", { day = ON, license = lic, case = { since = "2019-04-01" },
                                   steps = { "email_customer", "phone_customer" } }, cat)
  end

  it("ladder: built-in step names and notify_reseller", function()
    local _, answer = ladder([[
local steps = {}
for i, s in ipairs(ctx.steps) do steps[i] = s == "phone_customer" and "notify_reseller" or s end
return { steps = steps, because = "reseller" }]])
    assert.same({ "email_customer", "notify_reseller" }, answer.steps)
    assert.same({}, select(2, ladder("return { steps = {} }")).steps)
  end)

  it("ladder: refuses unknown, repeated or unlisted steps", function()
    assert.same({ nil, "answer", "answered step 'call_mum', which is not a step (email_customer, notify_fraud_team,"
                  .. " phone_customer, disable_key, notify_reseller)" },
                { select(2, ladder("return { steps = { 'call_mum' } }")) })
    assert.same({ nil, "answer", "answered step 'email_customer' twice" },
                { select(2, ladder("return { steps = { 'email_customer', 'email_customer' } }")) })
    assert.same({ nil, "answer", "answered steps that are not a list" },
                { select(2, ladder("return { steps = { x = 'email_customer' } }")) })
    assert.same({ nil, "answer", "answered steps 'email_customer', which is not a list" },
                { select(2, ladder("return { steps = 'email_customer' }")) })
  end)

  local function reminders(body)
    local P = hook("reminders", body, cat)
    return P, P:decide("reminders", { day = ON, license = lic, kind = "ms", offsets = { 30, 7, -1 } }, cat)
  end

  it("reminders: offsets within the catalogue's bounds", function()
    assert.same({ 60, 30, 7 }, select(2, reminders("return { offsets = { 60, 30, 7 } }")).offsets)
    local _, answer, reason, why = reminders("return { offsets = { 5000 } }")
    assert.is_nil(answer)
    assert.are.equal("answer", reason)
    assert.matches("^answered offsets that the catalogue refuses: policy%.reminders", why)
    assert.are.equal("answered offset 1.5, which is not a whole number",
                     select(4, reminders("return { offsets = { 1.5 } }")))
  end)

  it("admission: a boolean", function()
    local P = hook("admission", "return { admit = ctx.after.active <= 3 }", cat)
    local input = { day = ON, license = lic, server = "s3", before = { active = 2, allowed = 1 },
                    after = { active = 3, allowed = 1 }, admit = false, code = "too_many_installations" }
    assert.is_true(P:decide("admission", input, cat).admit)
    local bad = hook("admission", "return { admit = 'yes' }", cat)
    assert.same({ nil, "answer", "answered admit 'yes', which is not a boolean" },
                { bad:decide("admission", input, cat) })
  end)

  it("settings: policy keys, checked with the catalogue's bounds", function()
    local P = hook("settings", "return { checkin_grace_days = 60, because = 'big' }", cat)
    assert.same({ values = { checkin_grace_days = 60 }, because = "big" },
                P:decide("settings", { day = ON, license = lic }, cat))
    local bad = hook("settings", "return { checkin_grace = 60 }", cat)
    assert.same({ nil, "answer", "answered policy.checkin_grace is not a policy setting (misspelt?)" },
                { bad:decide("settings", { day = ON, license = lic }, cat) })
    local fn = hook("settings", "return { checkin_grace_days = function() end }", cat)
    assert.same({ nil, "answer", "answered policy.checkin_grace_days must be a whole number from 0 to 36500" },
                { fn:decide("settings", { day = ON, license = lic }, cat) })
  end)

  it("nil: the built-in decision stands, nothing counted", function()
    local P = hook("eligible", "return nil", cat)
    assert.is_nil(P:decide("eligible", { day = ON, license = lic }, cat))
    assert.same({}, P.failures)
    assert.same({}, P.lines)
  end)
end)

describe("the context", function()
  local cat, lic
  before_each(function()
    cat = fixtures.catalogue()
    lic = fixtures.faq_license({ owner = "acme", tags = { msp = true }, addons = { eas = "2018-12-06" } })
  end)

  it("carries the day, the license, its policy, the built-in build and the product's builds", function()
    local P = hook("eligible", [[
local l = ctx.license
local b = ctx.builds
return { build = ctx.build.number, because = table.concat({ ctx.day, l.key, l.kind, l.owner, tostring(l.tags.msp),
  l.addons.eas, tostring(l.level), tostring(ctx.policy.migration_days), tostring(#b), b[1].version,
  tostring(b[#b].number), ctx.build.released }, " ") }]], cat)
    local answer = P:decide("eligible", { day = ON, license = lic, build = cat:eligible(lic, ON) }, cat)
    assert.are.equal("2019-06-01 ST-FAQ perpetual acme true 2018-12-06 5 30 7 12.5.6700 7100 2018-12-03",
                     answer.because)
  end)

  it("hides what is not its hook's: another hook's fields and the host's", function()
    local P = hook("eligible", "return { because = tostring(ctx.price) .. tostring(ctx.cat) .. tostring(ctx.x) }", cat)
    local answer = P:decide("eligible", { day = ON, license = lic, price = 1, x = 2, build = cat:eligible(lic, ON) }, cat)
    assert.is_nil(answer)   -- no build: but the because was made of nils
    local Q = hook("price", "return { price = 1, because = tostring(ctx.build) .. tostring(ctx.builds) }", cat)
    assert.are.equal("nilnil", Q:decide("price", { day = ON, license = lic, item = "renewal", price = 5,
                                                    build = cat:eligible(lic, ON) }, cat).because)
  end)

  it("answers nothing once the call is over", function()
    local P = hook("eligible", "return nil", cat)
    P:decide("eligible", { day = ON, license = lic }, cat)
    local _, data = P:decider("eligible", cat)
    assert.is_nil(next(data))
  end)

  it("offers the sandbox's calendar", function()
    local P = hook("price", [[
return { price = days_between(ctx.license.ms_expires, ctx.day) + day("1970-01-02"),
         because = add_days(ctx.license.ms_expires, 60) .. " " .. date(0) }]], cat)
    local answer = P:decide("price", { day = ON, license = lic, item = "renewal", price = 5 }, cat)
    assert.are.equal(177 + 1, answer.price)
    assert.are.equal("2019-02-04 1970-01-01", answer.because)
  end)

  it("lists what the sandbox offers", function()
    assert.same({ "add_days", "assert", "date", "day", "days_between", "error", "ipairs", "math", "next", "pairs",
                  "pcall", "rawequal", "select", "string", "table", "tonumber", "tostring", "type", "unpack",
                  "xpcall" }, sandbox.GLOBALS)
    assert.same({ "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "rep", "reverse",
                  "sub", "upper" }, sandbox.STRING)
  end)
end)

describe("purity", function()
  local cat, lic
  before_each(function()
    cat = fixtures.catalogue()
    lic = fixtures.faq_license()
  end)

  local function twice(P, input)
    local a = P:decide("eligible", input or { day = ON, license = lic, build = cat:eligible(lic, ON) }, cat)
    local b = P:decide("eligible", input or { day = ON, license = lic, build = cat:eligible(lic, ON) }, cat)
    return a, b
  end

  it("a hook setting a global raises, and the built-in decision stands", function()
    local P = hook("eligible", "seen = true return { build = 6855 }", cat)
    assert.is_nil(P:decide("eligible", { day = ON, license = lic }, cat))
    assert.are.equal(1, P.failures["eligible error"])
    assert.matches("raised test.lua:1: assignment to global 'seen': a policy's globals are read%-only", P.lines[1])
  end)

  it("a file-level local starts afresh on every call", function()
    local P = compile([[
local n = 0
local seen = {}
return {
  eligible = function(ctx)
    n = n + 1
    seen[#seen + 1] = ctx.day
    if n > 1 or #seen > 1 then return { build = 6790 } end
    return { build = 6855 }
  end,
}
]], cat)
    local a, b = twice(P)
    assert.are.equal(6855, a.build)
    assert.are.equal(6855, b.build)
  end)

  it("a helper function of the file works, and its upvalues start afresh too", function()
    local P = compile([[
local calls = 0
local function pick(ctx) calls = calls + 1 return calls == 1 and 6855 or 6790 end
return { eligible = function(ctx) return { build = pick(ctx) } end }
]], cat)
    local a, b = twice(P)
    assert.same({ 6855, 6855 }, { a.build, b.build })
  end)

  it("ctx is read-only; its tables are copies that reach neither the store nor the next call", function()
    local P = hook("eligible", "ctx.day = '2099-01-01' return { build = 6855 }", cat)
    assert.is_nil(P:decide("eligible", { day = ON, license = lic }, cat))
    assert.matches("ctx is read%-only %(cannot set ctx.day%)", P.lines[1])

    local Q = hook("eligible", [[
local before = ctx.license.level
ctx.license.level = 99
ctx.license.tags.msp = true
table.insert(ctx.builds, 1, 'x')
return { build = 6855, because = tostring(before) .. " " .. tostring(ctx.license.level) .. " " .. #ctx.builds }]], cat)
    local a, b = twice(Q)
    assert.are.equal("5 99 8", a.because)
    assert.are.equal("5 99 8", b.because)
    assert.are.equal(5, lic.level)
    assert.is_nil(lic.tags)
    assert.are.equal(7, #cat:builds("smartertrack"))

    local R = hook("eligible", "ctx.build.number = 1 return { build = 6855 }", cat)
    assert.is_nil(R:decide("eligible", { day = ON, license = lic, build = cat:eligible(lic, ON) }, cat))
    assert.matches("ctx build field number is read%-only", R.lines[1])
    assert.are.equal(6911, cat:eligible(lic, ON).number)
  end)

  for _, name in ipairs({ "os", "io", "require", "load", "loadstring", "dofile", "debug", "coroutine",
                          "getmetatable", "setmetatable", "rawset", "rawget", "collectgarbage", "print",
                          "module", "jit", "package", "_G", "newproxy", "setfenv", "getfenv" }) do
    it("offers no " .. name, function()
      local P = hook("eligible", ("return { because = type(%s) }"):format(name), cat)
      local _, _, why = P:decide("eligible", { day = ON, license = lic }, cat)
      assert.are.equal("answered no build", why)   -- the because was "nil": the hook ran
      local Q = hook("eligible", ("if %s ~= nil then error('there') end return { build = 6855 }"):format(name), cat)
      assert.are.equal(6855, Q:decide("eligible", { day = ON, license = lic }, cat).build)
    end)
  end

  it("a policy that reads os, io or require gets nil: the built-in decision stands", function()
    for _, body in ipairs({ "return { build = os.time() }", "io.write('x')", "local m = require('licensor')" }) do
      local P = hook("eligible", body, cat)
      assert.is_nil(P:decide("eligible", { day = ON, license = lic }, cat))
      assert.are.equal(1, P.failures["eligible error"])
    end
  end)

  it("offers no clock or random number", function()
    local P = hook("eligible", "return { because = type(math.random) .. type(math.randomseed) .. type(string.dump) }", cat)
    assert.are.equal("answered no build", select(3, P:decide("eligible", { day = ON, license = lic }, cat)))
    local Q = hook("price", "return { price = 1, because = type(math.random) .. type(string.dump) .. type(os) }", cat)
    assert.are.equal("nilnilnil", Q:decide("price", { day = ON, license = lic, item = "renewal", price = 5 }, cat).because)
  end)

  it("library tables are read-only and stay whole for the next call", function()
    local P = hook("price", "string.upper = nil return { price = 1 }", cat)
    assert.is_nil(P:decide("price", { day = ON, license = lic, item = "renewal", price = 5 }, cat))
    assert.matches("string.upper is read%-only in a policy", P.lines[1])
    local Q = hook("price", "math.floor = function() return 0 end return { price = 1 }", cat)
    assert.is_nil(Q:decide("price", { day = ON, license = lic, item = "renewal", price = 5 }, cat))
    local R = hook("price", "return { price = math.floor(2.5), because = string.upper('ok') }", cat)
    assert.same({ price = 2, because = "OK" }, R:decide("price", { day = ON, license = lic, item = "renewal", price = 5 }, cat))
  end)

  it("table.insert, remove and sort refuse the read-only tables on both VMs", function()
    for _, body in ipairs({ "table.insert(ctx, 1)", "table.insert(string, 'x')", "table.remove(ctx.build)",
                            "table.sort(math)", "table.insert(ctx.build, 1, 2)" }) do
      local P = hook("eligible", body .. " return { build = 6855 }", cat)
      local input = { day = ON, license = lic, build = cat:eligible(lic, ON) }
      assert.is_nil(P:decide("eligible", input, cat), body)
      assert.matches("the table is read%-only", P.lines[1], 1, false, body)
      local Q = hook("eligible", "return { build = 6855 + #ctx + #string + #ctx.build + #math }", cat)
      assert.are.equal(6855, Q:decide("eligible", input, cat).build)
    end
  end)

  it("pairs and ipairs never hand out the table behind a read-only view", function()
    local P = hook("eligible", [[
local _, t = pairs(ctx.build)
local _, s = pairs(string)
local _, m = ipairs(math)
local ok = pcall(function() t.number = 1 end)
local ok2 = pcall(function() s.upper = nil end)
local ok3 = pcall(function() m.floor = nil end)
return { build = 6855, because = tostring(ok) .. tostring(ok2) .. tostring(ok3) }]], cat)
    local input = { day = ON, license = lic, build = cat:eligible(lic, ON) }
    assert.are.equal("falsefalsefalse", P:decide("eligible", input, cat).because)
    local Q = hook("eligible", "return { build = ctx.build.number, because = string.upper('x') }", cat)
    assert.same({ 6911, "X" }, { Q:decide("eligible", input, cat).build, Q:decide("eligible", input, cat).because })
  end)

  it("pairs and ipairs read the read-only views alike on both VMs", function()
    local P = hook("price", [[
local keys = {}
for k in pairs(ctx.build) do keys[#keys + 1] = k end
table.sort(keys)
local n = 0
for _ in pairs(math) do n = n + 1 end
return { price = n, because = table.concat(keys, ",") }]], cat)
    local answer = P:decide("price", { day = ON, license = lic, item = "renewal", price = 5, build = cat:eligible(lic, ON) }, cat)
    assert.is_nil(answer)   -- price's ctx has no build: pairs(nil) raises
    local Q = hook("eligible", [[
local keys = {}
for k in pairs(ctx.build) do keys[#keys + 1] = k end
table.sort(keys)
local n = 0
for _ in pairs(math) do n = n + 1 end
return { build = ctx.build.number, because = table.concat(keys, ",") .. " " .. n }]], cat)
    local a = Q:decide("eligible", { day = ON, license = lic, build = cat:eligible(lic, ON) }, cat)
    assert.are.equal("major,number,released,version " .. #sandbox.MATH, a.because)
  end)

  it("a file may not name _ENV, on either VM", function()
    assert.same({ nil, "test.lua:3: a policy file may not name _ENV (the globals are the sandbox's)", "invalid_policy" },
                { policy.compile("return {\n  price = function(ctx)\n    _ENV = {}\n  end,\n}\n", "test.lua") })
    assert.is_nil(policy.compile("local _ENV = { x = 1 }\nreturn {}\n", "test.lua"))
  end)
end)

describe("P:bind", function()
  local cat, lic
  before_each(function()
    cat = fixtures.catalogue()
    lic = fixtures.faq_license()
  end)

  it("forwards every method when the file has no hook for it", function()
    local W = compile("return { products = { smartermail = { migration_days = 45 } } }", cat):bind(cat)
    assert.are.equal(cat, W.raw)
    assert.are.equal(6911, W:eligible(lic, ON).number)
    assert.are.equal(cat:eligible(lic, ON), W:eligible(lic, ON))
    assert.same({ cat:can_install(lic, 6947, ON) }, { W:can_install(lic, 6947, ON) })
    assert.are.equal(cat:quote_upgrade(lic, { level = 10 }, ON), W:quote_upgrade(lic, { level = 10 }, ON))
    assert.are.equal(30, W:policy().migration_days)
    local own = {}
    for k, v in pairs(lic) do own[k] = v end
    own.policy = assert(cat:resolve_policy({ migration_days = 45 }))
    assert.are.equal(45, W:policy(own).migration_days)
    assert.are.equal(cat, W.raw)
    assert.is_not_nil(W.policy_file.hooks)
    assert.are.equal("USD", W:currency())
    assert.same({ 100, "USD" }, { W:renewal_price(lic, ON, 100, "USD") })
    assert.same({ 30, 7, -1 }, W:reminder_offsets(lic, "ms", ON))
    assert.are.equal(W.eligible, W.eligible)   -- one forwarder, kept
  end)

  it("eligible, can_install and status follow the eligible hook", function()
    local P = hook("eligible", "if ctx.day > ctx.license.ms_expires then return { build = 6947, because = 'bugfix' } end",
                   cat)
    local W = P:bind(cat)
    assert.are.equal(6947, W:eligible(lic, ON).number)
    assert.are.equal(6700, W:eligible(lic, "2018-06-01").number)   -- M&S runs: the newest build by then
    assert.is_true(W:can_install(lic, 6947, ON))
    assert.is_true(W:can_install(lic, 6700, ON))
    assert.same({ false, "build 7010 is newer than build 6947, the newest this license may install",
                  "newer_than_eligible" }, { W:can_install(lic, 7010, ON) })
    assert.same({ cat:can_install(lic, 1234, ON) }, { W:can_install(lic, 1234, ON) })
    local st = W:status(lic, ON)
    assert.are.equal(6947, st.eligible.number)
    assert.are.equal(6911, cat:status(lic, ON).eligible.number)
  end)

  it("a built-in refusal may become a build; a disabled key and bad input stay as they are", function()
    local P = hook("eligible", "return { build = 6790 }", cat)
    local W = P:bind(cat)
    local lease = fixtures.faq_license({ kind = "lease", ms_expires = nil, lease_ended = "2018-09-01" })
    assert.is_nil(cat:eligible(lease, ON))
    assert.are.equal(6790, W:eligible(lease, ON).number)
    local st = W:status(lease, ON)
    assert.are.equal(6790, st.eligible.number)
    assert.is_nil(st.code)
    local disabled = fixtures.faq_license({ disabled = true })
    assert.same({ cat:eligible(disabled, ON) }, { W:eligible(disabled, ON) })
    assert.same({ cat:eligible({ product = "nope" }, ON) }, { W:eligible({ product = "nope" }, ON) })
  end)

  it("admission follows the admission hook", function()
    local P = hook("admission", "if ctx.license.tags and ctx.license.tags.msp and ctx.after.active <= 3 then"
                   .. " return { admit = true, because = 'MSP' } end"
                   .. " if ctx.server == 'banned' then return { admit = false, because = 'not that one' } end", cat)
    local W = P:bind(cat)
    local installs = { { first_seen = "2019-05-01", last_seen = "2019-05-31" },
                       { first_seen = "2019-05-20", last_seen = "2019-05-31" } }
    local msp = fixtures.faq_license({ tags = { msp = true } })
    assert.is_false((cat:admission(msp, installs, ON)))
    local ok, window = W:admission(msp, installs, ON, "s3")
    assert.is_true(ok)
    assert.are.equal(3, window.active)
    assert.same({ cat:admission(lic, installs, ON) }, { W:admission(lic, installs, ON, "s3") })
    local ok2, msg, code, before = W:admission(lic, {}, ON, "banned")
    assert.same({ false, "not that one", "policy_refused", 0 }, { ok2, msg, code, before.active })
  end)

  it("ladder, prices and reminders follow their hooks", function()
    local P = compile([[
return {
  ladder = function(ctx) return { steps = { "notify_reseller" } } end,
  price = function(ctx) return { price = ctx.item == "upgrade" and math.floor(ctx.price / 2) or ctx.price + 1 } end,
  reminders = function(ctx) return { offsets = { 60 } } end,
}
]], cat)
    local W = P:bind(cat)
    assert.same({ "notify_reseller" }, W:ladder({ since = "2019-01-01" }, ON, lic))
    assert.same(cat:ladder({ since = "2019-01-01" }, ON), W:ladder({ since = "2019-01-01" }, ON))   -- no license
    assert.are.equal(math.floor(cat:quote_upgrade(lic, { level = 10 }, ON) / 2), W:quote_upgrade(lic, { level = 10 }, ON))
    assert.same({ 101, "USD" }, { W:renewal_price(lic, ON, 100, "USD") })
    assert.is_nil(W:renewal_price(lic, ON, nil))
    assert.same({ 60 }, W:reminder_offsets(lic, "ms", ON))
  end)

  it("traces each hooked decision when asked", function()
    local P = hook("eligible", "return { build = 6855, because = 'pinned' }", cat)
    P.version = 4
    local W = P:bind(cat)
    W:eligible(lic, ON)
    W.trace = {}
    W:eligible(lic, ON)
    W:can_install(lic, 6911, ON)
    assert.same({ rule = "R3", hook = "eligible", version = 4, before = 6911, after = 6855, because = "pinned",
                  answered = true }, W.trace[1])
    assert.are.equal(2, #W.trace)
    assert.same({ false, "build 6911 is newer than build 6855, the newest this license may install",
                  "newer_than_eligible" }, { W:can_install(lic, 6911, ON) })
  end)

  it("a failed hook leaves every hooked method at the built-in answer", function()
    local P = compile([[
return {
  eligible = function(ctx) error("broken") end,
  admission = function(ctx) return { admit = 1 } end,
  price = function(ctx) return { price = -5 } end,
}
]], cat)
    local W = P:bind(cat)
    assert.are.equal(6911, W:eligible(lic, ON).number)
    assert.same({ cat:can_install(lic, 6947, ON) }, { W:can_install(lic, 6947, ON) })
    assert.same({ cat:admission(lic, {}, ON) }, { W:admission(lic, {}, ON, "s1") })
    assert.are.equal(cat:quote_upgrade(lic, { level = 10 }, ON), W:quote_upgrade(lic, { level = 10 }, ON))
    assert.are.equal(2, P.failures["eligible error"])
    assert.are.equal(1, P.failures["admission answer"])
    assert.are.equal(1, P.failures["price answer"])
  end)
end)
