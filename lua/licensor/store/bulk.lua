-- licensor.store.bulk -- licenses in and out in bulk: store:export (every
-- license with its add-ons and installations, as rows, CSV or JSON lines)
-- and store:import_licenses (existing customers from the same CSV,
-- installations restored: all rows or none, and every bad row named as
-- file:line: column: message).  Export, import, export gives the same
-- bytes.  CSV's quoting and its formula escape are licensor.csv's; the
-- columns, the cells' formats and their checks are this file's
-- (doc/rules.md section 6, "Exports and imports").  Not a backup: the
-- event log, terms, cases and the outbox stay behind (store/copy.lua).
local core = require "licensor.core"
local csv = require "licensor.csv"
local failure = require "licensor.failure"
local address = require "licensor.mail.address"
local common = require "licensor.store.common"

local type, ipairs, pairs, tostring, tonumber = type, ipairs, pairs, tostring, tonumber
local next, pcall = next, pcall
local concat, sort, format = table.concat, table.sort, string.format
local max, floor = math.max, math.floor

local Store = common.Store
local refuse, bad_argument = common.refuse, common.bad_argument

local _M = {}

local cjson = common.cjson

local function blank(v)
  return v == nil or v == ""
end

-- The columns of an export, in order; an import reads the same ones and
-- refuses any other.  New columns go at the end, so that scripts that
-- read them by position keep working.
_M.COLUMNS = { "key", "owner", "product", "edition", "level", "kind", "start", "ms_expires",
               "ms_start", "lease_ended", "trial_days", "version_lock", "failover", "disabled", "addons",
               "installations", "email", "policy", "tags" }

------------------------------------------------------------------------
-- Installations: one self-describing cell
------------------------------------------------------------------------

