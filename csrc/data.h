/*
 * data.h -- catalogue data as text: the Lua table-constructor subset that
 * licensor writes (`return { products = { ... }, ["odd key"] = 1 }`) and
 * reads back without running any code.
 *
 * Grammar: ["return"] value.  A value is a string ("..." or '...', with
 * Lua's escapes \a \b \f \n \r \t \v \\ \" \' \<newline> \ddd \xXX), a
 * number (decimal, optional sign, fraction and exponent), true, false, or
 * a table: { field, field, ... } with fields `name = value`,
 * `[string-or-number] = value` or a bare value (the next array index),
 * separated by "," or ";".  Nothing else is accepted: no expressions,
 * names of variables, calls, comments or nil.  Tables nest at most
 * LSR_DATA_MAX_DEPTH deep.  Plain C; the binding builds Lua tables from
 * the events below (l_data.c).
 */
#ifndef LICENSOR_DATA_H
#define LICENSOR_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LSR_DATA_MAX_DEPTH 64

typedef enum { LSR_DATA_STRING, LSR_DATA_INTEGER, LSR_DATA_FLOAT, LSR_DATA_BOOLEAN } lsr_data_kind;

/* A scalar: a key or a value.  Strings point into a scratch buffer that is
 * valid only during the callback. */
typedef struct {
  lsr_data_kind kind;
  const char *s;
  size_t len;
  int64_t integer;
  double number;
  bool boolean;
} lsr_data_scalar;

/* What the parser found, in order.  Each callback answers false to stop
 * (lsr_data_parse then fails with "stopped"). */
typedef struct {
  bool (*key)(void *ud, const lsr_data_scalar *key);      /* the next field's key */
  bool (*scalar)(void *ud, const lsr_data_scalar *value); /* for the last key, or the root */
  bool (*open)(void *ud);                                 /* a table value starts */
  bool (*close)(void *ud);                                /* and ends */
} lsr_data_events;

/* Parses text (len bytes).  On failure writes "line N: message" into err
 * and returns false. */
bool lsr_data_parse(const char *text, size_t len, const lsr_data_events *events, void *ud,
                    char *err, size_t errlen);

#endif
