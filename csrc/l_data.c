/*
 * l_data.c -- catalogue data between Lua tables and text (data.h):
 * core.read_data builds plain tables from text without running any code;
 * core.write_data (and lb_write_data, for the catalogue sandbox) writes a
 * table with raw access only, so no metamethod of the table ever runs.
 * Keys are written in a stable order (numbers, then strings), so the same
 * data always gives the same text.
 */
#include "lbind.h"

#include "data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

typedef struct {
  lua_State *L;
  int depth;
} builder;

static bool push_scalar(lua_State *L, const lsr_data_scalar *v)
{
  if (!lua_checkstack(L, 3)) return false;
  switch (v->kind) {
  case LSR_DATA_STRING: lua_pushlstring(L, v->s, v->len); break;
  case LSR_DATA_INTEGER: lua_pushinteger(L, (lua_Integer)v->integer); break;
  case LSR_DATA_FLOAT: lua_pushnumber(L, (lua_Number)v->number); break;
  default: lua_pushboolean(L, v->boolean); break;
  }
  return true;
}

static bool on_key(void *ud, const lsr_data_scalar *key)
{
  return push_scalar(((builder *)ud)->L, key);
}

static bool on_scalar(void *ud, const lsr_data_scalar *value)
{
  builder *b = ud;
  if (!push_scalar(b->L, value)) return false;
  if (b->depth > 0) lua_rawset(b->L, -3);
  return true;
}

static bool on_open(void *ud)
{
  builder *b = ud;
  if (!lua_checkstack(b->L, 4)) return false;
  lua_newtable(b->L);
  b->depth++;
  return true;
}

static bool on_close(void *ud)
{
  builder *b = ud;
  if (--b->depth > 0) lua_rawset(b->L, -3);
  return true;
}

/* core.read_data(text [, name]) -> value, or nil, "name: line N: message",
 * "invalid_catalogue" */
static int l_read_data(lua_State *L)
{
  static const lsr_data_events events = { on_key, on_scalar, on_open, on_close };
  char err[LB_ERRLEN];
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  const char *name = luaL_optstring(L, 2, "data");
  builder b;
  int base;
  lua_settop(L, 2);
  base = lua_gettop(L);
  b.L = L;
  b.depth = 0;
  if (!lsr_data_parse(text, len, &events, &b, err, sizeof err)) {
    lua_settop(L, base);
    return lb_fail(L, "invalid_catalogue", "%s: %s", name, err);
  }
  return 1;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

static bool grow(lb_text *out, size_t more)
{
  size_t need = out->len + more + 1;
  char *bigger;
  if (need <= out->cap) return true;
  if (need > LB_TEXT_MAX) return false;
  bigger = realloc(out->data, need * 2);
  if (bigger == NULL) return false;
  out->data = bigger;
  out->cap = need * 2;
  return true;
}

static bool put(lb_text *out, const char *s, size_t n)
{
  if (!grow(out, n)) return false;
  memcpy(out->data + out->len, s, n);
  out->len += n;
  out->data[out->len] = '\0';
  return true;
}

static bool put_string(lb_text *out, const char *s, size_t n)
{
  if (!put(out, "\"", 1)) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      if (!put(out, esc, 2)) return false;
    } else if (c < 0x20 || c == 0x7f) {
      snprintf(esc, sizeof esc, "\\%03u", (unsigned)c);
      if (!put(out, esc, 4)) return false;
    } else if (!put(out, (const char *)&s[i], 1)) {
      return false;
    }
  }
  return put(out, "\"", 1);
}

static bool put_number(lua_State *L, int idx, lb_text *out, const char **why)
{
  char num[64];
  long long whole;
  lua_Number v = lua_tonumber(L, idx);
  int n;
  if (lsr_tointeger_exact(L, idx, &whole)) n = snprintf(num, sizeof num, "%lld", whole);
  else if (isfinite((double)v)) n = snprintf(num, sizeof num, "%.17g", (double)v);
  else {
    *why = "cannot write an infinite or NaN number";
    return false;
  }
  return put(out, num, (size_t)n);
}

static bool is_keyword(const char *s, size_t n)
{
  static const char *const words[] = {
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while", NULL
  };
  for (int i = 0; words[i] != NULL; i++)
    if (strlen(words[i]) == n && memcmp(words[i], s, n) == 0) return true;
  return false;
}

static bool is_name(const char *s, size_t n)
{
  if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' ||
          (s[i] >= '0' && s[i] <= '9')))
      return false;
  return !is_keyword(s, n);
}

/* A table key as the writer keeps it for sorting. */
typedef struct {
  bool is_number;
  lua_Number number;
  const char *s;   /* the key string, alive while it is a key of the table */
  size_t len;
} sort_key;

