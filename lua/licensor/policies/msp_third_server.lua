-- msp_third_server.lua -- a policy file (doc/policies.md): licenses sold
-- through managed service providers (tagged "msp") may run a third
-- server.  An MSP runs a customer's product on its own hosts and keeps a
-- spare it moves the customer between.
--
-- Two parts, because R10 decides twice:
-- * admission: a new server comes in while the license has at most three
--   active with it, where R10 admits one beyond the allowance, and only
--   during a migration.  A fourth server is refused as R10 refuses it.
-- * settings: R10 still counts every server beyond the allowance as
--   excess, and excess turns fraud when its window ends; an MSP's window
--   is the longest the catalogue allows (36500 days), so three servers
--   never start the fraud ladder.  Admission keeps the excess at three.
--
-- Licenses without the tag are left to the built-in rules.  Tag one with
-- `licensor set KEY --tag msp --reason ...`.
local SERVERS = 3

return {
  name = "msp-third-server",

  settings = function(ctx)
    if not ctx.license.tags.msp then return nil end
    return { migration_days = 36500, because = "MSP licenses may run " .. SERVERS .. " servers" }
  end,

  -- ctx.after: {active=, allowed=} with the new server in; ctx.admit: R10's answer.
  admission = function(ctx)
    if not ctx.license.tags.msp or ctx.admit then return nil end
    if ctx.after.active > SERVERS then return nil end
    return { admit = true, because = "MSP licenses may run " .. SERVERS .. " servers" }
  end,
}
