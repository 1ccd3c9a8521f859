-- download.lua -- `make bench`, the downloads part: one nginx (the
-- gateway's, 2 workers) serving the same files from a plain static
-- location and through the license gate, in the same run, with wrk:
--   * a 200 MB file, 16 connections: bytes per second through a signed
--     link (the artifact location: secure_link, disable_symlinks, the
--     headers) against the static location (ratio >= 0.9);
--   * a 1 MB file, 16 transfers at a time (curl), where every download is
--     the gate request (R3-R7, the signed link, the download's event
--     committed) and then its 302's Location: whole downloads per second
--     against the static location's (ratio >= 0.8).
-- The per-second and download limits are off (--rate-per-ip 0,
-- --rate-per-key 0): one address sends everything.  SQLite with
-- synchronous=normal (BENCH_DOWNLOAD_SYNC to change it): each gate commits
-- one event.
local licensor = require "licensor"
local core = require "licensor.core"
local runner = require "licensor.gateway.runner"
local gateway = require "support.gateway"
local child_env = require "support.child_env"
local http = require "socket.http"
local socket = require "socket"
local ltn12 = require "ltn12"

local format = string.format
local process = core.process

local BIG_MB = tonumber(os.getenv("BENCH_DOWNLOAD_BIG_MB")) or 200
local KEYS = tonumber(os.getenv("BENCH_DOWNLOAD_KEYS")) or 2000
local CONNECTIONS = 16
local SYNC = os.getenv("BENCH_DOWNLOAD_SYNC") or "normal"
local ROOT = os.getenv("PWD") or "."

local DURATION = os.getenv("BENCH_SECONDS") or "5"

-- wrk (2 threads, CONNECTIONS, BENCH_SECONDS) on url: its output.
local function wrk(url)
  local cmd = format("wrk -t2 -c%d -d%ss '%s' 2>&1", CONNECTIONS, DURATION, url)
  local pipe = io.popen(cmd)
  local out = pipe:read("*a")
  pipe:close()
  if not out:find("Requests/sec:", 1, true) then error("wrk failed: " .. out) end
  return out
end

-- curl_rate(url or function(i) -> url, follow) -> whole downloads per
-- second of SMALL_DOWNLOADS, CONNECTIONS at a time (-L follows the gate's
-- 302 to its link on the same connection).  Any answer but 200 fails.
local SMALL_DOWNLOADS = tonumber(os.getenv("BENCH_DOWNLOAD_SMALL")) or 4000
local function curl_rate(url, follow)
  local config = os.tmpname()
  local f = assert(io.open(config, "w"))
  for i = 1, SMALL_DOWNLOADS do
    f:write('url = "', type(url) == "function" and url(i) or url, '"\noutput = "/dev/null"\n')
  end
  f:close()
  local t0 = core.monotonic_us()
  local pipe = io.popen(format("curl -s --no-progress-meter -Z --parallel-max %d %s -w '%%{http_code}\\n' -K %s", CONNECTIONS,
    follow and "-L" or "", config))
  local out = pipe:read("*a")
  pipe:close()
  local seconds = (core.monotonic_us() - t0) / 1e6
  os.remove(config)
  local ok_count = select(2, out:gsub("200\n", ""))
  assert(ok_count == SMALL_DOWNLOADS, ok_count .. " of " .. SMALL_DOWNLOADS .. " downloads answered 200")
  return SMALL_DOWNLOADS / seconds
end

local function sh(command)
  assert(gateway.run(command), command)
end

local function sha256_of(path)
  local pipe = io.popen("sha256sum " .. path)
  local hex = pipe:read("*a"):match("^(%x+)")
  pipe:close()
  return hex
end

local dir = os.tmpname()
os.remove(dir)
sh("mkdir -p " .. dir .. "/art/bench")
local artifacts = dir .. "/art"
sh(format("head -c %dM /dev/urandom > %s/bench/big.bin", BIG_MB, artifacts))
sh("head -c 1M /dev/urandom > " .. artifacts .. "/bench/small.bin")
local secret = dir .. "/secret"
sh("openssl rand -hex 32 > " .. secret)

-- A catalogue of one product whose build lists the two files.
local function entry(platform, name)
  local path = artifacts .. "/bench/" .. name
  local f = assert(io.open(path, "rb"))
  local size = f:seek("end")
  f:close()
  return { platform = platform, file = "bench/" .. name, sha256 = sha256_of(path), size = size }
end

local catalogue = {
  policy = { ms_months = 12, trial_days = 30, migration_days = 30 },
  products = { { id = "benchware", name = "Benchware", unit = "seats", editions = { "standard" },
                 builds = { { number = 7000, version = "1.0.7000", released = "2019-03-02",
                              downloads = { entry("big", "big.bin"), entry("small", "small.bin") } } } } },
}

local db = dir .. "/bench.db"
local store = assert(licensor.open(db, { synchronous = "normal" }))
assert(store:import(catalogue))
local keys_file = dir .. "/keys"
local f = assert(io.open(keys_file, "w"))
for _ = 1, KEYS do
  local lic = assert(store:issue{ product = "benchware", edition = "standard", level = 1, start = "2019-01-01" })
  f:write(lic.key, "\n")
end
f:close()
store:close()

-- The gateway's own configuration, plus a plain static location over the
-- same directory: the baseline, in the same nginx.
local port = gateway.free_port()
local prefix = dir .. "/gw"
local _, conf = assert(runner.render{ db = db, listen = "127.0.0.1:" .. port, workers = 2, today = "2019-06-01",
  prefix = prefix, cpath = ROOT .. "/build/luajit", rate_per_ip = 0, rate_per_key = 0, synchronous = SYNC,
  artifacts = artifacts, link_secret_file = secret, user = process.user().name })
local cf = assert(io.open(conf))
local text = cf:read("*a")
cf:close()
local static = "    location ^~ /static/ {\n      alias \"" .. artifacts .. "/\";\n      sendfile on;\n" ..
  "      tcp_nopush on;\n      default_type application/octet-stream;\n    }\n"
local patched, n = text:gsub("(    location / {\n)", function(l) return static .. l end, 1)
assert(n == 1, "the configuration has no `location /` to put the static location before")
cf = assert(io.open(conf, "w"))
cf:write(patched)
cf:close()
local pid = assert(process.spawn(child_env.argv(runner.command(prefix, conf)), prefix .. "/logs/start.log"))
gateway.register(pid, prefix)
local server = gateway.client(port)
for _ = 1, 100 do
  if server:request("GET", "/healthz") == 200 then break end
  socket.sleep(0.05)
end

-- The gate's answer for the first key: the Location of a 302.
local first_key = io.open(keys_file):read("*l")
local function location(platform)
  local _, status, headers = http.request{ url = server.url .. "/v1/licenses/" .. first_key ..
    "/download?platform=" .. platform, redirect = false, sink = ltn12.sink.null() }
  assert(status == 302, "the gate answered " .. tostring(status))
  return headers.location
end

-- Bytes per second from wrk's Transfer/sec line.
local UNITS = { B = 1, KB = 1024, MB = 1024 ^ 2, GB = 1024 ^ 3 }
local function transfer(out)
  local value, unit = out:match("Transfer/sec:%s+([%d%.]+)(%a+)")
  return tonumber(value) * UNITS[unit]
end


-- The machine is shared by nginx's workers and the client: each side runs
-- ROUNDS times, static and gated in turn (each first in every other
-- round), and the best of each is compared (one slow round says little).
local ROUNDS = tonumber(os.getenv("BENCH_DOWNLOAD_ROUNDS")) or 3

local function best(measure)
  local static_best, gated_best = 0, 0
  for round = 1, ROUNDS do
    -- Which side goes first alternates: a warm-up favours neither.
    local s, g
    if round % 2 == 1 then
      s, g = measure("static"), measure("gated")
    else
      g, s = measure("gated"), measure("static")
    end
    if s > static_best then static_best = s end
    if g > gated_best then gated_best = g end
  end
  return static_best, gated_best
end

local ok, err = pcall(function()
  local big_link = location("big")
  local static_bps, gated_bps = best(function(side)
    return transfer(wrk(server.url .. (side == "static" and "/static/bench/big.bin" or big_link)))
  end)
  print(format("download %d MB, %d connections: static %7.0f MB/s   signed link %7.0f MB/s   ratio %.2f",
    BIG_MB, CONNECTIONS, static_bps / 2 ^ 20, gated_bps / 2 ^ 20, gated_bps / static_bps))
  -- 1 MB: curl, 16 transfers at a time on kept connections, writing to
  -- /dev/null (wrk would copy each body into its Lua state to read the
  -- gate's Location, and become the bottleneck).
  local keys = {}
  for line in io.lines(keys_file) do keys[#keys + 1] = line end
  local static_fps, gated_fps = best(function(side)
    if side == "static" then return curl_rate(server.url .. "/static/bench/small.bin", false) end
    return curl_rate(function(i) return server.url .. "/v1/licenses/" .. keys[(i % #keys) + 1] ..
      "/download?platform=small" end, true)
  end)
  print(format("download 1 MB, gate + redirect each, %d at a time: static %6.0f/s   gated %6.0f/s " ..
    "(synchronous=%s)   ratio %.2f", CONNECTIONS, static_fps, gated_fps, SYNC, gated_fps / static_fps))
end)
process.stop(pid, 0)
gateway.stop_all()
sh("rm -rf " .. dir)
if not ok then error(err, 0) end
