-- store.lua -- `make bench`, the store part: activations per second (each
-- its own transaction) with synchronous FULL and NORMAL, the same
-- activation in plain Lua over LuaSQL (Debian's lua-sql-sqlite3) in the
-- same run, store:sweep over 100,000 licenses and 300,000 installations,
-- and reading a license (store:get + cat:eligible).
local licensor = require "licensor"
local core = require "licensor.core"
local plain = require "bench.plain_eligible"
local socket = require "socket"

local now = socket.gettime
local format = string.format
local ACTIVATIONS = tonumber(os.getenv("BENCH_ACTIVATIONS")) or 20000
local SWEEP_LICENSES = tonumber(os.getenv("BENCH_SWEEP_LICENSES")) or 100000
local DAY = "2026-01-10"
local BUILD = 9483   -- a SmarterMail build released before DAY

local function fresh(path)
  for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
  return path
end

local function tmp(name)
  return fresh((os.getenv("TMPDIR") or "/tmp") .. "/licensor-bench-" .. name .. ".db")
end

local function issue_many(store, n)
  local keys = {}
  for i = 1, n do
    keys[i] = assert(store:issue{ product = "smartermail", edition = "enterprise", level = 250,
                                  start = "2025-06-01" }).key
  end
  return keys
end

-- Activations of new servers, spread over the keys so none is refused.
local function licensor_activations(sync)
  local path = tmp("act-" .. sync)
  local store = assert(licensor.open(path, { synchronous = sync }))
  store:import(licensor.catalogue_path("smartertools"))
  local keys = issue_many(store, ACTIVATIONS)
  local t0 = now()
  for i = 1, ACTIVATIONS do
    local v = store:activate(keys[i], "server-" .. i, BUILD, DAY)
    if not v.ok then error("refused: " .. tostring(v.code)) end
  end
  local rate = ACTIVATIONS / (now() - t0)
  store:close()
  fresh(path)
  return rate
end

-- The same activation written the plain way over LuaSQL: SQL built as
-- strings, the rule in plain Lua, one transaction each.
local function luasql_activations(sync)
  local driver = require "luasql.sqlite3"
  local path = tmp("luasql-" .. sync)
  -- Same schema and licenses, made by licensor, then closed.
  local store = assert(licensor.open(path, { synchronous = sync }))
  store:import(licensor.catalogue_path("smartertools"))
  local keys = issue_many(store, ACTIVATIONS)
  local catalogue_table = assert(licensor.read_catalogue(licensor.catalogue_path("smartertools")))
  store:close()
  local model = plain.compile(catalogue_table)
  local env = driver.sqlite3()
  local con = assert(env:connect(path))
  con:execute("PRAGMA journal_mode = WAL")
  con:execute("PRAGMA synchronous = " .. (sync == "full" and "FULL" or "NORMAL"))
  con:execute("PRAGMA foreign_keys = ON")
  con:setautocommit(true)
  local function quote(s) return "'" .. tostring(s):gsub("'", "''") .. "'" end
  local function first_row(sql)
    local cur = assert(con:execute(sql))
    local row = cur:fetch({}, "a")
    cur:close()
    return row
  end
  local t0 = now()
  for i = 1, ACTIVATIONS do
    local key, server = keys[i], "server-" .. i
    assert(con:execute("BEGIN IMMEDIATE"))
    local lic = first_row("SELECT * FROM licenses WHERE key = " .. quote(key))
    lic.level = tonumber(lic.level)
    local build = plain.eligible(model, lic, DAY)
    if not build or build.number < BUILD then error("not eligible") end
    local active = first_row("SELECT count(*) AS n FROM installations WHERE key = " .. quote(key) ..
      " AND deactivated IS NULL AND last_seen >= " .. quote(core.date(core.day(DAY) - 7)))
    if tonumber(active.n) >= 1 then error("refused") end
    local seq = first_row("SELECT coalesce(max(seq), 0) + 1 AS n FROM installations WHERE key = " .. quote(key))
    assert(con:execute(format("INSERT INTO installations (key, seq, server, build, first_seen, last_seen) " ..
      "VALUES (%s, %d, %s, %d, %s, %s)", quote(key), seq.n, quote(server), BUILD, quote(DAY), quote(DAY))))
    local event = first_row("SELECT coalesce(max(seq), 0) + 1 AS n FROM events WHERE key = " .. quote(key))
    assert(con:execute(format("INSERT INTO events (key, seq, at, kind, detail) VALUES (%s, %d, %s, 'activate', %s)",
      quote(key), event.n, quote(DAY), quote('{"server":"' .. server .. '","build":' .. BUILD .. '}'))))
    assert(con:execute("COMMIT"))
  end
  local rate = ACTIVATIONS / (now() - t0)
  con:close()
  env:close()
  fresh(path)
  return rate
end

-- 100,000 licenses and 300,000 installations written straight into the
-- schema, 1 in 20 keys on one server too many.
local function sweep_bench()
  local path = tmp("sweep")
  local store = assert(licensor.open(path, { synchronous = "normal" }))
  store:import(licensor.catalogue_path("smartertools"))
  store:close()
  local db = assert(core.open(path, false))
  local insert_license = db:prepare([[INSERT INTO licenses (key, product, edition, level, kind, start,
    ms_expires) VALUES (?, 'smartermail', 'enterprise', 250, 'perpetual', '2025-06-01', '2026-05-31')]])
  local insert_installation = db:prepare([[INSERT INTO installations (key, seq, server, build, first_seen,
    last_seen, deactivated) VALUES (?, ?, ?, ?, ?, ?, ?)]])
  db:begin()
  local installations = 0
  for i = 1, SWEEP_LICENSES do
    local key = core.new_key()
    db:run(insert_license, key)
    -- Two servers replaced over time, then one current (two for 1 in 20).
    db:run(insert_installation, key, 1, "old-" .. i, BUILD, "2025-07-01", "2025-09-01", "2025-09-01")
    db:run(insert_installation, key, 2, "now-" .. i, BUILD, "2025-09-01", DAY, nil)
    installations = installations + 2
    if i % 20 == 0 then
      db:run(insert_installation, key, 3, "extra-" .. i, BUILD, "2025-11-15", DAY, nil)
    else
      db:run(insert_installation, key, 3, "gone-" .. i, BUILD, "2025-06-01", "2025-07-01", "2025-07-01")
    end
    installations = installations + 1
  end
  db:commit()
  db:close()
  store = assert(licensor.open(path, { synchronous = "normal" }))
  local t0 = now()
  local taken = assert(store:sweep(DAY))
  local elapsed = now() - t0
  -- Reading licenses: store:get + cat:eligible.
  local keys = {}
  for _, row in ipairs(store:query("SELECT key FROM licenses LIMIT 10000")) do keys[#keys + 1] = row.key end
  local cat = store:catalogue()
  local reads = 200000
  local t1 = now()
  for i = 1, reads do
    local build = cat:eligible(store:get(keys[i % #keys + 1]), DAY)
    if not build then error("no build") end
  end
  local read_rate = reads / (now() - t1)
  store:close()
  fresh(path)
  return elapsed, #taken, installations, read_rate
end

local vm = jit and jit.version or _VERSION
local rates = {}
for _, sync in ipairs({ "full", "normal" }) do
  rates[sync] = { licensor_activations(sync), luasql_activations(sync) }
  print(format("%-22s activations, synchronous=%-6s licensor %8.0f/s   LuaSQL plain Lua %8.0f/s   ratio %.2fx",
    vm, sync, rates[sync][1], rates[sync][2], rates[sync][1] / rates[sync][2]))
end
local elapsed, taken, installations, read_rate = sweep_bench()
print(format("%-22s sweep of %d licenses / %d installations: %.2f s (%d ladder steps taken)",
  vm, SWEEP_LICENSES, installations, elapsed, taken))
print(format("%-22s store:get + cat:eligible %8.0f reads/s", vm, read_rate))
