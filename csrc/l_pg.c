/*
 * l_pg.c -- the PostgreSQL connection object under licensor.store
 * (core.open_pg -> db), with exactly the methods of the SQLite one in
 * l_store.c, so that the store's Lua code drives either.
 *
 * Values go to the server as text and come back typed by column: integers
 * (int2/int4/int8) as Lua integers, float and numeric as numbers,
 * everything else as strings, NULL columns left out of the row -- the
 * shapes SQLite's rows have.  Every failure is raised as a failure object
 * (lb_raise); wrong arguments raise through luaL_argerror.
 *
 * A handle owns its connection, or (core.open_pg(..., true): nginx's
 * thread pool) uses the calling OS thread's, looked up at each call: a
 * Lua VM of lua-nginx-module's pool may run on any of the pool's threads,
 * and the connections stay with the threads, at most one each.  So the
 * handle's statement ids name texts, prepared on whichever connection
 * runs them (lsr_pg_prepare finds a text it has already).
 */
#include "lbind.h"

#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LB_PG_MT "licensor.pgdb"

typedef struct {
  lsr_pg own;             /* its own connection (own.conn NULL per thread, or once closed) */
  bool per_thread;
  bool closed;
  int stale_ms;
  long long deadline_ms;  /* for every call (lsr_pg.deadline_ms); 0: none */
  char *conninfo;         /* per thread: which of the thread's connections */
  char **sqls;            /* the statements, by this handle's ids */
  int n_sqls, cap_sqls;
} lb_pgdb;

/* OIDs of the types read back as numbers (catalog/pg_type.h). */
enum { OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_FLOAT4 = 700, OID_FLOAT8 = 701,
       OID_NUMERIC = 1700 };

static const char *status_code(lsr_pg_status status)
{
  switch (status) {
  case LSR_PG_UNAVAILABLE:
  case LSR_PG_READ_ONLY:   /* a server that takes no writes now (a standby, a read-only primary) */
  case LSR_PG_UNKNOWN: return "store_unavailable";
  case LSR_PG_RETRY: return "busy";
  case LSR_PG_CONSTRAINT: return "constraint";
  case LSR_PG_TIMEOUT: return "timeout";
  case LSR_PG_INVALID: return "invalid_request";
  default: return "store_error";
  }
}

static int raise_pg(lua_State *L, const lsr_pg *pg, lsr_pg_status status)
{
  return lb_raise(L, status_code(status), "%s", lsr_pg_error(pg));
}

static lb_pgdb *check_handle(lua_State *L)
{
  lb_pgdb *h = luaL_checkudata(L, 1, LB_PG_MT);
  if (h->closed) luaL_argerror(L, 1, "store is closed");
  return h;
}

/* The connection a call on handle h runs on, with the handle's deadline. */
static lsr_pg *connection(lua_State *L, lb_pgdb *h)
{
  lsr_pg *pg = &h->own;
  if (h->per_thread) {
    char err[LB_ERRLEN];
    pg = lsr_pg_thread(h->conninfo, h->stale_ms, h->deadline_ms, err, sizeof err);
    if (pg == NULL) {
      lb_raise(L, "store_unavailable", "%s", err);
      return NULL;   /* not reached: lb_raise does not return */
    }
  } else if (!lsr_pg_is_owner(pg)) {
    lb_raise(L, "wrong_process", "this store was opened by another process (before fork); open it again here");
  }
  pg->deadline_ms = h->deadline_ms;
  return pg;
}

static lsr_pg *check_pg(lua_State *L)
{
  return connection(L, check_handle(L));
}

/* core.open_pg(conninfo, stale_ms, per_thread, deadline_ms) -> db;
 * raises store_unavailable.  deadline_ms (core.monotonic_ms's clock)
 * bounds the connection attempt; without one libpq's connect_timeout
 * does, per host. */
