-- licensor.files -- the one way licensor reads and writes a whole file.
-- Every failure has luaL_fileresult's shape, `nil, "WHAT PATH: reason",
-- code`, with code "io_error", "too_large" or "exists".  Not for streams
-- (logs, the demo's transcript) nor for SQLite's own files.
--
--   files.read(path, what [, max])   the whole text; never truncated: a
--                                    file larger than max bytes is
--                                    "too_large", a directory "io_error"
--   files.write(path, text [, opts]) true; opts:
--     mode     the new file's permissions (default 384, 0600; the umask
--              narrows them)
--     replace  false (default): an existing name (file, symlink, even a
--              dangling one) is "exists"; true: replaced atomically
--     device   true: an existing character device, FIFO or socket
--              (/dev/stdout, /dev/full, a pipe) is written in place, also
--              through a symlink; false (default): such a path is "exists"
--   files.lstat(path)                {uid=, mode=, kind=, special=} of the name
--   files.stat(path)                 the same of what the name points to
--                                    itself (never a symlink's target);
--                                    kind "directory", "file", "link" or
--                                    "other", mode the permission bits
--
-- A file is written under a temporary name in its own directory, fsynced,
-- then given its name (link without replace, rename with it): a full disk,
-- a failed write or a crash leaves nothing under `path`, and a symlink at
-- `path` is never followed.  Every write and close error is an answer.
local core = require "licensor.core"
local constants = require "licensor.constants"

local type, tostring, error, open = type, tostring, error, io.open
local write_file = core.write_file

local _M = {}

-- The part of an io.open message after "PATH: " (LuaJIT and Lua 5.4 both
-- answer "PATH: strerror").
local function reason(path, err)
  err = tostring(err)
  local prefix = path .. ": "
  if err:sub(1, #prefix) == prefix then return err:sub(#prefix + 1) end
  return err
end

local function fail(what, path, why, code)
  return nil, (what and what ~= "" and what .. " " or "") .. path .. ": " .. why, code or "io_error"
end

-- files.read(path, what [, max]) -> text, or nil, message, code
function _M.read(path, what, max)
  if type(path) ~= "string" then error("bad argument #1 to 'read' (path expected)", 2) end
  if max ~= nil and (type(max) ~= "number" or max < 0 or max % 1 ~= 0) then
    error("bad argument #3 to 'read' (a number of bytes expected)", 2)
  end
  local f, err = open(path, "rb")
  if not f then return fail(what, path, reason(path, err)) end
  local text, rerr
  if max then
    text, rerr = f:read(max + 1)
    if text == nil and rerr == nil then text = "" end   -- an empty file
  else
    text, rerr = f:read("*a")
  end
  f:close()
  if text == nil then return fail(what, path, reason(path, rerr or "cannot be read")) end
  if max and #text > max then return fail(what, path, "is larger than " .. max .. " bytes", "too_large") end
  return text
end

-- files.write(path, text [, {mode=, replace=, device=, what=}]) -> true,
-- or nil, message, code
function _M.write(path, text, opts)
  if type(path) ~= "string" or path == "" then error("bad argument #1 to 'write' (path expected)", 2) end
  if type(text) ~= "string" then error("bad argument #2 to 'write' (text expected)", 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #3 to 'write' (options table expected)", 2)
  end
  opts = opts or {}
  local mode = opts.mode or constants.PRIVATE_MODE
  if type(mode) ~= "number" or mode % 1 ~= 0 or mode < 0 or mode > 4095 then
    error("bad argument #3 to 'write' (mode: a file mode expected)", 2)
  end
  return write_file(path, text, mode, opts.replace and true or false, opts.device and true or false,
                    opts.what or "")
end

-- files.lstat(path) -> {uid=, mode=, kind=}, or nil, "path: reason", "io_error"
function _M.lstat(path)
  if type(path) ~= "string" then error("bad argument #1 to 'lstat' (path expected)", 2) end
  return core.lstat(path)
end

-- files.stat(path) -> the same of what path names (symlinks followed),
-- special = true for a character device, FIFO or socket.
function _M.stat(path)
  if type(path) ~= "string" then error("bad argument #1 to 'stat' (path expected)", 2) end
  return core.lstat(path, true)
end

return _M
