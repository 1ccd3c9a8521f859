/*
 * date.h -- calendar days as integer day numbers.
 *
 * A day number counts days from 1970-01-01 (day 0) in the proleptic
 * Gregorian calendar; licensor accepts years 1..9999 only.  Terms and
 * anniversaries are computed in whole months with the day of month clamped
 * to the end of the target month (doc/rules.md section 1).
 */
#ifndef LICENSOR_DATE_H
#define LICENSOR_DATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int32_t lsr_day;

/* "No date": absent optional fields (ms_expires, disabled, ...). */
#define LSR_NO_DAY INT32_MIN

#define LSR_DATE_LEN 10            /* "YYYY-MM-DD" */
#define LSR_DAY_MIN (-719162)      /* 0001-01-01 */
#define LSR_DAY_MAX 2932896        /* 9999-12-31 */

lsr_day lsr_day_from_civil(int year, int month, int mday);
void lsr_civil_from_day(lsr_day day, int *year, int *month, int *mday);

/* Strict "YYYY-MM-DD" (exactly 10 bytes, a real day, year 1..9999). */
bool lsr_date_parse(const char *s, size_t len, lsr_day *out);

/* Writes "YYYY-MM-DD" and a NUL into buf (at least 11 bytes). */
void lsr_date_format(lsr_day day, char *buf);

/* day + months, the day of month clamped to the target month's length.
 * Returns LSR_NO_DAY when the result leaves years 1..9999. */
lsr_day lsr_add_months(lsr_day day, long months);

/* Last covered day of a term of `months` months starting on `start`. */
lsr_day lsr_term_end(lsr_day start, long months);

/* The first anniversary start + k*months (k >= 1) that is later than
 * `after`; LSR_NO_DAY if it would leave the calendar. */
lsr_day lsr_next_anniversary(lsr_day start, long months, lsr_day after);

/* Today in UTC. */
lsr_day lsr_today(void);

#endif
