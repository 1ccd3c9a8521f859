/*
 * licensor.c -- the Lua binding of the licensor core (module licensor.core).
 *
 * This is the only C file that talks to Lua.  It turns Lua tables into the
 * plain structures of catalogue.h, rules.h and fraud.h, calls the rules and
 * turns the answers back into Lua values, io.open style: data problems are
 * `nil, message, code`, programming errors raise through luaL_argerror.
 *
 * Hot path notes (cat:eligible): license fields are read with lua_rawget on
 * key strings kept as closure upvalues (no hashing of C strings), and the
 * answer is a build record table made once when the catalogue is compiled,
 * so a query allocates nothing.  Build records are shared: treat them as
 * read-only.
 */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime, strncasecmp */
#include "compat.h"

#include "catalogue.h"
#include "export.h"
#include "fraud.h"
#include "keys.h"
#include "rules.h"
#include "store.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#if defined(__GNUC__)
#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define PRINTF_LIKE(fmt, args)
#endif

#define CATALOGUE_MT "licensor.catalogue"
#define STORE_MT "licensor.db"
#define ERRLEN 512

/* Limits that keep a hostile catalogue from exhausting memory. */
#define MAX_PRODUCTS 10000
#define MAX_BUILDS 1000000
#define MAX_NAMES 256
#define MAX_NAME_LEN 256
#define MAX_INSTALLATIONS 100000

/* Upvalues shared by every function of the module: the catalogue metatable
 * and the interned key strings the hot path reads with lua_rawget. */
enum {
  UV_MT = 1,
  UV_PRODUCT, UV_KIND, UV_EDITION, UV_LEVEL, UV_START, UV_MS_EXPIRES,
  UV_MS_START, UV_DISABLED, UV_LEASE_ENDED, UV_TRIAL_DAYS, UV_VERSION_LOCK,
  UV_ADDONS, UV_FAILOVER, UV_KEY, UV_PERPETUAL, UV_LEASE, UV_TRIAL,
  UV_UNLIMITED,
  UV_COUNT = UV_UNLIMITED
};

static const char *const upvalue_strings[] = {
  "product", "kind", "edition", "level", "start", "ms_expires",
  "ms_start", "disabled", "lease_ended", "trial_days", "version_lock",
  "addons", "failover", "key", "perpetual", "lease", "trial",
  "unlimited"
};

#define UV(n) lua_upvalueindex(n)

typedef struct {
  lsr_catalogue *cat;   /* NULL once closed */
} catalogue_box;

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static int push_failure(lua_State *L, int first, const char *code)
{
  /* Expects the message on top of the stack. */
  if (first) lua_pushboolean(L, 0);
  else lua_pushnil(L);
  lua_insert(L, -2);
  lua_pushstring(L, code);
  return 3;
}

static int fail(lua_State *L, const char *code, const char *fmt, ...) PRINTF_LIKE(3, 4);

static int fail(lua_State *L, const char *code, const char *fmt, ...)
{
  char msg[ERRLEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lua_pushstring(L, msg);
  return push_failure(L, 0, code);
}

static void push_date(lua_State *L, lsr_day day)
{
  char buf[LSR_DATE_LEN + 1];
  lsr_date_format(day, buf);
  lua_pushlstring(L, buf, LSR_DATE_LEN);
}

static const char *date_text(lsr_day day, char *buf)
{
  lsr_date_format(day, buf);
  return buf;
}

/* Raises unless the argument is a table. */
static void check_table(lua_State *L, int arg, const char *what)
{
  if (lua_type(L, arg) != LUA_TTABLE)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s table expected, got %s", what,
                                          luaL_typename(L, arg)));
}

/* Checks self (argument 1) and fixes the stack at nargs arguments, so that
 * absent optional arguments read as nil however much is pushed later.  The
 * metatable it leaves above them is harmless and saves a pop. */
static lsr_catalogue *check_catalogue(lua_State *L, int nargs)
{
  catalogue_box *box;
  lua_settop(L, nargs);
  box = lua_touserdata(L, 1);
  if (box == NULL || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, UV(UV_MT)))
    luaL_argerror(L, 1, "catalogue expected (use cat:method(...))");
  if (box->cat == NULL) luaL_argerror(L, 1, "catalogue is closed");
  return box->cat;
}

/* ------------------------------------------------------------------ */
/* Dates                                                               */
/* ------------------------------------------------------------------ */

enum { DATE_OK = 0, DATE_ABSENT, DATE_BAD };

/* Reads a date at stack index idx (nil is DATE_ABSENT). */
static int read_date(lua_State *L, int idx, lsr_day *out)
{
  size_t len;
  const char *s;
  /* One call on the usual path.  lua_tolstring turns a number into a string
   * in place (on our stack copy), and no number's text parses as a date. */
  s = lua_tolstring(L, idx, &len);
  if (s == NULL) return lua_isnoneornil(L, idx) ? DATE_ABSENT : DATE_BAD;
  return lsr_date_parse(s, len, out) ? DATE_OK : DATE_BAD;
}

static int bad_date(lua_State *L, int idx, const char *field)
{
  if (lua_type(L, idx) == LUA_TSTRING)
    return fail(L, "invalid_date", "%s: '%s' is not a date (YYYY-MM-DD, years 1-9999)",
                field, lua_tostring(L, idx));
  return fail(L, "invalid_date", "%s: date string YYYY-MM-DD expected, got %s", field,
              luaL_typename(L, idx));
}

/* The optional `on` argument; today (UTC) when absent.  0 or a failure count. */
static int read_on(lua_State *L, int arg, lsr_day *on)
{
  switch (read_date(L, arg, on)) {
  case DATE_OK: return 0;
  case DATE_ABSENT: *on = lsr_today(); return 0;
  default: return bad_date(L, arg, "on");
  }
}

/* ------------------------------------------------------------------ */
/* Licenses                                                            */
/* ------------------------------------------------------------------ */

/* Writes "license 'KEY'" (or "license") into buf; returns its length.
 * Messages are formatted in C buffers: one Lua string per failure. */
static size_t license_label(lua_State *L, int lic_idx, char *buf, size_t size)
{
  int n;
  lua_pushvalue(L, UV(UV_KEY));
  if (lsr_rawget(L, lic_idx) == LUA_TSTRING)
    n = snprintf(buf, size, "license '%.64s'", lua_tostring(L, -1));
  else
    n = snprintf(buf, size, "license");
  lua_pop(L, 1);
  return n < 0 ? 0 : (size_t)n;
}

static int license_fail(lua_State *L, int lic_idx, const char *code, const char *fmt, ...)
  PRINTF_LIKE(4, 5);

static int license_fail(lua_State *L, int lic_idx, const char *code, const char *fmt, ...)
{
  char msg[ERRLEN];
  va_list ap;
  size_t used = license_label(L, lic_idx, msg, sizeof msg - 2);
  msg[used++] = ':';
  msg[used++] = ' ';
  va_start(ap, fmt);
  vsnprintf(msg + used, sizeof msg - used, fmt, ap);
  va_end(ap);
  lua_pushstring(L, msg);
  return push_failure(L, 0, code);
}

/* Pushes lic[key] where key is the upvalue string uv. */
static int get_field(lua_State *L, int lic_idx, int uv)
{
  lua_pushvalue(L, UV(uv));
  return lsr_rawget(L, lic_idx);
}

/* Validates the date at stack index v, the value of field uv. */
static int date_field(lua_State *L, int lic_idx, int uv, int v, bool required, lsr_day *out)
{
  int r = read_date(L, v, out);
  const char *field = upvalue_strings[uv - UV_PRODUCT];
  if (r == DATE_OK) return 0;
  if (r == DATE_ABSENT) {
    *out = LSR_NO_DAY;
    if (!required) return 0;
    return license_fail(L, lic_idx, "invalid_date", "field '%s' is required (YYYY-MM-DD)", field);
  }
  if (lua_type(L, v) == LUA_TSTRING)
    return license_fail(L, lic_idx, "invalid_date", "field '%s': '%s' is not a date (YYYY-MM-DD)",
                        field, lua_tostring(L, v));
  return license_fail(L, lic_idx, "invalid_date", "field '%s': date string expected, got %s",
                      field, luaL_typename(L, v));
}

/* Pushes lic[field] and validates it as a date (for callers outside the
 * hot path). */
static int take_date_field(lua_State *L, int lic_idx, int uv, bool required, lsr_day *out)
{
  get_field(L, lic_idx, uv);
  return date_field(L, lic_idx, uv, lua_gettop(L), required, out);
}

/* A positive integer at stack index v (nil: *out = 0). */
static int count_field(lua_State *L, int lic_idx, int uv, int v, int t, long long max, int64_t *out)
{
  long long n;
  if (t == LUA_TNIL) {
    *out = 0;
    return 0;
  }
  if (lsr_tointeger_exact(L, v, &n) && n >= 1 && n <= max) {
    *out = n;
    return 0;
  }
  return license_fail(L, lic_idx, "invalid_license", "field '%s' must be a whole number from 1 to %s",
                      upvalue_strings[uv - UV_PRODUCT], max == LSR_INT_MAX ? "2^53-1" : "36500");
}

/* A level: positive integer or "unlimited", at stack index idx. */
static bool read_level(lua_State *L, int idx, lsr_level *out)
{
  long long v;
  if (lua_rawequal(L, idx, UV(UV_UNLIMITED))) {
    *out = LSR_LEVEL_UNLIMITED;
    return true;
  }
  if (lsr_tointeger_exact(L, idx, &v) && v >= 1) {
    *out = v;
    return true;
  }
  return false;
}

/* The product named by lic.product (value at stack index v). */
static int product_field(lua_State *L, const lsr_catalogue *cat, int lic_idx, int v, int t,
                         lsr_license *lic)
{
  size_t len;
  const char *id;
  if (t != LUA_TSTRING)
    return license_fail(L, lic_idx, "invalid_license", "field 'product' must be a product id string");
  id = lua_tolstring(L, v, &len);
  lic->product = lsr_find_product(cat, id, len);
  if (lic->product == NULL)
    return license_fail(L, lic_idx, "unknown_product", "unknown product '%s'", id);
  return 0;
}

