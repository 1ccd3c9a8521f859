/*
 * lsrv.c -- certificates for the offline verifier (licensor_verify.h):
 * the strict reader of formats 1 and 2 (certificates) and of revocation
 * notices,
 * the signature check, revocations in the state, and the offline rules
 * (R3-R8) over a verified certificate.  Every read stays inside the given
 * bytes; nothing is allocated; no state outlives a call.  Files (the
 * state, returns) are lsrv_machine.c's.
 */
#include "licensor_verify.h"

#include "date.h"

#include <sodium.h>

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define NO_DAY INT32_MIN

/* Version 2.0 put level (char[32]) at byte 865 of the struct and kind at
 * 900, after 3 bytes of padding; 2.1 keeps the build cap in what was the
 * tail of level, and the library's ABI holds only while kind (and so
 * every field after it) stays where 2.0 put it.  A negative array size
 * stops the build if it ever moves. */
typedef char layout_kept_from_2_0[offsetof(lsrv_certificate, level) == 865 &&
                                  offsetof(lsrv_certificate, kind) == 900 ? 1 : -1];

/* The fields of format 2, in their one order; format 1's are the same
 * without the last two. */
enum {
  F_FORMAT, F_SIGNER, F_LICENSE, F_SERVER, F_PRODUCT, F_EDITION, F_LEVEL, F_KIND, F_START,
  F_MS_EXPIRES, F_ENDS, F_VERSION_LOCK, F_FAILOVER, F_ADDONS, F_NEWEST_MAJOR, F_LOCK_FIRST_RELEASE,
  F_FINGERPRINT, F_MATCH, F_ISSUED, F_REFRESH_BY, F_GRACE_DAYS, F_BUILD_CAP, F_BUILD_CAP_RELEASED, F_COUNT
};
#define F_COUNT_1 F_BUILD_CAP

static const char *const field_names[F_COUNT] = {
  "format", "signer", "license", "server", "product", "edition", "level", "kind", "start",
  "ms_expires", "ends", "version_lock", "failover", "addons", "newest_major", "lock_first_release",
  "fingerprint", "match", "issued", "refresh_by", "grace_days", "build_cap", "build_cap_released"
};

/* The fields of a revocation notice, in their one order. */
enum { N_FORMAT, N_SIGNER, N_LICENSE, N_SERVER, N_FINGERPRINT, N_REVOKED, N_REASON, N_COUNT };

static const char *const notice_names[N_COUNT] = {
  "format", "signer", "license", "server", "fingerprint", "revoked", "reason"
};

/* A signed text block: its BEGIN line (with the newline), END line
 * (without: the newline after it is optional), fields in order, and the
 * one field (or -1) whose value may be as long as the whole block. */
typedef struct {
  const char *begin, *end;
  const char *const *names;
  int n_fields;
  int long_field;
} block_form;

#define CERTIFICATE_BEGIN "-----BEGIN LICENSOR CERTIFICATE-----\n"
#define CERTIFICATE_END "-----END LICENSOR CERTIFICATE-----"

static const block_form certificate_form_1 = {
  CERTIFICATE_BEGIN, CERTIFICATE_END, field_names, F_COUNT_1, F_ADDONS
};

static const block_form certificate_form_2 = {
  CERTIFICATE_BEGIN, CERTIFICATE_END, field_names, F_COUNT, F_ADDONS
};

static const block_form notice_form = {
  "-----BEGIN LICENSOR REVOCATION-----\n", "-----END LICENSOR REVOCATION-----", notice_names, N_COUNT, -1
};

/* A value as it stands in the text: pointer and length (no NUL). */
typedef struct {
  const char *s;
  size_t len;
} span;

static bool equals(span v, const char *word)
{
  return v.len == strlen(word) && memcmp(v.s, word, v.len) == 0;
}

