/*
 * l_license.c -- license tables: reading and validating the fields the
 * rules use (into an lsr_license), the messages of refusals, and the
 * license-level functions licensor.renew (R15) and licensor.transfer (R14).
 *
 * Hot path notes (cat:eligible): fields are read with lua_rawget on key
 * strings kept as closure upvalues (no hashing of C strings), and fetched
 * onto the stack once each, with no pops.
 */
#include "lbind.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

int lb_license_fail(lua_State *L, int lic_idx, const char *code, const char *fmt, ...)
{
  char msg[LB_ERRLEN];
  va_list ap;
  size_t used = license_label(L, lic_idx, msg, sizeof msg - 2);
  msg[used++] = ':';
  msg[used++] = ' ';
  va_start(ap, fmt);
  vsnprintf(msg + used, sizeof msg - used, fmt, ap);
  va_end(ap);
  lua_pushstring(L, msg);
  return lb_push_failure(L, 0, code);
}

/* Pushes lic[key] where key is the upvalue string uv. */
int lb_get_field(lua_State *L, int lic_idx, int uv)
{
  lua_pushvalue(L, UV(uv));
  return lsr_rawget(L, lic_idx);
}

/* Validates the date at stack index v, the value of field uv. */
static int date_field(lua_State *L, int lic_idx, int uv, int v, bool required, lsr_day *out)
{
  int r = lb_read_date(L, v, out);
  const char *field = lb_upvalue_name(uv);
  if (r == LB_DATE_OK) return 0;
  if (r == LB_DATE_ABSENT) {
    *out = LSR_NO_DAY;
    if (!required) return 0;
    return lb_license_fail(L, lic_idx, "invalid_date", "field '%s' is required (YYYY-MM-DD)", field);
  }
  if (lua_type(L, v) == LUA_TSTRING)
    return lb_license_fail(L, lic_idx, "invalid_date", "field '%s': '%s' is not a date (YYYY-MM-DD)",
                        field, lua_tostring(L, v));
  return lb_license_fail(L, lic_idx, "invalid_date", "field '%s': date string expected, got %s",
                      field, luaL_typename(L, v));
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
  return lb_license_fail(L, lic_idx, "invalid_license", "field '%s' must be a whole number from 1 to %s",
                      lb_upvalue_name(uv), max == LSR_INT_MAX ? "2^53-1" : "36500");
}

/* The product named by lic.product (value at stack index v). */
static int product_field(lua_State *L, const lsr_catalogue *cat, int lic_idx, int v, int t,
                         lsr_license *lic)
{
  size_t len;
  const char *id;
  if (t != LUA_TSTRING)
    return lb_license_fail(L, lic_idx, "invalid_license", "field 'product' must be a product id string");
  id = lua_tolstring(L, v, &len);
  lic->product = lsr_find_product(cat, id, len);
  if (lic->product == NULL)
    return lb_license_fail(L, lic_idx, "unknown_product", "unknown product '%s'", id);
  return 0;
}

int lb_read_product(lua_State *L, const lsr_catalogue *cat, int lic_idx, lsr_license *lic)
{
  int t = lb_get_field(L, lic_idx, UV_PRODUCT);
  return product_field(L, cat, lic_idx, lua_gettop(L), t, lic);
}

