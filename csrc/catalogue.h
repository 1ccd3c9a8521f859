/*
 * catalogue.h -- the compiled, immutable product catalogue.
 *
 * The binding fills the structures from a Lua table, then
 * lsr_catalogue_compile() validates them (doc/rules.md section 2) and builds the
 * indexes every query uses: builds sorted by number, a contiguous range of
 * builds per major version, a prefix count of rollback barriers and a sorted
 * price table.  After compile nothing is written again.
 */
#ifndef LICENSOR_CATALOGUE_H
#define LICENSOR_CATALOGUE_H

#include "date.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A license level: a positive integer, or "unlimited" above every integer. */
typedef int64_t lsr_level;
#define LSR_LEVEL_UNLIMITED INT64_MAX
#define LSR_LEVEL_NONE 0

/* Largest integer accepted for build numbers, levels and prices (2^53 - 1):
 * beyond it a Lua 5.1 number is no longer exact. */
#define LSR_INT_MAX 9007199254740991LL

/* A build's downloads (rules.md section 2): at most LSR_DOWNLOADS_MAX per
 * build, one per platform, each a file in the artifact directory or a url
 * elsewhere.  The byte limits are the ones import checks and every layer
 * after it may rely on. */
#define LSR_DOWNLOADS_MAX 16
#define LSR_PLATFORM_MAX 32
#define LSR_FILE_MAX 255
#define LSR_URL_MAX 1024
#define LSR_CHECKOUT_URL_MAX 512
#define LSR_SHA256_HEX 64

typedef struct {
  char *platform;    /* "linux-x64": [a-z0-9][a-z0-9._-]* */
  char *file;        /* relative to the artifact directory; NULL for a url */
  char *url;         /* http(s):// elsewhere (a store, a CDN); NULL for a file */
  char *name;        /* the file name customers get: given, or the last segment */
  char sha256[LSR_SHA256_HEX + 1]; /* lowercase hex */
  int64_t size;      /* bytes, at least 1 */
} lsr_download;

typedef struct {
  int64_t number;
  int64_t major;
  lsr_day released;
  bool no_rollback;
  char *version;
  int source_index;  /* position in the catalogue's Lua array, for messages */
  lsr_download *downloads; /* n_downloads of them, NULL when none */
  int n_downloads;
} lsr_build;

typedef struct {
  int64_t major;
  int first;         /* index of the first build of this major */
  int count;
} lsr_major;

typedef struct {
  int64_t major;
  int edition;       /* index into the product's editions */
  lsr_level level;
  int64_t price;     /* minor units */
} lsr_price;

typedef struct {
  char *id;
  size_t id_len;
  char *name;
  char *unit;
  char **editions;   /* lowest rank first */
  int n_editions;
  char **addons;
  int n_addons;
  int64_t *addon_prices; /* yearly price per add-on, -1 when not priced */
  lsr_build *builds; /* ascending by number once compiled */
  int n_builds;
  lsr_day *released; /* released[i] == builds[i].released, packed for searching */
  int *barriers_before; /* barriers_before[i]: no_rollback builds in [0, i) */
  lsr_major *majors;
  int n_majors;
  lsr_price *prices;
  int n_prices;
  int record_base;   /* index of builds[0] in the Lua array of build records */
} lsr_product;

enum { LSR_BASIS_FROM_EXPIRY, LSR_BASIS_FROM_RENEWAL };

/* Reminders of an event (the end of M&S, a trial, a lease, a paid
 * add-on): days before it, negative for days after it (M&S only). */
#define LSR_REMINDERS_MAX 8
typedef struct {
  int n;
  int days[LSR_REMINDERS_MAX];
} lsr_reminder_list;

enum { LSR_REMIND_MS, LSR_REMIND_TRIAL, LSR_REMIND_LEASE, LSR_REMIND_ADDON, LSR_REMIND_KINDS };

/* The kinds' names in catalogues ("ms", "trial", "lease", "addon"). */
extern const char *const lsr_reminder_kinds[LSR_REMIND_KINDS];

