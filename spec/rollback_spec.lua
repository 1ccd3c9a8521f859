-- Rollback (R13): back from build X to an earlier build Y unless a build Z
-- with Y < Z <= X carries no_rollback.
local fixtures = require "support.fixtures"

local cat = fixtures.catalogue()
local lic = fixtures.faq_license()

describe("R13 rollback", function()
  it("FAQ: rolling back to a previous build is normally fine", function()
    assert.is_true(cat:can_rollback(lic, 6911, 6700))
    assert.is_true(cat:can_rollback(lic, 7100, 7010))
  end)

  it("is refused across a release note that forbids it", function()
    local ok, msg, code = cat:can_rollback(lic, 7100, 6911)
    assert.is_false(ok)
    assert.are.equal("rollback_barrier", code)
    assert.matches("6947", msg)
  end)

  it("is refused when X itself is the barrier, allowed when Y is", function()
    assert.are.equal("rollback_barrier", select(3, cat:can_rollback(lic, 6947, 6911)))
    assert.is_true(cat:can_rollback(lic, 7100, 6947))
  end)

  it("needs an older target (not_older)", function()
    assert.are.equal("not_older", select(3, cat:can_rollback(lic, 6911, 6911)))
    assert.are.equal("not_older", select(3, cat:can_rollback(lic, 6911, 6947)))
  end)

  it("checks unknown builds first", function()
    assert.are.equal("unknown_build", select(3, cat:can_rollback(lic, 1, 6911)))
    assert.are.equal("unknown_build", select(3, cat:can_rollback(lic, 6947, 2)))
    assert.are.equal("unknown_build", select(3, cat:can_rollback(lic, 6911, 6947.5)))
  end)

  it("answers false, message, code for a malformed license and raises on bad arguments", function()
    local ok, _, code = cat:can_rollback({ product = "x", start = "2018-01-01" }, 6911, 6700)
    assert.is_false(ok)
    assert.are.equal("unknown_product", code)
    assert.has_error(function() cat:can_rollback(lic, "6911", 6700) end)
  end)
end)
