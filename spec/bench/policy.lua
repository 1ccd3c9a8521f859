-- policy.lua -- `make bench`, layered policies: what the policy machinery
-- costs, as ratios measured in one run, each line with its target.
--
-- (a) No policy file: cat:eligible and store activations against the same
--     calls on licensor as it was before policies existed (commit
--     BASELINE, extracted with git archive and built in
--     build/bench-baseline/), so the comparison is with no policy code at
--     all, C included.  Each side runs in a child process of this one on
--     the same VM, the two taking turns six times, each child timing many
--     short passes: the best pass of each side counts, the one the rest of
--     the machine disturbed least.
-- (b) A trivial eligible hook (it answers nil: the built-in build stands)
--     against the hook-free cat:eligible, in this process.
-- (c) Activations with a trivial admission hook against none.
--
-- Only ratios are printed: absolute speed is spec/bench/eligible.lua's
-- and spec/bench/store.lua's.  `spec/bench/policy.lua measure` is the
-- child's part: it prints the rates of the code on its LUA_PATH.
local licensor = require "licensor"
local workload = require "bench.workload"
local socket = require "socket"

local now = socket.gettime
local format = string.format
local CALLS = tonumber(os.getenv("BENCH_CALLS")) or 1000000
local ACTIVATIONS = tonumber(os.getenv("BENCH_POLICY_ACTIVATIONS")) or 4000
local CHILD_ROUNDS = 6       -- (a): each side's children, taking turns
local BASELINE = "8af4690"   -- the last commit before layered policies
local DAY = "2026-01-10"
local BUILD = 9483           -- a SmarterMail build released before DAY
local VM = jit and "luajit" or "lua5.4"
local VM_NAME = jit and jit.version or _VERSION