static int read_product(lua_State *L, const lsr_catalogue *cat, int lic_idx, lsr_license *lic)
{
  int t = get_field(L, lic_idx, UV_PRODUCT);
  return product_field(L, cat, lic_idx, lua_gettop(L), t, lic);
}

static int kind_field(lua_State *L, int lic_idx, int v, int t, lsr_license *lic)
{
  if (t == LUA_TNIL || lua_rawequal(L, v, UV(UV_PERPETUAL))) lic->kind = LSR_PERPETUAL;
  else if (lua_rawequal(L, v, UV(UV_LEASE))) lic->kind = LSR_LEASE;
  else if (lua_rawequal(L, v, UV(UV_TRIAL))) lic->kind = LSR_TRIAL;
  else if (t == LUA_TSTRING)
    return license_fail(L, lic_idx, "invalid_license",
                        "kind '%s' is not perpetual, lease or trial", lua_tostring(L, v));
  else
    return license_fail(L, lic_idx, "invalid_license", "field 'kind' must be a string, got %s",
                        luaL_typename(L, v));
  return 0;
}

static int edition_field(lua_State *L, int lic_idx, int v, int t, lsr_license *lic)
{
  size_t len;
  const char *name;
  lic->edition = -1;
  if (t == LUA_TNIL) return 0;
  if (t != LUA_TSTRING)
    return license_fail(L, lic_idx, "invalid_license", "field 'edition' must be a string, got %s",
                        luaL_typename(L, v));
  name = lua_tolstring(L, v, &len);
  lic->edition = lsr_find_edition(lic->product, name, len);
  if (lic->edition < 0)
    return license_fail(L, lic_idx, "invalid_license", "product '%s' has no edition '%s'",
                        lic->product->id, name);
  return 0;
}

static int level_field(lua_State *L, int lic_idx, int v, int t, lsr_license *lic)
{
  lic->level = LSR_LEVEL_NONE;
  if (t == LUA_TNIL || read_level(L, v, &lic->level)) return 0;
  return license_fail(L, lic_idx, "invalid_license",
                      "field 'level' must be a positive whole number or \"unlimited\"");
}

/* The fields the rules read, in validation order. */
enum {
  F_PRODUCT, F_KIND, F_EDITION, F_LEVEL, F_START, F_MS_EXPIRES, F_DISABLED, F_VERSION_LOCK
};

static const int field_upvalue[] = {
  UV_PRODUCT, UV_KIND, UV_EDITION, UV_LEVEL, UV_START, UV_MS_EXPIRES, UV_DISABLED,
  UV_VERSION_LOCK
};

/*
 * Reads and validates every field the rules use.  Returns 0, or the number
 * of results (nil, message, code) it pushed.  Order follows SPEC section 5:
 * unknown_product, then invalid_license / invalid_date field by field.
 * All fields are fetched onto the stack first and left there: one rawget
 * each and no pops keeps the hot path short.
 */
static int read_license(lua_State *L, const lsr_catalogue *cat, int lic_idx, lsr_license *lic)
{
  int n, t[F_VERSION_LOCK + 1], base = lua_gettop(L) + 1;
  for (int f = 0; f <= F_VERSION_LOCK; f++) t[f] = get_field(L, lic_idx, field_upvalue[f]);
  if ((n = product_field(L, cat, lic_idx, base + F_PRODUCT, t[F_PRODUCT], lic))) return n;
  if ((n = kind_field(L, lic_idx, base + F_KIND, t[F_KIND], lic))) return n;
  if ((n = edition_field(L, lic_idx, base + F_EDITION, t[F_EDITION], lic))) return n;
  if ((n = level_field(L, lic_idx, base + F_LEVEL, t[F_LEVEL], lic))) return n;
  if ((n = date_field(L, lic_idx, UV_START, base + F_START, true, &lic->start))) return n;
  if ((n = date_field(L, lic_idx, UV_MS_EXPIRES, base + F_MS_EXPIRES, false, &lic->ms_expires))) return n;
  if ((n = date_field(L, lic_idx, UV_DISABLED, base + F_DISABLED, false, &lic->disabled))) return n;
  if ((n = count_field(L, lic_idx, UV_VERSION_LOCK, base + F_VERSION_LOCK, t[F_VERSION_LOCK],
                       LSR_INT_MAX, &lic->version_lock)))
    return n;
  /* Fields of other kinds are not read: a perpetual license's rules never
   * look at lease_ended or trial_days. */
  lic->lease_ended = LSR_NO_DAY;
  lic->trial_days = cat->policy.trial_days;
  if (lic->kind == LSR_LEASE) {
    get_field(L, lic_idx, UV_LEASE_ENDED);
    return date_field(L, lic_idx, UV_LEASE_ENDED, lua_gettop(L), false, &lic->lease_ended);
  }
  if (lic->kind == LSR_TRIAL) {
    int days = get_field(L, lic_idx, UV_TRIAL_DAYS);
    if ((n = count_field(L, lic_idx, UV_TRIAL_DAYS, lua_gettop(L), days, 36500, &lic->trial_days)))
      return n;
    if (lic->trial_days == 0) lic->trial_days = cat->policy.trial_days;
  }
  return 0;
}

/* License (arg 2) and `on` (arg on_arg) together. */
static int read_query(lua_State *L, const lsr_catalogue *cat, lsr_license *lic, int on_arg, lsr_day *on)
{
  int n;
  check_table(L, 2, "license");
  if ((n = read_license(L, cat, 2, lic))) return n;
  return read_on(L, on_arg, on);
}

/* ------------------------------------------------------------------ */
/* Answers                                                             */
/* ------------------------------------------------------------------ */

/* Pushes the shared record (the user value stays below it on the stack). */
static void push_build(lua_State *L, const lsr_product *p, int build)
{
  lsr_getuservalue(L, 1);
  lsr_rawgeti(L, -1, p->record_base + build + 1);
}

static const char *code_name(lsr_code code)
{
  static const char *const names[] = {
    "ok", "disabled", "not_started", "expired", "no_build", "newer_than_eligible",
    "different_major", "same_license", "downgrade", "no_price", "not_older",
    "rollback_barrier", "unknown_build"
  };
  return names[code];
}

/* Pushes the message explaining why a well-formed license has no build. */
static void push_refusal_message(lua_State *L, int lic_idx, const lsr_license *lic, lsr_day on,
                                 lsr_code code)
{
  char msg[ERRLEN], a[LSR_DATE_LEN + 1], b[LSR_DATE_LEN + 1];
  size_t used = license_label(L, lic_idx, msg, sizeof msg);
  char *rest = msg + used;
  size_t room = sizeof msg - used;
  switch (code) {
  case LSR_DISABLED:
    snprintf(rest, room, " is disabled since %s", date_text(lic->disabled, a));
    break;
  case LSR_NOT_STARTED:
    snprintf(rest, room, " starts on %s, after %s", date_text(lic->start, a), date_text(on, b));
    break;
  case LSR_EXPIRED:
    if (lic->kind == LSR_LEASE)
      snprintf(rest, room, " expired: the lease ended on %s", date_text(lic->lease_ended, a));
    else
      snprintf(rest, room, " expired: the trial ended on %s", date_text(lsr_trial_end(lic), a));
    break;
  default:
    if (lic->version_lock != 0)
      snprintf(rest, room, ": product '%s' has no %lld.x build released by %s", lic->product->id,
               (long long)lic->version_lock, date_text(on, a));
    else
      snprintf(rest, room, ": product '%s' has no build old enough for this license on %s",
               lic->product->id, date_text(on, a));
    break;
  }
  lua_pushstring(L, msg);
}

static int push_refusal(lua_State *L, int first, int lic_idx, const lsr_license *lic, lsr_day on,
                        lsr_code code)
{
  push_refusal_message(L, lic_idx, lic, on, code);
  return push_failure(L, first, code_name(code));
}

/* A build number argument: raises unless a number; -1 if no such build. */
static int check_build_arg(lua_State *L, int arg, const lsr_product *p, long long *number)
{
  if (lua_type(L, arg) != LUA_TNUMBER)
    luaL_argerror(L, arg, lua_pushfstring(L, "build number expected, got %s",
                                          luaL_typename(L, arg)));
  if (!lsr_tointeger_exact(L, arg, number)) {
    *number = -1;
    return -1;
  }
  return lsr_find_build(p, *number);
}

static int unknown_build(lua_State *L, int first, const lsr_product *p, int arg)
{
  lua_pushfstring(L, "product '%s' has no build %s", p->id, lua_tostring(L, arg));
  return push_failure(L, first, "unknown_build");
}

/* ------------------------------------------------------------------ */
/* Catalogue queries                                                   */
/* ------------------------------------------------------------------ */

/* cat:build(product, number) */
static int cat_build(lua_State *L)
{
  const lsr_catalogue *cat = check_catalogue(L, 3);
  size_t len;
  long long number;
  const char *id = luaL_checklstring(L, 2, &len);
  const lsr_product *p = lsr_find_product(cat, id, len);
  int build;
  if (p == NULL) return fail(L, "unknown_product", "unknown product '%s'", id);
  build = check_build_arg(L, 3, p, &number);
  if (build < 0) return unknown_build(L, 0, p, 3);
  push_build(L, p, build);
  return 1;
}

/* cat:eligible(lic, on) -- the hot path. */
static int cat_eligible(lua_State *L)
{
  const lsr_catalogue *cat = check_catalogue(L, 3);
  lsr_license lic;
  lsr_day on;
  lsr_code code;
  int build = -1, n;
  if ((n = read_query(L, cat, &lic, 3, &on))) return n;
  code = lsr_eligible(&lic, on, &build);
  if (code != LSR_OK) return push_refusal(L, 0, 2, &lic, on, code);
  push_build(L, lic.product, build);
  return 1;
}

