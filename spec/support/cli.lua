-- cli.lua -- runs the `licensor` command in process for the specs:
-- run(arg...) -> exit status, standard output, standard error (as text).
local cli = require "licensor.cli"

return function(...)
  local out, err = {}, {}
  local status = cli.main({ ... }, { out = function(line) out[#out + 1] = line end,
                                     err = function(line) err[#err + 1] = line end })
  return status, table.concat(out, "\n"), table.concat(err, "\n")
end
