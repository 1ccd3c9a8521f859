-- sweeper.lua DB DAY -- one sweep on DAY; prints how many steps it took.
local licensor = require "licensor"
local store = assert(licensor.open(arg[1]))
print(#assert(store:sweep(arg[2])))
