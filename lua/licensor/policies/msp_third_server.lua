-- msp_third_server.lua -- a policy file (doc/policies.md): licenses sold
-- through managed service providers (tagged "msp") may run three
-- servers.  An MSP runs a customer's product on its own hosts and keeps a
-- spare it moves the customer between.
--
-- The settings hook raises extra_servers, the servers a license may run
-- beyond R9's allowance (one, two with fail-over), so that the allowance
-- is three: R10's admission, its migration window and the fraud ladder
-- all count three.  A fourth server is excess as a second one is for
-- other licenses: R10 admits it for a migration (migration_extra) and the
-- window runs; a fifth is refused.  (An admission hook could let a third
-- server in, but only that one activation: R10 would still count it as
-- excess, and the window would run out.)
--
-- Licenses without the tag are left to the built-in rules.  Tag one with
-- `licensor set KEY --tag msp` (or `licensor issue ... --tag msp`).
local SERVERS = 3

return {
  name = "msp-third-server",

  settings = function(ctx)
    local lic = ctx.license
    if not lic.tags.msp then return nil end
    return { extra_servers = SERVERS - (lic.failover and 2 or 1),
             because = "MSP licenses may run " .. SERVERS .. " servers" }
  end,
}
