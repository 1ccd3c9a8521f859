-- licensor.portal -- the customer portal under /portal/ (doc/portal.md):
-- passwordless sign-in, the owner's licenses, downloads, installations.
--
-- Server-rendered HTML without any script.  Every answer -- pages,
-- redirects, errors, the stylesheet -- carries the same security headers
-- (HEADERS); every form carries a CSRF token and every POST is refused
-- (403) without the right one.  Sessions are the store's
-- (store:portal_session): the cookie holds the session token and its MAC
-- under the link secret's "session" key, so a cookie the gateway did not
-- mint never reaches the store, and signing in always mints a new one
-- (fixation).  Another owner's key answers exactly as an unknown key.
-- Nothing here answers a 500 but a bug, and that as an HTML page too.
local links = require "licensor.links"
local failure = require "licensor.failure"
local constants = require "licensor.constants"
local core = require "licensor.core"
local certificate = require "licensor.certificate"
local pages = require "licensor.portal.pages"
local style = require "licensor.portal.style"
local address = require "licensor.mail.address"

local ngx = ngx   -- luacheck: ignore 113
local type, pairs, pcall, tostring, tonumber, error = type, pairs, pcall, tostring, tonumber, error
local match, find, sub, lower, format = string.match, string.find, string.sub, string.lower, string.format

local PORTAL = constants.PORTAL

local _M = {}

-- The headers of every portal answer (Cache-Control: no-store comes from
-- the gateway's nginx configuration, which adds it to every answer).
_M.HEADERS = {
  ["Content-Security-Policy"] = "default-src 'none'; style-src 'self'; img-src 'self'; " ..
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  ["Referrer-Policy"] = "no-referrer",
  ["X-Content-Type-Options"] = "nosniff",
  ["X-Frame-Options"] = "DENY",
}
local HTML_TYPE = "text/html; charset=utf-8"

-- The cookies: the session, and the sign-in forms' own (pre-session)
-- cookie their CSRF token is bound to.
_M.SESSION_COOKIE = "licensor_session"
_M.SIGNIN_COOKIE = "licensor_signin"
local COOKIE_PATH = "/portal"

-- Requests of one client per minute (PORTAL.signins_per_client): asking
-- for a sign-in link, and spending one, each counted on its own.
local WINDOW = 60

-- At most this many fields in a form, parts in an upload.
local MAX_FIELDS = 8

------------------------------------------------------------------------
-- Answers
------------------------------------------------------------------------

-- The request's state: {gw=, keys=, method=, now=, cookies={Set-Cookie
-- lines}, session=, csrf=}.
local function set_headers(r, content_type, extra)
  local header = ngx.header
  for name, value in pairs(_M.HEADERS) do header[name] = value end
  header["Content-Type"] = content_type or HTML_TYPE
  if r and r.cookies and #r.cookies > 0 then header["Set-Cookie"] = r.cookies end
  if extra then
    for name, value in pairs(extra) do header[name] = value end
  end
end

local function send(r, status, body, content_type, extra)
  ngx.status = status
  set_headers(r, content_type, extra)
  ngx.print(body)
end

-- The page context of the request: the signed-in owner's (nav, CSRF).
local function page_ctx(r, fields)
  -- offline: the upload form only where a certificate can be signed
  local ctx = { email = r.session and r.session.email or nil, csrf = r.csrf or "",
                offline = r.gw ~= nil and r.gw.settings.signing_key_file ~= nil }
  for k, v in pairs(fields or {}) do ctx[k] = v end
  return ctx
end

-- A refusal of the portal's own: raised, answered as an HTML page by
-- handle (status, title, message, extra headers).
local function refuse(status, title, message, headers)
  failure.raise("portal", message, { status = status, title = title, headers = headers })
end

local TITLES = {
  [400] = "Bad request", [403] = "Not allowed", [404] = "Not found", [405] = "Method not allowed",
  [409] = "Not done", [410] = "Gone", [413] = "Too large", [415] = "Unsupported form",
  [429] = "Too many requests", [431] = "Headers too large",
  [500] = "Internal error", [503] = "Unavailable",
}

