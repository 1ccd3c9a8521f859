-- What the portal's pages show of a license (licensor.portal.view), from
-- catalogue tables: the FAQ's dialog for every kind of license (R2-R7 in
-- one sentence each), dates as the FAQ writes them, money in the
-- catalogue's currency (R12 quotes, R15 renewals), checkout links, the
-- older builds (R5), installations and the self-service budget; the view
-- is plain data.  And the templates (licensor.portal.html, the pages):
-- every value escaped unless it is markup they made.
local licensor = require "licensor"
local view = require "licensor.portal.view"
local html = require "licensor.portal.html"
local pages = require "licensor.portal.pages"

local SHA = string.rep("ab", 32)

local function downloads(number)
  return { { platform = "linux-x64", file = "track/t-" .. number .. ".tar.gz", sha256 = SHA, size = 2500000 },
           { platform = "windows-x64", url = "https://cdn.example/t-" .. number .. ".zip", sha256 = SHA,
             size = 900 } }
end

local function catalogue(policy, fields)
  local t = {
    currency = fields and fields.currency,
    policy = policy or { ms_percent = 20, checkout_url = "https://shop.example/buy?from=portal" },
    products = {
      { id = "track", name = (fields and fields.name) or "Track", unit = "agents",
        editions = { "professional", "enterprise" }, addons = { "chat_bridge" },
        builds = {
          { number = 6700, version = "13.4.6700", released = "2018-05-01", downloads = downloads(6700) },
          { number = 6750, version = "13.4.6750", released = "2018-06-20" },
          { number = 6802, version = "13.5.6802", released = "2018-08-16", downloads = downloads(6802) },
          { number = 6855, version = "13.5.6855", released = "2018-10-08", downloads = downloads(6855) },
          { number = 6870, version = "13.5.6870", released = "2018-10-20" },
          { number = 6880, version = "13.5.6880", released = "2018-11-02" },
          { number = 6890, version = "13.5.6890", released = "2018-11-15" },
          { number = 6911, version = "100.0.6911", released = "2018-12-03", downloads = downloads(6911) },
          { number = 6947, version = "100.0.6947", released = "2019-01-11", downloads = downloads(6947) },
        },
        prices = {
          [13] = { professional = { [5] = 10000 }, enterprise = { [5] = 30000, [10] = 50000 } },
          [100] = { professional = { [5] = 20000, [10] = 30000 },
                    enterprise = { [5] = 50000, [10] = 80000, unlimited = 150000 } },
        } },
      { id = "mail", name = "Mail", unit = "mailboxes", editions = { "professional" },
        builds = { { number = 6300, version = "14.6.6300", released = "2017-05-01" },
                   { number = 6347, version = "14.7.6347", released = "2017-06-15" },
                   { number = 6380, version = "15.0.6380", released = "2017-07-18" } },
        prices = { [14] = { professional = { [250] = 40000 } } } },
    },
  }
  return assert(licensor.catalogue(t))
end

-- The FAQ's license: Enterprise 5 agents, M&S expired 2018-12-06.
local function faq(fields)
  local lic = { key = "FAQ-KEY", product = "track", edition = "enterprise", level = 5, kind = "perpetual",
                start = "2017-12-07", ms_expires = "2018-12-06", owner = "Acme" }
  for k, v in pairs(fields or {}) do lic[k] = v end
  return lic
end

-- Only strings, numbers, booleans and plain tables, none of them shared.
local function assert_plain(value, seen, path)
  seen, path = seen or {}, path or "view"
  local t = type(value)
  if t == "string" or t == "number" or t == "boolean" then return end
  assert.are.equal("table", t, path)
  assert.is_nil(getmetatable(value), path)
  assert.is_nil(seen[value], path .. " is shared")
  seen[value] = true
  for k, v in pairs(value) do
    assert.is_true(type(k) == "string" or type(k) == "number", path)
    assert_plain(v, seen, path .. "." .. tostring(k))
  end
end