static int compare_keys(const void *a, const void *b)
{
  const sort_key *x = a, *y = b;
  size_t n;
  int c;
  if (x->is_number != y->is_number) return x->is_number ? -1 : 1;
  if (x->is_number) return (x->number > y->number) - (x->number < y->number);
  n = x->len < y->len ? x->len : y->len;
  c = memcmp(x->s, y->s, n);
  return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

static bool writable(int type)
{
  return type == LUA_TSTRING || type == LUA_TNUMBER || type == LUA_TBOOLEAN || type == LUA_TTABLE;
}

static bool write_value(lua_State *L, int idx, lb_text *out, int depth, const char **why);

/* The keys of the table at idx that hold data, sorted; NULL if none can
 * be allocated.  *count receives how many. */
static sort_key *sorted_keys(lua_State *L, int idx, size_t *count)
{
  size_t n = 0, cap = 16;
  sort_key *keys = malloc(cap * sizeof *keys);
  if (keys == NULL) return NULL;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int kt = lua_type(L, -2);
    if ((kt == LUA_TSTRING || kt == LUA_TNUMBER) && writable(lua_type(L, -1))) {
      if (n == cap) {
        sort_key *bigger = realloc(keys, cap * 2 * sizeof *keys);
        if (bigger == NULL) {
          free(keys);
          lua_pop(L, 2);
          return NULL;
        }
        keys = bigger;
        cap *= 2;
      }
      keys[n].is_number = kt == LUA_TNUMBER;
      keys[n].number = kt == LUA_TNUMBER ? lua_tonumber(L, -2) : 0;
      keys[n].s = kt == LUA_TSTRING ? lua_tolstring(L, -2, &keys[n].len) : NULL;
      n++;
    }
    lua_pop(L, 1);
  }
  qsort(keys, n, sizeof *keys, compare_keys);
  *count = n;
  return keys;
}

static bool write_key(lua_State *L, const sort_key *k, lb_text *out, const char **why)
{
  bool ok;
  if (!k->is_number && is_name(k->s, k->len)) return put(out, k->s, k->len) && put(out, "=", 1);
  if (!put(out, "[", 1)) return false;
  if (k->is_number) {
    lua_pushnumber(L, k->number);
    ok = put_number(L, -1, out, why);
    lua_pop(L, 1);
  } else {
    ok = put_string(out, k->s, k->len);
  }
  return ok && put(out, "]=", 2);
}

static bool write_table(lua_State *L, int idx, lb_text *out, int depth, const char **why)
{
  size_t n = 0;
  sort_key *keys;
  bool ok = true;
  if (depth > LSR_DATA_MAX_DEPTH) {
    *why = "tables nested deeper than 64 (or a cycle)";
    return false;
  }
  if (!lua_checkstack(L, 6) || (keys = sorted_keys(L, idx, &n)) == NULL) {
    *why = "not enough memory";
    return false;
  }
  ok = put(out, "{", 1);
  for (size_t i = 0; ok && i < n; i++) {
    ok = (i == 0 || put(out, ",", 1)) && write_key(L, &keys[i], out, why);
    if (!ok) break;
    if (keys[i].is_number) lua_pushnumber(L, keys[i].number);
    else lua_pushlstring(L, keys[i].s, keys[i].len);
    lua_rawget(L, idx);
    ok = write_value(L, lua_gettop(L), out, depth + 1, why);
    lua_pop(L, 1);
  }
  free(keys);
  return ok && put(out, "}", 1);
}

static bool write_value(lua_State *L, int idx, lb_text *out, int depth, const char **why)
{
  size_t len;
  const char *s;
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &len);
    return put_string(out, s, len);
  case LUA_TNUMBER:
    return put_number(L, idx, out, why);
  case LUA_TBOOLEAN:
    return lua_toboolean(L, idx) ? put(out, "true", 4) : put(out, "false", 5);
  case LUA_TTABLE:
    return write_table(L, idx, out, depth, why);
  default:
    *why = "only strings, numbers, booleans and tables are data";
    return false;
  }
}

bool lb_write_data(lua_State *L, int idx, lb_text *out, const char **why)
{
  *why = "the data is larger than 64 MiB";
  idx = lsr_absindex(L, idx);
  return put(out, "return ", 7) && write_value(L, idx, out, 0, why);
}

/* core.write_data(value) -> text, or nil, message, "invalid_catalogue" */
static int l_write_data(lua_State *L)
{
  lb_text out = { NULL, 0, 0 };
  const char *why = NULL;
  luaL_checkany(L, 1);
  if (!lb_write_data(L, 1, &out, &why)) {
    free(out.data);
    return lb_fail(L, "invalid_catalogue", "catalogue: %s", why);
  }
  lua_pushlstring(L, out.data, out.len);
  free(out.data);
  return 1;
}

static const luaL_Reg data_functions[] = {
  { "read_data", l_read_data },
  { "write_data", l_write_data },
  { NULL, NULL }
};

void lb_open_data(lua_State *L, int module, int mt)
{
  lb_setfuncs(L, module, mt, data_functions);
}
