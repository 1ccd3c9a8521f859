/*
 * keys.h -- license keys: 27 random Crockford base32 symbols (about 135
 * bits from the operating system) and one check symbol, a weighted sum
 * mod 37, which catches every single wrong symbol and every swap of
 * neighbours before any lookup.  Shown in four groups of seven:
 *
 *   7KQ2MXW-4RT9HB3-NC8DPFG-1YZ5ABX   (27 random symbols + 1 check symbol)
 */
#ifndef LICENSOR_KEYS_H
#define LICENSOR_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#define LSR_KEY_PAYLOAD 27
#define LSR_KEY_SYMBOLS 28             /* 27 random + 1 check */
#define LSR_KEY_GROUP 7
#define LSR_KEY_LEN 31                 /* with three dashes */

/* Writes a new key and a NUL into buf (at least LSR_KEY_LEN + 1 bytes).
 * False if libsodium (the random source) cannot be initialised. */
bool lsr_key_generate(char *buf);

/* Normalises a typed key (any case, dashes or spaces anywhere, O for 0 and
 * I or L for 1) into canonical form in buf; false unless it has exactly 28
 * symbols and a correct check symbol. */
bool lsr_key_normalise(const char *text, size_t len, char *buf);

#endif
