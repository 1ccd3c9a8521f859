-- jsonlines.lua -- read(path) -> the JSON values of a log written one per
-- line by a test server (webhook receiver, SMTP server); {} while the file
-- does not exist yet.
local cjson = require "cjson"

return {
  read = function(path)
    local list = {}
    local f = io.open(path)
    if not f then return list end
    for line in f:lines() do list[#list + 1] = cjson.decode(line) end
    f:close()
    return list
  end,
}
