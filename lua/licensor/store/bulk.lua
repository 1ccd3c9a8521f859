-- licensor.store.bulk -- licenses in and out in bulk: store:export (every
-- license with its add-ons and installations, as rows) and
-- store:import_licenses (existing customers from the same CSV: all rows or
-- none, and every bad row named as file:line: column: message).
local core = require "licensor.core"
local csv = require "licensor.csv"
local failure = require "licensor.failure"
local address = require "licensor.mail.address"
local common = require "licensor.store.common"

local type, ipairs, pairs, tostring, tonumber = type, ipairs, pairs, tostring, tonumber
local concat, sort = table.concat, table.sort

local Store = common.Store
local refuse, bad_argument = common.refuse, common.bad_argument

local _M = {}

-- The columns of an export, in order; an import reads the same ones.  New
-- columns go at the end, so that scripts that read them by position keep
-- working.
_M.COLUMNS = { "key", "owner", "product", "edition", "level", "kind", "start", "ms_expires",
               "ms_start", "lease_ended", "trial_days", "version_lock", "failover", "disabled", "addons",
               "installations", "email" }

------------------------------------------------------------------------
-- Export
------------------------------------------------------------------------

local EXPORT_LICENSES = [[SELECT key, owner, product, edition, level, kind, start, ms_expires, ms_start,
  lease_ended, trial_days, version_lock, failover, disabled, email FROM licenses ORDER BY key]]
local EXPORT_ADDONS = "SELECT key, addon, paid_through FROM addons ORDER BY key, addon"
local EXPORT_INSTALLATIONS = [[SELECT key, server, build, first_seen, last_seen, deactivated
  FROM installations ORDER BY key, seq]]

local function export(self)
  local db = self.db
  local rows, by_key = db:query(self.query_ms, EXPORT_LICENSES), {}
  for _, r in ipairs(rows) do
    r.failover = r.failover == 1
    by_key[r.key] = r
  end
  for _, a in ipairs(db:query(self.query_ms, EXPORT_ADDONS)) do
    local r = by_key[a.key]
    r.addons = (r.addons and (r.addons .. ";") or "") .. a.addon .. "=" .. a.paid_through
  end
  for _, i in ipairs(db:query(self.query_ms, EXPORT_INSTALLATIONS)) do
    local r = by_key[i.key]
    r.installations = (r.installations and (r.installations .. ";") or "") ..
      concat({ i.server, i.build, i.first_seen, i.last_seen, i.deactivated or "" }, "@")
  end
  return rows
end

-- store:export() -> every license as a row (the columns of COLUMNS;
-- add-ons "name=paid-through;...", installations
-- "server@build@first@last@deactivated;...").
function Store:export()
  return common.guarded(self, export)
end

