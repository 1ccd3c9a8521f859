-- activator.lua URL KEYS_FILE OUT SECONDS [DETAIL] -- activations through a
-- gateway as fast as one client can, for SECONDS: key n % #keys, server
-- "sN" (with DETAIL, "sN-PID", so that several activators at once never
-- share a server), each accepted one deactivated again at once so that
-- the keys never run out of room.  Writes one line per activation's
-- answer to OUT: "status code key server" (status 0: no answer), flushed
-- at once, so a reader sees every acknowledged one.
--
-- With DETAIL, every request (deactivations too) also gets a line there:
-- "route status code key server started_s elapsed_ms message", started_s
-- the wall clock (socket.gettime) when it was sent, message the answer's
-- (the rest of the line; "-" for none) -- for the specs that bound how
-- long a request takes and read what a 503 said (spec/failover_spec.lua).
local http = require "socket.http"
local ltn12 = require "ltn12"
local socket = require "socket"
local cjson = require "cjson.safe"

local url, keys_file, out_path, seconds, detail_path = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5]
local keys = {}
for line in io.lines(keys_file) do keys[#keys + 1] = line end
local out = assert(io.open(out_path, "w"))
local detail = detail_path and assert(io.open(detail_path, "w"))
local suffix = ""
if detail then
  -- Past this a request counts as hung (status 0): longer than any
  -- deadline the specs set, so a hang shows as its length, not a stuck spec.
  http.TIMEOUT = 30
  local f = io.open("/proc/self/stat")
  suffix = "-" .. ((f and f:read("*l") or ""):match("^(%d+)") or tostring(math.random(1, 1e9)))
  if f then f:close() end
end
local stop_at = socket.gettime() + seconds
local n = 0

local function note(route, status, answer, key, server, started)
  if not detail then return end
  local message = type(answer.message) == "string" and answer.message:gsub("[\r\n]", " ") or "-"
  local code = answer.ok and "ok" or tostring(answer.code)
  detail:write(("%s %d %s %s %s %.3f %d %s\n"):format(route, status, code, key, server, started,
    math.floor((socket.gettime() - started) * 1000 + 0.5), message))
  detail:flush()
end

local function post(route, fields)
  local body = cjson.encode(fields)
  local chunks = {}
  local started = socket.gettime()
  local _, status = http.request{ url = url .. "/v1/" .. route, method = "POST",
    headers = { ["Content-Length"] = tostring(#body) }, source = ltn12.source.string(body),
    sink = ltn12.sink.table(chunks) }
  if type(status) ~= "number" then status = 0 end
  local answer = cjson.decode(table.concat(chunks))
  if type(answer) ~= "table" then answer = {} end
  note(route, status, answer, fields.key, fields.server, started)
  return status, answer
end

while socket.gettime() < stop_at do
  n = n + 1
  local key, server = keys[n % #keys + 1], "s" .. n .. suffix
  local status, answer = post("activate", { key = key, server = server, build = 6911 })
  out:write(status, " ", answer.ok and "ok" or tostring(answer.code), " ", key, " ", server, "\n")
  out:flush()
  if answer.ok then post("deactivate", { key = key, server = server }) end
end
out:close()
if detail then detail:close() end
