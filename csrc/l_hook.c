/*
 * l_hook.c -- core.run_hook: a policy hook runs in the calling Lua state
 * (in-process, in the gateway's workers too) behind an instruction budget,
 * a memory budget and a time limit that its code cannot catch or outgrow.
 *
 *   core.run_hook(fn, arg [, limits]) -> true, result
 *                                     |  false, reason, message
 *   core.hook_runner([limits]) -> run, where run(fn, arg) answers as
 *                                 core.run_hook(fn, arg, limits)
 *
 * reason is "instructions", "memory", "time" or "error".  limits = {
 * instructions = N (default 1,000,000), memory = BYTES (default 8 MiB),
 * time_ms = MS (default 1,000, at most 60,000), string_index = TABLE }.
 * Only fn's first result is passed back (a hook answers one
 * value); an error is reported as its message when it is a string (one
 * line, at most 200 bytes) and as its type otherwise ("error object is a
 * TABLE"): no metamethod of the error object is ever called.
 *
 * How each budget is kept, on both VMs alike:
 *  - instructions: a count hook that fires every HOOK_TICK instructions
 *    and raises once the budget is spent; from then on it raises at every
 *    instruction, so code that caught the error (a hook's pcall, the
 *    host's code) cannot go on.  The hook set before (busted's,
 *    luacov's) is saved and set back afterwards.  On LuaJIT, compiled code
 *    calls no hooks: callers must jit.off() a hook's function (and every
 *    Lua function it reaches: jit.off(true, true) at the top of a helper
 *    module) before running it, or a warmed-up loop escapes the budget
 *    (and a memory failure inside compiled code may crash LuaJIT).
 *  - memory: the state's allocator is wrapped for the call and set back
 *    afterwards (lua_setallocf works on Lua 5.4 and on luajit2 in GC64
 *    mode).  The budget counts every byte the call allocates (a block's
 *    growth too); frees give nothing back.  A net count would credit the
 *    host's garbage the collector happens to free during the call, so
 *    what a hook may hold would depend on the host's heap, not on the
 *    hook: counted this way the answer is the hook's alone.  On Lua 5.4 an
 *    allocation past the budget fails (a memory error), and once spent
 *    every further growth fails; on LuaJIT the count hook checks the
 *    growth at each tick and the allocator refuses large requests past
 *    the budget, small ones only well past it (see HOOK_TICK_MEMORY for
 *    why).  So `s = s .. s` and ("x"):rep(2^40) end in "memory" (or in
 *    rep's own size check) with the heap never more than the budget
 *    above where it was (LuaJIT: twice the budget and 1 MiB).
 *  - time: the instruction budget counts Lua instructions, not the work
 *    done inside the C functions they call, so a loop of cheap-looking
 *    calls on big operands (s:upper() on megabytes, table.insert(t, 1, v)
 *    on a long array) could run for minutes within it.  The count hook
 *    reads the monotonic clock at each tick (and run_hook once at the
 *    start; nothing else reads it, so a call that ends before its first
 *    tick pays one clock read) and once the call has run longer than
 *    time_ms it is spent, with reason "time".  This is a backstop for
 *    pathological hooks, which a normal one (microseconds) never meets,
 *    not a way to make results deterministic: where a hook near the
 *    limit stops depends on the machine and its load.  A single C call
 *    is never interrupted, and the clock is read only at ticks, so a
 *    call can overrun time_ms by one tick's worth of C calls (tens of
 *    calls: table.sort or table.concat of a 200,000-slot array in a
 *    loop overran 100 ms by about 0.6 s).  The collector's work during
 *    the call counts too, and it grows with the host's heap: hence a
 *    default of a second, far above any sane hook.  Keeping each call short is
 *    the caller's sandbox's part (its pattern guards, string and table
 *    sizes under the memory budget).  A call that returns before the
 *    tick that would have seen the limit answers as usual.  On LuaJIT,
 *    as for the instructions, it holds only for interpreted code.
 *  - call depth: deeper than HOOK_MAX_DEPTH levels below the hook raises
 *    "stack overflow" (reason "error"), checked at each tick, so a deep
 *    recursion ends the same way on both VMs and well before it could use
 *    the memory budget on Lua 5.4's large stack frames.
 *  - limits.string_index: the string metatable's __index is set to it for
 *    the call, so ("x"):rep(...) reaches only the sandbox's string table.
 *
 * A budget spent is the reason reported, whatever became of the error
 * it raised.  A yield inside fn fails as "error" (lua_pcall is not a
 * yieldable call).
 *
 * Nesting: run_hook called while a run_hook is active (a hook cannot
 * reach it, but host code run from one might) runs under the tighter of
 * the two instruction budgets, and what it used is charged to the outer
 * call (at least HOOK_TICK each time, since the outer count restarts when
 * its hook is set back); its allocations count in both memory budgets;
 * its time limit is the smaller of its own and what is left of the outer
 * call's, and if that ran out, so did the outer call's.  If the outer
 * budget is spent, the nested call raises, so the outer call ends with
 * that reason: nesting never escapes an outer budget.
 *
 * The state of a call lives in a struct on the C stack, reached from the
 * hook and the allocator through the allocator's user data; nothing is
 * kept once run_hook returns.
 */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime */
#include "lbind.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Instructions between two runs of the count hook: often enough that
 * the time backstop stops a loop of slow library calls (a sort of 200,000
 * entries) within a second, rarely enough to cost a long hook under 10%. */
#define HOOK_TICK 100
/* Call levels below the hook's function a hook may use. */
#define HOOK_MAX_DEPTH 200
/* The longest error message reported, in bytes. */
#define HOOK_MESSAGE_MAX 200

#define HOOK_DEFAULT_INSTRUCTIONS 1000000LL
#define HOOK_MAX_INSTRUCTIONS 1000000000LL
#define HOOK_DEFAULT_MEMORY (8LL << 20)
#define HOOK_MAX_MEMORY (1LL << 30)
#define HOOK_DEFAULT_TIME_MS 1000LL
#define HOOK_MAX_TIME_MS 60000LL
#define HOOK_NS_PER_MS 1000000LL

/* How the memory budget is kept differs by VM:
 *  - Lua 5.4 handles a failed allocation anywhere, and collects all
 *    garbage and asks once more before it raises (an emergency
 *    collection): the allocator refuses growth past the budget, and the
 *    second refusal of the same request is final (a collection gives
 *    no budget back: the count is of bytes allocated).
 *  - LuaJIT (luajit2 2.1-20230119, before upstream's fixes of OOM inside
 *    traces, LuaJIT#1247) can crash when an allocation fails while
 *    compiled code runs (a GC step or a trace exit raising the memory
 *    error): in a stress of hooks left JIT-compiled it did, every run;
 *    with the hooks' functions jit.off() it never did.  So the count
 *    hook, which runs only in the interpreter, checks the count at each
 *    tick and raises a plain error past the budget.  The allocator refuses a
 *    large request (HOOK_LARGE or more: a string buffer, a table's array
 *    doubling, how a heap runs away inside one tick) past the budget,
 *    and small ones only past twice the budget and HOOK_BACKSTOP, which
 *    small allocations in one tick of interpreted code never reach.
 *    Every Lua function that may run during a call (the hook's, and the
 *    host's helpers it reaches) must therefore run with the JIT off. */
#define HOOK_LARGE ((size_t)64 << 10)   /* bytes */
#define HOOK_BACKSTOP (1LL << 20)       /* bytes */
#if LUA_VERSION_NUM >= 502
#define HOOK_TICK_MEMORY 0
#else
#define HOOK_TICK_MEMORY 1
#endif

/* What ended a call early (the reason reported). */
enum { SPENT_NONE = 0, SPENT_INSTRUCTIONS, SPENT_MEMORY, SPENT_TIME };

/* One run_hook call: its budgets and what it replaced. */
typedef struct {
  lua_Alloc alloc;        /* the allocator in place before the call */
  void *alloc_ud;
  long long instructions; /* the budget, as given (for messages) */
  long long left;         /* instructions left, counted at each tick */
  long long memory;       /* the budget in bytes */
  long long allocated;    /* bytes allocated during the call (frees not counted) */
  long long time_ms;      /* the time limit, as given or cut to the outer call's rest (for messages) */
  long long deadline;     /* monotonic_ns() past which the call is spent */
  int tick;               /* the count the hook is set with */
  int depth_limit;        /* lua_getstack level that must not exist; 0 until the first tick */
  int spent;              /* SPENT_* */
  int refusals;           /* allocations refused */
  const void *refused_ptr; /* the last refused request (size 0: a growth came after it) */
  size_t refused_size;
} hook_call;

