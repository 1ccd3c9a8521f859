-- Webhooks (README "Notifications", doc/rules.md section 6): `licensor
-- deliver` posts outbox actions, signed with HMAC-SHA256, to a real HTTP
-- receiver on the loopback address; failures are retried with backoff and
-- dead-lettered after --max-tries; `licensor outbox` lists and re-queues.
local run = require "support.cli"
local core = require "licensor.core"
local licensor = require "licensor"
local cjson = require "cjson"
local socket = require "socket"
local stores = require "support.stores"
local register = require "support.registry"
local files = require "support.files"
local webhook = require "licensor.webhook"

local unpack = table.unpack or unpack   -- luacheck: ignore unpack

local SECRET = "s3cret-for-the-receiver"


-- A receiver process (licensor.receiver) and what it received.
local function start_receiver()
  local r = { log = os.tmpname(), mode = os.tmpname() }
  files.write(r.mode, "ok\n")
  r.pid, r.port = require("licensor.receiver").start(r.log, r.mode)
  register(r.pid, "webhook receiver")
  r.url = "http://127.0.0.1:" .. r.port .. "/hooks"
  function r.received() return files.json_lines(r.log) end
  function r.set(mode) files.write(r.mode, mode .. "\n") end
  function r.stop()
    core.process.stop(r.pid, 0)
    os.remove(r.log); os.remove(r.mode)
  end
  return r
end

