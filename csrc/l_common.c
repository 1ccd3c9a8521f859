/*
 * l_common.c -- helpers every binding file uses: failure answers, dates,
 * small table setters, the catalogue self check and registration with the
 * shared upvalues.  See lbind.h for the conventions.
 */
#include "lbind.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const upvalue_strings[] = {
  "product", "kind", "edition", "level", "start", "ms_expires",
  "ms_start", "disabled", "lease_ended", "trial_days", "version_lock",
  "addons", "failover", "key", "owner", "transfer_consent",
  "perpetual", "lease", "trial", "unlimited", "policy", "policy_override"
};

const char *lb_upvalue_name(int uv)
{
  return upvalue_strings[uv - UV_PRODUCT];
}

void lb_setfuncs(lua_State *L, int table, int mt, const luaL_Reg *funcs)
{
  lua_pushvalue(L, table);
  lua_pushvalue(L, mt);
  for (int i = 0; i < UV_COUNT - 1; i++) lua_pushstring(L, upvalue_strings[i]);
  luaL_setfuncs(L, funcs, UV_COUNT);
  lua_pop(L, 1);
}

/* ------------------------------------------------------------------ */
/* Failures                                                            */
/* ------------------------------------------------------------------ */

int lb_push_failure(lua_State *L, int first, const char *code)
{
  if (first) lua_pushboolean(L, 0);
  else lua_pushnil(L);
  lua_insert(L, -2);
  lua_pushstring(L, code);
  return 3;
}

/* Pushes the message: formatted in a C buffer, one Lua string. */
static void push_message(lua_State *L, const char *fmt, va_list ap) LB_PRINTF_LIKE(2, 0);

static void push_message(lua_State *L, const char *fmt, va_list ap)
{
  char msg[LB_ERRLEN];
  vsnprintf(msg, sizeof msg, fmt, ap);
  lua_pushstring(L, msg);
}

int lb_fail(lua_State *L, const char *code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  push_message(L, fmt, ap);
  va_end(ap);
  return lb_push_failure(L, 0, code);
}

int lb_raise(lua_State *L, const char *code, const char *fmt, ...)
{
  va_list ap;
  lua_createtable(L, 0, 2);
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  va_start(ap, fmt);
  push_message(L, fmt, ap);
  va_end(ap);
  lua_setfield(L, -2, "message");
  luaL_getmetatable(L, LB_FAILURE_MT);
  lua_setmetatable(L, -2);
  lua_error(L);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Values                                                              */
/* ------------------------------------------------------------------ */

void lb_push_date(lua_State *L, lsr_day day)
{
  char buf[LSR_DATE_LEN + 1];
  lsr_date_format(day, buf);
  lua_pushlstring(L, buf, LSR_DATE_LEN);
}

const char *lb_date_text(lsr_day day, char *buf)
{
  lsr_date_format(day, buf);
  return buf;
}

void lb_set_string(lua_State *L, const char *field, const char *value)
{
  lua_pushstring(L, value);
  lua_setfield(L, -2, field);
}

void lb_set_bool(lua_State *L, const char *field, bool value)
{
  lua_pushboolean(L, value);
  lua_setfield(L, -2, field);
}

void lb_check_table(lua_State *L, int arg, const char *what)
{
  if (lua_type(L, arg) != LUA_TTABLE)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s table expected, got %s", what,
                                          luaL_typename(L, arg)));
}

/* The metatable it leaves above the arguments is harmless and saves a pop. */
lsr_catalogue *lb_check_catalogue(lua_State *L, int nargs)
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
/* Dates, levels, renewal bases                                        */
/* ------------------------------------------------------------------ */

int lb_read_date(lua_State *L, int idx, lsr_day *out)
{
  size_t len;
  const char *s;
  /* One call on the usual path.  lua_tolstring turns a number into a string
   * in place (on our stack copy), and no number's text parses as a date. */
  s = lua_tolstring(L, idx, &len);
  if (s == NULL) return lua_isnoneornil(L, idx) ? LB_DATE_ABSENT : LB_DATE_BAD;
  return lsr_date_parse(s, len, out) ? LB_DATE_OK : LB_DATE_BAD;
}

int lb_bad_date(lua_State *L, int idx, const char *field)
{
  if (lua_type(L, idx) == LUA_TSTRING)
    return lb_fail(L, "invalid_date", "%s: '%s' is not a date (YYYY-MM-DD, years 1-9999)",
                   field, lua_tostring(L, idx));
  return lb_fail(L, "invalid_date", "%s: date string YYYY-MM-DD expected, got %s", field,
                 luaL_typename(L, idx));
}

int lb_read_on(lua_State *L, int arg, lsr_day *on)
{
  switch (lb_read_date(L, arg, on)) {
  case LB_DATE_OK: return 0;
  case LB_DATE_ABSENT: *on = lsr_today(); return 0;
  default: return lb_bad_date(L, arg, "on");
  }
}

bool lb_read_level(lua_State *L, int idx, lsr_level *out)
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

bool lb_read_basis(const char *name, int *basis)
{
  if (name == NULL) return false;
  if (strcmp(name, "from_expiry") == 0) *basis = LSR_BASIS_FROM_EXPIRY;
  else if (strcmp(name, "from_renewal") == 0) *basis = LSR_BASIS_FROM_RENEWAL;
  else return false;
  return true;
}

bool lb_read_match(const char *name, int *match)
{
  if (name == NULL) return false;
  if (strcmp(name, "most") == 0) *match = LSR_MATCH_MOST;
  else if (strcmp(name, "all") == 0) *match = LSR_MATCH_ALL;
  else if (strcmp(name, "any") == 0) *match = LSR_MATCH_ANY;
  else return false;
  return true;
}

const char *lb_match_name(int match)
{
  return match == LSR_MATCH_ALL ? "all" : match == LSR_MATCH_ANY ? "any" : "most";
}

const char *lb_basis_name(int basis)
{
  return basis == LSR_BASIS_FROM_RENEWAL ? "from_renewal" : "from_expiry";
}

void lb_new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods)
{
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, meta, 0);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
