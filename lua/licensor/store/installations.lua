-- licensor.store.installations -- servers running a key: activate (R5,
-- R9, R10's admission), checkin, deactivate and the list.  Each verdict is
-- {ok=, code=, message=, eligible=, migration=}, so a refused activation
-- still says which build is allowed and where the migration window stands.
--
-- A certificate keeps its slot (doc/rules.md section 9): an installation
-- whose newest certificate still verifies holds a slot through its
-- held_until, deactivated or lapsed, until a return receipt or an admin's
-- force frees it.  A refusal writes nothing: every check runs before the
-- first write, and the transaction of a refusal is rolled back.  On
-- SQLite the checks run under a read lock only (common.checking_transaction),
-- so a refusal never waits for, nor takes, the write lock.
local core = require "licensor.core"
local failure = require "licensor.failure"
local certificate = require "licensor.certificate"
local common = require "licensor.store.common"

local type, ipairs, tostring, tonumber = type, ipairs, tostring, tonumber
local concat, os_date = table.concat, os.date

local Store = common.Store
local refuse, bad_argument = common.refuse, common.bad_argument
local checking_transaction, guarded = common.checking_transaction, common.guarded
local check_on, normalise_key, log = common.check_on, common.normalise_key, common.log
local policy_of, provenance = common.policy_of, common.provenance
local add_days, current_of = common.add_days, common.current_of

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

local function check_build(build, fn, n)
  if type(build) ~= "number" or build ~= build or build % 1 ~= 0 then
    bad_argument(n, fn, "build number expected", 2)
  end
end

local latest_of = common.latest_of

------------------------------------------------------------------------
-- Machines: drift within bounds, or another machine
------------------------------------------------------------------------

-- The days of the fingerprint changes within the policy's drift_days up
-- to `on`, oldest first.
local function recent_drifts(text, on, days)
  local list, from = {}, add_days(on, 1 - days)
  for day in (text or ""):gmatch("[^,]+") do
    if day >= from then list[#list + 1] = day end
  end
  return list
end

-- The components of a fingerprint, name -> hash.
local function components(fp)
  local t = {}
  for name, hash in fp:gmatch("(%l+)=(%x+)") do t[name] = hash end
  return t
end

-- The strong components (machine-id, DMI product UUID) never drift: one
-- recorded must come back equal.  A walk that changes them one at a time
-- would otherwise move a slot onto another machine.
local STRONG = { "mid", "uuid" }
local function strong_kept(recorded, seen)
  local was, now = components(recorded), components(seen)
  for _, name in ipairs(STRONG) do
    if was[name] and was[name] ~= now[name] then return false, name end
  end
  return true
end

-- Is `fingerprint` the installation's machine?  true and nil (the same,
-- or none given), true and the change to record (a first fingerprint, or
-- a drift within the bounds of `policy`, the license's values), or false
-- and why not.  Nothing is written here: the caller records the change
-- once every check passed.
local function machine_check(policy, inst, fingerprint, on)
  if fingerprint == nil or fingerprint == inst.fingerprint then return true end
  if not inst.fingerprint then return true, { fingerprint = fingerprint, drifts = inst.drifts } end
  local server = "server '" .. inst.server .. "'"
  if not core.fingerprint_match(inst.fingerprint, fingerprint, policy.fingerprint_match) then
    return false, server .. " answers with another machine's fingerprint"
  end
  local changes = certificate.fingerprint_changes(inst.fingerprint, fingerprint)
  -- The same components in another order: the same machine, nothing to record.
  if changes == 0 then return true end
  local kept, strong = strong_kept(inst.fingerprint, fingerprint)
  if not kept then
    return false, server .. "'s " .. strong .. " changed: another machine, which must activate"
  end
  if changes > policy.drift_components then
    return false, server .. "'s fingerprint changed in " .. changes .. " components at once (at most " ..
      policy.drift_components .. "): another machine, which must activate"
  end
  local recent = recent_drifts(inst.drifts, on, policy.drift_days)
  if #recent >= policy.drift_changes then
    return false, server .. "'s fingerprint already changed " .. #recent .. " times in " ..
      policy.drift_days .. " days (at most " .. policy.drift_changes ..
      "): another machine, which must activate"
  end
  recent[#recent + 1] = on
  return true, { fingerprint = fingerprint, drifts = concat(recent, ",") }
end

local function record_machine(self, key, inst, change, on)
  if not change then return end
  self.db:defer(self.sql.set_fingerprint, key, inst.seq, change.fingerprint, change.drifts)
  if inst.fingerprint then
    log(self, key, on, "fingerprint",
        { server = inst.server, from = inst.fingerprint, to = change.fingerprint })
  end
  inst.fingerprint, inst.drifts = change.fingerprint, change.drifts
end

------------------------------------------------------------------------
-- Revocation notices
------------------------------------------------------------------------

-- The issue time (unix seconds) of the newest certificate of the server,
-- over all its installations: a revocation covers it and everything
-- before it; the next certificate is issued after it.
local function newest_issued(installs, server)
  local newest
  for _, inst in ipairs(installs) do
    local issued = tonumber(inst.issued)
    if inst.server == server and issued and (not newest or issued > newest) then newest = issued end
  end
  return newest
end
Store._newest_issued = newest_issued

-- Why the server's certificates no longer hold (nil: they still do).
local function revocation_reason(lic, inst, on)
  if lic.disabled and lic.disabled <= on then return "disabled" end
  if inst.freed == "forced" then return "forced" end
  if inst.freed == "returned" or (inst.deactivated and inst.deactivated <= on) then return "deactivated" end
end

-- A signed notice that revokes the certificates of the server's machine,
-- for a refusal to carry back to it (nil without a signing key or without
-- a certificate to revoke).
local function revocation(self, lic, installs, server, on)
  local inst = latest_of(installs, server)
  local issued = newest_issued(installs, server)
  local reason = inst and revocation_reason(lic, inst, on)
  if not (reason and issued and self.signing_key and inst.fingerprint) then return nil end
  return certificate.revocation_text({ license = lic.key, server = server, fingerprint = inst.fingerprint,
                                       revoked = os_date("!%Y-%m-%dT%H:%M:%SZ", issued), reason = reason },
                                     self.signing_key)
end

------------------------------------------------------------------------
-- Workflows
------------------------------------------------------------------------

-- What every installation workflow starts from: the key and day checked,
-- the license and active catalogue, the key's installations, the server's
-- current one and the build eligible on `on`.
local function setup(self, key, server, on, fingerprint)
  key, on = normalise_key(key), check_on(on)
  failure.try(core.check_name(server, "server"))
  if fingerprint ~= nil then
    local valid, why = certificate.valid_fingerprint(fingerprint)
    if not valid then
      refuse("invalid_request", why or "fingerprint: v1:name=hex,... as `licensor fingerprint` prints it")
    end
  end
  local lic, cat = common.license_and_catalogue(self, key, on)
  local installs = self.db:all(self.sql.installations, key)
  return key, on, lic, cat, installs, current_of(installs, server), cat:eligible(lic, on)
end

-- A refusal verdict: nothing is written (the transaction is rolled back),
-- the window is as it stands, and a machine whose certificates no longer
-- hold is answered their revocation.
local function refused(self, code, message, eligible, cat, lic, installs, on, server, window)
  common.discard(self)
  local v = verdict(false, code, message, eligible, window or cat:migration(lic, installs, on))
  v.revocation = revocation(self, lic, installs, server, on)
  return v
end

-- An installation active on `on` checks in (or activates again, which is
-- the same): its machine, R5 for the build, R13 when it goes back.
local function check_in(self, key, lic, cat, installs, current, eligible, on, build, fingerprint, kind)
  local server = current.server
  local same, change = machine_check(policy_of(self, lic), current, fingerprint, on)
  if not same then
    return refused(self, "wrong_machine", change, eligible, cat, lic, installs, on, server)
  end
  build = build or current.build
  local ok, msg, code = cat:can_install(lic, build, on)
  if ok and build < current.build then ok, msg, code = cat:can_rollback(lic, current.build, build) end
  if not ok then return refused(self, code, msg, eligible, cat, lic, installs, on, server) end
  record_machine(self, key, current, change, on)
  self.db:defer(self.sql.touch_installation, key, current.seq, on, build)
  if on > current.last_seen then current.last_seen = on end
  if build ~= current.build then
    log(self, key, on, kind, provenance(self, { server = server, build = build, from_build = current.build }))
    current.build = build
  end
  return verdict(true, nil, nil, eligible, cat:migration(lic, installs, on))
end

-- The installations as they will be once `moved` has held its slot only
-- until the day before `on` (its past in the window unchanged).
local function with_moved(installs, moved, on)
  local list = {}
  for _, i in ipairs(installs) do
    if i == moved then
      list[#list + 1] = { first_seen = i.first_seen, last_seen = i.last_seen,
                          deactivated = i.deactivated or on, held_until = add_days(on, -1) }
    else
      list[#list + 1] = i
    end
  end
  return list
end

-- The installation whose slot a new activation takes back: one that is no
-- longer active under R9 but whose certificate still holds its slot, of
-- the same machine (under the drift bounds, as a check-in would be),
-- under this server name or another (a renamed host).  One machine never
-- counts twice; nil and no change when there is none.
local function held_by_same_machine(self, cat, lic, installs, server, fingerprint, on)
  if not fingerprint then return nil end
  local found, change
  for _, inst in ipairs(installs) do
    if inst.held_until and inst.fingerprint and not cat:installation_active(inst, on, lic) and
       cat:installation_holds(inst, on, lic) and (not found or inst.server == server) then
      local same, drift = machine_check(policy_of(self, lic), inst, fingerprint, on)
      if same then found, change = inst, drift end
    end
  end
  return found, change
end

local function activate(self, key, server, build, on, fingerprint)
  local lic, cat, installs, current, eligible
  key, on, lic, cat, installs, current, eligible = setup(self, key, server, on, fingerprint)
  local db, sql = self.db, self.sql
  local ok, msg, code = cat:can_install(lic, build, on)
  if not ok then return refused(self, code, msg, eligible, cat, lic, installs, on, server) end
  if current and cat:installation_active(current, on, lic) then
    -- Already installed and active: a re-activation is a check-in.
    return check_in(self, key, lic, cat, installs, current, eligible, on, build, fingerprint, "activate")
  end
  local held, change = held_by_same_machine(self, cat, lic, installs, server, fingerprint, on)
  local counted = held and with_moved(installs, held, on) or installs
  local admitted, window, refusal, before = cat:admission(lic, counted, on, server)
  if not admitted then
    return refused(self, refusal, window, eligible, cat, lic, installs, on, server, before)
  end
  if current then db:defer(sql.deactivate_installation, key, current.seq, on) end
  -- Sequence numbers are 1, 2, ... per key: the list read above has them.
  local last = installs[#installs]
  local seq = last and last.seq + 1 or 1
  db:defer(sql.insert_installation, key, seq, server, build, on, on, fingerprint)
  if held then
    -- The new installation holds what the old one's certificate held, and
    -- carries its drift history; the old one held its slot until today
    -- (its past in the window stays as it was).
    db:defer(sql.hold_installation, key, seq, held.held_until, held.signature, held.issued)
    db:defer(sql.set_fingerprint, key, seq, fingerprint, change and change.drifts or held.drifts)
    db:defer(sql.move_installation, key, held.seq, add_days(on, -1), on)
    if change and held.fingerprint ~= fingerprint then
      log(self, key, on, "fingerprint", { server = server, from = held.fingerprint, to = fingerprint })
    end
  end
  log(self, key, on, "activate", provenance(self, { server = server, build = build, from_server = held and
                                                   held.server ~= server and held.server or nil }))
  return verdict(true, nil, nil, eligible, window)
end

-- store:activate(key, server, build, on, fingerprint) -> {ok=, code=,
-- message=, eligible=, migration=[, revocation=]}; the fingerprint
-- (optional) is the machine's, as `licensor fingerprint` prints it.
function Store:activate(key, server, build, on, fingerprint)
  check_server(server, "activate")
  check_build(build, "activate", 3)
  check_fingerprint(fingerprint, "activate", 5)
  return checking_transaction(self, activate, key, server, build, on, fingerprint)
end

local function checkin(self, key, server, on, build, fingerprint)
  local lic, cat, installs, current, eligible
  key, on, lic, cat, installs, current, eligible = setup(self, key, server, on, fingerprint)
  -- R9: only a server whose installation is active that day checks in; a
  -- lapsed or deactivated one activates again, through R10's admission.
  if not current or not cat:installation_active(current, on, lic) then
    return refused(self, "not_activated", "server '" .. server .. "' has no installation of this key " ..
      "active on that day (it must activate again)", eligible, cat, lic, installs, on, server)
  end
  return check_in(self, key, lic, cat, installs, current, eligible, on, build, fingerprint, "checkin")
end

-- store:checkin(key, server, on, build, fingerprint) -> verdict; moves
-- last_seen, may change the build (R5, and R13 when it goes back) and
-- records a drifted fingerprint within the policy's drift bounds.
function Store:checkin(key, server, on, build, fingerprint)
  check_server(server, "checkin")
  if build ~= nil then check_build(build, "checkin", 4) end
  check_fingerprint(fingerprint, "checkin", 5)
  return checking_transaction(self, checkin, key, server, on, build, fingerprint)
end

-- A return receipt frees the slot of the installation whose newest
-- certificate it names (license, server and signature; the signature
-- names one certificate): that installation.
local function receipt_installation(text, key, server, installs)
  local r, msg = certificate.read_receipt(text)
  if not r then refuse("invalid_receipt", "return receipt: " .. tostring(msg)) end
  if r.license ~= key or r.server ~= server then
    refuse("invalid_receipt", "the return receipt is for license " .. r.license .. " on server '" ..
      r.server .. "', not this one")
  end
  for i = #installs, 1, -1 do
    local inst = installs[i]
    if inst.server == server and inst.signature == r.certificate then return inst end
  end
  refuse("invalid_receipt", "the return receipt names a certificate that is not the newest of server '" ..
    server .. "' (a check-in since answered a newer one: return that)")
end

local function deactivate(self, key, server, on, opts)
  local lic, cat, installs, _, eligible
  key, on, lic, cat, installs, _, eligible = setup(self, key, server, on)
  local inst = latest_of(installs, server)
  if not inst then
    return refused(self, "not_activated", "server '" .. server .. "' has no installation of this key",
      eligible, cat, lic, installs, on, server)
  end
  if opts.receipt then inst = receipt_installation(opts.receipt, key, server, installs) end
  if on < inst.first_seen then refuse("invalid_date", "on: before the installation's first day") end
  -- A deactivated server is deactivated once; its receipt or a force may
  -- still free the slot its certificate holds.
  if inst.deactivated and not (opts.receipt or opts.force) then
    return refused(self, "not_activated", "server '" .. server .. "' was deactivated on " .. inst.deactivated,
      eligible, cat, lic, installs, on, server)
  end
  local db, sql = self.db, self.sql
  if opts.receipt then
    db:defer(sql.free_installation, key, inst.seq, "returned", on)
    log(self, key, on, "deactivate", provenance(self, { server = server,
                                                      returned = inst.signature:sub(1, 16) }))
    inst.held_until, inst.freed = nil, "returned"
  elseif opts.force then
    db:defer(sql.free_installation, key, inst.seq, "forced", on)
    log(self, key, on, "force_free", provenance(self, { server = server, reason = opts.reason,
                                                      held_until = inst.held_until }))
    inst.held_until, inst.freed = nil, "forced"
  else
    db:defer(sql.deactivate_installation, key, inst.seq, on)
    log(self, key, on, "deactivate", provenance(self, { server = server }))
  end
  inst.deactivated = inst.deactivated or on
  local v = verdict(true, nil, nil, eligible, cat:migration(lic, installs, on))
  if inst.held_until and inst.held_until >= on then v.held_until = inst.held_until end
  return v
end

-- store:deactivate(key, server, on[, {receipt=TEXT} | {force=true,
-- reason=TEXT}]) -> verdict; held_until is the last day a certificate of
-- the server still holds its slot (absent: freed now).
function Store:deactivate(key, server, on, opts)
  check_server(server, "deactivate")
  if opts ~= nil and type(opts) ~= "table" then bad_argument(4, "deactivate", "options table expected") end
  opts = opts or {}
  if opts.receipt ~= nil and type(opts.receipt) ~= "string" then
    bad_argument(4, "deactivate", "receipt text expected")
  end
  if opts.force then
    if opts.receipt then bad_argument(4, "deactivate", "a receipt or force, not both") end
    if type(opts.reason) ~= "string" or not opts.reason:find("%S") then
      bad_argument(4, "deactivate", "force needs a reason")
    end
  end
  return checking_transaction(self, deactivate, key, server, on, opts)
end

local function installations(self, key)
  key = normalise_key(key)
  common.load_license(self, key)
  local list = self.db:all(self.sql.installations, key)
  for _, i in ipairs(list) do
    i.seq, i.fingerprint, i.signature, i.issued, i.drifts = nil, nil, nil, nil, nil
  end
  return list
end

-- store:installations(key) -> list of {server=, build=, first_seen=,
-- last_seen=, deactivated=, held_until=, freed=}
function Store:installations(key)
  return guarded(self, installations, key)
end

return Store
