/*
 * l_certificate.c -- signed certificates for Lua: the offline verifier
 * (licensor_verify.h) for licensor.verify, revocation_apply,
 * return_certificate, the command line and the specs, so that Lua and the
 * vendor's C product check certificates with the same code.  Certificate
 * and notice texts are written by lua/licensor/certificate.lua; signing
 * keys and signatures are l_crypto.c's.
 */
#define _POSIX_C_SOURCE 200809L   /* gmtime_r */
#include "lbind.h"

#include "licensor_verify.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_TRUSTED 16

static void set_day(lua_State *L, const char *field, int32_t day)
{
  if (day == INT32_MIN) return;
  lb_push_date(L, day);
  lua_setfield(L, -2, field);
}

/* Pushes a certificate's fields as a table. */
static void push_certificate(lua_State *L, const lsrv_certificate *c)
{
  static const char *const kinds[] = { "perpetual", "lease", "trial" };
  static const char *const matches[] = { "most", "all", "any" };
  char issued[32];
  time_t t = (time_t)c->issued;
  struct tm tm;
  lua_createtable(L, 0, 26);
  lua_pushinteger(L, c->format);
  lua_setfield(L, -2, "format");
  lb_set_string(L, "signer", c->signer);
  lb_set_string(L, "license", c->license);
  lb_set_string(L, "server", c->server);
  lb_set_string(L, "product", c->product);
  lb_set_string(L, "edition", c->edition);
  lb_set_string(L, "level", c->level);
  lb_set_string(L, "kind", kinds[c->kind]);
  set_day(L, "start", c->start);
  set_day(L, "ms_expires", c->ms_expires);
  set_day(L, "ends", c->ends);
  if (c->version_lock != 0) {
    lua_pushinteger(L, (lua_Integer)c->version_lock);
    lua_setfield(L, -2, "version_lock");
  }
  lb_set_bool(L, "failover", c->failover);
  lua_createtable(L, 0, c->n_addons);
  for (int i = 0; i < c->n_addons; i++) {
    lb_push_date(L, c->addons[i].paid_through);
    lua_setfield(L, -2, c->addons[i].name);
  }
  lua_setfield(L, -2, "addons");
  lua_pushinteger(L, (lua_Integer)c->newest_major);
  lua_setfield(L, -2, "newest_major");
  set_day(L, "lock_first_release", c->lock_first_release);
  lb_set_string(L, "fingerprint", c->fingerprint);
  lb_set_string(L, "match", matches[c->match]);
  gmtime_r(&t, &tm);
  strftime(issued, sizeof issued, "%Y-%m-%dT%H:%M:%SZ", &tm);
  lb_set_string(L, "issued", issued);
  set_day(L, "refresh_by", c->refresh_by);
  lua_pushinteger(L, c->grace_days);
  lua_setfield(L, -2, "grace_days");
  if (c->build_cap != 0) {
    lua_pushinteger(L, (lua_Integer)c->build_cap);
    lua_setfield(L, -2, "build_cap");
    set_day(L, "build_cap_released", c->build_cap_released);
  }
  lb_set_string(L, "signature", c->signature);
}

/* Reads the trusted public key texts of opts.public_keys (a list). */
static size_t read_trusted(lua_State *L, int opts, lsrv_public_key *keys)
{
  size_t n = 0, len;
  lua_getfield(L, opts, "public_keys");
  if (!lua_istable(L, -1)) luaL_argerror(L, 2, "public_keys: a list of public key texts expected");
  for (int i = 1; n < MAX_TRUSTED; i++) {
    const char *text;
    lsr_rawgeti(L, -1, i);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      break;
    }
    text = lua_tolstring(L, -1, &len);
    if (text == NULL || !lsrv_public_key_parse(text, len, &keys[n]))
      luaL_argerror(L, 2, lua_pushfstring(L, "public_keys[%d] is not a licensor public key", i));
    n++;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return n;
}

/* opts.product: the product id (required: a certificate names its
 * product), left on the stack. */