typedef struct {
  int ms_months;
  int trial_days;
  int migration_days;
  int migration_extra;
  int extra_servers;       /* servers beyond R9's allowance (a layer's, e.g. an MSP's) */
  int checkin_grace_days;
  int renewal_basis;
  int phone_after_days;    /* ladder: days after the first step */
  int disable_after_days;
  int migration_gap_days;  /* runs of excess closer than this are one run */
  int case_cooldown_days;  /* a closed case resumes if excess returns within */
  int certificate_days;    /* a certificate's refresh-by, days after issue */
  int grace_days;          /* days a certificate still runs past refresh-by */
  int fingerprint_match;   /* LSR_MATCH_*: how much of a fingerprint must match */
  int drift_components;    /* components one check-in may change in a recorded fingerprint */
  int drift_changes;       /* fingerprint changes allowed within drift_days */
  int drift_days;
  int ms_percent;          /* a year of M&S costs this % of the license price (0: not priced) */
  int self_deactivations;  /* machines a customer may deactivate per self_deactivation_days */
  int self_deactivation_days;
  char checkout_url[LSR_CHECKOUT_URL_MAX + 1]; /* where renew/upgrade buttons lead; "" none */
  lsr_reminder_list reminders[LSR_REMIND_KINDS];
} lsr_policy;

enum { LSR_MATCH_MOST, LSR_MATCH_ALL, LSR_MATCH_ANY };

/* The whole-number fields of a policy, their names in catalogues and their
 * bounds: one table for reading, checking and listing them. */
typedef struct {
  const char *name;
  size_t offset;
  int min, max;
} lsr_policy_field;

/* Terminated by an entry whose name is NULL. */
extern const lsr_policy_field lsr_policy_fields[];

int lsr_policy_get(const lsr_policy *policy, const lsr_policy_field *field);
void lsr_policy_set(lsr_policy *policy, const lsr_policy_field *field, int value);

typedef struct {
  lsr_product *products;   /* sorted by id once compiled */
  int n_products;
  int n_builds;            /* all products together */
  lsr_policy policy;
  char currency[4];        /* ISO 4217 code of the prices, "USD" by default */
} lsr_catalogue;

void lsr_policy_defaults(lsr_policy *policy);

/* The shapes of download fields (bytes, not NUL-terminated):
 * a platform, [a-z0-9][a-z0-9._-]* of at most LSR_PLATFORM_MAX bytes;
 * a file name, [A-Za-z0-9_][A-Za-z0-9._+-]* of at most LSR_FILE_MAX bytes
 * (never starting with '.': no "..", no hidden files);
 * a file, '/'-separated file names (no leading, trailing or double '/'),
 * at most LSR_FILE_MAX bytes;
 * a url, "http://" or "https://" and a host, printable ASCII without
 * quotes, '<', '>', '#' or backslash, at most `max` bytes;
 * a sha256, LSR_SHA256_HEX lowercase hex digits. */
bool lsr_platform_ok(const char *s, size_t len);
bool lsr_file_name_ok(const char *s, size_t len);
bool lsr_file_ok(const char *s, size_t len);
bool lsr_url_ok(const char *s, size_t len, size_t max);
bool lsr_sha256_ok(const char *s, size_t len);

/* Allocates a catalogue with n zeroed products; NULL when out of memory. */
lsr_catalogue *lsr_catalogue_new(int n_products);
void lsr_catalogue_free(lsr_catalogue *cat);

/* Validates and indexes.  On failure writes a message naming the product,
 * build or price at fault into err and returns false; *bad_product and
 * *bad_build (-1 when not applicable) locate it. */
bool lsr_catalogue_compile(lsr_catalogue *cat, char *err, size_t errlen,
                           int *bad_product, int64_t *bad_build);

const lsr_product *lsr_find_product(const lsr_catalogue *cat, const char *id, size_t len);
int lsr_find_edition(const lsr_product *p, const char *name, size_t len);
int lsr_find_addon(const lsr_product *p, const char *name, size_t len);

/* Index of the build with that number, or -1. */
int lsr_find_build(const lsr_product *p, int64_t number);

/* Index of the newest build released on or before `day`, or -1. */
int lsr_newest_released_by(const lsr_product *p, lsr_day day);

/* Same, restricted to one major version; -1 if none. */
int lsr_newest_of_major_by(const lsr_product *p, int64_t major, lsr_day day);

/* Price of (major, edition, level), or -1 when the table has none. */
int64_t lsr_find_price(const lsr_product *p, int64_t major, int edition, lsr_level level);

#endif