-- store:export_text("csv"|"jsonl") -> the export as text.
function Store:export_text(format)
  local rows, msg, code = self:export()
  if not rows then return nil, msg, code end
  local lines = {}
  if format == "jsonl" then
    for i, r in ipairs(rows) do lines[i] = common.cjson.encode(r) end
  else
    lines[1] = concat(_M.COLUMNS, ",")
    for _, r in ipairs(rows) do
      local values = {}
      for i, c in ipairs(_M.COLUMNS) do
        local v = r[c]
        if c == "failover" then v = v and "true" or "false" end
        values[i] = v
      end
      lines[#lines + 1] = csv.line(values, #_M.COLUMNS)
    end
  end
  return concat(lines, "\n") .. "\n"
end

------------------------------------------------------------------------
-- Import
------------------------------------------------------------------------

local function blank(v)
  return v == nil or v == ""
end

local function date_or_nil(v, column, errors)
  if blank(v) then return nil end
  if not core.day(v) then errors[#errors + 1] = column .. ": '" .. v .. "' is not a date YYYY-MM-DD" end
  return v
end

local function count_or_nil(v, column, errors)
  if blank(v) then return nil end
  local n = tonumber(v)
  if not n or n < 1 or n % 1 ~= 0 then errors[#errors + 1] = column .. ": a whole number expected" end
  return n
end

-- One row into a license table (and its add-ons), or the row's errors.
local function read_row(cat, row, keys_seen, store)
  local errors, lic = {}, {}
  local key = row.key
  if not blank(key) then
    local canonical, msg = core.normalise_key(key)
    if not canonical then errors[#errors + 1] = "key: " .. msg
    elseif keys_seen[canonical] then errors[#errors + 1] = "key: appears twice in the file"
    elseif store.db:first(store.sql.license, canonical) then errors[#errors + 1] = "key: already in the store"
    else keys_seen[canonical] = true end
    lic.key = canonical
  end
  lic.product, lic.edition, lic.kind = row.product, row.edition, blank(row.kind) and "perpetual" or row.kind
  lic.level = row.level == "unlimited" and "unlimited" or tonumber(row.level)
  if lic.level == nil then errors[#errors + 1] = "level: a whole number or unlimited expected" end
  lic.start = date_or_nil(row.start, "start", errors)
  if not lic.start then errors[#errors + 1] = "start: required" end
  lic.ms_expires = date_or_nil(row.ms_expires, "ms_expires", errors)
  lic.ms_start = date_or_nil(row.ms_start, "ms_start", errors)
  lic.lease_ended = date_or_nil(row.lease_ended, "lease_ended", errors)
  lic.disabled = date_or_nil(row.disabled, "disabled", errors)
  lic.trial_days = count_or_nil(row.trial_days, "trial_days", errors)
  lic.version_lock = count_or_nil(row.version_lock, "version_lock", errors)
  lic.failover = row.failover == "true"
  if not blank(row.failover) and row.failover ~= "true" and row.failover ~= "false" then
    errors[#errors + 1] = "failover: true or false expected"
  end
  if not blank(row.owner) then
    local ok, msg = core.check_name(row.owner, "owner")
    if not ok then errors[#errors + 1] = "owner: " .. msg end
    lic.owner = row.owner
  end
  if not blank(row.email) then
    local ok, msg = address.check(row.email)
    if not ok then errors[#errors + 1] = msg end
    lic.email = row.email
  end
  lic.addons = {}
  for item in tostring(row.addons or ""):gmatch("[^;]+") do
    local name, through = item:match("^([^=]+)=(.+)$")
    if not name or not core.day(through) then
      errors[#errors + 1] = "addons: '" .. item .. "' is not name=YYYY-MM-DD"
    else
      lic.addons[name] = through
    end
  end
  if #errors == 0 then
    local status, msg = cat:status(lic, lic.start)
    if not status then errors[#errors + 1] = "license: " .. msg end
  end
  if #errors == 0 then
    local _, err = failure.call(common.check_servable, cat, lic)
    if err then errors[#errors + 1] = "license: " .. err end
    local owned = {}
    for _, a in ipairs((cat:product(lic.product) or { addons = {} }).addons) do owned[a] = true end
    for name in pairs(lic.addons) do
      if not owned[name] then errors[#errors + 1] = "addons: product has no add-on '" .. name .. "'" end
    end
  end
  return lic, errors
end

local function write_license(self, lic, version, today)
  local db, sql = self.db, self.sql
  local key = lic.key or core.new_key()
  db:run(sql.insert_license, key, lic.product, lic.edition, lic.level, lic.kind, lic.start, lic.ms_expires,
    lic.ms_start, lic.lease_ended, lic.trial_days, lic.version_lock, lic.failover, lic.owner, version,
    lic.email)
  if lic.disabled then db:run(sql.set_disabled, lic.disabled, "imported", key) end
  if lic.ms_expires then
    db:run(sql.insert_term, key, "ms", lic.ms_start or lic.start, lic.ms_expires, today)
  end
  local names = {}
  for name in pairs(lic.addons) do names[#names + 1] = name end
  sort(names)
  for _, name in ipairs(names) do
    db:run(sql.set_addon, key, name, lic.addons[name])
    db:run(sql.insert_term, key, name, lic.start, lic.addons[name], today)
  end
  common.log(self, key, today, "import", { product = lic.product, start = lic.start,
                                          ms_expires = lic.ms_expires, owner = lic.owner })
  return key
end

local function import_licenses(self, text, name)
  local rows, err = csv.parse(text)
  if not rows then refuse("invalid_request", name .. ":" .. err:gsub("^line ", "")) end
  local header = rows[1]
  if not header then refuse("invalid_request", name .. ": empty file") end
  local index = {}
  for i, column in ipairs(header) do index[column] = i end
  for _, required in ipairs({ "product", "edition", "level", "start" }) do
    if not index[required] then
      refuse("invalid_request", name .. ":1: the header has no column " .. required)
    end
  end
  local cat, version = common.active_catalogue(self)
  local today = core.today()
  local licenses, problems, seen = {}, {}, {}
  for r = 2, #rows do
    local row, named = rows[r], {}
    for column, i in pairs(index) do named[column] = row[i] end
    local lic, errors = read_row(cat, named, seen, self)
    for _, e in ipairs(errors) do
      if #problems < 1000 then problems[#problems + 1] = name .. ":" .. row.line .. ": " .. e end
    end
    licenses[#licenses + 1] = lic
  end
  if #problems > 0 then refuse("invalid_request", concat(problems, "\n")) end
  local keys = {}
  for i, lic in ipairs(licenses) do keys[i] = write_license(self, lic, version, today) end
  return keys
end

-- store:import_licenses(text, name) -> the keys written, in the file's
-- order: every row or none.  A file with bad rows is refused with
-- "name:line: column: message" for each of them.
function Store:import_licenses(text, name)
  if type(text) ~= "string" then bad_argument(1, "import_licenses", "CSV text expected") end
  return common.transaction(self, import_licenses, text, name or "licenses")
end

return _M
