-- licensor.certificate -- the texts of offline licensing: signing key
-- files, certificates (formats 1 and 2) and revocation notices (format 1,
-- see csrc/licensor_verify.h), the activation requests of air-gapped servers,
-- the return receipts products write, and fingerprints as the store
-- records them.  Signing and verifying are C (libsodium, and the same
-- verifier vendors link into their products).
local core = require "licensor.core"
local failure = require "licensor.failure"
local files = require "licensor.files"
local constants = require "licensor.constants"

local type, tostring, tonumber, ipairs, pairs = type, tostring, tonumber, ipairs, pairs
local concat, sort = table.concat, table.sort
local format = string.format

local _M = {}

_M.MAX_BYTES = constants.MAX_CERTIFICATE_BYTES
local BEGIN = "-----BEGIN LICENSOR CERTIFICATE-----\n"
local END = "-----END LICENSOR CERTIFICATE-----\n"
local REQUEST_BEGIN = "-----BEGIN LICENSOR ACTIVATION REQUEST-----\n"
local REQUEST_END = "-----END LICENSOR ACTIVATION REQUEST-----\n"
local REVOCATION_BEGIN = "-----BEGIN LICENSOR REVOCATION-----\n"
local REVOCATION_END = "-----END LICENSOR REVOCATION-----\n"
local RECEIPT_BEGIN = "-----BEGIN LICENSOR RETURN RECEIPT-----\n"
local RECEIPT_END = "-----END LICENSOR RETURN RECEIPT-----"

-- What the verifier reads (csrc/licensor_verify.h): a license key under
-- 64 bytes, a fingerprint under 256.
local MAX_LICENSE, MAX_FINGERPRINT = 63, 255
-- A return receipt's text, at most (LSRV_RECEIPT_MAX, less its NUL).
local RECEIPT_MAX = 1023

local function literal(text)
  return (text:gsub("%p", "%%%0"))
end

-- Key files are a few lines: one certificate's worth of bytes at most.
local function read_file(path)
  return files.read(path, "key file", constants.MAX_CERTIFICATE_BYTES)
end

------------------------------------------------------------------------
-- Signing keys
------------------------------------------------------------------------

local function public_text(public, id)
  return "licensor-public-key 1\nid: " .. id .. "\nkey: " .. public .. "\n"
end

-- new_key_files(path) -> public key text, key id; or nil, message, code
-- ("exists", "io_error").  Writes path (the private key, mode 0600) and
-- path.pub (0644; the umask may narrow both) through licensor.files: never
-- over an existing file or through a symlink, and never one without the
-- other (a path.pub that cannot be written takes path away again).
function _M.new_key_files(path)
  local secret, public, id = core.new_signing_key()
  local key = "licensor-signing-key 1\nid: " .. id .. "\nsecret: " .. secret .. "\n"
  local ok, msg, code = files.write(path, key, { mode = constants.PRIVATE_MODE, what = "signing key" })
  if not ok then return nil, msg, code end
  local pub = public_text(public, id)
  ok, msg, code = files.write(path .. ".pub", pub, { mode = 420, what = "public key" })   -- 0644
  if not ok then
    os.remove(path)
    return nil, msg, code
  end
  return pub, id
end

-- read_signing_key(path) -> {secret=, public=, id=, public_text=}
function _M.read_signing_key(path)
  local text, msg, code = read_file(path)
  if not text then return nil, msg, code end
  local secret = text:match("^licensor%-signing%-key 1\nid: %x+\nsecret: ([%w%+/=]+)\n")
  if not secret then return nil, path .. ": not a licensor signing key file", "invalid_key_file" end
  local public, id = core.signing_key_public(secret)
  if not public then return nil, path .. ": " .. id, "invalid_key_file" end
  return { secret = secret, public = public, id = id, public_text = public_text(public, id) }
end

-- read_public_key(path) -> the public key text (checked when verifying)
function _M.read_public_key(path)
  local text, msg, code = read_file(path)
  if not text then return nil, msg, code end
  if not text:find("^licensor%-public%-key 1\n") then
    return nil, path .. ": not a licensor public key file", "invalid_key_file"
  end
  return text
end

------------------------------------------------------------------------
-- Fingerprints
------------------------------------------------------------------------

