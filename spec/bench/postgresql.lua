-- postgresql.lua -- `make bench`, PostgreSQL next to SQLite in one run,
-- with full durability on both (synchronous="full"; a throwaway cluster
-- with fsync=on and synchronous_commit=on):
--   * activations per second in process (one connection), PostgreSQL / SQLite;
--   * activations per second through one gateway (2 workers, wrk), both;
--   * eligibility through the gateway on PostgreSQL against its /healthz.
local licensor = require "licensor"
local gateway = require "support.gateway"
local postgres = require "support.postgres"
local socket = require "socket"

local format = string.format
local wrk = require "bench.wrkrun"
local KEYS = tonumber(os.getenv("BENCH_PG_KEYS")) or 20000
local IN_PROCESS = tonumber(os.getenv("BENCH_PG_ACTIVATIONS")) or 3000
-- Activations are bound by commits: PostgreSQL commits many at once
-- (group commit) when many are in flight, so each worker gets THREADS
-- connections and wrk CONNECTIONS clients, the same for both backends.
local THREADS = tonumber(os.getenv("BENCH_PG_THREADS")) or 4
local CONNECTIONS = tonumber(os.getenv("BENCH_PG_CONNECTIONS")) or 16


-- A store with the bundled catalogue and KEYS licenses; their keys' file.
local function fill(db)
  local store = assert(licensor.open(db, { synchronous = "full" }))
  assert(store:import(licensor.catalogue_path("smartertools")))
  local keys = {}
  for i = 1, KEYS do
    keys[i] = assert(store:issue{ product = "smartermail", edition = "enterprise", level = 250,
                                  start = "2025-06-01", failover = true }).key
  end
  local keys_file = os.tmpname()
  local f = assert(io.open(keys_file, "w"))
  f:write(table.concat(keys, "\n"), "\n")
  f:close()
  return store, keys, keys_file
end

-- Activations per second, one after the other on one connection.
local function in_process(store, keys)
  local t0 = socket.gettime()
  for i = 1, IN_PROCESS do
    assert(assert(store:activate(keys[i % #keys + 1], "bench-" .. i, 9483, "2026-01-10")).ok)
  end
  return IN_PROCESS / (socket.gettime() - t0)
end

local cluster = assert(postgres.start{ fsync = true })
local ok, err = pcall(function()
  local sqlite_path = os.tmpname()
  os.remove(sqlite_path)
  local results = {}
  for _, backend in ipairs({ { "SQLite", sqlite_path }, { "PostgreSQL", cluster:url() } }) do
    local name, db = backend[1], backend[2]
    local store, keys, keys_file = fill(db)
    local r = { in_process = in_process(store, keys) }
    store:close()
    local server = gateway.start{ db = db, today = "2026-01-10", workers = 2, synchronous = "full",
                                  threads = THREADS }
    r.health = wrk(server.url .. "/healthz")
    r.eligible, r.eligible_p99 = wrk(server.url, "spec/bench/wrk/eligible.lua", keys_file)
    -- Accepted activations only (each key takes two servers; the rest are refused).
    local rps, p99, out = wrk(server.url, "spec/bench/wrk/activate.lua", keys_file, CONNECTIONS)
    local requests = tonumber(out:match("(%d+) requests in"))
    local refused = tonumber(out:match("REFUSED (%d+)")) or 0
    r.activate, r.activate_p99 = rps * (requests - refused) / requests, p99
    server:stop()
    os.remove(keys_file)
    results[name] = r
    print(format("%-10s in process %7.0f activations/s   gateway: activations %7.0f/s (p99 %.1f ms)  " ..
      "eligible %7.0f/s / healthz %7.0f/s = %.2f", name, r.in_process, r.activate, r.activate_p99,
      r.eligible, r.health, r.eligible / r.health))
  end
  local s, p = results.SQLite, results.PostgreSQL
  print(format("PostgreSQL / SQLite: activations in process %.2f, through the gateway %.2f; " ..
    "eligibility on PostgreSQL / its healthz %.2f", p.in_process / s.in_process, p.activate / s.activate,
    p.eligible / p.health))
  for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(sqlite_path .. suffix) end
end)
cluster:stop()
if not ok then error(err, 0) end
