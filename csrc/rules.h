/*
 * rules.h -- the license rules of doc/rules.md section 4 over a parsed license.
 *
 * Every function here is pure: it reads the compiled catalogue and a license
 * already validated by the binding, and answers with a code (and an index
 * or an amount).  Messages are the binding's job.
 */
#ifndef LICENSOR_RULES_H
#define LICENSOR_RULES_H

#include "catalogue.h"

typedef enum { LSR_PERPETUAL, LSR_LEASE, LSR_TRIAL } lsr_kind;

typedef struct {
  const lsr_product *product;
  lsr_kind kind;
  int edition;             /* -1 when the license names none */
  lsr_level level;         /* LSR_LEVEL_NONE when the license names none */
  lsr_day start;
  lsr_day ms_expires;      /* LSR_NO_DAY: no M&S */
  lsr_day disabled;        /* LSR_NO_DAY: not disabled */
  lsr_day lease_ended;     /* LSR_NO_DAY: lease still running */
  int64_t trial_days;
  int64_t version_lock;    /* 0: not tied to a major */
} lsr_license;

/* Outcomes, in the order doc/rules.md section 5 gives them priority. */
typedef enum {
  LSR_OK = 0,
  LSR_DISABLED,
  LSR_NOT_STARTED,
  LSR_EXPIRED,
  LSR_NO_BUILD,
  LSR_NEWER_THAN_ELIGIBLE,
  LSR_DIFFERENT_MAJOR,
  LSR_SAME_LICENSE,
  LSR_DOWNGRADE,
  LSR_NO_PRICE,
  LSR_NOT_OLDER,
  LSR_ROLLBACK_BARRIER,
  LSR_UNKNOWN_BUILD
} lsr_code;

typedef enum {
  LSR_ADDON_ACTIVE,
  LSR_ADDON_NOT_OWNED,
  LSR_ADDON_EXPIRED,
  LSR_ADDON_MS_EXPIRED,
  LSR_ADDON_LICENSE_INVALID,
  LSR_ADDON_REQUIRES_UPGRADE
} lsr_addon_state;

/* disabled / not_started / expired on `on`, else LSR_OK (R1, R6, R7). */
lsr_code lsr_validity(const lsr_license *lic, lsr_day on);

/* Last day a trial covers. */
lsr_day lsr_trial_end(const lsr_license *lic);

/* True while M&S covers `on` (R2). */
bool lsr_ms_active(const lsr_license *lic, lsr_day on);

/* R1-R7: the newest build the license may install; *build is its index. */
lsr_code lsr_eligible(const lsr_license *lic, lsr_day on, int *build);

/* R5: may the build with index `build` be installed on `on`? */
lsr_code lsr_can_install(const lsr_license *lic, int build, lsr_day on);

/* R8.  paid_through is the add-on's last paid day (LSR_NO_DAY: not owned);
 * installed is a build index or -1 when not given. */
lsr_addon_state lsr_addon_state_of(const lsr_license *lic, lsr_day paid_through,
                                   int installed, lsr_day on);

/* R13: rolling back from build index `from` to `to`. */
lsr_code lsr_can_rollback(const lsr_product *p, int from, int to);

typedef struct {
  int64_t major;           /* 0: the eligible build's major */
  int edition;             /* -1: the license's own */
  lsr_level level;         /* LSR_LEVEL_NONE: the license's own */
} lsr_upgrade_target;

/* R12: price difference in *amount; *major receives the major quoted. */
lsr_code lsr_quote_upgrade(const lsr_license *lic, const lsr_upgrade_target *target,
                           lsr_day on, int64_t *amount, int64_t *major);

/* R15: the M&S term after a renewal on `on`.  anchor is ms_start (or start),
 * ms_expires may be LSR_NO_DAY (never had M&S).  *new_anchor receives the
 * anchor of the renewed chain.  Returns false if it leaves the calendar. */
bool lsr_renew_term(lsr_day anchor, lsr_day ms_expires, lsr_day on, long months,
                    int basis, lsr_day *new_anchor, lsr_day *new_expires);

#endif
