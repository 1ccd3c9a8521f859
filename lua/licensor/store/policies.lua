-- licensor.store.policies -- policy files in the store, versioned like
-- catalogues: store:import_policy, store:policy, store:policy_history and
-- store:policy_source.  A file is kept as the text it was imported as and
-- compiled (licensor.policy.compile, against the active catalogue) before
-- it is stored: a file that does not compile is refused whole, and a
-- host only ever runs a file some import compiled.  The newest version is
-- the active one; importing a file with no hook and no product layer
-- (`return {}`) turns policies off.
--
-- How the active policy reaches the workflows (each license's values,
-- the catalogue bound to the hooks) is common.catalogue_at's and
-- common.load_license's.  Not the place for what a policy means
-- (licensor.policy).
local common = require "licensor.store.common"

local type, ipairs, pairs, tostring = type, ipairs, pairs, tostring
local sort = table.sort

local Store = common.Store
local refuse, bad_argument = common.refuse, common.bad_argument
local transaction, guarded, check_on = common.transaction, common.guarded, common.check_on

-- Licenses with an override of their own must still resolve under the
-- policy's layers (the cross-checks span layers: a product's
-- phone_after_days against a license's disable_after_days).
local function overrides_still_resolve(self, P, cat, on)
  local fits = common.policy_lib().fits
  for _, row in ipairs(self.db:all(self.sql.licenses_with_policy)) do
    local lic = common.load_license(self, row.key, on, true)
    local ok, msg = fits(P, cat, lic, lic.policy_override, on)
    if not ok then
      refuse("invalid_policy", "license " .. row.key .. "'s own override does not fit the policy: " .. msg)
    end
  end
end

local function import_policy(self, source, name, on)
  on = check_on(on)
  common.active_catalogue(self)
  local cat = self.cat
  local P, msg = common.policy_lib().compile(source, name, cat)
  if not P then refuse("invalid_policy", msg) end
  local db, sql = self.db, self.sql
  local active = db:value(sql.policy_version)
  if active then
    local row = db:first(sql.policy_source, active)
    if row.source == source then return active, true end
  end
  if common.policy_lib().changes_anything(P) then overrides_still_resolve(self, P, cat, on) end
  local _, version = db:run(sql.insert_policy, on, source, type(P.name) == "string" and P.name or name)
  return version, false
end

-- store:import_policy(source, name[, on]) -> version, unchanged; or nil,
-- "NAME:LINE: message", "invalid_policy" for a file that does not compile
-- against the active catalogue (nothing is stored; a file is at most
-- licensor.policy.MAX_SOURCE_BYTES).  name is the file's
-- name, for messages; the history shows the file's own `name` when it
-- has one.  Importing the active file again adds no version (unchanged
-- is true).  `on` (default today) is the day recorded.
function Store:import_policy(source, name, on)
  if type(source) ~= "string" then bad_argument(1, "import_policy", "policy file text expected") end
  if name ~= nil and type(name) ~= "string" then bad_argument(2, "import_policy", "file name expected") end
  return transaction(self, import_policy, source, name or "policy", on)
end

local function active_policy(self)
  common.active_catalogue(self)
  return self.active_policy
end

-- store:policy() -> the active policy (licensor.policy's compiled file,
-- P.version its version), or nil when none was imported.  Compiled once
-- per version and catalogue.  A file with no hook and no product layer
-- is answered too, though it changes nothing.
function Store:policy()
  return guarded(self, active_policy)
end

-- The hooks of a stored file, sorted (nil when it no longer compiles).
local function hooks_of(row)
  local P = common.policy_lib().compile(row.source, row.name or ("policy version " .. tostring(row.version)))
  if not P then return nil end
  local list = {}
  for hook in pairs(P.hooks) do list[#list + 1] = hook end
  sort(list)
  return list
end

local function policy_history(self)
  local rows = self.db:all(self.sql.policy_history)
  local list = {}
  for i, row in ipairs(rows) do
    list[i] = { version = row.version, imported = row.imported, name = row.name, hooks = hooks_of(row),
                active = i == #rows or nil }
  end
  return list
end

-- store:policy_history() -> list of {version=, imported=, name=, hooks=
-- {"eligible", ...}, active=true (the newest)}, oldest first.
function Store:policy_history()
  return guarded(self, policy_history)
end

local function policy_source(self, version)
  version = version or self.db:value(self.sql.policy_version)
  if version == nil then refuse("no_policy", "no policy has been imported into this store") end
  local row = self.db:first(self.sql.policy_source, version)
  if row == nil then refuse("no_policy", "no policy version " .. tostring(version)) end
  return row.source
end

-- store:policy_source([version]) -> the text of a policy version (default
-- the active one), as it was imported; nil, message, "no_policy" when
-- there is none.
function Store:policy_source(version)
  if version ~= nil and (type(version) ~= "number" or version % 1 ~= 0) then
    bad_argument(1, "policy_source", "version number expected")
  end
  return guarded(self, policy_source, version)
end

return Store
