-- licensor.money -- amounts in minor units (integers, as everywhere in
-- licensor) written for people: "$1,100.00", "€99.00", "CHF 12.50".
-- JSON keeps the integers; only tables and messages use this.  parse
-- reads money as people write it ("330", "330.00", "$330", "1,100.00") in
-- the catalogue's currency; there is no form for minor units, so 33000.0
-- is thirty-three thousand, never 330.00.
local _M = {}

local floor, format, tostring = math.floor, string.format, tostring

local SYMBOLS = { USD = "$", EUR = "€", GBP = "£", JPY = "¥" }
-- Currencies without minor units: their amounts are whole units.
local NO_DECIMALS = { JPY = true, KRW = true }

local function thousands(n)
  local s = tostring(n)
  local head = #s % 3
  local parts = { head > 0 and s:sub(1, head) or nil }
  for i = head + 1, #s, 3 do parts[#parts + 1] = s:sub(i, i + 2) end
  return table.concat(parts, ",")
end

-- format(amount, currency) -> "$330.00"
function _M.format(amount, currency)
  currency = currency or "USD"
  local sign = amount < 0 and "-" or ""
  amount = amount < 0 and -amount or amount
  local text
  if NO_DECIMALS[currency] then
    text = thousands(amount)
  else
    text = thousands(floor(amount / 100)) .. format(".%02d", amount % 100)
  end
  local symbol = SYMBOLS[currency]
  if symbol then return sign .. symbol .. text end
  return sign .. currency .. " " .. text
end

local MAX_INTEGER = require("licensor.constants").MAX_INTEGER
local CODE_OF = {}
for code, symbol in pairs(SYMBOLS) do CODE_OF[symbol] = code end

-- The number part of an amount as written: "1,100.50" -> "1100", "50", or
-- nil and why.  Thousands separators are commas in groups of three.
local function split(text)
  local whole, fraction = text:match("^([%d,]+)%.(%d*)$")
  if not whole then whole, fraction = text:match("^([%d,]+)$"), "" end
  if not whole then return nil, "an amount such as 330, 330.00, $330 or 1,100.00" end
  if whole:find(",", 1, true) then
    local head, groups = whole:match("^(%d%d?%d?)(,.*)$")
    if not head or groups:gsub(",%d%d%d", "") ~= "" then
      return nil, "commas group thousands (1,100.00)"
    end
    whole = whole:gsub(",", "")
  end
  return whole, fraction
end

-- The currency a leading symbol or code names, and the rest: "$330" ->
-- "USD", "330"; "CHF 12.50" -> "CHF", "12.50"; "330" -> nil, "330".
local function strip(text)
  for symbol, code in pairs(CODE_OF) do
    if text:sub(1, #symbol) == symbol then return code, text:sub(#symbol + 1) end
  end
  local code, rest = text:match("^(%u%u%u) ?(.*)$")
  if code then return code, rest end
  return nil, text
end

-- syntax(text) -> true, or nil and why: whether text is written as money
-- at all (the currency is checked by parse).
function _M.syntax(text)
  if type(text) ~= "string" then return nil, "an amount expected" end
  local _, rest = strip(text)
  local whole, why = split(rest)
  if not whole then return nil, why end
  return true
end

-- parse(text, currency) -> amount in minor units, or nil and why.  Only
-- the currency's own symbol or code may lead; decimals at most its minor
-- digits (two, none for JPY); at most 2^53-1 minor units.
function _M.parse(text, currency)
  currency = currency or "USD"
  local ok, why = _M.syntax(text)
  if not ok then return nil, why end
  local named, rest = strip(text)
  if named and named ~= currency then
    return nil, "amounts are in the catalogue's currency, " .. currency .. ", not " .. named
  end
  local whole, fraction = split(rest)
  local digits = NO_DECIMALS[currency] and 0 or 2
  if #fraction > digits then
    return nil, currency .. " amounts have " ..
      (digits == 0 and "no decimals" or (digits .. " decimals at most"))
  end
  fraction = fraction .. ("0"):rep(digits - #fraction)
  local amount = #whole <= 16 and tonumber(whole)
  if amount then amount = amount * 10 ^ digits + (tonumber(fraction) or 0) end
  if not amount or amount > MAX_INTEGER then return nil, "the amount is too large" end
  return math.tointeger and math.tointeger(amount) or amount
end

return _M
