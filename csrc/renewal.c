/*
 * renewal.c -- R15: where M&S ends after a renewal.
 *
 * Anniversaries are always counted from the chain's anchor (ms_start, or the
 * purchase day), never from the previous expiry, so clamped month ends do
 * not drift (2024-02-29 -> 2025-02-28 -> ... -> 2028-02-29).
 */
#include "rules.h"

bool lsr_renew_term(lsr_day anchor, lsr_day ms_expires, lsr_day on, long months,
                    int basis, lsr_day *new_anchor, lsr_day *new_expires)
{
  lsr_day current = ms_expires != LSR_NO_DAY ? ms_expires : anchor - 1;
  lsr_day next;
  bool lapsed = ms_expires == LSR_NO_DAY || on > ms_expires;
  if (lapsed && basis == LSR_BASIS_FROM_RENEWAL) {
    *new_anchor = on;
    *new_expires = lsr_term_end(on, months);
    return *new_expires != LSR_NO_DAY;
  }
  /* The next anniversary A after the current one: A - 1 > current. */
  next = lsr_next_anniversary(anchor, months, current + 1);
  if (next == LSR_NO_DAY) return false;
  *new_anchor = anchor;
  *new_expires = next - 1;
  return true;
}
