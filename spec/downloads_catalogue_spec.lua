-- A build's downloads in the catalogue (rules.md section 2): every field
-- rule checked at import with a message naming product, build and field,
-- the abuse cases of `file`, `platform` and `url`, the build records and
-- cat:status that carry them, and the policy keys of the portal
-- (self_deactivations, self_deactivation_days, checkout_url).
local licensor = require "licensor"
local core = require "licensor.core"
local stores = require "support.stores"

local rep = string.rep
local HEX = rep("0123456789abcdef", 4)

-- A catalogue of one product with build 6911 listing `downloads`.
local function catalogue_table(downloads, policy)
  return { policy = policy, products = { { id = "smartertrack", editions = { "enterprise" }, builds = {
    { number = 6855, version = "13.5.6855", released = "2018-10-09" },
    { number = 6911, version = "100.0.6911", released = "2018-12-03", downloads = downloads },
  } } } }
end

-- One download, with fields replaced (false removes one).
local function download(fields)
  local d = { platform = "linux-x64", file = "smartertrack/SmarterTrack-6911.tar.gz", sha256 = HEX, size = 1234 }
  for k, v in pairs(fields or {}) do
    if v == false then d[k] = nil else d[k] = v end
  end
  return d
end

-- The message of an import that must be refused, checking its code and
-- what it names.
local function refused(downloads, policy)
  local cat, msg, code, where = core.catalogue(catalogue_table(downloads, policy))
  assert.is_nil(cat)
  assert.are.equal("invalid_catalogue", code)
  if not policy then assert.are.same({ product = "smartertrack", build = 6911 }, where) end
  return msg
end

local PREFIX = "^product 'smartertrack': build 6911: "

