/*
 * fraud.c -- R9 active installations and the R10 migration window.
 *
 * Each installation is active on the half-open interval
 * [first_seen, min(deactivated, last_seen + grace + 1)), and holds its
 * slot until the later of that end and held_until + 1 (its certificate).
 * A sweep over the slot intervals' ends, oldest first, finds where the
 * current run of excess began (runs closer than migration_gap_days joined
 * into one).
 */
#include "fraud.h"

#include <stdlib.h>

int lsr_allowed_installations(bool failover, const lsr_policy *policy)
{
  return (failover ? 2 : 1) + policy->extra_servers;
}

/* First day the installation is no longer active. */
static lsr_day active_until(const lsr_installation *inst, int grace_days)
{
  lsr_day seen = inst->last_seen != LSR_NO_DAY ? inst->last_seen : inst->first_seen;
  lsr_day end = seen + grace_days + 1;
  if (inst->deactivated != LSR_NO_DAY && inst->deactivated < end) end = inst->deactivated;
  return end;
}

bool lsr_installation_active(const lsr_installation *inst, int grace_days, lsr_day day)
{
  return inst->first_seen <= day && day < active_until(inst, grace_days);
}

/* First day the installation no longer holds a slot. */
static lsr_day holds_until(const lsr_installation *inst, int grace_days)
{
  lsr_day end = active_until(inst, grace_days);
  if (inst->held_until != LSR_NO_DAY && inst->held_until + 1 > end) end = inst->held_until + 1;
  return end;
}

bool lsr_installation_holds(const lsr_installation *inst, int grace_days, lsr_day day)
{
  return inst->first_seen <= day && day < holds_until(inst, grace_days);
}

/* Held on `day` by its certificate alone after a deactivation. */
static bool parked(const lsr_installation *inst, int grace_days, lsr_day day)
{
  return inst->deactivated != LSR_NO_DAY && inst->deactivated <= day &&
         lsr_installation_holds(inst, grace_days, day);
}

static int compare_edges(const void *a, const void *b)
{
  const lsr_edge *x = a, *y = b;
  return (x->day > y->day) - (x->day < y->day);
}

void lsr_migration_window(const lsr_installation *inst, int n, int allowed,
                          const lsr_policy *policy, lsr_day on, lsr_edge *scratch,
                          lsr_migration *out)
{
  int n_edges = 0, count = 0;
  lsr_day run_start = LSR_NO_DAY, run_end = LSR_NO_DAY;
  out->allowed = allowed;
  out->active = out->parked = 0;
  for (int i = 0; i < n; i++) {
    lsr_day begin = inst[i].first_seen, end = holds_until(&inst[i], policy->checkin_grace_days);
    if (begin > on || end <= begin) continue;
    if (on < end) out->active++;
    if (parked(&inst[i], policy->checkin_grace_days, on)) out->parked++;
    scratch[n_edges].day = begin;
    scratch[n_edges++].delta = 1;
    if (end <= on) {
      scratch[n_edges].day = end;
      scratch[n_edges++].delta = -1;
    }
  }
  out->state = LSR_MIGRATION_OK;
  out->since = out->deadline = LSR_NO_DAY;
  if (out->active <= allowed) return;
  qsort(scratch, (size_t)n_edges, sizeof *scratch, compare_edges);
  /* Runs of excess separated by fewer than migration_gap_days days without
   * excess are one run: a short deactivation does not restart the window. */
  for (int i = 0; i < n_edges;) {
    lsr_day day = scratch[i].day;
    for (; i < n_edges && scratch[i].day == day; i++) count += scratch[i].delta;
    if (count <= allowed) {
      if (run_start != LSR_NO_DAY && run_end == LSR_NO_DAY) run_end = day;
    } else if (run_start == LSR_NO_DAY || (run_end != LSR_NO_DAY &&
                                           day - run_end >= policy->migration_gap_days)) {
      run_start = day;
      run_end = LSR_NO_DAY;
    } else {
      run_end = LSR_NO_DAY;
    }
  }
  out->since = run_start;
  out->deadline = run_start + policy->migration_days - 1;
  out->state = on <= out->deadline || out->active - out->parked <= allowed ? LSR_MIGRATION_MIGRATING
                                                                          : LSR_MIGRATION_FRAUD;
}

unsigned lsr_ladder_due(const lsr_policy *policy, const lsr_ladder_case *c, lsr_day fraud_day,
                        lsr_day on)
{
  unsigned due = 0;
  if (c->first_step == LSR_NO_DAY)
    return on >= fraud_day ? LSR_STEP_EMAIL_CUSTOMER | LSR_STEP_NOTIFY_FRAUD_TEAM : 0;
  if (c->phoned == LSR_NO_DAY && on >= c->first_step + policy->phone_after_days)
    due |= LSR_STEP_PHONE_CUSTOMER;
  if (c->disabled == LSR_NO_DAY && on >= c->first_step + policy->disable_after_days)
    due |= LSR_STEP_DISABLE_KEY;
  return due;
}

lsr_admission lsr_admit_new_server(const lsr_migration *before, const lsr_migration *after,
                                   const lsr_policy *policy)
{
  if (after->active <= after->allowed) return LSR_ADMIT_OK;
  if (before->state == LSR_MIGRATION_FRAUD || after->state == LSR_MIGRATION_FRAUD)
    return LSR_ADMIT_WINDOW_OVER;
  if (after->active > after->allowed + policy->migration_extra) return LSR_ADMIT_TOO_MANY;
  return LSR_ADMIT_OK;
}