static int l_open_pg(lua_State *L)
{
  char err[LB_ERRLEN];
  const char *conninfo = luaL_checkstring(L, 1);
  bool per_thread = lua_toboolean(L, 3);   /* read before the handle goes on the stack */
  long long stale = 1000, deadline = 0;
  lb_pgdb *h;
  if (!lua_isnoneornil(L, 2) && (!lsr_tointeger_exact(L, 2, &stale) || stale < 0 || stale > 3600000))
    luaL_argerror(L, 2, "stale_ms must be a whole number of milliseconds");
  if (!lua_isnoneornil(L, 4) && (!lsr_tointeger_exact(L, 4, &deadline) || deadline < 0))
    luaL_argerror(L, 4, "a deadline in whole milliseconds of core.monotonic_ms expected");
  lua_settop(L, 1);
  h = lua_newuserdata(L, sizeof *h);
  memset(h, 0, sizeof *h);
  h->closed = true;   /* until it is opened: __gc has nothing to free */
  luaL_getmetatable(L, LB_PG_MT);
  lua_setmetatable(L, -2);
  h->stale_ms = (int)stale;
  h->deadline_ms = deadline;   /* the opening's statements (migrations) too, until db:deadline */
  h->per_thread = per_thread;
  if (h->per_thread) {
    h->conninfo = malloc(strlen(conninfo) + 1);
    if (h->conninfo == NULL) return lb_raise(L, "store_error", "out of memory");
    memcpy(h->conninfo, conninfo, strlen(conninfo) + 1);
    h->closed = false;
    if (lsr_pg_thread(conninfo, h->stale_ms, deadline, err, sizeof err) == NULL)
      return lb_raise(L, "store_unavailable", "%s", err);
    return 1;
  }
  if (!lsr_pg_open(&h->own, conninfo, (int)stale, deadline, err, sizeof err))
    return lb_raise(L, strncmp(err, "prepared_statements:", 20) == 0 ? "invalid_request" : "store_unavailable",
                    "%s", err);
  h->closed = false;
  return 1;
}

/* db:prepare(sql) -> statement id (prepared on the server at first use). */
static int pg_prepare(lua_State *L)
{
  lb_pgdb *h = check_handle(L);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  char *probe = malloc(len * 2 + 16), *copy;
  int n = probe ? lsr_pg_translate(sql, probe, len * 2 + 16) : -1;
  free(probe);
  if (n < 0) return lb_raise(L, "store_error", "cannot prepare: too many parameters (or out of memory)");
  if (h->n_sqls == h->cap_sqls) {
    int cap = h->cap_sqls ? h->cap_sqls * 2 : 64;
    char **grown = realloc(h->sqls, (size_t)cap * sizeof *grown);
    if (grown == NULL) return lb_raise(L, "store_error", "out of memory");
    h->sqls = grown;
    h->cap_sqls = cap;
  }
  copy = malloc(len + 1);
  if (copy == NULL) return lb_raise(L, "store_error", "out of memory");
  memcpy(copy, sql, len + 1);
  h->sqls[h->n_sqls] = copy;
  lua_pushinteger(L, h->n_sqls++);
  return 1;
}

/* db:deadline(at_ms): the calls that follow end by at_ms on
 * core.monotonic_ms's clock (nil or 0: no deadline). */
static int pg_deadline(lua_State *L)
{
  lb_pgdb *h = check_handle(L);
  long long at = 0;
  if (!lua_isnoneornil(L, 2) && (!lsr_tointeger_exact(L, 2, &at) || at < 0))
    luaL_argerror(L, 2, "a deadline in whole milliseconds of core.monotonic_ms expected");
  h->deadline_ms = at;
  return 0;
}

/* db:exec(script) */
static int pg_exec(lua_State *L)
{
  lsr_pg *pg = check_pg(L);
  lsr_pg_status status = lsr_pg_exec(pg, luaL_checkstring(L, 2));
  if (status != LSR_PG_OK) return raise_pg(L, pg, status);
  lua_pushboolean(L, 1);
  return 1;
}

/* Text for the values at first..top: strings as they are (they stay on
 * the stack for the call), numbers and booleans written into buf. */
typedef char number_text[32];

static int read_values(lua_State *L, int first, int top, const char **values, number_text *buf)
{
  int n = top - first + 1;
  if (n > LSR_PG_MAX_PARAMS) luaL_argerror(L, top, "too many values");
  for (int i = 0; i < n; i++) {
    int idx = first + i;
    long long v;
    size_t len;
    values[i] = NULL;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
      break;
    case LUA_TBOOLEAN:
      values[i] = lua_toboolean(L, idx) ? "1" : "0";
      break;
    case LUA_TNUMBER:
      if (lsr_tointeger_exact(L, idx, &v)) snprintf(buf[i], sizeof buf[i], "%lld", v);
      else snprintf(buf[i], sizeof buf[i], "%.17g", (double)lua_tonumber(L, idx));
      values[i] = buf[i];
      break;
    case LUA_TSTRING:
      values[i] = lua_tolstring(L, idx, &len);
      if (strlen(values[i]) != len) luaL_argerror(L, idx, "PostgreSQL text cannot hold a NUL byte");
      break;
    default:
      luaL_argerror(L, idx, lua_pushfstring(L, "cannot store a %s", luaL_typename(L, idx)));
    }
  }
  return n;
}