-- The components of a fingerprint (csrc/lsrv_machine.c), in the order
-- lsrv_fingerprint writes them; a match needs a strong one.
local COMPONENTS = { "mid", "uuid", "mac", "disk", "host" }
local STRONG = { mid = true, uuid = true }
local KNOWN = {}
for _, name in ipairs(COMPONENTS) do KNOWN[name] = true end
-- A recorded fingerprint names at least this many components.
local MIN_COMPONENTS = 3
_M.FINGERPRINT_COMPONENTS, _M.STRONG_COMPONENTS, _M.MIN_COMPONENTS = COMPONENTS, STRONG, MIN_COMPONENTS

-- "v1:name=hex,..." -> {name = hex}, count; or nil, what is wrong.  Known
-- names only, each at most once, 16 lowercase hex digits each.
local function components(fp)
  if type(fp) ~= "string" then return nil, "a fingerprint is a string" end
  if #fp > MAX_FINGERPRINT then return nil, "longer than " .. MAX_FINGERPRINT .. " bytes" end
  if fp:sub(1, 3) ~= "v1:" then return nil, "does not begin with v1:" end
  local found, n = {}, 0
  for part in (fp:sub(4) .. ","):gmatch("([^,]*),") do
    n = n + 1
    local name, hash = part:match("^(%l+)=(.*)$")
    if not name then return nil, "component " .. n .. " is not name=hash" end
    if not KNOWN[name] then
      return nil, "component " .. n .. " has an unknown name (mid, uuid, mac, disk, host)"
    end
    if found[name] then return nil, name .. " appears twice" end
    if #hash ~= 16 or hash:find("[^0-9a-f]") then
      return nil, "the hash of " .. name .. " is not 16 hex digits"
    end
    found[name] = hash
  end
  return found, n
end

-- valid_fingerprint(fp) -> true, or false, message: may the store record
-- fp?  "v1:name=hex,..." as lsrv_fingerprint writes it, with at least
-- three components, one of them strong (mid: machine-id, uuid: DMI
-- product UUID).  (A fingerprint only compared, never recorded, needs
-- none of this: lsrv_fingerprint_match answers for it.)
function _M.valid_fingerprint(fp)
  local found, n = components(fp)
  if not found then return false, "fingerprint: " .. n end
  if n < MIN_COMPONENTS then
    return false, "fingerprint: " .. n .. " component" .. (n == 1 and "" or "s") .. ", at least " ..
      MIN_COMPONENTS .. " are needed"
  end
  if not (found.mid or found.uuid) then return false, "fingerprint: neither mid nor uuid (one is needed)" end
  return true
end

-- fingerprint_changes(a, b) -> how many components differ between two
-- fingerprints (one present in only one of them counts as a change), or
-- nil, message, "invalid_request".
function _M.fingerprint_changes(a, b)
  local ca, why_a = components(a)
  if not ca then return nil, "fingerprint: " .. why_a, "invalid_request" end
  local cb, why_b = components(b)
  if not cb then return nil, "fingerprint: " .. why_b, "invalid_request" end
  local changes = 0
  for _, name in ipairs(COMPONENTS) do
    if ca[name] ~= cb[name] then changes = changes + 1 end
  end
  return changes
end

------------------------------------------------------------------------
-- Certificates
------------------------------------------------------------------------

local FIELDS = { "format", "signer", "license", "server", "product", "edition", "level", "kind", "start",
                 "ms_expires", "ends", "version_lock", "failover", "addons", "newest_major",
                 "lock_first_release", "fingerprint", "match", "issued", "refresh_by", "grace_days" }