/* Copies v into buf (size bytes) with a NUL; false if it does not fit. */
static bool copy_value(span v, char *buf, size_t size)
{
  if (v.len >= size) return false;
  memcpy(buf, v.s, v.len);
  buf[v.len] = '\0';
  return true;
}

/* A whole number of at most 15 digits (no sign). */
static bool read_count(span v, int64_t *out)
{
  int64_t n = 0;
  if (v.len == 0 || v.len > 15) return false;
  for (size_t i = 0; i < v.len; i++) {
    if (v.s[i] < '0' || v.s[i] > '9') return false;
    n = n * 10 + (v.s[i] - '0');
  }
  *out = n;
  return true;
}

/* A date, or "-" for none. */
static bool read_day(span v, bool optional, int32_t *out)
{
  lsr_day day;
  if (optional && equals(v, "-")) {
    *out = NO_DAY;
    return true;
  }
  if (!lsr_date_parse(v.s, v.len, &day)) return false;
  *out = day;
  return true;
}

/* "2026-11-28T05:30:00Z" as unix seconds. */
static bool read_time(span v, int64_t *out)
{
  lsr_day day;
  int64_t h, m, s;
  span hh = { v.s + 11, 2 }, mm = { v.s + 14, 2 }, ss = { v.s + 17, 2 };
  if (v.len != 20 || v.s[10] != 'T' || v.s[13] != ':' || v.s[16] != ':' || v.s[19] != 'Z') return false;
  if (!lsr_date_parse(v.s, 10, &day) || !read_count(hh, &h) || !read_count(mm, &m) || !read_count(ss, &s) ||
      h > 23 || m > 59 || s > 59)
    return false;
  *out = (int64_t)day * 86400 + h * 3600 + m * 60 + s;
  return true;
}

/* Only the base64 alphabet: libsodium's decoder must never see other
 * bytes (some of which it would read as base64 characters). */
static bool base64_text(span v)
{
  for (size_t i = 0; i < v.len; i++) {
    char c = v.s[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
          c == '='))
      return false;
  }
  return true;
}

