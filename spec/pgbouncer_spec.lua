-- Through PgBouncer in transaction mode (issue 19, item 2; doc/postgresql.md
-- "Through PgBouncer"): Debian's pgbouncer 1.18 gives each transaction
-- whichever server connection is free, so a named prepared statement made
-- on one may be missing, or another client's, on the next.  With
-- `prepared_statements=off` in the URL the store prepares none, and the
-- store, racing processes, two gateways, idempotent admin retries and the
-- sweep all work through it, on fewer server connections than clients;
-- without it they fail.  A throwaway cluster and PgBouncer of this spec's
-- own (spec/support/pgbouncer.lua).  PostgreSQL suite only, and pgbouncer
-- must be installed: without it this spec fails.
local stores = require "support.stores"
if not stores.postgresql then return end

local licensor = require "licensor"
local core = require "licensor.core"
local socket = require "socket"
local gateway = require "support.gateway"
local postgres = require "support.postgres"
local pgbouncer = require "support.pgbouncer"
local fixtures = require "support.fixtures"
local flood = require "support.flood"

local LUA_PATH = "LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;;' "
local TODAY = "2019-01-10"
local TOKEN = "pgbouncer-spec-admin-token-0123"
local POOL = 4          -- default_pool_size: server connections per database and user
-- Client backends on the database licensor: the bouncer's server connections.
local SERVER_SQL = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = 'licensor' " ..
  "AND backend_type = 'client backend'"

local function read_file(path)
  local f = io.open(path)
  if not f then return "" end
  local text = f:read("*a")
  f:close()
  return text
end

-- `count` processes running spec/support/`script` `args` at once; their
-- outputs (stdout and stderr).
local function at_once(count, script, args)
  local outs, cmds = {}, {}
  for i = 1, count do
    outs[i] = os.tmpname()
    cmds[i] = LUA_PATH .. stores.interpreter() .. " spec/support/" .. script .. " " .. args(i) .. " > " ..
      outs[i] .. " 2>&1 &"
  end
  os.execute("{ " .. table.concat(cmds, " ") .. " wait; }")
  local results = {}
  for i = 1, count do
    results[i] = read_file(outs[i])
    os.remove(outs[i])
  end
  return results
end

-- `count` racers at once, each trying `tries` new servers on key
-- (spec/support/racer.lua: "ok refused failed", errors on stderr).
local function race(url, key, count, tries)
  return at_once(count, "racer.lua", function(id)
    return stores.quote(url) .. " " .. key .. " " .. id .. " " .. tries
  end)
end

teardown(function() gateway.stop_all() end)