-- Format 2: format 1's fields, then the build cap (the build a policy's
-- eligible hook answered on the issue day: the verifier's
-- lsrv_may_run_build honours it).  A certificate without a cap
-- stays format 1, byte for byte.
local FIELDS_2 = {}
for i, name in ipairs(FIELDS) do FIELDS_2[i] = name end
FIELDS_2[#FIELDS_2 + 1] = "build_cap"
FIELDS_2[#FIELDS_2 + 1] = "build_cap_released"
_M.FIELDS, _M.FIELDS_2 = FIELDS, FIELDS_2

-- What the verifier reads (csrc/licensor_verify.h): at most 32 add-ons,
-- each name under 128 bytes.
local MAX_ADDONS, MAX_ADDON_NAME = 32, 127

local function addons_value(addons)
  local names = {}
  for name in pairs(addons or {}) do
    if #name > MAX_ADDON_NAME then
      failure.raise("certificate_too_large", "add-on " .. name .. ": names of 127 bytes at most")
    end
    names[#names + 1] = name
  end
  if #names > MAX_ADDONS then
    failure.raise("certificate_too_large", "32 add-ons at most in a certificate; the license owns " .. #names)
  end
  if #names == 0 then return "-" end
  sort(names)
  for i, name in ipairs(names) do names[i] = name .. "=" .. addons[name] end
  return concat(names, ",")
end

-- A build cap: a build number of at most 15 digits (the verifier's
-- counts) and its release day.
local function check_build_cap(fields)
  local cap, released = fields.build_cap, fields.build_cap_released
  if not (type(cap) == "number" and cap >= 1 and cap % 1 == 0 and cap < 1e15) then
    failure.raise("invalid_license", "certificate field build_cap must be a build number, not " ..
      tostring(cap))
  end
  if type(released) ~= "string" or not released:find("^%d%d%d%d%-%d%d%-%d%d$") then
    failure.raise("invalid_license", "certificate field build_cap_released must be a day YYYY-MM-DD, not " ..
      tostring(released))
  end
end

-- text(fields, signing_key) -> the signed certificate text.  fields: the
-- names of FIELDS (nil for "-"; failover a boolean; addons a table), and
-- build_cap (a build number) with build_cap_released (its release day)
-- for a format-2 certificate.
function _M.text(fields, key)
  local lines = { BEGIN }
  local names, version = FIELDS, 1
  if fields.build_cap ~= nil then
    check_build_cap(fields)
    names, version = FIELDS_2, 2
  end
  for _, name in ipairs(names) do
    local v = fields[name]
    if name == "signer" then v = key.id
    elseif name == "format" then v = version
    elseif name == "failover" then v = v and "yes" or "no"
    elseif name == "addons" then v = addons_value(v)
    elseif name == "build_cap" then v = format("%d", v)
    elseif v == nil then v = "-" end
    v = tostring(v)
    if v == "" or v:find("[%c]") then
      failure.raise("invalid_license", "certificate field " .. name .. " is empty or holds control bytes")
    end
    lines[#lines + 1] = name .. ": " .. v .. "\n"
  end
  local body = concat(lines)
  local text = body .. "signature: " .. failure.try(core.sign(body, key.secret)) .. "\n" .. END
  if #text > _M.MAX_BYTES then
    failure.raise("certificate_too_large", "the certificate would be " .. #text .. " bytes (at most 4096)")
  end
  return text
end

-- signature_of(text) -> the base64 signature that names a certificate
-- (88 characters), or nil if the text is not one.
function _M.signature_of(text)
  local c = type(text) == "string" and core.read_certificate(text)
  return c and c.signature or nil
end

------------------------------------------------------------------------
-- Revocation notices
------------------------------------------------------------------------

local REASONS = { disabled = true, deactivated = true, forced = true }
local TIME = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"

-- revocation_text{license=, server=, fingerprint=, revoked=, reason=},
-- signing_key -> the signed notice that revokes every certificate of
-- that license and server issued at or before `revoked`
-- ("YYYY-MM-DDTHH:MM:SSZ"); reason "disabled", "deactivated" or "forced".
function _M.revocation_text(r, key)
  local function bad(what) failure.raise("invalid_request", "revocation notice: " .. what) end
  for _, name in ipairs({ "license", "server", "fingerprint", "revoked", "reason" }) do
    local v = r[name]
    if type(v) ~= "string" or v == "" or v:find("%c") then
      bad(name .. " is missing, empty or holds control bytes")
    end
  end
  if #r.license > MAX_LICENSE then bad("license: longer than " .. MAX_LICENSE .. " bytes") end
  failure.try(core.check_name(r.server, "server"))
  if #r.fingerprint > MAX_FINGERPRINT or r.fingerprint:sub(1, 3) ~= "v1:" then
    bad("fingerprint: not a fingerprint")
  end
  if not r.revoked:find(TIME) then bad("revoked: YYYY-MM-DDTHH:MM:SSZ expected") end
  if not REASONS[r.reason] then bad("reason: disabled, deactivated or forced expected") end
  local body = REVOCATION_BEGIN .. "format: 1\nsigner: " .. key.id .. "\nlicense: " .. r.license ..
    "\nserver: " .. r.server .. "\nfingerprint: " .. r.fingerprint .. "\nrevoked: " .. r.revoked ..
    "\nreason: " .. r.reason .. "\n"
  return body .. "signature: " .. failure.try(core.sign(body, key.secret)) .. "\n" .. REVOCATION_END
end

------------------------------------------------------------------------
-- Return receipts (written by lsrv_return in the product)
------------------------------------------------------------------------

local RECEIPT = "^" .. literal(RECEIPT_BEGIN) .. "format: 1\nlicense: ([^\n]+)\nserver: ([^\n]+)\n" ..
  "fingerprint: ([^\n]+)\ncertificate: ([^\n]+)\n" .. literal(RECEIPT_END) .. "\n?$"

-- read_receipt(text) -> {license=, server=, fingerprint=, certificate=}
-- (certificate: the returned certificate's signature), or nil, message,
-- "invalid_request".  Exactly the lines lsrv_return writes (the newline
-- after the END line is optional).
function _M.read_receipt(text)
  local license, server, fp, signature
  if type(text) == "string" and #text <= RECEIPT_MAX then
    license, server, fp, signature = text:match(RECEIPT)
  end
  if not license then return nil, "not a licensor return receipt", "invalid_request" end
  if #license > MAX_LICENSE or license:find("%c") then
    return nil, "the return receipt's license is malformed", "invalid_request"
  end
  if not core.check_name(server) then
    return nil, "the return receipt's server is malformed", "invalid_request"
  end
  local parsed, why = components(fp)
  if not parsed then return nil, "the return receipt's fingerprint: " .. why, "invalid_request" end
  if #signature ~= 88 or not signature:find("^[%w%+/]+==$") then
    return nil, "the return receipt's certificate is not a signature (88 base64 characters)",
      "invalid_request"
  end
  return { license = license, server = server, fingerprint = fp, certificate = signature }
end

------------------------------------------------------------------------
-- Activation requests (air-gapped servers)
------------------------------------------------------------------------

-- A request's build: a whole number of at most 15 digits (like every
-- count a certificate holds, csrc/lsrv.c; exact in a Lua number).
local MAX_BUILD_DIGITS = 15
_M.MAX_BUILD_DIGITS = MAX_BUILD_DIGITS

-- valid_build(text) -> may a request carry this build (digits only, at
-- most MAX_BUILD_DIGITS of them)?
function _M.valid_build(build)
  return type(build) == "string" and #build <= MAX_BUILD_DIGITS and build:find("^%d+$") ~= nil
end

-- request_text{license=, server=, fingerprint=, build=} -> the text a
-- product writes for its admin to carry to the vendor.
function _M.request_text(r)
  return REQUEST_BEGIN .. "format: 1\nlicense: " .. r.license .. "\nserver: " .. r.server ..
    "\nfingerprint: " .. r.fingerprint .. "\nbuild: " .. tostring(r.build) .. "\n" .. REQUEST_END
end

-- read_request(text) -> {license=, server=, fingerprint=, build=}, or nil,
-- message, "invalid_request"
function _M.read_request(text)
  local license, server, fp, build = tostring(text):match("^" .. literal(REQUEST_BEGIN) ..
    "format: 1\nlicense: ([^\n]+)\nserver: ([^\n]+)\nfingerprint: ([^\n]+)\nbuild: (%d+)\n" ..
    literal(REQUEST_END) .. "$")
  if not license then return nil, "not a licensor activation request", "invalid_request" end
  if not core.check_name(server) then
    return nil, "the activation request holds a malformed server", "invalid_request"
  end
  if not _M.valid_build(build) then
    return nil, "the activation request's build is not a whole number of at most " .. MAX_BUILD_DIGITS ..
      " digits", "invalid_request"
  end
  local ok, why = _M.valid_fingerprint(fp)
  if not ok then return nil, "the activation request's " .. why, "invalid_request" end
  return { license = license, server = server, fingerprint = fp, build = tonumber(build) }
end

return _M
