/*
 * fuzz_date.c -- libFuzzer target: lsr_date_parse on any bytes.  A date it
 * accepts must format back to the same ten bytes and lie in years 1-9999.
 */
#include "date.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  lsr_day day;
  char back[LSR_DATE_LEN + 1];
  if (!lsr_date_parse((const char *)data, size, &day)) return 0;
  if (day < LSR_DAY_MIN || day > LSR_DAY_MAX || size != LSR_DATE_LEN) abort();
  lsr_date_format(day, back);
  if (memcmp(back, data, LSR_DATE_LEN) != 0) abort();
  return 0;
}
