-- licensor.store -- licenses in SQLite: the workflows of SPEC section 6.
--
-- Every workflow is one BEGIN IMMEDIATE transaction (licensor.core's db
-- layer waits out other writers): it happens whole and is logged, or not at
-- all.  Inside a workflow a refusal is raised as {code=, message=} and the
-- transaction wrapper turns it into `nil, message, code` after ROLLBACK.
-- The rules themselves (eligibility, upgrades, renewals, the migration
-- window and the ladder) are the C core's; this file only stores.
local core = require "licensor.core"
local loader = require "licensor.loader"
local schema = require "licensor.schema"
local serialize = require "licensor.serialize"
local has_cjson, cjson_module = pcall(require, "cjson")
if not has_cjson then
  error("licensor.store needs lua-cjson (Debian: apt-get install lua-cjson; " ..
        "elsewhere: luarocks install lua-cjson)", 0)
end
local cjson = cjson_module.new()

local type, pairs, ipairs, pcall, error = type, pairs, ipairs, pcall, error
local setmetatable, tostring, next = setmetatable, tostring, next
local unpack = table.unpack or unpack   -- luacheck: ignore unpack
local sort, gmatch = table.sort, string.gmatch
local os_date = os.date

cjson.encode_sparse_array(true)

local _M = {}
local Store = {}
Store.__index = Store

-- SPEC section 6 actions, the only ones store:on accepts.
local ACTIONS = { email_customer = true, notify_fraud_team = true, phone_customer = true,
                  disable_key = true }

local SQL = {
  catalogue_version = "SELECT max(version) FROM catalogues",
  catalogue_source = "SELECT source FROM catalogues WHERE version = ?",
  insert_catalogue = "INSERT INTO catalogues (imported, source, policy) VALUES (?, ?, ?)",
  -- One statement per license read: the add-ons come folded into one
  -- column, "eas<US>2019-12-06<RS>ews<US>..." (names never hold control
  -- characters: the catalogue refuses them).
  license = [[SELECT l.*, (SELECT group_concat(addon || char(31) || paid_through, char(30))
    FROM addons a WHERE a.key = l.key) AS addon_list,
    (SELECT max(version) FROM catalogues) AS active_catalogue FROM licenses l WHERE l.key = ?]],
  insert_license = [[INSERT INTO licenses (key, product, edition, level, kind, start, ms_expires,
    ms_start, lease_ended, trial_days, version_lock, failover, owner, catalogue)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
  set_addon = [[INSERT INTO addons (key, addon, paid_through) VALUES (?, ?, ?)
    ON CONFLICT (key, addon) DO UPDATE SET paid_through = excluded.paid_through]],
  insert_term = "INSERT INTO terms (key, item, starts, ends, bought) VALUES (?, ?, ?, ?, ?)",
  set_ms = "UPDATE licenses SET ms_expires = ?, ms_start = ? WHERE key = ?",
  set_edition_level = "UPDATE licenses SET edition = ?, level = ? WHERE key = ?",
  set_lease_ended = "UPDATE licenses SET lease_ended = ? WHERE key = ?",
  set_disabled = "UPDATE licenses SET disabled = ?, disabled_reason = ? WHERE key = ?",
  set_owner = "UPDATE licenses SET owner = ?, transfer_consent = ? WHERE key = ?",
  installations = [[SELECT seq, server, build, first_seen, last_seen, deactivated
    FROM installations WHERE key = ? ORDER BY seq]],
  insert_installation = [[INSERT INTO installations (key, seq, server, build, first_seen, last_seen)
    VALUES (?, ?, ?, ?, ?, ?)]],
  touch_installation = [[UPDATE installations SET last_seen = max(last_seen, ?3), build = ?4
    WHERE key = ?1 AND seq = ?2]],
  deactivate_installation = "UPDATE installations SET deactivated = ?3 WHERE key = ?1 AND seq = ?2",
  insert_event = [[INSERT INTO events (key, seq, at, kind, detail)
    VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM events WHERE key = ?1), ?2, ?3, ?4)]],
  events = "SELECT at, kind, detail FROM events WHERE key = ? ORDER BY seq",
  -- R9/R10 candidates: keys with more installations active on ?1 than
  -- their allowance (last seen on or after ?2 = ?1 - grace).
  excess_keys = [[SELECT i.key FROM installations i JOIN licenses l ON l.key = i.key
    WHERE i.first_seen <= ?1 AND i.last_seen >= ?2 AND (i.deactivated IS NULL OR i.deactivated > ?1)
    GROUP BY i.key HAVING count(*) > CASE WHEN max(l.failover) THEN 2 ELSE 1 END]],
  open_case_keys = "SELECT key FROM fraud_cases WHERE closed IS NULL",
  open_case = "SELECT * FROM fraud_cases WHERE key = ? AND closed IS NULL",
  insert_case = "INSERT INTO fraud_cases (key, since, opened) VALUES (?, ?, ?)",
  close_case = "UPDATE fraud_cases SET closed = ? WHERE id = ?",
  case_first_step = "UPDATE fraud_cases SET first_step = ? WHERE id = ?",
  case_phoned = "UPDATE fraud_cases SET phoned = ? WHERE id = ?",
  case_disabled = "UPDATE fraud_cases SET disabled = ? WHERE id = ?",
  insert_outbox = "INSERT INTO outbox (key, case_id, action, on_day) VALUES (?, ?, ?, ?)",
  pending_outbox = [[SELECT id, key, case_id, action, on_day FROM outbox
    WHERE delivered IS NULL AND id > ? ORDER BY id LIMIT 500]],
  count_pending = "SELECT count(*) FROM outbox WHERE delivered IS NULL",
  outbox_done = "UPDATE outbox SET delivered = ? WHERE id = ?",
}

