/*
 * l_sandbox.c -- core.run_catalogue: a catalogue file's code runs in a
 * child process, in a Lua state of its own, behind limits no Lua code can
 * catch or outgrow:
 *
 *  - memory: the state's allocator counts every byte and ends the child
 *    past the budget (and RLIMIT_AS backs it, outside the sanitizers);
 *  - instructions: a count hook ends the child when the budget is spent;
 *  - time: RLIMIT_CPU, and the parent kills the child past a wall-clock
 *    deadline.
 *
 * The child writes its result as data text (l_data.c, raw access only)
 * into a pipe; the parent reads it with the data-only reader.  So nothing
 * the file does -- metatables, patched string functions, loops in __gc --
 * reaches the host: the host only ever sees plain tables.
 */
#define _POSIX_C_SOURCE 200809L   /* kill, fork, poll, clock_gettime */
#include "lbind.h"

#include <lualib.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How the child ends when a budget is spent (its exit status). */
enum { EXIT_DONE = 0, EXIT_INSTRUCTIONS = 3, EXIT_MEMORY = 4, EXIT_BROKEN = 5 };

#define HOOK_EVERY 1000

/* The child's budgets, the allocator's user data. */
typedef struct {
  size_t used, memory_limit;
  long long instructions;
} budget;

typedef struct {
  long long instructions;
  long long memory_kb;
  long long seconds;
} limits;

/* ------------------------------------------------------------------ */
/* The child                                                           */
/* ------------------------------------------------------------------ */

static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
  budget *b = ud;
  size_t old = ptr != NULL ? osize : 0;
  void *p;
  if (nsize == 0) {
    free(ptr);
    b->used -= old;
    return NULL;
  }
  if (nsize > old && b->used - old + nsize > b->memory_limit) _exit(EXIT_MEMORY);
  p = realloc(ptr, nsize);
  if (p == NULL) _exit(EXIT_MEMORY);
  b->used = b->used - old + nsize;
  return p;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
  void *ud = NULL;
  (void)ar;
  lua_getallocf(L, &ud);
  if (ud != NULL) {
    budget *b = ud;
    b->instructions -= HOOK_EVERY;
    if (b->instructions <= 0) _exit(EXIT_INSTRUCTIONS);
  }
}

/* Writes all of buf to fd (the pipe to the parent). */
static void write_all(int fd, const char *buf, size_t len)
{
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(EXIT_BROKEN);
    buf += n;
    len -= (size_t)n;
  }
}

/* Sends 'E' and a message, and ends the child. */
static void child_error(int fd, const char *message)
{
  write_all(fd, "E", 1);
  write_all(fd, message, strlen(message));
  _exit(EXIT_DONE);
}

/* day("YYYY-MM-DD") -> day number; date(n) -> "YYYY-MM-DD" (the sandbox's
 * calendar helpers; nil, message for bad input). */
static int sandbox_day(lua_State *L)
{
  size_t len;
  lsr_day day;
  const char *s = lua_tolstring(L, 1, &len);
  if (lua_type(L, 1) != LUA_TSTRING || !lsr_date_parse(s, len, &day)) {
    lua_pushnil(L);
    lua_pushliteral(L, "day: date YYYY-MM-DD expected");
    return 2;
  }
  lua_pushinteger(L, day);
  return 1;
}

static int sandbox_date(lua_State *L)
{
  long long n;
  char buf[LSR_DATE_LEN + 1];
  if (!lsr_tointeger_exact(L, 1, &n) || n < LSR_DAY_MIN || n > LSR_DAY_MAX) {
    lua_pushnil(L);
    lua_pushliteral(L, "date: a day number in years 1-9999 expected");
    return 2;
  }
  lsr_date_format((lsr_day)n, buf);
  lua_pushlstring(L, buf, LSR_DATE_LEN);
  return 1;
}

/* Removes from the fresh state what a catalogue has no business with. */
static void strip_state(lua_State *L)
{
  static const char *const globals[] = {
    "io", "os", "debug", "package", "require", "load", "loadstring", "loadfile", "dofile",
    "collectgarbage", "print", "module", "setfenv", "getfenv", "newproxy", "gcinfo", "jit",
    "coroutine", "utf8", "bit", NULL
  };
  lua_getglobal(L, "jit");   /* LuaJIT's compiled code calls no hooks: interpret */
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "off");
    if (lua_isfunction(L, -1)) lua_call(L, 0, 0);
    else lua_pop(L, 1);
  }
  lua_pop(L, 1);
  for (int i = 0; globals[i] != NULL; i++) {
    lua_pushnil(L);
    lua_setglobal(L, globals[i]);
  }
  lua_getglobal(L, "string");
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
  lua_pushcfunction(L, sandbox_day);
  lua_setglobal(L, "day");
  lua_pushcfunction(L, sandbox_date);
  lua_setglobal(L, "date");
}

