-- PostgreSQL (doc/rules.md section 6, README "Running on PostgreSQL"):
-- copying between backends, many processes and gateways on one database,
-- the gateway's bounded staleness, a server that stops and a failover to a
-- synchronous standby.  Runs in the PostgreSQL suite only (run-suites.sh
-- starts it with spec/support/with-postgres.lua); the store specs run
-- there against PostgreSQL too.
local stores = require "support.stores"
if not stores.postgresql then return end

local licensor = require "licensor"
local core = require "licensor.core"
local socket = require "socket"
local gateway = require "support.gateway"
local postgres = require "support.postgres"
local fixtures = require "support.fixtures"

local LUA_PATH = "LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;;' "
local TODAY = "2019-01-10"

local function read_lines(path)
  local lines = {}
  local f = io.open(path)
  for line in (f and f:lines() or function() end) do lines[#lines + 1] = line end
  if f then f:close() end
  return lines
end

-- A key on two servers from 2018-12-05, both checking in (within the
-- grace) through 2019-01-05: fraud from 2019-01-04.
local function excess_key(store)
  local lic = stores.issue(store, { start = "2018-06-01" })
  for _, server in ipairs({ "old", "new" }) do
    assert(store:activate(lic.key, server, 6911, "2018-12-05"))
    for _, day in ipairs({ "2018-12-11", "2018-12-17", "2018-12-23", "2018-12-29", "2019-01-04", "2019-01-05" }) do
      assert(store:checkin(lic.key, server, day))
    end
  end
  return lic.key
end

-- `count` processes running `script args` at once; their outputs.
local function at_once(count, script, args)
  local outs, cmds = {}, {}
  for i = 1, count do
    outs[i] = os.tmpname()
    cmds[i] = LUA_PATH .. stores.interpreter() .. " spec/support/" .. script .. " " .. args .. " > " ..
      outs[i] .. " 2>&1 &"
  end
  os.execute("{ " .. table.concat(cmds, " ") .. " wait; }")
  local results = {}
  for i, path in ipairs(outs) do
    results[i] = table.concat(read_lines(path), "\n")
    os.remove(path)
  end
  return results
end

describe("licensor copy", function()
  it("moves everything from SQLite to PostgreSQL and back: the three dumps are equal", function()
    local sqlite = os.tmpname()
    stores.remove(sqlite)
    local store = stores.new(sqlite)
    local key = excess_key(store)
    assert.are.equal(2, #store:sweep("2019-01-05"))
    store:on("email_customer", function() return true end)
    assert.are.equal(1, (store:deliver()))
    assert(store:idempotent("req-1", "fp", function(s) return tostring(s:renew(key, "2019-01-05") ~= nil) end))
    stores.issue(store, { owner = "zed", addons = { "eas" } })
    local before = stores.dump(store)
    store:close()
    local url = stores.path()
    local cli = LUA_PATH .. stores.interpreter() .. " lua/bin/licensor --json copy --from "
    local p = assert(io.popen(cli .. stores.quote(sqlite) .. " --to " .. stores.quote(url)))
    local out = p:read("*a")
    p:close()
    assert.matches('"events":%d+', out)
    local pg = assert(licensor.open(url))
    assert.are.equal(before, stores.dump(pg))
    -- New rows get new ids after the copied ones.
    excess_key(pg)
    assert.are.equal(2, #pg:sweep("2019-01-06"))
    assert.are.same({ { id = 1 }, { id = 2 } }, pg:query("SELECT id FROM fraud_cases ORDER BY id"))
    local back = os.tmpname()
    stores.remove(back)
    assert(require("licensor.store.copy").copy(url, back))
    local copy = assert(licensor.open(back))
    assert.are.equal(stores.dump(pg), stores.dump(copy))
    -- Into a store that holds data: refused, nothing written.
    local refused, msg, code = require("licensor.store.copy").copy(sqlite, url)
    assert.are.same({ nil, "exists" }, { refused, code }, msg)
    copy:close(); pg:close()
    stores.remove(sqlite); stores.remove(back)
  end)
end)

describe("several processes on one PostgreSQL database", function()
  it("sweeping at once take each ladder step exactly once", function()
    local store, url = stores.new()
    for _ = 1, 12 do excess_key(store) end
    local counts = at_once(4, "sweeper.lua", stores.quote(url) .. " 2019-01-05")
    local total = 0
    for _, out in ipairs(counts) do total = total + assert(tonumber(out), out) end
    assert.are.equal(24, total)
    local rows = store:query("SELECT case_id, action, count(*) AS n FROM outbox GROUP BY case_id, action")
    assert.are.equal(24, #rows)
    for _, row in ipairs(rows) do assert.are.equal(1, row.n) end
    assert.are.equal(12, #store:query("SELECT id FROM fraud_cases"))
  end)

  it("delivering at once send every outbox row once", function()
    local store, url = stores.new()
    for _ = 1, 60 do excess_key(store) end
    assert.are.equal(120, #store:sweep("2019-01-05"))
    local out = os.tmpname()
    local delivered = 0
    for _, n in ipairs(at_once(3, "deliverer.lua", stores.quote(url) .. " " .. out)) do
      delivered = delivered + assert(tonumber(n), n)
    end
    local seen, duplicates = {}, 0
    for _, line in ipairs(read_lines(out)) do
      local id = line:match("^(%d+)")
      if seen[id] then duplicates = duplicates + 1 end
      seen[id] = true
    end
    os.remove(out)
    assert.are.same({ delivered = 120, duplicates = 0, pending = 0 },
      { delivered = delivered, duplicates = duplicates, pending = select(2, store:deliver()) })
  end)
end)

-- Gateways on PostgreSQL, each with its own throwaway cluster where a
-- test stops or kills the server.
describe("a gateway on PostgreSQL", function()
  local token = "pg-spec-admin-token-0123456789"
  after_each(function() gateway.stop_all() end)

  local function issue_keys(store, n, fields)
    local keys = {}
    for i = 1, n do keys[i] = stores.issue(store, fields).key end
    return keys
  end

  local function keys_file(keys)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(table.concat(keys, "\n"), "\n")
    f:close()
    return path
  end

  -- Every acknowledged activation of an activator's log, and what else it saw.
  local function acknowledged(log)
    local ok, codes = {}, {}
    for _, line in ipairs(read_lines(log)) do
      local status, code, key, server = line:match("^(%d+) (%S+) (%S+) (%S+)$")
      codes[status .. " " .. code] = (codes[status .. " " .. code] or 0) + 1
      if code == "ok" then ok[#ok + 1] = { key = key, server = server } end
    end
    return ok, codes
  end

  local function missing(store, ok)
    local lost = 0
    for _, a in ipairs(ok) do
      local found = store:query("SELECT 1 AS x FROM installations WHERE key = ? AND server = ?", a.key, a.server)
      if #found == 0 then lost = lost + 1 end
    end
    return lost
  end

  local function start_activator(server, keys, seconds)
    local log = os.tmpname()
    local pid = assert(core.process.spawn({ "sh", "-c", LUA_PATH .. 'exec "$0" "$@"', stores.interpreter(),
      "spec/support/activator.lua", server.url, keys_file(keys), log, tostring(seconds) }))
    return pid, log
  end

  it("serves every route, keeps eligibility answers no older than stale_ms, and writes to the database", function()
    local store, url = stores.new()
    local key = stores.issue(store).key
    local server = gateway.start{ db = url, token = token, today = TODAY, stale_ms = 300 }
    local status, body = server:request("POST", "/v1/activate", { key = key, server = "a", build = 6911 })
    assert.are.same({ 200, true }, { status, body.ok })
    assert.are.equal(1, #store:installations(key))                       -- in the database at once
    status, body = server:request("GET", "/v1/licenses/" .. key .. "/eligible")
    assert.are.same({ 200, 6911 }, { status, body.number })
    status, body = server:admin("issue", { product = "smartertrack", edition = "enterprise", level = 5 })
    assert.are.equal(200, status)
    assert.is_table(store:get(body.license.key))
    local headers = { Authorization = "Bearer " .. token, ["Idempotency-Key"] = "once" }
    local s1, b1 = server:request("POST", "/v1/admin/renew", { key = key }, headers)
    local s2, b2, h2 = server:request("POST", "/v1/admin/renew", { key = key }, headers)
    assert.are.same({ 200, 200, b1.license.ms_expires, "true" }, { s1, s2, b2.license.ms_expires,
                                                                     h2["idempotent-replayed"] })
    -- Disabled by another process: the gateway notices within stale_ms.
    for _ = 1, 5 do server:request("GET", "/v1/licenses/" .. key .. "/eligible") end
    local t0 = socket.gettime()
    assert(licensor.open(url):disable(key, TODAY, "chargeback"))
    local waited
    repeat
      status = server:request("GET", "/v1/licenses/" .. key .. "/eligible")
      waited = socket.gettime() - t0
      if status == 200 then socket.sleep(0.01) end
    until status ~= 200 or waited > 3
    assert.are.equal(403, status)
    assert.is_true(waited < 0.3 + 0.15, "stale for " .. waited .. " s")
    server:stop()
  end)

  it("answers 503 store_unavailable while PostgreSQL is down and serves again once it is back", function()
    local cluster = assert(postgres.start())
    finally(function() cluster:stop() end)
    local store = assert(licensor.open(cluster:url()))
    assert(store:import(fixtures.catalogue_table()))
    local keys = issue_keys(store, 400, { failover = true })
    local spare = stores.issue(store).key
    store:close()
    local server = gateway.start{ db = cluster:url(), token = token, today = TODAY }
    local pid, log = start_activator(server, keys, 4)
    finally(function() core.process.stop(pid, 0) end)
    socket.sleep(1)
    cluster:stop_server()
    socket.sleep(1.2)
    local status, body = server:request("POST", "/v1/activate", { key = keys[1], server = "x", build = 6911 })
    assert.are.same({ 503, "store_unavailable" }, { status, body.code })
    cluster:start_server()
    core.process.wait(pid, 15000)
    local ok, codes = acknowledged(log)
    assert.is_true((codes["503 store_unavailable"] or 0) > 0)
    assert.is_nil(codes["500 internal_error"])
    store = assert(licensor.open(cluster:url()))
    assert.are.equal(0, missing(store, ok))
    status = server:request("POST", "/v1/activate", { key = spare, server = "after", build = 6911 })
    assert.are.equal(200, status)                                          -- no restart needed
    store:close()
    server:stop()
  end)

  it("carries on through a failover to a synchronous standby and loses no acknowledged activation", function()
    local primary = assert(postgres.start())
    finally(function() primary:stop() end)
    local standby = primary:standby()
    finally(function() standby:stop() end)
    local store = assert(licensor.open(primary:url()))
    assert(store:import(fixtures.catalogue_table()))
    local keys = issue_keys(store, 200)
    store:close()
    local both = "postgresql:///licensor?host=" .. primary.socket_dir .. "," .. standby.socket_dir ..
      "&port=" .. primary.port .. "," .. standby.port .. "&user=postgres&target_session_attrs=read-write"
    local server = gateway.start{ db = both, token = token, today = TODAY }
    local pid, log = start_activator(server, keys, 5)
    finally(function() core.process.stop(pid, 0) end)
    socket.sleep(1.5)
    primary:kill_server()
    socket.sleep(0.3)
    standby:promote()
    core.process.wait(pid, 20000)
    local ok, codes = acknowledged(log)
    local promoted = assert(licensor.open(standby:url()))
    assert.are.equal(0, missing(promoted, ok))
    assert.is_nil(codes["500 internal_error"])
    -- It carried on: activations were acknowledged after the first one that failed.
    local lines, first_failed, acknowledged_after = read_lines(log), nil, 0
    for i, line in ipairs(lines) do
      if not first_failed and not line:match("^200 ") and not line:match("^403 ") then first_failed = i end
      if first_failed and line:match("^200 ok") then acknowledged_after = acknowledged_after + 1 end
    end
    assert.is_truthy(first_failed, "the failover went unnoticed")
    assert.is_true(acknowledged_after > 0, "nothing acknowledged after the failover")
    -- The allowance holds on the new primary: at most one server plus migration_extra per key.
    local over = promoted:query([[SELECT key, count(*) AS n FROM installations WHERE deactivated IS NULL
      GROUP BY key HAVING count(*) > 1 + ?]], promoted:catalogue():policy().migration_extra)
    assert.are.same({}, over)
    local status = server:request("POST", "/v1/activate", { key = keys[1], server = "late", build = 6911 })
    assert.is_true(status == 200 or status == 403)
    promoted:close()
    server:stop()
  end)

  it("two gateways on one database: 50 concurrent activations per key never exceed the allowance", function()
    local store, url = stores.new()
    local keys = issue_keys(store, 4)
    local one = gateway.start{ db = url, token = token, today = TODAY }
    local two = gateway.start{ db = url, token = token, today = TODAY }
    local outs, cmds = {}, {}
    for k, key in ipairs(keys) do
      for i = 1, 50 do
        local server = (i % 2 == 0) and one or two
        local out = os.tmpname()
        outs[#outs + 1] = out
        cmds[#cmds + 1] = string.format(
          "curl -s -o /dev/null -w '%%{http_code}' -X POST %s/v1/activate -d '%s' > %s &", server.url,
          string.format('{"key":"%s","server":"k%d-s%d","build":6911}', key, k, i), out)
      end
    end
    os.execute("{ " .. table.concat(cmds, " ") .. " wait; }")
    local ok = 0
    for _, out in ipairs(outs) do
      if read_lines(out)[1] == "200" then ok = ok + 1 end
      os.remove(out)
    end
    local extra = store:catalogue():policy().migration_extra
    local total = 0
    for _, key in ipairs(keys) do
      local n = #store:installations(key)
      assert.is_true(n >= 1 and n <= 1 + extra, key .. " has " .. n)
      total = total + n
    end
    assert.are.equal(total, ok)
    one:stop(); two:stop()
  end)
end)
