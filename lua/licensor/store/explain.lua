-- licensor.store.explain -- store:explain(key, opts): licensor.explain's
-- chain of rules for a stored license, with what the store knows of it:
-- its resolved policy values and the active policy, its installations
-- (R9, R10) and its fraud case (R11, the case a sweep on the day would
-- work).  It only reads: no transaction, no lock, nothing written.
local core = require "licensor.core"
local failure = require "licensor.failure"
local common = require "licensor.store.common"
local explain = require "licensor.explain"

local type = type

local Store = common.Store
local bad_argument, guarded = common.bad_argument, common.guarded
local check_on, normalise_key, add_days = common.check_on, common.normalise_key, common.add_days

local function explain_key(self, key, opts)
  key = normalise_key(key)
  local on = check_on(opts.on)
  -- a server name is checked as the workflows check it (invalid_request)
  if opts.server ~= nil then failure.try(core.check_name(opts.server, "server")) end
  local lic, cat = common.license_and_catalogue(self, key, on)
  local db, sql = self.db, self.sql
  local installs = db:all(sql.installations, key)
  -- The case a sweep on `on` works: the open one, else one closed within
  -- the cooldown, which returning excess resumes (store/sweep.lua).
  local values = common.policy_of(self, lic)
  local case = db:first(sql.open_case, key) or
    db:first(sql.resumable_case, key, add_days(on, -values.case_cooldown_days))
  -- A server's rollback starts from the build its installation runs.
  local from = opts.from
  if from == nil and opts.server then
    local current = common.current_of(installs, opts.server)
    from = current and current.build
  end
  return explain.explain(cat, lic, {
    on = on, build = opts.build, server = opts.server, from = from, target = opts.target, brief = opts.brief,
    installations = installs, case = case, policy = self.active_policy })
end

-- store:explain(key, {on=, build=, server=, target=, brief=}) -> the report of
-- licensor.explain, or nil, message, code (unknown_key, invalid_key,
-- invalid_date).
function Store:explain(key, opts)
  if opts ~= nil and type(opts) ~= "table" then bad_argument(2, "explain", "options table expected") end
  return guarded(self, explain_key, key, opts or {})
end

return Store
