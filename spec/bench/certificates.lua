-- certificates.lua -- `make bench`: certificates issued per second through
-- the store (synchronous="normal"), each one logged in the license's
-- events.  The target is 5,000/s.  Writes the last certificate and its
-- public key to the paths given, for the C verify bench.
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
