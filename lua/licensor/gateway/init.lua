-- licensor.gateway -- the HTTP/JSON face of the store inside nginx with
-- lua-nginx-module (doc/rules.md section 7).
--
--   init_worker_by_lua_block { require("licensor.gateway").init_worker{ db = "/var/lib/licensor.db" } }
--   location / { content_by_lua_block { require("licensor.gateway").handle() } }
--
-- Each worker opens its own store connection in init_worker (never in
-- init_by_lua, whose state the workers would share across fork); the
-- store reloads the catalogue when a newer version is imported.  Answers
-- are JSON only; bad input is a 4xx answer and never reaches the store;
-- every workflow, reads and writes, takes the server's own UTC day
-- (licensor.today, the day the CLI and the store use) or the day pinned
-- with init_worker{today=}.  Every refusal (403) carries `because`, the one
-- line of licensor.explain behind it, built only when refusing.
local licensor = require "licensor"
local core = require "licensor.core"
local failure = require "licensor.failure"
local request = require "licensor.gateway.request"
local metrics = require "licensor.gateway.metrics"
local limit = require "licensor.gateway.limit"
local work = require "licensor.gateway.work"
local remote = require "licensor.gateway.remote"
local constants = require "licensor.constants"
local files = require "licensor.files"
local explain = require "licensor.explain"
local cjson = require("cjson.safe").new()

local ngx = ngx
local type, pairs, pcall, tostring, tonumber, error = type, pairs, pcall, tostring, tonumber, error
local match, format = string.match, string.format
local refuse = request.refuse

cjson.encode_sparse_array(true)

local _M = {}

-- Default limits, requests per second: generous enough for an office of
-- installations behind one address and a busy key; 0 turns a limit off.
_M.RATE_PER_IP = 1000
_M.RATE_PER_KEY = 200

-- This worker's state, set by init_worker.  A store that could not be
-- opened is tried again, no sooner than `retry_at` (backoff doubling from
-- 100 ms to 5 s), so a worker started before its database recovers by
-- itself.  retry_at is on the monotonic clock (core.monotonic_ms): a wall
-- clock set back would hold the worker at 503 for as long.
local worker = { store = nil, today = nil, admin_digest = nil, limits = nil,
                 db = nil, synchronous = nil, signing_key_file = nil, retry_at = 0, backoff = 100 }

local RETRY_FIRST, RETRY_MAX = 100, 5000
local monotonic_ms = core.monotonic_ms
local sha256 = core.sha256

-- Opens the store, or notes when to try again.  A PostgreSQL store is the
-- thread pool's (licensor.gateway.remote): nothing connects here, and a
-- server that is down answers 503 until it is back.
local function open_store()
  if licensor.is_postgresql(worker.db) then
    worker.store = remote.new{ db = worker.db, signing_key_file = worker.signing_key_file,
                               stale_ms = worker.stale_ms, timeout_ms = worker.db_timeout_ms,
                               health_timeout_ms = worker.health_timeout_ms, read_db = worker.read_db,
                               threads = worker.threads, queue = worker.queue }
    return worker.store
  end
  -- SQLite's deadline is its busy timeout: a worker waits at most
  -- db_timeout_ms for another writer's lock, then answers 503 busy.
  local store, msg = licensor.open(worker.db, { synchronous = worker.synchronous,
                                                busy_ms = worker.db_timeout_ms })
  if store and worker.signing_key_file then
    local id, err = store:use_signing_key(worker.signing_key_file)
    if not id then
      store:close()
      store, msg = nil, err
    end
  end
  if store then
    worker.store, worker.backoff = store, RETRY_FIRST
    return store
  end
  ngx.log(ngx.ERR, "licensor: cannot open the store (retrying in ", worker.backoff, " ms): ", msg)
  worker.retry_at = monotonic_ms() + worker.backoff
  worker.backoff = math.min(worker.backoff * 2, RETRY_MAX)
  return nil
end

------------------------------------------------------------------------
-- Worker start
------------------------------------------------------------------------