static const char *check_product(lua_State *L, int opts)
{
  const char *product;
  lua_getfield(L, opts, "product");
  product = lua_tostring(L, -1);
  if (product == NULL) luaL_argerror(L, 2, "product: the product id expected");
  return product;
}

/* opts[field] as a string, or NULL.  The value stays on the stack (a
 * number converted to a string is only referenced there). */
static const char *opt_string(lua_State *L, int opts, const char *field)
{
  lua_getfield(L, opts, field);
  return lua_tostring(L, -1);
}

/* opts.fingerprint, the machine a certificate is checked on: a string as
 * given; nil: this machine's (lsrv_fingerprint into buf; "v1:", matching
 * no certificate, when none can be read); false: NULL (no machine check,
 * the state bound to the certificate's own fingerprint).  A string stays
 * on the stack. */
static const char *opt_fingerprint(lua_State *L, int opts, char buf[LSRV_FINGERPRINT_MAX])
{
  lua_getfield(L, opts, "fingerprint");
  if (lua_isnil(L, -1)) {
    if (lsrv_fingerprint(buf, LSRV_FINGERPRINT_MAX) == 0) snprintf(buf, LSRV_FINGERPRINT_MAX, "v1:");
    return buf;
  }
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) return NULL;
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_argerror(L, 2, "fingerprint: a fingerprint, nil (this machine's) or false (no machine check) expected");
  return lua_tostring(L, -1);
}

/* Binds state to the certificate text and fingerprint and loads path into
 * it; a missing file is a new state when `missing_ok`. */
static lsrv_state_status load_state(const char *path, const char *cert, size_t len, const char *fingerprint,
                                    bool missing_ok, lsrv_state *state)
{
  lsrv_state_status status;
  if (!lsrv_state_bind(state, cert, len, fingerprint)) return LSRV_STATE_UNBOUND;
  status = lsrv_state_load(path, state);
  return status == LSRV_STATE_MISSING && missing_ok ? LSRV_STATE_OK : status;
}

/* core.verify(text, {public_keys={...}, product=, fingerprint=, now=,
 * state=, new_state=}) -> {verdict=, grace_days_left=, reason=,
 * certificate=} where verdict is a name of lsrv_verdict_name, or of the
 * state file's trouble ("state_missing", "state_corrupt",
 * "state_unwritable").  fingerprint: the machine checked, this machine's
 * when nil (none readable: wrong_machine), no machine check only when
 * false.  The state file is bound to the certificate's license and server
 * and to that fingerprint (with false, the certificate's own), and written
 * when its mark moved. */
static int l_verify(lua_State *L)
{
  lsrv_public_key keys[MAX_TRUSTED];
  lsrv_result result;
  lsrv_state state;
  lsrv_state_status status = LSRV_STATE_OK;
  size_t len, n_keys;
  char machine[LSRV_FINGERPRINT_MAX];
  const char *text = luaL_checklstring(L, 1, &len), *fingerprint, *state_path, *product;
  long long now = (long long)time(NULL);
  bool with_state;
  int64_t mark;
  lb_check_table(L, 2, "options");
  n_keys = read_trusted(L, 2, keys);
  product = check_product(L, 2);
  fingerprint = opt_fingerprint(L, 2, machine);
  lua_getfield(L, 2, "now");
  if (!lua_isnil(L, -1) && !lsr_tointeger_exact(L, -1, &now)) luaL_argerror(L, 2, "now: unix seconds expected");
  lua_pop(L, 1);
  state_path = opt_string(L, 2, "state");
  lua_getfield(L, 2, "new_state");
  /* A text that is no certificate binds no state: it is malformed. */
  with_state = state_path != NULL && lsrv_state_bind(&state, text, len, fingerprint);
  if (with_state) status = load_state(state_path, text, len, fingerprint, lua_toboolean(L, -1), &state);
  lua_pop(L, 1);
  lua_createtable(L, 0, 4);
  if (status != LSRV_STATE_OK) {
    lb_set_string(L, "verdict", lsrv_state_status_name(status));
    return 1;
  }
  mark = with_state ? state.mark : 0;
  lsrv_verify(text, len, keys, n_keys, product, fingerprint, (int64_t)now, with_state ? &state : NULL, &result);
  if (with_state && state.mark != mark && (status = lsrv_state_save(state_path, &state)) != LSRV_STATE_OK) {
    lb_set_string(L, "verdict", lsrv_state_status_name(status));
    return 1;
  }
  lb_set_string(L, "verdict", lsrv_verdict_name(result.verdict));
  if (result.verdict == LSRV_GRACE) {
    lua_pushinteger(L, result.grace_days_left);
    lua_setfield(L, -2, "grace_days_left");
  }
  if (result.verdict == LSRV_REVOKED) lb_set_string(L, "reason", state.reason);
  if (result.verdict != LSRV_MALFORMED) {
    push_certificate(L, &result.cert);
    lua_setfield(L, -2, "certificate");
  }
  return 1;
}

