-- fallback_bugfixes.lua -- a policy file (doc/policies.md): once M&S has
-- lapsed, a perpetual license keeps its fallback build (R3) and also gets
-- the bugfix builds of that build's minor line released within 60 days
-- after its M&S expiry.  A fix of the version the customer paid for is not
-- a new version; JetBrains' perpetual fallback works this way.
--
-- SmarterMail whose M&S ended on 2018-06-30 falls back to 16.3.6730
-- (2018-06-05); 16.3.6798 (2018-08-12, 43 days later) is a bugfix of the
-- same line, so the license may install it.  Builds of another line
-- (100.0.6837) and fixes released after the 60 days stay out.  In the
-- build-number era every version is 100.0.NNNN, one line: there the
-- policy is simply "builds released within 60 days after the expiry".
--
-- The eligible hook raises the build cap; it never lowers it, and leaves
-- licenses on M&S, version-locked ones, leases, trials and refusals to the
-- built-in rules.  A certificate carries the cap the hook decided, so an
-- offline server agrees without running this file.

-- add_days is the sandbox's calendar (doc/policies.md, "The sandbox").
-- luacheck: read globals add_days
local DAYS = 60

-- "16.3.6730" -> "16.3"
local function minor_line(version)
  return version:match("^(%d+%.%d+)")
end

return {
  name = "fallback-bugfixes",

  -- ctx.build: the built-in eligible build; ctx.builds: the product's
  -- builds, oldest first, each {number=, version=, major=, released=}.
  eligible = function(ctx)
    local lic, fallback = ctx.license, ctx.build
    if not fallback or lic.kind ~= "perpetual" or lic.version_lock or not lic.ms_expires then return nil end
    if ctx.day <= lic.ms_expires then return nil end   -- M&S runs: the newest build already
    local line, last = minor_line(fallback.version), add_days(lic.ms_expires, DAYS)
    local best
    for _, b in ipairs(ctx.builds) do   -- "YYYY-MM-DD" compares as the days do
      if b.number > fallback.number and b.released <= ctx.day and b.released <= last
         and minor_line(b.version) == line then
        best = b
      end
    end
    if not best then return nil end
    return { build = best.number,
             because = ("bugfix %s of the %s line, released within %d days of the M&S expiry")
               :format(best.version, line, DAYS) }
  end,
}
