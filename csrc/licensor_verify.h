/*
 * licensor_verify.h -- the offline verifier that vendors link into their
 * products: checks a licensor certificate with no network, says whether a
 * build may run and whether an add-on works, computes this machine's
 * fingerprint, keeps a clock mark against rollback and the revocations it
 * has been told of, and returns a certificate (a receipt for the vendor).
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
 * through the newline that ends the line before "signature:".  Format 2
 * is format 1's lines ("format: 2") and two more before the signature:
 *
 *   build_cap: <the highest build number the license may run, or ->
 *   build_cap_released: <that build's release day, YYYY-MM-DD, or ->
 *
 * the build a policy's eligible hook chose for the license on the issue
 * day, whenever a hook answered one (doc/offline.md).  Both are
 * "-" or neither.  Any other format is malformed.
 *
 * A revocation notice (at most LSRV_CERT_MAX bytes) has the same shape,
 * signed by the vendor's key the same way:
 *
 *   -----BEGIN LICENSOR REVOCATION-----
 *   format: 1
 *   signer: <key id>
 *   license: <key>
 *   server: <server>
 *   fingerprint: <the fingerprint the store recorded>
 *   revoked: <YYYY-MM-DDTHH:MM:SSZ>
 *   reason: disabled | deactivated | forced
 *   signature: <base64>
 *   -----END LICENSOR REVOCATION-----
 *
 * It revokes every certificate of that license and server issued at or
 * before `revoked`.  A return receipt (lsrv_return) is unsigned:
 *
 *   -----BEGIN LICENSOR RETURN RECEIPT-----
 *   format: 1
 *   license: <key>
 *   server: <server>
 *   fingerprint: <the certificate's fingerprint field>
 *   certificate: <the certificate's signature, 88 base64 characters>
 *   -----END LICENSOR RETURN RECEIPT-----
 *
 * Version 2 of the library (liblicensor-verify.so.2): lsrv_verify names
 * the product, the state is bound to a certificate and a machine.
 * Version 2.1 (the same ABI, additions only): format 2 and
 * lsrv_may_run_build.
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
#define LSRV_LICENSE_MAX 64      /* a license key, with its NUL */
#define LSRV_SIGNATURE_B64 88    /* base64 characters of a signature */
#define LSRV_FINGERPRINT_MAX 256
#define LSRV_COMPONENT_HEX 16    /* hex characters of a fingerprint component's hash */
#define LSRV_COMPONENTS 5        /* mid, uuid, mac, disk, host */
#define LSRV_REASON_MAX 16       /* a revocation's reason, with its NUL */
#define LSRV_RECEIPT_MAX 1024    /* a return receipt's text, with its NUL: always enough */
#define LSRV_NOT_REVOKED INT64_MIN

/* Clock tolerance: how far the clock may be behind the mark or the issue
 * time before it counts as rolled back (seconds). */
#define LSRV_CLOCK_TOLERANCE 86400

/* What lsrv_verify answers.  Values are kept across versions (new ones
 * are appended); the checks run in this order, the first that applies
 * decides: malformed, unknown_signer, bad_signature, wrong_product,
 * wrong_machine, revoked, clock_rollback, not_started, expired, grace,
 * valid. */
typedef enum {
  LSRV_VALID,
  LSRV_GRACE,            /* past refresh_by, within grace_days: keep running */
  LSRV_EXPIRED,          /* past refresh_by + grace, or the lease/trial ended */
  LSRV_BAD_SIGNATURE,
  LSRV_UNKNOWN_SIGNER,
  LSRV_WRONG_MACHINE,
  LSRV_CLOCK_ROLLBACK,
  LSRV_MALFORMED,
  LSRV_NOT_STARTED,      /* before the license's start */
  LSRV_WRONG_PRODUCT,    /* a certificate for another product than the caller's */
  LSRV_REVOKED           /* the state holds a revocation (or a return) covering it */
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
  char license[LSRV_LICENSE_MAX];
  char server[LSRV_FIELD_MAX];
  char product[LSRV_FIELD_MAX];
  char edition[LSRV_FIELD_MAX];
  /* 2.0's char level[32] held at most 16 bytes; 2.1 keeps the build cap in
   * the rest, so that the struct's size and every other field's offset
   * stay 2.0's (lsrv.c checks it when it is compiled). */
  char level[19];                  /* a number (at most 15 digits) or "unlimited" */
  int32_t build_cap_released;      /* format 2: the cap's release day; INT32_MIN: no cap */
  int64_t build_cap;               /* format 2: the highest build number that may run; 0: no cap */
  char reserved[4];
  lsrv_kind kind;
  int32_t start;
  int32_t ms_expires;              /* INT32_MIN: no M&S */
  int32_t ends;                    /* the first day a lease or trial no longer runs; INT32_MIN: none */
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
  char signature[LSRV_SIGNATURE_B64 + 1];  /* the signature as written: names this certificate */
} lsrv_certificate;

typedef struct {
  lsrv_verdict verdict;
  int grace_days_left;             /* with LSRV_GRACE */
  lsrv_certificate cert;           /* filled when the text parsed */
} lsrv_result;

