-- wrk script: GET /v1/licenses/KEY/eligible over the keys in KEYS_FILE,
-- the threads interleaved (thread t of T takes keys t, T + t, 2T + t, ...;
-- T is WRK_THREADS, default 2, wrkrun's -t2): no key is asked twice in one
-- pass over the list, so that with a pass longer than the gateway's
-- stale_ms no answer comes from a worker's memory and every request reads
-- the database.  (eligible.lua's threads walk the same keys side by side.)
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local STRIDE = tonumber(os.getenv("WRK_THREADS")) or 2
local count = 0

function setup(thread)
  count = count + 1
  thread:set("id", count)
end

local n = 0

function request()
  n = n + 1
  local index = (n - 1) * STRIDE + id
  return wrk.format("GET", "/v1/licenses/" .. keys[((index - 1) % #keys) + 1] .. "/eligible")
end
