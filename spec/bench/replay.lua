-- replay.lua -- `make bench`: `licensor policy test` on a store of 100,000
-- licenses with 300,000 installations and their events: replay.run under
-- a proposed policy (a product layer and an eligible hook) and a proposed
-- catalogue (one more build), every decision of every license decided
-- twice: eligible builds, admissions, each installation's R9 (active),
-- the migration window on each later installation's first_seen and on
-- the last day, ladder steps, reminders and prices.  The target is under
-- 30 s.  The store is built once, through
-- store:import_licenses (installations restored), and each installation's
-- activation and a check-in that moved its build logged as the workflows
-- log them.  LICENSOR_BENCH_LICENSES makes it smaller.
local licensor = require "licensor"
local fixtures = require "support.fixtures"
local csv = require "licensor.csv"
local replay = require "licensor.replay"
local clock = require("licensor.core").monotonic_us

local N = tonumber(os.getenv("LICENSOR_BENCH_LICENSES")) or 100000

-- Three installations per license: one moved away in 2018, one running
-- since, and one that came and went in early 2019 (a migration's excess).
local function installations(i)
  local m = i % 10 + 1
  return string.format('[{"server":"old-%d","build":6790,"first_seen":"2018-%02d-03",' ..
    '"last_seen":"2018-11-20","deactivated":"2018-11-21"},' ..
    '{"server":"main-%d","build":6855,"first_seen":"2018-11-21","last_seen":"2019-03-01"},' ..
    '{"server":"spare-%d","build":6911,"first_seen":"2019-01-%02d","last_seen":"2019-02-%02d"}]',
    i, m, i, i, i % 28 + 1, i % 28 + 1)
end

local COLUMNS = { "key", "owner", "product", "edition", "level", "kind", "start", "ms_expires", "addons",
                  "installations" }
local lines = { csv.line(COLUMNS, #COLUMNS) }
for i = 1, N do
  local m = i % 10 + 1
  local mail = i % 4 == 0
  local row = { "", "customer-" .. i, mail and "smartermail" or "smartertrack",
                mail and "professional" or "enterprise", mail and 250 or 5, "perpetual",
                string.format("2018-%02d-01", m), string.format("2019-%02d-28", m),
                string.format("eas=2019-%02d-28", m), installations(i) }
  lines[#lines + 1] = csv.line(row, #COLUMNS)
end
local text = table.concat(lines, "\n") .. "\n"
lines = nil   -- luacheck: ignore lines

local path = os.tmpname()
local store = assert(licensor.open(path, { synchronous = "normal" }))
local t0 = clock()
assert(store:import(fixtures.catalogue_table()))
assert(#assert(store:import_licenses(text, "customers.csv")) == N)
-- The events the workflows would have logged: each activation, and a
-- check-in that moved the build on the installation's last day.
local db = store.db
db:begin()
db:exec([[INSERT INTO events (key, seq, at, kind, detail)
  SELECT key, 1 + seq, first_seen, 'activate', '{"server":"' || server || '"}' FROM installations]])
db:exec([[INSERT INTO events (key, seq, at, kind, detail)
  SELECT key, 10 + seq, last_seen, 'checkin', '{"server":"' || server || '","build":' || build || '}'
  FROM installations]])
db:commit()
local built = (clock() - t0) / 1e6

local catalogue = fixtures.catalogue_table()
table.insert(catalogue.products[1].builds, { number = 6960, version = "13.5.6960", released = "2019-02-01" })
local POLICY = [[
return {
  name = "bench",
  products = { smartermail = { migration_days = 45 } },
  eligible = function(ctx)
    if ctx.build and ctx.license.owner == "customer-7" then return { build = ctx.build.number } end
  end,
}
]]

-- A progress line when standard error is a terminal, as `licensor policy test` has.
local function progress(done, total)
  io.stderr:write(string.format("\rreplay: %d of %d licenses", done, total), done == total and "\n" or "")
end
local terminal = os.execute("[ -t 2 ]")

t0 = clock()
local report = assert(replay.run(store, { policy = POLICY, catalogue = catalogue,
                                          on = "2019-03-01",
                                          progress = (terminal == true or terminal == 0) and progress or nil }))
local seconds = (clock() - t0) / 1e6
assert(report.licenses == N and report.installations == 3 * N)
local decided = 0
for _, n in pairs(report.decisions) do decided = decided + n end
print(string.format("%-22s policy test: %d licenses, %d installations, %d decisions twice in %.2f s " ..
  "(%.0f licenses/s; %d changed; store built in %.1f s)", jit and jit.version or _VERSION, report.licenses,
  report.installations, decided, seconds, report.licenses / seconds, report.changed, built))
store:close()
os.remove(path)
os.remove(path .. "-wal")
os.remove(path .. "-shm")
