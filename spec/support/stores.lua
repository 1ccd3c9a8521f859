-- stores.lua -- fresh stores for the specs: a temporary database with the
-- fixtures catalogue imported, and a dump of every table for comparing a
-- database before and after.
local licensor = require "licensor"
local fixtures = require "support.fixtures"

local _M = {}

local function remove_db(path)
  os.remove(path)
  os.remove(path .. "-wal")
  os.remove(path .. "-shm")
end
_M.remove = remove_db

function _M.path()
  local path = os.tmpname()
  remove_db(path)
  return path
end

-- A new store (file-backed unless path is ":memory:") with the fixtures.
function _M.new(path, opts)
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

-- The raw answer of store:issue for a license with these fields changed.
function _M.issue_result(store, fields)
  local spec = { product = "smartertrack", edition = "enterprise", level = 5, start = "2018-06-01" }
  for k, v in pairs(fields or {}) do spec[k] = v end
  return store:issue(spec)
end

-- Every row of every table, in a stable order: equal dumps mean equal data.
function _M.dump(store)
  local out = {}
  local tables = store:query("SELECT name, sql FROM sqlite_master ORDER BY name")
  for _, t in ipairs(tables) do
    out[#out + 1] = t.name .. ":" .. tostring(t.sql)
    if t.sql and t.sql:match("^CREATE TABLE") then
      for _, row in ipairs(store:query("SELECT * FROM " .. t.name .. " ORDER BY 1, 2")) do
        local cells = {}
        for k, v in pairs(row) do cells[#cells + 1] = k .. "=" .. tostring(v) end
        table.sort(cells)
        out[#out + 1] = table.concat(cells, "|")
      end
    end
  end
  out[#out + 1] = "user_version=" .. store:query("PRAGMA user_version")[1].user_version
  return table.concat(out, "\n")
end

-- The interpreter running this suite, for child processes.
function _M.interpreter()
  return jit and "luajit" or "lua5.4"
end

return _M
