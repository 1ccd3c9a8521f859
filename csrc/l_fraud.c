/*
 * l_fraud.c -- the catalogue's R9-R11 methods: cat:migration (the window),
 * cat:admission (one more new server), cat:installation_active and
 * cat:ladder (the steps due in a fraud case), each with the license's own
 * policy values when it carries them (lic.policy, see l_policy.c).
 * Installations come in as Lua tables and are read into a scratch
 * userdata, so a failed read leaks nothing.
 */
#include "lbind.h"

#include "fraud.h"

#define MAX_INSTALLATIONS 100000

/* Reads the installation table at idx into inst (i: its place in a list,
 * 0 when alone, for messages); 0 or a failure count. */
static int read_installation_table(lua_State *L, int idx, int i, lsr_installation *inst)
{
  static const char *const fields[] = { "first_seen", "last_seen", "deactivated", "held_until" };
  lsr_day *days[4];
  days[0] = &inst->first_seen;
  days[1] = &inst->last_seen;
  days[2] = &inst->deactivated;
  days[3] = &inst->held_until;
  for (int f = 0; f < 4; f++) {
    int r;
    lua_getfield(L, idx, fields[f]);
    r = lb_read_date(L, -1, days[f]);
    if (r == LB_DATE_BAD || (r == LB_DATE_ABSENT && f == 0)) {
      if (i > 0)
        return lb_fail(L, "invalid_date", "installations[%d].%s: date YYYY-MM-DD expected", i,
                       fields[f]);
      return lb_fail(L, "invalid_date", "installation.%s: date YYYY-MM-DD expected", fields[f]);
    }
    if (r == LB_DATE_ABSENT) *days[f] = LSR_NO_DAY;
    lua_pop(L, 1);
  }
  return 0;
}

/* Reads installations[i] (the list at index list) into inst. */
static int read_installation(lua_State *L, int list, int i, lsr_installation *inst)
{
  int n;
  if (lsr_rawgeti(L, list, i) != LUA_TTABLE)
    return lb_fail(L, "invalid_request", "installations[%d] must be a table", i);
  if ((n = read_installation_table(L, lua_gettop(L), i, inst))) return n;
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
  lb_set_string(L, "state", migration_state_name(m->state));
  lua_pushinteger(L, m->allowed);
  lua_setfield(L, -2, "allowed");
  lua_pushinteger(L, m->active);
  lua_setfield(L, -2, "active");
  if (m->parked > 0) {
    lua_pushinteger(L, m->parked);
    lua_setfield(L, -2, "parked");
  }
  if (m->since != LSR_NO_DAY) {
    lb_push_date(L, m->since);
    lua_setfield(L, -2, "since");
    lb_push_date(L, m->deadline);
    lua_setfield(L, -2, "deadline");
  }
}

/* Reads the license (arg 2), its policy values, its failover flag, `on`
 * (arg on_arg) and the installations list (arg 3) into a scratch userdata
 * with room for `spare` more.  Returns 0 or a failure count. */
static int read_window_query(lua_State *L, const lsr_catalogue *cat, int on_arg, int spare,
                             lsr_license *lic, const lsr_policy **policy, lsr_day *on, bool *failover,
                             lsr_installation **inst, int *count)
{
  size_t n_list;
  int n, t;
  lb_check_table(L, 3, "installations");
  if ((n = lb_read_query(L, cat, lic, on_arg, on, policy))) return n;
  t = lb_get_field(L, 2, UV_FAILOVER);
  if (t != LUA_TNIL && t != LUA_TBOOLEAN)
    return lb_license_fail(L, 2, "invalid_license", "field 'failover' must be a boolean");
  *failover = lua_toboolean(L, -1) != 0;
  n_list = lsr_rawlen(L, 3);
  if (n_list > MAX_INSTALLATIONS)
    return lb_fail(L, "invalid_request", "installations: more than %d entries", MAX_INSTALLATIONS);
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
  const lsr_catalogue *cat = lb_check_catalogue(L, 4);
  const lsr_policy *policy;
  lsr_license lic;
  lsr_installation *inst;
  lsr_migration result;
  lsr_day on;
  bool failover;
  int n, count;
  if ((n = read_window_query(L, cat, 4, 0, &lic, &policy, &on, &failover, &inst, &count))) return n;
  lsr_migration_window(inst, count, lsr_allowed_installations(failover, policy), policy, on,
                       edges_after(inst, count + 1), &result);
  push_migration(L, &result);
  return 1;
}

/* cat:admission(lic, installations, on) -- R10 for one more new server:
 * true, window-with-it; or false, message, code, window-without-it. */
