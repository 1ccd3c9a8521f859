-- licensor.store.portal -- the customer portal's part of the store
-- (doc/portal.md): sign-in links, sessions, the owner's licenses,
-- self-service deactivation and the offline round trip.
--
-- The owner is an email address (the licenses' `email`), compared trimmed
-- and lowercased.  Times are unix seconds and days `YYYY-MM-DD`, both
-- passed in by the caller, so that every answer is the same at any hour.
-- Nothing secret is kept: a sign-in row holds the link's id, and the link
-- is an HMAC over it that only the holder of the link secret (the
-- deliverer that mails it, the gateway that checks it) can make; a
-- session is kept as the sha256 of its token.  Everything answered is
-- plain data (on PostgreSQL the gateway runs these on a thread).
--
-- Sign-ins and sessions are no change of a license and log no event;
-- a self-service deactivation is one, of its own kind.
local core = require "licensor.core"
local failure = require "licensor.failure"
local constants = require "licensor.constants"
local address = require "licensor.mail.address"
local certificate = require "licensor.certificate"
local common = require "licensor.store.common"

local type, ipairs, tostring, pcall = type, ipairs, tostring, pcall
local os_date, lower, match = os.date, string.lower, string.match

local Store = common.Store
local refuse, bad_argument = common.refuse, common.bad_argument
local transaction, checking_transaction, guarded = common.transaction, common.checking_transaction,
  common.guarded
local check_on, log = common.check_on, common.log

local PORTAL = constants.PORTAL

-- The outbox action of a sign-in mail (licensor.actions, licensor.mail).
local ACTION = "portal_signin"

-- A session seen again within this many seconds is not written to.
local TOUCH_SECONDS = 60

-- Sign-ins whose link died, and sessions, older than this go.
local KEEP_SECONDS = 86400

local NO_SESSION = "no session (signed out, expired or unknown): sign in again"
local INVALID_LINK = "this sign-in link was used, has expired or is unknown"

------------------------------------------------------------------------
-- Arguments
------------------------------------------------------------------------

local function check_now(now, fn, n)
  if type(now) ~= "number" or now ~= now or now % 1 ~= 0 or now < 0 then
    bad_argument(n, fn, "now: unix seconds expected", 2)
  end
end

local function check_text(value, fn, n, what)
  if type(value) ~= "string" then bad_argument(n, fn, what .. " expected", 2) end
end

-- The address as the store compares it: trimmed, lowercased, and a plain
-- address (licensor.mail.address), or the refusal.
local function folded(email)
  return failure.try(address.fold(email))
end

local function day_of(now)
  return os_date("!%Y-%m-%d", now)
end

-- The session row's id: the token's sha256.  A token is 64 hex digits
-- (core.random_hex(32)); anything else is no token at all.
local function token_hash(token)
  if type(token) ~= "string" or not match(token, "^%x+$") or #token ~= 64 then return nil end
  return core.sha256(lower(token), true)
end

------------------------------------------------------------------------
-- Sign-in links and sessions
------------------------------------------------------------------------

local function prune(self, now)
  local db, sql = self.db, self.sql
  db:defer(sql.portal_prune_signins, now - KEEP_SECONDS)
  db:defer(sql.portal_prune_sessions, now - KEEP_SECONDS)
end

local function signin(self, email, now)
  email = folded(email)
  local db, sql = self.db, self.sql
  local key = db:value(sql.portal_first_key, email)
  if not key then return { mailed = false } end
  -- One address at a time (PostgreSQL), so that the cap holds when
  -- sign-ins for it arrive at once on several gateways.
  common.lock_key(self, "portal " .. email)
  if db:value(sql.portal_recent_signins, email, now - PORTAL.signin_seconds) >= PORTAL.signins_per_email then
    return { mailed = false }
  end
  local id = core.random_hex(16)
  db:defer(sql.portal_insert_signin, id, email, now, now + PORTAL.signin_seconds)
  db:defer(sql.portal_outbox, key, ACTION, day_of(now), common.cjson.encode({ signin = id, email = email }))
  prune(self, now)
  return { mailed = true }
end

-- store:portal_signin(email, now) -> {mailed=bool}: a sign-in link mailed
-- (an outbox row "portal_signin" on the owner's first license, detail
-- {signin=ID, email=}) when a license has that address and fewer than
-- PORTAL.signins_per_email were asked for it in the last
-- PORTAL.signin_seconds; the caller answers the same either way.  nil,
-- message, "invalid_request" for a malformed address.
function Store:portal_signin(email, now)
  check_text(email, "portal_signin", 1, "email address")
  check_now(now, "portal_signin", 2)
  return checking_transaction(self, signin, email, now)
end

local function redeem(self, id, now)
  local db, sql = self.db, self.sql
  local rows = match(id, "^%x+$") and db:all(sql.portal_use_signin, lower(id), now) or {}
  if #rows ~= 1 then refuse("invalid_link", INVALID_LINK) end
  local email = rows[1].email
  local token = core.random_hex(32)
  db:defer(sql.portal_insert_session, core.sha256(token, true), email, now, now)
  prune(self, now)
  return token, email
end

-- store:portal_redeem(id, now) -> session token, email: the sign-in
-- link's id (checked against its MAC by the caller) spent, once, before
-- it expires; a new session whose token only the caller ever holds.  nil,
-- message, "invalid_link" when it was used, has expired or is unknown.
function Store:portal_redeem(id, now)
  check_text(id, "portal_redeem", 1, "sign-in id")
  check_now(now, "portal_redeem", 2)
  return transaction(self, redeem, id, now)
end

local function session(self, token, now)
  local hash = token_hash(token)
  local db, sql = self.db, self.sql
  local row = hash and db:first(sql.portal_session, hash)
  if not row or row.ended_at ~= nil or now - row.seen_at > PORTAL.idle_seconds or
     now - row.created_at > PORTAL.absolute_seconds then
    refuse("no_session", NO_SESSION)
  end
  if now - row.seen_at >= TOUCH_SECONDS then
    db:defer(sql.portal_touch_session, hash, now)
    row.seen_at = now
  end
  return { email = row.email, id_hash = row.id_hash, created_at = row.created_at, seen_at = row.seen_at }
end

-- store:portal_session(token, now) -> {email=, id_hash=, created_at=,
-- seen_at=}; nil, message, "no_session" for a token that is unknown, ended,
-- idle more than PORTAL.idle_seconds or older than PORTAL.absolute_seconds.
-- seen_at moves (a write) only once it is TOUCH_SECONDS old.
function Store:portal_session(token, now)
  if token ~= nil then check_text(token, "portal_session", 1, "session token") end
  check_now(now, "portal_session", 2)
  return checking_transaction(self, session, token, now)
end

local function signout(self, token, now)
  local hash = token_hash(token)
  if hash then self.db:defer(self.sql.portal_end_session, hash, now) end
  return true
end

-- store:portal_signout(token, now) -> true: the session ends (again: no
-- change).
function Store:portal_signout(token, now)
  if token ~= nil then check_text(token, "portal_signout", 1, "session token") end
  check_now(now, "portal_signout", 2)
  return transaction(self, signout, token, now)
end

------------------------------------------------------------------------
-- The owner's licenses
------------------------------------------------------------------------

local view_of = require("licensor.portal.view").license

-- The license's self-service budget (its own policy values): how many,
-- in how many days.
local function budget_of(self, lic)
  local policy = common.policy_of(self, lic)
  return policy.self_deactivations, policy.self_deactivation_days
end

-- The self-service deactivations of key counted on `on` (its window's).
local function self_deactivations(self, key, days, on)
  return self.db:value(self.sql.self_deactivations, key, common.add_days(on, 1 - days))
end

-- The installations as store:installations answers them (no fingerprints,
-- signatures or drift history).
local function public_installations(list)
  for _, i in ipairs(list) do
    i.seq, i.fingerprint, i.signature, i.issued, i.drifts = nil, nil, nil, nil, nil
  end
  return list
end

-- The license of key when it is the owner's: one answer for a key that is
-- malformed, unknown or someone else's.
local function owned(self, email, key, on)
  local unknown = "no license " .. tostring(key)
  local ok, canonical = pcall(common.normalise_key, key)
  if not ok then
    if failure.is(canonical) then refuse("unknown_key", unknown) end
    error(canonical, 0)
  end
  local found, lic, cat = pcall(common.license_and_catalogue, self, canonical, on)
  if not found then
    if failure.is(lic) and lic.code == "unknown_key" then refuse("unknown_key", unknown) end
    error(lic, 0)
  end
  if not lic.email or lower(lic.email) ~= email then refuse("unknown_key", unknown) end
  return lic, cat
end

local function view(self, lic, cat, on)
  local _, days = budget_of(self, lic)
  return view_of(lic, cat, public_installations(self.db:all(self.sql.installations, lic.key)), on,
                 self_deactivations(self, lic.key, days, on))
end

local function licenses(self, email, on)
  email, on = folded(email), check_on(on)
  local list = {}
  for _, row in ipairs(self.db:all(self.sql.portal_keys, email)) do
    local lic, cat = common.license_and_catalogue(self, row.key, on)
    -- the list's rows: no installations read, no prices computed
    list[#list + 1] = view_of(lic, cat, {}, on, nil, true)
  end
  return list
end

-- store:portal_licenses(email, on) -> list of brief views, one per license
-- with that address, ordered by product and key (licensor.portal.view's
-- license(lic, cat, {}, on, nil, true): what the licenses list shows;
-- store:portal_license has the rest, installations and budget included).
function Store:portal_licenses(email, on)
  check_text(email, "portal_licenses", 1, "email address")
  return guarded(self, licenses, email, on)
end

local function one_license(self, email, key, on)
  email, on = folded(email), check_on(on)
  local lic, cat = owned(self, email, key, on)
  return view(self, lic, cat, on)
end

-- store:portal_license(email, key, on) -> the view of one license; nil,
-- "no license KEY", "unknown_key" for a key that is unknown or another
-- owner's (the same answer).
function Store:portal_license(email, key, on)
  check_text(email, "portal_license", 1, "email address")
  check_text(key, "portal_license", 2, "license key")
  return guarded(self, one_license, email, key, on)
end

------------------------------------------------------------------------
-- Self-service
------------------------------------------------------------------------

local latest_of = common.latest_of

local function refused(self, code, message, eligible, migration)
  common.discard(self)
  return { ok = false, code = code, message = message, eligible = eligible, migration = migration }
end

local function self_deactivate(self, email, key, server, on)
  email, on = folded(email), check_on(on)
  failure.try(core.check_name(server, "server"))
  local lic, cat = owned(self, email, key, on)
  key = lic.key
  local db, sql = self.db, self.sql
  local budget, days = budget_of(self, lic)
  local used = self_deactivations(self, key, days, on)
  if used >= budget then
    refuse("self_service_limit", "license " .. key .. " was deactivated on servers " .. used ..
      " times in the last " .. days .. " days, as many as it may be without help: contact support")
  end
  local installs = db:all(sql.installations, key)
  local eligible = cat:eligible(lic, on)
  local inst = latest_of(installs, server)
  if not inst then
    return refused(self, "not_activated", "server '" .. server .. "' has no installation of this key",
                   eligible, cat:migration(lic, installs, on))
  end
  if on < inst.first_seen then refuse("invalid_date", "on: before the installation's first day") end
  -- Deactivated and no certificate holding the slot: nothing to free.
  if inst.deactivated and not (inst.held_until and inst.held_until >= on) then
    return refused(self, "not_activated", "server '" .. server .. "' was deactivated on " .. inst.deactivated,
                   eligible, cat:migration(lic, installs, on))
  end
  -- As an admin's force: the slot is free today, whatever a certificate
  -- of the machine said (its later refusals carry the revocation).
  db:defer(sql.free_installation, key, inst.seq, "forced", on)
  log(self, key, on, "self_deactivated", common.provenance(self, { server = server, by = email,
                                                                  held_until = inst.held_until }))
  inst.held_until, inst.freed = nil, "forced"
  inst.deactivated = inst.deactivated or on
  return { ok = true, eligible = eligible, migration = cat:migration(lic, installs, on),
           remaining = budget - used - 1 }
end

-- store:portal_deactivate(email, key, server, on) -> verdict {ok=,
-- code=, message=, eligible=, migration=[, remaining=]}: the owner frees
-- the slot of a lost machine as an admin's force would (a certificate's
-- hold ends too), an event "self_deactivated" {server=, by=email}.  The
-- policy's self_deactivations per self_deactivation_days per license;
-- beyond: nil, message, "self_service_limit".  R10's window is never
-- restarted: the installation's past stays as it was.
function Store:portal_deactivate(email, key, server, on)
  check_text(email, "portal_deactivate", 1, "email address")
  check_text(key, "portal_deactivate", 2, "license key")
  check_text(server, "portal_deactivate", 3, "server name")
  return checking_transaction(self, self_deactivate, email, key, server, on)
end

local function activate(self, email, text, on)
  email, on = folded(email), check_on(on)
  if #text > constants.MAX_CERTIFICATE_BYTES then
    refuse("invalid_request", "the activation request is longer than " .. constants.MAX_CERTIFICATE_BYTES ..
      " bytes")
  end
  local request = failure.try(certificate.read_request((text:gsub("\r\n", "\n"))))
  local lic = owned(self, email, request.license, on)
  if not self.signing_key then
    refuse("no_signing_key", "this portal signs no certificates (no signing key)")
  end
  -- Exactly `licensor activate --request`: R5, R9, R10, then the
  -- certificate, in this one transaction.
  local verdict = self:activate(lic.key, request.server, request.build, on, request.fingerprint)
  if not verdict.ok then
    common.discard(self)
    verdict.server = request.server
    return verdict
  end
  return { ok = true, server = request.server, certificate = self:certificate(lic.key, request.server, on),
           eligible = verdict.eligible, migration = verdict.migration }
end

-- store:portal_activate(email, request_text, on) -> {ok=true,
-- certificate=TEXT, server=, eligible=, migration=}, or a refused
-- verdict {ok=false, code=, message=, server=, ...} (R5, R9, R10); nil,
-- message, code for a request that is not one ("invalid_request"), of a
-- license that is not the owner's ("unknown_key") or without a signing key.
function Store:portal_activate(email, request_text, on)
  check_text(email, "portal_activate", 1, "email address")
  check_text(request_text, "portal_activate", 2, "request text")
  return transaction(self, activate, email, request_text, on)
end

return Store