local function problem_page(r, status, title, message, headers)
  send(r, status, pages.problem(page_ctx(r), title or TITLES[status] or "Not done", message), HTML_TYPE,
       headers)
end

local function redirect(r, location)
  local page = pages.problem(page_ctx(r), "See other", "Continue at " .. location .. ".", location,
                             "Continue")
  send(r, 303, page, HTML_TYPE, { Location = location })
end

------------------------------------------------------------------------
-- Cookies
------------------------------------------------------------------------

-- Secure when the portal's public address is https or this request came
-- over TLS.
local function secure(gw)
  local url = gw.settings.public_url
  return (type(url) == "string" and lower(sub(url, 1, 8)) == "https://") or ngx.var.https == "on"
end

local function set_cookie(r, name, value, max_age)
  r.cookies[#r.cookies + 1] = format("%s=%s; Path=%s; Max-Age=%d; HttpOnly; SameSite=Strict%s", name, value,
                                     COOKIE_PATH, max_age, secure(r.gw) and "; Secure" or "")
end

local function clear_cookie(r, name)
  set_cookie(r, name, "", 0)
end

local HEX32, HEX64 = "^" .. ("%x"):rep(32), "^" .. ("%x"):rep(64)

-- A cookie's value when it is one the gateway made: `id.mac`, the MAC
-- under the session key of `use .. " " .. id`.
local function minted(r, name, use, id_pattern)
  local text = ngx.var["cookie_" .. name]
  if type(text) ~= "string" or #text > 200 then return nil end
  local id, mac = match(text, "^(%x+)%.(%x+)$")
  if not id or not match(id, id_pattern .. "$") or #mac ~= 64 then return nil end
  if not links.same(lower(mac), links.sign(r.keys.session, use .. " " .. lower(id))) then return nil end
  return lower(id)
end

local function mint(r, use, id)
  return id .. "." .. links.sign(r.keys.session, use .. " " .. id)
end

-- The sign-in forms' cookie and the CSRF token bound to it: kept when the
-- request brings a valid one, else a new one (a sign-in link opened from
-- a mail brings none: SameSite=Strict).
local function signin_token(r)
  local id = minted(r, _M.SIGNIN_COOKIE, "signin", HEX32)
  if not id then
    id = core.random_hex(16)
    set_cookie(r, _M.SIGNIN_COOKIE, mint(r, "signin", id), PORTAL.absolute_seconds)
  end
  r.signin_id = id
  return links.sign(r.keys.csrf, "signin " .. id)
end

------------------------------------------------------------------------
-- The store
------------------------------------------------------------------------

-- Calls a store method; the store's own unavailability (503s) is raised
-- through the gateway's refusal, answered as a page by handle.
local function call(r, name, ...)
  local s = r.gw.store()
  return s[name](s, ...)
end

local UNAVAILABLE = { busy = true, io_error = true, store_error = true, wrong_process = true,
                      store_unavailable = true, timeout = true, no_catalogue = true }

-- The answer of a store call that must succeed: a 503 code goes to the
-- gateway's refusal (its words, Retry-After); others raise a bug.
local function must(r, value, message, code)
  if value == nil then
    if UNAVAILABLE[code] then r.gw.refusal(message, code) end
    error(format("licensor.portal: store: %s: %s", tostring(code), tostring(message)), 0)
  end
  return value
end

------------------------------------------------------------------------
-- Requests
------------------------------------------------------------------------

-- The session of the request, or nil: a cookie the gateway minted for a
-- session the store still holds.
local function session_of(r)
  local token = minted(r, _M.SESSION_COOKIE, "session", HEX64)
  if not token then return nil end
  local s, message, code = call(r, "portal_session", token, r.now)
  if not s then
    if code == "no_session" then return nil end
    must(r, nil, message, code)
  end
  r.session, r.token = s, token
  r.csrf = links.sign(r.keys.csrf, s.id_hash)
  return s
end

