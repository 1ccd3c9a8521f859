-- child_env.lua -- the environment of the programs the specs start (nginx,
-- shell tools, compilers, PostgreSQL's tools): without the ASan suite's
-- sanitizer preload and settings, which are the module's business and not
-- theirs (pgrep, for one, deadlocks with libasan preloaded), but with the
-- clock's: TZ, and libfaketime's preload and settings when the suite runs
-- under faketime (licensor.gateway.runner.clock_environment says which),
-- so that every process of a faketime round reads the same fake clock.
--
--   child_env.argv{ "nginx", "-p", prefix }  -> { "env", "-u", ..., "nginx", ... }
--   os.execute(child_env.shell .. "sh -c '...'")
local clock = require("licensor.gateway.runner").clock_environment()

local _M = {}

local UNSET = { "-u", "LD_PRELOAD", "-u", "ASAN_OPTIONS", "-u", "UBSAN_OPTIONS" }

-- The preload the children keep: libfaketime's entries only, or nil.
_M.preload = clock.LD_PRELOAD

local function quoted(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

-- argv(list) -> the argument vector running list through `env`, which
-- execs it in the same process (a group leader stays the leader).
function _M.argv(list)
  local argv = { "env" }
  for _, word in ipairs(UNSET) do argv[#argv + 1] = word end
  if _M.preload then argv[#argv + 1] = "LD_PRELOAD=" .. _M.preload end
  for i = 1, #list do argv[#argv + 1] = list[i] end
  return argv
end

-- The same as a shell command's prefix.
_M.shell = "env " .. table.concat(UNSET, " ") .. " " ..
  (_M.preload and ("LD_PRELOAD=" .. quoted(_M.preload) .. " ") or "")

return _M
