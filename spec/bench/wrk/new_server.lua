-- wrk script: POST /v1/activate, a server never seen before on every
-- request, round robin over the keys in KEYS_FILE from the KEY_OFFSET-th
-- on (default 0), so that a bench can run it twice over one key list and
-- give each key one new server per pass.  On keys with free slots every
-- answer is an accepted activation; on keys whose allowance is used up,
-- every answer is a refusal (403 too_many_installations).  done() prints
-- "ANSWERS n OK a REFUSED r OTHER o (STATUSxCOUNT ...)" for the bench to
-- check which it was.
--
-- Threads take interleaved keys (thread t of T takes OFFSET + t, + T + t,
-- ...): T is WRK_THREADS (default 2, wrkrun's -t2), since each thread's Lua
-- state only knows its own id.  Server names carry RUN (default "new") and
-- the thread, so two runs never name the same server.
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local STRIDE = tonumber(os.getenv("WRK_THREADS")) or 2
local OFFSET = tonumber(os.getenv("KEY_OFFSET")) or 0
local RUN = os.getenv("RUN") or "new"
-- luacheck: globals answered_count accepted_count others_text

-- The threads, in setup's (the main) Lua state only.
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("id", #threads)
end

local n, answered, accepted, refused, others = 0, 0, 0, 0, {}

function request()
  n = n + 1
  local index = OFFSET + (n - 1) * STRIDE + id
  local key = keys[((index - 1) % #keys) + 1]
  return wrk.format("POST", "/v1/activate", { ["Content-Type"] = "application/json" },
    '{"key":"' .. key .. '","server":"' .. RUN .. '-' .. id .. '-' .. n .. '","build":9483}')
end

-- Plain globals: wrk reads them from each thread after the run.
function response(status)
  answered = answered + 1
  if status == 200 then
    accepted = accepted + 1
  elseif status == 403 then
    refused = refused + 1
  else
    others[status] = (others[status] or 0) + 1
    local list = {}
    for code, count in pairs(others) do list[#list + 1] = code .. "x" .. count end
    others_text = table.concat(list, " ")
  end
  answered_count, accepted_count, refused_count = answered, accepted, refused
end

function done()
  local sums, other = { 0, 0, 0 }, {}
  for _, t in ipairs(threads) do
    other[#other + 1] = t:get("others_text")
    sums[1] = sums[1] + (t:get("answered_count") or 0)
    sums[2] = sums[2] + (t:get("accepted_count") or 0)
    sums[3] = sums[3] + (t:get("refused_count") or 0)
  end
  io.write(string.format("ANSWERS %d OK %d REFUSED %d OTHER %d (%s)\n", sums[1], sums[2], sums[3],
    sums[1] - sums[2] - sums[3], table.concat(other, " ")))
end
