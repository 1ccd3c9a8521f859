/*
 * l_policy.c -- per-license policy values.  cat:resolve_policy(overrides)
 * makes a "licensor.policy" userdata holding a whole policy: the
 * catalogue's with the overrides applied, read by l_compile.c with the
 * catalogue's own bounds, messages and cross-checks.  A license table that
 * carries one as `policy` has every rule read its values instead of the
 * catalogue's (lb_license_policy); without one nothing changes, at the
 * cost of one rawget.  Also the policy as a table (cat:policy, pv:table).
 *
 * What the layers are and where overrides come from (products, editions,
 * hooks, the license row) is the Lua side's business, not this file's.
 */
#include "lbind.h"

#include <string.h>

/* Pushes the policy as a table (cat:policy's shape). */
void lb_push_policy(lua_State *L, const lsr_policy *pol)
{
  lua_createtable(L, 0, 24);
  for (const lsr_policy_field *f = lsr_policy_fields; f->name != NULL; f++) {
    lua_pushinteger(L, lsr_policy_get(pol, f));
    lua_setfield(L, -2, f->name);
  }
  lb_set_string(L, "renewal_basis", lb_basis_name(pol->renewal_basis));
  lb_set_string(L, "fingerprint_match", lb_match_name(pol->fingerprint_match));
  if (pol->checkout_url[0] != '\0') lb_set_string(L, "checkout_url", pol->checkout_url);
  lua_createtable(L, 0, LSR_REMIND_KINDS);
  for (int k = 0; k < LSR_REMIND_KINDS; k++) {
    const lsr_reminder_list *list = &pol->reminders[k];
    lua_createtable(L, list->n, 0);
    for (int i = 0; i < list->n; i++) {
      lua_pushinteger(L, list->days[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, lsr_reminder_kinds[k]);
  }
  lua_setfield(L, -2, "reminders");
}

int lb_license_policy(lua_State *L, const lsr_catalogue *cat, int lic_idx, const lsr_policy **policy)
{
  const lb_policy_value *pv;
  if (lb_get_field(L, lic_idx, UV_POLICY) == LUA_TNIL) {
    *policy = &cat->policy;
    return 0;
  }
  pv = luaL_testudata(L, -1, LB_POLICY_MT);
  if (pv == NULL)
    return lb_license_fail(L, lic_idx, "invalid_license", "policy must be a value of cat:resolve_policy");
  *policy = &pv->policy;
  return 0;
}

/* cat:resolve_policy(overrides) -> a policy value, or nil, message,
 * "invalid_policy".  overrides: a table of policy settings (nil: none). */
static int cat_resolve_policy(lua_State *L)
{
  const lsr_catalogue *cat = lb_check_catalogue(L, 2);
  char err[LB_ERRLEN];
  lb_policy_value *pv;
  if (!lua_isnil(L, 2)) lb_check_table(L, 2, "overrides");
  /* The value exists before the overrides are read (liolib's way), whole
   * and valid: the catalogue's policy. */
  pv = lsr_newuserdata(L, sizeof *pv);
  pv->policy = cat->policy;
  pv->set = 0;
  luaL_getmetatable(L, LB_POLICY_MT);
  lua_setmetatable(L, -2);
  if (lua_isnil(L, 2)) return 1;
  if (!lb_read_policy_table(L, 2, &pv->policy, err, sizeof err))
    return lb_fail(L, "invalid_policy", "%s", err);
  /* Which settings were given, for tostring; every key is a setting now. */
  lua_pushnil(L);
  while (lua_next(L, 2) != 0) {
    int i = lb_policy_setting_index(lua_tostring(L, -2));
    lua_pop(L, 1);
    if (i >= 0 && i < 32) pv->set |= 1u << i;
  }
  return 1;
}

static const lb_policy_value *check_value(lua_State *L)
{
  return luaL_checkudata(L, 1, LB_POLICY_MT);
}

/* pv:table() -- the values as a table, like cat:policy(). */
static int pv_table(lua_State *L)
{
  lb_push_policy(L, &check_value(L)->policy);
  return 1;
}

/* pv.KEY -- a setting's value (its type in cat:policy()), or a method. */
static int pv_index(lua_State *L)
{
  const lsr_policy *pol = &check_value(L)->policy;
  const char *key;
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  key = lua_tostring(L, 2);
  if (strcmp(key, "table") == 0) {
    lua_pushcfunction(L, pv_table);
    return 1;
  }
  for (const lsr_policy_field *f = lsr_policy_fields; f->name != NULL; f++)
    if (strcmp(key, f->name) == 0) {
      lua_pushinteger(L, lsr_policy_get(pol, f));
      return 1;
    }
  if (strcmp(key, "renewal_basis") == 0) {
    lua_pushstring(L, lb_basis_name(pol->renewal_basis));
  } else if (strcmp(key, "fingerprint_match") == 0) {
    lua_pushstring(L, lb_match_name(pol->fingerprint_match));
  } else if (strcmp(key, "checkout_url") == 0 && pol->checkout_url[0] != '\0') {
    lua_pushstring(L, pol->checkout_url);
  } else if (strcmp(key, "reminders") == 0) {
    lb_push_policy(L, pol);
    lua_getfield(L, -1, "reminders");
  } else {
    return 0;
  }
  return 1;
}

/* tostring(pv) -> "licensor.policy (migration_days, checkin_grace_days)":
 * the settings its overrides gave. */
static int pv_tostring(lua_State *L)
{
  const lb_policy_value *pv = check_value(L);
  luaL_Buffer b;
  int given = 0;
  const char *name;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "licensor.policy (");
  for (int i = 0; (name = lb_policy_setting_name(i)) != NULL && i < 32; i++)
    if (pv->set & (1u << i)) {
      if (given++ > 0) luaL_addstring(&b, ", ");
      luaL_addstring(&b, name);
    }
  if (given == 0) luaL_addstring(&b, "no overrides");
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return 1;
}

/* __close: a policy value holds no resource; closing it does nothing. */
static int pv_close(lua_State *L)
{
  (void)check_value(L);
  return 0;
}

static const luaL_Reg policy_meta[] = {
  { "__index", pv_index },
  { "__tostring", pv_tostring },
  { "__close", pv_close },
  { NULL, NULL }
};

static const luaL_Reg policy_methods[] = {
  { "resolve_policy", cat_resolve_policy },
  { NULL, NULL }
};

void lb_open_policy(lua_State *L, int module, int mt)
{
  (void)module;
  luaL_newmetatable(L, LB_POLICY_MT);
  luaL_setfuncs(L, policy_meta, 0);
  lua_pushliteral(L, LB_POLICY_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  lua_getfield(L, mt, "__index");
  lb_setfuncs(L, lua_gettop(L), mt, policy_methods);
  lua_pop(L, 1);
}
