-- Signed certificates and the offline verifier (doc/rules.md section 9):
-- store:certificate, licensor.verify and the C library behind both, every
-- verdict, tampering, clock rollback, state files, fingerprint drift,
-- revocation notices, returns, and the offline rules' agreement with the
-- engine.
local licensor = require "licensor"
local core = require "licensor.core"
local certificate = require "licensor.certificate"
local stores = require "support.stores"
local unpack = table.unpack or unpack   -- luacheck: ignore unpack

local FP = "v1:mid=1111111111111111,uuid=2222222222222222,mac=3333333333333333,host=4444444444444444"
local DAY = 86400

local new_key = require("support.fixtures").new_key

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
    opts.product = opts.product or "smartertrack"
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
    os.remove(state .. ".lock")
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
    local r = licensor.verify(text, { public_keys = { public }, product = id, fingerprint = FP,
                                      now = at("2018-12-06") })
    assert.are.same({ "valid", id }, { r.verdict, r.certificate.product })
    assert.is_string(r.certificate.addons.addon_32)
    assert.are.same({ nil, "certificate_too_large" }, { select(1, licensed(33)), select(3, licensed(33)) })
    os.remove(key_path)
    os.remove(key_path .. ".pub")
  end)
end)

-- Certificates signed here with the fields given (no store): products,
-- issue times and fingerprints exactly as a case needs them.
describe("the verifier", function()
  local key_path, public, signing_key
  local files = require "support.files"
  local run = require "support.cli"

  local function fields(over)
    local f = { license = "K1", server = "mail1", product = "smartertrack", edition = "enterprise", level = 5,
                kind = "perpetual", start = "2018-06-01", ms_expires = "2019-05-31",
                addons = { eas = "2019-05-31" }, newest_major = 13, fingerprint = FP, match = "most",
                issued = "2018-12-05T00:00:00Z", refresh_by = "2019-01-04", grace_days = 14 }
    for k, v in pairs(over or {}) do f[k] = v end
    return f
  end

  local function signed(over, key)
    return certificate.text(fields(over), key or signing_key)
  end

  local function notice(over, key)
    local r = { license = "K1", server = "mail1", fingerprint = FP, revoked = "2018-12-20T00:00:00Z",
                reason = "disabled" }
    for k, v in pairs(over or {}) do r[k] = v end
    return certificate.revocation_text(r, key or signing_key)
  end

  local function verify(text, opts)
    opts = opts or {}
    opts.public_keys = opts.public_keys or { public }
    opts.product = opts.product or "smartertrack"
    if opts.fingerprint == nil then opts.fingerprint = FP end
    opts.now = opts.now or at("2018-12-10")
    return licensor.verify(text, opts)
  end

  local read = require("support.files").read

  local function listing(dir)
    local pipe = io.popen("ls -A " .. dir)
    local names = {}
    for name in pipe:lines() do names[#names + 1] = name end
    pipe:close()
    table.sort(names)
    return names
  end

  local function new_state_path()
    local path = os.tmpname()
    os.remove(path)
    return path
  end

  before_each(function()
    key_path, public = new_key()
    signing_key = assert(certificate.read_signing_key(key_path))
  end)

  after_each(function()
    os.remove(key_path)
    os.remove(key_path .. ".pub")
  end)

  describe("names the product", function()
    it("answers wrong_product for a SmarterStats certificate checked as SmarterTrack", function()
      local stats = signed{ product = "smarterstats", edition = "professional" }
      assert.are.equal("wrong_product", verify(stats).verdict)
      assert.are.equal("valid", verify(stats, { product = "smarterstats" }).verdict)
      assert.are.equal("smarterstats", verify(stats).certificate.product)
      -- Before the machine: another product's certificate on another machine.
      assert.are.equal("wrong_product", verify(stats, { fingerprint = "v1:mid=0000000000000000" }).verdict)
    end)

    it("raises a bad argument without a product", function()
      local ok, err = pcall(licensor.verify, signed(), { public_keys = { public }, now = at("2018-12-10") })
      assert.is_false(ok)
      assert.matches("product", err)
    end)

    it("checks this machine when no fingerprint is given; only fingerprint = false skips the check", function()
      local text = signed()   -- for FP: not this machine
      local function bare(cert, fingerprint, state)
        return licensor.verify(cert, { public_keys = { public }, product = "smartertrack", now = at("2018-12-10"),
                                       fingerprint = fingerprint, state = state, new_state = true })
      end
      assert.are.equal("wrong_machine", bare(text).verdict)
      assert.are.equal("valid", bare(text, false).verdict)
      for _, wrong in ipairs({ true, 42, {} }) do
        local ok, err = pcall(bare, text, wrong)
        assert.is_false(ok)
        assert.matches("fingerprint: a fingerprint, nil %(this machine's%) or false", err)
      end
      local here = core.fingerprint()
      if not here then return end   -- no identity here: nothing matches it
      local ours = signed{ fingerprint = here }
      assert.are.equal("valid", bare(ours).verdict)
      -- The state is this machine's too, for verify and revocation_apply alike.
      local state = new_state_path()
      assert.are.equal("valid", bare(ours, nil, state).verdict)
      assert.are.equal("valid", bare(ours, here, state).verdict)
      assert.is_true(licensor.revocation_apply(notice(), { public_keys = { public }, certificate = ours,
                                                            state = state }))
      assert.are.same({ "revoked", "disabled" }, { bare(ours, nil, state).verdict, bare(ours, nil, state).reason })
      os.remove(state)
      os.remove(state .. ".lock")
    end)

    it("answers R8 for an add-on from Lua, as lsrv_addon_active does in C", function()
      local text = signed()
      assert.is_true(licensor.addon_active(text, "eas", 13, "2018-12-10"))
      assert.is_false(licensor.addon_active(text, "eas", 12, "2018-12-10"))        -- an older major
      assert.is_false(licensor.addon_active(text, "eas", 13, "2019-06-01"))        -- after its paid-through
      assert.is_false(licensor.addon_active(text, "message_sniffer", 13, "2018-12-10"))
      assert.are.same({ nil, "malformed" }, { licensor.addon_active("nope", "eas", 13, "2018-12-10"),
                                              select(3, licensor.addon_active("nope", "eas", 13, "2018-12-10")) })
    end)
  end)

  it("answers every verdict, the first that applies in the documented order", function()
    local state = new_state_path()
    local text = signed()
    local _, other = new_key()
    local weak = "v1:mac=3333333333333333,host=4444444444444444"
    local cases = {
      { "malformed", "garbage" },
      { "unknown_signer", text, { public_keys = { other } } },
      { "bad_signature", (text:gsub("level: 5", "level: 6")) },
      { "wrong_product", text, { product = "smartermail", fingerprint = weak } },
      { "wrong_machine", text, { fingerprint = weak } },
      { "clock_rollback", text, { now = at("2018-11-28") } },
      { "not_started", signed{ start = "2018-12-08", issued = "2018-12-07T00:00:00Z" },
        { now = core.day("2018-12-08") * DAY - 3600 } },
      { "expired", text, { now = at("2019-01-19") } },
      { "grace", text, { now = at("2019-01-05") } },
      { "valid", text },
    }
    for _, case in ipairs(cases) do
      assert.are.equal(case[1], verify(case[2], case[3]).verdict, case[1])
    end
    -- revoked: after wrong_machine (a certificate matching "all", a new
    -- network card: the same state), before clock_rollback and the dates.
    local strict = signed{ match = "all" }
    local new_card = FP:gsub("mac=3333333333333333", "mac=5555555555555555")
    assert.is_true(licensor.revocation_apply(notice(), { public_keys = { public }, certificate = strict,
                                                          fingerprint = FP, state = state }))
    assert.are.equal("wrong_machine", verify(strict, { state = state, fingerprint = new_card }).verdict)
    for _, now in ipairs({ at("2018-11-28"), at("2018-12-10"), at("2019-01-05"), at("2019-02-01") }) do
      local r = verify(strict, { state = state, now = now })
      assert.are.same({ "revoked", "disabled" }, { r.verdict, r.reason })
    end
    os.remove(state)
    os.remove(state .. ".lock")
  end)

  describe("revocation", function()
    local state, text
    local function apply(notice_text, opts)
      opts = opts or {}
      return licensor.revocation_apply(notice_text, { public_keys = opts.public_keys or { public },
        certificate = opts.certificate or text, fingerprint = FP, state = state })
    end

    before_each(function()
      state = new_state_path()
      text = signed()
      assert.are.equal("valid", verify(text, { state = state, new_state = true }).verdict)
    end)

    after_each(function()
      os.remove(state)
      os.remove(state .. ".lock")
    end)

    it("revokes the certificates it covers; one issued after it stays valid", function()
      assert.is_true(apply(notice{ revoked = "2018-12-05T00:00:00Z" }))   -- at the issue time: covered
      local r = verify(text, { state = state })
      assert.are.same({ "revoked", "disabled" }, { r.verdict, r.reason })
      local newer = signed{ issued = "2018-12-06T00:00:00Z", refresh_by = "2019-01-05" }
      assert.are.equal("valid", verify(newer, { state = state }).verdict)
      -- A later notice widens it; an earlier one never narrows it.
      assert.is_true(apply(notice{ revoked = "2018-12-06T00:00:00Z", reason = "forced" }))
      assert.are.same({ "revoked", "forced" }, { verify(newer, { state = state }).verdict,
                                                  verify(newer, { state = state }).reason })
      assert.is_true(apply(notice{ revoked = "2018-12-01T00:00:00Z", reason = "deactivated" }))
      assert.are.same({ "revoked", "forced" }, { verify(newer, { state = state }).verdict,
                                                  verify(newer, { state = state }).reason })
    end)

    it("refuses a notice signed by an unknown key, or changed, and changes nothing", function()
      local before = read(state)
      local other_path = new_key()
      local stranger = assert(certificate.read_signing_key(other_path))
      local _, other_public = new_key()
      local forged = notice({}, stranger)
      assert.are.same({ nil, "unknown_signer" }, { apply(forged), select(3, apply(forged)) })
      -- Trusting the stranger's key: the notice's own signer is still unknown.
      assert.are.equal("unknown_signer", select(3, apply(forged, { public_keys = { public, other_public } })))
      local changed = (notice():gsub("server: mail1", "server: mail2"))
      assert.are.equal("bad_signature", select(3, apply(changed)))
      assert.are.equal("malformed", select(3, apply("-----BEGIN LICENSOR REVOCATION-----\n")))
      assert.are.equal("malformed", select(3, apply((notice():gsub("reason: disabled", "reason: whim")))))
      assert.are.equal(before, read(state))
      assert.are.equal("valid", verify(text, { state = state }).verdict)
      os.remove(other_path)
      os.remove(other_path .. ".pub")
    end)

    it("does not revoke for another license or server", function()
      local before = read(state)
      for _, over in ipairs({ { license = "K2" }, { server = "mail2" } }) do
        assert.are.same({ nil, "other_license" }, { apply(notice(over)), select(3, apply(notice(over))) })
      end
      assert.are.equal(before, read(state))
      assert.are.equal("valid", verify(text, { state = state }).verdict)
      -- Another server's certificate, with its own state: not revoked by mail1's notice.
      local other_state = new_state_path()
      local mail2 = signed{ server = "mail2" }
      assert.are.same({ nil, "other_license" }, { licensor.revocation_apply(notice(), { public_keys = { public },
        certificate = mail2, fingerprint = FP, state = other_state }), "other_license" })
      assert.are.equal("valid", verify(mail2, { state = other_state, new_state = true }).verdict)
      os.remove(other_state)
      os.remove(other_state .. ".lock")
    end)

    it("is signed text of the documented shape", function()
      local n = notice()
      assert.matches("^%-%-%-%-%-BEGIN LICENSOR REVOCATION%-%-%-%-%-\nformat: 1\nsigner: " .. signing_key.id ..
        "\nlicense: K1\nserver: mail1\nfingerprint: " .. FP:gsub("%p", "%%%0") ..
        "\nrevoked: 2018%-12%-20T00:00:00Z\nreason: disabled\nsignature: [%w%+/]+==\n" ..
        "%-%-%-%-%-END LICENSOR REVOCATION%-%-%-%-%-\n$", n)
      for _, bad in ipairs({ { reason = "whim" }, { revoked = "2018-12-20" }, { server = "" },
                             { license = "K\n1" }, { fingerprint = "mid=1" } }) do
        local ok, err = pcall(notice, bad)
        assert.is_false(ok)
        assert.are.equal("invalid_request", err.code)
      end
    end)
  end)

  describe("return", function()
    local dir, cert_path, state

    before_each(function()
      dir = files.temp_dir()
      cert_path, state = dir .. "/license.cert", dir .. "/licensor.state"
      files.write(cert_path, signed())
    end)

    after_each(function() files.remove_dir(dir) end)

    local function give_back(opts)
      opts = opts or {}
      return licensor.return_certificate(cert_path, { public_keys = { public }, product = opts.product or "smartertrack",
                                                      fingerprint = FP, state = opts.state or state })
    end

    it("writes the exact receipt, deletes the certificate, and the state says revoked after", function()
      local text = read(cert_path)
      assert.are.equal("valid", verify(text, { state = state, new_state = true }).verdict)
      local receipt = assert(give_back())
      assert.are.equal("-----BEGIN LICENSOR RETURN RECEIPT-----\nformat: 1\nlicense: K1\nserver: mail1\n" ..
        "fingerprint: " .. FP .. "\ncertificate: " .. certificate.signature_of(text) ..
        "\n-----END LICENSOR RETURN RECEIPT-----\n", receipt)
      assert.are.equal(88, #certificate.signature_of(text))
      assert.is_nil(read(cert_path))
      local r = verify(text, { state = state })
      assert.are.same({ "revoked", "returned" }, { r.verdict, r.reason })
      -- Older certificates of that license and server too; a newer one is not.
      assert.are.equal("revoked", verify(signed{ issued = "2018-12-01T00:00:00Z" }, { state = state }).verdict)
      assert.are.equal("valid", verify(signed{ issued = "2018-12-06T00:00:00Z" }, { state = state }).verdict)
      assert.are.same({ license = "K1", server = "mail1", fingerprint = FP,
                        certificate = certificate.signature_of(text) }, certificate.read_receipt(receipt))
    end)

    it("refuses another product's certificate, or an unwritable state, and keeps the file", function()
      assert.are.equal("certificate_refused", select(3, give_back{ product = "smartermail" }))
      assert.are.equal("state_unwritable", select(3, give_back{ state = dir .. "/no/such/dir/state" }))
      assert.is_string(read(cert_path))
      assert.are.same({ "license.cert" }, listing(dir))
    end)

    it("reads receipts strictly", function()
      local receipt = assert(give_back())
      assert.is_table(certificate.read_receipt(receipt:sub(1, -2)))   -- the last newline is optional
      local bad = {
        receipt .. "x", receipt:gsub("format: 1", "format: 2"), receipt:gsub("server: mail1", "server: "),
        receipt:gsub("server: mail1", "server: " .. string.rep("s", 300)),
        receipt:gsub("license: K1", "license: " .. string.rep("K", 64)),
        receipt:gsub("fingerprint: v1:", "fingerprint: v2:"), receipt:gsub("certificate: %S+", "certificate: abc"),
        receipt:gsub("\n", "\r\n"), (receipt:gsub("RETURN RECEIPT", "REQUEST")), "", 42,
      }
      for i, text in ipairs(bad) do
        local ok, _, code = certificate.read_receipt(text)
        assert.are.same({ nil, "invalid_request" }, { ok, code }, "case " .. i)
      end
      assert.is_nil(certificate.signature_of("not a certificate"))
    end)
  end)

  describe("fingerprints", function()
    it("refuse a recorded fingerprint of fewer than three components, without mid or uuid, or ill-formed", function()
      assert.is_true(certificate.valid_fingerprint(FP))
      assert.is_true(certificate.valid_fingerprint("v1:uuid=2222222222222222,disk=5555555555555555,host=4444444444444444"))
      local refused = {
        { "v1:disk=9a9fea1c152dc3bb", "1 component" },
        { "v1:mid=1111111111111111,host=4444444444444444", "2 components" },
        { "v1:mac=3333333333333333,disk=5555555555555555,host=4444444444444444", "neither mid nor uuid" },
        { "v1:mid=1111111111111111,cpu=3333333333333333,host=4444444444444444", "unknown name" },
        { "v1:mid=1111111111111111,mid=1111111111111111,host=4444444444444444", "mid appears twice" },
        { "v1:mid=111111111111111,mac=3333333333333333,host=4444444444444444", "hash of mid" },
        { "v1:mid=111111111111111G,mac=3333333333333333,host=4444444444444444", "hash of mid" },
        { "v1:mid=1111111111111111,mac=3333333333333333,host=4444444444444444,", "not name=hash" },
        { "mid=1111111111111111", "v1:" }, { "v1:", "not name=hash" }, { 42, "string" },
      }
      for _, case in ipairs(refused) do
        local ok, message = certificate.valid_fingerprint(case[1])
        assert.is_false(ok, tostring(case[1]))
        assert.matches(case[2], message, 1, true)
      end
    end)

    it("match nothing without an equal mid or uuid; drift of one other component still matches most", function()
      local match = core.fingerprint_match
      local weak = "v1:mac=3333333333333333,host=4444444444444444"
      for _, policy in ipairs({ "most", "all", "any" }) do
        assert.is_false(match(FP, weak, policy), policy)                                   -- seen: no strong
        assert.is_false(match(weak, weak, policy), policy)                                 -- expected: none
        assert.is_false(match(FP, "v1:mid=9999999999999999,uuid=9999999999999999,mac=3333333333333333," ..
          "host=4444444444444444", policy), policy)                                        -- strong all differ
      end
      -- The attack of issue 17: one disk component, recorded, matched anywhere.
      assert.is_false(match("v1:disk=9a9fea1c152dc3bb", "v1:mid=abababababababab,disk=9a9fea1c152dc3bb", "most"))
      local drifted = "v1:mid=1111111111111111,uuid=2222222222222222,mac=9999999999999999,host=4444444444444444"
      assert.is_true(match(FP, drifted, "most"))
      assert.is_false(match(FP, drifted, "all"))
      assert.is_true(match(FP, FP, "all"))
      -- uuid changed, mid kept: still this machine for most (3 of 4) and any.
      local new_board = "v1:mid=1111111111111111,uuid=9999999999999999,mac=3333333333333333,host=4444444444444444"
      assert.is_true(match(FP, new_board, "most"))
      assert.is_true(match(FP, "v1:mid=1111111111111111", "any"))
      -- Counted over what was recorded: extra components seen do not dilute it.
      assert.is_true(match("v1:mid=1111111111111111,mac=3333333333333333,host=4444444444444444",
        FP .. ",disk=7777777777777777", "all"))
    end)

    it("count their changes", function()
      local changes = certificate.fingerprint_changes
      assert.are.equal(0, changes(FP, FP))
      assert.are.equal(1, changes(FP, FP:gsub("mac=3333333333333333", "mac=9999999999999999")))
      assert.are.equal(1, changes(FP, FP .. ",disk=7777777777777777"))                -- added
      assert.are.equal(1, changes(FP, (FP:gsub(",host=4444444444444444", ""))))      -- gone
      assert.are.equal(5, changes(FP, "v1:mid=0000000000000000,uuid=0000000000000000,mac=0000000000000000," ..
        "disk=0000000000000000,host=0000000000000000"))
      assert.are.same({ nil, "invalid_request" }, { changes(FP, "nope"), select(3, changes(FP, "nope")) })
    end)

    it("are explained source by source, hashed, never raw", function()
      local list = core.fingerprint_explain()
      assert.are.same({ "mid", "uuid", "mac", "disk", "host" },
        { list[1].name, list[2].name, list[3].name, list[4].name, list[5].name })
      assert.are.same({ true, true, false, false, false },
        { list[1].strong, list[2].strong, list[3].strong, list[4].strong, list[5].strong })
      local fp, parts = core.fingerprint(), {}
      for _, c in ipairs(list) do
        assert.is_string(c.source)
        if c.found then
          assert.matches("^%x+$", c.hash)
          assert.are.equal(16, #c.hash)
          parts[#parts + 1] = c.name .. "=" .. c.hash
        else
          assert.is_nil(c.hash)
        end
      end
      assert.are.equal(fp, #parts > 0 and "v1:" .. table.concat(parts, ",") or nil)
      local machine_id = read("/etc/machine-id")
      local status, out = run("fingerprint", "--explain")
      assert.are.equal(0, status)
      assert.matches("component", out)
      if machine_id and machine_id:find("%x") then assert.is_nil(out:find(machine_id:match("%x+"), 1, true)) end
      status, out = run("--json", "fingerprint", "--explain")
      assert.are.equal(0, status)
      local decoded = require("cjson").decode(out)
      assert.are.equal(5, #decoded.components)
      assert.are.equal(certificate.valid_fingerprint(fp) == true, decoded.recordable)
    end)
  end)

  describe("state files", function()
    local dir, state, text

    before_each(function()
      dir = files.temp_dir()
      state = dir .. "/licensor.state"
      text = signed()
      assert.are.equal("valid", verify(text, { state = state, new_state = true, now = at("2018-12-20") }).verdict)
    end)

    after_each(function() files.remove_dir(dir) end)

    it("never follow a symlink, reading or writing", function()
      local good = read(state)
      -- Reading: a link to this very state (a good file) is not read through.
      local link = dir .. "/link.state"
      assert(os.execute("ln -s " .. state .. " " .. link))
      assert.are.equal("state_corrupt", verify(text, { state = link, now = at("2018-12-21") }).verdict)
      -- Writing: a link to another file is neither written through nor replaced.
      local victim, dangling = dir .. "/victim", dir .. "/dangling.state"
      files.write(victim, "precious\n")
      os.remove(link)
      assert(os.execute("ln -s " .. victim .. " " .. link))
      assert(os.execute("ln -s " .. dir .. "/nothing " .. dangling))
      assert.are.equal("state_corrupt", verify(text, { state = link, new_state = true }).verdict)
      assert.are.equal("state_corrupt", verify(text, { state = dangling, new_state = true }).verdict)
      assert.are.equal("state_corrupt", select(3, licensor.revocation_apply(notice(), { public_keys = { public },
        certificate = text, fingerprint = FP, state = dangling })))
      assert.are.equal("precious\n", read(victim))
      assert.is_nil(read(dir .. "/nothing"))
      assert.are.equal(good, read(state))
    end)

    it("are another certificate's or machine's: state_corrupt; a refreshed certificate keeps them", function()
      assert.are.equal("state_corrupt", verify(signed{ license = "K2" }, { state = state }).verdict)
      assert.are.equal("state_corrupt", verify(signed{ server = "mail2" }, { state = state }).verdict)
      local elsewhere = "v1:mid=9999999999999999,uuid=8888888888888888,mac=3333333333333333,host=4444444444444444"
      assert.are.equal("state_corrupt", verify(signed{ fingerprint = elsewhere },
                                                { state = state, fingerprint = elsewhere }).verdict)
      -- The same license, server and machine: a refresh (and a new network
      -- card) keeps the state and its mark.
      local refreshed = signed{ issued = "2018-12-10T00:00:00Z", refresh_by = "2019-01-09",
                                fingerprint = FP:gsub("mac=3333333333333333", "mac=5555555555555555") }
      local drifted = FP:gsub("mac=3333333333333333", "mac=5555555555555555")
      assert.are.equal("valid", verify(refreshed, { state = state, fingerprint = drifted,
                                                    now = at("2018-12-19") }).verdict)
      assert.are.equal("clock_rollback", verify(refreshed, { state = state, fingerprint = drifted,
                                                             now = at("2018-12-12") }).verdict)
    end)

    it("are written through an unpredictable temporary file in the same directory", function()
      -- The old name (STATE.PID.tmp) planted as a link to a victim file.
      local f = assert(io.open("/proc/self/stat"))
      local pid = f:read("*n")
      f:close()
      local victim, planted = dir .. "/victim", state .. "." .. pid .. ".tmp"
      files.write(victim, "precious\n")
      assert(os.execute("ln -s " .. victim .. " " .. planted))
      assert.are.equal("valid", verify(text, { state = state, now = at("2018-12-22") }).verdict)
      assert.are.equal("precious\n", read(victim))
      assert.are.same({ "licensor.state", "licensor.state." .. pid .. ".tmp", "licensor.state.lock", "victim" },
                      listing(dir))
      assert.matches("^licensor%-state 2 " .. at("2018-12-22") .. " %- %- %x+\n$", read(state))
      -- A directory that cannot take the temporary file: unwritable, and nothing left behind.
      assert.are.equal("state_unwritable", verify(text, { state = dir .. "/missing/state", new_state = true,
                                                          now = at("2018-12-23") }).verdict)
      assert.are.same({ "licensor.state", "licensor.state." .. pid .. ".tmp", "licensor.state.lock", "victim" },
                      listing(dir))
    end)
  end)

  describe("on the command line", function()
    local dir, cert_path, pub

    before_each(function()
      dir = files.temp_dir()
      cert_path, pub = dir .. "/mail1.cert", key_path .. ".pub"
      -- Today's certificate (the command verifies at the current time).
      local today = licensor.today()
      files.write(cert_path, signed{ issued = today .. "T00:00:00Z", start = "2018-06-01",
                                     refresh_by = core.date(core.day(today) + 30) })
    end)

    after_each(function() files.remove_dir(dir) end)

    it("verify names a directory or an unreadable CERT; request names the build's limit", function()
      local status, _, err = run("verify", dir, "--public-key", pub, "--fingerprint", FP, "--product", "smartertrack")
      assert.are.same({ 1, "licensor: io_error: certificate " .. dir .. ": Is a directory" },
                      { status, err })
      status, _, err = run("verify", dir .. "/none", "--public-key", pub, "--fingerprint", FP, "--product", "smartertrack")
      assert.are.equal(1, status)
      assert.matches("certificate " .. dir .. "/none: No such file", err, 1, true)
      files.write(dir .. "/empty", "")
      status, _, err = run("verify", dir .. "/empty", "--public-key", pub, "--fingerprint", FP, "--product", "smartertrack")
      assert.are.same({ 2, "is empty" }, { status, err:match("is empty") })
      for _, build in ipairs({ "99999999999999999999", "1234567890123456", "6911.5", "1e3", "0x10", "-1" }) do
        status, _, err = run("request", "K1", "air", build, "--fingerprint", FP)
        assert.are.same({ 2, "licensor: BUILD is a build number: a whole number of at most 15 digits" },
                        { status, err }, build)
      end
      local out
      status, out = run("request", "K1", "air", "123456789012345", "--fingerprint", FP)
      assert.are.equal(0, status)
      assert.are.equal(123456789012345, certificate.read_request(out .. "\n").build)
      local long = out:gsub("build: %d+", "build: 1234567890123456") .. "\n"
      assert.are.same({ nil, "the activation request's build is not a whole number of at most 15 digits",
                        "invalid_request" }, { certificate.read_request(long) })
    end)

    it("verify needs --product; another product's certificate is refused", function()
      local status, _, err = run("verify", cert_path, "--public-key", pub, "--fingerprint", FP)
      assert.are.equal(2, status)
      assert.matches("%-%-product", err)
      status = run("verify", cert_path, "--public-key", pub, "--fingerprint", FP, "--product", "smartertrack")
      assert.are.equal(0, status)
      local out
      status, out = run("verify", cert_path, "--public-key", pub, "--fingerprint", FP, "--product", "smarterstats")
      assert.are.same({ 1, "wrong_product" }, { status, out })
    end)

    it("verify --revocation records a notice in the state first; return writes a receipt and deletes CERT", function()
      local state, notice_path, receipt = dir .. "/state", dir .. "/notice", dir .. "/receipt"
      local common = { "--public-key", pub, "--fingerprint", FP, "--product", "smartertrack", "--state", state }
      local function cli(...)
        local args = { ... }
        for _, a in ipairs(common) do args[#args + 1] = a end
        return run(unpack(args))
      end
      assert.are.equal(0, (cli("verify", cert_path, "--new-state")))
      files.write(notice_path, notice{ revoked = os.date("!%Y-%m-%dT%H:%M:%SZ"), license = "K9" })
      local status, _, err = cli("verify", cert_path, "--revocation", notice_path)
      assert.are.same({ 1, "licensor: other_license: the revocation notice is refused: other_license" },
                      { status, err })
      local status_r, out = cli("return", cert_path, "--out", receipt)
      assert.are.same({ 0, cert_path .. " returned: receipt written to " .. receipt }, { status_r, out })
      assert.is_nil(read(cert_path))
      assert.is_table(certificate.read_receipt(read(receipt)))
      assert.are.equal(1, (cli("return", cert_path)))                 -- gone: nothing to return
      assert.are.equal(2, (run("return", cert_path, "--public-key", pub, "--product", "smartertrack")))
    end)
  end)
end)

-- Format 2: a policy's eligible hook decided another build than the
-- rules' own, and the certificate carries it (build_cap), so that the
-- offline verifier agrees with the store without running the policy.
describe("a certificate's build cap (format 2)", function()
  local key_path, public, signing_key

  -- SmarterTrack's fixture builds: 6855 (13.4, 2018-10-08), 6911 (13.5,
  -- 2018-12-03), 6947 (13.5, 2019-01-11), 7010 (14.0, 2019-03-15).
  local B = {}

  -- A lapsed license's fallback major keeps its fixes released after the
  -- M&S expiry (a cap raised above the rules' cutoff).
  local RAISE = [[
return {
  eligible = function(ctx)
    local fallback, lic = ctx.build, ctx.license
    if not fallback or lic.kind ~= "perpetual" or not lic.ms_expires or ctx.day <= lic.ms_expires then
      return nil
    end
    local best
    for _, b in ipairs(ctx.builds) do
      if b.number > fallback.number and b.major == fallback.major and b.released <= ctx.day then best = b end
    end
    if best then return { build = best.number, because = "fixes of the fallback's major" } end
  end,
}
]]
  -- Licenses tagged "stay13" stay on major 13 (a cap below the rules').
  local LOWER = [[
return {
  eligible = function(ctx)
    if not (ctx.license.tags and ctx.license.tags.stay13) or not ctx.build or ctx.build.major <= 13 then
      return nil
    end
    local best
    for _, b in ipairs(ctx.builds) do
      if b.major == 13 and b.released <= ctx.day then best = b end
    end
    if best then return { build = best.number, because = "stays on 13" } end
  end,
}
]]

  setup(function()
    key_path, public = new_key()
    signing_key = assert(certificate.read_signing_key(key_path))
    local s = stores.new(":memory:")
    for _, b in ipairs(s:catalogue():builds("smartertrack")) do B[b.number] = b end
  end)

  teardown(function()
    os.remove(key_path)
    os.remove(key_path .. ".pub")
  end)

  local function new_store(policy)
    local store = stores.new(":memory:")
    assert(store:use_signing_key(key_path))
    if policy then assert(store:import_policy(policy, "cap.lua", "2018-01-01")) end
    return store
  end

  local function verify(text, now)
    return licensor.verify(text, { public_keys = { public }, product = "smartertrack", fingerprint = FP,
                                   now = at(now) })
  end

  -- The old entry point and the new one, for a build of the fixtures.
  local function runs(text, number, day)
    local b = B[number]
    return { core.may_run(text, b.released, b.major, day), core.may_run_build(text, number, b.released, b.major, day) }
  end

  local function fields(over)
    local f = { license = "K1", server = "mail1", product = "smartertrack", edition = "enterprise", level = 5,
                kind = "perpetual", start = "2017-12-01", ms_expires = "2018-11-30", addons = {},
                newest_major = 13, fingerprint = FP, match = "most", issued = "2018-12-10T00:00:00Z",
                refresh_by = "2019-01-09", grace_days = 14 }
    for k, v in pairs(over or {}) do f[k] = v end
    return f
  end

  it("lets the capped bugfix build run offline and refuses a build above the cap", function()
    local text = certificate.text(fields{ build_cap = 6911, build_cap_released = "2018-12-03" }, signing_key)
    assert.matches("\ngrace_days: 14\nbuild_cap: 6911\nbuild_cap_released: 2018%-12%-03\nsignature: ", text)
    local r = verify(text, "2018-12-10")
    assert.are.same({ "valid", 2, 6911, "2018-12-03" },
      { r.verdict, r.certificate.format, r.certificate.build_cap, r.certificate.build_cap_released })
    -- { lsrv_may_run, lsrv_may_run_build } on 2018-12-10
    assert.are.same({ true, true }, runs(text, 6855, "2018-12-10"))     -- the fallback
    assert.are.same({ false, true }, runs(text, 6911, "2018-12-10"))    -- the cap: a fix after the expiry
    assert.are.same({ false, false }, runs(text, 6947, "2018-12-10"))   -- above the cap
    assert.are.same({ false, false }, runs(text, 7010, "2019-04-01"))
    assert.are.same({ false, false }, runs(text, 6911, "2017-11-30"))   -- before the start (R1)
  end)

  it("lowered below the rules' build, holds the license to it; the old entry point stays below it", function()
    local on = fields{ ms_expires = "2019-11-30", issued = "2019-04-01T00:00:00Z", refresh_by = "2019-05-01" }
    local plain = certificate.text(on, signing_key)
    on.build_cap, on.build_cap_released = 6947, "2019-01-11"
    local text = certificate.text(on, signing_key)
    assert.are.equal("valid", verify(text, "2019-04-02").verdict)
    assert.are.same({ true, true }, runs(plain, 7010, "2019-04-02"))   -- format 1: 14.0 on M&S
    assert.are.same({ false, false }, runs(text, 7010, "2019-04-02"))   -- capped at 6947
    assert.are.same({ true, true }, runs(text, 6911, "2019-04-02"))
    -- Released on the cap's day: the old entry point, without the number,
    -- cannot tell the cap from a later build of that day, and refuses.
    assert.are.same({ false, true }, runs(text, 6947, "2019-04-02"))
  end)

  it("answers a lease past its end and a trial past its days no, cap or not", function()
    local lease = certificate.text(fields{ kind = "lease", ms_expires = nil, ends = "2019-01-01",
                                           build_cap = 6911, build_cap_released = "2018-12-03" }, signing_key)
    assert.are.same({ false, true }, runs(lease, 6911, "2018-12-31"))
    assert.are.same({ false, false }, runs(lease, 6911, "2019-01-01"))
  end)

  it("cannot be widened: an edited cap is bad_signature, one cut off or half of one malformed", function()
    local text = certificate.text(fields{ build_cap = 6911, build_cap_released = "2018-12-03" }, signing_key)
    assert.are.equal("bad_signature", verify((text:gsub("build_cap: 6911", "build_cap: 6947")), "2018-12-10").verdict)
    assert.are.equal("bad_signature", verify((text:gsub("released: 2018%-12%-03", "released: 2019-01-11")),
      "2018-12-10").verdict)
    -- Back to format 1 without the cap: the signed bytes change.
    local as_1 = text:gsub("format: 2", "format: 1"):gsub("build_cap: [^\n]*\nbuild_cap_released: [^\n]*\n", "")
    assert.are.equal("bad_signature", verify(as_1, "2018-12-10").verdict)
    assert.are.equal("malformed", verify((text:gsub("build_cap_released: [^\n]*\n", "")), "2018-12-10").verdict)
    assert.are.equal("malformed", verify((text:gsub("format: 2", "format: 1")), "2018-12-10").verdict)
    assert.are.equal("malformed", verify((text:gsub("build_cap: 6911", "build_cap: -")), "2018-12-10").verdict)
    assert.are.equal("malformed", verify((text:gsub("build_cap: 6911", "build_cap: 0")), "2018-12-10").verdict)
    assert.are.equal("malformed", verify((text:gsub("build_cap: 6911", "build_cap: -6911")), "2018-12-10").verdict)
    assert.are.equal("malformed", verify((text:gsub("build_cap: 6911", "build_cap: 1234567890123456")),
      "2018-12-10").verdict)
    -- Every other byte of the cap's lines, every value: never valid.
    local first, last = text:find("build_cap: [^\n]*\nbuild_cap_released: [^\n]*\n")
    local allowed = { bad_signature = true, malformed = true }
    for i = first, last do
      for v = 0, 255 do
        if v ~= text:byte(i) then
          local verdict = verify(text:sub(1, i - 1) .. string.char(v) .. text:sub(i + 1), "2018-12-10").verdict
          assert.is_true(allowed[verdict], "byte " .. i .. " -> " .. v .. ": " .. verdict)
        end
      end
    end
  end)

  it("of format 2 with no cap (both '-') answers as format 1; formats 0, 3 and 10 are malformed", function()
    local text1 = certificate.text(fields(), signing_key)
    local body = text1:match("^(.-)signature: "):gsub("format: 1", "format: 2") ..
      "build_cap: -\nbuild_cap_released: -\n"
    local text2 = body .. "signature: " .. assert(core.sign(body, signing_key.secret)) ..
      "\n-----END LICENSOR CERTIFICATE-----\n"
    local r = verify(text2, "2018-12-10")
    assert.are.same({ "valid", 2 }, { r.verdict, r.certificate.format })
    assert.is_nil(r.certificate.build_cap)
    for _, number in ipairs({ 6855, 6911, 6947 }) do
      assert.are.same(runs(text1, number, "2018-12-10"), runs(text2, number, "2018-12-10"), number)
    end
    for _, format in ipairs({ "0", "3", "10" }) do
      for _, text in ipairs({ text1, text2 }) do
        local b = text:match("^(.-)signature: "):gsub("format: %d", "format: " .. format)
        local t = b .. "signature: " .. assert(core.sign(b, signing_key.secret)) ..
          "\n-----END LICENSOR CERTIFICATE-----\n"
        assert.are.equal("malformed", verify(t, "2018-12-10").verdict, format)
      end
    end
  end)

  it("keeps format 1 exactly as it was: the same 21 fields, and the number plays no part", function()
    local text = certificate.text(fields(), signing_key)
    local names = {}
    for name in text:gmatch("\n([%l_]+): ") do names[#names + 1] = name end
    table.remove(names)   -- signature
    assert.are.same(certificate.FIELDS, names)
    assert.are.equal(1, core.read_certificate(text).format)
    for number, b in pairs(B) do
      for _, day in ipairs({ "2018-06-01", "2018-12-10", "2019-06-30" }) do
        assert.are.equal(core.may_run(text, b.released, b.major, day),
                         core.may_run_build(text, number, b.released, b.major, day))
        assert.are.equal(core.may_run(text, b.released, b.major, day),
                         core.may_run_build(text, 1, b.released, b.major, day))
      end
    end
  end)

  it("is issued by the store when a policy's eligible hook raises the build, and the verifier honours it", function()
    local store = new_store(RAISE)
    local lic = stores.issue(store, { start = "2017-12-01" })   -- M&S to 2018-11-30: falls back to 6855
    local cat = store:catalogue()
    assert.are.same({ 6855, 6911 }, { cat.raw:eligible(store:get(lic.key), "2018-12-10").number,
                                      cat:eligible(store:get(lic.key), "2018-12-10").number })
    assert.is_true(store:activate(lic.key, "mail1", 6911, "2018-12-10", FP).ok)
    local text = assert(store:certificate(lic.key, "mail1", "2018-12-10"))
    local r = verify(text, "2018-12-10")
    assert.are.same({ "valid", 2, 6911, "2018-12-03" },
      { r.verdict, r.certificate.format, r.certificate.build_cap, r.certificate.build_cap_released })
    -- On the issue day the offline answer is the store's, build for build;
    -- over the certificate's life it never allows what the store refuses.
    local last = core.day(r.certificate.refresh_by) + r.certificate.grace_days
    local held = store:get(lic.key)
    for number, b in pairs(B) do
      for day = core.day("2018-12-10"), last do
        local online = cat:can_install(held, number, core.date(day)) == true
        local offline = core.may_run_build(text, number, b.released, b.major, core.date(day))
        if day == core.day("2018-12-10") then assert.are.equal(online, offline, number) end
        if offline then assert.is_true(online, number .. " on " .. core.date(day)) end
      end
    end
    assert.are.same({ false, true }, runs(text, 6911, "2018-12-10"))
    assert.are.same({ false, false }, runs(text, 6947, "2019-01-12"))   -- released since: a refresh gives it
    for day = core.day("2018-12-11"), core.day("2019-01-11") do
      assert.is_true(store:checkin(lic.key, "mail1", core.date(day), 6911, FP).ok)
    end
    assert.is_true(store:checkin(lic.key, "mail1", "2019-01-12", 6947, FP).ok)   -- the fix installed
    local later = assert(store:certificate(lic.key, "mail1", "2019-01-12"))
    assert.are.equal(6947, core.read_certificate(later).build_cap)
    assert.are.same({ false, true }, runs(later, 6947, "2019-01-12"))
  end)

  it("is issued lowered for the licenses a hook holds back", function()
    local store = new_store(LOWER)
    local lic = stores.issue(store, { start = "2018-06-01" })           -- M&S to 2019-05-31
    assert(store:set(lic.key, { tags = { "stay13" } }, "2018-06-01"))
    assert.is_true(store:activate(lic.key, "mail1", 6947, "2019-04-01", FP).ok)
    local text = assert(store:certificate(lic.key, "mail1", "2019-04-01"))
    local c = core.read_certificate(text)
    assert.are.same({ 2, 6947, "2019-01-11" }, { c.format, c.build_cap, c.build_cap_released })
    assert.are.same({ false, false }, runs(text, 7010, "2019-04-01"))
    assert.are.same({ true, true }, runs(text, 6911, "2019-04-01"))
  end)

  it("carries the cap whenever the hook answered, also with the rules' own build (a pin)", function()
    local store = new_store([[
return {
  eligible = function(ctx)
    if ctx.license.tags.pinned then return { build = 6911, because = "pinned to 13.5" } end
  end,
}
]])
    local lic = stores.issue(store, { start = "2018-06-01" })          -- on M&S: 6911 is the rules' build too
    assert(store:set(lic.key, { tags = { "pinned" } }, "2018-06-01"))
    assert.is_true(store:activate(lic.key, "mail1", 6911, "2018-12-20", FP).ok)
    local text = assert(store:certificate(lic.key, "mail1", "2018-12-20"))
    local c = core.read_certificate(text)
    assert.are.same({ 2, 6911 }, { c.format, c.build_cap })
    -- 6947 (released 2019-01-11, within the certificate's life) stays
    -- refused offline, as the pin refuses it online.
    assert.are.same({ false, false }, runs(text, 6947, "2019-01-15"))
    assert.is_false(store:catalogue():can_install(store:get(lic.key), 6947, "2019-01-15") == true)
  end)

  it("stays format 1 without a policy, and where the hook leaves the rules' build", function()
    for _, policy in ipairs({ false, RAISE, LOWER }) do
      local store = new_store(policy or nil)
      local lic = stores.issue(store, { start = "2018-06-01" })          -- on M&S: neither hook applies
      assert.is_true(store:activate(lic.key, "mail1", 6911, "2018-12-10", FP).ok)
      local text = assert(store:certificate(lic.key, "mail1", "2018-12-10"))
      assert.matches("\nformat: 1\n", text)
      assert.is_nil(text:find("build_cap", 1, true))
      -- The same bytes as format 1's writer makes of its fields.
      local f = core.read_certificate(text)
      assert.are.equal(text, certificate.text(f, signing_key))
    end
  end)
end)
