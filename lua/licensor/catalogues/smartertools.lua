-- smartertools.lua -- the catalogue of the three SmarterTools products:
-- SmarterMail, SmarterTrack and SmarterStats, with their editions, levels,
-- add-ons, prices and build history.
--
-- Build numbers count days since 2000-01-01: a build's number is the day it
-- was released (SmarterTrack 6911 <-> 2018-12-03).  Up to late 2018 builds
-- carried a product version (SmarterMail 14.7.6347, the last 14.x); from
-- the build-number era on the version is 100.0.NNNN.  Prices are in US
-- cents, per major version, edition and level (mailboxes, agents, sites).
--
-- This file runs in licensor's catalogue sandbox: plain Lua, no os or io;
-- day() and date() are the sandbox's calendar helpers.

local floor = math.floor
local BUILD_EPOCH = day("2000-01-01")

-- The calendar date of a build number (days since 2000-01-01).
local function released(number)
  return date(BUILD_EPOCH + number)
end

-- Versioned builds: { "14.7", 6347 } -> 14.7.6347.
local function versioned(list, builds)
  for _, entry in ipairs(list) do
    local number = entry[2]
    builds[#builds + 1] = { number = number, version = entry[1] .. "." .. number,
                            released = released(number), no_rollback = entry.no_rollback }
  end
  return builds
end

-- Build-number era: 100.0.NNNN.  The first one moved to a new back end and
-- cannot be rolled back from (its release note says so).
local function build_era(numbers, builds)
  for i, number in ipairs(numbers) do
    builds[#builds + 1] = { number = number, version = "100.0." .. number,
                            released = released(number), no_rollback = i == 1 or nil }
  end
  return builds
end

local function prices_for(majors, table_of)
  local prices = {}
  for i, major in ipairs(majors) do prices[major] = table_of(i) end
  return prices
end

-- Each major version is priced 5% above the one before; prices end in 99.
local function step(base, i)
  return floor(base * (19 + i) / 20) - 100
end

local smartermail_builds = versioned({
  { "14.0", 6100 }, { "14.0", 6131 }, { "14.1", 6172 }, { "14.2", 6201 }, { "14.3", 6235 },
  { "14.4", 6268 }, { "14.5", 6290 }, { "14.6", 6318 }, { "14.7", 6347 },
  { "15.0", 6380 }, { "15.1", 6415 }, { "15.2", 6449 }, { "15.3", 6478 }, { "15.5", 6520 },
  { "15.7", 6561 },
  { "16.0", 6590 }, { "16.1", 6633 }, { "16.2", 6681 }, { "16.3", 6730 }, { "16.3", 6798 },
}, {})
build_era({
    6837, 6875, 6900, 6921, 6954, 6995, 7037, 7074, 7104, 7128, 7162, 7200,
    7238, 7266, 7294, 7316, 7338, 7386, 7409, 7443, 7484, 7521, 7543, 7578,
    7623, 7664, 7704, 7749, 7770, 7793, 7837, 7863, 7891, 7918, 7952, 7994,
    8033, 8073, 8104, 8144, 8171, 8207, 8238, 8273, 8303, 8333, 8355, 8394,
    8427, 8453, 8481, 8513, 8544, 8592, 8632, 8681, 8724, 8759, 8790, 8819,
    8842, 8871, 8912, 8939, 8987, 9011, 9035, 9060, 9097, 9139, 9180, 9217,
    9245, 9266, 9298, 9324, 9345, 9392, 9438, 9483, 9529, 9570, 9611, 9654,
    9676, 9718, 9766,
}, smartermail_builds)

