-- stores.lua -- fresh stores for the specs: a temporary database with the
-- fixtures catalogue imported, and a dump of every table for comparing a
-- database before and after.
--
-- With LICENSOR_TEST_PG set (spec/support/with-postgres.lua sets it to a
-- throwaway cluster's URL) every store is a PostgreSQL one: each "path"
-- is a fresh schema of that cluster, so the same specs prove the same
-- contract on both backends.  stores.sqlite says which one runs.
local licensor = require "licensor"
local core = require "licensor.core"
local fixtures = require "support.fixtures"
local schema = require "licensor.schema"

local _M = {}

local PG = os.getenv("LICENSOR_TEST_PG")
_M.postgresql = PG ~= nil
_M.sqlite = PG == nil
_M.backend = PG and "PostgreSQL" or "SQLite"

local schemas = 0
local prefix = string.format("s%d_%d", os.time() % 100000, math.random(1, 99999))

-- A URL of a new, empty schema on the test cluster.
local function new_schema()
  schemas = schemas + 1
  local name = prefix .. "_" .. schemas
  local admin = core.open_pg(PG, 0)
  admin:exec("CREATE SCHEMA " .. name)
  admin:close()
  return PG .. "&options=-csearch_path%3D" .. name
end

local function remove_db(path)
  if licensor.is_postgresql(path) then return end
  os.remove(path)
  os.remove(path .. "-wal")
  os.remove(path .. "-shm")
end
_M.remove = remove_db

function _M.path()
  if PG then return new_schema() end
  local path = os.tmpname()
  remove_db(path)
  return path
end

-- A new store (file-backed unless path is ":memory:") with the fixtures.
function _M.new(path, opts)
  if PG and (path == nil or path == ":memory:") then path = new_schema() end
  path = path or _M.path()
  local store = assert(licensor.open(path, opts or { synchronous = "normal" }))
  assert(store:import(fixtures.catalogue_table()))
  return store, path
end

-- A perpetual SmarterTrack Enterprise 5 license bought on `start`.
function _M.issue(store, fields)
  local spec = { product = "smartertrack", edition = "enterprise", level = 5, start = "2018-06-01",
                 owner = "acme" }
  for k, v in pairs(fields or {}) do spec[k] = v end
  return assert(store:issue(spec))
end

-- A perpetual license (these fields changed) on server "old" from
-- 2018-11-01 and "new" from 2018-12-05, both checking in daily through
-- `through`: excess from 2018-12-05, the fraud day 2019-01-04 (R10, R11).
function _M.two_servers(store, through, fields)
  local lic = _M.issue(store, fields)
  store:activate(lic.key, "old", 6855, "2018-11-01")
  store:activate(lic.key, "new", 6911, "2018-12-05")
  for day = core.day("2018-11-02"), core.day(through) do
    store:checkin(lic.key, "old", core.date(day))
    if day >= core.day("2018-12-05") then store:checkin(lic.key, "new", core.date(day)) end
  end
  return lic
end

-- The ladder's steps among a sweep's answer (reminders have no case).
function _M.ladder(taken)
  local list = {}
  for _, t in ipairs(taken) do
    if t.case then list[#list + 1] = t.action end
  end
  return list
end

-- The raw answer of store:issue for a license with these fields changed.
function _M.issue_result(store, fields)
  local spec = { product = "smartertrack", edition = "enterprise", level = 5, start = "2018-06-01" }
  for k, v in pairs(fields or {}) do spec[k] = v end
  return store:issue(spec)
end

-- Every row of every table, in a stable order, values as text: equal dumps
-- mean equal data, on either backend (a SQLite dump and a PostgreSQL dump
-- of the same data are equal).
function _M.dump(store)
  local out = {}
  for _, name in ipairs(schema.tables) do
    out[#out + 1] = name
    local rows = assert(store:query("SELECT * FROM " .. name .. " ORDER BY " .. schema.order[name]))
    for _, row in ipairs(rows) do
      local cells = {}
      for k, v in pairs(row) do cells[#cells + 1] = k .. "=" .. tostring(v) end
      table.sort(cells)
      out[#out + 1] = table.concat(cells, "|")
    end
  end
  out[#out + 1] = "schema=" .. assert(store:schema_version())
  return table.concat(out, "\n")
end

-- The SQLite dump of every schema object too (a rollback must leave no
-- trace, not even in the schema).
function _M.sqlite_dump(store)
  local out = { _M.dump(store) }
  for _, t in ipairs(store:query("SELECT name, sql FROM sqlite_master ORDER BY name")) do
    out[#out + 1] = t.name .. ":" .. tostring(t.sql)
  end
  return table.concat(out, "\n")
end

-- Is the database whole?  SQLite: PRAGMA integrity_check.  PostgreSQL
-- cannot tear a page for a killed client; there the check is that every
-- row's references hold.
function _M.intact(store)
  if _M.sqlite then return store:query("PRAGMA integrity_check")[1].integrity_check == "ok" end
  local orphans = store:query([[SELECT (SELECT count(*) FROM installations i
      WHERE NOT EXISTS (SELECT 1 FROM licenses l WHERE l.key = i.key))
    + (SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM licenses l WHERE l.key = e.key)) AS n]])
  return orphans ~= nil and orphans[1].n == 0
end

-- A raw connection to the store's database (the C object under it).
function _M.raw(path)
  if licensor.is_postgresql(path) then return core.open_pg(path, 0) end
  return core.open(path, false)
end

-- A path or URL quoted for sh.
function _M.quote(path)
  return "'" .. path:gsub("'", "'\\''") .. "'"
end

-- `it` for a spec that holds on SQLite only: pending on PostgreSQL, with
-- the reason in its name.  Called as stores.sqlite_only(it, pending)(name, fn, why).
function _M.sqlite_only(it_fn, pending_fn)
  if _M.sqlite then return it_fn end
  return function(name, _, why) pending_fn(name .. " (SQLite only: " .. why .. ")") end
end

-- The interpreter running this suite, for child processes.
function _M.interpreter()
  return jit and "luajit" or "lua5.4"
end

return _M
