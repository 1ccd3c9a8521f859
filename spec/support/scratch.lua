-- scratch.lua -- busted's helper (.busted): when the suite runner gives a
-- scratch directory (LICENSOR_TEST_TMP, removed when the run ends), every
-- os.tmpname() of the specs names a new file there instead of /tmp, so
-- that no database, log or certificate of a run outlives it.
local dir = os.getenv("LICENSOR_TEST_TMP")
if not dir or dir == "" then return end

local function process_id()
  local f = io.open("/proc/self/stat")
  local pid = f and f:read("*n")
  if f then f:close() end
  return pid or math.random(1, 1e9)
end

local prefix = ("%s/%d-"):format(dir, process_id())
local made = 0

-- Like os.tmpname: the file exists (empty) when its name is returned.
os.tmpname = function()   -- luacheck: ignore 122
  made = made + 1
  local name = prefix .. made
  local f = assert(io.open(name, "w"))
  f:close()
  return name
end