static void *hook_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
  hook_call *c = ud;
  size_t old = ptr != NULL ? osize : 0;   /* osize is a type tag for a new block */
  void *p;
  if (nsize > old) {
    /* (LuaJIT: small requests fail only past the backstop.) */
    long long cap = !HOOK_TICK_MEMORY || nsize - old >= HOOK_LARGE ? c->memory
                                                                   : 2 * c->memory + HOOK_BACKSTOP;
    bool retry = c->refused_size != 0 && c->refused_ptr == ptr && c->refused_size == nsize;
    /* Lua 5.4: a refusal the same request does not follow (the retry
     * after the emergency collection) was final. */
    if (!HOOK_TICK_MEMORY && c->refused_size != 0 && !retry && c->spent == SPENT_NONE)
      c->spent = SPENT_MEMORY;
    if ((!HOOK_TICK_MEMORY && c->spent == SPENT_MEMORY) || nsize - old > (size_t)cap ||
        c->allocated + (long long)(nsize - old) > cap) {
      c->refusals++;
      if (c->spent == SPENT_NONE && (HOOK_TICK_MEMORY || retry)) c->spent = SPENT_MEMORY;
      c->refused_ptr = ptr;
      c->refused_size = nsize;
      return NULL;
    }
  }
  p = c->alloc(c->alloc_ud, ptr, osize, nsize);
  if (p != NULL && nsize > old) {
    c->allocated += (long long)(nsize - old);
    c->refused_size = 0;
  }
  return p;
}

/* The monotonic clock, in nanoseconds (vDSO on Linux: no system call). */
static long long monotonic_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec;
}

/* The call whose budgets are in force, or NULL. */
static hook_call *active_call(lua_State *L)
{
  void *ud = NULL;
  return lua_getallocf(L, &ud) == hook_alloc ? ud : NULL;
}

/* Pushes the message of a spent budget. */
static void push_spent(lua_State *L, const hook_call *c)
{
  char buf[96];
  if (c->spent == SPENT_MEMORY)
    snprintf(buf, sizeof buf, "memory budget of %lld bytes exhausted", c->memory);
  else if (c->spent == SPENT_TIME)
    snprintf(buf, sizeof buf, "time limit of %lld ms exhausted", c->time_ms);
  else
    snprintf(buf, sizeof buf, "instruction budget of %lld exhausted", c->instructions);
  lua_pushstring(L, buf);
}

/* Raises the error of a spent budget (never returns). */
static int raise_spent(lua_State *L, const hook_call *c)
{
  push_spent(L, c);
  return lua_error(L);
}

/* The number of levels on L's stack (lua_getstack is linear in the level:
 * doubling then halving keeps this O(depth log depth), once per call). */
static int stack_depth(lua_State *L)
{
  lua_Debug ar;
  int low = 0, high = 1;
  while (lua_getstack(L, high, &ar)) {
    low = high;
    if (high > (1 << 28)) return high;
    high *= 2;
  }
  while (high - low > 1) {   /* level low exists, level high does not */
    int mid = low + (high - low) / 2;
    if (lua_getstack(L, mid, &ar)) low = mid;
    else high = mid;
  }
  return low + 1;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
  lua_Debug level;
  hook_call *c = active_call(L);
  (void)ar;
  if (c == NULL) return;
  if (HOOK_TICK_MEMORY && c->spent == SPENT_NONE && c->allocated > c->memory) c->spent = SPENT_MEMORY;
  if (c->spent == SPENT_NONE) {
    c->left -= c->tick;
    if (c->left <= 0) c->spent = SPENT_INSTRUCTIONS;
  }
  if (c->spent == SPENT_NONE && monotonic_ns() > c->deadline) c->spent = SPENT_TIME;
  if (c->spent != SPENT_NONE) {
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);   /* every instruction raises from now on */
    raise_spent(L, c);
    return;
  }
  /* The first tick sees the hook's function at most a few levels deep:
   * the limit is counted from there. */
  if (c->depth_limit == 0) c->depth_limit = stack_depth(L) + HOOK_MAX_DEPTH;
  else if (lua_getstack(L, c->depth_limit, &level)) {
    lua_pushfstring(L, "stack overflow (calls nested deeper than %d levels)", HOOK_MAX_DEPTH);
    lua_error(L);
    return;
  }
  if (c->left < c->tick) {
    c->tick = (int)c->left;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, c->tick);
  }
}

/* limits[field]: a whole number from 1 to max, or fallback when absent. */
static long long read_limit(lua_State *L, int limits, const char *field, long long fallback,
                            long long max)
{
  long long v = fallback;
  if (limits == 0) return v;
  lua_getfield(L, limits, field);
  if (!lua_isnil(L, -1) && (!lsr_tointeger_exact(L, -1, &v) || v < 1 || v > max)) {
    char buf[96];
    snprintf(buf, sizeof buf, "limits.%s must be a whole number from 1 to %lld", field, max);
    luaL_argerror(L, limits, buf);
  }
  lua_pop(L, 1);
  return v;
}

