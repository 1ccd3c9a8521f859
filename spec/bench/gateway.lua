-- gateway.lua -- `make bench`, the gateway part, with wrk against a real
-- nginx (2 workers) on loopback:
--   * eligibility lookups per second against /healthz in the same nginx and
--     the same run (the ratio), with p99 latencies;
--   * activations per second with synchronous="full", and the p99 time a
--     worker is held by the write (X-Licensor-Write-Us, measured inside).
local licensor = require "licensor"
local gateway = require "support.gateway"

local format = string.format
local wrk = require "bench.wrkrun"
local KEYS = tonumber(os.getenv("BENCH_GATEWAY_KEYS")) or 20000


local path = os.tmpname()
os.remove(path)
local store = assert(licensor.open(path, { synchronous = "normal" }))
store:import(licensor.catalogue_path("smartertools"))
local keys_file = os.tmpname()
local f = assert(io.open(keys_file, "w"))
for _ = 1, KEYS do
  local lic = assert(store:issue{ product = "smartermail", edition = "enterprise", level = 250,
                                  start = "2025-06-01", failover = true })
  f:write(lic.key, "\n")
end
f:close()
store:close()

local server = gateway.start{ db = path, today = "2026-01-10", workers = 2, synchronous = "full",
                              expose_timing = true }
local health_rps, health_p99 = wrk(server.url .. "/healthz")
local eligible_rps, eligible_p99 = wrk(server.url, "spec/bench/wrk/eligible.lua", keys_file)
print(format("gateway  /healthz %8.0f req/s (p99 %.2f ms)   eligible %8.0f req/s (p99 %.2f ms)   ratio %.2f",
  health_rps, health_p99, eligible_rps, eligible_p99, eligible_rps / health_rps))
local act_rps, act_p99, out = wrk(server.url, "spec/bench/wrk/activate.lua", keys_file, 16)
local writes, refused, w50, w99 = out:match("WRITES (%d+) REFUSED (%d+) P50_US (%d+) P99_US (%d+)")
print(format("gateway  activations, synchronous=full %8.0f/s (p99 %.2f ms, %s refused)", act_rps, act_p99,
  tostring(refused)))
print(format("gateway  worker held by a write: p50 %s us, p99 %s us (%s writes sampled)", tostring(w50),
  tostring(w99), tostring(writes)))
server:stop()
for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
os.remove(keys_file)
