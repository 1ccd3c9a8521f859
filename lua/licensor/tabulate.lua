-- licensor.tabulate -- aligned plain-text tables for the demo, the command
-- line and the REPL: a header row, a rule, then one row per record.
local _M = {}

local concat, rep, max, tostring = table.concat, string.rep, math.max, tostring

-- Display width: UTF-8 continuation bytes take no column.
local function width(s)
  local _, continuation = s:gsub("[\128-\191]", "")
  return #s - continuation
end

local function pad(s, n)
  return s .. rep(" ", n - width(s))
end

-- columns: list of { title, key_or_function }; rows: list of records.
function _M.render(columns, rows)
  local cells, widths = {}, {}
  for c, column in ipairs(columns) do widths[c] = width(column[1]) end
  for r, row in ipairs(rows) do
    cells[r] = {}
    for c, column in ipairs(columns) do
      local get = column[2]
      local value
      if type(get) == "function" then value = get(row) else value = row[get] end
      value = value == nil and "-" or tostring(value)
      cells[r][c] = value
      widths[c] = max(widths[c], width(value))
    end
  end
  local out, header, rule = {}, {}, {}
  for c, column in ipairs(columns) do
    header[c] = pad(column[1], widths[c])
    rule[c] = rep("-", widths[c])
  end
  out[1] = concat(header, "  "):gsub("%s+$", "")
  out[2] = concat(rule, "  ")
  for r = 1, #cells do
    local line = {}
    for c = 1, #columns do line[c] = pad(cells[r][c], widths[c]) end
    out[#out + 1] = concat(line, "  "):gsub("%s+$", "")
  end
  return concat(out, "\n")
end

return _M
