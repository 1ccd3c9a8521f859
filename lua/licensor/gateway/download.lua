-- licensor.gateway.download -- GET /v1/licenses/{key}/download: a license's
-- build, decided with R3-R7, answered with a short-lived signed link that
-- nginx itself serves (secure_link over the artifact directory), or a
-- signed query to an external url (doc/downloads.md).
--
-- Lua decides and signs; it never touches a file's bytes.  The artifact
-- location (nginx_lines) checks the signature and the expiry with
-- secure_link and serves the file with sendfile, Range, ETag and
-- Content-Disposition, all of it nginx's own work.  The portal grants
-- through the same function (grant) after its own ownership check.
local links = require "licensor.links"
local constants = require "licensor.constants"
local failure = require "licensor.failure"
local metrics = require "licensor.gateway.metrics"

local type, tonumber, ipairs, pcall, error = type, tonumber, ipairs, pcall, error
local format, concat, match, byte, gsub = string.format, table.concat, string.match, string.byte, string.gsub
local floor = math.floor

local PORTAL = constants.PORTAL

local _M = {}

-- Where nginx serves the artifact directory, and the internal location of
-- its JSON refusals.
_M.PREFIX = "/artifacts/"
local REFUSALS = "/.licensor-download/"

-- The limits' window, in seconds: the counts of constants.PORTAL are per minute.
local WINDOW = 60

-- A platform as the catalogue spells it (design: at most 32 bytes).
local PLATFORM = "^[a-z0-9][a-z0-9._-]*$"
local MAX_PLATFORM = 32

------------------------------------------------------------------------
-- Links
------------------------------------------------------------------------

