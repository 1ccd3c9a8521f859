-- The store's sweep (R10, R11), its outbox (store:on, store:deliver) and
-- the append-only event log.
local core = require "licensor.core"
local failure = require "licensor.failure"
local stores = require "support.stores"

-- A key on two servers from 2018-12-05 (excess; fraud from 2019-01-04),
-- both checking in daily through `through`: stores.two_servers.
local function actions(taken)
  local list = {}
  for _, t in ipairs(taken) do list[#list + 1] = t.action end
  return list
end

local ladder = stores.ladder

describe("R11 store:sweep", function()
  it("takes no step while the key is migrating", function()
    local store = stores.new(":memory:")
    stores.two_servers(store, "2019-01-03")
    assert.are.same({}, store:sweep("2019-01-03"))
  end)

  it("emails the customer and notifies the fraud team on the first sweep on or after the fraud day", function()
    local store = stores.new(":memory:")
    local lic = stores.two_servers(store, "2019-01-04")
    local taken = store:sweep("2019-01-04")
    assert.are.same({ "email_customer", "notify_fraud_team" }, actions(taken))
    assert.are.same({ key = lic.key, case = taken[1].case, action = "email_customer", on = "2019-01-04" }, taken[1])
    assert.are.same({}, store:sweep("2019-01-04"))   -- once per case
  end)

  it("phones 7 and disables 14 days after the first step was actually taken", function()
    local store = stores.new(":memory:")
    local lic = stores.two_servers(store, "2019-02-20")
    -- The first sweep comes late, on 2019-02-01: the warning still gets its 14 days.
    assert.are.same({ "email_customer", "notify_fraud_team" }, actions(store:sweep("2019-02-01")))
    assert.are.same({}, store:sweep("2019-02-07"))
    assert.are.same({ "phone_customer" }, actions(store:sweep("2019-02-08")))
    assert.are.same({}, store:sweep("2019-02-14"))
    assert.is_nil(store:get(lic.key).disabled)
    assert.are.same({ "disable_key" }, actions(store:sweep("2019-02-15")))
    local disabled = store:get(lic.key)
    assert.are.same({ "2019-02-15", "fraud" }, { disabled.disabled, disabled.disabled_reason })
    assert.are.same({}, store:sweep("2019-02-20"))
  end)

  it("takes every overdue step of a case in one sweep, each once", function()
    local store = stores.new(":memory:")
    stores.two_servers(store, "2019-03-01")
    store:sweep("2019-01-10")
    assert.are.same({ "phone_customer", "disable_key" }, actions(store:sweep("2019-03-01")))
  end)

  it("closes the case when the excess ends before the key is disabled", function()
    local store = stores.new(":memory:")
    local lic = stores.two_servers(store, "2019-01-10")
    store:sweep("2019-01-10")
    store:deactivate(lic.key, "new", "2019-01-12")
    assert.are.same({}, store:sweep("2019-01-20"))
    assert.is_nil(store:get(lic.key).disabled)
    local cases = store:query("SELECT closed FROM fraud_cases WHERE key = ?", lic.key)
    assert.are.same({ { closed = "2019-01-20" } }, cases)
  end)

  it("keeps a disabled key disabled until an admin re-enables it, which closes the case", function()
    local store = stores.new(":memory:")
    local lic = stores.two_servers(store, "2019-01-18")
    store:sweep("2019-01-04")
    store:sweep("2019-01-18")
    assert.are.equal("2019-01-18", store:get(lic.key).disabled)
    store:deactivate(lic.key, "new", "2019-01-19")
    store:sweep("2019-01-25")
    assert.are.equal("2019-01-18", store:get(lic.key).disabled)
    store:enable(lic.key, "2019-01-26")
    assert.is_nil(store:get(lic.key).disabled)
    assert.are.same({}, store:query("SELECT id FROM fraud_cases WHERE closed IS NULL"))
  end)

  -- "old" checks in daily from..through; "server" (when given) too from `from`.
  local function keep_checking_in(store, key, from, through, server)
    for day = core.day(from), core.day(through) do
      store:checkin(key, "old", core.date(day))
      if server then store:checkin(key, server, core.date(day)) end
    end
  end

  it("cannot be dodged with a one-day gap: the runs join and the server is refused (amended R10)", function()
    local store = stores.new(":memory:")
    local lic = stores.two_servers(store, "2019-01-04")
    assert.are.same({ "email_customer", "notify_fraud_team" }, actions(store:sweep("2019-01-04")))
    store:deactivate(lic.key, "new", "2019-01-05")
    keep_checking_in(store, lic.key, "2019-01-05", "2019-01-06")
    local again = store:activate(lic.key, "new", 6911, "2019-01-06")
    assert.are.same({ false, "migration_window_over" }, { again.ok, again.code })
  end)

  it("resumes the closed case when excess returns within case_cooldown_days (amended R11)", function()
    local store = stores.new(":memory:")
    local lic = stores.two_servers(store, "2019-01-04")
    local first = store:sweep("2019-01-04")
    store:deactivate(lic.key, "new", "2019-01-05")
    assert.are.same({}, store:sweep("2019-01-05"))          -- the excess ended: closed
    -- 20 days later (a new run, migrating) the excess is back: same case,
    -- and the steps timed from its first step (01-04) are due at once.
    keep_checking_in(store, lic.key, "2019-01-06", "2019-01-24")
    assert.is_true(store:activate(lic.key, "newer", 6947, "2019-01-25").ok)
    local taken = store:sweep("2019-01-25")
    assert.are.same({ "phone_customer", "disable_key" }, actions(taken))
    assert.are.equal(first[1].case, taken[1].case)
    assert.are.equal(1, #store:query("SELECT id FROM fraud_cases WHERE key = ?", lic.key))
    assert.are.equal("2019-01-25", store:get(lic.key).disabled)
    local events = store:events(lic.key)
    local last = {}
    for i = #events - 4, #events do last[#last + 1] = events[i].kind end
    assert.are.same({ "case_closed", "activate", "case_resumed", "phone_customer", "disable_key" }, last)
  end)

  it("opens a new case when excess returns after case_cooldown_days", function()
    local store = stores.new(":memory:")
    local lic = stores.two_servers(store, "2019-01-04")
    store:sweep("2019-01-04")
    store:deactivate(lic.key, "new", "2019-01-05")
    store:sweep("2019-01-05")
    keep_checking_in(store, lic.key, "2019-01-06", "2019-04-09")
    store:activate(lic.key, "newer", 6947, "2019-04-10")   -- 95 days after the closing
    keep_checking_in(store, lic.key, "2019-04-11", "2019-05-10", "newer")
    assert.are.same({}, ladder(store:sweep("2019-05-09")))          -- (M&S reminders go out, no step)
    assert.are.same({ "email_customer", "notify_fraud_team" }, actions(store:sweep("2019-05-10")))
    assert.are.equal(2, #store:query("SELECT id FROM fraud_cases WHERE key = ?", lic.key))
  end)

  it("never resumes a case an admin closed by re-enabling the key", function()
    local store = stores.new(":memory:")
    local lic = stores.two_servers(store, "2019-01-18")
    store:sweep("2019-01-04")
    store:sweep("2019-01-18")                                -- disabled
    store:deactivate(lic.key, "new", "2019-01-19")
    store:enable(lic.key, "2019-01-19")
    keep_checking_in(store, lic.key, "2019-01-19", "2019-02-10")
    assert.is_true(store:activate(lic.key, "newer", 6947, "2019-02-10").ok)
    assert.are.same({}, store:sweep("2019-02-10"))
    assert.is_nil(store:get(lic.key).disabled)
  end)

  it("logs each step in the key's events", function()
    local store = stores.new(":memory:")
    local lic = stores.two_servers(store, "2019-01-04")
    store:sweep("2019-01-04")
    local kinds = {}
    for _, e in ipairs(store:events(lic.key)) do kinds[#kinds + 1] = e.kind end
    assert.are.same({ "issue", "activate", "activate", "case_opened", "email_customer", "notify_fraud_team" }, kinds)
  end)
end)

describe("the outbox", function()
  local store
  before_each(function()
    store = stores.new(":memory:")
    stores.two_servers(store, "2019-01-04")
    store:sweep("2019-01-04")
  end)

  it("says which step failed: the handler, or recording the delivery", function()
    store:on("email_customer", function() error("smtp down") end)
    store:on("notify_fraud_team", function() return true end)
    local db = store.db
    local function write(method)
      return function(_, id, ...)
        if id == store.sql.outbox_done then failure.raise("busy", "database is locked (injected)") end
        return db[method](db, id, ...)
      end
    end
    store.db = setmetatable({ run = write("run"), defer = write("defer") },
      { __index = function(_, name) return function(_, ...) return db[name](db, ...) end end })
    local delivered, pending, failures = store:deliver()
    store.db = db
    assert.are.same({ 0, 2 }, { delivered, pending })
    assert.are.same({ "handler", "record" }, { failures[1].step, failures[2].step })
    assert.matches("smtp down", failures[1].error)
    assert.matches("^recording the delivery failed: busy: database is locked", failures[2].error)
  end)

  it("delivers each pending action to its handler, oldest first, and marks it done", function()
    local seen = {}
    store:on("email_customer", function(a) seen[#seen + 1] = a.action .. " " .. a.on; return true end)
    store:on("notify_fraud_team", function(a) seen[#seen + 1] = a.action; return true end)
    local delivered, pending = store:deliver()
    assert.are.same({ 2, 0 }, { delivered, pending })
    assert.are.same({ "email_customer 2019-01-04", "notify_fraud_team" }, seen)
    delivered, pending = store:deliver()
    assert.are.same({ 0, 0 }, { delivered, pending })
  end)

  it("leaves rows whose handler fails, errors or is missing pending for the next call", function()
    local calls = 0
    store:on("email_customer", function() calls = calls + 1; error("smtp down") end)
    store:on("notify_fraud_team", function() calls = calls + 1; return false end)
    local delivered, pending, failures = store:deliver()
    assert.are.same({ 0, 2, 2 }, { delivered, pending, #failures })
    assert.matches("smtp down", failures[1].error)
    store:on("email_customer", function() return true end)
    delivered, pending = store:deliver()
    assert.are.same({ 1, 1 }, { delivered, pending })
    assert.are.equal(3, calls)
  end)

  it("sends no row twice when a slow batch outlasts its claim and another deliverer takes the rest", function()
    local many, path = stores.new()
    for _ = 1, 6 do stores.issue(many) end
    assert.are.equal(6, #many:sweep("2019-05-01"))                    -- six ms_expiring reminders
    local other = stores.new(path)
    local sent, first = {}, true
    local function record(by, a) sent[#sent + 1] = by .. " " .. a.id; return true end
    other:on("ms_expiring", function(a) return record("other", a) end)
    many:on("ms_expiring", function(a)
      if first then
        -- The batch is slow: the claims on the rows after this one run out
        -- while it is sent, and the other deliverer takes them.
        first = false
        local db = stores.raw(path)
        db:exec("UPDATE outbox SET claimed_until = 1 WHERE id > " .. a.id)
        db:close()
        local delivered = other:deliver()
        if delivered ~= 5 then error("the other deliverer sent " .. delivered) end
      end
      return record("many", a)
    end)
    local delivered, pending, failures = many:deliver()
    assert.are.same({ 1, 0, 0 }, { delivered, pending, #failures })   -- the slow one skips them
    assert.are.same({ "other 2", "other 3", "other 4", "other 5", "other 6", "many 1" }, sent)
    other:close()
    many:close()
  end)

  it("accepts only the ladder's actions and functions", function()
    assert.has_error(function() store:on("sms_customer", function() end) end)
    assert.has_error(function() store:on("email_customer", "mail") end)
  end)
end)

describe("the event log", function()
  it("returns events oldest first with their detail tables and the time each was recorded", function()
    local store = stores.new(":memory:")
    local lic = stores.issue(store)
    store:disable(lic.key, "2019-01-01", "chargeback")
    local events = store:events(lic.key)
    assert.are.same({ "issue", "disable" }, { events[1].kind, events[2].kind })
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", events[2].recorded)
    events[2].recorded = nil
    assert.are.same({ at = "2019-01-01", kind = "disable", detail = { reason = "chargeback" } }, events[2])
    assert.are.equal("unknown_key", select(3, store:events(core.new_key())))
  end)

  it("cannot be updated or deleted, even with SQL", function()
    local store, path = stores.new()
    stores.issue(store)
    local db = stores.raw(path)
    local ok, err = pcall(db.exec, db, "UPDATE events SET kind = 'forged'")
    assert.is_false(ok)
    assert.matches("append%-only", err.message)
    ok = pcall(db.exec, db, "DELETE FROM events")
    assert.is_false(ok)
    db:close()
    store:close()
    stores.remove(path)
  end)
end)
