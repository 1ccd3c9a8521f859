-- The gateway (rules.md section 7) on a real nginx with lua-nginx-module:
-- every route and status code, the fraud story over HTTP with the server's
-- day pinned by configuration, racing workers, a restart under load, and a
-- malformed-request corpus that never yields a 500 or changes the store.
local licensor = require "licensor"
local cjson = require "cjson.safe"
local gateway = require "support.gateway"
local stores = require "support.stores"
local socket = require "socket"

local TOKEN = "test-admin-token-1234567890"

-- Whatever a failed spec left running is stopped with the file.
teardown(function() gateway.stop_all() end)

-- A store with the bundled catalogue, closed so nginx owns the writing.
local function fresh_db()
  local path = stores.path()
  local store = assert(licensor.open(path))
  assert(store:import("lua/licensor/catalogues/smartertools.lua"))
  store:close()
  return path
end

local function issue(server, fields)
  local body = { product = "smartertrack", edition = "enterprise", level = 5, owner = "acme" }
  for k, v in pairs(fields or {}) do body[k] = v end
  local status, answer = server:admin("issue", body)
  assert.are.equal(200, status, cjson.encode(answer))
  return answer.license
end

local function activate(server, key, name, build)
  return server:request("POST", "/v1/activate", { key = key, server = name, build = build or 6911 })
end