-- The fields of an installation in the `installations` cell, in the order
-- they are written (the installations table's columns but key and seq).  The cell is a JSON array of
-- objects, one per installation in activation order, each field by name
-- (absent when the store holds none), strings escaped as JSON escapes them:
-- any server name, quotes, `@`, `;`, line breaks, control characters and
-- non-ASCII included, reads back as the bytes it was.
_M.INSTALLATION_FIELDS = { "server", "build", "first_seen", "last_seen", "deactivated", "fingerprint",
                           "held_until", "signature", "issued", "freed", "drifts" }
local INTEGER = { build = true, issued = true }
local DATE = { first_seen = true, last_seen = true, deactivated = true, held_until = true }
local REQUIRED = { server = true, build = true, first_seen = true, last_seen = true }
local FREED = { moved = true, returned = true, forced = true }

local function json_string(s)
  return cjson.encode(tostring(s))
end

local function json_integer(n)
  return format("%d", tonumber(n))
end

-- installations_json(list) -> the JSON array of the list (fields in the
-- order of INSTALLATION_FIELDS), "[]" for none.
local function installations_json(list)
  local items = {}
  for i, inst in ipairs(list or {}) do
    local parts = {}
    for _, f in ipairs(_M.INSTALLATION_FIELDS) do
      local v = inst[f]
      if v ~= nil then
        parts[#parts + 1] = json_string(f) .. ":" .. (INTEGER[f] and json_integer(v) or json_string(v))
      end
    end
    items[i] = "{" .. concat(parts, ",") .. "}"
  end
  return "[" .. concat(items, ",") .. "]"
end
_M.installations_json = installations_json

-- installations_cell(list) -> the `installations` cell: the JSON array,
-- or nothing for no installations.
function _M.installations_cell(list)
  if not list or #list == 0 then return "" end
  return installations_json(list)
end

-- One installation read from the cell, or nil and why not.
local function read_installation(t)
  if type(t) ~= "table" or t[1] ~= nil then return nil, "an object {\"server\":...} expected" end
  local known = {}
  for _, f in ipairs(_M.INSTALLATION_FIELDS) do known[f] = true end
  local inst = {}
  for f, v in pairs(t) do
    if type(f) ~= "string" or not known[f] then
      return nil, "no field '" .. tostring(f) .. "' (fields: " .. concat(_M.INSTALLATION_FIELDS, ", ") .. ")"
    end
    if v ~= cjson.null then inst[f] = v end
  end
  for _, f in ipairs(_M.INSTALLATION_FIELDS) do
    local v = inst[f]
    if v == nil then
      if REQUIRED[f] then return nil, f .. ": required" end
    elseif INTEGER[f] then
      if type(v) ~= "number" or v ~= v or v % 1 ~= 0 or v < 0 or v > 2 ^ 53 - 1 then
        return nil, f .. ": a whole number expected"
      end
    elseif type(v) ~= "string" then
      return nil, f .. ": a string expected"
    elseif DATE[f] and not core.day(v) then
      return nil, f .. ": '" .. v .. "' is not a date YYYY-MM-DD"
    end
  end
  local ok, msg = core.check_name(inst.server, "server")
  if not ok then return nil, msg end
  if inst.last_seen < inst.first_seen then return nil, "last_seen: before first_seen" end
  if inst.freed and not FREED[inst.freed] then return nil, "freed: moved, returned or forced expected" end
  if (inst.freed == "returned" or inst.freed == "forced") and inst.held_until then
    return nil, "held_until: a slot " .. inst.freed .. " is held by nothing"
  end
  if inst.drifts and inst.drifts ~= "" then
    for day in (inst.drifts .. ","):gmatch("([^,]*),") do
      if not core.day(day) then return nil, "drifts: days YYYY-MM-DD,... expected" end
    end
  end
  if inst.fingerprint == "" then return nil, "fingerprint: empty" end
  return inst
end

-- read_installations(cell) -> list of installations, or nil, message
-- (the installation's place in the list, its field, and why).
function _M.read_installations(text)
  if blank(text) then return {} end
  local ok, list = pcall(cjson.decode, text)
  if not ok then return nil, "not JSON (" .. tostring(list):gsub("^.-: ", "") .. ")" end
  if type(list) ~= "table" or next(list) ~= nil and list[1] == nil then
    return nil, "a JSON array [{\"server\":...},...] expected"
  end
  local out = {}
  for i = 1, #list do
    local inst, msg = read_installation(list[i])
    if not inst then return nil, i .. ": " .. msg end
    out[i] = inst
  end
  for k in pairs(list) do
    if type(k) ~= "number" or k % 1 ~= 0 or k < 1 or k > #list then
      return nil, "a JSON array [{\"server\":...},...] expected"
    end
  end
  return out
end

------------------------------------------------------------------------
-- Export
------------------------------------------------------------------------

local EXPORT_LICENSES = [[SELECT key, owner, product, edition, level, kind, start, ms_expires, ms_start,
  lease_ended, trial_days, version_lock, failover, disabled, email, policy, tags FROM licenses ORDER BY key]]
local EXPORT_ADDONS = "SELECT key, addon, paid_through FROM addons ORDER BY key, addon"
local EXPORT_INSTALLATIONS = "SELECT key, " .. concat(_M.INSTALLATION_FIELDS, ", ") ..
  " FROM installations ORDER BY key, seq"

local function export(self)
  local db = self.db
  local rows, by_key = db:query(self.query_ms, EXPORT_LICENSES), {}
  for _, r in ipairs(rows) do
    r.failover = r.failover == 1 or r.failover == true
    by_key[r.key] = r
  end
  for _, a in ipairs(db:query(self.query_ms, EXPORT_ADDONS)) do
    local r = by_key[a.key]
    r.addons = (r.addons and (r.addons .. ";") or "") .. a.addon .. "=" .. a.paid_through
  end
  for _, i in ipairs(db:query(self.query_ms, EXPORT_INSTALLATIONS)) do
    local r = by_key[i.key]
    i.key = nil
    for f in pairs(INTEGER) do i[f] = i[f] and tonumber(i[f]) end
    r.installations = r.installations or {}
    r.installations[#r.installations + 1] = i
  end
  return rows
end

-- store:export() -> every license as a row (the columns of COLUMNS;
-- add-ons "name=paid-through;...", installations a list of
-- {server=, build=, first_seen=, ...} (INSTALLATION_FIELDS) or nil;
-- policy the license's own override as JSON, keys sorted; tags the words,
-- space-separated and sorted).
function Store:export()
  return common.guarded(self, export)
end

-- The CSV cell of column c of row r.
local function csv_value(r, c)
  local v = r[c]
  if c == "failover" then return v and "true" or "false" end
  if c == "installations" then return _M.installations_cell(v) end
  return v
end

-- The JSON value of column c of row r, or nil when the row has none: the
-- same text as the CSV cell, typed (level, trial_days and version_lock
-- numbers, failover a boolean, installations the array itself).
local function json_value(r, c)
  local v = r[c]
  if c == "failover" then return v and "true" or "false" end
  if c == "installations" then return installations_json(v) end
  if v == nil then return nil end
  if (c == "level" or c == "trial_days" or c == "version_lock") and tonumber(v) then
    return json_integer(v)
  end
  return json_string(v)
end

-- store:export_text("csv"|"jsonl") -> the export as text.  Both write the
-- columns in the order of COLUMNS (JSON lines leave out those a license
-- has no value for), so that the same store always gives the same bytes.
function Store:export_text(format_name)
  local rows, msg, code = self:export()
  if not rows then return nil, msg, code end
  local lines, n = {}, #_M.COLUMNS
  if format_name == "jsonl" then
    for i, r in ipairs(rows) do
      local parts = {}
      for _, c in ipairs(_M.COLUMNS) do
        local v = json_value(r, c)
        if v ~= nil then parts[#parts + 1] = json_string(c) .. ":" .. v end
      end
      lines[i] = "{" .. concat(parts, ",") .. "}"
    end
  else
    lines[1] = csv.line(_M.COLUMNS, n)
    for _, r in ipairs(rows) do
      local values = {}
      for i, c in ipairs(_M.COLUMNS) do values[i] = csv_value(r, c) end
      lines[#lines + 1] = csv.line(values, n)
    end
  end
  return concat(lines, "\n") .. "\n"
end

------------------------------------------------------------------------
-- Import
------------------------------------------------------------------------

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

-- The `policy` cell: the license's own override as JSON (store:export's
-- text), checked with the catalogue's bounds; nil for none, or nil and
-- why not.
local function read_policy(cat, text)
  if blank(text) then return nil end
  local ok, t = pcall(cjson.decode, text)
  if not ok or type(t) ~= "table" or t[1] ~= nil then
    return nil, "policy: a JSON object {\"migration_days\":60,...} expected"
  end
  t = common.decode_detail(text)
  local pv, msg = cat:resolve_policy(t)
  if not pv then return nil, "policy: " .. tostring(msg) end
  return common.override_text(t)
end

-- The `tags` cell: words separated by blanks, each checked; the set or
-- nil for none, or nil and why not.
local function read_tags(text)
  if blank(text) then return nil end
  local set, n = {}, 0
  for word in tostring(text):gmatch("%S+") do
    local ok, why = common.check_tag(word)
    if not ok then return nil, "tags: " .. why end
    if not set[word] then set[word], n = true, n + 1 end
  end
  if n > common.MAX_TAGS then return nil, "tags: at most " .. common.MAX_TAGS .. " on a license" end
  return set
end

-- One row into a license table (its add-ons and installations too), or the row's errors.
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
  local installs, why = _M.read_installations(row.installations)
  if not installs then errors[#errors + 1] = "installations: " .. why end
  local policy_why, tags_why
  lic.policy_text, policy_why = read_policy(cat, row.policy)
  if policy_why then errors[#errors + 1] = policy_why end
  lic.tags, tags_why = read_tags(row.tags)
  if tags_why then errors[#errors + 1] = tags_why end
  lic.installations = installs or {}
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
    lic.email, lic.policy_text, common.tags_text(lic.tags))
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
  for seq, inst in ipairs(lic.installations) do
    db:run(sql.insert_installation, key, seq, inst.server, inst.build, inst.first_seen, inst.last_seen,
      inst.fingerprint)
    if inst.drifts then db:run(sql.set_fingerprint, key, seq, inst.fingerprint, inst.drifts) end
    if inst.held_until or inst.signature or inst.issued then
      db:run(sql.hold_installation, key, seq, inst.held_until, inst.signature, inst.issued)
    end
    if inst.freed == "moved" then db:run(sql.move_installation, key, seq, inst.held_until, inst.deactivated)
    elseif inst.freed then db:run(sql.free_installation, key, seq, inst.freed, inst.deactivated)
    elseif inst.deactivated then db:run(sql.deactivate_installation, key, seq, inst.deactivated) end
  end
  local installed = #lic.installations
  common.log(self, key, today, "import", { product = lic.product, start = lic.start,
                                          ms_expires = lic.ms_expires, owner = lic.owner,
                                          installations = installed > 0 and installed or nil })
  return key
end

local distance = require("licensor.spelling").distance

-- The header's columns, name -> position; an empty, unknown, misspelt or
-- doubled column refuses the file (as name:1: ...), and so does one of
-- the columns every row needs missing.
local function read_header(header, name)
  local known, index = {}, {}
  for _, c in ipairs(_M.COLUMNS) do known[c] = true end
  local function bad(msg) refuse("invalid_request", name .. ":1: " .. msg) end
  for i, column in ipairs(header) do
    if column == "" then bad("column " .. i .. " has no name") end
    if not known[column] then
      local best, best_d
      for _, c in ipairs(_M.COLUMNS) do
        local d = distance(column:lower(), c)
        if not best_d or d < best_d then best, best_d = c, d end
      end
      local hint = best_d <= max(2, floor(#best / 3)) and (" (did you mean " .. best .. "?)") or ""
      bad("unknown column '" .. column .. "'" .. hint .. "; the columns are " .. concat(_M.COLUMNS, ","))
    end
    if index[column] then bad("column " .. column .. " appears twice") end
    index[column] = i
  end
  for _, required in ipairs({ "product", "edition", "level", "start" }) do
    if not index[required] then bad("the header has no column " .. required) end
  end
  return index
end

local function import_licenses(self, text, name)
  local two = text:sub(1, 2)
  if two == "\255\254" or two == "\254\255" then
    refuse("invalid_request", name .. ":1: UTF-16 text; save it as CSV UTF-8")
  end
  -- A NUL byte is no text a spreadsheet writes (and /dev/zero is not a
  -- file of customers): refused before parsing, at its line.
  local nul = text:find("%z")
  if nul then
    local _, lines = text:sub(1, nul):gsub("\n", "")
    refuse("invalid_request", name .. ":" .. (lines + 1) .. ": a NUL byte: not a CSV text file")
  end
  local rows, err = csv.parse(text)
  if not rows then refuse("invalid_request", name .. ":" .. err:gsub("^line ", "")) end
  local header = rows[1]
  if not header then refuse("invalid_request", name .. ": empty file") end
  local index = read_header(header, name)
  local cat, version = common.active_catalogue(self)
  local today = core.today()
  local licenses, problems, seen = {}, {}, {}
  for r = 2, #rows do
    local row, named = rows[r], {}
    local lic, errors
    if #row ~= #header then
      errors = { #row .. " cells where the header has " .. #header .. " columns" }
    else
      for column, i in pairs(index) do named[column] = row[i] end
      lic, errors = read_row(cat, named, seen, self)
    end
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
