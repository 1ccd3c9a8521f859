-- The customer portal in a real browser (headless chromium over WebDriver,
-- spec/support/browser.lua): the FAQ's example walked as a customer walks
-- it.  A license of SmarterTrack Enterprise 5 agents whose M&S expired on
-- December 6, 2018, for it@acme.example; the customer asks for a sign-in
-- link, `licensor deliver` mails it through a real SMTP server on
-- loopback, and the link is read from the received message.  Then: the
-- licenses page, the license's dialog (Build 6911, released December 3,
-- 2018), the linux-x64 download through its button (sha256 checked
-- against the catalogue), a lost server deactivated, an offline request
-- uploaded and its certificate verified, sign-out and the old cookie
-- refused; and a page elsewhere whose forms the customer presses changes
-- nothing (nor signs the browser out).  axe-core runs on every page the
-- browser shows: no serious or critical violation.
--
-- With LICENSOR_SCREENSHOTS=DIR (make screenshots) the walk also writes
-- DIR/portal-licenses.png and DIR/portal-license.png: each page at a
-- desktop and a phone width, side by side.
--
-- The gateway's day is pinned (TODAY); the certificate is verified at a
-- time of that day.  Nothing depends on the hour or zone it runs at.
local licensor = require "licensor"
local socket = require "socket"
local core = require "licensor.core"
local certificate = require "licensor.certificate"
local browser = require "support.browser"
local gateway = require "support.gateway"
local smtpd = require "support.smtpd"
local files = require "support.files"
local run = require "support.cli"

local TODAY = "2019-06-01"
local EMAIL = "it@acme.example"
local FROM = "licenses@vendor.example"
local SHOTS = os.getenv("LICENSOR_SCREENSHOTS")
local DESKTOP, PHONE = { 1280, 800 }, { 390, 844 }

-- A machine fingerprint of the form `licensor fingerprint` prints.
local function machine(n)
  local function part(c) return string.rep(string.format("%02x%02x", n, c), 4) end
  return "v1:mid=" .. part(1) .. ",uuid=" .. part(3) .. ",mac=" .. part(5) .. ",disk=" .. part(7) ..
    ",host=" .. part(9)
end

