/*
 * fuzz_data.c -- libFuzzer target: the catalogue data reader on any bytes.
 * Checks that events nest (every close has its open, keys come inside
 * tables) and that a parse that succeeds closed every table it opened.
 */
#include "data.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
  int depth;
  long events;
} tally;

static bool on_key(void *ud, const lsr_data_scalar *key)
{
  tally *t = ud;
  if (t->depth < 1 || (key->kind == LSR_DATA_STRING && key->s == NULL)) abort();
  t->events++;
  return true;
}

static bool on_scalar(void *ud, const lsr_data_scalar *value)
{
  tally *t = ud;
  if (value->kind == LSR_DATA_STRING && value->len > 0 && value->s == NULL) abort();
  t->events++;
  return true;
}

static bool on_open(void *ud)
{
  tally *t = ud;
  if (++t->depth > LSR_DATA_MAX_DEPTH + 1) abort();
  return true;
}

static bool on_close(void *ud)
{
  tally *t = ud;
  if (--t->depth < 0) abort();
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const lsr_data_events events = { on_key, on_scalar, on_open, on_close };
  tally t = { 0, 0 };
  char err[256];
  if (lsr_data_parse((const char *)data, size, &events, &t, err, sizeof err) && t.depth != 0) abort();
  return 0;
}
