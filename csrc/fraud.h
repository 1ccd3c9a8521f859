/*
 * fraud.h -- the migration window of R9/R10: how many installations of a
 * key are active on a day, and since when the excess has run unbroken.
 */
#ifndef LICENSOR_FRAUD_H
#define LICENSOR_FRAUD_H

#include "catalogue.h"

typedef struct {
  lsr_day first_seen;
  lsr_day last_seen;       /* LSR_NO_DAY: never checked in after first_seen */
  lsr_day deactivated;     /* LSR_NO_DAY: still installed */
} lsr_installation;

typedef enum { LSR_MIGRATION_OK, LSR_MIGRATION_MIGRATING, LSR_MIGRATION_FRAUD } lsr_migration_state;

typedef struct {
  lsr_migration_state state;
  int allowed;
  int active;
  lsr_day since;           /* first day of the current excess run (T) */
  lsr_day deadline;        /* last day of the migration window (T + days - 1) */
} lsr_migration;

/* One end of an installation's active interval; scratch for the sweep. */
typedef struct {
  lsr_day day;
  int delta;
} lsr_edge;

/* Installations allowed by R9. */
int lsr_allowed_installations(bool failover);

/* Is the installation active on `day` (R9)? */
bool lsr_installation_active(const lsr_installation *inst, int grace_days, lsr_day day);

/* R10 on `on`; scratch must hold 2*n edges. */
void lsr_migration_window(const lsr_installation *inst, int n, int allowed,
                          const lsr_policy *policy, lsr_day on, lsr_edge *scratch,
                          lsr_migration *out);

#endif
