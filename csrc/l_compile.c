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
/* Downloads of all builds together: a list shared by every build costs
 * the table little and the copy a great deal. */
#define MAX_DOWNLOADS 100000

/* Where a catalogue table went wrong: the message and what it names. */
typedef struct {
  char text[LB_ERRLEN];
  const char *product;    /* product id, when known */
  long long build;        /* build number, -1 when not about a build */
  int downloads;          /* downloads read so far, all builds together */
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

/* A malloc'd copy of the string at idx (which the caller checked). */
static char *copy_string(lua_State *L, int idx)
{
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  char *copy = malloc(len + 1);
  if (copy == NULL) luaL_error(L, "not enough memory");
  memcpy(copy, s, len + 1);
  return copy;
}

/* The fields of a download, in the order they are checked. */
static const char *const download_fields[] = { "platform", "file", "url", "sha256", "size", "name", NULL };

/* Edit distance of two short words (at most 32 bytes each), or a large
 * number when either is longer. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
  size_t row[33];
  if (la > 32 || lb > 32) return 99;
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      diag = up;
      row[j] = best;
    }
  }
  return row[lb];
}

/* Every key of the download table at t is a download field: a misspelt
 * one (sha265) would otherwise leave the file unchecked. */
static bool check_download_keys(lua_State *L, int t, int i, build_error *e)
{
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    size_t len;
    const char *key, *near = NULL;
    bool known = false;
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      return refuse(e, "product '%s': build %lld: downloads[%d]: the fields are platform, file, url, "
                    "sha256, size and name", e->product, e->build, i);
    key = lua_tolstring(L, -1, &len);
    for (int f = 0; download_fields[f] != NULL && !known; f++) {
      size_t flen = strlen(download_fields[f]);
      known = len == flen && memcmp(key, download_fields[f], len) == 0;
      if (near == NULL && edit_distance(key, len, download_fields[f], flen) <= 2) near = download_fields[f];
    }
    if (known) continue;
    if (len > MAX_NAME_LEN || strlen(key) != len || !printable(key, len)) key = "?";
    if (near != NULL)
      return refuse(e, "product '%s': build %lld: downloads[%d].%s is not a download field (did you "
                    "mean '%s'?)", e->product, e->build, i, key, near);
    return refuse(e, "product '%s': build %lld: downloads[%d].%s is not a download field (the fields "
                  "are platform, file, url, sha256, size and name)", e->product, e->build, i, key);
  }
  return true;
}

/* Pushes t[field] raw; returns its type. */
static int raw_field(lua_State *L, int t, const char *field)
{
  lua_pushstring(L, field);
  return lsr_rawget(L, t);
}

/* The last '/'-separated segment of a url's path (before any '?'), when
 * it is a file name: a url download's default name.  *len is its length;
 * NULL when there is none. */
static const char *url_file_name(const char *url, size_t *len)
{
  const char *path = strstr(url, "//") + 2, *end = path + strcspn(path, "?");
  const char *last = end;
  while (last > path && last[-1] != '/') last--;
  *len = (size_t)(end - last);
  return last > path && lsr_file_name_ok(last, *len) ? last : NULL;
}

