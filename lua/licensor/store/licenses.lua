-- licensor.store.licenses -- the workflows of a license's own life:
-- issue, renew (R15), add_addon (R8), upgrade (R12), end_lease (R6),
-- disable, enable, transfer (R14) and set (the owner's email address, the
-- license's own policy override and its tags).  Each is one transaction
-- through common.transaction; the rules are the C core's.
local core = require "licensor.core"
local failure = require "licensor.failure"
local address = require "licensor.mail.address"
local common = require "licensor.store.common"
local distance = require("licensor.spelling").distance

local type, pairs, ipairs, next, tostring, sort = type, pairs, ipairs, next, tostring, table.sort
local find, byte = string.find, string.byte

local Store = common.Store
local refuse, bad_argument, transaction = common.refuse, common.bad_argument, common.transaction
local check_on, normalise_key, add_days = common.check_on, common.normalise_key, common.add_days
local load_license, license_and_catalogue = common.load_license, common.license_and_catalogue
local log, policy_of, provenance = common.log, common.policy_of, common.provenance

local function unknown_addon(product, addon)
  refuse("unknown_addon", "product '" .. product .. "' has no add-on '" .. tostring(addon) .. "'")
end

local ISSUE_FIELDS = { product = "string", edition = "string", kind = "string", start = "string",
                       owner = "string", email = "string", failover = "boolean", version_lock = "number",
                       trial_days = "number", addons = "table", tags = "table" }

local function check_issue_spec(spec)
  if type(spec) ~= "table" then bad_argument(1, "issue", "license table expected", 2) end
  for field, kind in pairs(ISSUE_FIELDS) do
    local v = spec[field]
    if v ~= nil and type(v) ~= kind then
      bad_argument(1, "issue", field .. " must be a " .. kind, 2)
    end
  end
end

-- The add-ons bought at issue, paid through `paid_through`.
local function issued_addons(cat, lic, wanted, paid_through)
  local owned = {}
  for _, addon in ipairs(cat:product(lic.product).addons) do owned[addon] = true end
  local addons = {}
  for _, addon in ipairs(wanted or {}) do
    if not owned[addon] then unknown_addon(lic.product, addon) end
    addons[addon] = paid_through
  end
  return addons
end

-- The set of a list of tags, each checked (invalid_request), at most
-- common.MAX_TAGS.
local function tag_list_set(list)
  local set, n = {}, 0
  for _, word in ipairs(list) do
    failure.try(common.check_tag(word))
    if not set[word] then set[word], n = true, n + 1 end
  end
  if n > common.MAX_TAGS then
    refuse("invalid_request", "tags: at most " .. common.MAX_TAGS .. " on a license, not " .. n)
  end
  return set
end

local function issue(self, spec, today)
  if spec.owner ~= nil then failure.try(core.check_name(spec.owner, "owner")) end
  if spec.email ~= nil then failure.try(address.check(spec.email)) end
  local cat, version = common.active_catalogue(self)
  local kind = spec.kind or "perpetual"
  local start = spec.start or today
  local lic = { product = spec.product, edition = spec.edition, level = spec.level, kind = kind,
                start = start, failover = spec.failover or false, version_lock = spec.version_lock,
                trial_days = spec.trial_days, owner = spec.owner,
                tags = spec.tags and next(spec.tags) and tag_list_set(spec.tags) or nil }
  -- The policy file's layers for this product and edition (its settings
  -- hook sees the new license's fields and tags).
  if self.live_policy and type(lic.product) == "string" then common.attach_policy(self, lic, today) end
  local policy = policy_of(self, lic)
  -- Terms that would leave the calendar (after 9999-12-31) are refused.
  if kind == "perpetual" then lic.ms_expires = failure.try(core.term(start, policy.ms_months)) end
  if kind == "trial" and not lic.trial_days then lic.trial_days = policy.trial_days end
  -- The catalogue validates every field (product, edition, level, dates):
  -- the C one, since no decision is made here that a hook should be asked.
  local status, msg, code = (cat.raw or cat):status(lic, start)
  if not status then refuse(code, msg) end
  if lic.edition == nil or lic.level == nil then
    refuse("invalid_license", "a license needs an edition and a level")
  end
  common.check_servable(cat, lic)
  -- Add-ons of leases are paid for the lease's life, of trials for the trial.
  local paid_through = lic.ms_expires
    or (kind == "trial" and add_days(start, lic.trial_days - 1)) or "9999-12-31"
  local addons = issued_addons(cat, lic, spec.addons, paid_through)
  lic.addons = next(addons) and addons or nil
  local db, sql = self.db, self.sql
  local key = core.new_key()
  db:run(sql.insert_license, key, lic.product, lic.edition, lic.level, kind, start, lic.ms_expires,
    nil, nil, lic.trial_days, lic.version_lock, lic.failover, lic.owner, version, spec.email, nil,
    common.tags_text(lic.tags))
  if lic.ms_expires then db:run(sql.insert_term, key, "ms", start, lic.ms_expires, today) end
  for addon, through in pairs(addons) do
    db:run(sql.set_addon, key, addon, through)
    db:run(sql.insert_term, key, addon, start, through, today)
  end
  log(self, key, today, "issue", { product = lic.product, edition = lic.edition, level = lic.level,
                                   kind = kind, start = start, ms_expires = lic.ms_expires,
                                   owner = lic.owner, email = spec.email, addons = spec.addons,
                                   catalogue = version, tags = spec.tags and common.tag_list(lic.tags),
                                   policy = self.live_policy and self.live_policy.version })
  return (load_license(self, key, today))
end

-- store:issue{product=, edition=, level=, kind=, start=, owner=, email=,
-- failover=, version_lock=, trial_days=, addons={"eas"}, tags={"msp"}}[, on]
-- -> license table; `on` (default today, UTC) is the day it is recorded on
function Store:issue(spec, on)
  check_issue_spec(spec)
  if on ~= nil and (type(on) ~= "string" or not core.day(on)) then
    return nil, "on: date YYYY-MM-DD expected", "invalid_date"
  end
  local today = on or core.today()
  if spec.start ~= nil and not core.day(spec.start) then
    return nil, "start: date YYYY-MM-DD expected", "invalid_date"
  end
  return transaction(self, issue, spec, today)
end

local function renew(self, key, on)
  key, on = normalise_key(key), check_on(on)
  local lic = license_and_catalogue(self, key, on)   -- and the policy in force
  local policy = policy_of(self, lic)
  local renewed, msg, code = core.renew(lic, on, { months = policy.ms_months, basis = policy.renewal_basis })
  if not renewed then refuse(code, msg) end
  local db, sql = self.db, self.sql
  db:run(sql.set_ms, renewed.ms_expires, renewed.ms_start, key)
  local term_start = renewed.ms_start ~= lic.ms_start and renewed.ms_start
    or (lic.ms_expires and add_days(lic.ms_expires, 1)) or lic.start
  db:run(sql.insert_term, key, "ms", term_start, renewed.ms_expires, on)
  for addon, through in pairs(renewed.addons or {}) do
    db:run(sql.set_addon, key, addon, through)
    db:run(sql.insert_term, key, addon, term_start, through, on)
  end
  log(self, key, on, "renew", provenance(self, { from = lic.ms_expires, to = renewed.ms_expires,
                                                basis = policy.renewal_basis, ms_start = renewed.ms_start }))
  return (load_license(self, key, on))
end

-- Renews term by term until M&S covers `on` (at least one term).
local function renew_until_current(self, key, on)
  local lic = renew(self, key, on)
  for _ = 1, 1000 do
    if lic.ms_expires >= check_on(on) then return lic end
    lic = renew(self, key, on)
  end
  refuse("invalid_date", "M&S cannot be brought up to " .. tostring(on))
end

-- store:renew(key, on [, {until_current=true}]) -> license table (R15,
-- add-ons included).  until_current renews term by term, in one
-- transaction, until M&S covers `on`.
function Store:renew(key, on, opts)
  if opts ~= nil and type(opts) ~= "table" then bad_argument(3, "renew", "options table expected") end
  if opts and opts.until_current then return transaction(self, renew_until_current, key, on) end
  return transaction(self, renew, key, on)
end

-- The price of one M&S term for the license on `on` (the policy's
-- ms_percent of the license's price in the major of its eligible build),
-- or nil when the catalogue prices no M&S.
function Store:renewal_price(lic, on)
  local cat = self:catalogue()
  if not cat then return nil end
  return common.renewal_price(cat, lic, on)
end

-- The last day an add-on bought on `on` is paid through (R8: with M&S for
-- perpetual licenses, the trial's days, a lease's life).
local function addon_paid_through(self, lic, status, on)
  if lic.kind == "perpetual" then
    if not lic.ms_expires or on > lic.ms_expires then
      refuse("ms_expired", "add-ons need active M&S: renew M&S first")
    end
    return lic.ms_expires
  end
  if not status.valid then refuse(status.code, status.message) end
  if lic.kind == "trial" then
    return add_days(lic.start, (lic.trial_days or policy_of(self, lic).trial_days) - 1)
  end
  return "9999-12-31"
end

local function add_addon(self, key, addon, on)
  key, on = normalise_key(key), check_on(on)
  local lic, cat = license_and_catalogue(self, key, on)
  local status, msg, code = cat:status(lic, on)
  if not status then refuse(code, msg) end
  local known = false
  for _, a in ipairs(cat:product(lic.product).addons) do known = known or a == addon end
  if not known then unknown_addon(lic.product, addon) end
  local through = addon_paid_through(self, lic, status, on)
  if lic.addons and lic.addons[addon] and lic.addons[addon] >= through then
    refuse("already_owned", "add-on '" .. addon .. "' is already paid through " .. lic.addons[addon])
  end
  local db, sql = self.db, self.sql
  db:run(sql.set_addon, key, addon, through)
  db:run(sql.insert_term, key, addon, on, through, on)
  log(self, key, on, "add_addon", { addon = addon, paid_through = through })
  return (load_license(self, key, on))
end

-- store:add_addon(key, addon, on) -> license table
function Store:add_addon(key, addon, on)
  if type(addon) ~= "string" then bad_argument(2, "add_addon", "add-on id expected") end
  return transaction(self, add_addon, key, addon, on)
end

local function upgrade(self, key, target, on, paid)
  key, on = normalise_key(key), check_on(on)
  local lic, cat = license_and_catalogue(self, key, on)
  local quote, msg, code = cat:quote_upgrade(lic, target, on)
  if not quote then refuse(code, msg) end
  if paid ~= quote then
    refuse("wrong_amount", "the upgrade costs " .. quote .. ", " .. tostring(paid) .. " was paid")
  end
  local edition, level = target.edition or lic.edition, target.level or lic.level
  self.db:run(self.sql.set_edition_level, edition, level, key)
  log(self, key, on, "upgrade", provenance(self, { from = { edition = lic.edition, level = lic.level },
                                                  to = { edition = edition, level = level }, paid = paid }))
  return (load_license(self, key, on))
end

-- store:upgrade(key, {edition=, level=}, on, {paid=}) -> license table
function Store:upgrade(key, target, on, opts)
  if type(target) ~= "table" then bad_argument(2, "upgrade", "target table expected") end
  if type(opts) ~= "table" then bad_argument(4, "upgrade", "{paid=amount} expected") end
  return transaction(self, upgrade, key, target, on, opts.paid)
end

local function end_lease(self, key, on)
  key, on = normalise_key(key), check_on(on)
  local lic = load_license(self, key)
  if lic.kind ~= "lease" then refuse("invalid_license", "license " .. key .. " is not a lease") end
  if lic.lease_ended then refuse("expired", "the lease already ended on " .. lic.lease_ended) end
  if on < lic.start then refuse("not_started", "the lease starts on " .. lic.start) end
  self.db:run(self.sql.set_lease_ended, on, key)
  log(self, key, on, "end_lease", {})
  return (load_license(self, key))
end

-- store:end_lease(key, on) -> license table (R6)
function Store:end_lease(key, on)
  return transaction(self, end_lease, key, on)
end

local function disable(self, key, on, reason)
  key, on = normalise_key(key), check_on(on)
  local lic = load_license(self, key)
  if lic.disabled then return lic end
  self.db:run(self.sql.set_disabled, on, reason, key)
  log(self, key, on, "disable", { reason = reason })
  return (load_license(self, key))
end

-- store:disable(key, on, reason) -> license table; disabling a disabled key
-- changes nothing.
function Store:disable(key, on, reason)
  if reason ~= nil and type(reason) ~= "string" then
    bad_argument(3, "disable", "reason string expected")
  end
  return transaction(self, disable, key, on, reason or "admin")
end

local function enable(self, key, on)
  key, on = normalise_key(key), check_on(on)
  local lic = load_license(self, key)
  if not lic.disabled then return lic end
  self.db:run(self.sql.set_disabled, nil, nil, key)
  log(self, key, on, "enable", { was_disabled = lic.disabled, reason = lic.disabled_reason })
  local case = self.db:first(self.sql.open_case, key)
  if case then common.close_case(self, key, case.id, on, "enabled", "re-enabled by an admin") end
  -- Closed for good: no earlier case of this key ever resumes (R11), so
  -- new excess opens a new case with the whole ladder.
  self.db:defer(self.sql.cases_ended_by_enable, key)
  return (load_license(self, key))
end

-- store:enable(key, on) -> license table; also closes an open fraud case
-- for good (it never resumes).
function Store:enable(key, on)
  return transaction(self, enable, key, on)
end

local function transfer(self, key, owner, opts, on)
  key = normalise_key(key)
  failure.try(core.check_name(owner, "owner"))
  local today = check_on(on)
  local lic = load_license(self, key)
  local copy, msg, code = core.transfer(lic, owner, opts)
  if not copy then refuse(code, msg) end
  self.db:run(self.sql.set_owner, owner, copy.transfer_consent, key)
  log(self, key, today, "transfer", { from = lic.owner, to = owner, consent = copy.transfer_consent })
  return (load_license(self, key))
end

-- store:transfer(key, owner, {consent=}) -> license table (R14)
function Store:transfer(key, owner, opts, on)
  if type(owner) ~= "string" or owner == "" then bad_argument(2, "transfer", "owner expected") end
  if opts ~= nil and type(opts) ~= "table" then bad_argument(3, "transfer", "options expected") end
  return transaction(self, transfer, key, owner, opts, on)
end

-- What store:set takes, and the type of each; the owner changes by
-- transfer (R14) only.
local SETTABLE = { email = "string", policy = "table", tags = "table", reason = "string", by = "string" }
-- The longest reason an event keeps (bytes).
local MAX_REASON_BYTES = 1000

-- Why a reason is not text to print, or nil: `licensor events` prints it
-- raw, so it must be valid UTF-8 (shortest forms, no surrogates) without
-- control characters (C0, DEL, C1) or the bidirectional controls that
-- reorder what a terminal shows after them (U+202A-U+202E,
-- U+2066-U+2069).  core.check_name's test, for text past its 255 bytes.
local function bad_reason(s)
  if find(s, "%c") then return "holds a control character" end
  if not find(s, "[\128-\255]") then return nil end
  local i, n = 1, #s
  while i <= n do
    local c = byte(s, i)
    if c < 0x80 then
      i = i + 1
    else
      local len, cp, min
      if c >= 0xC2 and c <= 0xDF then len, cp, min = 2, c - 0xC0, 0x80
      elseif c >= 0xE0 and c <= 0xEF then len, cp, min = 3, c - 0xE0, 0x800
      elseif c >= 0xF0 and c <= 0xF4 then len, cp, min = 4, c - 0xF0, 0x10000
      else return "is not valid UTF-8" end
      for k = 1, len - 1 do
        local d = byte(s, i + k)
        if not d or d < 0x80 or d > 0xBF then return "is not valid UTF-8" end
        cp = cp * 64 + (d - 0x80)
      end
      if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return "is not valid UTF-8" end
      if cp <= 0x9F then return "holds a control character" end
      if (cp >= 0x202A and cp <= 0x202E) or (cp >= 0x2066 and cp <= 0x2069) then
        return "holds a bidirectional control character"
      end
      i = i + len
    end
  end
  return nil
end

-- " (did you mean 'NAME'?)" for the nearest of the keys of `names`
-- within two edits (the first in order of a tie), or "".
local function did_you_mean(word, names)
  local best, best_d
  for name in pairs(names) do
    local d = distance(word, name)
    if d <= 2 and (not best_d or d < best_d or (d == best_d and name < best)) then best, best_d = name, d end
  end
  return best and (" (did you mean '" .. best .. "'?)") or ""
end

-- The string keys of t, sorted: the first problem is always the same one.
local function sorted_names(t)
  local list = {}
  for k in pairs(t) do
    if type(k) == "string" then list[#list + 1] = k end
  end
  sort(list)
  return list
end

-- Refuses (invalid_policy) a change naming a key that is not a policy
-- setting, with the nearest of the catalogue's settings, and the removal
-- of a kind of reminders that is none: removing a misspelt key would
-- otherwise change nothing without a word.  A setting the catalogue
-- leaves unset (checkout_url) is not in cat:policy(): the catalogue's own
-- test says whether it is one.
local function check_change_keys(cat, changes)
  local policy = (cat.raw or cat):policy()
  for _, k in ipairs(sorted_names(changes)) do
    local ok, msg = true, nil
    if policy[k] == nil then ok, msg = cat:resolve_policy({ [k] = "x" }) end
    if not ok and msg:find("is not a policy setting", 1, true) then
      refuse("invalid_policy", "policy." .. k .. " is not a policy setting (misspelt?)" ..
        did_you_mean(k, policy))
    end
  end
  local reminders, kinds = changes.reminders, policy.reminders or {}
  if type(reminders) == "table" and next(reminders) ~= nil and #reminders == 0 then
    for _, kind in ipairs(sorted_names(reminders)) do
      if reminders[kind] == false and kinds[kind] == nil then
        refuse("invalid_policy", "policy.reminders." .. kind .. ": no such kind of reminders (the kinds " ..
          "are " .. table.concat(sorted_names(kinds), ", ") .. ")" .. did_you_mean(kind, kinds))
      end
    end
  end
end

-- The override after `changes` ({KEY = VALUE | false}: false removes the
-- key; reminders = {KIND = {...} | false} changes those kinds alone).
local function merged_override(old, changes)
  local new = {}
  for k, v in pairs(old or {}) do new[k] = v end
  for k, v in pairs(changes) do
    if v == false then
      new[k] = nil
    elseif k == "reminders" and type(v) == "table" and next(v) ~= nil and #v == 0 then
      local kinds = {}
      local before = type(new.reminders) == "table" and new.reminders or {}
      for kind, list in pairs(before) do kinds[kind] = list end
      for kind, list in pairs(v) do
        if list == false then kinds[kind] = nil else kinds[kind] = list end
      end
      new.reminders = next(kinds) and kinds or nil
    else
      new[k] = v
    end
  end
  return new
end

-- The license's tags after `change`: a list is the whole new set, a map
-- {WORD = true | false} adds and removes words.
local function changed_tags(old, change)
  if #change > 0 or next(change) == nil then return tag_list_set(change) end
  local set, added = {}, {}
  for word in pairs(old or {}) do set[word] = true end
  for word, wanted in pairs(change) do
    if wanted then
      added[#added + 1] = word
    else
      set[word] = nil
    end
  end
  for word in pairs(tag_list_set(added)) do set[word] = true end
  local list = common.tag_list(set) or {}
  return tag_list_set(list)
end

local function set(self, key, fields, on)
  key = normalise_key(key)
  on = check_on(on)
  local email = fields.email
  if email == "" then email = nil end
  if email ~= nil then failure.try(address.check(email)) end
  local lic = load_license(self, key, on)
  local db, sql = self.db, self.sql
  local who, why = fields.by, fields.reason
  if fields.email ~= nil and lic.email ~= email then
    db:run(sql.set_email, email, key)
    log(self, key, on, "set", { field = "email", from = lic.email, to = email })
  end
  if fields.policy ~= nil then
    common.active_catalogue(self)
    check_change_keys(self.cat, fields.policy)
    local override = merged_override(lic.policy_override, fields.policy)
    if next(override) ~= nil then
      -- The catalogue's bounds, messages and cross-checks, exactly, and
      -- then over the policy file's layers for this license.
      local ok, msg, code = self.cat:resolve_policy(override)
      if not ok then refuse(code or "invalid_policy", msg) end
      if self.live_policy then
        local fits, clash = common.policy_lib().fits(self.live_policy, self.cat, lic, override, on)
        if not fits then
          refuse("invalid_policy", clash .. " (with the policy file's layers for this license)")
        end
      end
    end
    local text = common.override_text(override)
    if text ~= common.override_text(lic.policy_override) then
      db:run(sql.set_policy, text, key)
      log(self, key, on, "set", { field = "policy", from = lic.policy_override,
                                  to = text and common.decode_detail(text), by = who, why = why })
    end
  end
  if fields.tags ~= nil then
    local tags = changed_tags(lic.tags, fields.tags)
    local text = common.tags_text(tags)
    if text ~= common.tags_text(lic.tags) then
      db:run(sql.set_tags, text, key)
      log(self, key, on, "set", { field = "tags", from = common.tag_list(lic.tags),
                                  to = common.tag_list(tags), by = who, why = why })
    end
  end
  return (load_license(self, key, on))
end

-- store:set(key, {email=ADDRESS, policy={KEY=VALUE|false}, tags=LIST|{WORD=
-- true|false}, reason=TEXT, by=WHO}[, on]) -> license table.  email: the
-- address customer actions are mailed to ("" forgets it).  policy: the
-- license's own override of policy values (the most specific layer),
-- merged into the one it has (false removes a key; reminders = {KIND =
-- LIST|false} changes those kinds), validated with the catalogue's
-- bounds (invalid_policy names the field; a key that is no setting, set
-- or removed, is refused with the nearest setting); removing a setting
-- the override does not hold changes nothing; it needs a reason.  tags: a
-- list is the whole set, a map adds (true) and removes (false) words.
-- Each change is a "set" event {field=, from=, to=, by=, why=}; setting
-- the same again is not an event.
function Store:set(key, fields, on)
  if type(fields) ~= "table" then bad_argument(2, "set", "fields table expected") end
  for field, value in pairs(fields) do
    local kind = SETTABLE[field]
    if not kind then
      bad_argument(2, "set", "email, policy, tags, reason and by can be set, not " .. tostring(field))
    end
    if type(value) ~= kind then bad_argument(2, "set", field .. " must be a " .. kind) end
  end
  if fields.tags then
    local n = #fields.tags
    for k, v in pairs(fields.tags) do
      if n > 0 and type(k) ~= "number" or n == 0 and (type(k) ~= "string" or type(v) ~= "boolean") then
        bad_argument(2, "set", "tags: a list of words or a map {WORD = true | false}, not both")
      end
    end
  end
  if fields.policy ~= nil and (fields.reason == nil or not fields.reason:find("%S")) then
    return nil, "reason: a change of a license's policy needs a reason (it is logged)", "invalid_request"
  end
  if fields.reason and #fields.reason > MAX_REASON_BYTES then
    return nil, "reason: at most " .. MAX_REASON_BYTES .. " bytes", "invalid_request"
  end
  local why = fields.reason and bad_reason(fields.reason)
  if why then return nil, "reason " .. why, "invalid_request" end
  if fields.by then
    local ok, msg, code = core.check_name(fields.by, "by")
    if not ok then return nil, msg, code end
  end
  return transaction(self, set, key, fields, on)
end

return Store
