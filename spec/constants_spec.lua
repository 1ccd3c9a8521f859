-- licensor.constants: one owner for each limit and default the Lua layers
-- share, equal to the C side's where a fact crosses the boundary.
local core = require "licensor.core"
local constants = require "licensor.constants"

describe("licensor.constants", function()
  it("agrees with the C core on 2^53-1 and the certificate size", function()
    assert.are.equal(9007199254740991, constants.MAX_INTEGER)
    assert.are.equal(core.MAX_INTEGER, constants.MAX_INTEGER)
    assert.are.equal(core.MAX_CERTIFICATE_BYTES, constants.MAX_CERTIFICATE_BYTES)
    assert.are.equal(4096, constants.MAX_CERTIFICATE_BYTES)
  end)

  it("names the body limit, stale_ms, the private mode and the delivery defaults once", function()
    assert.are.equal(16384, constants.MAX_BODY_BYTES)
    assert.are.equal(1000, constants.STALE_MS)
    assert.are.equal(tonumber("600", 8), constants.PRIVATE_MODE)
    assert.are.same({ max_tries = 8, backoff_ms = 30000, timeout = 10, claim_ms = 60000 }, constants.DELIVERY)
  end)

  it("gives every status nginx answers itself a JSON code and message", function()
    for _, status in ipairs({ 400, 404, 405, 408, 413, 414, 494, 500, 501, 502, 503, 504, 505 }) do
      local words = constants.GATEWAY_ERRORS[status]
      assert.is_table(words, tostring(status))
      assert.matches("^[a-z_]+$", words[1])
      assert.is_string(words[2])
    end
    assert.matches(("%d"):format(constants.MAX_BODY_BYTES / 1024) .. " KiB", constants.GATEWAY_ERRORS[413][2])
  end)
end)
