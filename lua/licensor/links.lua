-- licensor.links -- the keys that sign what the gateway hands out: download
-- links, portal sign-in links and portal form tokens (doc/portal.md).
--
-- One secret file (`licensor gateway --link-secret FILE`, and the same file
-- for `licensor deliver --link-secret`, which writes sign-in mail) gives a
-- key per use, HMAC-SHA256(secret, "licensor " .. use), so that a value
-- signed for one use is never valid for another: a download signature is
-- no sign-in link, a sign-in link no form token.  The secret never leaves
-- the file and nginx.conf (secure_link needs its key there, as the admin
-- token's digest is).
local core = require "licensor.core"
local files = require "licensor.files"

local hmac = core.hmac_sha256
local format = string.format

local _M = {}

-- The uses, each with its own key.
_M.USES = { "signin", "csrf", "download", "secure_link", "session" }

-- At least this many bytes of secret (of any characters but whitespace at
-- the ends): 32 random bytes as hex (`openssl rand -hex 32`) is 64.
_M.MIN_SECRET_BYTES = 32
_M.MAX_SECRET_BYTES = 4096

-- read(path) -> secret text, or nil, message, code.
function _M.read(path)
  local text, why, code = files.read(path, "link secret file", _M.MAX_SECRET_BYTES)
  if not text then return nil, why, code end
  local secret = text:match("^%s*(.-)%s*$")
  if #secret < _M.MIN_SECRET_BYTES then
    return nil, format("link secret file %s: holds %d bytes, at least %d are needed (openssl rand -hex 32)",
                       path, #secret, _M.MIN_SECRET_BYTES), "invalid_request"
  end
  return secret
end

-- exposed(path) -> a warning when the secret file may be read by others
-- than its owner (group or other read bit), else nil: anyone who reads
-- it can sign download links (and, with the database, sign-in links).
function _M.exposed(path)
  local st = files.stat(path)
  if st and st.mode and (math.floor(st.mode / 8) % 8 >= 4 or st.mode % 8 >= 4) then
    return format("link secret file %s can be read by others than its owner (mode %o): chmod 600 %s",
                  path, st.mode, path)
  end
  return nil
end

-- keys(secret) -> {use = key as 64 hex digits}.
function _M.keys(secret)
  local keys = {}
  for _, use in ipairs(_M.USES) do keys[use] = hmac(secret, "licensor " .. use) end
  return keys
end

-- sign(key_hex, text) -> 64 hex digits: the MAC of text under a use's key.
function _M.sign(key_hex, text)
  return hmac(key_hex, text)
end

-- same(a, b) -> true when the two strings are equal, in time that does not
-- depend on where they differ (both are hashed first).
function _M.same(a, b)
  if type(a) ~= "string" or type(b) ~= "string" then return false end
  return core.sha256(a, true) == core.sha256(b, true) and a == b
end

return _M