static int kind_field(lua_State *L, int lic_idx, int v, int t, lsr_license *lic)
{
  if (t == LUA_TNIL || lua_rawequal(L, v, UV(UV_PERPETUAL))) lic->kind = LSR_PERPETUAL;
  else if (lua_rawequal(L, v, UV(UV_LEASE))) lic->kind = LSR_LEASE;
  else if (lua_rawequal(L, v, UV(UV_TRIAL))) lic->kind = LSR_TRIAL;
  else if (t == LUA_TSTRING)
    return lb_license_fail(L, lic_idx, "invalid_license",
                        "kind '%s' is not perpetual, lease or trial", lua_tostring(L, v));
  else
    return lb_license_fail(L, lic_idx, "invalid_license", "field 'kind' must be a string, got %s",
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
    return lb_license_fail(L, lic_idx, "invalid_license", "field 'edition' must be a string, got %s",
                        luaL_typename(L, v));
  name = lua_tolstring(L, v, &len);
  lic->edition = lsr_find_edition(lic->product, name, len);
  if (lic->edition < 0)
    return lb_license_fail(L, lic_idx, "invalid_license", "product '%s' has no edition '%s'",
                        lic->product->id, name);
  return 0;
}

static int level_field(lua_State *L, int lic_idx, int v, int t, lsr_license *lic)
{
  lic->level = LSR_LEVEL_NONE;
  if (t == LUA_TNIL || lb_read_level(L, v, &lic->level)) return 0;
  return lb_license_fail(L, lic_idx, "invalid_license",
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
 * of results (nil, message, code) it pushed.  Order follows doc/rules.md
 * section 5:
 * unknown_product, then invalid_license / invalid_date field by field.
 * All fields are fetched onto the stack first and left there: one rawget
 * each and no pops keeps the hot path short.
 */
int lb_read_license(lua_State *L, const lsr_catalogue *cat, int lic_idx, lsr_license *lic,
                    const lsr_policy **policy)
{
  const lsr_policy *values;
  int n, t[F_VERSION_LOCK + 1], base = lua_gettop(L) + 1;
  for (int f = 0; f <= F_VERSION_LOCK; f++) t[f] = lb_get_field(L, lic_idx, field_upvalue[f]);
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
  /* One rawget when the license has no policy value of its own. */
  if ((n = lb_license_policy(L, cat, lic_idx, &values))) return n;
  if (policy != NULL) *policy = values;
  /* Fields of other kinds are not read: a perpetual license's rules never
   * look at lease_ended or trial_days. */
  lic->lease_ended = LSR_NO_DAY;
  lic->trial_days = values->trial_days;
  if (lic->kind == LSR_LEASE) {
    lb_get_field(L, lic_idx, UV_LEASE_ENDED);
    return date_field(L, lic_idx, UV_LEASE_ENDED, lua_gettop(L), false, &lic->lease_ended);
  }
  if (lic->kind == LSR_TRIAL) {
    int days = lb_get_field(L, lic_idx, UV_TRIAL_DAYS);
    if ((n = count_field(L, lic_idx, UV_TRIAL_DAYS, lua_gettop(L), days, 36500, &lic->trial_days)))
      return n;
    if (lic->trial_days == 0) lic->trial_days = values->trial_days;
  }
  return 0;
}

/* License (arg 2) and `on` (arg on_arg) together. */
int lb_read_query(lua_State *L, const lsr_catalogue *cat, lsr_license *lic, int on_arg, lsr_day *on,
                  const lsr_policy **policy)
{
  int n;
  lb_check_table(L, 2, "license");
  if ((n = lb_read_license(L, cat, 2, lic, policy))) return n;
  return lb_read_on(L, on_arg, on);
}

const char *lb_code_name(lsr_code code)
{
  static const char *const names[] = {
    "ok", "disabled", "not_started", "expired", "no_build", "newer_than_eligible",
    "different_major", "same_license", "downgrade", "no_price", "not_older",
    "rollback_barrier", "unknown_build"
  };
  return names[code];
}

/* Pushes the message explaining why a well-formed license has no build. */
void lb_push_refusal_message(lua_State *L, int lic_idx, const lsr_license *lic, lsr_day on,
                                 lsr_code code)
{
  char msg[LB_ERRLEN], a[LSR_DATE_LEN + 1], b[LSR_DATE_LEN + 1];
  size_t used = license_label(L, lic_idx, msg, sizeof msg);
  char *rest = msg + used;
  size_t room = sizeof msg - used;
  switch (code) {
  case LSR_DISABLED:
    snprintf(rest, room, " is disabled since %s", lb_date_text(lic->disabled, a));
    break;
  case LSR_NOT_STARTED:
    snprintf(rest, room, " starts on %s, after %s", lb_date_text(lic->start, a), lb_date_text(on, b));
    break;
  case LSR_EXPIRED:
    if (lic->kind == LSR_LEASE)
      snprintf(rest, room, " expired: the lease ended on %s", lb_date_text(lic->lease_ended, a));
    else
      snprintf(rest, room, " expired: the trial ended on %s", lb_date_text(lsr_trial_end(lic), a));
    break;
  default:
    if (lic->version_lock != 0)
      snprintf(rest, room, ": product '%s' has no %lld.x build released by %s", lic->product->id,
               (long long)lic->version_lock, lb_date_text(on, a));
    else
      snprintf(rest, room, ": product '%s' has no build old enough for this license on %s",
               lic->product->id, lb_date_text(on, a));
    break;
  }
  lua_pushstring(L, msg);
}

int lb_push_refusal(lua_State *L, int first, int lic_idx, const lsr_license *lic, lsr_day on,
                        lsr_code code)
{
  lb_push_refusal_message(L, lic_idx, lic, on, code);
  return lb_push_failure(L, first, lb_code_name(code));
}

const char *lb_kind_name(lsr_kind kind)
{
  return kind == LSR_LEASE ? "lease" : kind == LSR_TRIAL ? "trial" : "perpetual";
}

/* ------------------------------------------------------------------ */
/* Terms, renewals and transfers                                       */
/* ------------------------------------------------------------------ */

/* The months at stack index idx, blamed on argument arg when wrong. */
static long check_months(lua_State *L, int arg, int idx)
{
  long long months = 0;
  if (!lsr_tointeger_exact(L, idx, &months) || months < 1 || months > 120000)
    luaL_argerror(L, arg, "months must be a whole number from 1 to 120000");
  return (long)months;
}

/* licensor.term(start, months) -> last covered day. */
static int l_term(lua_State *L)
{
  lsr_day start, end;
  long months = check_months(L, 2, 2);
  if (lb_read_date(L, 1, &start) != LB_DATE_OK) return lb_bad_date(L, 1, "start");
  end = lsr_term_end(start, months);
  if (end == LSR_NO_DAY) return lb_fail(L, "invalid_date", "the term ends after 9999-12-31");
  lb_push_date(L, end);
  return 1;
}

/* A shallow copy of the table at idx.  Callers that change a nested table
 * (renew_addons) put a new one in its place, so the input is never
 * written. */
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

/* Gives the copy (at index copy) a new add-ons table with every owned
 * add-on paid through `day`. */
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
    lb_push_date(L, day);
    lua_rawset(L, -4);
  }
  lua_pushvalue(L, UV(UV_ADDONS));
  lua_insert(L, -2);
  lua_rawset(L, copy);
  lua_pop(L, 1);
}

/* The options {months=, basis=} at argument arg; wrong ones are
 * programming errors blamed on arg. */
static void read_renew_options(lua_State *L, int arg, long *months, int *basis)
{
  *months = 12;
  *basis = LSR_BASIS_FROM_EXPIRY;
  if (lua_isnoneornil(L, arg)) return;
  lb_check_table(L, arg, "options");
  lua_getfield(L, arg, "months");
  if (!lua_isnil(L, -1)) *months = check_months(L, arg, lua_gettop(L));
  lua_getfield(L, arg, "basis");
  if (!lua_isnil(L, -1) &&
      (lua_type(L, -1) != LUA_TSTRING || !lb_read_basis(lua_tostring(L, -1), basis)))
    luaL_argerror(L, arg, "basis must be \"from_expiry\" or \"from_renewal\"");
  lua_pop(L, 2);
}

/* Pushes lic[field] and validates it as a date. */
static int take_date_field(lua_State *L, int lic_idx, int uv, bool required, lsr_day *out)
{
  lb_get_field(L, lic_idx, uv);
  return date_field(L, lic_idx, uv, lua_gettop(L), required, out);
}

/* licensor.renew(lic, on [, {months=, basis=}]) -- R15 on a copy. */
static int l_renew(lua_State *L)
{
  lsr_day on, start, ms_start, ms_expires, anchor, new_anchor, new_expires;
  long months;
  int basis, n, t;
  lb_check_table(L, 1, "license");
  read_renew_options(L, 3, &months, &basis);
  lua_settop(L, 3);
  t = lb_get_field(L, 1, UV_KIND);
  if (t != LUA_TNIL && !lua_rawequal(L, -1, UV(UV_PERPETUAL)))
    return lb_license_fail(L, 1, "invalid_license", "only perpetual licenses have M&S to renew");
  lua_pop(L, 1);
  if ((n = take_date_field(L, 1, UV_START, true, &start))) return n;
  if ((n = take_date_field(L, 1, UV_MS_START, false, &ms_start))) return n;
  if ((n = take_date_field(L, 1, UV_MS_EXPIRES, false, &ms_expires))) return n;
  if ((n = lb_read_on(L, 2, &on))) return n;
  anchor = ms_start != LSR_NO_DAY ? ms_start : start;
  if (!lsr_renew_term(anchor, ms_expires, on, months, basis, &new_anchor, &new_expires))
    return lb_fail(L, "invalid_date", "the renewed term ends after 9999-12-31");
  push_license_copy(L, 1);
  lb_push_date(L, new_expires);
  lua_setfield(L, -2, "ms_expires");
  if (new_anchor != anchor) {
    lb_push_date(L, new_anchor);
    lua_setfield(L, -2, "ms_start");
  }
  renew_addons(L, lua_gettop(L), new_expires);
  return 1;
}

/* R14: licensor.transfer(lic, owner, {consent=REF}) -> a copy owned by
 * `owner` that keeps the reference as transfer_consent, or nil, message,
 * "transfer_requires_consent". */
static int l_transfer(lua_State *L)
{
  size_t len = 0;
  const char *consent = NULL;
  lb_check_table(L, 1, "license");
  if (lua_type(L, 2) != LUA_TSTRING || lsr_rawlen(L, 2) == 0)
    luaL_argerror(L, 2, "owner string expected");
  if (!lua_isnoneornil(L, 3)) lb_check_table(L, 3, "options");
  lua_settop(L, 3);
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "consent");
    if (lua_type(L, -1) == LUA_TSTRING) consent = lua_tolstring(L, -1, &len);
  }
  if (consent == NULL || strspn(consent, " \t\r\n\f\v") == len)
    return lb_fail(L, "transfer_requires_consent",
                   "a license changes owner only with a written-consent reference (consent=)");
  push_license_copy(L, 1);
  lua_pushvalue(L, UV(UV_OWNER));
  lua_pushvalue(L, 2);
  lua_rawset(L, -3);
  lua_pushvalue(L, UV(UV_TRANSFER_CONSENT));
  lua_pushvalue(L, 4);
  lua_rawset(L, -3);
  return 1;
}

static const luaL_Reg license_functions[] = {
  { "term", l_term },
  { "renew", l_renew },
  { "transfer", l_transfer },
  { NULL, NULL }
};

void lb_open_license(lua_State *L, int module, int mt)
{
  lb_setfuncs(L, module, mt, license_functions);
}
