-- licensor.cli -- the `licensor` command for admins and support staff.
--
--   licensor [--db PATH] [--json] COMMAND [ARGS] [--on DATE]
--
-- Readable aligned tables by default, --json for scripts (every outcome,
-- refusals included, is then JSON on stdout).  Exit status, the same for
-- every command: 0 when the command did what was asked, 1 when a rule
-- refused it (the code is on stderr), 2 for bad usage or malformed input.
local licensor = require "licensor"
local failure = require "licensor.failure"
local certificate = require "licensor.certificate"
local tabulate = require "licensor.tabulate"
local pretty = require "licensor.pretty"

local _M = {}

local type, tostring, tonumber, pairs, ipairs = type, tostring, tonumber, pairs, ipairs
local concat, sort = table.concat, table.sort

local USAGE = [=[
usage: licensor [--db PATH] [--json] COMMAND [ARGS]

  --db (default $LICENSOR_DB or ./licensor.db) is an SQLite file or a PostgreSQL connection string
  (postgresql://user@host/db?target_session_attrs=read-write, or host=... dbname=...).

  init                               create the database
  import CATALOGUE [--create]        import a catalogue file (or a bundled one by name) as the new
                                     active version; the active catalogue again changes nothing
                                     (--create: make the database if it does not exist)
  issue --product P --edition E --level N [--kind perpetual|lease|trial] [--start DATE]
        [--owner O] [--email ADDRESS] [--failover] [--version-lock N] [--trial-days N] [--addon A]...
  set KEY --email ADDRESS            the address customer mail goes to ("" forgets it)
  catalogue [PRODUCT]                products, editions, prices, add-ons, policy and newest builds
  list [--owner O] [--product P] [--kind K] [--edition E] [--ms-expiring DAYS] [--lapsed]
       [--disabled] [--fraud] [--on DATE] [--limit N] [--offset N]   licenses, filters combined
  show KEY                           the license and its status
  eligible KEY [--on DATE]           the newest build the license may install
  activate KEY SERVER BUILD [--fingerprint FP] [--on DATE] [--signing-key FILE --revocation-out FILE]
  activate --request FILE --out CERT --signing-key FILE [--on DATE]   (air-gapped servers)
  checkin KEY SERVER [--build N] [--fingerprint FP] [--on DATE] [--signing-key FILE --revocation-out FILE]
                                     (revocation-out: where a refusal's signed revocation notice goes)
  deactivate KEY SERVER [--on DATE] [--return RECEIPT | --force --reason TEXT]
                                     (a certificate holds the slot until held_until unless returned
                                     with its receipt, or freed by an admin with --force)
  installations KEY
  renew KEY [--on DATE] [--until-current]   (until-current: term by term until M&S covers the day)
  upgrade KEY [--edition E] [--level N] [--on DATE] (--quote | --pay AMOUNT)
  add-addon KEY ADDON [--on DATE]
  end-lease KEY [--on DATE]
  disable KEY [--reason R] [--on DATE]
  enable KEY [--on DATE]
  transfer KEY OWNER --consent REF
  sweep [--on DATE]
  events KEY
  export [--format csv|jsonl] [--out FILE]   licenses with their add-ons and installations
  import-licenses FILE               existing customers from that CSV: all rows or none
  backup PATH                        a consistent copy of the database, made while others use it
  deliver [--webhook URL|ACTION=URL... --secret-file F]
          [--smtp HOST[:PORT] --mail-from ADDRESS [--templates DIR] [--starttls auto|always|never]
           [--smtp-user U --smtp-password-file F] [--smtp-cafile FILE] [--smtp-domain NAME]]
          [--max-tries N] [--backoff-ms MS] [--timeout S] [--claim-ms MS] [--watch [--interval S]]
                                     pending outbox actions: webhooks (signed) and customer mail
                                     (README "Notifications"); retried with backoff, dead-lettered
                                     after N tries
  templates --out DIR                the bundled mail templates as files to edit
  outbox [--dead|--all] [--limit N]  outbox rows (pending by default); outbox retry ID re-queues one
  copy --from DB --to DB             everything from one store into a new one, SQLite or PostgreSQL
                                     (DB: a path, or a postgresql:// URL), in one transaction
  keys new --out FILE                a signing key (FILE, mode 0600) and its public key (FILE.pub)
  keys show FILE                     the public key and key id of a signing key
  certificate KEY SERVER --signing-key FILE [--on DATE] [--out CERT]
  fingerprint [--explain]            this machine's fingerprint (explain: each source, found or
                                     missing, hashed)
  request KEY SERVER BUILD [--fingerprint FP] [--out FILE]   an air-gapped activation request
  verify CERT --public-key FILE.pub --product ID [--fingerprint FP]
         [--state FILE [--new-state] [--revocation NOTICE]] [--json]
                                     exit 0 valid or grace, 1 refused (revocation: a signed notice
                                     recorded in the state first)
  return CERT --public-key FILE.pub --product ID --state FILE [--fingerprint FP] [--out RECEIPT]
                                     delete CERT, keep its return in the state, write the receipt
                                     (for deactivate --return)
  repl                               a Lua REPL with `store`, `cat`, `licensor` and `pp` loaded
  gateway [--listen ADDR:PORT] [--workers N] [--admin-token-file F] [--today DATE]
          [--rate-per-ip N] [--rate-per-key N] [--conn-per-ip N] [--prefix DIR]
          [--signing-key FILE]       (answer certificates to activations with a fingerprint)
          [--threads N] [--stale-ms MS]   (PostgreSQL: threads per worker, default 8; how old a
                                     cached eligibility answer may be, default 1000)
                                     (rates per second, 0: off; conn-per-ip: requests
                                     in progress per address, default 256; today: the
                                     day every read and workflow takes, default the
                                     real UTC day)

Amounts are in minor units (cents).  Exit status: 0 done, 1 refused by a rule, 2 bad usage or
malformed input.  licensor help COMMAND (or COMMAND --help) shows one command; --version.
]=]

-- Flags that take no value.
local SWITCHES = { json = true, failover = true, quote = true, help = true, create = true, new_state = true,
                   version = true, lapsed = true, disabled = true, fraud = true, until_current = true,
                   watch = true, dead = true, all = true, explain = true, force = true }

-- Codes of malformed input: exit 2, like bad usage.
local MALFORMED = { usage = true, invalid_date = true, invalid_key = true, invalid_request = true }

-- How many positional arguments each command takes at most.
local MAX_ARGS = {
  init = 0, import = 1, issue = 0, catalogue = 1, show = 1, eligible = 1, activate = 3, checkin = 2,
  deactivate = 2, installations = 1, renew = 1, upgrade = 1, ["add-addon"] = 2, ["end-lease"] = 1,
  disable = 1, enable = 1, transfer = 2, sweep = 0, events = 1, backup = 1, keys = 2, certificate = 2,
  copy = 0, deliver = 0, outbox = 2, templates = 0, set = 1,
  fingerprint = 0, request = 3, verify = 1, ["return"] = 1, repl = 0, gateway = 0, list = 0, export = 0,
  ["import-licenses"] = 1,
}

-- Splits argv into positional arguments and --flags (repeatable ones are
-- kept as lists in `many`).
local function parse(argv)
  local positional, flags, many = {}, {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "-h" then a = "--help" end
    local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    if name then
      name = name:gsub("%-", "_")
      local value = inline
      if value == nil and not SWITCHES[name] then
        i = i + 1
        value = argv[i]
        if value == nil then return nil, "--" .. name .. " needs a value" end
      end
      if value == nil then value = true end
      flags[name] = value
      many[name] = many[name] or {}
      many[name][#many[name] + 1] = value
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  return positional, flags, many
end

-- Failures (licensor.failure) end a command: code "usage" exits 2, any
-- other code exits 1 with "licensor: CODE: message" on stderr.
local function usage_error(message)
  failure.raise("usage", message)
end

local function refused(message, code)
  failure.raise(code or "refused", message)
end

-- A database path names an existing file (":memory:" always exists).
local function exists(path)
  if path == ":memory:" then return true end
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function need(positional, n, what)
  local v = positional[n]
  if v == nil then usage_error("missing " .. what) end
  return v
end

local function number_flag(flags, name)
  local v = flags[name]
  if v == nil then return nil end
  local n = tonumber(v)
  if not n or n % 1 ~= 0 then usage_error("--" .. name:gsub("_", "-") .. " takes a whole number") end
  return n
end

local function level_flag(flags)
  if flags.level == "unlimited" then return "unlimited" end
  return number_flag(flags, "level")
end

-- Unwraps `value, message, code` answers: refusals leave with exit 1.
local check = failure.try

------------------------------------------------------------------------
-- Output
------------------------------------------------------------------------

local function json_encode(value)
  local cjson = require("cjson").new()
  cjson.encode_sparse_array(true)
  return cjson.encode(value)
end

local function field_rows(t)
  local keys, rows = {}, {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys)
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "table" then
      local parts = {}
      local names = {}
      for name in pairs(v) do names[#names + 1] = name end
      sort(names, function(a, b) return tostring(a) < tostring(b) end)
      for _, name in ipairs(names) do
        local item = v[name]
        if type(item) == "table" then item = item.number or item.version or pretty.format(item) end
        parts[#parts + 1] = type(name) == "number" and tostring(item) or (name .. "=" .. tostring(item))
      end
      v = concat(parts, ", ")
    end
    rows[#rows + 1] = { field = k, value = tostring(v) }
  end
  return rows
end

-- Prints a record as two aligned columns (or JSON).
local function show_record(out, opts, t)
  if opts.json then return out(json_encode(t)) end
  out(tabulate.render({ { "field", "field" }, { "value", "value" } }, field_rows(t)))
end

-- Prints a list of records as a table with the given columns (or JSON:
-- an array, even when empty).
local function show_list(out, opts, list, columns)
  if opts.json then return out(#list == 0 and "[]" or json_encode(list)) end
  local spec = {}
  for _, c in ipairs(columns) do spec[#spec + 1] = { c, c } end
  out(tabulate.render(spec, list))
end

local function show_verdict(out, opts, v)
  local view = { ok = v.ok, code = v.code, message = v.message,
                 eligible = v.eligible and v.eligible.number,
                 migration = v.migration and v.migration.state,
                 active = v.migration and (v.migration.active .. " of " .. v.migration.allowed),
                 since = v.migration and v.migration.since, deadline = v.migration and v.migration.deadline,
                 held_until = v.held_until,
                 revocation = v.revocation and (opts.revocation_out and ("written to " .. opts.revocation_out)
                                                or "signed (--revocation-out FILE saves it)") }
  if opts.json then
    out(json_encode(v))
    if not v.ok then failure.raise(v.code, v.message, { quiet = true }) end
    return
  end
  show_record(out, opts, view)
  if not v.ok then refused(v.message, v.code) end
end

------------------------------------------------------------------------
-- Commands
------------------------------------------------------------------------

local commands = {}

function commands.init(ctx)
  local store = ctx.open()
  local version = assert(store:schema_version())
  if ctx.opts.json then return ctx.out(json_encode({ ok = true, database = ctx.db, schema = version })) end
  ctx.out("database " .. ctx.db .. " ready (schema " .. version .. ")")
end

-- import CATALOGUE: a file, or the name of a bundled catalogue
-- ("smartertools").  Importing the active catalogue again changes nothing.
function commands.import(ctx, pos)
  local source = need(pos, 1, "CATALOGUE (a catalogue file or a bundled name)")
  if not source:find("/", 1, true) and not source:find("%.lua$") then
    source = licensor.catalogue_path(source) or source
  end
  local version, unchanged = check(ctx.open():import(source))
  if ctx.opts.json then return ctx.out(json_encode({ version = version, unchanged = unchanged })) end
  if unchanged then return ctx.out("catalogue unchanged: version " .. version .. " is already active") end
  ctx.out("imported catalogue version " .. version)
end

-- catalogue [PRODUCT]: products, editions, prices per major, add-ons, the
-- policy and the newest builds, for people (--json: the same as data).
function commands.catalogue(ctx, pos)
  local cat = check(ctx.open():catalogue())
  local money = require "licensor.money"
  local currency = cat:currency()
  local products = pos[1] and { check(cat:product(pos[1])) } or cat:products()
  local view = {}
  for _, p in ipairs(products) do
    local builds = cat:builds(p.id)
    local newest = {}
    for i = #builds, math.max(1, #builds - 2), -1 do newest[#newest + 1] = builds[i] end
    view[#view + 1] = { product = p, prices = cat:prices(p.id), newest = newest }
  end
  if ctx.opts.json then
    return ctx.out(json_encode({ currency = currency, policy = cat:policy(), products = view }))
  end
  for _, v in ipairs(view) do
    local p = v.product
    ctx.out(p.name .. " (" .. p.id .. ")" .. (p.unit and (", per " .. p.unit) or "") .. ": editions " ..
      concat(p.editions, ", ") .. "; " .. p.build_count .. " builds")
    local rows = {}
    for _, price in ipairs(v.prices) do
      rows[#rows + 1] = { major = price.major, edition = price.edition, level = tostring(price.level),
                          price = money.format(price.price, currency) }
    end
    if #rows > 0 then show_list(ctx.out, ctx.opts, rows, { "major", "edition", "level", "price" }) end
    local addons = {}
    for _, a in ipairs(p.addons) do
      local price = p.addon_prices[a]
      addons[#addons + 1] = a .. (price and (" " .. money.format(price, currency) .. "/year") or "")
    end
    if #addons > 0 then ctx.out("add-ons: " .. concat(addons, ", ")) end
    local newest = {}
    for _, b in ipairs(v.newest) do
      newest[#newest + 1] = b.number .. " (" .. b.version .. ", " .. b.released .. ")"
    end
    if #newest > 0 then ctx.out("newest builds: " .. concat(newest, ", ")) end
    ctx.out("")
  end
  ctx.out("policy:")
  show_record(ctx.out, ctx.opts, cat:policy())
end

function commands.issue(ctx, _, flags, many)
  local spec = { product = flags.product, edition = flags.edition, level = level_flag(flags),
                 kind = flags.kind, start = flags.start, owner = flags.owner, email = flags.email,
                 failover = flags.failover and true or nil,
                 version_lock = number_flag(flags, "version_lock"),
                 trial_days = number_flag(flags, "trial_days"), addons = many.addon }
  if not spec.product then usage_error("issue needs --product") end
  show_record(ctx.out, ctx.opts, check(ctx.open():issue(spec)))
end

function commands.show(ctx, pos, flags)
  local store = ctx.open()
  local lic = check(store:get(need(pos, 1, "KEY")))
  local cat = check(store:catalogue())
  local status = check(cat:status(lic, flags.on))
  if ctx.opts.json then return ctx.out(json_encode({ license = lic, status = status })) end
  show_record(ctx.out, ctx.opts, lic)
  ctx.out("")
  show_record(ctx.out, ctx.opts, status)
end

function commands.eligible(ctx, pos, flags)
  local store = ctx.open()
  local lic = check(store:get(need(pos, 1, "KEY")))
  local build = check(check(store:catalogue()):eligible(lic, flags.on))
  show_record(ctx.out, ctx.opts, build)
end

local function read_text(path, what)
  local f = io.open(path, "rb")
  if not f then refused(path .. ": cannot be read", "io_error") end
  local text = f:read(65536) or ""
  f:close()
  if text == "" then usage_error(what .. " " .. path .. " is empty") end
  return text
end

local function write_text(path, text)
  local f, err = io.open(path, "wb")
  if not f then refused(tostring(err), "io_error") end
  f:write(text)
  f:close()
end

-- The store with the signing key of --signing-key.
local function signing_store(ctx, flags)
  if not flags.signing_key then usage_error("--signing-key FILE is needed to sign certificates") end
  local store = ctx.open()
  check(store:use_signing_key(flags.signing_key))
  return store
end

-- activate --request FILE --out CERT --signing-key FILE: the air-gapped
-- round trip, with the same R9/R10 checks as online.
local function activate_request(ctx, flags)
  local request = check(certificate.read_request(read_text(flags.request, "request")))
  if not flags.out then usage_error("activate --request needs --out CERT") end
  local store = signing_store(ctx, flags)
  local verdict = check(store:activate(request.license, request.server, request.build, flags.on,
                                       request.fingerprint))
  if not verdict.ok then return show_verdict(ctx.out, ctx.opts, verdict) end
  write_text(flags.out, check(store:certificate(request.license, request.server, flags.on)))
  if ctx.opts.json then return ctx.out(json_encode({ ok = true, certificate = flags.out })) end
  ctx.out("certificate for " .. request.server .. " written to " .. flags.out)
end

-- The store for activate and checkin: with --signing-key, a refusal of a
-- machine whose certificates no longer hold carries their revocation,
-- which --revocation-out writes for the admin to carry to the machine.
local function installation_store(ctx, flags)
  if flags.revocation_out and not flags.signing_key then
    usage_error("--revocation-out needs --signing-key FILE (the notice is signed)")
  end
  return flags.signing_key and signing_store(ctx, flags) or ctx.open()
end

local function show_installation_verdict(ctx, flags, v)
  if v.revocation and flags.revocation_out then write_text(flags.revocation_out, v.revocation) end
  ctx.opts.revocation_out = flags.revocation_out
  show_verdict(ctx.out, ctx.opts, v)
end

function commands.activate(ctx, pos, flags)
  if flags.request then return activate_request(ctx, flags) end
  local build = tonumber(need(pos, 3, "BUILD"))
  if not build then usage_error("BUILD is a build number") end
  local store = installation_store(ctx, flags)
  show_installation_verdict(ctx, flags, check(store:activate(need(pos, 1, "KEY"), need(pos, 2, "SERVER"),
    build, flags.on, flags.fingerprint)))
end

-- keys new --out FILE | keys show FILE
function commands.keys(ctx, pos, flags)
  local what = need(pos, 1, "new or show")
  local public, id
  if what == "new" then
    if not flags.out then usage_error("keys new needs --out FILE") end
    public, id = check(certificate.new_key_files(flags.out))
  elseif what == "show" then
    local key = check(certificate.read_signing_key(need(pos, 2, "FILE")))
    public, id = key.public_text, key.id
  else
    usage_error("keys new --out FILE, or keys show FILE")
  end
  if ctx.opts.json then return ctx.out(json_encode({ id = id, public_key = public })) end
  ctx.out("key id " .. id)
  ctx.out(public)
end

function commands.certificate(ctx, pos, flags)
  local store = signing_store(ctx, flags)
  local text = check(store:certificate(need(pos, 1, "KEY"), need(pos, 2, "SERVER"), flags.on))
  if flags.out then write_text(flags.out, text) end
  if ctx.opts.json then return ctx.out(json_encode({ ok = true, certificate = text })) end
  if not flags.out then ctx.out((text:gsub("\n$", ""))) end
end

-- list [--owner O] [--product P] [--kind K] [--edition E] [--ms-expiring DAYS]
-- [--lapsed] [--disabled] [--fraud] [--on DATE] [--limit N] [--offset N]
function commands.list(ctx, _, flags)
  local rows = check(ctx.open():list{
    owner = flags.owner, product = flags.product, kind = flags.kind, edition = flags.edition,
    ms_expiring = number_flag(flags, "ms_expiring"), lapsed = flags.lapsed, disabled = flags.disabled,
    fraud = flags.fraud, on = flags.on, limit = number_flag(flags, "limit"),
    offset = number_flag(flags, "offset") })
  local columns = { "key", "owner", "product", "edition", "level", "kind", "start", "ms_expires", "disabled" }
  if flags.fraud then
    for _, c in ipairs({ "fraud_since", "first_step", "phoned", "case_disabled" }) do
      columns[#columns + 1] = c
    end
  end
  show_list(ctx.out, ctx.opts, rows, columns)
end

-- export [--format csv|jsonl] [--out FILE]
function commands.export(ctx, _, flags)
  local format = flags.format or "csv"
  if format ~= "csv" and format ~= "jsonl" then usage_error("--format is csv or jsonl") end
  local store = ctx.open()
  if ctx.opts.json and not flags.out then return show_list(ctx.out, ctx.opts, check(store:export())) end
  local text = check(store:export_text(format))
  if flags.out then return write_text(flags.out, text) end
  ctx.out((text:gsub("\n$", "")))
end

-- import-licenses FILE: all rows or none
commands["import-licenses"] = function(ctx, pos)
  local path = need(pos, 1, "FILE (CSV, as licensor export writes it)")
  local f = io.open(path, "rb")
  if not f then refused(path .. ": cannot be read", "io_error") end
  local text = f:read("*a")
  f:close()
  local keys = check(ctx.open():import_licenses(text, path))
  if ctx.opts.json then return ctx.out(json_encode({ ok = true, imported = #keys })) end
  ctx.out("imported " .. #keys .. " licenses from " .. path)
end

function commands.backup(ctx, pos)
  local path = need(pos, 1, "PATH")
  check(ctx.open():backup(path))
  if ctx.opts.json then return ctx.out(json_encode({ ok = true, backup = path })) end
  ctx.out("backup of " .. ctx.db .. " written to " .. path)
end

-- fingerprint [--explain]: with --explain, each source found or missing
-- (hashes only) and whether the store can record this machine's.
function commands.fingerprint(ctx, _, flags)
  local core = require "licensor.core"
  if not flags.explain then
    local fp = check(core.fingerprint())
    if ctx.opts.json then return ctx.out(json_encode({ fingerprint = fp })) end
    return ctx.out(fp)
  end
  local fp = core.fingerprint()
  local recordable, why = certificate.valid_fingerprint(fp)
  local components = core.fingerprint_explain()
  if ctx.opts.json then
    return ctx.out(json_encode({ fingerprint = fp, recordable = recordable, why = why,
                                 components = components }))
  end
  local rows = {}
  for i, c in ipairs(components) do
    rows[i] = { component = c.name, strong = c.strong and "yes" or "",
                found = c.found and "found" or "missing", hash = c.hash or "-", source = c.source }
  end
  show_list(ctx.out, ctx.opts, rows, { "component", "strong", "found", "hash", "source" })
  ctx.out("fingerprint " .. (fp or "(none)"))
  if not recordable then ctx.out("not recordable: " .. why:gsub("^fingerprint: ", "")) end
end

-- request KEY SERVER BUILD [--fingerprint FP] [--out FILE]: what an
-- air-gapped product writes for its admin to carry to the vendor.
function commands.request(ctx, pos, flags)
  local build = need(pos, 3, "BUILD")
  if not certificate.valid_build(build) then
    usage_error("BUILD is a build number: a whole number of at most " .. certificate.MAX_BUILD_DIGITS ..
      " digits")
  end
  local fp = flags.fingerprint or check(require("licensor.core").fingerprint())
  local text = certificate.request_text{ license = need(pos, 1, "KEY"), server = need(pos, 2, "SERVER"),
                                         fingerprint = fp, build = build }
  check(certificate.read_request(text))
  if flags.out then write_text(flags.out, text) end
  if ctx.opts.json then return ctx.out(json_encode({ ok = true, request = text })) end
  if not flags.out then ctx.out((text:gsub("\n$", ""))) end
end

-- The trusted public keys of --public-key (repeatable) and the --product
-- that verify and return need.
local function verifier_options(name, flags, many)
  if not many.public_key then usage_error(name .. " needs --public-key FILE.pub") end
  if type(flags.product) ~= "string" then
    usage_error(name .. " needs --product ID (the product checking it)")
  end
  local keys = {}
  for i, path in ipairs(many.public_key) do keys[i] = check(certificate.read_public_key(path)) end
  return keys, flags.product
end

-- The text of a file verify reads (CERT, --revocation NOTICE); one that
-- is missing, a directory, unreadable or empty says so.
local function read_verified_file(path, what)
  local f, err = io.open(path, "rb")
  if not f then refused(what .. " " .. tostring(err), "io_error") end
  local text, why = f:read(65536)
  f:close()
  if not text and why then refused(what .. " " .. path .. " cannot be read: " .. why, "io_error") end
  if not text or text == "" then usage_error(what .. " " .. path .. " is empty") end
  return text
end

-- verify CERT --public-key FILE.pub ... --product ID [--fingerprint FP]
-- [--state FILE [--new-state] [--revocation NOTICE]]: exit 0 for valid or
-- grace, 1 for any refusal.
function commands.verify(ctx, pos, flags, many)
  local text = read_verified_file(need(pos, 1, "CERT"), "certificate")
  local keys, product = verifier_options("verify", flags, many)
  local core = require "licensor.core"
  local fp = flags.fingerprint or check(core.fingerprint())
  if flags.revocation then
    if not flags.state then usage_error("--revocation needs --state FILE (the notice is kept there)") end
    check(core.revocation_apply(read_verified_file(flags.revocation, "revocation notice"),
      { public_keys = keys, certificate = text, fingerprint = fp, state = flags.state }))
  end
  local result = core.verify(text, { public_keys = keys, product = product, fingerprint = fp,
                                     state = flags.state, new_state = flags.new_state })
  if ctx.opts.json then
    ctx.out(json_encode(result))
  else
    local left = result.grace_days_left
    ctx.out(result.verdict .. (left and (" (" .. left .. " days left)") or "") ..
      (result.reason and (" (" .. result.reason .. ")") or ""))
  end
  if result.verdict ~= "valid" and result.verdict ~= "grace" then
    failure.raise(result.verdict, "the certificate is refused: " .. result.verdict, { quiet = true })
  end
end

-- return CERT --public-key FILE.pub --product ID --state FILE
-- [--fingerprint FP] [--out RECEIPT]: the product's offline return.
commands["return"] = function(ctx, pos, flags, many)
  local path = need(pos, 1, "CERT")
  local keys, product = verifier_options("return", flags, many)
  if not flags.state then usage_error("return needs --state FILE (the return is kept there)") end
  local core = require "licensor.core"
  local receipt = check(core.return_certificate(path, { public_keys = keys, product = product,
    fingerprint = flags.fingerprint or check(core.fingerprint()), state = flags.state }))
  if flags.out then write_text(flags.out, receipt) end
  if ctx.opts.json then return ctx.out(json_encode({ ok = true, receipt = receipt, out = flags.out })) end
  if flags.out then return ctx.out(path .. " returned: receipt written to " .. flags.out) end
  ctx.out((receipt:gsub("\n$", "")))
end

function commands.checkin(ctx, pos, flags)
  local store = installation_store(ctx, flags)
  show_installation_verdict(ctx, flags, check(store:checkin(need(pos, 1, "KEY"), need(pos, 2, "SERVER"),
    flags.on, number_flag(flags, "build"), flags.fingerprint)))
end

-- deactivate KEY SERVER [--return RECEIPT | --force --reason TEXT]
function commands.deactivate(ctx, pos, flags)
  local opts
  if flags["return"] then
    if flags.force then usage_error("deactivate takes --return RECEIPT or --force, not both") end
    opts = { receipt = read_text(flags["return"], "return receipt") }
  elseif flags.force then
    if type(flags.reason) ~= "string" or not flags.reason:find("%S") then
      usage_error("deactivate --force needs --reason TEXT (it is logged)")
    end
    opts = { force = true, reason = flags.reason }
  end
  show_verdict(ctx.out, ctx.opts, check(ctx.open():deactivate(need(pos, 1, "KEY"), need(pos, 2, "SERVER"),
    flags.on, opts)))
end

function commands.installations(ctx, pos)
  local list = check(ctx.open():installations(need(pos, 1, "KEY")))
  show_list(ctx.out, ctx.opts, list, { "server", "build", "first_seen", "last_seen", "deactivated",
                                       "held_until", "freed" })
end

-- What catching up a still-lapsed M&S takes: the terms and their price.
local function catch_up(store, lic, on)
  local policy = check(store:catalogue()):policy()
  local terms, copy = 0, lic
  while copy.ms_expires < on and terms < 1000 do
    copy = check(licensor.renew(copy, on, { months = policy.ms_months, basis = policy.renewal_basis }))
    terms = terms + 1
  end
  local price, currency = store:renewal_price(lic, on)
  return terms, price and price * terms, currency
end

-- renew KEY [--on DATE] [--until-current]
function commands.renew(ctx, pos, flags)
  local store = ctx.open()
  local key, on = need(pos, 1, "KEY"), flags.on or licensor.today()
  local lic = check(store:renew(key, flags.on, { until_current = flags.until_current }))
  show_record(ctx.out, ctx.opts, lic)
  if ctx.opts.json or not lic.ms_expires or lic.ms_expires >= on then return end
  local terms, cost, currency = catch_up(store, lic, on)
  ctx.out("")
  local price = cost and (" (" .. require("licensor.money").format(cost, currency) .. ")") or ""
  ctx.out("M&S is still lapsed after this term: it covers to " .. lic.ms_expires .. "; catching up to " ..
    on .. " takes " .. terms .. " more term" .. (terms == 1 and "" or "s") .. price ..
    ": licensor renew " .. key .. " --until-current")
end

function commands.upgrade(ctx, pos, flags)
  local store = ctx.open()
  local key = need(pos, 1, "KEY")
  local target = { edition = flags.edition, level = level_flag(flags) }
  if flags.quote then
    local lic = check(store:get(key))
    local price = check(check(store:catalogue()):quote_upgrade(lic, target, flags.on))
    if ctx.opts.json then return ctx.out(json_encode({ quote = price })) end
    local cat = check(store:catalogue())
    return ctx.out("upgrade costs " .. require("licensor.money").format(price, cat:currency()))
  end
  local paid = number_flag(flags, "pay")
  if not paid then usage_error("upgrade needs --quote or --pay AMOUNT") end
  show_record(ctx.out, ctx.opts, check(store:upgrade(key, target, flags.on, { paid = paid })))
end

commands["add-addon"] = function(ctx, pos, flags)
  local lic = ctx.open():add_addon(need(pos, 1, "KEY"), need(pos, 2, "ADDON"), flags.on)
  show_record(ctx.out, ctx.opts, check(lic))
end

commands["end-lease"] = function(ctx, pos, flags)
  show_record(ctx.out, ctx.opts, check(ctx.open():end_lease(need(pos, 1, "KEY"), flags.on)))
end

function commands.disable(ctx, pos, flags)
  show_record(ctx.out, ctx.opts, check(ctx.open():disable(need(pos, 1, "KEY"), flags.on, flags.reason)))
end

function commands.enable(ctx, pos, flags)
  show_record(ctx.out, ctx.opts, check(ctx.open():enable(need(pos, 1, "KEY"), flags.on)))
end

function commands.transfer(ctx, pos, flags)
  show_record(ctx.out, ctx.opts, check(ctx.open():transfer(need(pos, 1, "KEY"), need(pos, 2, "OWNER"),
    { consent = flags.consent })))
end

function commands.sweep(ctx, _, flags)
  local taken, skipped = check(ctx.open():sweep(flags.on))
  show_list(ctx.out, ctx.opts, taken, { "key", "case", "action", "on" })
  for _, s in ipairs(skipped) do ctx.err("licensor: sweep skipped " .. s.key .. ": " .. s.why) end
  -- A key left unworked is for cron to see, though every other was worked.
  if #skipped > 0 then
    failure.raise("sweep_skipped", #skipped .. " key(s) could not be swept (each is a sweep_skipped event)",
                  { quiet = ctx.opts.json })
  end
end

-- events KEY: in the order they were recorded, each with the time it was
-- recorded and the day it is for (a workflow's --on).
function commands.events(ctx, pos)
  local list = check(ctx.open():events(need(pos, 1, "KEY")))
  if ctx.opts.json then return show_list(ctx.out, ctx.opts, list) end
  local rows = {}
  for _, e in ipairs(list) do
    local parts = {}
    for _, r in ipairs(field_rows(e.detail)) do parts[#parts + 1] = r.field .. "=" .. r.value end
    rows[#rows + 1] = { recorded = e.recorded or "-", at = e.at, kind = e.kind, detail = concat(parts, " ") }
  end
  show_list(ctx.out, ctx.opts, rows, { "recorded", "at", "kind", "detail" })
end

function commands.repl(ctx)
  ctx.open()   -- check that it opens before handing over
  require("licensor.repl").run(ctx.db, ctx.repl_io)
end

-- deliver [--watch]: the outbox to webhooks and customer mail
-- (licensor.delivery), with retries and a dead-letter state (store:deliver).
local function read_secret(path, what)
  local f, err = io.open(path, "rb")
  if not f then refused("cannot read the " .. what .. " file: " .. tostring(err), "io_error") end
  local secret = (f:read("*a") or ""):match("^%s*(.-)%s*$")
  f:close()
  if secret == "" then refused(path .. " holds no " .. what, "invalid_request") end
  return secret
end

local STARTTLS = { auto = true, always = true, never = true }

-- HOST, HOST:PORT, [IPv6] or [IPv6]:PORT (a bare IPv6 address is a host).
local function host_and_port(text, default_port)
  local host, port = text:match("^%[([^%]]+)%]$"), nil
  if not host then host, port = text:match("^%[([^%]]+)%]:(%d+)$") end
  if not host then host, port = text:match("^([^:]+):(%d+)$") end
  return host or text, tonumber(port) or default_port
end

-- The mail options of deliver --smtp HOST[:PORT] ..., checked before any
-- delivery: a bad template stops here with file:line.
local function mail_options(flags)
  local host, port = host_and_port(flags.smtp, 25)
  if type(flags.mail_from) ~= "string" then usage_error("deliver --smtp needs --mail-from ADDRESS") end
  check(require("licensor.mail.address").check(flags.mail_from))
  local starttls = flags.starttls or "auto"
  if not STARTTLS[starttls] then usage_error("--starttls: auto, always or never") end
  if (flags.smtp_user == nil) ~= (flags.smtp_password_file == nil) then
    usage_error("--smtp-user and --smtp-password-file go together")
  end
  return { host = host, port = port, from = flags.mail_from, starttls = starttls,
           timeout = number_flag(flags, "timeout") or 10, user = flags.smtp_user,
           password = flags.smtp_password_file and read_secret(flags.smtp_password_file, "password"),
           cafile = flags.smtp_cafile, domain = flags.smtp_domain,
           templates = check(require("licensor.mail").templates(flags.templates)) }
end

local function delivery_options(flags, many)
  if not many.webhook and not flags.smtp then
    usage_error("deliver needs --webhook URL (or ACTION=URL, repeated), --smtp HOST[:PORT], or both")
  end
  if many.webhook and type(flags.secret_file) ~= "string" then
    usage_error("deliver --webhook needs --secret-file FILE")
  end
  return { webhooks = many.webhook, secret = many.webhook and read_secret(flags.secret_file, "secret"),
           timeout = number_flag(flags, "timeout") or 10, mail = flags.smtp and mail_options(flags) }
end

function commands.deliver(ctx, _, flags, many)
  local channels = delivery_options(flags, many)
  local store = ctx.open()
  store.claim_ms = number_flag(flags, "claim_ms") or store.claim_ms
  local _, why = require("licensor.delivery").install(store, channels)
  if why then usage_error(why) end
  local opts = { max_tries = number_flag(flags, "max_tries") or 8,
                 backoff_ms = number_flag(flags, "backoff_ms") or 30000 }
  local interval = number_flag(flags, "interval") or 5
  repeat
    local delivered, pending, failures = store:deliver(opts)
    local dead = 0
    for _, f in ipairs(failures) do
      if f.dead then dead = dead + 1 end
      if not ctx.opts.json then ctx.out("failed #" .. f.id .. " " .. f.action .. ": " .. f.error) end
    end
    if ctx.opts.json then
      ctx.out(json_encode({ ok = true, delivered = delivered, pending = pending, failed = #failures,
                            dead = dead }))
    else
      ctx.out(("delivered %d, failed %d (dead-lettered %d), pending %d"):format(delivered, #failures, dead,
                                                                                 pending))
    end
    if flags.watch then require("socket").sleep(interval) end
  until not flags.watch
end

-- templates --out DIR: the bundled mail templates as files to edit (never
-- over existing ones).
function commands.templates(ctx, _, flags)
  if type(flags.out) ~= "string" then usage_error("templates needs --out DIR") end
  local bundled, written = require("licensor.mail.bundled"), {}
  for _, action in ipairs(require("licensor.mail").ACTIONS) do
    local path = flags.out .. "/" .. action .. ".txt"
    local existing = io.open(path, "rb")
    if existing then
      existing:close()
    else
      write_text(path, bundled[action])
      written[#written + 1] = path
    end
  end
  if ctx.opts.json then return ctx.out(json_encode({ ok = true, written = written })) end
  ctx.out(#written == 0 and "every template is already in " .. flags.out or concat(written, "\n"))
end

-- set KEY --email ADDRESS: the owner's address for customer mail ("" forgets it).
function commands.set(ctx, pos, flags)
  if flags.email == nil then usage_error("set needs --email ADDRESS (\"\" forgets the address)") end
  show_record(ctx.out, ctx.opts, check(ctx.open():set(need(pos, 1, "KEY"), { email = flags.email })))
end

-- outbox [--dead|--all] [--limit N]; outbox retry ID
function commands.outbox(ctx, pos, flags)
  local store = ctx.open()
  if pos[1] == "retry" then
    local id = tonumber(need(pos, 2, "ID"))
    if not id then usage_error("outbox retry takes a row id") end
    check(store:retry(id))
    if ctx.opts.json then return ctx.out(json_encode({ ok = true, retried = id })) end
    return ctx.out("outbox row " .. id .. " is pending again")
  elseif pos[1] ~= nil then
    usage_error("outbox takes retry ID, or nothing")
  end
  local state = flags.dead and "dead" or flags.all and "all" or "pending"
  local rows = check(store:outbox{ state = state, limit = number_flag(flags, "limit") or 100 })
  show_list(ctx.out, ctx.opts, rows, { "id", "action", "key", "on_day", "refers_to", "attempts", "dead",
                                       "last_error" })
end

-- copy --from DB --to DB: licensor.store.copy.
function commands.copy(ctx, _, flags)
  if type(flags.from) ~= "string" or type(flags.to) ~= "string" then
    usage_error("copy takes --from DB --to DB")
  end
  local display = require("licensor.store").display_name
  local counts = check(require("licensor.store.copy").copy(flags.from, flags.to))
  if ctx.opts.json then return ctx.out(json_encode({ ok = true, copied = counts })) end
  local parts = {}
  for _, t in ipairs(require("licensor.schema").tables) do parts[#parts + 1] = counts[t] .. " " .. t end
  ctx.out("copied " .. display(flags.from) .. " to " .. display(flags.to) .. ": " .. concat(parts, ", "))
end

function commands.gateway(ctx, _, flags)
  local gateway = require "licensor.gateway.runner"
  ctx.check_database()
  if flags.today ~= nil and not require("licensor.core").day(flags.today) then
    usage_error("--today takes a date YYYY-MM-DD")
  end
  local ok, msg, code = gateway.run({ db = ctx.db, listen = flags.listen,
                                      workers = number_flag(flags, "workers"),
                                      admin_token_file = flags.admin_token_file, today = flags.today,
                                      rate_per_ip = number_flag(flags, "rate_per_ip"),
                                      rate_per_key = number_flag(flags, "rate_per_key"),
                                      conn_per_ip = number_flag(flags, "conn_per_ip"),
                                      signing_key_file = flags.signing_key,
                                      threads = number_flag(flags, "threads"),
                                      stale_ms = number_flag(flags, "stale_ms"),
                                      prefix = flags.prefix, out = ctx.out })
  if not ok then refused(msg, code) end
end

------------------------------------------------------------------------
-- Entry point
------------------------------------------------------------------------

-- The lines of USAGE about one command (its line and those indented
-- under it), or nil.
local function usage_of(name)
  local lines, inside = {}, false
  for line in USAGE:gmatch("([^\n]*)\n") do
    if line:find("^  " .. name:gsub("%-", "%%-") .. "[ \n]") or line == "  " .. name then
      inside = true
      lines[#lines + 1] = line
    elseif inside and line:find("^      ") then
      lines[#lines + 1] = line
    else
      inside = false
    end
  end
  return #lines > 0 and ("usage: licensor [--db PATH] [--json]\n" .. concat(lines, "\n")) or nil
end

-- Edit distance (Levenshtein) between two short words.
local function distance(a, b)
  local previous = {}
  for j = 0, #b do previous[j] = j end
  for i = 1, #a do
    local current = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      current[j] = math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
    end
    previous = current
  end
  return previous[#b]
end

-- The command closest to a mistyped name: one it begins, or one at most
-- two edits away.
local function suggestion(name)
  local best, best_distance = nil, 3
  for candidate in pairs(MAX_ARGS) do
    if #name >= 2 and candidate:sub(1, #name) == name then return candidate end
    local d = distance(name, candidate)
    if d < best_distance then best, best_distance = candidate, d end
  end
  return best
end

-- main(argv, {out=, err=, repl={read=, write=}}) -> exit status
function _M.main(argv, io_opts)
  io_opts = io_opts or {}
  local out = io_opts.out or print
  local err_out = io_opts.err or function(line) io.stderr:write(line, "\n") end
  local positional, flags, many = parse(argv or {})
  if not positional then
    err_out("licensor: " .. flags)
    return 2
  end
  if flags.version then
    out("licensor " .. require("licensor.core")._VERSION)
    return 0
  end
  local name = table.remove(positional, 1)
  if name == "help" and positional[1] then name, flags.help = table.remove(positional, 1), true end
  if name == nil or (flags.help and not commands[name]) or name == "help" then
    out(USAGE)
    return name == nil and not flags.help and 2 or 0
  end
  local command = commands[name]
  if not command then
    local guess = suggestion(name)
    local hint = guess and (" (did you mean '" .. guess .. "'?)") or " (licensor help lists them)"
    err_out("licensor: unknown command '" .. name .. "'" .. hint)
    return 2
  end
  if flags.help then
    out(usage_of(name) or USAGE)
    return 0
  end
  if #positional > (MAX_ARGS[name] or 0) then
    err_out("licensor: " .. name .. ": unexpected argument '" .. positional[(MAX_ARGS[name] or 0) + 1] ..
      "' (licensor help " .. name .. ")")
    return 2
  end
  local db = flags.db or os.getenv("LICENSOR_DB") or "licensor.db"
  local store
  local ctx = { db = db, opts = { json = flags.json }, out = out, err = err_out, repl_io = io_opts.repl }
  -- Only init (and import --create) may create the database: a mistyped
  -- path is an error, not a new empty store.
  local may_create = name == "init" or (name == "import" and flags.create)
  function ctx.check_database()
    if not may_create and not licensor.is_postgresql(db) and not exists(db) then
      failure.raise("no_database", db .. " does not exist (run licensor init)")
    end
  end
  function ctx.open()
    if not store then
      ctx.check_database()
      store = check(licensor.open(db))
    end
    return store
  end
  local ok, err = pcall(command, ctx, positional, flags, many)
  if store then store:close() end
  if ok then return 0 end
  if not failure.is(err) then error(err, 0) end
  local status = MALFORMED[err.code] and 2 or 1
  if ctx.opts.json and not err.quiet then
    out(json_encode({ ok = false, code = err.code, message = err.message }))
  end
  if err.code == "usage" then
    err_out("licensor: " .. err.message)
  elseif not err.quiet then
    err_out("licensor: " .. tostring(err.code) .. ": " .. tostring(err.message))
  end
  return status
end

return _M