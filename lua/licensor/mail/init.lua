-- licensor.mail -- outbox actions addressed to the customer, mailed to the
-- license's owner (its `email` field) by SMTP: the store:on handlers
-- `licensor deliver --smtp` installs.
--
-- Each action has a template (licensor.mail.template): ACTION.txt in the
-- deliverer's template directory, or the bundled one.  The message is
-- plain UTF-8 text, quoted-printable, with a Message-ID made from the
-- outbox row, so the copy a retry may send (delivery is at least once) is
-- recognisably the same message.
local template = require "licensor.mail.template"
local bundled = require "licensor.mail.bundled"
local smtp = require "licensor.mail.smtp"
local money = require "licensor.money"
local actions = require "licensor.actions"
local tls = require "licensor.tls"
local links = require "licensor.links"
local constants = require "licensor.constants"

local ipairs, tostring, concat, setmetatable, type = ipairs, tostring, table.concat, setmetatable, type
local os_date, find, gsub, sub, lower, floor = os.date, string.find, string.gsub, string.sub, string.lower,
  math.floor
local gmatch = string.gmatch

local _M = {}

-- The outbox actions meant for the customer, in store:on's order
-- (licensor.actions owns the list).
_M.ACTIONS = actions.CUSTOMER

-- templates(dir) -> {action = template}, or nil, "file:line: why", code:
-- dir/ACTION.txt where it exists, the bundled text otherwise.
function _M.templates(dir)
  local list = {}
  for _, action in ipairs(_M.ACTIONS) do
    local path = dir and (dir .. "/" .. action .. ".txt")
    local f = path and io.open(path, "rb")
    local t, why, code
    if f then
      f:close()
      t, why, code = template.read(path)
    else
      t, why, code = template.parse(bundled[action], "(bundled) " .. action .. ".txt")
    end
    if not t then return nil, why, code end
    list[action] = t
  end
  return list
end

-- The placeholder values of an action on a license.  {days} is the
-- reminder's detail.days: the days left (or gone) on the day the sweep
-- took it, not the policy's nominal offset.
local function values(lic, action, product_name)
  local detail = action.detail or {}
  local days = detail.days
  if days and days < 0 then days = -days end
  return { owner = lic.owner or lic.email, email = lic.email, key = lic.key,
           product = product_name or lic.product, edition = lic.edition, item = detail.item,
           days = days, date = action.refers_to or action.on,
           price = detail.price and money.format(detail.price, detail.currency) }
end

