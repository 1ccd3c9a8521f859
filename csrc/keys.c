/*
 * keys.c -- generating and checking license keys (see keys.h).
 */
#include "keys.h"

#include <sodium.h>

#include <stdint.h>

static const char ALPHABET[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Value of a symbol, folding case and Crockford's look-alikes (O is 0,
 * I and L are 1); -1 if not one. */
static int symbol_value(char c)
{
  static const signed char VALUES[26] = {
    /* A  B  C  D  E  F  G  H  I  J  K  L  M  N  O  P  Q  R  S   T   U   V   W   X   Y   Z */
      10, 11, 12, 13, 14, 15, 16, 17, 1, 18, 19, 1, 20, 21, 0, 22, 23, 24, 25, 26, -1, 27, 28, 29, 30, 31
  };
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return VALUES[c - 'a'];
  if (c >= 'A' && c <= 'Z') return VALUES[c - 'A'];
  return -1;
}

/* The weighted sum modulo 37 of the payload (see keys.h). */
static int check_value(const int *values)
{
  int sum = 0;
  for (int i = 0; i < LSR_KEY_PAYLOAD; i++) sum += (i + 1) * values[i];
  return sum % 37;
}

/* The one random source of licensor.core: libsodium's (getrandom, or the
 * system's equivalent), as for signing keys and claim tokens. */
static bool random_bytes(unsigned char *out, size_t n)
{
  if (sodium_init() < 0) return false;
  randombytes_buf(out, n);
  return true;
}

static void write_grouped(const int *values, char *buf)
{
  int out = 0;
  for (int i = 0; i < LSR_KEY_SYMBOLS; i++) {
    if (i > 0 && i % LSR_KEY_GROUP == 0) buf[out++] = '-';
    buf[out++] = ALPHABET[values[i]];
  }
  buf[out] = '\0';
}

bool lsr_key_generate(char *buf)
{
  unsigned char bytes[17];   /* 136 bits for 27 symbols of 5 bits */
  int values[LSR_KEY_SYMBOLS];
  do {
    if (!random_bytes(bytes, sizeof bytes)) return false;
    for (int i = 0; i < LSR_KEY_PAYLOAD; i++) {
      int bit = i * 5, value = 0;
      for (int b = 0; b < 5; b++, bit++)
        value = (value << 1) | ((bytes[bit / 8] >> (7 - bit % 8)) & 1);
      values[i] = value;
    }
    values[LSR_KEY_PAYLOAD] = check_value(values);
  } while (values[LSR_KEY_PAYLOAD] >= 32);
  write_grouped(values, buf);
  return true;
}

bool lsr_key_normalise(const char *text, size_t len, char *buf)
{
  int values[LSR_KEY_SYMBOLS], n = 0;
  for (size_t i = 0; i < len; i++) {
    int v;
    if (text[i] == '-' || text[i] == ' ') continue;
    v = symbol_value(text[i]);
    if (v < 0 || n == LSR_KEY_SYMBOLS) return false;
    values[n++] = v;
  }
  if (n != LSR_KEY_SYMBOLS || check_value(values) != values[LSR_KEY_PAYLOAD]) return false;
  write_grouped(values, buf);
  return true;
}
