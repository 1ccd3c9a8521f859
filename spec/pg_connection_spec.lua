-- PostgreSQL connections under faults (doc/rules.md section 6, "Only a
-- confirmed commit is acknowledged"; csrc/pg.c): deadlines that cancel,
-- commits whose outcome is unknown never answered as success, one
-- connection per OS thread, and statements without names for PgBouncer.
-- Runs in the PostgreSQL suite only (spec/support/run-suites.sh).
local stores = require "support.stores"
if not stores.postgresql then return end

local licensor = require "licensor"
local core = require "licensor.core"
local constants = require "licensor.constants"
local postgres = require "support.postgres"
local fixtures = require "support.fixtures"

local DAY = "2019-01-10"
local monotonic_ms = core.monotonic_ms

-- Runs fn() and answers its results and the milliseconds it took.
local function timed(fn)
  local t0 = monotonic_ms()
  local results = { fn() }
  results.ms = monotonic_ms() - t0
  return results
end

describe("a PostgreSQL store's deadline", function()
  it("cancels a statement still waiting when it passes: timeout, and the store works on", function()
    local store, url = stores.new()
    local key = stores.issue(store).key
    -- Another session holds the licenses table: the activation waits.
    local blocker = core.open_pg(url, 0)
    blocker:begin()
    blocker:exec("LOCK TABLE licenses IN ACCESS EXCLUSIVE MODE")
    store:deadline(monotonic_ms() + 400)
    local r = timed(function() return store:activate(key, "a", 6911, DAY) end)
    blocker:rollback()
    blocker:close()
    assert.are.same({ nil, "timeout" }, { r[1], r[3] })
    -- The cancel ends it at 400 ms; the grace allows one second more.
    assert.is_true(r.ms >= 390 and r.ms < 400 + constants.DB_TIMEOUT_MS / 5, "took " .. r.ms .. " ms")
    store:deadline(nil)
    assert.is_true(assert(store:activate(key, "a", 6911, DAY)).ok)   -- a new connection, the same store
    assert.are.equal(1, #store:installations(key))
  end)

  it("that has passed before a call sends nothing", function()
    local store = stores.new()
    local key = stores.issue(store).key
    store:deadline(monotonic_ms() - 1)
    local r = timed(function() return store:activate(key, "a", 6911, DAY) end)
    assert.are.same({ nil, "timeout" }, { r[1], r[3] })
    assert.is_true(r.ms < 100)
    store:deadline(nil)
    assert.are.equal(0, #store:installations(key))
  end)

  it("is a whole number of milliseconds", function()
    local store = stores.new()
    assert.has_error(function() store:deadline("soon") end)
    assert.has_error(function() store:deadline(1.5) end)
    assert.is_true(store:deadline(nil))
  end)
end)

describe("a commit whose synchronous standby is away", function()
  local primary, standby, store, key
  setup(function()
    primary = assert(postgres.start())
    standby = primary:standby()
    store = assert(licensor.open(primary:url()))
    assert(store:import(fixtures.catalogue_table()))
    key = stores.issue(store).key
  end)
  teardown(function()
    if store then store:close() end
    if standby then standby:stop() end
    if primary then primary:stop() end
  end)

  it("is never acknowledged: its cancelled wait is an unknown outcome, and activating again tells the truth", function()
    standby:stop_server()
    store:deadline(monotonic_ms() + 600)
    local r = timed(function() return store:activate(key, "a", 6911, DAY) end)
    assert.are.equal("store_unavailable", r[3])
    assert.matches("^" .. constants.OUTCOME_UNKNOWN .. ": ", r[2])
    assert.matches("synchronous replication", r[2])
    assert.is_true(r.ms >= 590 and r.ms < 600 + 1500, "took " .. r.ms .. " ms")
    -- Committed locally (it may be lost with this primary): the row is
    -- here, and was never answered as done.
    store:deadline(nil)
    assert.are.equal(1, #store:installations(key))
    standby:start_server()
    assert.is_true(assert(store:activate(key, "a", 6911, DAY)).ok)      -- a check-in now
    assert.are.equal(1, #store:installations(key))
  end)

  it("whose session is terminated while it waits is an unknown outcome too (the connection is lost)", function()
    standby:stop_server()
    -- In 0.5 s another session terminates the backend waiting in SyncRep.
    local sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
    local psql = primary.bin .. "/psql"
    local pid = assert(core.process.spawn({ "sh", "-c", 'sleep 0.5; exec "$0" "$@"', psql, "-q", "-h",
      primary.socket_dir, "-p", tostring(primary.port), "-U", "postgres", "-d", "licensor", "-c", sql },
      "/dev/null"))
    store:deadline(monotonic_ms() + 5000)
    local r = timed(function() return store:deactivate(key, "a", DAY) end)
    core.process.wait(pid, 5000)
    assert.are.equal("store_unavailable", r[3])
    assert.matches("^" .. constants.OUTCOME_UNKNOWN, r[2])
    assert.is_true(r.ms < 4000, "took " .. r.ms .. " ms: the termination was not seen")
    standby:start_server()
    store:deadline(nil)
    assert.is_truthy(store:installations(key)[1].deactivated)   -- it had committed locally
  end)

  it("fails the write probe within its deadline, and the probe passes once the standby is back", function()
    standby:stop_server()
    store:deadline(monotonic_ms() + 300)
    local r = timed(function() return store:probe_write() end)
    assert.are.same({ nil, "store_unavailable" }, { r[1], r[3] })
    assert.is_true(r.ms < 300 + 1500)
    standby:start_server()
    store:deadline(monotonic_ms() + 5000)
    assert.is_true(store:probe_write())
    store:deadline(nil)
  end)

  it("is waited for: a refusal never waits, it writes nothing", function()
    standby:stop_server()
    store:deadline(monotonic_ms() + 2000)
    local r = timed(function() return store:activate(key, "b", 1, DAY) end)
    standby:start_server()
    store:deadline(nil)
    assert.is_false(assert(r[1]).ok)
    assert.is_true(r.ms < 500, "a refusal waited " .. r.ms .. " ms")
  end)
end)

describe("connections", function()
  local function backend_pid(store)
    return store:query("SELECT pg_backend_pid() AS pid")[1].pid
  end

  it("per_thread stores of one thread share its one connection, which outlives each store", function()
    local _, url = stores.new()
    local a = assert(licensor.open(url, { per_thread = true }))
    local b = assert(licensor.open(url, { per_thread = true }))
    local own = assert(licensor.open(url))
    assert.are.equal(backend_pid(a), backend_pid(b))
    assert.are_not.equal(backend_pid(a), backend_pid(own))
    local pid = backend_pid(a)
    a:close()
    assert.are.equal(pid, backend_pid(b))
    assert.is_truthy(tostring(b.db):find("thread", 1, true))
    -- Statements of both, by their texts, on the one connection.
    local key = stores.issue(b).key
    local c = assert(licensor.open(url, { per_thread = true }))
    assert.are.equal(key, c:get(key).key)
    b:close(); c:close(); own:close()
  end)

  it("prepared_statements=off sends every statement unnamed; any other value is refused", function()
    local _, url = stores.new()
    local plain = assert(licensor.open(url))
    local unnamed = assert(licensor.open(url .. "&prepared_statements=off"))
    local key = stores.issue(unnamed).key
    assert.is_true(assert(unnamed:activate(key, "a", 6911, DAY)).ok)
    assert(plain:activate(key, "b", 6911, DAY))
    local count = "SELECT count(*) AS n FROM pg_prepared_statements"
    assert.are.equal(0, unnamed:query(count)[1].n)
    assert.is_true(plain:query(count)[1].n > 0)
    local refused, msg, code = licensor.open(url .. "&prepared_statements=maybe")
    assert.are.same({ nil, "invalid_request" }, { refused, code })
    assert.matches("prepared_statements: on or off", msg)
    -- Case, repeats and the keyword form: never silently obeyed, never
    -- taken from inside another parameter's quoted value.
    for _, bad in ipairs({ url .. "&prepared_statements=Off", url .. "&prepared_statements=off&prepared_statements=on",
                           "host=/nonexistent prepared_statements=off prepared_statements=off" }) do
      assert.are.equal("invalid_request", select(3, licensor.open(bad)), bad)
    end
    local _, why = licensor.open("host=/nonexistent password='a prepared_statements=maybe b'")
    assert.matches("nonexistent", why)   -- connecting failed: the quoted value was left alone
    assert.is_nil(why:find("a prepared", 1, true))
    plain:close(); unnamed:close()
  end)
end)

describe("a gateway reading from a hot standby (--read-db)", function()
  local gateway = require "support.gateway"
  local socket = require "socket"
  local primary, standby
  teardown(function()
    gateway.stop_all()
    if standby then standby:stop() end
    if primary then primary:stop() end
  end)

  it("serves eligibility from the standby, and never answers older than stale_ms when it lags", function()
    primary = assert(postgres.start())
    standby = primary:standby()
    local store = assert(licensor.open(primary:url()))
    assert(store:import(fixtures.catalogue_table()))
    local keys = {}
    for i = 1, 20 do keys[i] = stores.issue(store).key end
    local server = gateway.start{ db = primary:url(), read_db = standby:url(), stale_ms = 300, today = DAY }
    for _, key in ipairs(keys) do
      local status, body = server:request("GET", "/v1/licenses/" .. key .. "/eligible")
      assert.are.same({ 200, 6911 }, { status, body.number })
    end
    -- The reads went to the standby: the gateway's sessions there last ran
    -- a license read (a store that could not open would show its error).
    local last = standby:rows("SELECT query FROM pg_stat_activity WHERE application_name = 'licensor'",
                              "licensor")
    local reads = 0
    for _, row in ipairs(last) do
      if row.query:find("FROM licenses", 1, true) then reads = reads + 1 end
    end
    assert.is_true(reads > 0, "no license read on the standby: " .. require("cjson").encode(last))
    -- The standby stops replaying: a key disabled on the primary (the
    -- commit waits only for the standby's flush) shows within stale_ms,
    -- read from the primary because the standby has fallen behind.
    standby:exec("SELECT pg_wal_replay_pause()", "licensor")
    local t0 = socket.gettime()
    assert(store:disable(keys[1], DAY, "chargeback"))
    local status, waited
    repeat
      status = server:request("GET", "/v1/licenses/" .. keys[1] .. "/eligible")
      waited = socket.gettime() - t0
      if status == 200 then socket.sleep(0.01) end
    until status ~= 200 or waited > 3
    standby:exec("SELECT pg_wal_replay_resume()", "licensor")
    assert.are.equal(403, status)
    assert.is_true(waited < 0.3 + 0.2, "stale for " .. waited .. " s")
    -- Writes go to the primary.
    status = server:request("POST", "/v1/activate", { key = keys[2], server = "a", build = 6911 })
    assert.are.equal(200, status)
    assert.are.equal(1, #store:installations(keys[2]))
    store:close()
    server:stop()
  end)
end)

describe("a gateway whose --read-db is no standby", function()
  local gateway = require "support.gateway"
  after_each(function() gateway.stop_all() end)

  it("never answers from it: a read_db that names another primary database is passed over", function()
    local store, url = stores.new()
    local key = stores.issue(store).key
    local _, other = stores.new()                    -- another database, of other licenses, not in recovery
    local server = gateway.start{ db = url, read_db = other, stale_ms = 300, today = DAY }
    local status, body = server:request("GET", "/v1/licenses/" .. key .. "/eligible")
    assert.are.same({ 200, 6911 }, { status, body.number })
    server:stop()
  end)
end)

describe("a sweep on PostgreSQL", function()
  it("commits every few hundred keys: each key's lock holds a slot of the server's small lock table", function()
    local cluster = assert(postgres.start())
    finally(function() cluster:stop() end)
    -- About 10 x (20 + the server's own processes) lock slots: fewer than
    -- the 3,000 keys one sweep works.
    cluster:exec("ALTER SYSTEM SET max_locks_per_transaction = 10")
    cluster:exec("ALTER SYSTEM SET max_connections = 20")
    cluster:stop_server()
    cluster:start_server()
    local store = assert(licensor.open(cluster:url()))
    assert(store:import(fixtures.catalogue_table()))
    local expires
    for _ = 1, 3000 do expires = stores.issue(store, { start = "2018-06-01" }).ms_expires end
    local on = core.date(core.day(expires) - 30)
    local taken, skipped = store:sweep(on)
    assert.are.same({}, skipped or {})
    assert.are.equal(3000, #assert(taken, skipped))
    for _, t in ipairs(taken) do assert.are.equal("ms_expiring", t.action) end
    assert.are.same({}, (store:sweep(on)))                 -- each once
    store:close()
  end)
end)

describe("a PostgreSQL server that stops answering", function()
  local cluster
  teardown(function() if cluster then cluster:stop() end end)

  it("frozen whole, still ends a call by its deadline plus the cancel's grace", function()
    cluster = assert(postgres.start())
    local store = assert(licensor.open(cluster:url()))
    assert(store:import(fixtures.catalogue_table()))
    local key = stores.issue(store).key
    -- Every process of the cluster stopped (a frozen VM): the cancel
    -- request cannot be answered either.  (Each server process leads a
    -- process group of its own: the postmaster and its children, by pid.)
    local pids = cluster.pid .. " $(pgrep -P " .. cluster.pid .. " | tr '\n' ' ')"
    local function signal(name) return os.execute("/bin/kill -s " .. name .. " " .. pids) end
    assert(signal("STOP"))
    finally(function() signal("CONT") end)
    store:deadline(monotonic_ms() + 500)
    local r = timed(function() return store:installations(key) end)
    assert(signal("CONT"))
    assert.are.equal("timeout", r[3])
    assert.is_true(r.ms < 500 + 1000 + 400, "took " .. r.ms .. " ms")
    store:deadline(monotonic_ms() + 5000)
    assert.are.same({}, assert(store:installations(key)))                  -- thawed: it works on
  end)

  it("read-only, answers writes store_unavailable (a 503), not a refusal of the request", function()
    local store = assert(licensor.open(cluster:url()))
    local key = stores.issue(store).key
    cluster:exec("ALTER SYSTEM SET default_transaction_read_only = on")
    cluster:exec("SELECT pg_reload_conf()")
    -- Until the store's own session has read the new setting.
    for _ = 1, 100 do
      if store:query("SHOW default_transaction_read_only")[1].default_transaction_read_only == "on" then break end
      require("socket").sleep(0.02)
    end
    local _, _, code = store:activate(key, "a", 6911, DAY)
    local probe = { store:probe_write() }
    cluster:exec("ALTER SYSTEM RESET default_transaction_read_only")
    cluster:exec("SELECT pg_reload_conf()")
    assert.are.same({ "store_unavailable", "store_unavailable" }, { code, probe[3] }, probe[2])
    store:close()
  end)
end)
