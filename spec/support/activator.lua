-- activator.lua URL KEYS_FILE OUT SECONDS -- activations through a gateway as
-- fast as one client can, for SECONDS: key n % #keys, server "sN", each
-- accepted one deactivated again at once so that the keys never run out
-- of room.  Writes one line per activation's answer to OUT: "status code
-- key server" (status 0: no answer), flushed at once, so a reader sees
-- every acknowledged one.
local http = require "socket.http"
local ltn12 = require "ltn12"
local socket = require "socket"
local cjson = require "cjson.safe"

local url, keys_file, out_path, seconds = arg[1], arg[2], arg[3], tonumber(arg[4])
local keys = {}
for line in io.lines(keys_file) do keys[#keys + 1] = line end
local out = assert(io.open(out_path, "w"))
local stop_at = socket.gettime() + seconds
local n = 0
local function post(route, fields)
  local body = cjson.encode(fields)
  local chunks = {}
  local _, status = http.request{ url = url .. route, method = "POST",
    headers = { ["Content-Length"] = tostring(#body) }, source = ltn12.source.string(body),
    sink = ltn12.sink.table(chunks) }
  if type(status) ~= "number" then status = 0 end
  return status, cjson.decode(table.concat(chunks)) or {}
end

while socket.gettime() < stop_at do
  n = n + 1
  local key, server = keys[n % #keys + 1], "s" .. n
  local status, answer = post("/v1/activate", { key = key, server = server, build = 6911 })
  out:write(status, " ", answer.ok and "ok" or tostring(answer.code), " ", key, " ", server, "\n")
  out:flush()
  if answer.ok then post("/v1/deactivate", { key = key, server = server }) end
end
out:close()
