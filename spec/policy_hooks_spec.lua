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
                    "raised bad.lua:1: string.find: a pattern with 4 repetitions on 5000 bytes may backtrack too long")
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
