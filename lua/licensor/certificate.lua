-- licensor.certificate -- the texts of offline licensing: signing key
-- files, certificates (format 1, see csrc/licensor_verify.h) and the
-- activation requests of air-gapped servers.  Signing and verifying are
-- C (libsodium, and the same verifier vendors link into their products).
local core = require "licensor.core"
local failure = require "licensor.failure"

local type, tostring, ipairs, pairs = type, tostring, ipairs, pairs
local concat, sort = table.concat, table.sort
local open = io.open

local _M = {}

_M.MAX_BYTES = 4096
local BEGIN = "-----BEGIN LICENSOR CERTIFICATE-----\n"
local END = "-----END LICENSOR CERTIFICATE-----\n"
local REQUEST_BEGIN = "-----BEGIN LICENSOR ACTIVATION REQUEST-----\n"
local REQUEST_END = "-----END LICENSOR ACTIVATION REQUEST-----\n"

local function read_file(path)
  local f, err = open(path, "rb")
  if not f then return nil, tostring(err), "io_error" end
  local text = f:read(65536) or ""
  f:close()
  return text
end

------------------------------------------------------------------------
-- Signing keys
------------------------------------------------------------------------

local function public_text(public, id)
  return "licensor-public-key 1\nid: " .. id .. "\nkey: " .. public .. "\n"
end

-- new_key_files(path) -> public key text, key id; writes path (the
-- private key, mode 0600, never over an existing file) and path.pub.
function _M.new_key_files(path)
  local secret, public, id = core.new_signing_key()
  local ok, msg, code = core.write_private_file(path, "licensor-signing-key 1\nid: " .. id ..
    "\nsecret: " .. secret .. "\n")
  if not ok then return nil, msg, code end
  local pub = public_text(public, id)
  local f, err = open(path .. ".pub", "wb")
  if not f then return nil, tostring(err), "io_error" end
  f:write(pub)
  f:close()
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

-- "v1:name=hex,name=hex..." as lsrv_fingerprint writes it.
function _M.valid_fingerprint(fp)
  if type(fp) ~= "string" or #fp > 255 or not fp:find("^v1:") then return false end
  local rest = fp:sub(4)
  if rest == "" then return false end
  for part in (rest .. ","):gmatch("([^,]*),") do
    if not part:find("^%l+=%x+$") then return false end
  end
  return true
end

------------------------------------------------------------------------
-- Certificates
------------------------------------------------------------------------

local FIELDS = { "format", "signer", "license", "server", "product", "edition", "level", "kind", "start",
                 "ms_expires", "ends", "version_lock", "failover", "addons", "newest_major",
                 "lock_first_release", "fingerprint", "match", "issued", "refresh_by", "grace_days" }

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

-- text(fields, signing_key) -> the signed certificate text.  fields: the
-- names of FIELDS (nil for "-"; failover a boolean; addons a table).
function _M.text(fields, key)
  local lines = { BEGIN }
  for _, name in ipairs(FIELDS) do
    local v = fields[name]
    if name == "signer" then v = key.id
    elseif name == "format" then v = 1
    elseif name == "failover" then v = v and "yes" or "no"
    elseif name == "addons" then v = addons_value(v)
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

------------------------------------------------------------------------
-- Activation requests (air-gapped servers)
------------------------------------------------------------------------

-- request_text{license=, server=, fingerprint=, build=} -> the text a
-- product writes for its admin to carry to the vendor.
function _M.request_text(r)
  return REQUEST_BEGIN .. "format: 1\nlicense: " .. r.license .. "\nserver: " .. r.server ..
    "\nfingerprint: " .. r.fingerprint .. "\nbuild: " .. tostring(r.build) .. "\n" .. REQUEST_END
end

-- read_request(text) -> {license=, server=, fingerprint=, build=}, or nil,
-- message, "invalid_request"
function _M.read_request(text)
  local license, server, fp, build = tostring(text):match("^" .. REQUEST_BEGIN:gsub("%p", "%%%0") ..
    "format: 1\nlicense: ([^\n]+)\nserver: ([^\n]+)\nfingerprint: ([^\n]+)\nbuild: (%d+)\n" ..
    REQUEST_END:gsub("%p", "%%%0") .. "$")
  if not license then return nil, "not a licensor activation request", "invalid_request" end
  if not core.check_name(server) or not _M.valid_fingerprint(fp) or #build > 15 then
    return nil, "the activation request holds a malformed server, fingerprint or build", "invalid_request"
  end
  return { license = license, server = server, fingerprint = fp, build = tonumber(build) }
end

return _M