/* Pushes the message of the error object at idx: a string as one line of
 * at most HOOK_MESSAGE_MAX bytes, anything else by its type alone. */
static void push_error_message(lua_State *L, int idx)
{
  char buf[HOOK_MESSAGE_MAX + 1];
  size_t len, n = 0;
  const char *s;
  if (lua_type(L, idx) != LUA_TSTRING) {
    const char *type = lua_typename(L, lua_type(L, idx));
    size_t i;
    for (i = 0; i < sizeof buf - 1 && type[i] != '\0'; i++)
      buf[i] = (char)(type[i] >= 'a' && type[i] <= 'z' ? type[i] - 'a' + 'A' : type[i]);
    buf[i] = '\0';
    lua_pushfstring(L, "error object is a %s", buf);
    return;
  }
  s = lua_tolstring(L, idx, &len);
  if (len > HOOK_MESSAGE_MAX) {
    len = HOOK_MESSAGE_MAX;
    while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80) len--;   /* whole UTF-8 characters */
  }
  for (n = 0; n < len; n++) {
    unsigned char ch = (unsigned char)s[n];
    buf[n] = (char)(ch < 0x20 || ch == 0x7F ? ' ' : ch);   /* one line */
  }
  lua_pushlstring(L, buf, n);
}

/* The budgets of one call, as read from a limits table. */
typedef struct {
  long long instructions;
  long long memory;       /* bytes */
  long long time_ms;
} hook_limits;

/* Reads the limits table, argument `arg` (none when it is nil), into *l,
 * and pushes limits.string_index (or nil). */
static void read_limits(lua_State *L, int arg, hook_limits *l)
{
  int limits = 0;
  if (!lua_isnil(L, arg)) {
    luaL_checktype(L, arg, LUA_TTABLE);
    limits = arg;
  }
  l->instructions = read_limit(L, limits, "instructions", HOOK_DEFAULT_INSTRUCTIONS, HOOK_MAX_INSTRUCTIONS);
  l->memory = read_limit(L, limits, "memory", HOOK_DEFAULT_MEMORY, HOOK_MAX_MEMORY);
  l->time_ms = read_limit(L, limits, "time_ms", HOOK_DEFAULT_TIME_MS, HOOK_MAX_TIME_MS);
  if (limits != 0) lua_getfield(L, limits, "string_index");
  else lua_pushnil(L);
  if (!lua_isnil(L, -1) && !lua_istable(L, -1)) luaL_argerror(L, arg, "limits.string_index must be a table");
}

/* The call itself, on the stack fn (1), arg (2), the limits (3, unused
 * here) and string_index or nil (4), under the budgets given. */
