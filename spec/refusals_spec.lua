-- Refusals write nothing (issue 19, item 4): a refused activation, check-in
-- or deactivation leaves the store as it was on both backends.  On
-- PostgreSQL it writes no WAL at all (the key's lock is an advisory lock,
-- and the transaction is rolled back without ever taking a transaction
-- id), proven with pg_current_wal_insert_lsn() and pg_waldump on a cluster
-- of this spec's own; on SQLite it never takes the write lock, so it
-- answers at once while another connection holds it.  Each backend also
-- measures refused activations per second next to accepted ones.
--
-- Runs in the SQLite suites and in the PostgreSQL suite (which sets
-- LICENSOR_TEST_PG); about 2 s on SQLite, 5 s on PostgreSQL (its cluster included).
local stores = require "support.stores"
local core = require "licensor.core"
local licensor = require "licensor"
local sql = require "licensor.store.sql"
local child_env = require "support.child_env"
local register = require "support.registry"
local socket = require "socket"

local process = core.process
local now = socket.gettime
local DAY = "2019-01-10"

-- Keys refused in four ways (store_spec.lua proves each code): disabled,
-- allowance full, a build newer than the license may install, unknown.
local function refusable_keys(store)
  local disabled = stores.issue(store)
  assert(store:disable(disabled.key, "2018-11-01", "admin"))
  local full = stores.issue(store)
  assert.is_true(store:activate(full.key, "A", 6911, DAY).ok)
  assert.is_true(store:activate(full.key, "B", 6911, DAY).ok)   -- migrating: +1
  local lic = stores.issue(store)
  return { disabled = disabled.key, full = full.key, build = lic.key, unknown = core.new_key() }
end

-- The four refusals, each asserted to be the refusal it should be.
local function refuse_all(store, keys)
  assert.are.equal("disabled", store:activate(keys.disabled, "x", 6911, DAY).code)
  assert.are.equal("too_many_installations", store:activate(keys.full, "C", 6911, DAY).code)
  assert.are.equal("newer_than_eligible", store:activate(keys.build, "x", 7100, DAY).code)
  assert.are.equal("unknown_key", select(3, store:activate(keys.unknown, "x", 6911, DAY)))
end

-- `n` rounds of the four refusals: the seconds they took.
local function refuse_rounds(store, keys, n)
  local started = now()
  for _ = 1, n do refuse_all(store, keys) end
  return now() - started
end

-- `n` accepted activations, one on each of `n` fresh licenses: seconds.
local function accept(store, n)
  local keys = {}
  for i = 1, n do keys[i] = stores.issue(store).key end
  local started = now()
  for i = 1, n do assert.is_true(store:activate(keys[i], "s", 6911, DAY).ok) end
  return now() - started
end

-- 1,000 refusals and 200 accepted activations: their rates, printed.
-- (With fsync off, as in the suite's clusters, PostgreSQL's commit costs
-- little and the two are close: both are three round trips.)
local function rates(backend, store, keys)
  local before = stores.dump(store)
  local refused = 4 * 250 / refuse_rounds(store, keys, 250)
  assert.are.equal(before, stores.dump(store))
  local accepted = 200 / accept(store, 200)
  print(("\n%s: %.0f refused activations/s, %.0f accepted activations/s (ratio %.1f)")
    :format(backend, refused, accepted, refused / accepted))
  return refused, accepted
end

