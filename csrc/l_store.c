/*
 * l_store.c -- the SQLite connection object under licensor.store
 * (core.open -> db): prepared statements by id, rows as tables,
 * transactions, the change generation and a read-only query for people.
 *
 * This object is internal: every failure is raised as a failure object
 * {code=, message=} (lb_raise), which lua/licensor/store/init.lua catches
 * at its public boundary (licensor.failure).  Wrong arguments (no such statement, a value SQLite
 * cannot hold) are programming errors and raise through luaL_argerror.
 */
#include "lbind.h"

#include "store.h"

#include <string.h>

static const char *sqlite_code(int rc)
{
  switch (rc & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED: return "busy";
  case SQLITE_CONSTRAINT: return "constraint";
  case SQLITE_FULL:
  case SQLITE_IOERR: return "io_error";
  default: return "store_error";
  }
}

static int raise_sqlite(lua_State *L, const lsr_store *store, int rc)
{
  return lb_raise(L, sqlite_code(rc), "%s", store->db ? sqlite3_errmsg(store->db) : sqlite3_errstr(rc));
}

static lsr_store *check_store(lua_State *L)
{
  lsr_store *store = luaL_checkudata(L, 1, LB_STORE_MT);
  if (store->db == NULL) luaL_argerror(L, 1, "store is closed");
  if (!lsr_store_is_owner(store))
    lb_raise(L, "wrong_process",
             "this store was opened by another process (before fork); open it again here");
  return store;
}

/* core.open(path, full_sync, busy_ms) -> db; raises store_error when the
 * file cannot be opened as a database. */
static int l_open(lua_State *L)
{
  char err[LB_ERRLEN];
  const char *path = luaL_checkstring(L, 1);
  bool full = lua_toboolean(L, 2) != 0;
  long long busy = 5000;
  lsr_store *store;
  if (!lua_isnoneornil(L, 3) && (!lsr_tointeger_exact(L, 3, &busy) || busy < 0 || busy > 3600000))
    luaL_argerror(L, 3, "busy_ms must be a whole number of milliseconds");
  store = lua_newuserdata(L, sizeof *store);
  memset(store, 0, sizeof *store);
  luaL_getmetatable(L, LB_STORE_MT);
  lua_setmetatable(L, -2);
  if (!lsr_store_open(store, path, full, (int)busy, err, sizeof err))
    return lb_raise(L, "store_error", "%s", err);
  return 1;
}

/* db:prepare(sql) -> statement id; SQL this database cannot prepare (another
 * schema) raises store_error. */
static int db_prepare(lua_State *L)
{
  lsr_store *store = check_store(L);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  int id = lsr_store_prepare(store, sql, len);
  if (id < 0) return lb_raise(L, "store_error", "cannot prepare %s: %s", sql, sqlite3_errmsg(store->db));
  lua_pushinteger(L, id);
  return 1;
}

/* db:exec(script) */
static int db_exec(lua_State *L)
{
  lsr_store *store = check_store(L);
  int rc = lsr_store_exec(store, luaL_checkstring(L, 2));
  if (rc != SQLITE_OK) return raise_sqlite(L, store, rc);
  lua_pushboolean(L, 1);
  return 1;
}

static void bind_value(lua_State *L, sqlite3_stmt *stmt, int param, int idx)
{
  long long v;
  size_t len;
  const char *s;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    sqlite3_bind_null(stmt, param);
    break;
  case LUA_TBOOLEAN:
    sqlite3_bind_int(stmt, param, lua_toboolean(L, idx));
    break;
  case LUA_TNUMBER:
    if (lsr_tointeger_exact(L, idx, &v)) sqlite3_bind_int64(stmt, param, v);
    else sqlite3_bind_double(stmt, param, (double)lua_tonumber(L, idx));
    break;
  case LUA_TSTRING:
    /* The string stays on the stack until the statement is reset. */
    s = lua_tolstring(L, idx, &len);
    sqlite3_bind_text(stmt, param, s, (int)len, SQLITE_STATIC);
    break;
  default:
    luaL_argerror(L, idx, lua_pushfstring(L, "cannot store a %s", luaL_typename(L, idx)));
  }
}

