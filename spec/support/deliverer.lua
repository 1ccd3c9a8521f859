-- deliverer.lua DB OUT -- delivers every pending outbox row, each handler
-- appending "id action" to OUT; prints how many it delivered.
local licensor = require "licensor"
local store = assert(licensor.open(arg[1]))
local out = assert(io.open(arg[2], "a"))
out:setvbuf("line")
local function record(action)
  out:write(action.id, " ", action.action, "\n")
  return true
end
for _, action in ipairs({ "email_customer", "notify_fraud_team", "phone_customer", "disable_key" }) do
  store:on(action, record)
end
print((store:deliver()))