-- Raising a refusal inside a workflow.
local function refuse(code, message)
  error({ code = code, message = message }, 0)
end

-- A programming error in the caller of store method `fn`; depth 1 when
-- called from the method itself, 2 from a helper of the method.
local function bad_argument(n, fn, expected, depth)
  error("bad argument #" .. n .. " to '" .. fn .. "' (" .. expected .. ")", 2 + (depth or 1))
end

local function unknown_addon(product, addon)
  refuse("unknown_addon", "product '" .. product .. "' has no add-on '" .. tostring(addon) .. "'")
end

local function check_on(on)
  if on == nil then return core.today() end
  if type(on) == "string" and core.day(on) then return on end
  refuse("invalid_date", "on: date YYYY-MM-DD expected")
end

local function normalise_key(key)
  local canonical, msg = core.normalise_key(key)
  if not canonical then refuse("invalid_key", msg) end
  return canonical
end

local function add_days(date, days)
  return core.date(core.day(date) + days)
end

-- An error raised inside a workflow as `nil, message, code`: refusals
-- ({code=, message=}) are answers, anything else is a bug and raised again.
local function failure(err)
  if type(err) == "table" and err.code then return nil, err.message, err.code end
  error(err, 0)
end

-- Runs fn(self, ...) in one BEGIN IMMEDIATE transaction and returns its
-- one result; on any error the transaction is rolled back first.
local function transaction(self, fn, ...)
  local db = self.db
  local ok, err = pcall(db.begin, db)
  if not ok then return failure(err) end
  local done, result = pcall(fn, self, ...)
  if done then
    ok, err = pcall(db.commit, db)
    if ok then return result end
  else
    err = result
  end
  db:rollback()
  return failure(err)
end

-- The same for reads: no transaction, refusals answered the same way.
local function guarded(self, fn, ...)
  local ok, result = pcall(fn, self, ...)
  if ok then return result end
  return failure(result)
end

------------------------------------------------------------------------
-- Opening
------------------------------------------------------------------------

local function migrate(db)
  db:begin()
  local ok, err = pcall(function()
    local version = db:value(db:prepare("PRAGMA user_version"))
    for n = version + 1, #schema.migrations do
      db:exec(schema.migrations[n])
      db:exec("PRAGMA user_version = " .. n)
    end
  end)
  if ok then
    db:commit()
  else
    db:rollback()
    error(err, 0)
  end
end