local smartertrack_builds = versioned({
  { "12.0", 6075 }, { "12.1", 6140 }, { "12.2", 6203 }, { "12.3", 6266 }, { "12.4", 6311 },
  { "13.0", 6402 }, { "13.1", 6470 }, { "13.2", 6533 }, { "13.3", 6620 }, { "13.4", 6712 },
  { "13.5", 6802 }, { "13.5", 6855 },
}, {})
build_era({
    6911, 6947, 6989, 7022, 7054, 7077, 7120, 7154, 7185, 7220, 7259, 7286,
    7314, 7343, 7364, 7386, 7434, 7457, 7485, 7515, 7564, 7613, 7651, 7693,
    7732, 7764, 7811, 7834, 7883, 7913, 7942, 7968, 8016, 8054, 8095, 8121,
    8150, 8174, 8218, 8246, 8289, 8316, 8357, 8389, 8417, 8448, 8470, 8503,
    8549, 8572, 8616, 8664, 8686, 8732, 8766, 8813, 8844, 8869, 8902, 8938,
    8969, 8999, 9034, 9083, 9113, 9159, 9180, 9216, 9255, 9302, 9336, 9372,
    9398, 9440, 9476, 9516, 9561, 9590, 9616, 9665, 9689, 9720, 9749, 9787,
}, smartertrack_builds)

local smarterstats_builds = versioned({
  { "11.0", 6050 }, { "11.1", 6161 }, { "11.2", 6260 }, { "11.3", 6391 },
  { "12.0", 6500 }, { "12.1", 6604 }, { "12.2", 6700 }, { "12.3", 6811 },
}, {})
build_era({
    6890, 6922, 6949, 6989, 7016, 7046, 7076, 7117, 7162, 7204, 7228, 7261,
    7304, 7347, 7377, 7410, 7435, 7470, 7495, 7522, 7563, 7596, 7623, 7660,
    7707, 7732, 7780, 7821, 7860, 7892, 7929, 7951, 7986, 8034, 8059, 8085,
    8116, 8143, 8177, 8205, 8248, 8286, 8318, 8354, 8388, 8430, 8459, 8499,
    8531, 8564, 8592, 8613, 8641, 8672, 8707, 8746, 8786, 8810, 8831, 8876,
    8912, 8952, 8997, 9044, 9083, 9131, 9153, 9186, 9220, 9254, 9284, 9333,
    9364, 9408, 9440, 9466, 9499, 9531, 9574, 9598, 9621, 9658, 9681, 9709,
    9754,
}, smarterstats_builds)

return {
  policy = {
    ms_months = 12, trial_days = 30, migration_days = 30, migration_extra = 1,
    checkin_grace_days = 7, phone_after_days = 7, disable_after_days = 14,
    renewal_basis = "from_expiry",
    ms_percent = 25,   -- a year of M&S costs a quarter of the license
  },
  products = {
    { id = "smartermail", name = "SmarterMail", unit = "mailboxes",
      editions = { "professional", "enterprise" },
      addons = { "eas", "ews", "message_sniffer", "cyren_antivirus" },
      addon_prices = { eas = 9900, ews = 9900, message_sniffer = 14900, cyren_antivirus = 14900 },
      builds = smartermail_builds,
      prices = prices_for({ 14, 15, 16, 100 }, function(i)
        return {
          professional = { [100] = step(15000, i), [250] = step(30000, i),
                           [500] = step(50000, i), [1000] = step(80000, i) },
          enterprise = { [100] = step(30000, i), [250] = step(60000, i), [500] = step(100000, i),
                         [1000] = step(150000, i), [2500] = step(250000, i),
                         unlimited = step(400000, i) },
        }
      end),
    },
    { id = "smartertrack", name = "SmarterTrack", unit = "agents",
      editions = { "professional", "enterprise" },
      addons = { "live_chat_translation" },
      addon_prices = { live_chat_translation = 4900 },
      builds = smartertrack_builds,
      prices = prices_for({ 12, 13, 100 }, function(i)
        return {
          professional = { [5] = step(20000, i), [10] = step(30000, i), [20] = step(50000, i) },
          enterprise = { [5] = step(50000, i), [10] = step(80000, i), [20] = step(120000, i),
                         unlimited = step(150000, i) },
        }
      end),
    },
    { id = "smarterstats", name = "SmarterStats", unit = "sites",
      editions = { "professional", "enterprise" },
      addons = { "seo_reports" },
      addon_prices = { seo_reports = 4900 },
      builds = smarterstats_builds,
      prices = prices_for({ 11, 12, 100 }, function(i)
        return {
          professional = { [10] = step(10000, i), [25] = step(20000, i), [100] = step(40000, i) },
          enterprise = { [25] = step(40000, i), [100] = step(70000, i), [250] = step(100000, i),
                         unlimited = step(150000, i) },
        }
      end),
    },
  },
}
