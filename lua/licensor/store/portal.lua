-- licensor.store.portal -- the customer portal's part of the store
-- (doc/portal.md): sign-in links, sessions, the owner's licenses,
-- self-service deactivation and the offline round trip.
local Store = require("licensor.store.common").Store

return Store
