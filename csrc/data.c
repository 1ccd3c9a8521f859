/*
 * data.c -- the reader of catalogue data text (see data.h): a recursive
 * descent over a byte range that never reads past its end, keeps its depth
 * bounded, and hands each key, scalar and table to the caller's events.
 */
#include "data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *p, *end;
  int line;
  char *scratch;           /* unescaped strings; as long as the text */
  const lsr_data_events *events;
  void *ud;
  char *err;
  size_t errlen;
} reader;

static bool fail(reader *r, const char *message)
{
  snprintf(r->err, r->errlen, "line %d: %s", r->line, message);
  return false;
}

static bool stopped(reader *r)
{
  return fail(r, "stopped by the reader of the data");
}

static bool is_name_start(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
  return c >= '0' && c <= '9';
}

static bool is_name_char(char c)
{
  return is_name_start(c) || is_digit(c);
}

static void skip_space(reader *r)
{
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) {
    if (*r->p == '\n') r->line++;
    r->p++;
  }
}

static int hex_value(char c)
{
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The character an escape stands for (after the backslash); -1 if bad. */
static int escape(reader *r)
{
  static const char from[] = "abfnrtv\\\"'\n", to[] = "\a\b\f\n\r\t\v\\\"'\n";
  char c = *r->p++;
  const char *hit = strchr(from, c);
  if (c != '\0' && hit != NULL) {
    if (c == '\n') r->line++;
    return to[hit - from];
  }
  if (c == 'x') {
    int hi, lo;
    if (r->end - r->p < 2 || (hi = hex_value(r->p[0])) < 0 || (lo = hex_value(r->p[1])) < 0) return -1;
    r->p += 2;
    return hi * 16 + lo;
  }
  if (is_digit(c)) {
    int v = c - '0';
    for (int k = 0; k < 2 && r->p < r->end && is_digit(*r->p); k++) v = v * 10 + (*r->p++ - '0');
    return v <= 255 ? v : -1;
  }
  return -1;
}

static bool read_string(reader *r, lsr_data_scalar *out)
{
  char quote = *r->p++;
  size_t n = 0;
  for (;;) {
    char c;
    if (r->p >= r->end) return fail(r, "unfinished string");
    c = *r->p++;
    if (c == quote) break;
    if (c == '\n') return fail(r, "unfinished string");
    if (c == '\\') {
      int e;
      if (r->p >= r->end || (e = escape(r)) < 0) return fail(r, "bad escape in a string");
      c = (char)e;
    }
    r->scratch[n++] = c;
  }
  out->kind = LSR_DATA_STRING;
  out->s = r->scratch;
  out->len = n;
  return true;
}

static bool read_number(reader *r, lsr_data_scalar *out)
{
  char text[64];
  const char *start = r->p;
  size_t n;
  bool whole = true, digits = false;
  char *stop;
  if (r->p < r->end && *r->p == '-') r->p++;
  while (r->p < r->end && is_digit(*r->p)) { r->p++; digits = true; }
  if (r->p < r->end && *r->p == '.') {
    whole = false;
    r->p++;
    while (r->p < r->end && is_digit(*r->p)) { r->p++; digits = true; }
  }
  if (!digits) return fail(r, "malformed number");
  if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
    whole = false;
    r->p++;
    if (r->p < r->end && (*r->p == '+' || *r->p == '-')) r->p++;
    if (r->p >= r->end || !is_digit(*r->p)) return fail(r, "malformed number");
    while (r->p < r->end && is_digit(*r->p)) r->p++;
  }
  if (r->p < r->end && is_name_char(*r->p)) return fail(r, "malformed number");
  n = (size_t)(r->p - start);
  if (n >= sizeof text) return fail(r, "number too long");
  memcpy(text, start, n);
  text[n] = '\0';
  errno = 0;
  if (whole) {
    long long v = strtoll(text, &stop, 10);
    if (errno == 0 && *stop == '\0') {
      out->kind = LSR_DATA_INTEGER;
      out->integer = v;
      return true;
    }
  }
  errno = 0;
  out->number = strtod(text, &stop);
  if (*stop != '\0' || !isfinite(out->number)) return fail(r, "number out of range");
  out->kind = LSR_DATA_FLOAT;
  return true;
}

