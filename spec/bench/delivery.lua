-- delivery.lua -- `make bench`: `licensor deliver` on 300 reminders, by
-- mail to a real SMTP server on loopback (python3-aiosmtpd, with and
-- without STARTTLS: one connection and, with TLS, one handshake a message)
-- and by signed webhook to licensor.receiver.  Full durability: every
-- delivery is its own committed transaction.
local stores = require "support.stores"
local smtpd = require "support.smtpd"
local core = require "licensor.core"
local run = require "support.cli"
local files = require "support.files"
local socket = require "socket"

local N = 300

-- A store whose sweep wrote N ms_expiring reminders; its path.
local function reminders()
  local store, path = stores.new()
  for _ = 1, N do stores.issue(store, { email = "it@acme.example" }) end
  assert(#store:sweep("2019-05-01") == N)
  store:close()
  return path
end

-- Actions delivered a second by `licensor deliver args...`.
local function rate(path, ...)
  local t0 = socket.gettime()
  local status, out = run("--db", path, "deliver", ...)
  assert(status == 0 and out:find("delivered " .. N, 1, true), out)
  return N / (socket.gettime() - t0)
end

local function mail(tls)
  local server = smtpd.start{ tls = tls }
  local per_second = rate(reminders(), "--smtp", server.address, "--mail-from", "licenses@vendor.example",
                          "--smtp-cafile", smtpd.certificate().cert)
  assert(#server.received() == N)
  server.stop()
  return per_second
end

local function webhooks()
  local log, secret = os.tmpname(), os.tmpname()
  files.write(secret, "bench-secret\n")
  local pid, port = require("licensor.receiver").start(log)
  local per_second = rate(reminders(), "--webhook", "http://127.0.0.1:" .. port .. "/hooks", "--secret-file", secret)
  core.process.stop(pid, 0)
  os.remove(log); os.remove(secret)
  return per_second
end

local tls, plain, hooks = mail(true), mail(false), webhooks()
smtpd.cleanup()
print(("delivery (%s): %d reminders: mail over STARTTLS %.0f/s, plain SMTP %.0f/s (TLS/plain %.2f), " ..
       "signed webhooks %.0f/s"):format(_VERSION, N, tls, plain, tls / plain, hooks))
