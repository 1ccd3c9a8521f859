-- core.run_hook (csrc/l_hook.c): a policy hook runs in the calling state
-- behind an instruction budget, a memory budget and a call depth limit,
-- and whatever it does -- loop, allocate, recurse, yield, raise odd error
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
    assert.are.same({ false, "memory" }, outcome(run(growing, nil, { instructions = 1e9 })))
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

  it("counts the call's net growth: what it frees it may allocate again", function()
    local function churn()
      for _ = 1, 200 do
        local s = ("y"):rep(100000)   -- 100 kB, garbage at once
        if #s ~= 100000 then return false end
      end
      return true
    end
    assert.are.same({ true, true }, { run(churn, nil, { memory = 4 * 1024 * 1024, instructions = 1e8 }) })
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
      assert.are.equal("memory", select(2, run(growing, nil, { instructions = 1e9 })))
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
      { string_index = "string" },
    }) do
      assert.has_error(function() core.run_hook(print, nil, limits) end)
    end
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
  end)

  it("reads its limits once: changing the table later changes nothing", function()
    local limits = { instructions = 10000 }
    local run_it = core.hook_runner(limits)
    limits.instructions = 1e9
    if jit then jit.off(forever, true) end
    assert.same({ false, "instructions" }, outcome(run_it(forever)))
  end)

  it("refuses bad limits as run_hook does, naming its own argument", function()
    for _, limits in ipairs({ 5, { instructions = 0 }, { memory = 2 ^ 40 }, { string_index = "string" } }) do
      assert.has_error(function() core.hook_runner(limits) end)
    end
    local ok, message = pcall(core.hook_runner, { instructions = 0 })
    assert.is_false(ok)
    assert.matches("bad argument #1", message)
    assert.has_error(function() core.hook_runner()("print") end)
  end)
end)
