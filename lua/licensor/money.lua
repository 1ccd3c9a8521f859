-- licensor.money -- amounts in minor units (integers, as everywhere in
-- licensor) written for people: "$1,100.00", "€99.00", "CHF 12.50".
-- JSON keeps the integers; only tables and messages use this.
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

return _M
