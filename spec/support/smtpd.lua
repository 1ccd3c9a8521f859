-- smtpd.lua -- starts and stops real SMTP servers (spec/support/smtpd.py,
-- Debian's python3-aiosmtpd) on the loopback address for the mail specs,
-- and reads back what they received.
--
--   local server = smtpd.start{ tls = true, require_tls = true, auth = "user:password" }
--   server.port, server.received() -> list of messages, server.stop()
--
-- smtpd.certificate() makes (once) a self-signed certificate for
-- 127.0.0.1 and localhost with openssl: {dir, cert, key}.
-- smtpd.issued(kind) makes (once) one signed by smtpd.authority(), the
-- test authority: "good" (127.0.0.1 and localhost), "expired" (those
-- names, valid only on 2020-01-01) or "other" (for other.example); the
-- TLS specs use them for webhook receivers too.
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

-- authority() -> {cert=, key=}: the test authority (a CA certificate).
function _M.authority()
  if certificates.authority then return certificates.authority end
  local dir = files.temp_dir()
  local c = { dir = dir, cert = dir .. "/ca.pem", key = dir .. "/ca.key" }
  shell("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=licensor-test-authority" ..
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign" ..
        " -keyout " .. c.key .. " -out " .. c.cert .. " 2>/dev/null")
  files.write(dir .. "/index.txt", "")
  files.write(dir .. "/serial", "01\n")
  -- openssl ca sets any validity (x509 -req cannot back-date before 3.4).
  files.write(dir .. "/ca.cnf", table.concat({
    "[ca]", "default_ca = test", "[test]", "database = " .. dir .. "/index.txt", "new_certs_dir = " .. dir,
    "serial = " .. dir .. "/serial", "default_md = sha256", "policy = any", "copy_extensions = copy",
    "unique_subject = no", "[any]", "commonName = supplied", "" }, "\n"))
  certificates.authority = c
  return c
end

local KINDS = {
  good = { san = "DNS:localhost,IP:127.0.0.1", validity = "-days 2" },
  expired = { san = "DNS:localhost,IP:127.0.0.1",
              validity = "-startdate 20200101000000Z -enddate 20200102000000Z" },
  other = { san = "DNS:other.example", validity = "-days 2" },
}

-- issued(kind) -> {cert=, key=}: a certificate of that KINDS entry,
-- signed by the test authority.
function _M.issued(kind)
  local name = "issued-" .. kind
  if certificates[name] then return certificates[name] end
  local ca, k = _M.authority(), assert(KINDS[kind], kind)
  local dir = files.temp_dir()
  local c = { dir = dir, cert = dir .. "/cert.pem", key = dir .. "/key.pem" }
  shell("openssl req -new -newkey rsa:2048 -nodes -subj /CN=licensor-test-" .. kind ..
        " -addext subjectAltName=" .. k.san .. " -keyout " .. c.key .. " -out " .. dir ..
        "/req.csr 2>/dev/null")
  shell("openssl ca -batch -notext -config " .. ca.dir .. "/ca.cnf -cert " .. ca.cert ..
        " -keyfile " .. ca.key .. " " .. k.validity .. " -in " .. dir .. "/req.csr -out " .. c.cert ..
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

-- start{tls=, require_tls=, auth=, certificate=, issued=} -> a server;
-- issued names an issued() kind, certificate a self-signed one.
function _M.start(opts)
  opts = opts or {}
  local s = { port = gateway.free_port(), log = os.tmpname(), output = os.tmpname() }
  os.remove(s.log)
  local argv = { _M.PYTHON, "spec/support/smtpd.py", tostring(s.port), s.log }
  if opts.tls then
    local c = opts.issued and _M.issued(opts.issued) or _M.certificate(opts.certificate)
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