local function prepare_all(db)
  local ids = {}
  for name, sql in pairs(SQL) do ids[name] = db:prepare(sql) end
  return ids
end

-- licensor.open(path, {synchronous="full"|"normal", busy_ms=}) -> store
function _M.open(path, opts)
  if type(path) ~= "string" then bad_argument(1, "open", "path expected") end
  if opts ~= nil and type(opts) ~= "table" then bad_argument(2, "open", "options table expected") end
  opts = opts or {}
  local sync = opts.synchronous or "full"
  if sync ~= "full" and sync ~= "normal" then
    bad_argument(2, "open", "synchronous must be \"full\" or \"normal\"")
  end
  local db, msg, code = core.open(path, sync == "full", opts.busy_ms or 10000)
  if not db then return nil, msg, code end
  local ok, err = pcall(migrate, db)
  if not ok then
    db:close()
    if type(err) == "table" then return nil, path .. ": " .. err.message, err.code end
    return nil, path .. ": " .. tostring(err), "store_error"
  end
  local prepared, sql = pcall(prepare_all, db)
  if not prepared then
    db:close()
    return nil, path .. ": not a licensor database of this version (" .. tostring(sql) .. ")", "store_error"
  end
  return setmetatable({ db = db, sql = sql, path = path, handlers = {} }, Store)
end

function Store:close()
  self.cat = nil
  return self.db:close()
end
Store.__close = Store.close
Store.__gc = Store.close      -- Lua 5.4; under LuaJIT the db's own __gc runs

function Store:__tostring()
  return "licensor.store (" .. self.path .. ")"
end

------------------------------------------------------------------------
-- Catalogues
------------------------------------------------------------------------

-- The catalogue of `version`, compiled once and kept until a newer one.
local function catalogue_at(self, version)
  if version == nil then refuse("no_catalogue", "no catalogue has been imported into this store") end
  if self.cat_version ~= version then
    local source = self.db:value(self.sql.catalogue_source, version)
    local t, msg, code = loader.read_source(source, "catalogue version " .. version)
    if not t then refuse(code, msg) end
    local cat, err = core.catalogue(t)
    if not cat then refuse("invalid_catalogue", err) end
    self.cat, self.cat_version, self.policy = cat, version, cat:policy()
  end
  return self.cat, version
end

-- The active catalogue: the newest version, imported by any process.
local function active_catalogue(self)
  return catalogue_at(self, self.db:value(self.sql.catalogue_version))
end

-- store:catalogue() -> the active catalogue (reloaded when a newer version
-- has been imported, by this or any other process).
function Store:catalogue()
  return guarded(self, active_catalogue)
end

-- store:catalogue_version() -> the active version number.
function Store:catalogue_version()
  return guarded(self, function() local _, version = active_catalogue(self); return version end)
end

local function import(self, t, today)
  local cat, msg, code = core.catalogue(t)
  if not cat then refuse(code, msg) end
  local ok, source = pcall(serialize.chunk, t)
  if not ok then refuse("invalid_catalogue", "catalogue: " .. source) end
  local _, version = self.db:run(self.sql.insert_catalogue, today, source, cjson.encode(cat:policy()))
  return version
end

-- store:import(table_or_path) -> version number
function Store:import(t)
  if type(t) == "string" then
    local read, msg, code = loader.read(t)
    if not read then return nil, msg, code end
    t = read
  elseif type(t) ~= "table" then
    bad_argument(1, "import", "catalogue table or path expected")
  end
  return transaction(self, import, t, core.today())
end

------------------------------------------------------------------------
-- Licenses
------------------------------------------------------------------------

-- The license row and its add-ons as a SPEC section 3 table.
local function load_license(self, key)
  local lic = self.db:first(self.sql.license, key)
  if lic == nil then refuse("unknown_key", "no license with key " .. key) end
  lic.failover = lic.failover == 1
  lic.catalogue = nil
  local active = lic.active_catalogue
  lic.active_catalogue = nil
  local list = lic.addon_list
  if list then
    local map = {}
    for addon, through in gmatch(list, "([^\30\31]+)\31([^\30]+)") do map[addon] = through end
    lic.addons, lic.addon_list = map, nil
  end
  return lic, active