describe("the gateway", function()
  local db, server

  setup(function()
    db = fresh_db()
    server = gateway.start{ db = db, today = "2019-06-01", token = TOKEN }
  end)

  teardown(function()
    server:stop()
    stores.remove(db)
  end)

  it("answers /healthz with 200 {ok=true} as JSON", function()
    local status, answer, headers = server:request("GET", "/healthz")
    assert.are.same({ 200, { ok = true } }, { status, answer })
    assert.are.equal("application/json", headers["content-type"])
  end)

  it("holds server names to the store's one limit: 255 bytes answer, 256 is a 400", function()
    local key = issue(server).key
    assert.are.equal(200, (activate(server, key, string.rep("s", 255))))
    for _, name in ipairs({ string.rep("s", 256), "bad\255name", "rtl\226\128\174name", "tab\tname" }) do
      local status, answer = activate(server, key, name)
      assert.are.same({ 400, "invalid_request" }, { status, answer.code }, name)
    end
  end)

  it("reads a license's events, installations and upgrade quote over admin routes, behind the token", function()
    local key = issue(server).key
    assert.are.equal(200, (activate(server, key, "reader")))
    local headers = { Authorization = "Bearer " .. TOKEN }
    local status, answer = server:request("GET", "/v1/admin/licenses/" .. key .. "/events", nil, headers)
    assert.are.same({ 200, true, "issue", "activate" }, { status, answer.ok, answer.events[1].kind, answer.events[2].kind })
    status, answer = server:request("GET", "/v1/admin/licenses/" .. key .. "/installations", nil, headers)
    assert.are.same({ 200, "reader" }, { status, answer.installations[1].server })
    status, answer = server:request("GET", "/v1/admin/licenses/" .. key .. "/quote?level=10", nil, headers)
    assert.are.same({ 200, true, 33000 }, { status, answer.ok, answer.quote })
    status, answer = server:request("GET", "/v1/admin/licenses/" .. key .. "/quote?level=ten", nil, headers)
    assert.are.same({ 400, "invalid_request" }, { status, answer.code })
    assert.are.equal(401, (server:request("GET", "/v1/admin/licenses/" .. key .. "/events")))
    -- No installations is an empty list, [] as the CLI writes it, not {}.
    local fresh = issue(server).key
    local code, text = server:raw("GET /v1/admin/licenses/" .. fresh .. "/installations HTTP/1.1\r\nHost: x\r\n" ..
      "Authorization: Bearer " .. TOKEN .. "\r\nConnection: close\r\n\r\n")
    assert.are.equal(200, code)
    assert.matches('"installations":[]', text, 1, true)
  end)

  it("issues existing customers' licenses with their own start, recorded on the server's day", function()
    local status, answer = server:admin("issue", { product = "smartertrack", edition = "enterprise", level = 5,
                                                   owner = "old-customer", start = "2016-03-01" })
    assert.are.same({ 200, "2016-03-01", "2017-02-28" }, { status, answer.license.start, answer.license.ms_expires })
    status, answer = server:admin("issue", { product = "smartertrack", edition = "enterprise", level = 5,
                                             start = "2016-02-30" })
    assert.are.same({ 400, "invalid_date" }, { status, answer.code })
  end)

  it("carries \"ok\": true in every 200 body, and no timing header", function()
    local key = issue(server).key
    local status, answer, headers = activate(server, key, "okay")
    assert.are.same({ 200, true }, { status, answer.ok })
    assert.is_nil(headers["x-licensor-write-us"])
    for _, path in ipairs({ "/v1/licenses/" .. key, "/v1/licenses/" .. key .. "/eligible",
                            "/v1/licenses/" .. key .. "/builds/6911", "/healthz" }) do
      status, answer = server:request("GET", path)
      assert.are.same({ 200, true }, { status, answer.ok }, path)
    end
  end)

  it("counts requests, writes, write times and cache reads for Prometheus at /metrics", function()
    local key = issue(server).key
    activate(server, key, "counted")
    server:request("GET", "/v1/licenses/" .. key)
    server:request("GET", "/v1/licenses/" .. key)
    local status, text = server:request("GET", "/metrics", nil, { Authorization = "Bearer " .. TOKEN })
    assert.are.equal(200, status)
    assert.matches('licensor_requests_total{route="activate",status="200"} %d+', text)
    assert.matches('licensor_writes_total{workflow="activate",outcome="ok"} %d+', text)
    assert.matches('licensor_write_microseconds_bucket{le="%+Inf"} [1-9]', text)
    assert.matches('licensor_cache_reads_total{result="hit"} [1-9]', text)
    assert.are.equal(401, (server:request("GET", "/metrics")))
  end)

  it("issues a license through an admin workflow starting on the server's day", function()
    local lic = issue(server)
    assert.are.same({ "2019-06-01", "2020-05-31", "acme" }, { lic.start, lic.ms_expires, lic.owner })
  end)

  it("needs the admin bearer token (401 without it or with a wrong one)", function()
    local status, answer, headers = server:request("POST", "/v1/admin/issue", { product = "smartertrack" })
    assert.are.same({ 401, "unauthorized" }, { status, answer.code })
    assert.are.equal("Bearer", headers["www-authenticate"])
    status = server:request("POST", "/v1/admin/issue", { product = "smartertrack" },
      { Authorization = "Bearer " .. TOKEN .. "x" })
    assert.are.equal(401, status)
    status = server:request("POST", "/v1/admin/nope", {}, { Authorization = "Bearer " .. TOKEN })
    assert.are.equal(404, status)
  end)

  it("checks the token before anything else under /v1/admin/: no route name can be probed", function()
    for _, probe in ipairs({ { "POST", "/v1/admin/nope" }, { "GET", "/v1/admin/issue" },
                             { "POST", "/v1/admin/" }, { "DELETE", "/v1/admin/sweep/x" } }) do
      local status, answer = server:request(probe[1], probe[2], probe[1] == "POST" and "{}" or nil)
      assert.are.same({ 401, "unauthorized" }, { status, answer.code }, probe[2])
    end
  end)

  it("reads the Bearer scheme in any case", function()
    for _, scheme in ipairs({ "Bearer", "bearer", "BEARER", "bEaReR" }) do
      local status = server:request("POST", "/v1/admin/sweep", {}, { Authorization = scheme .. " " .. TOKEN })
      assert.are.equal(200, status, scheme)
    end
    assert.are.equal(401, (server:request("POST", "/v1/admin/sweep", {}, { Authorization = "Basic " .. TOKEN })))
  end)

  it("runs an admin POST with an Idempotency-Key once: 30 retried renewals extend M&S one term", function()
    local key = issue(server).key
    local headers = { Authorization = "Bearer " .. TOKEN, ["Idempotency-Key"] = "renew-" .. key }
    local first_status, first = server:request("POST", "/v1/admin/renew", { key = key }, headers)
    assert.are.same({ 200, "2021-05-31" }, { first_status, first.license.ms_expires })
    for _ = 1, 30 do
      local status, again, answer_headers = server:request("POST", "/v1/admin/renew", { key = key },
        { Authorization = "Bearer " .. TOKEN, ["Idempotency-Key"] = "renew-" .. key })
      assert.are.same({ 200, first, "true" }, { status, again, answer_headers["idempotent-replayed"] })
    end
    local _, status_now = server:request("GET", "/v1/licenses/" .. key)
    assert.are.equal("2021-05-31", status_now.ms_expires)
    local status, conflict = server:request("POST", "/v1/admin/disable", { key = key },
      { Authorization = "Bearer " .. TOKEN, ["Idempotency-Key"] = "renew-" .. key })
    assert.are.same({ 422, "idempotency_conflict" }, { status, conflict.code })
    -- Without the header every renewal renews.
    local _, plain = server:admin("renew", { key = key })
    assert.are.equal("2022-05-31", plain.license.ms_expires)
  end)

  it("activates: 200 with the eligible build and the migration, 403 for refusals", function()
    local lic = issue(server)
    local status, answer = activate(server, lic.key, "mail1")
    assert.are.equal(200, status)
    assert.are.same({ true, 7077, "ok" }, { answer.ok, answer.eligible.number, answer.migration.state })
    status, answer = activate(server, lic.key, "mail2")
    assert.are.same({ 200, "migrating" }, { status, answer.migration.state })
    status, answer = activate(server, lic.key, "mail3")
    assert.are.same({ 403, false, "too_many_installations" }, { status, answer.ok, answer.code })
    assert.is_string(answer.message)
    status, answer = activate(server, lic.key, "mail4", 9999)
    assert.are.same({ 403, "unknown_build" }, { status, answer.code })
  end)

  it("checks in and deactivates with the same answer shape", function()
    local lic = issue(server)
    activate(server, lic.key, "a", 6911)
    local status, answer = server:request("POST", "/v1/checkin", { key = lic.key, server = "a", build = 7077 })
    assert.are.same({ 200, true }, { status, answer.ok })
    status, answer = server:request("POST", "/v1/checkin", { key = lic.key, server = "b" })
    assert.are.same({ 403, "not_activated" }, { status, answer.code })
    status, answer = server:request("POST", "/v1/deactivate", { key = lic.key, server = "a" })
    assert.are.same({ 200, 0 }, { status, answer.migration.active })
  end)

  it("reads a license's status, eligible build and whether a build may be installed", function()
    local lic = issue(server)
    local status, answer = server:request("GET", "/v1/licenses/" .. lic.key)
    assert.are.same({ 200, true, "active", "2020-05-31" }, { status, answer.valid, answer.ms, answer.ms_expires })
    assert.are.equal(7077, answer.eligible.number)
    status, answer = server:request("GET", "/v1/licenses/" .. lic.key .. "/eligible")
    assert.are.same({ 200, 7077, "2019-05-18" }, { status, answer.number, answer.released })
    status, answer = server:request("GET", "/v1/licenses/" .. lic.key .. "/eligible?on=2019-01-01")
    assert.are.same({ 403, "not_started" }, { status, answer.code })
    status, answer = server:request("GET", "/v1/licenses/" .. lic.key .. "/eligible?on=2019-02-30")
    assert.are.same({ 400, "invalid_date" }, { status, answer.code })
    status, answer = server:request("GET", "/v1/licenses/" .. lic.key .. "/builds/6911")
    assert.are.same({ 200, { ok = true } }, { status, answer })
    status, answer = server:request("GET", "/v1/licenses/" .. lic.key .. "/builds/9787")
    assert.are.same({ 403, false, "newer_than_eligible" }, { status, answer.ok, answer.code })
    status, answer = server:request("GET", "/v1/licenses/" .. lic.key .. "/builds/latest")
    assert.are.same({ 400, "invalid_request" }, { status, answer.code })
  end)

  it("tells malformed keys (400 invalid_key) from unknown ones (404 unknown_key)", function()
    local status, answer = server:request("GET", "/v1/licenses/NOT-A-KEY")
    assert.are.same({ 400, "invalid_key" }, { status, answer.code })
    local unknown = require("licensor.core").new_key()
    status, answer = server:request("GET", "/v1/licenses/" .. unknown)
    assert.are.same({ 404, "unknown_key" }, { status, answer.code })
    status, answer = activate(server, unknown, "x")
    assert.are.same({ 404, "unknown_key" }, { status, answer.code })
  end)

  it("answers wrong methods with 405 and Allow, unknown routes with 404", function()
    local status, answer, headers = server:request("GET", "/v1/activate")
    assert.are.same({ 405, "method_not_allowed", "POST" }, { status, answer.code, headers.allow })
    status, answer = server:request("DELETE", "/healthz")
    assert.are.same({ 405, "method_not_allowed" }, { status, answer.code })
    status, answer = server:request("GET", "/v2/anything")
    assert.are.same({ 404, "not_found" }, { status, answer.code })
  end)

  it("refuses bodies over 16 KiB with 413 JSON", function()
    local status, answer = server:request("POST", "/v1/activate", string.rep("x", 16 * 1024 + 1))
    assert.are.same({ 413, "too_large" }, { status, answer.code })
    status, answer = server:request("POST", "/v1/admin/issue", string.rep("{", 1024 * 1024),
      { Authorization = "Bearer " .. TOKEN })
    assert.are.same({ 413, "too_large" }, { status, answer.code })
  end)

  it("runs the admin workflows", function()
    local lic = issue(server)
    local function ok(workflow, body)
      local status, answer = server:admin(workflow, body)
      assert.are.equal(200, status, workflow .. ": " .. cjson.encode(answer))
      return answer
    end
    assert.are.equal("2021-05-31", ok("renew", { key = lic.key }).license.ms_expires)
    local status, answer = server:admin("upgrade", { key = lic.key, level = 10, paid = 1 })
    assert.are.same({ 403, "wrong_amount" }, { status, answer.code })
    local price = tonumber(answer.message:match("costs (%d+)"))
    assert.are.equal(10, ok("upgrade", { key = lic.key, level = 10, paid = price }).license.level)
    assert.are.equal("live_chat_translation",
      next(ok("add_addon", { key = lic.key, addon = "live_chat_translation" }).license.addons))
    assert.are.equal("chargeback", ok("disable", { key = lic.key, reason = "chargeback" }).license.disabled_reason)
    assert.is_nil(ok("enable", { key = lic.key }).license.disabled)
    status, answer = server:admin("transfer", { key = lic.key, owner = "globex" })
    assert.are.same({ 403, "transfer_requires_consent" }, { status, answer.code })
    assert.are.equal("globex", ok("transfer", { key = lic.key, owner = "globex", consent = "EULA-9" }).license.owner)
    assert.are.equal("it@globex.example", ok("set", { key = lic.key, email = "it@globex.example" }).license.email)
    assert.are.equal("ops@acme.example", issue(server, { email = "ops@acme.example" }).email)
    status, answer = server:admin("issue", { product = "smartertrack", edition = "enterprise", level = 5,
                                             email = "ops@acme" })
    assert.are.same({ 400, "invalid_request", "email: the domain needs a dot (example.com)" },
                    { status, answer.code, answer.message })
    status, answer = server:admin("set", { key = lic.key, email = "it at globex" })
    assert.are.same({ 400, "invalid_request" }, { status, answer.code })
    assert.is_nil(ok("set", { key = lic.key, email = "" }).license.email)
    local lease = issue(server, { kind = "lease" })
    assert.are.equal("2019-06-01", ok("end_lease", { key = lease.key }).license.lease_ended)
    local swept = ok("sweep", {})
    assert.are.same({ {}, {} }, { swept.taken, swept.skipped })
    -- Every workflow, issue, transfer and set included, is on the server's (pinned) day.
    local _, events = server:request("GET", "/v1/admin/licenses/" .. lic.key .. "/events", nil,
                                     { Authorization = "Bearer " .. TOKEN })
    local days = {}
    for _, e in ipairs(events.events) do days[e.kind] = e.at end
    assert.are.same({ "2019-06-01", "2019-06-01", "2019-06-01", "2019-06-01" },
                    { days.issue, days.transfer, days.set, days.disable })
  end)

  it("refuses a request that tries to choose the day it is recorded on", function()
    local status, answer = server:admin("issue", { product = "smartertrack", edition = "enterprise", level = 5,
                                                   on = "2017-01-01" })
    assert.are.same({ 400, "invalid_request" }, { status, answer.code })
    status, answer = server:admin("renew", { key = issue(server).key, on = "2017-01-01" })
    assert.are.same({ 400, "invalid_request" }, { status, answer.code })
    local lic = issue(server)
    status, answer = server:request("POST", "/v1/activate", { key = lic.key, server = "a", build = 6911, on = "2018-01-01" })
    assert.are.same({ 400, "invalid_request" }, { status, answer.code })
  end)
end)

