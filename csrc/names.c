/*
 * names.c -- checking names from outside (see names.h): a strict UTF-8
 * decoder that refuses overlong forms, surrogates and code points past
 * U+10FFFF, and the characters that would hide or reorder text.
 */
#include "names.h"

#include <stdint.h>

/* Decodes one code point at s[*i], advancing *i; -1 if malformed. */
static int32_t next_code_point(const unsigned char *s, size_t len, size_t *i)
{
  static const int32_t min_of_length[] = { 0, 0, 0x80, 0x800, 0x10000 };
  unsigned char lead = s[*i];
  int32_t cp;
  size_t n;
  if (lead < 0x80) {
    (*i)++;
    return lead;
  }
  if (lead >= 0xC2 && lead <= 0xDF) { n = 2; cp = lead & 0x1F; }
  else if (lead >= 0xE0 && lead <= 0xEF) { n = 3; cp = lead & 0x0F; }
  else if (lead >= 0xF0 && lead <= 0xF4) { n = 4; cp = lead & 0x07; }
  else return -1;
  if (len - *i < n) return -1;
  for (size_t k = 1; k < n; k++) {
    unsigned char c = s[*i + k];
    if ((c & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (c & 0x3F);
  }
  if (cp < min_of_length[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  *i += n;
  return cp;
}

static bool hidden(int32_t cp)
{
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

bool lsr_name_valid(const char *s, size_t len, const char **why)
{
  const unsigned char *u = (const unsigned char *)s;
  if (len == 0) {
    *why = "is empty";
    return false;
  }
  if (len > LSR_NAME_MAX) {
    *why = "is longer than 255 bytes";
    return false;
  }
  for (size_t i = 0; i < len;) {
    int32_t cp = next_code_point(u, len, &i);
    if (cp < 0) {
      *why = "is not valid UTF-8";
      return false;
    }
    if (hidden(cp)) {
      *why = "holds a control or bidirectional-override character";
      return false;
    }
  }
  return true;
}
