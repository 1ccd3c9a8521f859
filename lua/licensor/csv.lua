-- licensor.csv -- comma-separated values (RFC 4180) for export and bulk
-- import: fields quoted when they hold a comma, quote or line break,
-- quotes doubled; CRLF or LF line ends.  Rows carry the line they start
-- on, so that errors can say file:line.  What the cells mean, and which
-- columns a file may have, is store/bulk.lua's business, not this file's.
--
-- Cells are safe to open in a spreadsheet: one that starts with a
-- character a spreadsheet reads as a formula (`=`, `+`, `-`, `@`, tab,
-- CR) is written with a leading `'`, and so is one that starts with `'`
-- itself (or with a byte order mark), so that the escape is unambiguous:
-- `parse` takes exactly one leading `'` off every cell that has one.  A
-- UTF-8 byte order mark at the start of a file (Excel's "CSV UTF-8") is
-- read as nothing.
local _M = {}

local concat, find, sub, gsub, byte = table.concat, string.find, string.sub, string.gsub, string.byte
local tostring, select = tostring, select

-- What Excel's "CSV UTF-8" puts before the first byte.
_M.BOM = "\239\187\191"

-- The first bytes that make a cell a formula (or hide one), and the
-- quote that escapes them: `'` itself, so that the escape is reversible.
local ESCAPED = { [byte "="] = true, [byte "+"] = true, [byte "-"] = true, [byte "@"] = true,
                  [byte "\t"] = true, [byte "\r"] = true, [byte "'"] = true }
local QUOTE = "'"

-- cell(v) -> the text a spreadsheet shows as v, never as a formula.  A
-- value that starts with a byte order mark is escaped too: as the first
-- cell of a file it would be read as nothing.
local function cell(v)
  v = v == nil and "" or tostring(v)
  if ESCAPED[byte(v, 1)] or sub(v, 1, 3) == _M.BOM then v = QUOTE .. v end
  return v
end
_M.cell = cell

-- uncell(text) -> the value a cell written by `cell` holds.
local QUOTE_BYTE = byte(QUOTE)
local function uncell(text)
  if byte(text, 1) == QUOTE_BYTE then return sub(text, 2) end
  return text
end
_M.uncell = uncell

local function field_text(v)
  v = cell(v)
  if find(v, '[",\r\n]') then return '"' .. gsub(v, '"', '""') .. '"' end
  return v
end

-- line(values[, n]) -> one CSV line (without its line end); nil values
-- are empty cells.
function _M.line(values, n)
  local out = {}
  for i = 1, n or #values do out[i] = field_text(values[i]) end
  return concat(out, ",")
end

-- parse(text) -> list of {line=, values...}, each cell through `uncell`,
-- or nil, "line N: message"
function _M.parse(text)
  local rows, row, field, i, line, n = {}, {}, {}, 1, 1, #text
  local row_line = 1
  if sub(text, 1, 3) == _M.BOM then i = 4 end
  local function end_field()
    row[#row + 1] = uncell(concat(field))
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
