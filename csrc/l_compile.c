/*
 * l_compile.c -- licensor.catalogue(t): reads a catalogue table (rules.md
 * section 2) into the plain structures of catalogue.h, has
 * lsr_catalogue_compile validate and index them, and makes the shared
 * build records.  Reads are raw where they can be and bounded everywhere,
 * so that a hostile table cannot exhaust memory.
 */
#include "lbind.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits that keep a hostile catalogue from exhausting memory. */
#define MAX_PRODUCTS 10000
#define MAX_BUILDS 1000000
#define MAX_NAMES 256
#define MAX_NAME_LEN 256

/* Where a catalogue table went wrong: the message and what it names. */
typedef struct {
  char text[LB_ERRLEN];
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
  if (lb_read_date(L, -1, &b->released) != LB_DATE_OK)
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
  if (!lb_read_level(L, level_idx, &level))
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

/* One kind's list at the top of the stack: up to LSR_REMINDERS_MAX distinct
 * whole numbers of days, from -365 (M&S only) to 3650. */
static bool read_reminder_list(lua_State *L, int kind, lsr_reminder_list *list, build_error *e)
{
  const char *name = lsr_reminder_kinds[kind];
  int min = kind == LSR_REMIND_MS ? -365 : 0;
  size_t n;
  if (!lua_istable(L, -1)) return refuse(e, "policy.reminders.%s must be a list of days", name);
  n = lsr_rawlen(L, -1);
  if (n > LSR_REMINDERS_MAX) return refuse(e, "policy.reminders.%s holds at most %d reminders", name,
                                           LSR_REMINDERS_MAX);
  list->n = 0;
  for (size_t i = 1; i <= n; i++) {
    long long days;
    lua_rawgeti(L, -1, (int)i);
    if (!lsr_tointeger_exact(L, -1, &days) || days < min || days > 3650)
      return refuse(e, "policy.reminders.%s[%d] must be a whole number of days from %d to 3650", name,
                    (int)i, min);
    lua_pop(L, 1);
    for (int j = 0; j < list->n; j++)
      if (list->days[j] == (int)days) return refuse(e, "policy.reminders.%s lists %d twice", name, (int)days);
    list->days[list->n++] = (int)days;
  }
  return true;
}

/* policy.reminders = { ms = {30, 7, -1}, trial = {7, 1}, lease = {30},
 * addon = {30} }: a kind left out keeps its default; {} sends none. */
static bool read_reminders(lua_State *L, int policy_table, lsr_policy *policy, build_error *e)
{
  bool ok = true;
  lua_getfield(L, policy_table, "reminders");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return true;
  }
  if (!lua_istable(L, -1)) return refuse(e, "policy.reminders must be a table");
  lua_pushnil(L);
  while (ok && lua_next(L, -2) != 0) {
    int kind = -1;
    for (int k = 0; k < LSR_REMIND_KINDS && lua_type(L, -2) == LUA_TSTRING; k++)
      if (strcmp(lua_tostring(L, -2), lsr_reminder_kinds[k]) == 0) kind = k;
    if (kind < 0) return refuse(e, "policy.reminders: the kinds are ms, trial, lease and addon");
    ok = read_reminder_list(L, kind, &policy->reminders[kind], e);
    lua_pop(L, 1);
  }
  if (ok) lua_pop(L, 1);
  return ok;
}

/* Is name a policy setting?  The numeric fields of lsr_policy_fields and
 * the three read by name below. */
static bool policy_setting(const char *name)
{
  static const char *const named[] = { "renewal_basis", "fingerprint_match", "reminders", NULL };
  for (const lsr_policy_field *f = lsr_policy_fields; f->name != NULL; f++)
    if (strcmp(name, f->name) == 0) return true;
  for (int i = 0; named[i] != NULL; i++)
    if (strcmp(name, named[i]) == 0) return true;
  return false;
}

/* Every key of the policy table at `table` is a setting: a misspelt one
 * (ms_percnt) would otherwise be ignored without a word. */
static bool check_policy_keys(lua_State *L, int table, build_error *e)
{
  lua_pushnil(L);
  while (lua_next(L, table) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) return refuse(e, "policy keys are names of settings");
    if (!policy_setting(lua_tostring(L, -1)))
      return refuse(e, "policy.%s is not a policy setting (misspelt?)", lua_tostring(L, -1));
  }
  return true;
}

/* policy = { ms_months = 12, ... }: the fields of lsr_policy_fields within
 * their bounds, renewal_basis, fingerprint_match and reminders; any other
 * key is refused unless `lenient` (catalogue versions stored before that
 * check existed must still open). */
