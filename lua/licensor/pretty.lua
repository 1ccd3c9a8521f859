-- licensor.pretty -- tables as readable Lua-like text, keys sorted, for the
-- REPL (`pp(x)`) and the command line.
local _M = {}

local type, pairs, tostring, format, concat, sort, rep =
  type, pairs, tostring, string.format, table.concat, table.sort, string.rep
local getmetatable = getmetatable

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function is_list(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

local function scalar(v)
  if type(v) == "string" then return format("%q", v) end
  return tostring(v)
end

local function write(v, out, indent, seen)
  if type(v) ~= "table" then
    out[#out + 1] = scalar(v)
    return
  end
  if seen[v] then
    out[#out + 1] = "<cycle>"
    return
  end
  -- A table that says how it reads (an explain report) is shown that way.
  local mt = getmetatable(v)
  if type(mt) == "table" and mt.__tostring then
    out[#out + 1] = tostring(v)
    return
  end
  if next(v) == nil then
    out[#out + 1] = "{}"
    return
  end
  seen[v] = true
  local pad = rep("  ", indent + 1)
  out[#out + 1] = "{\n"
  if is_list(v) then
    for _, item in ipairs(v) do
      out[#out + 1] = pad
      write(item, out, indent + 1, seen)
      out[#out + 1] = ",\n"
    end
  else
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    sort(keys, key_order)
    for _, k in ipairs(keys) do
      local name = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or ("[" .. scalar(k) .. "]")
      out[#out + 1] = pad .. name .. " = "
      write(v[k], out, indent + 1, seen)
      out[#out + 1] = ",\n"
    end
  end
  out[#out + 1] = rep("  ", indent) .. "}"
  seen[v] = nil
end

-- pretty.format(value) -> text
function _M.format(value)
  local out = {}
  write(value, out, 0, {})
  return concat(out)
end

-- pretty.print(...) prints each value formatted.
function _M.print(...)
  for i = 1, select("#", ...) do print(_M.format((select(i, ...)))) end
end

-- A print for the REPL: tables come out formatted, everything else as
-- print would show it.  The Lua REPL prints results through the global
-- print, so installing this makes `cat:eligible(lic)` readable at once.
function _M.repl_print(raw_print)
  return function(...)
    local parts = {}
    for i = 1, select("#", ...) do
      local v = select(i, ...)
      parts[i] = type(v) == "table" and _M.format(v) or tostring(v)
    end
    raw_print(table.concat(parts, "\t"))
  end
end

return _M