/* Runs the statement with id at argument 2 on arguments 3..; the result
 * must be PQclear'ed. */
/* The statement id at argument 2 and its values from argument 3, as many
 * as it takes (absent trailing values are NULL, as in SQLite). */
static int statement_values(lua_State *L, lsr_pg *pg, const char **values, number_text *buf, int *id)
{
  lb_pgdb *h = luaL_checkudata(L, 1, LB_PG_MT);
  int top = lua_gettop(L), n, expected;
  lua_Integer mine = luaL_checkinteger(L, 2);
  if (mine < 0 || mine >= h->n_sqls) luaL_argerror(L, 2, "no such statement");
  *id = lsr_pg_prepare(pg, h->sqls[mine]);
  if (*id < 0) lb_raise(L, "store_error", "cannot prepare: %s", lsr_pg_error(pg));
  expected = lsr_pg_param_count(pg, *id);
  n = read_values(L, 3, top, values, buf);
  if (n > expected)
    luaL_argerror(L, top, lua_pushfstring(L, "too many values for: %s", lsr_pg_sql(pg, *id)));
  for (; n < expected; n++) values[n] = NULL;
  return expected;
}

static PGresult *run_statement(lua_State *L, lsr_pg *pg)
{
  const char *values[LSR_PG_MAX_PARAMS];
  number_text buf[LSR_PG_MAX_PARAMS];
  int id, n = statement_values(L, pg, values, buf, &id);
  PGresult *res = NULL;
  lsr_pg_status status = lsr_pg_run(pg, id, NULL, n, values, &res);
  if (status != LSR_PG_OK) raise_pg(L, pg, status);
  return res;
}

static void push_value(lua_State *L, const PGresult *res, int row, int col)
{
  const char *text = PQgetvalue(res, row, col);
  switch (PQftype(res, col)) {
  case OID_INT2:
  case OID_INT4:
  case OID_INT8:
    lua_pushinteger(L, (lua_Integer)strtoll(text, NULL, 10));
    break;
  case OID_FLOAT4:
  case OID_FLOAT8:
  case OID_NUMERIC:
    lua_pushnumber(L, (lua_Number)strtod(text, NULL));
    break;
  default:
    lua_pushlstring(L, text, (size_t)PQgetlength(res, row, col));
  }
}

static void push_row(lua_State *L, const PGresult *res, int row)
{
  int n = PQnfields(res);
  lua_createtable(L, 0, n);
  for (int col = 0; col < n; col++) {
    if (PQgetisnull(res, row, col)) continue;
    push_value(L, res, row, col);
    lua_setfield(L, -2, PQfname(res, col));
  }
}

static void push_rows(lua_State *L, const PGresult *res)
{
  int n = PQntuples(res);
  lua_createtable(L, n, 0);
  for (int row = 0; row < n; row++) {
    push_row(L, res, row);
    lua_rawseti(L, -2, row + 1);
  }
}

/* db:run(id, ...) -> changes, the first column of a RETURNING row (the
 * new row's id, as SQLite's last insert rowid). */
static int pg_run(lua_State *L)
{
  lsr_pg *pg = check_pg(L);
  PGresult *res = run_statement(L, pg);
  const char *changes = PQcmdTuples(res);
  lua_pushinteger(L, (lua_Integer)strtoll(changes, NULL, 10));
  if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0)) push_value(L, res, 0, 0);
  else lua_pushinteger(L, 0);
  PQclear(res);
  return 2;
}

/* db:defer(id, ...): statement id sent with the next one that needs an
 * answer, in the same round trip (see lsr_pg_defer); its failure is that
 * call's failure. */
static int pg_defer(lua_State *L)
{
  const char *values[LSR_PG_MAX_PARAMS];
  number_text buf[LSR_PG_MAX_PARAMS];
  lsr_pg *pg = check_pg(L);
  int id, n = statement_values(L, pg, values, buf, &id);
  lsr_pg_status status = lsr_pg_defer(pg, id, n, values);
  if (status != LSR_PG_OK) return raise_pg(L, pg, status);
  return 0;
}

/* db:first(id, ...) -> the first row, or nil */
static int pg_first(lua_State *L)
{
  lsr_pg *pg = check_pg(L);
  PGresult *res = run_statement(L, pg);
  if (PQntuples(res) > 0) push_row(L, res, 0);
  else lua_pushnil(L);
  PQclear(res);
  return 1;
}

