-- writer.lua DB KEY REPORT PREFIX -- activates and deactivates servers on
-- KEY forever, appending each server to REPORT once its activation has
-- committed.  The crash spec kills it with SIGKILL at random moments.
local licensor = require "licensor"

local path, key, report_path, prefix = arg[1], arg[2], arg[3], arg[4]
local store = assert(licensor.open(path, { synchronous = "normal" }))
local report = assert(io.open(report_path, "a"))
local i = 0
while true do
  i = i + 1
  local server = prefix .. "-" .. i
  local verdict = assert(store:activate(key, server, 6911, "2019-01-01"))
  if verdict.ok then
    report:write(server, "\n")
    report:flush()
  end
  assert(store:deactivate(key, server, "2019-01-01"))
end
