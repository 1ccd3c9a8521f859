-- The gateway's refusals carry `because` (issue 21, item 3): the one line
-- of licensor.explain behind each 403 -- activation, check-in,
-- deactivation, eligibility, a build, a download, an admin workflow --
-- and /metrics counts the policy hooks that failed, which never turn an
-- answer into a 500.  A real nginx on loopback with the server's day
-- pinned; on PostgreSQL too (the suite's cluster, through the thread pool).
local gateway = require "support.gateway"
local stores = require "support.stores"
local cjson = require "cjson.safe"

local TOKEN = "explain-admin-token-1234567890"
local DAY = "2019-06-01"

teardown(function() gateway.stop_all() end)

-- A store with the fixtures catalogue and, when given, a policy file;
-- closed so that nginx owns the writing.
local function fresh_db(policy)
  local store, path = stores.new()
  if policy then assert(store:import_policy(policy, "gateway-policy.lua", "2018-01-01")) end
  store:close()
  return path
end

local function issue(server, fields)
  local body = { product = "smartertrack", edition = "enterprise", level = 5, owner = "acme",
                 start = "2017-12-07" }          -- M&S to 2018-12-06: build 6911 on DAY
  for k, v in pairs(fields or {}) do body[k] = v end
  local status, answer = server:admin("issue", body)
  assert.are.equal(200, status, cjson.encode(answer))
  return answer.license.key
end

local function post(server, route, body)
  return server:request("POST", "/v1/" .. route, body)
end

describe("gateway refusals carry because (" .. stores.backend .. ")", function()
  local db, server

  setup(function()
    db = fresh_db()
    server = gateway.start{ db = db, today = DAY, token = TOKEN, stale_ms = 0 }
  end)

  teardown(function()
    server:stop()
    stores.remove(db)
  end)

  it("an activation on a build newer than the eligible one: R5, then the rule that set the eligible build", function()
    local key = issue(server)
    local status, answer = post(server, "activate", { key = key, server = "a", build = 6947 })
    assert.are.equal(403, status)
    assert.are.equal("newer_than_eligible", answer.code)
    assert.matches("^R5: refused %(newer_than_eligible%): build 6947 is newer than build 6911", answer.because)
    assert.matches("; R3: M&S ended 2018%-12%-06", answer.because)
    assert.is_nil(answer.because:find("\n"))
  end)

  it("a third server during the migration: R10, with the window", function()
    local key = issue(server)
    assert.are.equal(200, (post(server, "activate", { key = key, server = "a", build = 6911 })))
    assert.are.equal(200, (post(server, "activate", { key = key, server = "b", build = 6911 })))
    local status, answer = post(server, "activate", { key = key, server = "c", build = 6911 })
    assert.are.equal(403, status)
    assert.are.equal("too_many_installations", answer.code)
    assert.matches("^R10: refused %(too_many_installations%): 2 installations are active", answer.because)
  end)

  it("a check-in of a server that is not active, and a deactivation of one that never was: R9", function()
    local key = issue(server)
    local status, answer = post(server, "checkin", { key = key, server = "ghost" })
    assert.are.equal(403, status)
    assert.are.equal("not_activated", answer.code)
    assert.matches("^R9: server 'ghost' has no installation active on 2019%-06%-01", answer.because)
    status, answer = post(server, "deactivate", { key = key, server = "ghost" })
    assert.are.equal(403, status)
    assert.matches("^R9: ", answer.because)
  end)

  it("a check-in going back past a rollback barrier: R13", function()
    local key = issue(server, { start = "2018-06-01" })   -- M&S to 2019-05-31: build 7100 on DAY
    assert.are.equal(200, (post(server, "activate", { key = key, server = "a", build = 7010 })))
    local status, answer = post(server, "checkin", { key = key, server = "a", build = 6911 })
    assert.are.equal(403, status)
    assert.are.equal("rollback_barrier", answer.code)
    assert.matches("^R13: refused %(rollback_barrier%)", answer.because)
  end)

  it("eligibility of a disabled key, a build, a download: R1, R5", function()
    local key = issue(server)
    assert.are.equal(200, (server:admin("disable", { key = key, reason = "fraud" })))
    local status, answer = server:request("GET", "/v1/licenses/" .. key .. "/eligible")
    assert.are.equal(403, status)
    assert.are.equal("disabled", answer.code)
    assert.matches("^R1: the key is disabled since 2019%-06%-01", answer.because)
    local other = issue(server)
    status, answer = server:request("GET", "/v1/licenses/" .. other .. "/builds/6947")
    assert.are.equal(403, status)
    assert.matches("^R5: refused %(newer_than_eligible%)", answer.because)
    status, answer = server:request("GET", "/v1/licenses/" .. other .. "/download?build=6947")
    assert.are.equal(403, status)
    assert.are.equal(6911, answer.eligible.number)
    assert.matches("^R5: refused %(newer_than_eligible%)", answer.because)
    status, answer = server:request("GET", "/v1/licenses/" .. key .. "/download")
    assert.are.equal(403, status)
    assert.matches("^R1: ", answer.because)
  end)

  it("an admin workflow's refusal: its rule and message (R12's downgrade)", function()
    local key = issue(server)
    local status, answer = server:admin("upgrade", { key = key, edition = "professional", paid = 0 })
    assert.are.equal(403, status)
    assert.are.equal("downgrade", answer.code)
    assert.matches("^R12: ", answer.because)
  end)

  it("accepted answers carry no because", function()
    local key = issue(server)
    local status, answer = post(server, "activate", { key = key, server = "a", build = 6911 })
    assert.are.equal(200, status)
    assert.is_nil(answer.because)
    status, answer = server:request("GET", "/v1/licenses/" .. key .. "/eligible")
    assert.are.equal(200, status)
    assert.is_nil(answer.because)
  end)
end)

describe("policy hooks in the gateway (" .. stores.backend .. ")", function()
  local db, server

  -- An eligible hook that raises for one product and overruns its memory
  -- budget for another, an admission hook that refuses MSP-less third
  -- servers with its because.
  local POLICY = [[
return {
  eligible = function(ctx)
    if ctx.license.edition == "professional" then
      local t = {}
      for i = 1, 1e8 do t[i] = { i } end
    end
    if ctx.license.level == 10 then error("a hook with a bug") end
    if ctx.license.owner == "tester" and ctx.build and ctx.build.number == 6911 then
      return { build = 6947, because = "6947 only fixes 6911's mail loop" }
    end
  end,
  admission = function(ctx)
    if ctx.after.active > ctx.after.allowed then
      return { admit = false, because = "this customer moves servers through support" }
    end
  end,
}]]

  setup(function()
    db = fresh_db(POLICY)
    server = gateway.start{ db = db, today = DAY, token = TOKEN, stale_ms = 0 }
  end)

  teardown(function()
    server:stop()
    stores.remove(db)
  end)

  local function failures(hook, reason)
    local status, text = server:request("GET", "/metrics", nil, { Authorization = "Bearer " .. TOKEN })
    assert.are.equal(200, status)
    assert.matches("# TYPE licensor_policy_hook_failures_total counter", text)
    return tonumber(text:match('licensor_policy_hook_failures_total{hook="' .. hook .. '",reason="' ..
                               reason .. '"} (%d+)')) or 0
  end

  it("a hook that raises or runs out of memory leaves the built-in answer (never a 500) and counts", function()
    local buggy = issue(server, { level = 10 })
    local before = failures("eligible", "error")
    local status, answer = server:request("GET", "/v1/licenses/" .. buggy .. "/eligible")
    assert.are.equal(200, status)
    assert.are.equal(6911, answer.number)
    local read = failures("eligible", "error")
    assert.is_true(read >= before + 1)       -- the worker's read
    assert.are.equal(200, (post(server, "activate", { key = buggy, server = "a", build = 6911 })))
    assert.is_true(failures("eligible", "error") >= read + 1)   -- the workflow's (PostgreSQL: a thread's)
    local hungry = issue(server, { edition = "professional" })
    status, answer = server:request("GET", "/v1/licenses/" .. hungry .. "/eligible")
    assert.are.equal(200, status)
    assert.are.equal(6911, answer.number)
    assert.is_true(failures("eligible", "memory") >= 1)
    assert.is_nil(server:error_log():find("internal_error", 1, true))
  end)

  it("a hook's decision holds in reads and workflows alike", function()
    local key = issue(server, { owner = "tester" })
    local status, answer = server:request("GET", "/v1/licenses/" .. key .. "/eligible")
    assert.are.equal(200, status)
    assert.are.equal(6947, answer.number)
    assert.are.equal(200, (server:request("GET", "/v1/licenses/" .. key .. "/builds/6947")))
    assert.are.equal(200, (post(server, "activate", { key = key, server = "a", build = 6947 })))
    status, answer = server:request("GET", "/v1/licenses/" .. key .. "/builds/7010")
    assert.are.equal(403, status)
    assert.matches("R3 eligible hook %(policy v1%): build 6947 instead of build 6911 %-%- 6947 only fixes",
                   answer.because)
  end)

  it("a refusal a hook decided carries the hook's because, with the policy version", function()
    local key = issue(server)
    assert.are.equal(200, (post(server, "activate", { key = key, server = "a", build = 6911 })))
    local status, answer = post(server, "activate", { key = key, server = "b", build = 6911 })
    assert.are.equal(403, status)
    assert.are.equal("policy_refused", answer.code)
    assert.matches("R10 admission hook %(policy v1%): refused instead of admitted %-%- this customer moves " ..
                   "servers through support", answer.because)
  end)
end)

describe("a stored policy version the gateway cannot compile (" .. stores.backend .. ")", function()
  local db, server

  setup(function()
    local store, path = stores.new()
    -- As a host of another licensor would find it: stored, not compilable here.
    store.db:run(store.sql.insert_policy, "2018-01-01", "return { eligible = function(ctx) return { build = ",
                 "newer.lua")
    store:close()
    db = path
    server = gateway.start{ db = db, today = DAY, token = TOKEN, stale_ms = 0 }
  end)

  teardown(function()
    server:stop()
    stores.remove(db)
  end)

  it("answers with the built-in decisions, and /metrics counts it as file/compile", function()
    local key = issue(server)
    local status, answer = server:request("GET", "/v1/licenses/" .. key .. "/eligible")
    assert.are.equal(200, status)
    assert.are.equal(6911, answer.number)
    local _, text = server:request("GET", "/metrics", nil, { Authorization = "Bearer " .. TOKEN })
    assert.is_true((tonumber(text:match('licensor_policy_hook_failures_total{hook="file",reason="compile"} (%d+)'))
                    or 0) >= 1, text)
    assert.is_truthy(server:error_log():find("does not compile on this host", 1, true))
  end)
end)
