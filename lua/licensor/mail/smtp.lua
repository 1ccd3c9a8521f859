-- licensor.mail.smtp -- one message to one recipient over SMTP, with
-- LuaSocket's SMTP session (socket.smtp) and LuaSec for STARTTLS.
--
-- socket.smtp.send cannot upgrade a connection, so this drives the same
-- session step by step: greet (EHLO), STARTTLS (required by default; see
-- starttls_mode), EHLO again over TLS, AUTH when a user is configured,
-- then MAIL, RCPT and DATA.  The session's socket is a
-- small proxy whose inner connection changes from TCP to TLS after
-- STARTTLS, given to socket.smtp through its documented `create` hook.
--
-- TLS is licensor.tls's: the server's certificate against the system's
-- authorities or a cafile, its names against the host.  A failed check, or
-- a server that does not offer STARTTLS where it is required (an offer
-- stripped on the way), is a failed delivery, never a quiet fallback to
-- plain text.  A password is never sent over an unencrypted connection.
local socket = require "socket"
local smtp = require "socket.smtp"
local ltn12 = require "ltn12"
local mime = require "mime"
local tls = require "licensor.tls"

local setmetatable, tostring, select = setmetatable, tostring, select
local find, match = string.find, string.match

local _M = {}

_M.DEFAULT_CAFILE = tls.DEFAULT_CAFILE

-- STARTTLS modes: "always" (required: no STARTTLS offered, no message),
-- "auto" (when offered, else plain text), "never".
_M.STARTTLS = { always = true, auto = true, never = true }

-- loopback(host): is host this machine's loopback (localhost, 127/8, ::1)?
function _M.loopback(host)
  return host == "localhost" or host == "::1" or match(host, "^127%.%d+%.%d+%.%d+$") ~= nil
end

-- starttls_mode(opts) -> "always", "auto" or "never": opts.starttls when
-- given, else "always" -- "auto" only for a server on the loopback
-- address, where no one can strip the offer.
function _M.starttls_mode(opts)
  return opts.starttls or (_M.loopback(opts.host) and "auto" or "always")
end

-- The TLS options of opts: opts.tls, or the older opts.cafile alone.
local function tls_options(opts)
  return opts.tls or (opts.cafile and { cafile = opts.cafile }) or {}
end
_M.tls_options = tls_options

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

-- Upgrades sock to TLS (after the server's 220 to STARTTLS).
local function start_tls(sock, opts)
  return tls.wrap(sock, opts.host, tls_options(opts), opts.timeout)
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
  local mode = _M.starttls_mode(opts)
  if mode ~= "never" and offered then
    state.stage = "starttls"
    s.try(s.tp:command("STARTTLS"))
    s.try(s.tp:check("2.."))
    conn.inner = s.try(start_tls(conn.inner, opts))
    s.try(s.tp:command("EHLO", domain))
    ext = select(2, s.try(s.tp:check("2..")))
    secure = true
  elseif mode == "always" then
    s.try(nil, opts.host .. " does not offer STARTTLS (required; --starttls auto allows plain text)")
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
-- port (25), from, timeout (s), starttls (starttls_mode: by default
-- "always", "auto" on loopback), user and password (AUTH PLAIN or LOGIN,
-- only over TLS), tls (licensor.tls's {cafile=, insecure=}; or cafile
-- alone), domain (EHLO).  permanent: the server refused the recipient or
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
