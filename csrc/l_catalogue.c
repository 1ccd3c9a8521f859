/*
 * l_catalogue.c -- the catalogue object: the queries of rules.md section 5
 * (build, eligible, can_install, status, addon_status, quote_upgrade,
 * can_rollback), listing (products, product, builds, policy) and life
 * cycle.  The migration window and the ladder are in l_fraud.c;
 * construction from a table in l_compile.c; a license's own policy
 * values (lic.policy) in l_policy.c.
 *
 * Answers are build records made once when the catalogue is compiled (the
 * user value of the userdata), so a query allocates nothing.  They are
 * shared: treat them as read-only.
 */
#include "lbind.h"

/* Pushes the shared record (the user value stays below it on the stack). */
static void push_build(lua_State *L, const lsr_product *p, int build)
{
  lsr_getuservalue(L, 1);
  lsr_rawgeti(L, -1, p->record_base + build + 1);
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
  return lb_push_failure(L, first, "unknown_build");
}

/* ------------------------------------------------------------------ */
/* Catalogue queries                                                   */
/* ------------------------------------------------------------------ */

/* The product named by argument arg, or NULL with nil, message,
 * "unknown_product" pushed. */
static const lsr_product *product_arg(lua_State *L, const lsr_catalogue *cat, int arg)
{
  size_t len;
  const char *id = luaL_checklstring(L, arg, &len);
  const lsr_product *p = lsr_find_product(cat, id, len);
  if (p == NULL) lb_fail(L, "unknown_product", "unknown product '%s'", id);
  return p;
}

/* cat:build(product, number) */
static int cat_build(lua_State *L)
{
  const lsr_product *p = product_arg(L, lb_check_catalogue(L, 3), 2);
  long long number;
  int build;
  if (p == NULL) return 3;
  build = check_build_arg(L, 3, p, &number);
  if (build < 0) return unknown_build(L, 0, p, 3);
  push_build(L, p, build);
  return 1;
}

/* cat:newest_build(product, on) -- the newest build released on or before
 * `on`, or nil, message, "no_build" (the add-on rule's newest major). */
static int cat_newest_build(lua_State *L)
{
  const lsr_product *p = product_arg(L, lb_check_catalogue(L, 3), 2);
  lsr_day on;
  int n, build;
  if (p == NULL) return 3;
  if ((n = lb_read_on(L, 3, &on))) return n;
  build = lsr_newest_released_by(p, on);
  if (build < 0) return lb_fail(L, "no_build", "product '%s' has no build released by then", p->id);
  push_build(L, p, build);
  return 1;
}

/* cat:first_build_of(product, major) -- the first build of a major, or nil,
 * message, "no_build". */
static int cat_first_build_of(lua_State *L)
{
  const lsr_product *p = product_arg(L, lb_check_catalogue(L, 3), 2);
  long long major = 0;
  if (p == NULL) return 3;
  if (!lsr_tointeger_exact(L, 3, &major)) luaL_argerror(L, 3, "major version number expected");
  for (int i = 0; i < p->n_majors; i++)
    if (p->majors[i].major == major) {
      push_build(L, p, p->majors[i].first);
      return 1;
    }
  return lb_fail(L, "no_build", "product '%s' has no build of major %lld", p->id, major);
}

/* cat:eligible(lic, on) -- the hot path. */
static int cat_eligible(lua_State *L)
{
  const lsr_catalogue *cat = lb_check_catalogue(L, 3);
  lsr_license lic;
  lsr_day on;
  lsr_code code;
  int build = -1, n;
  if ((n = lb_read_query(L, cat, &lic, 3, &on, NULL))) return n;
  code = lsr_eligible(&lic, on, &build);
  if (code != LSR_OK) return lb_push_refusal(L, 0, 2, &lic, on, code);
  push_build(L, lic.product, build);
  return 1;
}