-- A download's file name as a query value and in Content-Disposition:
-- bytes outside [A-Za-z0-9._+-] percent-encoded (RFC 5987's form), so
-- that the header nginx writes from it ($arg_name) holds no quote,
-- backslash, semicolon or control character whatever the name holds.
local function encode_name(name)
  return (gsub(name, "[^%w._+-]", function(c) return format("%%%02X", byte(c)) end))
end
_M.encode_name = encode_name

-- The basename of a '/'-separated path.
local function basename(path)
  return match(path, "([^/]+)$") or path
end

-- secure_link's md5 value: the MD5 of the signed text, base64url without
-- padding (ngx_decode_base64url's alphabet).
local function md5_base64url(text)
  local b64 = ngx.encode_base64(ngx.md5_bin(text))
  return (gsub(gsub(b64, "=+$", ""), "[+/]", { ["+"] = "-", ["/"] = "_" }))
end

-- The text secure_link_md5 signs: expires, the URI and the encoded name,
-- then the key (see nginx_lines).  The URI ends in a file name and the
-- name holds no space, so no two links share one text.
local function secure_text(expires, uri, name, key)
  return expires .. uri .. " " .. name .. " " .. key
end
_M.secure_text = secure_text

-- file_link(keys, file, name, expires) -> "/artifacts/FILE?md5=&expires=&name=",
-- the path nginx's secure_link accepts until `expires` (unix seconds).
function _M.file_link(keys, file, name, expires)
  local uri = _M.PREFIX .. file
  local encoded = encode_name(name or basename(file))
  local md5 = md5_base64url(secure_text(expires, uri, encoded, keys.secure_link))
  return uri .. "?md5=" .. md5 .. "&expires=" .. expires .. "&name=" .. encoded
end

-- The signature of an external url: HMAC-SHA256(keys.download,
-- expires .. "\n" .. url), 64 hex digits.
local function url_signature(key, expires, url)
  return links.sign(key, expires .. "\n" .. url)
end

-- signed_url(keys, url, expires) -> url with "expires=T&signature=S"
-- appended (after '&' when it has a query, else '?').
function _M.signed_url(keys, url, expires)
  local sep = url:find("?", 1, true) and "&" or "?"
  return url .. sep .. "expires=" .. expires .. "&signature=" .. url_signature(keys.download, expires, url)
end

-- verify_url(keys, url, now) -> true, or nil, message, code: what a store
-- or CDN in front of external downloads checks (doc/downloads.md).  `keys`
-- is licensor.links.keys(secret) or the download key itself (64 hex);
-- `now` unix seconds.  The signature must be the query's last two
-- parameters, as signed_url appends them.
function _M.verify_url(keys, url, now)
  local key = type(keys) == "table" and keys.download or keys
  if type(key) ~= "string" or type(url) ~= "string" or type(now) ~= "number" then
    error("verify_url(keys, url, now): the link keys, the url and unix seconds expected", 2)
  end
  local head, sep, expires, signature = match(url, "^(.-)([?&])expires=(%d+)&signature=(%x+)$")
  if not head or #expires > 15 then
    return nil, "the link has no expires and signature", "invalid_link"
  end
  -- The url as it was signed: '?' began the query only when it had none,
  -- '&' only when it had one (x.zip?v=1?expires=... is no link of ours:
  -- its origin would read the query as v="1?expires=...").
  if (sep == "&") ~= (head:find("?", 1, true) ~= nil) then
    return nil, "the link has no expires and signature", "invalid_link"
  end
  if not links.same(signature:lower(), url_signature(key, expires, head)) then
    return nil, "the link's signature does not match", "invalid_link"
  end
  if tonumber(expires) < now then return nil, "the link has expired", "expired_link" end
  return true
end

------------------------------------------------------------------------
-- nginx
------------------------------------------------------------------------

-- The JSON bodies of the artifact location's refusals: {status, code, message}.
local LOCATION_ANSWERS = {
  invalid_link = { 403, "invalid_link", "this download link is not valid: ask the download route for a " ..
                   "new one" },
  expired_link = { 410, "expired_link", "this download link has expired: ask the download route for a " ..
                   "new one" },
  forbidden = { 403, "forbidden", "this file is not served (it is not a regular file of the artifact " ..
                "directory)" },
  missing = { 404, "not_found", "the artifact directory has no such file" },
  method = { 405, "method_not_allowed", "use GET" },
  range = { 416, "range_not_satisfiable", "the requested range is past the end of the file" },
}
_M.LOCATION_ANSWERS = LOCATION_ANSWERS
local ANSWER_ORDER = { "invalid_link", "expired_link", "forbidden", "missing", "method", "range" }

local function json_line(code, message)
  return format('{"ok":false,"code":"%s","message":"%s"}', code, message)
end

-- nginx_lines{artifacts=, keys=, public_url=} -> the server block's lines
-- for the artifact location ("" when there is no artifact directory).
-- The directory is absolute and holds no quote, '$', ';' or brace (the
-- runner refuses those); the key is 64 hex digits.
function _M.nginx_lines(opts)
  local dir = opts and opts.artifacts
  if not dir then return "    # no --artifacts: no artifact location" end
  local key = opts.keys and opts.keys.secure_link
  if type(key) ~= "string" or not match(key, "^%x+$") then
    error("licensor.gateway.download: nginx_lines needs the link keys (--link-secret)", 2)
  end
  dir = gsub(dir, "/+$", "")
  local alias = dir .. "/"
  if dir == "" then dir = "/" end
  local lines = {
    "    # Downloads (doc/downloads.md): nginx serves the artifact directory itself.",
    "    # A link is good for its file only, with its signature, until it expires;",
    "    # no symbolic link is followed, and no Lua runs on the data path.",
    "    location ^~ " .. _M.PREFIX .. " {",
    "      secure_link $arg_md5,$arg_expires;",
    '      secure_link_md5 "$secure_link_expires$uri $arg_name ' .. key .. '";',
    '      if ($secure_link = "") { rewrite ^ ' .. REFUSALS .. "invalid_link? last; }",
    '      if ($secure_link = "0") { rewrite ^ ' .. REFUSALS .. "expired_link? last; }",
    '      alias "' .. alias .. '";',
    '      disable_symlinks on from="' .. dir .. '";',
    "      sendfile on;",
    "      tcp_nopush on;",
    "      max_ranges 1;",
    "      etag on;",
    "      default_type application/octet-stream;",
    "      add_header Content-Disposition \"attachment; filename=\\\"$arg_name\\\"; " ..
      "filename*=UTF-8''$arg_name\";",
    '      add_header Cache-Control "private, no-transform";',
    "      add_header X-Content-Type-Options nosniff;",
    "      error_page 403 " .. REFUSALS .. "forbidden;",
    "      error_page 404 " .. REFUSALS .. "missing;",
    "      error_page 405 " .. REFUSALS .. "method;",
    "      error_page 416 " .. REFUSALS .. "range;",
    "    }",
    "    location ^~ " .. REFUSALS .. " {",
    "      internal;",
    "      default_type application/json;",
  }
  for _, name in ipairs(ANSWER_ORDER) do
    local a = LOCATION_ANSWERS[name]
    -- A 416 keeps the file's headers (nginx's range filter set them
    -- before it refused): a second Cache-Control would contradict them,
    -- and a location without add_header of its own would inherit the
    -- server's (no-store), so it gets another one.
    local headers = name == "range" and " add_header X-Content-Type-Options nosniff always;" or
      " add_header Cache-Control no-store always;"
    if name == "method" then headers = headers .. ' add_header Allow "GET, HEAD" always;' end
    lines[#lines + 1] = format("      location = %s%s {%s return %d '%s'; }", REFUSALS, name, headers, a[1],
      json_line(a[2], a[3]))
  end
  lines[#lines + 1] = "    }"
  return concat(lines, "\n")
end

------------------------------------------------------------------------
-- The decision
------------------------------------------------------------------------

-- A refusal with the fields a download answer adds (eligible, platforms):
-- raised like gw.refuse's, so the portal catches the same object.
local function refuse(status, code, message, fields)
  fields = fields or {}
  fields.status = status
  failure.raise(code, message, fields)
end

-- A build record as the answers show it.
local function build_view(b)
  return b and { number = b.number, version = b.version, released = b.released } or nil
end

-- The per-key and per-client limits of downloads, per minute.  The
-- gateway's own per-second limits turned off (--rate-per-key 0,
-- --rate-per-ip 0) turn these off too: an operator who says client
-- addresses mean nothing (every client behind one proxy) means it here.
local function limited(gw, key)
  local limits = gw.settings.limits
  local wait = limits.per_ip > 0 and
    limits:over("dl-ip", ngx.var.binary_remote_addr or "?", PORTAL.downloads_per_client, WINDOW)
  if wait then
    refuse(429, "rate_limited", "too many downloads from this address",
      { headers = { ["Retry-After"] = wait } })
  end
  wait = limits.per_key > 0 and limits:over("dl-key", key, PORTAL.downloads_per_key, WINDOW)
  if wait then
    refuse(429, "rate_limited", "too many downloads for this key", { headers = { ["Retry-After"] = wait } })
  end
end

-- The build the license may download: the eligible one, or `number`
-- when R3-R7 allow it (earlier builds too, R4).  A refusal names the
-- build that is allowed, when there is one.
-- The refusal carries licensor.explain's one line why (gw.because).
local function decide(gw, cat, lic, number, on)
  if number == nil then
    local b, message, code = cat:eligible(lic, on)
    if not b then
      refuse(403, code, message, { because = gw.because(cat, lic, { on = on }, code, message) })
    end
    return b
  end
  local ok, message, code = cat:can_install(lic, number, on)
  if not ok then
    refuse(403, code, message, { eligible = build_view((cat:eligible(lic, on))),
                                 because = gw.because(cat, lic, { on = on, build = number }, code, message) })
  end
  return (cat:build(lic.product, number))
end

local function names_of(downloads)
  local names = {}
  for i, d in ipairs(downloads) do names[i] = d.platform end
  return names
end

-- The build's download for `platform` (the only one when omitted).
local function pick(lic, b, platform)
  local downloads = b.downloads
  local what = format("build %d of %s", b.number, lic.product)
  if type(downloads) ~= "table" or #downloads == 0 then
    refuse(404, "no_download", what .. " has no downloads")
  end
  local names = names_of(downloads)
  local list = concat(names, ", ")
  if platform == nil then
    if #downloads == 1 then return downloads[1] end
    refuse(400, "invalid_request", what .. " has a download per platform: name one with ?platform= (" ..
      list .. ")", { platforms = names })
  end
  if #platform > MAX_PLATFORM or not match(platform, PLATFORM) then
    refuse(400, "invalid_request", "platform: lowercase letters, digits, '.', '_' and '-' (" .. list .. ")",
      { platforms = names })
  end
  for _, d in ipairs(downloads) do
    if d.platform == platform then return d end
  end
  refuse(404, "not_found", what .. " has no download for platform '" .. platform .. "' (" .. list .. ")",
    { platforms = names })
end

-- The link to hand out, valid until `expires`.
local function link(gw, d, expires)
  local settings = gw.settings
  local keys = settings.link_keys
  if not keys then
    refuse(503, "downloads_unavailable", "this gateway hands out no download links: it was started " ..
      "without --link-secret", { headers = { ["Retry-After"] = "60" } })
  end
  if d.url then return _M.signed_url(keys, d.url, expires) end
  if not settings.artifacts then
    refuse(503, "downloads_unavailable", "this gateway serves no artifact files: it was started without " ..
      "--artifacts DIR", { headers = { ["Retry-After"] = "60" } })
  end
  return (settings.public_url or "") .. _M.file_link(keys, d.file, d.name, expires)
end

-- Decides, signs, records: the location, the build and the download.
local function granted(gw, key, lic, cat, number, platform, via)
  local on = gw.today()
  local b = decide(gw, cat, lic, number, on)
  local d = pick(lic, b, platform)
  local expires = floor(ngx.time()) + PORTAL.download_link_seconds
  local location = link(gw, d, expires)
  local ok, message, code = gw.store():record_download(key, { build = b.number, platform = d.platform,
                                                              via = via }, on)
  if not ok then gw.refusal(message, code) end
  metrics.download(gw.metrics(), lic.product, d.platform, via)
  return location, b, d, expires
end

-- grant(gw, key, lic, cat, build_number_or_nil, platform_or_nil, via) ->
-- the location to redirect to; a refusal is raised (a licensor.failure
-- with status, code, message, and eligible or platforms when known).
-- The limits apply; the key is the license's (the portal checked that
-- the signed-in owner holds it).
function _M.grant(gw, key, lic, cat, number, platform, via)
  if via ~= "api" and via ~= "portal" then error("download.grant: via is \"api\" or \"portal\"", 2) end
  if number ~= nil and (type(number) ~= "number" or number % 1 ~= 0) then
    error("download.grant: a build number or nil expected", 2)
  end
  limited(gw, key)
  return (granted(gw, key, lic, cat, number, platform, via))