static int cat_admission(lua_State *L)
{
  const lsr_catalogue *cat = lb_check_catalogue(L, 4);
  const lsr_policy *policy;
  lsr_license lic;
  lsr_installation *inst;
  lsr_migration before, after;
  lsr_day on;
  bool failover;
  int n, count, allowed;
  if ((n = read_window_query(L, cat, 4, 1, &lic, &policy, &on, &failover, &inst, &count))) return n;
  allowed = lsr_allowed_installations(failover, policy);
  lsr_migration_window(inst, count, allowed, policy, on, edges_after(inst, count + 2), &before);
  inst[count].first_seen = inst[count].last_seen = on;
  inst[count].deactivated = inst[count].held_until = LSR_NO_DAY;
  lsr_migration_window(inst, count + 1, allowed, policy, on, edges_after(inst, count + 2), &after);
  switch (lsr_admit_new_server(&before, &after, policy)) {
  case LSR_ADMIT_OK:
    lua_pushboolean(L, 1);
    push_migration(L, &after);
    return 2;
  case LSR_ADMIT_TOO_MANY:
    lua_pushboolean(L, 0);
    lua_pushfstring(L, "%d installations are active, %d allowed, and a migration may add only %d more",
                    before.active, allowed, policy->migration_extra);
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

typedef bool (*installation_test)(const lsr_installation *inst, int grace_days, lsr_day day);

/* The policy values of the optional license at argument arg (only its
 * `policy` field is read): the catalogue's when the argument is nil. */
static int optional_license_policy(lua_State *L, const lsr_catalogue *cat, int arg, const lsr_policy **policy)
{
  *policy = &cat->policy;
  if (lua_isnil(L, arg)) return 0;
  lb_check_table(L, arg, "license");
  return lb_license_policy(L, cat, arg, policy);
}

/* One installation table (arg 2), `on` (arg 3) and the optional license
 * (arg 4) through `test`. */
static int installation_query(lua_State *L, installation_test test)
{
  const lsr_catalogue *cat = lb_check_catalogue(L, 4);
  const lsr_policy *policy;
  lsr_installation inst;
  lsr_day on;
  int n;
  lb_check_table(L, 2, "installation");
  if ((n = optional_license_policy(L, cat, 4, &policy))) return n;
  if ((n = read_installation_table(L, 2, 0, &inst))) return n;
  if ((n = lb_read_on(L, 3, &on))) return n;
  lua_pushboolean(L, test(&inst, policy->checkin_grace_days, on));
  return 1;
}

/* cat:installation_active({first_seen=, last_seen=, deactivated=}, on
 * [, lic]) -- R9: is the installation active on `on` (checked in within
 * the grace, lic's when given, and not deactivated)? */
static int cat_installation_active(lua_State *L)
{
  return installation_query(L, lsr_installation_active);
}

/* cat:installation_holds({first_seen=, ..., held_until=}, on [, lic]) --
 * does it hold a slot on `on`: active under R9, or a certificate of it
 * still lives? */
static int cat_installation_holds(lua_State *L)
{
  return installation_query(L, lsr_installation_holds);
}

/* cat:ladder({since=, first_step=, phoned=, disabled=}, on [, lic]) --
 * R11: the list of actions due on `on` for a fraud case whose excess began
 * on `since` (the migration's since), with lic's policy values when given. */
static int cat_ladder(lua_State *L)
{
  static const char *const fields[] = { "since", "first_step", "phoned", "disabled" };
  static const char *const steps[] = { "email_customer", "notify_fraud_team", "phone_customer",
                                       "disable_key" };
  const lsr_catalogue *cat = lb_check_catalogue(L, 4);
  const lsr_policy *policy;
  lsr_day days[4], on;
  lsr_ladder_case c;
  unsigned due;
  int n, count = 0;
  lb_check_table(L, 2, "case");
  if ((n = optional_license_policy(L, cat, 4, &policy))) return n;
  for (int f = 0; f < 4; f++) {
    lua_getfield(L, 2, fields[f]);
    n = lb_read_date(L, -1, &days[f]);
    if (n == LB_DATE_BAD || (n == LB_DATE_ABSENT && f == 0)) return lb_bad_date(L, lua_gettop(L), fields[f]);
    if (n == LB_DATE_ABSENT) days[f] = LSR_NO_DAY;
  }
  if ((n = lb_read_on(L, 3, &on))) return n;
  c.first_step = days[1];
  c.phoned = days[2];
  c.disabled = days[3];
  due = lsr_ladder_due(policy, &c, days[0] + policy->migration_days, on);
  lua_createtable(L, 4, 0);
  for (int s = 0; s < 4; s++)
    if (due & (1u << s)) {
      lua_pushstring(L, steps[s]);
      lua_rawseti(L, -2, ++count);
    }
  return 1;
}

static const luaL_Reg fraud_methods[] = {
  { "migration", cat_migration },
  { "admission", cat_admission },
  { "installation_active", cat_installation_active },
  { "installation_holds", cat_installation_holds },
  { "ladder", cat_ladder },
  { NULL, NULL }
};

void lb_open_fraud(lua_State *L, int module, int mt)
{
  (void)module;
  lua_getfield(L, mt, "__index");
  lb_setfuncs(L, lua_gettop(L), mt, fraud_methods);
  lua_pop(L, 1);
}
