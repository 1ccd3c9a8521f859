-- licensor.store.downloads -- granted downloads, each an event on the
-- license (doc/portal.md).
local Store = require("licensor.store.common").Store

return Store
