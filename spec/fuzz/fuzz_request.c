/*
 * fuzz_request.c -- libFuzzer target: the gateway's request checks
 * (lua/licensor/gateway/request.lua) on any body, through a Lua 5.4 state
 * with licensor.core linked in.  The Lua half (request_check.lua) raises
 * only for errors that are not refusals; those abort here.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int luaopen_licensor_core(lua_State *L);

/* The harness's one Lua state and the registry slot of the check. */
static lua_State *harness;
static int check_ref;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  harness = luaL_newstate();
  luaL_openlibs(harness);
  luaL_getsubtable(harness, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(harness, luaopen_licensor_core);
  lua_setfield(harness, -2, "licensor.core");
  lua_pop(harness, 1);
  if (luaL_dostring(harness, "package.path = 'lua/?.lua;lua/?/init.lua;spec/fuzz/?.lua;' .. package.path "
                             "return (require 'request_check')") != 0) {
    fprintf(stderr, "fuzz_request: %s\n", lua_tostring(harness, -1));
    abort();
  }
  check_ref = luaL_ref(harness, LUA_REGISTRYINDEX);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  lua_rawgeti(harness, LUA_REGISTRYINDEX, check_ref);
  lua_pushlstring(harness, (const char *)data, size);
  if (lua_pcall(harness, 1, 0, 0) != 0) {
    fprintf(stderr, "fuzz_request: %s\n", lua_tostring(harness, -1));
    abort();
  }
  lua_settop(harness, 0);
  return 0;
}
