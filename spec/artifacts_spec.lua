-- Build files against the catalogue: core.sha256_file streams a file's
-- digest, licensor.demo.write_artifacts writes exactly the files the
-- bundled catalogue's downloads name, and `licensor artifacts check DIR`
-- finds every file that is missing, differs, or is not a regular file
-- inside DIR (symlinks out of it, a FIFO, a directory).
local licensor = require "licensor"
local core = require "licensor.core"
local artifacts = require "licensor.artifacts"
local demo = require "licensor.demo"
local run = require "support.cli"
local stores = require "support.stores"
local cjson = require "cjson"

-- Shell commands run without the sanitizer's preload (LICENSOR_SANITIZED
-- runs): find, sed or cp leaking at exit is not licensor's.
local function sh(command)
  local ok = os.execute("env -u LD_PRELOAD sh -c '" .. command:gsub("'", "'\\''") .. "'")
  return ok == true or ok == 0
end

-- A new empty directory.
local function new_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(sh("mkdir -p '" .. dir .. "'"))
  return dir
end

local write = require("support.files").write_bytes

local read = require("support.files").read

local bundled = assert(licensor.load_catalogue(assert(licensor.catalogue_path("smartertools"))))

-- Every file download of a catalogue, as "product build platform file".
local function file_downloads(cat)
  local list = {}
  for _, p in ipairs(cat:products()) do
    for _, b in ipairs(cat:builds(p.id)) do
      for _, d in ipairs(b.downloads or {}) do
        if d.file then list[#list + 1] = d.file end
      end
    end
  end
  table.sort(list)
  return list
end

-- The files under dir, relative to it, sorted.
local function files_under(dir)
  local p = assert(io.popen("cd '" .. dir .. "' && env -u LD_PRELOAD find . -type f"))
  local list = {}
  for line in p:lines() do list[#list + 1] = line:sub(3) end
  table.sort(list)
  p:close()
  return list
end

-- Results of artifacts.check by their file.
local function by_file(results)
  local t = {}
  for _, r in ipairs(results) do t[r.file] = r end
  return t
end

describe("core.sha256_file", function()
  local dir
  setup(function() dir = new_dir() end)
  teardown(function() sh("rm -rf '" .. dir .. "'") end)

  it("gives the digest and size of a file, streamed past 64 KiB reads", function()
    write(dir .. "/abc", "abc")
    assert.are.same({ "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 3 },
                    { core.sha256_file(dir .. "/abc") })
    write(dir .. "/empty", "")
    assert.are.same({ "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0 },
                    { core.sha256_file(dir .. "/empty") })
    -- across chunk boundaries: 64 KiB exactly, and 3 chunks and a bit
    for _, size in ipairs({ 65536, 65537, 3 * 65536 + 17 }) do
      local text = string.rep("licensor", math.floor(size / 8) + 1):sub(1, size)
      write(dir .. "/big", text)
      assert.are.same({ core.sha256(text, true), size }, { core.sha256_file(dir .. "/big") })
    end
  end)

  it("answers nil, message, io_error for what is not a readable regular file, without waiting on a FIFO", function()
    assert.are.same({ nil, dir .. "/nope: No such file or directory", "io_error" },
                    { core.sha256_file(dir .. "/nope") })
    assert.are.same({ nil, dir .. ": Is a directory", "io_error" }, { core.sha256_file(dir) })
    assert.is_true(sh("mkfifo '" .. dir .. "/fifo'"))
    assert.are.same({ nil, dir .. "/fifo: not a regular file", "io_error" }, { core.sha256_file(dir .. "/fifo") })
    assert.are.same({ nil, "/dev/null: not a regular file", "io_error" }, { core.sha256_file("/dev/null") })
    assert.has_error(function() core.sha256_file() end)
  end)
end)

describe("demo artifacts", function()
  local dir
  setup(function()
    dir = new_dir()
    assert.are.equal(192, demo.write_artifacts(dir))
  end)
  teardown(function() sh("rm -rf '" .. dir .. "'") end)

  it("writes exactly the files the bundled catalogue's downloads name", function()
    local expected = file_downloads(bundled)
    assert.are.equal(192, #expected)   -- 96 SmarterTrack builds, 2 platforms each
    assert.are.same(expected, files_under(dir))
  end)

  it("agrees with the catalogue's sha256 and size literals: artifacts check finds every file ok", function()
    local results, urls = artifacts.check(bundled, dir)
    assert.are.equal(192, #results)
    assert.are.equal(0, urls)
    for _, r in ipairs(results) do
      assert.are.same({ r.file, "ok", r.expected_size, r.expected_sha256 }, { r.file, r.result, r.size, r.sha256 })
    end
  end)

  it("writes deterministic bytes naming product, version and platform, a few KB each", function()
    local file = "smartertrack/SmarterTrack_100.0.6911_linux-x64.zip"
    local text = read(dir .. "/" .. file)
    assert.matches("^SmarterTrack 100%.0%.6911 %(build 6911%) for linux%-x64", text)
    assert.is_true(#text > 2000 and #text < 10000)
    local again = new_dir()
    demo.write_artifacts(again)
    assert.are.equal(text, read(again .. "/" .. file))
    sh("rm -rf '" .. again .. "'")
  end)

  it("serves the FAQ: Enterprise 5 agents, M&S expired 2018-12-06, may download Build 6911 for both platforms", function()
    local lic = { product = "smartertrack", edition = "enterprise", level = 5, start = "2017-12-07",
                  ms_expires = "2018-12-06" }
    local status = assert(bundled:status(lic, "2026-11-26"))
    assert.are.same({ 6911, "2018-12-03" }, { status.eligible.number, status.eligible.released })
    local platforms = {}
    for _, d in ipairs(status.downloads) do
      platforms[#platforms + 1] = d.platform
      assert.are.same({ d.sha256, d.size }, { core.sha256_file(dir .. "/" .. d.file) })
      assert.are.equal("SmarterTrack_100.0.6911_" .. d.platform .. ".zip", d.name)
    end
    assert.are.same({ "windows-x64", "linux-x64" }, platforms)
  end)
end)

describe("licensor artifacts check", function()
  local db, dir
  setup(function()
    db = stores.path()
    assert.are.equal(0, (run("--db", db, "init")))
    assert.are.equal(0, (run("--db", db, "import", "smartertools")))
  end)
  before_each(function()
    dir = new_dir()
    demo.write_artifacts(dir)
  end)
  after_each(function() sh("rm -rf '" .. dir .. "'") end)
  teardown(function() stores.remove(db) end)

  it("artifacts demo DIR writes the files check then finds ok; a file in DIR's place is refused", function()
    local fresh = new_dir() .. "/demo"
    local status, out, err = run("--db", db, "artifacts", "demo", fresh)
    assert.are.same({ 0, "wrote 192 demo build files (the bundled catalogue's downloads) to " .. fresh, "" },
                    { status, out, err })
    status, out = run("--db", db, "artifacts", "check", fresh)
    assert.are.equal(0, status)
    assert.matches("192 files: 192 ok$", out)
    local file = fresh .. "/smartertrack/SmarterTrack_100.0.6911_linux-x64.zip"
    local _
    status, _, err = run("--db", db, "artifacts", "demo", file)
    assert.are.equal(1, status)
    assert.matches("is not a directory", err, 1, true)
    assert.are.equal(2, (run("--db", db, "artifacts", "fetch", fresh)))
    sh("rm -rf '" .. fresh:gsub("/demo$", "") .. "'")
  end)

  it("prints one line per file naming product, build, platform and file, and a summary; exit 0", function()
    local status, out, err = run("--db", db, "artifacts", "check", dir)
    assert.are.same({ 0, "" }, { status, err })
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal(193, #lines)
    assert.are.equal("smartertrack build 6075 windows-x64 smartertrack/SmarterTrack_12.0.6075_windows-x64.zip: ok",
                     lines[1])
    assert.are.equal("192 files: 192 ok", lines[193])
  end)

  it("finds missing, resized, altered files and exits 1 naming each", function()
    local base = dir .. "/smartertrack/SmarterTrack_100.0."
    os.remove(base .. "6911_linux-x64.zip")
    write(base .. "6947_linux-x64.zip", read(base .. "6947_linux-x64.zip") .. "x")
    local text = read(base .. "6989_linux-x64.zip")
    write(base .. "6989_linux-x64.zip", "X" .. text:sub(2))
    local status, out, err = run("--db", db, "artifacts", "check", dir)
    assert.are.equal(1, status)
    assert.matches("smartertrack build 6911 linux%-x64 smartertrack/SmarterTrack_100%.0%.6911_linux%-x64%.zip: missing\n",
                   out)
    assert.matches("smartertrack build 6947 linux%-x64 [^\n]+: size differs %(the catalogue says %d+ bytes, " ..
                   "the file has %d+%)\n", out)
    assert.matches("smartertrack build 6989 linux%-x64 [^\n]+: sha256 differs %(the catalogue says %x+, " ..
                   "the file hashes to %x+%)\n", out)
    assert.matches("192 files: 189 ok, 1 missing, 1 size differs, 1 sha256 differs$", out)
    assert.are.equal("licensor: artifacts_differ: 3 of 192 files in " .. dir ..
                     " are missing or differ from the catalogue", err)
  end)

  it("refuses a file that is a symlink, even to a good copy, and one under a symlinked directory", function()
    local base = dir .. "/smartertrack/SmarterTrack_100.0."
    local outside = new_dir()
    -- a symlink to an identical file outside DIR, one to /etc/passwd, one inside DIR
    assert(sh("cp '" .. base .. "6911_linux-x64.zip' '" .. outside .. "/copy.zip'"))
    assert(sh("ln -sf '" .. outside .. "/copy.zip' '" .. base .. "6911_linux-x64.zip'"))
    assert(sh("ln -sf /etc/passwd '" .. base .. "6947_linux-x64.zip'"))
    assert(sh("cp '" .. base .. "6989_linux-x64.zip' '" .. dir .. "/same.zip' && ln -sf ../same.zip '" ..
              base .. "6989_linux-x64.zip'"))
    local results = by_file(artifacts.check(bundled, dir))
    for _, number in ipairs({ 6911, 6947, 6989 }) do
      local r = results["smartertrack/SmarterTrack_100.0." .. number .. "_linux-x64.zip"]
      assert.are.same({ "not_regular", "a symlink: " .. base .. number .. "_linux-x64.zip" }, { r.result, r.message })
    end
    -- the directory itself swapped for a symlink to a full copy of it
    assert(sh("mv '" .. dir .. "/smartertrack' '" .. outside .. "/smartertrack' && ln -s '" .. outside ..
              "/smartertrack' '" .. dir .. "/smartertrack'"))
    local status, out = run("--db", db, "artifacts", "check", dir)
    assert.are.equal(1, status)
    assert.matches("192 files: 192 not a regular file inside DIR$", out)
    assert.matches(": not a regular file inside DIR %(a symlink: " .. dir:gsub("%p", "%%%0") .. "/smartertrack%)\n", out)
    sh("rm -rf '" .. outside .. "'")
  end)

  it("refuses a directory or a FIFO in a file's place, without waiting on the FIFO", function()
    local base = dir .. "/smartertrack/SmarterTrack_100.0."
    os.remove(base .. "6911_linux-x64.zip")
    assert(sh("mkdir '" .. base .. "6911_linux-x64.zip'"))
    os.remove(base .. "6947_linux-x64.zip")
    assert(sh("mkfifo '" .. base .. "6947_linux-x64.zip'"))
    local results = by_file(artifacts.check(bundled, dir))
    assert.are.same({ "not_regular", "not a file: " .. base .. "6911_linux-x64.zip" },
                    { results["smartertrack/SmarterTrack_100.0.6911_linux-x64.zip"].result,
                      results["smartertrack/SmarterTrack_100.0.6911_linux-x64.zip"].message })
    assert.are.equal("not_regular", results["smartertrack/SmarterTrack_100.0.6947_linux-x64.zip"].result)
    -- a file where the directory should be
    assert(sh("rm -rf '" .. dir .. "/smartertrack' && touch '" .. dir .. "/smartertrack'"))
    results = artifacts.check(bundled, dir)
    assert.are.same({ "not_regular", "not a directory: " .. dir .. "/smartertrack" },
                    { results[1].result, results[1].message })
  end)

  it("answers --json with every file's result and the counts", function()
    os.remove(dir .. "/smartertrack/SmarterTrack_100.0.6911_windows-x64.zip")
    local status, out, err = run("--db", db, "--json", "artifacts", "check", dir)
    assert.are.same({ 1, "" }, { status, err })
    local answer = cjson.decode(out)
    assert.are.same({ false, 192, 1, 0, 192 },
                    { answer.ok, answer.checked, answer.problems, answer.urls, #answer.files })
    local missing
    for _, f in ipairs(answer.files) do
      if f.result ~= "ok" then missing = f end
    end
    assert.are.same({ "smartertrack", 6911, "100.0.6911", "windows-x64", "missing" },
                    { missing.product, missing.build, missing.version, missing.platform, missing.result })
    assert(sh("rm -rf '" .. dir .. "/smartertrack'"))
    status, out = run("--db", db, "--json", "artifacts", "check", dir .. "/")
    assert.are.equal(1, status)
    assert.are.equal(192, cjson.decode(out).problems)
  end)

  it("counts url downloads without fetching them, and says so when there are no file downloads", function()
    local path = stores.path()
    local store = assert(licensor.open(path, { synchronous = "normal" }))
    assert(store:import({ products = { { id = "p", editions = { "e" }, builds = {
      { number = 1, version = "1.0", released = "2020-01-01", downloads = {
        { platform = "any", url = "https://cdn.example.com/p-1.zip", sha256 = string.rep("a", 64), size = 5 } } },
      { number = 2, version = "2.0", released = "2021-01-01" } } } } }))
    store:close()
    local status, out = run("--db", path, "artifacts", "check", dir)
    assert.are.same({ 0, "the active catalogue names no file downloads; 1 url downloads not checked " ..
                         "(they live elsewhere)" }, { status, out })
    status, out = run("--db", path, "--json", "artifacts", "check", dir)
    assert.are.same({ 0, { ok = true, checked = 0, problems = 0, urls = 1, files = {} } }, { status, cjson.decode(out) })
    assert.matches('"files":%[%]', out)
    stores.remove(path)
  end)

  it("refuses a DIR that is not a directory, and a wrong subcommand, as usage (exit 2)", function()
    local status, _, err = run("--db", db, "artifacts", "check", dir .. "/nope")
    assert.are.same({ 2, "licensor: artifacts check: " .. dir .. "/nope is not a directory" }, { status, err })
    status = run("--db", db, "artifacts", "fix", dir)
    assert.are.equal(2, status)
  end)

  it("shows each listed build's download platforms in licensor catalogue", function()
    local status, out = run("--db", db, "catalogue", "smartertrack")
    assert.are.equal(0, status)
    assert.matches("newest builds: 9787 %(100%.0%.9787, 2026%-10%-18; windows%-x64, linux%-x64%)", out)
    local _, json = run("--db", db, "--json", "catalogue", "smartertrack")
    local newest = cjson.decode(json).products[1].newest[1]
    assert.are.same({ "windows-x64", "linux-x64" }, { newest.downloads[1].platform, newest.downloads[2].platform })
  end)
end)