-- cat:eligible over the workload's licenses: calls per second, the best
-- of `passes` passes of `calls` (after one to warm up: LuaJIT's traces).
local function eligible_rate(cat, licenses, days, calls, passes)
  local eligible, n = cat.eligible, #licenses
  local function run()
    local t0 = now()
    for i = 1, calls do
      local k = (i % n) + 1
      eligible(cat, licenses[k], days[k])
    end
    return now() - t0
  end
  run()
  local best = math.huge
  for _ = 1, passes do best = math.min(best, run()) end
  return calls / best
end

-- A store in memory with the bundled catalogue, the policy `source` (nil:
-- none) and `n` SmarterMail keys to activate.
local function activation_store(source, n)
  local store = assert(licensor.open(":memory:"))
  assert(store:import(licensor.catalogue_path("smartertools")))
  if source then assert(store:import_policy(source, "bench.lua", "2025-01-01")) end
  local keys = {}
  for i = 1, n do
    keys[i] = assert(store:issue{ product = "smartermail", edition = "enterprise", level = 250,
                                  start = "2025-06-01" }).key
  end
  return store, keys
end

-- Activations of a new server on each key (R9/R10's admission each time):
-- activations per second.
local function activation_rate(store, keys, from, to)
  local t0 = now()
  for i = from, to do
    local v = store:activate(keys[i], "server-" .. i, BUILD, DAY)
    if not v.ok then error("refused: " .. tostring(v.code)) end
  end
  return (to - from + 1) / (now() - t0)
end

-- The child's part: the best pass of each.
local PASSES = 6
local function measure()
  local cat = assert(licensor.catalogue(workload.catalogue(2000)))
  local licenses, days = workload.licenses(10000)
  local e = eligible_rate(cat, licenses, days, math.floor(CALLS / 5), PASSES)
  local per = math.floor(ACTIVATIONS / 5)
  local store, keys = activation_store(nil, (PASSES + 1) * per)
  activation_rate(store, keys, 1, per)   -- warm up
  local act = 0
  for pass = 1, PASSES do act = math.max(act, activation_rate(store, keys, pass * per + 1, (pass + 1) * per)) end
  store:close()
  print(format("eligible %.3f", e))
  print(format("activate %.3f", act))
end

if arg and arg[1] == "measure" then
  measure()
  return
end

local function sh(command)
  local r = os.execute(command)
  return r == true or r == 0
end

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The checkout: where this file is (spec/bench/policy.lua), else here.
local ROOT = (arg and arg[0] or ""):match("^(.*)/spec/bench/policy%.lua$") or "."
if ROOT == "" then ROOT = "." end
local BASE_DIR = ROOT .. "/build/bench-baseline"

-- The baseline tree, extracted and built for this VM once; nil and why
-- when it cannot be (no git history in this checkout).
local function baseline()
  if not sh("test -f " .. quote(BASE_DIR .. "/Makefile")) then
    if not sh("git -C " .. quote(ROOT) .. " cat-file -e " .. BASELINE .. "^{commit} 2>/dev/null") then
      return nil, "commit " .. BASELINE .. " is not in this checkout's history"
    end
    if not sh("rm -rf " .. quote(BASE_DIR) .. " && mkdir -p " .. quote(BASE_DIR) .. " && git -C " ..
              quote(ROOT) .. " archive " .. BASELINE .. " | tar -x -C " .. quote(BASE_DIR)) then
      return nil, "git archive " .. BASELINE .. " failed"
    end
  end
  if not sh("make -s -C " .. quote(BASE_DIR) .. " all LUA=" .. VM .. " >/dev/null 2>&1") then
    return nil, "the baseline does not build"
  end
  return BASE_DIR
end

-- Runs the child's part on the tree at `root`: its rates.
local function child(root)
  local env = format("LUA_PATH=%s LUA_CPATH=%s", quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" ..
                       ROOT .. "/spec/?.lua;;"), quote(root .. "/build/" .. VM .. "/?.so;;"))
  local p = assert(io.popen(env .. " " .. VM .. " " .. quote(ROOT .. "/spec/bench/policy.lua") .. " measure"))
  local out = p:read("*a")
  p:close()
  local e, a = out:match("eligible ([%d.]+)"), out:match("activate ([%d.]+)")
  if not (e and a) then error("the bench's child answered:\n" .. out) end
  return tonumber(e), tonumber(a)
end

-- (a) The two sides take turns, so that a change in the machine's load
-- falls on both; each side's best counts.
local base, why = baseline()
if base then
  local best = { base = { 0, 0 }, now = { 0, 0 } }
  for round = 1, CHILD_ROUNDS do
    local order = round % 2 == 1 and { "base", "now" } or { "now", "base" }
    for _, side in ipairs(order) do
      local e, a = child(side == "base" and base or ROOT)
      best[side][1], best[side][2] = math.max(best[side][1], e), math.max(best[side][2], a)
    end
  end
  print(format("%-22s no policy file: cat:eligible %.2fx, activations %.2fx of licensor before policies " ..
               "(%s; target >= 0.97x)", VM_NAME, best.now[1] / best.base[1], best.now[2] / best.base[2], BASELINE))
else
  print(format("%-22s no policy file: not compared (%s)", VM_NAME, why))
end

-- (b) A trivial eligible hook, bound to the same catalogue.
local policy = require "licensor.policy"
local cat = assert(licensor.catalogue(workload.catalogue(2000)))
local licenses, days = workload.licenses(10000)
local P = assert(policy.compile("return { eligible = function(ctx) return nil end }", "trivial.lua", cat))
local W = P:bind(cat)
for i = 1, 20000 do   -- the hook changes nothing: both answer alike
  local k = (i % #licenses) + 1
  local a, _, ca = cat:eligible(licenses[k], days[k])
  local b, _, cb = W:eligible(licenses[k], days[k])
  assert((a and a.number) == (b and b.number) and ca == cb, "the hooked catalogue disagrees on " .. licenses[k].key)
end
local plain_rate, hooked_rate = 0, 0
for _ = 1, PASSES do   -- taking turns
  plain_rate = math.max(plain_rate, eligible_rate(cat, licenses, days, math.floor(CALLS / 5), 1))
  hooked_rate = math.max(hooked_rate, eligible_rate(W, licenses, days, math.floor(CALLS / 5), 1))
end
print(format("%-22s a trivial eligible hook: %.2fx of the hook-free cat:eligible%s", VM_NAME,
             hooked_rate / plain_rate, jit and "" or " (target >= 0.5x)"))

-- (c) Activations with an admission hook against none, turn by turn.
local ADMISSION = "return { admission = function(ctx) return nil end }"
local stores, per = {}, math.floor(ACTIVATIONS / 5)
for _, source in ipairs({ false, ADMISSION }) do
  local store, keys = activation_store(source or nil, (PASSES + 1) * per)
  activation_rate(store, keys, 1, per)   -- warm up
  stores[#stores + 1] = { store = store, keys = keys, best = 0 }
end
for pass = 1, PASSES do
  local from, to = pass * per + 1, (pass + 1) * per
  for _, s in ipairs(stores) do s.best = math.max(s.best, activation_rate(s.store, s.keys, from, to)) end
end
for _, s in ipairs(stores) do s.store:close() end
print(format("%-22s an admission hook: activations %.2fx of those without (target >= 0.9x)", VM_NAME,
             stores[2].best / stores[1].best))
