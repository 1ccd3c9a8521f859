-- Bounded connections (issue 19, item 2; doc/postgresql.md "Connections"):
-- a gateway on PostgreSQL holds at most workers x threads store
-- connections whatever the number of clients (plus /healthz's, one a
-- worker), and beyond what its threads can take it answers 503 `busy`
-- from a bounded queue, never 500, and no later than its deadline
-- (--db-timeout-ms) plus a margin.  The load is spec/support/flood.lua; the count is
-- pg_stat_activity's rows with application_name 'licensor' (csrc/pg.c's
-- default), sampled while the load runs, on a throwaway cluster of this
-- spec's own so that nothing else is counted.  PostgreSQL suite only.
local stores = require "support.stores"
if not stores.postgresql then return end

local licensor = require "licensor"
local core = require "licensor.core"
local socket = require "socket"
local gateway = require "support.gateway"
local postgres = require "support.postgres"
local fixtures = require "support.fixtures"
local flood = require "support.flood"

local TODAY = "2019-01-10"
local WORKERS, THREADS = 2, 4
-- The gateway's default --db-timeout-ms: no request may take much longer.
local DB_TIMEOUT_MS = 5000
local COUNT_SQL = "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'licensor'"

teardown(function() gateway.stop_all() end)

describe("a gateway on PostgreSQL with 2 workers x 4 threads", function()
  local cluster, keys, spare, sampler

  setup(function()
    cluster = assert(postgres.start())
    local store = assert(licensor.open(cluster:url()))
    assert(store:import(fixtures.catalogue_table()))
    keys = {}
    for i = 1, 500 do keys[i] = stores.issue(store).key end
    spare = stores.issue(store).key
    store:close()
    -- The sampler's own connection is not one of licensor's.
    sampler = core.open_pg(cluster:url("postgres", "application_name=connections_spec"), 0)
  end)

  after_each(function() gateway.stop_all() end)

  teardown(function()
    if sampler then sampler:close() end
    if cluster then cluster:stop() end
  end)

  local function connections()
    return math.floor(sampler:query(2000, COUNT_SQL)[1].n)
  end

  -- A new gateway once the connections of the one before have ended.
  local function start_gateway(queue)
    for _ = 1, 100 do
      if connections() == 0 then break end
      socket.sleep(0.02)
    end
    -- conn_per_ip: every client comes from 127.0.0.1.
    return gateway.start{ db = cluster:url(), today = TODAY, workers = WORKERS, threads = THREADS,
                          conn_per_ip = 10000, queue = queue }
  end

  -- `clients` flood the gateway with activations (client i on key i: an
  -- activation, then check-ins, in every run) for `seconds`, while the connections are
  -- counted every 20 ms: the flood's summary, the most connections seen,
  -- and how many samples.
  local function measure(server, clients, seconds)
    local load = flood.start{ url = server.url, clients = clients, seconds = seconds, keys = keys }
    finally(function() load:stop() end)
    local most, samples = 0, 0
    while not load:done() do
      most = math.max(most, connections())
      samples = samples + 1
      socket.sleep(0.02)
    end
    return { summary = load:wait(), most = most, samples = samples }
  end

  -- No 500, no request left without an answer or cut off: what a client
  -- may see is 200 or 503 (busy, or the queue's deadline).
  local function assert_answered(m)
    for name, n in pairs(m.summary.counts) do
      local status = tonumber(name:match("^(%d+)"))
      assert.is_true(status == 200 or status == 503, n .. " x " .. name .. ": " .. flood.describe(m.summary))
    end
  end

  it("holds at most 8 connections under 500 concurrent clients, answers each 200 or 503, and serves afterwards",
     function()
    local server = start_gateway()
    -- gateway.start waits on /healthz, whose write probe has a pool (and
    -- connections) of its own, one thread per worker: those are here
    -- before the load, and the load adds none to them.
    local before = connections()
    assert.is_true(before <= WORKERS, before .. " connections before the load")
    local m = measure(server, 500, 4)
    print(string.format("\n500 clients, %d x %d threads: at most %d connections (%d before, %d samples); %d " ..
      "answers: %s", WORKERS, THREADS, m.most, before, m.samples, m.summary.requests, flood.describe(m.summary)))
    assert.is_true(m.samples >= 20, "only " .. m.samples .. " samples")
    assert.is_true(m.most <= WORKERS * THREADS + before,
      m.most .. " connections at once (" .. before .. " before the load)")
    assert_answered(m)
    assert.is_true((m.summary.counts["200 ok"] or 0) > 0, flood.describe(m.summary))
    -- Afterwards: the connections did not pile up, and it still answers.
    assert.is_true(connections() <= WORKERS * THREADS + before)
    local status, body = server:request("POST", "/v1/activate", { key = spare, server = "after", build = 6911 })
    assert.are.same({ 200, true }, { status, body.ok })
    server:stop()
  end)

  it("with --queue 16, answers the calls beyond the queue 503 busy at once and the others 200", function()
    local server = start_gateway(16)
    local before = connections()
    local m = measure(server, 500, 3)
    print(string.format("\n500 clients, --queue 16: at most %d connections (%d before); %s; longest 503 busy %s ms",
      m.most, before, flood.describe(m.summary), tostring(m.summary.max_ms["503 busy"])))
    assert.is_true(m.most <= WORKERS * THREADS + before, m.most .. " connections")
    assert_answered(m)
    assert.is_true((m.summary.counts["503 busy"] or 0) > 0, flood.describe(m.summary))
    assert.is_true((m.summary.counts["200 ok"] or 0) > 0, flood.describe(m.summary))
    -- Refused without waiting for a thread, so before any deadline.
    assert.is_true(m.summary.max_ms["503 busy"] < DB_TIMEOUT_MS, flood.describe(m.summary))
    local status = server:request("POST", "/v1/activate", { key = spare, server = "after-queue", build = 6911 })
    assert.are.equal(200, status)
  end)

  it("holds the same bound at 16 and 128 clients (the counts are printed)", function()
    local server = start_gateway()
    local before = connections()
    local runs = {}
    for _, clients in ipairs({ 16, 128 }) do
      local m = measure(server, clients, 2)
      print(string.format("\n%d clients, %d x %d threads: at most %d connections (%d before, %d samples); %s",
        clients, WORKERS, THREADS, m.most, before, m.samples, flood.describe(m.summary)))
      runs[clients] = m
    end
    for clients, m in pairs(runs) do
      assert.is_true(m.most <= WORKERS * THREADS + before, clients .. " clients: " .. m.most .. " connections")
      assert_answered(m)
    end
    server:stop()
  end)

  -- A gateway just started has no thread VMs yet: the first burst makes
  -- them (lua-nginx-module keeps up to threads + queue + 1 per worker).
  it("answers each of 500 concurrent clients within the deadline plus 2 s, even when just started", function()
    local server = start_gateway()
    local m = measure(server, 500, 3)
    print(string.format("\n500 clients on a new gateway: %s", flood.describe(m.summary)))
    assert_answered(m)
    assert.is_true(m.summary.longest_ms < DB_TIMEOUT_MS + 2000, "a request took " .. m.summary.longest_ms ..
      " ms: " .. flood.describe(m.summary))
  end)
end)