end

-- The license and the active catalogue, read with one statement.
local function license_and_catalogue(self, key)
  local lic, version = load_license(self, key)
  return lic, (catalogue_at(self, version))
end

local function log(self, key, at, kind, detail)
  self.db:run(self.sql.insert_event, key, at, kind, cjson.encode(detail or {}))
end

local function get(self, key)
  return load_license(self, normalise_key(key))
end

-- store:get(key) -> license table
function Store:get(key)
  return guarded(self, get, key)
end

-- Read-through cache of Store:license, valid while the database's
-- generation (see csrc/store.h) is the one seen before the rows were read:
-- any commit, by any process, empties it.
local CACHE_LIMIT = 50000

local function cached_license(self, key)
  local generation = self.db:generation()
  if generation ~= self.cache_generation then
    self.cache, self.cache_size, self.cache_generation = {}, 0, generation
  end
  -- Cached under canonical keys: a canonical key hits without normalising.
  local hit = self.cache[key]
  if hit then return hit end
  key = normalise_key(key)
  hit = self.cache[key]
  if hit then return hit end
  hit = { license_and_catalogue(self, key) }
  if self.cache_size >= CACHE_LIMIT then self.cache, self.cache_size = {}, 0 end
  self.cache[key], self.cache_size = hit, self.cache_size + 1
  return hit
end

-- store:license(key) -> license table, active catalogue.  For read paths
-- that ask about the same keys again and again (the gateway): answers come
-- from memory until anything is committed to the database.  The license
-- table may be shared between calls: treat it as read-only.
function Store:license(key)
  local pair, msg, code = guarded(self, cached_license, key)
  if not pair then return nil, msg, code end
  return pair[1], pair[2]
end

local ISSUE_FIELDS = { product = "string", edition = "string", kind = "string", start = "string",
                       owner = "string", failover = "boolean", version_lock = "number",
                       trial_days = "number", addons = "table" }

local function check_issue_spec(spec)
  if type(spec) ~= "table" then bad_argument(1, "issue", "license table expected", 2) end
  for field, kind in pairs(ISSUE_FIELDS) do
    local v = spec[field]
    if v ~= nil and type(v) ~= kind then
      bad_argument(1, "issue", field .. " must be a " .. kind, 2)
    end
  end
end

local function issue(self, spec, today)
  local cat, version = active_catalogue(self)
  local policy = self.policy
  local kind = spec.kind or "perpetual"
  local start = spec.start or today
  local lic = { product = spec.product, edition = spec.edition, level = spec.level, kind = kind,
                start = start, failover = spec.failover or false, version_lock = spec.version_lock,
                trial_days = spec.trial_days, owner = spec.owner }
  if kind == "perpetual" then lic.ms_expires = core.term(start, policy.ms_months) end
  if kind == "trial" and not lic.trial_days then lic.trial_days = policy.trial_days end
  -- The catalogue validates every field (product, edition, level, dates).
  local status, msg, code = cat:status(lic, start)
  if not status then refuse(code, msg) end
  if lic.edition == nil or lic.level == nil then
    refuse("invalid_license", "a license needs an edition and a level")
  end
  local product = cat:product(lic.product)
  local owned = {}
  for _, addon in ipairs(product.addons) do owned[addon] = true end
  -- Add-ons of leases are paid for the lease's life, of trials for the trial.
  local paid_through = lic.ms_expires
    or (kind == "trial" and add_days(start, lic.trial_days - 1)) or "9999-12-31"
  local addons = {}
  for _, addon in ipairs(spec.addons or {}) do
    if not owned[addon] then unknown_addon(lic.product, addon) end
    addons[addon] = paid_through
  end
  lic.addons = next(addons) and addons or nil
  local db, sql = self.db, self.sql
  local key = core.new_key()
  lic.key = key
  db:run(sql.insert_license, key, lic.product, lic.edition, lic.level, kind, start, lic.ms_expires,
    nil, nil, lic.trial_days, lic.version_lock, lic.failover, lic.owner, version)
  if lic.ms_expires then db:run(sql.insert_term, key, "ms", start, lic.ms_expires, today) end
  for addon, through in pairs(addons) do
    db:run(sql.set_addon, key, addon, through)
    db:run(sql.insert_term, key, addon, start, through, today)
  end
  log(self, key, today, "issue", { product = lic.product, edition = lic.edition, level = lic.level,
                                   kind = kind, start = start, ms_expires = lic.ms_expires,
                                   owner = lic.owner, addons = spec.addons, catalogue = version })
  return load_license(self, key)
