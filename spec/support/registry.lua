-- registry.lua -- notes each server group a spec starts (nginx, PostgreSQL)
-- in $LICENSOR_SERVER_REGISTRY, "pid what" lines, which the suite's last
-- spec (spec/support/leftovers.lua) checks are all gone.
return function(pid, what)
  local path = os.getenv("LICENSOR_SERVER_REGISTRY")
  if not path then return end
  local f = assert(io.open(path, "a"))
  f:write(pid, " ", what, "\n")
  f:close()
end