/* db:value(id, ...) -> the first column of the first row, or nil */
static int pg_value(lua_State *L)
{
  lsr_pg *pg = check_pg(L);
  PGresult *res = run_statement(L, pg);
  if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0)) push_value(L, res, 0, 0);
  else lua_pushnil(L);
  PQclear(res);
  return 1;
}

/* db:all(id, ...) -> list of rows */
static int pg_all(lua_State *L)
{
  lsr_pg *pg = check_pg(L);
  PGresult *res = run_statement(L, pg);
  push_rows(L, res);
  PQclear(res);
  return 1;
}

/* Runs sql (SQLite placeholders) with the values from argument `first`. */
static lsr_pg_status run_text(lua_State *L, lsr_pg *pg, const char *sql, int first, PGresult **res)
{
  const char *values[LSR_PG_MAX_PARAMS];
  number_text buf[LSR_PG_MAX_PARAMS];
  size_t cap = strlen(sql) * 2 + 16;
  char *text = malloc(cap);
  int n, expected;
  lsr_pg_status status;
  if (text == NULL) {
    lb_raise(L, "store_error", "out of memory");
    return LSR_PG_ERROR;
  }
  expected = lsr_pg_translate(sql, text, cap);
  if (expected < 0) {
    free(text);
    lb_raise(L, "invalid_request", "too many parameters");
    return LSR_PG_ERROR;
  }
  n = read_values(L, first, lua_gettop(L), values, buf);
  for (; n < expected; n++) values[n] = NULL;
  status = lsr_pg_run(pg, -1, text, expected, values, res);
  free(text);
  return status;
}

/* Does sql start (after blanks, comments and parentheses) with a word of
 * a statement that only reads?  Transaction control, SET, COPY, DO and
 * CALL never reach the server from store:query. */
static bool reads_only(const char *sql)
{
  static const char *const words[] = { "select", "with", "values", "table", "show", "explain", NULL };
  const char *p = sql;
  size_t len = 0;
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '(') p++;
    if (p[0] == '-' && p[1] == '-') {
      while (*p != '\0' && *p != '\n') p++;
    } else if (p[0] == '/' && p[1] == '*') {
      const char *end = strstr(p + 2, "*/");
      if (end == NULL) return false;
      p = end + 2;
    } else {
      break;
    }
  }
  while ((p[len] >= 'a' && p[len] <= 'z') || (p[len] >= 'A' && p[len] <= 'Z')) len++;
  for (int i = 0; words[i] != NULL; i++)
    if (strlen(words[i]) == len && strncasecmp(p, words[i], len) == 0) return true;
  return false;
}

/* db:query(limit_ms, sql, ...) -> rows of one statement for people (and
 * the store's lists): outside a transaction it runs in a READ ONLY
 * transaction with statement_timeout = limit_ms, so it cannot write and
 * stops with "timeout". */
static int pg_query(lua_State *L)
{
  lsr_pg *pg = check_pg(L);
  long long limit = 0;
  const char *sql;
  PGresult *res = NULL;
  lsr_pg_status status;
  bool own = !pg->in_transaction;
  if (!lsr_tointeger_exact(L, 2, &limit) || limit < 1 || limit > 86400000)
    luaL_argerror(L, 2, "time limit in milliseconds expected");
  sql = luaL_checkstring(L, 3);
  if (!reads_only(sql))
    return lb_raise(L, "invalid_request", "store:query only reads (SELECT, WITH, VALUES, TABLE, SHOW, EXPLAIN)");
  for (int i = 4; i <= lua_gettop(L); i++) {
    int t = lua_type(L, i);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING)
      luaL_argerror(L, i, "cannot bind this value");
  }
  if (own) {
    char set_timeout[64];
    status = lsr_pg_begin(pg, true);
    if (status != LSR_PG_OK) return raise_pg(L, pg, status);
    snprintf(set_timeout, sizeof set_timeout, "SET LOCAL statement_timeout = %lld", limit);
    status = lsr_pg_exec(pg, set_timeout);
    if (status == LSR_PG_OK) status = run_text(L, pg, sql, 4, &res);
    lsr_pg_rollback(pg);   /* it only read: nothing to keep */
  } else {
    status = run_text(L, pg, sql, 4, &res);
  }
  if (status == LSR_PG_READ_ONLY)
    return lb_raise(L, "invalid_request", "store:query only reads (%s)", lsr_pg_error(pg));
  if (status == LSR_PG_TIMEOUT) return lb_raise(L, "timeout", "store:query stopped after %lld ms", limit);
  if (status == LSR_PG_ERROR || status == LSR_PG_CONSTRAINT) status = LSR_PG_INVALID;
  if (status != LSR_PG_OK) return raise_pg(L, pg, status);
  push_rows(L, res);
  PQclear(res);
  return 1;
}

