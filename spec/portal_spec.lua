-- The customer portal over HTTP (doc/portal.md) on a real gateway: sign-in
-- with the mailed link (read from the store's outbox, the token computed
-- with licensor.links and the secret), sessions and their cookies, the
-- security headers of every answer, CSRF on every POST, session fixation,
-- another owner's key answered as an unknown one, escaping, the FAQ's
-- example page, downloads, self-service deactivation and its budget, the
-- offline round trip, sign-out, per-client limits and garbage that never
-- gets a 500.  On SQLite and PostgreSQL; the gateway's day is pinned.
local licensor = require "licensor"
local core = require "licensor.core"
local links = require "licensor.links"
local socket = require "socket"
local certificate = require "licensor.certificate"
local constants = require "licensor.constants"
local gateway = require "support.gateway"
local stores = require "support.stores"
local http = require "socket.http"
local ltn12 = require "ltn12"

local TODAY = "2019-06-01"   -- the FAQ's license: M&S expired 2018-12-06 -> Build 6911
local SECRET = "portal-spec-secret-0123456789abcdef0123456789"
local KEYS = links.keys(SECRET)
local HEADERS = require("licensor.portal").HEADERS

teardown(function() gateway.stop_all() end)

local write = require("support.files").write_bytes

local function temp_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  return dir
end

local machine = require("support.fixtures").machine

------------------------------------------------------------------------
-- A browser by hand: cookies, forms, no redirects followed
------------------------------------------------------------------------

local Browser = {}
Browser.__index = Browser

local function browser(server)
  return setmetatable({ server = server, jar = {} }, Browser)
end