describe("a refused activation on " .. stores.backend, function()
  local store, keys

  before_each(function()
    store = stores.new()
    keys = refusable_keys(store)
  end)

  after_each(function() store:close() end)

  it("leaves every table as it was, with no event row (nor a check-in's, nor a deactivation's)", function()
    local before = stores.dump(store)
    local events = #store:events(keys.full)
    refuse_rounds(store, keys, 5)
    assert.are.equal("not_activated", store:checkin(keys.full, "nobody", DAY).code)
    assert.are.equal("not_activated", store:deactivate(keys.full, "nobody", DAY).code)
    assert.are.equal(before, stores.dump(store))
    assert.are.equal(events, #store:events(keys.full))
  end)

  it("is counted per second next to accepted ones (printed): the refusals change nothing, the rest commit", function()
    local count = "SELECT count(*) AS n FROM installations"
    local before = tonumber(assert(store:query(count))[1].n)
    local refused, accepted = rates(stores.backend, store, keys)
    assert.is_true(refused > 0 and accepted > 0)
    assert.are.equal(before + 200, tonumber(assert(store:query(count))[1].n))
  end)
end)

if stores.sqlite then
  local function read_file(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local text = f:read("*a")
    f:close()
    return text
  end

  local function has_sqlite3_cli()
    local status = os.execute(child_env.shell .. "sh -c 'command -v sqlite3' >/dev/null 2>&1")
    return status == true or status == 0   -- Lua 5.4, LuaJIT
  end

  describe("SQLite: a refusal under another connection's write lock", function()
    local path, store, other, keys

    before_each(function()
      path = stores.path()
      store = stores.new(path, { synchronous = "normal", busy_ms = 400 })
      keys = refusable_keys(store)
      other = assert(licensor.open(path, { synchronous = "normal", busy_ms = 0 }))
    end)

    after_each(function()
      other:close()
      store:close()
      stores.remove(path)
    end)

    it("is answered at once, not busy, and writes not a byte of the database or its WAL", function()
      local db, wal = read_file(path), read_file(path .. "-wal")
      other.db:exec("BEGIN IMMEDIATE")
      finally(function() other.db:rollback() end)
      local started = now()
      refuse_rounds(store, keys, 25)
      assert.are.equal("not_activated", store:checkin(keys.full, "nobody", DAY).code)
      assert.are.equal("not_activated", store:deactivate(keys.full, "nobody", DAY).code)
      local took = now() - started
      assert.is_true(took < 0.3, ("102 refusals took %.3f s under the lock"):format(took))
      assert.are.equal(db, read_file(path))
      assert.are.equal(wal, read_file(path .. "-wal"))
    end)

    it("while an accepted activation waits for the lock: busy after busy_ms, not twice that", function()
      local lic = stores.issue(store)
      other.db:exec("BEGIN IMMEDIATE")
      finally(function() other.db:rollback() end)
      local started = now()
      local v, _, code = store:activate(lic.key, "s", 6911, DAY)
      local took = now() - started
      assert.are.same({ nil, "busy" }, { v, code })
      assert.is_true(took >= 0.35 and took < 0.7, ("busy after %.3f s, busy_ms 0.4 s"):format(took))
      other.db:rollback()
      assert.is_true(store:activate(lic.key, "s", 6911, DAY).ok)
    end)

    it("a deferred transaction's first write after another's commit is busy at once (BUSY_SNAPSHOT)", function()
      local db = store.db
      local count = db:prepare("SELECT count(*) FROM licenses")
      db:begin(true)
      finally(function() db:rollback() end)
      local before = db:value(count)
      other.db:exec("BEGIN IMMEDIATE; UPDATE licenses SET owner = owner; COMMIT")
      local started = now()
      local ok, err = pcall(db.exec, db, "UPDATE licenses SET owner = owner")
      assert.is_false(ok)
      assert.are.equal("busy", err.code)
      assert.is_true(now() - started < 0.1)
      assert.are.equal(before, db:value(count))
    end)

    it("and answers once the other connection (the sqlite3 CLI) commits", function()
      if not has_sqlite3_cli() then
        pending("no sqlite3 command line tool")
        return
      end
      local waiting = assert(licensor.open(path, { synchronous = "normal", busy_ms = 5000 }))
      finally(function() waiting:close() end)
      local lic = stores.issue(store)
      local log = os.tmpname()
      local pid = assert(process.spawn(child_env.argv({ "sqlite3", path, "BEGIN IMMEDIATE;",
        "UPDATE licenses SET owner = owner;", ".shell sleep 0.8", "COMMIT;" }), log))
      register(pid, "sqlite3 " .. path)
      finally(function() process.stop(pid, 0); os.remove(log) end)
      -- Until the CLI holds the write lock, `other` (busy_ms 0) takes it.
      local held = false
      for _ = 1, 200 do
        held = not pcall(other.db.begin, other.db)
        if held then break end
        other.db:rollback()
        socket.sleep(0.005)
      end
      assert.is_true(held, "the sqlite3 CLI never took the write lock")
      local started = now()
      assert.are.equal("disabled", waiting:activate(keys.disabled, "x", 6911, DAY).code)
      local refused_in = now() - started
      local v = waiting:activate(lic.key, "s", 6911, DAY)
      local accepted_in = now() - started
      assert.is_true(v.ok)
      assert.is_true(refused_in < 0.1, ("refused after %.3f s"):format(refused_in))
      assert.is_true(accepted_in > 0.3, ("accepted after %.3f s, before the CLI's commit"):format(accepted_in))
      assert.are.equal(0, process.wait(pid, 5000))
    end)
  end)
end

if stores.postgresql then
  local postgres = require "support.postgres"

  -- The WAL written between two LSNs: { [rmgr] = records }.
  local function wal_records(cluster, from, to)
    local p = assert(io.popen(child_env.shell .. cluster.bin .. "/pg_waldump -p " .. cluster.data ..
      "/pg_wal -s " .. from .. " -e " .. to .. " 2>&1"))
    local out = p:read("*a")
    p:close()
    local counts = {}
    for rmgr in out:gmatch("rmgr: (%S+)") do counts[rmgr] = (counts[rmgr] or 0) + 1 end
    return counts, out
  end

  -- Records the server writes by itself (bgwriter's RUNNING_XACTS,
  -- checkpoints, a hint bit's full-page image with checksums on).
  local BACKGROUND = { Standby = true, XLOG = true }

  local function foreign(counts)
    local list = {}
    for rmgr in pairs(counts) do
      if not BACKGROUND[rmgr] then list[#list + 1] = rmgr end
    end
    table.sort(list)
    return list
  end

  local function lsn(store)
    return assert(store:query("SELECT pg_current_wal_insert_lsn()::text AS lsn"))[1].lsn
  end

  -- Bytes between two LSNs ("16/B374D848": the high and low 32 bits).
  local function lsn_delta(from, to)
    local function bytes(text)
      local hi, lo = text:match("^(%x+)/(%x+)$")
      return tonumber(hi, 16) * 4294967296 + tonumber(lo, 16)
    end
    return bytes(to) - bytes(from)
  end

  describe("PostgreSQL: refused activations", function()
    local cluster, store, keys

    -- A cluster of this spec's own: nothing else writes to it, and no
    -- autovacuum (its ANALYZE writes pg_statistic rows) during a count.
    lazy_setup(function()
      cluster = assert(postgres.start())
      cluster:exec("ALTER SYSTEM SET autovacuum = off")
      cluster:exec("SELECT pg_reload_conf()")
      store = stores.new(cluster:url())
      keys = refusable_keys(store)
    end)

    lazy_teardown(function()
      if store then store:close() end
      if cluster then cluster:stop() end
    end)

    it("1,000 of them move no WAL; one accepted activation does (Heap, Transaction)", function()
      refuse_all(store, keys)   -- warm: hint bits set, statements prepared
      local from = lsn(store)
      local took = refuse_rounds(store, keys, 250)
      local to = lsn(store)
      local delta = lsn_delta(from, to)
      print(("\n1,000 refusals in %.3f s: the WAL moved %d bytes (%s to %s)"):format(took, delta, from, to))
      if from ~= to then
        socket.sleep(0.3)   -- let the WAL writer write what was inserted
        local counts, out = wal_records(cluster, from, to)
        assert.are.same({}, foreign(counts), out)
      end
      -- The contrast: the same check sees an accepted activation's writes.
      local lic = stores.issue(store)
      from = lsn(store)
      assert.is_true(store:activate(lic.key, "s", 6911, DAY).ok)
      to = lsn(store)
      assert.is_true(lsn_delta(from, to) > 0)
      socket.sleep(0.3)
      local counts, out = wal_records(cluster, from, to)
      assert.is_truthy(counts.Heap, out)
      assert.is_truthy(counts.Transaction, out)
      assert.are_not.same({}, foreign(counts))
    end)

    it("does not wait for another key's lock, and waits for its own (it reads under the lock)", function()
      local session = core.open_pg(cluster:url(), 0, false)
      finally(function() session:close() end)
      session:exec(("BEGIN; SELECT pg_advisory_xact_lock(%d, hashtext('%s'))"):format(sql.KEY_LOCK_CLASS, keys.full))
      local held = assert(store:query("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' " ..
        "AND granted AND classid = " .. sql.KEY_LOCK_CLASS))
      assert.are.equal(1, tonumber(held[1].n))
      local started = now()
      assert.are.equal("disabled", store:activate(keys.disabled, "x", 6911, DAY).code)
      assert.are.equal("newer_than_eligible", store:activate(keys.build, "x", 7100, DAY).code)
      local took = now() - started
      assert.is_true(took < 0.2, ("refusals on other keys took %.3f s"):format(took))
      -- The held key's refusal waits: cancelled by its statement_timeout.
      local timed = assert(licensor.open(cluster:url(nil, "options=-cstatement_timeout%3D300")))
      finally(function() timed:close() end)
      started = now()
      local v = timed:activate(keys.full, "C", 6911, DAY)
      took = now() - started
      assert.is_nil(v)
      assert.is_true(took >= 0.25, ("the held key's refusal answered after %.3f s"):format(took))
      session:exec("ROLLBACK")
      assert.are.equal("too_many_installations", timed:activate(keys.full, "C", 6911, DAY).code)
    end)
  end)
end
