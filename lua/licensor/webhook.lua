-- licensor.webhook -- outbox actions posted as JSON to HTTP(S) endpoints:
-- the handlers `licensor deliver` gives store:on.
--
-- Each post carries a stable event id (the outbox row's, the same on every
-- retry) and X-Licensor-Signature: t=UNIX_TIME,v1=HEX, where HEX is the
-- HMAC-SHA256 (libsodium) with the shared secret over "UNIX_TIME.BODY".  A
-- receiver recomputes it and refuses a stale t (replays).  2xx is
-- delivered; anything else, or no answer within the timeout, is a failure
-- that the store retries with backoff (store:deliver).  HTTP is
-- LuaSocket's; https needs LuaSec (Debian lua-sec).
local core = require "licensor.core"
local cjson = require("cjson").new()

local type, tostring, format = type, tostring, string.format
local concat = table.concat

cjson.encode_sparse_array(true)

local _M = {}

-- signature(secret, time, body) -> the X-Licensor-Signature value.
function _M.signature(secret, time, body)
  return format("t=%d,v1=%s", time, core.hmac_sha256(secret, format("%d.", time) .. body))
end

-- payload(action) -> the JSON body of an outbox action.
function _M.payload(action)
  return cjson.encode({ id = "lsr_" .. tostring(action.id), action = action.action, key = action.key,
                        on = action.on, refers_to = action.refers_to, case = action.case,
                        detail = action.detail, attempt = (action.attempts or 0) + 1 })
end

local function requester(url)
  if url:match("^https://") then
    local ok, https = pcall(require, "ssl.https")
    if not ok then return nil, "https needs LuaSec (Debian: apt-get install lua-sec)" end
    return https
  end
  return require "socket.http"
end

-- post(url, body, headers, timeout) -> true, or nil and why.
function _M.post(url, body, headers, timeout)
  local http, why = requester(url)
  if not http then return nil, why end
  local ltn12 = require "ltn12"
  http.TIMEOUT = timeout
  local sink = {}
  headers["Content-Type"] = "application/json"
  headers["Content-Length"] = tostring(#body)
  headers["User-Agent"] = "licensor-webhook"
  local ok, status = http.request{ url = url, method = "POST", headers = headers,
                                   source = ltn12.source.string(body), sink = ltn12.sink.table(sink) }
  if not ok then return nil, "no answer from " .. url .. ": " .. tostring(status) end
  if type(status) ~= "number" or status < 200 or status > 299 then
    return nil, url .. " answered " .. tostring(status) .. " " .. concat(sink):sub(1, 200)
  end
  return true
end

-- handler{url=, secret=, timeout=10} -> a store:on handler that posts the
-- action and returns true on 2xx, raises the reason otherwise.
function _M.handler(opts)
  local url, secret, timeout = opts.url, opts.secret, opts.timeout or 10
  return function(action)
    local body = _M.payload(action)
    local ok, why = _M.post(url, body, { ["X-Licensor-Signature"] = _M.signature(secret, os.time(), body),
                                         ["X-Licensor-Event"] = "lsr_" .. tostring(action.id) }, timeout)
    if not ok then error(why, 0) end
    return true
  end
end

return _M
