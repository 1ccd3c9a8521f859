-- licensor.csv -- comma-separated values (RFC 4180) for export and bulk
-- import: fields quoted when they hold a comma, quote or line break,
-- quotes doubled; CRLF or LF line ends.  Rows carry the line they start
-- on, so that errors can say file:line.
local _M = {}

local concat, find, sub, gsub = table.concat, string.find, string.sub, string.gsub

local function field_text(v)
  v = v == nil and "" or tostring(v)
  if find(v, '[",\r\n]') then return '"' .. gsub(v, '"', '""') .. '"' end
  return v
end

-- line(values) -> one CSV line (without its line end)
function _M.line(values, n)
  local out = {}
  for i = 1, n or #values do out[i] = field_text(values[i]) end
  return concat(out, ",")
end

-- parse(text) -> list of {line=, fields...}, or nil, "line N: message"
function _M.parse(text)
  local rows, row, field, i, line, n = {}, {}, {}, 1, 1, #text
  local row_line = 1
  local function end_field()
    row[#row + 1] = concat(field)
    field = {}
  end
  local function end_row()
    end_field()
    if not (#row == 1 and row[1] == "") then
      row.line = row_line
      rows[#rows + 1] = row
    end
    row = {}
  end
  while i <= n do
    local c = sub(text, i, i)
    if c == '"' and #field == 0 then
      local j = i + 1
      while true do
        local q = find(text, '"', j, true)
        if not q then return nil, "line " .. line .. ": a quoted field is not closed" end
        local chunk = sub(text, j, q - 1)
        field[#field + 1] = chunk
        line = line + select(2, gsub(chunk, "\n", ""))
        if sub(text, q + 1, q + 1) == '"' then
          field[#field + 1] = '"'
          j = q + 2
        else
          i = q + 1
          break
        end
      end
      local after = sub(text, i, i)
      if after ~= "," and after ~= "\n" and after ~= "\r" and after ~= "" then
        return nil, "line " .. line .. ": text after a closing quote"
      end
    elseif c == "," then
      end_field()
      i = i + 1
    elseif c == "\r" or c == "\n" then
      end_row()
      i = i + ((c == "\r" and sub(text, i + 1, i + 1) == "\n") and 2 or 1)
      line = line + 1
      row_line = line
    else
      local stop = find(text, '[,\r\n"]', i) or n + 1
      if sub(text, stop, stop) == '"' then
        return nil, "line " .. line .. ": a quote inside an unquoted field"
      end
      field[#field + 1] = sub(text, i, stop - 1)
      i = stop
    end
  end
  if #field > 0 or #row > 0 then end_row() end
  return rows
end

return _M
