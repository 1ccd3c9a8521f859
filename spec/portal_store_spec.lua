-- The customer portal's part of the store (doc/portal.md): sign-in links
-- mailed through the outbox, sessions, the owner's licenses, self-service
-- deactivation (its budget, the certificate's hold, R10's join) and the
-- offline round trip; the sign-in mail itself through a real SMTP server
-- with `licensor deliver --portal-url --link-secret`.  On SQLite and
-- PostgreSQL.  Times are pinned: `now` in unix seconds, days as dates.
local licensor = require "licensor"
local core = require "licensor.core"
local cjson = require "cjson"
local certificate = require "licensor.certificate"
local constants = require "licensor.constants"
local delivery = require "licensor.delivery"
local links = require "licensor.links"
local stores = require "support.stores"
local files = require "support.files"
local fixtures = require "support.fixtures"
local smtpd = require "support.smtpd"
local run = require "support.cli"

local PORTAL = constants.PORTAL
local NOW = 1800000000            -- 2027-01-15T08:00:00Z
local ON = "2019-01-10"
local FROM = "licenses@vendor.example"

local machine = require("support.fixtures").machine

local new_key = require("support.fixtures").new_key

local function remove_key(path)
  os.remove(path)
  os.remove(path .. ".pub")
end

local function signins(store)
  local list = {}
  for _, row in ipairs(assert(store:outbox{ state = "all" })) do
    if row.action == "portal_signin" then list[#list + 1] = row end
  end
  return list
end

local function events_of(store, key, kind)
  local list = {}
  for _, e in ipairs(assert(store:events(key))) do
    if e.kind == kind then list[#list + 1] = e end
  end
  return list
end

-- What the store answers for one license: licensor.portal.view's view when
-- it is there (with the self-service deactivations of the last 365 days),
-- else the license and its installations, from public reads.
local function expected_view(store, key, on, brief)
  local lic, cat = assert(store:get(key)), assert(store:catalogue())
  if brief then return require("licensor.portal.view").license(lic, cat, {}, on, nil, true) end
  local installs = assert(store:installations(key))
  local used = 0
  for _, e in ipairs(assert(store:events(key))) do
    if e.kind == "self_deactivated" and core.day(e.at) > core.day(on) - 365 then used = used + 1 end
  end
  return require("licensor.portal.view").license(lic, cat, installs, on, used)
end

-- A signed-in session of `email` (which must own a license): its token.
local function session_of(store, email, now)
  local before = #signins(store)
  assert.are.same({ mailed = true }, assert(store:portal_signin(email, now)))
  local rows = signins(store)
  assert.are.equal(before + 1, #rows)
  local token = assert(store:portal_redeem(rows[#rows].detail.signin, now + 1))
  return token
end

describe("portal sign-in links (" .. stores.backend .. ")", function()
  local store, ann

  before_each(function()
    store = stores.new(":memory:")
    ann = stores.issue(store, { email = "Ann@Acme.Example", owner = "Ann" })
    stores.issue(store, { email = "ann@acme.example", product = "smartermail", edition = "professional",
                          level = 250, start = "2018-01-01" })
  end)
  after_each(function() store:close() end)

  it("mails once for an address with licenses, a row on its first key that carries no link", function()
    local keys = { ann.key }
    for _, row in ipairs(assert(store:query("SELECT key FROM licenses"))) do keys[#keys + 1] = row.key end
    table.sort(keys)
    local before = #assert(store:events(ann.key))
    assert.are.same({ mailed = true }, assert(store:portal_signin("ann@acme.example", NOW)))
    local rows = signins(store)
    assert.are.equal(1, #rows)
    local row = rows[1]
    assert.are.same({ keys[1], "portal_signin" }, { row.key, row.action })
    assert.matches("^%x+$", row.detail.signin)
    assert.are.equal(32, #row.detail.signin)
    assert.are.same({ signin = row.detail.signin, email = "ann@acme.example" }, row.detail)
    -- Nothing in the outbox, its CLI listing or the sign-in table is a
    -- link: no MAC (64 hex digits) and no token anywhere.
    local text = cjson.encode((assert(store:outbox{ state = "all" }))) ..
      cjson.encode((assert(store:query("SELECT * FROM portal_signins"))))
    assert.is_nil(text:find("%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x"))
    assert.is_nil(text:find("token", 1, true))
    assert.are.equal(before, #assert(store:events(ann.key)))     -- no event: a sign-in is no license change
  end)

  it("answers the same shape for an address without licenses, and mails nothing", function()
    local before = stores.dump(store)
    local answer = assert(store:portal_signin("nobody@acme.example", NOW))
    assert.are.same({ mailed = false }, answer)
    assert.are.same(before, stores.dump(store))
    local mailed = assert(store:portal_signin("ann@acme.example", NOW))
    local shape = {}
    for k, v in pairs(answer) do shape[k] = type(v) end
    for k, v in pairs(mailed) do assert.are.equal(shape[k], type(v), k) end
  end)

  it("folds case and spaces, and refuses a malformed address as invalid_request", function()
    assert.is_true(assert(store:portal_signin("  ANN@acme.EXAMPLE \t", NOW)).mailed)
    local row = signins(store)[1]
    assert.are.equal("ann@acme.example", row.detail.email)
    local token, email = store:portal_redeem(row.detail.signin, NOW + 5)
    assert.are.same({ "string", "ann@acme.example" }, { type(token), email })
    for _, bad in ipairs({ "ann", "ann@acme.example\r\nBcc: x@y.example", "", "a b@acme.example" }) do
      local ok, message, code = store:portal_signin(bad, NOW)
      assert.are.same({ nil, "invalid_request" }, { ok, code }, bad)
      assert.matches("^email: ", message)
    end
  end)

  it("mails at most PORTAL.signins_per_email per address in PORTAL.signin_seconds", function()
    for n = 1, PORTAL.signins_per_email do
      assert.is_true(assert(store:portal_signin("ann@acme.example", NOW + n)).mailed, n)
    end
    local before = stores.dump(store)
    assert.are.same({ mailed = false }, assert(store:portal_signin("Ann@acme.example", NOW + 10)))
    assert.are.same(before, stores.dump(store))
    assert.are.equal(PORTAL.signins_per_email, #signins(store))
    -- Once the first is older than the window, one more.
    assert.is_true(assert(store:portal_signin("ann@acme.example", NOW + 1 + PORTAL.signin_seconds)).mailed)
    assert.is_false(assert(store:portal_signin("ann@acme.example", NOW + 1 + PORTAL.signin_seconds)).mailed)
  end)

  it("are redeemed once, before they expire; used, expired and unknown ids answer alike", function()
    assert(store:portal_signin("ann@acme.example", NOW))
    local id = signins(store)[1].detail.signin
    local token, email = store:portal_redeem(id, NOW + 60)
    assert.matches("^%x+$", token)
    assert.are.same({ 64, "ann@acme.example" }, { #token, email })
    local again = { store:portal_redeem(id, NOW + 61) }
    assert.are.same({ nil, "this sign-in link was used, has expired or is unknown", "invalid_link" }, again)
    assert(store:portal_signin("ann@acme.example", NOW + 100))
    local late = signins(store)[2].detail.signin
    local before = stores.dump(store)
    assert.are.same(again, { store:portal_redeem(late, NOW + 100 + PORTAL.signin_seconds) })   -- expired
    assert.are.same(again, { store:portal_redeem(core.random_hex(16), NOW + 101) })            -- unknown
    assert.are.same(again, { store:portal_redeem("'; DROP TABLE portal_signins; --", NOW + 101) })
    assert.are.same(before, stores.dump(store))
    assert.is_string(store:portal_redeem(late, NOW + 99 + PORTAL.signin_seconds))   -- the last second
  end)

  it("keep only the session token's sha256, and old sign-ins and sessions go as new ones are made", function()
    local token = session_of(store, "ann@acme.example", NOW)
    local dump = stores.dump(store)
    assert.is_nil(dump:find(token, 1, true))
    assert.is_truthy(dump:find(core.sha256(token, true), 1, true))
    local later = NOW + 2 * 86400
    session_of(store, "ann@acme.example", later)
    local left = assert(store:query("SELECT count(*) AS n FROM portal_signins"))[1].n
    local sessions = assert(store:query("SELECT id_hash FROM portal_sessions"))
    assert.are.same({ 1, 1 }, { tonumber(left), #sessions })
    assert.are_not.equal(core.sha256(token, true), sessions[1].id_hash)
  end)
end)

describe("portal sessions (" .. stores.backend .. ")", function()
  local store, token

  before_each(function()
    store = stores.new(":memory:")
    stores.issue(store, { email = "ann@acme.example" })
    token = session_of(store, "ann@acme.example", NOW)     -- created (and seen) at NOW + 1
  end)
  after_each(function() store:close() end)

  it("answer the owner, and move seen_at only once it is 60 s old", function()
    local s = assert(store:portal_session(token, NOW + 60))
    assert.are.same({ "ann@acme.example", NOW + 1, NOW + 1, core.sha256(token, true) },
                    { s.email, s.created_at, s.seen_at, s.id_hash })
    local before = stores.dump(store)
    assert.are.equal(NOW + 1, assert(store:portal_session(token, NOW + 60)).seen_at)
    assert.are.same(before, stores.dump(store))                    -- 59 s: nothing written
    assert.are.equal(NOW + 61, assert(store:portal_session(token, NOW + 61)).seen_at)
    local row = assert(store:query("SELECT seen_at FROM portal_sessions"))[1]
    assert.are.equal(NOW + 61, tonumber(row.seen_at))
  end)

  it("end after PORTAL.idle_seconds without a request", function()
    assert.is_table(store:portal_session(token, NOW + 1 + PORTAL.idle_seconds))
    local gone = { store:portal_session(token, NOW + 2 + 2 * PORTAL.idle_seconds) }
    assert.are.same({ nil, "no_session" }, { gone[1], gone[3] })
  end)

  it("end PORTAL.absolute_seconds after sign-in, however busy", function()
    local t = NOW + 1
    while t + 600 <= NOW + 1 + PORTAL.absolute_seconds do
      t = t + 600
      assert.is_table(store:portal_session(token, t), t)
    end
    local gone = { store:portal_session(token, NOW + 2 + PORTAL.absolute_seconds) }
    assert.are.same({ nil, "no_session" }, { gone[1], gone[3] })
  end)

  it("end at sign-out, which may be asked again", function()
    assert.is_true(store:portal_signout(token, NOW + 10))
    local gone = { store:portal_session(token, NOW + 11) }
    assert.are.same({ nil, "no_session" }, { gone[1], gone[3] })
    assert.is_true(store:portal_signout(token, NOW + 12))
    assert.is_true(store:portal_signout("not a token", NOW + 12))
  end)

  it("answer no_session for guesses: the stored hash itself, sha256 of nothing, garbage, no token", function()
    local other = session_of(store, "ann@acme.example", NOW + 5)
    local guesses = { core.sha256(token, true), core.sha256("", true), string.rep("0", 64), token:upper() .. "0",
                      token:sub(1, 63), "", "x", "'; --" }
    for _, guess in ipairs(guesses) do
      local gone = { store:portal_session(guess, NOW + 20) }
      assert.are.same({ nil, "no_session" }, { gone[1], gone[3] }, guess)
    end
    assert.are.same({ nil, "no_session" }, { (store:portal_session(nil, NOW + 20)), select(3,
                                               store:portal_session(nil, NOW + 20)) })
    assert.are_not.equal(token, other)
    assert.are.equal("ann@acme.example", assert(store:portal_session(token:upper(), NOW + 20)).email)
  end)
end)

describe("the portal's licenses (" .. stores.backend .. ")", function()
  local store, mail, track, bob

  before_each(function()
    store = stores.new(":memory:")
    track = stores.issue(store, { email = "ann@acme.example" })
    mail = stores.issue(store, { email = "ANN@acme.example", product = "smartermail", edition = "professional",
                                 level = 250, start = "2018-01-01" })
    bob = stores.issue(store, { email = "bob@other.example" })
    assert(store:activate(track.key, "web1", 6911, "2019-01-02"))
  end)
  after_each(function() store:close() end)

  it("are every license of the address, by product and key, each as licensor.portal.view shows it", function()
    assert.is_true(assert(store:portal_deactivate("ann@acme.example", track.key, "web1", "2019-01-05")).ok)
    local list = assert(store:portal_licenses(" Ann@Acme.example", ON))
    -- the list's rows are brief (no installations or prices); one license's page has everything
    assert.are.same({ expected_view(store, mail.key, ON, true), expected_view(store, track.key, ON, true) }, list)
    assert.is_nil(list[2].installations)
    assert.are.same({}, assert(store:portal_licenses("nobody@acme.example", ON)))
    assert.are.same(expected_view(store, track.key, ON), assert(store:portal_license("ann@acme.example",
                                                                                     track.key, ON)))
  end)

  it("answer another customer's key exactly as an unknown or malformed one", function()
    local function answer(key)
      local r = { store:portal_license("ann@acme.example", key, ON) }
      r[2] = r[2] and r[2]:gsub(key:gsub("%p", "%%%0"), "KEY")
      return r
    end
    local unknown = answer("AAAAAAA-BBBBBBB-CCCCCCC-DDDDDDD")
    assert.are.same({ nil, "no license KEY", "unknown_key" }, unknown)
    assert.are.same(unknown, answer(bob.key))
    assert.are.same(unknown, answer(bob.key:lower()))
    assert.are.same(unknown, answer("../../etc/passwd"))
    -- The same in the self-service workflows.
    local d = { store:portal_deactivate("ann@acme.example", bob.key, "web1", ON) }
    assert.are.same({ nil, "unknown_key" }, { d[1], d[3] })
  end)
end)

describe("self-service deactivation (" .. stores.backend .. ")", function()
  local store, lic, key_path

  before_each(function()
    store = stores.new(":memory:")
    key_path = new_key()
    assert(store:use_signing_key(key_path))
    lic = stores.issue(store, { email = "ann@acme.example", start = "2018-06-01" })
  end)
  after_each(function()
    store:close()
    remove_key(key_path)
  end)

  it("is allowed self_deactivations (3) times in self_deactivation_days (365), each its own event", function()
    local days = { "2019-01-02", "2019-01-05", "2019-01-08", "2019-01-11" }
    for n, day in ipairs(days) do
      assert.is_true(store:activate(lic.key, "s" .. n, 6911, day).ok, day)
      if n <= 3 then
        local v = assert(store:portal_deactivate("Ann@acme.example", lic.key, "s" .. n, day))
        assert.are.same({ true, 3 - n }, { v.ok, v.remaining })
      end
    end
    local before = stores.dump(store)
    local ok, message, code = store:portal_deactivate("ann@acme.example", lic.key, "s4", "2019-01-11")
    assert.are.same({ nil, "self_service_limit" }, { ok, code })
    assert.matches("contact support", message, 1, true)
    assert.are.same(before, stores.dump(store))
    local logged = events_of(store, lic.key, "self_deactivated")
    assert.are.equal(3, #logged)
    assert.are.same({ "2019-01-02", "s1", "ann@acme.example" },
                    { logged[1].at, logged[1].detail.server, logged[1].detail.by })
    assert.are.same({}, events_of(store, lic.key, "deactivate"))
    -- A year after the first, it is allowed again (the window moved past it).
    assert.is_nil((store:portal_deactivate("ann@acme.example", lic.key, "s4", "2020-01-01")))
    assert.is_true(assert(store:portal_deactivate("ann@acme.example", lic.key, "s4", "2020-01-02")).ok)
  end)

  it("frees the slot even while a certificate holds it, as an admin's force would", function()
    assert.is_true(store:activate(lic.key, "lost", 6911, "2019-01-02", machine(1)).ok)
    assert(store:certificate(lic.key, "lost", "2019-01-02"))
    -- A plain deactivation leaves the certificate's hold: no room for a new server.
    local other = stores.issue(store, { email = "ann@acme.example", start = "2018-06-01" })
    assert.is_true(store:activate(other.key, "lost", 6911, "2019-01-02", machine(1)).ok)
    assert(store:certificate(other.key, "lost", "2019-01-02"))
    assert.is_true(assert(store:deactivate(other.key, "lost", "2019-01-03")).ok)
    assert.are.equal("migrating", store:activate(other.key, "new", 6911, "2019-01-03", machine(2)).migration.state)
    -- Self-service: the hold ends, the new server takes the slot alone.
    local v = assert(store:portal_deactivate("ann@acme.example", lic.key, "lost", "2019-01-03"))
    assert.is_true(v.ok)
    assert.is_nil(v.held_until)
    local inst = assert(store:installations(lic.key))[1]
    assert.are.same({ "forced", "2019-01-03" }, { inst.freed, inst.deactivated })
    assert.is_nil(inst.held_until)
    local new = store:activate(lic.key, "new", 6911, "2019-01-03", machine(2))
    assert.are.same({ true, "ok" }, { new.ok, new.migration.state })
    -- A machine that was deactivated and holds nothing has nothing to free.
    local again = store:portal_deactivate("ann@acme.example", lic.key, "lost", "2019-01-04")
    assert.are.same({ false, "not_activated" }, { again.ok, again.code })
    assert.are.equal(1, #events_of(store, lic.key, "self_deactivated"))
  end)

  it("never restarts R10's window: a run of excess within migration_gap_days joins the one before", function()
    assert.is_true(store:activate(lic.key, "a", 6855, "2018-12-01").ok)
    local b = store:activate(lic.key, "b", 6855, "2018-12-05")
    assert.are.same({ "migrating", "2018-12-05" }, { b.migration.state, b.migration.since })
    assert(store:checkin(lic.key, "a", "2018-12-07"))
    local v = assert(store:portal_deactivate("ann@acme.example", lic.key, "b", "2018-12-08"))
    assert.are.equal("ok", v.migration.state)
    assert(store:checkin(lic.key, "a", "2018-12-12"))
    local c = store:activate(lic.key, "c", 6855, "2018-12-12")
    assert.is_true(c.ok)
    assert.are.same({ "migrating", "2018-12-05" }, { c.migration.state, c.migration.since })
    assert.are.equal("2019-01-03", c.migration.deadline)                  -- T + 29, from the first run
    -- The control: a run that starts migration_gap_days (14) after the last
    -- one ended is a new run.
    local other = stores.issue(store, { email = "ann@acme.example", start = "2018-06-01" })
    assert.is_true(store:activate(other.key, "a", 6855, "2018-12-01").ok)
    assert.is_true(store:activate(other.key, "b", 6855, "2018-12-05").ok)
    assert(store:checkin(other.key, "a", "2018-12-07"))
    assert.is_true(assert(store:portal_deactivate("ann@acme.example", other.key, "b", "2018-12-08")).ok)
    for _, day in ipairs({ "2018-12-14", "2018-12-21" }) do assert(store:checkin(other.key, "a", day)) end
    local late = store:activate(other.key, "c", 6855, "2018-12-22")
    assert.are.same({ "migrating", "2018-12-22" }, { late.migration.state, late.migration.since })
  end)

  it("follows the policy's budget when the catalogue sets one", function()
    local t = fixtures.catalogue_table()
    t.policy.self_deactivations, t.policy.self_deactivation_days = 1, 30
    local imported, why = store:import(t)
    if not imported then
      -- A core without the policy keys refuses them by name.
      assert.matches("self_deactivations", why, 1, true)
      return
    end
    assert.is_true(store:activate(lic.key, "s1", 6911, "2019-01-02").ok)
    assert.is_true(store:activate(lic.key, "s2", 6911, "2019-01-02").ok)
    assert.is_true(assert(store:portal_deactivate("ann@acme.example", lic.key, "s1", "2019-01-02")).ok)
    assert.are.equal("self_service_limit",
                     select(3, store:portal_deactivate("ann@acme.example", lic.key, "s2", "2019-01-31")))
    assert.is_true(assert(store:portal_deactivate("ann@acme.example", lic.key, "s2", "2019-02-01")).ok)
  end)
end)

describe("the portal's offline round trip (" .. stores.backend .. ")", function()
  local store, lic, key_path, public

  before_each(function()
    store = stores.new(":memory:")
    key_path, public = new_key()
    assert(store:use_signing_key(key_path))
    lic = stores.issue(store, { email = "ann@acme.example", start = "2018-06-01" })
  end)
  after_each(function()
    store:close()
    remove_key(key_path)
  end)

  local function verdict_of(text, fp, on)
    local state = os.tmpname()
    os.remove(state)
    local v = licensor.verify(text, { public_keys = { public }, product = "smartertrack", fingerprint = fp,
                                      state = state, new_state = true, now = core.day(on) * 86400 + 3600 })
    os.remove(state)
    os.remove(state .. ".lock")
    return v.verdict
  end

  it("answers a request (licensor request) with a certificate that verifies, as activate --request does", function()
    local dir = files.temp_dir()
    local status = run("request", lic.key, "airgap", "6911", "--fingerprint", machine(7), "--out",
                       dir .. "/request.txt")
    assert.are.equal(0, status)
    local text = files.read(dir .. "/request.txt")
    files.remove_dir(dir)
    local answer = assert(store:portal_activate("Ann@Acme.example", text, "2019-01-02"))
    assert.are.same({ true, "airgap" }, { answer.ok, answer.server })
    assert.are.equal("valid", verdict_of(answer.certificate, machine(7), "2019-01-02"))
    assert.are.equal(1, #events_of(store, lic.key, "activate"))
    assert.are.equal(1, #events_of(store, lic.key, "certificate"))
    -- certificate.request_text's request, with CRLF line ends (an upload from Windows).
    local again = certificate.request_text{ license = lic.key, server = "airgap", fingerprint = machine(7),
                                            build = 6911 }
    answer = assert(store:portal_activate("ann@acme.example", again:gsub("\n", "\r\n"), "2019-01-03"))
    assert.are.equal("valid", verdict_of(answer.certificate, machine(7), "2019-01-03"))
  end)

  it("refuses R5, R9 and R10 as activate does, writing nothing", function()
    assert.is_true(store:activate(lic.key, "other", 6911, "2019-01-02", machine(1)).ok)
    assert.is_true(store:activate(lic.key, "third", 6911, "2019-01-02", machine(2)).ok)
    local before = stores.dump(store)
    local newer = certificate.request_text{ license = lic.key, server = "x", fingerprint = machine(3),
                                            build = 7100 }
    local v = assert(store:portal_activate("ann@acme.example", newer, "2019-01-02"))
    assert.are.same({ false, "newer_than_eligible", "x" }, { v.ok, v.code, v.server })
    local one_more = certificate.request_text{ license = lic.key, server = "x", fingerprint = machine(3),
                                               build = 6911 }
    v = assert(store:portal_activate("ann@acme.example", one_more, "2019-01-02"))
    assert.are.same({ false, "too_many_installations" }, { v.ok, v.code })
    assert.is_nil(v.certificate)
    assert.are.same(before, stores.dump(store))
  end)

  it("refuses another owner's request as an unknown key, and garbage as invalid_request", function()
    local bob = stores.issue(store, { email = "bob@other.example" })
    local before = stores.dump(store)
    local function ask(key)
      local text = certificate.request_text{ license = key, server = "x", fingerprint = machine(3), build = 6911 }
      local r = { store:portal_activate("ann@acme.example", text, "2019-01-02") }
      r[2] = r[2] and r[2]:gsub(key:gsub("%p", "%%%0"), "KEY")
      return r
    end
    assert.are.same({ nil, "no license KEY", "unknown_key" }, ask(bob.key))
    assert.are.same(ask("AAAAAAA-BBBBBBB-CCCCCCC-DDDDDDD"), ask(bob.key))
    for _, garbage in ipairs({ "", "hello", string.rep("A", 100000),
                               "-----BEGIN LICENSOR ACTIVATION REQUEST-----\nformat: 1\n" }) do
      local ok, message, code = store:portal_activate("ann@acme.example", garbage, "2019-01-02")
      assert.are.same({ nil, "string", "invalid_request" }, { ok, type(message), code })
    end
    assert.are.same(before, stores.dump(store))
  end)
end)

describe("the sign-in mail (" .. stores.backend .. ")", function()
  local server, secret_file, secret
  setup(function()
    server = smtpd.start{}
    secret_file = os.tmpname()
    secret = core.random_hex(32)
    files.write(secret_file, secret .. "\n")
  end)
  teardown(function()
    server.stop()
    smtpd.cleanup()
    os.remove(secret_file)
  end)
  before_each(function() os.remove(server.log) end)

  local function deliver(path, ...)
    return run("--db", path, "deliver", "--smtp", server.address, "--mail-from", FROM, "--backoff-ms", "0", ...)
  end

  it("goes by licensor deliver --smtp --portal-url --link-secret, with a link links.sign made", function()
    local store, path = stores.new()
    local lic = stores.issue(store, { email = "Ann@Acme.example", owner = "Ann Smith" })
    assert(store:portal_signin("ann@acme.example", NOW))
    local id = signins(store)[1].detail.signin
    os.execute("chmod 644 '" .. secret_file .. "'")
    local status, out, err = deliver(path, "--portal-url", "https://portal.vendor.example:8443",
                                     "--link-secret", secret_file)
    assert.are.same({ 0, "delivered 1, failed 0 (dead-lettered 0), pending 0" }, { status, out })
    -- a secret others may read is said, not refused
    assert.matches("can be read by others than its owner (mode 644): chmod 600", err, 1, true)
    os.execute("chmod 600 '" .. secret_file .. "'")
    assert.is_nil(require("licensor.links").exposed(secret_file))
    local got = server.received()
    assert.are.equal(1, #got)
    local m = got[1]
    assert.are.same({ "Ann@Acme.example" }, m.rcpt_tos)
    assert.are.equal("Your sign-in link to the license portal", m.headers.Subject)
    assert.matches("^Dear Ann Smith,", m.body)
    assert.matches("within 15 minutes", m.body, 1, true)
    assert.matches("If you did not ask for it, ignore this message", m.body, 1, true)
    local token = m.body:match("https://portal%.vendor%.example:8443/portal/signin%?token=([%x.]+)")
    local got_id, mac = token:match("^(%x+)%.(%x+)$")
    assert.are.same({ id, links.sign(links.keys(secret).signin, id) }, { got_id, mac })
    assert.is_true(links.same(mac, links.sign(links.keys(links.read(secret_file)).signin, id)))
    -- What the deliverer's listing shows is no link.
    local _, listing = run("--db", path, "outbox", "--all")
    assert.is_nil(listing:find(mac, 1, true))
    assert.matches("portal_signin", listing, 1, true)
    assert.is_string(store:portal_redeem(got_id, NOW + 30))
    assert.are.equal(lic.key, signins(store)[1].key)
    store:close()
  end)

  it("stays pending, untried, naming --portal-url and --link-secret, when the deliverer has none", function()
    local store, path = stores.new()
    stores.issue(store, { email = "ann@acme.example" })
    assert(store:portal_signin("ann@acme.example", NOW))
    for _ = 1, 3 do
      local status, out, err = deliver(path, "--max-tries", "2")
      assert.are.same({ 0, "delivered 0, failed 0 (dead-lettered 0), pending 1" }, { status, out })
      assert.matches("1 portal sign-in mail stays pending: they need --portal-url URL --link-secret FILE", err,
                     1, true)
    end
    local row = signins(store)[1]
    -- no attempt was spent, so the mail goes at once when the flags come
    assert.are.same({ 0, false }, { row.attempts, row.dead or false })
    local status, out = deliver(path, "--portal-url", "https://portal.vendor.example", "--link-secret", secret_file)
    assert.are.same({ 0, "delivered 1, failed 0 (dead-lettered 0), pending 0" }, { status, out })
    assert.are.equal(1, #server.received())
    store:close()
  end)

  it("is never sent to a webhook: a catch-all --webhook URL leaves it pending", function()
    local store = stores.new(":memory:")
    stores.issue(store, { email = "ann@acme.example" })
    assert(store:portal_signin("ann@acme.example", NOW))
    local plan = assert(delivery.install(store, { webhooks = { "http://127.0.0.1:9/every" }, secret = "s",
                                                 timeout = 1 }))
    assert.is_nil(plan.portal_signin)
    local delivered, pending = store:deliver()
    assert.are.same({ 0, 1 }, { delivered, pending })
    assert.are.equal(0, signins(store)[1].attempts)
    local status, _, err = run("--db", ":memory:", "deliver", "--webhook",
                               "portal_signin=http://127.0.0.1:9/x", "--secret-file", secret_file)
    assert.are.equal(2, status)
    assert.matches("never sent to a webhook", err, 1, true)
    store:close()
  end)

  it("has its template written by licensor templates --out", function()
    local dir = files.temp_dir()
    assert.are.equal(0, (run("templates", "--out", dir)))
    local text = files.read(dir .. "/portal_signin.txt")
    files.remove_dir(dir)
    assert.matches("{link}", text, 1, true)
    assert.matches("{minutes} minutes", text, 1, true)
  end)
end)
