-- licensor.ffi -- cat:eligible through LuaJIT's FFI.
--
-- A lua_CFunction call ends a LuaJIT trace; an FFI call is compiled into
-- it.  This module gives LuaJIT (and so OpenResty) an eligible() that reads
-- the license table in Lua, hands plain C values to lsr_ffi_eligible and
-- returns the shared build record.  Whatever it does not accept (odd types,
-- refusals, a closed catalogue) it passes to the classic binding, so every
-- answer, message and code is the binding's own.
local _M = {}

local ok_ffi, ffi = pcall(require, "ffi")
local core = require "licensor.core"

local type, setmetatable, rawget = type, setmetatable, rawget
local classic_eligible = core.catalogue_methods.eligible
local classic_close = core.catalogue_methods.close

local CDEF = [[
typedef struct {
  const char *product;
  const char *edition;
  const char *start;
  const char *ms_expires;
  const char *disabled;
  const char *lease_ended;
  const char *on;
  double level;
  double trial_days;
  double version_lock;
  int32_t product_len;
  int32_t edition_len;
  int32_t start_len;
  int32_t ms_expires_len;
  int32_t disabled_len;
  int32_t lease_ended_len;
  int32_t on_len;
  int32_t kind;
} lsr_ffi_query;
int lsr_ffi_eligible(const void *cat, const lsr_ffi_query *q);
]]

-- The declaration, for the spec that checks it against the C layout.
_M.CDEF = CDEF

local KINDS = { perpetual = 0, lease = 1, trial = 2 }

-- Loads the core library a second time through the FFI (same file, same
-- mapping); nil when this VM has no FFI or the library cannot be found.
local function load_library()
  if not ok_ffi or not jit then return nil end
  local path = package.searchpath and package.searchpath("licensor.core", package.cpath)
  if not path then return nil end
  local ok, lib = pcall(function()
    ffi.cdef(CDEF)
    return ffi.load(path)
  end)
  return ok and lib or nil
end

-- The binding's own eligible, which answers whatever the fast path passes on.
_M.classic_eligible = classic_eligible

local lib = load_library()
_M.enabled = lib ~= nil
if not lib then return _M end

-- Catalogue -> { pointer, records }, weak so a collected catalogue leaves.
local compiled = setmetatable({}, { __mode = "k" })
local query = ffi.new("lsr_ffi_query")
local NULL = nil

local function compiled_of(cat)
  local entry = compiled[cat]
  if entry == nil then
    local ok, pointer, records = pcall(core._internals, cat)
    if not ok or pointer == nil then return nil end
    entry = { ffi.cast("const void *", pointer), records }
    compiled[cat] = entry
  end
  return entry
end

-- A date string or nil into (pointer, length); false for anything else.
local function set_date(field, len_field, value)
  if value == nil then
    query[field] = NULL
    return true
  end
  if type(value) ~= "string" then return false end
  query[field] = value
  query[len_field] = #value
  return true
end

-- Fills the shared query from the license; false sends the call to the
-- classic binding.
local function fill(lic, on)
  local product, edition, level, kind = lic.product, lic.edition, lic.level, lic.kind
  if type(product) ~= "string" then return false end
  kind = kind == nil and 0 or KINDS[kind]
  if kind == nil then return false end
  query.kind = kind
  query.product = product
  query.product_len = #product
  if edition == nil then
    query.edition = NULL
  elseif type(edition) == "string" then
    query.edition = edition
    query.edition_len = #edition
  else
    return false
  end
  if level == nil then
    query.level = 0
  elseif level == "unlimited" then
    query.level = -1
  elseif type(level) == "number" and level >= 1 then
    query.level = level
  else
    return false
  end
  local version_lock = lic.version_lock
  if version_lock == nil then
    query.version_lock = 0
  elseif type(version_lock) == "number" and version_lock >= 1 then
    query.version_lock = version_lock
  else
    return false
  end
  query.trial_days = 0
  if kind == 2 then
    local days = lic.trial_days
    if days ~= nil then
      if type(days) ~= "number" or days < 1 then return false end
      query.trial_days = days
    end
  end
  return set_date("start", "start_len", lic.start)
     and set_date("ms_expires", "ms_expires_len", lic.ms_expires)
     and set_date("disabled", "disabled_len", lic.disabled)
     and set_date("lease_ended", "lease_ended_len", kind == 1 and lic.lease_ended or nil)
     and set_date("on", "on_len", on)
end

-- A license with policy values of its own (lic.policy, read raw as the
-- binding reads it) goes to the classic binding, which reads them; the
-- query here carries only the catalogue's.
function _M.eligible(cat, lic, on)
  local entry = compiled[cat] or compiled_of(cat)
  if entry ~= nil and type(lic) == "table" and rawget(lic, "policy") == nil and fill(lic, on) then
    local index = lib.lsr_ffi_eligible(entry[1], query)
    if index >= 0 then return entry[2][index + 1] end
  end
  return classic_eligible(cat, lic, on)
end

-- Closing frees the compiled catalogue: forget its pointer first.
function _M.close(cat)
  compiled[cat] = nil
  return classic_close(cat)
end

return _M
