-- licensor.constants -- the one owner of the limits and defaults the Lua
-- layers share: the gateway, the CLI, the store and the certificate code
-- read them from here, so two layers cannot disagree.  Not a place for
-- policy (that is the catalogue) nor for a fact only one function uses.
-- The C side keeps its own, once each, in csrc/catalogue.h and
-- csrc/licensor_verify.h; where a fact crosses the boundary, the comment
-- names the C constant it must equal (spec/constants_spec.lua checks
-- those).
local _M = {}

-- The largest whole number every VM represents exactly (2^53 - 1): build
-- numbers, levels, prices, amounts paid (csrc/catalogue.h LSR_INT_MAX).
_M.MAX_INTEGER = 9007199254740991

-- The largest request body the gateway reads (nginx's
-- client_max_body_size and client_body_buffer_size are rendered from it).
_M.MAX_BODY_BYTES = 16 * 1024

-- The largest signed certificate, revocation notice or return receipt
-- text (csrc/licensor_verify.h LSRV_CERT_MAX).
_M.MAX_CERTIFICATE_BYTES = 4096

-- The largest file the command line and the loaders read whole (CSV
-- imports, templates): a device such as /dev/zero ends there too.
_M.MAX_FILE_BYTES = 64 * 1024 * 1024

-- How old a worker's cached PostgreSQL read may be, in milliseconds.
_M.STALE_MS = 1000

-- How a PostgreSQL COMMIT that may or may not have happened is answered:
-- store_unavailable, with a message that begins with this (csrc/pg.c).
-- The gateway says so to the client instead of its plain 503 text.
_M.OUTCOME_UNKNOWN = "commit outcome unknown"

-- The gateway on PostgreSQL: each store call's deadline, /healthz's write
-- probe's own, in milliseconds (licensor gateway --db-timeout-ms,
-- --health-timeout-ms).
_M.DB_TIMEOUT_MS = 5000
_M.HEALTH_TIMEOUT_MS = 1000

-- store:deliver and `licensor deliver`: a failed row is tried at most
-- max_tries times, waiting backoff_ms (doubling, with jitter) between
-- tries; a webhook or SMTP exchange gives up after timeout seconds; a
-- deliverer holds the rows it claimed for claim_ms.
-- The customer portal and downloads (doc/portal.md), in seconds: a
-- sign-in link lives 15 minutes; a session ends after 30 idle minutes or
-- 12 hours in all; a download link lives 5 minutes.  Sign-ins mailed per
-- address per link lifetime, and asked per client address per minute.
_M.PORTAL = { signin_seconds = 900, idle_seconds = 1800, absolute_seconds = 43200,
              download_link_seconds = 300, signins_per_email = 5, signins_per_client = 20,
              downloads_per_key = 30, downloads_per_client = 60 }

_M.DELIVERY = { max_tries = 8, backoff_ms = 30000, timeout = 10, claim_ms = 60000 }

-- Files licensor creates (databases, signing keys, state, exports) are
-- private: mode 0600, narrowed further by the umask.
_M.PRIVATE_MODE = 384   -- 0600

-- The user an nginx gateway started as root runs its workers as, unless
-- told otherwise (runner option `user`).
_M.GATEWAY_USER = "nobody"

-- The statuses nginx itself answers in the gateway's configuration (bad
-- request lines and headers, oversized bodies, timeouts, the limits of
-- the connection zone, upstream trouble), each with the code and message
-- of the JSON answer the gateway's error page gives instead of nginx's
-- HTML.  runner.lua renders one `error_page` line for each; 494 (nginx's
-- "request header too large") is answered as 431.
_M.GATEWAY_ERRORS = {
  [400] = { "invalid_request", "the request is malformed" },
  [403] = { "forbidden", "the request is forbidden" },
  [404] = { "not_found", "no such route" },
  [405] = { "method_not_allowed", "the method is not allowed here" },
  [408] = { "timeout", "the request did not arrive in time" },
  [411] = { "invalid_request", "the request needs a Content-Length" },
  [413] = { "too_large", ("the body is larger than %d KiB"):format(_M.MAX_BODY_BYTES / 1024) },
  [414] = { "invalid_request", "the request line is too long" },
  [429] = { "rate_limited", "too many requests in progress from this address" },
  [494] = { "invalid_request", "the request headers are too large" },
  [500] = { "internal_error", "internal error" },
  [501] = { "not_implemented", "the request uses a transfer coding or method this server does not know" },
  [502] = { "bad_gateway", "bad gateway" },
  [503] = { "unavailable", "the service is unavailable; try again later" },
  [504] = { "timeout", "the answer did not come in time" },
  [505] = { "http_version_not_supported", "the HTTP version is not supported (HTTP/1.0 and HTTP/1.1 are)" },
}

return _M