/* core.revocation_apply(notice, {public_keys={...}, certificate=,
 * fingerprint=, state=}) -> true, or nil, message, code: checks a signed
 * revocation notice and records it in the state file of that certificate
 * and machine (made if missing; fingerprint as for core.verify: this
 * machine's when nil, the certificate's own when false).  Codes:
 * "malformed", "unknown_signer", "bad_signature", "other_license"
 * (genuine, not this certificate's license and server) and the state
 * file's ("state_corrupt", ...). */
static int l_revocation_apply(lua_State *L)
{
  lsrv_public_key keys[MAX_TRUSTED];
  lsrv_state state;
  lsrv_state_status status;
  lsrv_notice_status notice;
  size_t len, cert_len = 0, n_keys;
  char machine[LSRV_FINGERPRINT_MAX];
  const char *text = luaL_checklstring(L, 1, &len), *cert, *state_path;
  lb_check_table(L, 2, "options");
  n_keys = read_trusted(L, 2, keys);
  lua_getfield(L, 2, "certificate");
  cert = lua_tolstring(L, -1, &cert_len);
  if (cert == NULL) luaL_argerror(L, 2, "certificate: the certificate text expected");
  if ((state_path = opt_string(L, 2, "state")) == NULL) luaL_argerror(L, 2, "state: the state file's path expected");
  if (!lsrv_state_bind(&state, cert, cert_len, opt_fingerprint(L, 2, machine)))
    return lb_fail(L, "malformed", "not a licensor certificate");
  status = lsrv_state_load(state_path, &state);
  if (status != LSRV_STATE_OK && status != LSRV_STATE_MISSING)
    return lb_fail(L, lsrv_state_status_name(status), "%s: the state file cannot be used", state_path);
  notice = lsrv_revocation_apply(text, len, keys, n_keys, &state);
  if (notice != LSRV_NOTICE_APPLIED)
    return lb_fail(L, lsrv_notice_status_name(notice), "the revocation notice is refused: %s",
                   lsrv_notice_status_name(notice));
  if ((status = lsrv_state_save(state_path, &state)) != LSRV_STATE_OK)
    return lb_fail(L, lsrv_state_status_name(status), "%s: the state file cannot be written", state_path);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.return_certificate(path, {public_keys={...}, product=,
 * fingerprint=, state=}) -> the return receipt's text, or nil, message,
 * code: deletes the certificate file and records in its state file (bound
 * as for core.verify: this machine's when nil, the certificate's own when
 * false) that it is returned (lsrv_return).  Nothing is deleted when the
 * state file cannot be written. */
static int l_return_certificate(lua_State *L)
{
  lsrv_public_key keys[MAX_TRUSTED];
  lsrv_state state;
  lsrv_state_status status;
  lsrv_return_status returned;
  lsrv_result result;
  char text[LSRV_CERT_MAX + 1], receipt[LSRV_RECEIPT_MAX], machine[LSRV_FINGERPRINT_MAX];
  const char *path = luaL_checkstring(L, 1), *product, *state_path, *fingerprint;
  size_t len, n_keys;
  FILE *f;
  lb_check_table(L, 2, "options");
  n_keys = read_trusted(L, 2, keys);
  product = check_product(L, 2);
  fingerprint = opt_fingerprint(L, 2, machine);
  if ((state_path = opt_string(L, 2, "state")) == NULL) luaL_argerror(L, 2, "state: the state file's path expected");
  /* The certificate's text binds its state (lsrv_return reads it again,
   * refusing a symlink). */
  if ((f = fopen(path, "rb")) == NULL) return lb_fail(L, "io_error", "%s: %s", path, strerror(errno));
  len = fread(text, 1, sizeof text, f);
  fclose(f);
  status = load_state(state_path, text, len, fingerprint, true, &state);
  if (status == LSRV_STATE_UNBOUND) return lb_fail(L, "malformed", "%s: not a licensor certificate", path);
  /* A certificate lsrv_return would refuse leaves the state alone. */
  switch (lsrv_verify(text, len, keys, n_keys, product, NULL, 0, NULL, &result)) {
  case LSRV_MALFORMED: case LSRV_UNKNOWN_SIGNER: case LSRV_BAD_SIGNATURE: case LSRV_WRONG_PRODUCT:
    return lb_fail(L, lsrv_return_status_name(LSRV_RETURN_REFUSED), "%s: not returned: %s", path,
                   lsrv_verdict_name(result.verdict));
  default:
    break;
  }
  /* Written once before the file goes, so that a state that cannot be
   * written leaves the certificate where it is. */
  if (status == LSRV_STATE_OK) status = lsrv_state_save(state_path, &state);
  if (status != LSRV_STATE_OK)
    return lb_fail(L, lsrv_state_status_name(status), "%s: the state file cannot be used", state_path);
  returned = lsrv_return(path, keys, n_keys, product, &state, receipt, sizeof receipt);
  if (returned != LSRV_RETURNED)
    return lb_fail(L, lsrv_return_status_name(returned), "%s: not returned: %s", path,
                   lsrv_return_status_name(returned));
  if ((status = lsrv_state_save(state_path, &state)) != LSRV_STATE_OK)
    return lb_fail(L, lsrv_state_status_name(status), "%s: returned, but the state file cannot be written",
                   state_path);
  lua_pushstring(L, receipt);
  return 1;
}

/* core.read_certificate(text) -> fields, or nil, message, "malformed"
 * (no signature check: for tools and specs). */
static int l_read_certificate(lua_State *L)
{
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  lsrv_certificate c;
  if (lsrv_read(text, len, &c) != LSRV_VALID) return lb_fail(L, "malformed", "not a licensor certificate");
  push_certificate(L, &c);
  return 1;
}

static int32_t check_day(lua_State *L, int arg)
{
  lsr_day day;
  if (lb_read_date(L, arg, &day) != LB_DATE_OK) luaL_argerror(L, arg, "date YYYY-MM-DD expected");
  return day;
}

/* core.may_run(text, released, major, day) -> may a build released on
 * `released`, of `major`, run on `day` (R3-R7 offline)?  The text is read,
 * not verified: verify it first. */
static int l_may_run(lua_State *L)
{
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  int32_t released = check_day(L, 2), day = check_day(L, 4);
  long long major = 0;
  lsrv_certificate c;
  if (!lsr_tointeger_exact(L, 3, &major)) luaL_argerror(L, 3, "major version number expected");
  if (lsrv_read(text, len, &c) != LSRV_VALID) return lb_fail(L, "malformed", "not a licensor certificate");
  lua_pushboolean(L, lsrv_may_run(&c, released, (int64_t)major, day));
  return 1;
}

/* core.may_run_build(text, number, released, major, day) -> may build
 * `number`, released on `released`, of `major`, run on `day` (R3-R7
 * offline, with a format-2 certificate's build cap)?  Read, not verified:
 * verify it first. */
static int l_may_run_build(lua_State *L)
{
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  int32_t released = check_day(L, 3), day = check_day(L, 5);
  long long number = 0, major = 0;
  lsrv_certificate c;
  if (!lsr_tointeger_exact(L, 2, &number)) luaL_argerror(L, 2, "build number expected");
  if (!lsr_tointeger_exact(L, 4, &major)) luaL_argerror(L, 4, "major version number expected");
  if (lsrv_read(text, len, &c) != LSRV_VALID) return lb_fail(L, "malformed", "not a licensor certificate");
  lua_pushboolean(L, lsrv_may_run_build(&c, (int64_t)number, released, (int64_t)major, day));
  return 1;
}

/* core.addon_active(text, addon, installed_major, day) -> does the named
 * add-on work on `day` with the installed build's major (R8 offline)?  The
 * text is read, not verified: verify it first. */
static int l_addon_active(lua_State *L)
{
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len), *addon = luaL_checkstring(L, 2);
  int32_t day = check_day(L, 4);
  long long major = 0;
  lsrv_certificate c;
  if (!lsr_tointeger_exact(L, 3, &major)) luaL_argerror(L, 3, "major version number expected");
  if (lsrv_read(text, len, &c) != LSRV_VALID) return lb_fail(L, "malformed", "not a licensor certificate");
  lua_pushboolean(L, lsrv_addon_active(&c, addon, (int64_t)major, day));
  return 1;
}

