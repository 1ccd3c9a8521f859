/*
 * compat.h -- the few Lua C API differences between Lua 5.4 and LuaJIT 2.1
 * (Lua 5.1 API), hidden behind lsr_ prefixed shims keyed on LUA_VERSION_NUM.
 * Only the binding includes this file.
 */
#ifndef LICENSOR_COMPAT_H
#define LICENSOR_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM >= 502
#define lsr_rawlen(L, i) ((size_t)lua_rawlen((L), (i)))
#else
#define lsr_rawlen(L, i) ((size_t)lua_objlen((L), (i)))
#endif

#if LUA_VERSION_NUM >= 504
/* A userdata with one user value slot (holds the catalogue's Lua side). */
#define lsr_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 1)
#define lsr_setuservalue(L, i) ((void)lua_setiuservalue((L), (i), 1))
#define lsr_getuservalue(L, i) ((void)lua_getiuservalue((L), (i), 1))
#elif LUA_VERSION_NUM >= 502
#define lsr_newuserdata(L, sz) lua_newuserdata((L), (sz))
#define lsr_setuservalue(L, i) lua_setuservalue((L), (i))
#define lsr_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))
#else
/* Lua 5.1 / LuaJIT: a userdata's environment table plays the user value. */
#define lsr_newuserdata(L, sz) lua_newuserdata((L), (sz))
#define lsr_setuservalue(L, i) ((void)lua_setfenv((L), (i)))
#define lsr_getuservalue(L, i) lua_getfenv((L), (i))
#endif

#if LUA_VERSION_NUM >= 502
#define lsr_absindex(L, i) lua_absindex((L), (i))
#else
#define lsr_absindex(L, i) \
  (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
#endif

/* rawget/rawgeti that return the type of the pushed value on every VM. */
#if LUA_VERSION_NUM >= 503
#define lsr_rawget(L, idx) lua_rawget((L), (idx))
#define lsr_rawgeti(L, idx, n) lua_rawgeti((L), (idx), (n))
#else
static inline int lsr_rawget(lua_State *L, int idx)
{
  lua_rawget(L, idx);
  return lua_type(L, -1);
}

static inline int lsr_rawgeti(lua_State *L, int idx, int n)
{
  lua_rawgeti(L, idx, n);
  return lua_type(L, -1);
}
#endif

/* True if the value at idx is a number holding an exact integer in the
 * range every VM represents exactly (|n| < 2^53); stores it in *out. */
static inline int lsr_tointeger_exact(lua_State *L, int idx, long long *out)
{
  if (lua_type(L, idx) != LUA_TNUMBER) return 0;
#if LUA_VERSION_NUM >= 503
  {
    /* One call: integers, and floats with an integral value, convert. */
    int ok;
    lua_Integer i = lua_tointegerx(L, idx, &ok);
    if (!ok || i <= -9007199254740992LL || i >= 9007199254740992LL) return 0;
    *out = (long long)i;
    return 1;
  }
#else
  lua_Number n = lua_tonumber(L, idx);
  /* NaN fails both comparisons; infinities fail the range check. */
  if (!(n > -9007199254740992.0 && n < 9007199254740992.0)) return 0;
  if ((lua_Number)(long long)n != n) return 0;
  *out = (long long)n;
  return 1;
#endif
}

#endif
