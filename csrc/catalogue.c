/*
 * catalogue.c -- validation and indexes of the compiled catalogue, and the
 * binary searches every query is made of.
 */
#include "catalogue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lsr_policy_defaults(lsr_policy *policy)
{
  policy->ms_months = 12;
  policy->trial_days = 30;
  policy->migration_days = 30;
  policy->migration_extra = 1;
  policy->extra_servers = 0;
  policy->checkin_grace_days = 7;
  policy->renewal_basis = LSR_BASIS_FROM_EXPIRY;
  policy->phone_after_days = 7;
  policy->disable_after_days = 14;
  policy->migration_gap_days = 14;
  policy->case_cooldown_days = 90;
  policy->certificate_days = 30;
  policy->grace_days = 14;
  policy->fingerprint_match = LSR_MATCH_MOST;
  policy->drift_components = 1;
  policy->drift_changes = 2;
  policy->drift_days = 90;
  policy->self_deactivations = 3;
  policy->self_deactivation_days = 365;
  policy->checkout_url[0] = '\0';
  /* M&S 30 and 7 days before it ends and the day after it lapsed; trials
   * 7 and 1 days before their end; leases and paid add-ons 30 days before. */
  policy->reminders[LSR_REMIND_MS] = (lsr_reminder_list){ 3, { 30, 7, -1 } };
  policy->reminders[LSR_REMIND_TRIAL] = (lsr_reminder_list){ 2, { 7, 1 } };
  policy->reminders[LSR_REMIND_LEASE] = (lsr_reminder_list){ 1, { 30 } };
  policy->reminders[LSR_REMIND_ADDON] = (lsr_reminder_list){ 1, { 30 } };
}

const char *const lsr_reminder_kinds[LSR_REMIND_KINDS] = { "ms", "trial", "lease", "addon" };

const lsr_policy_field lsr_policy_fields[] = {
  { "ms_months", offsetof(lsr_policy, ms_months), 1, 1200 },
  { "trial_days", offsetof(lsr_policy, trial_days), 1, 36500 },
  { "migration_days", offsetof(lsr_policy, migration_days), 1, 36500 },
  { "migration_extra", offsetof(lsr_policy, migration_extra), 0, 1000 },
  { "extra_servers", offsetof(lsr_policy, extra_servers), 0, 1000 },
  { "migration_gap_days", offsetof(lsr_policy, migration_gap_days), 0, 36500 },
  { "checkin_grace_days", offsetof(lsr_policy, checkin_grace_days), 0, 36500 },
  { "phone_after_days", offsetof(lsr_policy, phone_after_days), 0, 36500 },
  { "disable_after_days", offsetof(lsr_policy, disable_after_days), 0, 36500 },
  { "case_cooldown_days", offsetof(lsr_policy, case_cooldown_days), 0, 36500 },
  { "certificate_days", offsetof(lsr_policy, certificate_days), 1, 3650 },
  { "grace_days", offsetof(lsr_policy, grace_days), 0, 3650 },
  { "ms_percent", offsetof(lsr_policy, ms_percent), 0, 100 },
  { "drift_components", offsetof(lsr_policy, drift_components), 0, 4 },
  { "drift_changes", offsetof(lsr_policy, drift_changes), 0, 1000 },
  { "drift_days", offsetof(lsr_policy, drift_days), 1, 36500 },
  { "self_deactivations", offsetof(lsr_policy, self_deactivations), 0, 1000 },
  { "self_deactivation_days", offsetof(lsr_policy, self_deactivation_days), 1, 3650 },
  { NULL, 0, 0, 0 }
};

int lsr_policy_get(const lsr_policy *policy, const lsr_policy_field *field)
{
  int value;
  memcpy(&value, (const char *)policy + field->offset, sizeof value);
  return value;
}

void lsr_policy_set(lsr_policy *policy, const lsr_policy_field *field, int value)
{
  memcpy((char *)policy + field->offset, &value, sizeof value);
}

