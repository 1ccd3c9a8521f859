-- licensor.loader -- catalogue files: a Lua script that returns the
-- catalogue table (or declares `products` and `policy`, or a `catalogue`
-- table, as globals).
--
-- The script runs only here, at import, walled off in a child process
-- with a Lua state of its own (core.run_catalogue, csrc/l_sandbox.c): no
-- os, io, require, load, dofile or debug (it has `day` and `date`,
-- licensor's calendar helpers), and an instruction, a memory and a time
-- budget that no Lua code can catch or outgrow.  What comes back is plain
-- data text, read by a data-only reader (core.read_data): no metamethod,
-- no code of the file ever runs in the caller.  Every failure reads
-- "file:line: message"; a spent budget is `catalogue_limit`.
local _M = {}

local core = require "licensor.core"

local type, error = type, error
local files = require "licensor.files"
local concat = table.concat

_M.MAX_INSTRUCTIONS = 50000000
_M.MAX_MEMORY_KB = 256 * 1024
_M.MAX_SECONDS = 5
_M.MAX_SOURCE_BYTES = 16 * 1024 * 1024

local function read_file(path)
  return files.read(path, "catalogue", _M.MAX_SOURCE_BYTES)
end

-- The line of a "policy.NAME ..." message's setting: the first NAME = after
-- the line that opens the policy.
local function locate_policy(source, message)
  local name = message:match("^policy%.([%a_][%w_]*)")
  if not name then return 1 end
  local line_no, in_policy = 0, false
  for line in (source .. "\n"):gmatch("([^\n]*)\n") do
    line_no = line_no + 1
    in_policy = in_policy or line:find("%f[%w_]policy%s*=") ~= nil
    if in_policy and line:find("%f[%w_]" .. name .. "%s*=") then return line_no end
  end
  return 1
end

-- The line of the product / build (or the policy setting) a validation
-- message names.
local function locate(source, where, message)
  if not where or not where.product then return locate_policy(source, message) end
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

-- Runs catalogue source text (named `name` in messages) behind the wall
-- and returns its table (plain data, not yet validated) and that data as
-- text, the form the store keeps.
function _M.read_source(source, name)
  local data, msg, code = core.run_catalogue(source, name, { instructions = _M.MAX_INSTRUCTIONS,
    memory_kb = _M.MAX_MEMORY_KB, seconds = _M.MAX_SECONDS })
  if not data then return nil, msg, code end
  local t, err, err_code = core.read_data(data, name)
  if not t then return nil, err, err_code end
  return t, data
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
    return nil, concat({ path, ":", locate(source, where, msg), ": ", msg }), err_code
  end
  return cat, t
end

return _M
