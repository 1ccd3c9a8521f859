-- Bad input of every kind: random garbage in every field of licenses,
-- queries and catalogues always ends in an answer or `nil, message, code`
-- with a code of doc/rules.md, never in a crash or a raised error.
local licensor = require "licensor"
local fixtures = require "support.fixtures"

local cat = fixtures.catalogue()

-- Deterministic generator so a failure can be replayed.
local seed = 12345
local function random(n)
  seed = seed * 48271 % 2147483647
  return seed % n + 1
end

local cyclic = {}
cyclic.self = cyclic
local GARBAGE = {
  false, true, 0, -1, 1.5, 0 / 0, math.huge, -math.huge, 2 ^ 63, "", "x", "2018-02-30", "2019-01-01",
  "2019-1-1", "unlimited", "perpetual", "lease", "trial", "smartertrack", "enterprise", "eas",
  string.rep("9", 5000), "2019-01-01\0", {}, cyclic, { eas = "2019-01-01" }, { eas = 5 }, print,
  coroutine.create(function() end), io.stdout,
}
local FIELDS = { "product", "kind", "edition", "level", "start", "ms_expires", "ms_start", "disabled",
                 "lease_ended", "trial_days", "version_lock", "failover", "addons", "key" }

local function garbage_license()
  local lic = fixtures.faq_license()
  for _ = 1, random(4) do
    local field = FIELDS[random(#FIELDS)]
    lic[field] = GARBAGE[random(#GARBAGE + 1)]  -- one past the end: nil
  end
  return lic
end

local ELIGIBLE_CODES = { unknown_product = true, invalid_license = true, invalid_date = true,
                         disabled = true, not_started = true, expired = true, no_build = true }

describe("hostile input", function()
  it("eligible answers a build or an eligible code for 5,000 garbage licenses", function()
    local bad = 0
    for _ = 1, 5000 do
      local ok, build, msg, code = pcall(cat.eligible, cat, garbage_license(), GARBAGE[random(#GARBAGE)])
      if not ok or not (type(build) == "table" or (build == nil and type(msg) == "string" and ELIGIBLE_CODES[code])) then
        bad = bad + 1
      end
    end
    assert.are.equal(0, bad)
  end)

  it("every query answers garbage with a value or a code, never an error", function()
    local failures = {}
    local queries = {
      function(lic, on) return cat:status(lic, on) end,
      function(lic, on) return cat:can_install(lic, 6911, on) end,
      function(lic, on) return cat:addon_status(lic, "eas", on, 6911) end,
      function(lic, on) return cat:quote_upgrade(lic, { level = 10 }, on) end,
      function(lic) return cat:can_rollback(lic, 6947, 6911) end,
      function(lic, on) return cat:migration(lic, { { server = "a", first_seen = "2019-01-01" } }, on) end,
      function(lic, on) return licensor.renew(lic, on) end,
    }
    for i = 1, 3000 do
      local query = queries[i % #queries + 1]
      local ok, value, msg, code = pcall(query, garbage_license(), GARBAGE[random(#GARBAGE)])
      local answered = ok and (value ~= nil and value ~= false or (type(msg) == "string" and type(code) == "string"))
      if not answered then failures[#failures + 1] = tostring(value) end
    end
    assert.are.same({}, failures)
  end)

  it("catalogue answers random garbage with a catalogue or invalid_catalogue", function()
    local bad = 0
    for _ = 1, 2000 do
      local t = fixtures.catalogue_table()
      local product = t.products[random(2)]
      local targets = { t, t.policy, product, product.builds[random(#product.builds)], product.prices or product }
      local target = targets[random(#targets)]
      local keys = { "products", "policy", "id", "editions", "addons", "builds", "prices", "number",
                     "version", "major", "released", "no_rollback", "ms_months", "trial_days", 13, 1 }
      target[keys[random(#keys)]] = GARBAGE[random(#GARBAGE + 1)]
      local ok, result, msg, code = pcall(licensor.catalogue, t)
      if not ok or not (type(result) == "userdata" or (code == "invalid_catalogue" and type(msg) == "string")) then
        bad = bad + 1
      end
    end
    assert.are.equal(0, bad)
  end)

  it("an error raised inside a catalogue table's metamethod does not leak or crash", function()
    local t = fixtures.catalogue_table()
    t.products[1] = setmetatable({}, { __index = function() error("boom") end })
    local ok, err = pcall(licensor.catalogue, t)
    assert.is_false(ok)
    assert.matches("boom", err)
    collectgarbage()
    assert.is_userdata(fixtures.catalogue())
  end)
end)