end

-- store:issue{product=, edition=, level=, kind=, start=, owner=, failover=,
-- version_lock=, trial_days=, addons={"eas"}} -> license table
function Store:issue(spec)
  check_issue_spec(spec)
  local today = core.today()
  if spec.start ~= nil and not core.day(spec.start) then
    return nil, "start: date YYYY-MM-DD expected", "invalid_date"
  end
  return transaction(self, issue, spec, today)
end

local function renew(self, key, on)
  key, on = normalise_key(key), check_on(on)
  local lic = license_and_catalogue(self, key)   -- and the policy in force
  local renewed, msg, code = core.renew(lic, on, { months = self.policy.ms_months,
                                                   basis = self.policy.renewal_basis })
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
  log(self, key, on, "renew", { from = lic.ms_expires, to = renewed.ms_expires,
                                basis = self.policy.renewal_basis, ms_start = renewed.ms_start })
  return load_license(self, key)
end

-- store:renew(key, on) -> license table (R15, add-ons included)
function Store:renew(key, on)
  return transaction(self, renew, key, on)
end

local function add_addon(self, key, addon, on)
  key, on = normalise_key(key), check_on(on)
  local lic, cat = license_and_catalogue(self, key)
  local status, msg, code = cat:status(lic, on)
  if not status then refuse(code, msg) end
  local known = false
  for _, a in ipairs(cat:product(lic.product).addons) do known = known or a == addon end
  if not known then unknown_addon(lic.product, addon) end
  local through
  if lic.kind == "perpetual" then
    if not lic.ms_expires or on > lic.ms_expires then
      refuse("ms_expired", "add-ons need active M&S: renew M&S first")
    end
    through = lic.ms_expires
  else
    if not status.valid then refuse(status.code, status.message) end
    through = lic.kind == "trial" and add_days(lic.start, (lic.trial_days or self.policy.trial_days) - 1)
      or "9999-12-31"
  end
  if lic.addons and lic.addons[addon] and lic.addons[addon] >= through then
    refuse("already_owned", "add-on '" .. addon .. "' is already paid through " .. lic.addons[addon])
  end
  local db, sql = self.db, self.sql
  db:run(sql.set_addon, key, addon, through)
  db:run(sql.insert_term, key, addon, on, through, on)
  log(self, key, on, "add_addon", { addon = addon, paid_through = through })
  return load_license(self, key)
end

-- store:add_addon(key, addon, on) -> license table
function Store:add_addon(key, addon, on)
  if type(addon) ~= "string" then bad_argument(2, "add_addon", "add-on id expected") end
  return transaction(self, add_addon, key, addon, on)
end

local function upgrade(self, key, target, on, paid)
  key, on = normalise_key(key), check_on(on)
  local lic, cat = license_and_catalogue(self, key)
  local quote, msg, code = cat:quote_upgrade(lic, target, on)
  if not quote then refuse(code, msg) end
  if paid ~= quote then
    refuse("wrong_amount", "the upgrade costs " .. quote .. ", " .. tostring(paid) .. " was paid")
  end
  local edition, level = target.edition or lic.edition, target.level or lic.level
  self.db:run(self.sql.set_edition_level, edition, level, key)
  log(self, key, on, "upgrade", { from = { edition = lic.edition, level = lic.level },
                                  to = { edition = edition, level = level }, paid = paid })
  return load_license(self, key)
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
  return load_license(self, key)
end

-- store:end_lease(key, on) -> license table (R6)
function Store:end_lease(key, on)
  return transaction(self, end_lease, key, on)
end

local function close_open_case(self, key, on, why)
  local case = self.db:first(self.sql.open_case, key)
  if case then
    self.db:run(self.sql.close_case, on, case.id)
    log(self, key, on, "case_closed", { case = case.id, why = why })
  end