/* The catalogue: what the chunk returned, else the globals `catalogue`,
 * or `products` and `policy`.  Leaves it on top; false if none. */
static bool catalogue_result(lua_State *L)
{
  if (lua_istable(L, -1)) return true;
  lua_pop(L, 1);
  lua_getglobal(L, "catalogue");
  if (lua_istable(L, -1)) return true;
  lua_pop(L, 1);
  lua_getglobal(L, "products");
  if (lua_isnil(L, -1)) return false;
  lua_createtable(L, 0, 2);
  lua_insert(L, -2);
  lua_setfield(L, -2, "products");
  lua_getglobal(L, "policy");
  lua_setfield(L, -2, "policy");
  return true;
}

/* Limits the child's address space to what it has plus the budget (the
 * sanitizers reserve terabytes of address space: not under them). */
static void limit_address_space(size_t budget_bytes)
{
#if !defined(__SANITIZE_ADDRESS__)
  long pages = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f != NULL) {
    if (fscanf(f, "%ld", &pages) != 1) pages = 0;
    fclose(f);
  }
  if (pages > 0) {
    struct rlimit as;
    as.rlim_cur = as.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + budget_bytes +
                                ((rlim_t)256 << 20);
    setrlimit(RLIMIT_AS, &as);
  }
#else
  (void)budget_bytes;
#endif
}

static void run_child(int fd, const char *source, size_t len, const char *name, const limits *lim)
{
  budget b;
  struct rlimit cpu;
  lua_State *L;
  lb_text out = { NULL, 0, 0 };
  const char *why = NULL;
  cpu.rlim_cur = (rlim_t)lim->seconds;
  cpu.rlim_max = (rlim_t)lim->seconds + 1;
  setrlimit(RLIMIT_CPU, &cpu);
  b.used = 0;
  b.memory_limit = (size_t)lim->memory_kb * 1024;
  b.instructions = lim->instructions;
  limit_address_space(b.memory_limit);
  /* LuaJIT on some 64-bit builds refuses a custom allocator: the address
   * space limit and the CPU limit remain. */
  L = lua_newstate(budget_alloc, &b);
  if (L == NULL) L = luaL_newstate();
  if (L == NULL) child_error(fd, "cannot create a Lua state for the catalogue");
  luaL_openlibs(L);
  strip_state(L);
  lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
  lua_pushfstring(L, "@%s", name);   /* messages read "name:line: ..." */
  if (luaL_loadbufferx(L, source, len, lua_tostring(L, -1), "t") != 0 || lua_pcall(L, 0, 1, 0) != 0) {
    const char *message = lua_tostring(L, -1);
    child_error(fd, message != NULL ? message : "the catalogue raised an error that is not a string");
  }
  lua_sethook(L, NULL, 0, 0);
  if (!catalogue_result(L)) {
    lua_pushfstring(L, "%s:1: the file neither returns a catalogue table nor declares products", name);
    child_error(fd, lua_tostring(L, -1));
  }
  if (!lb_write_data(L, -1, &out, &why)) {
    lua_pushfstring(L, "%s: %s", name, why);
    child_error(fd, lua_tostring(L, -1));
  }
  write_all(fd, "D", 1);
  write_all(fd, out.data, out.len);
  _exit(EXIT_DONE);
}

/* ------------------------------------------------------------------ */
/* The parent                                                          */
/* ------------------------------------------------------------------ */