/* The statement with id at argument 2, reset and bound to arguments 3.. */
static sqlite3_stmt *bound_statement(lua_State *L, lsr_store *store)
{
  int top = lua_gettop(L);
  sqlite3_stmt *stmt = lsr_store_statement(store, (int)luaL_checkinteger(L, 2));
  if (stmt == NULL) luaL_argerror(L, 2, "no such statement");
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  if (top - 2 > sqlite3_bind_parameter_count(stmt))
    luaL_argerror(L, top, lua_pushfstring(L, "too many values for: %s", sqlite3_sql(stmt)));
  for (int i = 3; i <= top; i++) bind_value(L, stmt, i - 2, i);
  return stmt;
}

static void push_column(lua_State *L, sqlite3_stmt *stmt, int col)
{
  switch (sqlite3_column_type(stmt, col)) {
  case SQLITE_INTEGER:
    lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(stmt, col));
    break;
  case SQLITE_FLOAT:
    lua_pushnumber(L, (lua_Number)sqlite3_column_double(stmt, col));
    break;
  case SQLITE_NULL:
    lua_pushnil(L);
    break;
  default:
    lua_pushlstring(L, (const char *)sqlite3_column_text(stmt, col),
                    (size_t)sqlite3_column_bytes(stmt, col));
  }
}

/* Pushes the current row as { column = value } (NULL columns left out). */
static void push_row(lua_State *L, sqlite3_stmt *stmt)
{
  int n = sqlite3_column_count(stmt);
  lua_createtable(L, 0, n);
  for (int col = 0; col < n; col++) {
    if (sqlite3_column_type(stmt, col) == SQLITE_NULL) continue;
    push_column(L, stmt, col);
    lua_setfield(L, -2, sqlite3_column_name(stmt, col));
  }
}

static int step(lua_State *L, lsr_store *store, sqlite3_stmt *stmt)
{
  int rc = sqlite3_step(stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    sqlite3_reset(stmt);
    raise_sqlite(L, store, rc);
  }
  return rc;
}

/* db:run(id, ...) -> changes, last insert rowid */
static int db_run(lua_State *L)
{
  lsr_store *store = check_store(L);
  sqlite3_stmt *stmt = bound_statement(L, store);
  while (step(L, store, stmt) == SQLITE_ROW) {}
  sqlite3_reset(stmt);
  lua_pushinteger(L, sqlite3_changes(store->db));
  lua_pushinteger(L, (lua_Integer)sqlite3_last_insert_rowid(store->db));
  return 2;
}

/* db:first(id, ...) -> the first row, or nil */
static int db_first(lua_State *L)
{
  lsr_store *store = check_store(L);
  sqlite3_stmt *stmt = bound_statement(L, store);
  if (step(L, store, stmt) == SQLITE_ROW) push_row(L, stmt);
  else lua_pushnil(L);
  sqlite3_reset(stmt);
  return 1;
}

/* db:value(id, ...) -> the first column of the first row, or nil */
static int db_value(lua_State *L)
{
  lsr_store *store = check_store(L);
  sqlite3_stmt *stmt = bound_statement(L, store);
  if (step(L, store, stmt) == SQLITE_ROW && sqlite3_column_count(stmt) > 0) push_column(L, stmt, 0);
  else lua_pushnil(L);
  sqlite3_reset(stmt);
  return 1;
}

/* db:all(id, ...) -> list of rows */
static int db_all(lua_State *L)
{
  lsr_store *store = check_store(L);
  sqlite3_stmt *stmt = bound_statement(L, store);
  int n = 0;
  lua_newtable(L);
  while (step(L, store, stmt) == SQLITE_ROW) {
    push_row(L, stmt);
    lua_rawseti(L, -2, ++n);
  }
  sqlite3_reset(stmt);
  return 1;
}

/* db:query(limit_ms, sql, ...) -> rows of a statement prepared for this
 * call (for people at the REPL; workflows use prepared ids).  It may only
 * read (see lsr_store_prepare_query), and is interrupted with "timeout"
 * after limit_ms. */