end

local function disable(self, key, on, reason)
  key, on = normalise_key(key), check_on(on)
  local lic = load_license(self, key)
  if lic.disabled then return lic end
  self.db:run(self.sql.set_disabled, on, reason, key)
  log(self, key, on, "disable", { reason = reason })
  return load_license(self, key)
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
  close_open_case(self, key, on, "re-enabled by an admin")
  return load_license(self, key)
end

-- store:enable(key, on) -> license table; also closes an open fraud case.
function Store:enable(key, on)
  return transaction(self, enable, key, on)
end

local function transfer(self, key, owner, opts)
  key = normalise_key(key)
  local today = core.today()
  local lic = load_license(self, key)
  local copy, msg, code = require("licensor").transfer(lic, owner, opts)
  if not copy then refuse(code, msg) end
  self.db:run(self.sql.set_owner, owner, copy.transfer_consent, key)
  log(self, key, today, "transfer", { from = lic.owner, to = owner, consent = copy.transfer_consent })
  return load_license(self, key)
end

-- store:transfer(key, owner, {consent=}) -> license table (R14)
function Store:transfer(key, owner, opts)
  if type(owner) ~= "string" or owner == "" then bad_argument(2, "transfer", "owner expected") end
  if opts ~= nil and type(opts) ~= "table" then bad_argument(3, "transfer", "options expected") end
  return transaction(self, transfer, key, owner, opts)
end

------------------------------------------------------------------------
-- Installations (R5, R9, R10)
------------------------------------------------------------------------

local function verdict(ok, code, message, eligible, migration)
  return { ok = ok, code = code, message = message, eligible = eligible, migration = migration }
end

local function check_server(server, fn)
  if type(server) ~= "string" or server == "" or #server > 255 then
    bad_argument(2, fn, "server name expected", 2)
  end
end

local function check_build(build, fn, n)
  if type(build) ~= "number" or build ~= build or build % 1 ~= 0 then
    bad_argument(n, fn, "build number expected", 2)
  end
end

-- The newest installation of server that was never deactivated.
local function current_of(installs, server)
  for i = #installs, 1, -1 do
    local inst = installs[i]
    if inst.server == server and inst.deactivated == nil then return inst end
  end
end

