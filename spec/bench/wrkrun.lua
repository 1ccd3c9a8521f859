-- wrkrun.lua -- runs wrk (2 threads, BENCH_SECONDS, default 5) for the
-- gateway benchmarks: requests per second, p99 in ms, and wrk's output
-- (the wrk/*.lua scripts print their own counts there).
local format = string.format

local DURATION = os.getenv("BENCH_SECONDS") or "5"

-- wrk(url, script, keys_file, connections) -> req/s, p99 ms, output
return function(url, script, keys_file, connections)
  local cmd = format("KEYS_FILE=%s wrk -t2 -c%d -d%ss --latency %s %s 2>&1", keys_file or "/dev/null",
    connections or 32, DURATION, script and ("-s " .. script) or "", url)
  local pipe = io.popen(cmd)
  local out = pipe:read("*a")
  pipe:close()
  local rps = tonumber(out:match("Requests/sec:%s+([%d%.]+)"))
  local p99, unit = out:match("99%%%s+([%d%.]+)(%a+)")
  p99 = tonumber(p99)
  if p99 and unit == "us" then p99 = p99 / 1000 elseif p99 and unit == "s" then p99 = p99 * 1000 end
  if not rps then error("wrk failed: " .. out) end
  return rps, p99, out
end
