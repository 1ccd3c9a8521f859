-- licensor.mail.template -- the plain-text templates customer mail is
-- written from: a "Subject:" line, a blank line, then the body.
-- {name} is replaced by a value (NAMES below); {{ and }} stand for { and }.
-- A template is checked whole when it is read, so a misspelt placeholder
-- stops the deliverer at start, naming the file and line, instead of
-- reaching a customer.
local type, ipairs, concat = type, ipairs, table.concat
local files = require "licensor.files"
local constants = require "licensor.constants"
local find, sub, format = string.find, string.sub, string.format

local _M = {}

-- The placeholders, documented in the README ("Notifications").
_M.NAMES = { "owner", "email", "key", "product", "edition", "item", "days", "date", "price", "link",
             "minutes" }
local KNOWN = {}
for _, name in ipairs(_M.NAMES) do KNOWN[name] = true end

-- Splits one line into literal text and {name} parts; nil, why if a brace
-- is left open or a name is unknown.
local function parse_line(line, parts)
  local i = 1
  while i <= #line do
    local brace = find(line, "[{}]", i)
    if not brace then
      parts[#parts + 1] = sub(line, i)
      break
    end
    parts[#parts + 1] = sub(line, i, brace - 1)
    local c, nextc = sub(line, brace, brace), sub(line, brace + 1, brace + 1)
    if c == nextc then
      parts[#parts + 1] = c
      i = brace + 2
    elseif c == "}" then
      return nil, "a } without its { (write }} for a brace)"
    else
      local close = find(line, "}", brace, true)
      if not close then return nil, "a { without its } (write {{ for a brace)" end
      local name = sub(line, brace + 1, close - 1)
      if not KNOWN[name] then
        return nil, "unknown placeholder {" .. name .. "} (known: " .. concat(_M.NAMES, ", ") .. ")"
      end
      parts[#parts + 1] = { name }
      i = close + 1
    end
  end
  return parts
end

-- parse(text, name) -> template, or nil, "name:line: why", "invalid_request"
function _M.parse(text, name)
  local lines = {}
  for line in (text:gsub("\r\n", "\n") .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local subject = lines[1] and lines[1]:match("^Subject:%s*(.-)%s*$")
  if not subject or subject == "" then
    return nil, name .. ":1: the first line must be \"Subject: ...\"", "invalid_request"
  end
  if lines[2] ~= "" then
    return nil, name .. ":2: a blank line must follow the subject", "invalid_request"
  end
  local t = { name = name, subject = {}, body = {} }
  local ok, why = parse_line(subject, t.subject)
  if not ok then return nil, name .. ":1: " .. why, "invalid_request" end
  for n = 3, #lines do
    local parts
    parts, why = parse_line(lines[n], {})
    if not parts then return nil, name .. ":" .. n .. ": " .. why, "invalid_request" end
    t.body[#t.body + 1] = parts
  end
  return t
end

-- read(path) -> template, or nil, why, code.
function _M.read(path)
  local text, err, code = files.read(path, "template", constants.MAX_FILE_BYTES)
  if not text then return nil, err, code end
  return _M.parse(text, path)
end

-- fill(parts, values) -> text, and whether every placeholder was missing
-- (false when there is none).
local function fill(parts, values)
  local out, placeholders, missing = {}, 0, 0
  for i, part in ipairs(parts) do
    if type(part) == "table" then
      local v = values[part[1]]
      placeholders = placeholders + 1
      if v == nil or v == "" then missing = missing + 1 end
      out[i] = v == nil and "" or format("%s", v)
    else
      out[i] = part
    end
  end
  return concat(out), placeholders > 0 and missing == placeholders
end

-- render(template, values) -> subject, body.  A value that is missing is
-- left empty, and a body line whose placeholders are all missing is left
-- out (so "Renewal price: {price}" disappears when there is no price).
-- Line breaks in values are made spaces in the subject: a header stays
-- one line.
function _M.render(t, values)
  local subject = fill(t.subject, values):gsub("[\r\n]+", " ")
  local lines = {}
  for _, parts in ipairs(t.body) do
    local line, empty = fill(parts, values)
    if not empty then lines[#lines + 1] = line end
  end
  local body = concat(lines, "\n"):match("^(.-)\n*$") .. "\n"
  return subject, body
end

return _M
