-- smtpd.lua -- starts and stops real SMTP servers (spec/support/smtpd.py,
-- Debian's python3-aiosmtpd) on the loopback address for the mail specs,
-- and reads back what they received.
--
--   local server = smtpd.start{ tls = true, require_tls = true, auth = "user:password" }
--   server.port, server.received() -> list of messages, server.stop()
--
-- smtpd.certificate() makes (once) a self-signed certificate for
-- 127.0.0.1 and localhost with openssl: {dir, cert, key}.
local core = require "licensor.core"
local files = require "support.files"
local socket = require "socket"
local gateway = require "support.gateway"
local register = require "support.registry"

local _M = {}

-- Debian's interpreter, where python3-aiosmtpd is installed (a python3
-- earlier on PATH, a virtualenv say, would not have it).
_M.PYTHON = "/usr/bin/python3"

local function shell(command)
  local ok = os.execute(command)
  assert(ok == true or ok == 0, command)
end

local certificates = {}

-- certificate(name) -> {cert=, key=}: a self-signed certificate for
-- 127.0.0.1 and localhost, made once per name (two names: two authorities
-- that do not trust each other).
function _M.certificate(name)
  name = name or "main"
  if certificates[name] then return certificates[name] end
  local dir = files.temp_dir()
  local c = { dir = dir, cert = dir .. "/cert.pem", key = dir .. "/key.pem" }
  shell("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=licensor-test-" .. name ..
        " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " .. c.key .. " -out " .. c.cert ..
        " 2>/dev/null")
  certificates[name] = c
  return c
end

-- Removes the certificates made by this process.
function _M.cleanup()
  for name, c in pairs(certificates) do
    files.remove_dir(c.dir)
    certificates[name] = nil
  end
end

local function wait_for(port)
  for _ = 1, 200 do
    local probe = socket.tcp()
    local ok = probe:connect("127.0.0.1", port)
    probe:close()
    if ok then return true end
    socket.sleep(0.05)
  end
  error("the SMTP server did not start on port " .. port)
end

-- start{tls=, require_tls=, auth=, certificate=} -> a server.
function _M.start(opts)
  opts = opts or {}
  local s = { port = gateway.free_port(), log = os.tmpname(), output = os.tmpname() }
  os.remove(s.log)
  local argv = { _M.PYTHON, "spec/support/smtpd.py", tostring(s.port), s.log }
  if opts.tls then
    local c = _M.certificate(opts.certificate)
    argv[#argv + 1], argv[#argv + 2], argv[#argv + 3] = "--tls", c.cert, c.key
  end
  if opts.require_tls then argv[#argv + 1] = "--require-tls" end
  if opts.auth then argv[#argv + 1], argv[#argv + 2] = "--auth", opts.auth end
  s.pid = assert(core.process.spawn(argv, s.output))
  register(s.pid, "smtp server")
  wait_for(s.port)
  s.address = "127.0.0.1:" .. s.port
  function s.received() return files.json_lines(s.log) end
  function s.stop()
    core.process.stop(s.pid, 2000)
    os.remove(s.log)
    os.remove(s.output)
  end
  return s
end

return _M
