-- fixtures.lua -- a small catalogue in the shape of doc/rules.md section 2, with
-- the FAQ's facts (SmarterTrack 6911 released 2018-12-03, SmarterMail
-- 14.7.6347 the last 14.x), and helpers shared by the specs.
local licensor = require "licensor"

local _M = {}

function _M.catalogue_table()
  return {
    policy = { ms_months = 12, trial_days = 30, migration_days = 30 },
    products = {
      { id = "smartertrack", name = "SmarterTrack", unit = "agents",
        editions = { "professional", "enterprise" },
        addons = { "eas", "message_sniffer" },
        builds = {
          { number = 6947, version = "13.5.6947", released = "2019-01-11", no_rollback = true },
          { number = 6700, version = "12.5.6700", released = "2018-05-06" },
          { number = 6911, version = "13.5.6911", released = "2018-12-03" },
          { number = 6855, version = "13.4.6855", released = "2018-10-08" },
          { number = 6790, version = "13.0.6790", released = "2018-08-04" },
          { number = 7010, version = "14.0.7010", released = "2019-03-15" },
          { number = 7100, version = "14.1.7100", released = "2019-06-13" },
        },
        prices = {
          [13] = { professional = { [5] = 19900, [10] = 29900 },
                   enterprise = { [5] = 49900, [10] = 79900, unlimited = 149900 } },
          [14] = { professional = { [5] = 20900, [10] = 31900 },
                   enterprise = { [5] = 52900, [10] = 83900, unlimited = 159900 } },
        },
      },
      { id = "smartermail", name = "SmarterMail", unit = "mailboxes",
        editions = { "free", "professional", "enterprise" },
        addons = { "eas", "message_sniffer" },
        builds = {
          { number = 6100, version = "14.0.6100", released = "2016-09-13" },
          { number = 6290, version = "14.5.6290", released = "2017-03-22" },
          { number = 6347, version = "14.7.6347", released = "2017-05-18" },
          { number = 6380, version = "15.0.6380", released = "2017-06-20" },
          { number = 6900, version = "100.0.6900", released = "2018-11-22" },
        },
        prices = {
          [14] = { professional = { [250] = 29900, [500] = 49900 },
                   enterprise = { [250] = 59900 } },
        },
      },
    },
  }
end

function _M.catalogue()
  return assert(licensor.catalogue(_M.catalogue_table()))
end

-- SmarterTrack Enterprise 5 agents, bought 2017-12-07 with 12 months of M&S
-- (expires 2018-12-06): the FAQ's example license.
function _M.faq_license(overrides)
  local lic = { key = "ST-FAQ", product = "smartertrack", edition = "enterprise", level = 5,
                start = "2017-12-07", ms_expires = "2018-12-06" }
  for k, v in pairs(overrides or {}) do lic[k] = v end
  return lic
end

-- Returns the three results of a call as a list, for assert.same.
-- machine(n) -> the fingerprint of the n-th of distinct machines:
-- machine-id, DMI uuid, MAC, disk and host components.
function _M.machine(n)
  local function part(c) return string.rep(string.format("%02x%02x", n % 256, c), 4) end
  return "v1:mid=" .. part(1) .. ",uuid=" .. part(3) .. ",mac=" .. part(5) .. ",disk=" .. part(7) ..
    ",host=" .. part(9)
end

-- new_key() -> a signing key in a temporary file, its public key text.
function _M.new_key()
  local path = os.tmpname()
  os.remove(path)
  local public = assert(require("licensor.certificate").new_key_files(path))
  return path, public
end

function _M.pack(...)
  return { n = select("#", ...), ... }
end

return _M