/* Bytes a value may hold: no control characters, no leading space. */
static bool clean(span v)
{
  if (v.len == 0 || v.s[0] == ' ') return false;
  for (size_t i = 0; i < v.len; i++) {
    unsigned char c = (unsigned char)v.s[i];
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

/* "eas=2019-12-06,message_sniffer=2019-12-06", or "-". */
static bool read_addons(span v, lsrv_certificate *c)
{
  const char *p = v.s, *end = v.s + v.len;
  c->n_addons = 0;
  if (equals(v, "-")) return true;
  while (p < end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *item_end = comma != NULL ? comma : end;
    const char *eq = memchr(p, '=', (size_t)(item_end - p));
    span name, day;
    lsrv_addon *a;
    if (eq == NULL || c->n_addons == LSRV_MAX_ADDONS) return false;
    name.s = p;
    name.len = (size_t)(eq - p);
    day.s = eq + 1;
    day.len = (size_t)(item_end - eq - 1);
    a = &c->addons[c->n_addons++];
    if (name.len == 0 || !copy_value(name, a->name, sizeof a->name) || !read_day(day, false, &a->paid_through))
      return false;
    if (comma == NULL) break;
    p = comma + 1;
    if (p == end) return false;
  }
  return true;
}

static bool read_level(span v, lsrv_certificate *c)
{
  int64_t n;
  if (!equals(v, "unlimited") && (!read_count(v, &n) || n < 1)) return false;
  return copy_value(v, c->level, sizeof c->level);
}

/* Format 2's build cap: a build number and its release day, both "-" or
 * neither. */
static bool read_build_cap(span number, span released, lsrv_certificate *c)
{
  c->build_cap = 0;
  c->build_cap_released = NO_DAY;
  if (equals(number, "-")) return equals(released, "-");
  return read_count(number, &c->build_cap) && c->build_cap >= 1 &&
         read_day(released, false, &c->build_cap_released);
}

/* Fills c from the values of the fields; false if any is malformed. */
static bool read_fields(const span *f, lsrv_certificate *c)
{
  int64_t n;
  if (equals(f[F_FORMAT], "1")) c->format = 1;
  else if (equals(f[F_FORMAT], "2")) c->format = 2;
  else return false;
  memset(c->reserved, 0, sizeof c->reserved);
  if (c->format == 1) {
    c->build_cap = 0;
    c->build_cap_released = NO_DAY;
  } else if (!read_build_cap(f[F_BUILD_CAP], f[F_BUILD_CAP_RELEASED], c)) {
    return false;
  }
  if (f[F_SIGNER].len != LSRV_KEY_ID_LEN || !copy_value(f[F_SIGNER], c->signer, sizeof c->signer) ||
      !copy_value(f[F_LICENSE], c->license, sizeof c->license) ||
      !copy_value(f[F_SERVER], c->server, sizeof c->server) ||
      !copy_value(f[F_PRODUCT], c->product, sizeof c->product) ||
      !copy_value(f[F_EDITION], c->edition, sizeof c->edition) || !read_level(f[F_LEVEL], c))
    return false;
  if (equals(f[F_KIND], "perpetual")) c->kind = LSRV_PERPETUAL;
  else if (equals(f[F_KIND], "lease")) c->kind = LSRV_LEASE;
  else if (equals(f[F_KIND], "trial")) c->kind = LSRV_TRIAL;
  else return false;
  if (!read_day(f[F_START], false, &c->start) || !read_day(f[F_MS_EXPIRES], true, &c->ms_expires) ||
      !read_day(f[F_ENDS], true, &c->ends))
    return false;
  c->version_lock = 0;
  if (!equals(f[F_VERSION_LOCK], "-") && (!read_count(f[F_VERSION_LOCK], &c->version_lock) || c->version_lock < 1))
    return false;
  if (equals(f[F_FAILOVER], "yes")) c->failover = true;
  else if (equals(f[F_FAILOVER], "no")) c->failover = false;
  else return false;
  if (!read_addons(f[F_ADDONS], c) || !read_count(f[F_NEWEST_MAJOR], &c->newest_major) ||
      !read_day(f[F_LOCK_FIRST_RELEASE], true, &c->lock_first_release) ||
      !copy_value(f[F_FINGERPRINT], c->fingerprint, sizeof c->fingerprint))
    return false;
  if (equals(f[F_MATCH], "most")) c->match = LSRV_MATCH_MOST;
  else if (equals(f[F_MATCH], "all")) c->match = LSRV_MATCH_ALL;
  else if (equals(f[F_MATCH], "any")) c->match = LSRV_MATCH_ANY;
  else return false;
  if (!read_time(f[F_ISSUED], &c->issued) || !read_day(f[F_REFRESH_BY], false, &c->refresh_by) ||
      !read_count(f[F_GRACE_DAYS], &n) || n > 36500)
    return false;
  c->grace_days = (int)n;
  return true;
}

/* Reads "name: value\n" at *p for the expected name, a value shorter
 * than max bytes. */
static bool read_line(const char **p, const char *end, const char *name, size_t max, span *value)
{
  size_t n = strlen(name);
  const char *nl;
  if ((size_t)(end - *p) < n + 2 || memcmp(*p, name, n) != 0 || (*p)[n] != ':' || (*p)[n + 1] != ' ')
    return false;
  *p += n + 2;
  nl = memchr(*p, '\n', (size_t)(end - *p));
  if (nl == NULL) return false;
  value->s = *p;
  value->len = (size_t)(nl - *p);
  *p = nl + 1;
  return value->len < max && clean(*value);
}

/* Splits a signed block of `form` into its field values, the length of
 * the signed bytes and the signature (as written and decoded). */
static bool parse_block(const char *text, size_t len, const block_form *form, span *fields, size_t *signed_len,
                        span *sig, unsigned char signature[64])
{
  const char *p = text, *end = text + len;
  size_t sig_len = 0, begin_len = strlen(form->begin), end_len = strlen(form->end);
  if (len > LSRV_CERT_MAX || len < begin_len || memcmp(text, form->begin, begin_len) != 0) return false;
  p += begin_len;
  for (int i = 0; i < form->n_fields; i++)
    if (!read_line(&p, end, form->names[i], i == form->long_field ? LSRV_CERT_MAX : LSRV_FIELD_MAX, &fields[i]))
      return false;
  *signed_len = (size_t)(p - text);
  if (!read_line(&p, end, "signature", LSRV_FIELD_MAX, sig) || sig->len != LSRV_SIGNATURE_B64 ||
      !base64_text(*sig) ||
      sodium_base642bin(signature, 64, sig->s, sig->len, NULL, &sig_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      sig_len != 64)
    return false;
  /* The END line, and at most one newline after it: nothing else. */
  if ((size_t)(end - p) < end_len || memcmp(p, form->end, end_len) != 0) return false;
  p += end_len;
  if (p < end && *p == '\n') p++;
  return p == end;
}

/* Parses text into c and finds the signed bytes and the signature.  The
 * format line, first after BEGIN, says which fields follow; read_fields
 * refuses a format it does not know. */
static bool parse(const char *text, size_t len, lsrv_certificate *c, size_t *signed_len,
                  unsigned char signature[64])
{
  static const char format_2[] = CERTIFICATE_BEGIN "format: 2\n";
  span fields[F_COUNT], sig;
  const block_form *form = len >= sizeof format_2 - 1 && memcmp(text, format_2, sizeof format_2 - 1) == 0
                             ? &certificate_form_2 : &certificate_form_1;
  return parse_block(text, len, form, fields, signed_len, &sig, signature) && read_fields(fields, c) &&
         copy_value(sig, c->signature, sizeof c->signature);
}

static const lsrv_public_key *find_key(const lsrv_public_key *keys, size_t n, const char *id)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(keys[i].id, id) == 0) return &keys[i];
  return NULL;
}

/* Does the license run on `day` by its own terms: started, and not past
 * a lease's or trial's end? */
static bool runs_on(const lsrv_certificate *c, int32_t day)
{
  if (day < c->start) return false;
  return c->kind == LSRV_PERPETUAL || c->ends == NO_DAY || day < c->ends;
}

static lsrv_verdict decide(lsrv_result *out, lsrv_verdict verdict)
{
  out->verdict = verdict;
  return verdict;
}

/* Does the state hold a revocation (or a return) covering c? */
static bool revoked(const lsrv_state *state, const lsrv_certificate *c)
{
  return state != NULL && state->bound && state->revoked != LSRV_NOT_REVOKED && c->issued <= state->revoked &&
         strcmp(state->license, c->license) == 0 && strcmp(state->server, c->server) == 0;
}

lsrv_verdict lsrv_verify(const char *text, size_t len, const lsrv_public_key *keys, size_t n_keys,
                         const char *product, const char *fingerprint, int64_t now, lsrv_state *state,
                         lsrv_result *out)
{
  const lsrv_public_key *key;
  unsigned char signature[64];
  size_t signed_len = 0;
  int32_t today;
  lsrv_certificate *c = &out->cert;
  out->grace_days_left = 0;
  if (text == NULL || !parse(text, len, c, &signed_len, signature)) return decide(out, LSRV_MALFORMED);
  if ((key = find_key(keys, n_keys, c->signer)) == NULL) return decide(out, LSRV_UNKNOWN_SIGNER);
  if (sodium_init() < 0 ||
      crypto_sign_verify_detached(signature, (const unsigned char *)text, signed_len, key->key) != 0)
    return decide(out, LSRV_BAD_SIGNATURE);
  if (product == NULL || strcmp(product, c->product) != 0) return decide(out, LSRV_WRONG_PRODUCT);
  if (fingerprint != NULL && !lsrv_fingerprint_match(c->fingerprint, fingerprint, c->match))
    return decide(out, LSRV_WRONG_MACHINE);
  if (revoked(state, c)) return decide(out, LSRV_REVOKED);
  if (now + LSRV_CLOCK_TOLERANCE < c->issued || (state != NULL && now + LSRV_CLOCK_TOLERANCE < state->mark))
    return decide(out, LSRV_CLOCK_ROLLBACK);
  if (state != NULL && now > state->mark) state->mark = now;
  today = (int32_t)(now >= 0 ? now / 86400 : (now - 86399) / 86400);
  if (today < c->start) return decide(out, LSRV_NOT_STARTED);
  if (!runs_on(c, today) || today > c->refresh_by + c->grace_days) return decide(out, LSRV_EXPIRED);
  if (today > c->refresh_by) {
    out->grace_days_left = c->refresh_by + c->grace_days - today;
    return decide(out, LSRV_GRACE);
  }
  return decide(out, LSRV_VALID);
}

lsrv_notice_status lsrv_revocation_apply(const char *text, size_t len, const lsrv_public_key *keys,
                                         size_t n_keys, lsrv_state *state)
{
  span f[N_COUNT], sig;
  unsigned char signature[64];
  size_t signed_len = 0;
  char signer[LSRV_KEY_ID_LEN + 1], license[LSRV_LICENSE_MAX], server[LSRV_FIELD_MAX];
  int64_t at;
  const lsrv_public_key *key;
  if (text == NULL || !parse_block(text, len, &notice_form, f, &signed_len, &sig, signature) ||
      !equals(f[N_FORMAT], "1") || f[N_SIGNER].len != LSRV_KEY_ID_LEN ||
      !copy_value(f[N_SIGNER], signer, sizeof signer) || !copy_value(f[N_LICENSE], license, sizeof license) ||
      !copy_value(f[N_SERVER], server, sizeof server) || f[N_FINGERPRINT].len >= LSRV_FINGERPRINT_MAX ||
      !read_time(f[N_REVOKED], &at) ||
      !(equals(f[N_REASON], "disabled") || equals(f[N_REASON], "deactivated") || equals(f[N_REASON], "forced")))
    return LSRV_NOTICE_MALFORMED;
  if ((key = find_key(keys, n_keys, signer)) == NULL) return LSRV_NOTICE_UNKNOWN_SIGNER;
  if (sodium_init() < 0 ||
      crypto_sign_verify_detached(signature, (const unsigned char *)text, signed_len, key->key) != 0)
    return LSRV_NOTICE_BAD_SIGNATURE;
  if (state == NULL || !state->bound || strcmp(state->license, license) != 0 || strcmp(state->server, server) != 0)
    return LSRV_NOTICE_OTHER_LICENSE;
  /* The latest notice wins; an earlier one never shortens what is revoked. */
  if (state->revoked == LSRV_NOT_REVOKED || at >= state->revoked) {
    state->revoked = at;
    (void)copy_value(f[N_REASON], state->reason, sizeof state->reason);
  }
  return LSRV_NOTICE_APPLIED;
}

const char *lsrv_notice_status_name(lsrv_notice_status status)
{
  static const char *const names[] = { "applied", "malformed", "unknown_signer", "bad_signature", "other_license" };
  return (unsigned)status < sizeof names / sizeof *names ? names[status] : "malformed";
}

lsrv_verdict lsrv_read(const char *text, size_t len, lsrv_certificate *out)
{
  unsigned char signature[64];
  size_t signed_len = 0;
  return text != NULL && parse(text, len, out, &signed_len, signature) ? LSRV_VALID : LSRV_MALFORMED;
}

const char *lsrv_verdict_name(lsrv_verdict verdict)
{
  static const char *const names[] = {
    "valid", "grace", "expired", "bad_signature", "unknown_signer", "wrong_machine",
    "clock_rollback", "malformed", "not_started", "wrong_product", "revoked"
  };
  return (unsigned)verdict < sizeof names / sizeof *names ? names[verdict] : "malformed";
}

/* Format 1's rules: R3-R7 by release day and major. */
static bool may_run_by_day(const lsrv_certificate *c, int32_t released, int64_t major, int32_t day)
{
  int32_t cutoff;
  if (!runs_on(c, day)) return false;
  if (c->version_lock != 0) {
    /* R4: the locked major's builds released by `day`, and every earlier
     * major's once the locked major has a build (R5). */
    if (released > day || major > c->version_lock) return false;
    return major == c->version_lock || (c->lock_first_release != NO_DAY && c->lock_first_release <= day);
  }
  /* R2, R3, R6, R7: builds released by the cutoff day. */
  if (c->kind != LSRV_PERPETUAL) cutoff = day;
  else if (c->ms_expires == NO_DAY) cutoff = c->start;
  else cutoff = day <= c->ms_expires ? day : c->ms_expires;
  return released <= cutoff;
}

static bool capped(const lsrv_certificate *c)
{
  return c->format >= 2 && c->build_cap != 0;
}

bool lsrv_may_run(const lsrv_certificate *c, int32_t released, int64_t major, int32_t day)
{
  /* Without the number, a build released before the cap's day is below
   * the cap; one released on that day may be above it (the header). */
  if (capped(c) && released >= c->build_cap_released) return false;
  return may_run_by_day(c, released, major, day);
}

bool lsrv_may_run_build(const lsrv_certificate *c, int64_t number, int32_t released, int64_t major, int32_t day)
{
  if (!capped(c)) return may_run_by_day(c, released, major, day);
  return runs_on(c, day) && number <= c->build_cap && released <= day;
}

bool lsrv_addon_active(const lsrv_certificate *c, const char *addon, int64_t installed_major, int32_t day)
{
  for (int i = 0; i < c->n_addons; i++) {
    const lsrv_addon *a = &c->addons[i];
    if (strcmp(a->name, addon) != 0) continue;
    if (!runs_on(c, day) || day > a->paid_through) return false;
    if (c->kind == LSRV_PERPETUAL && (c->ms_expires == NO_DAY || day > c->ms_expires)) return false;
    return installed_major >= c->newest_major;
  }
  return false;
}

bool lsrv_public_key_parse(const char *text, size_t len, lsrv_public_key *out)
{
  static const char head[] = "licensor-public-key 1\n";
  const char *p, *end;
  span id, key;
  size_t n = 0;
  unsigned char hash[16];
  char hex[33];
  if (text == NULL || len < sizeof head - 1 || memcmp(text, head, sizeof head - 1) != 0) return false;
  p = text + sizeof head - 1;
  end = text + len;
  if (!read_line(&p, end, "id", LSRV_FIELD_MAX, &id) || !read_line(&p, end, "key", LSRV_FIELD_MAX, &key) ||
      id.len != LSRV_KEY_ID_LEN ||
      !base64_text(key) ||
      sodium_base642bin(out->key, 32, key.s, key.len, NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      n != 32)
    return false;
  /* The id is derived from the key: a file cannot name another key's id. */
  if (sodium_init() < 0 || crypto_generichash(hash, sizeof hash, out->key, 32, NULL, 0) != 0) return false;
  sodium_bin2hex(hex, sizeof hex, hash, LSRV_KEY_ID_LEN / 2);
  if (memcmp(hex, id.s, LSRV_KEY_ID_LEN) != 0) return false;
  memcpy(out->id, hex, LSRV_KEY_ID_LEN);
  out->id[LSRV_KEY_ID_LEN] = '\0';
  return true;
}
