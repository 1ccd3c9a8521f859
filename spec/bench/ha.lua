-- ha.lua -- `make bench`, PostgreSQL in the high-availability layout of
-- issue 19, each figure a ratio to its reference measured in the same run
-- (a throwaway primary with fsync=on and synchronous_commit=on, one
-- gateway of 2 workers x 4 threads, synchronous="full"):
--   * refused activations per second next to accepted ones, SQLite and
--     PostgreSQL (a refusal rolls back and writes nothing, so it should
--     be the faster one), and again with a synchronous standby, where an
--     accepted activation waits for the standby and a refusal does not;
--   * accepted activations with a synchronous standby next to without;
--   * the gateway's PostgreSQL connections (pg_stat_activity,
--     application_name = 'licensor') at 16, 128 and 512 concurrent clients:
--     at most workers x threads beyond the /healthz probes' (one per
--     worker, there before the load), or the bench fails;
--   * eligibility with one hot standby serving the reads (read_db) next to
--     the primary alone.  Every request reads the database: the keys are
--     spread so that none is asked twice within stale_ms (a pass over them
--     takes seconds, checked), so no worker's memory answers.  Both
--     gateways run with stale_ms 100, not 0: with stale_ms 0 a gateway
--     reads the primary only, by design (a standby's answer cannot be
--     known to be 0 ms old).  Transactions per request on each server
--     (pg_stat_database) show which one answered.
--
-- The read-scaling ratio is not a capacity figure here.  Primary, standby,
-- nginx and wrk share this machine's cores (2 on the reference machine,
-- where other work runs too): a second server adds no core, and a read
-- from the standby costs more database work than one from the primary
-- (two statements there: has it replayed far enough, then the read; and
-- the primary's WAL position every stale_ms / 2 per worker), while the
-- standby also spends CPU replaying the WAL.  So the ratio is about 1, up
-- or down with whatever else the cores are doing; it shows that reads do
-- go to the standby (transactions per request on each server) and what
-- that costs.  Capacity grows with standbys on machines of their own.
--
-- An accepted activation is a new server on a key with a free slot; a
-- refused one a new server on a key whose allowance and migration extra
-- are used up (imported with three installations).  Every answer of a run
-- is checked to be what the run measures (200, or 403), and each
-- eligibility answer a 2xx: a missing feature fails the bench loudly.
local licensor = require "licensor"
local core = require "licensor.core"
local bulk = require "licensor.store.bulk"
local gateway = require "support.gateway"
local postgres = require "support.postgres"
local socket = require "socket"

local format, concat = string.format, table.concat
local gettime = socket.gettime

local FRESH = tonumber(os.getenv("BENCH_HA_KEYS")) or 20000
local FULL = tonumber(os.getenv("BENCH_HA_FULL_KEYS")) or 2000
local SECONDS = tonumber(os.getenv("BENCH_SECONDS")) or 5
local SAMPLE_SECONDS = tonumber(os.getenv("BENCH_HA_SAMPLE_SECONDS")) or 3
local WORKERS, THREADS = 2, 4
local CONNECTIONS = 16            -- wrk's for activations, as postgresql.lua's
local CLIENTS = { 16, 128, 512 }  -- the connection count's loads
local DAY = "2026-01-10"
local COUNT_SQL = "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'licensor'"
local XACT_SQL = "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = 'licensor'"
-- The read-scaling runs' stale_ms (see the header): with stale_ms 0 the
-- gateway reads the primary only, by design.
local READ_STALE_MS = 100

local started = gettime()

------------------------------------------------------------------------
-- Stores
------------------------------------------------------------------------

local function installation(server)
  return format('{"server":"%s","build":9483,"first_seen":"%s","last_seen":"%s"}', server, DAY, DAY)
end

-- A full key's installations: the allowance (2, failover) and R10's
-- migration extra (1); a fourth server is refused.
local FULL_INSTALLATIONS = '"' .. ("[" .. installation("a") .. "," .. installation("b") .. "," ..
  installation("c") .. "]"):gsub('"', '""') .. '"'

-- One CSV row of store:import_licenses, by column name (bulk.COLUMNS).
local function csv_row(installations)
  local cells = { product = "smartermail", edition = "enterprise", level = "250", kind = "perpetual",
                  start = "2025-06-01", ms_expires = "2026-05-31", failover = "true",
                  installations = installations }
  local row = {}
  for i, column in ipairs(bulk.COLUMNS) do row[i] = cells[column] or "" end
  return concat(row, ",")
end

local function keys_file(keys, first, last)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(concat(keys, "\n", first, last), "\n")
  f:close()
  return path
end

-- db -> file of FRESH keys with free slots, file of FULL full keys.
local function fill(db)
  local store = assert(licensor.open(db, { synchronous = "full" }))
  assert(store:import(licensor.catalogue_path("smartertools")))
  local rows = { concat(bulk.COLUMNS, ",") }
  local fresh, full = csv_row(""), csv_row(FULL_INSTALLATIONS)
  for i = 1, FRESH + FULL do rows[#rows + 1] = i <= FRESH and fresh or full end
  local keys = assert(store:import_licenses(concat(rows, "\n") .. "\n", "bench.csv"))
  -- Checked, not assumed: a full key refuses the next server.
  local v = assert(store:activate(keys[FRESH + 1], "probe", 9483, DAY))
  assert(not v.ok and v.code == "too_many_installations", "a full key accepted a new server")
  store:close()
  return keys_file(keys, 1, FRESH), keys_file(keys, FRESH + 1, FRESH + FULL)
end

------------------------------------------------------------------------
-- Loads
------------------------------------------------------------------------

-- The connections this bench opened to count, closed at the end.
local monitors = {}

-- A cluster's gateway connections and transactions in database licensor,
-- counted on a connection of our own (named otherwise, so that it does
-- not count itself; on database postgres, so that its own transactions
-- are not counted either).
local function monitor(cluster)
  local conn = core.open_pg(cluster:url("postgres", "application_name=licensor-bench"), 0)
  monitors[#monitors + 1] = conn
  local function value(sql)
    return math.floor(tonumber(conn:query(5000, sql)[1].n))
  end
  return { connections = function() return value(COUNT_SQL) end,
           transactions = function() return value(XACT_SQL) end,
           sync_states = function()
             return conn:query(5000, "SELECT coalesce(string_agg(sync_state, ','), '') AS s FROM " ..
               "pg_stat_replication")[1].s
           end }
end

-- run{url=, script=, keys=, clients=, seconds=, env={}, count=fn} -> req/s,
-- wrk's output, the most connections count() saw during the run.  wrk
-- runs in the background (io.popen) while count() is sampled.
local function run(o)
  local env = { "KEYS_FILE=" .. o.keys, "WRK_THREADS=2" }
  for name, value in pairs(o.env or {}) do env[#env + 1] = name .. "=" .. value end
  local seconds = o.seconds or SECONDS
  local pipe = assert(io.popen(format("%s wrk -t2 -c%d -d%ds -s %s %s 2>&1", concat(env, " "),
    o.clients or CONNECTIONS, seconds, o.script, o.url)))
  local most = 0
  if o.count then
    local stop = gettime() + seconds - 0.3
    socket.sleep(0.3)
    while gettime() < stop do
      most = math.max(most, o.count())
      socket.sleep(0.1)
    end
  end
  local out = pipe:read("*a")
  pipe:close()
  local rps = tonumber(out:match("Requests/sec:%s+([%d%.]+)"))
  if not rps then error("wrk failed: " .. out, 2) end
  return rps, out, most
end

-- Activations of new servers, every answer checked: "accepted" (200) or
-- "refused" (403).  The server names carry `tag`, new in every run.
local function activations(url, keys, expect, tag, offset)
  local rps, out = run{ url = url, script = "spec/bench/wrk/new_server.lua", keys = keys,
                        env = { RUN = tag, KEY_OFFSET = offset or 0 } }
  local n, ok, refused, others = out:match("ANSWERS (%d+) OK (%d+) REFUSED (%d+) OTHER %d+ %((.-)%)")
  n, ok, refused = tonumber(n), tonumber(ok), tonumber(refused)
  if not n or n == 0 then error("activations " .. tag .. ": no answers counted: " .. out) end
  local wanted = expect == "accepted" and ok or refused
  if wanted ~= n then
    error(format("activations %s: %d of %d answers were not %s (%d accepted, %d refused, statuses x counts " ..
      "of the rest: %s)%s", tag, n - wanted, n, expect, ok, refused, others,
      expect == "accepted" and "; more keys: BENCH_HA_KEYS" or ""))
  end
  return rps, n
end

-- What wrk saw besides 2xx answers: "" or " (N non-2xx, N timeouts)".
local function troubles(out)
  local bad = tonumber(out:match("Non%-2xx or 3xx responses:%s+(%d+)")) or 0
  local timeouts = tonumber(out:match("Socket errors:.-timeout (%d+)")) or 0
  if bad + timeouts == 0 then return "" end
  return format(", %d non-2xx, %d timeouts", bad, timeouts)
end

-- Eligibility lookups per second (each key once per pass over the list),
-- the requests answered, and what else wrk saw.  Under a connection count's
-- load, 503 busy (a full queue) is a designed answer and is reported;
-- elsewhere any answer but 2xx fails the run.
local function eligibility(url, keys, clients, count)
  local rps, out, most = run{ url = url, script = "spec/bench/wrk/eligible_spread.lua", keys = keys,
                              clients = clients, seconds = count and SAMPLE_SECONDS, count = count }
  local trouble = troubles(out)
  if trouble ~= "" and not count then
    error(format("eligibility at %d clients%s", clients or CONNECTIONS, trouble))
  end
  return rps, most, tonumber(out:match("(%d+) requests in")), trouble
end

-- A gateway of WORKERS x THREADS, stale_ms 0 unless said (no worker's
-- memory: every read goes to the database).
local function start_gateway(db, opts)
  opts = opts or {}
  return gateway.start{ db = db, today = DAY, workers = WORKERS, threads = THREADS, synchronous = "full",
                        stale_ms = opts.stale_ms or 0, conn_per_ip = 4096, read_db = opts.read_db }
end

local function took(t0)
  return format("(%.1f s)", gettime() - t0)
end

------------------------------------------------------------------------
-- The run
------------------------------------------------------------------------

-- Refused next to accepted on one backend: its figures and keys' files.
local function refusals(name, db)
  local t0 = gettime()
  local r = {}
  r.fresh, r.full = fill(db)
  local server = start_gateway(db)
  local ok, err = pcall(function()
    r.accepted, r.used = activations(server.url, r.fresh, "accepted", "plain")
    r.refused = activations(server.url, r.full, "refused", "plain")
  end)
  server:stop()
  if not ok then error(err, 0) end
  print(format("%-10s refused %7.0f activations/s next to accepted %7.0f/s = %.2f  %s", name, r.refused,
    r.accepted, r.refused / r.accepted, took(t0)))
  return r
end

-- On a gateway of its own: /healthz's write probe has a pool (and a
-- connection) of its own in each worker, there before the load (gateway.start
-- asks /healthz); the load may add at most workers x threads to them.
local function connection_counts(db, fresh, count)
  count = count.connections
  local t0 = gettime()
  local server = start_gateway(db)
  local ok, err = pcall(function()
    local before = count()
    if before > WORKERS then error(before .. " connections before any load: more than the health probes'") end
    local seen, most_of_all = {}, 0
    for i, clients in ipairs(CLIENTS) do
      local rps, most, _, trouble = eligibility(server.url, fresh, clients, count)
      seen[i] = format("%d clients %d (%.0f req/s%s)", clients, most, rps, trouble)
      most_of_all = math.max(most_of_all, most)
    end
    print(format("PostgreSQL connections of one gateway (%d workers x %d threads; most seen under eligibility " ..
      "load, %d of them /healthz's before it): %s; bound %d + %d  %s", WORKERS, THREADS, before,
      concat(seen, ", "), WORKERS * THREADS, before, took(t0)))
    if most_of_all > WORKERS * THREADS + before then
      error(format("%d connections: more than workers x threads = %d (+ %d)", most_of_all, WORKERS * THREADS,
        before))
    end
  end)
  server:stop()
  if not ok then error(err, 0) end
end

-- Eligibility per second from the gateway `opts` describes, and the
-- transactions the primary and the standby ran per request meanwhile
-- (pg_stat_database: a busy backend reports its counts every second, an
-- idle one up to 10 s later, one that exits at once; so they are read
-- once the gateway is stopped, its sessions closed).
local function reads(db, opts, keys, primary, standby)
  local server = start_gateway(db, opts)
  local ok, rps, requests, p0, s0 = pcall(function()
    local p, s = primary.transactions(), standby.transactions()
    local r, _, n = eligibility(server.url, keys)
    return r, n, p, s
  end)
  server:stop()
  if not ok then error(rps, 0) end
  socket.sleep(1.2)
  return rps, (primary.transactions() - p0) / requests, (standby.transactions() - s0) / requests
end

-- Eligibility with a hot standby serving the reads next to the primary
-- alone: both gateways with READ_STALE_MS, so the only difference is
-- read_db; a pass over the keys must take longer than that, or a worker's
-- memory could answer.
local function read_scaling(cluster, standby, keys)
  local t0 = gettime()
  local on_primary, on_standby = monitor(cluster), monitor(standby)
  local opts = { stale_ms = READ_STALE_MS }
  local alone, alone_p, alone_s = reads(cluster:url(), opts, keys, on_primary, on_standby)
  opts.read_db = standby:url(nil, "target_session_attrs=standby")
  local scaled, scaled_p, scaled_s = reads(cluster:url(), opts, keys, on_primary, on_standby)
  local pass_ms = FRESH / math.max(alone, scaled) * 1000
  if pass_ms < 4 * READ_STALE_MS then
    error(format("a pass over the keys took %.0f ms, under 4 x stale_ms: more keys (BENCH_HA_KEYS)", pass_ms))
  end
  if scaled_s <= scaled_p then
    error(format("with read_db the standby ran %.2f transactions per request and the primary %.2f: the reads " ..
      "did not go to the standby", scaled_s, scaled_p))
  end
  print(format("PostgreSQL eligibility, stale_ms %d and every request read from the database (a pass over the " ..
    "keys %.0f ms): with reads on one hot standby %7.0f/s next to the primary alone %7.0f/s = %.2f " ..
    "(transactions per request on primary/standby: alone %.2f/%.2f, with read_db %.2f/%.2f; one machine's " ..
    "cores: see ha.lua)  %s", READ_STALE_MS, pass_ms, scaled, alone, scaled / alone, alone_p, alone_s, scaled_p,
    scaled_s, took(t0)))
end

-- Waits until the primary counts a synchronous standby (after the reload
-- of synchronous_standby_names), or fails.
local function await_sync(cluster)
  local states = monitor(cluster).sync_states
  for _ = 1, 100 do
    if states() == "sync" then return end
    socket.sleep(0.05)
  end
  error("the standby is not synchronous (pg_stat_replication.sync_state: " .. states() .. ")")
end

-- With a synchronous standby: activations (and refusals) again, on the
-- keys the run without it left free, then the reads.
local function with_standby(cluster, pg)
  local t0 = gettime()
  local standby = cluster:standby()
  local server
  local ok, err = pcall(function()
    await_sync(cluster)
    server = start_gateway(cluster:url())
    local accepted = activations(server.url, pg.fresh, "accepted", "sync", pg.used)
    local refused = activations(server.url, pg.full, "refused", "sync")
    server:stop()
    server = nil
    print(format("PostgreSQL activations with a synchronous standby %7.0f/s next to without %7.0f/s = %.2f; " ..
      "refused with it %7.0f/s = %.2f of accepted  %s", accepted, pg.accepted, accepted / pg.accepted, refused,
      refused / accepted, took(t0)))
    read_scaling(cluster, standby, pg.fresh)
  end)
  if server then server:stop() end
  standby:stop()
  if not ok then error(err, 0) end
end

local cluster = assert(postgres.start{ fsync = true })
local sqlite_path = os.tmpname()
os.remove(sqlite_path)
local sqlite, pg
local ok, err = pcall(function()
  sqlite = refusals("SQLite", sqlite_path)
  pg = refusals("PostgreSQL", cluster:url())
  print(format("PostgreSQL / SQLite, new servers accepted through the gateway: %.2f; refused: %.2f",
    pg.accepted / sqlite.accepted, pg.refused / sqlite.refused))
  connection_counts(cluster:url(), pg.fresh, monitor(cluster))
  with_standby(cluster, pg)
end)
for _, conn in ipairs(monitors) do conn:close() end
for _, side in ipairs({ sqlite or {}, pg or {} }) do
  if side.fresh then os.remove(side.fresh) end
  if side.full then os.remove(side.full) end
end
cluster:stop()
for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(sqlite_path .. suffix) end
if not ok then error(err, 0) end
print(format("ha.lua took %.0f s", gettime() - started))
