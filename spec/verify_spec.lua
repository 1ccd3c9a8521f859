-- Signed certificates and the offline verifier (doc/rules.md section 9):
-- store:certificate, licensor.verify and the C library behind both, every
-- verdict, tampering, clock rollback, state files, fingerprint drift, and
-- the offline rules' agreement with the engine.
local licensor = require "licensor"
local core = require "licensor.core"
local certificate = require "licensor.certificate"
local stores = require "support.stores"

local FP = "v1:mid=1111111111111111,uuid=2222222222222222,mac=3333333333333333,host=4444444444444444"
local DAY = 86400

-- A signing key in a temporary file; its public key text.
local function new_key()
  local path = os.tmpname()
  os.remove(path)
  local public = assert(certificate.new_key_files(path))
  return path, public
end

-- Unix seconds at noon of a date.
local function at(date)
  return core.day(date) * DAY + 12 * 3600
end

describe("certificates", function()
  local store, key_path, public, lic

  before_each(function()
    store = stores.new(":memory:")
    key_path, public = new_key()
    assert(store:use_signing_key(key_path))
    lic = stores.issue(store, { start = "2018-06-01", addons = { "eas" } })
    assert.is_true(store:activate(lic.key, "mail1", 6911, "2018-12-05", FP).ok)
  end)

  after_each(function()
    os.remove(key_path)
    os.remove(key_path .. ".pub")
  end)

  local function verify(text, opts)
    opts = opts or {}
    opts.public_keys = opts.public_keys or { public }
    if opts.fingerprint == nil then opts.fingerprint = FP end
    opts.now = opts.now or at("2018-12-10")
    return licensor.verify(text, opts)
  end

  it("carry what the offline rules need, signed, in at most 4 KiB, and are logged", function()
    local text = assert(store:certificate(lic.key, "mail1", "2018-12-05"))
    assert.is_true(#text <= 4096)
    assert.matches("^%-%-%-%-%-BEGIN LICENSOR CERTIFICATE%-%-%-%-%-\nformat: 1\n", text)
    local c = assert(core.read_certificate(text))
    assert.are.same({ lic.key, "mail1", "smartertrack", "enterprise", "5", "perpetual", "2018-06-01",
                      "2019-05-31", "2019-05-31", 13, FP, "most", "2019-01-04", 14 },
      { c.license, c.server, c.product, c.edition, c.level, c.kind, c.start, c.ms_expires, c.addons.eas,
        c.newest_major, c.fingerprint, c.match, c.refresh_by, c.grace_days })
    local events = store:events(lic.key)
    assert.are.same({ "certificate", "mail1", "2019-01-04" },
      { events[#events].kind, events[#events].detail.server, events[#events].detail.refresh_by })
  end)

  it("answer valid, then grace with the days left, then expired; never a hard stop within the grace", function()
    local text = assert(store:certificate(lic.key, "mail1", "2018-12-05"))
    assert.are.equal("valid", verify(text, { now = at("2019-01-04") }).verdict)
    local r = verify(text, { now = at("2019-01-05") })
    assert.are.same({ "grace", 13 }, { r.verdict, r.grace_days_left })
    assert.are.same({ "grace", 0 }, { verify(text, { now = at("2019-01-18") }).verdict,
                                      verify(text, { now = at("2019-01-18") }).grace_days_left })
    assert.are.equal("expired", verify(text, { now = at("2019-01-19") }).verdict)
  end)

  it("refuse an untrusted signer, another machine, a clock set back, one from the future", function()
    local text = assert(store:certificate(lic.key, "mail1", "2018-12-05"))
    local _, other = new_key()
    assert.are.equal("unknown_signer", verify(text, { public_keys = { other } }).verdict)
    assert.are.equal("valid", verify(text, { public_keys = { other, public } }).verdict)   -- rotation
    assert.are.equal("wrong_machine", verify(text, { fingerprint = "v1:mid=aaaaaaaaaaaaaaaa,host=4444444444444444" }).verdict)
    -- A copy on a server that shares a minority (1 of 4) of the components.
    assert.are.equal("wrong_machine", verify(text, {
      fingerprint = "v1:mid=1111111111111111,uuid=9999999999999999,mac=9999999999999999,host=9999999999999999" }).verdict)
    -- Drift: one component of four changed is still this machine.
    assert.are.equal("valid", verify(text, {
      fingerprint = "v1:mid=1111111111111111,uuid=2222222222222222,mac=9999999999999999,host=4444444444444444" }).verdict)
    -- Issued on 2018-12-05: a clock a week behind that is rolled back.
    assert.are.equal("clock_rollback", verify(text, { now = at("2018-11-28") }).verdict)
  end)

  it("keep a clock mark: a clock set back a week after a later run is clock_rollback", function()
    local text = assert(store:certificate(lic.key, "mail1", "2018-12-05"))
    local state = os.tmpname()
    os.remove(state)
    assert.are.equal("state_missing", verify(text, { state = state }).verdict)
    assert.are.equal("valid", verify(text, { state = state, new_state = true, now = at("2018-12-20") }).verdict)
    assert.are.equal("valid", verify(text, { state = state, now = at("2018-12-19") }).verdict)  -- within a day
    assert.are.equal("clock_rollback", verify(text, { state = state, now = at("2018-12-13") }).verdict)
    os.remove(state)
  end)

  it("read a state file that is empty, corrupt or cannot be written as a clear code", function()
    local text = assert(store:certificate(lic.key, "mail1", "2018-12-05"))
    local state = os.tmpname()
    for content, code in pairs({ [""] = "state_corrupt", ["licensor-state 1 12 0000000000000000\n"] = "state_corrupt",
                                 ["garbage"] = "state_corrupt" }) do
      local f = assert(io.open(state, "w"))
      f:write(content)
      f:close()
      assert.are.equal(code, verify(text, { state = state }).verdict, content)
    end
    os.remove(state)
    assert.are.equal("state_unwritable", verify(text, { state = "/nonexistent/dir/state", new_state = true,
                                                        now = os.time() }).verdict)
  end)

  it("answer not_started before the license's start", function()
    local later = stores.issue(store, { start = "2019-03-01" })
    assert.is_true(store:activate(later.key, "s", 6911, "2019-03-01", FP).ok)
    local text = assert(store:certificate(later.key, "s", "2019-03-01"))
    -- Half a day before the start: within the clock's tolerance of the
    -- issue time, but not yet a valid license.
    assert.are.equal("not_started", verify(text, { now = core.day("2019-03-01") * DAY - 6 * 3600 }).verdict)
  end)

  it("are refused for a disabled key, an ended lease or trial, and a server not active that day", function()
    assert.are.equal("not_activated", select(3, store:certificate(lic.key, "other", "2018-12-05")))
    assert.are.equal("not_activated", select(3, store:certificate(lic.key, "mail1", "2019-01-05")))  -- lapsed
    store:disable(lic.key, "2018-12-06", "admin")
    assert.are.equal("disabled", select(3, store:certificate(lic.key, "mail1", "2018-12-06")))
    local lease = stores.issue(store, { kind = "lease", start = "2018-06-01" })
    assert.is_true(store:activate(lease.key, "l", 6911, "2018-12-05", FP).ok)
    store:end_lease(lease.key, "2018-12-06")
    assert.are.equal("expired", select(3, store:certificate(lease.key, "l", "2018-12-06")))
    local trial = stores.issue(store, { kind = "trial", start = "2018-12-01" })
    assert.is_true(store:activate(trial.key, "t", 6911, "2018-12-05", FP).ok)
    assert.are.equal("expired", select(3, store:certificate(trial.key, "t", "2018-12-31")))
    local plain = stores.issue(store, { start = "2018-06-01" })
    assert.is_true(store:activate(plain.key, "p", 6911, "2018-12-05").ok)
    assert.are.equal("no_fingerprint", select(3, store:certificate(plain.key, "p", "2018-12-05")))
    local unsigned = stores.new(":memory:")
    assert.are.equal("no_signing_key", select(3, unsigned:certificate(lic.key, "mail1", "2018-12-05")))
  end)

  it("follow fingerprint drift at check-in: a new network card is the same server, another machine is not", function()
    local drifted = "v1:mid=1111111111111111,uuid=2222222222222222,mac=5555555555555555,host=4444444444444444"
    assert.is_true(store:checkin(lic.key, "mail1", "2018-12-06", nil, drifted).ok)
    local text = assert(store:certificate(lic.key, "mail1", "2018-12-06"))
    assert.are.equal(drifted, core.read_certificate(text).fingerprint)
    assert.are.equal("valid", verify(text, { fingerprint = drifted }).verdict)
    assert.are.equal(1, #store:installations(lic.key))
    local v = store:checkin(lic.key, "mail1", "2018-12-07", nil,
      "v1:mid=9999999999999999,uuid=9999999999999999,mac=9999999999999999,host=4444444444444444")
    assert.are.same({ false, "wrong_machine" }, { v.ok, v.code })
  end)

  it("refuse every single-byte change, truncation and appended byte with a code, never valid", function()
    local text = assert(store:certificate(lic.key, "mail1", "2018-12-05"))
    local allowed = { bad_signature = true, malformed = true, unknown_signer = true }
    local seen = {}
    local function refused(mutant)
      local verdict = verify(mutant).verdict
      seen[verdict] = true
      return allowed[verdict] == true
    end
    for i = 1, #text do
      local byte = text:byte(i)
      for replacement = 0, 255 do
        if replacement ~= byte then
          local mutant = text:sub(1, i - 1) .. string.char(replacement) .. text:sub(i + 1)
          assert.is_true(refused(mutant), "byte " .. i .. " -> " .. replacement)
        end
      end
      -- (The newline after the END line is optional: dropping it alone is
      -- the same certificate.)
      if i < #text then assert.is_true(refused(text:sub(1, i - 1)), "truncated to " .. (i - 1)) end
    end
    for b = 0, 255 do
      local appended = text .. string.char(b)
      if b ~= 10 or text:sub(-1) ~= "\n" then assert.is_true(refused(appended), "appended " .. b) end
      assert.is_true(refused(text .. "\n" .. string.char(b)), "appended newline and " .. b)
    end
    assert.is_true(seen.bad_signature and seen.malformed)
  end)

  it("say what the offline rules say: R3-R7 for builds, R8 for add-ons", function()
    local text = assert(store:certificate(lic.key, "mail1", "2018-12-05"))
    assert.is_true(core.may_run(text, "2018-12-03", 13, "2019-01-10"))      -- 6911, on M&S
    assert.is_true(core.may_run(text, "2019-01-11", 13, "2019-01-12"))      -- 6947 released since
    assert.is_false(core.may_run(text, "2019-06-13", 14, "2019-06-14"))     -- after M&S lapsed (R3)
    assert.is_false(core.may_run(text, "2018-12-03", 13, "2018-05-31"))     -- before the start (R1)
  end)
end)

describe("the offline rules", function()
  it("agree with the engine's cat:can_install on 100,000 random (license, build, day) triples", function()
    local store = stores.new(":memory:", { synchronous = "normal" })
    local key_path = new_key()
    assert(store:use_signing_key(key_path))
    local cat = assert(store:catalogue())
    local builds = cat:builds("smartertrack")
    math.randomseed(20261128)
    local kinds = { "perpetual", "perpetual", "lease", "trial" }
    local compared, disagreements = 0, {}
    for n = 1, 5000 do
      if compared >= 100000 then break end
      local kind = kinds[math.random(#kinds)]
      local start = core.date(core.day("2018-01-01") + math.random(0, 500))
      local fields = { kind = kind, start = start, addons = { "eas" } }
      if kind == "perpetual" and math.random() < 0.3 then fields.version_lock = math.random(12, 14) end
      if kind == "trial" then fields.trial_days = math.random(1, 60) end
      local lic = stores.issue(store, fields)
      local on = start
      local server = "s" .. n
      local eligible = cat:eligible(lic, on)
      local v = eligible and store:activate(lic.key, server, eligible.number, on, FP)
      if v and v.ok then
        local text = assert(store:certificate(lic.key, server, on))
        local c = core.read_certificate(text)
        local last = core.day(c.refresh_by) + c.grace_days
        lic = store:get(lic.key)
        for _ = 1, 200 do
          local b = builds[math.random(#builds)]
          local day = core.date(math.random(core.day(on), last))
          local engine = cat:can_install(lic, b.number, day) == true
          local offline = core.may_run(text, b.released, b.major, day)
          compared = compared + 1
          if engine ~= offline and #disagreements < 5 then
            disagreements[#disagreements + 1] = table.concat({ kind, start, tostring(fields.version_lock),
              b.number, day, tostring(engine), tostring(offline) }, " ")
          end
        end
      end
    end
    os.remove(key_path)
    os.remove(key_path .. ".pub")
    assert.is_true(compared >= 100000, compared .. " triples")
    assert.are.same({}, disagreements)
  end)
end)

describe("certificates at the edges of what a catalogue allows", function()
  it("carry 32 add-ons and 256-byte names, and refuse more add-ons than the verifier reads", function()
    local addons = {}
    for i = 1, 40 do addons[i] = string.format("addon_%02d", i) end
    local id = string.rep("p", 256)
    local store = assert(licensor.open(":memory:"))
    assert(store:import{ products = { { id = id, editions = { string.rep("e", 256) }, addons = addons,
      builds = { { number = 1, version = "1.0", released = "2018-01-01" } } } } })
    local key_path, public = new_key()
    assert(store:use_signing_key(key_path))
    local function licensed(n)
      local owned = {}
      for i = 1, n do owned[i] = addons[i] end
      local lic = assert(store:issue{ product = id, edition = string.rep("e", 256), level = 1, start = "2018-06-01",
                                      addons = owned })
      assert.is_true(store:activate(lic.key, "s", 1, "2018-12-05", FP).ok)
      return store:certificate(lic.key, "s", "2018-12-05")
    end
    local text = assert(licensed(32))
    local r = licensor.verify(text, { public_keys = { public }, fingerprint = FP, now = at("2018-12-06") })
    assert.are.same({ "valid", id }, { r.verdict, r.certificate.product })
    assert.is_string(r.certificate.addons.addon_32)
    assert.are.same({ nil, "certificate_too_large" }, { select(1, licensed(33)), select(3, licensed(33)) })
    os.remove(key_path)
    os.remove(key_path .. ".pub")
  end)
end)
