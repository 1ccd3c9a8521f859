-- licensor -- the public module: the C core plus what is better said in Lua.
local core = require "licensor.core"
local fast = require "licensor.ffi"
local loader = require "licensor.loader"

local pairs, type, error = pairs, type, error
local package = package

local _M = {}
-- Everything of the core but its internals: the process helpers, the
-- failure metatable, signing (the store's), the catalogue sandbox and the
-- underscored FFI hooks.
local INTERNAL = { process = true, Failure = true, new_signing_key = true, signing_key_public = true,
                   sign = true, write_file = true, run_catalogue = true }
for name, fn in pairs(core) do
  if name:sub(1, 1) ~= "_" and not INTERNAL[name] then _M[name] = fn end
end

-- Under LuaJIT cat:eligible and cat:close go through the FFI path.
if fast.enabled then
  core.catalogue_methods.eligible = fast.eligible
  core.catalogue_methods.close = fast.close
end
_M.ffi = fast.enabled

-- cat:explain(lic, opts): the chain of rules behind a decision
-- (licensor.explain, loaded on first use).
core.catalogue_methods.explain = function(...) return require("licensor.explain").explain(...) end

-- licensor.load_catalogue(path) -> catalogue, table | nil, "file:line: msg", code
_M.load_catalogue = loader.load
-- licensor.read_catalogue(path) -> table (unvalidated) | nil, msg, code
_M.read_catalogue = loader.read

-- licensor.catalogue_path(name) -> the path of a bundled catalogue file
-- (lua/licensor/catalogues/NAME.lua), found on package.path.
function _M.catalogue_path(name)
  if type(name) ~= "string" then error("bad argument #1 to 'catalogue_path' (name expected)", 2) end
  local path, err = package.searchpath("licensor.catalogues." .. name, package.path)
  if not path then return nil, err, "not_found" end
  return path
end

-- licensor.open(path_or_url, {synchronous="full"|"normal", busy_ms=,
-- query_ms=, stale_ms=}) -> store: an SQLite file, or PostgreSQL for a
-- postgresql:// URL or libpq keyword=value string.  The store (and its
-- lua-cjson) loads on first use, so the engine alone needs nothing but
-- the C module.
function _M.open(...)
  return require("licensor.store").open(...)
end

-- licensor.is_postgresql(text) -> does licensor.open take it for PostgreSQL?
function _M.is_postgresql(text)
  return require("licensor.store").is_postgresql(text)
end

return _M
