-- licensor.mail.address -- the check an owner's email address passes
-- before the store keeps it: one plain address that SMTP can carry as is
-- and that cannot smuggle a header or a second recipient into a message.
--
-- Accepted: LOCAL@DOMAIN, at most 254 bytes; LOCAL is 1 to 64 of the
-- characters RFC 5322 allows unquoted (dot-atom: letters, digits and
-- !#$%&'*+-/=?^_`{|}~, dots between them); DOMAIN is dot-separated labels
-- of letters, digits and hyphens (not at either end), 63 bytes at most
-- each.  Refused, on purpose: quoted local parts, address literals
-- ([192.0.2.1]), comments and non-ASCII addresses (SMTPUTF8): a vendor's
-- customer list does not need them, and each is a way to confuse a mail
-- server or a spam filter.
local _M = {}

local type, find, match, gmatch, lower = type, string.find, string.match, string.gmatch, string.lower

local function bad(why)
  return nil, "email: " .. why, "invalid_request"
end

local function check_local(part)
  if #part > 64 then return "the part before @ is longer than 64 bytes" end
  if find(part, "^%.") or find(part, "%.$") or find(part, "%.%.") then
    return "dots must stand between characters before @"
  end
  if find(part, "[^%w!#$%%&'*+%-/=?^_`{|}~.]") then
    return "the part before @ holds a character addresses cannot carry unquoted"
  end
end

local function check_domain(domain)
  if not find(domain, "%.") then return "the domain needs a dot (example.com)" end
  for label in gmatch(domain .. ".", "([^.]*)%.") do
    if label == "" then return "the domain has an empty label" end
    if #label > 63 then return "a domain label is longer than 63 bytes" end
    if find(label, "[^%w%-]") then return "the domain holds a character other than letters, digits, -, ." end
    if find(label, "^%-") or find(label, "%-$") then return "a domain label starts or ends with -" end
  end
end

-- check(text) -> text, or nil, "email: why", "invalid_request"
function _M.check(text)
  if type(text) ~= "string" then return bad("text expected") end
  if #text > 254 then return bad("longer than 254 bytes") end
  local localpart, domain = match(text, "^([^@]+)@([^@]+)$")
  if not localpart then return bad("one address LOCAL@DOMAIN expected") end
  local why = check_local(localpart) or check_domain(domain)
  if why then return bad(why) end
  return text
end

-- fold(text) -> the address as owners are compared (trimmed, lowercased)
-- when it is one, or check's refusal: the portal and its store fold the
-- same way.
function _M.fold(text)
  if type(text) ~= "string" then return bad("text expected") end
  return _M.check(lower(match(text, "^%s*(.-)%s*$")))
end

return _M
