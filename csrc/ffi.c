/*
 * ffi.c -- the FFI entry point of cat:eligible (see ffi.h).  Validation is
 * the binding's, restated for plain C values: any doubt answers -1.
 */
#include "ffi.h"

#include "rules.h"

#include <stddef.h>

/* A whole number in [1, max] held in a double, as the binding accepts it. */
static bool whole(double v, double max)
{
  return v >= 1 && v <= max && (double)(int64_t)v == v;
}

/* Absent (NULL) is fine unless required; present must parse. */
static bool date_or_absent(const char *s, int32_t len, bool required, lsr_day *out)
{
  if (s == NULL) {
    *out = LSR_NO_DAY;
    return !required;
  }
  return lsr_date_parse(s, (size_t)len, out);
}

static bool read_query(const lsr_catalogue *cat, const lsr_ffi_query *q, lsr_license *lic)
{
  lic->product = lsr_find_product(cat, q->product, (size_t)q->product_len);
  if (lic->product == NULL || q->kind < LSR_PERPETUAL || q->kind > LSR_TRIAL) return false;
  lic->kind = (lsr_kind)q->kind;
  lic->edition = -1;
  if (q->edition != NULL) {
    lic->edition = lsr_find_edition(lic->product, q->edition, (size_t)q->edition_len);
    if (lic->edition < 0) return false;
  }
  if (q->level == -1) lic->level = LSR_LEVEL_UNLIMITED;
  else if (q->level == 0) lic->level = LSR_LEVEL_NONE;
  else if (whole(q->level, (double)LSR_INT_MAX)) lic->level = (lsr_level)q->level;
  else return false;
  if (!date_or_absent(q->start, q->start_len, true, &lic->start) ||
      !date_or_absent(q->ms_expires, q->ms_expires_len, false, &lic->ms_expires) ||
      !date_or_absent(q->disabled, q->disabled_len, false, &lic->disabled))
    return false;
  lic->version_lock = 0;
  if (q->version_lock != 0) {
    if (!whole(q->version_lock, (double)LSR_INT_MAX)) return false;
    lic->version_lock = (int64_t)q->version_lock;
  }
  lic->lease_ended = LSR_NO_DAY;
  if (lic->kind == LSR_LEASE &&
      !date_or_absent(q->lease_ended, q->lease_ended_len, false, &lic->lease_ended))
    return false;
  lic->trial_days = cat->policy.trial_days;
  if (lic->kind == LSR_TRIAL && q->trial_days != 0) {
    if (!whole(q->trial_days, 36500)) return false;
    lic->trial_days = (int64_t)q->trial_days;
  }
  return true;
}

int lsr_ffi_eligible(const lsr_catalogue *cat, const lsr_ffi_query *q)
{
  lsr_license lic;
  lsr_day on;
  int build;
  if (cat == NULL || q == NULL || q->product == NULL || !read_query(cat, q, &lic)) return -1;
  if (q->on == NULL) on = lsr_today();
  else if (!lsr_date_parse(q->on, (size_t)q->on_len, &on)) return -1;
  if (lsr_eligible(&lic, on, &build) != LSR_OK) return -1;
  return lic.product->record_base + build;
}
