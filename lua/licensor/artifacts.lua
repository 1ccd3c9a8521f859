-- licensor.artifacts -- the build files a catalogue's downloads name,
-- checked in an artifact directory (`licensor artifacts check DIR`): each
-- `file` download must be a regular file inside DIR, of the catalogue's
-- size and sha256.  It reads; it never serves (nginx does) or fixes.
--
-- Downloads with a `url` live elsewhere and are counted, not fetched.
-- Only a path the catalogue validated is joined to DIR ('/'-separated
-- names, none starting with '.'), so the one way out of DIR is a symlink:
-- every name on the way is lstat'ed and a symlink is a problem, as
-- nginx's disable_symlinks would refuse it too.
local core = require "licensor.core"
local failure = require "licensor.failure"

local _M = {}

local ipairs, open, concat = ipairs, io.open, table.concat
local format = string.format

-- The words a result is printed with, by code.
local SAYS = {
  ok = "ok",
  missing = "missing",
  size_differs = "size differs",
  sha256_differs = "sha256 differs",
  not_regular = "not a regular file inside DIR",
  unreadable = "unreadable",
}
_M.RESULTS = SAYS
local ORDER = { "ok", "missing", "size_differs", "sha256_differs", "not_regular", "unreadable" }

-- Whether a failed lstat of path means "nothing there" (ENOENT, ENOTDIR):
-- io.open says which errno it met.
local function absent(path)
  local f, _, errno = open(path, "rb")
  if f then
    f:close()
    return false
  end
  return errno == 2 or errno == 20
end

-- What is at dir/file: "file" (a regular file reached through
-- directories only), or a result code and a message.
local function locate(dir, file)
  local path = dir
  local names = {}
  for name in file:gmatch("[^/]+") do names[#names + 1] = name end
  for i, name in ipairs(names) do
    path = path .. "/" .. name
    local st, why = core.lstat(path)
    if not st then
      if absent(path) then return "missing" end
      return "unreadable", why
    end
    local want = i == #names and "file" or "directory"
    if st.kind ~= want then
      return "not_regular", (st.kind == "link" and "a symlink: " or "not a " .. want .. ": ") .. path
    end
  end
  return "file"
end

-- One file download checked: a result record {product=, build=, version=,
-- platform=, file=, result=, size=, sha256=, expected_size=,
-- expected_sha256=, message=}.
-- The size of a file without reading it (check's sizes_only), or nil, why.
local function size_of(path)
  local f, why = open(path, "rb")
  if not f then return nil, why end
  local size = f:seek("end")
  f:close()
  return true, size
end

local function check_one(dir, product, build, d, sizes_only)
  local r = { product = product, build = build.number, version = build.version, platform = d.platform,
              file = d.file, expected_size = d.size, expected_sha256 = d.sha256 }
  local found, why = locate(dir, d.file)
  if found ~= "file" then
    r.result, r.message = found, why
    return r
  end
  local sha256, size = (sizes_only and size_of or core.sha256_file)(dir .. "/" .. d.file)
  if sizes_only and size then sha256 = d.sha256 end
  if not sha256 then
    r.result, r.message = "unreadable", size
    return r
  end
  r.sha256, r.size = sha256, size
  if size ~= d.size then
    r.result = "size_differs"
    r.message = format("the catalogue says %d bytes, the file has %d", d.size, size)
  elseif sha256 ~= d.sha256 then
    r.result = "sha256_differs"
    r.message = "the catalogue says " .. d.sha256 .. ", the file hashes to " .. sha256
  else
    r.result = "ok"
  end
  return r
end

-- check(cat, dir[, sizes_only]) -> results (one per file download:
-- products by id, builds oldest first, downloads in the catalogue's
-- order), and the number of url downloads left unchecked.  sizes_only
-- reads no file (the gateway's check at start): present and of the
-- catalogue's size.
function _M.check(cat, dir, sizes_only)
  if type(dir) ~= "string" or dir == "" then error("bad argument #2 to 'check' (directory expected)", 2) end
  dir = dir:gsub("/+$", "")
  if dir == "" then dir = "/" end
  local results, urls = {}, 0
  for _, p in ipairs(cat:products()) do
    for _, build in ipairs(cat:builds(p.id)) do
      for _, d in ipairs(build.downloads or {}) do
        if d.file then
          results[#results + 1] = check_one(dir == "/" and "" or dir, p.id, build, d, sizes_only)
        else
          urls = urls + 1
        end
      end
    end
  end
  return results, urls
end

-- The line a result is printed as: product, build, platform, file and
-- what was found.
function _M.line(r)
  return format("%s build %d %s %s: %s%s", r.product, r.build, r.platform, r.file, SAYS[r.result],
                r.message and (" (" .. r.message .. ")") or "")
end

-- command(ctx, cat, dir): the CLI command's work (licensor.cli's ctx):
-- one line per file and a summary, or with --json {ok=, checked=,
-- problems=, urls=, files=[...]}; a problem ends it with exit 1.
function _M.command(ctx, cat, dir)
  local results, urls = _M.check(cat, dir)
  local counts, problems = {}, 0
  for _, r in ipairs(results) do
    counts[r.result] = (counts[r.result] or 0) + 1
    if r.result ~= "ok" then problems = problems + 1 end
  end
  if ctx.opts.json then
    local text = require("cjson").new().encode({ ok = problems == 0, checked = #results, problems = problems,
                                                 urls = urls, files = results[1] and results or nil })
    -- cjson writes an empty table as {}: files is a list even when empty
    if not results[1] then text = text:sub(1, -2) .. ',"files":[]}' end
    ctx.out(text)
  else
    for _, r in ipairs(results) do ctx.out(_M.line(r)) end
    local parts = {}
    for _, code in ipairs(ORDER) do
      if counts[code] then parts[#parts + 1] = counts[code] .. " " .. SAYS[code] end
    end
    local summary = #results == 0 and "the active catalogue names no file downloads"
                    or (#results .. " files: " .. concat(parts, ", "))
    if urls > 0 then
      summary = summary .. "; " .. urls .. " url downloads not checked (they live elsewhere)"
    end
    ctx.out(summary)
  end
  if problems > 0 then
    failure.raise("artifacts_differ", problems .. " of " .. #results .. " files in " .. dir ..
                  " are missing or differ from the catalogue", { quiet = ctx.opts.json })
  end
end

return _M
