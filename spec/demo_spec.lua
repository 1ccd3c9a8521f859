-- make demo (licensor.demo) and licensor.tabulate: the FAQ's answers as the
-- demo prints them.
local demo = require "licensor.demo"
local tabulate = require "licensor.tabulate"

describe("the demo", function()
  local lines = {}
  demo.run("2026-11-26", function(line) lines[#lines + 1] = line end)
  local output = table.concat(lines, "\n")

  it("answers the FAQ's SmarterTrack example with build 6911", function()
    assert.matches("ST%-ENT5%-LAPSED%s+6911%s+100%.0%.6911%s+2018%-12%-03%s+M&S expired 2018%-12%-06", output)
  end)

  it("answers the FAQ's SmarterMail 14.x example with 14.7.6347", function()
    assert.matches("SM%-PRO250%-14X%s+6347%s+14%.7%.6347", output)
  end)

  it("shows add-ons stopping when M&S is not renewed", function()
    assert.matches("%(not renewed%)%s+expired", output)
    assert.matches("%(renewed%)%s+active", output)
  end)

  it("shows a key on two servers migrating at 10 days and fraud at 40", function()
    assert.matches("\n10%s+migrating", output)
    assert.matches("\n40%s+fraud", output)
  end)
end)

describe("the demo database", function()
  local stores = require "support.stores"
  local path = stores.path()
  local lines = {}
  local key = demo.store_demo("2026-11-26", function(line) lines[#lines + 1] = line end, path)
  local output = table.concat(lines, "\n")

  it("holds a few hundred licenses of every kind", function()
    assert.matches("lease%s+%d+", output)
    assert.matches("perpetual%s+%d+", output)
    assert.matches("trial%s+%d+", output)
    assert.matches("300 licenses issued", output)
  end)

  it("shows a sweep escalating a migration to a disabled key, step by step", function()
    assert.matches("fraud%s+email_customer, notify_fraud_team", output)
    assert.matches("fraud%s+phone_customer", output)
    assert.matches("fraud%s+disable_key", output)
    local store = assert(require("licensor").open(path))
    assert.are.equal("fraud", store:get(key).disabled_reason)
    store:close()
  end)

  it("ends delivering the ladder's and the reminders' actions to a local webhook receiver, signed", function()
    assert.matches("delivered to a webhook receiver at http://127%.0%.0%.1:%d+/licensor", output)
    for _, action in ipairs({ "email_customer", "notify_fraud_team", "phone_customer", "disable_key" }) do
      assert.matches("lsr_%d+%s+" .. action .. "%s+" .. key:gsub("%-", "%%-") .. "%s+%-%s+verified", output)
    end
    assert.matches("received: .*ms_expiring %d+", output)
    assert.is_nil(output:find("BAD", 1, true))
    assert.matches("outbox: (%d+) actions delivered, 0 pending", output)
  end)

  it("shows an M&S reminder as its customer reads it by mail, price included", function()
    assert.matches("by mail %(licensor deliver %-%-smtp%)\n=+\nTo: it@customer%-%d+%.example\n" ..
                   "Subject: Maintenance & Support for %w+ ends on %d+%-%d+%-%d+\n\nDear customer%-%d+,\n", output)
    assert.matches("\nRenewal price: %$[%d,]+%.%d%d", output)
  end)

  it("ends with the portal's commands, on the FAQ's license, its artifact directory and a link secret", function()
    local faq_key = output:match("\n(%S+) %(SmarterTrack Enterprise, 5 agents, M&S expired on December 6, 2018%) " ..
                             "belongs to it@acme%.example; 192 demo build files are in ")
    assert.is_string(faq_key)
    local base = path:gsub("%.db$", "")
    assert.matches("gateway %-%-listen 127%.0%.0%.1:8080 %-%-artifacts " .. (base .. "-artifacts"):gsub("%p", "%%%0")
                   .. " %-%-link%-secret ", output)
    assert.matches("deliver %-%-smtp 127%.0%.0%.1:18025 .* %-%-portal%-url http://127%.0%.0%.1:8080", output)
    local licensor = require "licensor"
    local store = assert(licensor.open(path))
    local cat = assert(store:catalogue())
    assert.are.equal(6911, cat:eligible(assert(store:get(faq_key)), "2026-11-26").number)
    local results = require("licensor.artifacts").check(cat, base .. "-artifacts")
    assert.are.equal(192, #results)
    for _, r in ipairs(results) do assert.are.equal("ok", r.result, r.file) end
    assert.is_string(assert(require("licensor.links").read(base .. "-link.secret")))
    store:close()
    stores.remove(path)
    os.execute("rm -rf '" .. base .. "-artifacts' '" .. base .. "-link.secret'")
  end)
end)

describe("tabulate", function()
  it("aligns columns under a header and a rule, with - for missing values", function()
    local text = tabulate.render({ { "name", "name" }, { "n", function(r) return r.n and r.n * 2 end } },
      { { name = "a", n = 5 }, { name = "longer" } })
    assert.are.equal("name    n\n------  --\na       10\nlonger  -", text)
  end)
end)
