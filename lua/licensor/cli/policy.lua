-- licensor.cli.policy -- the command line's policy commands: `explain`
-- (licensor.explain: the rules behind a decision) and `policy import |
-- show | history | test` (the store's policy files, and licensor.replay's
-- what-if replay).  COMMANDS holds their registry entries, which
-- licensor.cli appends to its own: parsing, help and doc/cli.md come from
-- there.  Not the place for what a policy means (licensor.policy) or how
-- a decision is made (the C core).
local failure = require "licensor.failure"
local files = require "licensor.files"
local constants = require "licensor.constants"

local _M = {}

local type, tostring, tonumber, ipairs, pairs, next = type, tostring, tonumber, ipairs, pairs, next
local concat = table.concat

local check = failure.try

local function usage_error(message)
  failure.raise("usage", message)
end

local function json_encode(value)
  local cjson = require("cjson").new()
  cjson.encode_sparse_array(true)
  return cjson.encode(value)
end

-- JSON of value where the tables `lists` names (parent, key pairs) are
-- lists, written [] when empty (lua-cjson writes an empty table as {}):
-- each empty one is a marker of this call's own until encoded.
local function json_with_lists(value, lists)
  local marker = "licensorEmptyList" .. require("licensor.core").random_hex(8)
  for _, at in ipairs(lists) do
    local parent, key = at[1], at[2]
    if type(parent) == "table" and type(parent[key]) == "table" and next(parent[key]) == nil then
      parent[key] = marker
    end
  end
  return (json_encode(value):gsub('"' .. marker .. '"', "[]"))
end

local need = require("licensor.cli.args").need

-- A policy file's whole text (the CLI's limit on what it reads), or a
-- refusal.  A file that cannot be read (missing, a directory, too large)
-- is malformed input, exit 2 as a missing --catalogue is: exit 1 is
-- `policy test`'s "something would change".
local function read_text(path, what)
  local text, why = files.read(path, what, constants.MAX_FILE_BYTES)
  if not text then failure.raise("invalid_request", why) end
  if text == "" then usage_error(what .. " " .. path .. " is empty") end
  return text
end

------------------------------------------------------------------------
-- explain KEY [--build N] [--server S] [--on DAY]
------------------------------------------------------------------------

local function explain(ctx, pos, flags)
  local store = ctx.open()
  local report = check(store:explain(need(pos, 1, "KEY"), { on = flags.on, build = flags.build,
                                                            server = flags.server }))
  if ctx.opts.json then return ctx.out(require("licensor.explain").json(report)) end
  ctx.out(require("licensor.explain").text(report))
end

------------------------------------------------------------------------
-- policy import FILE | show [VERSION] | history | test FILE
------------------------------------------------------------------------

-- Whether path names something here (a file, or whatever a read would
-- then find fault with).
local function exists(path)
  return files.stat(path) ~= nil
end

-- A policy file: a path (with a "/" or ending in .lua), or the name of a
-- bundled one (lua/licensor/policies/NAME.lua), as `import` takes a
-- catalogue.  A NAME that is also ./NAME.lua here (an example copied and
-- edited) is refused: either file could be the one meant, and importing
-- the wrong one would go live without a word.  The path says which.
local function policy_path(name)
  if name:find("/", 1, true) or name:find("%.lua$") then return name end
  local bundled = package.searchpath("licensor.policies." .. name, package.path)
  if not bundled then return name end
  local here = name .. ".lua"
  if exists(here) then
    usage_error(("%s is both ./%s here and the bundled %s: give ./%s for the one here, or %s " ..
                 "for the bundled one"):format(name, here, bundled, here, bundled))
  end
  return bundled
end

local function import(ctx, pos, flags)
  local given = need(pos, 2, "FILE (a policy file or a bundled name)")
  if flags.name == "" then usage_error("--name is empty") end
  local path = policy_path(given)
  local source = read_text(path, "policy file")
  local version, unchanged = check(ctx.open():import_policy(source, flags.name or given, flags.on))
  if ctx.opts.json then return ctx.out(json_encode({ version = version, unchanged = unchanged or false })) end
  if unchanged then return ctx.out("policy unchanged: version " .. version .. " is already active") end
  ctx.out("imported policy version " .. version)
