-- flood.lua -- many concurrent HTTP/1.1 clients against a gateway, in one
-- process (LuaSocket, non-blocking sockets and socket.select), for the
-- connection specs and the benchmark.  Each client keeps one keep-alive
-- connection busy: a request, its whole answer, the next request.
--
--   lua flood.lua URL CLIENTS SECONDS OUT MODE KEYS_FILE [NAME [FIRST]]
--
-- Clients are numbered from FIRST (1).  MODE: "activate" (POST
-- /v1/activate: client i activates server NAME-i on key i of the list,
-- modulo its length, so every answer after the first is a check-in),
-- "eligible" (GET /v1/licenses/KEY/eligible) or "mixed" (both, in turn).
-- After SECONDS no new request starts; those in flight may finish for
-- GRACE seconds (15).  OUT gets a JSON summary: answers counted by
-- "status code" ("200 ok", "503 busy"; status 0 for no answer:
-- connect_failed, closed, timeout, unfinished), the longest request in ms
-- (overall and by answer), p50 and p99.
--
-- As a module: flood.run(opts) runs in this process; flood.start(opts)
-- runs the clients in child processes (at most PER_PROCESS each:
-- socket.select cannot watch a descriptor above FD_SETSIZE, 1024) and
-- handle:wait() merges their summaries.
local files = require "support.files"
local socket = require "socket"
local cjson = require "cjson.safe"

local _M = {}

local gettime, floor, concat, format = socket.gettime, math.floor, table.concat, string.format

_M.PER_PROCESS = 800
local GRACE = 15              -- seconds for requests in flight after the end
local REQUEST_TIMEOUT = 30    -- seconds before one request counts as "0 timeout"

-- "http://host:port" -> host, port
local function host_port(url)
  local host, port = url:match("^http://([^:/]+):(%d+)")
  assert(host, "flood: a URL like http://127.0.0.1:8080 expected, got " .. tostring(url))
  return host, tonumber(port)
end

