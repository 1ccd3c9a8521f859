-- luacheck configuration
std = "max"
max_line_length = 110
exclude_files = { "build/**" }

-- Specs keep a call and its expected answer on one line.
files["spec/**/*_spec.lua"] = { std = "+busted", max_line_length = 130 }
files["spec/bench/*.lua"] = { max_line_length = 130 }
files["spec/support/tally.lua"] = { std = "+busted" }
files["spec/support/leftovers.lua"] = { std = "+busted" }
files["lua/licensor/catalogues/*.lua"] = { std = "lua51", read_globals = { "day", "date" } }

-- The gateway runs inside nginx with lua-nginx-module (LuaJIT).
files["lua/licensor/gateway/*.lua"] = { std = "luajit+ngx_lua" }

-- wrk scripts define wrk's callbacks and share per-thread globals.
files["spec/bench/wrk/*.lua"] = {
  std = "luajit",
  globals = { "setup", "init", "request", "response", "done", "id", "refused_count", "histogram_text" },
  read_globals = { "wrk" },
  max_line_length = 130,
}
