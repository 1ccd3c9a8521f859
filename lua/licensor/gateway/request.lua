-- licensor.gateway.request -- checking what a request body says before
-- anything reaches the store: JSON objects only, fields of the right type
-- and size, keys validated by their check symbol.  Each check answers the
-- value or raises a licensor.failure with the HTTP status (and extra
-- headers) that the handler turns into a JSON answer.
local core = require "licensor.core"
local failure = require "licensor.failure"
local cjson = require("cjson.safe").new()

local _M = {}

local type, tostring, pairs, floor = type, tostring, pairs, math.floor

local MAX_NUMBER = require("licensor.constants").MAX_INTEGER   -- 2^53 - 1

-- Raises an answer with this status, code, message (and extra headers).
function _M.refuse(status, code, message, headers)
  failure.raise(code, message, { status = status, headers = headers })
end
local refuse = _M.refuse

cjson.decode_max_depth(20)
-- JSON has no 0x1AFF, Infinity or NaN: lua-cjson would read them as numbers.
cjson.decode_invalid_numbers(false)

-- The JSON object a body holds (string keys only), or a 400 invalid_json.
function _M.decode(data)
  local value = cjson.decode(data)
  if type(value) ~= "table" then refuse(400, "invalid_json", "the body must be a JSON object") end
  for k in pairs(value) do
    if type(k) ~= "string" then refuse(400, "invalid_json", "the body must be a JSON object") end
  end
  return value
end

-- A name field: the store's own check (core.check_name: at most
-- core.MAX_NAME bytes of UTF-8, no control or bidi-override characters).
function _M.string(body, field, optional)
  local v = body[field]
  if v == nil and optional then return nil end
  local ok, message = core.check_name(v, field)
  if not ok then refuse(400, "invalid_request", message) end
  return v
end

-- A whole number field in 1 .. 2^53-1.
function _M.count(body, field, optional)
  local v = body[field]
  if v == nil and optional then return nil end
  if type(v) ~= "number" or v ~= v or v < 1 or v > MAX_NUMBER or floor(v) ~= v then
    refuse(400, "invalid_request", field .. ": a whole number from 1 to 2^53-1")
  end
  return v
end

-- A level: a whole number or "unlimited".
function _M.level(body, field, optional)
  if body[field] == "unlimited" then return "unlimited" end
  return _M.count(body, field, optional)
end

function _M.boolean(body, field)
  local v = body[field]
  if v ~= nil and type(v) ~= "boolean" then refuse(400, "invalid_request", field .. ": true or false") end
  return v
end

-- A list of add-on ids.
function _M.names(body, field)
  local v = body[field]
  if v == nil then return nil end
  if type(v) ~= "table" or #v > 64 then refuse(400, "invalid_request", field .. ": a list of names") end
  for i = 1, #v do
    if not core.check_name(v[i]) then
      refuse(400, "invalid_request", field .. ": a list of names")
    end
  end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  if n ~= #v then refuse(400, "invalid_request", field .. ": a list of names") end
  return v
end

-- A license key: the string must pass its check symbol.
function _M.key(text)
  if type(text) ~= "string" then refuse(400, "invalid_request", "key: a license key string") end
  local key, msg = core.normalise_key(text)
  if not key then refuse(400, "invalid_key", msg) end
  return key
end

-- A date given in a query string (reads only: writes use the server's day).
function _M.date(text, field)
  if type(text) ~= "string" or not core.day(text) then
    refuse(400, "invalid_date", field .. ": a date YYYY-MM-DD")
  end
  return text
end

-- The fields a body may hold; anything else is refused, so a typo never
-- passes silently and no request names the day it is recorded on.
function _M.only(body, allowed)
  for field in pairs(body) do
    if type(field) ~= "string" or not allowed[field] then
      refuse(400, "invalid_request", "unexpected field " .. tostring(field))
    end
  end
end

return _M
