-- wrk script: whole downloads, counted.  With STATIC_PATH every request
-- fetches that path (nginx's plain static location, the baseline).
-- Otherwise each download is two requests: the gate
-- (GET /v1/licenses/KEY/download, keys from KEYS_FILE in turn) and the
-- 302's Location; a connection fetches whichever link its thread was
-- handed last.  FILES counts 200 answers of the whole file, GATES the
-- 302s, OTHER any other status.
-- luacheck: globals files_count gates_count other_count
local static = os.getenv("STATIC_PATH")
local query = os.getenv("DOWNLOAD_QUERY") or ""
local keys = {}
if not static then
  for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
end

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  threads[#threads + 1] = thread
end

local n, links, files_done, gates, other = 0, {}, 0, 0, 0

function request()
  if static then return wrk.format("GET", static) end
  local link = links[#links]
  if link then
    links[#links] = nil
    return wrk.format("GET", link)
  end
  n = n + 1
  local key = keys[((n * 2 + id) % #keys) + 1]
  return wrk.format("GET", "/v1/licenses/" .. key .. "/download" .. query)
end

function response(status, headers)
  if status == 200 then
    files_done = files_done + 1
  elseif status == 302 then
    gates = gates + 1
    links[#links + 1] = headers.Location or headers.location
  else
    other = other + 1
  end
  -- Plain values are what wrk copies between threads.
  files_count, gates_count, other_count = files_done, gates, other
end

function done(summary)
  local files, g, o = 0, 0, 0
  for _, thread in ipairs(threads) do
    files = files + (thread:get("files_count") or 0)
    g = g + (thread:get("gates_count") or 0)
    o = o + (thread:get("other_count") or 0)
  end
  io.write(string.format("FILES %d GATES %d OTHER %d SECONDS %.3f\n", files, g, o, summary.duration / 1e6))
end
