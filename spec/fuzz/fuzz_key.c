/*
 * fuzz_key.c -- libFuzzer target: lsr_key_normalise on any bytes.  A key
 * it accepts must be canonical and normalise to itself.
 */
#include "keys.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char key[LSR_KEY_LEN + 1], again[LSR_KEY_LEN + 1];
  if (!lsr_key_normalise((const char *)data, size, key)) return 0;
  if (strlen(key) != LSR_KEY_LEN) abort();
  if (!lsr_key_normalise(key, LSR_KEY_LEN, again) || strcmp(key, again) != 0) abort();
  return 0;
}