end

local function show(ctx, pos)
  local version = pos[2]
  if version ~= nil then
    if not version:match("^%d+$") or #version > 15 then usage_error("VERSION is a whole number") end
    version = tonumber(version)
  end
  local store = ctx.open()
  local source = check(store:policy_source(version))
  if ctx.opts.json then
    if version == nil then
      for _, v in ipairs(check(store:policy_history())) do
        if v.active then version = v.version end
      end
    end
    return ctx.out(json_encode({ version = version, source = source }))
  end
  ctx.out((source:gsub("\n$", "")))
end

local function history(ctx)
  local list = check(ctx.open():policy_history())
  if ctx.opts.json then
    local lists = {}
    for _, v in ipairs(list) do lists[#lists + 1] = { v, "hooks" } end
    return ctx.out(#list == 0 and "[]" or json_with_lists(list, lists))
  end
  if #list == 0 then return ctx.out("no policy has been imported") end
  local rows = {}
  for i, v in ipairs(list) do
    local hooks = v.hooks and (#v.hooks > 0 and concat(v.hooks, ", ") or "-") or "(does not compile)"
    rows[i] = { version = v.version, imported = v.imported, name = v.name or "-", hooks = hooks,
                active = v.active and "yes" or "no" }
  end
  ctx.out(require("licensor.tabulate").render({ { "version", "version" }, { "imported", "imported" },
    { "name", "name" }, { "hooks", "hooks" }, { "active", "active" } }, rows))
end

local function decisions(n)
  return n .. (n == 1 and " decision" or " decisions")
end

-- The proposed file's hook failures, by "HOOK REASON", and their count.
local function failure_list(result)
  local names, total = {}, 0
  for name, n in pairs(result.failures or {}) do
    names[#names + 1] = name
    total = total + n
  end
  table.sort(names)
  return names, total
end

-- The text report: the counts per kind with their examples, then what
-- went wrong on the way (hook failures, the first log lines, values
-- that did not resolve).
local function test_text(ctx, replay, result)
  local changes = result.changes or {}
  ctx.out(("replayed %d licenses and %d installations%s to %s: %s would change"):format(
    result.licenses or 0, result.installations or 0, result.since and (" from " .. result.since) or "",
    tostring(result.on), decisions(result.changed or 0)))
  for _, kind in ipairs(replay.KINDS) do
    ctx.out(("  %-10s %d"):format(kind, changes[kind] or 0))
    for _, e in ipairs(result.examples and result.examples[kind] or {}) do
      ctx.out(("    %s on %s%s: %s -> %s"):format(tostring(e.key), tostring(e.day),
        e.what and (" (" .. tostring(e.what) .. ")") or "", tostring(e.before), tostring(e.after)))
    end
  end
  local names, total = failure_list(result)
  if total > 0 then
    ctx.out(("the proposed file's hooks failed %d %s (each time the built-in decision stood):"):format(
      total, total == 1 and "time" or "times"))
    for _, name in ipairs(names) do ctx.out(("  %-28s %d"):format(name, result.failures[name])) end
  end
  if result.hook_log then
    ctx.out("first hook log lines:")
    for _, line in ipairs(result.hook_log) do ctx.out("  " .. line) end
  end
  if result.problems then
    ctx.out("policy values that did not resolve (the catalogue's were used):")
    for _, p in ipairs(result.problems) do
      ctx.out(("  %s on %s: %s"):format(tostring(p.key), tostring(p.day), tostring(p.message)))
    end
  end
end

-- Is standard error a terminal (the replay's progress line goes there)?
local function stderr_is_terminal()
  local result = os.execute("[ -t 2 ]")
  return result == true or result == 0
end

local function test(ctx, pos, flags)
  local replay = require "licensor.replay"
  local given = need(pos, 2, "FILE (the proposed policy file)")
  local path = policy_path(given)
  local opts = { policy = read_text(path, "policy file"), policy_name = given, since = flags.since,
                 on = flags.on }
  if flags.catalogue then
    -- loaded as `import` loads one (its sandbox, file:line messages); a
    -- file that does not load is malformed input, exit 2
    local cat, msg = require("licensor").load_catalogue(flags.catalogue)
    if not cat then failure.raise("invalid_request", msg) end
    opts.catalogue, opts.catalogue_name = cat, flags.catalogue
  end
  if not ctx.opts.json and stderr_is_terminal() then
    opts.progress = function(done, total)
      io.stderr:write(("\rlicensor policy test: %d of %s licenses"):format(done, tostring(total or "?")))
      io.stderr:flush()
    end
  end
  local result, msg, code = replay.run(ctx.open(), opts)
  if opts.progress then io.stderr:write("\n") end
  -- a file that does not compile is malformed input (invalid_policy: exit 2)
  if not result then failure.raise(code or "failed", msg) end
  local changed = result.changed or 0
  if ctx.opts.json then
    local lists = { { result.policy, "hooks" }, { result, "problems" }, { result, "hook_log" } }
    for kind in pairs(result.examples or {}) do lists[#lists + 1] = { result.examples, kind } end
    ctx.out(json_with_lists(result, lists))
  else
    test_text(ctx, replay, result)
  end
  -- Something would change, or the proposed file's hooks failed (a typo
  -- that raises on every call changes nothing and would go live broken):
  -- exit 1, so a deploy script stops.
  local _, failed = failure_list(result)
  local also = failed > 0 and ("; its hooks failed " .. failed .. (failed == 1 and " time" or " times")) or ""
  if changed > 0 then
    failure.raise("policy_changes", decisions(changed) .. " would change under " .. given .. also,
                  { quiet = ctx.opts.json })
  elseif failed > 0 then
    failure.raise("policy_failures", "no decision would change under " .. given .. also ..
                  " (each time the built-in decision stood)", { quiet = ctx.opts.json })
  end
end

local SUBCOMMANDS = { import = import, show = show, history = history, test = test }

local function policy(ctx, pos, flags)
  local what = need(pos, 1, "import, show, history or test")
  local fn = SUBCOMMANDS[what]
  if not fn then usage_error("policy takes import FILE, show [VERSION], history or test FILE") end
  if what ~= "import" and flags.name then usage_error("--name goes with policy import") end
  if what ~= "test" and (flags.catalogue or flags.since) then
    usage_error("--catalogue and --since go with policy test")
  end
  if what == "history" and pos[2] ~= nil then usage_error("policy history takes no argument") end
  return fn(ctx, pos, flags)
end

------------------------------------------------------------------------
-- Registry entries (licensor.cli.args describes them)
------------------------------------------------------------------------

_M.COMMANDS = {
  { name = "explain", args = { "KEY" }, run = explain,
    summary = "the rules behind the license's decisions: each rule by its R-number, its inputs, the " ..
              "policy layer or hook that changed it, and the outcome",
    help = "(without --build or --server: the build it may install, the migration window and fraud " ..
           "ladder, the renewal price).",
    flags = { { "--build N", "may it install build N (R5, R13)", type = "whole", min = 1 },
              { "--server S", "may server S come in (R9, R10)" },
              { "--on DATE", "the day asked about (default today, UTC)", type = "date",
                hint = { "date", "day" } } } },
  { name = "policy", args = { "import|show|history|test", "[FILE|VERSION]" }, run = policy,
    summary = "policy files: import FILE (validated, stored as the new active version; a bundled name " ..
              "too), show [VERSION] (its text), history, test FILE (what would change, replayed without " ..
              "writing)",
    help = "(test exits 0 when nothing would change, 1 when something would (policy_changes) or the " ..
           "proposed file's hooks failed (policy_failures), 2 when the file cannot be read or does not " ..
           "compile. A bundled NAME that is also ./NAME.lua here is refused: give ./NAME.lua for that " ..
           "file, or the bundled file's path).",
    flags = { { "--name N", "the name messages give the file (import; default FILE; not empty)" },
              { "--catalogue FILE", "test: under this catalogue file too" },
              { "--since DATE", "test: replay from this day", type = "date" },
              { "--on DATE", "import: the day recorded (the file is active at once: not an effective " ..
                             "date); test: the last day replayed (default today)",
                type = "date", hint = { "date", "day" } } } },
}

return _M
