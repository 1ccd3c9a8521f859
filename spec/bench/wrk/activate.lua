-- wrk script: POST /v1/activate with a new server each time, spread over
-- the keys in KEYS_FILE (failover licenses: two servers each stay within the
-- allowance).  Collects the X-Licensor-Write-Us header, the time the worker
-- spent in the store's transaction, as a histogram of 50 us buckets.
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local threads = {}
-- Each thread's Lua state knows only its own id, not how many threads
-- there are: WRK_THREADS (wrkrun's -t2).  (#threads is 0 there: every
-- request went to keys 1 and 2, check-ins of two servers.)
local STRIDE = tonumber(os.getenv("WRK_THREADS")) or 2
local BUCKET, BUCKETS = 50, 2000

function setup(thread)
  thread:set("id", #threads + 1)
  threads[#threads + 1] = thread
end

local n, refused, answered, histogram = 0, 0, 0, {}

function init()
  for i = 1, BUCKETS do histogram[i] = 0 end
end

function request()
  n = n + 1
  -- Threads take interleaved slices of the keys, a new server on each key
  -- per pass: a key's two servers come a whole pass apart, so the bench
  -- measures activations, not two requests queueing for one key.
  local index = (n - 1) * STRIDE + id
  local key = keys[((index - 1) % #keys) + 1]
  return wrk.format("POST", "/v1/activate", { ["Content-Type"] = "application/json" },
    '{"key":"' .. key .. '","server":"bench-' .. index .. '","build":9483}')
end

function response(status, headers)
  answered = answered + 1
  if status ~= 200 then refused = refused + 1 end
  local us = tonumber(headers["X-Licensor-Write-Us"] or headers["x-licensor-write-us"])
  if us then
    local b = math.min(BUCKETS, math.floor(us / BUCKET) + 1)
    histogram[b] = histogram[b] + 1
  end
  -- Exported as a string (wrk copies plain values between threads), every
  -- 100 answers so that the client stays fast.
  if answered % 100 == 0 then
    refused_count = refused
    histogram_text = table.concat(histogram, ",")
  end
end

function done()
  local total, sum_refused, merged = 0, 0, {}
  for i = 1, BUCKETS do merged[i] = 0 end
  for _, thread in ipairs(threads) do
    sum_refused = sum_refused + (thread:get("refused_count") or 0)
    local text = thread:get("histogram_text") or ""
    local i = 0
    for count in text:gmatch("%d+") do
      i = i + 1
      merged[i] = merged[i] + tonumber(count)
      total = total + tonumber(count)
    end
  end
  local seen, p50, p99 = 0, nil, nil
  for i = 1, BUCKETS do
    seen = seen + merged[i]
    if not p50 and seen >= total * 0.5 then p50 = i * BUCKET end
    if not p99 and seen >= total * 0.99 then p99 = i * BUCKET end
  end
  io.write(string.format("WRITES %d REFUSED %d P50_US %d P99_US %d\n", total, sum_refused, p50 or 0, p99 or 0))
end
