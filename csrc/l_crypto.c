/*
 * l_crypto.c -- the crypto helpers of licensor.core, all libsodium:
 * Ed25519 signing keys and signatures for the store, HMAC-SHA256 for
 * webhook signatures, SHA-256 digests for the gateway's admin token and
 * of build files (licensor artifacts check), and random hex for claim
 * tokens and secrets.  Verifying certificates is
 * l_certificate.c's (the vendors' verifier), writing key files
 * licensor.files'.
 */
#define _POSIX_C_SOURCE 200809L   /* O_CLOEXEC */
#include "lbind.h"

#include "licensor_verify.h"

#include <sodium.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes read at a time by core.sha256_file. */
#define SHA256_FILE_CHUNK ((size_t)64 << 10)

static void push_base64(lua_State *L, const unsigned char *bin, size_t len)
{
  char b64[sodium_base64_ENCODED_LEN(64, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(b64, sizeof b64, bin, len, sodium_base64_VARIANT_ORIGINAL);
  lua_pushstring(L, b64);
}

static bool from_base64(const char *text, unsigned char *bin, size_t len)
{
  size_t n = 0;
  /* libsodium's decoder must see only the base64 alphabet. */
  return text != NULL && strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") == strlen(text) &&
         sodium_base642bin(bin, len, text, strlen(text), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
         n == len;
}

/* Pushes the key id of a public key: 16 hex digits of its BLAKE2b hash. */
static void push_key_id(lua_State *L, const unsigned char public_key[32])
{
  unsigned char hash[16];
  char hex[LSRV_KEY_ID_LEN + 1];
  crypto_generichash(hash, sizeof hash, public_key, 32, NULL, 0);
  sodium_bin2hex(hex, sizeof hex, hash, LSRV_KEY_ID_LEN / 2);
  lua_pushstring(L, hex);
}

static void check_sodium(lua_State *L)
{
  if (sodium_init() < 0) luaL_error(L, "libsodium could not be initialised");
}

/* core.new_signing_key() -> secret (base64), public (base64), key id */
static int l_new_signing_key(lua_State *L)
{
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  check_sodium(L);
  crypto_sign_keypair(pk, sk);
  push_base64(L, sk, sizeof sk);
  sodium_memzero(sk, sizeof sk);
  push_base64(L, pk, sizeof pk);
  push_key_id(L, pk);
  return 3;
}

/* core.signing_key_public(secret) -> public (base64), key id; or nil,
 * message, "invalid_key_file" */
static int l_signing_key_public(lua_State *L)
{
  unsigned char sk[crypto_sign_SECRETKEYBYTES], pk[crypto_sign_PUBLICKEYBYTES];
  check_sodium(L);
  if (!from_base64(luaL_checkstring(L, 1), sk, sizeof sk))
    return lb_fail(L, "invalid_key_file", "not a licensor signing key");
  crypto_sign_ed25519_sk_to_pk(pk, sk);
  sodium_memzero(sk, sizeof sk);
  push_base64(L, pk, sizeof pk);
  push_key_id(L, pk);
  return 2;
}

/* core.sign(text, secret) -> signature (base64) */
static int l_sign(lua_State *L)
{
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  unsigned char sk[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES];
  check_sodium(L);
  if (!from_base64(luaL_checkstring(L, 2), sk, sizeof sk))
    return lb_fail(L, "invalid_key_file", "not a licensor signing key");
  crypto_sign_detached(sig, NULL, (const unsigned char *)text, len, sk);
  sodium_memzero(sk, sizeof sk);
  push_base64(L, sig, sizeof sig);
  return 1;
}


/* core.hmac_sha256(key, message) -> the 32-byte HMAC-SHA256 as 64 hex
 * digits (webhook signatures: the receiver computes the same). */
static int l_hmac_sha256(lua_State *L)
{
  size_t key_len, len;
  const char *key = luaL_checklstring(L, 1, &key_len);
  const char *message = luaL_checklstring(L, 2, &len);
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  char hex[2 * crypto_auth_hmacsha256_BYTES + 1];
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, (const unsigned char *)key, key_len);
  crypto_auth_hmacsha256_update(&state, (const unsigned char *)message, len);
  crypto_auth_hmacsha256_final(&state, mac);
  sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
  lua_pushstring(L, hex);
  return 1;
}

/* core.random_hex(n) -> n random bytes (libsodium's generator) as 2n hex
 * digits: outbox claim tokens, webhook secrets. */
static int l_random_hex(lua_State *L)
{
  unsigned char bytes[64];
  char hex[2 * sizeof bytes + 1];
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1 && n <= (lua_Integer)sizeof bytes, 1, "1 to 64 bytes expected");
  check_sodium(L);
  randombytes_buf(bytes, (size_t)n);
  sodium_bin2hex(hex, sizeof hex, bytes, (size_t)n);
  lua_pushstring(L, hex);
  return 1;
}

/* core.sha256(text) -> the 32-byte SHA-256 digest (raw); core.sha256(text,
 * true) -> as 64 hex digits.  The gateway keeps its admin token this way. */
static int l_sha256(lua_State *L)
{
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  unsigned char digest[crypto_hash_sha256_BYTES];
  check_sodium(L);
  crypto_hash_sha256(digest, (const unsigned char *)text, len);
  if (lua_toboolean(L, 2)) {
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    lua_pushstring(L, hex);
  } else {
    lua_pushlstring(L, (const char *)digest, sizeof digest);
  }
  return 1;
}

/* Hashes the open regular file fd in SHA256_FILE_CHUNK reads into hex;
 * 0, or the errno of the read that failed. */
static int hash_fd(int fd, unsigned char *buf, char hex[2 * crypto_hash_sha256_BYTES + 1], int64_t *size)
{
  crypto_hash_sha256_state state;
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_init(&state);
  *size = 0;
  for (;;) {
    ssize_t n = read(fd, buf, SHA256_FILE_CHUNK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) break;
    crypto_hash_sha256_update(&state, buf, (unsigned long long)n);
    *size += n;
  }
  crypto_hash_sha256_final(&state, digest);
  sodium_bin2hex(hex, 2 * crypto_hash_sha256_BYTES + 1, digest, sizeof digest);
  return 0;
}

/* core.sha256_file(path) -> 64 hex digits, size in bytes; or nil, "path:
 * strerror", "io_error".  Streamed, so a 200 MB build costs 64 KiB of
 * memory.  Only a regular file is read: the open does not wait for a
 * FIFO's writer, and a directory or device is refused. */
static int l_sha256_file(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  char hex[2 * crypto_hash_sha256_BYTES + 1];
  struct stat st;
  int64_t size = 0;
  int fd, err = 0;
  /* The buffer is Lua's: nothing is left to free if a Lua error follows. */
  unsigned char *buf = lsr_newuserdata(L, SHA256_FILE_CHUNK);
  check_sodium(L);
  fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) err = errno;
  else if (fstat(fd, &st) != 0) err = errno;
  else if (!S_ISREG(st.st_mode)) err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
  else err = hash_fd(fd, buf, hex, &size);
  if (fd >= 0) close(fd);
  if (err != 0) {
    lua_pushnil(L);
    if (err == EINVAL) lua_pushfstring(L, "%s: not a regular file", path);
    else lua_pushfstring(L, "%s: %s", path, strerror(err));
    lua_pushliteral(L, "io_error");
    return 3;
  }
  lua_pushstring(L, hex);
  lua_pushinteger(L, (lua_Integer)size);
  return 2;
}

static const luaL_Reg crypto_functions[] = {
  { "new_signing_key", l_new_signing_key },
  { "signing_key_public", l_signing_key_public },
  { "sign", l_sign },
  { "hmac_sha256", l_hmac_sha256 },
  { "sha256", l_sha256 },
  { "sha256_file", l_sha256_file },
  { "random_hex", l_random_hex },
  { NULL, NULL }
};

void lb_open_crypto(lua_State *L, int module, int mt)
{
  lb_setfuncs(L, module, mt, crypto_functions);
}
