/*
 * licensor_verify.h -- the offline verifier that vendors link into their
 * products: checks a licensor certificate with no network, says whether a
 * build may run and whether an add-on works, computes this machine's
 * fingerprint, and keeps a clock mark against rollback.
 *
 * Plain C99 on libsodium (Ed25519, BLAKE2b).  No Lua, no SQLite.  The
 * verify path allocates nothing and keeps no global state: it is safe to
 * call from any number of threads (each with its own lsrv_result and
 * lsrv_state).  Dates are UTC day numbers (days since 1970-01-01).
 *
 *   pkg-config --cflags --libs licensor-verify
 *
 * Certificate format 1 (text, at most LSRV_CERT_MAX bytes): a BEGIN line,
 * then "name: value" lines in a fixed order, a signature line and an END
 * line.  The Ed25519 signature covers the exact bytes from the BEGIN line
 * through the newline that ends the line before "signature:".
 */
#ifndef LICENSOR_VERIFY_H
#define LICENSOR_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library exports these names only (licensor.core builds them in with
 * LSRV_INTERNAL, exporting nothing). */
#if defined(LSRV_INTERNAL)
#define LSRV_API
#elif defined(__GNUC__)
#define LSRV_API __attribute__((visibility("default")))
#else
#define LSRV_API
#endif

#define LSRV_CERT_MAX 4096
#define LSRV_FIELD_MAX 260       /* a field's value (names of up to 256 bytes), with its NUL */
#define LSRV_MAX_ADDONS 32
#define LSRV_ADDON_NAME_MAX 128  /* an add-on's name, with its NUL */
#define LSRV_KEY_ID_LEN 16       /* hex characters of a key id */
#define LSRV_FINGERPRINT_MAX 256

/* Clock tolerance: how far the clock may be behind the mark or the issue
 * time before it counts as rolled back (seconds). */
#define LSRV_CLOCK_TOLERANCE 86400

typedef enum {
  LSRV_VALID,
  LSRV_GRACE,            /* past refresh_by, within grace_days: keep running */
  LSRV_EXPIRED,          /* past refresh_by + grace, or the lease/trial ended */
  LSRV_BAD_SIGNATURE,
  LSRV_UNKNOWN_SIGNER,
  LSRV_WRONG_MACHINE,
  LSRV_CLOCK_ROLLBACK,
  LSRV_MALFORMED,
  LSRV_NOT_STARTED       /* before the license's start */
} lsrv_verdict;

typedef enum { LSRV_MATCH_MOST, LSRV_MATCH_ALL, LSRV_MATCH_ANY } lsrv_match;
typedef enum { LSRV_PERPETUAL, LSRV_LEASE, LSRV_TRIAL } lsrv_kind;

/* A trusted public key (several may be trusted at once, for rotation). */
typedef struct {
  unsigned char key[32];
  char id[LSRV_KEY_ID_LEN + 1];
} lsrv_public_key;

typedef struct {
  char name[LSRV_ADDON_NAME_MAX];
  int32_t paid_through;
} lsrv_addon;

/* The fields of a certificate, as parsed (no allocation). */
typedef struct {
  int format;
  char signer[LSRV_KEY_ID_LEN + 1];
  char license[64];
  char server[LSRV_FIELD_MAX];
  char product[LSRV_FIELD_MAX];
  char edition[LSRV_FIELD_MAX];
  char level[32];                  /* a number or "unlimited" */
  lsrv_kind kind;
  int32_t start;
  int32_t ms_expires;              /* INT32_MIN: no M&S */
  int32_t ends;                    /* last day of a trial, lease end; INT32_MIN: none */
  int64_t version_lock;            /* 0: none */
  bool failover;
  lsrv_addon addons[LSRV_MAX_ADDONS];
  int n_addons;
  int64_t newest_major;            /* newest major released on the issue day */
  int32_t lock_first_release;      /* first release of the locked major; INT32_MIN: none */
  char fingerprint[LSRV_FINGERPRINT_MAX];
  lsrv_match match;
  int64_t issued;                  /* unix seconds */
  int32_t refresh_by;
  int grace_days;
} lsrv_certificate;

typedef struct {
  lsrv_verdict verdict;
  int grace_days_left;             /* with LSRV_GRACE */
  lsrv_certificate cert;           /* filled when the text parsed */
} lsrv_result;

/* The latest time the product has seen (unix seconds), kept by the
 * product between runs (see lsrv_state_load / lsrv_state_save). */
typedef struct {
  int64_t mark;
} lsrv_state;

/* Verifies text (len bytes) signed by one of keys.  fingerprint is this
 * machine's (lsrv_fingerprint), or NULL to skip the machine check; now is
 * the current time in unix seconds; state, if not NULL, is checked against
 * rollback and its mark moved forward.  Fills *out and returns the verdict. */
LSRV_API lsrv_verdict lsrv_verify(const char *text, size_t len, const lsrv_public_key *keys, size_t n_keys,
                         const char *fingerprint, int64_t now, lsrv_state *state, lsrv_result *out);

LSRV_API const char *lsrv_verdict_name(lsrv_verdict verdict);

/* Reads a certificate's fields without checking its signature (for tools:
 * products call lsrv_verify).  LSRV_VALID, or LSRV_MALFORMED. */
LSRV_API lsrv_verdict lsrv_read(const char *text, size_t len, lsrv_certificate *out);

/* R3-R7 offline: may the build (number, release day, major, as the product
 * knows them about itself) run on `day` under this certificate's license? */
LSRV_API bool lsrv_may_run(const lsrv_certificate *cert, int32_t released, int64_t major, int32_t day);

/* R8 offline: does the named add-on work on `day` with the installed
 * build's major?  (The newest major is the one known on the issue day.) */
LSRV_API bool lsrv_addon_active(const lsrv_certificate *cert, const char *addon, int64_t installed_major,
                       int32_t day);

/* Reads a public key file's text ("licensor-public-key 1" ...). */
LSRV_API bool lsrv_public_key_parse(const char *text, size_t len, lsrv_public_key *out);

/* This machine's fingerprint ("v1:mid=...,uuid=...,mac=...,disk=...,host=..."),
 * each component a BLAKE2b hash of a stable Linux source (raw identifiers
 * never leave the machine).  Returns its length, 0 if none could be read. */
LSRV_API size_t lsrv_fingerprint(char *out, size_t outlen);

/* Does fingerprint `seen` match `expected` under the policy?  "most": more
 * than half of expected's components match; "all"; "any". */
LSRV_API bool lsrv_fingerprint_match(const char *expected, const char *seen, lsrv_match policy);

typedef enum { LSRV_STATE_OK, LSRV_STATE_MISSING, LSRV_STATE_CORRUPT, LSRV_STATE_UNWRITABLE } lsrv_state_status;

/* Reads the state file (a missing, empty or corrupt file says so). */
LSRV_API lsrv_state_status lsrv_state_load(const char *path, lsrv_state *state);

/* Writes it atomically (a temporary file renamed over it). */
LSRV_API lsrv_state_status lsrv_state_save(const char *path, const lsrv_state *state);

LSRV_API const char *lsrv_state_status_name(lsrv_state_status status);

#ifdef __cplusplus
}
#endif

#endif
