/*
 * pricing.c -- edition/level upgrades (R12): the price difference inside
 * the price table of one major version.
 */
#include "rules.h"

lsr_code lsr_quote_upgrade(const lsr_license *lic, const lsr_upgrade_target *target,
                           lsr_day on, int64_t *amount, int64_t *major)
{
  int build, edition;
  lsr_level level;
  int64_t from_price, to_price;
  lsr_code code = lsr_eligible(lic, on, &build);
  if (code != LSR_OK) return code;
  *major = lic->product->builds[build].major;
  if (target->major != 0 && target->major != *major) return LSR_DIFFERENT_MAJOR;
  edition = target->edition >= 0 ? target->edition : lic->edition;
  level = target->level != LSR_LEVEL_NONE ? target->level : lic->level;
  if (edition == lic->edition && level == lic->level) return LSR_SAME_LICENSE;
  /* Editions are ranked by their position in the catalogue. */
  if (edition < lic->edition || level < lic->level) return LSR_DOWNGRADE;
  from_price = lsr_find_price(lic->product, *major, lic->edition, lic->level);
  to_price = lsr_find_price(lic->product, *major, edition, level);
  if (from_price < 0 || to_price < 0) return LSR_NO_PRICE;
  *amount = to_price - from_price;
  return LSR_OK;
}
