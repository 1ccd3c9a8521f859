-- policy_cli_spec.lua -- `licensor policy import | history | test` as a
-- deploy script meets them: policy test exits 0 only when nothing would
-- change and the proposed file's hooks never failed (1: policy_changes or
-- policy_failures, the failures listed in the text), 2 when the file
-- cannot be read; a check-in grace taken away counts as a change; a
-- bundled NAME that is also ./NAME.lua is refused, naming both; and the
-- history table's headers and cells -- on SQLite and PostgreSQL
-- (spec/support/with-postgres.lua).
local cjson = require "cjson.safe"
local stores = require "support.stores"
local fixtures = require "support.fixtures"
local run = require "support.cli"

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  return (os.getenv("PWD") or ".") .. "/" .. path
end

local GRACE_PATH = absolute(assert(package.searchpath("licensor.policies.large_customer_grace", package.path)))

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function quoted(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The CLI as a child process run in `dir` (a name is looked up from the
-- current directory), its LUA_PATH and LUA_CPATH made absolute: exit
-- status, and stdout and stderr together.
local function run_in(dir, ...)
  local words = {}
  for i, a in ipairs({ ... }) do words[i] = quoted(a) end
  local lpath = (package.path:gsub("([^;]+)", function(p) return absolute(p) end))
  local cpath = (package.cpath:gsub("([^;]+)", function(p) return absolute(p) end))
  local cmd = ("cd %s && LUA_PATH=%s LUA_CPATH=%s %s %s %s 2>&1; echo status=$?"):format(quoted(dir),
    quoted(lpath), quoted(cpath), stores.interpreter(), quoted(absolute("lua/bin/licensor")),
    table.concat(words, " "))
  local pipe = assert(io.popen(cmd))
  local out = pipe:read("a")
  pipe:close()
  local status = tonumber(out:match("status=(%d+)%s*$"))
  return status, (out:gsub("status=%d+%s*$", ""))
end

describe("licensor policy test, import and history on " .. stores.backend, function()
  local store, db, key, dir

  before_each(function()
    store, db = stores.new()
    assert(store:import(fixtures.catalogue_table()))
    assert(store:import_policy(assert(io.open(GRACE_PATH)):read("a"), "large_customer_grace.lua", "2019-01-01"))
    key = stores.issue(store, { owner = "globex", start = "2018-12-07" }).key
    assert(store:activate(key, "dc1.globex.example", 6911, "2019-01-10").ok)
    assert(store:checkin(key, "dc1.globex.example", "2019-03-11").ok)
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. quoted(dir)))
  end)

  after_each(function()
    store:close()
    stores.remove(db)
    os.execute("rm -rf " .. quoted(dir))
  end)

  it("a file whose hooks fail on every call exits 1 (policy_failures), its failures and log in the text", function()
    local typo = write(dir .. "/typo.lua", [[
return {
  name = "typo",
  eligible = function(ctx) if ctx.buidl.number then return nil end end,
  admission = function(ctx) while true do end end,
  settings = function(ctx) return { checkin_grace_dayz = 60 } end,
}
]])
    -- On a day within the catalogue's grace nothing changes: only the failures stop the script.
    local status, out, err = run("--db", db, "policy", "test", typo, "--on", "2019-03-15")
    assert.are.equal(1, status)
    assert.matches("0 decisions would change", out, 1, true)
    assert.matches("the proposed file's hooks failed %d+ times", out)
    assert.matches("\n  eligible error +%d+", out)
    assert.matches("\n  settings answer +%d+", out)
    assert.matches("first hook log lines:\n  proposed: .*buidl", out)
    assert.matches("checkin_grace_dayz", out, 1, true)
    assert.matches("^licensor: policy_failures: no decision would change under .*typo%.lua; its hooks failed", err)
    -- JSON: the same exit, the failures and the log as fields, nothing on stderr.
    local s2, json, err2 = run("--db", db, "--json", "policy", "test", typo, "--on", "2019-03-15")
    assert.are.same({ 1, "" }, { s2, err2 })
    local r = assert(cjson.decode(json))
    assert.are.equal(0, r.changed)
    assert.is_true(r.failures["eligible error"] > 0 and r.failures["settings answer"] > 0)
    assert.are.equal("table", type(r.hook_log))
  end)

  it("a check-in grace dropped is a change (policy_changes, exit 1), counted as active; '1 decision'", function()
    local plain = write(dir .. "/plain.lua", "return { name = 'plain' }\n")
    local status, out, err = run("--db", db, "policy", "test", plain, "--on", "2019-03-20")
    assert.are.equal(1, status)
    assert.matches(": 1 decision would change\n", out, 1, true)
    assert.matches("\n  active +1\n    " .. key:gsub("%-", "%%-") ..
                   " on 2019%-03%-20 %(dc1%.globex%.example%): active %-> inactive", out)
    assert.matches("^licensor: policy_changes: 1 decision would change under ", err)
    assert.is_nil(out:find("hooks failed", 1, true))
    -- The bundled file in force again: exit 0, nothing on stderr.
    local s2, out2, err2 = run("--db", db, "policy", "test", "large_customer_grace", "--on", "2019-03-20")
    assert.are.same({ 0, "" }, { s2, err2 })
    assert.matches("0 decisions would change", out2, 1, true)
  end)

  it("a policy file that cannot be read exits 2, for test and import alike", function()
    for _, args in ipairs({ { "test", dir .. "/nosuch.lua" }, { "import", dir .. "/nosuch.lua" },
                            { "test", dir }, { "import", dir }, { "test", "nosuch.lua" } }) do
      local status, _, err = run("--db", db, "policy", args[1], args[2])
      assert.are.equal(2, status, args[1] .. " " .. args[2])
      assert.matches("policy file ", err, 1, true)
    end
    local empty = write(dir .. "/empty.lua", "")
    assert.are.equal(2, (run("--db", db, "policy", "test", empty)))
  end)

  it("import --name '' is refused; a name given is the one history shows", function()
    local plain = write(dir .. "/plain.lua", "return { products = { smartermail = { migration_days = 45 } } }\n")
    local status, _, err = run("--db", db, "policy", "import", plain, "--name", "")
    assert.are.equal(2, status)
    assert.matches("--name is empty", err, 1, true)
    assert.are.equal(0, (run("--db", db, "policy", "import", plain, "--name", "mail-45", "--on", "2019-02-01")))
    local _, hist = run("--db", db, "policy", "history")
    local lines = {}
    for line in hist:gmatch("[^\n]+") do lines[#lines + 1] = line end
    -- Every column has its header; a file without hooks shows "-".
    assert.matches("^version +imported +name +hooks +active$", lines[1])
    assert.matches("^1 +2019%-01%-01 +large%-customer%-grace +settings +no$", lines[3])
    assert.matches("^2 +2019%-02%-01 +mail%-45 +%- +yes$", lines[4])
  end)

  it("a bundled NAME that is also ./NAME.lua here is refused, naming both; a path picks either", function()
    local here = write(dir .. "/large_customer_grace.lua", "return { name = 'edited copy' }\n")
    for _, what in ipairs({ "import", "test" }) do
      local status, out = run_in(dir, "--db", db, "policy", what, "large_customer_grace", "--on", "2019-03-20")
      assert.are.equal(2, status, what)
      assert.matches("large_customer_grace is both ./large_customer_grace.lua here and the bundled " ..
                     GRACE_PATH:gsub("%p", "%%%0"), out)
      assert.matches("give ./large_customer_grace.lua for the one here, or ", out, 1, true)
    end
    -- Nothing was imported by the refusals.
    assert.are.equal(1, #assert(store:policy_history()))
    local status = run_in(dir, "--db", db, "policy", "import", "./large_customer_grace.lua", "--on", "2019-03-01")
    assert.are.equal(0, status)
    local list = assert(store:policy_history())
    assert.are.same({ 2, "edited copy" }, { #list, list[2].name })
    assert.are.equal(0, (run_in(dir, "--db", db, "policy", "import", GRACE_PATH, "--on", "2019-03-02")))
    assert.are.equal("large-customer-grace", assert(store:policy_history())[3].name)
    os.remove(here)
    -- Without the copy here, the name is the bundled file again.
    local s2, out2 = run_in(dir, "--db", db, "policy", "import", "large_customer_grace")
    assert.are.equal(0, s2)
    assert.matches("unchanged", out2, 1, true)
  end)
end)
