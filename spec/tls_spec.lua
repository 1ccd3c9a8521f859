-- TLS checked everywhere (licensor.tls; doc/rules.md section 6, "No
-- downgrade"): https webhooks and SMTP STARTTLS verify the server's
-- certificate against the system's authorities or a cafile and its names
-- against the host.  Real TLS receivers on the loopback address
-- (licensor.receiver over LuaSec, python3-aiosmtpd) offer a good
-- certificate, a self-signed one, an expired one and one for another name:
-- only the good one gets the action, and each refusal keeps the row
-- pending with its attempt counted.  insecure is an explicit choice,
-- logged once per run.
local core = require "licensor.core"
local stores = require "support.stores"
local files = require "support.files"
local smtpd = require "support.smtpd"
local register = require "support.registry"
local tls = require "licensor.tls"
local smtp = require "licensor.mail.smtp"
local mail = require "licensor.mail"
local delivery = require "licensor.delivery"

local unpack = table.unpack or unpack   -- luacheck: ignore unpack

local FROM = "licenses@vendor.example"

-- The certificates a receiver may show, by what is wrong with them.
local function certificate(kind)
  if kind == "self-signed" then return smtpd.certificate("self-signed") end
  return smtpd.issued(kind)
end

local BAD = {
  { kind = "self-signed", why = "self%-signed certificate" },
  { kind = "expired", why = "certificate has expired" },
  { kind = "other", why = "the server's certificate is not for 127%.0%.0%.1" },
}

-- An https receiver (licensor.receiver) showing `kind`'s certificate.
local function https_receiver(kind)
  local c = certificate(kind)
  local r = { log = os.tmpname() }
  os.remove(r.log)
  r.pid, r.port = require("licensor.receiver").start(r.log, nil, { certificate = c.cert, key = c.key })
  register(r.pid, "https webhook receiver")
  r.url = "https://127.0.0.1:" .. r.port .. "/hooks"
  function r.received()
    local f = io.open(r.log)
    if not f then return {} end
    f:close()
    return files.json_lines(r.log)
  end
  function r.stop()
    core.process.stop(r.pid, 0)
    os.remove(r.log)
  end
  return r
end

-- A store whose sweep on 2019-05-01 wrote one ms_expiring (for ann@).
local function store_with_reminder()
  local store = stores.new()
  stores.issue(store, { email = "ann@acme.example" })
  assert.are.equal(1, #store:sweep("2019-05-01"))
  return store
end

-- The one outbox row of store: pending or dead, and its attempts.
local function row_state(store)
  local row = store:outbox{ state = "all" }[1]
  return (row.delivered and "delivered" or row.dead and "dead" or "pending") .. " " .. row.attempts
end

describe("licensor.tls", function()
  it("matches a certificate name to a host: exactly, or a wildcard for one whole label", function()
    local m = tls.name_matches
    assert.are.same({ true, true, true, false, false, false, false },
      { m("mail.example.com", "MAIL.example.com"), m("*.example.com", "mail.example.com"),
        m("127.0.0.1", "127.0.0.1"), m("*.example.com", "a.b.example.com"), m("*.example.com", "example.com"),
        m("*.com", "example.com"), m("other.example", "mail.example") })
  end)

  it("verifies the peer against the system's authorities or a cafile; checks nothing only when insecure", function()
    local p = tls.params()
    assert.are.same({ "peer", "fail_if_no_peer_cert" }, p.verify)
    assert.is_true(p.cafile == tls.DEFAULT_CAFILE or p.capath == tls.DEFAULT_CAPATH)
    assert.are.equal("/x/ca.pem", tls.params{ cafile = "/x/ca.pem" }.cafile)
    assert.are.equal("none", tls.params{ insecure = true }.verify)
    local ok, why = tls.check{ cafile = "/nonexistent/ca.pem" }
    assert.is_nil(ok)
    assert.matches("^TLS: ", why)
    assert.is_true(tls.check{ cafile = smtpd.authority().cert })
  end)
end)

describe("https webhooks", function()
  local receivers = {}
  setup(function()
    for _, kind in ipairs({ "good", "self-signed", "expired", "other" }) do receivers[kind] = https_receiver(kind) end
  end)
  teardown(function()
    for _, r in pairs(receivers) do r.stop() end
    smtpd.cleanup()
  end)

  local function deliver(store, url, tls_opts)
    assert(delivery.install(store, { webhooks = { url }, secret = "s3cret", timeout = 5, tls = tls_opts }))
    return store:deliver()
  end

  it("post to a server whose certificate chains to the cafile and names the host", function()
    local store = store_with_reminder()
    local delivered, pending, failures = deliver(store, receivers.good.url, { cafile = smtpd.authority().cert })
    assert.are.same({ 1, 0, 0 }, { delivered, pending, #failures })
    assert.are.same({ 1, "/hooks" }, { #receivers.good.received(), receivers.good.received()[1].path })
    store:close()
  end)

  for _, bad in ipairs(BAD) do
    it("refuse a server whose certificate is " .. bad.kind .. ", the row kept pending with its attempt counted",
       function()
      local store = store_with_reminder()
      local delivered, pending, failures = deliver(store, receivers[bad.kind].url,
                                                   { cafile = smtpd.authority().cert })
      assert.are.same({ 0, 1, 1 }, { delivered, pending, #failures })
      assert.matches(bad.why, failures[1].error)
      assert.are.same({ "pending 1", 0 }, { row_state(store), #receivers[bad.kind].received() })
      store:close()
    end)
  end

  it("trust only the system's authorities without a cafile: the test authority's certificate is refused", function()
    local store = store_with_reminder()
    local before = #receivers.good.received()
    local delivered, _, failures = deliver(store, receivers.good.url, {})
    assert.are.same({ 0, "pending 1", before }, { delivered, row_state(store), #receivers.good.received() })
    assert.matches("unable to get local issuer certificate", failures[1].error)
    store:close()
  end)

  it("licensor deliver --cafile trusts that authority, and --insecure is said once on stderr", function()
    local run = require "support.cli"
    local secret = os.tmpname()
    files.write(secret, "s3cret\n")
    local store, path = stores.new()
    stores.issue(store)
    assert.are.equal(1, #store:sweep("2019-05-01"))
    store:close()
    local base = { "--db", path, "deliver", "--webhook", receivers.other.url, "--secret-file", secret,
                   "--backoff-ms", "0" }
    local function licensor_deliver(...)
      local args = { unpack(base) }
      for _, a in ipairs({ ... }) do args[#args + 1] = a end
      return run(unpack(args))
    end
    local status, out, err = licensor_deliver("--cafile", smtpd.authority().cert)
    assert.are.equal(1, status, err)
    assert.matches("not for 127%.0%.0%.1", out)
    status, out, err = licensor_deliver("--insecure")
    assert.are.same({ 0, "delivered 1, failed 0 (dead-lettered 0), pending 0" }, { status, out })
    assert.are.equal(1, select(2, err:gsub("insecure", "")), err)                -- one line, once
    os.remove(secret)
  end)

  it("insecure: post to any of them, and say so once per run", function()
    local lines = {}
    local insecure = { insecure = true, warn = function(line) lines[#lines + 1] = line end }
    local before = #receivers.other.received()
    local store = store_with_reminder()
    stores.issue(store, { kind = "trial", edition = "professional", start = "2019-04-20" })
    assert.are.equal(1, #store:sweep("2019-05-12"))                          -- trial_ending
    local delivered = deliver(store, receivers.other.url, insecure)        -- a handler per action
    assert.are.same({ 2, before + 2 }, { delivered, #receivers.other.received() })
    assert.are.same({ tls.INSECURE_WARNING }, lines)
    store:close()
  end)
end)

describe("SMTP STARTTLS", function()
  local servers = {}
  setup(function()
    servers.good = smtpd.start{ tls = true, issued = "good" }
    servers["self-signed"] = smtpd.start{ tls = true, certificate = "self-signed" }
    servers.expired = smtpd.start{ tls = true, issued = "expired" }
    servers.other = smtpd.start{ tls = true, issued = "other" }
    servers.plain = smtpd.start{}
  end)
  teardown(function()
    for _, s in pairs(servers) do s.stop() end
    smtpd.cleanup()
  end)

  local function deliver(store, server, tls_opts, starttls)
    local opts = { host = "127.0.0.1", port = server.port, from = FROM, timeout = 5, starttls = starttls,
                   templates = assert(mail.templates()) }
    assert(delivery.install(store, { mail = opts, tls = tls_opts }))
    return store:deliver()
  end

  it("mails over a server whose certificate chains to the cafile and names the host", function()
    local store = store_with_reminder()
    local delivered = deliver(store, servers.good, { cafile = smtpd.authority().cert })
    assert.are.same({ 1, true }, { delivered, servers.good.received()[1].tls })
    store:close()
  end)

  for _, bad in ipairs(BAD) do
    it("refuses a server whose certificate is " .. bad.kind .. ", the row kept pending with its attempt counted",
       function()
      local store = store_with_reminder()
      local delivered, pending, failures = deliver(store, servers[bad.kind], { cafile = smtpd.authority().cert })
      assert.are.same({ 0, 1, 1 }, { delivered, pending, #failures })
      assert.matches("%(starttls%): TLS", failures[1].error)
      assert.matches(bad.why, failures[1].error)
      assert.are.same({ "pending 1", 0 }, { row_state(store), #servers[bad.kind].received() })
      store:close()
    end)
  end

  it("requires STARTTLS by default off the loopback address; auto only on it, or when asked", function()
    assert.are.same({ "always", "always", "auto", "auto", "auto", "auto", "never" },
      { smtp.starttls_mode{ host = "mail.vendor.example" }, smtp.starttls_mode{ host = "192.0.2.25" },
        smtp.starttls_mode{ host = "127.0.0.1" }, smtp.starttls_mode{ host = "localhost" },
        smtp.starttls_mode{ host = "::1" }, smtp.starttls_mode{ host = "mail.vendor.example", starttls = "auto" },
        smtp.starttls_mode{ host = "mail.vendor.example", starttls = "never" } })
  end)

  it("counts a server without the STARTTLS offer as a failed attempt when TLS is required, never plain text",
     function()
    local store = store_with_reminder()
    local delivered, pending, failures = deliver(store, servers.plain, { cafile = smtpd.authority().cert },
                                                 "always")
    assert.are.same({ 0, 1 }, { delivered, pending })
    assert.matches("does not offer STARTTLS", failures[1].error)
    assert.are.same({ "pending 1", 0 }, { row_state(store), #servers.plain.received() })
    store:close()
  end)

  it("insecure: mails over any of them, and says so once per run", function()
    local lines = {}
    local store = store_with_reminder()
    local delivered = deliver(store, servers.other, { insecure = true, warn = function(l) lines[#lines + 1] = l end })
    assert.are.same({ 1, true, 1 }, { delivered, servers.other.received()[1].tls, #lines })
    store:close()
  end)
end)
