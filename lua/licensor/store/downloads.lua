-- licensor.store.downloads -- granted downloads, each an event on the
-- license (doc/downloads.md).  The gateway's download route and the
-- portal record one per link they hand out; nothing here decides whether
-- a download is allowed (licensor.gateway.download does, with R3-R7).
local common = require "licensor.store.common"

local type = type

local Store = common.Store
local bad_argument, transaction = common.bad_argument, common.transaction
local check_on, normalise_key = common.check_on, common.normalise_key

local VIA = { api = true, portal = true }

local function record(self, key, detail, on)
  key, on = normalise_key(key), check_on(on)
  -- Read for its lock (PostgreSQL: the event's seq is the key's next) and
  -- so that an unknown key is unknown_key, never an orphan event.
  common.load_license(self, key)
  common.log(self, key, on, "download",
             { build = detail.build, platform = detail.platform, via = detail.via })
  return true
end

-- store:record_download(key, {build=, platform=, via="api"|"portal"}, on)
-- -> true: logs a "download" event on the license, recorded on day `on`.
-- Plain data in and out, so a gateway on PostgreSQL runs it on a thread.
function Store:record_download(key, detail, on)
  if type(detail) ~= "table" then bad_argument(2, "record_download", "detail table expected") end
  if type(detail.build) ~= "number" or detail.build % 1 ~= 0 then
    bad_argument(2, "record_download", "build must be a build number")
  end
  if type(detail.platform) ~= "string" then
    bad_argument(2, "record_download", "platform must be a string")
  end
  if not VIA[detail.via] then bad_argument(2, "record_download", 'via must be "api" or "portal"') end
  return transaction(self, record, key, detail, on)
end

return Store
