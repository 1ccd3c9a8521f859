-- licensor.webhook -- outbox actions posted as JSON to HTTP(S) endpoints:
-- the handlers `licensor deliver` gives store:on.
--
-- Each post carries a stable event id (the outbox row's, the same on every
-- retry) and X-Licensor-Signature: t=UNIX_TIME,v1=HEX, where HEX is the
-- HMAC-SHA256 (libsodium) with the shared secret over "UNIX_TIME.BODY".  A
-- receiver recomputes it and refuses a stale t (replays).  2xx is
-- delivered; anything else, or no answer within the timeout, is a failure
-- that the store retries with backoff (store:deliver).  HTTP is
-- LuaSocket's; https is licensor.tls's (LuaSec, Debian lua-sec): the
-- server's certificate chains to a trusted authority and names the URL's
-- host, or nothing is posted.
local core = require "licensor.core"
local tls = require "licensor.tls"
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

-- post(url, body, headers, timeout[, tls_opts]) -> true, or nil and why.
-- tls_opts: licensor.tls's options, for an https URL.
function _M.post(url, body, headers, timeout, tls_opts)
  local scheme = url:match("^(%a+)://")
  scheme = scheme and scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then
    return nil, url .. ": an http:// or https:// URL expected"
  end
  local http, ltn12 = require "socket.http", require "ltn12"
  local sink = {}
  headers["Content-Type"] = "application/json"
  headers["Content-Length"] = tostring(#body)
  headers["User-Agent"] = "licensor-webhook"
  local ok, status = http.request{ url = url, method = "POST", headers = headers,
                                   create = tls.connector(scheme == "https", timeout, tls_opts),
                                   source = ltn12.source.string(body), sink = ltn12.sink.table(sink) }
  if not ok then return nil, "no answer from " .. url .. ": " .. tostring(status) end
  if type(status) ~= "number" or status < 200 or status > 299 then
    return nil, url .. " answered " .. tostring(status) .. " " .. concat(sink):sub(1, 200)
  end
  return true
end

-- handler{url=, secret=, timeout=10, tls=} -> a store:on handler that
-- posts the action: true on 2xx, else nil, why, "retry" (the store tries
-- again later).  tls: licensor.tls's options ({cafile=, insecure=}).
function _M.handler(opts)
  local url, secret, timeout = opts.url, opts.secret, opts.timeout or 10
  local tls_opts = tls.options(opts.tls)
  return function(action)
    local body = _M.payload(action)
    local ok, why = _M.post(url, body, { ["X-Licensor-Signature"] = _M.signature(secret, os.time(), body),
                                         ["X-Licensor-Event"] = "lsr_" .. tostring(action.id) }, timeout,
                            tls_opts)
    if not ok then return nil, why, "retry" end
    return true
  end
end

return _M