-- A store whose sweep on 2019-05-01 writes one ms_expiring action.
local function store_with_reminder()
  local store, path = stores.new()
  local key = stores.issue(store).key
  assert.are.equal(1, #store:sweep("2019-05-01"))
  store:close()
  return path, key
end

local function verify(secret, signature, body)
  local t, mac = signature:match("^t=(%d+),v1=(%x+)$")
  return t ~= nil and licensor.hmac_sha256(secret, t .. "." .. body) == mac and math.abs(os.time() - t) < 300
end

describe("licensor deliver", function()
  local receiver, secret_file
  setup(function()
    receiver = start_receiver()
    secret_file = os.tmpname()
    files.write(secret_file, SECRET .. "\n")
  end)
  teardown(function()
    receiver.stop()
    os.remove(secret_file)
  end)
  before_each(function()
    os.remove(receiver.log)
    receiver.set("ok")
  end)

  it("posts each pending action once, as JSON with a stable id, signed with the secret", function()
    local path, key = store_with_reminder()
    local status, out = run("--db", path, "deliver", "--webhook", receiver.url, "--secret-file", secret_file)
    assert.are.same({ 0, "delivered 1, failed 0 (dead-lettered 0), pending 0" }, { status, out })
    local got = receiver.received()
    assert.are.equal(1, #got)
    assert.are.equal("/hooks", got[1].path)
    assert.is_true(verify(SECRET, got[1].signature, got[1].body))
    assert.is_false(verify("another secret", got[1].signature, got[1].body))
    local payload = cjson.decode(got[1].body)
    assert.are.same({ "lsr_1", "ms_expiring", key, "2019-05-31", 30, 1 },
      { payload.id, payload.action, payload.key, payload.refers_to, payload.detail.days, payload.attempt })
    run("--db", path, "deliver", "--webhook", receiver.url, "--secret-file", secret_file)
    assert.are.equal(1, #receiver.received())                                   -- never twice
  end)

  it("routes actions to their own URLs and leaves the others pending", function()
    local path = store_with_reminder()
    local status, out = run("--db", path, "deliver", "--webhook", "email_customer=" .. receiver.url,
                            "--secret-file", secret_file)
    assert.are.same({ 0, "delivered 0, failed 0 (dead-lettered 0), pending 1" }, { status, out })
    assert.are.equal(0, #receiver.received())
    status = run("--db", path, "deliver", "--webhook", "ms_expiring=" .. receiver.url .. "/ms",
                 "--secret-file", secret_file)
    assert.are.same({ 0, "/hooks/ms" }, { status, receiver.received()[1].path })
  end)

  it("retries a failing endpoint, dead-letters after --max-tries, and outbox retry re-queues", function()
    local path = store_with_reminder()
    receiver.set("fail")
    local args = { "--db", path, "deliver", "--webhook", receiver.url, "--secret-file", secret_file,
                   "--max-tries", "2", "--backoff-ms", "0" }
    local _, out = run(unpack(args))
    assert.matches("failed #1 ms_expiring: .* answered 500", out)
    assert.matches("failed 1 %(dead%-lettered 0%), pending 1", out)
    _, out = run(unpack(args))
    assert.matches("failed 1 %(dead%-lettered 1%), pending 0", out)
    local attempts = {}
    for _, r in ipairs(receiver.received()) do attempts[#attempts + 1] = cjson.decode(r.body).attempt end
    assert.are.same({ 1, 2 }, attempts)
    local status, listed = run("--db", path, "--json", "outbox", "--dead")
    local rows = cjson.decode(listed)
    assert.are.same({ 0, 1, 2 }, { status, rows[1].id, rows[1].attempts })
    assert.matches("500", rows[1].last_error)
    receiver.set("ok")
    _, out = run(unpack(args))
    assert.matches("delivered 0", out)                                           -- dead rows wait
    assert.are.equal(0, (run("--db", path, "outbox", "retry", "1")))
    _, out = run(unpack(args))
    assert.matches("delivered 1", out)
    local _, none = run("--db", path, "--json", "outbox", "--dead")
    assert.are.same({}, cjson.decode(none))
    assert.are.equal(1, (run("--db", path, "outbox", "retry", "1")))            -- delivered: not_found
  end)

  it("waits out the backoff before trying again", function()
    local path = store_with_reminder()
    receiver.set("fail")
    local store = assert(licensor.open(path))
    store:on("ms_expiring", webhook.handler{ url = receiver.url, secret = SECRET, timeout = 5 })
    local _, _, failures = store:deliver{ max_tries = 5, backoff_ms = 60000 }
    assert.are.equal(1, #failures)
    local delivered, pending = store:deliver{ max_tries = 5, backoff_ms = 60000 }
    assert.are.same({ 0, 1, 1 }, { delivered, pending, #receiver.received() })   -- not tried again yet
    local row = store:query("SELECT next_attempt FROM outbox WHERE id = 1")[1]
    assert.is_true(row.next_attempt >= (os.time() + 29) * 1000)                  -- at least half of 60 s
    store:close()
  end)

  it("killed with SIGKILL mid-batch, re-sends at most the action in flight and loses none", function()
    local store, path = stores.new()
    for _ = 1, 30 do stores.issue(store) end
    assert.are.equal(30, #store:sweep("2019-05-01"))
    store:close()
    receiver.set("slow")                                                   -- 0.2 s an action
    local deliverer = assert(core.process.spawn({ "sh", "-c",
      "LUA_PATH='lua/?.lua;lua/?/init.lua;;' exec \"$0\" \"$@\"", stores.interpreter(), "lua/bin/licensor",
      "--db", path, "deliver", "--webhook", receiver.url, "--secret-file", secret_file, "--claim-ms", "1500" }))
    socket.sleep(1.1)
    core.process.signal(deliverer, "SIGKILL")
    core.process.stop(deliverer, 0)
    local before = #receiver.received()
    assert.is_true(before > 0 and before < 30, "received " .. before .. " before the kill")
    receiver.set("ok")
    socket.sleep(1.8)              -- the dead one's claims end (1.5 s from its last renewal, before the kill)
    local status, out = run("--db", path, "deliver", "--webhook", receiver.url, "--secret-file", secret_file)
    assert.are.equal(0, status, out)
    local seen, twice = {}, 0
    for _, r in ipairs(receiver.received()) do
      local id = cjson.decode(r.body).id
      if seen[id] then twice = twice + 1 end
      seen[id] = true
    end
    local ids = 0
    for _ in pairs(seen) do ids = ids + 1 end
    assert.are.same({ 30, true }, { ids, twice <= 1 })
    assert.matches("pending 0", out)
  end)

  it("says the days actually left in detail.days: a late reminder on 2026-12-01 for 2026-12-19 says 18", function()
    local store = stores.new()
    stores.issue(store, { start = "2025-12-20" })                            -- M&S through 2026-12-19
    assert.are.equal(1, #store:sweep("2026-12-01"))                          -- 30 days before was 11-19
    store:on("ms_expiring", webhook.handler{ url = receiver.url, secret = SECRET, timeout = 5 })
    assert.are.equal(1, (store:deliver()))
    local payload = cjson.decode(receiver.received()[1].body)
    assert.are.same({ "2026-12-01", "2026-12-19", 18, 30 },
                    { payload.on, payload.refers_to, payload.detail.days, payload.detail.offset })
    store:close()
  end)

  it("has a handler that answers true, or nil, why, \"retry\" (rules.md section 8), never raising", function()
    local handler = webhook.handler{ url = receiver.url, secret = SECRET, timeout = 5 }
    local action = { id = 7, key = "K", action = "ms_expiring", on = "2019-05-01" }
    assert.are.same({ true }, { handler(action) })
    receiver.set("fail")
    local ok, why, code = handler(action)
    assert.are.same({ nil, "retry" }, { ok, code })
    assert.matches("answered 500", why)
    ok, why, code = webhook.handler{ url = "http://127.0.0.1:1/", secret = SECRET, timeout = 1 }(action)
    assert.are.same({ nil, "retry" }, { ok, code })
    assert.matches("^no answer from http://127%.0%.0%.1:1/: ", why)
    ok, why, code = webhook.handler{ url = "ftp://127.0.0.1/", secret = SECRET }(action)
    assert.are.same({ nil, "retry" }, { ok, code })
    assert.matches("http:// or https:// URL expected", why)
  end)

  it("keeps a handler's why for a failed attempt, and still takes a raising or odd handler as one", function()
    local path = store_with_reminder()
    local store = assert(licensor.open(path))
    local answers = {
      function() return nil, "the CRM is down", "retry" end,
      function() error("plain string", 0) end,
      function() return false end,
      function() return nil, "gone for good", "undeliverable" end,
    }
    local errors = {}
    for _, fn in ipairs(answers) do
      store:on("ms_expiring", fn)
      local _, _, failures = store:deliver()
      errors[#errors + 1] = failures[1].error .. (failures[1].dead and " (dead)" or "")
    end
    assert.are.same({ "the CRM is down", "plain string", "the handler returned false", "gone for good (dead)" },
                    errors)
    assert.are.same({ 4, true }, { store:outbox{ state = "all" }[1].attempts,
                                   store:outbox{ state = "all" }[1].dead ~= nil })
    store:close()
  end)

  it("counts no answer within --timeout as a failure", function()
    local path = store_with_reminder()
    receiver.set("hang")
    local t0 = socket.gettime()
    local _, out = run("--db", path, "deliver", "--webhook", receiver.url, "--secret-file", secret_file,
                       "--timeout", "1")
    assert.matches("failed #1 ms_expiring: no answer .*timeout", out)
    assert.is_true(socket.gettime() - t0 < 5)
  end)
end)
