/*
 * l_process.c -- core.process: child process groups for Lua (process.h).
 * `licensor gateway` runs nginx with process.run (SIGTERM drains it:
 * nginx's graceful quit, bounded); the specs start their gateways with
 * process.spawn and stop them with process.stop, master and workers, even
 * when a spec fails.
 *
 * Failures to start are data problems (`nil, message, code`); wrong
 * argument types raise.
 */
#define _POSIX_C_SOURCE 200809L   /* kill */
#include "lbind.h"

#include "process.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <signal.h>
#include <stdlib.h>

#define MAX_ARGS 64

/* Reads the argument vector {cmd, arg...} at argument 1 into argv. */
static void check_argv(lua_State *L, const char *argv[MAX_ARGS + 1])
{
  size_t n;
  lb_check_table(L, 1, "command");
  n = lsr_rawlen(L, 1);
  if (n == 0 || n > MAX_ARGS) luaL_argerror(L, 1, "a command of 1 to 64 words expected");
  for (size_t i = 1; i <= n; i++) {
    lsr_rawgeti(L, 1, (int)i);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 1, "command words must be strings");
    argv[i - 1] = lua_tostring(L, -1);   /* kept alive by the table */
    lua_pop(L, 1);
  }
  argv[n] = NULL;
}

static pid_t check_pid(lua_State *L, int arg)
{
  long long pid = 0;
  if (!lsr_tointeger_exact(L, arg, &pid) || pid <= 0 || pid > 0x7fffffff)
    luaL_argerror(L, arg, "process id expected");
  return (pid_t)pid;
}

static int check_grace(lua_State *L, int arg)
{
  long long ms = 0;
  if (lua_isnoneornil(L, arg)) return 3000;
  if (!lsr_tointeger_exact(L, arg, &ms) || ms < 0 || ms > 600000)
    luaL_argerror(L, arg, "grace in milliseconds (0 to 600000) expected");
  return (int)ms;
}

/* process.spawn({cmd, arg...} [, log_path [, user]]) -> pid (the group's
 * id too); with a user name, the child runs as that user (we must be root). */
static int process_spawn(lua_State *L)
{
  const char *argv[MAX_ARGS + 1];
  char err[LB_ERRLEN];
  const char *log_path = luaL_optstring(L, 2, NULL);
  const char *user_name = luaL_optstring(L, 3, NULL);
  lsr_spawn_user user;
  pid_t pid;
  check_argv(L, argv);
  if (user_name != NULL) {
    const struct passwd *pw = getpwnam(user_name);
    if (pw == NULL) return lb_fail(L, "spawn_failed", "no user %s", user_name);
    user.uid = pw->pw_uid;
    user.gid = pw->pw_gid;
  }
  pid = lsr_spawn_as(argv, log_path, user_name ? &user : NULL, err, sizeof err);
  if (pid < 0) return lb_fail(L, "spawn_failed", "%s: %s", argv[0], err);
  lua_pushinteger(L, pid);
  return 1;
}

/* process.stop(pid [, grace_ms]) -> true once nothing of the group lives */
static int process_stop(lua_State *L)
{
  pid_t pid = check_pid(L, 1);
  lsr_stop_group(pid, check_grace(L, 2));
  lua_pushboolean(L, !lsr_group_alive(pid));
  return 1;
}

/* process.alive(pgid) -> is any member of the group alive? */
static int process_alive(lua_State *L)
{
  lua_pushboolean(L, lsr_group_alive(check_pid(L, 1)));
  return 1;
}

/* process.wait(pid, timeout_ms) -> exit code (128 + signal when a signal
 * ended it), or nil, message, "timeout" while it still runs. */
static int process_wait(lua_State *L)
{
  pid_t pid = check_pid(L, 1);
  int code = lsr_wait(pid, check_grace(L, 2));
  if (code < 0) return lb_fail(L, "timeout", "process %d is still running", (int)pid);
  lua_pushinteger(L, code);
  return 1;
}

/* process.signal(pid, NAME) -> true; NAME one of SIGTERM, SIGINT, SIGHUP,
 * SIGKILL, SIGQUIT, SIGSTOP, SIGCONT (the specs stop a worker to model
 * one stuck in a call). */
static int process_signal(lua_State *L)
{
  static const char *const names[] = { "SIGTERM", "SIGINT", "SIGHUP", "SIGKILL", "SIGQUIT", "SIGSTOP",
                                       "SIGCONT", NULL };
  static const int numbers[] = { SIGTERM, SIGINT, SIGHUP, SIGKILL, SIGQUIT, SIGSTOP, SIGCONT };
  pid_t pid = check_pid(L, 1);
  int which = luaL_checkoption(L, 2, NULL, names);
  lua_pushboolean(L, kill(pid, numbers[which]) == 0);
  return 1;
}

static const char *signal_name(int sig)
{
  return sig == SIGTERM ? "SIGTERM" : sig == SIGQUIT ? "SIGQUIT" : sig == SIGINT ? "SIGINT" :
         sig == SIGHUP ? "SIGHUP" : NULL;
}

/* on_drain's data: the Lua state, and the stack slots of the callback and
 * of the names it may be called with (pushed beforehand, so the call
 * allocates nothing outside its pcall). */