static int run_call(lua_State *L, const hook_limits *limits)
{
  hook_call c, *outer;
  lua_Hook old_hook;
  int old_mask, old_count, status, string_mt = 0;
  long long outer_start = 0, now = monotonic_ns();   /* the call's one clock read outside ticks */
  luaL_checkstack(L, 8, "run_hook");
  memset(&c, 0, sizeof c);
  c.instructions = limits->instructions;
  c.memory = limits->memory;
  c.time_ms = limits->time_ms;
  c.deadline = now + limits->time_ms * HOOK_NS_PER_MS;

  outer = active_call(L);
  if (outer != NULL) {
    /* The outer call's count restarts when its hook is set back: charge
     * it a whole tick for the time it ran since its last one. */
    if (outer->spent == SPENT_NONE) {
      outer->left -= outer->tick;
      if (outer->left <= 0) outer->spent = SPENT_INSTRUCTIONS;
    }
    if (outer->spent == SPENT_NONE && now > outer->deadline) outer->spent = SPENT_TIME;
    if (outer->spent != SPENT_NONE) return raise_spent(L, outer);
    if (c.instructions > outer->left) c.instructions = outer->left;
    outer_start = c.instructions;
    if (c.deadline > outer->deadline) {   /* what is left of the outer call's, rounded up */
      c.deadline = outer->deadline;
      c.time_ms = (c.deadline - now + HOOK_NS_PER_MS - 1) / HOOK_NS_PER_MS;
    }
  }
  c.left = c.instructions;
  c.tick = c.left < HOOK_TICK ? (int)c.left : HOOK_TICK;

  /* The string metatable's __index is swapped first: a memory error
   * there happens before anything else was changed.  Stack: mt (5), the
   * key "__index" (6), the __index to set back (7); the key is pushed
   * once (each push of a literal looks it up again). */
  if (!lua_isnil(L, 4)) {
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
      lua_replace(L, -2);
      string_mt = lua_gettop(L);
      lua_pushliteral(L, "__index");
      lua_pushvalue(L, -1);
      lua_rawget(L, string_mt);
      lua_pushvalue(L, string_mt + 1);
      lua_pushvalue(L, 4);
      lua_rawset(L, string_mt);
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);

  /* From here to the restoring nothing may raise outside lua_pcall. */
  old_hook = lua_gethook(L);
  old_mask = lua_gethookmask(L);
  old_count = lua_gethookcount(L);
  c.alloc = lua_getallocf(L, &c.alloc_ud);
  lua_setallocf(L, hook_alloc, &c);
  lua_sethook(L, count_hook, LUA_MASKCOUNT, c.tick);
  status = lua_pcall(L, 1, 1, 0);
  lua_sethook(L, old_hook, old_mask, old_count);
  lua_setallocf(L, c.alloc, c.alloc_ud);

  if (string_mt != 0) {   /* stack: ... mt key old_index result */
    lua_pushvalue(L, string_mt + 1);
    lua_pushvalue(L, string_mt + 2);
    lua_rawset(L, string_mt);   /* the key is there: no allocation */
  }
  /* Past the budget in the last tick (LuaJIT's count), or refused last
   * with no retry (Lua 5.4). */
  if (c.spent == SPENT_NONE && (c.allocated > c.memory || (!HOOK_TICK_MEMORY && c.refused_size != 0)))
    c.spent = SPENT_MEMORY;
  if (outer != NULL) {
    outer->left -= outer_start - c.left + c.tick;
    if (outer->spent == SPENT_NONE && outer->left <= 0) outer->spent = SPENT_INSTRUCTIONS;
    if (outer->spent == SPENT_NONE && outer->allocated > outer->memory) outer->spent = SPENT_MEMORY;
    /* The nested call's deadline was the outer call's: that ran out too. */
    if (outer->spent == SPENT_NONE && c.spent == SPENT_TIME && c.deadline == outer->deadline)
      outer->spent = SPENT_TIME;
    if (outer->spent != SPENT_NONE) return raise_spent(L, outer);
  }
  if (status == 0 && c.spent == SPENT_NONE) {
    lua_pushboolean(L, 1);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 0);
  if (c.spent != SPENT_NONE) {
    if (c.spent == SPENT_MEMORY) lua_pushliteral(L, "memory");
    else if (c.spent == SPENT_TIME) lua_pushliteral(L, "time");
    else lua_pushliteral(L, "instructions");
    push_spent(L, &c);
  } else if (status == LUA_ERRMEM) {
    lua_pushliteral(L, "memory");
    if (c.refusals > 0) {   /* refused once, when Lua could not collect first */
      c.spent = SPENT_MEMORY;
      push_spent(L, &c);
    } else {
      lua_pushliteral(L, "not enough memory");
    }
  } else {
    lua_pushliteral(L, "error");
    push_error_message(L, -3);
  }
  return 3;
}

/* core.run_hook(fn, arg [, limits]): see the top of the file. */
static int l_run_hook(lua_State *L)
{
  hook_limits limits;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 3);
  read_limits(L, 3, &limits);   /* 4: string_index */
  return run_call(L, &limits);
}

/* run(fn, arg), made by core.hook_runner: the upvalues are the limits,
 * read once: the budgets (a full userdata holding a hook_limits) and
 * string_index. */
static int l_run_prepared(lua_State *L)
{
  const hook_limits *limits = lua_touserdata(L, lua_upvalueindex(1));
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_pushnil(L);                               /* 3: no limits table */
  lua_pushvalue(L, lua_upvalueindex(2));        /* 4: string_index */
  return run_call(L, limits);
}

/* core.hook_runner([limits]) -> run: run(fn, arg) answers as
 * core.run_hook(fn, arg, limits) does, with the limits checked and read
 * once here (a policy's are fixed), which saves a hot caller four
 * table reads per call. */
static int l_hook_runner(lua_State *L)
{
  hook_limits limits, *saved;
  lua_settop(L, 1);
  read_limits(L, 1, &limits);                   /* 2: string_index */
  saved = lua_newuserdata(L, sizeof *saved);    /* a plain block: no metatable reaches it */
  *saved = limits;
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, l_run_prepared, 2);
  return 1;
}

static const luaL_Reg hook_functions[] = {
  { "run_hook", l_run_hook },
  { "hook_runner", l_hook_runner },
  { NULL, NULL }
};

void lb_open_hook(lua_State *L, int module, int mt)
{
  lb_setfuncs(L, module, mt, hook_functions);
}
