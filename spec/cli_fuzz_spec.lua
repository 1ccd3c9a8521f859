-- No input reaches a traceback: random argument vectors for every command
-- of the registry, run in process (spec/support/cli.lua), each ending in
-- exit 0, 1 or 2 with no Lua error escaping main and no traceback printed.
--
-- LICENSOR_FUZZ_ARGV vectors per command (default 200; `make fuzz` runs
-- 100,000), drawn from LICENSOR_FUZZ_SEED (default 1) with Park-Miller, so
-- both VMs draw the same vectors and a failure names the seed and vector
-- (LICENSOR_FUZZ_TRACE=1 prints each vector before it runs, for a crash).
--
-- Words come from the command's own flags (and misspellings of them), the
-- values each flag's type takes and the ones it must refuse (1e300, -1,
-- 9999-12-31, "", control bytes...), and files in a scratch directory.
-- The vectors run with the scratch directory as the working directory
-- (lfs.chdir, the module paths made absolute first), so a relative name a
-- command writes (templates --out acme, keys new --out 6911) lands there,
-- never in the checkout; the names are the pool's, so a long run cannot
-- fill the disk: the first write makes a name, later ones meet "exists".  What is not run for real, and why:
--   gateway  licensor.gateway.runner is stubbed: it would start nginx (the
--            CLI's checks before it, the token file's included, still run)
--   repl     licensor.repl is stubbed: it would read stdin until EOF
--   deliver  never --watch: it delivers until stopped; webhooks and SMTP go
--            to 127.0.0.1:9, refused at once
--   --db, --from, --to never a device: SQLite would make /dev/null-journal
--            beside it (as root), the store's own business, not parsing's
--   import-licenses never /dev/full: files.read takes its 64 MiB of NULs
--            (MAX_FILE_BYTES), and the CSV import of one such line takes
--            24 GB and a minute (licensor.store.bulk, not the CLI's parsing)
local cli = require "licensor.cli"
local run = require "support.cli"

local COUNT = tonumber(os.getenv("LICENSOR_FUZZ_ARGV") or "") or 200
local SEED = tonumber(os.getenv("LICENSOR_FUZZ_SEED") or "") or 1
local TRACE = os.getenv("LICENSOR_FUZZ_TRACE")   -- set: each vector on stderr before it runs

-- Park-Miller minimal standard generator: products stay below 2^53.
local state = SEED % 2147483646 + 1
local function random(n)
  state = state * 16807 % 2147483647
  return state % n + 1
end
local function pick(list) return list[random(#list)] end

describe("licensor command, random argument vectors", function()
  local dir = os.tmpname()
  os.remove(dir)
  local db = dir .. "/fuzz.db"
  local key, saved = nil, {}
  local lfs = require "lfs"
  local home, paths = lfs.currentdir(), { package.path, package.cpath }

  -- A search path with every relative entry made absolute (from home).
  local function absolute(path)
    local parts = {}
    for entry in path:gmatch("[^;]+") do
      parts[#parts + 1] = entry:sub(1, 1) == "/" and entry or (home .. "/" .. entry)
    end
    return table.concat(parts, ";") .. ";;"
  end

  setup(function()
    assert(os.execute("mkdir -p " .. dir))
    assert.are.equal(0, (run("--db", db, "init")))
    assert.are.equal(0, (run("--db", db, "import", "smartertools")))
    local _, out = run("--db", db, "--json", "issue", "--product", "smartertrack", "--edition", "enterprise",
      "--level", "5", "--start", "2017-12-07", "--owner", "acme", "--email", "acme@example.com")
    key = out:match('"key":"([^"]+)"')
    assert.are.equal(0, (run("keys", "new", "--out", dir .. "/signing.key")))
    assert.are.equal(0, (run("--db", db, "export", "--out", dir .. "/licenses.csv")))
    local f = assert(io.open(dir .. "/secret", "w"))
    f:write("s3cret\n")
    f:close()
    for _, name in ipairs({ "licensor.gateway.runner", "licensor.repl" }) do saved[name] = package.loaded[name] end
    package.loaded["licensor.gateway.runner"] = { run = function() return nil, "not started (fuzz)", "fuzz" end }
    package.loaded["licensor.repl"] = { run = function() end }
    package.path, package.cpath = absolute(package.path), absolute(package.cpath)
    assert(lfs.chdir(dir))
  end)

  teardown(function()
    assert(lfs.chdir(home))
    package.path, package.cpath = paths[1], paths[2]
    for name, module in pairs(saved) do package.loaded[name] = module end
    os.execute("rm -rf " .. dir)
  end)

  local FP = "v1:mid=1111111111111111,uuid=2222222222222222,mac=3333333333333333,host=4444444444444444"

  -- Values any flag or argument may meet, good and bad.
  local function anything()
    return { "", " ", "0", "1", "-1", "5", "10", "6911", "1e300", "-1e300", "0x10", "nan", "inf", "1.5",
             "9007199254740991", "9007199254740992", "99999999999999999999", "unlimited", "2019-06-01",
             "2018-12-05", "9999-12-31", "0001-01-01", "2019-02-30", "someday", key, "NOT-A-KEY",
             key:lower(), "srv1", "full-1", "acme", "smartertrack", "enterprise", "pro", "live_chat_translation",
             "perpetual", "lease", "trial", "csv", "jsonl", "xml", "auto", "always", "never", "330", "$330",
             "330.00", "1,100.00", "€3", "33000.0", FP, "v1:mid=0", "a@example.com", "not an address",
             "http://127.0.0.1:9/", "ms_expiring=http://127.0.0.1:9/", "127.0.0.1:9", "[::1]:9",
             dir .. "/signing.key", dir .. "/signing.key.pub", dir .. "/licenses.csv", dir .. "/secret",
             dir .. "/missing", dir .. "/out-1", dir .. "/out-2", dir .. "/state", dir .. "/templates",
             dir, db, ":memory:", "/dev/full", "/dev/null", dir .. "/no/such/file", "new", "show", "retry",
             "smartertools", "\0", "\n", "\27[31m", "ü", ("x"):rep(300), "--", "-", "-x", "'", "%s", "%" }
  end

  -- The words of one command: its flags, misspelt ones, --flag=value.
  local function words(entry, values)
    local list = { "--json", "--db", "--help", "-h", "--nosuch", "--on", "--watch" }
    for _, f in ipairs(entry.flags or {}) do
      local name = f[1]:match("^%-%-([%w%-]+)")
      list[#list + 1] = "--" .. name
      list[#list + 1] = "--" .. name
      list[#list + 1] = "--" .. name .. "=" .. pick(values)
      list[#list + 1] = "--" .. name:sub(2)
    end
    return list
  end

  local function vector(entry, values, flag_words)
    local argv = { "--db", db }
    if random(4) == 1 then argv[#argv + 1] = "--json" end
    argv[#argv + 1] = entry.name
    for _ = 1, random(7) - 1 do
      local word = random(2) == 1 and pick(flag_words) or pick(values)
      -- (see above); -h and --help only now and then
      while (word == "--watch" and entry.name == "deliver") or
            (word == "/dev/full" and entry.name == "import-licenses") or
            ((word == "-h" or word == "--help") and random(8) > 1) do
        word = pick(values)
      end
      argv[#argv + 1] = word
    end
    for i = 2, #argv do
      local flag, value = argv[i]:match("^(%-%-[dbfromt]+)=(/dev/.*)$")
      if value and (flag == "--db" or flag == "--from" or flag == "--to") then argv[i] = flag .. "=" .. db end
      if argv[i]:find("^/dev/") and (argv[i - 1] == "--db" or argv[i - 1] == "--from" or argv[i - 1] == "--to") then
        argv[i] = db
      end
    end
    return argv
  end

  local function show(argv)
    local parts = {}
    for i, a in ipairs(argv) do parts[i] = ("%q"):format(a) end
    return table.concat(parts, " ")
  end

  it("ends every command in exit 0, 1 or 2, never a traceback (" .. COUNT .. " vectors each, seed " .. SEED ..
     ")", function()
    local values = anything()
    local unpack = table.unpack or unpack   -- luacheck: ignore unpack
    for _, entry in ipairs(cli.COMMANDS) do
      local flag_words = words(entry, values)
      for n = 1, COUNT do
        local argv = vector(entry, values, flag_words)
        if TRACE then io.stderr:write(show(argv), "\n") end
        local ok, status, out, err = pcall(run, unpack(argv))
        local where = entry.name .. " vector " .. n .. " (seed " .. SEED .. "): licensor " .. show(argv)
        if not ok then error("a Lua error escaped from " .. where .. ":\n" .. tostring(status), 0) end
        assert(status == 0 or status == 1 or status == 2, where .. " exited " .. tostring(status))
        local text = out .. "\n" .. err
        assert(not text:find("stack traceback", 1, true), where .. " printed a traceback:\n" .. text)
        assert(not text:find("%.lua:%d+: "), where .. " printed a Lua error:\n" .. text)
      end
    end
  end)
end)
