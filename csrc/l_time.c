/*
 * l_time.c -- days and clocks for Lua: licensor.day, licensor.date,
 * licensor.today, core.monotonic_us for timing writes and core.monotonic_ms
 * for the gateway's cache ages and retry times.  Day numbers count days
 * since 1970-01-01 (see date.h).  Not for the day a workflow is recorded
 * on: that is licensor.today (the wall clock, UTC) or the caller's day.
 */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime */
#include "lbind.h"

#include <time.h>

static int l_day(lua_State *L)
{
  lsr_day day;
  if (lb_read_date(L, 1, &day) != LB_DATE_OK) return lb_bad_date(L, 1, "date");
  lua_pushinteger(L, day);
  return 1;
}

/* licensor.date(day_number) -> "YYYY-MM-DD". */
static int l_date(lua_State *L)
{
  long long day = 0;
  if (!lsr_tointeger_exact(L, 1, &day))
    luaL_argerror(L, 1, "whole day number expected");
  if (day < LSR_DAY_MIN || day > LSR_DAY_MAX)
    return lb_fail(L, "invalid_date", "day %d is outside years 1-9999", (int)(day < 0 ? -1 : day));
  lb_push_date(L, (lsr_day)day);
  return 1;
}

/* core.monotonic_us() -> microseconds on a clock that never goes back
 * (for measuring how long a worker is held by a write). */
static int l_monotonic_us(lua_State *L)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec * 1e6 + (lua_Number)(ts.tv_nsec / 1000));
  return 1;
}

/* core.monotonic_ms() -> whole milliseconds on a clock that never goes
 * back nor jumps with the wall clock (for how old a worker's cached read
 * is and when to retry opening a store: ngx.now() is the wall clock as of
 * the last event loop turn). */
static int l_monotonic_ms(lua_State *L)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + (lua_Integer)(ts.tv_nsec / 1000000));
  return 1;
}

/* core.epoch_ms() -> milliseconds since 1970 on the wall clock: the times
 * outbox claims and backoffs end at, compared across processes and hosts
 * (os.time's whole seconds would stretch a 1.5 s claim to 2.5). */
static int l_epoch_ms(lua_State *L)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + (lua_Integer)(ts.tv_nsec / 1000000));
  return 1;
}

/* licensor.today() -> today's date (UTC). */
static int l_today(lua_State *L)
{
  lb_push_date(L, lsr_today());
  return 1;
}


static const luaL_Reg time_functions[] = {
  { "day", l_day },
  { "date", l_date },
  { "today", l_today },
  { "monotonic_us", l_monotonic_us },
  { "monotonic_ms", l_monotonic_ms },
  { "epoch_ms", l_epoch_ms },
  { NULL, NULL }
};

void lb_open_time(lua_State *L, int module, int mt)
{
  lb_setfuncs(L, module, mt, time_functions);
}
