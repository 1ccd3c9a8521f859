-- bulk.lua -- `make bench`: importing 100,000 existing customers from CSV
-- through store:import_licenses (one transaction, every row checked).
-- The target is under 10 s.
local licensor = require "licensor"
local fixtures = require "support.fixtures"
local clock = require("licensor.core").monotonic_us

local lines = { "key,owner,product,edition,level,kind,start,ms_expires,addons" }
for i = 1, 100000 do
  lines[#lines + 1] = string.format(",customer-%d,smartertrack,enterprise,5,perpetual,2018-%02d-01,2019-%02d-28,eas=2019-%02d-28",
    i, i % 12 + 1, i % 12 + 1, i % 12 + 1)
end
local text = table.concat(lines, "\n") .. "\n"
local path = os.tmpname()
local store = assert(licensor.open(path, { synchronous = "normal" }))
assert(store:import(fixtures.catalogue_table()))
local t0 = clock()
local keys = assert(store:import_licenses(text, "customers.csv"))
print(string.format("%-22s import-licenses: %d rows in %.2f s", jit and jit.version or _VERSION, #keys,
  (clock() - t0) / 1e6))
store:close()
os.remove(path)
os.remove(path .. "-wal")
os.remove(path .. "-shm")