/* A name at r->p, its length in *len. */
static bool read_name(reader *r, const char **name, size_t *len)
{
  const char *start = r->p;
  if (r->p >= r->end || !is_name_start(*r->p)) return false;
  while (r->p < r->end && is_name_char(*r->p)) r->p++;
  *name = start;
  *len = (size_t)(r->p - start);
  return true;
}

static bool read_value(reader *r, int depth);

/* [key] = value, name = value, or a bare value (key: the next index). */
static bool read_field(reader *r, int depth, int64_t *index)
{
  lsr_data_scalar key;
  const char *save = r->p, *name;
  size_t len;
  int line = r->line;
  if (*r->p == '[') {
    r->p++;
    skip_space(r);
    if (r->p >= r->end) return fail(r, "unfinished key");
    if (*r->p == '"' || *r->p == '\'') {
      if (!read_string(r, &key)) return false;
    } else if (!read_number(r, &key)) {
      return false;
    }
    skip_space(r);
    if (r->p >= r->end || *r->p != ']') return fail(r, "']' expected");
    r->p++;
  } else if (read_name(r, &name, &len) && (skip_space(r), r->p < r->end && *r->p == '=') &&
             !(r->end - r->p > 1 && r->p[1] == '=')) {
    memcpy(r->scratch, name, len);
    key.kind = LSR_DATA_STRING;
    key.s = r->scratch;
    key.len = len;
  } else {
    r->p = save;   /* a bare value */
    r->line = line;
    key.kind = LSR_DATA_INTEGER;
    key.integer = (*index)++;
    return (r->events->key(r->ud, &key) || stopped(r)) && read_value(r, depth);
  }
  skip_space(r);
  if (r->p >= r->end || *r->p != '=') return fail(r, "'=' expected");
  r->p++;
  return (r->events->key(r->ud, &key) || stopped(r)) && read_value(r, depth);
}

static bool read_table(reader *r, int depth)
{
  int64_t index = 1;
  if (depth > LSR_DATA_MAX_DEPTH) return fail(r, "tables nested too deep");
  r->p++;
  if (!r->events->open(r->ud)) return stopped(r);
  for (;;) {
    skip_space(r);
    if (r->p >= r->end) return fail(r, "unfinished table");
    if (*r->p == '}') break;
    if (!read_field(r, depth, &index)) return false;
    skip_space(r);
    if (r->p < r->end && (*r->p == ',' || *r->p == ';')) r->p++;
    else if (r->p >= r->end || *r->p != '}') return fail(r, "',' or '}' expected");
  }
  r->p++;
  return r->events->close(r->ud) || stopped(r);
}

static bool read_value(reader *r, int depth)
{
  lsr_data_scalar v;
  const char *name;
  size_t len;
  skip_space(r);
  if (r->p >= r->end) return fail(r, "a value expected");
  if (*r->p == '{') return read_table(r, depth + 1);
  if (*r->p == '"' || *r->p == '\'') {
    if (!read_string(r, &v)) return false;
  } else if (*r->p == '-' || *r->p == '.' || is_digit(*r->p)) {
    if (!read_number(r, &v)) return false;
  } else if (read_name(r, &name, &len) && ((len == 4 && memcmp(name, "true", 4) == 0) ||
                                          (len == 5 && memcmp(name, "false", 5) == 0))) {
    v.kind = LSR_DATA_BOOLEAN;
    v.boolean = len == 4;
  } else {
    return fail(r, "a value expected (string, number, true, false or table)");
  }
  return r->events->scalar(r->ud, &v) || stopped(r);
}

bool lsr_data_parse(const char *text, size_t len, const lsr_data_events *events, void *ud,
                    char *err, size_t errlen)
{
  reader r;
  bool ok;
  r.p = text;
  r.end = text + len;
  r.line = 1;
  r.events = events;
  r.ud = ud;
  r.err = err;
  r.errlen = errlen;
  r.scratch = malloc(len + 1);
  if (r.scratch == NULL) return fail(&r, "not enough memory");
  skip_space(&r);
  if (r.end - r.p >= 6 && memcmp(r.p, "return", 6) == 0 && (r.end - r.p == 6 || !is_name_char(r.p[6])))
    r.p += 6;
  ok = read_value(&r, 0);
  if (ok) {
    skip_space(&r);
    if (r.p != r.end) ok = fail(&r, "unexpected text after the data");
  }
  free(r.scratch);
  return ok;
}
