-- Hooks that misbehave (the issue's bad input), through the real path:
-- a policy file compiled by licensor.policy and bound to a catalogue.
-- Whatever the hook does, the built-in decision stands, one log line
-- says why, the failure is counted, and the host is as it was.
local policy = require "licensor.policy"
local fixtures = require "spec.support.fixtures"

local ON = "2019-06-01"

local function bound(source)
  local cat = fixtures.catalogue()
  local P = assert(policy.compile(source, "bad.lua", cat))
  P.version = 7
  P.lines = {}
  P.log = function(line) P.lines[#P.lines + 1] = line end
  return P:bind(cat), P, cat
end

-- An eligible hook whose body is `body`: W:eligible must answer the
-- built-in 6911 and P must log and count one failure of `reason`.
local function eligible_stands(body, reason, why)
  local W, P, cat = bound(("return { eligible = function(ctx) %s end }"):format(body))
  local lic = fixtures.faq_license()
  local hook_before = debug.gethook()
  local b = W:eligible(lic, ON)
  assert.are.equal(6911, b.number)
  assert.are.equal(cat:eligible(lic, ON), b)
  assert.same({ ["eligible " .. reason] = 1 }, P.failures)
  assert.are.equal(1, #P.lines)
  assert.matches("^policy v7 eligible hook %(license ST%-FAQ%): " .. why .. ".*; the built%-in decision stands$",
                 P.lines[1])
  assert.are.equal(hook_before, debug.gethook())
  return W, P
end

describe("a hook that", function()
  it("loops forever runs out of instructions", function()
    eligible_stands("while true do end", "instructions", "ran past its instruction budget %(1000000%)")
  end)

  it("loops forever inside pcall still runs out", function()
    eligible_stands("pcall(function() while true do end end) return { build = 6855 }", "instructions",
                    "ran past its instruction budget")
  end)

  it("loops in a callback of the string library runs out", function()
    eligible_stands("('abc'):gsub('.', function() while true do end end)", "instructions",
                    "ran past its instruction budget")
  end)

  it("backtracks without end in one pattern match is refused before the match starts", function()
    eligible_stands("return ('a'):rep(5000):find('.-.-.-.-b') and { build = 6855 }", "error",
                    "raised bad.lua:1: string.find: a pattern of 9 bytes with 4 repetitions on 5000 bytes may run "
                    .. "too long")
  end)

  it("matches versions, keys and addresses with patterns as usual", function()
    local W = bound([[return { eligible = function(ctx)
      local major, minor = ctx.build.version:match("^(%d+)%.(%d+)")
      if major and minor and ctx.license.key:find("-", 1, true) then return { build = 6855 } end
    end }]])
    assert.are.equal(6855, W:eligible(fixtures.faq_license(), ON).number)
  end)

  it("allocates without end runs out of memory", function()
    eligible_stands("local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(1000, tostring(i)) end", "memory",
                    "ran past its memory budget %(8388608 bytes%)")
  end)

  it("doubles a string without end runs out of memory", function()
    eligible_stands("local s = 'x' while true do s = s .. s end", "memory", "ran past its memory budget")
  end)

  it("asks for a huge string runs out of memory", function()
    eligible_stands("return { because = ('x'):rep(2^30) }", "memory", "ran past its memory budget")
  end)

  it("repeats an empty string without end is answered at once", function()
    local W, P = bound("return { eligible = function(ctx)\n"
                       .. "  return { build = 6855 + #(''):rep(1e15) + #string.rep('', 1e15, '') } end }")
    assert.are.equal(6855, W:eligible(fixtures.faq_license(), ON).number)
    assert.same({}, P.failures)
  end)

  it("recurses deeply is stopped", function()
    eligible_stands("local function f(n) return f(n + 1) + 1 end return { build = f(1) }", "error",
                    "raised .*stack overflow")
  end)

  it("yields cannot: there is no coroutine", function()
    eligible_stands("coroutine.yield(1) return { build = 6855 }", "error", "raised bad.lua:1: .*coroutine")
  end)

  it("runs inside a coroutine of the host, as a gateway request does", function()
    local W, P = bound("return { eligible = function(ctx) return { build = 6855 } end }")
    local lic = fixtures.faq_license()
    local co = coroutine.wrap(function()
      local b = W:eligible(lic, ON)
      coroutine.yield(b.number)
      return W:eligible(lic, ON).number
    end)
    assert.are.equal(6855, co())
    assert.are.equal(6855, co())
    assert.same({}, P.failures)
  end)

  it("poisons the string metatable cannot: no getmetatable, and ('').rep reaches only the safe table", function()
    eligible_stands("getmetatable('').__index = {} return { build = 6855 }", "error", "raised bad.lua:1: .*getmetatable")
    local W, P = bound([[
return { eligible = function(ctx)
  local s = ""
  return { build = 6855, because = type(s.dump) .. " " .. type(s.rep) .. " " .. type(("x").pack) .. " " .. s.rep("ab", 2) }
end }]])
    local lic = fixtures.faq_license()
    assert.are.equal(6855, W:eligible(lic, ON).number)
    W.trace = {}
    W:eligible(lic, ON)
    assert.are.equal("nil function nil abab", W.trace[1].because)
    assert.same({}, P.failures)
    eligible_stands("string.rep = function() return '' end return { build = 6855 }", "error",
                    "raised bad.lua:1: string.rep is read%-only in a policy")
    -- The host's string methods are its own again.
    assert.are.equal("xx", ("x"):rep(2))
    assert.are.equal("function", type(("").dump))
    assert.are.equal("ABC", ("abc"):upper())
  end)

  it("raises an error object: only its type is reported, no metamethod runs", function()
    eligible_stands("error({ 'boom' })", "error", "raised error object is a TABLE")
    eligible_stands("error(ctx)", "error", "raised error object is a TABLE")
    -- An error whose __tostring loops cannot be made: setmetatable is not there.
    eligible_stands("error(setmetatable({}, { __tostring = function() while true do end end }))", "error",
                    "raised bad.lua:1: .*setmetatable")
  end)

  it("raises a long or multi-line message: one line in the log", function()
    local _, P = eligible_stands("error(('line\\n'):rep(100))", "error", "raised bad.lua:1: line line")
    assert.is_nil(P.lines[1]:find("\n"))
    assert.is_true(#P.lines[1] < 400)
  end)

  it("answers a build that does not exist", function()
    eligible_stands("return { build = 999 }", "answer", "answered build 999, which product smartertrack does not have")
  end)

  it("answers a build released after the day", function()
    eligible_stands("return { build = 7100 }", "answer", "answered build 7100, released on 2019%-06%-13, after the day"
                    .. " of the decision %(2019%-06%-01%)")
  end)

  it("answers a build that is not a whole number", function()
    eligible_stands("return { build = 6911.5 }", "answer", "answered build 6911.5, which is not a whole number")
  end)

  it("answers NaN for a build", function()
    eligible_stands("return { build = 0/0 }", "answer", "answered build NaN, which is not a number")
  end)

  it("answers a huge list of steps", function()
    local W, P = bound([[return { ladder = function(ctx)
  local t = {} for i = 1, 100000 do t[i] = "email_customer" end
  return { steps = t } end }]])
    local lic = fixtures.faq_license()
    local case = { since = "2019-03-01" }
    assert.same(W.raw:ladder(case, ON), W:ladder(case, ON, lic))
    assert.are.equal(1, P.failures["ladder answer"])
    assert.matches("answered more than 5 steps", P.lines[1])
  end)
end)

describe("a price hook that answers", function()
  local function price_stands(answer, why)
    local W, P, cat = bound(("return { price = function(ctx) return { price = %s } end }"):format(answer))
    local lic = fixtures.faq_license()
    local built_in = cat:quote_upgrade(lic, { level = 10 }, ON)
    assert.are.equal(built_in, W:quote_upgrade(lic, { level = 10 }, ON))
    assert.same({ 4990, "USD" }, { W:renewal_price(lic, ON, 4990, "USD") })
    assert.same({ ["price answer"] = 2 }, P.failures)
    assert.matches("^policy v7 price hook %(license ST%-FAQ%): " .. why .. ".*; the built%-in decision stands$",
                   P.lines[1])
  end

  it("a negative price", function() price_stands("-ctx.price", "answered price %-%d+, which is negative") end)
  it("NaN", function() price_stands("0/0", "answered price NaN, which is not a number") end)
  it("infinity", function() price_stands("1/0", "answered price infinity, which is above 2%^53%-1") end)
  it("a fraction", function() price_stands("ctx.price / 3 + 0.5", "answered price [%d.]+, which is not a whole number") end)
  it("a string", function() price_stands("'free'", "answered price 'free', which is not a number") end)
end)

describe("after a hook fails", function()
  it("the next call runs normally", function()
    local W, P = bound([[
return { eligible = function(ctx)
  if ctx.license.key == "LOOP" then while true do end end
  return { build = 6855 }
end }]])
    assert.are.equal(6911, W:eligible(fixtures.faq_license({ key = "LOOP" }), ON).number)
    assert.are.equal(6855, W:eligible(fixtures.faq_license(), ON).number)
    assert.are.equal(1, P.failures["eligible instructions"])
    local t = {}
    for i = 1, 100000 do t[i] = i end   -- the host allocates freely again
    assert.are.equal(100000, #t)
  end)
end)

describe("the pattern guard", function()
  -- Each is refused before the match starts: the whole call takes well
  -- under a second, where the match itself would take minutes or hours.
  local function refused_at_once(body, why)
    local t0 = os.clock()
    eligible_stands(body .. " return { build = 6855 }", "error", "raised bad.lua:1: " .. why)
    assert.is_true(os.clock() - t0 < 1)
  end

  it("counts %b and %f as repetitions", function()
    refused_at_once("local _ = ('('):rep(2000000):find('%b()')",
                    "string.find: a pattern of 4 bytes with 1 repetitions on 2000000 bytes may run too long")
    refused_at_once("local _ = ('a'):rep(20000):match(('%f[a]'):rep(2) .. 'b')",
                    "string.match: a pattern of 11 bytes with 2 repetitions on 20000 bytes")
  end)

  it("writes a number subject as the sandbox's tostring does, and bounds it", function()
    refused_at_once("local _ = string.find(-1.2345678901234e-300, ('.-'):rep(22) .. 'x')",
                    "string.find: a pattern of 45 bytes with 22 repetitions on 21 bytes")
    local P = assert(policy.compile([[return { price = function(ctx)
      return { price = 1, because = string.match(3.0, "^%d+$") .. " " .. string.gsub(12, "1", "x") } end }]], "n.lua"))
    assert.are.equal("3 x2", P:decide("price", { day = ON, price = 5, item = "upgrade" }).because)
  end)

  it("refuses a subject or pattern that is neither a string nor a number", function()
    eligible_stands("local _ = string.find({}, 'a')", "error",
                    "raised bad.lua:1: bad argument #1 to 'find' %(string expected, got table%)")
    eligible_stands("local _ = ('a'):gsub(ctx, 'b')", "error",
                    "raised bad.lua:1: bad argument #2 to 'gsub' %(string expected, got table%)")
  end)

  it("multiplies the bound by the pattern's length", function()
    refused_at_once("local _ = ('a'):rep(100000):find(('.'):rep(50000) .. 'b')",
                    "string.find: a pattern of 50001 bytes with 0 repetitions on 100000 bytes")
  end)

  it("bounds a plain find by subject times pattern", function()
    -- ("a"):rep(3e6):find(("a"):rep(1.5e6) .. "b", 1, true) is refused the
    -- same way on Lua 5.4; on LuaJIT its strings spend the memory budget
    -- first, so the spec uses a size both VMs reach the guard with.
    refused_at_once("local _ = ('a'):rep(1e6):find(('a'):rep(2e5) .. 'b', 1, true)",
                    "string.find: a pattern of 200001 bytes with 0 repetitions on 1000000 bytes")
  end)

  it("answers string.rep of an empty string at once, the count given as text too", function()
    local W, P = bound("return { eligible = function(ctx)\n"
                       .. "  return { build = 6855 + #string.rep('', '1000000000000000') + #(''):rep('1e15', '') } end }")
    local t0 = os.clock()
    assert.are.equal(6855, W:eligible(fixtures.faq_license(), ON).number)
    assert.is_true(os.clock() - t0 < 1)
    assert.same({}, P.failures)
  end)
end)

describe("the same answer on both VMs", function()
  local function answer(body)
    local P = assert(policy.compile("return { price = function(ctx) " .. body .. " end }", "vm.lua"))
    P.lines = {}
    P.log = function(line) P.lines[#P.lines + 1] = line end
    local a = P:decide("price", { day = ON, license = { key = "ST-VM" }, price = 33000, item = "upgrade",
                                  currency = "USD" })
    return a, P
  end

  it("tostring names a reference type without an address", function()
    local a = answer("return { price = 1, because = tostring({}) .. ' ' .. tostring(ctx) .. ' ' .. "
                     .. "tostring(tostring) .. ' ' .. tostring(nil) .. ' ' .. tostring(true) }")
    assert.are.equal("table table function nil true", a.because)
  end)

  it("tostring writes numbers alike: integral below 2^53 as %d, others as %.14g", function()
    local a = answer("return { price = 1, because = tostring(3.0) .. ' ' .. tostring(-0.0) .. ' ' .. "
                     .. "tostring(2^53) .. ' ' .. tostring(1/3) .. ' ' .. tostring(1e300) .. ' ' .. "
                     .. "tostring(0/0) .. ' ' .. tostring(-1/0) .. ' ' .. tostring(2^53 - 1) }")
    assert.are.equal("3 0 9.007199254741e+15 0.33333333333333 1e+300 nan -inf 9007199254740991", a.because)
  end)

  it("string.format refuses %p and reference arguments", function()
    for _, body in ipairs({ "string.format('%p', {})", "string.format('%s', {})", "string.format('%d %s', 1, ctx)",
                            "('%s'):format(tostring)" }) do
      local a, P = answer("return { price = 1, because = " .. body .. " }")
      assert.is_nil(a)
      assert.are.equal(1, P.failures["price error"])
      assert.matches("raised vm.lua:1: bad argument #%d to 'format' %((.*) in a policy%)", P.lines[1])
    end
  end)

  it("string.format's integer conversions refuse a fraction", function()
    for _, conv in ipairs({ "d", "i", "c", "o", "u", "x", "X" }) do
      local a, P = answer(("return { price = 1, because = string.format('%%%s', 65.5) }"):format(conv))
      assert.is_nil(a)
      assert.matches("a whole number below 2%^53 expected for %%" .. conv, P.lines[1])
    end
    local a = answer("return { price = 1, because = string.format('%d %i %c %o %u %x %X', 3.0, '4', 65, 8, 9, 255, "
                     .. "255) }")
    assert.are.equal("3 4 A 10 9 ff FF", a.because)
  end)

  it("string.format's %s writes a number as tostring does", function()
    local a = answer("return { price = 1, because = string.format('%s|%s|%5s|%s', 3.0, 2^53, 1.5, true) }")
    assert.are.equal("3|9.007199254741e+15|  1.5|true", a.because)
  end)

  it("positions and counts with a fraction are refused (Lua 5.4 raises, LuaJIT truncates)", function()
    for _, case in ipairs({
      { "string.char(65.5)", "#1 to 'char'" }, { "string.byte('abc', 1.5)", "#2 to 'byte'" },
      { "('abc'):sub(1.5)", "#2 to 'sub'" }, { "('a'):rep(2.5)", "#2 to 'rep'" },
      { "('abc'):find('b', 1.5)", "#3 to 'find'" }, { "('abc'):match('b', '1.5')", "#3 to 'match'" },
      { "('aaa'):gsub('a', 'b', 1.5)", "#4 to 'gsub'" }, { "table.concat({ 1, 2 }, ',', 1.5)", "#3 to 'concat'" },
      { "unpack({ 1, 2 }, 1.5)", "#2 to 'unpack'" }, { "select(1.5, 'a', 'b')", "#1 to 'select'" },
      { "table.insert({ 1 }, 1.5, 2)", "#2 to 'insert'" }, { "table.remove({ 1, 2 }, 1.5)", "#2 to 'remove'" },
      { "('abc'):sub(1, 2^60)", "#3 to 'sub'" },
    }) do
      local a, P = answer("return { price = 1, because = " .. case[1] .. " }")
      assert.is_nil(a)
      assert.matches("raised vm.lua:1: bad argument " .. case[2] .. " %(number has no integer representation%)",
                     P.lines[1])
    end
    local a = answer("return { price = 1, because = string.char(72, 105.0) .. ('hello'):sub(2, 3.0) .. "
                     .. "select(2.0, 'a', 'b') .. ('abc'):byte(2.0) .. unpack({ 'u' }, 1.0) }")
    assert.are.equal("Hielb98u", a.because)
  end)

  it("gmatch takes no init (LuaJIT's ignores it)", function()
    local a, P = answer("for w in ('a b'):gmatch('%a', 2) do end return { price = 1 }")
    assert.is_nil(a)
    assert.matches("bad argument #3 to 'gmatch' %(no init in a policy", P.lines[1])
  end)

  it("gsub's replacement and table.concat's list write numbers as tostring does", function()
    local a = answer("return { price = 1, because = ('abc'):gsub('b', 2.0) .. ('abc'):gsub('%w', { a = 1.0 }) .. "
                     .. "('abc'):gsub('c', function() return 3.0 end) .. table.concat({ 1.0, 'x', 2^53 }, ',') .. "
                     .. "table.concat({ 1.0, 2.0, 3.0 }, '-', 2, 3) }")
    assert.are.equal("a2c1bcab31,x,9.007199254741e+152-3", a.because)
  end)

  it("a price of -0 is 0", function()
    local a = answer("return { price = -0.0 }")
    assert.are.equal(0, a.price)
    assert.are.equal(math.huge, 1 / a.price)
  end)
end)

describe("a because", function()
  local function because_of(text)
    local P = assert(policy.compile(("return { price = function(ctx) return { price = 1, because = %q } end }")
                                    :format(text), "b.lua"))
    P.lines = {}
    P.log = function(line) P.lines[#P.lines + 1] = line end
    local a = P:decide("price", { day = ON, price = 5, item = "upgrade" })
    return a, P
  end

  it("is UTF-8 text", function()
    assert.are.equal("café, 50 % off", because_of("café, 50 % off").because)
    local a, P = because_of("bad \255 byte")
    assert.is_nil(a)
    assert.same({ ["price answer"] = 1 }, P.failures)
    assert.matches("answered a because that is not valid UTF%-8", P.lines[1])
    assert.is_nil(because_of("overlong \192\175"))
  end)

  it("holds no bidirectional control", function()
    for _, c in ipairs({ "\226\128\170", "\226\128\174", "\226\129\166", "\226\129\169" }) do   -- U+202A/E, 2066/9
      local a, P = because_of("price " .. c .. "cba")
      assert.is_nil(a)
      assert.matches("answered a because that holds a control or bidirectional%-override character", P.lines[1])
    end
  end)
end)

describe("a reason of store:set", function()
  local stores = require "support.stores"

  it("is UTF-8 without control or bidirectional characters, and nothing is written", function()
    local store = stores.new(":memory:")
    local lic = stores.issue(store)
    local before = stores.dump(store)
    for _, case in ipairs({
      { "ticket\n2019-06-01 forged event", "reason holds a control character" },
      { "ticket \27[2J", "reason holds a control character" },
      { "ticket \194\133", "reason holds a control character" },            -- U+0085, C1
      { "bad \255 byte", "reason is not valid UTF-8" },
      { "surrogate \237\160\128", "reason is not valid UTF-8" },
      { "cut \226\128", "reason is not valid UTF-8" },
      { "ticket \226\128\174 4 ", "reason holds a bidirectional control character" },
      { "ticket \226\129\167 4", "reason holds a bidirectional control character" },
    }) do
      assert.same({ nil, case[2], "invalid_request" },
                  { store:set(lic.key, { policy = { grace_days = 3 }, reason = case[1], by = "ann" }) })
    end
    assert.are.equal(before, stores.dump(store))
    assert(store:set(lic.key, { policy = { grace_days = 3 }, reason = "ticket 9 — Müller", by = "ann" }))
    store:close()
  end)
end)

describe("the time backstop", function()
  it("is passed to run_hook, and a call past it is logged and counted as the others", function()
    local P = assert(policy.compile("return { price = function(ctx) return { price = 1 } end }", "t.lua"))
    assert.are.equal(policy.TIME_MS, P.limits.time_ms)
    assert.are.equal(1000, P.limits.time_ms)
    P.version = 3
    P.lines = {}
    P.log = function(line) P.lines[#P.lines + 1] = line end
    local site = P:hook_site("price")
    local answer, reason = site.finish({ license = { key = "ST-T" } }, false, "time", "time limit")
    assert.are.same({ nil, "time" }, { answer, reason })
    assert.same({ ["price time"] = 1 }, P.failures)
    assert.are.equal("policy v3 price hook (license ST-T): ran past its time limit (1000 ms); the built-in "
                     .. "decision stands", P.lines[1])
  end)
end)
