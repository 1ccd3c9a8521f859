-- cat:eligible agrees with an independent pure-Lua model of R1-R7 (the one
-- `make bench` races against) on random licenses, and under LuaJIT the FFI
-- path agrees with the classic binding on good and malformed input alike.
local licensor = require "licensor"
local plain = require "bench.plain_eligible"
local workload = require "bench.workload"

local catalogue_table = workload.catalogue(300)
local cat = assert(licensor.catalogue(catalogue_table))
local model = plain.compile(catalogue_table)
local licenses, days = workload.licenses(5000)

local function answer(build, msg, code)
  return build and build.number or code, msg
end

describe("eligible against an independent model", function()
  it("agrees on 5,000 random licenses of every kind", function()
    local disagreements = 0
    for i, lic in ipairs(licenses) do
      if answer(cat:eligible(lic, days[i])) ~= answer(plain.eligible(model, lic, days[i])) then
        disagreements = disagreements + 1
      end
    end
    assert.are.equal(0, disagreements)
  end)
end)

describe("the FFI path", function()
  local fast = require "licensor.ffi"

  -- Malformed variants of a license: every field the fast path reads.
  local variants = {
    {}, { level = 2.5 }, { level = 0 / 0 }, { level = "unlimited" }, { level = "10" }, { level = -1 },
    { kind = "lease" }, { kind = "trial", trial_days = 7 }, { kind = "trial", trial_days = 1.5 },
    { kind = 7 }, { edition = "gold" }, { edition = false }, { product = "nope" }, { product = {} },
    { start = "2018-02-30" }, { start = 5 }, { ms_expires = "" }, { disabled = "2000-01-01" },
    { version_lock = 11 }, { version_lock = "11" }, { version_lock = 0 }, { kind = "lease", lease_ended = 7 },
  }

  it("is on under LuaJIT and off elsewhere", function()
    assert.are.equal(jit ~= nil, licensor.ffi)
    assert.are.equal(licensor.ffi, cat.eligible ~= fast.classic_eligible)
  end)

  it("answers exactly as the classic binding on good and malformed licenses", function()
    local checked, mismatches = 0, 0
    for i = 1, 500 do
      for _, variant in ipairs(variants) do
        local lic = {}
        for k, value in pairs(licenses[i]) do lic[k] = value end
        for k, value in pairs(variant) do lic[k] = value end
        for _, on in ipairs({ days[i], "2018-02-30", 17 }) do
          local a1, m1, c1 = cat:eligible(lic, on)
          local a2, m2, c2 = fast.classic_eligible(cat, lic, on)
          if a1 ~= a2 or m1 ~= m2 or c1 ~= c2 then mismatches = mismatches + 1 end
          checked = checked + 1
        end
      end
    end
    assert.are.equal(0, mismatches)
    assert.are.equal(500 * #variants * 3, checked)
  end)

  it("falls back to the binding for a closed catalogue (which raises)", function()
    local closable = assert(licensor.catalogue(catalogue_table))
    local open_a, _, open_code = closable:eligible(licenses[1], days[1])
    local same_a, _, same_code = cat:eligible(licenses[1], days[1])
    assert.are.same({ same_a, same_code }, { open_a, open_code })
    closable:close()
    assert.has_error(function() closable:eligible(licenses[1], days[1]) end)
  end)
end)
