-- licensor.demo -- `make demo`: the vendor FAQ's own questions answered on
-- the bundled SmarterTools catalogue, for a handful of sample licenses.
local licensor = require "licensor"
local tabulate = require "licensor.tabulate"
local core = require "licensor.core"

local _M = {}

local format = string.format
local portal_demo

local function shift(date, days)
  return licensor.date(licensor.day(date) + days)
end

local function money(cents)
  return format("$%d.%02d", math.floor(cents / 100), cents % 100)
end

-- Why a license gets the build it gets, in the FAQ's words.
local function reason(cat, lic, on)
  local status, msg = cat:status(lic, on)
  if not status then return msg end
  if not status.valid then return status.message end
  if lic.version_lock then
    return format("tied to %d.x: the last %d.x build", lic.version_lock, lic.version_lock)
  end
  if status.kind == "lease" then return "active lease: every new build" end
  if status.kind == "trial" then return "trial day " .. (licensor.day(on) - licensor.day(lic.start) + 1) end
  if status.ms == "active" then return "M&S active to " .. status.ms_expires .. ": every new build" end
  if status.ms == "expired" then
    return "M&S expired " .. status.ms_expires .. ": newest build released by then"
  end
  return "no M&S: newest build released by the purchase day"
end

local function sample_licenses(today)
  return {
    { key = "ST-ENT5-LAPSED", product = "smartertrack", edition = "enterprise", level = 5,
      start = "2017-12-07", ms_expires = "2018-12-06" },
    { key = "SM-PRO250-14X", product = "smartermail", edition = "professional", level = 250,
      start = "2016-10-03", version_lock = 14 },
    { key = "SM-ENT1000-MS", product = "smartermail", edition = "enterprise", level = 1000,
      start = shift(today, -200), ms_expires = licensor.term(shift(today, -200), 12),
      addons = { eas = licensor.term(shift(today, -200), 12) } },
    { key = "SS-LEASE", product = "smarterstats", kind = "lease", edition = "enterprise", level = 100,
      start = "2021-03-01" },
    { key = "SS-LEASE-ENDED", product = "smarterstats", kind = "lease", edition = "professional",
      level = 25, start = "2020-01-15", lease_ended = "2022-01-15" },
    { key = "ST-TRIAL-NEW", product = "smartertrack", kind = "trial", start = shift(today, -9) },
    { key = "ST-TRIAL-OLD", product = "smartertrack", kind = "trial", start = shift(today, -39) },
    { key = "SM-DISABLED", product = "smartermail", edition = "enterprise", level = 250,
      start = "2019-05-01", ms_expires = "2021-04-30", disabled = "2021-08-02" },
  }
end

