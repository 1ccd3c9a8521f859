-- rockspec/render.lua -- writes the rockspec's module table from the
-- Makefile's two lists (`make rockspec`), or says how it differs from them
-- (`make rockspec-check`, run by rockcheck and spec/install_spec.lua):
--
--   lua5.4 rockspec/render.lua write|check ROCKSPEC C_SOURCE... -- LUA_MODULE...
--
-- C_SOURCE: licensor.core's sources (csrc/date.c...); LUA_MODULE: a path
-- under lua/ (licensor/mail/init.lua is the module licensor.mail).  Only the
-- lines between the BEGIN and END markers are this script's; the rest of
-- the rockspec is written by hand.  It is not the list: the Makefile's
-- LUA_MODULES and SOURCES are.
local BEGIN = "  -- BEGIN modules: written by `make rockspec`"
local END = "  -- END modules"

local mode, rockspec = arg[1], arg[2]
if (mode ~= "write" and mode ~= "check") or not rockspec then
  io.stderr:write("usage: render.lua write|check ROCKSPEC C_SOURCE... -- LUA_MODULE...\n")
  os.exit(2)
end
local sources, modules, seen_dashes = {}, {}, false
for i = 3, #arg do
  if arg[i] == "--" then seen_dashes = true
  elseif seen_dashes then modules[#modules + 1] = arg[i]
  else sources[#sources + 1] = arg[i] end
end

-- licensor/mail/init.lua -> licensor.mail; licensor/cli/args.lua -> licensor.cli.args
local function module_name(path)
  return (path:gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", "."))
end

local entries, by_name = {}, {}
for _, path in ipairs(modules) do
  local name = module_name(path)
  if by_name[name] then
    io.stderr:write(("rockspec: lua/%s and lua/%s are both the module %s\n")
      :format(by_name[name], path, name))
    os.exit(1)
  end
  by_name[name] = path
  entries[#entries + 1] = name
end
table.sort(entries)

local out = { BEGIN .. " from the Makefile's LUA_MODULES",
              "  -- and SOURCES; edit those (or add the file), not these lines.",
              "  modules = {" }
for _, name in ipairs(entries) do
  out[#out + 1] = ('    ["%s"] = "lua/%s",'):format(name, by_name[name])
end
out[#out + 1] = '    ["licensor.core"] = {'
out[#out + 1] = "      sources = {"
for _, source in ipairs(sources) do out[#out + 1] = ('        "%s",'):format(source) end
out[#out + 1] = "      },"
out[#out + 1] = '      incdirs = { "csrc", "$(SQLITE_INCDIR)", "$(SODIUM_INCDIR)", '
  .. '"$(PQ_INCDIR)/postgresql" },'
out[#out + 1] = '      libdirs = { "$(SQLITE_LIBDIR)", "$(SODIUM_LIBDIR)", "$(PQ_LIBDIR)" },'
out[#out + 1] = '      libraries = { "sqlite3", "sodium", "pq" },'
out[#out + 1] = '      defines = { "LSRV_INTERNAL" },'
out[#out + 1] = "    },"
out[#out + 1] = "  },"
out[#out + 1] = END

local f = assert(io.open(rockspec, "rb"))
local text = f:read("*a")
f:close()
local head, rest = text:match("^(.-)" .. BEGIN:gsub("%p", "%%%0") .. "[^\n]*\n(.*)$")
local tail = rest and rest:match(END:gsub("%p", "%%%0") .. "\n(.*)$")
if not head or not tail then
  io.stderr:write(rockspec .. ": no BEGIN modules ... END modules lines to write between\n")
  os.exit(1)
end
local generated = table.concat(out, "\n") .. "\n"
local new = head .. generated .. tail

if mode == "write" then
  if new ~= text then
    f = assert(io.open(rockspec, "wb"))
    f:write(new)
    f:close()
    print(rockspec .. ": module table written (" .. #entries .. " Lua modules, " .. #sources .. " C sources)")
  end
  os.exit(0)
end

-- check: name what differs, in words a developer can act on.
if new == text then os.exit(0) end
local have = {}
for line in text:gmatch("[^\n]+") do have[line] = true end
local want = {}
for line in generated:gmatch("[^\n]+") do want[line] = true end
-- A module's or a C source's line: the ones worth naming.
local function entry(line)
  return line:match('^%s*(%[".-"%]) = ') or line:match('^%s*"(csrc/[^"]+)",$')
end
local problems = {}
for line in generated:gmatch("[^\n]+") do
  if not have[line] and entry(line) then problems[#problems + 1] = "missing " .. entry(line) end
end
local region = rest:match("^(.-)" .. END:gsub("%p", "%%%0"))
for line in region:gmatch("[^\n]+") do
  if not want[line] and entry(line) then problems[#problems + 1] = "not in the lists " .. entry(line) end
end
if #problems == 0 then problems[1] = "its lines are written otherwise" end
io.stderr:write(rockspec .. " differs from the Makefile's LUA_MODULES and SOURCES " ..
  "(run `make rockspec`):\n  " ..
  table.concat(problems, "\n  ") .. "\n")
os.exit(1)