describe("catalogue downloads", function()
  it("puts a build's downloads on its record, the name defaulting to the file's last segment", function()
    local cat = assert(core.catalogue(catalogue_table({
      download(),
      download{ platform = "windows-x64", file = "SmarterTrack-6911.zip", name = "Setup.zip", size = 99 },
    })))
    local build = cat:build("smartertrack", 6911)
    assert.are.same({
      { platform = "linux-x64", file = "smartertrack/SmarterTrack-6911.tar.gz", sha256 = HEX, size = 1234,
        name = "SmarterTrack-6911.tar.gz" },
      { platform = "windows-x64", file = "SmarterTrack-6911.zip", sha256 = HEX, size = 99, name = "Setup.zip" },
    }, build.downloads)
    -- the same shared list on every answer naming the build
    assert.are.equal(build.downloads, cat:builds("smartertrack")[2].downloads)
    assert.are.equal(build.downloads, cat:newest_build("smartertrack", "2026-01-01").downloads)
    -- a build without downloads has no such field
    assert.are.same({ number = 6855, version = "13.5.6855", major = 13, released = "2018-10-09" },
                    cat:build("smartertrack", 6855))
  end)

  it("cat:status names the eligible build's downloads, and none when that build has none", function()
    local cat = assert(core.catalogue(catalogue_table({ download() })))
    local lapsed = { product = "smartertrack", start = "2017-12-07", ms_expires = "2018-12-06" }
    local status = assert(cat:status(lapsed, "2026-01-01"))
    assert.are.equal(6911, status.eligible.number)
    assert.are.equal(status.eligible.downloads, status.downloads)
    assert.are.equal("linux-x64", status.downloads[1].platform)
    local older = { product = "smartertrack", start = "2017-12-07", ms_expires = "2018-11-01" }
    status = assert(cat:status(older, "2026-01-01"))
    assert.are.equal(6855, status.eligible.number)
    assert.is_nil(status.downloads)
    -- no eligible build, no downloads
    status = assert(cat:status({ product = "smartertrack", start = "2030-01-01" }, "2026-01-01"))
    assert.is_nil(status.eligible)
    assert.is_nil(status.downloads)
  end)

  it("takes a url instead of a file, naming it after the url's last path segment", function()
    local cat = assert(core.catalogue(catalogue_table({
      download{ file = false, url = "https://cdn.example.com/st/SmarterTrack-6911.tar.gz?region=eu" },
      download{ platform = "windows-x64", file = false, url = "http://dl.example.com/get?id=6911",
                name = "SmarterTrack-6911.zip" },
    })))
    local downloads = cat:build("smartertrack", 6911).downloads
    assert.are.same({ platform = "linux-x64", url = "https://cdn.example.com/st/SmarterTrack-6911.tar.gz?region=eu",
                      sha256 = HEX, size = 1234, name = "SmarterTrack-6911.tar.gz" }, downloads[1])
    assert.are.equal("SmarterTrack-6911.zip", downloads[2].name)
    assert.is_nil(downloads[2].file)
    assert.matches(PREFIX .. "downloads%[1%] needs a name: the url's path does not end in a file name",
                   refused({ download{ file = false, url = "https://cdn.example.com/" } }))
    assert.matches("needs a name", refused({ download{ file = false, url = "https://cdn.example.com" } }))
  end)

  it("refuses exactly one of file and url: both, or neither", function()
    assert.matches(PREFIX .. "downloads%[1%] gives both file and url %(one of them%)$",
                   refused({ download{ url = "https://cdn.example.com/a.zip" } }))
    assert.matches(PREFIX .. "downloads%[1%] needs a file %(in the artifact directory%) or a url$",
                   refused({ download{ file = false } }))
  end)

  it("refuses a file that could leave the artifact directory or name a hidden file", function()
    local bad = { "../x", "/etc/passwd", ".hidden", "a/../../b", "a/./b", "a/.hidden", "..", ".",
                  "a\\b", "..\\..\\x", "a/", "a//b", "", "a b", "a\0b", "a\nb", "a\27[31mb", "~/x",
                  "a:b", "%2e%2e/x", "caf\195\169", rep("a", 256), 12, true, {} }
    for _, file in ipairs(bad) do
      assert.matches(PREFIX .. "downloads%[1%]%.file must be a relative path of at most 255 bytes",
                     refused({ download{ file = file } }))
    end
    -- at the limit, and the characters a file name may hold
    assert.is_userdata(core.catalogue(catalogue_table({ download{ file = rep("a", 255) } })))
    assert.is_userdata(core.catalogue(catalogue_table({ download{ file = "A/b_c/d-1.2+3.tar.gz" } })))
    assert.is_userdata(core.catalogue(catalogue_table({ download{ file = "_x/a..b" } })))
  end)

  it("refuses a platform that is not a short lowercase word, or one listed twice", function()
    local bad = { "../x", "a/b", "Linux-x64", "-x64", ".x", "_x", "", rep("a", 33), "linux x64", "a\0",
                  "a\\b", 64, false }
    for _, platform in ipairs(bad) do
      assert.matches(PREFIX .. "downloads%[1%]%.platform must be 1 to 32 bytes of a%-z, 0%-9",
                     refused({ download{ platform = platform } }))
    end
    assert.is_userdata(core.catalogue(catalogue_table({ download{ platform = rep("a", 32) } })))
    assert.is_userdata(core.catalogue(catalogue_table({ download{ platform = "9.x_86-64" } })))
    assert.matches(PREFIX .. "downloads%[2%]%.platform 'linux%-x64' is listed twice$",
                   refused({ download(), download{ file = "other.zip" } }))
  end)

  it("refuses a url that is not plain http(s) or carries what could break a header or a page", function()
    local bad = { "https://cdn.example.com/a b.zip", 'https://cdn.example.com/a".zip', "https://cdn.example.com/a'.zip",
                  "https://cdn.example.com/<a>.zip", "https://cdn.example.com/a.zip#frag",
                  "https://cdn.example.com/a\r\nSet-Cookie: x=1", "https://cdn.example.com/a\0.zip",
                  "https://cdn.example.com/a\\b.zip", "https://cdn.example.com/caf\195\169.zip",
                  "javascript:alert(1)//a.zip", "ftp://cdn.example.com/a.zip", "//cdn.example.com/a.zip",
                  "https:///a.zip", "https://", "HTTPS://cdn.example.com/a.zip", "cdn.example.com/a.zip",
                  "https://cdn.example.com/" .. rep("a", 1000) .. ".zip", 7 }
    for _, url in ipairs(bad) do
      assert.matches(PREFIX .. "downloads%[1%]%.url must be an http:// or https:// URL of at most 1024 bytes",
                     refused({ download{ file = false, url = url } }))
    end
    local longest = "https://cdn.example.com/x.zip?" .. rep("a", 1024 - 30)
    assert.are.equal(1024, #longest)
    assert.is_userdata(core.catalogue(catalogue_table({ download{ file = false, url = longest } })))
  end)

  it("refuses a sha256 that is not 64 lowercase hex digits", function()
    for _, sha256 in ipairs({ HEX:upper(), HEX:sub(2), HEX .. "0", rep("g", 64), " " .. HEX:sub(2), 1, false }) do
      assert.are.equal("product 'smartertrack': build 6911: downloads[2].sha256 must be 64 lowercase hex digits",
                       refused({ download{ platform = "windows-x64" }, download{ sha256 = sha256 } }))
    end
  end)

  it("refuses a size that is not a whole number of bytes above 0", function()
    for _, size in ipairs({ 0, 1.5, -1, -0.5, "1234", 2 ^ 53, 1 / 0, 0 / 0, false }) do
      assert.matches(PREFIX .. "downloads%[1%]%.size must be a whole number of bytes above 0$",
                     refused({ download{ size = size } }))
    end
    assert.is_userdata(core.catalogue(catalogue_table({ download{ size = 2 ^ 53 - 1 } })))
  end)

  it("refuses a name that is not one plain file name", function()
    for _, name in ipairs({ "a/b", ".x", "..", 'a"b.zip', "a b", "a;b", "a\r\nb", "", rep("a", 256), 5 }) do
      assert.matches(PREFIX .. "downloads%[1%]%.name must be a file name of at most 255 bytes",
                     refused({ download{ name = name } }))
    end
  end)

  it("refuses a field it does not know, suggesting the one meant", function()
    assert.are.equal("product 'smartertrack': build 6911: downloads[1].sha265 is not a download field " ..
                     "(did you mean 'sha256'?)", refused({ download{ sha265 = HEX } }))
    assert.matches("downloads%[1%]%.platfrom is not a download field %(did you mean 'platform'%?%)",
                   refused({ download{ platfrom = "x" } }))
    assert.matches("downloads%[1%]%.checksum is not a download field %(the fields are platform, file, url, " ..
                   "sha256, size and name%)", refused({ download{ checksum = HEX } }))
    assert.matches("downloads%[1%]: the fields are platform, file", refused({ download{ [1] = "x" } }))
    -- a hostile key is not echoed into the message
    local msg = refused({ download{ ["x\27]0;owned\7"] = 1 } })
    assert.matches("downloads%[1%]%.%? is not a download field", msg)
    assert.is_nil(msg:find("\27", 1, true))
    msg = refused({ download{ [rep("k", 10000)] = 1 } })
    assert.is_true(#msg < 512)
  end)

  it("refuses a build field one typo away from downloads, major or no_rollback, and allows other new ones",
     function()
    local function build_with(extra)
      local t = catalogue_table()
      for k, v in pairs(extra) do t.products[1].builds[2][k] = v end
      return core.catalogue(t)
    end
    for typo, meant in pairs({ downlods = "downloads", download = "downloads", Downloads = "downloads",
                               no_rolback = "no_rollback", majr = "major" }) do
      local cat, msg, code = build_with({ [typo] = {} })
      assert.is_nil(cat)
      assert.are.equal("invalid_catalogue", code)
      assert.are.equal("product 'smartertrack': build 6911: " .. typo .. " is not a build field (did you mean '" ..
                       meant .. "'?)", msg)
    end
    -- a field a newer version may read is still ignored
    assert.is_truthy(build_with({ minor = 3, notes = "security fix", channel = "stable" }))
  end)

  it("refuses more than 16 downloads, a list that is not one, and entries that are not tables", function()
    local many = {}
    for i = 1, 17 do many[i] = download{ platform = "p" .. i } end
    assert.matches(PREFIX .. "more than 16 downloads$", refused(many))
    many[17] = nil
    assert.are.equal(16, #assert(core.catalogue(catalogue_table(many))):build("smartertrack", 6911).downloads)
    -- a lone download table instead of a list of them
    assert.matches(PREFIX .. "downloads must be a list of download tables$", refused(download()))
    assert.matches(PREFIX .. "downloads must be a list of download tables$", refused({ download(), x = 1 }))
    assert.matches(PREFIX .. "downloads must be a list of download tables$", refused("linux-x64"))
    assert.matches(PREFIX .. "downloads%[1%] must be a table$", refused({ "linux-x64" }))
    -- an empty list is no downloads
    assert.is_nil(assert(core.catalogue(catalogue_table({}))):build("smartertrack", 6911).downloads)
  end)

  it("reads download tables raw: a metatable cannot supply or hide a field", function()
    local d = setmetatable(download{ sha256 = false }, { __index = function() return HEX end })
    assert.matches("sha256 must be 64 lowercase hex digits", refused({ d }))
    d = setmetatable(download(), { __index = function() error("boom") end, __pairs = function() error("boom") end })
    assert.is_userdata(core.catalogue(catalogue_table({ d })))
  end)

  it("bounds the copies: one shared list on every build of a huge catalogue is refused, not copied", function()
    local shared = {}
    for i = 1, 16 do shared[i] = download{ platform = "p" .. i } end
    local builds = {}
    for i = 1, 6251 do builds[i] = { number = i, version = "1." .. i, released = "2018-01-01", downloads = shared } end
    local cat, msg, code = core.catalogue({ products = { { id = "p", editions = { "e" }, builds = builds } } })
    assert.is_nil(cat)
    assert.are.equal("invalid_catalogue", code)
    assert.matches("^product 'p': build 6251: more than 100000 downloads in the catalogue$", msg)
  end)

  it("answers random garbage in downloads with a catalogue or invalid_catalogue, never an error", function()
    local garbage = { "", "../x", rep("x", 2000), -1, 0, 1.5, 2 ^ 60, true, {}, { {} }, HEX, "linux-x64",
                      "https://a.example/x.zip", "\0", setmetatable({}, { __index = error }), print }
    local fields = { "platform", "file", "url", "sha256", "size", "name", "sha265", 1, 17 }
    local random = math.random
    math.randomseed(20)
    local bad = 0
    for _ = 1, 3000 do
      local list = { download(), download{ platform = "windows-x64" } }
      local target = list[random(2)]
      for _ = 1, random(3) do target[fields[random(#fields)]] = garbage[random(#garbage + 1)] end
      local ok, cat, msg, code = pcall(core.catalogue, catalogue_table(random(10) == 1 and target or list))
      if not ok or not (type(cat) == "userdata" or (code == "invalid_catalogue" and type(msg) == "string")) then
        bad = bad + 1
      end
    end
    collectgarbage()
    assert.are.equal(0, bad)
  end)

  it("survives the store: imported, stored and opened again with its downloads", function()
    local path = stores.path()
    local store = assert(licensor.open(path, { synchronous = "normal" }))
    assert(store:import(catalogue_table({ download(), download{ platform = "windows-x64", file = false,
                                                          url = "https://cdn.example.com/a/b.zip" } })))
    store:close()
    store = assert(licensor.open(path))
    local downloads = assert(store:catalogue()):build("smartertrack", 6911).downloads
    store:close()
    stores.remove(path)
    assert.are.same({ "smartertrack/SmarterTrack-6911.tar.gz", "https://cdn.example.com/a/b.zip", "b.zip" },
                    { downloads[1].file, downloads[2].url, downloads[2].name })
  end)
end)

describe("portal policy keys", function()
  it("defaults to 3 self-service deactivations per 365 days and no checkout url", function()
    local policy = assert(core.catalogue(catalogue_table())):policy()
    assert.are.same({ 3, 365 }, { policy.self_deactivations, policy.self_deactivation_days })
    assert.is_nil(policy.checkout_url)
  end)

  it("takes them within their bounds and returns them from cat:policy()", function()
    local policy = assert(core.catalogue(catalogue_table(nil, {
      self_deactivations = 0, self_deactivation_days = 3650,
      checkout_url = "https://shop.example.com/renew?source=licensor" }))):policy()
    assert.are.same({ 0, 3650, "https://shop.example.com/renew?source=licensor" },
                    { policy.self_deactivations, policy.self_deactivation_days, policy.checkout_url })
    assert.are.equal(1000, assert(core.catalogue(catalogue_table(nil, { self_deactivations = 1000 })))
                             :policy().self_deactivations)
  end)

  it("refuses them out of bounds", function()
    assert.are.equal("policy.self_deactivations must be a whole number from 0 to 1000",
                     refused(nil, { self_deactivations = 1001 }))
    assert.are.equal("policy.self_deactivations must be a whole number from 0 to 1000",
                     refused(nil, { self_deactivations = -1 }))
    assert.are.equal("policy.self_deactivation_days must be a whole number from 1 to 3650",
                     refused(nil, { self_deactivation_days = 0 }))
    assert.are.equal("policy.self_deactivation_days must be a whole number from 1 to 3650",
                     refused(nil, { self_deactivation_days = 3651 }))
    assert.matches("policy%.self_deactivations", refused(nil, { self_deactivations = 1.5 }))
  end)

  it("refuses a checkout_url that is not a plain http(s) URL of at most 512 bytes", function()
    local longest = "https://shop.example.com/" .. rep("a", 512 - 25)
    assert.are.equal(512, #longest)
    assert.are.equal(longest, assert(core.catalogue(catalogue_table(nil, { checkout_url = longest })))
                                :policy().checkout_url)
    for _, url in ipairs({ longest .. "a", "javascript:alert(1)", 'https://shop.example.com/"><script>',
                           "https://shop.example.com/a b", "https://shop.example.com/#x", "", 1, true }) do
      assert.matches("^policy%.checkout_url must be an http:// or https:// URL of at most 512 bytes",
                     refused(nil, { checkout_url = url }))
    end
    assert.matches("policy%.checkout_urll is not a policy setting", refused(nil, { checkout_urll = "x" }))
  end)
end)