/* One download table at t (downloads[i] of build e->build). */
static bool read_download(lua_State *L, int t, int i, lsr_download *d, build_error *e)
{
  size_t len;
  const char *s;
  long long size;
  int has_file, has_url;
  if (!check_download_keys(L, t, i, e)) return false;
  s = raw_field(L, t, "platform") == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  if (s == NULL || !lsr_platform_ok(s, len))
    return refuse(e, "product '%s': build %lld: downloads[%d].platform must be 1 to %d bytes of a-z, 0-9, "
                  "'.', '_' and '-', starting with a letter or digit", e->product, e->build, i,
                  LSR_PLATFORM_MAX);
  d->platform = copy_string(L, -1);
  has_file = raw_field(L, t, "file");
  has_url = raw_field(L, t, "url");
  if (has_file != LUA_TNIL && has_url != LUA_TNIL)
    return refuse(e, "product '%s': build %lld: downloads[%d] gives both file and url (one of them)",
                  e->product, e->build, i);
  if (has_file == LUA_TNIL && has_url == LUA_TNIL)
    return refuse(e, "product '%s': build %lld: downloads[%d] needs a file (in the artifact directory) "
                  "or a url", e->product, e->build, i);
  if (has_file != LUA_TNIL) {
    s = has_file == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
    if (s == NULL || strlen(s) != len || !lsr_file_ok(s, len))
      return refuse(e, "product '%s': build %lld: downloads[%d].file must be a relative path of at most "
                    "%d bytes: '/'-separated names of A-Z, a-z, 0-9, '.', '_', '+' and '-', none "
                    "starting with '.'", e->product, e->build, i, LSR_FILE_MAX);
    d->file = copy_string(L, -2);
  } else {
    s = has_url == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (s == NULL || strlen(s) != len || !lsr_url_ok(s, len, LSR_URL_MAX))
      return refuse(e, "product '%s': build %lld: downloads[%d].url must be an http:// or https:// URL "
                    "of at most %d bytes of printable ASCII without spaces, quotes, '<', '>', '#' or "
                    "backslashes", e->product, e->build, i, LSR_URL_MAX);
    d->url = copy_string(L, -1);
  }
  s = raw_field(L, t, "sha256") == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  if (s == NULL || !lsr_sha256_ok(s, len))
    return refuse(e, "product '%s': build %lld: downloads[%d].sha256 must be %d lowercase hex digits",
                  e->product, e->build, i, LSR_SHA256_HEX);
  memcpy(d->sha256, s, LSR_SHA256_HEX + 1);
  raw_field(L, t, "size");
  if (!lsr_tointeger_exact(L, -1, &size) || size < 1)
    return refuse(e, "product '%s': build %lld: downloads[%d].size must be a whole number of bytes above 0",
                  e->product, e->build, i);
  d->size = size;
  switch (raw_field(L, t, "name")) {
  case LUA_TNIL:
    if (d->file != NULL) {
      const char *slash = strrchr(d->file, '/');
      lua_pushstring(L, slash != NULL ? slash + 1 : d->file);
      d->name = copy_string(L, -1);
      lua_pop(L, 1);
    } else {
      const char *last = url_file_name(d->url, &len);
      if (last == NULL)
        return refuse(e, "product '%s': build %lld: downloads[%d] needs a name: the url's path does not "
                      "end in a file name", e->product, e->build, i);
      lua_pushlstring(L, last, len);
      d->name = copy_string(L, -1);
      lua_pop(L, 1);
    }
    break;
  case LUA_TSTRING:
    s = lua_tolstring(L, -1, &len);
    if (strlen(s) == len && lsr_file_name_ok(s, len)) {
      d->name = copy_string(L, -1);
      break;
    }
    /* fall through */
  default:
    return refuse(e, "product '%s': build %lld: downloads[%d].name must be a file name of at most %d "
                  "bytes of A-Z, a-z, 0-9, '.', '_', '+' and '-', not starting with '.'", e->product,
                  e->build, i, LSR_FILE_MAX);
  }
  lua_pop(L, 6);
  return true;
}

/* downloads = { { platform =, file = or url =, sha256 =, size = [, name =] }, ... }
 * of the build table at idx: at most LSR_DOWNLOADS_MAX, one per platform. */
