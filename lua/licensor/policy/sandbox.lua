-- licensor.policy.sandbox -- the environment a policy file's code runs in,
-- and the read-only `ctx` its hooks are handed.  Not the budgets (those
-- are core.run_hook's) nor what an answer may say (licensor.policy).
--
-- The environment offers only pure functions, the same on Lua 5.4 and
-- LuaJIT (where the two differ, only what both have): no I/O, os, clock,
-- random, require, load, debug, coroutine, metatables, raw access or
-- collector.  Its globals and library tables are read-only: assigning one
-- raises.  Strings' methods reach only the safe string table while a hook
-- runs (run_hook swaps the string metatable's __index to it), and that
-- table is never handed out as a value: `string` is a read-only view of
-- it.
--
-- ctx is an empty table whose fields are read through its metatable from
-- the host's input for that one call: it answers nothing once the call is
-- over, assigning to it raises, and each table it hands out is a fresh
-- copy made for this call on first read (ctx.builds, ctx.license, ...),
-- so a hook's writes reach neither the store nor the next call.  Tables
-- in it are plain copies rather than read-only views because `#` and
-- ipairs must read them alike on both VMs (LuaJIT has no __len for
-- tables).
local core = require "licensor.core"

-- On LuaJIT every Lua function that may run during core.run_hook runs
-- interpreted, these helpers (guards, views, the calendar) as much as
-- the file's own: compiled code calls no count hook, so a warmed-up
-- helper would escape the instruction budget, and an allocation refused
-- inside a trace can bring this LuaJIT down (csrc/l_hook.c).
local jit = rawget(_G, "jit")
if jit then jit.off(true, true) end

local type, error, next, pairs, ipairs, select, tostring, tonumber = type, error, next, pairs, ipairs,
  select, tostring, tonumber
local pcall, xpcall, assert, setmetatable, rawequal, rawset = pcall, xpcall, assert, setmetatable, rawequal,
  rawset
local floor = math.floor
local unpack = table.unpack or unpack   -- luacheck: ignore 143 (LuaJIT's global)
local core_day, core_date = core.day, core.date

local _M = {}

-- tostring, alike on both VMs: a reference type (table, function, ...)
-- is its type name alone (an address would differ from run to run, and
-- a hook could key on it), and a number is written the same way by both
-- (Lua 5.4 writes 3.0 and 2^53 where LuaJIT writes 3 and 9.007e+15): an
-- integral value below 2^53 as "%d", NaN and the infinities by name,
-- any other as "%.14g".
local format, find, byte = string.format, string.find, string.byte
local TWO_53 = 2 ^ 53
local function s_tostring(v)
  local tv = type(v)
  if tv == "string" then return v end
  if tv == "number" then
    if v ~= v then return "nan" end
    if v == floor(v) and v < TWO_53 and v > -TWO_53 then return format("%d", v) end
    if v == 1 / 0 then return "inf" end
    if v == -1 / 0 then return "-inf" end
    return format("%.14g", v)
  end
  if tv == "boolean" then return v and "true" or "false" end
  if tv == "nil" then return "nil" end
  return tv
end
_M.tostring = s_tostring

-- Lua 5.4 refuses a position or count with a fraction (or out of
-- integer range) where LuaJIT truncates it: the sandbox refuses it on
-- both.  whole(v, i, name) -> v as a number when it is one (or text of
-- one), v itself otherwise (the library then says what is wrong).
local function whole(v, i, name)
  local x = v
  if type(x) == "string" then x = tonumber(x) or v end
  if type(x) ~= "number" then return v end
  if x ~= floor(x) or x >= TWO_53 or x <= -TWO_53 then
    error(("bad argument #%d to '%s' (number has no integer representation)"):format(i, name), 3)
  end
  return x
end

-- A string function's text argument: a string, or a number as
-- s_tostring writes it (the VMs' own coercions differ), else an error.
local function text_arg(v, i, name)
  local tv = type(v)
  if tv == "string" then return v end
  if tv == "number" then return s_tostring(v) end
  error(("bad argument #%d to '%s' (string expected, got %s)"):format(i, name, tv), 3)
end

-- Each read-only view and the table it shows, for the sandbox's pairs,
-- next and ipairs (LuaJIT's own do not look through a metatable).
local VIEW = setmetatable({}, { __mode = "k" })
-- Every read-only table (views, ctx, the globals): LuaJIT's table.insert,
-- remove and sort write raw, past __newindex, so the sandbox's refuse them.
local READONLY = setmetatable({}, { __mode = "k" })

-- A read-only view of t: reads reach t, writes raise naming `what`.
local function frozen(t, what)
  local v = setmetatable({}, {
    __index = t,
    __newindex = function(_, k)
      error(("%s%s is read-only in a policy"):format(what, s_tostring(k)), 2)
    end,
    __metatable = false,
  })
  VIEW[v] = t
  READONLY[v] = true
  return v
end

-- The iterators take the view itself as their state, never the table
-- behind it: a hook that kept pairs' second result must not get a table
-- it could write.
local function s_next(t, k)
  return next(VIEW[t] or t, k)
end

local function s_pairs(t)
  if type(t) ~= "table" then
    error("bad argument #1 to 'pairs' (table expected, got " .. type(t) .. ")", 2)
  end
  return s_next, t, nil
end

local function s_inext(t, i)
  i = i + 1
  local v = (VIEW[t] or t)[i]
  if v ~= nil then return i, v end
end

local function s_ipairs(t)
  if type(t) ~= "table" then
    error("bad argument #1 to 'ipairs' (table expected, got " .. type(t) .. ")", 2)
  end
  return s_inext, t, 0
end

-- The string functions both VMs have, without string.dump (bytecode) and
-- Lua 5.4's pack/unpack (LuaJIT has none).  Each takes a number for its
-- text as s_tostring writes it, and a whole number for a position or
-- count (see whole).
local SAFE_STRING = {}
for _, name in ipairs({ "len", "lower", "reverse", "upper" }) do
  local f = string[name]
  SAFE_STRING[name] = function(s)
    if type(s) ~= "string" then s = text_arg(s, 1, name) end
    return f(s)
  end
end
local str_byte, str_sub, str_char = string.byte, string.sub, string.char
SAFE_STRING.byte = function(s, i, j)
  if type(s) ~= "string" then s = text_arg(s, 1, "byte") end
  return str_byte(s, whole(i, 2, "byte"), whole(j, 3, "byte"))
end
SAFE_STRING.sub = function(s, i, j)
  if type(s) ~= "string" then s = text_arg(s, 1, "sub") end
  return str_sub(s, whole(i, 2, "sub"), whole(j, 3, "sub"))
end
SAFE_STRING.char = function(...)
  local codes, n = { ... }, select("#", ...)
  for i = 1, n do codes[i] = whole(codes[i], i, "char") end
  return str_char(unpack(codes, 1, n))
end
-- string.rep of an empty string (and separator) loops n times in C
-- without allocating: neither budget would end ("").rep("", 1e15).  The
-- answer is "" whatever n is, so n is taken as 1.  n is made a number
-- first: a count given as text ("1000000000000000") is one too.
local rep = string.rep
SAFE_STRING.rep = function(s, n, sep)
  if type(s) ~= "string" then s = text_arg(s, 1, "rep") end
  if sep ~= nil and type(sep) ~= "string" then sep = text_arg(sep, 3, "rep") end
  n = whole(n, 2, "rep")
  if s == "" and (sep == nil or sep == "") and type(n) == "number" and n > 1 then n = 1 end
  return rep(s, n, sep)
end
-- Lua's pattern matcher backtracks inside one C call, where the count
-- hook never fires: ("a"):rep(5000):find(".-.-.-.-b") would run for
-- hours within both budgets.  A match with k repetition items (*, +, -,
-- ?, and %b and %f, which scan the subject too) of a pattern of m bytes
-- on n bytes tries at most about (n + 1)^(k + 1) positions, each
-- comparing up to m items, so a call whose bound (n + 1)^(k + 1) * (m +
-- 1) passes PATTERN_STEPS is refused before it starts; a plain find is
-- bounded by (n + 1) * (m + 1).  Version strings, keys and addresses,
-- what hooks match, stay far below it.
local PATTERN_STEPS = 1e8
local function repetitions(p)
  local k, i, n = 0, 1, #p
  while i <= n do
    local c = byte(p, i)
    if c == 37 then   -- %
      local d = byte(p, i + 1)
      if d == 98 or d == 102 then k = k + 1 end   -- %b, %f
      i = i + 1
    elseif c == 42 or c == 43 or c == 45 or c == 63 then k = k + 1 end   -- * + - ?
    i = i + 1
  end
  return k
end
-- gsub's replacement, its numbers written as s_tostring does (a number
-- given, or one a table or function answers).
local function gsub_repl(r)
  local tr = type(r)
  if tr == "number" then return s_tostring(r) end
  if tr == "table" then
    local t = r
    return function(c)
      local v = t[c]
      if type(v) == "number" then return s_tostring(v) end
      return v
    end
  elseif tr == "function" then
    local f = r
    return function(...)
      local v = f(...)
      if type(v) == "number" then return s_tostring(v) end
      return v
    end
  end
  return r
end
local function guarded(name)
  local f = string[name]
  return function(s, p, init, plain)
    if type(s) ~= "string" then s = text_arg(s, 1, name) end
    if type(p) ~= "string" then p = text_arg(p, 2, name) end
    if init ~= nil then
      if name == "gmatch" then
        -- Lua 5.4's gmatch starts at init; LuaJIT's takes none and starts at 1.
        error("bad argument #3 to 'gmatch' (no init in a policy: LuaJIT's gmatch takes none)", 2)
      elseif name == "gsub" then
        init = gsub_repl(init)
        plain = whole(plain, 4, "gsub")
      else
        init = whole(init, 3, name)
      end
    end
    local k = (name == "find" and plain) and 0 or repetitions(p)
    local bound = #p + 1
    for _ = 0, k do
      bound = bound * (#s + 1)
      if bound > PATTERN_STEPS then
        error(("string.%s: a pattern of %d bytes with %d repetitions on %d bytes may run too long for a " ..
               "policy hook"):format(name, #p, k, #s), 2)
      end
    end
    return f(s, p, init, plain)
  end
end
for _, name in ipairs({ "find", "gmatch", "gsub", "match" }) do SAFE_STRING[name] = guarded(name) end

-- string.format, alike on both VMs: no %p (an address); no table,
-- function or other reference as an argument (its text is an address);
-- %d %i %c %o %u %x %X take only a whole number below 2^53 (LuaJIT
-- truncates a fraction where Lua 5.4 raises); %s writes a number as
-- s_tostring does; %q takes text only (Lua 5.4 writes a float in hex);
-- %a %e %f %g refuse NaN (written "-nan" by one VM, "nan" by the other).
local INTEGRAL = { d = true, i = true, c = true, o = true, u = true, x = true, X = true }
local FLOAT = { a = true, A = true, e = true, E = true, f = true, F = true, g = true, G = true }
SAFE_STRING.format = function(fmt, ...)
  if type(fmt) ~= "string" then fmt = text_arg(fmt, 1, "format") end
  local args, n = { ... }, select("#", ...)
  local i, arg = 1, 0
  while true do
    local at = find(fmt, "%", i, true)
    if not at then break end
    local spec_end, conv = select(2, find(fmt, "^[-+ #0]*%d*%.?%d*(.)", at + 1))
    if not spec_end then break end
    i = spec_end + 1
    if conv ~= "%" then
      arg = arg + 1
      local v = args[arg]
      local tv = type(v)
      if conv == "p" then error("bad argument #1 to 'format' (%p is not offered in a policy)", 2) end
      if arg <= n and tv ~= "string" and tv ~= "number" and tv ~= "boolean" and tv ~= "nil" then
        error(("bad argument #%d to 'format' (a %s has no text in a policy)"):format(arg + 1, tv), 2)
      end
      if INTEGRAL[conv] then
        local x = tonumber(v)
        if x == nil or x ~= floor(x) or x >= TWO_53 or x <= -TWO_53 then
          error(("bad argument #%d to 'format' (a whole number below 2^53 expected for %%%s)")
                :format(arg + 1, conv), 2)
        end
        args[arg] = x
      elseif FLOAT[conv] then
        local x = tonumber(v)
        if x ~= nil and x ~= x then
          error(("bad argument #%d to 'format' (NaN for %%%s)"):format(arg + 1, conv), 2)
        end
      elseif conv == "s" then
        if arg <= n then args[arg] = s_tostring(v) end
      elseif conv == "q" then
        if tv ~= "string" then
          error(("bad argument #%d to 'format' (a string expected for %%q, got %s)"):format(arg + 1, tv), 2)
        end
      end
    end
  end
  return format(fmt, unpack(args, 1, n))
end

-- What strings' methods reach during a hook (run_hook's limits.string_index).
_M.string_index = SAFE_STRING

-- The math both VMs have, without random and randomseed.
local SAFE_MATH = {}
for _, name in ipairs({ "abs", "acos", "asin", "atan", "ceil", "cos", "exp", "floor", "fmod", "huge",
                        "log", "max", "min", "modf", "pi", "sin", "sqrt", "tan" }) do
  SAFE_MATH[name] = math[name]
end

local insert, remove, sort = table.insert, table.remove, table.sort
local function writable(t, name)
  if READONLY[t] then error(("bad argument #1 to '%s' (the table is read-only)"):format(name), 3) end
end
local concat = table.concat
-- unpack and select with their positions whole (see whole).
local function s_unpack(t, i, j)
  return unpack(t, whole(i, 2, "unpack"), whole(j, 3, "unpack"))
end
local function s_select(n, ...)
  if n ~= "#" then n = whole(n, 1, "select") end
  return select(n, ...)
end
local SAFE_TABLE = {
  -- The numbers of the list written as s_tostring does (Lua 5.4 writes
  -- 1.0 where LuaJIT writes 1): a list with a number is copied first.
  concat = function(t, sep, i, j)
    i, j = whole(i, 3, "concat"), whole(j, 4, "concat")
    if type(t) == "table" then
      local from, to = i or 1, j or #t
      if type(from) == "number" and type(to) == "number" then
        for k = from, to do
          if type(t[k]) == "number" then
            local c = {}
            for m = from, to do
              local v = t[m]
              c[m - from + 1] = type(v) == "number" and s_tostring(v) or v
            end
            return concat(c, sep, 1, to - from + 1)
          end
        end
      end
    end
    return concat(t, sep, i, j)
  end,
  insert = function(t, ...)
    writable(t, "insert")
    if select("#", ...) >= 2 then return insert(t, whole((...), 2, "insert"), select(2, ...)) end
    return insert(t, ...)
  end,
  remove = function(t, pos)
    writable(t, "remove")
    if pos == nil then return remove(t) end
    return remove(t, whole(pos, 2, "remove"))
  end,
  sort = function(t, ...)
    writable(t, "sort")
    return sort(t, ...)
  end,
  unpack = s_unpack,
}

-- The calendar, on "YYYY-MM-DD" strings and day numbers (days since
-- 1970-01-01), as licensor.core counts them.  A bad date raises.
local function day(date)
  if type(date) ~= "string" then error("day: a date YYYY-MM-DD expected", 2) end
  local n, msg = core_day(date)
  if not n then error("day: " .. tostring(msg), 2) end
  return n
end

local function date(n)
  if type(n) ~= "number" or n ~= floor(n) then error("date: a whole number of days expected", 2) end
  local ok, d, msg = pcall(core_date, n)
  if not ok or not d then error("date: " .. tostring(ok and msg or d), 2) end
  return d
end

local GLOBALS = {
  assert = assert, error = error, ipairs = s_ipairs, next = s_next, pairs = s_pairs, pcall = pcall,
  rawequal = rawequal, select = s_select, tonumber = tonumber, tostring = s_tostring, type = type,
  unpack = s_unpack, xpcall = xpcall,
  string = frozen(SAFE_STRING, "string."), math = frozen(SAFE_MATH, "math."),
  table = frozen(SAFE_TABLE, "table."),
  day = day,
  date = date,
  -- add_days("2018-12-06", 60) -> "2019-02-04"
  add_days = function(d, n)
    if type(n) ~= "number" or n ~= floor(n) then error("add_days: a whole number of days expected", 2) end
    return date(day(d) + n)
  end,
  -- days_between("2018-12-06", "2019-02-04") -> 60 (negative when b is earlier)
  days_between = function(a, b) return day(b) - day(a) end,
}

-- The names a policy's code can see, for the docs and the specs.
_M.GLOBALS = {}
for name in pairs(GLOBALS) do _M.GLOBALS[#_M.GLOBALS + 1] = name end
table.sort(_M.GLOBALS)
_M.STRING, _M.MATH, _M.TABLE = {}, {}, {}
for name in pairs(SAFE_STRING) do _M.STRING[#_M.STRING + 1] = name end
for name in pairs(SAFE_MATH) do _M.MATH[#_M.MATH + 1] = name end
for name in pairs(SAFE_TABLE) do _M.TABLE[#_M.TABLE + 1] = name end
table.sort(_M.STRING)
table.sort(_M.MATH)
table.sort(_M.TABLE)

-- The one environment every policy shares: it is read-only, so sharing
-- it carries nothing from one policy or call to another.
_M.env = setmetatable({}, {
  __index = GLOBALS,
  __newindex = function(_, k)
    error(("assignment to global '%s': a policy's globals are read-only"):format(s_tostring(k)), 2)
  end,
  __metatable = false,
})
READONLY[_M.env] = true

-- ctx ------------------------------------------------------------------

-- The fields of each hook's ctx (doc/policies.md "The context"); other
-- fields of the input stay hidden.
local FIELDS = {
  settings = { "day", "license", "policy" },
  eligible = { "day", "license", "policy", "build", "refused", "builds" },
  admission = { "day", "license", "policy", "server", "before", "after", "admit", "code" },
  price = { "day", "license", "policy", "item", "price", "currency", "target" },
  ladder = { "day", "license", "policy", "case", "steps" },
  reminders = { "day", "license", "policy", "kind", "offsets" },
}
_M.FIELDS = FIELDS
local FIELD_SET = {}
_M.FIELD_SET = FIELD_SET
for hook, list in pairs(FIELDS) do
  FIELD_SET[hook] = {}
  for _, name in ipairs(list) do FIELD_SET[hook][name] = true end
end

-- ctx.license's fields are doc/rules.md section 3's; tags and addons are
-- always tables, so `ctx.license.tags.msp` never raises.

-- A plain copy of data (strings, numbers, booleans, tables of them; other
-- values left out), at most `depth` tables deep.
local function copy(v, depth)
  local tv = type(v)
  if tv == "table" then
    if depth <= 0 then return nil end
    local t = {}
    for k, x in next, v do
      local tk = type(k)
      if tk == "string" or tk == "number" or tk == "boolean" then t[k] = copy(x, depth - 1) end
    end
    return t
  elseif tv == "string" or tv == "number" or tv == "boolean" then
    return v
  end
  return nil
end
_M.copy = copy

-- A build record in ctx's shape.
local function build_copy(b)
  return { number = b.number, version = b.version, major = b.major, released = b.released }
end
_M.build_copy = build_copy

-- A build record as ctx shows it: a read-only view, one per record (the
-- catalogue's records are made once and shared), so ctx.build costs a
-- lookup.  Weak: a closed catalogue's records go with it.
local BUILD_VIEWS = setmetatable({}, { __mode = "k" })
local function build_view(rec)
  local v = BUILD_VIEWS[rec]
  if not v then
    v = frozen(build_copy(rec), "ctx build field ")
    BUILD_VIEWS[rec] = v
  end
  return v
end
_M.build_view = build_view
_M.BUILD_VIEWS = BUILD_VIEWS

-- One table constructor, no loop: this runs inside the hook's budget,
-- where each instruction costs (the license's fields are the scalars the
-- catalogue read; tags and addons are copied key by key).
local function license_copy(lic)
  local tags, addons = {}, {}
  local lt, la = lic.tags, lic.addons
  if type(lt) == "table" then
    for k, v in next, lt do tags[k] = v end
  end
  if type(la) == "table" then
    for k, v in next, la do addons[k] = v end
  end
  return { key = lic.key, product = lic.product, edition = lic.edition, level = lic.level,
           kind = lic.kind or "perpetual", start = lic.start, ms_expires = lic.ms_expires,
           ms_start = lic.ms_start, lease_ended = lic.lease_ended, trial_days = lic.trial_days,
           version_lock = lic.version_lock, failover = lic.failover, disabled = lic.disabled,
           owner = lic.owner, tags = tags, addons = addons }
end

-- How each table field is copied, and what an absent one is made from
-- (the catalogue of the call): ctx.builds and ctx.policy cost nothing
-- unless a hook reads them.
local COPY = {
  license = function(v) return license_copy(v) end,
  build = build_view,
}
local MAKE = {
  builds = function(input, cat)
    local lic = input.license
    if not cat or type(lic) ~= "table" or type(lic.product) ~= "string" then return nil end
    local list = cat:builds(lic.product)
    if type(list) ~= "table" then return nil end
    local t = {}
    for i = 1, #list do t[i] = build_view(list[i]) end
    return t
  end,
  policy = function(input, cat)
    if not cat then return nil end
    local lic = input.license
    return copy(cat:policy(type(lic) == "table" and lic or nil), 3)
  end,
}

-- The call in progress, while a hook runs (its fields nil otherwise):
-- its input, catalogue and hook's field set.  Hooks do not nest: nothing
-- a hook can reach (the makers call only the catalogue's C methods) takes
-- a decision.  licensor.policy's deciders set it around each call.
-- Idle, input is false (not nil: a field that keeps its slot is
-- assigned on the VM's fast path, and this is set twice a call); dirty
-- says make_field put a field into some data table since it was last
-- emptied.
local state = { input = false, cat = false, fields = false, dirty = false }
_M.state = state

-- A field made on its first read (a table field of the input, a host's
-- thunk, or one of MAKE's), kept in the call's data for later reads.
local function make_field(data, k)
  local input, fields = state.input, state.fields
  if not input or not fields[k] then return nil end
  local v = input[k]
  local tv = type(v)
  if tv == "function" then
    v = v()   -- a host's thunk
    tv = type(v)
  end
  if v == nil then
    local make = MAKE[k]
    if not make then return nil end
    v = make(input, state.cat)
  elseif tv == "table" then
    local c = COPY[k]
    if c then v = c(v) else v = copy(v, 4) end
  else
    v = copy(v, 0)
  end
  if v ~= nil then
    rawset(data, k, v)
    state.dirty = true
  end
  return v
end

local DATA_MT = { __index = make_field, __metatable = false }

-- The table fields cheap enough to copy before a call whose file names
-- them (licensor.policy's deciders): a copy made inside the call runs
-- under the count hook, several times slower.  ctx.builds and ctx.policy
-- stay lazy: they are large, and hooks read them on some paths only.
_M.EAGER = { license = true, refused = true, before = true, after = true, target = true, case = true,
             steps = true, offsets = true }
-- prefetch(data, k): makes field k now (inside enter's state).
_M.prefetch = make_field

local function ctx_readonly(_, k)
  error(("ctx is read-only (cannot set ctx.%s)"):format(s_tostring(k)), 2)
end

-- Why the ctx is built this way: while a hook runs, every instruction
-- of interpreted code pays for the count hook, so reading a ctx field
-- should run no Lua code.  ctx is an empty table whose __index is the
-- call's data table (the VM follows a table __index without running any
-- Lua): the input's scalars and the catalogue's shared build records (as
-- read-only views) are put there before the call, and only the table
-- fields that need a copy run make_field, once, when first read.
--
-- new_ctx() -> ctx, data: one pair per decision site, reused for every
-- call.  Nothing a hook holds survives its call, so no hook sees another
-- call's ctx, and between calls the data is empty.
function _M.new_ctx()
  local data = setmetatable({}, DATA_MT)
  local ctx = setmetatable({}, { __index = data, __newindex = ctx_readonly, __metatable = false })
  READONLY[ctx] = true
  return ctx, data
end

-- fill(data, fields, input): input's scalars and build go into data (a
-- caller on a hot path fills data itself).  data has no __newindex:
-- plain assignment is raw.
function _M.fill(data, fields, input)
  for i = 1, #fields do
    local k = fields[i]
    local v = input[k]
    local tv = type(v)
    if tv == "string" or tv == "number" or tv == "boolean" then
      data[k] = v
    elseif tv == "table" and k == "build" then
      data.build = build_view(v)
    end
  end
end

return _M