local function section(say, title)
  say("")
  say(title)
  say(string.rep("=", #title))
end

local function builds_today(say, cat, today)
  section(say, "Which build may each license install today (" .. today .. ")?")
  local rows = {}
  for _, lic in ipairs(sample_licenses(today)) do
    local build, _, code = cat:eligible(lic, today)
    rows[#rows + 1] = { key = lic.key, build = build and build.number or code,
                        version = build and build.version, released = build and build.released,
                        why = reason(cat, lic, today) }
  end
  say(tabulate.render({ { "license", "key" }, { "build", "build" }, { "version", "version" },
                          { "released", "released" }, { "why", "why" } }, rows))
end

local function addons_after_lapse(say, cat, today)
  section(say, "What happens to paid add-ons when M&S is not renewed?")
  local lic = sample_licenses(today)[3]
  local renewed = licensor.renew(lic, lic.ms_expires)
  local after = shift(lic.ms_expires, 1)
  local rows = {
    { when = lic.ms_expires .. " (last M&S day)", eas = cat:addon_status(lic, "eas", lic.ms_expires),
      build = cat:eligible(lic, lic.ms_expires).number },
    { when = after .. " (not renewed)", eas = cat:addon_status(lic, "eas", after),
      build = cat:eligible(lic, shift(after, 400)).number .. " forever" },
    { when = after .. " (renewed)", eas = cat:addon_status(renewed, "eas", after),
      build = "every new build to " .. renewed.ms_expires },
  }
  say(tabulate.render({ { "SM-ENT1000-MS on", "when" }, { "EAS add-on", "eas" },
                          { "builds", "build" } }, rows))
end

local function upgrade_quotes(say, cat, today)
  section(say, "What does an edition or level upgrade cost (same major version)?")
  local lic = { key = "ST-PRO5", product = "smartertrack", edition = "professional", level = 5,
                start = shift(today, -100), ms_expires = licensor.term(shift(today, -100), 12) }
  local rows = {}
  local targets = { { level = 10 }, { edition = "enterprise" }, { edition = "enterprise", level = 20 },
                    { edition = "enterprise", level = "unlimited" }, { level = 3 } }
  for _, target in ipairs(targets) do
    local price, msg = cat:quote_upgrade(lic, target, today)
    rows[#rows + 1] = { to = (target.edition or lic.edition) .. " " .. tostring(target.level or lic.level),
                        answer = price and money(price) or msg }
  end
  say("SmarterTrack professional, 5 agents, M&S active:")
  say(tabulate.render({ { "upgrade to", "to" }, { "pay", "answer" } }, rows))
end

local function rollbacks(say, cat)
  section(say, "May an installation roll back to an earlier build?")
  local lic = { product = "smartermail", start = "2018-01-01", ms_expires = "2030-01-01" }
  local newest = cat:builds("smartermail")
  newest = newest[#newest].number
  local rows = {}
  for _, pair in ipairs({ { newest, 9654 }, { 9654, 6837 }, { 6875, 6798 }, { 6347, 6100 } }) do
    local ok, msg = cat:can_rollback(lic, pair[1], pair[2])
    rows[#rows + 1] = { from = pair[1], to = pair[2], answer = ok and "yes" or ("no: " .. msg) }
  end
  say(tabulate.render({ { "from", "from" }, { "to", "to" }, { "allowed", "answer" } }, rows))
end

local function two_servers(say, cat, today)
  section(say, "A key seen on two servers: migration or fraud?")
  local lic = { key = "SM-PRO250-14X", product = "smartermail", start = "2016-10-03", version_lock = 14 }
  local rows = {}
  for _, days in ipairs({ 10, 40, 50 }) do
    local since = shift(today, -(days - 1))
    local installs = { { server = "mail-old", first_seen = "2019-01-01", last_seen = today },
                       { server = "mail-new", first_seen = since, last_seen = today } }
    local m = cat:migration(lic, installs, today)
    local first_step = m.state == "fraud" and shift(m.deadline, 1) or nil
    local due = m.state == "fraud" and cat:ladder({ since = m.since, first_step = first_step }, today) or {}
    rows[#rows + 1] = { days = days, state = m.state, active = m.active .. " (" .. m.allowed .. " allowed)",
                        window = m.since and (m.since .. " .. " .. m.deadline),
                        next = #due > 0 and table.concat(due, ", ") or "-" }
  end
  say(tabulate.render({ { "days on 2 servers", "days" }, { "state", "state" }, { "active", "active" },
                          { "30-day window", "window" },
                          { "due today (first step on day 31)", "next" } }, rows))
end

------------------------------------------------------------------------
-- The store: a demo database and a sweep escalating a fraud case
------------------------------------------------------------------------

-- A small deterministic generator (Park-Miller: products stay below 2^53,
-- so Lua 5.4 and LuaJIT draw the same numbers and build the same database).
local function generator(seed)
  local state = seed
  return function(n)
    state = state * 48271 % 2147483647
    return state % n + 1
  end
end

-- Levels that both editions of each product price (the store issues only
-- levels the price table has).
local PRODUCTS = {
  { id = "smartermail", levels = { 100, 250, 500, 1000 }, addons = { "eas", "ews", "message_sniffer" } },
  { id = "smartertrack", levels = { 5, 10, 20 }, addons = { "live_chat_translation" } },
  { id = "smarterstats", levels = { 25, 100 }, addons = { "seo_reports" } },
}

-- Issues `count` licenses of every kind and activates most of them.
local function populate(store, today, count)
  local rand = generator(2026)
  local cat = store:catalogue()
  local issued, active = 0, 0
  for i = 1, count do
    local p = PRODUCTS[rand(#PRODUCTS)]
    local roll = rand(20)
    local kind = roll <= 14 and "perpetual" or roll <= 18 and "lease" or "trial"
    local start = shift(today, -(kind == "trial" and rand(60) or rand(2500)))
    local spec = { product = p.id, edition = rand(3) == 1 and "enterprise" or "professional",
                   level = p.levels[rand(#p.levels)], kind = kind, start = start,
                   owner = "customer-" .. i, email = "it@customer-" .. i .. ".example",
                   failover = rand(8) == 1 or nil,
                   addons = rand(3) == 1 and { p.addons[rand(#p.addons)] } or nil }
    if p.id == "smartermail" and kind == "perpetual" and rand(10) == 1 then spec.version_lock = 16 end
    local lic = assert(store:issue(spec))
    issued = issued + 1
    if kind == "perpetual" and rand(3) ~= 1 then
      for year = 1, rand(4) do
        local renewal_day = shift(lic.ms_expires, -rand(20))
        if renewal_day < today then lic = assert(store:renew(lic.key, renewal_day)) end
        if year > 10 then break end
      end
    end
    if kind == "lease" and rand(4) == 1 then store:end_lease(lic.key, shift(start, rand(700))) end
    local build = cat:eligible(lic, today)
    if build and rand(10) > 1 then
      local verdict = store:activate(lic.key, "server-" .. i .. ".example.net", build.number, today)
      if verdict.ok then active = active + 1 end
    end
  end
  return issued, active
end

-- One key moves to a new server and keeps the old one: sweep it daily.
local function fraud_story(say, store, today)
  local start = shift(today, -400)
  local lic = assert(store:issue{ product = "smartermail", edition = "enterprise", level = 1000,
                                  start = start, owner = "two-servers-inc", addons = { "eas" } })
  local first = shift(today, -55)
  local build = store:catalogue():eligible(lic, first).number
  store:activate(lic.key, "mail-old.example.net", build, first)
  local second = shift(today, -50)
  store:activate(lic.key, "mail-new.example.net", build, second)
  local rows = {}
  for offset = -50, 0 do
    local day = shift(today, offset)
    store:checkin(lic.key, "mail-old.example.net", day)
    store:checkin(lic.key, "mail-new.example.net", day)
    local state = store:catalogue():migration(lic, store:installations(lic.key), day).state
    local taken = store:sweep(day)
    local names = {}
    for _, t in ipairs(taken) do if t.key == lic.key then names[#names + 1] = t.action end end
    if #names > 0 or offset == -50 then
      local took = #names > 0 and table.concat(names, ", ") or "-"
      rows[#rows + 1] = { day = day, state = state, actions = took }
    end
  end
  section(say, "A key on two servers since " .. second .. ", swept every day")
  say(tabulate.render({ { "day", "day" }, { "window", "state" }, { "sweep took", "actions" } }, rows))
  local final = store:get(lic.key)
  say("key " .. lic.key .. ": disabled " .. tostring(final.disabled) ..
      " (" .. tostring(final.disabled_reason) .. ")")
  local activation = store:activate(lic.key, "mail-third.example.net", build, today)
  say("a further activation today: " .. (activation.ok and "accepted" or activation.code))
  return lic
end

-- Starts licensor.receiver on a free loopback port; its pid, URL and log.
local function start_receiver()
  local log = os.tmpname()
  local pid, port = require("licensor.receiver").start(log)
  return pid, "http://127.0.0.1:" .. port .. "/licensor", log
end

-- Delivers the outbox (the ladder's and the reminders' actions) to a
-- webhook receiver the demo starts, and prints what it received.
local function deliver_to_receiver(say, store)
  local webhook = require "licensor.webhook"
  local cjson = require "cjson"
  local pid, url, log = start_receiver()
  local secret = core.random_hex(16)   -- the demo webhooks' shared secret
  for _, action in ipairs(require("licensor.store.common").ACTIONS) do
    store:on(action, webhook.handler{ url = url, secret = secret, timeout = 5 })
  end
  local delivered, pending = store:deliver()
  core.process.stop(pid, 0)
  local rows, counts, order = {}, {}, {}
  for line in io.lines(log) do
    local got = cjson.decode(line)
    local t, mac = got.signature:match("^t=(%d+),v1=(%x+)$")
    local payload = cjson.decode(got.body)
    if not counts[payload.action] then order[#order + 1] = payload.action end
    counts[payload.action] = (counts[payload.action] or 0) + 1
    if payload.case or #rows < 6 then
      local verified = core.hmac_sha256(secret, t .. "." .. got.body) == mac
      rows[#rows + 1] = { id = payload.id, action = payload.action, key = payload.key,
                          refers_to = payload.refers_to or "-", signature = verified and "verified" or "BAD" }
    end
  end
  os.remove(log)
  section(say, "The outbox, delivered to a webhook receiver at " .. url)
  say(tabulate.render({ { "event", "id" }, { "action", "action" }, { "key", "key" },
                        { "refers to", "refers_to" }, { "signature", "signature" } }, rows))
  local parts = {}
  for _, action in ipairs(order) do parts[#parts + 1] = action .. " " .. counts[action] end
  say("received: " .. table.concat(parts, ", "))
  say("outbox: " .. delivered .. " actions delivered, " .. pending .. " pending")
end

-- The first reminder of M&S as its customer reads it by mail (licensor
-- deliver --smtp; here composed from the bundled template, not sent).
local function first_mail(store)
  local mail = require "licensor.mail"
  local templates = assert(mail.templates())
  for _, row in ipairs(store:outbox{ state = "all", limit = 1000 }) do
    if row.action == "ms_expiring" then
      local lic, subject, body = mail.compose(store, { id = row.id, key = row.key, action = row.action,
                                                       on = row.on_day, refers_to = row.refers_to,
                                                       detail = row.detail }, templates)
      if lic then return row.id, lic.email, subject, body end
    end
  end
end

local function show_mail(say, store)
  local id, to, subject, body = first_mail(store)
  if not id then return end
  section(say, "Outbox row " .. id .. " by mail (licensor deliver --smtp)")
  say("To: " .. to)
  say("Subject: " .. subject)
  say("")
  say((body:gsub("\n$", "")))
end

-- Builds the demo database at path (replacing it) and tells its story.
-- The FAQ's customer in the portal: the license (with an address), the
-- artifact directory and a link secret named after the database, and the
-- commands that serve them.  Nothing is started: the commands are
-- printed for the reader to run.
portal_demo = function(say, store, path)
  local lic = assert(store:issue{ product = "smartertrack", edition = "enterprise", level = 5,
                                  start = "2017-12-07", owner = "Acme Corp", email = "it@acme.example" })
  -- build/demo.db -> build/demo-artifacts/, build/demo-link.secret
  local base = path:gsub("%.db$", "")
  local artifacts, secret = base .. "-artifacts", base .. "-link.secret"
  local files = _M.write_artifacts(artifacts)
  assert(require("licensor.files").write(secret, core.random_hex(32) .. "\n", { replace = true }))
  local me = core.process.user()
  local user = (me and me.uid == 0) and (" --user " .. me.name) or ""
  local url = "http://127.0.0.1:8080"
  section(say, "The customer portal on this database")
  say(format("%s (SmarterTrack Enterprise, 5 agents, M&S expired on December 6, 2018) belongs to "
             .. "it@acme.example; %d demo build files are in %s.", lic.key, files, artifacts))
  say("Run these, each in its own terminal, from the checkout (eval \"$(make -s path)\" first):")
  say("  /usr/bin/python3 -m aiosmtpd -n -l 127.0.0.1:18025      # prints each mail, sign-in links included")
  say(format("  licensor --db %s gateway --listen 127.0.0.1:8080 --artifacts %s --link-secret %s "
             .. "--public-url %s%s", path, artifacts, secret, url, user))
  say(format("  licensor --db %s deliver --smtp 127.0.0.1:18025 --mail-from licenses@vendor.example "
             .. "--portal-url %s --link-secret %s --watch --interval 2", path, url, secret))
  say("Then open " .. url .. "/portal/, ask for a link for it@acme.example, and follow the one the SMTP "
      .. "terminal prints: the license may install Build 6911 (released December 3, 2018), and downloads it.")
end

function _M.store_demo(today, say, path)
  today = today or licensor.today()
  say = say or print
  for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
  local store = assert(licensor.open(path, { synchronous = "normal" }))
  store:import(assert(licensor.catalogue_path("smartertools")))
  local issued, active = populate(store, today, 300)
  section(say, "Demo database " .. path)
  local counts = store:query([[SELECT kind, count(*) AS licenses, sum(disabled IS NOT NULL) AS disabled
    FROM licenses GROUP BY kind ORDER BY kind]])
  say(tabulate.render({ { "kind", "kind" }, { "licenses", "licenses" }, { "disabled", "disabled" } }, counts))
  say(issued .. " licenses issued, " .. active .. " installations activated")
  local lic = fraud_story(say, store, today)
  local events = store:events(lic.key)
  section(say, "Its event log")
  local rows = {}
  for _, e in ipairs(events) do
    if e.kind ~= "checkin" then rows[#rows + 1] = { at = e.at, kind = e.kind } end
  end
  say(tabulate.render({ { "at", "at" }, { "event", "kind" } }, rows))
  deliver_to_receiver(say, store)
  show_mail(say, store)
  portal_demo(say, store, path)
  store:close()
  return lic.key
end

------------------------------------------------------------------------
-- The demo artifact directory: the files the bundled catalogue's
-- downloads name, so the portal and the download route serve something
------------------------------------------------------------------------

-- A demo build file's bytes: one line naming the product, version, build
-- and platform, repeated (a few KB; the same on every machine and VM).
function _M.artifact_bytes(product_name, build, platform)
  local line = format("%s %s (build %d) for %s -- a licensor demo file, not the product\n",
                      product_name, build.version, build.number, platform)
  return string.rep(line, 48)
end

-- write_artifacts(dir) -> the number of files written: every `file`
-- download of the bundled catalogue, under dir (made when missing), with
-- the bytes whose sha256 and size the catalogue lists.
function _M.write_artifacts(dir)
  local cat = assert(licensor.load_catalogue(assert(licensor.catalogue_path("smartertools"))))
  local made, written = {}, 0
  for _, p in ipairs(cat:products()) do
    for _, build in ipairs(cat:builds(p.id)) do
      for _, d in ipairs(build.downloads or {}) do
        if d.file then
          local path = dir .. "/" .. d.file
          local parent = path:match("^(.*)/[^/]+$")
          if not made[parent] then
            assert(core.process.run({ "mkdir", "-p", "--", parent }) == 0, "cannot make " .. parent)
            made[parent] = true
          end
          -- plain writes: demo bytes need no fsync, and 0644 lets nginx's workers read them
          local f = assert(io.open(path, "wb"))
          assert(f:write(_M.artifact_bytes(p.name, build, d.platform)))
          assert(f:close())
          written = written + 1
        end
      end
    end
  end
  return written
end

-- run([today [, say [, db_path]]]): today defaults to the real day, say to
-- print; with db_path it also builds the demo database there.
function _M.run(today, say, db_path)
  today = today or licensor.today()
  say = say or print
  local cat = assert(licensor.load_catalogue(assert(licensor.catalogue_path("smartertools"))))
  say("licensor demo: " .. tostring(cat) .. (licensor.ffi and ", LuaJIT FFI path" or ""))
  builds_today(say, cat, today)
  addons_after_lapse(say, cat, today)
  upgrade_quotes(say, cat, today)
  rollbacks(say, cat)
  two_servers(say, cat, today)
  if db_path then _M.store_demo(today, say, db_path) end
  say("")
end

return _M
