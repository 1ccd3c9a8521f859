-- licensor.gateway.metrics -- counters for GET /metrics in Prometheus'
-- text format, kept in a lua_shared_dict so that every worker adds to
-- the same numbers: requests by route and status, activations, check-ins
-- and deactivations by outcome, the time store writes hold a worker (a
-- histogram), the license cache's hits and misses, granted downloads
-- by product, platform and way (the API or the portal), and policy hooks
-- that failed (the built-in decision stood) by hook and reason.
local ngx = ngx
local ipairs, pairs, type, tostring, format = ipairs, pairs, type, tostring, string.format
local concat, sort = table.concat, table.sort

local _M = {}

-- Upper bounds of the write-time buckets, in microseconds.
local BUCKETS = { 50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000 }

-- The shared dict, or nil when the configuration has none (no metrics).
function _M.dict(name)
  return ngx.shared[name]
end

local function add(dict, key, n)
  if dict then dict:incr(key, n or 1, 0) end
end

-- One answered request: its route (a label such as "activate") and status.
function _M.request(dict, route, status)
  add(dict, "req\t" .. route .. "\t" .. tostring(status))
end

-- One installation write: its workflow, outcome ("ok" or the refusal's
-- code) and the microseconds it held the worker.
function _M.write(dict, workflow, outcome, us)
  if not dict then return end
  add(dict, "write\t" .. workflow .. "\t" .. tostring(outcome))
  for _, bound in ipairs(BUCKETS) do
    if us <= bound then add(dict, "bucket\t" .. bound) end
  end
  add(dict, "bucket\t+Inf")
  add(dict, "write_sum", us)
end

-- One granted download (licensor.gateway.download): labels from the
-- catalogue (product, platform: at most 16 per build) and "api" or
-- "portal", so the label sets stay few.
function _M.download(dict, product, platform, via)
  add(dict, "dl\t" .. product .. "\t" .. platform .. "\t" .. via)
end

-- One policy hook that raised, overran a budget or answered a malformed
-- value (licensor.policy's failure callback): its hook ("eligible") and
-- reason ("error", "instructions", "memory", "answer"...).  The labels
-- are checked to be words: a reason never carries a message.
local WORD = "^[%w_]+$"
function _M.hook_failure(dict, hook, reason, n)
  hook, reason = tostring(hook), tostring(reason)
  if not hook:match(WORD) or #hook > 32 then hook = "other" end
  if not reason:match(WORD) or #reason > 32 then reason = "other" end
  add(dict, "hook\t" .. hook .. "\t" .. reason, n)
end

-- Counts the hook failures of a policy a store compiled (store.active_policy:
-- a licensor.policy object, or nil): the first time it is seen, the
-- failures it counted so far (P.failures["HOOK REASON"]), and from then on
-- each one as it happens (P.on_failure).  A new policy version is a new
-- object, seen after the request that compiled it.
function _M.watch_policy(dict, P)
  if type(P) ~= "table" or P.on_failure ~= nil or type(P.failures) ~= "table" then return end
  for name, n in pairs(P.failures) do
    local hook, reason = tostring(name):match("^(%S+) (%S+)$")
    if hook then _M.hook_failure(dict, hook, reason, n) end
  end
  P.on_failure = function(hook, reason) _M.hook_failure(dict, hook, reason) end
end

-- Counts what fails with no policy object to watch: a stored version
-- that does not compile on this host (licensor.policy.stored's "file
-- compile").  A compiled policy's own failures are watch_policy's.
function _M.watch_policies(dict)
  if not dict then return end
  require("licensor.policy").on_failure = function(hook, reason, P)
    if P == nil then _M.hook_failure(dict, hook, reason) end
  end
end

function _M.cache(dict, hit)
  add(dict, hit and "cache_hit" or "cache_miss")
end

-- The Prometheus text of every counter.
function _M.text(dict)
  local lines, requests, writes, downloads, hooks = {}, {}, {}, {}, {}
  for _, key in ipairs(dict and dict:get_keys(0) or {}) do
    local kind, a, b = key:match("^(%a+)\t([^\t]*)\t?(.*)$")
    local value = dict:get(key)
    if kind == "req" then
      requests[#requests + 1] = format('licensor_requests_total{route="%s",status="%s"} %d', a, b, value)
    elseif kind == "write" then
      writes[#writes + 1] = format('licensor_writes_total{workflow="%s",outcome="%s"} %d', a, b, value)
    elseif kind == "dl" then
      local platform, via = b:match("^([^\t]*)\t(.*)$")
      downloads[#downloads + 1] = format('licensor_downloads_total{product="%s",platform="%s",via="%s"} %d',
        a, platform, via, value)
    elseif kind == "hook" then
      hooks[#hooks + 1] = format('licensor_policy_hook_failures_total{hook="%s",reason="%s"} %d', a, b, value)
    end
  end
  sort(requests)
  sort(writes)
  sort(downloads)
  sort(hooks)
  lines[#lines + 1] = "# HELP licensor_requests_total Requests answered, by route and status."
  lines[#lines + 1] = "# TYPE licensor_requests_total counter"
  for _, l in ipairs(requests) do lines[#lines + 1] = l end
  lines[#lines + 1] = "# HELP licensor_writes_total Activations, check-ins and deactivations, by outcome."
  lines[#lines + 1] = "# TYPE licensor_writes_total counter"
  for _, l in ipairs(writes) do lines[#lines + 1] = l end
  lines[#lines + 1] = "# HELP licensor_write_microseconds Time a store write held a worker."
  lines[#lines + 1] = "# TYPE licensor_write_microseconds histogram"
  for _, bound in ipairs(BUCKETS) do
    lines[#lines + 1] = format('licensor_write_microseconds_bucket{le="%d"} %d', bound,
      dict and dict:get("bucket\t" .. bound) or 0)
  end
  local count = dict and dict:get("bucket\t+Inf") or 0
  lines[#lines + 1] = format('licensor_write_microseconds_bucket{le="+Inf"} %d', count)
  lines[#lines + 1] = format("licensor_write_microseconds_sum %d", dict and dict:get("write_sum") or 0)
  lines[#lines + 1] = format("licensor_write_microseconds_count %d", count)
  lines[#lines + 1] = "# HELP licensor_cache_reads_total License reads by the gateway's cache, hit or miss."
  lines[#lines + 1] = "# TYPE licensor_cache_reads_total counter"
  for _, result in ipairs({ "hit", "miss" }) do
    lines[#lines + 1] = format('licensor_cache_reads_total{result="%s"} %d', result,
      dict and dict:get("cache_" .. result) or 0)
  end
  lines[#lines + 1] = "# HELP licensor_downloads_total Download links granted, by product, platform and way."
  lines[#lines + 1] = "# TYPE licensor_downloads_total counter"
  for _, l in ipairs(downloads) do lines[#lines + 1] = l end
  lines[#lines + 1] = "# HELP licensor_policy_hook_failures_total Policy hooks that failed (the built-in " ..
    "decision stood), by hook and reason."
  lines[#lines + 1] = "# TYPE licensor_policy_hook_failures_total counter"
  for _, l in ipairs(hooks) do lines[#lines + 1] = l end
  return concat(lines, "\n") .. "\n"
end

return _M
