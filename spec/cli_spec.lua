-- The `licensor` command line: commands, tables and --json, exit status
-- 0 / 1 / 2 and errors on stderr with their code.
local cli = require "licensor.cli"
local run = require "support.cli"
local stores = require "support.stores"
local unpack = table.unpack or unpack   -- luacheck: ignore unpack


describe("licensor command", function()
  local db = stores.path()
  local key

  setup(function()
    assert.are.equal(0, (run("--db", db, "init")))
    assert.are.equal(0, (run("--db", db, "import", "lua/licensor/catalogues/smartertools.lua")))
    local status, out = run("--db", db, "--json", "issue", "--product", "smartertrack", "--edition", "enterprise",
      "--level", "5", "--start", "2017-12-07", "--owner", "acme", "--addon", "live_chat_translation")
    assert.are.equal(0, status)
    key = out:match('"key":"([^"]+)"')
  end)

  teardown(function() stores.remove(db) end)

  it("issues licenses and shows them as aligned tables", function()
    local status, out = run("--db", db, "show", key, "--on", "2019-06-01")
    assert.are.equal(0, status)
    assert.matches("ms_expires%s+2018%-12%-06", out)
    assert.matches("ms%s+expired", out)
  end)

  it("answers which build a license may install", function()
    local status, out = run("--db", db, "eligible", key, "--on", "2019-06-01")
    assert.are.equal(0, status)
    assert.matches("number%s+6911", out)
    local _, json = run("--db", db, "--json", "eligible", key, "--on", "2019-06-01")
    assert.matches('"number":6911', json)
  end)

  it("exits 1 with the code on stderr when a workflow is refused", function()
    local status, out, err, _ = run("--db", db, "activate", key, "srv1", "6947", "--on", "2019-06-01")
    assert.are.equal(1, status)
    assert.matches("ok%s+false", out)
    assert.matches("^licensor: newer_than_eligible: ", err)
    status, _, err = run("--db", db, "upgrade", key, "--level", "10", "--pay", "1", "--on", "2018-06-01")
    assert.are.equal(1, status)
    assert.matches("wrong_amount", err)
    status, _, err = run("--db", db, "show", "NOT-A-KEY")
    assert.are.same({ 2, "licensor: invalid_key" }, { status, err:match("^licensor: [%w_]+") })
  end)

  it("activates, sweeps, quotes and lists events", function()
    assert.are.equal(0, (run("--db", db, "activate", key, "srv1", "6911", "--on", "2018-12-05")))
    local status, out = run("--db", db, "upgrade", key, "--level", "10", "--quote", "--on", "2018-12-05")
    assert.are.same({ 0, "upgrade costs $330.00" }, { status, out })
    status, out = run("--db", db, "sweep", "--on", "2018-12-06")
    assert.are.equal(0, status)
    assert.matches("key%s+case%s+action%s+on", out)
    status, out = run("--db", db, "events", key)
    assert.are.equal(0, status)
    assert.matches("activate%s+build=6911 server=srv1", out)
  end)

  it("exits 2 for bad usage", function()
    assert.are.equal(2, (run("--db", db, "frobnicate")))
    assert.are.equal(2, (run("--db", db, "show")))
    assert.are.equal(2, (run("--db", db, "activate", key, "srv1", "latest")))
    assert.are.equal(2, (run("--db", db, "upgrade", key, "--level", "10")))
    assert.are.equal(2, (run("--db", db, "issue", "--product")))
    assert.are.equal(2, (run()))
    assert.are.equal(0, (run("help")))
  end)

  it("imports a bundled catalogue by name, says when it is already active, and shows it with prices", function()
    local status, out = run("--db", db, "import", "smartertools")
    assert.are.same({ 0, "catalogue unchanged: version 1 is already active" }, { status, out })
    status, out = run("--db", db, "catalogue", "smartertrack")
    assert.are.equal(0, status)
    assert.matches("SmarterTrack %(smartertrack%)", out)
    assert.matches("100%s+enterprise%s+unlimited%s+%$1,649%.00", out)
    status, out = run("--db", db, "--json", "catalogue")
    assert.are.equal(0, status)
    assert.matches('"currency":"USD"', out)
    assert.are.equal(1, (run("--db", db, "catalogue", "nothing")))
    -- A broken file keeps the file:line the loader gives.
    local bad = os.tmpname()
    local f = assert(io.open(bad, "w"))
    f:write("return { products = {\n { id = 'x', editions = { 'a' },\n builds = { { number = 1, version = '1.0', " ..
      "released = '2018-02-30' } } } } }\n")
    f:close()
    local err = select(3, run("--db", db, "import", bad))
    assert.are.equal(1, (run("--db", db, "import", bad)))
    assert.matches("^licensor: invalid_catalogue: " .. bad:gsub("%p", "%%%0") .. ":3: ", err)
    os.remove(bad)
  end)

  it("lists licenses by filters, as a table or a JSON array", function()
    local status, out = run("--db", db, "list", "--owner", "acme", "--product", "smartertrack")
    assert.are.equal(0, status)
    assert.matches("^key%s+owner%s+product", out)
    assert.matches(key, out, 1, true)
    status, out = run("--db", db, "--json", "list", "--owner", "nobody")
    assert.are.same({ 0, "[]" }, { status, out })
    assert.are.equal(2, (run("--db", db, "list", "--limit", "many")))
  end)

  it("exports licenses as CSV or JSON lines and imports the CSV into another database", function()
    local file = os.tmpname()
    os.remove(file)   -- export --out writes a new file, never over one
    assert.are.equal(0, (run("--db", db, "export", "--out", file)))
    assert.are.equal(1, (run("--db", db, "export", "--out", file)))
    local other = stores.path()
    assert.are.equal(0, (run("--db", other, "init")))
    assert.are.equal(0, (run("--db", other, "import", "smartertools")))
    local status, out = run("--db", other, "import-licenses", file)
    assert.are.same({ 0, "imported 1 licenses from " .. file }, { status, out })
    assert.are.equal(0, (run("--db", other, "show", key)))
    status, out = run("--db", db, "export", "--format", "jsonl")
    assert.are.equal(0, status)
    assert.is_truthy(out:find('"key":"' .. key .. '"', 1, true))
    assert.are.equal(2, (run("--db", db, "export", "--format", "xml")))
    os.remove(file)
    stores.remove(other)
  end)

  it("says a renewal leaves M&S lapsed, and what catching up costs; --until-current catches up at once", function()
    local _, out = run("--db", db, "--json", "issue", "--product", "smartertrack", "--edition", "enterprise",
      "--level", "5", "--start", "2019-03-01")
    local lapsed = out:match('"key":"([^"]+)"')
    local status
    status, out = run("--db", db, "renew", lapsed, "--on", "2024-06-01")
    assert.are.equal(0, status)
    -- 4 more yearly terms at 25% of the 100.x enterprise-5 price ($549.00): $137.25 each.
    assert.matches("M&S is still lapsed after this term: it covers to 2021%-02%-28; catching up to 2024%-06%-01 " ..
      "takes 4 more terms %(%$549%.00%): licensor renew " .. lapsed:gsub("%-", "%%-") .. " %-%-until%-current", out)
    status, out = run("--db", db, "renew", lapsed, "--on", "2024-06-01", "--until-current")
    assert.are.equal(0, status)
    assert.matches("ms_expires%s+2025%-02%-28", out)
    assert.is_nil(out:find("still lapsed", 1, true))
    status, out = run("--db", db, "upgrade", lapsed, "--level", "10", "--quote", "--on", "2024-06-01")
    assert.are.same({ 0, "upgrade costs $330.00" }, { status, out })
  end)

  it("backs the database up into a new file, never over one", function()
    local copy = stores.path()
    local status, out = run("--db", db, "backup", copy)
    assert.are.same({ 0, "backup of " .. db .. " written to " .. copy }, { status, out })
    assert.are.equal(0, (run("--db", copy, "show", key)))
    local err
    status, out, err = run("--db", db, "backup", copy)
    assert.are.same({ 1, "" }, { status, out })
    assert.matches("^licensor: exists: ", err)
    stores.remove(copy)
  end)

  it("refuses a database that does not exist, except to init and import --create", function()
    local missing = stores.path()
    for _, command in ipairs({ { "show", key }, { "sweep" }, { "events", key }, { "import",
        "lua/licensor/catalogues/smartertools.lua" }, { "gateway", "--listen", "127.0.0.1:1" } }) do
      local status, _, err = run("--db", missing, unpack(command))
      assert.are.same({ 1, "licensor: no_database: " .. missing .. " does not exist (run licensor init)" },
        { status, err }, command[1])
      assert.is_nil(io.open(missing), command[1] .. " created the file")
    end
    assert.are.equal(0, (run("--db", missing, "import", "lua/licensor/catalogues/smartertools.lua", "--create")))
    assert.is_not_nil(io.open(missing))
    stores.remove(missing)
  end)

  it("makes signing keys, certificates, air-gapped requests and verifies them, with exit codes", function()
    local dir = os.tmpname()
    os.remove(dir)
    local signing = dir .. ".key"
    local status, out = run("keys", "new", "--out", signing)
    assert.are.equal(0, status)
    local id = out:match("key id (%x+)")
    assert.are.equal(16, #id)
    local err = select(3, run("keys", "new", "--out", signing))
    status = run("keys", "new", "--out", signing)
    assert.are.equal(1, status)
    assert.matches("^licensor: exists: ", err)
    assert.is_truthy(err:find(signing, 1, true))
    status, out = run("keys", "show", signing)
    assert.are.same({ 0, "key id " .. id }, { status, out:match("^[^\n]+") })
    local fp = "v1:mid=1111111111111111,uuid=2222222222222222,mac=3333333333333333,host=4444444444444444"
    -- Air-gapped: the product's request, carried to the vendor, the
    -- certificate carried back (today: M&S lapsed, build 6911 still runs).
    local request, cert = dir .. ".request", dir .. ".cert"
    assert.are.equal(0, (run("request", key, "air-gapped-1", "6911", "--fingerprint", fp, "--out", request)))
    status, out = run("--db", db, "activate", "--request", request, "--out", cert, "--signing-key", signing)
    assert.are.same({ 0, "certificate for air-gapped-1 written to " .. cert }, { status, out })
    status, out = run("verify", cert, "--public-key", signing .. ".pub", "--product", "smartertrack", "--fingerprint", fp)
    assert.are.same({ 0, "valid" }, { status, out })
    status, out = run("--json", "verify", cert, "--public-key", signing .. ".pub", "--product", "smartertrack",
                      "--fingerprint", fp)
    assert.are.equal(0, status)
    assert.matches('"verdict":"valid"', out)
    assert.matches('"server":"air%-gapped%-1"', out)
    status, out = run("verify", cert, "--public-key", signing .. ".pub", "--product", "smartertrack",
                      "--fingerprint", "v1:mid=0000000000000000")
    assert.are.same({ 1, "wrong_machine" }, { status, out })
    assert.are.equal(2, (run("verify", cert)))
    status, out = run("--db", db, "certificate", key, "air-gapped-1", "--signing-key", signing)
    assert.are.equal(0, status)
    assert.matches("^%-%-%-%-%-BEGIN LICENSOR CERTIFICATE%-%-%-%-%-", out)
    assert.are.equal(1, (run("--db", db, "certificate", key, "nowhere", "--signing-key", signing)))
    assert.are.equal(2, (run("--db", db, "certificate", key, "air-gapped-1")))
    for _, f in ipairs({ signing, signing .. ".pub", request, cert }) do os.remove(f) end
  end)

  it("exits 0 done, 1 refused by a rule, 2 for bad usage or malformed input, for every command", function()
    assert.are.equal(2, (run("--db", db, "eligible", key, "--on", "2019-02-30")))   -- a bad date
    assert.are.equal(2, (run("--db", db, "eligible", key, "--on")))                  -- a missing value
    assert.are.equal(2, (run("--db", db, "renew", "NOT-A-KEY")))
    local status, _, err = run("--db", db, "show", key, "extra")
    assert.are.same({ 2, "licensor: show: unexpected argument 'extra' (licensor help show)" }, { status, err })
    status, _, err = run("--db", db, "activte")
    assert.are.same({ 2, "licensor: unknown command 'activte' (did you mean 'activate'?)" }, { status, err })
  end)

  it("answers help for each command, -h, --help and --version", function()
    local status, out = run("help", "activate")
    assert.are.equal(0, status)
    assert.matches("^usage: licensor %[%-%-db PATH%] %[%-%-json%]\n  activate KEY SERVER BUILD", out)
    assert.are.same({ 0, out }, { (run("activate", "--help")), (select(2, run("activate", "--help"))) })
    assert.are.same({ 0, out }, { (run("activate", "-h")), (select(2, run("activate", "-h"))) })
    status, out = run("--version")
    assert.are.same({ 0, "licensor " .. require("licensor.core")._VERSION }, { status, out })
    for name in pairs({ init = 1, import = 1, issue = 1, catalogue = 1, show = 1, eligible = 1, checkin = 1,
                        deactivate = 1, installations = 1, renew = 1, upgrade = 1, ["add-addon"] = 1,
                        ["end-lease"] = 1, disable = 1, enable = 1, transfer = 1, sweep = 1, events = 1,
                        backup = 1, keys = 1, certificate = 1, fingerprint = 1, request = 1, verify = 1,
                        repl = 1, gateway = 1 }) do
      status, out = run("help", name)
      assert.are.equal(0, status, name)
      assert.matches("\n  " .. name:gsub("%-", "%%-"), out, nil, nil, name)
    end
  end)

  it("answers every outcome as JSON with --json: refusals on stdout, empty lists as []", function()
    local status, out = run("--db", db, "--json", "renew", "NOT-A-KEY")
    assert.are.equal(2, status)
    assert.matches('^{.*"ok":false', out)
    assert.matches('"code":"invalid_key"', out)
    status, out = run("--db", db, "--json", "sweep", "--on", "2030-01-01")
    assert.are.same({ 0, "[]" }, { status, out })
  end)

  it("lists events in the order recorded, with the time recorded and the day each is for", function()
    local status, out = run("--db", db, "events", key)
    assert.are.equal(0, status)
    assert.matches("^recorded%s+at%s+kind", out)
    assert.matches("\n%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ%s+%d%d%d%d%-%d%d%-%d%d%s+issue", out)
    assert.matches("Z%s+2018%-12%-05%s+activate%s+build=6911 server=srv1", out)
  end)

  it("runs a REPL with help, formatted answers, and errors as messages without tracebacks", function()
    local lines = { "help", "cat:eligible(store:get('" .. key .. "'), '2019-06-01').number",
                    "store:get('nope')", "error('plain trouble')", "x = {", "n = 1 }", "x.n" }
    local written = {}
    local status = cli.main({ "--db", db, "repl" }, { out = function() end, err = function() end,
      repl = { read = function() return table.remove(lines, 1) end,
               write = function(text) written[#written + 1] = text end } })
    local text = table.concat(written)
    assert.are.equal(0, status)
    assert.matches("store%s+the store", text)
    assert.matches("> 6911\n", text)
    assert.matches("> nil\tnot a license key", text)   -- nil, message, code: the values print
    assert.matches("error: plain trouble\n", text)
    assert.matches(">> > 1\n", text)                      -- a statement over two lines
    assert.is_nil(text:find("stack traceback", 1, true))
    assert.is_nil(text:find("lua/licensor/", 1, true))
  end)

  it("runs as a script with the interpreter of this suite", function()
    local cmd = "LUA_PATH='lua/?.lua;lua/?/init.lua;;' " .. stores.interpreter() ..
      " lua/bin/licensor --db " .. db .. " eligible " .. key .. " --on 2019-06-01"
    local pipe = io.popen(cmd .. "; echo status=$?")
    local out = pipe:read("*a")
    pipe:close()
    assert.matches("number%s+6911", out)
    assert.matches("status=0", out)
  end)
end)

-- Every command with --json (but repl and gateway, which do not end by
-- themselves): a good call exits 0 with JSON on stdout; a bad one exits 1
-- (refused by a rule) or 2 (malformed) with {"ok":false,"code":...} on
-- stdout.
describe("licensor --json, command by command", function()
  local cjson = require "cjson.safe"
  local db = stores.path()
  local dir = os.tmpname()
  os.remove(dir)
  local key, signing, cert, request

  setup(function()
    assert.are.equal(0, (run("--db", db, "init")))
    assert.are.equal(0, (run("--db", db, "import", "smartertools")))
    local _, out = run("--db", db, "--json", "issue", "--product", "smartertrack", "--edition", "enterprise",
      "--level", "5", "--owner", "acme")
    key = out:match('"key":"([^"]+)"')
    signing, cert, request = dir .. ".key", dir .. ".cert", dir .. ".request"
    assert.are.equal(0, (run("keys", "new", "--out", signing)))
  end)

  teardown(function()
    stores.remove(db)
    for _, f in ipairs({ signing, signing .. ".pub", cert, request, dir .. ".copy", dir .. ".csv" }) do os.remove(f) end
  end)

  local FP = "v1:mid=1111111111111111,uuid=2222222222222222,mac=3333333333333333,host=4444444444444444"
  local BAD_KEY = "NOT-A-KEY"

  -- { name, good arguments, bad arguments, exit status of the bad call }
  local function cases()
    return {
      { "catalogue", { "smartertrack" }, { "nothing" }, 1 },
      { "list", { "--owner", "acme" }, { "--limit", "0" }, 2 },
      { "show", { key }, { BAD_KEY }, 2 },
      { "eligible", { key }, { key, "--on", "2019-02-30" }, 2 },
      { "activate", { key, "json-1", "6911", "--fingerprint", FP }, { key, "json-2", "99999" }, 1 },
      { "checkin", { key, "json-1" }, { key, "nowhere" }, 1 },
      { "installations", { key }, { BAD_KEY }, 2 },
      { "certificate", { key, "json-1", "--signing-key", signing }, { key, "nowhere", "--signing-key", signing }, 1 },
      { "verify", { "--fingerprint", FP, "--public-key", signing .. ".pub", "--product", "smartertrack" },
        { "--public-key", signing .. ".pub", "--product", "smartertrack", "--fingerprint", "v1:mid=0000000000000000" },
        1 },
      { "upgrade", { key, "--level", "10", "--quote" }, { key, "--level", "10", "--pay", "1" }, 1 },
      { "add-addon", { key, "live_chat_translation" }, { key, "nope" }, 1 },
      { "renew", { key }, { key, "--on", "someday" }, 2 },
      { "transfer", { key, "globex", "--consent", "C-1" }, { key, "initech" }, 1 },
      { "disable", { key, "--reason", "test" }, { BAD_KEY }, 2 },
      { "enable", { key }, { BAD_KEY }, 2 },
      { "end-lease", nil, { key }, 1 },
      { "deactivate", { key, "json-1" }, { key, "json-1" }, 1 },
      { "sweep", {}, { "--on", "2019-13-01" }, 2 },
      { "events", { key }, { BAD_KEY }, 2 },
      { "export", {}, { "--format", "xml" }, 2 },
      { "backup", { dir .. ".copy" }, { dir .. ".copy" }, 1 },
      { "keys", { "show", signing }, { "show", "/nonexistent" }, 1 },
      { "fingerprint", {}, nil, nil },
      { "issue", { "--product", "smartertrack", "--edition", "enterprise", "--level", "10" },
        { "--product", "smartertrack", "--edition", "enterprise", "--level", "15" }, 1 },
      { "request", { key, "air", "6911", "--fingerprint", FP, "--out", request }, { key, "air", "6911",
        "--fingerprint", "nope" }, 2 },
      { "import-licenses", nil, { "/nonexistent.csv" }, 1 },
      { "import", { "smartertools" }, { "/nonexistent/catalogue.lua" }, 1 },
    }
  end

  it("answers JSON and the documented exit status for every command, good input and bad", function()
    for _, case in ipairs(cases()) do
      local name, good, bad, bad_status = case[1], case[2], case[3], case[4]
      if name == "verify" then
        local cert_text = select(2, run("--db", db, "--json", "certificate", key, "json-1", "--signing-key", signing))
        local f = assert(io.open(cert, "w"))
        f:write(cjson.decode(cert_text).certificate)
        f:close()
        table.insert(good, 1, cert)
        table.insert(bad, 1, cert)
      end
      if good then
        local args = { "--db", db, "--json", name }
        for _, a in ipairs(good) do args[#args + 1] = a end
        local status, out, err = run(unpack(args))
        assert.are.equal(0, status, name .. ": " .. err)
        assert.is_not_nil(cjson.decode(out), name .. " printed " .. out)
      end
      if bad then
        local args = { "--db", db, "--json", name }
        for _, a in ipairs(bad) do args[#args + 1] = a end
        local status, out = run(unpack(args))
        assert.are.equal(bad_status, status, name)
        local last = out:match("([^\n]*)$")
        local answer = cjson.decode(last)
        assert.is_table(answer, name .. " printed " .. out)
        if name ~= "verify" then assert.are.equal(false, answer.ok, name) end
      end
    end
  end)
end)

-- Issue 18, the command line: one registry for parsing, help and
-- doc/cli.md; typos refused with a suggestion; money as people write it;
-- quiet failures made loud; odd answers without a traceback.
describe("licensor command registry", function()
  local money = require "licensor.money"
  local db = stores.path()
  local key

  -- run, but a Lua error escaping main fails the spec with its message.
  local function safe(...)
    local ok, status, out, err = pcall(run, ...)
    assert(ok, "a Lua error escaped: " .. tostring(status))
    return status, out, err
  end

  local function count_licenses()
    local _, out = safe("--db", db, "--json", "list")
    return select(2, out:gsub('"key":', ""))
  end

  local function tmp()
    local path = os.tmpname()
    os.remove(path)
    return path
  end

  setup(function()
    assert.are.equal(0, (run("--db", db, "init")))
    assert.are.equal(0, (run("--db", db, "import", "smartertools")))
    local _, out = run("--db", db, "--json", "issue", "--product", "smartertrack", "--edition", "enterprise",
      "--level", "5", "--start", "2017-12-07", "--owner", "acme")
    key = out:match('"key":"([^"]+)"')
  end)

  teardown(function() stores.remove(db) end)

  it("refuses a mistyped flag with exit 2 and the nearest flag, and does nothing", function()
    local status, out, err = safe("--db", db, "eligible", key, "--date", "2019-06-01")
    assert.are.same({ 2, "" }, { status, out })
    assert.matches("did you mean %-%-on%?", err)
    local before = count_licenses()
    status, out, err = safe("--db", db, "issue", "--product", "smartertrack", "--edition", "enterprise",
      "--level", "5", "--ownr", "bob")
    assert.are.same({ 2, "" }, { status, out })
    assert.matches("did you mean %-%-owner%?", err)
    assert.are.equal(before, count_licenses())
    status, out, err = safe("--db", db, "list", "--ownr", "acme")
    assert.are.same({ 2, "" }, { status, out })
    assert.matches("did you mean %-%-owner%?", err)
    status, out, err = safe("--db", db, "sweep", "--dry-run")
    assert.are.same({ 2, "" }, { status, out })
    assert.matches("unknown flag %-%-dry%-run", err)
    assert.is_nil(err:find("needs a value", 1, true))
    status, out, err = safe("help", "nosuch")
    assert.are.same({ 2, "" }, { status, out })
    assert.matches("no command 'nosuch'", err)
    status, out, err = safe("--db", db, "eligible", key, "--on")
    assert.are.same({ 2, "" }, { status, out })
    assert.matches("%-%-on needs a value", err)
    status, out, err = safe("--db", db, "issue", "--product", "--edition", "enterprise")
    assert.are.same({ 2, "" }, { status, out })
    assert.matches("%-%-product needs a value", err)
    assert.are.equal(2, (safe("--db", db, "lst")))
  end)

  it("answers help, licensor help CMD and CMD --help from the registry, for every command", function()
    local status, all = safe("help")
    assert.are.equal(0, status)
    for _, entry in ipairs(cli.COMMANDS) do
      assert.matches("\n  " .. entry.name:gsub("%-", "%%-") .. "[ \n]", all, nil, nil, entry.name)
      local s1, help = safe("help", entry.name)
      local s2, same = safe(entry.name, "--help")
      assert.are.same({ 0, 0, help }, { s1, s2, same }, entry.name)
      for _, flag in ipairs(entry.flags or {}) do
        assert.is_truthy(help:find("--" .. flag.name, 1, true), entry.name .. " --" .. flag.name)
      end
      assert.is_truthy(#require("licensor.cli.args").flag_names(entry) >= 4)   -- and the globals
    end
  end)

  it("keeps doc/cli.md equal to licensor help --markdown", function()
    local status, markdown = safe("help", "--markdown")
    assert.are.equal(0, status)
    local f = assert(io.open("doc/cli.md", "rb"))
    local doc = f:read("a")
    f:close()
    assert.are.equal(markdown .. "\n", doc,
      "doc/cli.md is stale: licensor help --markdown > doc/cli.md")
    for _, entry in ipairs(cli.COMMANDS) do
      assert.is_truthy(doc:find("\n## " .. entry.name .. "\n", 1, true), entry.name)
    end
  end)

  it("reads money as people write it, in the catalogue's currency, and never as minor units", function()
    for text, minor in pairs({ ["330"] = 33000, ["330.00"] = 33000, ["$330"] = 33000, ["1,100.00"] = 110000,
                               ["USD 12.5"] = 1250, ["33000.0"] = 3300000 }) do
      assert.are.equal(minor, money.parse(text, "USD"), text)
    end
    for _, text in ipairs({ "", "abc", "3.001", "1,10", "1234,567", "€3", "-5", "1e3", "0x10" }) do
      assert.is_nil(money.parse(text, "USD"), text)
    end
    assert.are.equal(500, money.parse("500", "JPY"))
    assert.is_nil(money.parse("5.5", "JPY"))
    -- the upgrade quoted $330.00 (see above) is paid as 330.00, or $330
    local _, out = safe("--db", db, "--json", "issue", "--product", "smartertrack", "--edition",
      "enterprise", "--level", "5", "--start", "2017-12-07", "--owner", "pay")
    local k = out:match('"key":"([^"]+)"')
    local status
    status, out = safe("--db", db, "upgrade", k, "--level", "10", "--quote", "--on", "2018-12-05")
    assert.are.same({ 0, "upgrade costs $330.00" }, { status, out })
    local err
    status, _, err = safe("--db", db, "upgrade", k, "--level", "10", "--pay", "33000.0", "--on", "2018-12-05")
    assert.are.equal(1, status)
    assert.matches("wrong_amount", err)
    assert.are.equal(2, (safe("--db", db, "upgrade", k, "--level", "10", "--pay", "330,00", "--on", "2018-12-05")))
    assert.are.equal(2, (safe("--db", db, "upgrade", k, "--level", "10", "--pay", "€330", "--on", "2018-12-05")))
    assert.are.equal(0, (safe("--db", db, "upgrade", k, "--level", "10", "--pay", "330.00", "--on", "2018-12-05")))
  end)

  it("copies from no database that does not exist, and creates none", function()
    local missing, to = tmp(), tmp()
    local status = safe("copy", "--from", missing, "--to", to)
    assert.are.equal(1, status)
    assert.is_nil(io.open(missing, "rb"))
    assert.is_nil(io.open(to, "rb"))
  end)

  it("fails an export or a certificate to a full disk (exit 1) and leaves no file", function()
    assert.are.equal(1, (safe("--db", db, "export", "--out", "/dev/full")))
    local signing = tmp()
    assert.are.equal(0, (safe("keys", "new", "--out", signing)))
    assert.are.equal(0, (safe("--db", db, "activate", key, "full-1", "6855", "--on", "2018-12-01",
      "--fingerprint", "v1:mid=1111111111111111,uuid=2222222222222222,mac=3333333333333333,host=4444444444444444")))
    local status, _, err = safe("--db", db, "certificate", key, "full-1", "--signing-key", signing,
      "--on", "2018-12-01", "--out", "/dev/full")
    assert.are.equal(1, status)
    assert.matches("io_error", err)
    local out = tmp()
    assert.are.equal(0, (safe("--db", db, "export", "--out", out)))
    local f = assert(io.open(out, "rb"))
    assert.is_true(#f:read("a") > 0)
    f:close()
    for _, path in ipairs({ out, signing, signing .. ".pub" }) do os.remove(path) end
  end)

  it("refuses a backup to '' or :memory:, and leaves no file when the disk is full", function()
    local status, _, err = safe("--db", db, "backup", "")
    assert.are.equal(2, status)
    assert.is_nil(err:find("written", 1, true))
    assert.are.equal(2, (safe("--db", db, "backup", ":memory:")))
    -- a full disk: the file size limit (SIGXFSZ ignored, so writes fail)
    local dir = tmp()
    assert(os.execute("mkdir " .. dir))
    local script = dir .. ".lua"
    local f = assert(io.open(script, "w"))
    -- The child finds the modules where this suite does (busted's lpath is no environment variable).
    f:write(("package.path = %q package.cpath = %q "):format(package.path, package.cpath))
    f:write(("local s = assert(require('licensor').open(%q)) " ..
      "local ok, why = s:backup(%q) io.write(tostring(ok), ' ', tostring(why))"):format(db, dir .. "/b.db"))
    f:close()
    -- 80 blocks of 512 bytes: more than the store's -shm, less than the database
    local pipe = io.popen("trap '' XFSZ; ulimit -f 80; " .. stores.interpreter() .. " " .. script .. " 2>&1")
    local said = pipe:read("a")
    pipe:close()
    assert.matches("^nil ", said)
    assert.is_nil(io.open(dir .. "/b.db", "rb"), "a failed backup left " .. dir .. "/b.db")
    os.remove(dir)
    os.remove(script)
  end)

  it("exits 1 from deliver when a row failed, saying how many", function()
    local other = stores.path()
    assert.are.equal(0, (safe("--db", other, "init")))
    assert.are.equal(0, (safe("--db", other, "import", "smartertools")))
    assert.are.equal(0, (safe("--db", other, "issue", "--product", "smartertrack", "--edition", "enterprise",
      "--level", "5", "--start", "2020-01-01", "--owner", "late", "--email", "late@example.com")))
    local status, out = safe("--db", other, "--json", "sweep", "--on", "2020-12-10")
    assert.are.equal(0, status)
    assert.matches("ms_expiring", out)
    local secret = tmp()
    local f = assert(io.open(secret, "w"))
    f:write("s3cret\n")
    f:close()
    local err
    status, out, err = safe("--db", other, "deliver", "--webhook", "http://127.0.0.1:9/", "--secret-file", secret,
      "--timeout", "2", "--max-tries", "3")
    assert.are.equal(1, status)
    assert.matches("failed 1", out)
    assert.matches("delivery_failed: 1 row%(s%) failed", err)
    os.remove(secret)
    stores.remove(other)
  end)

  it("makes templates --out DIR when DIR does not exist", function()
    local dir = tmp() .. "/new/templates"
    local status, out = safe("templates", "--out", dir)
    assert.are.equal(0, status)
    assert.matches("ms_expiring%.txt", out)
    local f = assert(io.open(dir .. "/ms_expiring.txt", "rb"))
    f:close()
    status, out = safe("templates", "--out", dir)
    assert.are.same({ 0, "every template is already in " .. dir }, { status, out })
    assert.are.equal(1, (safe("templates", "--out", dir .. "/ms_expiring.txt")))   -- a file, not a directory
    assert(os.execute("rm -r " .. dir:gsub("/new/templates$", "")))
  end)

  it("return checks --out before deleting CERT, and prints a receipt it cannot write", function()
    local base = tmp()
    local signing, request, cert, state, taken = base .. ".key", base .. ".req", base .. ".cert", base .. ".state",
      base .. ".taken"
    local fp = "v1:mid=1111111111111111,uuid=2222222222222222,mac=3333333333333333,host=4444444444444444"
    assert.are.equal(0, (safe("keys", "new", "--out", signing)))
    assert.are.equal(0, (safe("request", key, "return-1", "6911", "--fingerprint", fp, "--out", request)))
    assert.are.equal(0, (safe("--db", db, "activate", "--request", request, "--out", cert, "--signing-key", signing)))
    local common = { "--public-key", signing .. ".pub", "--product", "smartertrack", "--fingerprint", fp,
                     "--state", state }
    local function product(...)
      local argv = { ... }
      for _, a in ipairs(common) do argv[#argv + 1] = a end
      return safe(unpack(argv))
    end
    assert.are.equal(0, (product("verify", cert, "--new-state")))
    local f = assert(io.open(taken, "w"))
    f:write("someone's file\n")
    f:close()
    local status, _, err = product("return", cert, "--out", taken)
    assert.are.same({ 1, "licensor: exists" }, { status, err:match("^licensor: [%w_]+") })
    assert.are.equal(2, (product("return", cert, "--out", "")))
    assert.is_truthy(io.open(cert, "rb"), "a refused --out deleted the certificate")
    local out
    status, out, err = product("return", cert, "--out", "/dev/full")
    assert.are.equal(1, status)
    assert.matches("receipt is printed above", err)
    assert.is_table(require("licensor.certificate").read_receipt(out .. "\n"))
    assert.is_nil(io.open(cert, "rb"))
    for _, path in ipairs({ signing, signing .. ".pub", request, state, taken }) do os.remove(path) end
  end)

  it("refuses a --db (and copy --from/--to) that is a device, FIFO or socket, before SQLite opens it", function()
    local journal = io.open("/dev/null-journal", "rb")
    if journal then journal:close() end
    local had_journal = journal ~= nil
    for _, device in ipairs({ "/dev/null", "/dev/full", "/dev/zero" }) do
      for _, argv in ipairs({ { "--db", device, "list" }, { "--db", device, "init" },
                              { "copy", "--from", device, "--to", tmp() }, { "copy", "--from", db, "--to", device } }) do
        local status, _, err = safe(unpack(argv))
        assert.are.equal(2, status, table.concat(argv, " "))
        assert.matches("is a device, FIFO or socket", err)
      end
    end
    local fifo = tmp()
    assert(os.execute("mkfifo " .. fifo))
    assert.are.equal(2, (safe("--db", fifo, "show", key)))
    os.remove(fifo)
    if not had_journal then assert.is_nil(io.open("/dev/null-journal", "rb"), "SQLite made /dev/null-journal") end
  end)

  it("refuses copy --to '' and --to :memory: (a copy nobody keeps)", function()
    for _, to in ipairs({ "", ":memory:" }) do
      local status, out = safe("--db", db, "copy", "--from", db, "--to", to)
      assert.are.same({ 2, "" }, { status, out }, to)
    end
  end)

  it("fails (exit 1, io_error) when standard output cannot be written, and keeps an in-process out", function()
    local stdout = io.stdout
    local full = assert(io.open("/dev/full", "w"))
    local err = {}
    io.stdout = full   -- luacheck: ignore 122
    local ok, status = pcall(cli.main, { "--db", db, "export" }, { err = function(line) err[#err + 1] = line end })
    io.stdout = stdout   -- luacheck: ignore 122
    full:close()
    assert(ok, status)
    assert.are.equal(1, status)
    assert.matches("^licensor: io_error: standard output: ", table.concat(err, "\n"))
    local out
    status, out = safe("--db", db, "export")
    assert.are.equal(0, status)
    assert.matches(key, out, 1, true)
  end)

  it("refuses deliver --templates DIR that is missing or a file, naming it", function()
    local secret = tmp()
    local f = assert(io.open(secret, "w"))
    f:write("s3cret\n")
    f:close()
    for _, dir in ipairs({ tmp(), secret }) do
      local status, _, err = safe("--db", db, "deliver", "--webhook", "http://127.0.0.1:9/", "--secret-file", secret,
        "--templates", dir)
      assert.are.equal(2, status, dir)
      assert.is_truthy(err:find("--templates " .. dir .. " is not a directory", 1, true), err)
    end
    os.remove(secret)
  end)

  it("refuses an empty --out with a usage error for every command that takes one", function()
    for _, entry in ipairs(cli.COMMANDS) do
      for _, flag in ipairs(entry.flags or {}) do
        if flag.name == "out" or flag.name == "revocation-out" then
          local status, out, err = safe("--db", db, entry.name, "--" .. flag.name, "")
          assert.are.same({ 2, "", "licensor: --" .. flag.name .. ": an empty file name" }, { status, out, err },
            entry.name)
        end
      end
    end
  end)

  it("shows a wrong_amount refusal of upgrade as money in the catalogue's currency", function()
    local _, out = safe("--db", db, "--json", "issue", "--product", "smartertrack", "--edition",
      "enterprise", "--level", "5", "--start", "2017-12-07", "--owner", "short")
    local k = out:match('"key":"([^"]+)"')
    local status, _, err = safe("--db", db, "upgrade", k, "--level", "10", "--pay", "1,100.00", "--on", "2018-12-05")
    assert.are.same({ 1, "licensor: wrong_amount: the upgrade costs $330.00, $1,100.00 was paid" }, { status, err })
  end)

  it("refuses at the start a deliver --cafile TLS cannot load, and a webhook that is not http(s)", function()
    local secret = tmp()
    local f = assert(io.open(secret, "w"))
    f:write("s3cret\n")
    f:close()
    local webhook = { "--db", db, "deliver", "--webhook", "http://127.0.0.1:9/", "--secret-file", secret }
    local function deliver(...)
      local argv = { unpack(webhook) }
      for _, a in ipairs({ ... }) do argv[#argv + 1] = a end
      return safe(unpack(argv))
    end
    for _, cafile in ipairs({ "/nonexistent/ca.pem", secret }) do   -- missing, and not PEM
      local status, out, err = deliver("--cafile", cafile)
      assert.are.same({ 2, "" }, { status, out }, cafile)
      assert.is_truthy(err:find("--cafile " .. cafile, 1, true), err)
    end
    for _, url in ipairs({ "ftp://127.0.0.1/", "ms_expiring=ftp://127.0.0.1/", "127.0.0.1:9" }) do
      local status, out, err = safe("--db", db, "deliver", "--webhook", url, "--secret-file", secret)
      assert.are.same({ 2, "" }, { status, out }, url)
      assert.matches("http:// or https://", err)
    end
    os.remove(secret)
  end)

  it("refuses to start the gateway with a token file it cannot read", function()
    local started = false
    local runner = package.loaded["licensor.gateway.runner"]
    package.loaded["licensor.gateway.runner"] = { run = function() started = true return true end }
    local status, _, err = safe("--db", db, "gateway", "--admin-token-file", "/nonexistent/token")
    package.loaded["licensor.gateway.runner"] = runner
    assert.are.same({ 1, false }, { status, started })
    assert.matches("io_error", err)
  end)

  it("answers odd input with a usage error or a clean refusal, never a traceback", function()
    local status, _, err = safe("--db", db, "list", "--ms-expiring", "1e300")
    assert.are.equal(2, status)
    assert.matches("whole number", err)
    assert.are.equal(2, (safe("--db", db, "list", "--offset", "1e300")))
    assert.are.equal(2, (safe("--db", db, "list", "--limit", "0")))
    status, _, err = safe("--db", db, "sweep", "--on", "9999-12-31")
    assert.are.equal(2, status)
    assert.matches("invalid_date", err)
    status, _, err = safe("--db", db, "transfer", key, "", "--consent", "C-1")
    assert.are.equal(2, status)
    assert.matches("OWNER is empty", err)
    local out
    status, out = safe("--db", db, "catalogue")
    assert.are.equal(0, status)
    assert.matches("\nreminders%s+addon: 30; lease: 30; ms: 30, 7, %-1; trial: 7, 1\n", out)
    assert.is_nil(out:find("={", 1, true))
  end)
end)