static int db_query(lua_State *L)
{
  lsr_store *store = check_store(L);
  size_t len;
  long long limit = 0;
  const char *sql;
  sqlite3_stmt *stmt = NULL;
  int n = 0, rc, top;
  if (!lsr_tointeger_exact(L, 2, &limit) || limit < 1 || limit > 86400000)
    luaL_argerror(L, 2, "time limit in milliseconds expected");
  sql = luaL_checklstring(L, 3, &len);
  lua_remove(L, 2);   /* the SQL at 2 and its values from 3, like prepared statements */
  top = lua_gettop(L);
  rc = lsr_store_prepare_query(store, sql, len, &stmt);
  if (rc == SQLITE_AUTH)
    return lb_raise(L, "invalid_request", "store:query only reads (SELECT, and PRAGMAs that report)");
  if (rc != SQLITE_OK || stmt == NULL)
    return lb_raise(L, "invalid_request", "%s", sqlite3_errmsg(store->db));
  for (int i = 3; i <= top && i - 2 <= sqlite3_bind_parameter_count(stmt); i++) {
    int t = lua_type(L, i);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING) {
      sqlite3_finalize(stmt);
      return luaL_argerror(L, i, "cannot bind this value");
    }
    bind_value(L, stmt, i - 2, i);
  }
  lua_newtable(L);
  while ((rc = lsr_store_step_query(store, stmt, (int)limit, n == 0)) == SQLITE_ROW) {
    push_row(L, stmt);
    lua_rawseti(L, -2, ++n);
  }
  sqlite3_finalize(stmt);
  if (rc == SQLITE_INTERRUPT)
    return lb_raise(L, "timeout", "store:query stopped after %lld ms", limit);
  if (rc != SQLITE_DONE) return lb_raise(L, sqlite_code(rc), "%s", sqlite3_errstr(rc));
  return 1;
}

/* db:begin([deferred]): BEGIN IMMEDIATE, or BEGIN DEFERRED when deferred
 * is true (see lsr_store_begin: its first write then answers "busy" at
 * once, without waiting, when another connection writes or wrote). */
static int db_begin(lua_State *L)
{
  lsr_store *store = check_store(L);
  int rc = lsr_store_begin(store, lua_toboolean(L, 2) != 0);
  if (rc != SQLITE_OK) return raise_sqlite(L, store, rc);
  return 0;
}

static int db_commit(lua_State *L)
{
  lsr_store *store = check_store(L);
  int rc = lsr_store_commit(store);
  if (rc != SQLITE_OK) return raise_sqlite(L, store, rc);
  return 0;
}

/* Never raises: it runs on error paths. */
static int db_rollback(lua_State *L)
{
  lsr_store *store = luaL_checkudata(L, 1, LB_STORE_MT);
  if (store->db != NULL && lsr_store_is_owner(store)) lsr_store_rollback(store);
  return 0;
}

/* db:generation() -> a number that changes whenever anyone may have
 * committed since the previous call (see store.h). */
static int db_generation(lua_State *L)
{
  lua_pushnumber(L, (lua_Number)lsr_store_generation(check_store(L)));
  return 1;
}

/* __gc, __close and close: safe twice, and never touches the file from a
 * forked child (see lsr_store_forget). */
static int db_close(lua_State *L)
{
  lsr_store *store = luaL_checkudata(L, 1, LB_STORE_MT);
  if (store->db != NULL) {
    if (lsr_store_is_owner(store)) lsr_store_close(store);
    else lsr_store_forget(store);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int db_tostring(lua_State *L)
{
  lsr_store *store = luaL_checkudata(L, 1, LB_STORE_MT);
  if (store->db == NULL) lua_pushliteral(L, "licensor.db (closed)");
  else lua_pushfstring(L, "licensor.db (%s)", sqlite3_db_filename(store->db, "main"));
  return 1;
}


/* db:backup(path): a consistent copy of the database, made online. */
static int db_backup(lua_State *L)
{
  char err[LB_ERRLEN];
  lsr_store *store = check_store(L);
  int rc = lsr_store_backup(store, luaL_checkstring(L, 2), err, sizeof err);
  if (rc != SQLITE_OK) return lb_raise(L, sqlite_code(rc), "%s", err);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg store_methods[] = {
  { "backup", db_backup },
  { "prepare", db_prepare },
  { "exec", db_exec },
  { "run", db_run },
  { "defer", db_run },   /* SQLite has no round trips to save: run at once */
  { "first", db_first },
  { "value", db_value },
  { "all", db_all },
  { "query", db_query },
  { "begin", db_begin },
  { "commit", db_commit },
  { "rollback", db_rollback },
  { "generation", db_generation },
  { "close", db_close },
  { NULL, NULL }
};

static const luaL_Reg store_meta[] = {
  { "__gc", db_close },
  { "__close", db_close },
  { "__tostring", db_tostring },
  { NULL, NULL }
};

static const luaL_Reg store_functions[] = {
  { "open", l_open },
  { NULL, NULL }
};

void lb_open_store(lua_State *L, int module, int mt)
{
  lb_new_class(L, LB_STORE_MT, store_meta, store_methods);
  lb_setfuncs(L, module, mt, store_functions);
}
