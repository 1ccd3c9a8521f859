-- A certificate keeps its slot (doc/rules.md section 9, "The allowance
-- holds offline too"): the attacks that ran one single-server license on
-- many machines, the two ways a slot frees at once (return receipt,
-- admin force), revocation notices, bounded fingerprint drift, the rule
-- holes of re-enabled keys, R13 on re-activation and refused check-ins,
-- a sweep that never stops for everyone, and a property spec of the
-- invariant over random sequences.  On SQLite and PostgreSQL.
local licensor = require "licensor"
local core = require "licensor.core"
local stores = require "support.stores"

local machine = require("support.fixtures").machine

-- The same machine with one component changed (a new network card).
local function drifted(fp, component, n)
  return (fp:gsub(component .. "=%x+", component .. "=" .. string.rep(string.format("%x", n % 16), 16)))
end

local new_key = require("support.fixtures").new_key

local function date(day) return core.date(day) end
local function day(text) return core.day(text) end

-- Would a certificate still verify valid or grace on `on`?
local function live(text, on)
  local c = assert(core.read_certificate(text))
  return day(on) <= day(c.refresh_by) + c.grace_days
end

-- The receipt the verifier library writes when the product deletes a
-- certificate (csrc/licensor_verify.h, lsrv_return).
local function receipt_of(text)
  local c = assert(core.read_certificate(text))
  return "-----BEGIN LICENSOR RETURN RECEIPT-----\nformat: 1\nlicense: " .. c.license .. "\nserver: " ..
    c.server .. "\nfingerprint: " .. c.fingerprint .. "\ncertificate: " ..
    text:match("\nsignature: ([^\n]+)\n") .. "\n-----END LICENSOR RETURN RECEIPT-----\n"
end

local steps = stores.ladder

describe("a certificate keeps its slot (" .. stores.backend .. ")", function()
  local store, key_path, lic

  before_each(function()
    store = stores.new(":memory:")
    key_path = new_key()
    assert(store:use_signing_key(key_path))
    lic = stores.issue(store, { start = "2018-06-01" })
  end)

  after_each(function()
    store:close()
    os.remove(key_path)
    os.remove(key_path .. ".pub")
  end)

  it("stops activate, certificate, deactivate, repeat at the allowance plus migration_extra", function()
    local live_certs, refused = {}, {}
    for n = 1, 20 do
      local v = store:activate(lic.key, "s" .. n, 6911, "2018-12-05", machine(n))
      if v.ok then
        live_certs[#live_certs + 1] = assert(store:certificate(lic.key, "s" .. n, "2018-12-05"))
        local d = store:deactivate(lic.key, "s" .. n, "2018-12-05")
        assert.are.equal("2019-01-18", d.held_until)   -- refresh-by 2019-01-04 + 14 days of grace
      else
        refused[#refused + 1] = v.code
      end
    end
    assert.are.equal(2, #live_certs)
    assert.are.equal(18, #refused)
    assert.are.equal("too_many_installations", refused[1])
    -- The slots free by themselves once the certificates end.
    assert.is_true(store:activate(lic.key, "s21", 6911, "2019-01-19", machine(21)).ok)
  end)

  it("says until when a deactivated server's certificate holds its slot, and counts it in the window", function()
    assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", machine(1)).ok)
    store:certificate(lic.key, "a", "2018-12-05")
    local d = store:deactivate(lic.key, "a", "2018-12-10")
    assert.are.equal("2019-01-18", d.held_until)
    local v = store:activate(lic.key, "b", 6911, "2018-12-10", machine(2))
    assert.is_true(v.ok)
    assert.are.same({ "migrating", 2, "2018-12-10" }, { v.migration.state, v.migration.active, v.migration.since })
    assert.are.equal("too_many_installations", store:activate(lic.key, "c", 6911, "2018-12-10", machine(3)).code)
    local list = store:installations(lic.key)
    assert.are.same({ "2018-12-10", "2019-01-18" }, { list[1].deactivated, list[1].held_until })
  end)

  it("frees the slot at once with the certificate's return receipt", function()
    assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", machine(1)).ok)
    local text = store:certificate(lic.key, "a", "2018-12-05")
    local d = assert(store:deactivate(lic.key, "a", "2018-12-06", { receipt = receipt_of(text) }))
    assert.is_true(d.ok)
    assert.is_nil(d.held_until)
    local v = store:activate(lic.key, "b", 6911, "2018-12-06", machine(2))
    assert.are.same({ true, "ok", 1 }, { v.ok, v.migration.state, v.migration.active })
    assert.are.equal("returned", store:installations(lic.key)[1].freed)
  end)

  it("frees it after a plain deactivation too, when the receipt comes later", function()
    assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", machine(1)).ok)
    local text = store:certificate(lic.key, "a", "2018-12-05")
    assert.are.equal("2019-01-18", store:deactivate(lic.key, "a", "2018-12-06").held_until)
    assert.is_nil(store:deactivate(lic.key, "a", "2018-12-08", { receipt = receipt_of(text) }).held_until)
    -- The deactivation day stays the first one.
    assert.are.equal("2018-12-06", store:installations(lic.key)[1].deactivated)
  end)

  it("refuses a receipt for another server, another key, an older certificate or a forged signature", function()
    assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", machine(1)).ok)
    local old = store:certificate(lic.key, "a", "2018-12-05")
    local text = store:certificate(lic.key, "a", "2018-12-06")
    local other = stores.issue(store, { start = "2018-06-01" })
    assert.is_true(store:activate(other.key, "a", 6911, "2018-12-05", machine(1)).ok)
    local before = stores.dump(store)
    local good = receipt_of(text)
    local cases = {
      good:gsub("server: a\n", "server: b\n"),
      (good:gsub(lic.key:gsub("%p", "%%%0"), other.key)),
      receipt_of(old),
      (good:gsub("certificate: (.)", function(c) return "certificate: " .. (c == "A" and "B" or "A") end)),
      "not a receipt",
    }
    for _, r in ipairs(cases) do
      local ok, msg, code = store:deactivate(other.key == r:match("license: (%S+)") and other.key or lic.key, "a",
                                             "2018-12-07", { receipt = r })
      assert.is_nil(ok, r)
      assert.are.equal("invalid_receipt", code, msg)
    end
    assert.are.equal(before, stores.dump(store))
  end)

  it("takes the receipt of the newest certificate after a drift, and of a parked one after its name was reused",
     function()
    assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", machine(1)).ok)
    local text = store:certificate(lic.key, "a", "2018-12-05")
    assert.is_true(store:checkin(lic.key, "a", "2018-12-06", nil, drifted(machine(1), "mac", 0)).ok)
    assert.is_nil(store:deactivate(lic.key, "a", "2018-12-07", { receipt = receipt_of(text) }).held_until)
    assert.is_true(store:activate(lic.key, "b", 6911, "2018-12-07", machine(2)).ok)
    local parked = store:certificate(lic.key, "b", "2018-12-07")
    store:deactivate(lic.key, "b", "2018-12-08")
    assert.is_true(store:activate(lic.key, "b", 6911, "2018-12-08", machine(3)).ok)
    local d = assert(store:deactivate(lic.key, "b", "2018-12-09", { receipt = receipt_of(parked) }))
    assert.is_true(d.ok)
    local freed = {}
    for _, i in ipairs(store:installations(lic.key)) do freed[#freed + 1] = tostring(i.freed) end
    assert.are.same({ "returned", "returned", "nil" }, freed)
  end)

  it("frees it when an admin forces it, with the reason logged as its own event", function()
    assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", machine(1)).ok)
    store:certificate(lic.key, "a", "2018-12-05")
    local d = store:deactivate(lic.key, "a", "2018-12-06", { force = true, reason = "server lost in a fire" })
    assert.is_nil(d.held_until)
    local events = store:events(lic.key)
    local last = events[#events]
    assert.are.same({ "force_free", "a", "server lost in a fire", "2019-01-18" },
      { last.kind, last.detail.server, last.detail.reason, last.detail.held_until })
    assert.are.equal("ok", store:activate(lic.key, "b", 6911, "2018-12-06", machine(2)).migration.state)
    assert.has_error(function() store:deactivate(lic.key, "a", "2018-12-06", { force = true }) end)
  end)

  it("lets the same machine activate again into the slot its certificate holds", function()
    assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", machine(1)).ok)
    store:certificate(lic.key, "a", "2018-12-05")
    store:deactivate(lic.key, "a", "2018-12-06")
    local v = store:activate(lic.key, "a", 6911, "2018-12-08", machine(1))
    assert.are.same({ true, "ok", 1 }, { v.ok, v.migration.state, v.migration.active })
    -- Deactivated again without a receipt: the old certificate still holds.
    assert.are.equal("2019-01-18", store:deactivate(lic.key, "a", "2018-12-09").held_until)
  end)

  it("counts a lapsed air-gapped server whose certificate lives, up to the fraud ladder", function()
    assert.is_true(store:activate(lic.key, "air", 6911, "2018-12-05", machine(1)).ok)
    store:certificate(lic.key, "air", "2018-12-05")
    local v = store:activate(lic.key, "b", 6911, "2018-12-10", machine(2))
    assert.are.same({ true, "migrating", "2018-12-10" }, { v.ok, v.migration.state, v.migration.since })
    -- "air" never checks in: lapsed under R9 from 2018-12-13, its
    -- certificate lives to 2019-01-18 and keeps the excess (fraud from 2019-01-09).
    for d = day("2018-12-11"), day("2019-01-15") do store:checkin(lic.key, "b", date(d)) end
    assert.are.same({ "email_customer", "notify_fraud_team" }, steps(store:sweep("2019-01-15")))
    assert.are.same({ "fraud", 2 }, { store:checkin(lic.key, "b", "2019-01-15").migration.state,
                                      store:checkin(lic.key, "b", "2019-01-15").migration.active })
  end)

  describe("an honest move", function()
    it("never goes up the ladder when the old server was deactivated without a receipt", function()
      assert.is_true(store:activate(lic.key, "old", 6911, "2018-12-05", machine(1)).ok)
      store:certificate(lic.key, "old", "2018-12-05")
      store:deactivate(lic.key, "old", "2018-12-05")
      assert.is_true(store:activate(lic.key, "new", 6911, "2018-12-05", machine(2)).ok)
      for d = day("2018-12-05"), day("2019-02-28") do
        store:checkin(lic.key, "new", date(d))
        assert.are.same({}, steps(store:sweep(date(d))), date(d))
      end
      assert.is_nil(store:get(lic.key).disabled)
      -- Past the old certificate's end the excess is over.
      local window = store:catalogue():migration(store:get(lic.key), store:installations(lic.key), "2019-01-19")
      assert.are.equal("ok", window.state)
    end)

    it("is still fraud when both servers keep running", function()
      assert.is_true(store:activate(lic.key, "old", 6911, "2018-12-05", machine(1)).ok)
      assert.is_true(store:activate(lic.key, "new", 6911, "2018-12-05", machine(2)).ok)
      for d = day("2018-12-06"), day("2019-01-04") do
        store:checkin(lic.key, "old", date(d))
        store:checkin(lic.key, "new", date(d))
      end
      assert.are.same({ "email_customer", "notify_fraud_team" }, steps(store:sweep("2019-01-04")))
    end)

    it("finds the window where it left it when the parked server comes back", function()
      assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", machine(1)).ok)
      assert.is_true(store:activate(lic.key, "b", 6911, "2018-12-05", machine(2)).ok)
      for d = day("2018-12-06"), day("2019-01-02") do
        store:checkin(lic.key, "a", date(d))
        store:checkin(lic.key, "b", date(d))
      end
      store:certificate(lic.key, "b", "2019-01-02")
      store:deactivate(lic.key, "b", "2019-01-03")       -- parked: b runs on its certificate
      for d = day("2019-01-03"), day("2019-01-16") do
        store:checkin(lic.key, "a", date(d))
        assert.are.same({}, steps(store:sweep(date(d))), date(d))
      end
      -- Its held days are in the window (the run since 2018-12-05 never
      -- broke): the window is over, and the machine is told its
      -- certificates no longer hold.
      local v = store:activate(lic.key, "b", 6911, "2019-01-17", machine(2))
      assert.are.same({ false, "migration_window_over" }, { v.ok, v.code })
      assert.matches("\nreason: deactivated\n", v.revocation)
      local window = store:catalogue():migration(store:get(lic.key), store:installations(lic.key), "2019-01-17")
      assert.are.same({ "2018-12-05", 1 }, { window.since, window.parked })
    end)

    it("stops the ladder of an open case once the extra server is deactivated", function()
      assert.is_true(store:activate(lic.key, "old", 6911, "2018-12-05", machine(1)).ok)
      assert.is_true(store:activate(lic.key, "new", 6911, "2018-12-05", machine(2)).ok)
      for d = day("2018-12-06"), day("2019-01-04") do
        store:checkin(lic.key, "old", date(d))
        store:checkin(lic.key, "new", date(d))
        store:certificate(lic.key, "old", date(d))
      end
      assert.are.same({ "email_customer", "notify_fraud_team" }, steps(store:sweep("2019-01-04")))
      store:deactivate(lic.key, "old", "2019-01-05")
      for d = day("2019-01-05"), day("2019-02-20") do
        store:checkin(lic.key, "new", date(d))
        assert.are.same({}, steps(store:sweep(date(d))), date(d))
      end
    end)
  end)

  describe("revocation notices", function()
    local function refresh(server, on)
      return assert(store:certificate(lic.key, server, on))
    end

    it("answer a check-in of a disabled key, covering the machine's certificates", function()
      assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", machine(1)).ok)
      refresh("a", "2018-12-05")
      store:disable(lic.key, "2018-12-10", "chargeback")
      local v = store:checkin(lic.key, "a", "2018-12-11", nil, machine(1))
      assert.are.same({ false, "disabled" }, { v.ok, v.code })
      assert.matches("^%-%-%-%-%-BEGIN LICENSOR REVOCATION%-%-%-%-%-\n", v.revocation)
      assert.matches("\nlicense: " .. lic.key .. "\nserver: a\n", v.revocation, 1, true)
      assert.matches("\nrevoked: 2018%-12%-05T00:00:00Z\nreason: disabled\n", v.revocation)
      -- An activation of the disabled key is answered the same way.
      assert.are.equal(v.revocation, store:activate(lic.key, "a", 6911, "2018-12-11", machine(1)).revocation)
    end)

    it("answer a check-in of a deactivated or force-freed server, and never a lapsed one", function()
      assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", machine(1)).ok)
      refresh("a", "2018-12-05")
      store:deactivate(lic.key, "a", "2018-12-06")
      local v = store:checkin(lic.key, "a", "2018-12-07", nil, machine(1))
      assert.are.equal("not_activated", v.code)
      assert.matches("\nreason: deactivated\n", v.revocation)
      store:deactivate(lic.key, "a", "2018-12-07", { force = true, reason = "lost" })
      assert.matches("\nreason: forced\n", store:checkin(lic.key, "a", "2018-12-08").revocation)
      local other = stores.issue(store, { start = "2018-06-01" })
      assert.is_true(store:activate(other.key, "air", 6911, "2018-12-05", machine(2)).ok)
      store:certificate(other.key, "air", "2018-12-05")
      local lapsed = store:checkin(other.key, "air", "2018-12-20")
      assert.are.same({ "not_activated", nil }, { lapsed.code, lapsed.revocation })
    end)

    it("never cover a certificate issued after them", function()
      assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", machine(1)).ok)
      refresh("a", "2018-12-05")
      store:disable(lic.key, "2018-12-05", "check")
      local notice = store:checkin(lic.key, "a", "2018-12-05").revocation
      store:enable(lic.key, "2018-12-05")
      local text = refresh("a", "2018-12-05")
      local revoked = notice:match("\nrevoked: (%S+)\n")
      assert.is_true(assert(core.read_certificate(text)).issued > revoked)
    end)

    it("are written nowhere: a refusal leaves the store as it was", function()
      assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", machine(1)).ok)
      refresh("a", "2018-12-05")
      store:disable(lic.key, "2018-12-10", "chargeback")
      local before = stores.dump(store)
      for _ = 1, 3 do store:checkin(lic.key, "a", "2018-12-11", nil, machine(1)) end
      assert.are.equal(before, stores.dump(store))
    end)
  end)

  describe("machine binding", function()
    it("refuses a fingerprint of fewer than three components or without machine-id or DMI uuid", function()
      for _, fp in ipairs({ "v1:disk=9a9fea1c152dc3bb",
                            "v1:mid=1111111111111111,host=2222222222222222",
                            "v1:mac=1111111111111111,disk=2222222222222222,host=3333333333333333" }) do
        local ok, msg, code = store:activate(lic.key, "s", 6911, "2018-12-05", fp)
        assert.is_nil(ok, fp)
        assert.are.equal("invalid_request", code, msg)
      end
    end)

    it("bounds drift: one component a check-in, two changes in 90 days, then wrong_machine", function()
      local fp = machine(1)
      assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", fp).ok)
      local two = drifted(drifted(fp, "mac", 0), "host", 0)
      assert.are.equal("wrong_machine", store:checkin(lic.key, "a", "2018-12-06", nil, two).code)
      local step1 = drifted(fp, "mac", 0)
      assert.is_true(store:checkin(lic.key, "a", "2018-12-06", nil, step1).ok)
      local step2 = drifted(step1, "host", 0)
      assert.is_true(store:checkin(lic.key, "a", "2018-12-07", nil, step2).ok)
      local step3 = drifted(step2, "disk", 0)
      local v = store:checkin(lic.key, "a", "2018-12-08", nil, step3)
      assert.are.same({ false, "wrong_machine" }, { v.ok, v.code })
      assert.matches("2 times in 90 days", v.message)
      -- The walk may go on once the oldest change is 90 days old.
      for d = day("2018-12-08"), day("2019-03-06") do store:checkin(lic.key, "a", date(d), nil, step2) end
      assert.is_true(store:checkin(lic.key, "a", "2019-03-06", nil, step3).ok)
      local kinds = {}
      for _, e in ipairs(store:events(lic.key)) do kinds[e.kind] = (kinds[e.kind] or 0) + 1 end
      assert.are.equal(3, kinds.fingerprint)
    end)

    it("never lets a strong component drift, at check-in or by activating again", function()
      local fp = machine(1)
      assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", fp).ok)
      local other_mid = drifted(fp, "mid", 0)
      local v = store:checkin(lic.key, "a", "2018-12-06", nil, other_mid)
      assert.are.same({ false, "wrong_machine" }, { v.ok, v.code })
      assert.matches("mid changed", v.message)
      -- Deactivated and activated again with the machine-id changed: another
      -- machine, counted next to the slot the first one's certificate holds.
      store:certificate(lic.key, "a", "2018-12-06")
      store:deactivate(lic.key, "a", "2018-12-07")
      v = store:activate(lic.key, "a", 6911, "2018-12-07", other_mid)
      assert.are.same({ true, "migrating", 2 }, { v.ok, v.migration.state, v.migration.active })
    end)

    it("stops a walk by deactivating and activating again one component at a time", function()
      local a = "v1:mid=aaaaaaaaaaaaaaaa,mac=1111111111111111,disk=2222222222222222,host=3333333333333333"
      local b = "v1:mid=bbbbbbbbbbbbbbbb,mac=4444444444444444,disk=5555555555555555,host=6666666666666666"
      local walk = { a:gsub("mac=%x+", "mac=4444444444444444"), a:gsub("disk=%x+", "disk=5555555555555555"),
                     b:gsub("mac=%x+", "mac=1111111111111111"), b }
      assert.is_true(store:activate(lic.key, "w", 6911, "2018-12-05", a).ok)
      local certs = { assert(store:certificate(lic.key, "w", "2018-12-05")) }
      for _, fp in ipairs(walk) do
        store:deactivate(lic.key, "w", "2018-12-05")
        local v = store:activate(lic.key, "w", 6911, "2018-12-05", fp)
        if v.ok then certs[#certs + 1] = assert(store:certificate(lic.key, "w", "2018-12-05")) end
      end
      -- The same machine moved within the drift bounds keeps one slot; the
      -- one with another machine-id is a second machine; past it, refused.
      local machines = {}
      for _, text in ipairs(certs) do
        machines[assert(core.read_certificate(text)).fingerprint:match("mid=(%x+)")] = true
      end
      local n = 0
      for _ in pairs(machines) do n = n + 1 end
      assert.is_true(n <= 2)
    end)

    it("takes the slot of a renamed server back when it is the same machine", function()
      assert.is_true(store:activate(lic.key, "host-a", 6911, "2018-12-05", machine(1)).ok)
      store:certificate(lic.key, "host-a", "2018-12-05")
      -- host-a lapses (never checks in again); the same machine comes back as host-b.
      local v = store:activate(lic.key, "host-b", 6911, "2018-12-20", machine(1))
      assert.are.same({ true, "ok", 1 }, { v.ok, v.migration.state, v.migration.active })
      for d = day("2018-12-21"), day("2019-02-20") do
        store:checkin(lic.key, "host-b", date(d))
        assert.are.same({}, steps(store:sweep(date(d))), date(d))
      end
    end)

    it("records nothing when the same components come in another order", function()
      local fp = machine(1)
      assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", fp).ok)
      local parts = {}
      for part in fp:sub(4):gmatch("[^,]+") do table.insert(parts, 1, part) end
      local before = #store:events(lic.key)
      for d = 6, 9 do
        assert.is_true(store:checkin(lic.key, "a", "2018-12-0" .. d, nil, "v1:" .. table.concat(parts, ",")).ok)
      end
      assert.are.equal(before, #store:events(lic.key))
      assert.is_true(store:checkin(lic.key, "a", "2018-12-10", nil, drifted(fp, "mac", 0)).ok)
    end)

    it("sends another machine through R10's admission", function()
      assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", machine(1)).ok)
      assert.are.equal("wrong_machine", store:activate(lic.key, "a", 6911, "2018-12-06", machine(9)).code)
    end)
  end)
end)

describe("rule holes (" .. stores.backend .. ")", function()
  it("a key re-enabled by an admin never resumes an earlier case: new excess opens one with the whole ladder",
     function()
    local store = stores.new(":memory:")
    local lic = stores.two_servers(store, "2019-01-18")
    store:sweep("2019-01-04")
    store:sweep("2019-01-11")
    assert.are.same({ "disable_key" }, steps(store:sweep("2019-01-18")))
    store:deactivate(lic.key, "new", "2019-01-19")
    store:sweep("2019-01-19")                       -- closes the case: excess ended
    store:enable(lic.key, "2019-01-20")
    -- New excess 17 days after the last (a new run), within the case's cooldown.
    for d = day("2019-01-20"), day("2019-02-05") do store:checkin(lic.key, "old", date(d)) end
    assert.is_true(store:activate(lic.key, "third", 6911, "2019-02-05").ok)
    for d = day("2019-02-06"), day("2019-03-07") do
      store:checkin(lic.key, "old", date(d))
      store:checkin(lic.key, "third", date(d))
    end
    local taken = store:sweep("2019-03-07")
    assert.are.same({ "email_customer", "notify_fraud_team" }, steps(taken))
    assert.are_not.equal(1, taken[1].case)
  end)

  it("an activation of an active server is a check-in, R13 included", function()
    local store = stores.new(":memory:")
    local lic = stores.issue(store, { start = "2018-06-01" })
    assert.is_true(store:activate(lic.key, "a", 6947, "2019-02-01").ok)
    local v = store:activate(lic.key, "a", 6911, "2019-02-02")
    assert.are.same({ false, "rollback_barrier" }, { v.ok, v.code })
    assert.are.equal(6947, store:installations(lic.key)[1].build)
  end)

  it("a refused check-in writes nothing, not even its fingerprint", function()
    local store = stores.new(":memory:")
    local lic = stores.issue(store, { start = "2018-06-01" })
    assert.is_true(store:activate(lic.key, "a", 6947, "2019-02-01", machine(1)).ok)
    local before = stores.dump(store)
    local v = store:checkin(lic.key, "a", "2019-02-02", 6911, drifted(machine(1), "mac", 0))
    assert.are.equal("rollback_barrier", v.code)
    assert.are.equal(before, stores.dump(store))
  end)
end)

describe("a sweep never stops for everyone (" .. stores.backend .. ")", function()
  it("refuses an import that leaves licenses without their product, naming them", function()
    local store = stores.new(":memory:")
    stores.issue(store, {})
    stores.issue(store, {})
    local t = require("support.fixtures").catalogue_table()
    for i = #t.products, 1, -1 do
      if t.products[i].id == "smartertrack" then table.remove(t.products, i) end
    end
    local ok, msg, code = store:import(t)
    assert.is_nil(ok)
    assert.are.equal("invalid_catalogue", code)
    assert.matches("'smartertrack' (2 licenses)", msg, 1, true)
  end)

  it("skips and reports a key it cannot work and still works every other", function()
    local store, path = stores.new()
    local bad = stores.two_servers(store, "2019-01-04")
    local good = stores.two_servers(store, "2019-01-04")
    -- A license whose product no catalogue knows (written around the import check).
    local raw = stores.raw(path)
    raw:exec("UPDATE licenses SET product = 'ghost' WHERE key = '" .. bad.key .. "'")
    raw:close()
    local taken, skipped = store:sweep("2019-01-04")
    assert.are.same({ "email_customer", "notify_fraud_team" }, steps(taken))
    assert.are.equal(good.key, taken[1].key)
    assert.are.equal(1, #skipped)
    assert.are.equal(bad.key, skipped[1].key)
    assert.matches("unknown_product", skipped[1].why)
    local events = store:events(bad.key)
    assert.are.equal("sweep_skipped", events[#events].kind)
  end)
end)

-- The invariant over random sequences: the machines holding a certificate
-- that would verify valid or grace on the day, with the active
-- installations of machines that hold none, never number more than the
-- allowance plus migration_extra.
describe("the allowance holds offline (" .. stores.backend .. ", random sequences)", function()
  local SEQUENCES = stores.postgresql and 200 or 2000
  local STEPS = 14

  it("over " .. SEQUENCES .. " random sequences of " .. STEPS .. " steps", function()
    local key_path = new_key()
    local store = stores.new(":memory:")
    assert(store:use_signing_key(key_path))
    -- Park and Miller's generator: products stay below 2^53, so both VMs
    -- draw the same sequences.
    local rng_state = 12345
    local function rand(n)
      rng_state = (rng_state * 16807) % 2147483647
      return rng_state % n + 1
    end
    local violations, checked = {}, 0
    -- What the sequences did, so that the spec cannot pass by doing nothing.
    local seen = { activated = 0, certified = 0, returned = 0, revoked = 0, at_limit = 0 }
    for seq = 1, SEQUENCES do
      local failover = rand(2) == 1
      local lic = stores.issue(store, { start = "2018-06-01", failover = failover })
      local limit = (failover and 2 or 1) + 1
      local on = day("2018-12-01")
      -- machines[m] = {fp=, certs={text...}, gone=}
      local machines = {}
      for m = 1, 4 do machines[m] = { fp = machine(seq * 7 + m), certs = {} } end
      local server_of = {}    -- machine -> server name it runs as
      local log = {}
      local function certify(m)
        local text, why = store:certificate(lic.key, server_of[m], date(on))
        log[#log] = log[#log] .. " cert " .. tostring(text and "ok" or why)
        if text then
          machines[m].certs[#machines[m].certs + 1] = text
          seen.certified = seen.certified + 1
        end
      end
      local function apply(v, m)
        -- A machine that is answered a revocation applies it (lsrv).
        if v and v.revocation then
          machines[m].certs = {}
          seen.revoked = seen.revoked + 1
        end
      end
      for _ = 1, STEPS do
        local m = rand(4)
        local mach = machines[m]
        local op = rand(10)
        if mach.gone then op = 10 end
        local server = server_of[m] or ("s" .. rand(3))
        log[#log + 1] = date(on) .. " m" .. m .. " op" .. op .. " " .. server
        if op <= 3 then
          local v = store:activate(lic.key, server, 6911, date(on), mach.fp)
          log[#log] = log[#log] .. " activate " .. tostring(v.ok and "ok" or v.code)
          apply(v, m)
          if v.ok then
            seen.activated = seen.activated + 1
            -- The server name is this machine's now.
            for i = 1, 4 do
              if server_of[i] == server then server_of[i] = nil end
            end
            server_of[m] = server
            if rand(3) > 1 then certify(m) end
          end
        elseif op == 4 and server_of[m] then
          local fp = rand(3) == 1 and drifted(mach.fp, "mac", rand(16)) or mach.fp
          local v = store:checkin(lic.key, server_of[m], date(on), nil, fp)
          log[#log] = log[#log] .. " checkin " .. tostring(v.ok and "ok" or v.code)
          apply(v, m)
          if v.ok then mach.fp = fp; certify(m) end
        elseif op == 5 and server_of[m] then
          store:deactivate(lic.key, server_of[m], date(on))
        elseif op == 6 and server_of[m] and #mach.certs > 0 then
          -- The product returns its newest certificate: the library deletes
          -- it and revokes the older ones locally.
          local ok = store:deactivate(lic.key, server_of[m], date(on), { receipt = receipt_of(mach.certs[#mach.certs]) })
          if ok then
            mach.certs = {}
            seen.returned = seen.returned + 1
          end
        elseif op == 7 and server_of[m] then
          -- An admin frees the slot of a machine declared lost: it is gone.
          store:deactivate(lic.key, server_of[m], date(on), { force = true, reason = "lost" })
          mach.gone, mach.certs = true, {}
        elseif op == 8 then
          if rand(2) == 1 then store:disable(lic.key, date(on), "check") else store:enable(lic.key, date(on)) end
        else
          on = on + rand(20) - 1
        end
        -- The invariant on this day.
        local holding, certified = 0, {}
        for i, mm in ipairs(machines) do
          for _, text in ipairs(mm.certs) do
            if live(text, date(on)) then certified[i] = true end
          end
          if certified[i] then holding = holding + 1 end
        end
        local cat = store:catalogue()
        for _, inst in ipairs(store:installations(lic.key)) do
          if cat:installation_active(inst, date(on)) then
            local owner
            for i = 1, 4 do
              if server_of[i] == inst.server then owner = i end
            end
            if not (owner and certified[owner]) then holding = holding + 1 end
          end
        end
        checked = checked + 1
        if holding == limit then seen.at_limit = seen.at_limit + 1 end
        if holding > limit then
          violations[#violations + 1] = lic.key .. " on " .. date(on) .. ": " .. holding .. " > " .. limit ..
            (#violations == 0 and ("\n" .. table.concat(log, "\n")) or "")
        end
      end
    end
    store:close()
    os.remove(key_path)
    os.remove(key_path .. ".pub")
    assert.are.same({}, violations)
    assert.is_true(checked >= SEQUENCES * STEPS)
    for what, n in pairs(seen) do assert.is_true(n >= SEQUENCES / 20, what .. ": " .. n) end
  end)
end)

-- licensor.verify sees the same: a notice applied to the state revokes.
describe("revocation reaches the machine (" .. stores.backend .. ")", function()
  it("a machine that applies the notice of its check-in verifies its certificate as revoked", function()
    local key_path, public = new_key()
    local store = stores.new(":memory:")
    assert(store:use_signing_key(key_path))
    local lic = stores.issue(store, { start = "2018-06-01" })
    assert.is_true(store:activate(lic.key, "a", 6911, "2018-12-05", machine(1)).ok)
    local text = store:certificate(lic.key, "a", "2018-12-05")
    store:disable(lic.key, "2018-12-06", "chargeback")
    local notice = store:checkin(lic.key, "a", "2018-12-07", nil, machine(1)).revocation
    local state = os.tmpname()
    os.remove(state)
    local now = day("2018-12-07") * 86400 + 3600
    local opts = { public_keys = { public }, product = "smartertrack", fingerprint = machine(1), state = state,
                   new_state = true, now = now }
    assert.are.equal("valid", licensor.verify(text, opts).verdict)
    assert(licensor.revocation_apply(notice, { public_keys = { public }, certificate = text,
                                               fingerprint = machine(1), state = state }))
    opts.new_state = nil
    assert.are.equal("revoked", licensor.verify(text, opts).verdict)
    os.remove(state)
    os.remove(state .. ".lock")
    store:close()
  end)
end)