typedef struct {
  lua_State *L;
  int callback, sigterm, sigquit;
} drain_call;

/* Calls the Lua on_drain(signal name); an error in it is dropped: the
 * drain goes on, and the child never runs unsupervised. */
static void call_on_drain(void *data, int sig)
{
  drain_call *call = data;
  lua_pushvalue(call->L, call->callback);
  lua_pushvalue(call->L, sig == SIGQUIT ? call->sigquit : call->sigterm);
  if (lua_pcall(call->L, 1, 0, 0) != 0) lua_pop(call->L, 1);
}

/* The int field `name` of the options table at arg, within 0..max, or fallback. */
static int opt_ms(lua_State *L, int arg, const char *name, int fallback, int max)
{
  long long ms = fallback;
  lua_getfield(L, arg, name);
  if (!lua_isnil(L, -1) && (!lsr_tointeger_exact(L, -1, &ms) || ms < 0 || ms > max))
    luaL_error(L, "process.run: %s must be milliseconds from 0 to %d", name, max);
  lua_pop(L, 1);
  return (int)ms;
}

/* The drain signal of the options table at arg (SIGQUIT unless told). */
static int opt_drain_signal(lua_State *L, int arg)
{
  static const char *const names[] = { "SIGQUIT", "SIGTERM", "SIGINT", "SIGHUP", NULL };
  static const int numbers[] = { SIGQUIT, SIGTERM, SIGINT, SIGHUP };
  int which;
  lua_getfield(L, arg, "drain_signal");
  which = luaL_checkoption(L, -1, "SIGQUIT", names);
  lua_pop(L, 1);
  return numbers[which];
}

/* process.run({cmd, arg...} [, grace_ms | {grace_ms=, drain_ms=, drain_signal=, on_drain=}])
 * -> exit code, stop signal name (nil when the child ended by itself),
 * drained (true when a SIGTERM or SIGQUIT drain ended with the group gone
 * in time); or nil, message, "spawn_failed".  Without drain_ms, every
 * stop signal stops the group hard, as before drains existed. */
static int process_run(lua_State *L)
{
  const char *argv[MAX_ARGS + 1];
  char err[LB_ERRLEN];
  lsr_run_opts opts = { 3000, 0, SIGQUIT, NULL, NULL };
  lsr_run_outcome outcome;
  drain_call call;
  int code;
  check_argv(L, argv);
  if (lua_istable(L, 2)) {
    opts.grace_ms = opt_ms(L, 2, "grace_ms", 3000, 600000);
    opts.drain_ms = opt_ms(L, 2, "drain_ms", 0, 3600000);
    opts.drain_signal = opt_drain_signal(L, 2);
    lua_settop(L, 2);
    lua_getfield(L, 2, "on_drain");
    if (!lua_isnil(L, 3)) {
      luaL_checktype(L, 3, LUA_TFUNCTION);
      luaL_checkstack(L, 4, "process.run");
      lua_pushliteral(L, "SIGTERM");
      lua_pushliteral(L, "SIGQUIT");
      call.L = L;
      call.callback = 3;
      call.sigterm = 4;
      call.sigquit = 5;
      opts.on_drain = call_on_drain;
      opts.data = &call;
    }
  } else {
    opts.grace_ms = check_grace(L, 2);
  }
  code = lsr_run_group(argv, &opts, &outcome, err, sizeof err);
  if (code < 0 && outcome.stop_signal == 0) return lb_fail(L, "spawn_failed", "%s: %s", argv[0], err);
  lua_pushinteger(L, code);
  if (outcome.stop_signal != 0) lua_pushstring(L, signal_name(outcome.stop_signal));
  else lua_pushnil(L);
  lua_pushboolean(L, outcome.drained);
  return 3;
}

/* process.user([name]) -> {name=, uid=, gid=, group=} of the user called
 * name, or of this process's effective user; or nil, message, "no_user".
 * (The gateway renders nginx's `user NAME GROUP` from it.) */
static int process_user(lua_State *L)
{
  const char *name = luaL_optstring(L, 1, NULL);
  const struct passwd *pw = name ? getpwnam(name) : getpwuid(geteuid());
  const struct group *gr;
  if (pw == NULL) {
    if (name) return lb_fail(L, "no_user", "no user %s", name);
    return lb_fail(L, "no_user", "this process's user (uid %ld) has no name", (long)geteuid());
  }
  lua_createtable(L, 0, 4);
  lb_set_string(L, "name", pw->pw_name);
  lua_pushinteger(L, (lua_Integer)pw->pw_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)pw->pw_gid);
  lua_setfield(L, -2, "gid");
  gr = getgrgid(pw->pw_gid);
  if (gr != NULL) lb_set_string(L, "group", gr->gr_name);
  return 1;
}

static const luaL_Reg process_functions[] = {
  { "user", process_user },
  { "spawn", process_spawn },
  { "stop", process_stop },
  { "alive", process_alive },
  { "run", process_run },
  { "wait", process_wait },
  { "signal", process_signal },
  { NULL, NULL }
};

void lb_open_process(lua_State *L, int module, int mt)
{
  (void)mt;
  luaL_newlib(L, process_functions);
  lua_setfield(L, module, "process");
}
