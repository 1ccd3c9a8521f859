-- licensor.cli -- the `licensor` command for admins and support staff.
--
--   licensor [--db PATH] [--json] COMMAND [ARGS] [--on DATE]
--
-- Readable aligned tables by default, --json for scripts (every outcome,
-- refusals included, is then JSON on stdout).  Exit status, the same for
-- every command: 0 when the command did what was asked, 1 when a rule
-- refused it (the code is on stderr), 2 for bad usage or malformed input.
--
-- Each command is one entry of COMMANDS (at the end): its arguments, its
-- flags with their types and defaults, its help and its run function.
-- licensor.cli.args parses argv, answers help and writes doc/cli.md from
-- that table alone; the functions here only do the work.  Not the place
-- for rules (licensor.store and the C core own those).
local licensor = require "licensor"
local failure = require "licensor.failure"
local certificate = require "licensor.certificate"
local tabulate = require "licensor.tabulate"
local money = require "licensor.money"
local constants = require "licensor.constants"
local args = require "licensor.cli.args"
local files = require "licensor.files"

local _M = {}

local type, tostring, tonumber, pairs, ipairs = type, tostring, tonumber, pairs, ipairs
local concat, sort = table.concat, table.sort

-- What `licensor help` and doc/cli.md say before the commands.
local PREAMBLE = [[
Exit status, the same for every command: 0 done, 1 refused by a rule (the code is on stderr), 2 bad
usage or malformed input.  Amounts (--pay) are money as people write it in the catalogue's currency:
330, 330.00, $330, 1,100.00 (there is no form for minor units: 33000.0 is 33,000).  Dates are
YYYY-MM-DD (UTC).  Every command and flag below comes from one registry (lua/licensor/cli.lua).]]

-- Codes of malformed input: exit 2, like bad usage.
local MALFORMED = { usage = true, invalid_date = true, invalid_key = true, invalid_request = true,
                    invalid_policy = true }

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

