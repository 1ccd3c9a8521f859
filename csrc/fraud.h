/*
 * fraud.h -- the migration window of R9/R10: how many installations of a
 * key hold a slot on a day, and since when the excess has run unbroken.
 *
 * A slot is held by an installation active under R9, and also by one that
 * is no longer active but whose certificate still lives (held_until): a
 * machine with a certificate that verifies runs whatever the store says.
 */
#ifndef LICENSOR_FRAUD_H
#define LICENSOR_FRAUD_H

#include "catalogue.h"

typedef struct {
  lsr_day first_seen;
  lsr_day last_seen;       /* LSR_NO_DAY: never checked in after first_seen */
  lsr_day deactivated;     /* LSR_NO_DAY: still installed */
  lsr_day held_until;      /* last day its newest certificate verifies; LSR_NO_DAY: none */
} lsr_installation;

typedef enum { LSR_MIGRATION_OK, LSR_MIGRATION_MIGRATING, LSR_MIGRATION_FRAUD } lsr_migration_state;

typedef struct {
  lsr_migration_state state;
  int allowed;
  int active;              /* installations holding a slot on the day */
  int parked;              /* of those: deactivated, held by a certificate only */
  lsr_day since;           /* first day of the current excess run (T) */
  lsr_day deadline;        /* last day of the migration window (T + days - 1) */
} lsr_migration;

/* One end of an installation's active interval; scratch for the sweep. */
typedef struct {
  lsr_day day;
  int delta;
} lsr_edge;

/* Installations allowed by R9 (1, or 2 with fail-over), plus the
 * policy's extra_servers. */
int lsr_allowed_installations(bool failover, const lsr_policy *policy);

/* Is the installation active on `day` (R9)? */
bool lsr_installation_active(const lsr_installation *inst, int grace_days, lsr_day day);

/* Does it hold a slot on `day`: active, or its certificate still lives? */
bool lsr_installation_holds(const lsr_installation *inst, int grace_days, lsr_day day);

/* R10 on `on`; scratch must hold 2*n edges.  An excess is fraud once the
 * window is over, unless it is made only of parked slots (deactivated
 * servers whose certificates still live): those end by themselves, on
 * their held_until, and an honest move never goes up the ladder. */
void lsr_migration_window(const lsr_installation *inst, int n, int allowed,
                          const lsr_policy *policy, lsr_day on, lsr_edge *scratch,
                          lsr_migration *out);

typedef enum {
  LSR_ADMIT_OK,
  LSR_ADMIT_TOO_MANY,          /* beyond allowance + migration_extra */
  LSR_ADMIT_WINDOW_OVER        /* the key's excess is already fraud */
} lsr_admission;

/* R10: may one more server be activated?  before is the window without
 * it, after the window with it counted from `on`. */
lsr_admission lsr_admit_new_server(const lsr_migration *before, const lsr_migration *after,
                                   const lsr_policy *policy);

/* R11: a fraud case's ladder.  Days a step was taken, LSR_NO_DAY if not. */
typedef struct {
  lsr_day first_step;      /* email the customer + notify the fraud team */
  lsr_day phoned;
  lsr_day disabled;
} lsr_ladder_case;

enum {
  LSR_STEP_EMAIL_CUSTOMER = 1,
  LSR_STEP_NOTIFY_FRAUD_TEAM = 2,
  LSR_STEP_PHONE_CUSTOMER = 4,
  LSR_STEP_DISABLE_KEY = 8
};

/* The steps due on `on` for a case that turned fraud on fraud_day, as a
 * set of LSR_STEP_ bits.  Later steps are timed from the day the first step
 * was actually taken, so a late sweep never shortens the warning period;
 * a step already taken is never due again. */
unsigned lsr_ladder_due(const lsr_policy *policy, const lsr_ladder_case *c, lsr_day fraud_day,
                        lsr_day on);

#endif
