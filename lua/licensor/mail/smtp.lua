-- licensor.mail.smtp -- one message to one recipient over SMTP, with
-- LuaSocket's SMTP session (socket.smtp) and LuaSec for STARTTLS.
--
-- socket.smtp.send cannot upgrade a connection, so this drives the same
-- session step by step: greet (EHLO), STARTTLS when the server offers it
-- (or always/never, as configured), EHLO again over TLS, AUTH when a user
-- is configured, then MAIL, RCPT and DATA.  The session's socket is a
-- small proxy whose inner connection changes from TCP to TLS after
-- STARTTLS, given to socket.smtp through its documented `create` hook.
--
-- TLS checks the server's certificate against a CA file (the system's by
-- default) and the certificate's names against the host: a failed check
-- is a failed delivery, never a quiet fallback to plain text.  A password
-- is never sent over an unencrypted connection.
local socket = require "socket"
local smtp = require "socket.smtp"
local ltn12 = require "ltn12"
local mime = require "mime"

local setmetatable, pcall, require, tostring, select = setmetatable, pcall, require, tostring, select
local ipairs, find, lower = ipairs, string.find, string.lower

local _M = {}

_M.DEFAULT_CAFILE = "/etc/ssl/certs/ca-certificates.crt"

-- A socket whose calls go to `inner`, which may be replaced; timeouts are
-- ours, not socket.smtp's module-wide one.
local function proxy(timeout)
  local p = { inner = socket.tcp() }
  p.inner:settimeout(timeout)
  function p.settimeout() return 1 end
  -- Commands and DATA's terminator are small separate writes: with Nagle's
  -- algorithm each waits out the server's delayed ACK, 40 ms or so a
  -- message (20 messages a second instead of 200).
  function p.connect(self, host, port)
    local ok, err = self.inner:connect(host, port)
    if ok then self.inner:setoption("tcp-nodelay", true) end
    return ok, err
  end
  return setmetatable(p, { __index = function(_, name)
    return function(self, ...)
      local inner = self.inner
      return inner[name](inner, ...)
    end
  end })
end

-- Does a certificate name (maybe "*.example.com") cover host?
local function name_matches(pattern, host)
  pattern, host = lower(pattern), lower(host)
  if pattern == host then return true end
  local suffix = pattern:match("^%*(%..+%..+)$")
  return suffix ~= nil and host:sub(-#suffix) == suffix and not find(host:sub(1, -#suffix - 1), "[.]")
    and #host > #suffix
end

-- The subjectAltName DNS and IP names of the peer's certificate cover host.
local function check_host(conn, host)
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

-- Upgrades sock to TLS (after the server's 220 to STARTTLS).
local function start_tls(sock, opts)
  local found, ssl = pcall(require, "ssl")
  if not found then return nil, "STARTTLS needs LuaSec (Debian: apt-get install lua-sec)" end
  local conn, err = ssl.wrap(sock, { mode = "client", protocol = "any", verify = { "peer" },
                                     options = { "all", "no_sslv2", "no_sslv3", "no_tlsv1", "no_tlsv1_1" },
                                     cafile = opts.cafile or _M.DEFAULT_CAFILE })
  if not conn then return nil, "TLS: " .. tostring(err) end
  conn:sni(opts.host)
  conn:settimeout(opts.timeout)
  local ok
  ok, err = conn:dohandshake()
  if not ok then return nil, "TLS handshake with " .. opts.host .. ": " .. tostring(err) end
  ok, err = check_host(conn, opts.host)
  if not ok then return nil, err end
  return conn
end

-- The conversation; raises through the session's try (socket.protect turns
-- that into nil, err).  state.stage says how far it got.
local function converse(opts, to, message, state)
  local conn = proxy(opts.timeout)
  state.stage = "connect"
  local s = smtp.open(opts.host, opts.port, function() return conn end)
  local domain = opts.domain or "localhost"
  local ext = s:greet(domain)
  local secure = false
  local offered = find(ext, "STARTTLS", 1, true) ~= nil
  if opts.starttls ~= "never" and offered then
    state.stage = "starttls"
    s.try(s.tp:command("STARTTLS"))
    s.try(s.tp:check("2.."))
    conn.inner = s.try(start_tls(conn.inner, opts))
    s.try(s.tp:command("EHLO", domain))
    ext = select(2, s.try(s.tp:check("2..")))
    secure = true
  elseif opts.starttls == "always" then
    s.try(nil, opts.host .. " does not offer STARTTLS")
  end
  if opts.user then
    state.stage = "auth"
    if not secure then s.try(nil, "refusing to send the SMTP password over an unencrypted connection") end
    s:auth(opts.user, opts.password, ext)
  end
  state.stage = "mail"
  s:mail("<" .. opts.from .. ">")
  state.stage = "rcpt"
  s:rcpt("<" .. to .. ">")
  state.stage = "data"
  s:data(ltn12.source.chain(ltn12.source.string(message), mime.stuff()))
  state.stage = "quit"
  s:quit()
  s:close()
  return true
end
local protected = socket.protect(converse)

-- send(opts, to, message) -> true; or nil, why, permanent.  opts: host,
-- port (25), from, timeout (s), starttls ("auto": when offered, "always",
-- "never"), user and password (AUTH PLAIN or LOGIN, only over TLS),
-- cafile, domain (EHLO).  permanent: the server refused the recipient or
-- the message with a 5xx reply, so sending it again cannot succeed;
-- anything else (a 4xx, no answer, TLS, a refused sender) may pass later.
function _M.send(opts, to, message)
  local state = {}
  local ok, err = protected(opts, to, message, state)
  if ok then return true end
  err = tostring(err)
  local permanent = (state.stage == "rcpt" or state.stage == "data") and find(err, "^5%d%d") ~= nil
  return nil, "SMTP " .. opts.host .. ":" .. opts.port .. " (" .. tostring(state.stage) .. "): " .. err,
    permanent
end

return _M