/* What the product keeps between runs, in a state file (lsrv_state_load,
 * lsrv_state_save).  A state belongs to one license, one server and one
 * machine: lsrv_state_bind sets that binding (and clears the rest) before
 * the state is loaded, and the file's checksum is keyed to it, so that a
 * file written for another certificate's license or server, or on another
 * machine, reads as LSRV_STATE_CORRUPT.  Refreshed certificates of the
 * same license and server on the same machine keep the same state.
 * Fixed size: nothing is allocated. */
typedef struct {
  int64_t mark;                    /* the latest time seen (unix seconds); 0: none yet */
  int64_t revoked;                 /* certificates of the bound license and server issued at or
                                    * before this time are revoked; LSRV_NOT_REVOKED: none */
  char reason[LSRV_REASON_MAX];    /* with revoked: "disabled", "deactivated", "forced" (a
                                    * notice) or "returned" (lsrv_return) */
  bool bound;                      /* set by lsrv_state_bind */
  char license[LSRV_LICENSE_MAX];  /* the binding: license and server, */
  char server[LSRV_FIELD_MAX];
  unsigned char binding[32];       /* and the checksum's key (BLAKE2b of license, server and the
                                    * machine's strong components) */
} lsrv_state;

/* Verifies text (len bytes) signed by one of keys, a certificate for
 * `product` (the product id, e.g. "smartertrack"; NULL matches none).
 * fingerprint is this machine's (lsrv_fingerprint), or NULL to skip the
 * machine check; now is the current time in unix seconds; state, if not
 * NULL, is checked against rollback and revocations (when it is bound to
 * the certificate's license and server) and its mark moved forward.
 * Fills *out and returns the verdict. */
LSRV_API lsrv_verdict lsrv_verify(const char *text, size_t len, const lsrv_public_key *keys, size_t n_keys,
                                  const char *product, const char *fingerprint, int64_t now, lsrv_state *state,
                                  lsrv_result *out);

LSRV_API const char *lsrv_verdict_name(lsrv_verdict verdict);

/* Reads a certificate's fields without checking its signature (for tools:
 * products call lsrv_verify).  LSRV_VALID, or LSRV_MALFORMED. */
LSRV_API lsrv_verdict lsrv_read(const char *text, size_t len, lsrv_certificate *out);

/* R3-R7 offline: may the build (release day and major, as the product
 * knows them about itself) run on `day` under this certificate's license?
 * A certificate with a build cap (format 2) is answered on the safe side,
 * since the build's number is not given: a build runs only if it would
 * without the cap AND it was released before the cap's release day.  A
 * product's release days never go down as its build numbers go up (the
 * catalogue refuses it), so that admits builds below the cap only: never
 * one the cap forbids, nor one format 1's rules refuse.  The cap's own
 * build, anything released on its day and the builds a cap adds need
 * lsrv_may_run_build. */
LSRV_API bool lsrv_may_run(const lsrv_certificate *cert, int32_t released, int64_t major, int32_t day);

/* R3-R7 offline for the build numbered `number` (2.1).  Without a cap,
 * lsrv_may_run's answer (the number plays no part).  With one, the cap
 * replaces the release-day rules: the build may run iff the license runs
 * on `day` (started, lease or trial not ended), number <= build_cap and
 * released <= day -- the build cap is what cat:can_install allowed with
 * the policy's eligible hook on the issue day. */
LSRV_API bool lsrv_may_run_build(const lsrv_certificate *cert, int64_t number, int32_t released, int64_t major,
                                 int32_t day);

/* R8 offline: does the named add-on work on `day` with the installed
 * build's major?  (The newest major is the one known on the issue day.) */
LSRV_API bool lsrv_addon_active(const lsrv_certificate *cert, const char *addon, int64_t installed_major,
                       int32_t day);

/* Reads a public key file's text ("licensor-public-key 1" ...). */
LSRV_API bool lsrv_public_key_parse(const char *text, size_t len, lsrv_public_key *out);

/* One source of the fingerprint, as lsrv_fingerprint_explain finds it. */
typedef struct {
  const char *name;                   /* "mid", "uuid", "mac", "disk", "host" */
  bool strong;                        /* mid and uuid: a match needs one of them */
  bool found;
  char source[128];                   /* where it was read, or looked for when missing */
  char hash[LSRV_COMPONENT_HEX + 1];  /* with found: the component as the fingerprint holds it */
} lsrv_component;

/* Each source of this machine's fingerprint, found or missing, hashed
 * (the raw value never leaves the function): mid (/etc/machine-id), uuid
 * (the DMI product UUID), mac (the physical network cards' MAC addresses:
 * the interfaces of /sys/class/net with a `device` entry, so that virtual
 * ones -- veth, tap, bridges, docker0, ifb -- coming and going on a
 * container or VM host never move it; absent without a physical card),
 * disk (the root file system's UUID from /dev/disk/by-uuid, else the root
 * disk's serial or WWID from /sys), host (the hostname).  Returns how many
 * were found. */
