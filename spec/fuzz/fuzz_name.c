/*
 * fuzz_name.c -- libFuzzer target: lsr_name_valid on any bytes.  An
 * accepted name has 1 to LSR_NAME_MAX bytes and no byte below 0x20.
 */
#include "names.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *why = NULL;
  if (!lsr_name_valid((const char *)data, size, &why)) {
    if (why == NULL) abort();
    return 0;
  }
  if (size == 0 || size > LSR_NAME_MAX) abort();
  for (size_t i = 0; i < size; i++)
    if (data[i] < 0x20 || data[i] == 0x7f) abort();
  return 0;
}