/* cat:can_install(lic, number, on) */
static int cat_can_install(lua_State *L)
{
  const lsr_catalogue *cat = lb_check_catalogue(L, 4);
  lsr_license lic;
  lsr_day on;
  lsr_code code;
  long long number;
  int build, eligible = -1, n;
  lb_check_table(L, 2, "license");
  /* The product first, alone: the rules order unknown_build before the
   * license's own problems, which read_query reports below. */
  if ((n = lb_read_product(L, cat, 2, &lic))) {
    lua_pushboolean(L, 0);
    lua_replace(L, -4);
    return n;
  }
  build = check_build_arg(L, 3, lic.product, &number);
  if (build < 0) return unknown_build(L, 1, lic.product, 3);
  if ((n = lb_read_query(L, cat, &lic, 4, &on, NULL))) {
    lua_pushboolean(L, 0);
    lua_replace(L, -4);
    return n;
  }
  code = lsr_can_install(&lic, build, on);
  if (code == LSR_NEWER_THAN_ELIGIBLE) {
    lsr_eligible(&lic, on, &eligible);
    lua_pushfstring(L, "build %s is newer than build %d, the newest this license may install",
                    lua_tostring(L, 3), (int)lic.product->builds[eligible].number);
    return lb_push_failure(L, 1, "newer_than_eligible");
  }
  if (code != LSR_OK) return lb_push_refusal(L, 1, 2, &lic, on, code);
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
  r = lb_read_date(L, -1, paid);
  if (r == LB_DATE_BAD) {
    lua_pop(L, 1);
    return lb_license_fail(L, lic_idx, "invalid_date", "addons.%s: paid-through date YYYY-MM-DD expected",
                        lua_tostring(L, name_idx));
  }
  if (r == LB_DATE_ABSENT) *paid = LSR_NO_DAY;
  lua_pop(L, 1);
  return 0;
}

/* Pushes lic.addons and returns its stack index, 0 if absent; raises a
 * data failure through *n when it is not a table. */
static int push_addons(lua_State *L, int lic_idx, int *n)
{
  int t = lb_get_field(L, lic_idx, UV_ADDONS);
  *n = 0;
  if (t == LUA_TTABLE) return lua_gettop(L);
  lua_pop(L, 1);
  if (t != LUA_TNIL)
    *n = lb_license_fail(L, lic_idx, "invalid_license", "field 'addons' must be a table of add-on -> date");
  return 0;
}

/* cat:addon_status(lic, addon, on, installed_number) */
static int cat_addon_status(lua_State *L)
{
  const lsr_catalogue *cat = lb_check_catalogue(L, 5);
  lsr_license lic;
  lsr_day on, paid;
  long long number;
  int n, addons, installed = -1;
  luaL_checkstring(L, 3);
  if ((n = lb_read_query(L, cat, &lic, 4, &on, NULL))) return n;
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
      return lb_license_fail(L, 2, "invalid_license", "field 'addons' must be keyed by add-on id");
    if ((n = read_addon_paid(L, 2, addons, lua_gettop(L), &paid))) return n;
    lua_pushvalue(L, -1);
    lua_pushstring(L, addon_state_name(lsr_addon_state_of(lic, paid, -1, on)));
    lua_rawset(L, -4);
  }
  lua_replace(L, addons);
  return 0;
}

/* Sets result.overrides (the result on top) to a copy of the license's
 * policy_override, the settings stored on the license itself, when it
 * has one.  0 or a failure count. */
static int push_overrides(lua_State *L)
{
  int t = lb_get_field(L, 2, UV_POLICY_OVERRIDE), from = lua_gettop(L);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (t != LUA_TTABLE)
    return lb_license_fail(L, 2, "invalid_license",
                           "field 'policy_override' must be a table of policy settings");
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, from) != 0) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  lua_setfield(L, from - 1, "overrides");
  lua_pop(L, 1);
  return 0;
}

/* cat:status(lic, on) -- validity, M&S, the eligible build and its
 * downloads (when it has any), add-on states. */