LSRV_API int lsrv_fingerprint_explain(lsrv_component out[LSRV_COMPONENTS]);

/* This machine's fingerprint ("v1:mid=...,uuid=...,mac=...,disk=...,host=..."),
 * the components lsrv_fingerprint_explain found.  Returns its length, 0 if
 * none could be read. */
LSRV_API size_t lsrv_fingerprint(char *out, size_t outlen);

/* Does fingerprint `seen` match `expected` (the certificate's) under the
 * policy?  Counted over the components expected holds, and only when at
 * least one strong component (mid, uuid) of expected is in seen, equal: a
 * seen without one matches nothing.  "most": more than half of expected's
 * components match; "all": every one; "any": a strong one is enough. */
LSRV_API bool lsrv_fingerprint_match(const char *expected, const char *seen, lsrv_match policy);

typedef enum {
  LSRV_STATE_OK,
  LSRV_STATE_MISSING,
  LSRV_STATE_CORRUPT,     /* damaged, another binding's, a symlink, or not a file */
  LSRV_STATE_UNWRITABLE,  /* cannot be written, or the path is a symlink */
  LSRV_STATE_UNBOUND      /* lsrv_state_bind was not called (or failed) */
} lsrv_state_status;

/* Binds state to the license and server of a certificate text (read, not
 * verified) and to a machine: the strong components of fingerprint (this
 * machine's; NULL: the certificate's own).  Clears the mark and any
 * revocation: call it before lsrv_state_load.  False if the text is not a
 * certificate (the state is then unbound). */
LSRV_API bool lsrv_state_bind(lsrv_state *state, const char *cert, size_t len, const char *fingerprint);

/* Reads the state file into a bound state (a missing, empty, corrupt or
 * symlinked file says so; a symlink is never followed). */
LSRV_API lsrv_state_status lsrv_state_load(const char *path, lsrv_state *state);

/* Writes it atomically, without losing another process's save: under an
 * exclusive flock on PATH.lock (a sibling file made on first use with mode
 * 0600, never through a symlink, and left in place), the file at path is
 * read again and, when it is this binding's, merged in -- the later mark,
 * the later revocation with its reason -- so that a return or a notice
 * saved since this state was loaded survives; then a temporary file made
 * with mkstemp in the same directory is synced and renamed over path, and
 * the lock released.  *state itself is not changed (load again to see the
 * merge).  A symlink at path or at PATH.lock is refused
 * (LSRV_STATE_UNWRITABLE), never written through. */
LSRV_API lsrv_state_status lsrv_state_save(const char *path, const lsrv_state *state);

LSRV_API const char *lsrv_state_status_name(lsrv_state_status status);

typedef enum {
  LSRV_NOTICE_APPLIED,         /* recorded in the state */
  LSRV_NOTICE_MALFORMED,
  LSRV_NOTICE_UNKNOWN_SIGNER,
  LSRV_NOTICE_BAD_SIGNATURE,
  LSRV_NOTICE_OTHER_LICENSE    /* genuine, but not for the state's license and server (or the
                                * state is unbound): nothing recorded */
} lsrv_notice_status;

/* Checks a revocation notice (text, len bytes) against the trusted keys
 * and records it in a bound state: from then on lsrv_verify with that
 * state answers LSRV_REVOKED for the certificates it covers.  Only
 * LSRV_NOTICE_APPLIED changes the state (save it then). */
LSRV_API lsrv_notice_status lsrv_revocation_apply(const char *text, size_t len, const lsrv_public_key *keys,
                                                  size_t n_keys, lsrv_state *state);

LSRV_API const char *lsrv_notice_status_name(lsrv_notice_status status);

typedef enum {
  LSRV_RETURNED,                /* receipt written, file deleted, the state revokes it */
  LSRV_RETURN_UNREADABLE,       /* no such file, a symlink, or too large to be a certificate */
  LSRV_RETURN_REFUSED,          /* malformed, unknown signer, bad signature, another product's */
  LSRV_RETURN_STATE_MISMATCH,   /* state not bound to the certificate's license and server */
  LSRV_RETURN_NO_ROOM,          /* receipt_len too small (LSRV_RECEIPT_MAX always does) */
  LSRV_RETURN_UNDELETABLE       /* the file could not be deleted: nothing recorded */
} lsrv_return_status;

/* Returns the certificate at cert_path (the offline return that frees its
 * slot at the vendor): checks it is a genuine certificate for `product`,
 * deletes the file, records in state (bound to it: lsrv_state_bind) that
 * it and every earlier certificate of its license and server are revoked,
 * and writes the return receipt's text (NUL-terminated) into receipt.
 * Save the state afterwards.  The receipt is trust-based: nothing stops a
 * copy of the certificate kept elsewhere. */
LSRV_API lsrv_return_status lsrv_return(const char *cert_path, const lsrv_public_key *keys, size_t n_keys,
                                        const char *product, lsrv_state *state, char *receipt,
                                        size_t receipt_len);

LSRV_API const char *lsrv_return_status_name(lsrv_return_status status);

#ifdef __cplusplus
}
#endif

#endif
