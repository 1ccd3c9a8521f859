-- licensor.store.copy -- everything from one store into another, across
-- backends (SQLite to PostgreSQL and back): catalogue and policy file
-- versions, licenses (their overrides and tags), add-ons, terms,
-- installations, fraud cases, the outbox, the whole event log, the
-- idempotency answers and the portal's rows, with their ids.
--
-- The source is read in one transaction (a consistent snapshot: SQLite's
-- write lock, PostgreSQL's REPEATABLE READ) and the target written in one
-- transaction: a copy happens whole or not at all.  An SQLite target is
-- a new file (created 0600, never through a symlink; an existing name is
-- "exists"); a PostgreSQL target must be empty (never imported into).
local licensor = require "licensor.store"
local common = require "licensor.store.common"
local schema = require "licensor.schema"
local files = require "licensor.files"
local constants = require "licensor.constants"

local ipairs, concat = ipairs, table.concat
local unpack = table.unpack or unpack   -- luacheck: ignore unpack

local refuse = common.refuse

local _M = {}

-- PostgreSQL's identity columns, moved past the copied ids.
local IDENTITIES = { catalogues = "version", terms = "id", fraud_cases = "id", outbox = "id",
                     policies = "version" }

local PAGE = 5000

local function read_all(src)
  local db, rows = src.db, {}
  if src.kind == "postgresql" then db:exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY") end
  for _, t in ipairs(schema.tables) do
    local list, offset = {}, 0
    repeat
      local page = db:query(src.query_ms, "SELECT * FROM " .. t .. " ORDER BY " .. schema.order[t] ..
        " LIMIT " .. PAGE .. " OFFSET " .. offset)
      for _, row in ipairs(page) do list[#list + 1] = row end
      offset = offset + PAGE
    until #page < PAGE
    rows[t] = list
  end
  return rows
end

local function insert_statement(db, t)
  local cols, marks = schema.columns[t], {}
  for i = 1, #cols do marks[i] = "?" end
  return db:prepare("INSERT INTO " .. t .. " (" .. concat(cols, ", ") .. ") VALUES (" ..
    concat(marks, ", ") .. ")")
end

local function write_all(dst, rows)
  local db = dst.db
  local licenses = db:query(dst.query_ms, "SELECT key FROM licenses LIMIT 1")
  if db:value(dst.sql.catalogue_version) ~= nil or #licenses > 0 then
    refuse("exists", dst.path .. " is not empty: copy only into a new store")
  end
  local counts = {}
  for _, t in ipairs(schema.tables) do
    local stmt, cols, values = insert_statement(db, t), schema.columns[t], {}
    for _, row in ipairs(rows[t]) do
      for i, col in ipairs(cols) do values[i] = row[col] end
      db:run(stmt, unpack(values, 1, #cols))
    end
    counts[t] = #rows[t]
    if dst.kind == "postgresql" and IDENTITIES[t] then
      local col = IDENTITIES[t]
      db:exec("SELECT setval(pg_get_serial_sequence('" .. t .. "', '" .. col .. "'), coalesce((SELECT max(" ..
        col .. ") FROM " .. t .. "), 0) + 1, false)")
    end
  end
  return counts
end

-- copy(from, to) -> {table = rows copied}, or nil, message, code.
-- from and to are paths or URLs; `to` is created (SQLite: a new file) or
-- migrated (PostgreSQL) if needed and must hold no data.
function _M.copy(from, to)
  local src, msg, code = licensor.open(from)
  if not src then return nil, msg, code end
  local rows
  rows, msg, code = common.transaction(src, read_all)
  src:close()
  if not rows then return nil, msg, code end
  -- An SQLite target is a new file, made here empty and 0600, never
  -- through a symlink nor over an existing name; a copy that fails
  -- removes it (and SQLite's files beside it).
  local new_file = not licensor.is_postgresql(to) and to ~= "" and to ~= ":memory:" and not to:find("^file:")
  if new_file then
    local made, why, wcode = files.write(to, "", { mode = constants.PRIVATE_MODE })
    if not made then
      if wcode == "exists" then return nil, to .. " exists already: copy only into a new store", "exists" end
      return nil, why, wcode
    end
  end
  local function remove_new()
    if new_file then
      for _, suffix in ipairs({ "", "-journal", "-wal", "-shm" }) do os.remove(to .. suffix) end
    end
  end
  local dst
  dst, msg, code = licensor.open(to)
  if not dst then remove_new(); return nil, msg, code end
  local counts
  counts, msg, code = common.transaction(dst, write_all, rows)
  dst:close()
  if not counts then remove_new(); return nil, msg, code end
  return counts
end

return _M
