-- licensor.portal -- the customer portal under /portal/ (doc/portal.md):
-- passwordless sign-in, the owner's licenses, downloads, installations.
local _M = {}

-- handle(gw): the route (gw: licensor.gateway's context).
function _M.handle(gw)
  gw.refuse(404, "not_found", "the portal is not available on this gateway")
end

return _M
