-- Customer mail (README "Notifications", doc/rules.md section 6): the
-- owner's address on the license, the templates, which channel each action
-- takes, and `licensor deliver --smtp` against a real SMTP server on the
-- loopback address (python3-aiosmtpd), with STARTTLS, certificate checks
-- and AUTH.
local run = require "support.cli"
local cjson = require "cjson"
local stores = require "support.stores"
local files = require "support.files"
local smtpd = require "support.smtpd"
local address = require "licensor.mail.address"
local template = require "licensor.mail.template"
local mail = require "licensor.mail"
local delivery = require "licensor.delivery"

local unpack = table.unpack or unpack   -- luacheck: ignore unpack

local FROM = "licenses@vendor.example"

local function events_of(store, key, kind)
  local list = {}
  for _, e in ipairs(assert(store:events(key))) do
    if e.kind == kind then list[#list + 1] = e.detail end
  end
  return list
end

describe("the owner's email address", function()
  it("is checked before the store keeps it", function()
    for _, good in ipairs({ "ann@example.com", "a.b+renewals@mail.example.co.uk", "o'neil@example.ie" }) do
      assert.are.equal(good, address.check(good))
    end
    for _, bad in ipairs({ "ann", "ann@localhost", "a@@example.com", "a b@example.com", ".a@example.com",
                           "a..b@example.com", "a@-example.com", "a@example..com", "zoë@example.com",
                           "a@example.com\r\nBcc: all@example.com", "<a@example.com>",
                           string.rep("a", 65) .. "@example.com", "a@" .. string.rep("b", 64) .. ".com" }) do
      local ok, message, code = address.check(bad)
      assert.are.same({ false, "invalid_request" }, { ok ~= nil, code }, bad)
      assert.matches("^email: ", message)
    end
  end)

  it("is given at issue, refused there when malformed, and the store is left as it was", function()
    local store = stores.new(":memory:")
    local lic = stores.issue(store, { email = "it@acme.example" })
    assert.are.equal("it@acme.example", assert(store:get(lic.key)).email)
    assert.are.equal("it@acme.example", events_of(store, lic.key, "issue")[1].email)
    local before = stores.dump(store)
    local ok, message, code = store:issue{ product = "smartertrack", edition = "enterprise", level = 5,
                                           email = "it at acme" }
    assert.are.same({ nil, "invalid_request" }, { ok, code })
    assert.matches("email: one address", message)
    assert.are.same(before, stores.dump(store))
    store:close()
  end)

  it("is changed by licensor set KEY --email, each change an event, \"\" forgetting it", function()
    local store, path = stores.new()
    local key = stores.issue(store).key
    store:close()
    local status, out = run("--db", path, "--json", "set", key, "--email", "billing@acme.example")
    assert.are.same({ 0, "billing@acme.example" }, { status, cjson.decode(out).email })
    assert.are.equal(0, (run("--db", path, "set", key, "--email", "billing@acme.example")))   -- same again
    local err
    status, out, err = run("--db", path, "set", key, "--email", "billing")
    assert.are.same({ 2, "", "licensor: invalid_request: email: one address LOCAL@DOMAIN expected" },
                    { status, out, err })
    assert.are.equal(0, (run("--db", path, "set", key, "--email", "")))
    assert.are.equal(2, (run("--db", path, "set", key)))                                  -- --email needed
    store = stores.new(path)
    assert.is_nil(assert(store:get(key)).email)
    assert.are.same({ { field = "email", to = "billing@acme.example" },
                      { field = "email", from = "billing@acme.example" } }, events_of(store, key, "set"))
    assert.has_error(function() store:set(key, { owner = "initech" }) end)             -- transfer does that
    store:close()
  end)

  it("travels through export and import-licenses, and a bad one is named by line", function()
    local store = stores.new(":memory:")
    stores.issue(store, { email = "it@acme.example" })
    local exported = assert(store:export_text("csv"))
    assert.matches(",installations,email,policy,tags\r?\n", exported)
    assert.matches(",it@acme%.example,,\r?\n", exported)
    local text = "product,edition,level,start,email\n" ..
                 "smartertrack,enterprise,5,2018-06-01,ops@globex.example\n" ..
                 "smartertrack,enterprise,5,2018-06-01,ops at globex\n"
    local ok, message = store:import_licenses(text, "customers.csv")
    assert.is_nil(ok)
    assert.are.equal("customers.csv:3: email: one address LOCAL@DOMAIN expected", message)
    local keys = assert(store:import_licenses(text:gsub("\n[^\n]*ops at globex\n$", "\n"), "customers.csv"))
    assert.are.equal("ops@globex.example", assert(store:get(keys[1])).email)
    store:close()
  end)
end)

describe("mail templates", function()
  it("fill owner, key, product, days, price and the other placeholders, {{ and }} standing for braces", function()
    local t = assert(template.parse("Subject: {product} ends in {days} days\n\nDear {owner},\n" ..
                                    "{key} costs {price} on {date} ({item}, {edition}, {email}); {{key}}\n",
                                    "t.txt"))
    local subject, body = template.render(t, { product = "SmarterTrack", days = 30, owner = "Zoë",
                                                key = "K-1", price = "$10.00", date = "2019-05-31",
                                                item = "ms", edition = "enterprise", email = "z@x.example" })
    assert.are.equal("SmarterTrack ends in 30 days", subject)
    assert.are.equal("Dear Zoë,\nK-1 costs $10.00 on 2019-05-31 (ms, enterprise, z@x.example); {key}\n", body)
    subject, body = template.render(t, { product = "P\r\nBcc: all@example.com", key = "K" })
    assert.are.equal("P Bcc: all@example.com ends in  days", subject)       -- one header line, always
    -- Missing values are empty; a line with nothing but missing ones goes.
    assert.are.equal("K costs  on  (, , ); {key}\n", body)
  end)

  it("are refused whole, by file and line, for an unknown placeholder or a broken shape", function()
    local cases = {
      { "Subject: hi\n\nDear {onwer},\n", "t.txt:3: unknown placeholder {onwer}" },
      { "Subject: {price\n\nbody\n", "t.txt:1: a { without its }" },
      { "Subject: hi\n\n}\n", "t.txt:3: a } without its {" },
      { "Dear {owner}\n", "t.txt:1: the first line must be \"Subject: ...\"" },
      { "Subject: hi\nbody\n", "t.txt:2: a blank line must follow the subject" },
    }
    for _, case in ipairs(cases) do
      local t, message, code = template.parse(case[1], "t.txt")
      assert.is_nil(t)
      assert.are.equal("invalid_request", code)
      assert.are.equal(case[2], message:sub(1, #case[2]))
    end
  end)

  it("are bundled for every customer action, and a directory's files replace them one by one", function()
    local bundled = assert(mail.templates(nil))
    for _, action in ipairs(mail.ACTIONS) do
      local subject, body = template.render(bundled[action], { key = "KEY-1", owner = "Ann",
                                                               link = "https://portal.example/LINK" })
      -- A sign-in mail carries its link; the others name the license.
      local what = action == "portal_signin" and "https://portal.example/LINK" or "KEY-1"
      assert.is_true(#subject > 10 and body:find(what, 1, true) ~= nil and body:find("Dear Ann") == 1,
                     action)
    end
    local dir = files.temp_dir()
    files.write(dir .. "/trial_ending.txt", "Subject: trial {key}\n\nbye\n")
    local list = assert(mail.templates(dir))
    assert.are.equal("trial K", (template.render(list.trial_ending, { key = "K" })))
    assert.are.equal(bundled.ms_expiring.name, list.ms_expiring.name)
    files.write(dir .. "/ms_lapsed.txt", "Subject: lapsed\n\n{renewal_price}\n")
    local ok, message = mail.templates(dir)
    assert.is_nil(ok)
    assert.are.equal(dir .. "/ms_lapsed.txt:3: unknown placeholder {renewal_price}", message:match("^[^(]*"):gsub(" $", ""))
    files.remove_dir(dir)
  end)
end)

describe("mail messages", function()
  it("carry a non-ASCII subject as RFC 2047 words of at most 75 characters, never splitting a character", function()
    local subject = string.rep("Zoë Müller — ", 8)
    local text = mail.message(FROM, "zoe@acme.example", subject, "body\n", 7)
    local header = text:match("\r\nSubject: (.-)\r\n%S")
    local decoded = {}
    for word in header:gmatch("[^\r\n ]+") do
      assert.is_true(#word <= 75, word)
      local b64 = assert(word:match("^=%?UTF%-8%?B%?(.+)%?=$"), word)
      decoded[#decoded + 1] = require("mime").unb64(b64)
      assert.is_nil(decoded[#decoded]:find("^[\128-\191]"))          -- no word starts mid-character
    end
    assert.is_true(#decoded > 1)
    assert.are.equal(subject, table.concat(decoded))
    assert.matches("\r\nMessage%-ID: <lsr_7@vendor%.example>\r\n", text)
    assert.matches("\r\n\r\nbody$", text)                             -- DATA's terminator ends the line
  end)
end)

describe("mail input from outside", function()
  -- Deterministic, so that a failure can be replayed.
  local seed = 2026
  local function random(n)
    seed = seed * 48271 % 2147483647
    return seed % n + 1
  end
  local PIECES = { "a", "Z", "0", "@", ".", "-", "{", "}", "{{", "}}", "{owner}", "{key}", "\n", "\r\n", " ",
                   "Subject:", "Subject: x\n\n", "\0", "\255", "é", "\xe2\x80\xae", string.rep("x", 70) }
  local function garbage()
    local parts = {}
    for i = 1, random(12) do parts[i] = PIECES[random(#PIECES)] end
    return table.concat(parts)
  end

  it("address checks and templates answer 20,000 garbage strings with a value or a message, never an error",
     function()
    local bad = {}
    for _ = 1, 10000 do
      local text = garbage()
      local ok, value, message, code = pcall(address.check, text)
      if not ok or not (value == text or (value == nil and code == "invalid_request" and message:find("^email: ")))
      then
        bad[#bad + 1] = ("address %q: %s"):format(text, tostring(value))
      end
      ok, value, message, code = pcall(template.parse, text, "t.txt")
      if ok and value then ok = pcall(template.render, value, { owner = text, key = "K" }) end
      if not ok or not (value or (code == "invalid_request" and message:find("^t%.txt:%d+: "))) then
        bad[#bad + 1] = ("template %q: %s"):format(text, tostring(value))
      end
    end
    assert.are.same({}, bad)
  end)
end)

describe("delivery routes", function()
  it("send customer actions by mail, the rest to the catch-all webhook, a named action where named", function()
    local plan = assert(delivery.routes{ smtp = true, portal = true,
                                         webhooks = { "https://crm.example/all",
                                                      "ms_lapsed=https://crm.example/lapsed" } })
    assert.are.same({
      email_customer = "mail", ms_expiring = "mail", trial_ending = "mail", lease_ending = "mail",
      addon_expiring = "mail", ms_lapsed = "https://crm.example/lapsed",
      notify_fraud_team = "https://crm.example/all", phone_customer = "https://crm.example/all",
      disable_key = "https://crm.example/all", portal_signin = "mail",
      notify_reseller = "https://crm.example/all" }, plan)
    assert.are.same({ email_customer = "mail", ms_expiring = "mail", ms_lapsed = "mail", trial_ending = "mail",
                      lease_ending = "mail", addon_expiring = "mail", portal_signin = "mail" },
                    delivery.routes{ smtp = true, portal = true })
    -- Without the portal's address and link secret, sign-in mail is not
    -- routed: it waits, untried.
    assert.is_nil(assert(delivery.routes{ smtp = true }).portal_signin)
    -- A sign-in link goes by mail or not at all: never to "every action"'s webhook.
    assert.is_nil(assert(delivery.routes{ webhooks = { "https://crm.example/all" } }).portal_signin)
    local refused, private = delivery.routes{ smtp = true, webhooks = { "portal_signin=https://crm.example/x" } }
    assert.is_nil(refused)
    assert.matches("portal_signin is never sent to a webhook", private, 1, true)
    local none, why = delivery.routes{ webhooks = { "ms_expring=https://crm.example/x" } }
    assert.is_nil(none)
    assert.matches("no outbox action 'ms_expring'", why)
  end)
end)

describe("licensor.actions", function()
  local actions = require "licensor.actions"

  it("names every action the C ladder and the reminders write, and which are the customer's", function()
    local cat = assert(require("licensor.core").catalogue(require("support.fixtures").catalogue_table()))
    local steps = cat:ladder({ since = "2019-01-01" }, "2020-01-01")                      -- the first steps
    for _, later in ipairs(cat:ladder({ since = "2019-01-01", first_step = "2019-01-01" }, "2020-01-01")) do
      steps[#steps + 1] = later
    end
    assert.are.same(actions.LADDER, steps)                                 -- csrc/l_fraud.c's names, in order
    assert.are.same({ "ms_expiring", "ms_lapsed", "trial_ending", "lease_ending", "addon_expiring" },
                    actions.REMINDERS)
    assert.are.same({ ms = { before = "ms_expiring", after = "ms_lapsed" }, trial = { before = "trial_ending" },
                      lease = { before = "lease_ending" }, addon = { before = "addon_expiring" } },
                    actions.reminder)                                      -- what store/reminders.lua writes
    assert.are.same({ "portal_signin" }, actions.PORTAL)                    -- what store/portal.lua writes
    local all = {}
    for _, name in ipairs(actions.LADDER) do all[#all + 1] = name end
    for _, name in ipairs(actions.REMINDERS) do all[#all + 1] = name end
    for _, name in ipairs(actions.PORTAL) do all[#all + 1] = name end
    for _, name in ipairs(actions.POLICY) do all[#all + 1] = name end      -- a ladder hook's steps
    assert.are.same(actions.LIST, all)
    local hookable = {}
    for _, name in ipairs(actions.LIST) do
      if name ~= "portal_signin" then hookable[#hookable + 1] = name end
    end
    assert.are.same(hookable, actions.WEBHOOK)                             -- a sign-in link never leaves by webhook
    assert.are.same(actions.CUSTOMER, mail.ACTIONS)
    for _, name in ipairs(actions.CUSTOMER) do
      assert.is_string(require("licensor.mail.bundled")[name], name)
    end
    local store = stores.new(":memory:")
    local ok, why = pcall(store.on, store, "ms_expring", function() return true end)
    assert.is_false(ok)
    assert.matches(actions.names(), why, 1, true)
    store:close()
  end)

  it("is all licensor.delivery needs: it plans routes loaded alone, before any store", function()
    local probe = os.tmpname()
    local code = "local plan = assert(require('licensor.delivery').routes{ smtp = true, " ..
                 "webhooks = { 'https://crm.example/' } }) " ..
                 "io.write(plan.disable_key, ' ', plan.ms_lapsed)"
    local ok = os.execute(("LUA_PATH=%q LUA_CPATH=%q %s -e %q > %s 2>&1"):format(package.path, package.cpath,
                          stores.interpreter(), code, probe))
    local f = assert(io.open(probe))
    local out = f:read("*a")
    f:close()
    os.remove(probe)
    assert.are.same({ true, "https://crm.example/ mail" }, { ok == true or ok == 0, out })
  end)
end)

-- deliver --smtp to server with the test authority, plus args.
local function deliver(path, server, ...)
  return run("--db", path, "deliver", "--smtp", server.address, "--mail-from", FROM,
             "--smtp-cafile", smtpd.certificate().cert, "--backoff-ms", "0", "--max-tries", "3", ...)
end

-- A store whose catalogue prices M&S renewals (20 % of the license).
local function priced_store()
  local store, path = stores.new()
  local t = require("support.fixtures").catalogue_table()
  t.policy = { ms_percent = 20 }
  assert(store:import(t))
  return store, path
end

-- A store whose sweep on 2019-05-01 writes one ms_expiring for `email`.
local function one_reminder(email, owner)
  local store, path = priced_store()
  local key = stores.issue(store, { email = email, owner = owner }).key
  assert.are.equal(1, #store:sweep("2019-05-01"))
  return store, path, key
end

local function outbox_row(store, id)
  return store:outbox{ state = "all" }[id]
end

describe("licensor deliver --smtp", function()
  local tls_server
  setup(function() tls_server = smtpd.start{ tls = true } end)
  teardown(function()
    tls_server.stop()
    smtpd.cleanup()
  end)
  before_each(function() os.remove(tls_server.log) end)

  it("mails every customer action to the license's address over STARTTLS, from the templates", function()
    local store, path = priced_store()
    local zoe = stores.issue(store, { owner = "Zoë Müller", email = "zoe@acme.example", addons = { "eas" } })
    stores.issue(store, { kind = "trial", edition = "professional", start = "2019-04-20",
                                        email = "trial@acme.example" })
    local lease = stores.issue(store, { kind = "lease", start = "2019-01-01", email = "lease@acme.example" })
    assert(store:end_lease(lease.key, "2019-06-01"))
    -- On two servers: the ladder emails its customer on 2019-01-04 (R11).
    local fraud = stores.two_servers(store, "2019-01-04", { email = "fraud@acme.example", owner = "Two Servers Ltd" })
    for _, day in ipairs({ "2019-01-04", "2019-05-01", "2019-05-12", "2019-06-01" }) do assert(store:sweep(day)) end
    store:close()
    local status, out = deliver(path, tls_server)
    -- 8 mails: ms_expiring, addon_expiring, ms_lapsed (Zoë), trial_ending,
    -- lease_ending, and email_customer, ms_expiring, ms_lapsed for the key
    -- on two servers; notify_fraud_team has no channel.
    assert.are.same({ 0, "delivered 8, failed 0 (dead-lettered 0), pending 1" }, { status, out })
    local got = tls_server.received()
    local subjects = {}
    for _, m in ipairs(got) do
      assert.is_true(m.tls, "sent without TLS")
      assert.are.equal(FROM, m.mail_from)
      assert.are.equal(m.rcpt_tos[1], m.headers.To)
      assert.matches("^<lsr_%d+@vendor%.example>$", m.headers["Message-ID"])
      subjects[#subjects + 1] = m.rcpt_tos[1] .. " " .. m.headers.Subject
    end
    table.sort(subjects)
    assert.are.same({
      "fraud@acme.example Maintenance & Support for SmarterTrack ended on 2019-05-31",
      "fraud@acme.example Maintenance & Support for SmarterTrack ends on 2019-05-31",
      "fraud@acme.example SmarterTrack license " .. fraud.key .. " is in use on more servers than it allows",
      "lease@acme.example Your SmarterTrack lease ends on 2019-05-31",
      "trial@acme.example Your SmarterTrack trial ends on 2019-05-19",
      "zoe@acme.example Maintenance & Support for SmarterTrack ended on 2019-05-31",
      "zoe@acme.example Maintenance & Support for SmarterTrack ends on 2019-05-31",
      "zoe@acme.example The eas add-on for SmarterTrack ends on 2019-05-31",
    }, subjects)
    local expiring
    for _, m in ipairs(got) do
      if m.rcpt_tos[1] == "zoe@acme.example" and m.headers.Subject:find("^Maint.* ends on") then expiring = m end
    end
    assert.matches("^Dear Zoë Müller,\r?\n", expiring.body)
    assert.matches("license " .. zoe.key:gsub("%-", "%%-") .. " ends on 2019%-05%-31,%s+in 30 days%.", expiring.body)
    assert.matches("\nRenewal price: %$[%d,]+%.%d%d\r?\n", expiring.body)
    assert.matches("Content%-Transfer%-Encoding: quoted%-printable", expiring.raw)
    assert.matches("Zo=C3=AB M=C3=BCller", expiring.raw)                   -- 7-bit on the wire
    -- a message of plain ASCII goes as written, its lines whole
    for _, m in ipairs(got) do
      if m.rcpt_tos[1] == "lease@acme.example" then
        assert.matches("Content%-Transfer%-Encoding: 7bit", m.raw)
        assert.is_nil(m.raw:find("=\r\n", 1, true))
      end
    end
    assert.are.equal(0, (deliver(path, tls_server)))
    assert.are.equal(8, #tls_server.received())                            -- never twice
  end)

  it("says the days actually left: a late reminder on 2026-12-01 for 2026-12-19 says \"in 18 days\"", function()
    local store = priced_store()
    local lic = stores.issue(store, { email = "late@acme.example", start = "2025-12-20" })
    assert.are.equal(1, #store:sweep("2026-12-01"))                        -- 30 days before was 11-19
    assert(delivery.install(store, { mail = { host = "127.0.0.1", port = tls_server.port, from = FROM,
                                              timeout = 5, templates = assert(mail.templates()) },
                                     tls = { cafile = smtpd.certificate().cert } }))
    assert.are.equal(1, (store:deliver()))
    local m = tls_server.received()[1]
    assert.matches("license " .. lic.key:gsub("%-", "%%-") .. " ends on 2026%-12%-19,%s+in 18 days%.", m.body)
    store:close()
  end)

  it("has a handler that answers true, or nil, why, \"retry\" or \"undeliverable\", never raising", function()
    local store = priced_store()
    local ann = stores.issue(store, { email = "ann@acme.example" }).key
    local nobody = stores.issue(store).key
    local opts = { host = "127.0.0.1", port = tls_server.port, from = FROM, timeout = 5,
                   templates = assert(mail.templates()), tls = { cafile = smtpd.certificate().cert } }
    local handler = mail.handler(store, opts)
    local function action(key) return { id = 9, key = key, action = "ms_expiring", on = "2019-05-01",
                                        refers_to = "2019-05-31", detail = { days = 30 } } end
    assert.are.same({ true }, { handler(action(ann)) })
    local answers = {}
    for _, case in ipairs({ { handler, "NOSUCH-KEY" }, { handler, nobody },
                            { mail.handler(store, { host = "127.0.0.1", port = 1, from = FROM, timeout = 1,
                                                    templates = opts.templates }), ann } }) do
      local ok, why, code = case[1](action(case[2]))
      answers[#answers + 1] = { ok, type(why), code }
    end
    assert.are.same({ { nil, "string", "retry" }, { nil, "string", "undeliverable" }, { nil, "string", "retry" } },
                    answers)
    store:close()
  end)

  it("sends nothing when the server's certificate is not from the trusted authority", function()
    local untrusted = smtpd.start{ tls = true, certificate = "other" }
    local store, path = one_reminder("ann@acme.example")
    local status, out = deliver(path, untrusted)
    assert.are.equal(1, status)                                             -- a row failed
    assert.matches("failed #1 ms_expiring: SMTP 127%.0%.0%.1:%d+ %(starttls%): TLS handshake", out)
    assert.matches("pending 1", out)
    assert.are.same({ 0, 1 }, { #untrusted.received(), outbox_row(store, 1).attempts })
    untrusted.stop()
    store:close()
  end)

  it("--starttls always refuses a server that does not offer it; auto sends there in plain text", function()
    local plain = smtpd.start{}
    local store, path = one_reminder("ann@acme.example")
    local _, out = deliver(path, plain, "--starttls", "always")
    assert.matches("does not offer STARTTLS", out)
    assert.are.equal(0, #plain.received())
    local status
    status, out = deliver(path, plain, "--smtp", "[127.0.0.1]:" .. plain.port)    -- (the bracket form too)
    assert.are.same({ 0, "delivered 1, failed 0 (dead-lettered 0), pending 0", false },
                    { status, out, plain.received()[1].tls })
    plain.stop()
    store:close()
  end)

  it("authenticates over TLS only, and a wrong password is a failure tried again", function()
    local auth = smtpd.start{ tls = true, require_tls = true, auth = "mailer:pa55word" }
    local plain = smtpd.start{}
    local password, wrong = os.tmpname(), os.tmpname()
    files.write(password, "pa55word\n")
    files.write(wrong, "guess\n")
    local store, path = one_reminder("ann@acme.example")
    local _, out = deliver(path, plain, "--smtp-user", "mailer", "--smtp-password-file", password)
    assert.matches("refusing to send the SMTP password over an unencrypted connection", out)
    assert.are.equal(0, #plain.received())
    _, out = deliver(path, auth, "--smtp-user", "mailer", "--smtp-password-file", wrong)
    assert.matches("%(auth%): 535", out)
    assert.matches("dead%-lettered 0%), pending 1", out)
    _, out = deliver(path, auth, "--smtp-user", "mailer", "--smtp-password-file", password)
    assert.matches("delivered 1", out)
    assert.are.same({ "mailer", true }, { auth.received()[1].auth, auth.received()[1].tls })
    assert.are.equal(2, (deliver(path, auth, "--smtp-user", "mailer")))    -- the password file too
    auth.stop()
    plain.stop()
    os.remove(password)
    os.remove(wrong)
    store:close()
  end)

  it("dead-letters at once a license without an address or a recipient refused for good; "
     .. "retries one refused for now", function()
    local store, path = stores.new()
    local keys = { nobody = stores.issue(store).key, refuse = stores.issue(store, { email = "refuse@acme.example" }).key,
                   later = stores.issue(store, { email = "later@acme.example" }).key }
    assert.are.equal(3, #store:sweep("2019-05-01"))
    local _, out = deliver(path, tls_server)
    assert.matches("failed #%d+ ms_expiring: license " .. keys.nobody:gsub("%-", "%%-") .. " has no email address", out)
    assert.matches("failed #%d+ ms_expiring: SMTP [^\n]*%(rcpt%): 550", out)
    assert.matches("failed #%d+ ms_expiring: SMTP [^\n]*%(rcpt%): 451", out)
    assert.matches("failed 3 %(dead%-lettered 2%), pending 1", out)
    local state = {}
    for _, r in ipairs(store:outbox{ state = "all" }) do
      state[r.key] = (r.dead and "dead " or "pending ") .. r.attempts
    end
    assert.are.same({ [keys.nobody] = "dead 1", [keys.refuse] = "dead 1", [keys.later] = "pending 1" }, state)
    assert.are.equal(0, (run("--db", path, "set", keys.nobody, "--email", "found@acme.example")))
    local dead_id
    for _, r in ipairs(store:outbox{ state = "dead" }) do if r.key == keys.nobody then dead_id = r.id end end
    assert.are.equal(0, (run("--db", path, "outbox", "retry", tostring(dead_id))))
    _, out = deliver(path, tls_server)
    assert.matches("delivered 1, failed 1 %(dead%-lettered 0%)", out)
    assert.are.same({ "found@acme.example" }, tls_server.received()[1].rcpt_tos)
    store:close()
  end)

  it("takes the --templates directory's files, and a bad one stops it before anything is sent", function()
    local store, path = one_reminder("zoe@acme.example", "Zoë Müller, Zürich")
    local dir = files.temp_dir()
    local status, out = run("templates", "--out", dir)
    assert.are.equal(0, status)
    assert.are.equal(#mail.ACTIONS, select(2, out:gsub("%.txt", "")))
    files.write(dir .. "/ms_expiring.txt", "Subject: {owner}: {days} days left for {key}\n\nRenew for {price}.\n")
    assert.matches("every template is already in", select(2, run("templates", "--out", dir)))
    files.write(dir .. "/trial_ending.txt", "Subject: trial\n\nDear {ownr}\n")
    local err
    status, out, err = deliver(path, tls_server, "--templates", dir)
    assert.are.same({ 2, "" }, { status, out })
    assert.matches(dir:gsub("%p", "%%%0") .. "/trial_ending.txt:3: unknown placeholder {ownr}", err)
    assert.are.same({ 0, 0 }, { #tls_server.received(), outbox_row(store, 1).attempts })
    os.remove(dir .. "/trial_ending.txt")
    status, out = deliver(path, tls_server, "--templates", dir)
    assert.are.same({ 0, "delivered 1, failed 0 (dead-lettered 0), pending 0" }, { status, out })
    local m = tls_server.received()[1]
    assert.matches("^Zoë Müller, Zürich: 30 days left for %w+%-", m.headers.Subject)
    assert.matches("^Renew for %$[%d,]+%.%d%d%.\r?\n$", m.body)
    files.remove_dir(dir)
    store:close()
  end)

  it("is refused as bad usage without --mail-from, with a malformed one, or with a bad --starttls", function()
    local _, path = one_reminder("ann@acme.example")
    local cases = {
      { "deliver", "--smtp", tls_server.address },
      { "deliver", "--smtp", tls_server.address, "--mail-from", "vendor" },
      { "deliver", "--smtp", tls_server.address, "--mail-from", FROM, "--starttls", "maybe" },
      { "deliver", "--smtp", tls_server.address, "--mail-from", FROM, "--webhook", "ms_expring=http://x/" },
      { "deliver" },
    }
    for _, args in ipairs(cases) do
      local status = run("--db", path, unpack(args))
      assert.are.equal(2, status, table.concat(args, " "))
    end
    assert.are.equal(0, #tls_server.received())
  end)
end)
