-- files.lua -- the files the specs write and read back: text files, the
-- JSON-lines logs of test servers (webhook receiver, SMTP server) and
-- scratch directories.
local cjson = require "cjson"

local _M = {}

-- write(path, text): the whole file.
function _M.write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- write_bytes(path, text): the same, in binary mode.
function _M.write_bytes(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- read(path) -> the whole file, or nil when it cannot be read.
function _M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

-- json_lines(path) -> the JSON values of a log written one per line; {}
-- while the file does not exist yet.
function _M.json_lines(path)
  local list = {}
  local f = io.open(path)
  if not f then return list end
  for line in f:lines() do list[#list + 1] = cjson.decode(line) end
  f:close()
  return list
end

-- temp_dir() -> a new empty directory; remove_dir(dir) removes it whole.
function _M.temp_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -m 700 " .. dir))
  return dir
end

function _M.remove_dir(dir)
  assert(dir:match("^/tmp/"), "not a scratch directory: " .. dir)
  assert(os.execute("rm -rf " .. dir))
end

return _M