describe("view.date_text", function()
  it("writes days as the FAQ does", function()
    assert.are.same({ "December 6, 2018", "January 1, 2019", "February 29, 2024" },
                    { view.date_text("2018-12-06"), view.date_text("2019-01-01"), view.date_text("2024-02-29") })
    assert.is_nil(view.date_text(nil))
  end)
end)

describe("view.license: the FAQ's dialog", function()
  local cat = catalogue()

  it("says M&S expired on December 6, 2018 and that the license may install Build 6911 (released December 3, 2018)", function()
    local v = view.license(faq(), cat, {}, "2019-06-01")
    assert.are.same({ "expired", "2018-12-06", "December 6, 2018", "expired on December 6, 2018" },
                    { v.ms, v.ms_expires, v.ms_expires_text, v.ms_text })
    assert.are.equal("You may install Build 6911 (released December 3, 2018)", v.install_text)
    assert.are.equal("M&S expired on December 6, 2018: the license may install the newest build released by " ..
                     "then, and any earlier build.", v.reason)
    assert.are.same({ 6911, "100.0.6911", 100, "December 3, 2018" },
                    { v.eligible.number, v.eligible.version, v.eligible.major, v.eligible.released_text })
    assert.are.same({ { platform = "linux-x64", name = "t-6911.tar.gz", size = 2500000, sha256 = SHA },
                      { platform = "windows-x64", name = "t-6911.zip", size = 900, sha256 = SHA } },
                    v.eligible.downloads)
    assert.are.same({ "Track Enterprise, 5 agents", "5 agents", "Enterprise", "perpetual", "valid" },
                    { v.title, v.level_text, v.edition_text, v.kind_text, v.state_text })
    assert_plain(v)
  end)

  it("lists the older builds it may also install, newest first, the last several (R5)", function()
    local v = view.license(faq(), cat, {}, "2019-06-01")
    local numbers = {}
    for i, b in ipairs(v.older) do numbers[i] = b.number end
    assert.are.same({ 6890, 6880, 6870, 6855, 6802 }, numbers)
    assert.are.equal(view.OLDER_BUILDS, #v.older)
    assert.are.same({}, v.older[1].downloads)
    assert.are.equal(2, #v.older[4].downloads)
  end)

  it("says why in one sentence for every kind of license (R2-R7)", function()
    local cases = {
      { faq{ ms_expires = "2019-12-06" }, "active until December 6, 2019",
        "M&S is active until December 6, 2019: the license may install every build released until then.", 6947 },
      { faq{ ms_expires = false, start = "2018-11-20" }, "none", "This license was bought without M&S: it may " ..
        "install the newest build released by its purchase day, November 20, 2018, and any earlier build.", 6890 },
      { { key = "L", product = "mail", edition = "professional", level = 250, start = "2016-10-03",
          version_lock = 14 }, "none (tied to version 14.x)", "This license is tied to version 14.x: it may " ..
        "install the last 14.x build and any earlier build.", 6347 },
      { { key = "L", product = "track", kind = "lease", start = "2018-01-01" }, "not applicable (lease)",
        "A lease may install every new build while it runs.", 6947 },
      { { key = "L", product = "track", kind = "lease", start = "2018-01-01", lease_ended = "2019-02-01" },
        "not applicable (lease)", "The lease ended on February 1, 2019: a lease may install builds only while it " ..
        "runs.", nil },
      { { key = "L", product = "track", kind = "trial", start = "2019-05-20" }, "not applicable (trial)",
        "A trial may install every new build during its days, until June 18, 2019.", 6947 },
      { { key = "L", product = "track", kind = "trial", start = "2019-01-02", trial_days = 14 },
        "not applicable (trial)", "The trial ended on January 15, 2019: a trial may install builds only during " ..
        "its days.", nil },
      { faq{ disabled = "2019-03-01" }, "expired on December 6, 2018",
        "This license was disabled on March 1, 2019: it may install no build.", nil },
      { faq{ start = "2019-07-01", ms_expires = "2020-06-30" }, "active until June 30, 2020",
        "This license starts on July 1, 2019: it may install no build before then.", nil },
    }
    for _, c in ipairs(cases) do
      local lic = c[1]
      if lic.ms_expires == false then lic.ms_expires = nil end
      local v = view.license(lic, cat, {}, "2019-06-01")
      assert.are.same({ c[2], c[3] }, { v.ms_text, v.reason })
      assert.are.equal(c[4], v.eligible and v.eligible.number)
      if not c[4] then
        assert.are.equal("This license may not install any build now", v.install_text)
        assert.is_string(v.refusal)
        assert.are.same({}, v.older)
      end
      assert_plain(v)
    end
  end)

  it("prices a renewal (ms_percent of the price in the eligible build's major) and catching up (R15)", function()
    local v = view.license(faq(), cat, {}, "2019-06-01")
    -- 20% of $500.00, one term brings M&S to 2019-12-06.
    assert.are.same({ 10000, 1, 10000, "$100.00", "2019-12-06" },
                    { v.renewal.price, v.renewal.terms, v.renewal.amount, v.renewal.amount_text, v.renewal.until_date })
    assert.are.equal("Renewing M&S for 12 months costs $100.00; M&S then runs until December 6, 2019 (terms " ..
                     "count from December 6, 2018, the day M&S ended).", v.renewal.text)
    -- Lapsed for years, from_expiry: every lapsed term is paid for.
    local late = view.license(faq(), cat, {}, "2021-03-01")
    assert.are.same({ 3, 30000, "2021-12-06" }, { late.renewal.terms, late.renewal.amount, late.renewal.until_date })
    assert.are.equal("Bringing M&S up to date takes 3 terms of 12 months, $100.00 each: $300.00 in all; M&S then " ..
                     "runs until December 6, 2021 (terms count from December 6, 2018, the day M&S ended).",
                     late.renewal.text)
    local fresh = catalogue{ ms_percent = 20, renewal_basis = "from_renewal" }
    local renewed = view.license(faq(), fresh, {}, "2021-03-01").renewal
    assert.are.equal(1, renewed.terms)
    assert.is_nil(renewed.text:find("terms count from", 1, true))
    -- No M&S price, or nothing to renew.
    assert.is_nil(view.license(faq(), catalogue{}, {}, "2019-06-01").renewal)
    assert.is_nil(view.license({ key = "L", product = "track", kind = "lease", start = "2018-01-01" }, cat, {},
                               "2019-06-01").renewal)
    assert.is_nil(view.license(faq{ disabled = "2019-03-01" }, cat, {}, "2019-06-01").renewal)
  end)

  it("quotes upgrades by price difference in the eligible major (R12); a lower one says to contact sales", function()
    local v = view.license(faq(), cat, {}, "2019-06-01")
    local quotes = {}
    for _, u in ipairs(v.upgrades) do quotes[#quotes + 1] = u.title .. " " .. u.amount_text end
    assert.are.same({ "Enterprise, 10 agents $300.00", "Enterprise, unlimited agents $1,000.00" }, quotes)
    assert.are.equal("A lower edition or level is a license change: contact sales.", v.downgrade)
    -- Within major 13 (the M&S of an older license): that major's prices.
    local old = view.license(faq{ ms_expires = "2018-09-01" }, cat, {}, "2019-06-01")
    assert.are.same({ 6802, 1, 20000 }, { old.eligible.number, #old.upgrades, old.upgrades[1].amount })
    -- A license without edition and level has no quotes.
    local lease = view.license({ key = "L", product = "track", kind = "lease", start = "2018-01-01" }, cat, {},
                               "2019-06-01")
    assert.are.same({}, lease.upgrades)
    assert.is_nil(lease.downgrade)
    -- Money in the catalogue's currency.
    local euros = catalogue({ ms_percent = 20 }, { currency = "EUR" })
    assert.are.equal("€300.00", view.license(faq(), euros, {}, "2019-06-01").upgrades[1].amount_text)
  end)

  it("points checkout buttons at the policy's checkout_url with the key, item, amount and currency", function()
    local v = view.license(faq{ key = "K&1 2" }, cat, {}, "2019-06-01")
    assert.are.equal("https://shop.example/buy?from=portal&key=K%261%202&item=renewal&terms=1&amount=10000" ..
                     "&currency=USD", v.renewal.checkout)
    assert.are.equal("https://shop.example/buy?from=portal&key=K%261%202&item=upgrade&edition=enterprise" ..
                     "&level=10&amount=30000&currency=USD", v.upgrades[1].checkout)
    local bare = catalogue{ ms_percent = 20, checkout_url = "https://shop.example/pay" }
    assert.are.equal("https://shop.example/pay?key=FAQ-KEY&item=renewal&terms=1&amount=10000&currency=USD",
                     view.license(faq(), bare, {}, "2019-06-01").renewal.checkout)
    assert.is_nil(view.license(faq(), catalogue{ ms_percent = 20 }, {}, "2019-06-01").renewal.checkout)
  end)

  it("lists each server's newest installation that runs or holds a slot, with the self-service budget", function()
    local installs = {
      { server = "old", build = 6855, first_seen = "2019-01-01", last_seen = "2019-02-01", deactivated = "2019-02-02" },
      { server = "old", build = 6911, first_seen = "2019-03-01", last_seen = "2019-05-30" },
      { server = "gone", build = 6911, first_seen = "2019-01-01", deactivated = "2019-04-01" },
      { server = "held", build = 6911, first_seen = "2019-01-01", deactivated = "2019-05-20", held_until = "2019-06-20" },
      { server = "quiet", build = 6911, first_seen = "2019-01-01", last_seen = "2019-04-01" },
    }
    local v = view.license(faq(), cat, installs, "2019-06-01", 1)
    local rows = {}
    for _, i in ipairs(v.installations) do
      rows[#rows + 1] = { i.server, i.state, i.last_seen_text, i.held_until_text }
    end
    assert.are.same({ { "old", "active", "May 30, 2019" },
                      { "held", "deactivated", "January 1, 2019", "June 20, 2019" },
                      { "quiet", "not checking in", "April 1, 2019" } }, rows)
    assert.are.same({ allowed = 3, days = 365, used = 1, left = 2 }, v.self_deactivation)
    assert.are.same({ allowed = 1, days = 30, used = 4, left = 0 },
                    view.license(faq(), catalogue{ self_deactivations = 1, self_deactivation_days = 30 }, installs,
                                 "2019-06-01", 4).self_deactivation)
    assert.are.same({ allowed = 3, days = 365 }, view.license(faq(), cat, {}, "2019-06-01").self_deactivation)
    assert_plain(v)
  end)

  it("answers copies: changing a view changes no catalogue record", function()
    local v = view.license(faq(), cat, {}, "2019-06-01")
    v.eligible.downloads[1].platform = "changed"
    v.eligible.number = 1
    local again = view.license(faq(), cat, {}, "2019-06-01")
    assert.are.same({ 6911, "linux-x64" }, { again.eligible.number, again.eligible.downloads[1].platform })
  end)

  it("shows add-ons with their state (R8)", function()
    local addons = { addons = { chat_bridge = "2018-12-06" } }
    local v = view.license(faq(addons), cat, {}, "2018-11-01")
    assert.are.same({ { id = "chat_bridge", name = "Chat bridge", state = "active", paid_through = "2018-12-06",
                        text = "active, paid through December 6, 2018" } }, v.addons)
    assert.are.equal("expired on December 6, 2018", view.license(faq(addons), cat, {}, "2019-06-01").addons[1].text)
  end)
end)

describe("licensor.portal.html", function()
  it("escapes every value for text and quoted attributes", function()
    local m = html.render([[<a title="{{t}}">{{t}}</a>]], { t = [[<script>"x"&'y']] })
    assert.are.equal([[<a title="&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;">&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;</a>]],
                     html.text(m))
    assert.are.equal("<p>5</p>", html.text(html.render("<p>{{n}}</p>", { n = 5 })))
  end)

  it("passes only its own markup unescaped", function()
    local inner = html.render("<b>{{x}}</b>", { x = "<i>" })
    assert.are.equal("<p><b>&lt;i&gt;</b></p>", html.text(html.render("<p>{{m}}</p>", { m = inner })))
    -- A table that looks like markup is not markup.
    assert.has_error(function() html.render("{{m}}", { m = { text = "<script>" } }) end)
    assert.are.equal("&lt;a&gt;<b>&lt;i&gt;</b>", html.text(html.join({ "<a>", inner })))
    assert.are.equal("<li>1</li><li>&lt;2&gt;</li>", html.text(html.each({ 1, "<2>" }, function(v)
      return html.render("<li>{{v}}</li>", { v = v })
    end)))
  end)

  it("refuses a missing value unless it is optional, and values of other types", function()
    assert.has_error(function() html.render("{{nope}}", {}) end)
    assert.are.equal("<p></p>", html.text(html.render("<p>{{maybe?}}</p>", {})))
    assert.has_error(function() html.render("{{b}}", { b = true }) end)
    assert.has_error(function() html.text("<p>") end)
  end)

  it("percent-encodes URL components", function()
    assert.are.equal("/x?key=a%26b%3D%3Cc%3E&n=5", html.url("/x", { "key", "a&b=<c>", "n", 5 }))
    assert.are.equal("..%2F..%2Fetc", html.component("../../etc"))
  end)
end)

describe("the pages", function()
  local evil = [[<script>alert("x")</script>' onmouseover='y]]
  local escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;y"
  local cat = catalogue({ ms_percent = 20, checkout_url = "https://shop.example/buy?a=1&b=2" }, { name = evil })

  it("escape product, owner and server names and the signed-in address on every page", function()
    local v = view.license(faq{ owner = evil }, cat, { { server = evil, build = 6911, first_seen = "2019-05-01",
                                                         last_seen = "2019-05-31" } }, "2019-06-01")
    local ctx = { email = evil .. "@x.example", csrf = "ab12" }
    for _, text in ipairs({ pages.license(ctx, v), pages.licenses(ctx, { v }), pages.problem(ctx, evil, evil),
                            pages.sent(ctx, evil), pages.signin(ctx, evil), pages.confirm(ctx, evil) }) do
      assert.is_nil(text:find("<script", 1, true))
      assert.is_nil(text:find(evil, 1, true))
      assert.truthy(text:find(escaped, 1, true))
    end
    local page = pages.license(ctx, v)
    assert.truthy(page:find('href="https://shop.example/buy?a=1&amp;b=2&amp;key=FAQ-KEY&amp;item=renewal', 1, true))
    assert.truthy(page:find('<html lang="en">', 1, true))
  end)

  it("label every form field and keep headings in order", function()
    local v = view.license(faq(), catalogue(), { { server = "s", build = 6911, first_seen = "2019-05-01" } },
                           "2019-06-01")
    for _, text in ipairs({ pages.license({ email = "a@b", csrf = "c" }, v), pages.signin({ csrf = "c" }) }) do
      for id in text:gmatch('<input id="([%w_-]+)"') do
        assert.truthy(text:find('<label for="' .. id .. '">', 1, true), id)
      end
      for input in text:gmatch("<input[^>]*>") do
        assert.truthy(input:find('type="hidden"', 1, true) or input:find(' id="', 1, true), input)
      end
      local last = 0
      for level in text:gmatch("<h(%d)") do
        assert.is_true(tonumber(level) <= last + 1, "h" .. level .. " after h" .. last)
        last = tonumber(level)
      end
      assert.are.equal(1, select(2, text:gsub("<h1", "")))
    end
  end)

  it("write sizes for people", function()
    assert.are.same({ "900 bytes", "3 KB", "2.4 MB" },
                    { pages.size_text(900), pages.size_text(2500), pages.size_text(2500000) })
  end)
end)
