-- portal.lua -- `make bench`, the portal part, with wrk against a real
-- gateway (2 workers, SQLite, synchronous=normal) on loopback, in one run:
--   * the licenses page of an owner with 50 licenses, with a session:
--     pages per second and p99 next to /healthz's (the ratio);
--   * sign-ins through the outbox: POST /portal/signin for addresses that
--     have licenses, each answered and then written (a sign-in row and an
--     outbox row, mail delivery excluded): the rows written per second,
--     next to /healthz's requests per second.
-- The per-client limits are off (--rate-per-ip 0): one address sends
-- everything.
local licensor = require "licensor"
local links = require "licensor.links"
local gateway = require "support.gateway"
local http = require "socket.http"
local ltn12 = require "ltn12"
local wrk = require "bench.wrkrun"

local format = string.format

local LICENSES = 50
local OWNERS = tonumber(os.getenv("BENCH_PORTAL_OWNERS")) or 15000
local DURATION = tonumber(os.getenv("BENCH_SECONDS") or "5")

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir))
local db = dir .. "/portal.db"
local secret_file = dir .. "/link.secret"
local secret = require("licensor.core").random_hex(32)
local f = assert(io.open(secret_file, "w"))
f:write(secret, "\n")
f:close()
local keys = links.keys(secret)

-- The owner of 50 licenses (SmarterTrack and SmarterMail, lapsed and
-- current M&S), and OWNERS owners of one license each for the sign-ins.
local store = assert(licensor.open(db, { synchronous = "normal" }))
assert(store:import(licensor.catalogue_path("smartertools")))
local OWNER = "fifty@acme.example"
for i = 1, LICENSES do
  local product = i % 2 == 0 and "smartertrack" or "smartermail"
  assert(store:issue{ product = product, edition = "enterprise", level = product == "smartertrack" and 5 or 250,
                      start = format("201%d-0%d-07", i % 9, 1 + i % 9), email = OWNER, owner = "Acme" })
end
local emails_file = dir .. "/emails"
local ef = assert(io.open(emails_file, "w"))
for i = 1, OWNERS do
  local email = format("owner%d@customer.example", i)
  assert(store:issue{ product = "smartertrack", edition = "professional", level = 5, start = "2018-03-01",
                      email = email })
  ef:write(email, "\n")
end
ef:close()

-- A session for the owner of 50, made as the portal makes one.
local now = os.time()
assert(store:portal_signin(OWNER, now))
local id = store:outbox{ limit = 100000 }[1].detail.signin
local token = assert(store:portal_redeem(id, now))
local session_cookie = "licensor_session=" .. token .. "." .. links.sign(keys.session, "session " .. token)
store:close()

local server = gateway.start{ db = db, today = "2019-06-01", workers = 2, synchronous = "normal",
                              link_secret_file = secret_file, rate_per_ip = 0, rate_per_key = 0 }

-- The sign-in form's pre-session cookie and token, from the form itself.
local chunks = {}
local _, status, headers = http.request{ url = server.url .. "/portal/", sink = ltn12.sink.table(chunks) }
assert(status == 200, "GET /portal/ answered " .. tostring(status))
local signin_cookie = assert(headers["set-cookie"]:match("(licensor_signin=[%x.]+)"))
local csrf = assert(table.concat(chunks):match('name="csrf" value="(%x+)"'))

-- The page must be the owner's 50 licenses, not a sign-in redirect.
chunks = {}
_, status = http.request{ url = server.url .. "/portal/licenses", headers = { Cookie = session_cookie },
                          sink = ltn12.sink.table(chunks) }
local _, rows = table.concat(chunks):gsub('<td data%-label="License">', "")
assert(status == 200 and rows == LICENSES, "the licenses page answered " .. tostring(status) .. " with " ..
       rows .. " rows")

local ok, err = pcall(function()
  local health_rps, health_p99 = wrk(server.url .. "/healthz")
  local page_script = dir .. "/page.lua"
  local ps = assert(io.open(page_script, "w"))
  ps:write('wrk.headers["Cookie"] = "', session_cookie, '"\n')
  ps:close()
  local page_rps, page_p99 = wrk(server.url .. "/portal/licenses", page_script)
  print(format("portal   /healthz %8.0f req/s (p99 %.2f ms)   licenses page, 50 licenses %8.0f req/s " ..
    "(p99 %.2f ms)   ratio %.2f", health_rps, health_p99, page_rps, page_p99, page_rps / health_rps))

  local count = assert(licensor.open(db))
  local before = #count:outbox{ limit = 1000000 }
  count:close()
  local signin_script = dir .. "/signin.lua"
  local ss = assert(io.open(signin_script, "w"))
  ss:write(format([[
local emails = {}
for line in io.lines(%q) do emails[#emails + 1] = line end
local n = 0
wrk.method = "POST"
wrk.headers["Cookie"] = %q
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
function request()
  n = n + 1
  local body = "csrf=%s&email=" .. emails[(n * 7919) %% #emails + 1]
  return wrk.format("POST", "/portal/signin", nil, body)
end
]], emails_file, signin_cookie, csrf))
  ss:close()
  local signin_rps, signin_p99 = wrk(server.url .. "/portal/signin", signin_script)
  -- Written after each answer: a moment for the last ones to land.
  require("socket").sleep(0.5)
  local check = assert(licensor.open(db))
  local written = #check:outbox{ limit = 1000000 } - before
  check:close()
  print(format("portal   sign-ins: %8.0f answered/s (p99 %.2f ms), %8.0f written to the outbox/s " ..
    "(mail excluded; at most 5 per address in 15 minutes of %d addresses)   ratio to /healthz %.2f",
    signin_rps, signin_p99, written / DURATION, OWNERS, written / DURATION / health_rps))
end)
server:stop()
gateway.stop_all()
os.execute("rm -rf " .. dir)
if not ok then error(err, 0) end