-- signin_link(portal, id) -> the sign-in link of a portal_signin row:
-- PORTAL_URL/portal/signin?token=ID.MAC, MAC = links.sign(keys.signin, ID)
-- (portal: {url=, secret=}, the deliverer's --portal-url and the text of
-- its --link-secret file, the gateway's).
function _M.signin_link(portal, id)
  local keys = portal.keys or links.keys(portal.secret)
  return (portal.url:gsub("/+$", "")) .. "/portal/signin?token=" .. id .. "." .. links.sign(keys.signin, id)
end

-- The link of a portal_signin row, or nil, why, kind.
local function signin_values(lic, action, portal)
  local detail = action.detail or {}
  local id = detail.signin
  if type(id) ~= "string" or not find(id, "^%x+$") then
    return nil, "outbox row " .. tostring(action.id) .. ": portal_signin without its sign-in id",
      "undeliverable"
  end
  -- The license's address changed since the sign-in was asked: the link
  -- is for the old one, whose mailbox this no longer is.
  if detail.email and lower(lic.email) ~= detail.email then
    return nil, "license " .. lic.key .. "'s address is no longer the one the sign-in was asked for",
      "undeliverable"
  end
  if not portal then
    return nil, "portal_signin needs the portal's address and link secret: licensor deliver " ..
      "--portal-url URL --link-secret FILE", "retry"
  end
  return _M.signin_link(portal, id)
end

-- A header value: RFC 2047 base64 words when it is not plain ASCII, each
-- of at most 45 bytes of text (72 characters: the limit is 75) and never
-- splitting a UTF-8 sequence, on folded lines.
local function header_text(text)
  if not find(text, "[\128-\255]") then return text end
  local b64 = require("mime").b64
  local words, i = {}, 1
  while i <= #text do
    local j = i + 44
    -- Back off while the byte after the cut continues a sequence.
    while j < #text and j > i and find(sub(text, j + 1, j + 1), "[\128-\191]") do j = j - 1 end
    words[#words + 1] = "=?UTF-8?B?" .. b64(sub(text, i, j)) .. "?="
    i = j + 1
  end
  return concat(words, "\r\n ")
end

local function quoted_printable(text)
  local mime = require "mime"
  local encode = require("ltn12").filter.chain(mime.normalize(), mime.encode("quoted-printable"),
                                               mime.wrap("quoted-printable"))
  return encode(text) .. (encode(nil) or "")
end

-- A body that is plain ASCII in lines of at most 998 bytes goes as 7bit,
-- as written: a sign-in link stays one line that any mail reader (and a
-- debugging SMTP server's printout) shows whole; anything else is
-- quoted-printable, which keeps the wire 7-bit.
local function seven_bit(body)
  -- (NUL found plainly: a pattern cannot hold it on LuaJIT)
  if find(body, "[\128-\255]") or find(body, "\0", 1, true) or find(body, "\r", 1, true) then return false end
  for line in gmatch(body .. "\n", "([^\n]*)\n") do
    if #line > 998 then return false end
  end
  return true
end

-- message(from, to, subject, body, id) -> the text SMTP's DATA carries.
function _M.message(from, to, subject, body, id)
  local domain = from:match("@(.+)$") or "licensor.invalid"
  local plain = seven_bit(body)
  local headers = {
    "From: " .. from, "To: " .. to, "Subject: " .. header_text(subject),
    "Date: " .. os_date("!%a, %d %b %Y %H:%M:%S +0000"),
    "Message-ID: <lsr_" .. tostring(id) .. "@" .. domain .. ">",
    "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: " .. (plain and "7bit" or "quoted-printable"),
    "Auto-Submitted: auto-generated",
  }
  -- DATA's terminator (CRLF . CRLF) ends the last line.
  local text = gsub(plain and body or quoted_printable(body), "\r?\n", "\r\n")
  return concat(headers, "\r\n") .. "\r\n\r\n" .. (text:gsub("\r\n$", ""))
end

-- compose(store, action, templates, names, portal) -> license, subject,
-- body; or nil, why, "undeliverable" for a license without an address,
-- nil, why, "retry" when the license cannot be read now (or, for
-- portal_signin, without portal {url=, secret=}).  names caches product
-- names by id.
function _M.compose(store, action, templates, names, portal)
  local lic, msg = store:get(action.key)
  if not lic then return nil, "license " .. tostring(action.key) .. ": " .. tostring(msg), "retry" end
  if not lic.email then
    return nil, "license " .. lic.key .. " has no email address (licensor set KEY --email ADDRESS)",
      "undeliverable"
  end
  names = names or {}
  if names[lic.product] == nil then
    local cat = store:catalogue()
    local product = cat and cat:product(lic.product)
    names[lic.product] = product and product.name or lic.product
  end
  local v = values(lic, action, names[lic.product])
  if action.action == "portal_signin" then
    local link, why, kind = signin_values(lic, action, portal)
    if not link then return nil, why, kind end
    v.link, v.minutes = link, floor(constants.PORTAL.signin_seconds / 60)
  end
  local subject, body = template.render(templates[action.action], v)
  return lic, subject, body
end

-- handler(store, opts) -> a store:on handler.  opts: from, templates (from
-- _M.templates), portal ({url=, secret=}: sign-in links; without it a
-- portal_signin row fails, to be tried again, naming the flags), and
-- licensor.mail.smtp's host, port, timeout, starttls, user, password, tls
-- (licensor.tls's {cafile=, insecure=}; or cafile).
-- It answers true when the server took the message.  A license without an
-- email address, or a recipient or message the server refuses for good
-- (5xx), answers nil, why, "undeliverable": the row is dead-lettered at
-- once, to be re-queued (licensor outbox retry ID) once the address is
-- mended.  Anything else that fails answers nil, why, "retry", and the
-- delivery is tried again later.
function _M.handler(store, opts)
  local names = {}
  local portal = opts.portal and { url = opts.portal.url, keys = links.keys(opts.portal.secret) }
  opts = setmetatable({ tls = tls.options(smtp.tls_options(opts)) }, { __index = opts })
  return function(action)
    local lic, subject, body = _M.compose(store, action, opts.templates, names, portal)
    if not lic then return nil, subject, body end
    local sent, why, permanent = smtp.send(opts, lic.email,
                                           _M.message(opts.from, lic.email, subject, body, action.id))
    if sent then return true end
    return nil, why, permanent and "undeliverable" or "retry"
  end
end

return _M