static int pg_begin(lua_State *L)
{
  lsr_pg *pg = check_pg(L);
  lsr_pg_status status = lsr_pg_begin(pg, false);
  if (status != LSR_PG_OK) return raise_pg(L, pg, status);
  return 0;
}

static int pg_commit(lua_State *L)
{
  lsr_pg *pg = check_pg(L);
  lsr_pg_status status = lsr_pg_commit(pg);
  if (status != LSR_PG_OK) return raise_pg(L, pg, status);
  return 0;
}

/* Never raises: it runs on error paths. */
static int pg_rollback(lua_State *L)
{
  lb_pgdb *h = luaL_checkudata(L, 1, LB_PG_MT);
  lsr_pg *pg = &h->own;
  if (h->closed) return 0;
  if (h->per_thread) {
    char err[LB_ERRLEN];
    pg = lsr_pg_thread(h->conninfo, h->stale_ms, h->deadline_ms, err, sizeof err);
  }
  else if (pg->conn == NULL || !lsr_pg_is_owner(pg)) {
    pg = NULL;
  }
  if (pg != NULL) {
    pg->deadline_ms = h->deadline_ms;
    lsr_pg_rollback(pg);
  }
  return 0;
}

static int pg_generation(lua_State *L)
{
  lua_pushnumber(L, (lua_Number)lsr_pg_generation(check_pg(L)));
  return 1;
}

static int pg_backup(lua_State *L)
{
  check_pg(L);
  return lb_raise(L, "unsupported",
                  "store:backup copies SQLite files; on PostgreSQL use pg_dump, or licensor copy --to FILE");
}

/* __gc, __close and close: safe twice; a forked child never speaks on the
 * parent's session (lsr_pg_forget); a thread's connection stays with the
 * thread. */
static int pg_close(lua_State *L)
{
  lb_pgdb *h = luaL_checkudata(L, 1, LB_PG_MT);
  if (h->own.conn != NULL) {
    if (lsr_pg_is_owner(&h->own)) lsr_pg_close(&h->own);
    else lsr_pg_forget(&h->own);
  }
  for (int i = 0; i < h->n_sqls; i++) free(h->sqls[i]);
  free(h->sqls);
  free(h->conninfo);
  h->sqls = NULL;
  h->conninfo = NULL;
  h->n_sqls = h->cap_sqls = 0;
  h->closed = true;
  lua_pushboolean(L, 1);
  return 1;
}

static int pg_tostring(lua_State *L)
{
  lb_pgdb *h = luaL_checkudata(L, 1, LB_PG_MT);
  if (h->closed) lua_pushliteral(L, "licensor.pgdb (closed)");
  else if (h->per_thread) lua_pushliteral(L, "licensor.pgdb (this thread's connection)");
  else if (h->own.conn == NULL) lua_pushliteral(L, "licensor.pgdb (disconnected)");
  else lua_pushfstring(L, "licensor.pgdb (%s/%s)", PQhost(h->own.conn), PQdb(h->own.conn));
  return 1;
}

static const luaL_Reg pg_methods[] = {
  { "backup", pg_backup },
  { "prepare", pg_prepare },
  { "exec", pg_exec },
  { "run", pg_run },
  { "defer", pg_defer },
  { "first", pg_first },
  { "value", pg_value },
  { "all", pg_all },
  { "query", pg_query },
  { "begin", pg_begin },
  { "commit", pg_commit },
  { "rollback", pg_rollback },
  { "generation", pg_generation },
  { "deadline", pg_deadline },
  { "close", pg_close },
  { NULL, NULL }
};

static const luaL_Reg pg_meta[] = {
  { "__gc", pg_close },
  { "__close", pg_close },
  { "__tostring", pg_tostring },
  { NULL, NULL }
};

static const luaL_Reg pg_functions[] = {
  { "open_pg", l_open_pg },
  { NULL, NULL }
};

void lb_open_pg(lua_State *L, int module, int mt)
{
  lb_new_class(L, LB_PG_MT, pg_meta, pg_methods);
  lb_setfuncs(L, module, mt, pg_functions);
}
