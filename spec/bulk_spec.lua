-- Licenses in and out in bulk (lua/licensor/store/bulk.lua, csv.lua):
-- an export imports into another store as the same licenses; a file with
-- bad rows is refused whole, naming every bad row as file:line: column.
local stores = require "support.stores"
local csv = require "licensor.csv"

describe("export and import-licenses", function()
  it("carries licenses with their keys, days, add-ons and owners from one store to another", function()
    local source = stores.new(":memory:")
    local a = stores.issue(source, { owner = "acme, inc.", start = "2018-06-01", addons = { "eas" } })
    local b = stores.issue(source, { owner = "globex", kind = "lease", start = "2018-01-01" })
    source:activate(a.key, "mail1", 6911, "2018-12-05")
    local text = assert(source:export_text("csv"))
    assert.matches("^key,owner,product,edition,level,kind,start,ms_expires", text)
    assert.matches('"acme, inc."', text, 1, true)
    assert.matches("mail1@6911@2018%-12%-05@2018%-12%-05@", text)
    local target = stores.new(":memory:")
    local keys = assert(target:import_licenses(text, "export.csv"))
    assert.are.equal(2, #keys)
    for _, lic in ipairs({ a, b }) do
      local copy = assert(target:get(lic.key))
      assert.are.same({ lic.owner, lic.start, lic.ms_expires, lic.kind, lic.addons and lic.addons.eas },
        { copy.owner, copy.start, copy.ms_expires, copy.kind, copy.addons and copy.addons.eas })
    end
    assert.are.equal("import", target:events(a.key)[1].kind)
    assert.matches('"key":"' .. a.key .. '"', source:export_text("jsonl"), 1, true)
  end)

  it("refuses a file with bad rows whole, naming each as file:line: column: message", function()
    local store = stores.new(":memory:")
    local existing = stores.issue(store, { start = "2018-06-01" })
    local before = stores.dump(store)
    local lines = {
      "key,owner,product,edition,level,kind,start,ms_expires,addons",
      ",fine,smartertrack,enterprise,5,perpetual,2018-01-01,2018-12-31,",
      ",,smartertrack,enterprise,5,perpetual,2018-02-30,,",
      ",,smartertrack,enterprise,15,perpetual,2018-01-01,,",
      existing.key .. ",,smartertrack,enterprise,5,perpetual,2018-01-01,,",
      ",,smartertrack,enterprise,5,perpetual,2018-01-01,,nope=2019-01-01",
    }
    local rows, msg, code = store:import_licenses(table.concat(lines, "\n") .. "\n", "customers.csv")
    assert.are.same({ nil, "invalid_request" }, { rows, code })
    assert.matches("customers.csv:3: start: '2018%-02%-30' is not a date", msg)
    assert.matches("customers.csv:4: license: product 'smartertrack' enterprise has no level 15", msg)
    assert.matches("customers.csv:5: key: already in the store", msg)
    assert.matches("customers.csv:6: addons: product has no add%-on 'nope'", msg)
    assert.is_nil(msg:find("customers.csv:2:", 1, true))
    assert.are.equal(before, stores.dump(store))
  end)

  it("reads CSV as RFC 4180 says: quotes, doubled quotes, line breaks in fields", function()
    local rows = assert(csv.parse('a,b\r\n"x, ""y""","two\nlines"\n'))
    assert.are.same({ { "a", "b", line = 1 }, { 'x, "y"', "two\nlines", line = 2 } }, rows)
    assert.are.equal('"x, ""y""",plain,', csv.line({ 'x, "y"', "plain", nil }, 3))
    assert.is_nil((csv.parse('a,"open\n')))
  end)
end)
