-- request_check.lua -- the Lua half of the fuzz_request target: one body,
-- decoded and checked the way the gateway's routes do.  Refusals
-- (licensor.failure objects) are fine; any other error is a bug and is
-- raised to the C harness, which aborts.
local request = require "licensor.gateway.request"
local failure = require "licensor.failure"

local pcall, error = pcall, error

local ALL_FIELDS = { key = true, server = true, build = true, product = true, edition = true, level = true,
                     kind = true, owner = true, failover = true, version_lock = true, trial_days = true,
                     addons = true, addon = true, paid = true, reason = true, consent = true }

local CHECKS = {
  function(b) request.only(b, ALL_FIELDS) end,
  function(b) request.key(b.key) end,
  function(b) request.string(b, "server") end,
  function(b) request.string(b, "owner", true) end,
  function(b) request.count(b, "build") end,
  function(b) request.count(b, "build", true) end,
  function(b) request.level(b, "level", true) end,
  function(b) request.boolean(b, "failover") end,
  function(b) request.names(b, "addons") end,
  function(b) request.date(b.key, "on") end,
}

-- Raises only for what is not a refusal.
local function refusal_only(ok, err)
  if not ok and not failure.is(err) then error(err, 0) end
  return ok
end

return function(data)
  local ok, body = pcall(request.decode, data)
  if not refusal_only(ok, body) then return end
  for _, check in ipairs(CHECKS) do refusal_only(pcall(check, body)) end
end
