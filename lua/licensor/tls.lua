-- licensor.tls -- the one TLS client of `licensor deliver`: https webhooks
-- (licensor.webhook) and SMTP STARTTLS (licensor.mail.smtp), over LuaSec
-- (Debian lua-sec).  Not a server, and not for anything but deliveries.
--
-- The peer is verified (verify = peer, fail_if_no_peer_cert) against the
-- system's authorities or opts.cafile, and the host name is checked
-- against the certificate's subjectAltName (DNS names, one leading
-- wildcard label, and IP addresses): LuaSec 1.2 checks the chain only.  A
-- failed check is a failed delivery, never a quiet fallback.
--
-- The options, one table for every handler of a run:
--   { cafile = PATH, insecure = true, warn = function(line) }
-- cafile: the authorities to trust instead of the system's.  insecure:
-- no checks at all, an explicit choice that is logged once per run:
-- `licensor deliver --insecure` says so on stderr itself; a caller that
-- gives warn has INSECURE_WARNING logged by it, once for that table.
local socket = require "socket"

local type, tostring, pcall, require, setmetatable, ipairs, pairs = type, tostring, pcall, require,
  setmetatable, ipairs, pairs
local find, lower, format = string.find, string.lower, string.format

local _M = {}

-- The system's authorities (Debian ca-certificates).
_M.DEFAULT_CAFILE = "/etc/ssl/certs/ca-certificates.crt"
_M.DEFAULT_CAPATH = "/etc/ssl/certs"

-- TLS 1.2 or newer.
local OPTIONS = { "all", "no_sslv2", "no_sslv3", "no_tlsv1", "no_tlsv1_1" }

_M.INSECURE_WARNING = "licensor: warning: TLS is not checked (insecure): certificates and host names " ..
  "of webhook and SMTP servers are accepted as they come"

local warned = setmetatable({}, { __mode = "k" })
local contexts = setmetatable({}, { __mode = "k" })

-- options(opts) -> opts (an empty table for nil): the options a handler
-- keeps; an insecure table with warn is logged here, once.
function _M.options(opts)
  opts = opts or {}
  if opts.insecure and opts.warn and not warned[opts] then
    warned[opts] = true
    opts.warn(_M.INSECURE_WARNING)
  end
  return opts
end

-- params(opts) -> LuaSec's client parameters for these options.
function _M.params(opts)
  opts = opts or {}
  if opts.insecure then return { mode = "client", protocol = "any", options = OPTIONS, verify = "none" } end
  local cafile, capath = opts.cafile, nil
  if not cafile then
    local f = io.open(_M.DEFAULT_CAFILE, "rb")
    if f then f:close(); cafile = _M.DEFAULT_CAFILE else capath = _M.DEFAULT_CAPATH end
  end
  -- lsec_continue: the handshake goes on past a failed verification, so
  -- that wrap() can say why (expired, self-signed...) before refusing.
  return { mode = "client", protocol = "any", options = OPTIONS, verify = { "peer", "fail_if_no_peer_cert" },
           verifyext = { "lsec_continue" }, cafile = cafile, capath = capath }
end

local function load_ssl()
  local found, ssl = pcall(require, "ssl")
  if not found then return nil, "TLS needs LuaSec (Debian: apt-get install lua-sec)" end
  return ssl
end

-- The LuaSec context of an options table, made once.
local function context(opts)
  if contexts[opts] then return contexts[opts] end
  local ssl, why = load_ssl()
  if not ssl then return nil, why end
  local ctx, err = ssl.newcontext(_M.params(opts))
  if not ctx then return nil, "TLS: " .. tostring(err) end
  contexts[opts] = ctx
  return ctx
end

-- check(opts) -> true, or nil, why: can these options make a context (is
-- LuaSec there, is the cafile readable)?  For a caller that wants to stop
-- before the first delivery.
function _M.check(opts)
  local ctx, why = context(opts or {})
  if not ctx then return nil, why end
  return true
end

-- name_matches(pattern, host): does a certificate name (maybe
-- "*.example.com") cover host?  The wildcard stands for one whole label.
function _M.name_matches(pattern, host)
  pattern, host = lower(pattern), lower(host)
  if pattern == host then return true end
  local suffix = pattern:match("^%*(%..+%..+)$")
  return suffix ~= nil and #host > #suffix and host:sub(-#suffix) == suffix
    and not find(host:sub(1, -#suffix - 1), "[.]")
end
local name_matches = _M.name_matches

-- check_host(conn, host) -> true, or nil, why: the subjectAltName DNS and
-- IP names of the peer's certificate cover host.
function _M.check_host(conn, host)
  local cert = conn:getpeercertificate()
  if not cert then return nil, "the server sent no certificate" end
  local san = cert:extensions()["2.5.29.17"] or {}
  for _, field in ipairs({ "dNSName", "iPAddress" }) do
    for _, name in ipairs(san[field] or {}) do
      if name_matches(name, host) then return true end
    end
  end
  return nil, "the server's certificate is not for " .. host
end

-- verified(conn) -> true, or nil, why: did the peer's chain verify?
-- (OpenSSL's words for the first failure: expired, self-signed...)
local function verified(conn)
  local ok, list = conn:getpeerverification()
  if ok then return true end
  for _, depth in pairs(type(list) == "table" and list or {}) do
    if type(depth) == "table" and depth[1] then return nil, tostring(depth[1]) end
  end
  return nil, "certificate verify failed"
end

-- wrap(sock, host, opts, timeout) -> the TLS connection over sock (a
-- connected LuaSocket TCP socket), its handshake done and the host
-- checked; or nil, why (sock is closed then).
function _M.wrap(sock, host, opts, timeout)
  opts = opts or {}
  local ctx, why = context(opts)
  if not ctx then sock:close(); return nil, why end
  local ssl = require "ssl"
  local conn, err = ssl.wrap(sock, ctx)
  if not conn then sock:close(); return nil, "TLS: " .. tostring(err) end
  conn:sni(host)
  conn:settimeout(timeout)
  local ok
  ok, err = conn:dohandshake()
  if ok and not opts.insecure then
    ok, err = verified(conn)
    if ok then
      ok, err = _M.check_host(conn, host)
      if not ok then conn:close(); return nil, "TLS: " .. err end
    end
  end
  if not ok then
    conn:close()
    return nil, format("TLS handshake with %s: %s", host, tostring(err))
  end
  return conn
end

-- connector(tls, timeout, opts) -> a LuaSocket `create` function (for
-- socket.http's request table): a TCP socket with timeout seconds on
-- every call, wrapped in TLS (checked as above) once connected when tls
-- is true.
function _M.connector(tls, timeout, opts)
  return function()
    local c = { sock = socket.tcp() }
    c.sock:settimeout(timeout)
    function c.settimeout() return 1 end
    function c.connect(self, host, port)
      local ok, err = self.sock:connect(host, port)
      if not ok then return nil, err end
      if tls then
        local conn
        conn, err = _M.wrap(self.sock, host, opts, timeout)
        if not conn then return nil, err end
        self.sock = conn
      end
      return 1
    end
    return setmetatable(c, { __index = function(_, name)
      return function(self, ...)
        local s = self.sock
        return s[name](s, ...)
      end
    end })
  end
end

return _M
