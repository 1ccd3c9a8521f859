-- leftovers.lua -- the suite's last spec, run by run-suites.sh after each
-- suite: every server the suite started (nginx from spec/support/gateway.lua,
-- PostgreSQL from spec/support/postgres.lua, both written to
-- $LICENSOR_SERVER_REGISTRY) must be gone, master and workers.  Anything
-- still alive is stopped here, and the spec fails.
local process = require("licensor.core").process

describe("after the suite", function()
  it("no server started by the suite is still alive", function()
    local path = assert(os.getenv("LICENSOR_SERVER_REGISTRY"), "LICENSOR_SERVER_REGISTRY is not set")
    local started, alive = 0, {}
    local f = io.open(path)
    for line in (f and f:lines() or function() end) do
      local pid, prefix = line:match("^(%d+) (.*)$")
      started = started + 1
      if process.alive(tonumber(pid)) then
        alive[#alive + 1] = prefix
        process.stop(tonumber(pid), 0)
      end
    end
    if f then f:close() end
    if os.getenv("LICENSOR_EXPECT_SERVERS") ~= "0" then
      assert.is_true(started > 0, "the registry lists no server: was the gateway spec run?")
    end
    assert.are.same({}, alive)
  end)
end)
