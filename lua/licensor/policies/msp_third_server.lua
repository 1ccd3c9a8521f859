-- msp_third_server.lua -- a policy file (doc/policies.md): licenses sold
-- through managed service providers (tagged "msp") may bring in a third
-- server, where R10 would refuse it.  An MSP runs a customer's product on
-- its own hosts and keeps a spare it moves between them.
--
-- The admission hook answers for one new server at a time; the built-in
-- decision stands for every license without the tag, and for an MSP's
-- fourth server.  Tag a license with `licensor set KEY --tag msp --reason
-- ...` (or `licensor issue ... --tag msp`).
local SERVERS = 3

return {
  name = "msp-third-server",

  -- ctx.after is the count with the new server in: {active=, allowed=}.
  admission = function(ctx)
    if not ctx.license.tags.msp or ctx.admit then return nil end
    if ctx.after.active <= SERVERS then
      return { admit = true, because = "MSP licenses may run " .. SERVERS .. " servers" }
    end
    return nil
  end,
}
