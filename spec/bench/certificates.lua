-- certificates.lua -- `make bench`: certificates issued per second through
-- the store (synchronous="normal"), each one logged in the license's
-- events.  The target is 5,000/s.  Then activations of a new server on
-- licenses whose installation holds a certificate, next to licenses whose
-- installation holds none, in the same run (target: at least 0.8x).
-- Writes the last certificate and its public key to the paths given, for
-- the C verify bench.
local licensor = require "licensor"
local certificate = require "licensor.certificate"
local fixtures = require "support.fixtures"

local cert_out, pub_out = arg[1], arg[2]
local path = os.tmpname()
local store = assert(licensor.open(path, { synchronous = "normal" }))
assert(store:import(fixtures.catalogue_table()))
local key = os.tmpname()
os.remove(key)
assert(certificate.new_key_files(key))
assert(store:use_signing_key(key))
local today = licensor.today()
local fp = "v1:mid=1111111111111111,uuid=2222222222222222,mac=3333333333333333,host=4444444444444444"
local fp2 = "v1:mid=5555555555555555,uuid=6666666666666666,mac=7777777777777777,host=8888888888888888"
local keys = {}
for i = 1, 200 do
  local lic = assert(store:issue{ product = "smartertrack", edition = "enterprise", level = 5, start = today })
  assert(store:activate(lic.key, "s" .. i, 6911, today, fp).ok)
  keys[i] = lic.key
end
local n, text = 20000, nil
local clock = require("licensor.core").monotonic_us
local best = 0
for _ = 1, 3 do
  local t0 = clock()
  for i = 1, n do
    local k = (i % #keys) + 1
    text = assert(store:certificate(keys[k], "s" .. k, today))
  end
  local rate = n / ((clock() - t0) / 1e6)
  if rate > best then best = rate end
end
print(string.format("%-22s certificates issued through the store (synchronous=normal)  %8.0f/s",
  jit and jit.version or _VERSION, best))
-- Activations with and without a certificate holding the first slot: each
-- pass activates a second server "t" on every license of a set (admitted,
-- migrating), then deactivates it outside the clock.
local function license_set(count, certified)
  local set = {}
  for i = 1, count do
    local lic = assert(store:issue{ product = "smartertrack", edition = "enterprise", level = 5, start = today })
    assert(store:activate(lic.key, "s", 6911, today, fp).ok)
    if certified then assert(store:certificate(lic.key, "s", today)) end
    set[i] = lic.key
  end
  return set
end
local sets = { with = license_set(3000, true), without = license_set(3000, false) }
local rates = { with = 0, without = 0 }
for pass = 1, 4 do
  for _, which in ipairs(pass % 2 == 1 and { "with", "without" } or { "without", "with" }) do
    local set = sets[which]
    local t0 = clock()
    for _, k in ipairs(set) do assert(store:activate(k, "t", 6911, today, fp2).ok) end
    local rate = #set / ((clock() - t0) / 1e6)
    if rate > rates[which] then rates[which] = rate end
    for _, k in ipairs(set) do assert(store:deactivate(k, "t", today).ok) end
  end
end
print(string.format("%-22s activations, every installation holding a certificate      %8.0f/s",
  jit and jit.version or _VERSION, rates.with))
print(string.format("%-22s activations, no certificate                              %8.0f/s  (%.2fx)",
  jit and jit.version or _VERSION, rates.without, rates.with / rates.without))
if cert_out then
  local f = assert(io.open(cert_out, "w"))
  f:write(text)
  f:close()
  os.execute("cp " .. key .. ".pub " .. pub_out)
end
store:close()
os.remove(path)
os.remove(key)
os.remove(key .. ".pub")
