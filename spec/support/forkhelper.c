/*
 * forkhelper.c -- a test-only Lua module: fork(), wait(pid) and _exit(code),
 * so the store's specs can open a database, fork, and check that the child
 * is refused.  Not part of licensor; built by `make test` into build/.
 */
#define _DEFAULT_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int helper_fork(lua_State *L)
{
  lua_pushinteger(L, (lua_Integer)fork());
  return 1;
}

/* wait(pid) -> exit status (or -1) */
static int helper_wait(lua_State *L)
{
  int status = 0;
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) lua_pushinteger(L, -1);
  else lua_pushinteger(L, WEXITSTATUS(status));
  return 1;
}

/* _exit(code): leaves without running the collector or atexit handlers. */
static int helper_exit(lua_State *L)
{
  _exit((int)luaL_checkinteger(L, 1));
}

static const luaL_Reg functions[] = {
  { "fork", helper_fork },
  { "wait", helper_wait },
  { "_exit", helper_exit },
  { NULL, NULL }
};

int luaopen_forkhelper(lua_State *L);

int luaopen_forkhelper(lua_State *L)
{
  lua_newtable(L);
  luaL_setfuncs(L, functions, 0);
  return 1;
}
