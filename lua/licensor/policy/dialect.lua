-- licensor.policy.dialect -- refuses a policy file written in what only
-- one of the two VMs parses.  Policy files run on Lua 5.4 and LuaJIT
-- alike (a gateway's workers run LuaJIT, the command line may run Lua
-- 5.4), so a file must mean the same on both; a construct one of them
-- reads and the other refuses would let a file import on one and fail,
-- or say something else, on the other.
--
--   dialect.check(source) -> nil | line, message
--
-- A lexical scan, not a parser: comments and strings (short and long)
-- are skipped, and each token of code is checked.  Refused: Lua 5.4's
-- `//`, `&`, `|`, `~` (binary xor, unary not: not `~=`), `<<`, `>>` and
-- the `<const>` / `<close>` attributes; LuaJIT's number suffixes `LL`,
-- `ULL` (64-bit integers) and `i` (imaginary); and a whole-number
-- numeral past 2^53, which both parse but read differently.
local find, sub, gsub, byte, lower, format = string.find, string.sub, string.gsub, string.byte, string.lower,
  string.format

local _M = {}

local BOTH = "policy files run on Lua 5.4 and LuaJIT"

local function refused(line, what, vm)
  return line, format("`%s` is %s only: %s", what, vm, BOTH)
end

-- The line of position i (counted from the last known line and position).
local function lines_between(source, from, to)
  local n = 0
  local i = find(source, "\n", from, true)
  while i and i < to do
    n = n + 1
    i = find(source, "\n", i + 1, true)
  end
  return n
end

-- The end of a long bracket opened at i ("[", "=" * level, "["), or nil
-- when it is not one.  Returns the position after its close (or past
-- the end of source when it never closes: load reports that).
local function long_bracket(source, i)
  local _, e, eq = find(source, "^%[(=*)%[", i)
  if not e then return nil end
  local _, close = find(source, "]" .. eq .. "]", e + 1, true)
  return (close or #source) + 1
end

-- The end of a short string opened at i by quote q.
local function short_string(source, i, q)
  local j = i + 1
  local n = #source
  while j <= n do
    local c = byte(source, j)
    if c == 92 then          -- backslash: the next byte is escaped (a newline too)
      j = j + 2
    elseif c == q then
      return j + 1
    elseif c == 10 then      -- an unfinished string: load reports it
      return j
    else
      j = j + 1
    end
  end
  return j
end

-- Is a numeral (lower case) a whole number written without a point or
-- exponent, past 2^53?  Lua 5.4 reads it as an integer (exact below
-- 2^63; hex wrapping modulo 2^64), LuaJIT as a float (rounded).
local function past_2_53(text)
  local digits, limit = text, "9007199254740992"   -- 2^53
  if find(text, "^0x") then
    digits, limit = sub(text, 3), "20000000000000"
    if find(digits, "[^%x]") then return false end
  elseif find(text, "[^%d]") then
    return false
  end
  -- Compared as text: a float would round the digits being judged.
  digits = (gsub(digits, "^0+", ""))
  return #digits > #limit or (#digits == #limit and digits > limit)
end

-- dialect.check(source) -> nil when the file parses alike on both VMs,
-- else the line of the first construct that does not and a message.
function _M.check(source)
  local i, n, line = 1, #source, 1
  while i <= n do
    -- Skip to the next byte that may start something of interest.
    local s = find(source, "[%-%[\"'%d%.%a_/&|~<>]", i)
    if not s then return nil end
    line = line + lines_between(source, i, s)
    local c = sub(source, s, s)
    local nxt = sub(source, s + 1, s + 1)
    local e   -- the position after the token
    if c == "-" and nxt == "-" then
      e = long_bracket(source, s + 2)
      if not e then
        e = find(source, "\n", s + 2, true) or n + 1
      end
    elseif c == "[" then
      e = long_bracket(source, s) or s + 1
    elseif c == '"' or c == "'" then
      e = short_string(source, s, byte(c))
    elseif find(c, "[%a_]") then
      local _, last = find(source, "^[%w_]*", s)
      e = last + 1
    elseif find(c, "%d") or (c == "." and find(nxt, "%d")) then
      -- A numeral: digits, letters, dots and an exponent's sign.
      local hex = find(source, "^0[xX]", s)
      local j = s
      while true do
        local _, last = find(source, "^[%w_%.]*", j)
        j = last + 1
        local prev = lower(sub(source, last, last))
        local sign = sub(source, j, j)
        if (sign == "+" or sign == "-") and prev == (hex and "p" or "e") then
          j = j + 1
        else
          break
        end
      end
      local text = lower(sub(source, s, j - 1))
      if find(text, "ull$") then return refused(line, sub(source, j - 3, j - 1), "LuaJIT") end
      if find(text, "ll$") then return refused(line, sub(source, j - 2, j - 1), "LuaJIT") end
      if find(text, "i$") and (hex or find(text, "^[%d%.]+[%de%+%-]*i$")) then
        return refused(line, sub(source, j - 1, j - 1), "LuaJIT")
      end
      if past_2_53(text) then
        return line, format("`%s` is read differently by Lua 5.4 and LuaJIT (a whole number past 2^53): %s",
                            sub(source, s, j - 1), BOTH)
      end
      e = j
    elseif c == "/" and nxt == "/" then
      return refused(line, "//", "Lua 5.4")
    elseif c == "&" or c == "|" then
      return refused(line, c, "Lua 5.4")
    elseif c == "~" then
      if nxt ~= "=" then return refused(line, "~", "Lua 5.4") end
      e = s + 2
    elseif (c == "<" or c == ">") and nxt == c then
      return refused(line, c .. c, "Lua 5.4")
    elseif c == "<" then
      local _, last, attr = find(source, "^<%s*([%a_][%w_]*)%s*>", s)
      if last and (attr == "const" or attr == "close") then
        return refused(line, "<" .. attr .. ">", "Lua 5.4")
      end
      e = s + 1
    else
      e = s + 1
    end
    line = line + lines_between(source, s, e)
    i = e
  end
  return nil
end

return _M