-- The body of a POST (at most constants.MAX_BODY_BYTES: nginx refuses
-- more with 413 before this runs).
local function body_of()
  ngx.req.read_body()
  local data = ngx.req.get_body_data()
  if data == nil then
    if ngx.req.get_body_file() then refuse(413, nil, "The form is too large.") end
    return ""
  end
  return data
end

-- One field given once, a string, or nil.
local function field(args, name)
  local v = args[name]
  if v == nil then return nil end
  if type(v) ~= "string" then
    refuse(400, nil, "The form's field " .. name .. " must be given once, with a value.")
  end
  return v
end

local FORM_TYPE = "application/x-www-form-urlencoded"

-- An urlencoded form's fields.
local function form_of()
  local content_type = lower(ngx.var.content_type or "")
  if sub(content_type, 1, #FORM_TYPE) ~= FORM_TYPE then
    refuse(415, nil, "This form is sent as " .. FORM_TYPE .. ".")
  end
  local args = ngx.decode_args(body_of(), MAX_FIELDS + 1)
  local n = 0
  for _ in pairs(args) do n = n + 1 end
  if n > MAX_FIELDS then refuse(400, nil, "The form has too many fields.") end
  return args
end

-- The parts of a multipart/form-data body: name -> {value=, filename=}.
local function multipart_of()
  local content_type = ngx.var.content_type or ""
  if lower(sub(content_type, 1, 19)) ~= "multipart/form-data" then
    refuse(415, nil, "This form is sent as multipart/form-data.")
  end
  local boundary = match(content_type, ';%s*[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]="([^"]+)"') or
    match(content_type, ";%s*[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]=([^;%s]+)")
  if not boundary or #boundary > 70 then refuse(400, nil, "The upload has no multipart boundary.") end
  local body = body_of()
  local delimiter = "--" .. boundary
  local at = find(body, delimiter, 1, true)
  if not at then refuse(400, nil, "The upload is not a multipart form.") end
  local parts, n = {}, 0
  at = at + #delimiter
  while true do
    if sub(body, at, at + 1) == "--" then break end                     -- the closing delimiter
    if sub(body, at, at + 1) ~= "\r\n" then refuse(400, nil, "The upload is malformed.") end
    local head_end = find(body, "\r\n\r\n", at + 2, true)
    if not head_end or head_end - at > 1024 then refuse(400, nil, "The upload is malformed.") end
    local head = sub(body, at + 2, head_end - 1)
    local next_at = find(body, "\r\n" .. delimiter, head_end + 4, true)
    if not next_at then refuse(400, nil, "The upload is malformed.") end
    n = n + 1
    if n > MAX_FIELDS then refuse(400, nil, "The upload has too many parts.") end
    local disposition = match("\r\n" .. head, "\r\n[Cc]ontent%-[Dd]isposition:%s*form%-data([^\r\n]*)")
    local name = disposition and match(disposition, ';%s*name="([^"]*)"')
    if not name then refuse(400, nil, "The upload is malformed.") end
    if parts[name] then refuse(400, nil, "The upload's part " .. name .. " is given twice.") end
    parts[name] = { value = sub(body, head_end + 4, next_at - 1),
                    filename = match(disposition, ';%s*filename="([^"]*)"') }
    at = next_at + 2 + #delimiter
  end
  return parts
end

-- Whether a POST comes from a page of this portal: the Origin a browser
-- sends must be this one (the request's own, or the public url's).
local function same_origin(r)
  local origin = ngx.var.http_origin
  -- "null": what browsers send from a page whose Referrer-Policy is
  -- no-referrer (every portal page); the form token decides alone.
  if origin == nil or origin == "null" then return true end
  origin = lower(origin)
  local own = (ngx.var.https == "on" and "https://" or "http://") .. lower(ngx.var.http_host or "")
  local public = type(r.gw.settings.public_url) == "string" and
    lower(match(r.gw.settings.public_url, "^(%a+://[^/]+)") or "") or nil
  return origin == own or origin == public
end

local CSRF_MESSAGE = "This form has expired or did not come from this portal: go back, reload the page " ..
  "and send it again."

-- The CSRF check of a POST: the token of the form must be the session's
-- (or, for the sign-in forms, the sign-in cookie's).
local function check_csrf(r, given, expected)
  if not same_origin(r) or type(given) ~= "string" or not expected or not links.same(given, expected) then
    refuse(403, "Form refused", CSRF_MESSAGE)
  end
end

-- A signed-in owner, or (GET) a redirect to the sign-in page, (POST) 403.
local function signed_in(r)
  if session_of(r) then return r.session end
  -- Only a cookie that was sent is cleared: a cross-site POST comes without
  -- it (SameSite=Strict), and its answer must not sign the browser out.
  if ngx.var["cookie_" .. _M.SESSION_COOKIE] then clear_cookie(r, _M.SESSION_COOKIE) end
  if r.method == "GET" then
    redirect(r, "/portal/")
    return nil
  end
  refuse(403, "Signed out", "Your session has ended: sign in again.")
end

-- A per-client count of `kind` per minute, 429 beyond; off when the
-- gateway's per-address limit is (--rate-per-ip 0: every client behind
-- one address).
local function per_client(r, kind, rate)
  local limits = r.gw.settings.limits
  if not limits or limits.per_ip <= 0 then return end
  local wait = limits:over(kind, ngx.var.binary_remote_addr or "?", rate, WINDOW)
  if wait then
    refuse(429, nil, "Too many requests from this address: try again in " .. wait .. " seconds.",
           { ["Retry-After"] = tostring(wait) })
  end
end

-- The key of a URL: its canonical form, or nil (malformed keys answer as
-- unknown ones).
local function url_key(text)
  if #text > 128 then return nil end
  local key = core.normalise_key(text)
  return key
end

local UNKNOWN_TITLE = "No such license"
local UNKNOWN = "None of your licenses has this key."

-- The 404 of a key that is not the owner's: the same answer for a key
-- that is malformed, unknown or another owner's.
local function unknown_key()
  refuse(404, UNKNOWN_TITLE, UNKNOWN)
end

-- The owner's view of key, or the unknown answer.
local function owned_view(r, key)
  if not key then unknown_key() end
  local v, message, code = call(r, "portal_license", r.session.email, key, r.on)
  if v == nil then
    if code == "unknown_key" or code == "invalid_key" then unknown_key() end
    must(r, nil, message, code)
  end
  return v
end

------------------------------------------------------------------------
-- Routes
------------------------------------------------------------------------

local ROUTES = {}

-- GET /portal/: the sign-in form, or the licenses with a session.
ROUTES.home = { GET = function(r)
  if session_of(r) then return redirect(r, "/portal/licenses") end
  local csrf = signin_token(r)
  send(r, 200, pages.signin(page_ctx(r, { csrf = csrf })))
end }

ROUTES.style = { GET = function(r)
  send(r, 200, style, "text/css; charset=utf-8")
end }

ROUTES.icon = { GET = function(r)
  send(r, 200, pages.ICON_SVG, "image/svg+xml")
end }

local INVALID_LINK = "This sign-in link was used, has expired or is unknown: ask for a new one."

-- The sign-in id of a link's token `id.mac` when the MAC is right.
local function link_id(r, token)
  if type(token) ~= "string" or #token > 200 then return nil end
  local id, mac = match(token, "^(%x+)%.(%x+)$")
  if not id or #id ~= 32 or #mac ~= 64 then return nil end
  if not links.same(lower(mac), links.sign(r.keys.signin, lower(id))) then
    -- A well-formed link with a wrong MAC: a forgery, or a deliverer whose
    -- --link-secret is not this gateway's (every customer then sees "used,
    -- expired or unknown"); the operator learns which from here.  Requests
    -- that reach this are limited per client address.
    ngx.log(ngx.WARN, "licensor: a portal sign-in link whose signature does not match this gateway's ",
            "--link-secret (a forgery, or a deliverer with another secret)")
    return nil
  end
  return lower(id)
end

local function ask_link(r, form)
  local email = field(form, "email")
  if not email or #email > pages.MAX_EMAIL then
    local ctx = page_ctx(r, { csrf = r.signin_csrf, problem = "Enter an email address." })
    return send(r, 400, pages.signin(ctx, email and sub(email, 1, pages.MAX_EMAIL) or ""))
  end
  per_client(r, "portal-signin", PORTAL.signins_per_client)
  -- The address is checked as the store checks it (trimmed, without case)
  -- before anything is answered ...
  if not address.fold(email) then
    return send(r, 400, pages.signin(page_ctx(r, { csrf = r.signin_csrf,
      problem = "That is not an email address; it looks like name@example.com." }), email))
  end
  -- ... and the page, the same whether or not the address has licenses,
  -- goes out before the store looks it up: the answer's timing does not
  -- say whether a sign-in was written (ngx.eof ends the response; the
  -- handler goes on).  A store that fails now is only logged: the
  -- customer asks again.
  send(r, 200, pages.sent(page_ctx(r), email))
  ngx.eof()
  local ok, answer, message = pcall(call, r, "portal_signin", email, r.now)
  if not ok or answer == nil then
    ngx.log(ngx.ERR, "licensor: portal sign-in not written: ", tostring(ok and message or answer))
  end
end

local function spend_link(r, form)
  per_client(r, "portal-redeem", PORTAL.signins_per_client)
  local id = link_id(r, field(form, "token"))
  if not id then refuse(400, "Sign-in link refused", INVALID_LINK, nil) end
  local token, message, code = call(r, "portal_redeem", id, r.now)
  if token == nil then
    if code ~= "invalid_link" then must(r, nil, message, code) end
    refuse(400, "Sign-in link refused", INVALID_LINK)
  end
  -- A new session cookie, whatever cookie came: no session is ever one
  -- the client chose.
  r.session = nil
  clear_cookie(r, _M.SIGNIN_COOKIE)
  set_cookie(r, _M.SESSION_COOKIE, mint(r, "session", lower(token)), PORTAL.absolute_seconds)
  redirect(r, "/portal/licenses")
end

ROUTES.signin = {
  -- The page a sign-in link opens: a button that spends it.
  GET = function(r)
    local args = ngx.req.get_uri_args(MAX_FIELDS)
    local token = field(args, "token")
    if not link_id(r, token) then
      return problem_page(r, 400, "Sign-in link refused", INVALID_LINK)
    end
    local csrf = signin_token(r)
    send(r, 200, pages.confirm(page_ctx(r, { csrf = csrf }), token))
  end,
  POST = function(r)
    local form = form_of()
    local id = minted(r, _M.SIGNIN_COOKIE, "signin", HEX32)
    r.signin_csrf = id and links.sign(r.keys.csrf, "signin " .. id) or nil
    check_csrf(r, field(form, "csrf"), r.signin_csrf)
    if form.token ~= nil then return spend_link(r, form) end
    return ask_link(r, form)
  end,
}

ROUTES.signout = { POST = function(r)
  local form = form_of()
  if not session_of(r) then
    if ngx.var["cookie_" .. _M.SESSION_COOKIE] then clear_cookie(r, _M.SESSION_COOKIE) end
    refuse(403, "Signed out", "Your session has ended already: sign in again.")
  end
  check_csrf(r, field(form, "csrf"), r.csrf)
  call(r, "portal_signout", r.token, r.now)
  r.session, r.csrf = nil, nil
  clear_cookie(r, _M.SESSION_COOKIE)
  redirect(r, "/portal/")
end }

ROUTES.licenses = { GET = function(r)
  if not signed_in(r) then return end
  local list = must(r, call(r, "portal_licenses", r.session.email, r.on))
  send(r, 200, pages.licenses(page_ctx(r), list))
end }

ROUTES.license = { GET = function(r, key)
  if not signed_in(r) then return end
  send(r, 200, pages.license(page_ctx(r), owned_view(r, key)))
end }

-- A build number of a query, or nil.
local function build_number(text)
  if text == nil then return nil end
  if not match(text, "^%d+$") or #text > 15 then refuse(400, nil, "build: a build number.") end
  return tonumber(text)
end

ROUTES.download = { GET = function(r, key)
  if not signed_in(r) then return end
  owned_view(r, key)
  local download = require "licensor.gateway.download"
  local args = ngx.req.get_uri_args(MAX_FIELDS)
  local number = build_number(field(args, "build"))
  local platform = field(args, "platform")
  local s = r.gw.store()
  local lic, cat, code = s:license(key)
  if not lic then
    if code == "unknown_key" then unknown_key() end
    must(r, nil, cat, code)
  end
  local ok, location = pcall(download.grant, r.gw, key, lic, cat, number, platform, "portal")
  if not ok then
    local err = location
    if not failure.is(err) or not err.status then error(err, 0) end
    local message = tostring(err.message)
    if err.eligible then
      message = message .. format(". This license may install Build %d (released %s).", err.eligible.number,
                                  require("licensor.portal.view").date_text(err.eligible.released))
    end
    refuse(err.status, "Download refused", message, err.headers)
  end
  redirect(r, location)
end }

ROUTES.deactivate = { POST = function(r, key)
  local form = form_of()
  signed_in(r)
  check_csrf(r, field(form, "csrf"), r.csrf)
  local server = field(form, "server")
  if not server or not core.check_name(server) then refuse(400, nil, "Name the server to deactivate.") end
  if not key then unknown_key() end
  local verdict, message, code = call(r, "portal_deactivate", r.session.email, key, server, r.on)
  if verdict == nil then
    if code == "unknown_key" or code == "invalid_key" then unknown_key() end
    if code == "self_service_limit" then refuse(403, "Not deactivated", message .. ".") end
    if code == "invalid_request" or code == "invalid_date" then
      refuse(400, "Not deactivated", message .. ".")
    end
    if not UNAVAILABLE[code] then refuse(409, "Not deactivated", tostring(message) .. ".") end
    must(r, nil, message, code)
  end
  local v = owned_view(r, key)
  if not verdict.ok then
    local ctx = page_ctx(r, { problem = "Not deactivated: " .. tostring(verdict.message) .. "." })
    return send(r, 409, pages.license(ctx, v))
  end
  local left = verdict.remaining and format(" You may deactivate %d more server%s yourself.",
                                             verdict.remaining, verdict.remaining == 1 and "" or "s") or ""
  if verdict.remaining and v.self_deactivation then
    v.self_deactivation.left = verdict.remaining
  end
  local ctx = page_ctx(r, { notice = "Server " .. server .. " is deactivated: its slot is free." .. left })
  send(r, 200, pages.license(ctx, v))
end }

-- A file name for the certificate of `server`: its safe characters only.
local function certificate_name(server)
  local name = server:gsub("[^%w%.%-_]", "_"):gsub("^[%.]+", "")
  if name == "" or #name > 100 then name = "certificate" end
  return name .. ".cert"
end

ROUTES.activate = { POST = function(r, key)
  local parts = multipart_of()
  signed_in(r)
  check_csrf(r, parts.csrf and parts.csrf.value, r.csrf)
  if not key then unknown_key() end
  local request = parts.request
  if not request or request.value == "" then
    refuse(400, "No request", "Choose the activation request file.")
  end
  if #request.value > constants.MAX_CERTIFICATE_BYTES then
    refuse(413, nil, "An activation request is at most " .. constants.MAX_CERTIFICATE_BYTES .. " bytes.")
  end
  local text = request.value:gsub("\r\n", "\n")
  local read, why = certificate.read_request(text)
  if not read then refuse(400, "Not an activation request", tostring(why) .. ".") end
  if core.normalise_key(read.license) ~= key then
    owned_view(r, key)
    refuse(400, "Another license", "This activation request is for another license: upload it on that " ..
      "license's page.")
  end
  local answer, message, code = call(r, "portal_activate", r.session.email, text, r.on)
  if answer == nil then
    if code == "unknown_key" or code == "invalid_key" then unknown_key() end
    if code == "invalid_request" then refuse(400, "Not an activation request", tostring(message) .. ".") end
    if code == "no_signing_key" then
      refuse(503, "Unavailable", "This portal signs no certificates: ask support for this one.",
             { ["Retry-After"] = "3600" })
    end
    if not UNAVAILABLE[code] then refuse(409, "No certificate", tostring(message) .. ".") end
    must(r, nil, message, code)
  end
  if answer.ok and type(answer.certificate) ~= "string" then
    refuse(409, "No certificate", "The server is activated, but its certificate could not be signed: ask " ..
      "support for it.")
  end
  if not answer.ok then
    local v = owned_view(r, key)
    local ctx = page_ctx(r, { problem = "No certificate: " .. tostring(answer.message) .. "." })
    return send(r, 409, pages.license(ctx, v))
  end
  send(r, 200, answer.certificate, "application/octet-stream",
       { ["Content-Disposition"] = 'attachment; filename="' .. certificate_name(answer.server) .. '"' })
end }

-- The route of a path: its table and the license key text, or nil.
local function route_of(uri)
  if uri == "/portal/" then return ROUTES.home end
  if uri == "/portal/style.css" then return ROUTES.style end
  if uri == pages.ICON then return ROUTES.icon end
  if uri == "/portal/signin" then return ROUTES.signin end
  if uri == "/portal/signout" then return ROUTES.signout end
  if uri == "/portal/licenses" or uri == "/portal/licenses/" then return ROUTES.licenses end
  local key, rest = match(uri, "^/portal/licenses/([^/]+)(.*)$")
  if not key then return nil end
  if rest == "" then return ROUTES.license, key end
  if rest == "/download" then return ROUTES.download, key end
  if rest == "/deactivate" then return ROUTES.deactivate, key end
  if rest == "/activate" then return ROUTES.activate, key end
  return nil
end

local function allowed(routes)
  local list = {}
  if routes.GET then list[#list + 1] = "GET, HEAD" end
  if routes.POST then list[#list + 1] = "POST" end
  return table.concat(list, ", ")
end

local function route(r)
  r.gw.client_limit()
  local uri = ngx.var.uri
  if uri == "/portal" then return redirect(r, "/portal/") end
  if not r.keys then
    refuse(404, "No portal", "The customer portal is not available on this gateway.")
  end
  local routes, key_text = route_of(uri)
  if not routes then refuse(404, nil, "There is no such page.") end
  local fn = routes[r.method]
  if not fn then
    refuse(405, nil, "This page takes " .. allowed(routes) .. ".", { Allow = allowed(routes) })
  end
  local key = key_text and url_key(key_text)
  if key then r.gw.key_limit(key) end
  return fn(r, key_text and (key or false) or nil)
end

-- handle(gw): the route (gw: licensor.gateway's context).
function _M.handle(gw)
  local method = ngx.req.get_method()
  local r = { gw = gw, keys = gw.settings.link_keys, method = method == "HEAD" and "GET" or method,
              now = ngx.time(), cookies = {} }
  local ok, err = pcall(function()
    r.on = gw.today()
    return route(r)
  end)
  if ok then return end
  if failure.is(err) and err.status then
    local message = err.code == "portal" and err.message or tostring(err.message)
    local status = err.status
    if status >= 500 and err.code ~= "portal" then
      message = "The license store is unavailable: try again in a moment."
    end
    return problem_page(r, status, err.title or TITLES[status], message, err.headers)
  end
  ngx.log(ngx.ERR, "licensor: portal: ", tostring(err))
  r.cookies = {}
  problem_page(r, 500, "Internal error", "Something went wrong on our side; it has been logged.")
end

-- error_page(status): nginx's own refusal of a portal request (a body
-- over the limit, a malformed request: constants.GATEWAY_ERRORS) as an
-- HTML page with the portal's headers (licensor.gateway's error_page).
function _M.error_page(status)
  local words = constants.GATEWAY_ERRORS[status == 431 and 494 or status]
  local message = words and (words[2]:gsub("^%l", string.upper) .. ".") or "The request was refused."
  problem_page({ cookies = {} }, status, TITLES[status] or "Refused", message)
end

return _M
