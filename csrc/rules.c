/*
 * rules.c -- eligibility (R1-R7), add-ons (R8) and rollback (R13).
 */
#include "rules.h"

lsr_day lsr_trial_end(const lsr_license *lic)
{
  int64_t end = (int64_t)lic->start + lic->trial_days - 1;
  return end > LSR_DAY_MAX ? LSR_DAY_MAX : (lsr_day)end;
}

lsr_code lsr_validity(const lsr_license *lic, lsr_day on)
{
  if (lic->disabled != LSR_NO_DAY && on >= lic->disabled) return LSR_DISABLED;
  if (on < lic->start) return LSR_NOT_STARTED;
  switch (lic->kind) {
  case LSR_LEASE:
    if (lic->lease_ended != LSR_NO_DAY && on >= lic->lease_ended) return LSR_EXPIRED;
    break;
  case LSR_TRIAL:
    if (on > lsr_trial_end(lic)) return LSR_EXPIRED;
    break;
  case LSR_PERPETUAL:
    break;
  }
  return LSR_OK;
}

bool lsr_ms_active(const lsr_license *lic, lsr_day on)
{
  return lic->kind == LSR_PERPETUAL && lic->ms_expires != LSR_NO_DAY && on <= lic->ms_expires;
}

/* The last release day a valid license may take builds from (R2, R3, R6,
 * R7); version-locked licenses are handled by the caller (R4). */
static lsr_day release_cutoff(const lsr_license *lic, lsr_day on)
{
  if (lic->kind != LSR_PERPETUAL) return on;
  if (lic->ms_expires == LSR_NO_DAY) return lic->start;
  return on <= lic->ms_expires ? on : lic->ms_expires;
}

lsr_code lsr_eligible(const lsr_license *lic, lsr_day on, int *build)
{
  lsr_code code = lsr_validity(lic, on);
  int index;
  if (code != LSR_OK) return code;
  if (lic->version_lock != 0)
    index = lsr_newest_of_major_by(lic->product, lic->version_lock, on);
  else
    index = lsr_newest_released_by(lic->product, release_cutoff(lic, on));
  if (index < 0) return LSR_NO_BUILD;
  *build = index;
  return LSR_OK;
}

lsr_code lsr_can_install(const lsr_license *lic, int build, lsr_day on)
{
  int eligible;
  lsr_code code = lsr_eligible(lic, on, &eligible);
  if (code != LSR_OK) return code;
  /* Builds are sorted by number, so "earlier build" is "lower index". */
  return build <= eligible ? LSR_OK : LSR_NEWER_THAN_ELIGIBLE;
}

lsr_addon_state lsr_addon_state_of(const lsr_license *lic, lsr_day paid_through,
                                   int installed, lsr_day on)
{
  if (paid_through == LSR_NO_DAY) return LSR_ADDON_NOT_OWNED;
  if (lsr_validity(lic, on) != LSR_OK) return LSR_ADDON_LICENSE_INVALID;
  if (on > paid_through) return LSR_ADDON_EXPIRED;
  /* Leases and trials have no M&S: a valid one is an active one. */
  if (lic->kind == LSR_PERPETUAL && !lsr_ms_active(lic, on)) return LSR_ADDON_MS_EXPIRED;
  if (installed >= 0) {
    int newest = lsr_newest_released_by(lic->product, on);
    if (newest >= 0 && lic->product->builds[installed].major != lic->product->builds[newest].major)
      return LSR_ADDON_REQUIRES_UPGRADE;
  }
  return LSR_ADDON_ACTIVE;
}

lsr_code lsr_can_rollback(const lsr_product *p, int from, int to)
{
  if (to >= from) return LSR_NOT_OLDER;
  /* A barrier Z with to < Z <= from blocks the way back. */
  if (p->barriers_before[from + 1] - p->barriers_before[to + 1] > 0) return LSR_ROLLBACK_BARRIER;
  return LSR_OK;
}