static int cat_status(lua_State *L)
{
  const lsr_catalogue *cat = lb_check_catalogue(L, 3);
  lsr_license lic;
  lsr_day on;
  lsr_code code, validity;
  int build = -1, n;
  if ((n = lb_read_query(L, cat, &lic, 3, &on, NULL))) return n;
  /* The license's fields stay on the stack below the answer, the add-ons'
   * walk and the overrides' copy: room for all of them. */
  luaL_checkstack(L, LUA_MINSTACK, NULL);
  validity = lsr_validity(&lic, on);
  code = lsr_eligible(&lic, on, &build);
  lua_createtable(L, 0, 11);
  lb_set_bool(L, "valid", validity == LSR_OK);
  lb_set_string(L, "state", validity == LSR_OK ? "active"
                         : validity == LSR_DISABLED ? "disabled"
                         : validity == LSR_NOT_STARTED ? "not_started" : "expired");
  if (code != LSR_OK) {
    lb_set_string(L, "code", lb_code_name(code));
    lb_push_refusal_message(L, 2, &lic, on, code);
    lua_setfield(L, -2, "message");
  }
  lb_set_string(L, "kind", lb_kind_name(lic.kind));
  lb_set_string(L, "ms", lic.kind != LSR_PERPETUAL || lic.ms_expires == LSR_NO_DAY ? "none"
                      : lsr_ms_active(&lic, on) ? "active" : "expired");
  if (lic.ms_expires != LSR_NO_DAY) {
    lb_push_date(L, lic.ms_expires);
    lua_setfield(L, -2, "ms_expires");
  }
  /* Updates flow while M&S runs, for active leases and trials, and within
   * its major for a version-locked license (R2, R4, R6, R7). */
  lb_set_bool(L, "updates", validity == LSR_OK &&
                         (lic.kind != LSR_PERPETUAL || lic.version_lock != 0 ||
                          lsr_ms_active(&lic, on)));
  if (code == LSR_OK) {
    push_build(L, lic.product, build);
    lua_remove(L, -2);   /* the user value push_build leaves below */
    /* What the license can download: the eligible build's files. */
    lua_getfield(L, -1, "downloads");
    lua_setfield(L, -3, "downloads");
    lua_setfield(L, -2, "eligible");
  }
  if ((n = push_addon_states(L, &lic, on))) return n;
  lua_setfield(L, -2, "addons");
  if ((n = push_overrides(L))) return n;
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
      return lb_fail(L, "invalid_request", "upgrade target: product '%s' has no edition '%s'",
                  lic->product->id, name);
  } else if (!lua_isnil(L, -1)) {
    return lb_fail(L, "invalid_request", "upgrade target: edition must be a string");
  }
  lua_getfield(L, 3, "level");
  if (!lua_isnil(L, -1) && !lb_read_level(L, -1, &target->level))
    return lb_fail(L, "invalid_request",
                "upgrade target: level must be a positive whole number or \"unlimited\"");
  lua_getfield(L, 3, "major");
  if (!lua_isnil(L, -1)) {
    if (!lsr_tointeger_exact(L, -1, &v) || v < 1)
      return lb_fail(L, "invalid_request", "upgrade target: major must be a positive whole number");
    target->major = v;
  }
  lua_pop(L, 3);
  return 0;
}

/* Writes the levels priced for (major, edition) into buf: "5, 10, unlimited". */
static void priced_levels(const lsr_product *p, int64_t major, int edition, char *buf, size_t size)
{
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < p->n_prices && used + 24 < size; i++) {
    const lsr_price *price = &p->prices[i];
    int n;
    if (price->major != major || price->edition != edition) continue;
    if (price->level == LSR_LEVEL_UNLIMITED) n = snprintf(buf + used, size - used, "%sunlimited", used ? ", " : "");
    else n = snprintf(buf + used, size - used, "%s%lld", used ? ", " : "", (long long)price->level);
    if (n > 0) used += (size_t)n;
  }
  if (used == 0) snprintf(buf, size, "none");
}

/* Pushes the level of a license or target as text. */
static const char *level_text(lsr_level level, char *buf, size_t size)
{
  if (level == LSR_LEVEL_UNLIMITED) return "unlimited";
  snprintf(buf, size, "%lld", (long long)level);
  return buf;
}

