-- workload.lua -- the benchmark's data: 3 products x 2,000 builds and
-- 10,000 plain-table licenses of every kind with string dates.  Seeded, so
-- every run and both VMs see the same work.
local _M = {}

local floor = math.floor

local licensor = require "licensor"

-- Day numbers since 1970-01-01 to YYYY-MM-DD.
local date_of = licensor.date
_M.date_of = date_of

local FIRST_DAY = 10957   -- 2000-01-01

function _M.catalogue(builds_per_product)
  local products = {}
  for p = 1, 3 do
    local builds = {}
    for i = 1, builds_per_product do
      local number = 1000 + i * 3
      local major = 10 + floor(i / 200)
      builds[i] = { number = number, version = major .. ".0." .. number,
                    released = date_of(FIRST_DAY + i * 3) }
    end
    products[p] = { id = "product" .. p, editions = { "professional", "enterprise" },
                    addons = { "eas" }, builds = builds }
  end
  return { products = products }
end

-- A tiny deterministic generator (Park-Miller), the same on Lua 5.4 and
-- LuaJIT: every product stays below 2^53, so doubles compute it exactly.
local function generator(seed)
  local state = seed
  return function(n)
    state = state * 48271 % 2147483647
    return state % n
  end
end

-- Returns the licenses and, for each, the day it is asked about: the
-- mix an edge gateway sees, mostly perpetual licenses asked about during
-- their life, some leases, and trials asked about around their 30 days.
function _M.licenses(count)
  local rand = generator(42)
  local kinds = { "perpetual", "perpetual", "perpetual", "perpetual", "perpetual",
                  "perpetual", "perpetual", "perpetual", "lease", "trial" }
  local list, days = {}, {}
  for i = 1, count do
    local start = FIRST_DAY + rand(6000)
    local lic = { key = "KEY-" .. i, product = "product" .. (1 + rand(3)),
                  kind = kinds[1 + rand(#kinds)], edition = "professional",
                  level = 5 * (1 + rand(4)), start = date_of(start) }
    if lic.kind == "perpetual" then
      lic.ms_expires = date_of(start + 364 + 365 * rand(4))
      if rand(10) == 0 then lic.version_lock = 10 + rand(10) end
    elseif lic.kind == "lease" and rand(2) == 0 then
      lic.lease_ended = date_of(start + rand(2000))
    end
    if rand(50) == 0 then lic.disabled = date_of(start + rand(3000)) end
    list[i] = lic
    days[i] = date_of(start + (lic.kind == "trial" and rand(45) or rand(2500)))
  end
  return list, days
end

return _M
