-- Faults and bad input in the store: SIGKILL at random moments, writers
-- racing on one key, workflows failing half-way, fork(), and wrong values
-- for every argument of every call.
local core = require "licensor.core"
local failure = require "licensor.failure"
local licensor = require "licensor"
local stores = require "support.stores"
local socket_sleep = require("socket").sleep

local LUA_PATH = "LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;;' "
local CRASH_ROUNDS = tonumber(os.getenv("LICENSOR_CRASH_ROUNDS")) or 200

local function read_lines(path)
  local lines = {}
  local f = io.open(path)
  if not f then return lines end
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  return lines
end

local function servers_of(store, key)
  local set = {}
  for _, row in ipairs(store:query("SELECT server FROM installations WHERE key = ?", key)) do
    set[row.server] = true
  end
  return set
end

describe("a writer killed with SIGKILL at random moments", function()
  it("loses no reported activation and never corrupts the database (" .. CRASH_ROUNDS .. " kills)", function()
    local store, path = stores.new()
    local key = stores.issue(store, { start = "2018-06-01", failover = true }).key
    store:close()
    local report = os.tmpname()
    math.randomseed(os.time())
    local lost, corrupt, checked = 0, 0, 0
    for round = 1, CRASH_ROUNDS do
      local delay = string.format("%.3f", 0.02 + math.random() * 0.2)
      os.execute(LUA_PATH .. "timeout -s KILL " .. delay .. " " .. stores.interpreter() ..
        " spec/support/writer.lua " .. stores.quote(path) .. " " .. key .. " " .. report .. " r" .. round .. " 2>/dev/null")
      local reopened = assert(licensor.open(path))
      if not stores.intact(reopened) then corrupt = corrupt + 1 end
      local present = servers_of(reopened, key)
      for _, server in ipairs(read_lines(report)) do
        checked = checked + 1
        if not present[server] then lost = lost + 1 end
      end
      reopened:close()
    end
    os.remove(report)
    stores.remove(path)
    assert.are.same({ lost = 0, corrupt = 0 }, { lost = lost, corrupt = corrupt })
    assert.is_true(checked > 0)
  end)
end)

