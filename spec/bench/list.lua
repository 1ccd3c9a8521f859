-- list.lua -- `make bench`: listing 20 licenses out of 1,000,000 through
-- store:list, by owner and by M&S expiring soon (indexes of schema 6).
local licensor = require "licensor"
local fixtures = require "support.fixtures"
local clock = require("licensor.core").monotonic_us

local path = os.tmpname()
local store = assert(licensor.open(path, { synchronous = "normal" }))
assert(store:import(fixtures.catalogue_table()))
local db = store.db
local insert = db:prepare([[INSERT INTO licenses (key, product, edition, level, kind, start, ms_expires, owner)
  VALUES (?, 'smartertrack', 'enterprise', 5, 'perpetual', '2020-01-01', ?, ?)]])
db:begin()
for i = 1, 1000000 do
  local expires = string.format("2026-%02d-%02d", i % 12 + 1, i % 28 + 1)
  db:run(insert, string.format("K%07d", i), expires, "customer-" .. (i % 50000))
end
db:commit()
local function time(filter)
  local best = math.huge
  for _ = 1, 5 do
    local t0 = clock()
    local rows = assert(store:list(filter))
    assert(#rows > 0)
    best = math.min(best, clock() - t0)
  end
  return best / 1000
end
print(string.format("%-22s list 20 of 1,000,000 licenses: by owner %.2f ms, M&S expiring within 7 days %.2f ms",
  jit and jit.version or _VERSION, time{ owner = "customer-4242", limit = 20 },
  time{ ms_expiring = 7, on = "2026-06-10", limit = 20 }))
store:close()
os.remove(path)
os.remove(path .. "-wal")
os.remove(path .. "-shm")
