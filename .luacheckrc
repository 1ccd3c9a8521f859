-- luacheck configuration
std = "max"
max_line_length = 110
exclude_files = { "build/**" }

files["spec/**/*_spec.lua"] = { std = "+busted" }
files["spec/support/tally.lua"] = { std = "+busted" }
files["lua/licensor/catalogues/*.lua"] = { std = "lua51" }