local function hex(bytes)
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- The body of a raw message, as its Content-Transfer-Encoding says.
local function mail_body(raw)
  local head, body = raw:match("^(.-)\r?\n\r?\n(.*)$")
  local encoding = (head:match("\n[Cc]ontent%-[Tt]ransfer%-[Ee]ncoding:%s*([%w%-]+)") or "7bit"):lower()
  if encoding == "quoted-printable" then
    body = body:gsub("=\r?\n", ""):gsub("=(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  elseif encoding == "base64" then
    body = browser.unbase64(body)
  end
  return body, encoding
end

describe("the portal in a browser: the FAQ's example", function()
  local w = {}
  local b
  local audits = {}   -- page -> {serious = n, all = n}

  -- axe-core on the page the browser shows now: no serious or critical
  -- violation.  And what only a browser sees: nothing in its console (a
  -- resource that failed, something the CSP blocked), no script, and the
  -- stylesheet applied (the CSP lets it in).
  local function audit(name)
    local serious, counts = b:axe()
    audits[#audits + 1] = { page = name, url = b:url(), violations = counts.violations, passes = counts.passes }
    local words = {}
    for _, v in ipairs(serious) do
      words[#words + 1] = v.impact .. " " .. v.id .. " (" .. v.help .. "): " .. table.concat(v.nodes, " | ")
    end
    assert.are.same({}, words, name .. ": " .. table.concat(words, "\n"))
    local console = {}
    for _, c in ipairs(b:console()) do console[#console + 1] = c.level .. " " .. c.message end
    assert.are.same({}, console, name .. ": the console")
    assert.are.equal(0, b:execute("return document.scripts.length"), name .. ": scripts")
    assert.is_true(b:execute("var s = document.styleSheets; return s.length === 1 && s[0].cssRules.length > 0 " ..
                             "&& getComputedStyle(document.body).margin !== ''"), name .. ": the stylesheet")
  end

  -- The page at a phone's width: nothing wider than the screen (no
  -- sideways scrolling), and axe-core again (the layout is another one).
  local function on_phone(name)
    b:viewport(PHONE[1], PHONE[2])
    local width = b:execute("var e = document.documentElement; return [e.scrollWidth, e.clientWidth]")
    assert.is_true(width[1] <= width[2], ("%s: %d px wide on a %d px screen"):format(name, width[1], width[2]))
    audit(name .. " (phone)")
    b:viewport(DESKTOP[1], DESKTOP[2])
  end

  -- The page at the desktop and the phone width, side by side in one PNG
  -- (make screenshots).
  local function picture(name)
    if not SHOTS then return end
    -- The pieces go in the world's directory, removed in teardown.
    local scratch = w.dir .. "/" .. name
    assert(os.execute("mkdir " .. scratch))
    local desktop, phone, sheet = scratch .. "/desktop.png", scratch .. "/phone.png", scratch .. "/sheet.html"
    b:viewport(DESKTOP[1], DESKTOP[2])
    b:screenshot(desktop, true)
    b:viewport(PHONE[1], PHONE[2])
    b:screenshot(phone, true)
    local back = b:url()
    files.write(sheet, table.concat({
      "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>", name, "</title><style>",
      "body{margin:0;padding:24px;background:#e9ecef;display:flex;gap:32px;align-items:flex-start}",
      "figure{margin:0}img{display:block;border:1px solid #adb5bd;background:#fff}.crop{overflow:hidden}",
      "figcaption{font:14px sans-serif;color:#343a40;margin-bottom:8px}</style></head><body>",
      "<figure><figcaption>Desktop, ", DESKTOP[1], " px</figcaption><img alt='' src='file://", desktop, "'></figure>",
      "<figure><figcaption>Phone, ", PHONE[1], " px</figcaption><div id='phone' class='crop'>",
      "<img alt='' src='file://", phone, "'></div></figure></body></html>" }))
    b:viewport(DESKTOP[1] + PHONE[1] + 3 * 32, 600)
    b:go("file://" .. sheet)
    -- The phone's page is cut at the desktop's height: a long page is
    -- three times as tall on a phone.
    local loaded = b:execute_async("var done = arguments[0]; Promise.all(Array.from(document.images, function (i) {" ..
      " return i.decode(); })).then(function () { var crop = document.getElementById('phone');" ..
      " crop.style.height = Math.min(crop.firstChild.naturalHeight, document.images[0].naturalHeight) + 'px';" ..
      " done(true); }, function (e) { done(String(e)); });")
    assert.are.equal(true, loaded)
    b:screenshot(SHOTS .. "/" .. name .. ".png", true)
    b:viewport(DESKTOP[1], DESKTOP[2])
    b:go(back)
  end

  -- Signs in as a customer does: the form, the mail (licensor deliver
  -- over SMTP), the link, the button -> the session cookie.
  local function sign_in()
    b:go(w.server.url .. "/portal/")
    assert.are.equal("Sign in", b:text("h1"))
    audit("sign-in form")
    b:type("#email", EMAIL)
    b:follow("form button[type=submit]")
    assert.are.equal("Check your mail", b:text("main h1"))
    audit("check your mail")

    -- The portal writes the sign-in after its answer (the answer's timing
    -- says nothing): wait for the row before the deliverer runs.
    for _ = 1, 100 do
      local pending = false
      for _, row in ipairs(assert(w.store:outbox{})) do
        if row.action == "portal_signin" then pending = true end
      end
      if pending then break end
      socket.sleep(0.05)
    end
    -- The deliverer mails the link over SMTP (loopback, no STARTTLS).
    os.remove(w.smtp.log)
    local status, out, err = run("--db", w.db, "deliver", "--smtp", w.smtp.address, "--starttls", "never",
                                 "--mail-from", FROM, "--portal-url", w.server.url, "--link-secret",
                                 w.secret_file, "--backoff-ms", "0")
    assert.are.same({ 0, "delivered 1, failed 0 (dead-lettered 0), pending 0" }, { status, out }, err)
    local mails = w.smtp.received()
    assert.are.equal(1, #mails)
    assert.are.same({ EMAIL }, mails[1].rcpt_tos)
    local body, encoding = mail_body(mails[1].raw)
    assert.are.equal("7bit", encoding)   -- plain ASCII: the link is one line, as written
    local link = body:match("(http://127%.0%.0%.1:%d+/portal/signin%?token=[%x.]+)")
    assert.is_string(link, body)
    assert.truthy(mails[1].body:find(link, 1, true), "the decoded link is the one the message says")

    -- The link opens a page with a button: only pressing it signs in.
    b:go(link)
    assert.are.equal("Sign in", b:text("main h1"))
    assert.is_nil(b:cookie("licensor_session"))
    audit("sign-in link")
    b:follow("main form button[type=submit]")
    assert.are.equal(w.server.url .. "/portal/licenses", b:url())
    local session = assert(b:cookie("licensor_session"))
    assert.is_true(session.httpOnly)
    assert.are.same({ "Strict", "/portal" }, { session.sameSite, session.path })
    assert.are.equal("", b:execute("return document.cookie"))
    return session
  end

  setup(function()
    local ok, why = browser.available()
    assert(ok, why)
    w.dir = files.temp_dir()
    w.db = w.dir .. "/licensor.db"
    w.store = assert(licensor.open(w.db))
    assert(w.store:import("lua/licensor/catalogues/smartertools.lua"))
    -- The FAQ's license: bought 2017-12-07, a year of M&S to 2018-12-06.
    w.lic = assert(w.store:issue({ product = "smartertrack", edition = "enterprise", level = 5,
                                   start = "2017-12-07", owner = "Acme Support Ltd", email = EMAIL },
                                 "2017-12-07"))
    w.secret_file = w.dir .. "/link.secret"
    files.write(w.secret_file, core.random_hex(32) .. "\n")
    w.key_file = w.dir .. "/signing.key"
    w.public = assert(certificate.new_key_files(w.key_file))
    w.artifacts = w.dir .. "/artifacts"
    require("licensor.demo").write_artifacts(w.artifacts)
    w.smtp = smtpd.start{}
    w.server = gateway.start{ db = w.db, today = TODAY, link_secret_file = w.secret_file,
                              artifacts = w.artifacts, signing_key_file = w.key_file }
    b = browser.start{ width = DESKTOP[1], height = DESKTOP[2] }
  end)

  teardown(function()
    browser.stop_all()
    gateway.stop_all()
    if w.smtp then w.smtp.stop() end
    if w.store then w.store:close() end
    if w.dir then files.remove_dir(w.dir) end
    if #audits > 0 and os.getenv("LICENSOR_AXE_REPORT") then
      for _, a in ipairs(audits) do
        io.stderr:write(("axe-core %-40s %2d violations (none serious or critical), %2d rules passed\n")
          :format(a.page, a.violations, a.passes))
      end
    end
  end)

  it("walks sign-in, the licenses, the license, a download, a deactivation, an offline activation "
     .. "and sign-out", function()
    -- A server of the license, activated on its build beforehand: the
    -- lost machine the customer will deactivate.
    local status, out, err = run("--db", w.db, "activate", w.lic.key, "helpdesk-old", "6911", "--on", TODAY)
    assert.are.equal(0, status, out .. err)

    local session = sign_in()

    -- The licenses page: one row, the FAQ's words.
    assert.are.equal("Your licenses", b:text("main h1"))
    local rows = b:find_all("table tbody tr")
    assert.are.equal(1, #rows)
    local row = b:text(rows[1])
    assert.truthy(row:find(w.lic.key, 1, true), row)
    assert.truthy(row:find("SmarterTrack", 1, true), row)
    assert.truthy(row:find("Enterprise", 1, true), row)
    assert.truthy(row:find("5 agents", 1, true), row)
    assert.truthy(row:find("expired on December 6, 2018", 1, true), row)
    assert.truthy(row:find("Build 6911", 1, true), row)
    assert.truthy(row:find("released December 3, 2018", 1, true), row)
    audit("licenses")
    on_phone("licenses")
    picture("portal-licenses")

    -- The license's dialog.
    b:follow("table tbody tr a")
    assert.are.equal(w.server.url .. "/portal/licenses/" .. w.lic.key, b:url())
    local dialog = b:text("article.dialog")
    assert.truthy(dialog:find("You may install Build 6911 (released December 3, 2018)", 1, true), dialog)
    assert.truthy(dialog:find("M&S expired on December 6, 2018", 1, true), dialog)
    assert.truthy(dialog:find("December 6, 2018", 1, true), dialog)
    assert.truthy(dialog:find("helpdesk-old", 1, true), dialog)
    audit("license")
    on_phone("license")
    picture("portal-license")

    -- The linux-x64 download through its button: the catalogue's file.
    local lic, cat = w.store:license(w.lic.key)
    local build = assert(cat:eligible(lic, TODAY))
    assert.are.equal(6911, build.number)
    local file
    for _, d in ipairs(build.downloads) do
      if d.platform == "linux-x64" then file = d end
    end
    assert.is_table(file)
    local button = b:find("a.download[href*='platform=linux-x64']")
    assert.truthy(b:text(button):find("Download Build 6911 for", 1, true))
    b:click(button)
    local path = b:wait_download(file.name or file.file:match("[^/]+$"), 20)
    local got = assert(files.read(path))
    assert.are.same({ file.sha256, file.size }, { hex(core.sha256(got)), #got })
    assert.are.equal(w.server.url .. "/portal/licenses/" .. w.lic.key, b:url())
    local events = 0
    for _, e in ipairs(w.store:events(w.lic.key)) do
      if e.kind == "download" then
        events = events + 1
        assert.are.same({ 6911, "linux-x64", "portal" }, { e.detail.build, e.detail.platform, e.detail.via })
      end
    end
    assert.are.equal(1, events)

    -- The lost server, deactivated from its row.
    b:follow("form[action$='/deactivate'] button")
    assert.truthy(b:text("p.notice"):find("Server helpdesk-old is deactivated: its slot is free.", 1, true))
    audit("license after deactivating")
    local self_deactivated = 0
    for _, e in ipairs(w.store:events(w.lic.key)) do
      if e.kind == "self_deactivated" then
        self_deactivated = self_deactivated + 1
        assert.are.same({ "helpdesk-old", EMAIL }, { e.detail.server, e.detail.by })
      end
    end
    assert.are.equal(1, self_deactivated)

    -- The offline round trip: a request file from `licensor request`,
    -- uploaded; the certificate comes back as a download and verifies.
    local fingerprint = machine(7)
    local request = w.dir .. "/airgap.request"
    status, out, err = run("--db", w.db, "request", w.lic.key, "airgap-1", "6911", "--fingerprint", fingerprint,
                           "--out", request)
    assert.are.equal(0, status, out .. err)
    b:type("#request", request)
    b:click("form[action$='/activate'] button[type=submit]")
    local cert_path = b:wait_download("airgap-1.cert", 20)
    local cert = assert(files.read(cert_path))
    -- As the product checks it, at a time of the gateway's day (`licensor
    -- verify` reads the clock; this is the same check, pinned).
    local state = w.dir .. "/product.state"
    local verdict = licensor.verify(cert, { public_keys = { w.public }, product = "smartertrack",
                                            fingerprint = fingerprint, state = state, new_state = true,
                                            now = core.day(TODAY) * 86400 + 3600 })
    assert.are.equal("valid", verdict.verdict)
    local c = verdict.certificate
    assert.are.same({ w.lic.key, "airgap-1", "smartertrack", "enterprise", "5", "2018-12-06" },
                    { c.license, c.server, c.product, c.edition, tostring(c.level), c.ms_expires })
    -- The license's page shows the new server (opened again: the page
    -- shown is the deactivation's answer, which a reload would post again).
    b:go(w.server.url .. "/portal/licenses/" .. w.lic.key)
    assert.truthy(b:text("article.dialog"):find("airgap-1", 1, true))
    audit("license after the offline activation")

    -- Sign-out ends the session: the old cookie, set back by hand, is
    -- refused (the sign-in page, the cookie cleared).
    local old = session.value
    b:follow("nav form button[type=submit]")
    assert.are.equal(w.server.url .. "/portal/", b:url())
    assert.is_nil(b:cookie("licensor_session"))
    audit("signed out")
    b:add_cookie{ name = "licensor_session", value = old, path = "/portal", httpOnly = true, sameSite = "Strict" }
    b:go(w.server.url .. "/portal/licenses")
    assert.are.equal(w.server.url .. "/portal/", b:url())
    assert.are.equal("Sign in", b:text("main h1"))
    assert.is_nil(b:page_text():find(w.lic.key, 1, true))
    assert.is_nil(b:cookie("licensor_session"))
    b:add_cookie{ name = "licensor_session", value = old, path = "/portal", httpOnly = true, sameSite = "Strict" }
    b:go(w.server.url .. "/portal/licenses/" .. w.lic.key)
    assert.are.equal(w.server.url .. "/portal/", b:url())
    audit("old cookie refused")

  end)

  it("answers no form a page elsewhere posts for the signed-in browser, and keeps it signed in (CSRF)", function()
    local session = sign_in()
    local key_url = w.server.url .. "/portal/licenses/" .. w.lic.key
    -- A page of another site (a file here) with the portal's own forms,
    -- without their tokens, pressed by the customer.
    local attack = w.dir .. "/prize.html"
    files.write(attack, table.concat({
      "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>You won</title></head><body>",
      "<form id='deactivate' method='post' action='", key_url, "/deactivate'>",
      "<input type='hidden' name='server' value='airgap-1'>",
      "<input type='hidden' name='csrf' value='", string.rep("0", 64), "'><button>Claim</button></form>",
      "<form id='signout' method='post' action='", w.server.url, "/portal/signout'><button>Claim</button></form>",
      "</body></html>" }))
    for _, form in ipairs{ "deactivate", "signout" } do
      b:go("file://" .. attack)
      b:follow("#" .. form .. " button")
      -- SameSite=Strict: the browser sent no session cookie, so the
      -- portal saw none; and its answer left the browser's cookie alone.
      assert.are.equal(403, b:execute("return performance.getEntriesByType('navigation')[0].responseStatus"),
                       form)
      assert.are.equal("Signed out", b:text("main h1"))
      assert.are.equal(session.value, (b:cookie("licensor_session") or {}).value, form)
      b:console()   -- the 403 of the page's own navigation
    end
    -- Still signed in, and the server still active.
    b:go(key_url)
    assert.are.equal(key_url, b:url())
    assert.truthy(b:text("article.dialog"):find("airgap-1", 1, true))
    for _, e in ipairs(w.store:events(w.lic.key)) do
      assert.is_false(e.kind == "self_deactivated" and e.detail.server == "airgap-1")
    end

    -- Nothing the portal did logged an error.
    local log = w.server:error_log()
    assert.is_nil(log:match("%[error%][^\n]*"), log:match("%[error%][^\n]*"))
  end)
end)