end

------------------------------------------------------------------------
-- The route
------------------------------------------------------------------------

-- A query parameter given at most once, unescaped, or nil.
local function argument(args, name)
  local v = args[name]
  if v == nil then return nil end
  if type(v) ~= "string" then refuse(400, "invalid_request", name .. ": give it once, with a value") end
  return v
end

local function build_number(text)
  if text == nil then return nil end
  if not match(text, "^%d+$") or #text > 15 then
    refuse(400, "invalid_request", "build: a build number (a whole number)")
  end
  return tonumber(text)
end

local function route(gw, key)
  limited(gw, key)
  local args = ngx.req.get_uri_args(16)
  local number = build_number(argument(args, "build"))
  local platform = argument(args, "platform")
  local lic, cat, code = gw.store():license(key)
  if not lic then gw.refusal(cat, code) end
  local location, b, d, expires = granted(gw, key, lic, cat, number, platform, "api")
  gw.answer(302, { ok = true, location = location, expires = expires, build = build_view(b),
                   platform = d.platform, name = d.name or basename(d.file or d.url),
                   sha256 = d.sha256, size = d.size }, { Location = location })
end

-- handle(gw, key): the route (gw: licensor.gateway's context; the key is
-- valid and within the gateway's per-second limits).  Refusals are
-- answered here, with the allowed build or the platforms when they carry them.
function _M.handle(gw, key)
  local ok, err = pcall(route, gw, key)
  if ok then return end
  if failure.is(err) and err.status then
    return gw.answer(err.status, { ok = false, code = err.code, message = err.message, because = err.because,
                                   eligible = err.eligible, platforms = err.platforms }, err.headers)
  end
  error(err, 0)
end

return _M
