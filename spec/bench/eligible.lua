-- eligible.lua -- `make bench`: cat:eligible against the plain-Lua
-- implementation of the same rule, in the same process, on the same data.
-- Prints decisions per second for both and their ratio.
local licensor = require "licensor"
local plain = require "bench.plain_eligible"
local workload = require "bench.workload"

local clock = os.clock
local CALLS = tonumber(os.getenv("BENCH_CALLS")) or 1000000

local cat_table = workload.catalogue(2000)
local cat = assert(licensor.catalogue(cat_table))
local plain_cat = plain.compile(cat_table)
local licenses, days = workload.licenses(10000)

-- Both implementations must agree before either is timed.
for i = 1, 20000 do
  local lic, on = licenses[(i % #licenses) + 1], days[(i % #days) + 1]
  local a, _, code_a = cat:eligible(lic, on)
  local b, _, code_b = plain.eligible(plain_cat, lic, on)
  assert((a and a.number) == (b and b.number) and code_a == code_b,
         "implementations disagree on license " .. lic.key .. " on " .. on)
end

local function run(eligible, subject)
  local n, found = #licenses, 0
  local t0 = clock()
  for i = 1, CALLS do
    local k = (i % n) + 1
    if eligible(subject, licenses[k], days[k]) then found = found + 1 end
  end
  return clock() - t0, found
end

local vm = jit and jit.version or _VERSION
-- Warm up both (LuaJIT traces), then take the best of three.
run(plain.eligible, plain_cat)
run(cat.eligible, cat)
local best_c, best_lua = math.huge, math.huge
for _ = 1, 3 do
  best_lua = math.min(best_lua, (run(plain.eligible, plain_cat)))
  best_c = math.min(best_c, (run(cat.eligible, cat)))
end
print(string.format("%-22s cat:eligible %10.0f decisions/s   plain Lua %10.0f decisions/s   ratio %.2fx",
  vm, CALLS / best_c, CALLS / best_lua, best_lua / best_c))
