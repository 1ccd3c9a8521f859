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

local function need(positional, n, what)
  local v = positional[n]
  if v == nil then usage_error("missing " .. what) end
  if v == "" then usage_error(what:match("^%S+") .. " is empty") end
  return v
end

-- A file's whole text (the CLI's limit on what it reads), or a refusal.
local function read_text(path, what)
  local text, why, code = files.read(path, what, constants.MAX_FILE_BYTES)
  if not text then failure.raise(code or "io_error", why) end
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

-- A policy file: a path, or the name of a bundled one
-- (lua/licensor/policies/NAME.lua), as `import` takes a catalogue.
local function policy_path(name)
  if name:find("/", 1, true) or name:find("%.lua$") then return name end
  return package.searchpath("licensor.policies." .. name, package.path) or name
end

local function import(ctx, pos, flags)
  local given = need(pos, 2, "FILE (a policy file or a bundled name)")
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
    rows[i] = { version = v.version, imported = v.imported, name = v.name or "",
                hooks = v.hooks and concat(v.hooks, ", ") or "(does not compile)",
                active = v.active and "active" or "" }
  end
  ctx.out(require("licensor.tabulate").render({ { "version", "version" }, { "imported", "imported" },
    { "name", "name" }, { "hooks", "hooks" }, { "", "active" } }, rows))
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
  local changes, changed = result.changes or {}, result.changed or 0
  if ctx.opts.json then
    local lists = { { result.policy, "hooks" }, { result, "problems" }, { result, "hook_log" } }
    for kind in pairs(result.examples or {}) do lists[#lists + 1] = { result.examples, kind } end
    ctx.out(json_with_lists(result, lists))
  else
    ctx.out(("replayed %d licenses and %d installations%s to %s: %d decisions would change"):format(
      result.licenses or 0, result.installations or 0, result.since and (" from " .. result.since) or "",
      tostring(result.on), changed))
    for _, kind in ipairs(replay.KINDS) do
      ctx.out(("  %-10s %d"):format(kind, changes[kind] or 0))
      for _, e in ipairs(result.examples and result.examples[kind] or {}) do
        ctx.out(("    %s on %s%s: %s -> %s"):format(tostring(e.key), tostring(e.day),
          e.what and (" (" .. tostring(e.what) .. ")") or "", tostring(e.before), tostring(e.after)))
      end
    end
  end
  -- Something would change: exit 1, so a deploy script stops.
  if changed > 0 then
    failure.raise("policy_changes", changed .. " decisions would change under " .. given,
                  { quiet = ctx.opts.json })
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
              "writing; exit 1 when something would)",
    flags = { { "--name N", "the name messages give the file (import; default FILE)" },
              { "--catalogue FILE", "test: under this catalogue file too" },
              { "--since DATE", "test: replay from this day", type = "date" },
              { "--on DATE", "import: the day recorded; test: the last day replayed (default today)",
                type = "date", hint = { "date", "day" } } } },
}

return _M
