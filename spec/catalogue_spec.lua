-- The catalogue (doc/rules.md section 2): validation refuses the whole catalogue
-- with a message naming the product, build or price at fault; a compiled
-- catalogue is immutable and answers cat:build.
local licensor = require "licensor"
local fixtures = require "support.fixtures"

local function refused(t)
  local cat, msg, code, where = licensor.catalogue(t)
  assert.is_nil(cat)
  assert.are.equal("invalid_catalogue", code)
  assert.is_string(msg)
  return msg, where
end

-- A one-product catalogue whose product fields are overridden.
local function with_product(fields)
  local p = { id = "mail", editions = { "pro", "ent" }, addons = { "eas" },
              builds = { { number = 1, version = "1.0.1", released = "2018-01-01" },
                         { number = 2, version = "1.1.2", released = "2018-02-01" } } }
  for k, v in pairs(fields) do p[k] = v end
  return { products = { p } }
end

describe("catalogue validation", function()
  it("accepts the example of the rules and returns a catalogue object", function()
    local cat = fixtures.catalogue()
    assert.are.equal("userdata", type(cat))
    assert.matches("2 products, 12 builds", tostring(cat))
  end)

  it("refuses a catalogue without products", function()
    assert.matches("products", refused({}))
    assert.matches("no product", refused({ products = {} }))
    assert.matches("products%[1%]", refused({ products = { "x" } }))
  end)

  it("raises on a non-table argument (a programming error)", function()
    assert.has_error(function() licensor.catalogue("x") end)
    assert.has_error(function() licensor.catalogue() end)
  end)

  it("refuses duplicate products and names the product", function()
    local t = with_product({})
    t.products[2] = t.products[1]
    assert.matches("product 'mail' is listed twice", refused(t))
  end)

  it("refuses duplicate build numbers, naming product and build", function()
    local msg, where = refused(with_product({ builds = {
      { number = 7, version = "1.0.7", released = "2018-01-01" },
      { number = 7, version = "1.0.7", released = "2018-01-01" } } }))
    assert.matches("product 'mail': build 7 appears twice", msg)
    assert.are.same({ product = "mail", build = 7 }, where)
  end)

  it("refuses release dates that go backwards along build numbers", function()
    local msg = refused(with_product({ builds = {
      { number = 2, version = "1.0.2", released = "2018-01-01" },
      { number = 3, version = "1.0.3", released = "2017-12-31" } } }))
    assert.matches("build 3 released 2017%-12%-31 is older than build 2", msg)
  end)

  it("refuses majors that go backwards along build numbers", function()
    local msg = refused(with_product({ builds = {
      { number = 2, version = "2.0.2", released = "2018-01-01" },
      { number = 3, version = "1.9.3", released = "2018-02-01" } } }))
    assert.matches("build 3 has major 1, lower than build 2's major 2", msg)
  end)

  it("accepts builds in any order and equal release dates", function()
    local cat = assert(licensor.catalogue(with_product({ builds = {
      { number = 3, version = "1.0.3", released = "2018-01-01" },
      { number = 2, version = "1.0.2", released = "2018-01-01" } } })))
    assert.are.equal(2, #cat:builds("mail"))
    assert.are.equal(2, cat:builds("mail")[1].number)
  end)

  it("refuses build numbers that are not positive whole numbers", function()
    for _, n in ipairs({ 0, -1, 1.5, "7", 0 / 0, math.huge, 2 ^ 60 }) do
      local msg = refused(with_product({ builds = { { number = n, version = "1.0", released = "2018-01-01" } } }))
      assert.matches("builds%[1%]%.number", msg)
    end
  end)

  it("refuses impossible release dates, naming the build", function()
    local msg = refused(with_product({ builds = {
      { number = 5, version = "1.0.5", released = "2018-02-30" } } }))
    assert.matches("build 5: released", msg)
    assert.matches("build 5", refused(with_product({ builds = {
      { number = 5, version = "1.0.5", released = 20180201 } } })))
  end)

  it("takes the major from the version, or an explicit major", function()
    local cat = assert(licensor.catalogue(with_product({ builds = {
      { number = 5, version = "13.5.6911", released = "2018-01-01" },
      { number = 6, version = "Build 6", major = 14, released = "2018-02-01" } } })))
    assert.are.equal(13, cat:build("mail", 5).major)
    assert.are.equal(14, cat:build("mail", 6).major)
    assert.matches("does not start with a major", refused(with_product({ builds = {
      { number = 5, version = "beta", released = "2018-01-01" } } })))
    assert.matches("major must be", refused(with_product({ builds = {
      { number = 5, version = "1.0", major = 0, released = "2018-01-01" } } })))
  end)

  it("refuses missing or empty versions and non-boolean no_rollback", function()
    assert.matches("version", refused(with_product({ builds = { { number = 5, released = "2018-01-01" } } })))
    assert.matches("version", refused(with_product({ builds = {
      { number = 5, version = "", released = "2018-01-01" } } })))
    assert.matches("no_rollback", refused(with_product({ builds = {
      { number = 5, version = "1.0", released = "2018-01-01", no_rollback = "yes" } } })))
  end)

  it("refuses fractional, negative, NaN and huge prices, naming the price", function()
    for _, price in ipairs({ 199.5, -1, 0 / 0, math.huge, 2 ^ 60, "100" }) do
      local msg = refused(with_product({ prices = { [1] = { pro = { [5] = price } } } }))
      assert.matches("product 'mail': prices%[1%]%.pro%[5%]: price", msg)
    end
  end)

  it("accepts integral float prices and free (zero) prices", function()
    local cat = licensor.catalogue(with_product({ prices = { [1] = { pro = { [5] = 100.0, [10] = 0 } } } }))
    assert.is_userdata(cat)
  end)

  it("refuses price tables with unknown editions, bad levels or bad majors", function()
    assert.matches("unknown edition 'gold'", refused(with_product({ prices = { [1] = { gold = { [5] = 1 } } } })))
    assert.matches("level 0", refused(with_product({ prices = { [1] = { pro = { [0] = 1 } } } })))
    assert.matches("level big", refused(with_product({ prices = { [1] = { pro = { big = 1 } } } })))
    assert.matches("level 2.5", refused(with_product({ prices = { [1] = { pro = { [2.5] = 1 } } } })))
    assert.matches("keyed by major", refused(with_product({ prices = { x = { pro = { [5] = 1 } } } })))
    assert.matches("prices must be a table", refused(with_product({ prices = 5 })))
  end)

  it("refuses missing, empty or duplicate editions and duplicate add-ons", function()
    assert.matches("editions", refused(with_product({ editions = false })))
    assert.matches("at least one edition", refused(with_product({ editions = {} })))
    assert.matches("edition 'pro' is listed twice", refused(with_product({ editions = { "pro", "pro" } })))
    assert.matches("add%-on 'eas' is listed twice", refused(with_product({ addons = { "eas", "eas" } })))
    assert.matches("editions%[2%]", refused(with_product({ editions = { "pro", 7 } })))
  end)

  it("refuses ids and names that are not plain strings", function()
    assert.matches("products%[1%]: id", refused(with_product({ id = 5 })))
    assert.matches("products%[1%]: id", refused(with_product({ id = "" })))
    assert.matches("products%[1%]: id", refused(with_product({ id = "a\0b" })))
    assert.matches("name", refused(with_product({ name = {} })))
  end)

  it("refuses add-on prices for unknown add-ons or with fractional amounts", function()
    assert.matches("addon_prices names ews", refused(with_product({ addon_prices = { ews = 100 } })))
    assert.matches("addon_prices%.eas", refused(with_product({ addon_prices = { eas = 1.5 } })))
  end)

  it("survives cyclic tables and reports the bad entry", function()
    local t = {}
    t.products = { t }
    assert.matches("products%[1%]: id", refused(t))
    local p = { id = "loop", editions = { "x" } }
    p.builds = { p }
    assert.matches("builds%[1%]%.number", refused({ products = { p } }))
  end)

  it("refuses more builds than the limit before reading them", function()
    local big = {}
    for i = 1, 1000001 do big[i] = false end
    assert.matches("more than 1000000 builds", refused(with_product({ builds = big })))
  end)

  it("validates the policy", function()
    assert.matches("policy%.ms_months", refused({ policy = { ms_months = 0 }, products = with_product({}).products }))
    assert.matches("policy%.trial_days", refused({ policy = { trial_days = 1.5 }, products = with_product({}).products }))
    assert.matches("renewal_basis", refused({ policy = { renewal_basis = "never" }, products = with_product({}).products }))
    assert.matches("disable_after_days", refused({ policy = { phone_after_days = 10, disable_after_days = 5 },
                                                  products = with_product({}).products }))
  end)

  it("refuses a policy key it does not know, naming it, instead of ignoring a misspelling", function()
    local products = with_product({}).products
    assert.matches("^policy%.ms_percnt is not a policy setting",
                   refused({ policy = { ms_percent = 20, ms_percnt = 20 }, products = products }))
    assert.matches("^policy keys are names", refused({ policy = { 12 }, products = products }))
    -- The store's own versions, stored before the check, still open.
    local core = require "licensor.core"
    local cat = assert(core.catalogue({ policy = { ms_percnt = 20, ms_months = 6 }, products = products }, true))
    assert.are.equal(6, cat:policy().ms_months)
  end)
end)

describe("compiled catalogue", function()
  it("cat:build returns exactly {number, version, major, released}", function()
    local cat = fixtures.catalogue()
    assert.are.same({ number = 6911, version = "13.5.6911", major = 13, released = "2018-12-03" },
      cat:build("smartertrack", 6911))
  end)

  it("cat:build refuses unknown builds and products with codes", function()
    local cat = fixtures.catalogue()
    assert.are.equal("unknown_build", select(3, cat:build("smartertrack", 1)))
    assert.are.equal("unknown_build", select(3, cat:build("smartertrack", 6911.5)))
    assert.are.equal("unknown_product", select(3, cat:build("nope", 6911)))
    assert.has_error(function() cat:build("smartertrack", "6911") end)
    assert.has_error(function() cat.build(nil, "smartertrack", 6911) end)
  end)

  it("does not change when the source table changes afterwards", function()
    local t = fixtures.catalogue_table()
    local cat = assert(licensor.catalogue(t))
    t.products[1].builds[3].released = "2030-01-01"
    t.products[1].id = "renamed"
    assert.are.equal("2018-12-03", cat:build("smartertrack", 6911).released)
  end)

  it("lists products, builds oldest first, and the policy with defaults", function()
    local cat = fixtures.catalogue()
    local products = cat:products()
    assert.are.same({ "smartermail", "smartertrack" }, { products[1].id, products[2].id })
    assert.are.same({ "free", "professional", "enterprise" }, products[1].editions)
    local builds = cat:builds("smartertrack")
    assert.are.equal(6700, builds[1].number)
    assert.are.equal(7100, builds[#builds].number)
    assert.are.same({ ms_months = 12, trial_days = 30, migration_days = 30, migration_extra = 1,
                      extra_servers = 0, migration_gap_days = 14, checkin_grace_days = 7, phone_after_days = 7,
                      disable_after_days = 14, case_cooldown_days = 90, certificate_days = 30,
                      grace_days = 14, fingerprint_match = "most", ms_percent = 0,
                      drift_components = 1, drift_changes = 2, drift_days = 90,
                      self_deactivations = 3, self_deactivation_days = 365,
                      renewal_basis = "from_expiry",
                      reminders = { ms = { 30, 7, -1 }, trial = { 7, 1 }, lease = { 30 }, addon = { 30 } } },
                    cat:policy())
  end)

  it("names its currency (USD unless it says otherwise) and lists its price table", function()
    assert.are.equal("USD", fixtures.catalogue():currency())
    local t = fixtures.catalogue_table()
    t.currency = "EUR"
    assert.are.equal("EUR", assert(licensor.catalogue(t)):currency())
    t.currency = "euro"
    assert.are.equal("invalid_catalogue", select(3, licensor.catalogue(t)))
    local prices = fixtures.catalogue():prices("smartertrack")
    assert.are.same({ major = 13, edition = "professional", level = 5, price = 19900 }, prices[1])
    assert.are.same({ major = 14, edition = "enterprise", level = "unlimited", price = 159900 }, prices[#prices])
  end)

  it("close frees it; methods then raise; __gc may run twice", function()
    local cat = fixtures.catalogue()
    cat:close()
    assert.matches("closed", tostring(cat))
    assert.has_error(function() cat:eligible(fixtures.faq_license(), "2019-01-01") end)
    local gc = getmetatable(cat).__gc
    gc(cat)
    gc(cat)
    assert.matches("closed", tostring(cat))
  end)

  it("methods raise when called on something that is not a catalogue", function()
    local cat = fixtures.catalogue()
    assert.has_error(function() cat.eligible({}, fixtures.faq_license()) end)
    assert.has_error(function() cat.eligible(io.stdout, fixtures.faq_license()) end)
  end)
end)