static bool read_downloads(lua_State *L, int idx, lsr_build *b, build_error *e)
{
  size_t n, keys = 0;
  int list;
  lua_getfield(L, idx, "downloads");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return true;
  }
  list = lua_gettop(L);
  if (!lua_istable(L, list))
    return refuse(e, "product '%s': build %lld: downloads must be a list of download tables", e->product,
                  e->build);
  n = lsr_rawlen(L, list);
  if (n > LSR_DOWNLOADS_MAX)
    return refuse(e, "product '%s': build %lld: more than %d downloads", e->product, e->build,
                  LSR_DOWNLOADS_MAX);
  /* Only 1..n: a lone download table ({ platform = ... }) is not a list. */
  lua_pushnil(L);
  while (lua_next(L, list) != 0) {
    lua_pop(L, 1);
    if (++keys > n)
      return refuse(e, "product '%s': build %lld: downloads must be a list of download tables",
                    e->product, e->build);
  }
  if (n == 0) {
    lua_pop(L, 1);
    return true;
  }
  if (e->downloads > MAX_DOWNLOADS - (int)n)
    return refuse(e, "product '%s': build %lld: more than %d downloads in the catalogue", e->product,
                  e->build, MAX_DOWNLOADS);
  e->downloads += (int)n;
  b->downloads = calloc(n, sizeof *b->downloads);
  if (b->downloads == NULL) luaL_error(L, "not enough memory");
  for (int i = 1; i <= (int)n; i++) {
    lsr_download *d = &b->downloads[i - 1];
    if (lsr_rawgeti(L, list, i) != LUA_TTABLE)
      return refuse(e, "product '%s': build %lld: downloads[%d] must be a table", e->product, e->build, i);
    b->n_downloads = i;   /* counted before filling so that free() sees its strings */
    if (!read_download(L, lua_gettop(L), i, d, e)) return false;
    for (int j = 0; j < i - 1; j++)
      if (strcmp(b->downloads[j].platform, d->platform) == 0)
        return refuse(e, "product '%s': build %lld: downloads[%d].platform '%s' is listed twice",
                      e->product, e->build, i, d->platform);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return true;
}

/* A build's optional fields: an unknown key one typo away from one of
 * them (downlods, no_rolback) is refused, since the field it meant would
 * silently keep its default.  Other unknown keys stay allowed, so newer
 * catalogues load in older versions (rules.md section 2). */
static const char *const optional_build_fields[] = { "major", "no_rollback", "downloads", NULL };

static bool check_build_typos(lua_State *L, int idx, build_error *e)
{
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    size_t len;
    const char *key;
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) continue;
    key = lua_tolstring(L, -1, &len);
    for (int f = 0; optional_build_fields[f] != NULL; f++) {
      const char *field = optional_build_fields[f];
      size_t flen = strlen(field), d = edit_distance(key, len, field, flen);
      if (d > 0 && d <= (flen >= 7 ? 2u : 1u) && printable(key, len) && strlen(key) == len) {
        lua_pop(L, 1);
        return refuse(e, "product '%s': build %lld: %s is not a build field (did you mean '%s'?)",
                      e->product, e->build, key, field);
      }
    }
  }
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
  if (!check_build_typos(L, idx, e) || !read_downloads(L, idx, b, e)) return false;
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

/* The settings read by name below, after the numeric fields of
 * lsr_policy_fields. */
static const char *const named_settings[] = { "renewal_basis", "fingerprint_match", "reminders",
                                              "checkout_url", NULL };

const char *lb_policy_setting_name(int i)
{
  int n = 0;
  while (lsr_policy_fields[n].name != NULL) n++;
  if (i < 0) return NULL;
  if (i < n) return lsr_policy_fields[i].name;
  for (int j = 0; named_settings[j] != NULL; j++)
    if (i == n + j) return named_settings[j];
  return NULL;
}

int lb_policy_setting_index(const char *name)
{
  const char *setting;
  for (int i = 0; (setting = lb_policy_setting_name(i)) != NULL; i++)
    if (strcmp(name, setting) == 0) return i;
  return -1;
}

/* Is name a policy setting?  The numeric fields of lsr_policy_fields and
 * the four read by name below. */
