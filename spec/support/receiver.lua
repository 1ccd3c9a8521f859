-- receiver.lua PORT LOG MODE_FILE -- licensor.receiver for the specs.
require("licensor.receiver").serve(tonumber(arg[1]), arg[2], arg[3])