lsr_catalogue *lsr_catalogue_new(int n_products)
{
  lsr_catalogue *cat = calloc(1, sizeof *cat);
  if (cat == NULL) return NULL;
  lsr_policy_defaults(&cat->policy);
  memcpy(cat->currency, "USD", 4);
  if (n_products > 0) {
    cat->products = calloc((size_t)n_products, sizeof *cat->products);
    if (cat->products == NULL) {
      free(cat);
      return NULL;
    }
  }
  cat->n_products = n_products;
  return cat;
}

static void free_strings(char **list, int n)
{
  if (list == NULL) return;
  for (int i = 0; i < n; i++) free(list[i]);
  free(list);
}

static void free_downloads(lsr_download *list, int n)
{
  if (list == NULL) return;
  for (int i = 0; i < n; i++) {
    free(list[i].platform);
    free(list[i].file);
    free(list[i].url);
    free(list[i].name);
  }
  free(list);
}

static void free_product(lsr_product *p)
{
  free(p->id);
  free(p->name);
  free(p->unit);
  free_strings(p->editions, p->n_editions);
  free_strings(p->addons, p->n_addons);
  free(p->addon_prices);
  if (p->builds != NULL)
    for (int i = 0; i < p->n_builds; i++) {
      free(p->builds[i].version);
      free_downloads(p->builds[i].downloads, p->builds[i].n_downloads);
    }
  free(p->builds);
  free(p->barriers_before);
  free(p->released);
  free(p->majors);
  free(p->prices);
}

void lsr_catalogue_free(lsr_catalogue *cat)
{
  if (cat == NULL) return;
  for (int i = 0; i < cat->n_products; i++) free_product(&cat->products[i]);
  free(cat->products);
  free(cat);
}

static bool lower_or_digit(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool alnum_or_underscore(char c)
{
  return lower_or_digit(c) || (c >= 'A' && c <= 'Z') || c == '_';
}

bool lsr_platform_ok(const char *s, size_t len)
{
  if (len == 0 || len > LSR_PLATFORM_MAX || !lower_or_digit(s[0])) return false;
  for (size_t i = 1; i < len; i++)
    if (!lower_or_digit(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-') return false;
  return true;
}

bool lsr_file_name_ok(const char *s, size_t len)
{
  if (len == 0 || len > LSR_FILE_MAX || !alnum_or_underscore(s[0])) return false;
  for (size_t i = 1; i < len; i++)
    if (!alnum_or_underscore(s[i]) && s[i] != '.' && s[i] != '+' && s[i] != '-') return false;
  return true;
}

/* Each '/'-separated segment is a file name, so "", "/x", "x/", "a//b",
 * "../x" and "a/.hidden" all fail. */
bool lsr_file_ok(const char *s, size_t len)
{
  size_t start = 0;
  if (len == 0 || len > LSR_FILE_MAX) return false;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && s[i] != '/') continue;
    if (!lsr_file_name_ok(s + start, i - start)) return false;
    start = i + 1;
  }
  return true;
}

bool lsr_url_ok(const char *s, size_t len, size_t max)
{
  size_t rest;
  if (len > max) return false;
  if (len > 8 && memcmp(s, "https://", 8) == 0) rest = 8;
  else if (len > 7 && memcmp(s, "http://", 7) == 0) rest = 7;
  else return false;
  if (s[rest] == '/') return false;   /* a host comes first */
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7f || strchr("\"'<>#\\", c) != NULL) return false;
  }
  return true;
}