describe("the gateway's malformed-request corpus", function()
  local db, server, key

  setup(function()
    db = fresh_db()
    server = gateway.start{ db = db, today = "2019-06-01", token = TOKEN }
    key = issue(server).key
    activate(server, key, "mail1")
  end)

  teardown(function()
    server:stop()
    stores.remove(db)
  end)

  local BODIES = {
    "", "{", "}", "[]", "[1,2,3]", "null", "true", "42", '"text"', "{'key': 1}", '{"key":}',
    '{"key": "' .. string.rep("A", 5000) .. '"}', '{"key": 1e400}', '{"build": 18446744073709551616}',
    '{"key": "ÅÄÖ-日本語-🎉", "server": "ü", "build": 6911}', '{"key": "\\u0000", "server": "a", "build": 1}',
    '{"key": null, "server": null, "build": null}', '{"key": [], "server": {}, "build": "6911"}',
    '{"key": "KEY", "server": "", "build": 6911}', '{"key": "KEY", "server": "a\\u0001b", "build": 6911}',
    '{"key": "KEY", "server": "a", "build": 0}', '{"key": "KEY", "server": "a", "build": 6911.5}',
    '{"key": "KEY", "server": "a", "build": 1e300}', '{"key": "KEY", "server": "' .. string.rep("s", 300) .. '"}',
    '{"key": "KEY", "server": "a", "build": 6911, "on": "2001-01-01"}', '{"key": "KEY", "extra": 1}',
    '{"key": "KEY", "level": "ten", "paid": -5}', '{"key": "KEY", "level": 10, "paid": 1.5}',
    '{"key": true, "server": false, "build": -1}', '{"build": 1.5}', '{"build": -0}', '{"build": 1e15}',
    string.rep("[", 5000) .. string.rep("]", 5000), '{"a":' .. string.rep('{"a":', 100) .. "1" .. string.rep("}", 101),
    "\0\0\0\0", "\255\254\253", '{"key":"' .. "x\0y" .. '"}',
  }

  local function store_dump()
    local store = assert(licensor.open(db))
    local dump = stores.dump(store)
    store:close()
    return dump
  end

  it("never answers 500, always answers JSON, and never changes the store", function()
    local before = store_dump()
    local bad = {}
    local paths = { "/v1/activate", "/v1/checkin", "/v1/deactivate", "/v1/admin/issue", "/v1/admin/renew",
                    "/v1/admin/upgrade", "/v1/admin/sweep2" }
    for _, path in ipairs(paths) do
      for i, body in ipairs(BODIES) do
        -- "KEY" stands for a real key, so that validation goes past the key.
        local b = body:gsub('"KEY"', '"' .. key .. '"')
        local status, answer = server:request("POST", path, b, { Authorization = "Bearer " .. TOKEN })
        if status == nil or status >= 500 or type(answer) ~= "table" or answer.ok ~= false then
          bad[#bad + 1] = path .. " body " .. i .. ": " .. tostring(status) .. " " .. cjson.encode(answer)
        end
      end
    end
    assert.are.same({}, bad)
    assert.are.equal(before, store_dump())
  end)

  it("reads hexadecimal, Infinity and NaN as the invalid JSON they are", function()
    for _, build in ipairs({ "0x1AFF", "0X1aff", "Infinity", "-Infinity", "NaN" }) do
      local status, answer = server:request("POST", "/v1/activate",
        '{"key": "' .. key .. '", "server": "mail1", "build": ' .. build .. '}')
      assert.are.same({ 400, "invalid_json" }, { status, answer.code }, build)
    end
  end)

  it("answers odd paths, methods and raw requests with JSON 4xx", function()
    local before = store_dump()
    local checks = {
      { "GET", "/v1/licenses/" .. string.rep("A", 3000) }, { "GET", "/v1/licenses/%00%ff" },
      { "GET", "/v1/licenses/" .. key .. "/builds/99999999999999999999" },
      { "GET", "/v1/licenses/" .. key .. "/eligible?on=" .. string.rep("9", 500) },
      { "GET", "/v1/licenses/" .. key .. "/other" }, { "PUT", "/v1/licenses/" .. key },
      { "GET", "/../../etc/passwd" }, { "POST", "/healthz" }, { "GET", "/v1/admin/issue" },
    }
    for _, c in ipairs(checks) do
      local status, answer = server:request(c[1], c[2], c[1] ~= "GET" and "{}" or nil)
      assert.is_true(status >= 400 and status < 500, c[1] .. " " .. c[2] .. " -> " .. tostring(status))
      assert.are.equal(false, type(answer) == "table" and answer.ok, c[2])
    end
    local status = server:raw("GARBAGE\r\n\r\n")
    assert.are.equal(400, status)
    status = server:raw("GET /" .. string.rep("a", 20000) .. " HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.is_true(status == 414 or status == 400)
    status = server:raw("POST /v1/activate HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{\"ke")
    assert.is_true(status == nil or (status >= 400 and status < 500))
    assert.are.equal(before, store_dump())
    assert.is_nil(server:error_log():find("stack traceback"))
  end)
end)

describe("the gateway under pressure", function()
  it("limits requests per client address and per key with 429 and Retry-After", function()
    local db = fresh_db()
    -- Limits of 2 a second and 30 quick requests: however the requests fall
    -- across second boundaries, at least 10 are over the limit.
    local server = gateway.start{ db = db, today = "2019-06-01", token = TOKEN, rate_per_ip = 1000, rate_per_key = 2 }
    local key = issue(server).key
    local limited, retry = 0, nil
    for _ = 1, 30 do
      local status, answer, headers = server:request("GET", "/v1/licenses/" .. key)
      if status == 429 then
        limited = limited + 1
        retry = headers["retry-after"]
        assert.are.equal("rate_limited", answer.code)
      end
    end
    server:stop()
    assert.is_true(limited >= 10)
    assert.are.equal("1", retry)
    server = gateway.start{ db = db, today = "2019-06-01", token = TOKEN, rate_per_ip = 2 }
    limited = 0
    for _ = 1, 30 do
      if server:request("GET", "/v1/licenses/" .. key) == 429 then limited = limited + 1 end
    end
    server:stop()
    stores.remove(db)
    assert.is_true(limited >= 10)
  end)

  it("keeps two workers activating one key at once within the allowance plus migration_extra", function()
    local db = fresh_db()
    local server = gateway.start{ db = db, today = "2019-06-01", token = TOKEN, workers = 2 }
    local rounds, over = 4, 0
    for round = 1, rounds do
      local key = issue(server).key
      local outs, cmds = {}, {}
      for i = 1, 12 do
        outs[i] = os.tmpname()
        cmds[i] = string.format("curl -s -o /dev/null -w '%%{http_code}' -X POST %s/v1/activate -d '%s' > %s &",
          server.url, cjson.encode({ key = key, server = "r" .. round .. "-" .. i, build = 6911 }), outs[i])
      end
      gateway.run("{ " .. table.concat(cmds, " ") .. " wait; }")
      local accepted = 0
      for i = 1, 12 do
        local f = io.open(outs[i])
        if f:read("*a") == "200" then accepted = accepted + 1 end
        f:close()
        os.remove(outs[i])
      end
      local _, answer = server:request("GET", "/v1/licenses/" .. key)
      local store = assert(licensor.open(db))
      local active = #store:query("SELECT seq FROM installations WHERE key = ? AND deactivated IS NULL", key)
      store:close()
      if accepted > 2 or active > 2 then over = over + 1 end
      assert.is_true(answer.valid)
    end
    server:stop()
    stores.remove(db)
    assert.are.equal(0, over)
  end)

  it("holds 9,000 slow connections from one address while another keeps its usual latency", function()
    local process = require("licensor.core").process
    local db = fresh_db()
    local server = gateway.start{ db = db, today = "2019-06-01", token = TOKEN }
    -- GET /healthz from 127.0.0.2: status and seconds taken.
    local function from_elsewhere()
      local c = socket.tcp()
      c:settimeout(5)
      assert(c:bind("127.0.0.2", 0))
      local t0 = socket.gettime()
      local status
      if c:connect("127.0.0.1", server.port) then
        c:send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        local line = c:receive("*l")
        status = line and tonumber(line:match("^HTTP/1%.1 (%d+)"))
      end
      c:close()
      return status, socket.gettime() - t0
    end
    local usual = 0
    for _ = 1, 20 do usual = math.max(usual, select(2, from_elsewhere())) end
    local ready = os.tmpname()
    os.remove(ready)
    local attacker = assert(process.spawn(require("support.child_env").argv({ "sh", "-c",
      'ulimit -n 10000 && exec lua5.4 "$0" "$@"', "spec/support/slowloris.lua", tostring(server.port), "9000", "6",
      ready })))
    finally(function() process.stop(attacker, 0); server:stop(); stores.remove(db); os.remove(ready) end)
    local held
    for _ = 1, 200 do
      local f = io.open(ready)
      held = f and tonumber(f:read("*l"))
      if f then f:close() end
      if held then break end
      socket.sleep(0.05)
    end
    assert.are.equal(9000, held)
    local worst, answered = 0, 0
    for _ = 1, 50 do
      local status, took = from_elsewhere()
      if status == 200 then answered = answered + 1 end
      worst = math.max(worst, took)
      socket.sleep(0.02)
    end
    assert.are.equal(50, answered)
    assert.is_true(worst < math.max(0.25, 20 * usual), "worst " .. worst .. " s, usually " .. usual .. " s")
  end)

  it("loses no acknowledged activation when nginx is killed and restarted mid-load", function()
    local db = fresh_db()
    local server = gateway.start{ db = db, today = "2019-06-01", token = TOKEN }
    local keys = {}
    for i = 1, 40 do keys[i] = issue(server, { failover = true }).key end
    local acknowledged, attempts = {}, 0
    local started = socket.gettime()
    local restarted = false
    while socket.gettime() - started < 3 do
      attempts = attempts + 1
      local key = keys[attempts % #keys + 1]
      local name = "load-" .. attempts
      local status = activate(server, key, name)
      if status == 200 then
        acknowledged[#acknowledged + 1] = { key, name }
        server:request("POST", "/v1/deactivate", { key = key, server = name })
      end
      if not restarted and socket.gettime() - started > 1 then
        server:stop()
        server = gateway.start{ db = db, today = "2019-06-01", token = TOKEN, port = server.port, prefix = server.prefix }
        restarted = true
      end
    end
    server:stop()
    local store = assert(licensor.open(db))
    local missing = 0
    for _, a in ipairs(acknowledged) do
      if #store:query("SELECT seq FROM installations WHERE key = ? AND server = ?", a[1], a[2]) ~= 1 then
        missing = missing + 1
      end
    end
    assert.are.equal("ok", store:query("PRAGMA integrity_check")[1].integrity_check)
    store:close()
    stores.remove(db)
    assert.is_true(#acknowledged > 20)
    assert.are.equal(0, missing)
  end)
end)

describe("certificates over the API", function()
  it("answers an activation and a drifted check-in with the installation's certificate", function()
    local certificate = require "licensor.certificate"
    local core = require "licensor.core"
    local db = fresh_db()
    local key_file = os.tmpname()
    os.remove(key_file)
    local public = assert(certificate.new_key_files(key_file))
    local server = gateway.start{ db = db, today = "2019-06-01", token = TOKEN, signing_key_file = key_file }
    finally(function()
      server:stop()
      stores.remove(db)
      os.remove(key_file)
      os.remove(key_file .. ".pub")
    end)
    local key = issue(server).key
    local fp = "v1:mid=1111111111111111,uuid=2222222222222222,mac=3333333333333333,host=4444444444444444"
    local status, answer = server:request("POST", "/v1/activate", { key = key, server = "m1", build = 6911,
                                                                    fingerprint = fp })
    assert.are.equal(200, status)
    local now = core.day("2019-06-02") * 86400
    local verdict = licensor.verify(answer.certificate, { public_keys = { public }, product = "smartertrack",
                                                          fingerprint = fp, now = now })
    assert.are.same({ "valid", "m1", "2019-07-01" },
      { verdict.verdict, verdict.certificate.server, verdict.certificate.refresh_by })
    local drifted = "v1:mid=1111111111111111,uuid=2222222222222222,mac=5555555555555555,host=4444444444444444"
    status, answer = server:request("POST", "/v1/checkin", { key = key, server = "m1", fingerprint = drifted })
    assert.are.equal(200, status)
    verdict = licensor.verify(answer.certificate, { public_keys = { public }, product = "smartertrack",
                                                    fingerprint = drifted, now = now })
    assert.are.equal("valid", verdict.verdict)
    status, answer = server:request("POST", "/v1/checkin", { key = key, server = "m1",
      fingerprint = "v1:mid=9999999999999999,uuid=9999999999999999,mac=9999999999999999,host=4444444444444444" })
    assert.are.same({ 403, "wrong_machine" }, { status, answer.code })
    status, answer = server:request("POST", "/v1/activate", { key = key, server = "m2", build = 6911 })
    assert.are.same({ 200, nil }, { status, answer.certificate })   -- no fingerprint, no certificate
    status, answer = server:request("POST", "/v1/activate", { key = key, server = "m3", build = 6911,
                                                              fingerprint = "not a fingerprint" })
    assert.are.same({ 400, "invalid_request" }, { status, answer.code })
  end)
end)

describe("the allowance over the API", function()
  local certificate = require "licensor.certificate"
  local core = require "licensor.core"

  local function machine(n)
    local h = string.rep(string.format("%x", n % 16), 16)
    return "v1:mid=" .. h .. ",uuid=" .. h .. ",mac=" .. h .. ",host=" .. h
  end

  local function receipt_of(text)
    local c = assert(core.read_certificate(text))
    return "-----BEGIN LICENSOR RETURN RECEIPT-----\nformat: 1\nlicense: " .. c.license .. "\nserver: " ..
      c.server .. "\nfingerprint: " .. c.fingerprint .. "\ncertificate: " .. certificate.signature_of(text) ..
      "\n-----END LICENSOR RETURN RECEIPT-----\n"
  end

  it("keeps a certificate's slot across /v1/deactivate until a receipt frees it; a sweep never answers 500",
     function()
    local db = fresh_db()
    local key_file = os.tmpname()
    os.remove(key_file)
    assert(certificate.new_key_files(key_file))
    local server = gateway.start{ db = db, today = "2019-06-01", token = TOKEN, signing_key_file = key_file }
    finally(function()
      server:stop()
      stores.remove(db)
      os.remove(key_file)
      os.remove(key_file .. ".pub")
    end)
    local key = issue(server).key
    local certified, refused = 0, {}
    for n = 1, 6 do
      local status, answer = server:request("POST", "/v1/activate", { key = key, server = "m" .. n,
                                                                      build = 6911, fingerprint = machine(n) })
      if status == 200 then
        assert.is_string(answer.certificate)
        certified = certified + 1
        status, answer = server:request("POST", "/v1/deactivate", { key = key, server = "m" .. n })
        assert.are.same({ 200, "2019-07-15" }, { status, answer.held_until })
      else
        refused[#refused + 1] = answer.code
      end
    end
    assert.are.equal(2, certified)
    assert.are.same({ "too_many_installations", "too_many_installations", "too_many_installations",
                      "too_many_installations" }, refused)
    -- The honest path: the product deactivates with its receipt; the slot frees at once.
    local status, answer = server:request("POST", "/v1/activate", { key = key, server = "m1", build = 6911,
                                                                    fingerprint = machine(1) })
    assert.are.equal(200, status)
    local text = answer.certificate
    status, answer = server:request("POST", "/v1/deactivate", { key = key, server = "m1",
                                                                receipt = receipt_of(text) })
    assert.are.same({ 200, nil }, { status, answer.held_until })
    status, answer = server:request("POST", "/v1/deactivate", { key = key, server = "m2", receipt = "forged" })
    assert.are.same({ 403, "invalid_receipt" }, { status, answer.code })
    -- A deactivated machine that calls in is answered its revocation.
    status, answer = server:request("POST", "/v1/checkin", { key = key, server = "m2", fingerprint = machine(2) })
    assert.are.same({ 403, "not_activated" }, { status, answer.code })
    assert.matches("BEGIN LICENSOR REVOCATION", answer.revocation, 1, true)
    -- A key with excess that no catalogue answers is skipped by the sweep, never a 500.
    local ghost = issue(server).key
    assert.are.equal(200, (activate(server, ghost, "g1")))
    assert.are.equal(200, (activate(server, ghost, "g2")))
    local raw = stores.raw(db)
    raw:exec("UPDATE licenses SET product = 'ghost' WHERE key = '" .. ghost .. "'")
    raw:close()
    status, answer = server:admin("sweep", {})
    assert.are.same({ 200, ghost }, { status, answer.skipped and answer.skipped[1] and answer.skipped[1].key })
  end)
end)

describe("the fraud story over the API", function()
  it("escalates a key on two servers to a disabled key, day by pinned day", function()
    local db = fresh_db()
    local server
    local function on_day(day)
      if server then server:stop() end
      server = gateway.start{ db = db, today = day, token = TOKEN }
    end
    local function both_check_in(key)
      for _, name in ipairs({ "mail-old", "mail-new" }) do
        local status = server:request("POST", "/v1/checkin", { key = key, server = name })
        assert.are.equal(200, status)
      end
    end
    on_day("2019-06-01")
    local key = issue(server).key
    assert.are.equal(200, (activate(server, key, "mail-old")))
    on_day("2019-06-05")
    local status, answer = activate(server, key, "mail-new")
    assert.are.same({ 200, "migrating", "2019-06-05", "2019-07-04" },
      { status, answer.migration.state, answer.migration.since, answer.migration.deadline })
    both_check_in(key)
    local steps = {}
    for _, day in ipairs({ "2019-06-12", "2019-06-19", "2019-06-26", "2019-07-03", "2019-07-05",
                           "2019-07-10", "2019-07-12", "2019-07-17", "2019-07-19" }) do
      on_day(day)
      both_check_in(key)
      local _, swept = server:admin("sweep")
      for _, t in ipairs(swept.taken) do steps[#steps + 1] = day .. " " .. t.action end
    end
    assert.are.same({ "2019-07-05 email_customer", "2019-07-05 notify_fraud_team",
                      "2019-07-12 phone_customer", "2019-07-19 disable_key" }, steps)
    status, answer = server:request("GET", "/v1/licenses/" .. key)
    assert.are.same({ 200, false, "disabled" }, { status, answer.valid, answer.state })
    status, answer = activate(server, key, "mail-third")
    assert.are.same({ 403, "disabled" }, { status, answer.code })
    server:stop()
    stores.remove(db)
  end)
end)

describe("a gateway without an admin token file or a store", function()
  it("turns admin routes off and reports an unusable store on /healthz", function()
    local db = fresh_db()
    local server = gateway.start{ db = db, today = "2019-06-01" }
    local status, answer = server:request("POST", "/v1/admin/issue", {}, { Authorization = "Bearer x" })
    assert.are.same({ 404, "admin_disabled" }, { status, answer.code })
    server:stop()
    stores.remove(db)
    local missing = gateway.start{ db = "/nonexistent/dir/licenses.db", today = "2019-06-01" }
    status, answer = missing:request("GET", "/healthz")
    assert.are.same({ 503, false }, { status, answer.ok })
    status, answer = missing:request("GET", "/v1/licenses/" .. require("licensor.core").new_key())
    assert.are.same({ 503, "store_unavailable" }, { status, answer.code })
    missing:stop()
  end)

  it("reports an unreadable database as 503 in words that name no SQLite error, and recovers by itself", function()
    local path = stores.path()
    local f = assert(io.open(path, "wb"))
    f:write(string.rep("not a database ", 400))
    f:close()
    local server = gateway.start{ db = path, today = "2019-06-01", workers = 1 }
    for _, route in ipairs({ "/healthz", "/v1/licenses/" .. require("licensor.core").new_key() }) do
      local status, answer = server:request("GET", route)
      assert.are.same({ 503, "store_unavailable", "the license store is unavailable; try again later" },
        { status, answer.code, answer.message }, route)
    end
    os.remove(path)
    local store = assert(licensor.open(path))
    assert(store:import("lua/licensor/catalogues/smartertools.lua"))
    store:close()
    local status
    for _ = 1, 100 do   -- the worker retries with a backoff of at most 5 s
      status = server:request("GET", "/healthz")
      if status == 200 then break end
      socket.sleep(0.1)
    end
    assert.are.equal(200, status)
    server:stop()
    stores.remove(path)
  end)
end)

describe("licensor gateway (the command)", function()
  local process = require("licensor.core").process
  local vm = jit and "luajit" or "lua5.4"

  -- Starts `licensor gateway` on this suite's VM, in its own process group,
  -- and waits until it answers.  Returns its pid, the prefix and a client.
  local function start_command(db, prefix)
    local port = gateway.free_port()
    prefix = prefix or os.tmpname() .. ".cmd"
    local pid = assert(process.spawn(require("support.child_env").argv({
      "LUA_PATH=lua/?.lua;lua/?/init.lua;;", "LUA_CPATH=build/" .. vm .. "/?.so;;",
      "LICENSOR_GATEWAY_CPATH=" .. os.getenv("PWD") .. "/build/luajit",
      vm, "lua/bin/licensor", "--db", db, "gateway", "--listen", "127.0.0.1:" .. port,
      "--today", "2019-06-01", "--prefix", prefix, "--rate-per-ip", "0" }), prefix .. ".out"))
    gateway.register(pid, prefix)
    local client = gateway.client(port)
    for _ = 1, 200 do
      if client:request("GET", "/healthz") then break end
      socket.sleep(0.05)
    end
    return pid, prefix, client
  end

  local function read(path)
    local f = io.open(path)
    if not f then return "" end
    local text = f:read("*a")
    f:close()
    return text
  end

  -- Started as root, `licensor gateway` runs its workers as nobody, who
  -- must own the database's directory and files (runner.lua): the
  -- documented setup, `chown nobody DIR DIR/licenses.db`.
  local function give_to_workers(path)
    if process.user().uid == 0 then
      assert.is_true(gateway.run("chown nobody '" .. path:gsub("'", "'\\''") .. "'"))
    end
  end

  -- A fresh database in a directory of its own, the workers'.  Returns
  -- the database and a function that removes both.
  local function workers_db()
    local dir = os.tmpname() .. ".d"
    assert.is_true(gateway.run("mkdir -p '" .. dir .. "'"))
    local db = dir .. "/licenses.db"
    assert(os.rename(fresh_db(), db))
    give_to_workers(dir)
    give_to_workers(db)
    return db, function() gateway.run("rm -rf '" .. dir .. "'") end
  end

  it("renders a configuration into its prefix and serves the store in the foreground", function()
    local db, remove = workers_db()
    local pid, prefix, client = start_command(db)
    finally(function() process.stop(pid, 0); remove() end)
    assert.are.equal(200, (client:request("GET", "/healthz")))
    local conf = read(prefix .. "/conf/nginx.conf")
    assert.matches("init_worker_by_lua_block", conf)
    assert.matches('today="2019%-06%-01"', conf)
  end)

  it("lets no shell see --prefix or --db: quotes, spaces and semicolons are only path characters", function()
    local dir = os.tmpname() .. ".d"
    assert.is_true(gateway.run("mkdir -p '" .. dir .. "'"))
    local db = dir .. "/my \"lic'enses\"; {x}.db"
    assert(os.rename(fresh_db(), db))
    give_to_workers(dir)
    give_to_workers(db)
    -- The prefix in a directory of root's (started as root, one in the
    -- workers' directory is refused: runner.lua's root_owned_prefix).
    local gw = os.tmpname() .. ".g"
    assert.is_true(gateway.run("mkdir -p -m 0755 '" .. gw .. "'"))
    local prefix = gw .. "/x';touch PWNED;' \"q\" {gw}"
    local pid, _, client = start_command(db, prefix)
    finally(function() process.stop(pid, 0); gateway.run("rm -rf '" .. dir .. "' '" .. gw .. "'") end)
    assert.are.equal(200, (client:request("GET", "/healthz")))
    local status, answer = client:request("GET", "/v1/licenses/" .. require("licensor.core").new_key())
    assert.are.same({ 404, "unknown_key" }, { status, answer.code })
    assert.is_nil(io.open("PWNED"))
    assert.is_nil(io.open(dir .. "/PWNED"))
    assert.is_not_nil(io.open(prefix .. "/nginx.pid"))
  end)

  for _, signal in ipairs({ "SIGTERM", "SIGINT", "SIGHUP" }) do
    it("stops nginx, master and workers, on " .. signal .. " and nothing listens afterwards", function()
      local db, remove = workers_db()
      local pid, prefix, client = start_command(db)
      finally(function() process.stop(pid, 0); remove() end)
      assert.are.equal(200, (client:request("GET", "/healthz")))
      local master = tonumber(read(prefix .. "/nginx.pid"))
      assert.is_true(process.alive(master))
      assert.is_true(process.signal(pid, signal))
      local code = process.wait(pid, 10000)
      assert.are.equal(0, code, read(prefix .. ".out"))
      assert.is_false(process.alive(master))
      assert.is_nil((client:request("GET", "/healthz")))
      local out = read(prefix .. ".out")
      assert.matches("stopped %(" .. signal .. "%)", out)
      assert.is_nil(out:find("nginx_failed", 1, true))
    end)
  end
end)
