-- licensor.gateway.limit -- request rates per client address and per key,
-- counted in one-second windows in a lua_shared_dict so that every worker
-- sees the same counts.
--
-- The windows are seconds of nginx's cached wall clock (ngx.now), not the
-- monotonic clock the cache and the store's retries use: the dictionary
-- expires a window's counters by that same clock (incr's 2 s ttl), so the
-- two cannot disagree; reading it costs no system call on the path every
-- request takes; and a wall clock that jumps merely starts a fresh window
-- early, for a second's worth of counting.
local _M = {}
local Limit = {}
Limit.__index = Limit

local ngx = ngx
local floor, tostring = math.floor, tostring

-- new(dict_name, per_ip, per_key): limits in requests per second; 0 turns
-- one off.
function _M.new(dict_name, per_ip, per_key)
  local dict = ngx.shared[dict_name]
  if not dict then error("licensor.gateway: lua_shared_dict " .. dict_name .. " is not declared", 2) end
  return setmetatable({ dict = dict, per_ip = per_ip, per_key = per_key }, Limit)
end

-- The dictionary key prefix of the current second, for "ip:" or "key:";
-- remade once a second rather than formatting the time on every request.
local function window_prefix(self, prefix)
  local window = floor(ngx.now())
  if window ~= self.window then
    self.window = window
    self.prefixes = { ["ip:"] = "ip:" .. window .. ":", ["key:"] = "key:" .. window .. ":" }
  end
  return self.prefixes[prefix]
end

-- Counts one request for `name` in the current second; returns the
-- seconds to wait (for Retry-After) when over `rate`, else nil.
local function count(self, prefix, name, rate)
  if rate <= 0 then return nil end
  local n, err = self.dict:incr(window_prefix(self, prefix) .. name, 1, 0, 2)
  if not n then
    -- A full dictionary must not lock everyone out: count nothing.
    ngx.log(ngx.WARN, "licensor: rate limit dictionary: ", tostring(err))
    return nil
  end
  if n > rate then return 1 end
  return nil
end

-- over(kind, name, rate, seconds) -> seconds to wait, or nil: counts one
-- event of `kind` for `name` (a key, a client address, an email) in the
-- current window of `seconds`, over when more than `rate` were counted in
-- it.  The portal's and the downloads' own, slower limits (per minute,
-- per 15 minutes) use it; the window's key is its start.
function Limit:over(kind, name, rate, seconds)
  if rate <= 0 then return nil end
  local start = floor(ngx.now() / seconds) * seconds
  local n, err = self.dict:incr(kind .. ":" .. start .. ":" .. name, 1, 0, seconds + 1)
  if not n then
    ngx.log(ngx.WARN, "licensor: rate limit dictionary: ", tostring(err))
    return nil
  end
  if n > rate then return start + seconds - floor(ngx.now()) end
  return nil
end

function Limit:client(address)
  return count(self, "ip:", address, self.per_ip)
end

function Limit:key(key)
  return count(self, "key:", key, self.per_key)
end

return _M
