-- licensor.store.certificates -- signed certificates for active
-- installations (offline licensing): store:use_signing_key and
-- store:certificate.  A certificate carries what the offline rules need
-- (csrc/licensor_verify.h) and is an event on the license.
local core = require "licensor.core"
local failure = require "licensor.failure"
local certificate = require "licensor.certificate"
local common = require "licensor.store.common"

local type, ipairs, os_date = type, ipairs, os.date

local Store = common.Store
local refuse, bad_argument, transaction = common.refuse, common.bad_argument, common.transaction
local check_on, normalise_key, add_days = common.check_on, common.normalise_key, common.add_days

-- store:use_signing_key(path) -> key id: certificates are signed with the
-- private key in that file from now on.
function Store:use_signing_key(path)
  if type(path) ~= "string" then bad_argument(1, "use_signing_key", "key file path expected") end
  local key, msg, code = certificate.read_signing_key(path)
  if not key then return nil, msg, code end
  self.signing_key = key
  return key.id
end

-- The server's installation, if it is active on `on` (R9).
local function active_installation(cat, lic, installs, server, on)
  local inst = common.current_of(installs, server)
  if inst and cat:installation_active(inst, on, lic) then return inst end
  refuse("not_activated", "server '" .. server .. "' has no installation of this key active on " .. on)
end

-- The first day a lease or trial no longer runs (the certificate's ends).
local function ends(self, lic)
  if lic.kind == "lease" then return lic.lease_ended end
  if lic.kind == "trial" then
    return add_days(lic.start, lic.trial_days or common.policy_of(self, lic).trial_days)
  end
end

-- When the certificate is issued (unix seconds): at the start of the day
-- the store is asked for (never the run's time of day, so a pinned day
-- gives the same certificate at any hour), and after every certificate
-- the server had before, so that a revocation covering those never covers
-- this one.
local function issue_time(installs, server, on)
  local t = core.day(on) * 86400
  local newest = Store._newest_issued(installs, server)
  if newest and newest >= t then t = newest + 1 end
  return t
end

-- The last day the certificate verifies valid or grace: refresh-by plus
-- grace, and never past the last day a lease or trial runs.
local function holds_through(f)
  local through = add_days(f.refresh_by, f.grace_days)
  if f.ends and add_days(f.ends, -1) < through then through = add_days(f.ends, -1) end
  return through
end

-- The build cap a certificate carries (format 2): the eligible build an
-- eligible hook answered on the issue day, so that the offline verifier
-- (lsrv_may_run_build) allows exactly what can_install allows that day.
-- Whenever the hook answered -- also with the rules' own build: a hook
-- that pins a build means that build, while format 1's cutoff would move
-- on with the days of the certificate's life.  cat is the store's
-- catalogue: a bound one (a table, W.raw the C catalogue) when a policy
-- with hooks is active.
local function build_cap(cat, lic, on)
  if type(cat) ~= "table" or cat.raw == nil then return nil end
  local outer, trace = cat.trace, {}
  cat.trace = trace
  local ok, hooked = pcall(cat.eligible, cat, lic, on)
  cat.trace = outer   -- the bound catalogue lives on: never leave it tracing
  if not ok then error(hooked, 0) end
  if not hooked then return nil end
  for _, step in ipairs(trace) do
    if step.hook == "eligible" and step.answered then return hooked end
  end
  return nil
end

-- The certificate's fields for the license's installation on `on`:
-- refresh-by, grace and the fingerprint match from the license's own
-- values (its layers resolved), and the build cap of a policy's eligible
-- hook.
local function fields(self, cat, lic, inst, on, issued)
  local newest = cat:newest_build(lic.product, on)
  local lock_first = lic.version_lock and cat:first_build_of(lic.product, lic.version_lock)
  local policy = common.policy_of(self, lic)
  local cap = build_cap(cat, lic, on)
  return {
    license = lic.key, server = inst.server, product = lic.product, edition = lic.edition,
    level = lic.level, kind = lic.kind, start = lic.start, ms_expires = lic.ms_expires,
    ends = ends(self, lic), version_lock = lic.version_lock, failover = lic.failover,
    addons = lic.addons, newest_major = newest and newest.major or 0,
    lock_first_release = lock_first and lock_first.released or nil,
    fingerprint = inst.fingerprint, match = policy.fingerprint_match,
    issued = os_date("!%Y-%m-%dT%H:%M:%SZ", issued), refresh_by = add_days(on, policy.certificate_days),
    grace_days = policy.grace_days,
    build_cap = cap and cap.number, build_cap_released = cap and cap.released,
  }
end

local function issue_certificate(self, key, server, on)
  key, on = normalise_key(key), check_on(on)
  failure.try(core.check_name(server, "server"))
  local signing_key = self.signing_key
  if not signing_key then refuse("no_signing_key", "no signing key: store:use_signing_key(path) first") end
  local lic, cat = common.license_and_catalogue(self, key, on)
  -- A disabled key, an ended lease or trial get no certificate.
  local status = failure.try(cat:status(lic, on))
  if not status.valid then
    refuse(status.state, "license " .. key .. " is " .. status.state .. " on " .. on .. ": no certificate")
  end
  local installs = self.db:all(self.sql.installations, key)
  local inst = active_installation(cat, lic, installs, server, on)
  if not inst.fingerprint then
    refuse("no_fingerprint", "server '" .. server .. "' activated without a machine fingerprint")
  end
  local issued = issue_time(installs, server, on)
  local f = fields(self, cat, lic, inst, on, issued)
  local text = certificate.text(f, signing_key)
  -- The installation holds its slot as long as this certificate verifies.
  local through = holds_through(f)
  if inst.held_until and inst.held_until > through then through = inst.held_until end
  self.db:defer(self.sql.hold_installation, key, inst.seq, through, certificate.signature_of(text), issued)
  common.log(self, key, on, "certificate", common.provenance(self, {
    server = server, signer = signing_key.id, refresh_by = f.refresh_by, fingerprint = inst.fingerprint,
    held_until = through }))
  return text
end

-- store:certificate(key, server, on) -> the signed certificate text of the
-- server's active installation (refused for a disabled key, an ended lease
-- or trial, or a server with no active installation).
function Store:certificate(key, server, on)
  if type(server) ~= "string" then bad_argument(2, "certificate", "server name expected") end
  return transaction(self, issue_certificate, key, server, on)
end

return Store