static bool read_policy(lua_State *L, int idx, lsr_policy *policy, bool lenient, build_error *e)
{
  int table = optional_table(L, idx, "policy");
  if (table == 0) return true;
  if (table < 0) return refuse(e, "policy must be a table");
  if (!lenient && !check_policy_keys(L, table, e)) return false;
  for (const lsr_policy_field *f = lsr_policy_fields; f->name != NULL; f++) {
    long long v;
    lua_getfield(L, table, f->name);
    if (!lua_isnil(L, -1)) {
      if (!lsr_tointeger_exact(L, -1, &v) || v < f->min || v > f->max)
        return refuse(e, "policy.%s must be a whole number from %d to %d", f->name, f->min, f->max);
      lsr_policy_set(policy, f, (int)v);
    }
    lua_pop(L, 1);
  }
  if (policy->disable_after_days < policy->phone_after_days)
    return refuse(e, "policy.disable_after_days must not come before policy.phone_after_days");
  lua_getfield(L, table, "renewal_basis");
  if (!lua_isnil(L, -1) &&
      (lua_type(L, -1) != LUA_TSTRING || !lb_read_basis(lua_tostring(L, -1), &policy->renewal_basis)))
    return refuse(e, "policy.renewal_basis must be \"from_expiry\" or \"from_renewal\"");
  lua_pop(L, 1);
  lua_getfield(L, table, "fingerprint_match");
  if (!lua_isnil(L, -1) &&
      (lua_type(L, -1) != LUA_TSTRING || !lb_read_match(lua_tostring(L, -1), &policy->fingerprint_match)))
    return refuse(e, "policy.fingerprint_match must be \"most\", \"all\" or \"any\"");
  lua_pop(L, 1);
  if (!read_reminders(L, table, policy, e)) return false;
  lua_pop(L, 1);
  return true;
}

/* currency = "EUR": three capital letters (ISO 4217), "USD" when absent. */
static bool read_currency(lua_State *L, int idx, lsr_catalogue *cat, build_error *e)
{
  size_t len = 0;
  const char *code;
  lua_getfield(L, idx, "currency");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return true;
  }
  code = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  if (code == NULL || len != 3 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' ||
      code[2] < 'A' || code[2] > 'Z')
    return refuse(e, "currency must be a three-letter code such as \"USD\" or \"EUR\"");
  memcpy(cat->currency, code, 4);
  lua_pop(L, 1);
  return true;
}

static bool read_catalogue_table(lua_State *L, int idx, bool lenient, lsr_catalogue **out, build_error *e)
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
  return read_currency(L, idx, cat, e) && read_policy(L, idx, &cat->policy, lenient, e);
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
      lb_set_string(L, "version", b->version);
      lua_pushinteger(L, (lua_Integer)b->major);
      lua_setfield(L, -2, "major");
      lb_push_date(L, b->released);
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
  if (e->product != NULL) lb_set_string(L, "product", e->product);
  if (e->build >= 0) {
    lua_pushinteger(L, (lua_Integer)e->build);
    lua_setfield(L, -2, "build");
  }
  return 4;
}

/* licensor.catalogue(t [, lenient]) -> catalogue, or nil, message,
 * "invalid_catalogue", {product=, build=}.  lenient: unknown policy keys
 * are ignored (the store's own, already stored versions). */
static int l_catalogue(lua_State *L)
{
  build_error e;
  catalogue_box *box;
  /* Set by lsr_catalogue_compile only: a table that fails earlier
   * (currency, policy) names no product. */
  int bad_product = -1;
  int64_t bad_build = -1;
  bool lenient = lua_toboolean(L, 2) != 0;
  lb_check_table(L, 1, "catalogue");
  lua_settop(L, 1);
  e.product = NULL;
  e.build = -1;
  /* The box exists before anything is allocated, so that its __gc frees a
   * half-read catalogue if a Lua error (out of memory) interrupts. */
  box = lsr_newuserdata(L, sizeof *box);
  box->cat = NULL;
  lua_pushvalue(L, UV(UV_MT));
  lua_setmetatable(L, -2);
  if (read_catalogue_table(L, 1, lenient, &box->cat, &e) &&
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
static const luaL_Reg compile_functions[] = {
  { "catalogue", l_catalogue },
  { NULL, NULL }
};

void lb_open_compile(lua_State *L, int module, int mt)
{
  lb_setfuncs(L, module, mt, compile_functions);
  /* core.MAX_INTEGER: the largest build, level or price (2^53 - 1), which
   * lua/licensor/constants.lua repeats for the Lua side (checked by
   * spec/constants_spec.lua). */
  lua_pushnumber(L, (lua_Number)LSR_INT_MAX);
  lua_setfield(L, module, "MAX_INTEGER");
}
