-- licensor.cli.args -- the argument parser, help and doc/cli.md of the
-- `licensor` command, all driven by one registry (licensor.cli's COMMANDS).
-- It knows flags, types and suggestions; it does not know what a command
-- does (that is licensor.cli), and it never exits or prints: it answers.
--
-- A registry entry:
--   { name = "eligible", args = { "KEY" }, summary = "one line",
--     help = "more lines (optional)",
--     flags = { { "--on DATE", "the day asked about", type = "date", hint = { "date" } }, ... },
--     run = function(ctx, positional, flags, many) ... end }
-- A flag without a metavariable ("--lapsed") is a switch.  Types: string
-- (default), date, whole (0 .. max, default 2^53-1), level (whole or
-- "unlimited"), money (as people write it; licensor.money), and choices =
-- { ... }.  many = true keeps every value (many[name] is the list; any
-- other flag given twice keeps the last).  hint
-- lists mistaken names to suggest this flag for.  Optional positional
-- arguments are written "[NAME]"; a command never takes more than #args.
--
-- Why not lua-argparse: it builds help in its own layout and keeps the
-- declaration in private fields, so doc/cli.md would be a second copy;
-- it calls os.exit for --help, and its errors are strings to parse.  The
-- checks here are few (types, counts, suggestions), and in process the
-- CLI fuzz spec calls them 100,000 times per command.
local core = require "licensor.core"
local money = require "licensor.money"
local constants = require "licensor.constants"

local _M = {}

local concat, sort = table.concat, table.sort
local tonumber, tostring, type, ipairs, pairs = tonumber, tostring, type, ipairs, pairs

-- Flags every command takes (before or after its name).
_M.GLOBAL = {
  { "--db PATH", "an SQLite file or a PostgreSQL connection string (postgresql://user@host/db or " ..
    "host=... dbname=...); default $LICENSOR_DB or ./licensor.db" },
  { "--json", "answer JSON on stdout (refusals included)" },
  { "--help", "this command's help (also -h)" },
  { "--version", "the version of licensor" },
}

-- A flag's declaration, once parsed: name ("on"), key ("on", "-" -> "_"),
-- metavar ("DATE" or nil for a switch).
local function declare(f)
  if f.name then return f end
  local name, metavar = f[1]:match("^%-%-([%w%-]+) ?(.*)$")
  f.name, f.key, f.help = name, name:gsub("%-", "_"), f[2]
  f.metavar = metavar ~= "" and metavar or nil
  return f
end

-- The flags of an entry, keyed by name, globals included.
local function flag_table(entry)
  if entry.flag_table then return entry.flag_table end
  local t = {}
  for _, f in ipairs(_M.GLOBAL) do t[declare(f).name] = f end
  for _, f in ipairs(entry.flags or {}) do t[declare(f).name] = f end
  entry.flag_table = t
  return t
end

local distance = require("licensor.spelling").distance

-- The candidate closest to a mistyped word: one it begins, one it was
-- hinted for, or one at most two edits away (ties: the first in order).
local function nearest(word, candidates, hints)
  if hints and hints[word] then return hints[word] end
  local best, best_distance = nil, 3
  for _, candidate in ipairs(candidates) do
    if #word >= 2 and candidate:sub(1, #word) == word then return candidate end
    local d = distance(word, candidate)
    if d < best_distance then best, best_distance = candidate, d end
  end
  return best
end

-- The command name closest to a mistyped one, or nil.
function _M.suggest_command(registry, word)
  local names = {}
  for i, entry in ipairs(registry) do names[i] = entry.name end
  return nearest(word, names)
end

local function suggest_flag(entry, word)
  local names, hints = {}, {}
  local function add(f)
    names[#names + 1] = f.name
    for _, h in ipairs(f.hint or {}) do hints[h] = f.name end
  end
  for _, f in ipairs(entry.flags or {}) do add(declare(f)) end
  for _, f in ipairs(_M.GLOBAL) do add(declare(f)) end
  return nearest(word, names, hints)
end

-- Checks and converts one value of a flag: value, or nil and why.
local function convert(f, text)
  local t = f.type or "string"
  local what = "--" .. f.name
  if f.choices then
    for _, c in ipairs(f.choices) do if c == text then return text end end
    return nil, what .. " is one of: " .. concat(f.choices, ", ")
  elseif t == "string" then
    return text
  elseif t == "date" then
    if not core.day(text) then return nil, what .. " takes a date YYYY-MM-DD" end
    return text
  elseif t == "whole" or t == "level" then
    if t == "level" and text == "unlimited" then return text end
    local max = f.max or constants.MAX_INTEGER
    local n = text:find("^%d+$") and #text <= 16 and tonumber(text)
    if not n or n > max or n < (f.min or 0) then
      return nil, what .. " takes a whole number from " .. (f.min or 0) .. " to " .. max ..
        (t == "level" and ", or unlimited" or "")
    end
    return n
  elseif t == "money" then
    local ok, why = money.syntax(text)
    if not ok then return nil, what .. ": " .. why end
    return text
  end
  error("flag " .. what .. " has an unknown type " .. tostring(t))
end

-- True for a word that is a flag (--name, --name=value, -h).
local function is_flag(a)
  return a == "-h" or a:find("^%-%-[%w%-]") ~= nil
end

-- parse(registry, argv) -> {entry=, positional=, flags=, many=, help=}
-- or nil, message, word (a suggestion), json (whether --json was seen).
-- Before the command's name only the global flags are known.
function _M.parse(registry, argv)
  local by_name = {}
  for _, entry in ipairs(registry) do by_name[entry.name] = entry end
  local globals = { flags = {} }
  local entry, positional, flags, many = globals, {}, {}, {}
  local json = false
  local i = 1
  local function fail(message) return nil, message, nil, json end
  -- (a process's argv never holds a NUL; a caller in process may)
  for n, a in ipairs(argv) do
    if type(a) ~= "string" or a:find("\0", 1, true) then
      return fail("argument " .. n .. " is not a string without NUL bytes")
    end
  end
  while i <= #argv do
    local a = argv[i]
    if is_flag(a) then
      if a == "-h" then a = "--help" end
      local name, inline = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      local f = flag_table(entry)[name]
      if not f then
        local guess = suggest_flag(entry, name)
        local where = entry.name and (entry.name .. ": ") or ""
        return fail(where .. "unknown flag --" .. name ..
          (guess and (" (did you mean --" .. guess .. "?)")
                  or (" (licensor help " .. (entry.name or "") .. " lists them)"):gsub("  ", " ")))
      end
      local value = true
      if f.metavar then
        value = inline
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil or is_flag(value) then
            return fail("--" .. name .. " needs a value (" .. f.metavar .. "; --" .. name .. "=" ..
              "VALUE for one that starts with --)")
          end
        end
        local converted, why = convert(f, value)
        if converted == nil then return fail(why) end
        value = converted
      elseif inline ~= nil then
        return fail("--" .. name .. " takes no value")
      end
      if f.key == "json" then json = true end
      if f.many then
        many[f.key] = many[f.key] or {}
        many[f.key][#many[f.key] + 1] = value
      end
      flags[f.key] = value
    elseif entry == globals then
      local found = by_name[a]
      if not found then
        return nil, "unknown command '" .. a .. "'", _M.suggest_command(registry, a), json
      end
      entry = found
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  if entry == globals then entry = nil end
  if entry then flag_table(entry) end
  for _, f in ipairs(entry and entry.flags or {}) do
    if f.default ~= nil and flags[f.key] == nil then flags[f.key] = f.default end
  end
  if entry and not flags.help and #positional > #(entry.args or {}) then
    return fail(entry.name .. ": unexpected argument '" .. positional[#(entry.args or {}) + 1] ..
      "' (licensor help " .. entry.name .. ")")
  end
  return { entry = entry, positional = positional, flags = flags, many = many, help = flags.help }
end

-- The parts of a command's synopsis: NAME, ARGS, [--flag VALUE]...
local function synopsis_parts(entry)
  local parts = { entry.name }
  for _, a in ipairs(entry.args or {}) do parts[#parts + 1] = a end
  for _, f in ipairs(entry.flags or {}) do
    declare(f)
    local text = "--" .. f.name .. (f.metavar and (" " .. f.metavar) or "")
    parts[#parts + 1] = f.required and text or ("[" .. text .. (f.many and "]..." or "]"))
  end
  return parts
end

-- The one-line synopsis of a command: NAME ARGS [--flag VALUE]...
function _M.synopsis(entry)
  return concat(synopsis_parts(entry), " ")
end

local function default_text(f)
  if f.default == nil then return "" end
  return " (default " .. tostring(f.default) .. ")"
end

-- Wraps text (or a list of unbreakable parts) at width columns, each
-- line after the first indented.
local function wrap(text, width, indent)
  local lines, line = {}, ""
  local words = {}
  if type(text) == "table" then words = text else for w in text:gmatch("%S+") do words[#words + 1] = w end end
  for _, word in ipairs(words) do
    if #line > 0 and #line + 1 + #word > width then
      lines[#lines + 1] = line
      line = word
    else
      line = #line > 0 and (line .. " " .. word) or word
    end
  end
  lines[#lines + 1] = line
  return concat(lines, "\n" .. indent)
end

local HEAD = "usage: licensor [--db PATH] [--json]"

-- What help and doc/cli.md add after a flag's text: its choices, whether
-- it repeats, its default.
local function annotations(f)
  local extra = f.choices and (" (one of " .. concat(f.choices, ", ") .. ")") or ""
  if f.many then extra = extra .. " (repeatable)" end
  return extra .. default_text(f)
end

-- help(registry, entry or nil) -> text: one command's help, or the list.
function _M.help(registry, entry, preamble)
  if entry then
    local out = { HEAD, "  " .. wrap(synopsis_parts(entry), 96, "      "), "",
                  "  " .. wrap(entry.summary .. (entry.help and (" " .. entry.help) or ""), 96, "  ") }
    if entry.flags and #entry.flags > 0 then out[#out + 1] = "" end
    for _, f in ipairs(entry.flags or {}) do
      local left = ("  --%s%s"):format(f.name, f.metavar and (" " .. f.metavar) or "")
      local pad = #left < 30 and (" "):rep(30 - #left) or "\n" .. (" "):rep(30)
      out[#out + 1] = left .. pad .. wrap(f.help .. annotations(declare(f)), 66, (" "):rep(30))
    end
    return concat(out, "\n")
  end
  local out = { HEAD .. " COMMAND [ARGS]", "", preamble, "" }
  for _, e in ipairs(registry) do
    local words = { e.name }
    for _, a in ipairs(e.args or {}) do words[#words + 1] = a end
    for _, f in ipairs(e.flags or {}) do
      if declare(f).required then
        words[#words + 1] = "--" .. f.name .. (f.metavar and (" " .. f.metavar) or "")
      end
    end
    local left = "  " .. concat(words, " ")
    local pad = #left < 36 and (" "):rep(36 - #left) or "\n" .. (" "):rep(36)
    out[#out + 1] = left .. pad .. wrap(e.summary, 60, (" "):rep(36))
  end
  out[#out + 1] = ""
  out[#out + 1] = "licensor help COMMAND (or COMMAND --help) shows its flags; licensor --version."
  return concat(out, "\n")
end

-- markdown(registry, preamble) -> doc/cli.md
function _M.markdown(registry, preamble)
  local out = { "# The `licensor` command",
    "",
    "<!-- Generated by `licensor help --markdown > doc/cli.md` from the command registry",
    "     (lua/licensor/cli.lua); spec/cli_spec.lua fails when the two disagree. -->",
    "", preamble, "", "Flags every command takes:", "" }
  local function flag_line(f)
    local value = f.metavar and (" " .. f.metavar) or ""
    return "- `--" .. f.name .. value .. "`: " .. f.help .. annotations(f)
  end
  for _, f in ipairs(_M.GLOBAL) do out[#out + 1] = flag_line(declare(f)) end
  local names = {}
  for i, e in ipairs(registry) do names[i] = e.name end
  out[#out + 1] = ""
  out[#out + 1] = "Commands: " .. concat(names, ", ") .. "."
  for _, e in ipairs(registry) do
    out[#out + 1] = ""
    out[#out + 1] = "## " .. e.name
    out[#out + 1] = ""
    out[#out + 1] = "    licensor " .. _M.synopsis(e)
    out[#out + 1] = ""
    out[#out + 1] = e.summary .. (e.help and (" " .. e.help) or "")
    if e.flags and #e.flags > 0 then
      out[#out + 1] = ""
      for _, f in ipairs(e.flags) do out[#out + 1] = flag_line(declare(f)) end
    end
  end
  return concat(out, "\n")
end

-- The names of the flags of an entry (for specs), sorted.
-- need(positional, n, what) -> the nth positional argument, which is
-- never empty: a usage error (exit 2) names what is missing or empty.
function _M.need(positional, n, what)
  local v = positional[n]
  if v == nil then require("licensor.failure").raise("usage", "missing " .. what) end
  if v == "" then require("licensor.failure").raise("usage", what:match("^%S+") .. " is empty") end
  return v
end

function _M.flag_names(entry)
  local names = {}
  for name in pairs(flag_table(entry)) do names[#names + 1] = name end
  sort(names)
  return names
end

return _M
