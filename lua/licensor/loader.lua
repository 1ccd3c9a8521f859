-- licensor.loader -- catalogue files: a Lua script run in a sandbox that
-- returns the catalogue table (or declares `products` and `policy`, or a
-- `catalogue` table, as globals).
--
-- The sandbox has no os, io, require, load, dofile or debug (it does have
-- `day` and `date`, licensor's calendar helpers); it runs with an
-- instruction budget and a memory budget, so a runaway or hostile file ends
-- with an error instead of hanging the caller.  Every failure reads
-- "file:line: message".
local _M = {}

local core = require "licensor.core"

local type, pairs, pcall, error, tostring = type, pairs, pcall, error, tostring
local setmetatable, getmetatable = setmetatable, getmetatable
local open, concat = io.open, table.concat
local sethook, gethook = debug.sethook, debug.gethook
local collectgarbage = collectgarbage
local load, setfenv = load, setfenv   -- luacheck: ignore setfenv (Lua 5.1 / LuaJIT)

_M.MAX_INSTRUCTIONS = 50000000
_M.MAX_MEMORY_KB = 256 * 1024
_M.MAX_SOURCE_BYTES = 16 * 1024 * 1024
local HOOK_EVERY = 1000
local MAX_STRING = 1024 * 1024

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- string.rep would build a gigabyte in one call, before any hook runs.
local safe_string = copy(string)
safe_string.dump = nil
function safe_string.rep(s, n, sep)
  if type(n) == "number" and #tostring(s) * n > MAX_STRING then
    error("string.rep: result larger than " .. MAX_STRING .. " bytes", 2)
  end
  return string.rep(s, n, sep)
end

local function sandbox()
  return {
    string = safe_string, table = copy(table), math = copy(math),
    pairs = pairs, ipairs = ipairs, next = next, select = select, type = type,
    tonumber = tonumber, tostring = tostring, error = error, assert = assert,
    pcall = pcall, unpack = table.unpack or unpack, -- luacheck: ignore unpack
    setmetatable = setmetatable, getmetatable = getmetatable, rawget = rawget,
    rawset = rawset, rawequal = rawequal, rawlen = rawlen,
    -- Calendar helpers: day("YYYY-MM-DD") -> day number, date(n) -> string.
    day = core.day, date = core.date,
  }
end

local function read_file(path)
  local f, err = open(path, "rb")
  if not f then return nil, err end
  local source = f:read(_M.MAX_SOURCE_BYTES + 1)
  f:close()
  if source and #source > _M.MAX_SOURCE_BYTES then
    return nil, path .. ": larger than " .. _M.MAX_SOURCE_BYTES .. " bytes"
  end
  return source or ""
end

local function compile(source, path, env)
  if setfenv then   -- Lua 5.1 / LuaJIT
    local chunk, err = load(source, "@" .. path)
    if chunk then setfenv(chunk, env) end
    return chunk, err
  end
  return load(source, "@" .. path, "t", env)
end

-- Runs chunk with the budgets; the string metatable points at the safe
-- string table meanwhile, so ("x"):rep(n) is bounded too.
local function run_bounded(chunk)
  local budget = _M.MAX_INSTRUCTIONS
  local memory_limit = collectgarbage("count") + _M.MAX_MEMORY_KB
  local string_meta = getmetatable("")
  local saved_index = string_meta.__index
  local saved_hook, saved_mask, saved_count = gethook()
  local function hook()
    budget = budget - HOOK_EVERY
    if budget <= 0 then error("instruction budget exhausted (endless loop?)", 2) end
    if collectgarbage("count") > memory_limit then error("memory budget exhausted", 2) end
  end
  -- LuaJIT's compiled code does not call hooks: run this chunk interpreted.
  if jit then jit.off(chunk, true) end
  string_meta.__index = safe_string
  sethook(hook, "", HOOK_EVERY)
  local ok, result = pcall(chunk)
  if saved_hook then sethook(saved_hook, saved_mask, saved_count) else sethook() end
  string_meta.__index = saved_index
  return ok, result
end

-- The line of the product / build a validation message names.
local function locate(source, where)
  if not where or not where.product then return 1 end
  local line_no, product_line, build_line = 0, nil, nil
  local id_pattern = "id%s*=%s*[\"']" .. where.product:gsub("%p", "%%%0") .. "[\"']"
  local build_pattern = where.build and ("number%s*=%s*" .. where.build .. "%f[^%d]")
  for line in (source .. "\n"):gmatch("([^\n]*)\n") do
    line_no = line_no + 1
    if not product_line and line:find(id_pattern) then product_line = line_no end
    if product_line and build_pattern and line:find(build_pattern) then
      build_line = line_no
      break
    end
  end
  return build_line or product_line or 1
end

-- Runs catalogue source text (named `name` in messages) in the sandbox
-- and returns its table (not yet validated).
function _M.read_source(source, name)
  local env = sandbox()
  local chunk, syntax_err = compile(source, name, env)
  if not chunk then return nil, syntax_err, "invalid_catalogue" end
  local ok, result = run_bounded(chunk)
  if not ok then return nil, tostring(result), "invalid_catalogue" end
  if type(result) ~= "table" then
    result = type(env.catalogue) == "table" and env.catalogue
      or (env.products ~= nil and { products = env.products, policy = env.policy })
  end
  if type(result) ~= "table" then
    return nil, name .. ":1: the file neither returns a catalogue table nor declares products",
      "invalid_catalogue"
  end
  return result
end

-- Reads a catalogue file into a plain table (not yet validated); the
-- second result is the file's text.
function _M.read(path)
  if type(path) ~= "string" then error("bad argument #1 to 'read' (path expected)", 2) end
  local source, err = read_file(path)
  if not source then return nil, err, "io_error" end
  local t, msg, code = _M.read_source(source, path)
  if not t then return nil, msg, code end
  return t, source
end

-- Reads, validates and compiles a catalogue file.
function _M.load(path)
  local t, source, code = _M.read(path)
  if not t then return nil, source, code end
  local cat, msg, err_code, where = core.catalogue(t)
  if not cat then
    return nil, concat({ path, ":", locate(source, where), ": ", msg }), err_code
  end
  return cat, t
end

return _M