-- The admin token's SHA-256 digest (raw), from init_worker's
-- admin_token_sha256 (hex: `licensor gateway` read the file before nginx
-- started) or admin_token_file; nil when neither is given (admin routes
-- off).  A file that cannot be read or holds no token is no silent "off":
-- the worker logs it at ALERT and every admin route answers 503
-- admin_unavailable, naming the file, until nginx is restarted.
local function read_token(opts)
  if opts.admin_token_sha256 then
    local hex = opts.admin_token_sha256
    if type(hex) ~= "string" or not hex:match("^" .. ("%x"):rep(64) .. "$") then
      error("licensor.gateway: admin_token_sha256 must be 64 hex digits", 3)
    end
    return (hex:gsub("%x%x", function(byte) return string.char(tonumber(byte, 16)) end))
  end
  local path = opts.admin_token_file
  if not path then return nil end
  local text, why = files.read(path, "admin token file", 4096)
  local token = text and text:match("^%s*(.-)%s*$")
  if token == "" then why = "admin token file " .. path .. ": holds no token" end
  if not token or token == "" then
    ngx.log(ngx.ALERT, "licensor: ", why, ": the admin routes answer 503 until this is fixed")
    return nil, why
  end
  return core.sha256(token)
end

-- A whole number of milliseconds from lo to hi, or the default.
local function milliseconds(opts, field, default, lo, hi)
  local v = opts[field]
  if v == nil then return default end
  if type(v) ~= "number" or v % 1 ~= 0 or v < lo or v > hi then
    error(format("licensor.gateway: %s must be a whole number of milliseconds from %d to %d", field, lo, hi),
          3)
  end
  return v
end