static bool policy_setting(const char *name)
{
  return lb_policy_setting_index(name) >= 0;
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

/* policy.checkout_url: where the portal's renew and upgrade buttons lead
 * (with the key and amount added); absent: no buttons. */
static bool read_checkout_url(lua_State *L, int policy_table, lsr_policy *policy, build_error *e)
{
  size_t len;
  const char *url;
  lua_getfield(L, policy_table, "checkout_url");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return true;
  }
  url = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  if (url == NULL || !lsr_url_ok(url, len, LSR_CHECKOUT_URL_MAX))
    return refuse(e, "policy.checkout_url must be an http:// or https:// URL of at most %d bytes of "
                  "printable ASCII without spaces, quotes, '<', '>', '#' or backslashes",
                  LSR_CHECKOUT_URL_MAX);
  memcpy(policy->checkout_url, url, len + 1);
  lua_pop(L, 1);
  return true;
}

/* The settings of the policy table at `table` onto *policy: the fields of
 * lsr_policy_fields within their bounds, renewal_basis, fingerprint_match,
 * reminders and checkout_url; any other key is refused unless `lenient`.
 * A catalogue's policy and a license's overrides (lb_read_policy_table)
 * are read here alike, so both have the same bounds and messages. */
static bool read_policy_settings(lua_State *L, int table, lsr_policy *policy, bool lenient,
                                 build_error *e)
{
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
  return read_reminders(L, table, policy, e) && read_checkout_url(L, table, policy, e);
}

/* policy = { ms_months = 12, ... }: see read_policy_settings; unknown keys
 * pass when `lenient` (catalogue versions stored before that check existed
 * must still open). */
static bool read_policy(lua_State *L, int idx, lsr_policy *policy, bool lenient, build_error *e)
{
  int table = optional_table(L, idx, "policy");
  if (table == 0) return true;
  if (table < 0) return refuse(e, "policy must be a table");
  if (!read_policy_settings(L, table, policy, lenient, e)) return false;
  lua_pop(L, 1);
  return true;
}

bool lb_read_policy_table(lua_State *L, int idx, lsr_policy *policy, char *err, size_t errlen)
{
  build_error e;
  int top = lua_gettop(L);
  bool ok;
  e.product = NULL;
  e.build = -1;
  e.downloads = 0;
  e.text[0] = '\0';
  ok = read_policy_settings(L, lsr_absindex(L, idx), policy, false, &e);
  lua_settop(L, top);
  if (!ok) snprintf(err, errlen, "%s", e.text);
  return ok;
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

/* Pushes a build's downloads: a list of {platform=, file= or url=,
 * sha256=, size=, name=}. */
static void push_downloads(lua_State *L, const lsr_build *b)
{
  lua_createtable(L, b->n_downloads, 0);
  for (int k = 0; k < b->n_downloads; k++) {
    const lsr_download *d = &b->downloads[k];
    lua_createtable(L, 0, 5);
    lb_set_string(L, "platform", d->platform);
    if (d->file != NULL) lb_set_string(L, "file", d->file);
    if (d->url != NULL) lb_set_string(L, "url", d->url);
    lb_set_string(L, "sha256", d->sha256);
    lua_pushinteger(L, (lua_Integer)d->size);
    lua_setfield(L, -2, "size");
    lb_set_string(L, "name", d->name);
    lua_rawseti(L, -2, k + 1);
  }
}

/* The shared build records: one table per build, in compiled order;
 * `downloads` only on builds that have some. */
static void push_build_records(lua_State *L, const lsr_catalogue *cat)
{
  lua_createtable(L, cat->n_builds, 0);
  for (int i = 0; i < cat->n_products; i++) {
    const lsr_product *p = &cat->products[i];
    for (int j = 0; j < p->n_builds; j++) {
      const lsr_build *b = &p->builds[j];
      lua_createtable(L, 0, 5);
      lua_pushinteger(L, (lua_Integer)b->number);
      lua_setfield(L, -2, "number");
      lb_set_string(L, "version", b->version);
      lua_pushinteger(L, (lua_Integer)b->major);
      lua_setfield(L, -2, "major");
      lb_push_date(L, b->released);
      lua_setfield(L, -2, "released");
      if (b->n_downloads > 0) {
        push_downloads(L, b);
        lua_setfield(L, -2, "downloads");
      }
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
  e.downloads = 0;
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