-- The bytes of client c's next request.
local function request_bytes(c, opts)
  c.n = c.n + 1
  local key = opts.keys[(c.id - 1) % #opts.keys + 1]
  local get = opts.mode == "eligible" or (opts.mode == "mixed" and c.n % 2 == 0)
  if get then
    return "GET /v1/licenses/" .. key .. "/eligible HTTP/1.1\r\nHost: flood\r\n\r\n"
  end
  local body = format('{"key":"%s","server":"%s-%d","build":6911}', key, opts.name, c.id)
  return "POST /v1/activate HTTP/1.1\r\nHost: flood\r\nContent-Type: application/json\r\nContent-Length: " ..
    #body .. "\r\n\r\n" .. body
end

-- A chunked body decoded, or nil while incomplete.
local function dechunk(data)
  local out, at = {}, 1
  while true do
    local size_end = data:find("\r\n", at, true)
    if not size_end then return nil end
    local size = tonumber(data:sub(at, size_end - 1):match("^%x+"), 16)
    if not size then return "" end                       -- garbage: no body
    if size == 0 then return concat(out) end
    if #data < size_end + 2 + size + 1 then return nil end
    out[#out + 1] = data:sub(size_end + 2, size_end + 1 + size)
    at = size_end + 2 + size + 2
  end
end

-- The answer in buf: status, body, keep_alive; or nil while incomplete
-- (closed: the server closed the connection, so what came is all).
local function parse(buf, closed)
  local head_end = buf:find("\r\n\r\n", 1, true)
  if not head_end then return nil end
  local head = buf:sub(1, head_end - 1):lower()
  local status = tonumber(head:match("^http/1%.%d (%d+)"))
  local rest = buf:sub(head_end + 4)
  local keep = head:match("^http/1%.1") ~= nil and not head:find("\r\nconnection:%s*close")
  local length = tonumber(head:match("\r\ncontent%-length:%s*(%d+)"))
  if length then
    if #rest < length then return nil end
    return status, rest:sub(1, length), keep
  end
  if head:find("\r\ntransfer%-encoding:%s*chunked") then
    local body = dechunk(rest)
    if not body then return nil end
    return status, body, keep
  end
  if not closed then return nil end
  return status, rest, false
end

-- "status code" of an answer: the JSON body's code ("ok" for ok:true).
local function answer_name(status, body)
  local json = cjson.decode(body)
  local code = type(json) == "table" and (json.ok == true and "ok" or json.code) or "-"
  return status .. " " .. tostring(code)
end

local Run = {}
Run.__index = Run

function Run:record(name, started)
  local ms = (gettime() - started) * 1000
  self.counts[name] = (self.counts[name] or 0) + 1
  if ms > (self.max_by[name] or 0) then self.max_by[name] = ms end
  if name ~= "0 unfinished" then self.times[#self.times + 1] = ms end
end

function Run:close(c)
  if c.sock then
    c.sock:close()
    self.open = self.open - 1
  end
  c.sock, c.state = nil, "idle"
end

-- Starts client c's next request (on its connection, or a new one).
function Run:begin(c)
  c.out, c.sent, c.buf, c.started = request_bytes(c, self.opts), 0, "", gettime()
  if c.sock then
    c.reused, c.state = true, "sending"
    return
  end
  local sock = socket.tcp()
  sock:settimeout(0)
  local ok, err = sock:connect(self.host, self.port)
  if not ok and err ~= "timeout" and err ~= "Operation already in progress" then
    sock:close()
    self:record("0 connect_failed", c.started)
    c.state = "idle"
    return
  end
  c.sock, c.reused, c.state = sock, false, "sending"
  self.open = self.open + 1
  if self.open > self.most_open then self.most_open = self.open end
end

function Run:on_writable(c)
  local last, err, partial = c.sock:send(c.out, c.sent + 1)
  last = last or partial
  if last and last > 0 then c.sent = last end
  if c.sent >= #c.out then
    c.state = "receiving"
  elseif err and err ~= "timeout" then
    self:failed(c, err)
  end
end

function Run:failed(c, err)
  -- A kept-alive connection the server closed before answering anything:
  -- the request was not taken; send it again on a new connection.
  local again = c.reused and c.buf == "" and err == "closed"
  self:close(c)
  if again then
    c.n = c.n - 1
    self.reconnects = self.reconnects + 1
    return self:begin(c)
  end
  self:record(c.sent < #c.out and "0 connect_failed" or "0 closed", c.started)
end

function Run:on_readable(c)
  local data, err, partial = c.sock:receive(65536)
  c.buf = c.buf .. (data or partial or "")
  local closed = err ~= nil and err ~= "timeout"
  local status, body, keep = parse(c.buf, closed)
  if not status then
    if closed then self:failed(c, err) end
    return
  end
  self:record(answer_name(status, body), c.started)
  if not keep or closed then self:close(c) end
  c.state = "idle"
end

-- One round of select over every busy client.
function Run:step(now)
  local readers, writers, by_sock = {}, {}, {}
  for _, c in ipairs(self.clients) do
    if c.state == "idle" and now < self.stop_at then self:begin(c) end
    if c.state ~= "idle" and now - c.started > REQUEST_TIMEOUT then
      self:close(c)
      self:record("0 timeout", c.started)
    end
    if c.state == "sending" then writers[#writers + 1] = c.sock
    elseif c.state == "receiving" then readers[#readers + 1] = c.sock end
    if c.sock then by_sock[c.sock] = c end
  end
  if #readers + #writers == 0 then return false end
  local readable, writable = socket.select(readers, writers, 0.05)
  for _, sock in ipairs(writable) do
    local c = by_sock[sock]
    if c.state == "sending" then self:on_writable(c) end
  end
  for _, sock in ipairs(readable) do
    local c = by_sock[sock]
    if c.state == "receiving" then self:on_readable(c) end
  end
  return true
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

local function rounded(ms)
  return floor(ms * 10 + 0.5) / 10
end

function Run:summary()
  table.sort(self.times)
  local max_by = {}
  for name, ms in pairs(self.max_by) do max_by[name] = rounded(ms) end
  local requests = 0
  for _, n in pairs(self.counts) do requests = requests + n end
  return { clients = #self.clients, seconds = self.opts.seconds, requests = requests, counts = self.counts,
           longest_ms = rounded(self.times[#self.times] or 0), max_ms = max_by,
           p50_ms = rounded(percentile(self.times, 0.5)), p99_ms = rounded(percentile(self.times, 0.99)),
           most_open = self.most_open, reconnects = self.reconnects }
end

-- run{url=, clients=, seconds=, mode="activate", keys={...}, name="flood", first=1} -> summary
function _M.run(opts)
  assert(opts.clients <= _M.PER_PROCESS, "flood: at most PER_PROCESS clients in one process")
  assert(opts.keys and #opts.keys > 0, "flood: keys expected")
  opts.mode, opts.name = opts.mode or "activate", opts.name or "flood"
  local self = setmetatable({ opts = opts, clients = {}, counts = {}, max_by = {}, times = {}, open = 0,
                              most_open = 0, reconnects = 0 }, Run)
  self.host, self.port = host_port(opts.url)
  for i = 1, opts.clients do self.clients[i] = { id = (opts.first or 1) + i - 1, n = 0, state = "idle" } end
  self.stop_at = gettime() + opts.seconds
  local give_up = self.stop_at + (opts.grace or GRACE)
  while self:step(gettime()) and gettime() < give_up do end
  for _, c in ipairs(self.clients) do
    if c.state ~= "idle" then self:record("0 unfinished", c.started) end
    self:close(c)
  end
  return self:summary()
end

local function read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if line ~= "" then lines[#lines + 1] = line end
  end
  return lines
end

local read_file, write_file = files.read, files.write

-- Summaries of several processes as one.
function _M.merge(list)
  local all = { clients = 0, requests = 0, counts = {}, max_ms = {}, longest_ms = 0, p50_ms = 0, p99_ms = 0,
                most_open = 0, reconnects = 0 }
  for _, s in ipairs(list) do
    for _, field in ipairs({ "clients", "requests", "most_open", "reconnects" }) do
      all[field] = all[field] + floor(s[field])
    end
    -- JSON numbers come back as floats on Lua 5.4: counts are whole.
    for name, n in pairs(s.counts) do all.counts[name] = (all.counts[name] or 0) + floor(n) end
    for name, ms in pairs(s.max_ms) do all.max_ms[name] = math.max(all.max_ms[name] or 0, ms) end
    -- The worst process's percentiles: an upper bound of the whole's.
    for _, field in ipairs({ "longest_ms", "p50_ms", "p99_ms" }) do
      all[field] = math.max(all[field], s[field])
    end
    all.seconds = s.seconds
  end
  return all
end

-- "200 ok=812 503 busy=3" in a stable order, for messages.
function _M.describe(summary)
  local names = {}
  for name in pairs(summary.counts) do names[#names + 1] = name end
  table.sort(names)
  for i, name in ipairs(names) do names[i] = name .. "=" .. summary.counts[name] end
  return concat(names, " ") .. format(" (longest %.0f ms, p99 %.0f ms)", summary.longest_ms, summary.p99_ms)
end

local Handle = {}
Handle.__index = Handle

-- handle:wait([timeout_ms]) -> the merged summary (every child stopped).
function Handle:wait(timeout_ms)
  local process = require("licensor.core").process
  local until_ms = (timeout_ms or (self.seconds + GRACE + 10) * 1000)
  local summaries = {}
  for i, pid in ipairs(self.pids) do
    local code = process.wait(pid, until_ms)
    process.stop(pid, 0)
    local text, log = read_file(self.outs[i]), read_file(self.outs[i] .. ".log")
    os.remove(self.outs[i])
    os.remove(self.outs[i] .. ".log")
    summaries[i] = assert(cjson.decode(text or ""), "flood process " .. i .. " ended " .. tostring(code) ..
      " without a summary: " .. tostring(log))
  end
  self.pids = {}
  os.remove(self.keys_file)
  return _M.merge(summaries)
end

-- Stops whatever still runs (for finally).
function Handle:stop()
  local process = require("licensor.core").process
  for _, pid in ipairs(self.pids) do process.stop(pid, 0) end
end

-- Ends as soon as every child did: true, or false while one runs.
function Handle:done()
  local process = require("licensor.core").process
  for _, pid in ipairs(self.pids) do
    if process.alive(pid) then return false end
  end
  return true
end

-- start{url=, clients=, seconds=, mode=, keys={...}, name=} -> handle: the
-- clients in ceil(clients / PER_PROCESS) child processes of the
-- interpreter running this, each the leader of its own process group,
-- numbered on from one process to the next.
function _M.start(opts)
  local process = require("licensor.core").process
  local child_env = require "support.child_env"
  local keys_file = os.tmpname()
  write_file(keys_file, concat(opts.keys, "\n") .. "\n")
  local self = setmetatable({ pids = {}, outs = {}, keys_file = keys_file, seconds = opts.seconds }, Handle)
  local procs = math.ceil(opts.clients / _M.PER_PROCESS)
  local lua = jit and "luajit" or "lua5.4"
  local first = 1
  for i = 1, procs do
    local n = floor(opts.clients / procs) + (i <= opts.clients % procs and 1 or 0)
    self.outs[i] = os.tmpname()
    local argv = child_env.argv({ "env", "LUA_PATH=spec/?.lua;;", lua, "spec/support/flood.lua", opts.url,
      tostring(n), tostring(opts.seconds), self.outs[i], opts.mode or "activate", keys_file,
      opts.name or "flood", tostring(first) })
    self.pids[i] = assert(process.spawn(argv, self.outs[i] .. ".log"))
    first = first + n
  end
  return self
end

-- As a script: flood.lua URL CLIENTS SECONDS OUT MODE KEYS_FILE [NAME [FIRST]]
if arg and arg[0] and arg[0]:match("flood%.lua$") and ... ~= "support.flood" then
  local summary = _M.run{ url = arg[1], clients = tonumber(arg[2]), seconds = tonumber(arg[3]),
                          mode = arg[5], keys = read_lines(arg[6]), name = arg[7], first = tonumber(arg[8]) }
  write_file(arg[4], assert(cjson.encode(summary)) .. "\n")
end

return _M
