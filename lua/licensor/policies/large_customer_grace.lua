-- large_customer_grace.lua -- a policy file (doc/policies.md): 60 days of
-- check-in grace (R9's checkin_grace_days) for every license of one large
-- customer, whose servers sit behind change windows that keep them silent
-- for weeks.  Everyone else keeps the catalogue's 7 days.
--
-- The settings hook is the license layer: it answers policy keys for a
-- license, here by its owner, so a license the customer buys next year
-- gets the same grace without anyone remembering to set it.  For one key
-- alone the stored override is simpler and needs no file:
--
--   licensor set KEY --policy checkin_grace_days=60 --reason "change windows"
local OWNER = "globex"
local GRACE_DAYS = 60

return {
  name = "large-customer-grace",

  settings = function(ctx)
    if ctx.license.owner ~= OWNER then return nil end
    return { checkin_grace_days = GRACE_DAYS,
             because = OWNER .. ": servers check in after change windows" }
  end,
}