describe("through PgBouncer in transaction mode with prepared_statements=off", function()
  local cluster, bouncer, url, store, sampler

  setup(function()
    assert(pgbouncer.installed(), pgbouncer.MISSING)
    cluster = assert(postgres.start())
    bouncer = pgbouncer.start(cluster, { pool_size = POOL })
    url = bouncer:url("licensor", "prepared_statements=off")
    store = assert(licensor.open(url))
    assert(store:import(fixtures.catalogue_table()))
    sampler = core.open_pg(cluster:url("postgres", "application_name=pgbouncer_spec"), 0)
  end)

  teardown(function()
    if store then store:close() end
    if sampler then sampler:close() end
    if bouncer then bouncer:stop() end
    if cluster then cluster:stop() end
  end)

  after_each(function() gateway.stop_all() end)

  local function server_connections()
    return math.floor(sampler:query(2000, SERVER_SQL)[1].n)
  end

  it("racing processes never exceed the allowance plus migration_extra and see no error", function()
    local rounds, total_ok, failures = 4, 0, {}
    for _ = 1, rounds do
      local key = stores.issue(store).key
      for _, out in ipairs(race(url, key, 4, 6)) do
        local ok, _, failed = out:match("^(%d+)%s+(%d+)%s+(%d+)")
        if not ok or failed ~= "0" then failures[#failures + 1] = out end
        total_ok = total_ok + (tonumber(ok) or 0)
      end
      local active = #store:query("SELECT seq FROM installations WHERE key = ? AND deactivated IS NULL", key)
      assert.is_true(active <= 2, key .. " has " .. active)
    end
    assert.are.same({}, failures)
    assert.are.equal(rounds * 2, total_ok)
    assert.is_true(server_connections() <= POOL)
  end)

  it("two gateways (2 x 4 threads each) share its pool: the allowance holds, admin retries replay", function()
    local keys = {}
    for i = 1, 6 do keys[i] = stores.issue(store).key end
    local one = gateway.start{ db = url, token = TOKEN, today = TODAY }
    local two = gateway.start{ db = url, token = TOKEN, today = TODAY }
    -- 24 clients a gateway, client i activating its own server on key i
    -- modulo 6: 8 servers a key, of which 2 fit.
    local a = flood.start{ url = one.url, clients = 24, seconds = 2, keys = keys, name = "one" }
    finally(function() a:stop() end)
    local b = flood.start{ url = two.url, clients = 24, seconds = 2, keys = keys, name = "two" }
    finally(function() b:stop() end)
    local most = 0
    while not (a:done() and b:done()) do
      most = math.max(most, server_connections())
      socket.sleep(0.02)
    end
    local summary = flood.merge({ a:wait(), b:wait() })
    print(("\n48 clients on 2 gateways (32 threads) through PgBouncer: at most %d server connections; %s")
      :format(most, flood.describe(summary)))
    for name in pairs(summary.counts) do
      assert.is_true(name == "200 ok" or name == "403 too_many_installations", flood.describe(summary))
    end
    assert.is_true(most <= POOL, most .. " server connections")
    local extra = store:catalogue():policy().migration_extra
    for _, key in ipairs(keys) do
      local n = #store:installations(key)
      assert.is_true(n >= 1 and n <= 1 + extra, key .. " has " .. n)
    end
    -- An admin retry with the same Idempotency-Key replays, through either gateway.
    local headers = { Authorization = "Bearer " .. TOKEN, ["Idempotency-Key"] = "bounced-once" }
    local s1, b1 = one:request("POST", "/v1/admin/renew", { key = keys[1] }, headers)
    local s2, b2, h2 = two:request("POST", "/v1/admin/renew", { key = keys[1] }, headers)
    assert.are.same({ 200, 200, b1.license.ms_expires, "true" },
                    { s1, s2, b2.license.ms_expires, h2["idempotent-replayed"] })
    assert.are.equal(1, #store:query("SELECT seq FROM events WHERE key = ? AND kind = 'renew'", keys[1]))
  end)

  it("sweeping processes take each ladder step exactly once", function()
    local through = "2019-01-05"
    for _ = 1, 4 do stores.two_servers(store, through) end
    local total = 0
    local sweeps = at_once(4, "sweeper.lua", function() return stores.quote(url) .. " " .. through end)
    for _, out in ipairs(sweeps) do total = total + assert(tonumber(out), out) end
    assert.are.equal(8, total)
    local rows = store:query("SELECT case_id, action, count(*) AS n FROM outbox GROUP BY case_id, action")
    assert.are.equal(8, #rows)
    for _, row in ipairs(rows) do assert.are.equal(1, row.n) end
  end)
end)

describe("through PgBouncer in transaction mode without prepared_statements=off", function()
  it("named prepared statements fail: another client's are on the server connection, or its own are not", function()
    assert(pgbouncer.installed(), pgbouncer.MISSING)
    local cluster = assert(postgres.start())
    finally(function() cluster:stop() end)
    -- One server connection for every client: the first client's
    -- statements are on it when the next one comes.
    local bouncer = pgbouncer.start(cluster, { pool_size = 1 })
    finally(function() bouncer:stop() end)
    local url = bouncer:url("licensor")
    local store = assert(licensor.open(url))
    finally(function() store:close() end)
    assert(store:import(fixtures.catalogue_table()))
    local key = stores.issue(store).key
    local seen = {}
    for _, out in ipairs(race(url, key, 3, 4)) do
      local message = out:match('(prepared statement "licensor_%d+" [%w ]+)')
      if message then seen[#seen + 1] = message end
    end
    print("\nwithout prepared_statements=off, racers: " .. table.concat(seen, "; "))
    assert.is_true(#seen > 0, "no prepared statement error")
    -- A gateway: its thread VMs' stores cannot open, or run statements
    -- that are not there.
    local server = gateway.start{ db = url, today = TODAY }
    local load = flood.start{ url = server.url, clients = 8, seconds = 1, keys = { key } }
    finally(function() load:stop() end)
    local summary = load:wait()
    print("without prepared_statements=off, a gateway: " .. flood.describe(summary))
    assert.is_true((summary.counts["200 ok"] or 0) < summary.requests, flood.describe(summary))
    -- Why, in its error log or (a store that cannot open) in the answer.
    local _, body = server:request("POST", "/v1/activate", { key = key, server = "why", build = 6911 })
    local why = server:error_log() .. tostring(type(body) == "table" and body.message)
    assert.matches('prepared statement "licensor_%d+"', why)
  end)
end)
