-- wrk script: GET /v1/licenses/KEY/eligible over the keys listed in the
-- file named by the KEYS_FILE environment variable, round robin.
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local n = 0

function request()
  n = n + 1
  return wrk.format("GET", "/v1/licenses/" .. keys[n % #keys + 1] .. "/eligible")
end