/* cat:can_install(lic, number, on) */
static int cat_can_install(lua_State *L)
{
  const lsr_catalogue *cat = check_catalogue(L, 4);
  lsr_license lic;
  lsr_day on;
  lsr_code code;
  long long number;
  int build, eligible = -1, n;
  check_table(L, 2, "license");
  /* The product first, alone: SPEC orders unknown_build before the
   * license's own problems, which read_query reports below. */
  if ((n = read_product(L, cat, 2, &lic))) {
    lua_pushboolean(L, 0);
    lua_replace(L, -4);
    return n;
  }
  build = check_build_arg(L, 3, lic.product, &number);
  if (build < 0) return unknown_build(L, 1, lic.product, 3);
  if ((n = read_query(L, cat, &lic, 4, &on))) {
    lua_pushboolean(L, 0);
    lua_replace(L, -4);
    return n;
  }
  code = lsr_eligible(&lic, on, &eligible);
  if (code != LSR_OK) return push_refusal(L, 1, 2, &lic, on, code);
  if (build > eligible) {
    lua_pushfstring(L, "build %s is newer than build %d, the newest this license may install",
                    lua_tostring(L, 3), (int)lic.product->builds[eligible].number);
    return push_failure(L, 1, "newer_than_eligible");
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const char *addon_state_name(lsr_addon_state state)
{
  static const char *const names[] = {
    "active", "not_owned", "expired", "ms_expired", "license_invalid", "requires_upgrade"
  };
  return names[state];
}

/* Paid-through day of one add-on from the license's addons table at
 * addons_idx (0: no table).  Returns 0 or a failure count. */
static int read_addon_paid(lua_State *L, int lic_idx, int addons_idx, int name_idx, lsr_day *paid)
{
  int r;
  *paid = LSR_NO_DAY;
  if (addons_idx == 0) return 0;
  lua_pushvalue(L, name_idx);
  lsr_rawget(L, addons_idx);
  r = read_date(L, -1, paid);
  if (r == DATE_BAD) {
    lua_pop(L, 1);
    return license_fail(L, lic_idx, "invalid_date", "addons.%s: paid-through date YYYY-MM-DD expected",
                        lua_tostring(L, name_idx));
  }
  if (r == DATE_ABSENT) *paid = LSR_NO_DAY;
  lua_pop(L, 1);
  return 0;
}

/* Pushes lic.addons and returns its stack index, 0 if absent; raises a
 * data failure through *n when it is not a table. */
static int push_addons(lua_State *L, int lic_idx, int *n)
{
  int t = get_field(L, lic_idx, UV_ADDONS);
  *n = 0;
  if (t == LUA_TTABLE) return lua_gettop(L);
  lua_pop(L, 1);
  if (t != LUA_TNIL)
    *n = license_fail(L, lic_idx, "invalid_license", "field 'addons' must be a table of add-on -> date");
  return 0;
}

/* cat:addon_status(lic, addon, on, installed_number) */
static int cat_addon_status(lua_State *L)
{
  const lsr_catalogue *cat = check_catalogue(L, 5);
  lsr_license lic;
  lsr_day on, paid;
  long long number;
  int n, addons, installed = -1;
  luaL_checkstring(L, 3);
  if ((n = read_query(L, cat, &lic, 4, &on))) return n;
  if (!lua_isnoneornil(L, 5)) {
    installed = check_build_arg(L, 5, lic.product, &number);
    if (installed < 0) return unknown_build(L, 0, lic.product, 5);
  }
  addons = push_addons(L, 2, &n);
  if (n) return n;
  if ((n = read_addon_paid(L, 2, addons, 3, &paid))) return n;
  lua_pushstring(L, addon_state_name(lsr_addon_state_of(&lic, paid, installed, on)));
  return 1;
}

/* Fills t[name] = state for every add-on the license owns (t on top). */
static int push_addon_states(lua_State *L, const lsr_license *lic, lsr_day on)
{
  int n, addons = push_addons(L, 2, &n);
  lsr_day paid;
  lua_newtable(L);
  if (n) return n;
  if (addons == 0) return 0;
  lua_pushnil(L);
  while (lua_next(L, addons) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      return license_fail(L, 2, "invalid_license", "field 'addons' must be keyed by add-on id");
    if ((n = read_addon_paid(L, 2, addons, lua_gettop(L), &paid))) return n;
    lua_pushvalue(L, -1);
    lua_pushstring(L, addon_state_name(lsr_addon_state_of(lic, paid, -1, on)));
    lua_rawset(L, -4);
  }
  lua_replace(L, addons);
  return 0;
}

static void set_string(lua_State *L, const char *field, const char *value)
{
  lua_pushstring(L, value);
  lua_setfield(L, -2, field);
}

static void set_bool(lua_State *L, const char *field, bool value)
{
  lua_pushboolean(L, value);
  lua_setfield(L, -2, field);
}

static const char *kind_name(lsr_kind kind)
{
  return kind == LSR_LEASE ? "lease" : kind == LSR_TRIAL ? "trial" : "perpetual";
}

/* cat:status(lic, on) */
static int cat_status(lua_State *L)
{
  const lsr_catalogue *cat = check_catalogue(L, 3);
  lsr_license lic;
  lsr_day on;
  lsr_code code, validity;
  int build = -1, n;
  if ((n = read_query(L, cat, &lic, 3, &on))) return n;
  validity = lsr_validity(&lic, on);
  code = lsr_eligible(&lic, on, &build);
  lua_createtable(L, 0, 10);
  set_bool(L, "valid", validity == LSR_OK);
  set_string(L, "state", validity == LSR_OK ? "active"
                         : validity == LSR_DISABLED ? "disabled"
                         : validity == LSR_NOT_STARTED ? "not_started" : "expired");
  if (code != LSR_OK) {
    set_string(L, "code", code_name(code));
    push_refusal_message(L, 2, &lic, on, code);
    lua_setfield(L, -2, "message");
  }
  set_string(L, "kind", kind_name(lic.kind));
  set_string(L, "ms", lic.kind != LSR_PERPETUAL || lic.ms_expires == LSR_NO_DAY ? "none"
                      : lsr_ms_active(&lic, on) ? "active" : "expired");
  if (lic.ms_expires != LSR_NO_DAY) {
    push_date(L, lic.ms_expires);
    lua_setfield(L, -2, "ms_expires");
  }
  /* Updates flow while M&S runs, for active leases and trials, and within
   * its major for a version-locked license (R2, R4, R6, R7). */
  set_bool(L, "updates", validity == LSR_OK &&
                         (lic.kind != LSR_PERPETUAL || lic.version_lock != 0 ||
                          lsr_ms_active(&lic, on)));
  if (code == LSR_OK) {
    push_build(L, lic.product, build);
    lua_remove(L, -2);   /* the user value push_build leaves below */
    lua_setfield(L, -2, "eligible");
  }
  if ((n = push_addon_states(L, &lic, on))) return n;
  lua_setfield(L, -2, "addons");
  return 1;
}

/* Reads the upgrade target {edition=, level=, major=} at argument 3;
 * absent fields keep the license's own (see lsr_upgrade_target). */
static int read_target(lua_State *L, const lsr_license *lic, lsr_upgrade_target *target)
{
  long long v;
  size_t len;
  target->edition = -1;
  target->level = LSR_LEVEL_NONE;
  target->major = 0;
  lua_getfield(L, 3, "edition");
  if (lua_type(L, -1) == LUA_TSTRING) {
    const char *name = lua_tolstring(L, -1, &len);
    target->edition = lsr_find_edition(lic->product, name, len);
    if (target->edition < 0)
      return fail(L, "invalid_request", "upgrade target: product '%s' has no edition '%s'",
                  lic->product->id, name);
  } else if (!lua_isnil(L, -1)) {
    return fail(L, "invalid_request", "upgrade target: edition must be a string");
  }
  lua_getfield(L, 3, "level");
  if (!lua_isnil(L, -1) && !read_level(L, -1, &target->level))
    return fail(L, "invalid_request",
                "upgrade target: level must be a positive whole number or \"unlimited\"");
  lua_getfield(L, 3, "major");
  if (!lua_isnil(L, -1)) {
    if (!lsr_tointeger_exact(L, -1, &v) || v < 1)
      return fail(L, "invalid_request", "upgrade target: major must be a positive whole number");
    target->major = v;
  }
  lua_pop(L, 3);
  return 0;
}

static int quote_refusal(lua_State *L, const lsr_license *lic, const lsr_upgrade_target *t,
                         lsr_code code, int64_t major)
{
  const lsr_product *p = lic->product;
  switch (code) {
  case LSR_DIFFERENT_MAJOR:
    return fail(L, "different_major", "upgrades stay within major %d; %d.x was asked",
                (int)major, (int)t->major);
  case LSR_SAME_LICENSE:
    return fail(L, "same_license", "the target is the license's own edition and level");
  case LSR_DOWNGRADE:
    return fail(L, "downgrade", "a lower edition or level is a license change: contact sales");
  default:
    return fail(L, "no_price", "product '%s' major %d has no price for %s or %s", p->id,
                (int)major, p->editions[lic->edition],
                p->editions[t->edition >= 0 ? t->edition : lic->edition]);
  }
}

/* cat:quote_upgrade(lic, {edition=, level=, major=}, on) */
static int cat_quote_upgrade(lua_State *L)
{
  const lsr_catalogue *cat = check_catalogue(L, 4);
  lsr_license lic;
  lsr_upgrade_target target;
  lsr_day on;
  lsr_code code;
  int64_t amount = 0, major = 0;
  int n, build;
  check_table(L, 3, "upgrade target");
  if ((n = read_query(L, cat, &lic, 4, &on))) return n;
  code = lsr_eligible(&lic, on, &build);
  if (code != LSR_OK) return push_refusal(L, 0, 2, &lic, on, code);
  if (lic.edition < 0 || lic.level == LSR_LEVEL_NONE)
    return license_fail(L, 2, "invalid_license", "an upgrade needs the license's edition and level");
  if ((n = read_target(L, &lic, &target))) return n;
  code = lsr_quote_upgrade(&lic, &target, on, &amount, &major);
  if (code != LSR_OK) return quote_refusal(L, &lic, &target, code, major);
  lua_pushinteger(L, (lua_Integer)amount);
  return 1;
}

/* cat:can_rollback(lic, from_number, to_number) */
static int cat_can_rollback(lua_State *L)
{
  const lsr_catalogue *cat = check_catalogue(L, 4);
  lsr_license lic;
  long long from_number, to_number;
  int n, from, to;
  lsr_code code;
  check_table(L, 2, "license");
  if ((n = read_license(L, cat, 2, &lic))) {
    lua_pushboolean(L, 0);
    lua_replace(L, -4);
    return n;
  }
  from = check_build_arg(L, 3, lic.product, &from_number);
  to = check_build_arg(L, 4, lic.product, &to_number);
  if (from < 0) return unknown_build(L, 1, lic.product, 3);
  if (to < 0) return unknown_build(L, 1, lic.product, 4);
  code = lsr_can_rollback(lic.product, from, to);
  if (code == LSR_NOT_OLDER) {
    lua_pushfstring(L, "build %s is not older than build %s", lua_tostring(L, 4), lua_tostring(L, 3));
    return push_failure(L, 1, "not_older");
  }
  if (code == LSR_ROLLBACK_BARRIER) {
    for (int z = from; z > to; z--)
      if (lic.product->builds[z].no_rollback) {
        lua_pushfstring(L, "build %d's release note forbids rolling back past it",
                        (int)lic.product->builds[z].number);
        break;
      }
    return push_failure(L, 1, "rollback_barrier");
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Reads installations[i] into inst; 0 or a failure count. */
static int read_installation(lua_State *L, int list, int i, lsr_installation *inst)
{
  static const char *const fields[] = { "first_seen", "last_seen", "deactivated" };
  lsr_day *days[3];
  days[0] = &inst->first_seen;
  days[1] = &inst->last_seen;
  days[2] = &inst->deactivated;
  if (lsr_rawgeti(L, list, i) != LUA_TTABLE)
    return fail(L, "invalid_request", "installations[%d] must be a table", i);
  for (int f = 0; f < 3; f++) {
    int r;
    lua_getfield(L, -1, fields[f]);
    r = read_date(L, -1, days[f]);
    if (r == DATE_BAD || (r == DATE_ABSENT && f == 0))
      return fail(L, "invalid_date", "installations[%d].%s: date YYYY-MM-DD expected", i, fields[f]);
    if (r == DATE_ABSENT) *days[f] = LSR_NO_DAY;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

static const char *migration_state_name(lsr_migration_state state)
{
  return state == LSR_MIGRATION_OK ? "ok" : state == LSR_MIGRATION_MIGRATING ? "migrating" : "fraud";
}

static void push_migration(lua_State *L, const lsr_migration *m)
{
  lua_createtable(L, 0, 5);
  set_string(L, "state", migration_state_name(m->state));
  lua_pushinteger(L, m->allowed);
  lua_setfield(L, -2, "allowed");
  lua_pushinteger(L, m->active);
  lua_setfield(L, -2, "active");
  if (m->since != LSR_NO_DAY) {
    push_date(L, m->since);
    lua_setfield(L, -2, "since");
    push_date(L, m->deadline);
    lua_setfield(L, -2, "deadline");
  }
}

/* Reads the license (arg 2), its failover flag, `on` (arg on_arg) and
 * the installations list (arg 3) into a scratch userdata with room for
 * `spare` more.  Returns 0 or a failure count. */
static int read_window_query(lua_State *L, const lsr_catalogue *cat, int on_arg, int spare,
                             lsr_license *lic, lsr_day *on, bool *failover,
                             lsr_installation **inst, int *count)
{
  size_t n_list;
  int n, t;
  check_table(L, 3, "installations");
  if ((n = read_query(L, cat, lic, on_arg, on))) return n;
  t = get_field(L, 2, UV_FAILOVER);
  if (t != LUA_TNIL && t != LUA_TBOOLEAN)
    return license_fail(L, 2, "invalid_license", "field 'failover' must be a boolean");
  *failover = lua_toboolean(L, -1) != 0;
  n_list = lsr_rawlen(L, 3);
  if (n_list > MAX_INSTALLATIONS)
    return fail(L, "invalid_request", "installations: more than %d entries", MAX_INSTALLATIONS);
  /* Scratch in a userdata: the collector frees it even if a read fails. */
  *inst = lua_newuserdata(L, (n_list + (size_t)spare + 1) * (sizeof **inst + 2 * sizeof(lsr_edge)));
  for (int i = 1; i <= (int)n_list; i++)
    if ((n = read_installation(L, 3, i, &(*inst)[i - 1]))) return n;
  *count = (int)n_list;
  return 0;
}

/* The sweep scratch after the installations in the same block. */
static lsr_edge *edges_after(lsr_installation *inst, int capacity)
{
  return (lsr_edge *)(void *)(inst + capacity);
}

/* cat:migration(lic, installations, on) */
static int cat_migration(lua_State *L)
{
  const lsr_catalogue *cat = check_catalogue(L, 4);
  lsr_license lic;
  lsr_installation *inst;
  lsr_migration result;
  lsr_day on;
  bool failover;
  int n, count;
  if ((n = read_window_query(L, cat, 4, 0, &lic, &on, &failover, &inst, &count))) return n;
  lsr_migration_window(inst, count, lsr_allowed_installations(failover), &cat->policy, on,
                       edges_after(inst, count + 1), &result);
  push_migration(L, &result);
  return 1;
}

/* cat:admission(lic, installations, on) -- R10 for one more new server:
 * true, window-with-it; or false, message, code, window-without-it. */
static int cat_admission(lua_State *L)
{
  const lsr_catalogue *cat = check_catalogue(L, 4);
  lsr_license lic;
  lsr_installation *inst;
  lsr_migration before, after;
  lsr_day on;
  bool failover;
  int n, count, allowed;
  if ((n = read_window_query(L, cat, 4, 1, &lic, &on, &failover, &inst, &count))) return n;
  allowed = lsr_allowed_installations(failover);
  lsr_migration_window(inst, count, allowed, &cat->policy, on, edges_after(inst, count + 2), &before);
  inst[count].first_seen = inst[count].last_seen = on;
  inst[count].deactivated = LSR_NO_DAY;
  lsr_migration_window(inst, count + 1, allowed, &cat->policy, on, edges_after(inst, count + 2), &after);
  switch (lsr_admit_new_server(&before, &after, &cat->policy)) {
  case LSR_ADMIT_OK:
    lua_pushboolean(L, 1);
    push_migration(L, &after);
    return 2;
  case LSR_ADMIT_TOO_MANY:
    lua_pushboolean(L, 0);
    lua_pushfstring(L, "%d installations are active, %d allowed, and a migration may add only %d more",
                    before.active, allowed, cat->policy.migration_extra);
    lua_pushliteral(L, "too_many_installations");
    break;
  default:
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "the migration window is over: this key is in a fraud case");
    lua_pushliteral(L, "migration_window_over");
    break;
  }
  push_migration(L, &before);
  return 4;
}

/* cat:ladder({since=, first_step=, phoned=, disabled=}, on) -- R11: the
 * list of actions due on `on` for a fraud case whose excess began on
 * `since` (the migration's since). */
static int cat_ladder(lua_State *L)
{
  static const char *const fields[] = { "since", "first_step", "phoned", "disabled" };
  static const char *const steps[] = { "email_customer", "notify_fraud_team", "phone_customer",
                                       "disable_key" };
  const lsr_catalogue *cat = check_catalogue(L, 3);
  lsr_day days[4], on;
  lsr_ladder_case c;
  unsigned due;
  int n, count = 0;
  check_table(L, 2, "case");
  for (int f = 0; f < 4; f++) {
    lua_getfield(L, 2, fields[f]);
    n = read_date(L, -1, &days[f]);
    if (n == DATE_BAD || (n == DATE_ABSENT && f == 0)) return bad_date(L, lua_gettop(L), fields[f]);
    if (n == DATE_ABSENT) days[f] = LSR_NO_DAY;
  }
  if ((n = read_on(L, 3, &on))) return n;
  c.first_step = days[1];
  c.phoned = days[2];
  c.disabled = days[3];
  due = lsr_ladder_due(&cat->policy, &c, days[0] + cat->policy.migration_days, on);
  lua_createtable(L, 4, 0);
  for (int s = 0; s < 4; s++)
    if (due & (1u << s)) {
      lua_pushstring(L, steps[s]);
      lua_rawseti(L, -2, ++count);
    }
  return 1;
}

/* ------------------------------------------------------------------ */
/* Catalogue construction                                              */
/* ------------------------------------------------------------------ */

/* Where a catalogue table went wrong: the message and what it names. */
typedef struct {
  char text[ERRLEN];
  const char *product;    /* product id, when known */
  long long build;        /* build number, -1 when not about a build */
} build_error;

static bool refuse(build_error *e, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->text, sizeof e->text, fmt, ap);
  va_end(ap);
  return false;
}

/* True if s holds no control characters (the store folds lists with them). */
static bool printable(const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
  return true;
}

/* A copy of the string at idx, or NULL if it is not a plain non-empty string
 * of at most MAX_NAME_LEN bytes without control characters. */
static char *copy_name(lua_State *L, int idx, bool allow_long)
{
  size_t len;
  const char *s;
  char *copy;
  if (lua_type(L, idx) != LUA_TSTRING) return NULL;
  s = lua_tolstring(L, idx, &len);
  if (len == 0 || (!allow_long && len > MAX_NAME_LEN) || !printable(s, len)) return NULL;
  copy = malloc(len + 1);
  if (copy == NULL) luaL_error(L, "not enough memory");
  memcpy(copy, s, len + 1);
  return copy;
}

/* Reads an optional string field of the table at idx into *out. */
static bool read_optional_name(lua_State *L, int idx, const char *field, char **out)
{
  lua_getfield(L, idx, field);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return true;
  }
  *out = copy_name(L, -1, true);
  lua_pop(L, 1);
  return *out != NULL;
}

/* Reads an array of names (editions, add-ons). */
static bool read_names(lua_State *L, int idx, const char *field, bool required, char ***out,
                       int *count, build_error *e)
{
  size_t n;
  int t;
  lua_getfield(L, idx, field);
  t = lua_type(L, -1);
  if (t == LUA_TNIL && !required) {
    lua_pop(L, 1);
    return true;
  }
  if (t != LUA_TTABLE) return refuse(e, "product '%s': %s must be a list of names", e->product, field);
  n = lsr_rawlen(L, -1);
  if (n > MAX_NAMES) return refuse(e, "product '%s': more than %d %s", e->product, MAX_NAMES, field);
  *out = calloc(n + 1, sizeof **out);
  if (*out == NULL) luaL_error(L, "not enough memory");
  for (int i = 1; i <= (int)n; i++) {
    lsr_rawgeti(L, -1, i);
    (*out)[i - 1] = copy_name(L, -1, false);
    lua_pop(L, 1);
    if ((*out)[i - 1] == NULL)
      return refuse(e, "product '%s': %s[%d] must be a non-empty name", e->product, field, i);
    *count = i;
  }
  lua_pop(L, 1);
  return true;
}

/* The major version: the leading number of "13.5.6911". */
static bool major_of_version(const char *version, int64_t *major)
{
  int64_t v = 0;
  int digits = 0;
  for (; *version >= '0' && *version <= '9'; version++, digits++) {
    if (digits >= 15) return false;
    v = v * 10 + (*version - '0');
  }
  if (digits == 0 || v < 1 || (*version != '.' && *version != '\0')) return false;
  *major = v;
  return true;
}

static bool read_build(lua_State *L, int idx, int i, lsr_build *b, build_error *e)
{
  long long v;
  int t;
  b->source_index = i;
  lua_getfield(L, idx, "number");
  if (!lsr_tointeger_exact(L, -1, &v) || v < 1)
    return refuse(e, "product '%s': builds[%d].number must be a positive whole number", e->product, i);
  b->number = v;
  e->build = v;
  lua_getfield(L, idx, "version");
  b->version = copy_name(L, -1, false);
  if (b->version == NULL)
    return refuse(e, "product '%s': build %lld: version must be a non-empty string", e->product, v);
  lua_getfield(L, idx, "major");
  if (lua_isnil(L, -1)) {
    if (!major_of_version(b->version, &b->major))
      return refuse(e, "product '%s': build %lld: version '%s' does not start with a major number "
                    "(give major = N)", e->product, v, b->version);
  } else {
    long long m;
    if (!lsr_tointeger_exact(L, -1, &m) || m < 1)
      return refuse(e, "product '%s': build %lld: major must be a positive whole number", e->product, v);
    b->major = m;
  }
  lua_getfield(L, idx, "released");
  if (read_date(L, -1, &b->released) != DATE_OK)
    return refuse(e, "product '%s': build %lld: released must be a date YYYY-MM-DD", e->product, v);
  lua_getfield(L, idx, "no_rollback");
  t = lua_type(L, -1);
  if (t != LUA_TNIL && t != LUA_TBOOLEAN)
    return refuse(e, "product '%s': build %lld: no_rollback must be a boolean", e->product, v);
  b->no_rollback = lua_toboolean(L, -1) != 0;
  lua_pop(L, 5);
  e->build = -1;
  return true;
}

static bool read_builds(lua_State *L, int idx, lsr_product *p, build_error *e)
{
  size_t n;
  lua_getfield(L, idx, "builds");
  if (lua_type(L, -1) != LUA_TTABLE) return refuse(e, "product '%s': builds must be a list", p->id);
  n = lsr_rawlen(L, -1);
  if (n > MAX_BUILDS) return refuse(e, "product '%s': more than %d builds", p->id, MAX_BUILDS);
  p->builds = calloc(n + 1, sizeof *p->builds);
  if (p->builds == NULL) luaL_error(L, "not enough memory");
  for (int i = 1; i <= (int)n; i++) {
    if (lsr_rawgeti(L, -1, i) != LUA_TTABLE)
      return refuse(e, "product '%s': builds[%d] must be a table", p->id, i);
    p->n_builds = i;   /* counted before filling so that free() sees the version */
    if (!read_build(L, lua_gettop(L), i, &p->builds[i - 1], e)) return false;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return true;
}

/* A table key for a message, without calling any metamethod. */
static const char *key_text(lua_State *L, int idx)
{
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING) return lua_tostring(L, idx);
  if (t == LUA_TNUMBER) {
    lua_pushvalue(L, idx);   /* tostring on a copy: lua_next needs the key intact */
    return lua_tostring(L, -1);
  }
  return luaL_typename(L, idx);
}

static bool add_price(lua_State *L, lsr_product *p, int64_t major, int edition, int level_idx,
                      int price_idx, size_t *cap, build_error *e)
{
  lsr_price *slot;
  long long price;
  lsr_level level;
  if (!read_level(L, level_idx, &level))
    return refuse(e, "product '%s': prices[%d].%s: level %s is not a positive whole number or "
                  "\"unlimited\"", p->id, (int)major, p->editions[edition], key_text(L, level_idx));
  if (!lsr_tointeger_exact(L, price_idx, &price) || price < 0)
    return refuse(e, "product '%s': prices[%d].%s[%s]: price must be a whole number of minor units",
                  p->id, (int)major, p->editions[edition], key_text(L, level_idx));
  if ((size_t)p->n_prices == *cap) {
    size_t grown = *cap ? *cap * 2 : 16;
    lsr_price *bigger = realloc(p->prices, grown * sizeof *bigger);
    if (bigger == NULL) luaL_error(L, "not enough memory");
    p->prices = bigger;
    *cap = grown;
  }
  slot = &p->prices[p->n_prices++];
  slot->major = major;
  slot->edition = edition;
  slot->level = level;
  slot->price = price;
  return true;
}

/* prices = { [major] = { edition = { [level] = price } } } */
static bool read_edition_prices(lua_State *L, lsr_product *p, int64_t major, size_t *cap,
                                build_error *e)
{
  int edition, table = lua_gettop(L);
  size_t len;
  const char *name;
  if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TTABLE)
    return refuse(e, "product '%s': prices[%d] must map edition names to level tables", p->id, (int)major);
  name = lua_tolstring(L, -2, &len);
  edition = lsr_find_edition(p, name, len);
  if (edition < 0)
    return refuse(e, "product '%s': prices[%d] names unknown edition '%s'", p->id, (int)major, name);
  lua_pushnil(L);
  while (lua_next(L, table) != 0) {
    if (!add_price(L, p, major, edition, lua_gettop(L) - 1, lua_gettop(L), cap, e)) return false;
    lua_pop(L, 1);
  }
  return true;
}

/* Pushes t[field] for an optional table field of the table at idx.
 * Returns its stack index, 0 when absent (nothing left pushed), or -1 when
 * it is there but not a table. */
static int optional_table(lua_State *L, int idx, const char *field)
{
  lua_getfield(L, idx, field);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  return lua_type(L, -1) == LUA_TTABLE ? lua_gettop(L) : -1;
}

static bool read_prices(lua_State *L, int idx, lsr_product *p, build_error *e)
{
  size_t cap = 0;
  long long major;
  int table = optional_table(L, idx, "prices");
  if (table == 0) return true;
  if (table < 0) return refuse(e, "product '%s': prices must be a table", p->id);
  lua_pushnil(L);
  while (lua_next(L, table) != 0) {
    if (!lsr_tointeger_exact(L, -2, &major) || major < 1 || lua_type(L, -1) != LUA_TTABLE)
      return refuse(e, "product '%s': prices must be keyed by major version numbers", p->id);
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      if (!read_edition_prices(L, p, major, &cap, e)) return false;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return true;
}

/* addon_prices = { eas = 9900, ... }: yearly prices of the listed add-ons. */
static bool read_addon_prices(lua_State *L, int idx, lsr_product *p, build_error *e)
{
  int table;
  p->addon_prices = malloc(((size_t)p->n_addons + 1) * sizeof *p->addon_prices);
  if (p->addon_prices == NULL) luaL_error(L, "not enough memory");
  for (int i = 0; i < p->n_addons; i++) p->addon_prices[i] = -1;
  table = optional_table(L, idx, "addon_prices");
  if (table == 0) return true;
  if (table < 0) return refuse(e, "product '%s': addon_prices must be a table", p->id);
  lua_pushnil(L);
  while (lua_next(L, table) != 0) {
    size_t len;
    long long price;
    int addon = -1;
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *name = lua_tolstring(L, -2, &len);
      addon = lsr_find_addon(p, name, len);
    }
    if (addon < 0)
      return refuse(e, "product '%s': addon_prices names %s, which is not in addons", p->id,
                    key_text(L, -2));
    if (!lsr_tointeger_exact(L, -1, &price) || price < 0)
      return refuse(e, "product '%s': addon_prices.%s must be a whole number of minor units", p->id,
                    p->addons[addon]);
    p->addon_prices[addon] = price;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return true;
}

static bool read_product_entry(lua_State *L, int idx, int i, lsr_product *p, build_error *e)
{
  lua_getfield(L, idx, "id");
  p->id = copy_name(L, -1, false);
  lua_pop(L, 1);
  if (p->id == NULL) return refuse(e, "products[%d]: id must be a non-empty string", i);
  e->product = p->id;
  if (!read_optional_name(L, idx, "name", &p->name))
    return refuse(e, "product '%s': name must be a non-empty string", p->id);
  if (!read_optional_name(L, idx, "unit", &p->unit))
    return refuse(e, "product '%s': unit must be a non-empty string", p->id);
  return read_names(L, idx, "editions", true, &p->editions, &p->n_editions, e) &&
         read_names(L, idx, "addons", false, &p->addons, &p->n_addons, e) &&
         read_addon_prices(L, idx, p, e) && read_builds(L, idx, p, e) && read_prices(L, idx, p, e);
}

typedef struct {
  const char *name;
  size_t offset;
  int min, max;
} policy_field;

static bool read_policy(lua_State *L, int idx, lsr_policy *policy, build_error *e)
{
  static const policy_field fields[] = {
    { "ms_months", offsetof(lsr_policy, ms_months), 1, 1200 },
    { "trial_days", offsetof(lsr_policy, trial_days), 1, 36500 },
    { "migration_days", offsetof(lsr_policy, migration_days), 1, 36500 },
    { "migration_extra", offsetof(lsr_policy, migration_extra), 0, 1000 },
    { "checkin_grace_days", offsetof(lsr_policy, checkin_grace_days), 0, 36500 },
    { "phone_after_days", offsetof(lsr_policy, phone_after_days), 0, 36500 },
    { "disable_after_days", offsetof(lsr_policy, disable_after_days), 0, 36500 },
  };
  int table = optional_table(L, idx, "policy");
  if (table == 0) return true;
  if (table < 0) return refuse(e, "policy must be a table");
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
    long long v;
    lua_getfield(L, -1, fields[i].name);
    if (!lua_isnil(L, -1)) {
      if (!lsr_tointeger_exact(L, -1, &v) || v < fields[i].min || v > fields[i].max)
        return refuse(e, "policy.%s must be a whole number from %d to %d", fields[i].name,
                      fields[i].min, fields[i].max);
      *(int *)(void *)((char *)policy + fields[i].offset) = (int)v;
    }
    lua_pop(L, 1);
  }
  if (policy->disable_after_days < policy->phone_after_days)
    return refuse(e, "policy.disable_after_days must not come before policy.phone_after_days");
  lua_getfield(L, -1, "renewal_basis");
  if (!lua_isnil(L, -1)) {
    const char *basis = lua_tostring(L, -1);
    if (lua_type(L, -1) != LUA_TSTRING || (strcmp(basis, "from_expiry") != 0 &&
                                           strcmp(basis, "from_renewal") != 0))
      return refuse(e, "policy.renewal_basis must be \"from_expiry\" or \"from_renewal\"");
    policy->renewal_basis = strcmp(basis, "from_renewal") == 0 ? LSR_BASIS_FROM_RENEWAL
                                                               : LSR_BASIS_FROM_EXPIRY;
  }
  lua_pop(L, 2);
  return true;
}

static bool read_catalogue_table(lua_State *L, int idx, lsr_catalogue **out, build_error *e)
{
  size_t n;
  lsr_catalogue *cat;
  lua_getfield(L, idx, "products");
  if (lua_type(L, -1) != LUA_TTABLE) return refuse(e, "products must be a list of product tables");
  n = lsr_rawlen(L, -1);
  if (n > MAX_PRODUCTS) return refuse(e, "products: more than %d products", MAX_PRODUCTS);
  cat = *out = lsr_catalogue_new((int)n);
  if (cat == NULL) luaL_error(L, "not enough memory");
  for (int i = 1; i <= (int)n; i++) {
    if (lsr_rawgeti(L, -1, i) != LUA_TTABLE) return refuse(e, "products[%d] must be a table", i);
    if (!read_product_entry(L, lua_gettop(L), i, &cat->products[i - 1], e)) return false;
    e->product = NULL;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return read_policy(L, idx, &cat->policy, e);
}

/* The shared build records: one table per build, in compiled order. */
static void push_build_records(lua_State *L, const lsr_catalogue *cat)
{
  lua_createtable(L, cat->n_builds, 0);
  for (int i = 0; i < cat->n_products; i++) {
    const lsr_product *p = &cat->products[i];
    for (int j = 0; j < p->n_builds; j++) {
      const lsr_build *b = &p->builds[j];
      lua_createtable(L, 0, 4);
      lua_pushinteger(L, (lua_Integer)b->number);
      lua_setfield(L, -2, "number");
      set_string(L, "version", b->version);
      lua_pushinteger(L, (lua_Integer)b->major);
      lua_setfield(L, -2, "major");
      push_date(L, b->released);
      lua_setfield(L, -2, "released");
      lua_rawseti(L, -2, p->record_base + j + 1);
    }
  }
}

/* Pushes nil, message, "invalid_catalogue", {product=, build=}. */
static int catalogue_refused(lua_State *L, const build_error *e)
{
  lua_pushnil(L);
  lua_pushstring(L, e->text);
  lua_pushliteral(L, "invalid_catalogue");
  lua_createtable(L, 0, 2);
  if (e->product != NULL) set_string(L, "product", e->product);
  if (e->build >= 0) {
    lua_pushinteger(L, (lua_Integer)e->build);
    lua_setfield(L, -2, "build");
  }
  return 4;
}

/* licensor.catalogue(t) */
static int l_catalogue(lua_State *L)
{
  build_error e;
  catalogue_box *box;
  int bad_product;
  int64_t bad_build;
  check_table(L, 1, "catalogue");
  lua_settop(L, 1);
  e.product = NULL;
  e.build = -1;
  /* The box exists before anything is allocated, so that its __gc frees a
   * half-read catalogue if a Lua error (out of memory) interrupts. */
  box = lsr_newuserdata(L, sizeof *box);
  box->cat = NULL;
  lua_pushvalue(L, UV(UV_MT));
  lua_setmetatable(L, -2);
  if (read_catalogue_table(L, 1, &box->cat, &e) &&
      lsr_catalogue_compile(box->cat, e.text, sizeof e.text, &bad_product, &bad_build)) {
    push_build_records(L, box->cat);
    lsr_setuservalue(L, 2);
    lua_settop(L, 2);
    return 1;
  }
  if (box->cat != NULL && e.product == NULL && bad_product >= 0 && bad_product < box->cat->n_products) {
    e.product = box->cat->products[bad_product].id;
    e.build = bad_build;
  }
  catalogue_refused(L, &e);
  lsr_catalogue_free(box->cat);
  box->cat = NULL;
  return 4;
}

/* ------------------------------------------------------------------ */
/* Catalogue listing and life cycle                                    */
/* ------------------------------------------------------------------ */

static void push_name_list(lua_State *L, char **names, int n)
{
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

/* Pushes one product's description: id, name, unit, editions, add-ons. */
static void push_product(lua_State *L, const lsr_product *p)
{
  lua_createtable(L, 0, 7);
  set_string(L, "id", p->id);
  set_string(L, "name", p->name != NULL ? p->name : p->id);
  if (p->unit != NULL) set_string(L, "unit", p->unit);
  push_name_list(L, p->editions, p->n_editions);
  lua_setfield(L, -2, "editions");
  push_name_list(L, p->addons, p->n_addons);
  lua_setfield(L, -2, "addons");
  lua_createtable(L, 0, p->n_addons);
  for (int a = 0; a < p->n_addons; a++)
    if (p->addon_prices[a] >= 0) {
      lua_pushinteger(L, (lua_Integer)p->addon_prices[a]);
      lua_setfield(L, -2, p->addons[a]);
    }
  lua_setfield(L, -2, "addon_prices");
  lua_pushinteger(L, p->n_builds);
  lua_setfield(L, -2, "build_count");
}

/* cat:products() -- every product's description, sorted by id. */
static int cat_products(lua_State *L)
{
  const lsr_catalogue *cat = check_catalogue(L, 1);
  lua_createtable(L, cat->n_products, 0);
  for (int i = 0; i < cat->n_products; i++) {
    push_product(L, &cat->products[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* cat:product(id) -- one product's description, or nil, msg, "unknown_product". */
static int cat_product(lua_State *L)
{
  const lsr_catalogue *cat = check_catalogue(L, 2);
  size_t len;
  const char *id = luaL_checklstring(L, 2, &len);
  const lsr_product *p = lsr_find_product(cat, id, len);
  if (p == NULL) return fail(L, "unknown_product", "unknown product '%s'", id);
  push_product(L, p);
  return 1;
}

/* cat:builds(product) -- the build records, oldest first. */
static int cat_builds(lua_State *L)
{
  const lsr_catalogue *cat = check_catalogue(L, 2);
  size_t len;
  const char *id = luaL_checklstring(L, 2, &len);
  const lsr_product *p = lsr_find_product(cat, id, len);
  if (p == NULL) return fail(L, "unknown_product", "unknown product '%s'", id);
  lsr_getuservalue(L, 1);
  lua_createtable(L, p->n_builds, 0);
  for (int i = 0; i < p->n_builds; i++) {
    lsr_rawgeti(L, -2, p->record_base + i + 1);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* cat:policy() -- a copy of the policy in force. */
static int cat_policy(lua_State *L)
{
  const lsr_policy *pol = &check_catalogue(L, 1)->policy;
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, pol->ms_months);
  lua_setfield(L, -2, "ms_months");
  lua_pushinteger(L, pol->trial_days);
  lua_setfield(L, -2, "trial_days");
  lua_pushinteger(L, pol->migration_days);
  lua_setfield(L, -2, "migration_days");
  lua_pushinteger(L, pol->migration_extra);
  lua_setfield(L, -2, "migration_extra");
  lua_pushinteger(L, pol->checkin_grace_days);
  lua_setfield(L, -2, "checkin_grace_days");
  lua_pushinteger(L, pol->phone_after_days);
  lua_setfield(L, -2, "phone_after_days");
  lua_pushinteger(L, pol->disable_after_days);
  lua_setfield(L, -2, "disable_after_days");
  set_string(L, "renewal_basis",
             pol->renewal_basis == LSR_BASIS_FROM_RENEWAL ? "from_renewal" : "from_expiry");
  return 1;
}

/* __gc and __close: frees the compiled catalogue; safe to run twice. */
static int cat_release(lua_State *L)
{
  catalogue_box *box = luaL_checkudata(L, 1, CATALOGUE_MT);
  lsr_catalogue_free(box->cat);
  box->cat = NULL;
  return 0;
}

static int cat_tostring(lua_State *L)
{
  catalogue_box *box = luaL_checkudata(L, 1, CATALOGUE_MT);
  if (box->cat == NULL) {
    lua_pushliteral(L, "licensor.catalogue (closed)");
  } else {
    lua_pushfstring(L, "licensor.catalogue (%d products, %d builds)", box->cat->n_products,
                    box->cat->n_builds);
  }
  return 1;
}

/* ------------------------------------------------------------------ */
/* Module functions                                                    */
/* ------------------------------------------------------------------ */

/* core._internals(cat) -> compiled catalogue pointer, build records: what
 * the LuaJIT FFI path (lua/licensor/ffi.lua) needs to answer by itself. */
static int l_internals(lua_State *L)
{
  catalogue_box *box = luaL_checkudata(L, 1, CATALOGUE_MT);
  if (box->cat == NULL) return 0;
  lua_pushlightuserdata(L, box->cat);
  lsr_getuservalue(L, 1);
  return 2;
}

/* licensor.day("YYYY-MM-DD") -> day number (days since 1970-01-01). */
static int l_day(lua_State *L)
{
  lsr_day day;
  if (read_date(L, 1, &day) != DATE_OK) return bad_date(L, 1, "date");
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
    return fail(L, "invalid_date", "day %d is outside years 1-9999", (int)(day < 0 ? -1 : day));
  push_date(L, (lsr_day)day);
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

/* licensor.today() -> today's date (UTC). */
static int l_today(lua_State *L)
{
  push_date(L, lsr_today());
  return 1;
}

static long check_months(lua_State *L, int arg)
{
  long long months = 0;
  if (!lsr_tointeger_exact(L, arg, &months) || months < 1 || months > 120000)
    luaL_argerror(L, arg, "months must be a whole number from 1 to 120000");
  return (long)months;
}

/* licensor.term(start, months) -> last covered day. */
static int l_term(lua_State *L)
{
  lsr_day start, end;
  long months = check_months(L, 2);
  if (read_date(L, 1, &start) != DATE_OK) return bad_date(L, 1, "start");
  end = lsr_term_end(start, months);
  if (end == LSR_NO_DAY) return fail(L, "invalid_date", "the term ends after 9999-12-31");
  push_date(L, end);
  return 1;
}

/* Shallow copy of the table at idx, with its addons table copied too. */
static void push_license_copy(lua_State *L, int idx)
{
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
}

/* Sets every owned add-on of the copy (on top) to paid through `day`. */
static void renew_addons(lua_State *L, int copy, lsr_day day)
{
  int addons;
  lua_pushvalue(L, UV(UV_ADDONS));
  if (lsr_rawget(L, copy) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  addons = lua_gettop(L);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, addons) != 0) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    push_date(L, day);
    lua_rawset(L, -4);
  }
  lua_pushvalue(L, UV(UV_ADDONS));
  lua_insert(L, -2);
  lua_rawset(L, copy);
  lua_pop(L, 1);
}

static int read_renew_options(lua_State *L, int arg, long *months, int *basis)
{
  *months = 12;
  *basis = LSR_BASIS_FROM_EXPIRY;
  if (lua_isnoneornil(L, arg)) return 0;
  check_table(L, arg, "options");
  lua_getfield(L, arg, "months");
  if (!lua_isnil(L, -1)) *months = check_months(L, lua_gettop(L));
  lua_getfield(L, arg, "basis");
  if (!lua_isnil(L, -1)) {
    const char *basis_name = lua_tostring(L, -1);
    if (lua_type(L, -1) != LUA_TSTRING ||
        (strcmp(basis_name, "from_expiry") != 0 && strcmp(basis_name, "from_renewal") != 0))
      luaL_argerror(L, arg, "basis must be \"from_expiry\" or \"from_renewal\"");
    *basis = strcmp(basis_name, "from_renewal") == 0 ? LSR_BASIS_FROM_RENEWAL : LSR_BASIS_FROM_EXPIRY;
  }
  lua_pop(L, 2);
  return 0;
}

/* licensor.renew(lic, on [, {months=, basis=}]) -- R15 on a copy. */
static int l_renew(lua_State *L)
{
  lsr_day on, start, ms_start, ms_expires, anchor, new_anchor, new_expires;
  long months;
  int basis, n, t;
  check_table(L, 1, "license");
  read_renew_options(L, 3, &months, &basis);
  lua_settop(L, 3);
  lua_pushvalue(L, UV(UV_KIND));
  t = lsr_rawget(L, 1);
  if (t != LUA_TNIL && !lua_rawequal(L, -1, UV(UV_PERPETUAL)))
    return license_fail(L, 1, "invalid_license", "only perpetual licenses have M&S to renew");
  lua_pop(L, 1);
  if ((n = take_date_field(L, 1, UV_START, true, &start))) return n;
  if ((n = take_date_field(L, 1, UV_MS_START, false, &ms_start))) return n;
  if ((n = take_date_field(L, 1, UV_MS_EXPIRES, false, &ms_expires))) return n;
  if ((n = read_on(L, 2, &on))) return n;
  anchor = ms_start != LSR_NO_DAY ? ms_start : start;
  if (!lsr_renew_term(anchor, ms_expires, on, months, basis, &new_anchor, &new_expires))
    return fail(L, "invalid_date", "the renewed term ends after 9999-12-31");
  push_license_copy(L, 1);
  push_date(L, new_expires);
  lua_setfield(L, -2, "ms_expires");
  if (new_anchor != anchor) {
    push_date(L, new_anchor);
    lua_setfield(L, -2, "ms_start");
  }
  renew_addons(L, lua_gettop(L), new_expires);
  return 1;
}


/* ------------------------------------------------------------------ */
/* Store connection (licensor.core.open -> db)                          */
/* ------------------------------------------------------------------ */

/* Raises {code=, message=}: the store's Lua layer catches it, rolls the
 * transaction back and answers nil, message, code. */
static int raise_store(lua_State *L, const char *code, const char *message)
{
  lua_createtable(L, 0, 2);
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  return lua_error(L);
}

static const char *sqlite_code(int rc)
{
  switch (rc & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED: return "busy";
  case SQLITE_CONSTRAINT: return "constraint";
  case SQLITE_FULL:
  case SQLITE_IOERR: return "io_error";
  default: return "store_error";
  }
}

static int raise_sqlite(lua_State *L, const lsr_store *store, int rc)
{
  return raise_store(L, sqlite_code(rc), store->db ? sqlite3_errmsg(store->db) : sqlite3_errstr(rc));
}

static lsr_store *check_store(lua_State *L)
{
  lsr_store *store = luaL_checkudata(L, 1, STORE_MT);
  if (store->db == NULL) luaL_argerror(L, 1, "store is closed");
  if (!lsr_store_is_owner(store))
    raise_store(L, "wrong_process",
                "this store was opened by another process (before fork); open it again here");
  return store;
}

/* core.open(path, full_sync, busy_ms) */
static int l_open(lua_State *L)
{
  char err[ERRLEN];
  const char *path = luaL_checkstring(L, 1);
  bool full = lua_toboolean(L, 2) != 0;
  long long busy = 5000;
  lsr_store *store;
  if (!lua_isnoneornil(L, 3) && (!lsr_tointeger_exact(L, 3, &busy) || busy < 0 || busy > 3600000))
    luaL_argerror(L, 3, "busy_ms must be a whole number of milliseconds");
  store = lua_newuserdata(L, sizeof *store);
  memset(store, 0, sizeof *store);
  luaL_getmetatable(L, STORE_MT);
  lua_setmetatable(L, -2);
  if (!lsr_store_open(store, path, full, (int)busy, err, sizeof err))
    return fail(L, "store_error", "%s", err);
  return 1;
}

/* db:prepare(sql) -> statement id; bad SQL is a programming error. */
static int db_prepare(lua_State *L)
{
  lsr_store *store = check_store(L);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  int id = lsr_store_prepare(store, sql, len);
  if (id < 0) return luaL_error(L, "cannot prepare %s: %s", sql, sqlite3_errmsg(store->db));
  lua_pushinteger(L, id);
  return 1;
}

/* db:exec(script) */
static int db_exec(lua_State *L)
{
  lsr_store *store = check_store(L);
  int rc = lsr_store_exec(store, luaL_checkstring(L, 2));
  if (rc != SQLITE_OK) return raise_sqlite(L, store, rc);
  lua_pushboolean(L, 1);
  return 1;
}

static void bind_value(lua_State *L, sqlite3_stmt *stmt, int param, int idx)
{
  long long v;
  size_t len;
  const char *s;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    sqlite3_bind_null(stmt, param);
    break;
  case LUA_TBOOLEAN:
    sqlite3_bind_int(stmt, param, lua_toboolean(L, idx));
    break;
  case LUA_TNUMBER:
    if (lsr_tointeger_exact(L, idx, &v)) sqlite3_bind_int64(stmt, param, v);
    else sqlite3_bind_double(stmt, param, (double)lua_tonumber(L, idx));
    break;
  case LUA_TSTRING:
    /* The string stays on the stack until the statement is reset. */
    s = lua_tolstring(L, idx, &len);
    sqlite3_bind_text(stmt, param, s, (int)len, SQLITE_STATIC);
    break;
  default:
    luaL_argerror(L, idx, lua_pushfstring(L, "cannot store a %s", luaL_typename(L, idx)));
  }
}

/* The statement with id at argument 2, reset and bound to arguments 3.. */
static sqlite3_stmt *bound_statement(lua_State *L, lsr_store *store)
{
  int top = lua_gettop(L);
  sqlite3_stmt *stmt = lsr_store_statement(store, (int)luaL_checkinteger(L, 2));
  if (stmt == NULL) luaL_argerror(L, 2, "no such statement");
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  if (top - 2 > sqlite3_bind_parameter_count(stmt))
    luaL_error(L, "too many values for: %s", sqlite3_sql(stmt));
  for (int i = 3; i <= top; i++) bind_value(L, stmt, i - 2, i);
  return stmt;
}

static void push_column(lua_State *L, sqlite3_stmt *stmt, int col)
{
  switch (sqlite3_column_type(stmt, col)) {
  case SQLITE_INTEGER:
    lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(stmt, col));
    break;
  case SQLITE_FLOAT:
    lua_pushnumber(L, (lua_Number)sqlite3_column_double(stmt, col));
    break;
  case SQLITE_NULL:
    lua_pushnil(L);
    break;
  default:
    lua_pushlstring(L, (const char *)sqlite3_column_text(stmt, col),
                    (size_t)sqlite3_column_bytes(stmt, col));
  }
}

/* Pushes the current row as { column = value } (NULL columns left out). */
static void push_row(lua_State *L, sqlite3_stmt *stmt)
{
  int n = sqlite3_column_count(stmt);
  lua_createtable(L, 0, n);
  for (int col = 0; col < n; col++) {
    if (sqlite3_column_type(stmt, col) == SQLITE_NULL) continue;
    push_column(L, stmt, col);
    lua_setfield(L, -2, sqlite3_column_name(stmt, col));
  }
}

static int step(lua_State *L, lsr_store *store, sqlite3_stmt *stmt)
{
  int rc = sqlite3_step(stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    sqlite3_reset(stmt);
    raise_sqlite(L, store, rc);
  }
  return rc;
}

/* db:run(id, ...) -> changes, last insert rowid */
static int db_run(lua_State *L)
{
  lsr_store *store = check_store(L);
  sqlite3_stmt *stmt = bound_statement(L, store);
  while (step(L, store, stmt) == SQLITE_ROW) {}
  sqlite3_reset(stmt);
  lua_pushinteger(L, sqlite3_changes(store->db));
  lua_pushinteger(L, (lua_Integer)sqlite3_last_insert_rowid(store->db));
  return 2;
}

/* db:first(id, ...) -> the first row, or nil */
static int db_first(lua_State *L)
{
  lsr_store *store = check_store(L);
  sqlite3_stmt *stmt = bound_statement(L, store);
  if (step(L, store, stmt) == SQLITE_ROW) push_row(L, stmt);
  else lua_pushnil(L);
  sqlite3_reset(stmt);
  return 1;
}

/* db:value(id, ...) -> the first column of the first row, or nil */
static int db_value(lua_State *L)
{
  lsr_store *store = check_store(L);
  sqlite3_stmt *stmt = bound_statement(L, store);
  if (step(L, store, stmt) == SQLITE_ROW && sqlite3_column_count(stmt) > 0) push_column(L, stmt, 0);
  else lua_pushnil(L);
  sqlite3_reset(stmt);
  return 1;
}

/* db:all(id, ...) -> list of rows */
static int db_all(lua_State *L)
{
  lsr_store *store = check_store(L);
  sqlite3_stmt *stmt = bound_statement(L, store);
  int n = 0;
  lua_newtable(L);
  while (step(L, store, stmt) == SQLITE_ROW) {
    push_row(L, stmt);
    lua_rawseti(L, -2, ++n);
  }
  sqlite3_reset(stmt);
  return 1;
}

/* PRAGMAs that only report (sqlite3_stmt_readonly says no to every PRAGMA). */
static bool is_reading_pragma(const char *sql)
{
  static const char *const names[] = {
    "user_version", "journal_mode", "integrity_check", "quick_check", "foreign_key_check",
    "page_count", "page_size", "freelist_count", "synchronous", "table_info", "index_list",
    "data_version", NULL
  };
  const char *p = sql;
  while (*p == ' ' || *p == '\n' || *p == '\t') p++;
  if (strncasecmp(p, "PRAGMA", 6) != 0 || strchr(p, '=') != NULL) return false;
  p += 6;
  while (*p == ' ') p++;
  for (int i = 0; names[i] != NULL; i++) {
    size_t n = strlen(names[i]);
    if (strncasecmp(p, names[i], n) == 0 && (p[n] == '\0' || p[n] == '(' || p[n] == ' ' || p[n] == ';'))
      return true;
  }
  return false;
}

/* db:query(sql, ...) -> rows of a read-only statement prepared for this
 * call (for people at the REPL; workflows use prepared ids). */
static int db_query(lua_State *L)
{
  lsr_store *store = check_store(L);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  sqlite3_stmt *stmt = NULL;
  int n = 0, rc, top = lua_gettop(L);
  if (sqlite3_prepare_v2(store->db, sql, (int)len, &stmt, NULL) != SQLITE_OK || stmt == NULL)
    return fail(L, "invalid_request", "%s", sqlite3_errmsg(store->db));
  if (!sqlite3_stmt_readonly(stmt) && !is_reading_pragma(sql)) {
    sqlite3_finalize(stmt);
    return fail(L, "invalid_request", "db:query runs read-only statements only");
  }
  for (int i = 3; i <= top && i - 2 <= sqlite3_bind_parameter_count(stmt); i++) {
    int t = lua_type(L, i);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING) {
      sqlite3_finalize(stmt);
      return luaL_argerror(L, i, "cannot bind this value");
    }
    bind_value(L, stmt, i - 2, i);
  }
  lua_newtable(L);
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    push_row(L, stmt);
    lua_rawseti(L, -2, ++n);
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return fail(L, sqlite_code(rc), "%s", sqlite3_errstr(rc));
  return 1;
}

static int db_begin(lua_State *L)
{
  lsr_store *store = check_store(L);
  int rc = lsr_store_begin(store);
  if (rc != SQLITE_OK) return raise_sqlite(L, store, rc);
  return 0;
}

static int db_commit(lua_State *L)
{
  lsr_store *store = check_store(L);
  int rc = lsr_store_commit(store);
  if (rc != SQLITE_OK) return raise_sqlite(L, store, rc);
  return 0;
}

/* Never raises: it runs on error paths. */
static int db_rollback(lua_State *L)
{
  lsr_store *store = luaL_checkudata(L, 1, STORE_MT);
  if (store->db != NULL && lsr_store_is_owner(store)) lsr_store_rollback(store);
  return 0;
}

/* db:generation() -> a number that changes whenever anyone may have
 * committed since the previous call (see store.h). */
static int db_generation(lua_State *L)
{
  lua_pushnumber(L, (lua_Number)lsr_store_generation(check_store(L)));
  return 1;
}

/* __gc, __close and close: safe twice, and never touches the file from a
 * forked child (see lsr_store_forget). */
static int db_close(lua_State *L)
{
  lsr_store *store = luaL_checkudata(L, 1, STORE_MT);
  if (store->db != NULL) {
    if (lsr_store_is_owner(store)) lsr_store_close(store);
    else lsr_store_forget(store);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int db_tostring(lua_State *L)
{
  lsr_store *store = luaL_checkudata(L, 1, STORE_MT);
  if (store->db == NULL) lua_pushliteral(L, "licensor.db (closed)");
  else lua_pushfstring(L, "licensor.db (%s)", sqlite3_db_filename(store->db, "main"));
  return 1;
}

/* core.new_key() -> a fresh license key */
static int l_new_key(lua_State *L)
{
  char key[LSR_KEY_LEN + 1];
  if (!lsr_key_generate(key)) return luaL_error(L, "the operating system gave no random bytes");
  lua_pushstring(L, key);
  return 1;
}

/* core.normalise_key(text) -> canonical key, or nil, message, "invalid_key" */
static int l_normalise_key(lua_State *L)
{
  char key[LSR_KEY_LEN + 1];
  size_t len;
  const char *text;
  if (lua_type(L, 1) != LUA_TSTRING) return fail(L, "invalid_key", "a license key is a string");
  text = lua_tolstring(L, 1, &len);
  if (len > 64 || !lsr_key_normalise(text, len, key))
    return fail(L, "invalid_key", "not a license key (28 symbols in groups of 7, the last a check symbol)");
  lua_pushstring(L, key);
  return 1;
}

static const luaL_Reg store_methods[] = {
  { "prepare", db_prepare },
  { "exec", db_exec },
  { "run", db_run },
  { "first", db_first },
  { "value", db_value },
  { "all", db_all },
  { "query", db_query },
  { "begin", db_begin },
  { "commit", db_commit },
  { "rollback", db_rollback },
  { "generation", db_generation },
  { "close", db_close },
  { NULL, NULL }
};

static const luaL_Reg store_meta[] = {
  { "__gc", db_close },
  { "__close", db_close },
  { "__tostring", db_tostring },
  { NULL, NULL }
};

/* ------------------------------------------------------------------ */
/* Module                                                              */
/* ------------------------------------------------------------------ */

static const luaL_Reg catalogue_methods[] = {
  { "build", cat_build },
  { "eligible", cat_eligible },
  { "can_install", cat_can_install },
  { "status", cat_status },
  { "addon_status", cat_addon_status },
  { "quote_upgrade", cat_quote_upgrade },
  { "can_rollback", cat_can_rollback },
  { "migration", cat_migration },
  { "ladder", cat_ladder },
  { "admission", cat_admission },
  { "products", cat_products },
  { "product", cat_product },
  { "builds", cat_builds },
  { "policy", cat_policy },
  { "close", cat_release },
  { NULL, NULL }
};

static const luaL_Reg catalogue_meta[] = {
  { "__gc", cat_release },
  { "__close", cat_release },
  { "__tostring", cat_tostring },
  { NULL, NULL }
};

static const luaL_Reg module_functions[] = {
  { "catalogue", l_catalogue },
  { "term", l_term },
  { "renew", l_renew },
  { "day", l_day },
  { "date", l_date },
  { "today", l_today },
  { "_internals", l_internals },
  { "monotonic_us", l_monotonic_us },
  { "open", l_open },
  { "new_key", l_new_key },
  { "normalise_key", l_normalise_key },
  { NULL, NULL }
};

/* Pushes the shared upvalues (metatable at mt_idx, then the key strings). */
static void push_upvalues(lua_State *L, int mt_idx)
{
  lua_pushvalue(L, mt_idx);
  for (int i = 0; i < UV_COUNT - 1; i++) lua_pushstring(L, upvalue_strings[i]);
}

LSR_EXPORT int luaopen_licensor_core(lua_State *L);

LSR_EXPORT int luaopen_licensor_core(lua_State *L)
{
  int mt;
  luaL_newmetatable(L, CATALOGUE_MT);
  mt = lua_gettop(L);
  luaL_setfuncs(L, catalogue_meta, 0);
  lua_pushliteral(L, "licensor.catalogue");
  lua_setfield(L, mt, "__name");
  lua_newtable(L);   /* methods, also exported so the Lua layer can add its own */
  push_upvalues(L, mt);
  luaL_setfuncs(L, catalogue_methods, UV_COUNT);
  lua_pushvalue(L, -1);
  lua_setfield(L, mt, "__index");
  luaL_newmetatable(L, STORE_MT);
  luaL_setfuncs(L, store_meta, 0);
  luaL_newlib(L, store_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_newtable(L);   /* the module */
  push_upvalues(L, mt);
  luaL_setfuncs(L, module_functions, UV_COUNT);
  lua_insert(L, -2);
  lua_setfield(L, -2, "catalogue_methods");
  lua_pushliteral(L, "0.1.0");
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
