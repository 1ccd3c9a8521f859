-- core.run_hook (csrc/l_hook.c): a policy hook runs in the calling state
-- behind an instruction budget, a memory budget, a time limit and a call
-- depth limit, and whatever it does -- loop, allocate, call slow C
-- functions in a loop, recurse, yield, raise odd error
-- objects -- the caller gets `false, reason, message` and a state exactly
-- as it was: the same debug hook, the same allocator, the same string
-- metatable.
local core = require "licensor.core"

local jit = rawget(_G, "jit")
local unpack = table.unpack or rawget(_G, "unpack")

-- Hooks run interpreted: LuaJIT's compiled code calls no count hook, so
-- callers switch the JIT off for a hook's function and what it defines.
local function run(fn, arg, limits)
  if jit and debug.getinfo(fn, "S").what == "Lua" then jit.off(fn, true) end
  return core.run_hook(fn, arg, limits)
end

-- ok and reason, the message left out.
local function outcome(ok, reason)
  return { ok, reason }
end

local function forever()
  local n = 0
  while true do n = n + 1 end
end

local function doubling()
  local s = "x"
  for _ = 1, 64 do s = s .. s end
  return #s
end

local function growing()
  local t = {}
  for i = 1, 1e9 do t[i] = { i } end
  return #t
end

local function string_index()
  return getmetatable("").__index
end

-- Few instructions, much work in C: a plain search through 4 MB that
-- finds nothing (no allocation: the memory budget counts every byte
-- allocated), and moving 200,000 slots at each insert and remove at the
-- front.  Within the instruction budget each would run for
-- minutes; the time limit ends them.
local SLOW_LIMITS = { time_ms = 200, instructions = 1e9, memory = 64 * 1024 * 1024 }

local function upper_loop()
  local s = ("x"):rep(4e6)
  for _ = 1, 1e6 do
    if s:find("y", 1, true) then return end
  end
end

local function insert_loop()
  local t
  if jit then   -- LuaJIT's string.byte returns at most a stack's worth
    t = {}
    for i = 1, 200000 do t[i] = 120 end
  else
    t = { ("x"):rep(200000):byte(1, -1) }
  end
  for _ = 1, 1e5 do table.insert(t, 1, 0) table.remove(t, 1) end
end

-- ok, reason, message and the CPU seconds the call took.
local function timed(fn, arg, limits)
  local start = os.clock()
  local ok, reason, message = run(fn, arg, limits)
  return ok, reason, message, os.clock() - start
end