-- Whether path names a directory (Linux opens one, and reading it is
-- EISDIR).
local function is_directory(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local text, _, errno = f:read(1)
  f:close()
  return text == nil and errno == 21
end

-- Whether a name exists at path, even a dangling symlink (renaming a name
-- to itself changes nothing and needs the name): true, false (ENOENT,
-- ENOTDIR), or nil and why when it cannot be told (EACCES, EROFS...).
local function name_exists(path)
  local ok, why, errno = os.rename(path, path)
  if ok then return true end
  if errno == 2 or errno == 20 then return false end
  return nil, why
end

-- Whether path (followed through symlinks) is a character device, FIFO or
-- socket: what files.write with device = true writes in place, and what
-- SQLite must never be given (it makes /dev/null-journal).  Opening one to
-- find out could block (a FIFO), so stat(2) looks.
local function is_special(path)
  local st = require("licensor.files").stat(path)
  return st ~= nil and st.special
end

-- Refuses (usage) a database path that is a device, FIFO or socket,
-- before SQLite opens it: /dev/null would get a /dev/null-journal.
local function check_database_path(db, what)
  if db ~= ":memory:" and not licensor.is_postgresql(db) and name_exists(db) and is_special(db) then
    usage_error(what .. " " .. db .. " is a device, FIFO or socket, not a database file")
  end
end

local need = args.need

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

-- A value for a table cell: a list as "a, b", a record as "k: v; k: v"
-- (sorted), a build by its number, a download by its platform: never a
-- Lua dump.
local function readable(v)
  if type(v) ~= "table" then return tostring(v) end
  if v.number or v.version then return tostring(v.number or v.version) end
  if v.platform and v.sha256 then return tostring(v.platform) end
  local names, parts = {}, {}
  for name in pairs(v) do names[#names + 1] = name end
  sort(names, function(a, b) return tostring(a) < tostring(b) end)
  local list = #names == #v
  for _, name in ipairs(names) do
    local sep = type(v[name]) == "table" and ": " or "="
    parts[#parts + 1] = list and readable(v[name]) or (tostring(name) .. sep .. readable(v[name]))
  end
  return concat(parts, list and ", " or (type(v[names[1]]) == "table" and "; " or ", "))
end

local function field_rows(t)
  local keys, rows = {}, {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys)
  for _, k in ipairs(keys) do rows[#rows + 1] = { field = k, value = readable(t[k]) } end
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
local warn_artifacts

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
-- policy and the newest builds with the platforms they can be downloaded
-- for, for people (--json: the same as data, downloads included).
function commands.catalogue(ctx, pos)
  -- The C catalogue (a policy file's hooks bound to it change no table here).
  local cat = check(ctx.open():catalogue())
  cat = cat.raw or cat
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
      -- the platforms it can be downloaded for, when it lists downloads
      local platforms = {}
      for _, d in ipairs(b.downloads or {}) do platforms[#platforms + 1] = d.platform end
      newest[#newest + 1] = b.number .. " (" .. b.version .. ", " .. b.released ..
        (#platforms > 0 and ("; " .. concat(platforms, ", ")) or "") .. ")"
    end
    if #newest > 0 then ctx.out("newest builds: " .. concat(newest, ", ")) end
    ctx.out("")
  end
  ctx.out("policy:")
  show_record(ctx.out, ctx.opts, cat:policy())
end

-- A license as the commands show it: its tags a sorted list, its own
-- override as set, and (JSON) its resolved values when anything
-- overrides the catalogue's; never the userdata itself.
local function license_view(lic, json)
  local view = {}
  for k, v in pairs(lic) do view[k] = v end
  if lic.tags then
    local list = {}
    for word in pairs(lic.tags) do list[#list + 1] = word end
    sort(list)
    view.tags = json and list or concat(list, " ")
  end
  view.policy = json and lic.policy and lic.policy:table() or nil
  return view
end

local function show_license(ctx, lic)
  show_record(ctx.out, ctx.opts, license_view(lic, ctx.opts.json))
end

-- A note on stderr for each of `words` no license but `key` has: a new
-- tag is often a typo of one in use (msp given as mps).
local function note_new_tags(ctx, store, words, key)
  if #words == 0 then return end
  local used = check(store:tags_in_use(words, key))
  for _, word in ipairs(words) do
    if not used[word] then ctx.err("licensor: tag '" .. word .. "' is new: no other license has it") end
  end
end

function commands.issue(ctx, _, flags, many)
  local spec = { product = flags.product, edition = flags.edition, level = flags.level,
                 kind = flags.kind, start = flags.start, owner = flags.owner, email = flags.email,
                 failover = flags.failover and true or nil,
                 version_lock = flags.version_lock,
                 trial_days = flags.trial_days, addons = many.addon, tags = many.tag }
  if not spec.product then usage_error("issue needs --product") end
  local store = ctx.open()
  local lic = check(store:issue(spec))
  show_license(ctx, lic)
  note_new_tags(ctx, store, many.tag or {}, lic.key)
end

function commands.show(ctx, pos, flags)
  local store = ctx.open()
  local lic = check(store:get(need(pos, 1, "KEY")))
  local cat = check(store:catalogue())
  local status = check(cat:status(lic, flags.on))
  if ctx.opts.json then
    return ctx.out(json_encode({ license = license_view(lic, true), status = status }))
  end
  show_license(ctx, lic)
  ctx.out("")
  show_record(ctx.out, ctx.opts, status)
end

function commands.eligible(ctx, pos, flags)
  local store = ctx.open()
  local lic = check(store:get(need(pos, 1, "KEY")))
  local build = check(check(store:catalogue()):eligible(lic, flags.on))
  show_record(ctx.out, ctx.opts, build)
end

-- The whole text of a file (never truncated), or a refusal: io_error
-- when it cannot be read, too_large past max bytes (default
-- MAX_FILE_BYTES: /dev/zero ends too), usage when it is empty.
local function read_text(path, what, max)
  local text, why, code = files.read(path, what, max or constants.MAX_FILE_BYTES)
  if not text then refused(why, code or "io_error") end
  if text == "" then usage_error(what .. " " .. path .. " is empty") end
  return text
end

-- A new file (mode 0600, never over an existing one, never through a
-- symlink, never left partial or empty): or a refusal, exists or io_error.
local function write_text(path, text)
  if path == "" then usage_error("an empty file name") end
  local ok, why, code = files.write(path, text, { mode = constants.PRIVATE_MODE, device = true })
  if not ok then refused(why, code or "io_error") end
end

-- Refuses, before work that cannot be taken back, a path write_text would
-- refuse after it: empty, or an existing name that is not a device, FIFO
-- or socket (exists), or one whose directory cannot be looked in.
local function check_new_file(path)
  if path == "" then usage_error("an empty file name") end
  local found, why = name_exists(path)
  if found == nil then refused(why, "io_error") end
  if found and not is_special(path) then refused(path .. ": File exists", "exists") end
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
  local text = read_text(flags.request, "request", constants.MAX_CERTIFICATE_BYTES)
  local request = check(certificate.read_request(text))
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
  local build = need(pos, 3, "BUILD")
  if not certificate.valid_build(build) then
    usage_error("BUILD is a build number: a whole number of at most " .. certificate.MAX_BUILD_DIGITS ..
      " digits")
  end
  build = tonumber(build)
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

-- list [--owner O] [--product P] [--kind K] [--edition E] [--tag WORD ...]
-- [--ms-expiring DAYS] [--lapsed] [--disabled] [--fraud] [--on DATE]
-- [--limit N] [--offset N]
function commands.list(ctx, _, flags, many)
  local rows = check(ctx.open():list{
    owner = flags.owner, product = flags.product, kind = flags.kind, edition = flags.edition,
    tags = many.tag,
    ms_expiring = flags.ms_expiring, lapsed = flags.lapsed, disabled = flags.disabled,
    fraud = flags.fraud, on = flags.on, limit = flags.limit,
    offset = flags.offset })
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
  local text = read_text(path, "licenses file")
  local keys = check(ctx.open():import_licenses(text, path))
  if ctx.opts.json then return ctx.out(json_encode({ ok = true, imported = #keys })) end
  ctx.out("imported " .. #keys .. " licenses from " .. path)
end

function commands.backup(ctx, pos)
  local path = need(pos, 1, "PATH")
  if path == ":memory:" then usage_error("backup PATH names a file, not :memory:") end
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

-- verify CERT --public-key FILE.pub ... --product ID [--fingerprint FP]
-- [--state FILE [--new-state] [--revocation NOTICE]]: exit 0 for valid or
-- grace, 1 for any refusal.
function commands.verify(ctx, pos, flags, many)
  local text = read_text(need(pos, 1, "CERT"), "certificate", constants.MAX_CERTIFICATE_BYTES)
  local keys, product = verifier_options("verify", flags, many)
  local core = require "licensor.core"
  local fp = flags.fingerprint or check(core.fingerprint())
  if flags.revocation then
    if not flags.state then usage_error("--revocation needs --state FILE (the notice is kept there)") end
    check(core.revocation_apply(read_text(flags.revocation, "revocation notice",
      constants.MAX_CERTIFICATE_BYTES),
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
  -- The return deletes CERT: --out is checked first, and a receipt that
  -- still cannot be written is printed, never lost.
  if flags.out then check_new_file(flags.out) end
  local receipt = check(core.return_certificate(path, { public_keys = keys, product = product,
    fingerprint = flags.fingerprint or check(core.fingerprint()), state = flags.state }))
  if flags.out then
    local ok, why = files.write(flags.out, receipt, { mode = constants.PRIVATE_MODE, device = true })
    if not ok then
      local message = why .. "; " .. path .. " is returned and deleted: its receipt is printed above, " ..
        "save it (deactivate --return RECEIPT needs it)"
      if ctx.opts.json then
        ctx.out(json_encode({ ok = false, code = "io_error", message = message, receipt = receipt }))
        ctx.err("licensor: io_error: " .. message)
        failure.raise("io_error", message, { quiet = true })
      end
      ctx.out((receipt:gsub("\n$", "")))
      refused(message, "io_error")
    end
  end
  if ctx.opts.json then return ctx.out(json_encode({ ok = true, receipt = receipt, out = flags.out })) end
  if flags.out then return ctx.out(path .. " returned: receipt written to " .. flags.out) end
  ctx.out((receipt:gsub("\n$", "")))
end

function commands.checkin(ctx, pos, flags)
  local store = installation_store(ctx, flags)
  show_installation_verdict(ctx, flags, check(store:checkin(need(pos, 1, "KEY"), need(pos, 2, "SERVER"),
    flags.on, flags.build, flags.fingerprint)))
end

-- deactivate KEY SERVER [--return RECEIPT | --force --reason TEXT]
function commands.deactivate(ctx, pos, flags)
  local opts
  if flags["return"] then
    if flags.force then usage_error("deactivate takes --return RECEIPT or --force, not both") end
    opts = { receipt = read_text(flags["return"], "return receipt", constants.MAX_CERTIFICATE_BYTES) }
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
  local cat = check(store:catalogue())
  local policy = lic.policy or (cat.raw or cat):policy()
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
  show_license(ctx, lic)
  if ctx.opts.json or not lic.ms_expires or lic.ms_expires >= on then return end
  local terms, cost, currency = catch_up(store, lic, on)
  ctx.out("")
  local price = cost and (" (" .. money.format(cost, currency) .. ")") or ""
  ctx.out("M&S is still lapsed after this term: it covers to " .. lic.ms_expires .. "; catching up to " ..
    on .. " takes " .. terms .. " more term" .. (terms == 1 and "" or "s") .. price ..
    ": licensor renew " .. key .. " --until-current")
end

function commands.upgrade(ctx, pos, flags)
  local store = ctx.open()
  local key = need(pos, 1, "KEY")
  local target = { edition = flags.edition, level = flags.level }
  if flags.quote then
    local lic = check(store:get(key))
    local price = check(check(store:catalogue()):quote_upgrade(lic, target, flags.on))
    if ctx.opts.json then return ctx.out(json_encode({ quote = price })) end
    local cat = check(store:catalogue())
    return ctx.out("upgrade costs " .. money.format(price, cat:currency()))
  end
  if not flags.pay then usage_error("upgrade needs --quote or --pay AMOUNT") end
  local paid, why = money.parse(flags.pay, check(store:catalogue()):currency())
  if not paid then usage_error("--pay: " .. why) end
  local lic, msg, code = store:upgrade(key, target, flags.on, { paid = paid })
  if code == "wrong_amount" then
    -- the store says minor units; people read the catalogue's money
    local cat = check(store:catalogue())
    local quote = check(cat:quote_upgrade(check(store:get(key)), target, flags.on))
    msg = "the upgrade costs " .. money.format(quote, cat:currency()) .. ", " ..
      money.format(paid, cat:currency()) .. " was paid"
  end
  show_license(ctx, check(lic, msg, code))
end

commands["add-addon"] = function(ctx, pos, flags)
  local lic = ctx.open():add_addon(need(pos, 1, "KEY"), need(pos, 2, "ADDON"), flags.on)
  show_license(ctx, check(lic))
end

commands["end-lease"] = function(ctx, pos, flags)
  show_license(ctx, check(ctx.open():end_lease(need(pos, 1, "KEY"), flags.on)))
end

function commands.disable(ctx, pos, flags)
  show_license(ctx, check(ctx.open():disable(need(pos, 1, "KEY"), flags.on, flags.reason)))
end

function commands.enable(ctx, pos, flags)
  show_license(ctx, check(ctx.open():enable(need(pos, 1, "KEY"), flags.on)))
end

function commands.transfer(ctx, pos, flags)
  show_license(ctx, check(ctx.open():transfer(need(pos, 1, "KEY"), need(pos, 2, "OWNER"),
    { consent = flags.consent })))
end

-- A sweep's day must leave its reminders' windows (the policy's offsets
-- either side of it) inside the calendar: 9999-12-31 is refused, cleanly.
local function check_sweep_day(store, on)
  local core = require "licensor.core"
  local n, widest = core.day(on), 0
  local cat = check(store:catalogue())
  for _, offsets in pairs((cat.raw or cat):policy().reminders or {}) do
    for _, offset in ipairs(offsets) do widest = math.max(widest, math.abs(offset)) end
  end
  if not core.date(n - widest - 1) or not core.date(n + widest + 1) then
    failure.raise("invalid_date", "sweep --on " .. on .. ": its reminders (" .. widest ..
      " days either side) would leave years 1-9999")
  end
end

function commands.sweep(ctx, _, flags)
  if flags.on then check_sweep_day(ctx.open(), flags.on) end
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

-- The trimmed text of a secret file (a webhook secret, an SMTP password,
-- an admin token): never empty.
local MAX_SECRET_BYTES = 4096   -- a secret, password or token file: a line, not a document

local function read_secret(path, what)
  local secret = read_text(path, what .. " file", MAX_SECRET_BYTES):match("^%s*(.-)%s*$")
  if secret == "" then refused(path .. " holds no " .. what, "invalid_request") end
  return secret
end

-- HOST, HOST:PORT, [IPv6] or [IPv6]:PORT (a bare IPv6 address is a host).
local function host_and_port(text, default_port)
  local host, port = text:match("^%[([^%]]+)%]$"), nil
  if not host then host, port = text:match("^%[([^%]]+)%]:(%d+)$") end
  if not host then host, port = text:match("^([^:]+):(%d+)$") end
  return host or text, tonumber(port) or default_port
end

-- The mail options of deliver --smtp HOST[:PORT] ..., checked before any
-- delivery: a bad template stops here with file:line.  --starttls left
-- out is licensor.mail.smtp's default: required unless the host is
-- loopback.
local function mail_options(flags)
  local host, port = host_and_port(flags.smtp, 25)
  if host == "" then usage_error("--smtp takes HOST[:PORT]") end
  if type(flags.mail_from) ~= "string" then usage_error("deliver --smtp needs --mail-from ADDRESS") end
  check(require("licensor.mail.address").check(flags.mail_from))
  if (flags.smtp_user == nil) ~= (flags.smtp_password_file == nil) then
    usage_error("--smtp-user and --smtp-password-file go together")
  end
  return { host = host, port = port, from = flags.mail_from, starttls = flags.starttls,
           timeout = flags.timeout, user = flags.smtp_user,
           password = flags.smtp_password_file and read_secret(flags.smtp_password_file, "password"),
           cafile = flags.smtp_cafile, domain = flags.smtp_domain,
           templates = check(require("licensor.mail").templates(flags.templates)) }
end

local function delivery_options(ctx, flags, many)
  if not many.webhook and not flags.smtp then
    usage_error("deliver needs --webhook URL (or ACTION=URL, repeated), --smtp HOST[:PORT], or both")
  end
  if many.webhook and type(flags.secret_file) ~= "string" then
    usage_error("deliver --webhook needs --secret-file FILE")
  end
  -- What would fail every row is refused at the start: a scheme that is
  -- not http(s), a templates directory that is not one, a cafile TLS
  -- cannot load.
  for _, w in ipairs(many.webhook or {}) do
    local url = w:match("^[%w_]+=(.*)$") or w
    local scheme = url:match("^(%a[%w+.%-]*)://")
    if not scheme or (scheme:lower() ~= "http" and scheme:lower() ~= "https") then
      usage_error("--webhook " .. w .. ": the URL is http:// or https://")
    end
  end
  if flags.templates ~= nil and not is_directory(flags.templates) then
    usage_error("--templates " .. flags.templates .. " is not a directory")
  end
  for _, name in ipairs({ "cafile", "smtp_cafile" }) do
    if flags[name] ~= nil then
      local ok, why = require("licensor.tls").check({ cafile = flags[name] })
      if not ok then
        usage_error("--" .. name:gsub("_", "-") .. " " .. flags[name] .. ": " .. tostring(why))
      end
    end
  end
  if flags.insecure then
    if flags.cafile or flags.smtp_cafile then
      usage_error("deliver takes --cafile FILE or --insecure, not both")
    end
    ctx.err("licensor: deliver --insecure: TLS certificates and host names are NOT checked " ..
            "(webhooks and SMTP), as asked")
  end
  if (flags.portal_url == nil) ~= (flags.link_secret == nil) then
    usage_error("--portal-url and --link-secret go together")
  end
  local portal = flags.portal_url and { url = flags.portal_url,
                                        secret = check(require("licensor.links").read(flags.link_secret)) }
  local exposed = portal and require("licensor.links").exposed(flags.link_secret)
  if exposed then ctx.err("licensor: deliver: warning: " .. exposed) end
  if portal and not portal.url:match("^https?://[%w%.%-%[%]:]+$") then
    usage_error("--portal-url is http(s)://HOST[:PORT], without a path")
  end
  return { webhooks = many.webhook, secret = many.webhook and read_secret(flags.secret_file, "secret"),
           portal = portal,
           timeout = flags.timeout, mail = flags.smtp and mail_options(flags),
           tls = { cafile = flags.cafile or flags.smtp_cafile, insecure = flags.insecure or nil } }
end

-- deliver: one round (or rounds every --interval with --watch); exits 1
-- when a row failed in the (last) round, saying how many.
function commands.deliver(ctx, _, flags, many)
  local channels = delivery_options(ctx, flags, many)
  local store = ctx.open()
  store.claim_ms = flags.claim_ms
  local plan, why = require("licensor.delivery").install(store, channels)
  if why then usage_error(why) end
  if channels.mail and not plan.portal_signin then
    local waiting = 0
    for _, row in ipairs(store:outbox{ limit = 10000 }) do
      if row.action == "portal_signin" then waiting = waiting + 1 end
    end
    if waiting > 0 then
      ctx.err(("licensor: deliver: %d portal sign-in mail%s stay%s pending: they need --portal-url URL " ..
               "--link-secret FILE (the gateway's)"):format(waiting, waiting == 1 and "" or "s",
                                                           waiting == 1 and "s" or ""))
    end
  end
  local opts = { max_tries = flags.max_tries, backoff_ms = flags.backoff_ms }
  local failed
  repeat
    local delivered, pending, failures = store:deliver(opts)
    local dead = 0
    for _, f in ipairs(failures) do
      if f.dead then dead = dead + 1 end
      if not ctx.opts.json then ctx.out("failed #" .. f.id .. " " .. f.action .. ": " .. f.error) end
    end
    if ctx.opts.json then
      ctx.out(json_encode({ ok = #failures == 0, delivered = delivered, pending = pending, failed = #failures,
                            dead = dead }))
    else
      ctx.out(("delivered %d, failed %d (dead-lettered %d), pending %d"):format(delivered, #failures, dead,
                                                                                 pending))
    end
    failed = #failures
    -- one line a round reaches a log file or pipe as it happens
    if flags.watch then
      io.stdout:flush()
      require("socket").sleep(flags.interval)
    end
  until not flags.watch
  if failed > 0 then
    failure.raise("delivery_failed", failed .. " row(s) failed to deliver (licensor outbox lists them)",
                  { quiet = ctx.opts.json })
  end
end

-- artifacts check DIR: licensor.artifacts.check against the active
-- catalogue; exit 1 when a file is missing or differs.  artifacts demo
-- DIR: the bundled catalogue's demo files (licensor.demo.write_artifacts),
-- for trying the downloads and the portal.
function commands.artifacts(ctx, pos)
  if pos[1] ~= "check" and pos[1] ~= "demo" then usage_error("artifacts takes check DIR or demo DIR") end
  local dir = need(pos, 2, "DIR")
  if pos[1] == "demo" then
    if exists(dir) and not is_directory(dir) then refused(dir .. " is not a directory", "io_error") end
    local n = require("licensor.demo").write_artifacts(dir)
    if ctx.opts.json then return ctx.out(json_encode({ ok = true, files = n, dir = dir })) end
    return ctx.out(("wrote %d demo build files (the bundled catalogue's downloads) to %s"):format(n, dir))
  end
  if not is_directory(dir) then usage_error("artifacts check: " .. dir .. " is not a directory") end
  local cat = check(ctx.open():catalogue())
  return require("licensor.artifacts").command(ctx, cat, dir)
end

-- templates --out DIR: the bundled mail templates as files to edit (never
-- over existing ones).
function commands.templates(ctx, _, flags)
  if type(flags.out) ~= "string" or flags.out == "" then usage_error("templates needs --out DIR") end
  -- DIR is made when it does not exist (mkdir -p); a file there is refused.
  if not is_directory(flags.out) then
    if exists(flags.out) then refused(flags.out .. " is not a directory", "io_error") end
    if require("licensor.core").process.run({ "mkdir", "-p", "--", flags.out }) ~= 0 then
      refused("cannot make the directory " .. flags.out, "io_error")
    end
  end
  local bundled, written = require("licensor.mail.bundled"), {}
  for _, action in ipairs(require("licensor.mail").ACTIONS) do
    local path = flags.out .. "/" .. action .. ".txt"
    local ok, why, code = files.write(path, bundled[action], { mode = 420 })
    if ok then
      written[#written + 1] = path
    elseif code ~= "exists" then
      refused(why, code)
    end
  end
  if ctx.opts.json then return ctx.out(json_encode({ ok = true, written = written })) end
  ctx.out(#written == 0 and "every template is already in " .. flags.out or concat(written, "\n"))
end

-- One --policy KEY=VALUE: a whole number or a word; KEY= removes the key
-- from the license's override; reminders.KIND=N,N,... (or none) sets one
-- kind of reminders.  texts[KEY] keeps the text given, for the messages.
local function policy_change(changes, text, texts)
  local key, value = text:match("^([%w_%.]+)=(.*)$")
  if not key then usage_error("--policy " .. text .. ": KEY=VALUE expected (KEY= removes the key)") end
  texts[key] = text
  local kind = key:match("^reminders%.(%w+)$")
  if kind then
    local list = {}
    if value ~= "none" then
      for item in value:gmatch("[^,]+") do
        local n = item:match("^%s*(%-?%d+)%s*$")
        if not n then usage_error("--policy " .. text .. ": reminders are days N,N,... (or none)") end
        list[#list + 1] = math.tointeger and math.tointeger(tonumber(n)) or tonumber(n)
      end
    end
    local reminders = type(changes.reminders) == "table" and changes.reminders or {}
    reminders[kind] = value ~= "" and list or false
    changes.reminders = reminders
  elseif key:find("%.") then
    usage_error("--policy " .. text .. ": no setting " .. key ..
      " (reminders.KIND=... is the one dotted key)")
  elseif value == "" then
    changes[key] = false
  elseif value:match("^%-?%d+$") then
    changes[key] = math.tointeger and math.tointeger(tonumber(value)) or tonumber(value)
  else
    changes[key] = value
  end
end

-- A refusal of a --policy value, with the text it came from: a message
-- such as "must be a whole number" then shows what was received (a=1,b=2
-- is one value of a; each pair wants a --policy of its own).
local function policy_refusal(msg, texts)
  local key = msg:match("^policy%.(reminders%.%w+)") or msg:match("^policy%.([%w_]+)")
  local text = key and texts[key]
  if not text then return msg end
  local value = text:match("=(.*)$")
  local hint = not key:find("%.") and value:find("=", 1, true) and "; one KEY=VALUE per --policy" or ""
  return msg .. " (--policy " .. text .. hint .. ")"
end

-- The notes of a set that changed less than it was asked: the removal
-- of a setting the license's own values do not hold, --untag of a tag it
-- has not (both change nothing and are no event), and --tag of a tag no
-- other license has.
local function set_notes(ctx, store, before, fields, key)
  local function sorted(t)
    local list = {}
    for k in pairs(t or {}) do list[#list + 1] = k end
    sort(list)
    return list
  end
  local override = before.policy_override or {}
  for _, k in ipairs(sorted(fields.policy)) do
    local v = fields.policy[k]
    if v == false and override[k] == nil then
      ctx.err("licensor: --policy " .. k .. "=: nothing to remove (the license's own values do not set it)")
    elseif k == "reminders" and type(v) == "table" then
      local kinds = type(override.reminders) == "table" and override.reminders or {}
      for _, kind in ipairs(sorted(v)) do
        if v[kind] == false and kinds[kind] == nil then
          ctx.err("licensor: --policy reminders." .. kind ..
            "=: nothing to remove (the license's own values do not set it)")
        end
      end
    end
  end
  local had, added = before.tags or {}, {}
  for _, word in ipairs(sorted(fields.tags)) do
    local wanted = fields.tags[word]
    if wanted and not had[word] then
      added[#added + 1] = word
    elseif not wanted and not had[word] then
      ctx.err("licensor: tag " .. word .. ": the license has no such tag")
    end
  end
  note_new_tags(ctx, store, added, key)
end

-- set KEY [--email ADDRESS] [--policy KEY=VALUE ... --reason TEXT] [--by WHO]
-- [--tag WORD ...] [--untag WORD ...]
function commands.set(ctx, pos, flags, many)
  local fields, texts = { email = flags.email, reason = flags.reason }, {}
  if many.policy then
    fields.policy = {}
    for _, text in ipairs(many.policy) do policy_change(fields.policy, text, texts) end
    if not flags.reason then usage_error("set --policy needs --reason TEXT (it is logged)") end
  end
  if many.tag or many.untag then
    fields.tags = {}
    for _, word in ipairs(many.tag or {}) do fields.tags[word] = true end
    for _, word in ipairs(many.untag or {}) do fields.tags[word] = false end
  end
  if fields.email == nil and fields.policy == nil and fields.tags == nil then
    usage_error("set needs --email, --policy, --tag or --untag")
  end
  fields.by = flags.by or os.getenv("USER") or "cli"
  local store, key = ctx.open(), need(pos, 1, "KEY")
  local before = check(store:get(key))
  local lic, msg, code = store:set(key, fields)
  if not lic and code == "invalid_policy" then msg = policy_refusal(msg, texts) end
  show_license(ctx, check(lic, msg, code))
  set_notes(ctx, store, before, fields, lic.key)
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
  local rows = check(store:outbox{ state = state, limit = flags.limit or 100 })
  show_list(ctx.out, ctx.opts, rows, { "id", "action", "key", "on_day", "refers_to", "attempts", "dead",
                                       "last_error" })
end

-- copy --from DB --to DB: licensor.store.copy.
function commands.copy(ctx, _, flags)
  if type(flags.from) ~= "string" or type(flags.to) ~= "string" then
    usage_error("copy takes --from DB --to DB")
  end
  if flags.to == "" or flags.to == ":memory:" then
    usage_error("copy --to names the new store (a file or a postgresql:// URL), not '" .. flags.to .. "'")
  end
  check_database_path(flags.from, "copy --from")
  check_database_path(flags.to, "copy --to")
  local display = require("licensor.store").display_name
  -- The source must exist: copying from a mistyped path creates nothing.
  if not licensor.is_postgresql(flags.from) and (flags.from == ":memory:" or not exists(flags.from)) then
    failure.raise("no_database", flags.from .. " does not exist (copy --from names an existing database)")
  end
  local counts = check(require("licensor.store.copy").copy(flags.from, flags.to))
  if ctx.opts.json then return ctx.out(json_encode({ ok = true, copied = counts })) end
  local parts = {}
  for _, t in ipairs(require("licensor.schema").tables) do parts[#parts + 1] = counts[t] .. " " .. t end
  ctx.out("copied " .. display(flags.from) .. " to " .. display(flags.to) .. ": " .. concat(parts, ", "))
end

-- What `licensor gateway --artifacts DIR` says before it starts when DIR
-- lacks a file the active catalogue names, or holds one of another size
-- (licensor artifacts check DIR hashes them too): the gateway serves
-- anyway, but those downloads would be 404 at the link.
warn_artifacts = function(ctx, dir)
  local cat = ctx.open():catalogue()
  if not cat then return end
  local results = require("licensor.artifacts").check(cat, dir, true)
  local bad = {}
  for _, r in ipairs(results) do
    if r.result ~= "ok" then bad[#bad + 1] = r end
  end
  if #bad == 0 then return end
  ctx.err(("licensor gateway: warning: %d of %d files the catalogue's downloads name are missing or " ..
           "differ in %s (licensor artifacts check %s), the first: %s"):format(#bad, #results, dir, dir,
           require("licensor.artifacts").line(bad[1])))
end

function commands.gateway(ctx, _, flags)
  local gateway = require "licensor.gateway.runner"
  ctx.check_database()
  if flags.today ~= nil and not require("licensor.core").day(flags.today) then
    usage_error("--today takes a date YYYY-MM-DD")
  end
  -- --read-db is checked as --db is (never a device or FIFO); the runner
  -- refuses one that is not PostgreSQL, or beside an SQLite --db.
  if flags.read_db ~= nil then check_database_path(flags.read_db, "--read-db") end
  -- A token file that cannot be read is an error, never admin routes off.
  if flags.admin_token_file then read_secret(flags.admin_token_file, "admin token") end
  if flags.artifacts and is_directory(flags.artifacts) then warn_artifacts(ctx, flags.artifacts) end
  local exposed = flags.link_secret and require("licensor.links").exposed(flags.link_secret)
  if exposed then ctx.err("licensor gateway: warning: " .. exposed) end
  local ok, msg, code = gateway.run({ db = ctx.db, listen = flags.listen,
                                      workers = flags.workers,
                                      admin_token_file = flags.admin_token_file, today = flags.today,
                                      rate_per_ip = flags.rate_per_ip,
                                      rate_per_key = flags.rate_per_key,
                                      conn_per_ip = flags.conn_per_ip,
                                      signing_key_file = flags.signing_key,
                                      threads = flags.threads,
                                      stale_ms = flags.stale_ms,
                                      db_timeout_ms = flags.db_timeout_ms,
                                      health_timeout_ms = flags.health_timeout_ms,
                                      read_db = flags.read_db, queue = flags.queue,
                                      drain_seconds = flags.drain_seconds,
                                      artifacts = flags.artifacts, link_secret_file = flags.link_secret,
                                      public_url = flags.public_url,
                                      prefix = flags.prefix, user = flags.user, out = ctx.out })
  if not ok then refused(msg, code) end
end

------------------------------------------------------------------------
-- The registry: one entry per command, in the order help lists them.
-- Parsing, help, COMMAND --help, suggestions, exit 2 and doc/cli.md all
-- read it (licensor.cli.args describes an entry).
------------------------------------------------------------------------

local DELIVERY = constants.DELIVERY
local ON = { "--on DATE", "the day of the workflow (default today, UTC)", type = "date",
             hint = { "date", "day" } }
local OUT = function(what) return { "--out FILE", "write " .. what .. " to FILE (a new file, mode 0600)" } end
local FINGERPRINT = { "--fingerprint FP", "the machine's fingerprint (licensor fingerprint)" }
local SIGNING_KEY = { "--signing-key FILE", "the signing key (licensor keys new)" }
local REVOCATION_OUT = { "--revocation-out FILE",
  "where a refusal's signed revocation notice goes (needs --signing-key)" }
local PUBLIC_KEY = { "--public-key FILE.pub", "a trusted public key", many = true, required = true }
local PRODUCT_ID = { "--product ID", "the product checking it", required = true }
local WHOLE = function(spec, help, extra)
  local f = { spec, help, type = "whole" }
  for k, v in pairs(extra or {}) do f[k] = v end
  return f
end

-- A whole-number flag of `licensor gateway`: its bounds and default are
-- the runner's (licensor.gateway.runner LIMITS), the one table of them.
-- no_default: the default depends on another flag (the runner picks it).
local GATEWAY_LIMITS = require("licensor.gateway.runner").LIMITS
local function GATEWAY_WHOLE(spec, help, name, no_default)
  local limit = GATEWAY_LIMITS[name]
  return WHOLE(spec, help, { min = limit.min, max = limit.max,
                             default = not no_default and limit.default or nil })
end

local COMMANDS

-- help [COMMAND] [--markdown]: from the registry, as doc/cli.md is.
function commands.help(ctx, pos, flags)
  if flags.markdown then
    if pos[1] then usage_error("help --markdown documents every command") end
    return ctx.out(args.markdown(COMMANDS, PREAMBLE))
  end
  if not pos[1] then return ctx.out(args.help(COMMANDS, nil, PREAMBLE)) end
  for _, entry in ipairs(COMMANDS) do
    if entry.name == pos[1] then return ctx.out(args.help(COMMANDS, entry)) end
  end
  local guess = args.suggest_command(COMMANDS, pos[1])
  usage_error("help: no command '" .. pos[1] .. "'" ..
    (guess and (" (did you mean '" .. guess .. "'?)") or ""))
end

COMMANDS = {
  { name = "init", summary = "create the database (mode 0600)", run = commands.init },
  { name = "import", args = { "CATALOGUE" }, run = commands.import,
    summary = "import a catalogue file (or a bundled one by name, such as smartertools) as the new " ..
              "active version; the active catalogue again changes nothing",
    flags = { { "--create", "make the database if it does not exist" } } },
  { name = "issue", run = commands.issue, summary = "issue a license",
    flags = { { "--product P", "the product", required = true },
              { "--edition E", "the edition", required = true },
              { "--level N", "the level (a whole number, or unlimited)", type = "level", required = true },
              { "--kind KIND", "the kind of license", choices = { "perpetual", "lease", "trial" } },
              { "--start DATE", "the first day (default today)", type = "date" },
              { "--owner O", "the owner" }, { "--email ADDRESS", "where customer mail goes" },
              { "--failover", "a failover license" },
              WHOLE("--version-lock N", "the newest major it may install"),
              WHOLE("--trial-days N", "a trial's length in days"),
              { "--addon A", "an add-on", many = true },
              { "--tag WORD", "a tag (a-z, 0-9, _ and -; at most 16; one no other license has is " ..
                "noted on stderr)", many = true } } },
  { name = "set", args = { "KEY" }, run = commands.set,
    summary = "the address customer mail goes to, the license's own policy values, its tags",
    help = "(--policy migration_days=60 --reason \"...\" overrides one value for this license alone, " ..
           "within the catalogue's bounds; KEY= removes it; reminders.ms=30,7 sets a kind of reminders. " ..
           "A KEY that is no policy setting is refused (exit 2, with the nearest setting), removed " ..
           "as well as set; removing a setting the license's own values do not hold, or --untag of a " ..
           "tag it has not, changes nothing (exit 0, a note on stderr, no event); --tag of a tag no " ..
           "other license has is done, with a note on stderr. Each change is a set event with who, why, " ..
           "from and to).",
    flags = { { "--email ADDRESS", "the address (\"\" forgets it)" },
              { "--policy KEY=VALUE", "a policy value for this license (KEY= removes it)", many = true },
              { "--reason TEXT", "why (logged; needed with --policy)" },
              { "--by WHO", "who (logged; default $USER, or cli)" },
              { "--tag WORD", "add a tag (a-z, 0-9, _ and -; at most 16)", many = true },
              { "--untag WORD", "remove a tag", many = true } } },
  { name = "catalogue", args = { "[PRODUCT]" }, run = commands.catalogue,
    summary = "products, editions, prices, add-ons, policy and newest builds (with their download " ..
              "platforms)" },
  { name = "list", run = commands.list, summary = "licenses, filters combined",
    flags = { { "--owner O", "owned by O" }, { "--product P", "of product P" },
              { "--kind KIND", "of this kind", choices = { "perpetual", "lease", "trial" } },
              { "--edition E", "of edition E" },
              { "--tag WORD", "tagged WORD (given again: every one of the tags)", many = true },
              WHOLE("--ms-expiring DAYS", "M&S ending within DAYS days", { max = 36525 }),
              { "--lapsed", "M&S lapsed" }, { "--disabled", "disabled keys" },
              { "--fraud", "keys with a fraud case (and its columns)" }, ON,
              WHOLE("--limit N", "at most N rows", { min = 1 }), WHOLE("--offset N", "skip N rows") } },
  { name = "show", args = { "KEY" }, run = commands.show,
    summary = "the license (its tags and own policy values too) and its status",
    flags = { ON } },
  { name = "eligible", args = { "KEY" }, run = commands.eligible,
    summary = "the newest build the license may install", flags = { ON } },
  { name = "activate", args = { "KEY", "SERVER", "BUILD" }, run = commands.activate,
    summary = "activate a server on a build, or answer an air-gapped server's request",
    help = "(activate --request FILE --out CERT --signing-key FILE).",
    flags = { FINGERPRINT, ON, SIGNING_KEY, REVOCATION_OUT,
              { "--request FILE", "an air-gapped activation request (licensor request)" },
              OUT("the certificate (with --request)") } },
  { name = "checkin", args = { "KEY", "SERVER" }, run = commands.checkin,
    summary = "a server's periodic check-in",
    flags = { WHOLE("--build N", "the build it runs"), FINGERPRINT, ON, SIGNING_KEY, REVOCATION_OUT } },
  { name = "deactivate", args = { "KEY", "SERVER" }, run = commands.deactivate,
    summary = "free a server's slot",
    help = "(a certificate holds it until held_until unless returned with its receipt, --return, " ..
           "or freed by an admin, --force --reason).",
    flags = { ON, { "--return RECEIPT", "the return receipt (licensor return)" },
              { "--force", "free a held slot (needs --reason)" }, { "--reason TEXT", "why (logged)" } } },
  { name = "installations", args = { "KEY" }, run = commands.installations,
    summary = "the license's servers, with held_until and freed" },
  { name = "renew", args = { "KEY" }, run = commands.renew, summary = "renew M&S by one term",
    flags = { ON, { "--until-current", "term by term until M&S covers the day" } } },
  { name = "upgrade", args = { "KEY" }, run = commands.upgrade,
    summary = "a higher edition or level: --quote prices it, --pay AMOUNT does it",
    flags = { { "--edition E", "the new edition" },
              { "--level N", "the new level (a whole number, or unlimited)", type = "level" }, ON,
              { "--quote", "the price only" },
              { "--pay AMOUNT", "the amount paid, as people write it (330, 330.00, $330, 1,100.00)",
                type = "money" } } },
  { name = "add-addon", args = { "KEY", "ADDON" }, run = commands["add-addon"], summary = "add an add-on",
    flags = { ON } },
  { name = "end-lease", args = { "KEY" }, run = commands["end-lease"], summary = "end a lease",
    flags = { ON } },
  { name = "disable", args = { "KEY" }, run = commands.disable, summary = "disable a key",
    flags = { { "--reason R", "why (recorded)" }, ON } },
  { name = "enable", args = { "KEY" }, run = commands.enable, summary = "enable a disabled key",
    flags = { ON } },
  { name = "transfer", args = { "KEY", "OWNER" }, run = commands.transfer, summary = "a new owner",
    flags = { { "--consent REF", "the reference of the old owner's consent", required = true } } },
  { name = "sweep", run = commands.sweep,
    summary = "the day's fraud ladder and reminders, into the outbox (exit 1 when a key was skipped)",
    flags = { ON } },
  { name = "events", args = { "KEY" }, run = commands.events,
    summary = "the license's events, in the order recorded" },
  { name = "export", run = commands.export, summary = "licenses with their add-ons and installations",
    flags = { { "--format F", "the format", choices = { "csv", "jsonl" }, default = "csv" },
              OUT("the export") } },
  { name = "import-licenses", args = { "FILE" }, run = commands["import-licenses"],
    summary = "existing customers from that CSV (as export writes it): all rows or none" },
  { name = "backup", args = { "PATH" }, run = commands.backup,
    summary = "a consistent copy of the database in a new file, made while others use it" },
  { name = "deliver", run = commands.deliver,
    summary = "pending outbox actions to webhooks (signed) and customer mail, retried with backoff and " ..
              "dead-lettered after --max-tries; exit 1 when a row failed",
    flags = { { "--webhook URL", "a webhook for every action (but portal_signin: mail only), or ACTION=URL",
                many = true },
              { "--secret-file F", "the webhook signing secret" },
              { "--smtp HOST[:PORT]", "the SMTP server" }, { "--mail-from ADDRESS", "the sender" },
              { "--templates DIR", "mail templates (licensor templates)" },
              { "--starttls MODE", "always, never, or auto (plain text when not offered); default: always " ..
                "unless the host is loopback", choices = { "auto", "always", "never" } },
              { "--smtp-user U", "the SMTP user" }, { "--smtp-password-file F", "the SMTP password" },
              { "--smtp-cafile FILE", "the authorities SMTP trusts (older spelling of --cafile)" },
              { "--smtp-domain NAME", "the name said in EHLO" },
              { "--cafile FILE", "the authorities webhooks and SMTP trust (default the system's)" },
              { "--insecure", "check no TLS certificate or host name (logged on stderr)" },
              WHOLE("--max-tries N", "tries before a row is dead-lettered",
                    { min = 1, default = DELIVERY.max_tries }),
              WHOLE("--backoff-ms MS", "the first wait after a failure, doubling",
                    { default = DELIVERY.backoff_ms }),
              WHOLE("--timeout S", "seconds a webhook or SMTP exchange may take",
                    { min = 1, max = 86400, default = DELIVERY.timeout }),
              WHOLE("--claim-ms MS", "how long a deliverer holds the rows it claimed",
                    { min = 1, default = DELIVERY.claim_ms }),
              { "--watch", "deliver again every --interval seconds, until stopped" },
              WHOLE("--interval S", "seconds between rounds with --watch",
                    { min = 1, max = 86400, default = 5 }),
              { "--portal-url URL", "where sign-in links lead (the gateway's --public-url)" },
              { "--link-secret FILE", "the gateway's --link-secret (sign-in links are signed)" } } },
  { name = "artifacts", args = { "check|demo", "DIR" }, run = commands.artifacts,
    summary = "check: every file the active catalogue's downloads name in DIR, a regular file inside DIR " ..
              "(no symlink), its size and sha256; one line per file, exit 1 on any problem. demo: write " ..
              "the bundled catalogue's demo files to DIR" },
  { name = "templates", run = commands.templates,
    summary = "the bundled mail templates as files to edit (never over existing ones)",
    flags = { { "--out DIR", "the directory (made when missing)", required = true } } },
  { name = "outbox", args = { "[retry]", "[ID]" }, run = commands.outbox,
    summary = "outbox rows (pending by default); outbox retry ID re-queues one",
    flags = { { "--dead", "dead-lettered rows" }, { "--all", "every row" },
              WHOLE("--limit N", "at most N rows", { min = 1, default = 100 }) } },
  { name = "copy", run = commands.copy,
    summary = "everything from one store into a new one, SQLite or PostgreSQL, in one transaction",
    flags = { { "--from DB", "the source (a path, or a postgresql:// URL); it must exist", required = true },
              { "--to DB", "the new store", required = true } } },
  { name = "keys", args = { "new|show", "[FILE]" }, run = commands.keys,
    summary = "keys new --out FILE: a signing key (mode 0600) and FILE.pub; keys show FILE: its public " ..
              "key and key id",
    flags = { { "--out FILE", "the new signing key (with keys new)" } } },
  { name = "certificate", args = { "KEY", "SERVER" }, run = commands.certificate,
    summary = "a signed certificate for an active installation",
    flags = { { "--signing-key FILE", "the signing key (licensor keys new)", required = true }, ON,
              OUT("the certificate") } },
  { name = "fingerprint", run = commands.fingerprint, summary = "this machine's fingerprint",
    flags = { { "--explain", "each source, found or missing, hashed" } } },
  { name = "request", args = { "KEY", "SERVER", "BUILD" }, run = commands.request,
    summary = "an air-gapped activation request", flags = { FINGERPRINT, OUT("the request") } },
  { name = "verify", args = { "CERT" }, run = commands.verify,
    summary = "check a certificate as the product does: exit 0 valid or grace, 1 refused",
    flags = { PUBLIC_KEY, PRODUCT_ID, FINGERPRINT,
              { "--state FILE", "the product's state file" }, { "--new-state", "start a new state file" },
              { "--revocation NOTICE", "a signed revocation notice, recorded in the state first" } } },
  { name = "return", args = { "CERT" }, run = commands["return"],
    summary = "delete CERT, keep its return in the state, write the receipt (for deactivate --return)",
    flags = { PUBLIC_KEY, PRODUCT_ID, { "--state FILE", "the product's state file", required = true },
              FINGERPRINT, OUT("the receipt") } },
  { name = "help", args = { "[COMMAND]" }, run = commands.help,
    summary = "the commands, or one command's flags (also COMMAND --help)",
    flags = { { "--markdown", "every command's help as Markdown (doc/cli.md)" } } },
  { name = "repl", run = commands.repl, summary = "a Lua REPL with store, cat, licensor and pp loaded" },
  { name = "gateway", run = commands.gateway, summary = "the HTTP gateway (nginx with lua-nginx-module)",
    help = "(SIGTERM drains it: requests in flight finish, up to --drain-seconds; Ctrl-C stops it at once).",
    flags = { { "--listen ADDR:PORT", "where it listens (refused when something listens there already)" },
              GATEWAY_WHOLE("--workers N", "nginx workers", "workers"),
              { "--admin-token-file F", "the admin token (it must be readable; no file: no admin routes)" },
              { "--today DATE", "the day every read and workflow takes (default the real UTC day)",
                type = "date" },
              WHOLE("--rate-per-ip N", "requests per second per address (default 1000; 0: off)"),
              WHOLE("--rate-per-key N", "requests per second per key (default 200; 0: off)"),
              GATEWAY_WHOLE("--conn-per-ip N", "requests in progress per address", "conn_per_ip"),
              { "--prefix DIR", "nginx's working directory (refused while another gateway runs in it)" },
              { "--user NAME", "started as root: the workers' user (default nobody), who must reach the " ..
                "database and key files" },
              { "--signing-key FILE", "answer certificates to activations with a fingerprint" },
              GATEWAY_WHOLE("--threads N", "PostgreSQL: threads per worker, one connection each", "threads"),
              WHOLE("--stale-ms MS", "PostgreSQL: how old a cached eligibility answer may be (default " ..
                    constants.STALE_MS .. ")"),
              GATEWAY_WHOLE("--db-timeout-ms MS", "every store call's deadline (PostgreSQL: 503 past it, " ..
                            "the statement cancelled; SQLite: its busy timeout)", "db_timeout_ms"),
              GATEWAY_WHOLE("--health-timeout-ms MS", "PostgreSQL: /healthz's deadline, at most " ..
                            "--db-timeout-ms (default " .. GATEWAY_LIMITS.health_timeout_ms.default ..
                            ", or --db-timeout-ms when smaller)", "health_timeout_ms", true),
              { "--read-db URL", "PostgreSQL: a hot standby for eligibility, status and quote reads " ..
                "(within --stale-ms); writes stay on --db" },
              GATEWAY_WHOLE("--queue N", "PostgreSQL: calls per worker that may wait for a database " ..
                            "thread (503 busy beyond)", "queue"),
              GATEWAY_WHOLE("--drain-seconds N", "SIGTERM: how long requests in flight may take to " ..
                            "finish (0: stop at once)", "drain_seconds"),
              { "--artifacts DIR", "the build files downloads serve (catalogue builds' downloads.file)" },
              { "--link-secret FILE", "signs download links, portal sign-in links and forms (at least 32 " ..
                "bytes; the deliverer's --link-secret is the same file); turns the portal on" },
              { "--public-url URL", "the portal's address as customers reach it (https:// makes its " ..
                "cookies Secure)" } } },
}
-- explain and policy import|show|history|test: licensor.cli.policy's entries.
for _, entry in ipairs(require("licensor.cli.policy").COMMANDS) do COMMANDS[#COMMANDS + 1] = entry end
_M.COMMANDS = COMMANDS

------------------------------------------------------------------------
-- Entry point
------------------------------------------------------------------------

-- What main prints for a failure: JSON on stdout with --json, and the
-- message on stderr; the exit status.
local function report(out, err_out, json, err)
  if json and not err.quiet then out(json_encode({ ok = false, code = err.code, message = err.message })) end
  if err.code == "usage" then
    err_out("licensor: " .. err.message)
  elseif not err.quiet then
    err_out("licensor: " .. tostring(err.code) .. ": " .. tostring(err.message))
  end
  return MALFORMED[err.code] and 2 or 1
end

local run

-- main(argv, {out=, err=, repl={read=, write=}}) -> exit status.  Without
-- out, lines go to standard output, and a write or flush that fails (a
-- full disk, a closed pipe) is exit 1 with io_error on stderr.
function _M.main(argv, io_opts)
  io_opts = io_opts or {}
  local err_out = io_opts.err or function(line) io.stderr:write(line, "\n") end
  if io_opts.out then return run(argv, io_opts.out, err_out, io_opts.repl) end
  local failed
  local function out(line)
    local ok, why = io.stdout:write(line, "\n")
    if not ok then failed = failed or why end
  end
  local status = run(argv, out, err_out, io_opts.repl)
  local ok, why = io.stdout:flush()
  failed = failed or (not ok and why)
  if not failed then return status end
  err_out("licensor: io_error: standard output: " .. tostring(failed))
  return status ~= 0 and status or 1
end

-- The work of main, with out and err_out the line writers.
function run(argv, out, err_out, repl_io)
  local parsed, why, guess, json = args.parse(COMMANDS, argv or {})
  if not parsed then
    if guess then why = why .. " (did you mean '" .. guess .. "'?)" elseif why:find("^unknown command") then
      why = why .. " (licensor help lists them)"
    end
    return report(out, err_out, json, { code = "usage", message = why })
  end
  local entry, positional, flags, many = parsed.entry, parsed.positional, parsed.flags, parsed.many
  if flags.version then
    out("licensor " .. require("licensor.core")._VERSION)
    return 0
  end
  if entry == nil then
    out(args.help(COMMANDS, nil, PREAMBLE))
    return flags.help and 0 or 2
  end
  if flags.help then
    out(args.help(COMMANDS, entry))
    return 0
  end
  -- An empty file name is refused before any work (a certificate signed,
  -- a key made) rather than after it.
  for _, name in ipairs({ "out", "revocation_out" }) do
    if flags[name] == "" then
      return report(out, err_out, json, { code = "usage", message = "--" .. name:gsub("_", "-") ..
        ": an empty file name" })
    end
  end
  local db = flags.db or os.getenv("LICENSOR_DB") or "licensor.db"
  local store
  local ctx = { db = db, opts = { json = flags.json }, out = out, err = err_out, repl_io = repl_io }
  -- Only init (and import --create) may create the database: a mistyped
  -- path is an error, not a new empty store.
  local may_create = entry.name == "init" or (entry.name == "import" and flags.create)
  function ctx.check_database()
    check_database_path(db, "--db")
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
  local ok, err = pcall(entry.run, ctx, positional, flags, many)
  if store then store:close() end
  if ok then return 0 end
  -- Ctrl-C (deliver --watch, a long sweep): the interpreter's "interrupted!"
  -- is the user's wish, not a bug: no traceback, the shell's status 130.
  if type(err) == "string" and err:find("interrupted!$") then
    err_out("licensor: interrupted")
    return 130
  end
  if not failure.is(err) then error(err, 0) end
  return report(out, err_out, ctx.opts.json, err)
end

return _M
