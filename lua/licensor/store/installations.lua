-- licensor.store.installations -- servers running a key: activate (R5,
-- R9, R10's admission), checkin, deactivate and the list.  Each verdict is
-- {ok=, code=, message=, eligible=, migration=}, so a refused activation
-- still says which build is allowed and where the migration window stands.
local core = require "licensor.core"
local failure = require "licensor.failure"
local certificate = require "licensor.certificate"
local common = require "licensor.store.common"

local type, ipairs = type, ipairs

local Store = common.Store
local refuse, bad_argument = common.refuse, common.bad_argument
local transaction, guarded = common.transaction, common.guarded
local check_on, normalise_key, log = common.check_on, common.normalise_key, common.log

local function verdict(ok, code, message, eligible, migration)
  return { ok = ok, code = code, message = message, eligible = eligible, migration = migration }
end

-- A server name is a string (or the call is wrong); what it holds is data,
-- checked inside the workflow by core.check_name (the gateway's check too).
local function check_server(server, fn)
  if type(server) ~= "string" then bad_argument(2, fn, "server name expected", 2) end
end

local function check_fingerprint(fingerprint, fn, n)
  if fingerprint ~= nil and type(fingerprint) ~= "string" then
    bad_argument(n, fn, "fingerprint string expected", 2)
  end
end

-- A fingerprint given with an activation or check-in: the installation's
-- own (recorded when it had none), a drifted one that still matches under
-- the policy (recorded: a new network card is not a new server), or
-- another machine's (false: wrong_machine).
local function same_machine(self, key, inst, fingerprint)
  if fingerprint == nil or fingerprint == inst.fingerprint then return true end
  local policy = self.policy.fingerprint_match
  if inst.fingerprint and not core.fingerprint_match(inst.fingerprint, fingerprint, policy) then
    return false
  end
  self.db:defer(self.sql.set_fingerprint, key, inst.seq, fingerprint)
  inst.fingerprint = fingerprint
  return true
end

local function wrong_machine(server)
  return "server '" .. server .. "' answers with another machine's fingerprint"
end

local function check_build(build, fn, n)
  if type(build) ~= "number" or build ~= build or build % 1 ~= 0 then
    bad_argument(n, fn, "build number expected", 2)
  end
end

local current_of = common.current_of

-- What every installation workflow starts from: the key and day checked,
-- the license and active catalogue, the key's installations, the server's
-- current one and the build eligible on `on`.
local function setup(self, key, server, on, fingerprint)
  key, on = normalise_key(key), check_on(on)
  failure.try(core.check_name(server, "server"))
  if fingerprint ~= nil and not certificate.valid_fingerprint(fingerprint) then
    refuse("invalid_request", "fingerprint: v1:name=hex,... as `licensor fingerprint` prints it")
  end
  local lic, cat = common.license_and_catalogue(self, key)
  local installs = self.db:all(self.sql.installations, key)
  return key, on, lic, cat, installs, current_of(installs, server), cat:eligible(lic, on)
end

-- A refusal verdict: nothing is written, the window is as it stands.
local function refused(code, message, eligible, cat, lic, installs, on)
  return verdict(false, code, message, eligible, cat:migration(lic, installs, on))
end

local function not_activated(server)
  return "server '" .. server .. "' has no installation of this key active on that day " ..
    "(it must activate again)"
end

local function activate(self, key, server, build, on, fingerprint)
  local lic, cat, installs, current, eligible
  key, on, lic, cat, installs, current, eligible = setup(self, key, server, on, fingerprint)
  local db, sql = self.db, self.sql
  local ok, msg, code = cat:can_install(lic, build, on)
  if not ok then return refused(code, msg, eligible, cat, lic, installs, on) end
  if current and cat:installation_active(current, on) then
    if not same_machine(self, key, current, fingerprint) then
      return refused("wrong_machine", wrong_machine(server), eligible, cat, lic, installs, on)
    end
    -- Already installed and active: a re-activation is a check-in.
    db:defer(sql.touch_installation, key, current.seq, on, build)
    if current.build ~= build then
      log(self, key, on, "activate", { server = server, build = build, from_build = current.build })
    end
    if on > current.last_seen then current.last_seen = on end
    return verdict(true, nil, nil, eligible, cat:migration(lic, installs, on))
  end
  local admitted, window, refusal, before = cat:admission(lic, installs, on)
  if not admitted then return verdict(false, refusal, window, eligible, before) end
  if current then db:defer(sql.deactivate_installation, key, current.seq, on) end
  -- Sequence numbers are 1, 2, ... per key: the list read above has them.
  local last = installs[#installs]
  db:defer(sql.insert_installation, key, last and last.seq + 1 or 1, server, build, on, on, fingerprint)
  log(self, key, on, "activate", { server = server, build = build })
  return verdict(true, nil, nil, eligible, window)
end

-- store:activate(key, server, build, on, fingerprint) -> {ok=, code=,
-- message=, eligible=, migration=}; the fingerprint (optional) is the
-- machine's, as `licensor fingerprint` prints it.
function Store:activate(key, server, build, on, fingerprint)
  check_server(server, "activate")
  check_build(build, "activate", 3)
  check_fingerprint(fingerprint, "activate", 5)
  return transaction(self, activate, key, server, build, on, fingerprint)
end

local function checkin(self, key, server, on, build, fingerprint)
  local lic, cat, installs, current, eligible
  key, on, lic, cat, installs, current, eligible = setup(self, key, server, on, fingerprint)
  -- R9: only a server whose installation is active that day checks in; a
  -- lapsed or deactivated one activates again, through R10's admission.
  if not current or not cat:installation_active(current, on) then
    return refused("not_activated", not_activated(server), eligible, cat, lic, installs, on)
  end
  if not same_machine(self, key, current, fingerprint) then
    return refused("wrong_machine", wrong_machine(server), eligible, cat, lic, installs, on)
  end
  build = build or current.build
  local ok, msg, code = cat:can_install(lic, build, on)
  if ok and build < current.build then ok, msg, code = cat:can_rollback(lic, current.build, build) end
  if not ok then return refused(code, msg, eligible, cat, lic, installs, on) end
  self.db:defer(self.sql.touch_installation, key, current.seq, on, build)
  if on > current.last_seen then current.last_seen = on end
  if build ~= current.build then
    log(self, key, on, "checkin", { server = server, build = build, from_build = current.build })
    current.build = build
  end
  return verdict(true, nil, nil, eligible, cat:migration(lic, installs, on))
end

-- store:checkin(key, server, on, build, fingerprint) -> verdict; moves
-- last_seen, may change the build (R5, and R13 when it goes back) and
-- records a drifted fingerprint that still matches.
function Store:checkin(key, server, on, build, fingerprint)
  check_server(server, "checkin")
  if build ~= nil then check_build(build, "checkin", 4) end
  check_fingerprint(fingerprint, "checkin", 5)
  return transaction(self, checkin, key, server, on, build, fingerprint)
end

local function deactivate(self, key, server, on)
  local lic, cat, installs, current, eligible
  key, on, lic, cat, installs, current, eligible = setup(self, key, server, on)
  if not current then
    return refused("not_activated", "server '" .. server .. "' has no installation of this key",
      eligible, cat, lic, installs, on)
  end
  if on < current.first_seen then refuse("invalid_date", "on: before the installation's first day") end
  self.db:defer(self.sql.deactivate_installation, key, current.seq, on)
  current.deactivated = on
  log(self, key, on, "deactivate", { server = server })
  return verdict(true, nil, nil, eligible, cat:migration(lic, installs, on))
end

-- store:deactivate(key, server, on) -> verdict
function Store:deactivate(key, server, on)
  check_server(server, "deactivate")
  return transaction(self, deactivate, key, server, on)
end

local function installations(self, key)
  key = normalise_key(key)
  common.load_license(self, key)
  local list = self.db:all(self.sql.installations, key)
  for _, i in ipairs(list) do i.seq, i.fingerprint = nil, nil end
  return list
end

-- store:installations(key) -> list of {server=, build=, first_seen=, last_seen=, deactivated=}
function Store:installations(key)
  return guarded(self, installations, key)
end

return Store
