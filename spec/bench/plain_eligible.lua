-- plain_eligible.lua -- a straightforward pure-Lua implementation of
-- cat:eligible (R1-R7), the yardstick `make bench` measures the C core
-- against: builds sorted by number, binary search on release days, dates
-- parsed with string.match.  It validates the same fields the core does.
local _M = {}

local tonumber, type, floor = tonumber, type, math.floor
local match = string.match

local DAYS_IN_MONTH = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function parse_date(s)
  if type(s) ~= "string" then return nil end
  local y, m, d = match(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then return nil end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if y < 1 or m < 1 or m > 12 or d < 1 then return nil end
  local len = DAYS_IN_MONTH[m]
  if m == 2 and (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) then len = 29 end
  if d > len then return nil end
  return days_from_civil(y, m, d)
end
_M.parse_date = parse_date

-- Compiles a catalogue table (the licensor.catalogue format) once.
function _M.compile(t)
  local products = {}
  for _, p in ipairs(t.products) do
    local builds = {}
    for i, b in ipairs(p.builds) do
      builds[i] = { number = b.number, version = b.version, released = b.released,
                    major = b.major or tonumber(match(b.version, "^(%d+)")),
                    day = parse_date(b.released) }
    end
    table.sort(builds, function(a, b) return a.number < b.number end)
    local editions = {}
    for rank, e in ipairs(p.editions) do editions[e] = rank end
    products[p.id] = { builds = builds, editions = editions }
  end
  return { products = products, trial_days = (t.policy or {}).trial_days or 30 }
end

local function newest_by(builds, day, major)
  local lo, hi, found = 1, #builds, nil
  while lo <= hi do
    local mid = floor((lo + hi) / 2)
    if builds[mid].day <= day then found, lo = mid, mid + 1 else hi = mid - 1 end
  end
  if major then
    while found and builds[found].major > major do found = found - 1 end
    if found and builds[found].major ~= major then found = nil end
  end
  return found and builds[found]
end

function _M.eligible(cat, lic, on)
  local p = cat.products[lic.product]
  if not p then return nil, "unknown product", "unknown_product" end
  local kind = lic.kind or "perpetual"
  if kind ~= "perpetual" and kind ~= "lease" and kind ~= "trial" then
    return nil, "bad kind", "invalid_license"
  end
  if lic.edition ~= nil and not p.editions[lic.edition] then
    return nil, "unknown edition", "invalid_license"
  end
  local level = lic.level
  if level ~= nil and level ~= "unlimited" and (type(level) ~= "number" or level < 1 or level % 1 ~= 0) then
    return nil, "bad level", "invalid_license"
  end
  local start = parse_date(lic.start)
  if not start then return nil, "bad start", "invalid_date" end
  local ms_expires, disabled, lease_ended
  if lic.ms_expires ~= nil then
    ms_expires = parse_date(lic.ms_expires)
    if not ms_expires then return nil, "bad ms_expires", "invalid_date" end
  end
  if lic.disabled ~= nil then
    disabled = parse_date(lic.disabled)
    if not disabled then return nil, "bad disabled", "invalid_date" end
  end
  if lic.lease_ended ~= nil then
    lease_ended = parse_date(lic.lease_ended)
    if not lease_ended then return nil, "bad lease_ended", "invalid_date" end
  end
  local day = parse_date(on)
  if not day then return nil, "bad on", "invalid_date" end
  if disabled and day >= disabled then return nil, "disabled", "disabled" end
  if day < start then return nil, "not started", "not_started" end
  local cutoff = day
  if kind == "lease" then
    if lease_ended and day >= lease_ended then return nil, "expired", "expired" end
  elseif kind == "trial" then
    if day > start + (lic.trial_days or cat.trial_days) - 1 then return nil, "expired", "expired" end
  elseif not ms_expires then
    cutoff = start
  elseif day > ms_expires then
    cutoff = ms_expires
  end
  local build
  if lic.version_lock then
    build = newest_by(p.builds, day, lic.version_lock)
  else
    build = newest_by(p.builds, cutoff)
  end
  if not build then return nil, "no build", "no_build" end
  return build
end

return _M
