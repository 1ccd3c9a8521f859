-- licensor.repl -- `licensor repl`: a Lua prompt for support staff with
-- `store`, `cat`, `licensor`, `pp` and `help` at hand.  Expressions print
-- their values as formatted tables on both VMs; an error in a call prints
-- its message (a refusal's code and message), never a traceback through
-- licensor's own modules.
local licensor = require "licensor"
local failure = require "licensor.failure"
local pretty = require "licensor.pretty"

local load, pcall, select, tostring, setmetatable = load, pcall, select, tostring, setmetatable
local unpack = table.unpack or unpack   -- luacheck: ignore unpack
local setfenv = setfenv   -- luacheck: ignore setfenv (Lua 5.1 / LuaJIT)

local _M = {}

_M.HELP = [[
licensor REPL -- Lua with these at hand:
  store              the store (store:get "KEY", store:installations "KEY", store:events "KEY",
                     store:query "SELECT ...")
  cat                the active catalogue (cat:eligible(store:get "KEY").version, cat:status(lic))
  licensor           the module (licensor.today(), licensor.renew(lic, on), licensor.verify(...))
  pp(value)          print a value as a formatted table
  help               this text; Ctrl-D leaves]]

local function pack(...)
  return { n = select("#", ...), ... }
end

local function compile(source, env)
  if setfenv then
    local chunk, err = load(source, "=prompt")
    if chunk then setfenv(chunk, env) end
    return chunk, err
  end
  return load(source, "=prompt", "t", env)
end

-- What an error says to a person: a refusal's code and message, or the
-- message without the place in licensor's code it came from.
local function message_of(err)
  if failure.is(err) then return err.code .. ": " .. err.message end
  return (tostring(err):gsub("^[^:\n]*lua/licensor/[^:]*:%d+: ", ""):gsub("^prompt:%d+: ", ""))
end

-- run(db, {read=, write=}) reads lines until the end of input.
function _M.run(db, io_opts)
  local read = io_opts and io_opts.read or function() return io.read("*l") end
  local write = io_opts and io_opts.write or function(text) io.write(text) end
  local show = pretty.repl_print(function(line) write(line .. "\n") end)
  local store = assert(licensor.open(db))
  local env = setmetatable({ store = store, cat = store:catalogue(), licensor = licensor,
                             pp = pretty.print }, { __index = _G })
  write("licensor REPL: store, cat, licensor, pp(value); help\n")
  local buffer
  while true do
    write(buffer and ">> " or "> ")
    local line = read()
    if line == nil then break end
    if not buffer and line:match("^%s*help%s*$") then
      write(_M.HELP .. "\n")
    else
      local source = buffer and (buffer .. "\n" .. line) or line:gsub("^=", "return ")
      local chunk, err = compile("return " .. source, env)
      if not chunk then chunk, err = compile(source, env) end
      if chunk then
        buffer = nil
        local results = pack(pcall(chunk))
        if results[1] then
          if results.n > 1 then show(unpack(results, 2, results.n)) end
        else
          write("error: " .. message_of(results[2]) .. "\n")
        end
      elseif tostring(err):find("<eof>") then
        buffer = source          -- an unfinished statement: read on
      else
        buffer = nil
        write("error: " .. tostring(err):gsub("^prompt:%d+: ", "") .. "\n")
      end
    end
  end
  store:close()
  write("\n")
end

return _M
