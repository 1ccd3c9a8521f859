-- licensor.portal.html -- the portal's templates: text is escaped unless
-- it is markup this module made (doc/portal.md).
--
--   html.render("<p>{{name}}</p>", { name = owner })  -> markup
--   html.join(list [, separator])                       -> markup
--   html.each(list, function(item) return html.render(...) end)
--
-- A template names its values `{{name}}`; `{{name?}}` may be nil (nothing
-- is written).  A value is a string or a number, escaped for text and for
-- quoted attributes alike (& < > " '), or markup: what render, join and
-- each answer, carried in a table of this module's own metatable, so that
-- no string from a license, a catalogue or a request can pass as markup.
-- A missing value, or one of another type, is a programming error.
-- Templates are the page modules' literals: never build one from data.
local type, tostring, setmetatable, getmetatable, error = type, tostring, setmetatable, getmetatable, error
local gsub, format, concat = string.gsub, string.format, table.concat

local _M = {}

local Markup = {}
Markup.__index = Markup
Markup.__tostring = function(m) return m.text end

local function markup(text)
  return setmetatable({ text = text }, Markup)
end

-- is_markup(v) -> whether v is markup this module made.
function _M.is_markup(v)
  return getmetatable(v) == Markup
end
local is_markup = _M.is_markup

local ENTITIES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

-- escape(text) -> the text with & < > " ' written as entities.
function _M.escape(text)
  return (gsub(tostring(text), "[&<>\"']", ENTITIES))
end
local escape = _M.escape

-- The text a value writes into a template.
local function written(value, name)
  if is_markup(value) then return value.text end
  local t = type(value)
  if t == "string" or t == "number" then return escape(value) end
  error(format("licensor.portal.html: {{%s}} is %s; a string, a number or markup expected", name, t), 4)
end

-- render(template, values) -> markup.
function _M.render(template, values)
  local text = gsub(template, "{{([%w_]+)(%??)}}", function(name, optional)
    local value = values[name]
    if value == nil and optional == "?" then return "" end
    if value == nil then error(format("licensor.portal.html: {{%s}} has no value", name), 3) end
    return written(value, name)
  end)
  return markup(text)
end

-- join(list [, separator]) -> the markup (or escaped text) of list, in order.
function _M.join(list, separator)
  local parts = {}
  for i = 1, #list do parts[i] = written(list[i], "join") end
  return markup(concat(parts, separator or ""))
end

-- each(list, fn) -> the markup of fn(item, i) for every item of list.
function _M.each(list, fn)
  local parts = {}
  for i = 1, #(list or {}) do parts[i] = written(fn(list[i], i), "each") end
  return markup(concat(parts))
end

-- text(markup) -> the string to send.
function _M.text(m)
  if not is_markup(m) then error("licensor.portal.html: markup expected", 2) end
  return m.text
end

-- The empty markup.
_M.nothing = markup("")

-- component(text) -> text percent-encoded for a URL's path segment or
-- query value (RFC 3986's unreserved characters stay).
function _M.component(text)
  return (gsub(tostring(text), "[^%w%-%._~]", function(c) return format("%%%02X", c:byte()) end))
end

-- url(path, {name, value, ...}) -> "path?name=value&..." with every value
-- percent-encoded (path is the caller's literal); a string, escaped when
-- it is written into a template like any other.
function _M.url(path, query)
  if not query or #query == 0 then return path end
  local parts = {}
  for i = 1, #query, 2 do
    parts[#parts + 1] = query[i] .. "=" .. _M.component(query[i + 1])
  end
  return path .. "?" .. concat(parts, "&")
end

return _M