describe("an online backup", function()
  stores.sqlite_only(it, pending)("copies the database consistently while another process writes, and restores to the same dump",
                     function()
    local process = core.process
    local store, path = stores.new()
    local key = stores.issue(store, { start = "2018-06-01", failover = true }).key
    local report = os.tmpname()
    local writer = assert(process.spawn({ "sh", "-c", LUA_PATH .. 'exec "$0" "$@"', stores.interpreter(),
      "spec/support/writer.lua", path, key, report, "b" }))
    finally(function() process.stop(writer, 0) end)
    local during = os.tmpname()
    os.remove(during)
    socket_sleep(0.3)
    assert.is_true(store:backup(during))                        -- while the writer writes
    local copy = assert(licensor.open(during))
    assert.are.equal("ok", copy:query("PRAGMA integrity_check")[1].integrity_check)
    assert.is_true(#copy:query("SELECT seq FROM installations") > 0)
    copy:close()
    assert.is_true(process.stop(writer, 0))
    local after = os.tmpname()
    os.remove(after)
    assert.is_true(store:backup(after))
    copy = assert(licensor.open(after))
    assert.are.equal(stores.dump(store), stores.dump(copy))     -- the restored copy is the database
    copy:close()
    assert.are.equal("exists", select(3, store:backup(after)))  -- never over a file
    store:close()
    for _, p in ipairs({ during, after, report }) do stores.remove(p) end
    stores.remove(path)
  end, "PostgreSQL is copied with licensor copy, spec/postgresql_spec.lua")
end)

describe("processes activating the same key at once", function()
  it("never exceed the allowance plus migration_extra, and never see SQLITE_BUSY", function()
    local store, path = stores.new()
    local rounds, over, failed, total_ok = 8, 0, 0, 0
    for _ = 1, rounds do
      local key = stores.issue(store, { start = "2018-06-01" }).key
      local outs, cmds = {}, {}
      for id = 1, 4 do
        outs[id] = os.tmpname()
        cmds[id] = LUA_PATH .. stores.interpreter() .. " spec/support/racer.lua " .. stores.quote(path) .. " " .. key ..
          " " .. id .. " 6 > " .. outs[id] .. " 2>&1 &"
      end
      os.execute("{ " .. table.concat(cmds, " ") .. " wait; }")
      for id = 1, 4 do
        local line = read_lines(outs[id])[1] or "0 0 1"
        local ok, _, bad = line:match("^(%d+)%s+(%d+)%s+(%d+)")
        total_ok = total_ok + (tonumber(ok) or 0)
        failed = failed + (tonumber(bad) or 1)
        os.remove(outs[id])
      end
      local active = #store:query("SELECT seq FROM installations WHERE key = ? AND deactivated IS NULL", key)
      if active > 2 then over = over + 1 end
    end
    store:close()
    stores.remove(path)
    assert.are.same({ over = 0, failed = 0 }, { over = over, failed = failed })
    assert.are.equal(rounds * 2, total_ok)
  end)
end)

describe("a workflow that fails half-way", function()
  local store, lic

  before_each(function()
    store = stores.new(":memory:")
    lic = stores.issue(store, { start = "2018-06-01", addons = { "eas" } })
    store:activate(lic.key, "a", 6911, "2018-12-05")
  end)

  -- Makes the n-th write (run or defer) of the next workflow fail as a full disk would.
  local function fail_write(n)
    local db, writes = store.db, 0
    local function write(method)
      return function(_, ...)
        writes = writes + 1
        if writes == n then failure.raise("io_error", "disk full (injected)") end
        return db[method](db, ...)
      end
    end
    store.db = setmetatable({ run = write("run"), defer = write("defer") }, { __index = function(_, name)
      return function(_, ...) return db[name](db, ...) end
    end })
    return function() store.db = db end
  end

  it("leaves the database byte-for-byte as it was when a write fails mid-way", function()
    local workflows = {
      function() return store:issue{ product = "smartertrack", edition = "enterprise", level = 5, addons = { "eas" } } end,
      function() return store:renew(lic.key, "2019-05-01") end,
      function() return store:activate(lic.key, "b", 6911, "2018-12-06") end,
      function() return store:upgrade(lic.key, { level = 10 }, "2018-12-06", { paid = 30000 }) end,
      function() return store:transfer(lic.key, "globex", { consent = "C-1" }) end,
    }
    local injected = 0
    for i, workflow in ipairs(workflows) do
      -- Fail the 1st, 2nd, ... write until the workflow has fewer writes
      -- than that and succeeds.
      for n = 1, 20 do
        local before = stores.dump(store)
        local restore = fail_write(n)
        local result, msg, code = workflow()
        restore()
        if result ~= nil then break end
        injected = injected + 1
        assert.are.equal("io_error", code, "workflow " .. i .. " write " .. n .. ": " .. tostring(msg))
        assert.are.equal(before, stores.dump(store), "workflow " .. i .. " failing at write " .. n)
      end
    end
    assert.is_true(injected >= 10)
  end)

  it("leaves it unchanged when refused: bad add-on, wrong amount, unknown key, bad dates", function()
    local before = stores.dump(store)
    assert.are.equal("unknown_addon", select(3, store:add_addon(lic.key, "ews", "2018-12-06")))
    assert.are.equal("wrong_amount", select(3, store:upgrade(lic.key, { level = 10 }, "2018-12-06", { paid = 1 })))
    assert.are.equal("unknown_key", select(3, store:renew(core.new_key(), "2018-12-06")))
    assert.are.equal("invalid_date", select(3, store:renew(lic.key, "2018-12-32")))
    assert.are.equal("transfer_requires_consent", select(3, store:transfer(lic.key, "globex", {})))
    assert.is_false(store:activate(lic.key, "b", 7100, "2018-12-06").ok)
    assert.are.equal(before, stores.dump(store))
  end)

  -- Failed deliveries are counted in the outbox (store:deliver); nothing
  -- else changes.
  it("leaves it unchanged when an outbox handler errors, but for the attempts counted", function()
    local other = stores.issue(store, { start = "2018-06-01" })
    store:activate(other.key, "x", 6855, "2018-12-01")
    store:activate(other.key, "y", 6911, "2018-12-05")
    for day = core.day("2018-12-06"), core.day("2019-01-05") do
      store:checkin(other.key, "x", core.date(day))
      store:checkin(other.key, "y", core.date(day))
    end
    assert.are.equal(2, #store:sweep("2019-01-05"))
    local before = stores.dump(store)
    store:on("email_customer", function() error("handler crashed") end)
    store:on("notify_fraud_team", function() return nil end)
    local delivered, pending = store:deliver()
    assert.are.same({ 0, 2 }, { delivered, pending })
    local function but_outbox(dump) return (dump:gsub("\noutbox\n.-\nevents\n", "\noutbox ...\nevents\n")) end
    assert.are.equal(but_outbox(before), but_outbox(stores.dump(store)))
    local rows = store:query("SELECT attempts, last_error, delivered, dead FROM outbox ORDER BY id")
    assert.are.same({ 1, 1 }, { rows[1].attempts, rows[2].attempts })
    assert.matches("handler crashed", rows[1].last_error)
    assert.matches("the handler returned nil", rows[2].last_error)
    assert.is_nil(rows[1].delivered or rows[1].dead or rows[2].delivered or rows[2].dead)
  end)
end)

describe("a store opened before fork()", function()
  it("is refused in the child, and the child cannot disturb the parent's database", function()
    local forkhelper = require "forkhelper"
    local store, path = stores.new()
    local lic = stores.issue(store)
    io.stdout:flush()
    local pid = forkhelper.fork()
    if pid == 0 then
      local ok, _, code = store:get(lic.key)
      local refused_write = select(3, store:disable(lic.key, "2019-01-01", "child"))
      store:close()
      forkhelper._exit((ok == nil and code == "wrong_process" and refused_write == "wrong_process") and 0 or 1)
    end
    assert.are.equal(0, forkhelper.wait(pid))
    assert.is_nil(store:get(lic.key).disabled)
    assert.is_table(store:disable(lic.key, "2019-01-01", "parent"))
    assert.is_true(stores.intact(store))
    store:close()
    stores.remove(path)
  end)
end)

describe("wrong types and malformed values for every call", function()
  local store = stores.new(":memory:")
  local key = stores.issue(store).key

  it("raise for programming errors (wrong argument types)", function()
    local calls = {
      function() store:import(42) end,
      function() store:issue(nil) end,
      function() store:issue{ product = 1 } end,
      function() store:add_addon(key, nil, "2019-01-01") end,
      function() store:upgrade(key, "enterprise", "2019-01-01", { paid = 1 }) end,
      function() store:upgrade(key, {}, "2019-01-01", nil) end,
      function() store:disable(key, "2019-01-01", 5) end,
      function() store:transfer(key, nil, { consent = "x" }) end,
      function() store:transfer(key, "x", "consent") end,
      function() store:activate(key, {}, 6911, "2019-01-01") end,
      function() store:activate(key, "s", 69.5, "2019-01-01") end,
      function() store:checkin(key, nil, "2019-01-01") end,
      function() store:checkin(key, "s", "2019-01-01", "6911") end,
      function() store:deactivate(key, 5, "2019-01-01") end,
      function() store:on("email_customer", nil) end,
      function() store:query(nil) end,
    }
    for i, call in ipairs(calls) do
      assert.has_error(call, nil, "call " .. i)
    end
  end)

  it("let store:query only read: no write, BEGIN, ATTACH or setting PRAGMA", function()
    local before = stores.dump(store)
    for _, sql in ipairs({ "DELETE FROM events", "BEGIN", "BEGIN IMMEDIATE", "COMMIT", "SAVEPOINT x",
                           "ATTACH DATABASE ':memory:' AS other", "DETACH DATABASE main",
                           "PRAGMA user_version = 99", "PRAGMA journal_mode = DELETE",
                           "PRAGMA writable_schema = ON", "PRAGMA foreign_keys = OFF",
                           "CREATE TABLE t (x)", "DROP TABLE events", "VACUUM",
                           "INSERT INTO catalogues (imported, source, policy) SELECT imported, source, policy FROM catalogues",
                           "WITH x AS (SELECT 1) DELETE FROM licenses" }) do
      local rows, msg, code = store:query(sql)
      assert.are.same({ nil, "invalid_request" }, { rows, code }, sql .. ": " .. tostring(msg))
    end
    assert.are.equal(before, stores.dump(store))
    assert.is_true(store:schema_version() >= 3)
    assert.is_true(stores.intact(store))
    if stores.sqlite then assert.is_true(#store:query("PRAGMA table_info(licenses)") > 5) end
    assert.are.equal(1, #store:query("SELECT key FROM licenses WHERE key = ?", key))
  end)

  it("stop a runaway store:query at the store's query_ms", function()
    local quick = stores.new(nil, { query_ms = 200 })
    local t0 = os.time()
    local rows, msg, code = quick:query(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n")
    assert.are.same({ nil, "timeout", "store:query stopped after 200 ms" }, { rows, code, msg })
    assert.is_true(os.time() - t0 <= 3)
    assert.are.equal(1, #quick:query("SELECT 1 AS one"))   -- the connection still serves
    quick:close()
  end)

  it("answer malformed values with nil, message, code", function()
    local cases = {
      { "invalid_key", function() return store:get("") end },
      { "invalid_key", function() return store:renew({}, "2019-01-01") end },
      { "invalid_date", function() return store:renew(key, 20190101) end },
      { "invalid_date", function() return store:activate(key, "s", 6911, "2019-02-29") end },
      { "invalid_date", function() return store:sweep("someday") end },
      { "invalid_date", function() return store:end_lease(key, "2019-1-1") end },
      { "invalid_date", function() return store:issue{ product = "smartertrack", start = "x" } end },
      { "invalid_license", function() return store:issue{ product = "smartertrack", edition = "x", level = 5 } end },
      { "invalid_request", function() return store:query("DELETE FROM events") end },
    }
    for i, case in ipairs(cases) do
      local result, msg, code = case[2]()
      assert.is_nil(result, "case " .. i)
      assert.are.equal(case[1], code, "case " .. i .. ": " .. tostring(msg))
    end
  end)
end)