local function activate(self, key, server, build, on)
  key, on = normalise_key(key), check_on(on)
  local lic, cat = license_and_catalogue(self, key)
  local db, sql = self.db, self.sql
  local eligible = cat:eligible(lic, on)
  local installs = db:all(sql.installations, key)
  local ok, msg, code = cat:can_install(lic, build, on)
  if not ok then return verdict(false, code, msg, eligible, cat:migration(lic, installs, on)) end
  local current = current_of(installs, server)
  if current and core.day(current.last_seen) + self.policy.checkin_grace_days >= core.day(on) then
    -- Already installed and active: a re-activation is a check-in.
    db:run(sql.touch_installation, key, current.seq, on, build)
    if current.build ~= build then
      log(self, key, on, "activate", { server = server, build = build, from_build = current.build })
    end
    if on > current.last_seen then current.last_seen = on end
    return verdict(true, nil, nil, eligible, cat:migration(lic, installs, on))
  end
  local admitted, window, refusal, before = cat:admission(lic, installs, on)
  if not admitted then return verdict(false, refusal, window, eligible, before) end
  if current then db:run(sql.deactivate_installation, key, current.seq, on) end
  -- Sequence numbers are 1, 2, ... per key: the list read above has them.
  local last = installs[#installs]
  db:run(sql.insert_installation, key, last and last.seq + 1 or 1, server, build, on, on)
  log(self, key, on, "activate", { server = server, build = build })
  return verdict(true, nil, nil, eligible, window)
end

-- store:activate(key, server, build, on) -> {ok=, code=, message=, eligible=, migration=}
function Store:activate(key, server, build, on)
  check_server(server, "activate")
  check_build(build, "activate", 3)
  return transaction(self, activate, key, server, build, on)
end

local function not_activated(server)
  return "server '" .. server .. "' has no active installation of this key"
end

local function checkin(self, key, server, on, build)
  key, on = normalise_key(key), check_on(on)
  local lic, cat = license_and_catalogue(self, key)
  local db, sql = self.db, self.sql
  local installs = db:all(sql.installations, key)
  local current = current_of(installs, server)
  local eligible = cat:eligible(lic, on)
  if not current then
    return verdict(false, "not_activated", not_activated(server), eligible, cat:migration(lic, installs, on))
  end
  build = build or current.build
  local ok, msg, code = cat:can_install(lic, build, on)
  if ok and build < current.build then ok, msg, code = cat:can_rollback(lic, current.build, build) end
  if not ok then return verdict(false, code, msg, eligible, cat:migration(lic, installs, on)) end
  db:run(sql.touch_installation, key, current.seq, on, build)
  if on > current.last_seen then current.last_seen = on end
  if build ~= current.build then
    log(self, key, on, "checkin", { server = server, build = build, from_build = current.build })
    current.build = build
  end
  return verdict(true, nil, nil, eligible, cat:migration(lic, installs, on))
end

-- store:checkin(key, server, on, build) -> verdict; moves last_seen, may
-- change the build (R5, and R13 when it goes back).
function Store:checkin(key, server, on, build)
  check_server(server, "checkin")
  if build ~= nil then check_build(build, "checkin", 4) end
  return transaction(self, checkin, key, server, on, build)
end

local function deactivate(self, key, server, on)
  key, on = normalise_key(key), check_on(on)
  local lic, cat = license_and_catalogue(self, key)
  local db, sql = self.db, self.sql
  local installs = db:all(sql.installations, key)
  local current = current_of(installs, server)
  local eligible = cat:eligible(lic, on)
  if not current then
    return verdict(false, "not_activated", not_activated(server), eligible, cat:migration(lic, installs, on))
  end
  if on < current.first_seen then refuse("invalid_date", "on: before the installation's first day") end
  db:run(sql.deactivate_installation, key, current.seq, on)
  current.deactivated = on
  log(self, key, on, "deactivate", { server = server })
  return verdict(true, nil, nil, eligible, cat:migration(lic, installs, on))
end

-- store:deactivate(key, server, on) -> verdict
function Store:deactivate(key, server, on)
  check_server(server, "deactivate")
  return transaction(self, deactivate, key, server, on)
end

-- store:installations(key) -> list of {server=, build=, first_seen=, last_seen=, deactivated=}
function Store:installations(key)
  return guarded(self, function()
    key = normalise_key(key)
    load_license(self, key)
    local list = self.db:all(self.sql.installations, key)
    for _, i in ipairs(list) do i.seq = nil end
    return list
  end)
end

------------------------------------------------------------------------
-- The sweep (R10, R11) and the outbox
------------------------------------------------------------------------

local CASE_COLUMN = { email_customer = "case_first_step", notify_fraud_team = "case_first_step",
                      phone_customer = "case_phoned", disable_key = "case_disabled" }

local function take_step(self, key, case, action, on, taken)
  local db, sql = self.db, self.sql
  db:run(sql[CASE_COLUMN[action]], on, case.id)
  db:run(sql.insert_outbox, key, case.id, action, on)
  if action == "disable_key" then
    db:run(sql.set_disabled, on, "fraud", key)
  end
  log(self, key, on, action, { case = case.id })
  taken[#taken + 1] = { key = key, case = case.id, action = action, on = on }
end

local function sweep_key(self, cat, key, on, taken)
  local db, sql = self.db, self.sql
  local lic = load_license(self, key)
  local case = db:first(sql.open_case, key)
  local window = cat:migration(lic, db:all(sql.installations, key), on)
  if case and (window.state ~= "fraud" or window.since ~= case.since) then
    db:run(sql.close_case, on, case.id)
    log(self, key, on, "case_closed", { case = case.id, why = "the excess ended" })
    case = nil
  end
  if window.state ~= "fraud" then return end
  if not case then
    -- A key disabled for another reason gets no new case.
    if lic.disabled and lic.disabled <= on then return end
    local _, id = db:run(sql.insert_case, key, window.since, on)
    case = { id = id, since = window.since }
    log(self, key, on, "case_opened", { case = id, since = window.since })
  end
  local due = cat:ladder(case, on)
  for _, action in ipairs(due) do take_step(self, key, case, action, on, taken) end
end

local function sweep(self, on)
  on = check_on(on)
  local cat = active_catalogue(self)
  local db, sql = self.db, self.sql
  local candidates, seen = {}, {}
  local grace_from = add_days(on, -self.policy.checkin_grace_days)
  for _, row in ipairs(db:all(sql.excess_keys, on, grace_from)) do
    if not seen[row.key] then seen[row.key] = true; candidates[#candidates + 1] = row.key end
  end
  for _, row in ipairs(db:all(sql.open_case_keys)) do
    if not seen[row.key] then seen[row.key] = true; candidates[#candidates + 1] = row.key end
  end
  sort(candidates)
  local taken = {}
  for _, key in ipairs(candidates) do sweep_key(self, cat, key, on, taken) end
  return taken
end

-- store:sweep(on) -> list of {key=, case=, action=, on=} taken in this sweep
function Store:sweep(on)
  return transaction(self, sweep, on)
end

-- store:on(action, fn): the handler for an outbox action.
function Store:on(action, fn)
  if not ACTIONS[action] then
    bad_argument(1, "on", "email_customer, notify_fraud_team, phone_customer or disable_key expected")
  end
  if type(fn) ~= "function" then bad_argument(2, "on", "function expected") end
  self.handlers[action] = fn
end

local function now_utc()
  return os_date("!%Y-%m-%dT%H:%M:%SZ")
end

-- Marks one outbox row delivered, in its own small transaction.
local function record_delivery(self, row)
  return transaction(self, function()
    self.db:run(self.sql.outbox_done, now_utc(), row.id)
    return true
  end)
end

-- store:deliver() -> delivered, pending, failures.  Calls the handler of
-- every pending row, oldest first, outside any transaction.  A handler that
-- returns true marks its row delivered; anything else (false, an error, no
-- handler) leaves the row pending, untouched, for the next call: at least
-- once, never lost.  failures lists {id=, action=, error=} of this call.
function Store:deliver()
  local delivered, last_id, failures = 0, 0, {}
  while true do
    local rows = guarded(self, function() return self.db:all(self.sql.pending_outbox, last_id) end)
    if not rows or #rows == 0 then break end
    for _, row in ipairs(rows) do
      last_id = row.id
      local handler = self.handlers[row.action]
      if handler then
        local action = { key = row.key, case = row.case_id, action = row.action, on = row.on_day }
        local ok, result = pcall(handler, action)
        if ok and result == true and record_delivery(self, row) then
          delivered = delivered + 1
        else
          failures[#failures + 1] = { id = row.id, action = row.action,
            error = ok and ("the handler returned " .. tostring(result)) or tostring(result) }
        end
      end
    end
  end
  local pending = guarded(self, function() return self.db:value(self.sql.count_pending) end)
  return delivered, pending, failures
end

-- cjson decodes every number as a float; whole numbers come back as the
-- integers they were (Lua 5.4; LuaJIT has one number type).
local tointeger = math.tointeger
local function whole_numbers(t)
  if not tointeger then return t end
  for k, v in pairs(t) do
    if type(v) == "number" then t[k] = tointeger(v) or v
    elseif type(v) == "table" then whole_numbers(v) end
  end
  return t
end

-- store:events(key) -> list of {at=, kind=, detail=} oldest first
function Store:events(key)
  return guarded(self, function()
    key = normalise_key(key)
    local rows = self.db:all(self.sql.events, key)
    if #rows == 0 then load_license(self, key) end
    for _, row in ipairs(rows) do row.detail = whole_numbers(cjson.decode(row.detail)) end
    return rows
  end)
end

-- store:query(sql, ...) -> rows of a read-only SQL statement (for support
-- staff at the REPL).
function Store:query(sql, ...)
  if type(sql) ~= "string" then bad_argument(1, "query", "SQL string expected") end
  return self.db:query(sql, ...)
end

_M.Store = Store
return _M
