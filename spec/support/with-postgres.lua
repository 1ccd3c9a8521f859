-- with-postgres.lua -- runs a command with a throwaway PostgreSQL cluster:
--   lua5.4 spec/support/with-postgres.lua busted ...
-- starts the cluster (spec/support/postgres.lua), runs the command with
-- LICENSOR_TEST_PG set to the cluster's URL, and stops the cluster
-- whatever the command did.  Exits with the command's status.
package.path = "spec/?.lua;" .. package.path
local postgres = require "support.postgres"
local process = require("licensor.core").process

local cluster = assert(postgres.start())
local argv = { "env", "LICENSOR_TEST_PG=" .. cluster:url() }
for i = 1, #arg do argv[#argv + 1] = arg[i] end
local ok, code = pcall(process.run, argv)
cluster:stop()
if not ok then
  io.stderr:write(tostring(code), "\n")
  os.exit(1)
end
os.exit(code == 0 and 0 or 1)
