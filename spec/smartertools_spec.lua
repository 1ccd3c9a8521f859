-- The bundled SmarterTools catalogue: it loads, and it holds the FAQ's
-- facts, so every FAQ answer can be read off it.
local licensor = require "licensor"

local cat = assert(licensor.load_catalogue("lua/licensor/catalogues/smartertools.lua"))

describe("bundled SmarterTools catalogue", function()
  it("holds SmarterMail, SmarterTrack and SmarterStats with editions and add-ons", function()
    local ids = {}
    for _, p in ipairs(cat:products()) do
      ids[#ids + 1] = p.id
      assert.is_true(p.build_count > 50)
    end
    assert.are.same({ "smartermail", "smarterstats", "smartertrack" }, ids)
    assert.are.same({ "eas", "ews", "message_sniffer", "cyren_antivirus" }, cat:products()[1].addons)
    assert.are.equal(9900, cat:products()[1].addon_prices.eas)
  end)

  it("FAQ: SmarterTrack Enterprise 5 agents, M&S expired 2018-12-06 -> build 6911 of 2018-12-03", function()
    local lic = { product = "smartertrack", edition = "enterprise", level = 5,
                  start = "2017-12-07", ms_expires = "2018-12-06" }
    local build = cat:eligible(lic, "2026-11-26")
    assert.are.same({ number = 6911, version = "100.0.6911", major = 100, released = "2018-12-03",
                      downloads = build.downloads }, build)
    -- the portal's download buttons: one file per platform
    assert.are.same({ "smartertrack/SmarterTrack_100.0.6911_windows-x64.zip",
                      "smartertrack/SmarterTrack_100.0.6911_linux-x64.zip" },
                    { build.downloads[1].file, build.downloads[2].file })
  end)

  it("FAQ: SmarterMail Professional 14.x - 250 mailboxes activates on 14.7.6347", function()
    local lic = { product = "smartermail", edition = "professional", level = 250,
                  start = "2016-10-01", version_lock = 14 }
    assert.are.equal("14.7.6347", cat:eligible(lic, "2026-11-26").version)
  end)

  it("numbers era builds by their release day since 2000-01-01", function()
    local epoch = licensor.day("2000-01-01")
    for _, p in ipairs(cat:products()) do
      for _, b in ipairs(cat:builds(p.id)) do
        assert.are.equal(b.number, licensor.day(b.released) - epoch)
        if b.major == 100 then assert.are.equal("100.0." .. b.number, b.version) end
      end
    end
  end)

  it("prices every edition and level of the newest major", function()
    local lic = { product = "smartertrack", edition = "professional", level = 5,
                  start = "2025-01-01", ms_expires = "2026-12-31" }
    local price = cat:quote_upgrade(lic, { edition = "enterprise", level = "unlimited" }, "2026-11-26")
    assert.is_true(math.type == nil or math.type(price) == "integer")
    assert.is_true(price > 0)
  end)

  it("forbids rolling back from the build era to the older versions", function()
    local lic = { product = "smartermail", start = "2019-01-01", ms_expires = "2019-12-31" }
    assert.are.equal("rollback_barrier", select(3, cat:can_rollback(lic, 6875, 6798)))
    assert.is_true(cat:can_rollback(lic, 6900, 6875))
  end)
end)
