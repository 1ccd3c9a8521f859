/*
 * date.c -- day numbers, strict date parsing and month arithmetic.
 *
 * The civil <-> day conversions are the era-based algorithms described by
 * Howard Hinnant ("chrono-compatible low-level date algorithms"); they are
 * exact over the whole proleptic Gregorian calendar with integer maths only.
 * licensor's years are 1..9999, so the shifted year and day counts below
 * are never negative and plain division is floor division.
 */
#include "date.h"

#include <time.h>

lsr_day lsr_day_from_civil(int year, int month, int mday)
{
  long y = (long)year - (month <= 2);
  long era = y / 400;
  long yoe = y - era * 400;
  long mp = (month + 9) % 12;
  long doy = (153 * mp + 2) / 5 + mday - 1;
  long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return (lsr_day)(era * 146097 + doe - 719468);
}

void lsr_civil_from_day(lsr_day day, int *year, int *month, int *mday)
{
  long z = (long)day + 719468;
  long era = z / 146097;
  long doe = z - era * 146097;
  long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  long mp = (5 * doy + 2) / 153;
  long m = mp < 10 ? mp + 3 : mp - 9;
  *year = (int)(yoe + era * 400 + (m <= 2));
  *month = (int)m;
  *mday = (int)(doy - (153 * mp + 2) / 5 + 1);
}

static bool is_leap(int year)
{
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int month_length(int year, int month)
{
  static const int lengths[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
  return (month == 2 && is_leap(year)) ? 29 : lengths[month - 1];
}

/* Reads n ASCII digits; false on anything else. */
static bool read_digits(const char *s, int n, int *out)
{
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

bool lsr_date_parse(const char *s, size_t len, lsr_day *out)
{
  int y, m, d;
  if (len != LSR_DATE_LEN || s[4] != '-' || s[7] != '-') return false;
  if (!read_digits(s, 4, &y) || !read_digits(s + 5, 2, &m) || !read_digits(s + 8, 2, &d))
    return false;
  if (y < 1 || m < 1 || m > 12 || d < 1 || d > month_length(y, m)) return false;
  *out = lsr_day_from_civil(y, m, d);
  return true;
}

static void put_digits(char *buf, int v, int n)
{
  for (int i = n - 1; i >= 0; i--) {
    buf[i] = (char)('0' + v % 10);
    v /= 10;
  }
}

void lsr_date_format(lsr_day day, char *buf)
{
  int y, m, d;
  lsr_civil_from_day(day, &y, &m, &d);
  put_digits(buf, y, 4);
  buf[4] = '-';
  put_digits(buf + 5, m, 2);
  buf[7] = '-';
  put_digits(buf + 8, d, 2);
  buf[10] = '\0';
}

lsr_day lsr_add_months(lsr_day day, long months)
{
  int y, m, d;
  long index, year, month;
  lsr_civil_from_day(day, &y, &m, &d);
  index = (long)y * 12 + (m - 1) + months;
  if (index < 12 || index > 9999L * 12 + 11) return LSR_NO_DAY;
  year = index / 12;
  month = index % 12 + 1;
  if (d > month_length((int)year, (int)month)) d = month_length((int)year, (int)month);
  return lsr_day_from_civil((int)year, (int)month, d);
}

lsr_day lsr_term_end(lsr_day start, long months)
{
  lsr_day anniversary = lsr_add_months(start, months);
  return anniversary == LSR_NO_DAY ? LSR_NO_DAY : anniversary - 1;
}

lsr_day lsr_next_anniversary(lsr_day start, long months, lsr_day after)
{
  int y0, m0, d0, y1, m1, d1;
  long k;
  if (after < start) return lsr_add_months(start, months);
  /* Estimate k from the month distance, then step to the exact one: every
   * anniversary is computed from `start`, never from the previous one. */
  lsr_civil_from_day(start, &y0, &m0, &d0);
  lsr_civil_from_day(after, &y1, &m1, &d1);
  k = (((long)y1 - y0) * 12 + (m1 - m0)) / months;
  if (k < 1) k = 1;
  while (k > 1) {
    lsr_day prev = lsr_add_months(start, (k - 1) * months);
    if (prev == LSR_NO_DAY || prev <= after) break;
    k--;
  }
  for (;;) {
    lsr_day a = lsr_add_months(start, k * months);
    if (a == LSR_NO_DAY || a > after) return a;
    k++;
  }
}

lsr_day lsr_today(void)
{
  time_t now = time(NULL);
  return (lsr_day)(now / 86400 - (now % 86400 < 0));
}