-- init_worker{db=, synchronous=, today=, admin_token_file= or
-- admin_token_sha256=, rate_per_ip=, rate_per_key=, limits_dict=,
-- signing_key_file=, stale_ms=, db_timeout_ms=, health_timeout_ms=,
-- read_db=, threads=, queue=}; the last five for PostgreSQL
-- (licensor.gateway.remote: threads and queue as nginx.conf's pool has them).
function _M.init_worker(opts)
  if type(opts) ~= "table" or type(opts.db) ~= "string" then
    error("licensor.gateway.init_worker needs { db = path }", 2)
  end
  if opts.today ~= nil and not core.day(opts.today) then
    error("licensor.gateway: today must be a date YYYY-MM-DD", 2)
  end
  worker.today = opts.today
  worker.artifacts, worker.link_keys, worker.public_url = opts.artifacts, opts.link_keys, opts.public_url
  worker.admin_digest, worker.admin_error = read_token(opts)
  worker.limits = limit.new(opts.limits_dict or "licensor_limits", opts.rate_per_ip or _M.RATE_PER_IP,
                            opts.rate_per_key or _M.RATE_PER_KEY)
  -- A store that cannot be opened leaves the worker up, answering 503
  -- until a later request opens it.
  worker.db, worker.synchronous = opts.db, opts.synchronous or "full"
  worker.expose_timing = opts.expose_timing
  worker.metrics = metrics.dict(opts.metrics_dict or "licensor_metrics")
  metrics.watch_policies(worker.metrics)
  worker.signing_key_file = opts.signing_key_file
  worker.stale_ms = opts.stale_ms
  worker.db_timeout_ms = milliseconds(opts, "db_timeout_ms", constants.DB_TIMEOUT_MS, 100, 600000)
  worker.health_timeout_ms = milliseconds(opts, "health_timeout_ms", constants.HEALTH_TIMEOUT_MS, 100,
                                          60000)
  if opts.read_db ~= nil and (type(opts.read_db) ~= "string" or not licensor.is_postgresql(opts.read_db)) then
    error("licensor.gateway: read_db must be a PostgreSQL connection string", 2)
  end
  worker.read_db = opts.read_db
  worker.threads, worker.queue = opts.threads, opts.queue
  worker.retry_at, worker.backoff = 0, RETRY_FIRST
  open_store()
end

------------------------------------------------------------------------
-- Answers
------------------------------------------------------------------------

-- Content-Type and Cache-Control come from the nginx configuration
-- (default_type, add_header ... always): cheaper than setting them here.
local function send(status, json, headers)
  ngx.status = status
  if headers then
    for name, value in pairs(headers) do ngx.header[name] = value end
  end
  ngx.print(json)
end

local function answer(status, value, headers)
  local json = cjson.encode(value)
  if not json then
    ngx.log(ngx.ERR, "licensor: cannot encode an answer")
    status, json = 500, '{"ok":false,"code":"internal_error","message":"internal error"}'
  end
  send(status, json, headers)
end

-- The status for a `nil, message, code` answer of the store.
local STATUS = {
  unknown_key = 404, invalid_key = 400, invalid_date = 400, invalid_request = 400,
  no_catalogue = 503, busy = 503, io_error = 503, store_error = 503, wrong_process = 503,
  store_unavailable = 503, timeout = 503,
  idempotency_conflict = 422,
}

-- 503s say only that the store is unavailable: the store's own words
-- (SQLite's) go to the error log, never to a client.  A write whose
-- commit may or may not have happened says so, and how to learn which.
local UNAVAILABLE = "the license store is unavailable; try again later"
local UNKNOWN = constants.OUTCOME_UNKNOWN .. ": the license store did not confirm this write, which " ..
  "may or may not have happened; retry with the same Idempotency-Key, or activate the same server again " ..
  "(a check-in), to get the true state"
local UNKNOWN_PREFIX = "^" .. constants.OUTCOME_UNKNOWN

-- busy: nothing reached the database (this worker's threads and queue
-- were full, or SQLite's lock stayed taken); timeout: the deadline passed
-- and nothing was committed.  Both may be retried at once elsewhere, or
-- here after Retry-After.
local MESSAGE_503 = { busy = "this gateway is busy; try again later",
                      timeout = "the license store did not answer in time; nothing was done; try again" }
local RETRY_AFTER = { ["Retry-After"] = "1" }

local function refusal(message, code)
  local status = STATUS[code] or 403
  if status == 503 then
    ngx.log(ngx.ERR, "licensor: store: ", code, ": ", message)
    local unknown = type(message) == "string" and (match(message, UNKNOWN_PREFIX) or
                                                   match(message, ": " .. constants.OUTCOME_UNKNOWN))
    message = unknown and UNKNOWN or MESSAGE_503[code] or UNAVAILABLE
    refuse(status, code, message, RETRY_AFTER)
  end
  if status == 403 then
    failure.raise(code, message, { status = 403, because = explain.because(nil, code, message) })
  end
  refuse(status, code, message)
end

-- Unwraps value, message, code.
local function check(value, message, code)
  if value == nil then refusal(message, code) end
  return value
end

-- The one line why a license's decision refused with `code`: the chain
-- licensor.explain finds for the same question (opts: on, build, server),
-- from the license and catalogue at hand, or -- with a key -- from the
-- store (its installations and case too).  Only ever built for a refusal.
-- An explanation that fails is logged and answered by the code's rule and
-- the refusal's message: never a 500.
local function because(cat, lic, opts, code, message)
  opts.brief = true      -- the chain behind the answer only
  local ok, report = pcall(explain.explain, cat, lic, opts)
  if not ok then ngx.log(ngx.ERR, "licensor: explain: ", tostring(report)) end
  return explain.because(ok and report or nil, code, message)
end

local function store_because(s, key, opts, code, message)
  opts.brief = true
  local ok, report, msg = pcall(s.explain, s, key, opts)
  if not ok or not report then ngx.log(ngx.ERR, "licensor: explain: ", tostring(ok and msg or report)) end
  return explain.because(ok and report or nil, code, message)
end

-- The server's UTC day (or the pinned one): licensor.today's, asked once
-- per second of nginx's cached clock.
local day_second, day_text
local function today()
  if worker.today then return worker.today end
  local now = ngx.time()
  if now ~= day_second then day_second, day_text = now, core.today() end
  return day_text
end

local function store()
  local s = worker.store
  if s then return s end
  if monotonic_ms() >= worker.retry_at then s = open_store() end
  if not s then refuse(503, "store_unavailable", UNAVAILABLE) end
  return s
end

------------------------------------------------------------------------
-- Requests
------------------------------------------------------------------------

-- The JSON object in the request body.
local function body()
  ngx.req.read_body()
  local data = ngx.req.get_body_data()
  if data == nil then
    if ngx.req.get_body_file() then refuse(413, "too_large", constants.GATEWAY_ERRORS[413][2]) end
    refuse(400, "invalid_json", "the body must be a JSON object")
  end
  return request.decode(data), data
end

local function client_limit()
  local wait = worker.limits:client(ngx.var.binary_remote_addr or "?")
  if wait then
    refuse(429, "rate_limited", "too many requests from this address", { ["Retry-After"] = wait })
  end
end

local function key_limit(key)
  local wait = worker.limits:key(key)
  if wait then refuse(429, "rate_limited", "too many requests for this key", { ["Retry-After"] = wait }) end
end

-- A request naming a key: validated by its check symbol, then limited.
local function keyed(text)
  local key = request.key(text)
  key_limit(key)
  return key
end

-- Build records as JSON objects (they already hold only plain fields).
local function verdict_answer(v, certificate)
  answer(v.ok and 200 or 403, { ok = v.ok, code = v.code, message = v.message, eligible = v.eligible,
                                migration = v.migration, certificate = certificate,
                                held_until = v.held_until, revocation = v.revocation,
                                certificate_error = v.certificate_error, because = v.because })
end

------------------------------------------------------------------------
-- Routes
------------------------------------------------------------------------

local INSTALL_FIELDS = { key = true, server = true, build = true, fingerprint = true }
-- receipt: the return receipt the product's verifier library wrote when
-- it deleted the certificate (frees the slot at once).
local DEACTIVATE_FIELDS = { key = true, server = true, receipt = true }

local function installation_request(name)
  local b = body()
  request.only(b, name == "deactivate" and DEACTIVATE_FIELDS or INSTALL_FIELDS)
  local key = keyed(b.key)
  local server = request.string(b, "server")
  local on = today()
  local s = store()
  local t0 = core.monotonic_us()
  local v
  local fingerprint = name ~= "deactivate" and request.string(b, "fingerprint", true) or nil
  if name == "activate" then
    v = check(s:activate(key, server, request.count(b, "build"), on, fingerprint))
  elseif name == "checkin" then
    v = check(s:checkin(key, server, on, request.count(b, "build", true), fingerprint))
  else
    local receipt = b.receipt
    if receipt ~= nil and (type(receipt) ~= "string" or #receipt > constants.MAX_CERTIFICATE_BYTES) then
      refuse(400, "invalid_request", "receipt: the text of a return receipt (at most " ..
        constants.MAX_CERTIFICATE_BYTES .. " bytes)")
    end
    v = check(s:deactivate(key, server, on, receipt and { receipt = receipt }))
  end
  if not v.ok then
    v.because = store_because(s, key, { on = on, server = server, build = b.build }, v.code, v.message)
  end
  -- With a fingerprint and a signing key, an accepted activation or
  -- check-in answers the installation's certificate too.
  -- The activation is committed by then: a certificate the store cannot
  -- sign (e.g. certificate_too_large) is said next to the 200, never as a
  -- refusal of what was done.
  local certificate
  if v.ok and fingerprint and s.signing_key then
    local text, message, code = s:certificate(key, server, on)
    if text then
      certificate = text
    elseif STATUS[code] == 503 then
      refusal(message, code)
    else
      v.certificate_error = { code = code, message = message }
    end
  end
  local took = core.monotonic_us() - t0
  metrics.write(worker.metrics, name, v.ok and "ok" or v.code, took)
  -- The time a write held the worker goes to the metrics, and to clients
  -- only when asked (benchmarks: expose_timing).
  if worker.expose_timing then ngx.header["X-Licensor-Write-Us"] = format("%d", took) end
  verdict_answer(v, certificate)
end

-- The license and the active catalogue, with one read of the store.
local function license_of(key)
  local s = store()
  local misses = s.cache_misses
  local lic, cat, code = s:license(key)
  metrics.cache(worker.metrics, s.cache_misses == misses)
  if not lic then refusal(cat, code) end
  return lic, cat
end

local function license_status(key)
  local lic, cat = license_of(key)
  local status = check(cat:status(lic, today()))
  status.ok = true
  answer(200, status)
end

-- Build records are shared and never change: their JSON is kept.
local build_json = setmetatable({}, { __mode = "k" })

local function license_eligible(key)
  local on = ngx.var.arg_on
  if on ~= nil then on = request.date(ngx.unescape_uri(on), "on") end
  local lic, cat = license_of(key)
  local build, msg, code = cat:eligible(lic, on or today())
  if not build then
    failure.raise(code, msg, { status = 403, because = because(cat, lic, { on = on or today() }, code, msg) })
  end
  local json = build_json[build]
  if not json then
    json = '{"ok":true,' .. cjson.encode(build):sub(2)
    build_json[build] = json
  end
  send(200, json)
end

local function license_build(key, number_text)
  local number = tonumber(number_text)
  if not number or not match(number_text, "^%d+$") or #number_text > 15 then
    refuse(400, "invalid_request", "a build number is a whole number")
  end
  local lic, cat = license_of(key)
  local ok, msg, code = cat:can_install(lic, number, today())
  if ok then return answer(200, { ok = true }) end
  if code == "unknown_product" or code == "invalid_license" then refusal(msg, code) end
  answer(403, { ok = false, code = code, message = msg,
                because = because(cat, lic, { on = today(), build = number }, code, msg) })
end

------------------------------------------------------------------------
-- Admin workflows
------------------------------------------------------------------------

-- The token's digest against the configured one: licensor.links.same,
-- which hashes both sides again before comparing, so where they differ
-- does not show in the timing.
local same_digest = require("licensor.links").same

-- The admin token is checked before anything else under /v1/admin/, so
-- that route names cannot be probed without it.  The scheme is read in
-- any case ("Bearer", "bearer", "BEARER"), as HTTP says.
local function check_admin()
  if not worker.admin_digest then
    if worker.admin_error then
      refuse(503, "admin_unavailable", "admin routes are unavailable: " .. worker.admin_error)
    end
    refuse(404, "admin_disabled", "admin routes are off: no admin token file")
  end
  local header = ngx.var.http_authorization
  local scheme, token
  if type(header) == "string" then scheme, token = match(header, "^%s*(%a+)%s+(%S+)%s*$") end
  local good = scheme and scheme:lower() == "bearer" and same_digest(sha256(token), worker.admin_digest)
  if not good then
    refuse(401, "unauthorized", "a valid admin bearer token is required", { ["WWW-Authenticate"] = "Bearer" })
  end
end

-- Each admin workflow checks its body and answers a description of the
-- work (licensor.gateway.work): checking first keeps a 400 a 400 when the
-- work runs inside an idempotent transaction.
local ADMIN = {}

local ISSUE_FIELDS = { product = true, edition = true, level = true, kind = true, owner = true, email = true,
                       failover = true, version_lock = true, trial_days = true, addons = true, start = true }

function ADMIN.issue(b)
  request.only(b, ISSUE_FIELDS)
  local kind = request.string(b, "kind", true)
  if kind and kind ~= "perpetual" and kind ~= "lease" and kind ~= "trial" then
    refuse(400, "invalid_request", "kind: perpetual, lease or trial")
  end
  -- The license starts on the server's day unless the body names the start
  -- (existing customers brought in); the issue is recorded on the server's
  -- day either way (store:issue(spec, on)).
  local on = today()
  local spec = {
    product = request.string(b, "product"), edition = request.string(b, "edition"),
    level = request.level(b, "level"), kind = kind,
    start = b.start ~= nil and request.date(b.start, "start") or on,
    owner = request.string(b, "owner", true), email = request.string(b, "email", true),
    failover = request.boolean(b, "failover"),
    version_lock = request.count(b, "version_lock", true),
    trial_days = request.count(b, "trial_days", true), addons = request.names(b, "addons") }
  return work.desc("issue", "license", spec, on)
end

local function key_only(workflow)
  return function(b)
    request.only(b, { key = true })
    local key, on = keyed(b.key), today()
    return work.desc(workflow, "license", key, on)
  end
end

ADMIN.renew = key_only("renew")
ADMIN.end_lease = key_only("end_lease")
ADMIN.enable = key_only("enable")

function ADMIN.add_addon(b)
  request.only(b, { key = true, addon = true })
  local key, addon, on = keyed(b.key), request.string(b, "addon"), today()
  return work.desc("add_addon", "license", key, addon, on)
end

function ADMIN.upgrade(b)
  request.only(b, { key = true, edition = true, level = true, paid = true })
  local paid = b.paid
  if type(paid) ~= "number" or paid ~= paid or paid < 0 or paid > constants.MAX_INTEGER or paid % 1 ~= 0 then
    refuse(400, "invalid_request", "paid: the amount paid, a whole number of minor units")
  end
  local key, on = keyed(b.key), today()
  local target = { edition = request.string(b, "edition", true), level = request.level(b, "level", true) }
  return work.desc("upgrade", "license", key, target, on, { paid = paid })
end

function ADMIN.disable(b)
  request.only(b, { key = true, reason = true })
  local key, reason, on = keyed(b.key), request.string(b, "reason", true), today()
  return work.desc("disable", "license", key, on, reason)
end

-- transfer and set are recorded on the server's day too, as their last
-- argument (store:transfer(key, owner, opts, on), store:set(key, fields, on)).
function ADMIN.transfer(b)
  request.only(b, { key = true, owner = true, consent = true })
  local key, owner = keyed(b.key), request.string(b, "owner")
  local consent = request.string(b, "consent", true)
  return work.desc("transfer", "license", key, owner, { consent = consent }, today())
end

-- set {key, email}: the owner's address for customer mail ("" forgets it).
function ADMIN.set(b)
  request.only(b, { key = true, email = true })
  local key = keyed(b.key)
  local email = b.email == "" and "" or request.string(b, "email")
  return work.desc("set", "license", key, { email = email }, today())
end

function ADMIN.sweep(b)
  request.only(b, {})
  local on = today()
  return work.desc("sweep", "taken", on)
end

local HEX = "%02x"

local function hex(bytes)
  return (bytes:gsub(".", function(c) return format(HEX, c:byte()) end))
end

-- An admin POST with an Idempotency-Key header runs once: the first answer
-- is stored with the key, in the same transaction as the work, and a retry
-- with the same key and body gets that answer again (Idempotent-Replayed:
-- true) without doing the work twice.  The same key with another body is
-- 422 idempotency_conflict.
local function admin(workflow)
  local handler = ADMIN[workflow]
  if not handler then refuse(404, "not_found", "no admin workflow '" .. workflow .. "'") end
  local b, raw = body()
  local desc = handler(b)
  local id = ngx.var.http_idempotency_key
  local fingerprint
  if id ~= nil then
    local ok, message = core.check_name(id, "Idempotency-Key")
    if not ok then refuse(400, "invalid_request", message) end
    fingerprint = workflow .. " " .. hex(ngx.sha1_bin(raw))
  end
  local s = store()
  local json, replayed, code
  if s.remote then json, replayed, code = s:admin(id, fingerprint, desc)
  else json, replayed, code = work.admin(s, id, fingerprint, desc) end
  if json == nil then refusal(replayed, code) end
  send(200, json, replayed and { ["Idempotent-Replayed"] = "true" } or nil)
end

------------------------------------------------------------------------
-- Health
------------------------------------------------------------------------

-- /healthz.  SQLite: the database answers a read.  PostgreSQL: a write
-- commits, within health_timeout_ms, on the health pool's own thread
-- (never queued behind stuck commits): a primary whose synchronous
-- standby is away answers 503 within that time.  One probe at a time per
-- worker: requests that come while one runs share its answer.
local probe = { running = false, round = 0, ok = nil, message = nil, code = nil }

local function probe_write(s)
  if probe.running then
    local round, give_up = probe.round, monotonic_ms() + worker.health_timeout_ms + 1000
    while probe.running and probe.round == round and monotonic_ms() < give_up do ngx.sleep(0.005) end
    if probe.round ~= round then return probe.ok, probe.message, probe.code end
    return nil, "the write probe did not end in time", "timeout"
  end
  probe.running = true
  local ok, result, message, code = pcall(s.probe_write, s)
  probe.running, probe.round = false, probe.round + 1
  if not ok then error(result, 0) end
  probe.ok, probe.message, probe.code = result, message, code
  return result, message, code
end

local function healthz()
  local s = store()
  local ok, message, code
  if s.remote then ok, message, code = probe_write(s) else ok, message, code = s:ping() end
  if ok then return answer(200, { ok = true }) end
  ngx.log(ngx.ERR, "licensor: /healthz: ", code, ": ", message)
  -- A probe wrote nothing anyone waits for: its unknown outcome is
  -- simply "writes cannot commit now".
  refuse(503, code == "busy" and "busy" or "store_unavailable", s.remote and
         "the license store cannot commit writes now" or UNAVAILABLE, RETRY_AFTER)
end

------------------------------------------------------------------------
-- Dispatch
------------------------------------------------------------------------

local function method_not_allowed(allowed)
  refuse(405, "method_not_allowed", "use " .. allowed, { Allow = allowed })
end

-- GET /v1/admin/licenses/{key}/events | installations | quote?edition=&level=
local function admin_read(key, what)
  key = keyed(key)
  local s = store()
  if what == "events" then return answer(200, { ok = true, events = check(s:events(key)) }) end
  if what == "installations" then
    local list = check(s:installations(key))
    -- lua-cjson writes an empty table as {}: a list must read as [], as the CLI's does.
    if #list == 0 then return send(200, '{"ok":true,"installations":[]}') end
    return answer(200, { ok = true, installations = list })
  end
  if what ~= "quote" then refuse(404, "not_found", "no such resource") end
  local args = ngx.req.get_uri_args(8)
  local target = { edition = args.edition, level = args.level == "unlimited" and "unlimited" or
                   (args.level and tonumber(args.level)) }
  local bad_edition = args.edition ~= nil and type(args.edition) ~= "string"
  if bad_edition or (args.level ~= nil and target.level == nil) then
    refuse(400, "invalid_request", "quote takes ?edition=NAME&level=N")
  end
  local lic, cat = license_of(key)
  answer(200, { ok = true, quote = check(cat:quote_upgrade(lic, target, today())) })
end

local function admin_route(method, uri)
  client_limit()
  check_admin()
  ngx.ctx.route = "admin"
  local key, what = match(uri, "^/v1/admin/licenses/([^/]+)/(%a+)$")
  if key then
    if method ~= "GET" then method_not_allowed("GET") end
    return admin_read(key, what)
  end
  local workflow = match(uri, "^/v1/admin/([%w_]+)$")
  if not workflow then refuse(404, "not_found", "no such resource") end
  if method ~= "POST" then method_not_allowed("POST") end
  return admin(workflow)
end

local function route()
  local method, uri = ngx.req.get_method(), ngx.var.uri
  if method == "HEAD" then method = "GET" end
  local key, rest = match(uri, "^/v1/licenses/([^/]+)(.*)$")
  if key then
    ngx.ctx.route = "license"
    local number = match(rest, "^/builds/([^/]+)$")
    if rest == "/download" then
      ngx.ctx.route = "download"
      if method ~= "GET" then method_not_allowed("GET") end
      client_limit()
      return require("licensor.gateway.download").handle(_M.context, keyed(key))
    end
    if rest ~= "" and rest ~= "/eligible" and not number then
      refuse(404, "not_found", "no such resource")
    end
    if method ~= "GET" then method_not_allowed("GET") end
    client_limit()
    key = keyed(key)
    if rest == "" then return license_status(key) end
    if rest == "/eligible" then return license_eligible(key) end
    return license_build(key, number)
  end
  if uri == "/healthz" then
    ngx.ctx.route = "healthz"
    if method ~= "GET" then method_not_allowed("GET") end
    return healthz()
  end
  local install = match(uri, "^/v1/(%a+)$")
  if install == "activate" or install == "checkin" or install == "deactivate" then
    ngx.ctx.route = install
    if method ~= "POST" then method_not_allowed("POST") end
    client_limit()
    return installation_request(install)
  end
  if match(uri, "^/v1/admin/") then return admin_route(method, uri) end
  if uri == "/portal" or match(uri, "^/portal/") then
    ngx.ctx.route = "portal"
    return require("licensor.portal").handle(_M.context)
  end
  if uri == "/metrics" then
    -- Prometheus' text format, behind the admin token.
    ngx.ctx.route = "metrics"
    client_limit()
    check_admin()
    if method ~= "GET" then method_not_allowed("GET") end
    ngx.header["Content-Type"] = "text/plain; version=0.0.4"
    return send(200, metrics.text(worker.metrics))
  end
  refuse(404, "not_found", "no such resource")
end

-- The content handler: every answer is JSON, and no error text from Lua
-- or SQL ever reaches the client.
local function handle()
  local ok, err = pcall(route)
  if ok then return end
  if failure.is(err) then
    return answer(err.status or 500,
                  { ok = false, code = err.code, message = err.message, because = err.because }, err.headers)
  end
  ngx.log(ngx.ERR, "licensor: ", tostring(err))
  send(500, '{"ok":false,"code":"internal_error","message":"internal error"}')
end

function _M.handle()
  handle()
  metrics.request(worker.metrics, ngx.ctx.route or "other", ngx.status)
  -- the hooks of the policy this worker's store compiled count in /metrics
  local s = worker.store
  if s then metrics.watch_policy(worker.metrics, s.active_policy) end
end

-- What the download route and the portal (licensor.gateway.download,
-- licensor.portal) use of this worker: its store and day, its limits and
-- answers, and the link settings of init_worker (artifacts, link_keys,
-- public_url, signing_key_file).
_M.context = {
  store = store, today = today, client_limit = client_limit, key_limit = key_limit,
  refuse = refuse, answer = answer, send = send, keyed = keyed, refusal = refusal, because = because,
  settings = worker, metrics = function() return worker.metrics end,
}

-- The error_page location /.licensor-error/STATUS: nginx's own refusals
-- (constants.GATEWAY_ERRORS: 413, 400, 501, 505...) answered as JSON too;
-- 494 (nginx's header too large) as 431.
local ERROR_PAGES = {}
local portal_path
for status, words in pairs(constants.GATEWAY_ERRORS) do
  ERROR_PAGES[status] = cjson.encode({ ok = false, code = words[1], message = words[2] })
end

-- Is the request line's target a portal path once normalised as nginx
-- does (percent-decoded, slashes merged, dot segments resolved)?
portal_path = function(target)
  local path = (target:match("^[^?#]*")):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  local parts = {}
  for segment in path:gmatch("[^/]+") do
    if segment == ".." then parts[#parts] = nil elseif segment ~= "." then parts[#parts + 1] = segment end
  end
  return parts[1] == "portal"
end

function _M.error_page()
  local status = tonumber(match(ngx.var.uri, "/(%d+)$"))
  if not ERROR_PAGES[status] then status = 500 end
  local json = ERROR_PAGES[status]
  if status == 494 then status = 431 end
  -- The portal's requests get its HTML page and headers (licensor.portal),
  -- judged on the path as nginx routes it: //portal, /./portal and
  -- /%70ortal are the portal too.
  if portal_path(ngx.var.request_uri or "") then return require("licensor.portal").error_page(status) end
  send(status, json)
end

return _M
