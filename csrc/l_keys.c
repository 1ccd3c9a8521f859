/*
 * l_keys.c -- license keys and names for Lua: core.new_key and
 * core.normalise_key over keys.h, core.check_name and core.MAX_NAME over
 * names.h.
 */
#include "lbind.h"

#include "keys.h"
#include "names.h"

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
  if (lua_type(L, 1) != LUA_TSTRING) return lb_fail(L, "invalid_key", "a license key is a string");
  text = lua_tolstring(L, 1, &len);
  if (len > 64 || !lsr_key_normalise(text, len, key))
    return lb_fail(L, "invalid_key", "not a license key (28 symbols in groups of 7, the last a check symbol)");
  lua_pushstring(L, key);
  return 1;
}


/* core.check_name(text, field) -> text, or nil, "field: why", "invalid_request" */
static int l_check_name(lua_State *L)
{
  size_t len;
  const char *why = NULL, *text;
  const char *field = luaL_optstring(L, 2, "name");
  /* Checked before lua_tolstring, which would turn a number into a string. */
  if (lua_type(L, 1) != LUA_TSTRING)
    return lb_fail(L, "invalid_request", "%s: a string expected, got %s", field, luaL_typename(L, 1));
  text = lua_tolstring(L, 1, &len);
  if (!lsr_name_valid(text, len, &why)) return lb_fail(L, "invalid_request", "%s %s", field, why);
  lua_settop(L, 1);
  return 1;
}

static const luaL_Reg key_functions[] = {
  { "new_key", l_new_key },
  { "normalise_key", l_normalise_key },
  { "check_name", l_check_name },
  { NULL, NULL }
};

void lb_open_keys(lua_State *L, int module, int mt)
{
  lb_setfuncs(L, module, mt, key_functions);
  lua_pushinteger(L, LSR_NAME_MAX);
  lua_setfield(L, module, "MAX_NAME");
}
