/*
 * names.h -- what a name from outside may be: a server name, an owner, a
 * reason.  One limit and one check, so that the gateway, the store and
 * the command line cannot disagree.
 */
#ifndef LICENSOR_NAMES_H
#define LICENSOR_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* The longest name, in bytes. */
#define LSR_NAME_MAX 255

/* True if s (len bytes) is a name: 1 to LSR_NAME_MAX bytes of valid UTF-8
 * (shortest forms, no surrogates) without control characters (C0, DEL,
 * C1) or bidirectional overrides and isolates (U+202A-U+202E,
 * U+2066-U+2069).  Otherwise *why says what is wrong. */
bool lsr_name_valid(const char *s, size_t len, const char **why);

#endif