static int quote_refusal(lua_State *L, const lsr_license *lic, const lsr_upgrade_target *t,
                         lsr_code code, int64_t major)
{
  const lsr_product *p = lic->product;
  int edition = t->edition >= 0 ? t->edition : lic->edition;
  lsr_level level = t->level != LSR_LEVEL_NONE ? t->level : lic->level;
  char levels[200], text[32];
  switch (code) {
  case LSR_DIFFERENT_MAJOR:
    return lb_fail(L, "different_major", "upgrades stay within major %d; %d.x was asked",
                (int)major, (int)t->major);
  case LSR_SAME_LICENSE:
    return lb_fail(L, "same_license", "the target is the license's own edition and level");
  case LSR_DOWNGRADE:
    return lb_fail(L, "downgrade", "a lower edition or level is a license change: contact sales");
  default:
    if (lsr_find_price(p, major, lic->edition, lic->level) < 0) {
      priced_levels(p, major, lic->edition, levels, sizeof levels);
      return lb_fail(L, "no_price", "product '%s' major %d has no price for the license's own %s level %s "
                     "(priced levels: %s)", p->id, (int)major, p->editions[lic->edition],
                     level_text(lic->level, text, sizeof text), levels);
    }
    priced_levels(p, major, edition, levels, sizeof levels);
    return lb_fail(L, "no_price", "product '%s' major %d has no price for %s level %s (priced levels: %s)",
                   p->id, (int)major, p->editions[edition], level_text(level, text, sizeof text), levels);
  }
}

/* cat:quote_upgrade(lic, {edition=, level=, major=}, on) */
static int cat_quote_upgrade(lua_State *L)
{
  const lsr_catalogue *cat = lb_check_catalogue(L, 4);
  lsr_license lic;
  lsr_upgrade_target target;
  lsr_day on;
  lsr_code code;
  int64_t amount = 0, major = 0;
  int n, build;
  lb_check_table(L, 3, "upgrade target");
  if ((n = lb_read_query(L, cat, &lic, 4, &on, NULL))) return n;
  code = lsr_eligible(&lic, on, &build);
  if (code != LSR_OK) return lb_push_refusal(L, 0, 2, &lic, on, code);
  if (lic.edition < 0 || lic.level == LSR_LEVEL_NONE)
    return lb_license_fail(L, 2, "invalid_license", "an upgrade needs the license's edition and level");
  luaL_checkstack(L, LUA_MINSTACK, NULL);   /* the license's fields stay below the target's */
  if ((n = read_target(L, &lic, &target))) return n;
  code = lsr_quote_upgrade(&lic, &target, on, &amount, &major);
  if (code != LSR_OK) return quote_refusal(L, &lic, &target, code, major);
  lua_pushinteger(L, (lua_Integer)amount);
  return 1;
}

/* cat:can_rollback(lic, from_number, to_number) */
static int cat_can_rollback(lua_State *L)
{
  const lsr_catalogue *cat = lb_check_catalogue(L, 4);
  lsr_license lic;
  long long from_number, to_number;
  int n, from, to;
  lsr_code code;
  lb_check_table(L, 2, "license");
  if ((n = lb_read_license(L, cat, 2, &lic, NULL))) {
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
    return lb_push_failure(L, 1, "not_older");
  }
  if (code == LSR_ROLLBACK_BARRIER) {
    for (int z = from; z > to; z--)
      if (lic.product->builds[z].no_rollback) {
        lua_pushfstring(L, "build %d's release note forbids rolling back past it",
                        (int)lic.product->builds[z].number);
        break;
      }
    return lb_push_failure(L, 1, "rollback_barrier");
  }
  lua_pushboolean(L, 1);
  return 1;
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
  lb_set_string(L, "id", p->id);
  lb_set_string(L, "name", p->name != NULL ? p->name : p->id);
  if (p->unit != NULL) lb_set_string(L, "unit", p->unit);
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
  const lsr_catalogue *cat = lb_check_catalogue(L, 1);
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
  const lsr_product *p = product_arg(L, lb_check_catalogue(L, 2), 2);
  if (p == NULL) return 3;
  push_product(L, p);
  return 1;
}

