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
--     at most workers x threads, or the bench fails;
--   * eligibility with one hot standby serving the reads (read_db) next to
--     the primary alone, both with stale_ms = 0 so that every request reads
--     the database (no worker's cache answers).
--
-- The read-scaling ratio is not a capacity figure here.  Primary, standby,
-- nginx and wrk share this machine's cores (2 on the reference machine):
-- a read costs the standby what it cost the primary, and a second server
-- adds no core, so the ratio is about 1 or below (the standby also spends
-- CPU replaying the WAL).  The run shows that the reads do go to the
-- standby (its connection count) at about the same speed; capacity grows
-- with standbys on machines of their own.
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

-- The gateway's connections to a cluster, counted on a connection of our
-- own (named otherwise, so that it does not count itself).
local function counter(cluster)
  local conn = core.open_pg(cluster:url("postgres", "application_name=licensor-bench"), 0)
  monitors[#monitors + 1] = conn
  return function()
    return math.floor(tonumber(conn:query(5000, COUNT_SQL)[1].n))
  end
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

-- Eligibility lookups per second; any answer but 2xx fails the run.
local function eligibility(url, keys, clients, count)
  local rps, out, most = run{ url = url, script = "spec/bench/wrk/eligible.lua", keys = keys,
                              clients = clients, seconds = count and SAMPLE_SECONDS, count = count }
  local bad = out:match("Non%-2xx or 3xx responses:%s+(%d+)")
  if bad then error(format("eligibility at %d clients: %s answers were not 2xx", clients or CONNECTIONS, bad)) end
  return rps, most
end

local function start_gateway(db, opts)
  opts = opts or {}
  return gateway.start{ db = db, today = DAY, workers = WORKERS, threads = THREADS, synchronous = "full",
                        stale_ms = 0, conn_per_ip = 4096, read_db = opts.read_db }
end

local function took(t0)
  return format("(%.1f s)", gettime() - t0)
end

------------------------------------------------------------------------
-- The run
------------------------------------------------------------------------

-- Refused next to accepted on one backend; the gateway stays up for PostgreSQL.
local function refusals(name, db)
  local t0 = gettime()
  local fresh, full = fill(db)
  local server = start_gateway(db)
  local accepted, used = activations(server.url, fresh, "accepted", "plain")
  local refused = activations(server.url, full, "refused", "plain")
  print(format("%-10s refused %7.0f activations/s next to accepted %7.0f/s = %.2f  %s", name, refused,
    accepted, refused / accepted, took(t0)))
  return { server = server, fresh = fresh, full = full, accepted = accepted, used = used }
end

local function connection_counts(pg, count)
  local t0 = gettime()
  local seen, most_of_all = {}, 0
  for i, clients in ipairs(CLIENTS) do
    local rps, most = eligibility(pg.server.url, pg.fresh, clients, count)
    seen[i] = format("%d clients %d (%.0f req/s)", clients, most, rps)
    most_of_all = math.max(most_of_all, most)
  end
  print(format("PostgreSQL connections of one gateway (%d workers x %d threads, most seen under eligibility " ..
    "load, bound %d): %s  %s", WORKERS, THREADS, WORKERS * THREADS, concat(seen, ", "), took(t0)))
  if most_of_all > WORKERS * THREADS then
    error(format("%d connections: more than workers x threads = %d", most_of_all, WORKERS * THREADS))
  end
end

-- With a synchronous standby: activations (and refusals) again on the
-- same gateway, then eligibility from the primary alone and from a second
-- gateway that reads from the standby.
local function with_standby(cluster, pg)
  local t0 = gettime()
  local standby = cluster:standby()
  local ok, err = pcall(function()
    local accepted = activations(pg.server.url, pg.fresh, "accepted", "sync", pg.used)
    local refused = activations(pg.server.url, pg.full, "refused", "sync")
    print(format("PostgreSQL activations with a synchronous standby %7.0f/s next to without %7.0f/s = %.2f; " ..
      "refused with it %7.0f/s = %.2f of accepted  %s", accepted, pg.accepted, accepted / pg.accepted, refused,
      refused / accepted, took(t0)))
    t0 = gettime()
    local primary = eligibility(pg.server.url, pg.fresh)
    pg.server:stop()
    local reader = start_gateway(cluster:url(), { read_db = standby:url(nil, "target_session_attrs=standby") })
    pg.server = reader
    local count = counter(standby)
    local from_standby = eligibility(reader.url, pg.fresh)
    local readers = count()
    if readers == 0 then error("the gateway opened no connection to the standby: read_db is not in effect") end
    print(format("PostgreSQL eligibility, stale_ms 0 (every request reads the database): with reads on one hot " ..
      "standby %7.0f/s next to the primary alone %7.0f/s = %.2f (%d connections on the standby; one machine's " ..
      "cores: see ha.lua)  %s", from_standby, primary, from_standby / primary, readers, took(t0)))
  end)
  standby:stop()
  if not ok then error(err, 0) end
end

local cluster = assert(postgres.start{ fsync = true })
local sqlite_path = os.tmpname()
os.remove(sqlite_path)
local sqlite, pg
local ok, err = pcall(function()
  sqlite = refusals("SQLite", sqlite_path)
  sqlite.server:stop()
  pg = refusals("PostgreSQL", cluster:url())
  local count = counter(cluster)
  connection_counts(pg, count)
  with_standby(cluster, pg)
end)
for _, conn in ipairs(monitors) do conn:close() end
for _, side in ipairs({ sqlite or {}, pg or {} }) do
  if side.server then side.server:stop() end
  if side.fresh then os.remove(side.fresh) end
  if side.full then os.remove(side.full) end
end
cluster:stop()
for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(sqlite_path .. suffix) end
if not ok then error(err, 0) end
print(format("ha.lua took %.0f s", gettime() - started))
