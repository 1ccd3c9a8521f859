-- licensor.serialize -- plain Lua data (tables of strings, numbers and
-- booleans) as a Lua chunk "return {...}", with keys in a stable order so
-- the same table always gives the same text.  The store keeps catalogue
-- versions this way and reads them back through the catalogue sandbox.
local _M = {}

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local format, concat, sort = string.format, table.concat, table.sort
local huge = math.huge

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta == "number" end
  return a < b
end

local function scalar(v)
  local t = type(v)
  if t == "string" then return format("%q", v) end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v ~= v or v == huge or v == -huge then error("cannot serialize " .. tostring(v), 0) end
    if v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
    return format("%.17g", v)
  end
  error("cannot serialize a " .. t, 0)
end

local function write(value, out, seen, depth)
  if type(value) ~= "table" then
    out[#out + 1] = scalar(value)
    return
  end
  if seen[value] then error("cannot serialize a cyclic table", 0) end
  if depth > 64 then error("cannot serialize tables nested deeper than 64", 0) end
  seen[value] = true
  local keys = {}
  for k in pairs(value) do
    local t = type(k)
    if t ~= "string" and t ~= "number" then error("cannot serialize a " .. t .. " key", 0) end
    keys[#keys + 1] = k
  end
  sort(keys, key_order)
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    if i > 1 then out[#out + 1] = "," end
    if type(k) == "string" and k:match("^[%a_][%w_]*$") then
      out[#out + 1] = k
    else
      out[#out + 1] = "[" .. scalar(k) .. "]"
    end
    out[#out + 1] = "="
    write(value[k], out, seen, depth + 1)
  end
  out[#out + 1] = "}"
  seen[value] = nil
end

-- Returns "return {...}", or raises for values that are not plain data.
function _M.chunk(value)
  local out = { "return " }
  write(value, out, {}, 0)
  return concat(out)
end

return _M