describe("run_hook answers", function()
  it("true and the function's first result, with its argument passed in", function()
    assert.are.same({ true, 42 }, { run(function(x) return x * 2, "second" end, 21) })
    assert.are.same({ true, nil }, { run(function() end) })
    local t = {}
    assert.are.equal(t, select(2, run(function(x) return x end, t)))
    assert.are.equal(2, select("#", run(function() return 1, 2, 3 end)))
  end)

  it("false, 'error' and a string error's message", function()
    local ok, reason, message = run(function() error("no such build") end)
    assert.are.same({ false, "error" }, { ok, reason })
    assert.matches("no such build$", message)
    assert.are.same({ false, "error", "plain" }, { run(function() error("plain", 0) end) })
  end)

  it("a long or multi-line message as one line of at most 200 bytes, in whole characters", function()
    local _, _, message = run(function() error(("é"):rep(300) .. "\nsecond line", 0) end)
    assert.is_true(#message <= 200)
    assert.are.equal(("é"):rep(100), message)
    _, _, message = run(function() error("one\ntwo\r\tthree", 0) end)
    assert.are.equal("one two  three", message)
  end)

  it("an error object by its type alone: its __tostring (here an endless loop) never runs", function()
    local called = false
    local mt = { __tostring = function() called = true while true do end end, __name = "x" }
    local ok, reason, message = run(function() error(setmetatable({}, mt)) end)
    assert.are.same({ false, "error", "error object is a TABLE" }, { ok, reason, message })
    assert.is_false(called)
    assert.are.equal("error object is a NIL", select(3, run(function() error() end)))
    assert.are.equal("error object is a NUMBER", select(3, run(function() error(7, 0) end)))
    assert.are.equal("error object is a BOOLEAN", select(3, run(function() error(false) end)))
  end)

  it("'error' for a yield, inside a coroutine or not, and the coroutine lives on", function()
    assert.are.same({ false, "error" }, outcome(run(coroutine.yield, 1)))
    local co = coroutine.wrap(function()
      local ok, reason = core.run_hook(coroutine.yield, 1)
      coroutine.yield(ok, reason)
      return "after"
    end)
    assert.are.same({ false, "error" }, { co() })
    assert.are.equal("after", co())
  end)
end)

describe("the instruction budget", function()
  it("stops an endless loop", function()
    assert.are.same({ false, "instructions", "instruction budget of 1000000 exhausted" }, { run(forever) })
    assert.are.same({ false, "instructions", "instruction budget of 50 exhausted" },
      { run(forever, nil, { instructions = 50 }) })
  end)

  it("is a budget: what fits runs to the end", function()
    local function sum(n) local s = 0 for i = 1, n do s = s + i end return s end
    assert.are.same({ true, 5050 }, { run(sum, 100, { instructions = 10000 }) })
    assert.are.equal("instructions", select(2, run(sum, 100000, { instructions = 10000 })))
  end)

  it("stays spent when the budget's error is caught: the reason is still 'instructions'", function()
    local catch = pcall
    local ok, reason = run(function()
      catch(forever)
      catch(forever)
      return "escaped"
    end)
    assert.are.same({ false, "instructions" }, { ok, reason })
  end)

  it("sets the debug hook that was set before back, after success, error and budget", function()
    local saved = { debug.gethook() }
    local calls = 0
    local function mine() calls = calls + 1 end
    debug.sethook(mine, "", 1000000)
    local before = { debug.gethook() }
    run(function() return 1 end)
    assert.are.same(before, { debug.gethook() })
    run(function() error("x") end)
    assert.are.same(before, { debug.gethook() })
    run(forever)
    assert.are.same(before, { debug.gethook() })
    run(doubling)
    assert.are.same(before, { debug.gethook() })
    debug.sethook(unpack(saved))
    assert.are.same(saved, { debug.gethook() })
  end)

  if jit then
    it("stops a loop the JIT had compiled once the caller switched the JIT off for it", function()
      local function count(n) local s = 0 for i = 1, n do s = s + i % 7 end return s end
      jit.on(count)
      for _ = 1, 20 do count(100000) end   -- hot: compiled
      assert.are.same({ false, "instructions" }, outcome(run(count, 1e12)))
    end)
  end
end)

describe("the memory budget", function()
  it("stops a doubling string and a growing table", function()
    assert.are.same({ false, "memory", "memory budget of 8388608 bytes exhausted" }, { run(doubling) })
    assert.are.same({ false, "memory" }, outcome(run(growing, nil, { instructions = 1e9, time_ms = 60000 })))
    assert.are.same({ false, "memory", "memory budget of 65536 bytes exhausted" },
      { run(doubling, nil, { memory = 65536 }) })
  end)

  it("stops one huge request (string.rep) as 'memory', or as rep's own size check", function()
    local ok, reason = run(function() return ("x"):rep(2 ^ 31 - 1) end)
    assert.is_false(ok)
    assert.is_truthy(reason == "memory" or reason == "error", reason)
    ok, reason = run(function() return ("x"):rep(2 ^ 40) end)
    if jit then
      -- LuaJIT reads the count as a 32-bit integer: 2^40 is 0.
      assert.is_truthy(ok == false or reason == "", reason)
    else
      assert.is_false(ok)
      assert.is_truthy(reason == "memory" or reason == "error", reason)
    end
  end)

  it("counts every byte the call allocates: garbage it dropped gives nothing back", function()
    local function churn(n)
      for i = 1, n do
        local s = ("y"):rep(100000) .. i   -- 100 kB and more, distinct, garbage at once
        if #s < 100000 then return false end
      end
      return true
    end
    -- (time_ms: under ASan the allocations and collections take long.)
    local limits = { memory = 4 * 1024 * 1024, instructions = 1e8, time_ms = 60000 }
    assert.are.same({ true, true }, { run(churn, 10, limits) })          -- 1 MB in all (2 with buffers)
    assert.are.same({ false, "memory" }, outcome(run(churn, 200, limits)))   -- 20 MB in all
    -- The host's garbage freed meanwhile is no credit either: the same
    -- answer after the host dropped 100 MB.
    for i = 1, 1000 do
      local junk = ("z"):rep(100000) .. i
      assert(#junk > 100000)
    end
    assert.are.same({ false, "memory" }, outcome(run(churn, 200, limits)))
  end)

  it("stays spent when the memory error is caught: the reason is still 'memory'", function()
    local catch = pcall
    local ok, reason = run(function()
      catch(doubling)
      return "escaped"
    end)
    assert.are.same({ false, "memory" }, { ok, reason })
    local rep = string.rep
    assert.are.same({ false, "memory" }, outcome(run(function()
      catch(rep, "x", 100000000)
      return "escaped"
    end)))
  end)

  it("sets the allocator back: after a failure memory use is as before and big allocations work", function()
    collectgarbage()
    collectgarbage()
    local before = collectgarbage("count")
    for _ = 1, 5 do
      assert.are.equal("memory", select(2, run(doubling)))
      assert.are.equal("memory", select(2, run(growing, nil, { instructions = 1e9, time_ms = 60000 })))
    end
    -- (LuaJIT's concatenation buffer halves at each collection.)
    for _ = 1, 12 do collectgarbage() end
    assert.is_true(collectgarbage("count") < before + 1024, collectgarbage("count") .. " " .. before)
    local big = ("z"):rep(64 * 1024 * 1024)   -- eight times the budget, outside a hook
    assert.are.equal(64 * 1024 * 1024, #big)
    local t = {}
    for i = 1, 100000 do t[i] = { i } end
    assert.are.equal(100000, #t)
  end)
end)

describe("the time limit", function()
  it("ends a loop of slow string calls as 'time', well before 5 s", function()
    local ok, reason, message, seconds = timed(upper_loop, nil, SLOW_LIMITS)
    assert.are.same({ false, "time", "time limit of 200 ms exhausted" }, { ok, reason, message })
    assert.is_true(seconds < 5, seconds)
  end)

  it("ends a loop of slow table calls as 'time', well before 5 s", function()
    local ok, reason, message, seconds = timed(insert_loop, nil, SLOW_LIMITS)
    assert.are.same({ false, "time", "time limit of 200 ms exhausted" }, { ok, reason, message })
    assert.is_true(seconds < 5, seconds)
  end)

  it("is 1000 ms unless given", function()
    local ok, reason, message = run(upper_loop, nil, { instructions = 1e9, memory = 64 * 1024 * 1024 })
    assert.are.same({ false, "time", "time limit of 1000 ms exhausted" }, { ok, reason, message })
  end)

  it("stays spent when the time error is caught: the reason is still 'time'", function()
    local catch = pcall
    local ok, reason, _, seconds = timed(function()
      catch(insert_loop)
      catch(upper_loop)
      return "escaped"
    end, nil, SLOW_LIMITS)
    assert.are.same({ false, "time" }, { ok, reason })
    assert.is_true(seconds < 5, seconds)
  end)

  it("leaves a fast hook alone, even at 50 ms", function()
    local function sum(n) local s = 0 for i = 1, n do s = s + i end return s end
    for _ = 1, 1000 do
      assert.are.same({ true, 5050 }, { run(sum, 100, { time_ms = 50 }) })
    end
    -- Many ticks, each reading the clock, and the result is the same.
    assert.are.same({ true, 50005000 }, { run(sum, 10000, { time_ms = 60000 }) })
  end)

  it("of a nested call is at most what is left of the outer call's, and its end is the outer's", function()
    local inner = core.run_hook
    -- The inner call asks for a minute; the outer's 200 ms end both.
    local ok, reason, _, seconds = timed(function()
      local catch = pcall
      catch(inner, upper_loop, nil, { time_ms = 60000, instructions = 1e9, memory = 64 * 1024 * 1024 })
      return "escaped"
    end, nil, SLOW_LIMITS)
    assert.are.same({ false, "time" }, { ok, reason })
    assert.is_true(seconds < 5, seconds)
    -- An inner call with a smaller limit of its own ends alone: the outer goes on.
    local ok2, result = run(function()
      local a, why = inner(upper_loop, nil, { time_ms = 50, instructions = 1e9, memory = 64 * 1024 * 1024 })
      return tostring(a) .. " " .. why
    end, nil, { time_ms = 60000, instructions = 1e9, memory = 256 * 1024 * 1024 })
    assert.are.same({ true, "false time" }, { ok2, result })
  end)
end)

describe("deep recursion", function()
  it("of Lua calls ends as 'error' (stack overflow), on both VMs alike", function()
    local ok, reason, message = run(function()
      local function f(n) return 1 + f(n + 1) end
      return f(1)
    end, nil, { instructions = 1e8, memory = 256 * 1024 * 1024 })
    assert.are.same({ false, "error" }, { ok, reason })
    assert.matches("stack overflow", message)
  end)

  it("through C (string.gsub callbacks) ends as 'error'", function()
    local ok, reason, message = run(function()
      local function f(s) return (s:gsub(".", f)) end
      return f("ab")
    end)
    assert.are.same({ false, "error" }, { ok, reason })
    assert.matches("stack overflow", message)
  end)

  it("of a bounded depth is fine", function()
    local ok, n = run(function()
      local function f(k) if k == 0 then return 0 end return 1 + f(k - 1) end
      return f(150)
    end)
    assert.are.same({ true, 150 }, { ok, n })
  end)
end)

describe("limits.string_index", function()
  local safe = { upper = string.upper, len = string.len }

  it("is what string methods reach during the call", function()
    assert.are.same({ true, "AB" }, { run(function(s) return s:upper() end, "ab", { string_index = safe }) })
    local ok, reason = run(function() return ("x"):rep(10) end, nil, { string_index = safe })
    assert.are.same({ false, "error" }, { ok, reason })
  end)

  it("is swapped back after success, error and either budget", function()
    local original = string_index()
    for _, fn in ipairs({ function() return 1 end, function() error("x") end, forever, doubling }) do
      run(fn, nil, { string_index = safe })
      assert.are.equal(original, string_index())
    end
    assert.are.equal("XY", ("xy"):upper())
    assert.are.equal("xxx", ("x"):rep(3))
  end)

  it("is left alone when not given", function()
    assert.are.same({ true, "xx" }, { run(function() return ("x"):rep(2) end) })
  end)
end)

describe("nested run_hook", function()
  it("runs under its own smaller budget, and the outer call goes on", function()
    local inner = core.run_hook
    local ok, result = run(function()
      local a, reason = inner(forever, nil, { instructions = 1000 })
      return tostring(a) .. " " .. reason
    end)
    assert.are.same({ true, "false instructions" }, { ok, result })
  end)

  it("never escapes the outer instruction budget: not with a larger inner budget, not in a loop", function()
    local inner = core.run_hook
    assert.are.same({ false, "instructions" }, outcome(run(function()
      return inner(forever, nil, { instructions = 1e9 })
    end, nil, { instructions = 100000 })))
    assert.are.same({ false, "instructions" }, outcome(run(function()
      while true do inner(function() return 1 end) end
    end, nil, { instructions = 100000 })))
    assert.are.same({ false, "instructions" }, outcome(run(function()
      local catch = pcall
      while true do catch(inner, forever, nil, { instructions = 1e9 }) end
    end, nil, { instructions = 100000 })))
  end)

  it("never escapes the outer memory budget", function()
    local inner = core.run_hook
    assert.are.same({ false, "memory" }, outcome(run(function()
      inner(doubling, nil, { memory = 512 * 1024 * 1024 })
      return "escaped"
    end, nil, { memory = 1024 * 1024 })))
  end)
end)

describe("run_hook refuses bad arguments", function()
  it("a function that is not one, limits that are not a table, and limits out of bounds", function()
    assert.has_error(function() core.run_hook("print") end)
    assert.has_error(function() core.run_hook(print, nil, 5) end)
    for _, limits in ipairs({
      { instructions = 0 }, { instructions = -1 }, { instructions = 1.5 }, { instructions = "10" },
      { instructions = 1e12 }, { memory = 0 }, { memory = 2 ^ 40 }, { memory = 0 / 0 },
      { time_ms = 0 }, { time_ms = -1 }, { time_ms = 1.5 }, { time_ms = "100" }, { time_ms = 60001 },
      { time_ms = 0 / 0 }, { string_index = "string" },
    }) do
      assert.has_error(function() core.run_hook(print, nil, limits) end)
    end
    local ok, message = pcall(core.run_hook, print, nil, { time_ms = 60001 })
    assert.is_false(ok)
    assert.matches("bad argument #3 .*limits.time_ms must be a whole number from 1 to 60000", message)
    assert.are.same({ true, nil }, { core.run_hook(function() end, nil, { time_ms = 1 }) })
    assert.are.same({ true, nil }, { core.run_hook(function() end, nil, { time_ms = 60000 }) })
  end)
end)

describe("core.hook_runner(limits)", function()
  local function prepared(fn, arg, limits)
    if jit then jit.off(fn, true) end
    return core.hook_runner(limits)(fn, arg)
  end

  it("answers as run_hook with the same limits: a result, an error, each budget", function()
    local safe = { len = function() return 42 end }
    assert.same({ true, 42 }, { prepared(function(s) return s:len() end, "abc", { string_index = safe }) })
    assert.are.equal(string_index(), getmetatable("").__index)
    assert.same({ false, "error" }, outcome(prepared(function() error("no") end)))
    assert.same({ false, "instructions" }, outcome(prepared(forever, nil, { instructions = 10000 })))
    assert.same({ false, "memory" }, outcome(prepared(doubling, nil, { memory = 1024 * 1024 })))
    assert.same({ false, "time", "time limit of 200 ms exhausted" },
      { prepared(insert_loop, nil, SLOW_LIMITS) })
  end)

  it("reads its limits once: changing the table later changes nothing", function()
    local limits = { instructions = 10000 }
    local run_it = core.hook_runner(limits)
    limits.instructions = 1e9
    if jit then jit.off(forever, true) end
    assert.same({ false, "instructions" }, outcome(run_it(forever)))
    local slow = { time_ms = 200, instructions = 1e9, memory = 64 * 1024 * 1024 }
    local run_slow = core.hook_runner(slow)
    slow.time_ms = 60000
    if jit then jit.off(upper_loop, true) end
    assert.same({ false, "time", "time limit of 200 ms exhausted" }, { run_slow(upper_loop) })
  end)

  it("refuses bad limits as run_hook does, naming its own argument", function()
    for _, limits in ipairs({ 5, { instructions = 0 }, { memory = 2 ^ 40 }, { time_ms = 0 },
                              { time_ms = 60001 }, { string_index = "string" } }) do
      assert.has_error(function() core.hook_runner(limits) end)
    end
    local ok, message = pcall(core.hook_runner, { instructions = 0 })
    assert.is_false(ok)
    assert.matches("bad argument #1", message)
    assert.has_error(function() core.hook_runner()("print") end)
  end)
end)