static long long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads the child's answer until EOF or the deadline; false on timeout. */
static bool read_answer(int fd, lb_text *in, long long deadline)
{
  char chunk[65536];
  for (;;) {
    struct pollfd p;
    long long left = deadline - now_ms();
    ssize_t n;
    if (left <= 0) return false;
    p.fd = fd;
    p.events = POLLIN;
    if (poll(&p, 1, (int)(left > 1000 ? 1000 : left)) < 0 && errno != EINTR) return false;
    n = read(fd, chunk, sizeof chunk);
    if (n == 0) return true;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return true;
    }
    if (in->len + (size_t)n > LB_TEXT_MAX) return true;   /* too much: the reader refuses it */
    if (in->len + (size_t)n + 1 > in->cap) {
      size_t cap = (in->len + (size_t)n + 1) * 2;
      char *bigger = realloc(in->data, cap);
      if (bigger == NULL) return true;
      in->data = bigger;
      in->cap = cap;
    }
    memcpy(in->data + in->len, chunk, (size_t)n);
    in->len += (size_t)n;
  }
}

static long long check_limit(lua_State *L, int opts, const char *field, long long fallback,
                             long long max)
{
  long long v = fallback;
  lua_getfield(L, opts, field);
  if (!lua_isnil(L, -1) && (!lsr_tointeger_exact(L, -1, &v) || v < 1 || v > max))
    luaL_argerror(L, opts, lua_pushfstring(L, "%s must be a whole number from 1 to %d", field, (int)max));
  lua_pop(L, 1);
  return v;
}

/* Pushes nil, message, code for a child that ended on a limit or broke. */
static int limit_failure(lua_State *L, const char *name, int status, bool timed_out)
{
  if (timed_out || (WIFSIGNALED(status) && (WTERMSIG(status) == SIGXCPU || WTERMSIG(status) == SIGKILL)))
    return lb_fail(L, "catalogue_limit", "%s: time budget exhausted (endless loop?)", name);
  if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_INSTRUCTIONS)
    return lb_fail(L, "catalogue_limit", "%s: instruction budget exhausted (endless loop?)", name);
  if ((WIFEXITED(status) && WEXITSTATUS(status) == EXIT_MEMORY) ||
      (WIFSIGNALED(status) && (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGABRT)))
    return lb_fail(L, "catalogue_limit", "%s: memory budget exhausted", name);
  return lb_fail(L, "catalogue_limit", "%s: the catalogue sandbox ended unexpectedly (status %d)", name,
                 status);
}

/* core.run_catalogue(source, name [, {instructions=, memory_kb=, seconds=}])
 * -> data text of the catalogue table, or nil, message, code
 * ("invalid_catalogue" for the file's own errors, "catalogue_limit" when
 * a budget ran out). */
static int l_run_catalogue(lua_State *L)
{
  size_t len;
  const char *source = luaL_checklstring(L, 1, &len);
  const char *name = luaL_checkstring(L, 2);
  limits lim;
  lb_text in = { NULL, 0, 0 };
  int fds[2], status = 0;
  bool finished;
  pid_t pid;
  lua_settop(L, 3);
  if (lua_isnil(L, 3)) {
    lua_newtable(L);
    lua_replace(L, 3);
  }
  lb_check_table(L, 3, "limits");
  lim.instructions = check_limit(L, 3, "instructions", 50000000, 10000000000LL);
  lim.memory_kb = check_limit(L, 3, "memory_kb", 256 * 1024, 16 * 1024 * 1024);
  lim.seconds = check_limit(L, 3, "seconds", 5, 3600);
  if (pipe(fds) != 0) return lb_fail(L, "catalogue_limit", "%s: pipe: %s", name, strerror(errno));
  pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return lb_fail(L, "catalogue_limit", "%s: fork: %s", name, strerror(errno));
  }
  if (pid == 0) {
    close(fds[0]);
    run_child(fds[1], source, len, name, &lim);
  }
  close(fds[1]);
  finished = read_answer(fds[0], &in, now_ms() + lim.seconds * 2000 + 1000);
  close(fds[0]);
  if (!finished) kill(pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (!finished || !WIFEXITED(status) || WEXITSTATUS(status) != EXIT_DONE || in.len == 0) {
    free(in.data);
    return limit_failure(L, name, status, !finished);
  }
  {
    bool refused = in.data[0] == 'E';   /* 'E' message, or 'D' data */
    lua_pushlstring(L, in.data + 1, in.len - 1);
    free(in.data);
    return refused ? lb_push_failure(L, 0, "invalid_catalogue") : 1;
  }
}

static const luaL_Reg sandbox_functions[] = {
  { "run_catalogue", l_run_catalogue },
  { NULL, NULL }
};

void lb_open_sandbox(lua_State *L, int module, int mt)
{
  lb_setfuncs(L, module, mt, sandbox_functions);
}