bool lsr_sha256_ok(const char *s, size_t len)
{
  if (len != LSR_SHA256_HEX) return false;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

static int compare_products(const void *a, const void *b)
{
  const lsr_product *x = a, *y = b;
  return strcmp(x->id, y->id);
}

static int compare_builds(const void *a, const void *b)
{
  const lsr_build *x = a, *y = b;
  return (x->number > y->number) - (x->number < y->number);
}

static int compare_prices(const void *a, const void *b)
{
  const lsr_price *x = a, *y = b;
  if (x->major != y->major) return (x->major > y->major) - (x->major < y->major);
  if (x->edition != y->edition) return (x->edition > y->edition) - (x->edition < y->edition);
  return (x->level > y->level) - (x->level < y->level);
}

/* Names must be unique within a list (editions, add-ons). */
static const char *first_duplicate(char **names, int n)
{
  for (int i = 1; i < n; i++)
    for (int j = 0; j < i; j++)
      if (strcmp(names[i], names[j]) == 0) return names[i];
  return NULL;
}

static bool check_build_order(const lsr_product *p, char *err, size_t errlen, int64_t *bad_build)
{
  char a[LSR_DATE_LEN + 1], b[LSR_DATE_LEN + 1];
  for (int i = 1; i < p->n_builds; i++) {
    const lsr_build *prev = &p->builds[i - 1], *cur = &p->builds[i];
    *bad_build = cur->number;
    if (cur->number == prev->number) {
      snprintf(err, errlen, "product '%s': build %lld appears twice", p->id,
               (long long)cur->number);
      return false;
    }
    if (cur->released < prev->released) {
      lsr_date_format(cur->released, a);
      lsr_date_format(prev->released, b);
      snprintf(err, errlen,
               "product '%s': build %lld released %s is older than build %lld released %s",
               p->id, (long long)cur->number, a, (long long)prev->number, b);
      return false;
    }
    if (cur->major < prev->major) {
      snprintf(err, errlen,
               "product '%s': build %lld has major %lld, lower than build %lld's major %lld",
               p->id, (long long)cur->number, (long long)cur->major,
               (long long)prev->number, (long long)prev->major);
      return false;
    }
  }
  *bad_build = -1;
  return true;
}

/* Builds are sorted, so each major version is one contiguous run. */
static bool index_builds(lsr_product *p)
{
  int n = p->n_builds;
  p->barriers_before = malloc(((size_t)n + 1) * sizeof *p->barriers_before);
  p->majors = malloc(((size_t)n + 1) * sizeof *p->majors);
  p->released = malloc(((size_t)n + 1) * sizeof *p->released);
  if (p->barriers_before == NULL || p->majors == NULL || p->released == NULL) return false;
  p->barriers_before[0] = 0;
  p->n_majors = 0;
  for (int i = 0; i < n; i++) {
    const lsr_build *b = &p->builds[i];
    p->released[i] = b->released;
    p->barriers_before[i + 1] = p->barriers_before[i] + (b->no_rollback ? 1 : 0);
    if (p->n_majors == 0 || p->majors[p->n_majors - 1].major != b->major) {
      lsr_major *m = &p->majors[p->n_majors++];
      m->major = b->major;
      m->first = i;
      m->count = 0;
    }
    p->majors[p->n_majors - 1].count++;
  }
  return true;
}

static bool compile_product(lsr_product *p, char *err, size_t errlen, int64_t *bad_build)
{
  const char *dup;
  if (p->n_editions < 1) {
    snprintf(err, errlen, "product '%s': editions must list at least one edition", p->id);
    return false;
  }
  if ((dup = first_duplicate(p->editions, p->n_editions)) != NULL) {
    snprintf(err, errlen, "product '%s': edition '%s' is listed twice", p->id, dup);
    return false;
  }
  if ((dup = first_duplicate(p->addons, p->n_addons)) != NULL) {
    snprintf(err, errlen, "product '%s': add-on '%s' is listed twice", p->id, dup);
    return false;
  }
  if (p->n_builds > 0) qsort(p->builds, (size_t)p->n_builds, sizeof *p->builds, compare_builds);
  if (!check_build_order(p, err, errlen, bad_build)) return false;
  if (!index_builds(p)) {
    snprintf(err, errlen, "out of memory");
    return false;
  }
  if (p->n_prices > 0) qsort(p->prices, (size_t)p->n_prices, sizeof *p->prices, compare_prices);
  return true;
}

bool lsr_catalogue_compile(lsr_catalogue *cat, char *err, size_t errlen,
                           int *bad_product, int64_t *bad_build)
{
  *bad_product = -1;
  *bad_build = -1;
  if (cat->n_products < 1) {
    snprintf(err, errlen, "products: the catalogue lists no product");
    return false;
  }
  qsort(cat->products, (size_t)cat->n_products, sizeof *cat->products, compare_products);
  cat->n_builds = 0;
  for (int i = 0; i < cat->n_products; i++) {
    lsr_product *p = &cat->products[i];
    p->id_len = strlen(p->id);
    if (i > 0 && strcmp(p->id, cat->products[i - 1].id) == 0) {
      *bad_product = i;
      snprintf(err, errlen, "product '%s' is listed twice", p->id);
      return false;
    }
    if (!compile_product(p, err, errlen, bad_build)) {
      *bad_product = i;
      return false;
    }
    p->record_base = cat->n_builds;
    cat->n_builds += p->n_builds;
  }
  return true;
}

const lsr_product *lsr_find_product(const lsr_catalogue *cat, const char *id, size_t len)
{
  int lo = 0, hi = cat->n_products - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    const lsr_product *p = &cat->products[mid];
    size_t common = p->id_len < len ? p->id_len : len;
    int c = memcmp(p->id, id, common);
    if (c == 0) c = (p->id_len > len) - (p->id_len < len);
    if (c == 0) return p;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return NULL;
}

static int find_name(char **names, int n, const char *name, size_t len)
{
  for (int i = 0; i < n; i++)
    if (strncmp(names[i], name, len) == 0 && names[i][len] == '\0') return i;
  return -1;
}

int lsr_find_edition(const lsr_product *p, const char *name, size_t len)
{
  return find_name(p->editions, p->n_editions, name, len);
}

int lsr_find_addon(const lsr_product *p, const char *name, size_t len)
{
  return find_name(p->addons, p->n_addons, name, len);
}

int lsr_find_build(const lsr_product *p, int64_t number)
{
  int lo = 0, hi = p->n_builds - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    int64_t n = p->builds[mid].number;
    if (n == number) return mid;
    if (n < number) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/* Last index in [first, first+count) released on or before day, or -1:
 * release dates are non-decreasing along build numbers.  Branch-free
 * halving (the comparison becomes a conditional move), so the search does
 * not pay a mispredicted branch per step. */
static int last_released_by(const lsr_day *released, int first, int count, lsr_day day)
{
  const lsr_day *base = released + first;
  int n = count;
  if (n == 0) return -1;
  while (n > 1) {
    int half = n / 2;
    base = base[half] <= day ? base + half : base;
    n -= half;
  }
  /* base is the last element <= day, or the first element if none is. */
  return *base <= day ? (int)(base - released) : -1;
}

int lsr_newest_released_by(const lsr_product *p, lsr_day day)
{
  return last_released_by(p->released, 0, p->n_builds, day);
}

int lsr_newest_of_major_by(const lsr_product *p, int64_t major, lsr_day day)
{
  int lo = 0, hi = p->n_majors - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    const lsr_major *m = &p->majors[mid];
    if (m->major == major) return last_released_by(p->released, m->first, m->count, day);
    if (m->major < major) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

int64_t lsr_find_price(const lsr_product *p, int64_t major, int edition, lsr_level level)
{
  lsr_price key;
  const lsr_price *hit;
  key.major = major;
  key.edition = edition;
  key.level = level;
  key.price = 0;
  if (p->n_prices == 0) return -1;
  hit = bsearch(&key, p->prices, (size_t)p->n_prices, sizeof *p->prices, compare_prices);
  return hit != NULL ? hit->price : -1;
}