/* core.fingerprint_explain() -> a list of {name=, strong=, found=, source=,
 * hash=} for each source of this machine's fingerprint (hashes only). */
static int l_fingerprint_explain(lua_State *L)
{
  lsrv_component c[LSRV_COMPONENTS];
  (void)lsrv_fingerprint_explain(c);
  lua_createtable(L, LSRV_COMPONENTS, 0);
  for (int i = 0; i < LSRV_COMPONENTS; i++) {
    lua_createtable(L, 0, 5);
    lb_set_string(L, "name", c[i].name);
    lb_set_bool(L, "strong", c[i].strong);
    lb_set_bool(L, "found", c[i].found);
    lb_set_string(L, "source", c[i].source);
    if (c[i].found) lb_set_string(L, "hash", c[i].hash);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* core.fingerprint() -> this machine's fingerprint, or nil, message, code */
static int l_fingerprint(lua_State *L)
{
  char fp[LSRV_FINGERPRINT_MAX];
  if (lsrv_fingerprint(fp, sizeof fp) == 0)
    return lb_fail(L, "no_fingerprint", "no stable machine identity could be read here");
  lua_pushstring(L, fp);
  return 1;
}

/* core.fingerprint_match(expected, seen [, "most"|"all"|"any"]) -> bool */
static int l_fingerprint_match(lua_State *L)
{
  int policy = LSR_MATCH_MOST;
  const char *expected = luaL_checkstring(L, 1), *seen = luaL_checkstring(L, 2);
  if (!lua_isnoneornil(L, 3) && !lb_read_match(luaL_checkstring(L, 3), &policy))
    luaL_argerror(L, 3, "\"most\", \"all\" or \"any\" expected");
  lua_pushboolean(L, lsrv_fingerprint_match(expected, seen,
                                            policy == LSR_MATCH_ALL ? LSRV_MATCH_ALL
                                            : policy == LSR_MATCH_ANY ? LSRV_MATCH_ANY : LSRV_MATCH_MOST));
  return 1;
}

static const luaL_Reg certificate_functions[] = {
  { "verify", l_verify },
  { "revocation_apply", l_revocation_apply },
  { "return_certificate", l_return_certificate },
  { "read_certificate", l_read_certificate },
  { "may_run", l_may_run },
  { "may_run_build", l_may_run_build },
  { "addon_active", l_addon_active },
  { "fingerprint", l_fingerprint },
  { "fingerprint_explain", l_fingerprint_explain },
  { "fingerprint_match", l_fingerprint_match },
  { NULL, NULL }
};

void lb_open_certificate(lua_State *L, int module, int mt)
{
  lb_setfuncs(L, module, mt, certificate_functions);
  /* core.MAX_CERTIFICATE_BYTES: the verifier's limit (LSRV_CERT_MAX), which
   * lua/licensor/constants.lua repeats (checked by spec/constants_spec.lua). */
  lua_pushinteger(L, LSRV_CERT_MAX);
  lua_setfield(L, module, "MAX_CERTIFICATE_BYTES");
}