local function urlencode(text)
  return (tostring(text):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- {name, value, name, value...} -> an urlencoded body.
local function form_body(fields)
  local parts = {}
  for i = 1, #fields, 2 do parts[#parts + 1] = urlencode(fields[i]) .. "=" .. urlencode(fields[i + 1]) end
  return table.concat(parts, "&")
end

local BOUNDARY = "----portalSpecBoundary7MA4YWxkTrZu0gW"

-- {{name=, value=, filename=}, ...} -> a multipart/form-data body.
local function multipart(parts)
  local out = {}
  for _, p in ipairs(parts) do
    out[#out + 1] = "--" .. BOUNDARY .. "\r\nContent-Disposition: form-data; name=\"" .. p.name .. "\"" ..
      (p.filename and ("; filename=\"" .. p.filename .. "\"") or "") .. "\r\n" ..
      (p.filename and "Content-Type: application/octet-stream\r\n" or "") .. "\r\n" .. p.value .. "\r\n"
  end
  return table.concat(out) .. "--" .. BOUNDARY .. "--\r\n"
end

-- The Set-Cookie lines LuaSocket joined with ", " (no cookie value or
-- attribute of the portal's holds a comma).
local function update_jar(jar, set_cookie)
  if not set_cookie then return end
  for line in (set_cookie .. ", "):gmatch("(.-), ") do
    local name, value = line:match("^%s*([%w_]+)=([^;]*)")
    if name then
      if line:match("Max%-Age=0") then jar[name] = nil else jar[name] = value end
    end
  end
end

-- go(method, path, {form=, body=, type=, headers=, cookie=}) -> status, body, headers
function Browser:go(method, path, opts)
  opts = opts or {}
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local body = opts.body
  if opts.form then
    body = form_body(opts.form)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
  elseif opts.parts then
    body = multipart(opts.parts)
    headers["Content-Type"] = "multipart/form-data; boundary=" .. BOUNDARY
  end
  if opts.type then headers["Content-Type"] = opts.type end
  if body then headers["Content-Length"] = tostring(#body) end
  local cookie = opts.cookie
  if cookie == nil then
    local list = {}
    for name, value in pairs(self.jar) do list[#list + 1] = name .. "=" .. value end
    table.sort(list)
    if #list > 0 then cookie = table.concat(list, "; ") end
  end
  if cookie then headers.Cookie = cookie end
  local chunks = {}
  local _, status, response = http.request{
    url = self.server.url .. path, method = method, headers = headers, redirect = false,
    source = body and ltn12.source.string(body), sink = ltn12.sink.table(chunks) }
  assert(type(status) == "number", method .. " " .. path .. ": " .. tostring(status))
  if opts.keep_jar ~= true then update_jar(self.jar, response["set-cookie"]) end
  return status, table.concat(chunks), response
end

local function csrf_of(body)
  return assert(body:match('name="csrf" value="(%x+)"'), "no csrf token in the page")
end

-- Every portal answer's headers.
local function assert_headers(headers, what, content_type)
  for name, value in pairs(HEADERS) do
    assert.are.equal(value, headers[name:lower()], what .. ": " .. name)
  end
  assert.are.equal("no-store", headers["cache-control"], what .. ": Cache-Control")
  assert.are.equal(content_type or "text/html; charset=utf-8", headers["content-type"], what .. ": Content-Type")
end

------------------------------------------------------------------------
-- The world: a store with the bundled catalogue, artifacts, licenses
------------------------------------------------------------------------

-- The world of each gateway, by gateway (ask waits on its store).
local world_of = setmetatable({}, { __mode = "k" })

local function new_world(opts)
  opts = opts or {}
  local w = { dir = temp_dir() }
  w.db = stores.path()
  w.store = assert(licensor.open(w.db))
  assert(w.store:import(opts.catalogue or "lua/licensor/catalogues/smartertools.lua"))
  w.secret_file = w.dir .. "/secret"
  write(w.secret_file, SECRET .. "\n")
  w.artifacts = w.dir .. "/artifacts"
  require("licensor.demo").write_artifacts(w.artifacts)
  w.key_file = w.dir .. "/signing.key"
  w.public = assert(certificate.new_key_files(w.key_file))
  w.server = gateway.start{ db = w.db, today = TODAY, link_secret_file = w.secret_file, artifacts = w.artifacts,
                            signing_key_file = not opts.unsigned and w.key_file or nil, rate_per_ip = opts.rate_per_ip or 0,
                            rate_per_key = opts.rate_per_key or 0, public_url = opts.public_url }
  world_of[w.server] = w
  w.owners = 0
  return w
end

local function end_world(w)
  if w.server then w.server:stop() end
  w.store:close()
  stores.remove(w.db)
  os.execute("rm -rf '" .. w.dir .. "'")
end

-- A license of the FAQ's example (SmarterTrack Enterprise 5 agents, M&S
-- expired 2018-12-06) for a new owner's address (or `email`).
local function issue(w, fields)
  local spec = { product = "smartertrack", edition = "enterprise", level = 5, start = "2017-12-07",
                 owner = "Acme" }
  for k, v in pairs(fields or {}) do spec[k] = v end
  if not spec.email then
    w.owners = w.owners + 1
    spec.email = "owner" .. w.owners .. "@customer.example"
  end
  return assert(w.store:issue(spec, "2017-12-07"))
end

-- The newest sign-in row mailed to email: its link token (id.MAC).
-- The newest sign-in mailed to email, as its link's token.
local function mailed_token(w, email)
  local id
  for _, row in ipairs(assert(w.store:outbox{ state = "all", limit = 100000 })) do
    local detail = type(row.detail) == "table" and row.detail or {}
    if row.action == "portal_signin" and detail.email == email:lower() then id = detail.signin end
  end
  return id and (id .. "." .. links.sign(KEYS.signin, id)) or nil
end

local function signin_rows(w)
  local n = 0
  for _, row in ipairs(assert(w.store:outbox{ state = "all", limit = 100000 })) do
    if row.action == "portal_signin" then n = n + 1 end
  end
  return n
end

-- Asks for a link with the form (as a customer does).
-- Asks for a link as the form does.  The portal answers before it writes
-- the sign-in (so the answer's timing says nothing), so this waits for
-- the write: a new outbox row (up to 5 s) when one is expected, else a
-- moment (expect_row false: an unknown address, a capped one, garbage).
local function ask(b, email, expect_row)
  local status, body = b:go("GET", "/portal/")
  assert.are.equal(200, status)
  local w = world_of[b.server]
  local before = w and #assert(w.store:outbox{ state = "all", limit = 100000 })
  local s, text, headers = b:go("POST", "/portal/signin", { form = { "csrf", csrf_of(body), "email", email } })
  if w and s == 200 then
    for _ = 1, expect_row == false and 6 or 100 do
      if #assert(w.store:outbox{ state = "all", limit = 100000 }) > before then break end
      socket.sleep(0.05)
    end
  end
  return s, text, headers
end

-- Opens the link and presses the button: the session cookie.
local function follow(b, token)
  local status, body = b:go("GET", "/portal/signin?token=" .. token)
  assert.are.equal(200, status, body)
  return b:go("POST", "/portal/signin", { form = { "csrf", csrf_of(body), "token", token } })
end

local function sign_in(w, b, email)
  local status = ask(b, email)
  assert.are.equal(200, status)
  local token = assert(mailed_token(w, email), "no sign-in mailed to " .. email)
  status = follow(b, token)
  assert.are.equal(303, status)
  assert.is_string(b.jar.licensor_session)
  return b
end

-- A signed-in browser of a new owner of one license (fields), and the license.
local function customer(w, fields)
  local lic = issue(w, fields)
  return sign_in(w, browser(w.server), lic.email), lic
end

local function page(b, path)
  local status, body, headers = b:go("GET", path)
  assert.are.equal(200, status, path .. ": " .. body)
  return body, headers
end

-- The portal logged no error (a bug answered 500 would be).
local function assert_no_errors(w)
  local log = w.server:error_log()
  assert.is_nil(log:match("licensor: portal: [^\n]*"), log:match("licensor: portal: [^\n]*"))
  assert.is_nil(log:match("%[error%][^\n]*lua[^\n]*"), log:match("%[error%][^\n]*lua[^\n]*"))
end

------------------------------------------------------------------------

describe("the portal (" .. stores.backend .. ")", function()
  local w

  setup(function() w = new_world() end)
  teardown(function()
    assert_no_errors(w)
    end_world(w)
  end)

  describe("signing in", function()
    it("mails a link from the form, answering the same page whether or not the address has licenses", function()
      local lic = issue(w)
      local before = signin_rows(w)
      local b = browser(w.server)
      local status, known = ask(b, lic.email)
      assert.are.equal(200, status)
      assert.are.equal(before + 1, signin_rows(w))
      local stranger = "nobody-here@customer.example"
      local status2, unknown = ask(browser(w.server), stranger, false)
      assert.are.equal(200, status2)
      assert.are.equal(before + 1, signin_rows(w))
      assert.are.equal(known:gsub(lic.email:gsub("%p", "%%%0"), "ADDRESS"),
                       (unknown:gsub(stranger:gsub("%p", "%%%0"), "ADDRESS")))
      assert.truthy(known:find("a sign-in link is on its way", 1, true))
    end)

    it("opens the link on a page with a button (a GET spends nothing), then mints a new session cookie", function()
      local lic = issue(w)
      local b = browser(w.server)
      ask(b, lic.email)
      local token = assert(mailed_token(w, lic.email))
      -- A mail scanner fetching the link twice spends nothing.
      for _ = 1, 2 do
        local status, body = browser(w.server):go("GET", "/portal/signin?token=" .. token)
        assert.are.equal(200, status)
        assert.truthy(body:find('<button type="submit">Sign in</button>', 1, true))
      end
      local status, body = b:go("GET", "/portal/signin?token=" .. token)
      assert.are.equal(200, status)
      local s2, _, headers = b:go("POST", "/portal/signin", { form = { "csrf", csrf_of(body), "token", token } })
      assert.are.equal(303, s2)
      assert.are.equal("/portal/licenses", headers.location)
      local cookie = headers["set-cookie"]:match("(licensor_session=[^,]*)")
      assert.truthy(cookie:find("; Path=/portal;", 1, true))
      assert.truthy(cookie:find("; HttpOnly", 1, true))
      assert.truthy(cookie:find("; SameSite=Strict", 1, true))
      assert.is_nil(cookie:find("Secure", 1, true))   -- plain http, no https public url
      local list = page(b, "/portal/licenses")
      assert.truthy(list:find(lic.key, 1, true))
      -- With a session the sign-in page sends to the licenses.
      local s3, _, h3 = b:go("GET", "/portal/")
      assert.are.same({ 303, "/portal/licenses" }, { s3, h3.location })
    end)

    it("refuses a reused, an expired, a tampered and an unknown link with one answer", function()
      local lic = issue(w)
      local b = browser(w.server)
      ask(b, lic.email)
      local token = assert(mailed_token(w, lic.email))
      assert.are.equal(303, (follow(b, token)))
      local again = browser(w.server)
      local status, used = follow(again, token)
      assert.are.equal(400, status)
      assert.truthy(used:find("This sign-in link was used, has expired or is unknown", 1, true))
      assert.is_nil(again.jar.licensor_session)
      -- A link made more than 15 minutes ago.
      local old = issue(w)
      assert(w.store:portal_signin(old.email, os.time() - constants.PORTAL.signin_seconds - 5))
      local status2, expired = follow(browser(w.server), assert(mailed_token(w, old.email)))
      assert.are.same({ 400, used }, { status2, expired })
      -- A MAC that is not the secret's, and an id never mailed: refused on the GET already.
      local id = token:match("^(%x+)%.")
      for _, bad in ipairs({ id .. "." .. links.sign(links.keys("another secret, long enough to be one").signin, id),
                             core.random_hex(16) .. "." .. links.sign(KEYS.signin, core.random_hex(16)),
                             id, "", "zz.zz", id .. "." .. string.rep("0", 64) }) do
        local s, body, headers = browser(w.server):go("GET", "/portal/signin?token=" .. urlencode(bad))
        assert.are.equal(400, s, bad)
        assert_headers(headers, "bad link")
        assert.truthy(body:find("This sign-in link was used, has expired or is unknown", 1, true))
      end
      -- An unknown id with the right MAC passes the page but not the button.
      local ghost = core.random_hex(16)
      local s4, body4 = follow(browser(w.server), ghost .. "." .. links.sign(KEYS.signin, ghost))
      assert.are.same({ 400, used }, { s4, body4 })
    end)

    it("mails at most PORTAL.signins_per_email links per address per link lifetime, answering the same", function()
      local lic = issue(w)
      local before = signin_rows(w)
      local first
      for i = 1, constants.PORTAL.signins_per_email + 2 do
        local status, body = ask(browser(w.server), lic.email, i <= constants.PORTAL.signins_per_email)
        assert.are.equal(200, status)
        first = first or body
        assert.are.equal(first, body, "ask " .. i)
      end
      assert.are.equal(before + constants.PORTAL.signins_per_email, signin_rows(w))
    end)

    it("ends a session the store ended: idle too long or too old", function()
      local lic = issue(w)
      local now = os.time()
      local function cookie_at(at)
        assert(w.store:portal_signin(lic.email, at))
        local id = assert(mailed_token(w, lic.email)):match("^(%x+)%.")
        local token = assert(w.store:portal_redeem(id, at + 1))
        return "licensor_session=" .. token .. "." .. links.sign(KEYS.session, "session " .. token)
      end
      local fresh = cookie_at(now - 10)
      local idle = cookie_at(now - constants.PORTAL.idle_seconds - 60)
      local b = browser(w.server)
      assert.are.equal(200, (b:go("GET", "/portal/licenses", { cookie = fresh })))
      local status, _, headers = b:go("GET", "/portal/licenses", { cookie = idle })
      assert.are.same({ 303, "/portal/" }, { status, headers.location })
      assert.truthy(headers["set-cookie"]:find("licensor_session=; Path=/portal; Max-Age=0", 1, true))
    end)

    it("never takes a session cookie it did not mint (fixation): signing in always mints a new one", function()
      local lic = issue(w)
      local b = browser(w.server)
      -- A planted cookie: random, and well-formed with a MAC of the right key for a token never issued.
      local planted = { core.random_hex(32) .. "." .. core.random_hex(32) }
      local ghost = core.random_hex(32)
      planted[2] = ghost .. "." .. links.sign(KEYS.session, "session " .. ghost)
      planted[3] = core.random_hex(32)
      for _, value in ipairs(planted) do
        local status, _, headers = b:go("GET", "/portal/licenses", { cookie = "licensor_session=" .. value })
        assert.are.same({ 303, "/portal/" }, { status, headers.location })
      end
      -- Signing in with a planted cookie in the jar replaces it.
      b.jar.licensor_session = planted[2]
      sign_in(w, b, lic.email)
      assert.are_not.equal(planted[2], b.jar.licensor_session)
      -- Another customer's valid session, planted before signing in, is replaced too.
      local other = issue(w)
      local victim = browser(w.server)
      local attacker = sign_in(w, browser(w.server), other.email)
      victim.jar.licensor_session = attacker.jar.licensor_session
      ask(browser(w.server), lic.email)
      assert.are.equal(303, (follow(victim, assert(mailed_token(w, lic.email)))))
      assert.are_not.equal(attacker.jar.licensor_session, victim.jar.licensor_session)
      local list = page(victim, "/portal/licenses")
      assert.truthy(list:find(lic.key, 1, true))
      assert.is_nil(list:find(other.key, 1, true))
    end)

    it("signs out: the old cookie is refused afterwards", function()
      local b, lic = customer(w)
      local body = page(b, "/portal/licenses")
      local old = b.jar.licensor_session
      local status, _, headers = b:go("POST", "/portal/signout", { form = { "csrf", csrf_of(body) } })
      assert.are.same({ 303, "/portal/" }, { status, headers.location })
      assert.truthy(headers["set-cookie"]:find("licensor_session=; Path=/portal; Max-Age=0", 1, true))
      assert.is_nil(b.jar.licensor_session)
      local s2, _, h2 = b:go("GET", "/portal/licenses", { cookie = "licensor_session=" .. old })
      assert.are.same({ 303, "/portal/" }, { s2, h2.location })
      local s3 = b:go("GET", "/portal/licenses/" .. lic.key, { cookie = "licensor_session=" .. old })
      assert.are.equal(303, s3)
      -- A POST with the old cookie and its old token is refused too.
      local s4 = b:go("POST", "/portal/signout", { form = { "csrf", csrf_of(body) },
                                                   cookie = "licensor_session=" .. old })
      assert.are.equal(403, s4)
    end)
  end)

  describe("pages", function()
    it("shows the FAQ's dialog: M&S expired on December 6, 2018, Build 6911, why, downloads, older builds, money", function()
      local b, lic = customer(w)
      local list = page(b, "/portal/licenses")
      assert.truthy(list:find("SmarterTrack Enterprise, 5 agents", 1, true))
      assert.truthy(list:find("expired on December 6, 2018", 1, true))
      assert.truthy(list:find("Build 6911 (100.0.6911), released December 3, 2018", 1, true))
      assert.truthy(list:find('href="/portal/licenses/' .. lic.key .. '"', 1, true))
      local body = page(b, "/portal/licenses/" .. lic.key)
      for _, text in ipairs({
        "<h1 id=\"title\">SmarterTrack Enterprise, 5 agents</h1>",
        "<dt>M&amp;S</dt><dd>expired on December 6, 2018</dd>",
        "<dt>M&amp;S expiry day</dt><dd>December 6, 2018</dd>",
        "You may install Build 6911 (released December 3, 2018)",
        "M&amp;S expired on December 6, 2018: the license may install the newest build released by then",
        'href="/portal/licenses/' .. lic.key .. '/download?build=6911&amp;platform=windows-x64"',
        'href="/portal/licenses/' .. lic.key .. '/download?build=6911&amp;platform=linux-x64"',
        "Older builds it may also install",
        "Build 6855 (13.5.6855, released October 8, 2018)",
        -- R15 with ms_percent 25: a year of M&S is 25% of $549.00.
        "Renewing M&amp;S for 12 months costs $137.25; M&amp;S then runs until December 6, 2019 (terms count " ..
        "from December 6, 2018, the day M&amp;S ended).",
        -- R12: the price difference within the eligible build's major (100).
        "<td data-label=\"To\">Enterprise, 10 agents</td><td data-label=\"Costs\">$330.00</td>",
        "Enterprise, unlimited agents</td><td data-label=\"Costs\">$1,100.00</td>",
        "A lower edition or level is a license change: contact sales.",
        'enctype="multipart/form-data"',
      }) do
        assert.truthy(body:find(text, 1, true), text)
      end
      -- The older builds, newest first, the last several only.
      local a, c = body:find("Build 6855", 1, true), body:find("Build 6802", 1, true)
      assert.is_true(a < c)
      assert.is_nil(body:find("Build 6075 (", 1, true))
      -- No script, no inline style, anywhere.
      assert.is_nil(body:lower():find("<script", 1, true))
      assert.is_nil(body:lower():find("style=", 1, true))
      assert.is_nil(body:lower():find(" on%a+="))
    end)

    it("serves the stylesheet and the icon its pages name, with the same headers", function()
      local b = browser(w.server)
      local status, css, headers = b:go("GET", "/portal/style.css")
      assert.are.equal(200, status)
      assert_headers(headers, "style.css", "text/css; charset=utf-8")
      assert.truthy(css:find("@media (max-width: 40em)", 1, true))
      local s2, signin = b:go("GET", "/portal/")
      assert.are.equal(200, s2)
      assert.truthy(signin:find('<link rel="icon" href="/portal/icon.svg" type="image/svg+xml">', 1, true))
      local s3, svg, h3 = b:go("GET", "/portal/icon.svg")
      assert.are.equal(200, s3)
      assert_headers(h3, "icon", "image/svg+xml")
      assert.matches("^<svg ", svg)
    end)

    it("takes a form whose Origin is null (a no-referrer page's) on its token, and clears no cookie it was not sent",
       function()
      local b = customer(w)
      local body = page(b, "/portal/licenses")
      local status, _, headers = b:go("POST", "/portal/signout", { form = { "csrf", csrf_of(body) },
                                                                    headers = { Origin = "null" } })
      assert.are.equal(303, status)
      assert.truthy(headers["set-cookie"]:find("licensor_session=;", 1, true))
      -- A POST from elsewhere comes without the cookie (SameSite=Strict): refused, and no Set-Cookie
      -- signs the browser out.
      local s2, _, h2 = browser(w.server):go("POST", "/portal/signout", { form = { "csrf", "x" } })
      assert.are.equal(403, s2)
      assert.is_nil(h2["set-cookie"] and h2["set-cookie"]:find("licensor_session", 1, true))
    end)

    it("sends every answer with the security headers: pages, redirects, refusals, errors", function()
      local b, lic = customer(w)
      local csrf = csrf_of(page(b, "/portal/licenses"))
      local anonymous = browser(w.server)
      local cases = {
        { anonymous, "GET", "/portal/", 200 }, { anonymous, "HEAD", "/portal/", 200 },
        { anonymous, "GET", "/portal", 303 }, { anonymous, "GET", "/portal/licenses", 303 },
        { anonymous, "GET", "/portal/nothing-here", 404 }, { anonymous, "DELETE", "/portal/", 405 },
        { anonymous, "POST", "/portal/signin", 403, { form = { "email", "x@y.example" } } },
        { anonymous, "GET", "/portal/signin?token=nope", 400 },
        { b, "GET", "/portal/licenses", 200 }, { b, "GET", "/portal/licenses/" .. lic.key, 200 },
        { b, "GET", "/portal/licenses/not-a-key", 404 },
        { b, "GET", "/portal/licenses/" .. lic.key .. "/download?build=6911&platform=linux-x64", 303 },
        { b, "GET", "/portal/licenses/" .. lic.key .. "/download?build=6947&platform=linux-x64", 403 },
        { b, "POST", "/portal/licenses/" .. lic.key .. "/deactivate", 403, { form = { "server", "x" } } },
        { b, "POST", "/portal/licenses/" .. lic.key .. "/deactivate", 400, { form = { "csrf", csrf } } },
        { b, "PUT", "/portal/licenses/" .. lic.key, 405 },
        { b, "POST", "/portal/licenses/" .. lic.key .. "/activate", 415, { form = { "csrf", csrf } } },
        { b, "POST", "/portal/licenses/" .. lic.key .. "/activate", 403, { parts = { { name = "x", value = "y" } } } },
        { b, "GET", "/portal/licenses/" .. core.new_key() .. "/download?build=6911&platform=linux-x64", 404 },
        { b, "POST", "/portal/signout", 403, { form = { "csrf", "0" } } },
        { b, "GET", "/portal/signout", 405 }, { b, "POST", "/portal/licenses", 405, { form = {} } },
        { b, "POST", "/portal/signout", 303, { form = { "csrf", csrf } } },
        { b, "GET", "/portal/licenses", 303 }, { b, "POST", "/portal/signout", 403, { form = { "csrf", csrf } } },
      }
      for _, c in ipairs(cases) do
        local status, _, headers = c[1]:go(c[2], c[3], c[5])
        local what = c[2] .. " " .. c[3]
        assert.are.equal(c[4], status, what)
        assert_headers(headers, what)
        if status == 405 then assert.is_string(headers.allow, what) end
        if status == 303 then assert.is_string(headers.location, what) end
      end
    end)

    it("escapes owner names, server names and product names (script tags, quotes)", function()
      local evil = [[<script>alert("x")</script>' onmouseover='alert(1)]]
      local b, lic = customer(w, { owner = evil })
      local status, answer = w.server:request("POST", "/v1/activate", { key = lic.key, server = evil, build = 6911 })
      assert.are.equal(200, status, answer)
      local body = page(b, "/portal/licenses/" .. lic.key)
      assert.is_nil(body:find("<script", 1, true))
      assert.is_nil(body:find(evil, 1, true))
      local escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;alert(1)"
      assert.truthy(body:find("<dd>" .. escaped .. "</dd>", 1, true))            -- the owner
      assert.truthy(body:find("<code>" .. escaped .. "</code>", 1, true))        -- the server
      assert.truthy(body:find('name="server" value="' .. escaped .. '"', 1, true))
      -- The address typed into the sign-in form comes back escaped too.
      local s2, sent = ask(browser(w.server), '"><script>@x.example')
      assert.are.equal(400, s2)
      assert.is_nil(sent:find("<script>", 1, true))
    end)
  end)

  describe("another customer's key", function()
    it("answers exactly as an unknown key in URLs and forms", function()
      local b, mine = customer(w)
      local theirs = issue(w)
      local unknown = core.new_key()
      local csrf = csrf_of(page(b, "/portal/licenses"))
      local requests = {
        { "GET", "" }, { "GET", "/download?build=6911&platform=linux-x64" }, { "GET", "/download" },
        { "POST", "/deactivate", { form = { "csrf", csrf, "server", "x" } } },
      }
      for _, r in ipairs(requests) do
        local s1, b1, h1 = b:go(r[1], "/portal/licenses/" .. theirs.key .. r[2], r[3])
        local s2, b2 = b:go(r[1], "/portal/licenses/" .. unknown .. r[2], r[3])
        local s3, b3 = b:go(r[1], "/portal/licenses/" .. theirs.key:lower():gsub("-", "") .. r[2], r[3])
        assert.are.same({ 404, b2 }, { s1, b1 }, r[1] .. " " .. r[2])
        assert.are.same({ 404, b2 }, { s2, b2 })
        assert.are.same({ 404, b2 }, { s3, b3 })
        assert_headers(h1, r[2])
        assert.truthy(b1:find("None of your licenses has this key.", 1, true))
        assert.is_nil(b1:find(theirs.key, 1, true))
      end
      -- An offline request naming their key, on their page and on mine.
      local function upload(key, for_key)
        local text = certificate.request_text{ license = for_key, server = "x1", fingerprint = machine(5),
                                               build = 6911 }
        return b:go("POST", "/portal/licenses/" .. key .. "/activate", { parts = {
          { name = "csrf", value = csrf }, { name = "request", value = text, filename = "r.txt" } } })
      end
      local s1, b1 = upload(theirs.key, theirs.key)
      local s2, b2 = upload(unknown, unknown)
      assert.are.same({ 404, 404, b2 }, { s1, s2, b1 })
      local s3, b3 = upload(mine.key, theirs.key)
      local s4, b4 = upload(mine.key, unknown)
      assert.are.same({ 400, 400, b4 }, { s3, s4, b3 })
      assert.truthy(b3:find("for another license", 1, true))
      -- Nothing of theirs changed.
      assert.are.same({}, assert(w.store:installations(theirs.key)))
    end)
  end)

  describe("CSRF", function()
    it("refuses every POST without the right token, and does nothing", function()
      local b, lic = customer(w)
      assert.are.equal(200, (w.server:request("POST", "/v1/activate", { key = lic.key, server = "s1", build = 6911 })))
      local other = customer(w)
      local theirs = csrf_of(page(other, "/portal/licenses"))
      local mine = csrf_of(page(b, "/portal/licenses"))
      local base = "/portal/licenses/" .. lic.key
      for _, token in ipairs({ false, "", "0", theirs, mine:sub(1, 63), mine .. "0", mine:upper() }) do
        local function with(fields)
          local list = {}
          if token then list = { "csrf", token } end
          for _, f in ipairs(fields) do list[#list + 1] = f end
          return { form = list }
        end
        local what = tostring(token)
        assert.are.equal(403, (b:go("POST", base .. "/deactivate", with({ "server", "s1" }))), what)
        assert.are.equal(403, (b:go("POST", "/portal/signout", with({}))), what)
        local parts = { { name = "request", value = "x", filename = "r.txt" } }
        if token then table.insert(parts, 1, { name = "csrf", value = token }) end
        local status, body, headers = b:go("POST", base .. "/activate", { parts = parts })
        assert.are.equal(403, status, what)
        assert_headers(headers, "csrf")
        assert.truthy(body:find("did not come from this portal", 1, true))
      end
      -- The right token from a page of another origin is refused too.
      local s = b:go("POST", base .. "/deactivate", { form = { "csrf", mine, "server", "s1" },
                                                      headers = { Origin = "https://evil.example" } })
      assert.are.equal(403, s)
      -- The sign-in forms: without the sign-in cookie's token, or with another cookie's.
      local anon = browser(w.server)
      local form = csrf_of(select(2, anon:go("GET", "/portal/")))
      assert.are.equal(403, (anon:go("POST", "/portal/signin", { form = { "email", lic.email } })))
      assert.are.equal(403, (browser(w.server):go("POST", "/portal/signin", { form = { "csrf", form, "email", lic.email } })))
      assert.are.equal(403, (anon:go("POST", "/portal/signin", { form = { "csrf", mine, "email", lic.email } })))
      -- A link pressed without the page's token (a login CSRF: another's link in a forged form) is not spent.
      local rows = signin_rows(w)
      ask(browser(w.server), lic.email)
      assert.are.equal(rows + 1, signin_rows(w))
      local token = assert(mailed_token(w, lic.email))
      assert.are.equal(403, (anon:go("POST", "/portal/signin", { form = { "token", token } })))
      assert.are.equal(403, (browser(w.server):go("POST", "/portal/signin", { form = { "csrf", form, "token", token } })))
      assert.is_nil(anon.jar.licensor_session)
      assert.are.equal(303, (follow(browser(w.server), token)))
      -- Nothing happened: the session holds, the server runs.
      page(b, "/portal/licenses")
      local installs = assert(w.store:installations(lic.key))
      assert.is_nil(installs[1].deactivated)
      -- With the token, it works.
      local ok = b:go("POST", base .. "/deactivate", { form = { "csrf", mine, "server", "s1" },
                                                      headers = { Origin = w.server.url } })
      assert.are.equal(200, ok)
    end)
  end)

  describe("downloads", function()
    it("redirects to a signed link nginx serves, with the catalogue's sha256; refusals are pages", function()
      local b, lic = customer(w)
      local status, _, headers = b:go("GET", "/portal/licenses/" .. lic.key .. "/download?build=6911&platform=linux-x64")
      assert.are.equal(303, status)
      local location = headers.location
      assert.truthy(location:find("/artifacts/smartertrack/SmarterTrack_100.0.6911_linux-x64.zip?md5=", 1, true))
      local s2, bytes = b:go("GET", (location:gsub("^https?://[^/]+", "")))
      assert.are.equal(200, s2)
      local cat = assert(w.store:catalogue())
      local record
      for _, d in ipairs(assert(cat:build("smartertrack", 6911)).downloads) do
        if d.platform == "linux-x64" then record = d end
      end
      assert.are.same({ record.size, record.sha256 }, { #bytes, core.sha256(bytes, true) })
      -- The event says it came from the portal.
      local found
      for _, e in ipairs(assert(w.store:events(lic.key))) do
        if e.kind == "download" then found = e.detail end
      end
      assert.are.same({ build = 6911, platform = "linux-x64", via = "portal" },
                      { build = found.build, platform = found.platform, via = found.via })
      -- An earlier build is fine (R4); a newer one is refused with the one allowed.
      assert.are.equal(303, (b:go("GET", "/portal/licenses/" .. lic.key .. "/download?build=6855&platform=windows-x64")))
      local s3, refused = b:go("GET", "/portal/licenses/" .. lic.key .. "/download?build=6947&platform=linux-x64")
      assert.are.equal(403, s3)
      assert.truthy(refused:find("This license may install Build 6911 (released December 3, 2018)", 1, true))
      local s4, body4 = b:go("GET", "/portal/licenses/" .. lic.key .. "/download?build=6911&platform=../../etc")
      assert.are.equal(400, s4)
      assert.is_nil(body4:find("<script", 1, true))
      assert.are.equal(404, (b:go("GET", "/portal/licenses/" .. lic.key .. "/download?build=6911&platform=beos")))
      assert.are.equal(400, (b:go("GET", "/portal/licenses/" .. lic.key .. "/download?build=6911")))
      assert.are.equal(400, (b:go("GET", "/portal/licenses/" .. lic.key .. "/download?build=69x1")))
      assert.are.equal(400, (b:go("GET", "/portal/licenses/" .. lic.key .. "/download?build=6911&build=6855")))
      assert.are.equal(303, (b:go("HEAD", "/portal/licenses/" .. lic.key .. "/download?build=6911&platform=linux-x64")))
    end)
  end)

  describe("installations", function()
    it("deactivates a lost server within the policy's budget, then says to contact support", function()
      local b, lic = customer(w)
      for i = 1, 5 do
        assert.are.equal(200, (w.server:request("POST", "/v1/activate", { key = lic.key, server = "lost" .. i,
                                                                          build = 6911 })))
        local body = page(b, "/portal/licenses/" .. lic.key)
        assert.truthy(body:find("<code>lost" .. i .. "</code>", 1, true))
        local status, answer = b:go("POST", "/portal/licenses/" .. lic.key .. "/deactivate",
                                    { form = { "csrf", csrf_of(body), "server", "lost" .. i } })
        if i <= 3 then
          assert.are.equal(200, status, answer)
          assert.truthy(answer:find("Server lost" .. i .. " is deactivated: its slot is free.", 1, true))
          assert.truthy(answer:find(string.format("You may deactivate %d more server", 3 - i), 1, true))
          assert.truthy(answer:find(string.format("3 times in 365 days; %d left", 3 - i), 1, true))
          assert.is_nil(answer:find("<code>lost" .. i .. "</code>", 1, true))
        else
          assert.are.equal(403, status)
          assert.truthy(answer:find("contact support", 1, true))
          -- Free it as support would, for the next round.
          assert(w.store:deactivate(lic.key, "lost" .. i, TODAY))
        end
      end
      local n = 0
      for _, e in ipairs(assert(w.store:events(lic.key))) do
        if e.kind == "self_deactivated" then
          n = n + 1
          assert.are.equal(lic.email, e.detail.by)
        end
      end
      assert.are.equal(3, n)
      -- A server the license never ran on is a page, not a 500.
      local b2, lic2 = customer(w)
      local body = page(b2, "/portal/licenses/" .. lic2.key)
      local s2, refused = b2:go("POST", "/portal/licenses/" .. lic2.key .. "/deactivate",
                                { form = { "csrf", csrf_of(body), "server", "never-seen" } })
      assert.are.equal(409, s2)
      assert.truthy(refused:find("Not deactivated: server &#39;never-seen&#39; has no installation", 1, true))
    end)

    it("answers an uploaded offline request with the certificate (R9, R10 as activate --request)", function()
      local b, lic = customer(w)
      local csrf = csrf_of(page(b, "/portal/licenses/" .. lic.key))
      local server_name = 'air"gap/<1>'
      local text = certificate.request_text{ license = lic.key, server = server_name, fingerprint = machine(7),
                                             build = 6911 }
      local function upload(value, extra)
        local parts = { { name = "csrf", value = csrf }, { name = "request", value = value, filename = "req.txt" } }
        for _, p in ipairs(extra or {}) do parts[#parts + 1] = p end
        return b:go("POST", "/portal/licenses/" .. lic.key .. "/activate", { parts = parts })
      end
      local status, cert, headers = upload((text:gsub("\n", "\r\n")))   -- uploaded from Windows
      assert.are.equal(200, status, cert)
      assert.are.equal('attachment; filename="air_gap__1_.cert"', headers["content-disposition"])
      assert.are.equal("application/octet-stream", headers["content-type"])
      assert.are.equal(HEADERS["Content-Security-Policy"], headers["content-security-policy"])
      local state = os.tmpname()
      os.remove(state)
      local v = licensor.verify(cert, { public_keys = { w.public }, product = "smartertrack",
                                        fingerprint = machine(7), state = state, new_state = true,
                                        now = core.day(TODAY) * 86400 + 3600 })
      os.remove(state)
      os.remove(state .. ".lock")
      assert.are.equal("valid", v.verdict)
      -- A second machine is a migration (R10: one extra), a third is refused: a page, no certificate.
      local second = certificate.request_text{ license = lic.key, server = "two", fingerprint = machine(8),
                                               build = 6911 }
      assert.are.equal(200, (upload(second)))
      local third = certificate.request_text{ license = lic.key, server = "three", fingerprint = machine(9),
                                              build = 6911 }
      local s3, refused = upload(third)
      assert.are.equal(409, s3)
      assert.truthy(refused:find("No certificate:", 1, true))
      -- A newer build than the license may run (R5).
      local newer = certificate.request_text{ license = lic.key, server = "two", fingerprint = machine(8),
                                              build = 6947 }
      assert.are.equal(409, (upload(newer)))
      -- Not a request, too large, no file.
      assert.are.equal(400, (upload("hello")))
      assert.are.equal(413, (upload(string.rep("x", constants.MAX_CERTIFICATE_BYTES + 1))))
      assert.are.equal(400, (upload("")))
      assert.are.equal(400, (upload(text, { { name = "request", value = text } })))   -- twice
    end)
  end)

  describe("garbage", function()
    it("never answers a 500: methods, huge and broken forms, bad multipart, bad keys, unknown paths, cookies", function()
      local b, lic = customer(w)
      local csrf = csrf_of(page(b, "/portal/licenses"))
      local base = "/portal/licenses/" .. lic.key
      local seen = {}
      local function try(method, path, opts)
        local status, body, headers = b:go(method, path, opts)
        assert.is_true(status < 500, method .. " " .. path .. ": " .. status .. " " .. body:sub(1, 200))
        seen[#seen + 1] = status
        return status, body, headers
      end
      for _, method in ipairs({ "PUT", "DELETE", "PATCH", "OPTIONS", "FOO", "POST", "GET" }) do
        for _, path in ipairs({ "/portal/", "/portal/style.css", "/portal/signin", "/portal/signout",
                                "/portal/licenses", base, base .. "/download", base .. "/deactivate",
                                base .. "/activate", "/portal/x", "/portal/licenses/" .. lic.key .. "/x/y" }) do
          try(method, path)
        end
      end
      for _, key in ipairs({ "%00", "..%2f..%2fetc", string.rep("A", 5000), "%E2%80%AE", "%ff%fe", "a%20b",
                             lic.key .. "%00", "<script>" }) do
        try("GET", "/portal/licenses/" .. key)
        try("GET", "/portal/licenses/" .. key .. "/download?build=1&platform=x")
        -- (nginx itself refuses a NUL in the path, before reading a body.)
        if not key:find("%00", 1, true) then
          try("POST", "/portal/licenses/" .. key .. "/deactivate", { form = { "csrf", csrf, "server", "x" } })
        end
      end
      -- Forms: too large for the gateway (nginx's 413), too many fields, repeated fields, bad encodings.
      local huge = string.rep("a", constants.MAX_BODY_BYTES + 10)
      local status, too_large, headers = try("POST", base .. "/deactivate", {
        body = "csrf=" .. csrf .. "&server=" .. huge, type = "application/x-www-form-urlencoded" })
      assert.are.equal(413, status)
      assert_headers(headers, "nginx's 413")
      assert.truthy(too_large:find("The body is larger than 16 KiB.", 1, true))
      -- nginx's other refusals of portal requests are the portal's pages too.
      local code, raw = w.server:raw("GET /portal/licenses HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
      assert.are.equal(501, code)
      assert.truthy(raw:find("Content-Security-Policy: ", 1, true))
      assert.truthy(raw:find("<!DOCTYPE html>", 1, true))
      -- ... judged on the path nginx routes: //portal, /./portal, /%70ortal and /x/../portal are the portal
      for _, target in ipairs({ "//portal/signin", "/./portal/signin", "/%70ortal/signin", "/x/../portal/signin" }) do
        local got, text = w.server:raw("POST " .. target .. " HTTP/1.1\r\nHost: x\r\nContent-Length: " ..
                                       (constants.MAX_BODY_BYTES + 10) .. "\r\n\r\n" .. huge)
        assert.are.equal(413, got, target)
        assert.truthy(text:find("Content-Security-Policy: ", 1, true), target)
      end
      local many = { "csrf", csrf }
      for i = 1, 40 do many[#many + 1] = "f" .. i; many[#many + 1] = "v" end
      assert.are.equal(400, (try("POST", base .. "/deactivate", { form = many })))
      assert.are.equal(400, (try("POST", base .. "/deactivate", { form = { "csrf", csrf, "server", "a", "server", "b" } })))
      for _, body in ipairs({ "csrf", "csrf=" .. csrf .. "&server", "%zz=%zz", "&&&=&", "csrf=" .. csrf .. "&server=%00",
                              "csrf=" .. csrf .. "&server=" .. string.rep("s", 300) }) do
        try("POST", base .. "/deactivate", { body = body, type = "application/x-www-form-urlencoded" })
      end
      try("POST", base .. "/deactivate", { body = "{}", type = "application/json" })
      -- Multipart that is not.
      local types = { "multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=" ..
                      string.rep("b", 200), "multipart/form-data; boundary=x" }
      for _, t in ipairs(types) do
        for _, body in ipairs({ "", "--x", "--x\r\n", "--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--",
                                "--x\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n" .. csrf,
                                "--x--", string.rep("--x\r\n\r\n", 100) }) do
          try("POST", base .. "/activate", { body = body, type = t })
        end
      end
      -- Sign-in garbage.
      for _, query in ipairs({ "token", "token=", "token=a&token=b", "token=" .. string.rep("f", 5000), "x=1" }) do
        try("GET", "/portal/signin?" .. query)
      end
      -- Cookies: huge, repeated, broken.
      for _, cookie in ipairs({ "licensor_session=" .. string.rep("f", 3000), "licensor_session=..",
                                "licensor_session=a; licensor_session=b", "licensor_signin=" .. string.rep("0", 97),
                                "=; ;;", "licensor_session" }) do
        try("GET", "/portal/licenses", { cookie = cookie })
        try("POST", "/portal/signin", { cookie = cookie, form = { "csrf", "x", "email", "a@b.example" } })
      end
      assert.is_true(#seen > 150, tostring(#seen))
    end)
  end)
end)

describe("the portal's limits and cookies behind https (" .. stores.backend .. ")", function()
  local w

  setup(function()
    w = new_world{ rate_per_ip = 100000, rate_per_key = 100000, public_url = "https://portal.example", unsigned = true }
  end)
  teardown(function()
    assert_no_errors(w)
    end_world(w)
  end)

  it("limits sign-in requests per client per minute (429 page with Retry-After)", function()
    local b = browser(w.server)
    local csrf = csrf_of(select(2, b:go("GET", "/portal/")))
    local limited
    for i = 1, 2 * constants.PORTAL.signins_per_client + 1 do
      local status, body, headers = b:go("POST", "/portal/signin",
                                         { form = { "csrf", csrf, "email", "flood" .. i .. "@customer.example" } })
      if status == 429 then
        limited = { body = body, headers = headers }
        break
      end
      assert.are.equal(200, status)
    end
    assert.is_table(limited)
    assert_headers(limited.headers, "429")
    assert.is_string(limited.headers["retry-after"])
    assert.truthy(limited.body:find("Too many requests from this address", 1, true))
  end)

  it("shows no upload form and answers an upload with a 503 page when the gateway signs no certificates",
     function()
    local lic = issue(w)
    local b = browser(w.server)
    -- (The form's sign-ins from this address may be spent by the spec above: the store mails this one.)
    assert(w.store:portal_signin(lic.email, os.time()))
    assert.are.equal(303, (follow(b, assert(mailed_token(w, lic.email)))))
    local body_of_page = page(b, "/portal/licenses/" .. lic.key)
    -- no upload form where no certificate can be signed
    assert.is_nil(body_of_page:find('enctype="multipart/form-data"', 1, true))
    local csrf = csrf_of(body_of_page)
    local text = certificate.request_text{ license = lic.key, server = "air", fingerprint = machine(3), build = 6911 }
    local status, body, headers = b:go("POST", "/portal/licenses/" .. lic.key .. "/activate", { parts = {
      { name = "csrf", value = csrf }, { name = "request", value = text, filename = "r.txt" } } })
    assert.are.equal(503, status)
    assert_headers(headers, "unsigned")
    assert.is_string(headers["retry-after"])
    assert.truthy(body:find("This portal signs no certificates", 1, true))
    assert.are.same({}, assert(w.store:installations(lic.key)))
  end)

  it("marks cookies Secure when the public url is https", function()
    local _, _, headers = browser(w.server):go("GET", "/portal/")
    assert.truthy(headers["set-cookie"]:find("; Secure", 1, true))
  end)
end)