/* cat:builds(product) -- the build records, oldest first. */
static int cat_builds(lua_State *L)
{
  const lsr_product *p = product_arg(L, lb_check_catalogue(L, 2), 2);
  if (p == NULL) return 3;
  lsr_getuservalue(L, 1);
  lua_createtable(L, p->n_builds, 0);
  for (int i = 0; i < p->n_builds; i++) {
    lsr_rawgeti(L, -2, p->record_base + i + 1);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* cat:currency() -- the ISO 4217 code of the catalogue's prices. */
static int cat_currency(lua_State *L)
{
  lua_pushstring(L, lb_check_catalogue(L, 1)->currency);
  return 1;
}

/* cat:prices(product) -- the price table, {major=, edition=, level=,
 * price=} by major, edition rank and level. */
static int cat_prices(lua_State *L)
{
  const lsr_product *p = product_arg(L, lb_check_catalogue(L, 2), 2);
  if (p == NULL) return 3;
  lua_createtable(L, p->n_prices, 0);
  for (int i = 0; i < p->n_prices; i++) {
    const lsr_price *price = &p->prices[i];
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)price->major);
    lua_setfield(L, -2, "major");
    lb_set_string(L, "edition", p->editions[price->edition]);
    if (price->level == LSR_LEVEL_UNLIMITED) lua_pushliteral(L, "unlimited");
    else lua_pushinteger(L, (lua_Integer)price->level);
    lua_setfield(L, -2, "level");
    lua_pushinteger(L, (lua_Integer)price->price);
    lua_setfield(L, -2, "price");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* cat:policy([lic]) -- a copy of the policy in force: the license's
 * policy value's when it carries one, else the catalogue's. */
static int cat_policy(lua_State *L)
{
  const lsr_catalogue *cat = lb_check_catalogue(L, 2);
  const lsr_policy *pol = &cat->policy;
  if (!lua_isnil(L, 2)) {
    int n;
    lb_check_table(L, 2, "license");
    if ((n = lb_license_policy(L, cat, 2, &pol))) return n;
  }
  lb_push_policy(L, pol);
  return 1;
}

/* __gc and __close: frees the compiled catalogue; safe to run twice. */
static int cat_release(lua_State *L)
{
  catalogue_box *box = luaL_checkudata(L, 1, LB_CATALOGUE_MT);
  lsr_catalogue_free(box->cat);
  box->cat = NULL;
  return 0;
}

static int cat_tostring(lua_State *L)
{
  catalogue_box *box = luaL_checkudata(L, 1, LB_CATALOGUE_MT);
  if (box->cat == NULL) {
    lua_pushliteral(L, "licensor.catalogue (closed)");
  } else {
    lua_pushfstring(L, "licensor.catalogue (%d products, %d builds)", box->cat->n_products,
                    box->cat->n_builds);
  }
  return 1;
}

static const luaL_Reg catalogue_methods[] = {
  { "build", cat_build },
  { "eligible", cat_eligible },
  { "can_install", cat_can_install },
  { "status", cat_status },
  { "addon_status", cat_addon_status },
  { "quote_upgrade", cat_quote_upgrade },
  { "can_rollback", cat_can_rollback },
  { "newest_build", cat_newest_build },
  { "first_build_of", cat_first_build_of },
  { "products", cat_products },
  { "product", cat_product },
  { "builds", cat_builds },
  { "policy", cat_policy },
  { "currency", cat_currency },
  { "prices", cat_prices },
  { "close", cat_release },
  { NULL, NULL }
};

static const luaL_Reg catalogue_meta[] = {
  { "__gc", cat_release },
  { "__close", cat_release },
  { "__tostring", cat_tostring },
  { NULL, NULL }
};

void lb_open_catalogue(lua_State *L, int module, int mt)
{
  (void)module;
  lua_pushvalue(L, mt);
  luaL_setfuncs(L, catalogue_meta, 0);
  lua_pop(L, 1);
  lua_getfield(L, mt, "__index");
  lb_setfuncs(L, lua_gettop(L), mt, catalogue_methods);
  lua_pop(L, 1);
}
