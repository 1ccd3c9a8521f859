/*
 * licensor.c -- the entry point of module licensor.core: creates the
 * catalogue and failure metatables and the module table, and lets each
 * binding area register itself (the LuaSocket way).  Which file holds
 * what:
 *
 *   l_common.c     failure answers, dates, shared upvalues (lbind.h)
 *   l_license.c    reading license tables; licensor.term, renew, transfer
 *   l_catalogue.c  the catalogue's queries, listing and life cycle
 *   l_fraud.c      cat:migration, cat:admission, cat:ladder (R9-R11)
 *   l_compile.c    licensor.catalogue(t)
 *   l_time.c       licensor.day, date, today; core.monotonic_us, monotonic_ms, epoch_ms
 *   l_keys.c       core.new_key, core.normalise_key
 *   l_store.c      core.open: the SQLite connection under licensor.store
 *   l_pg.c         core.open_pg: the PostgreSQL connection under licensor.store
 *   l_process.c    core.process: child process groups that always stop
 *   l_data.c       core.read_data, core.write_data: catalogue data as text
 *   l_sandbox.c    core.run_catalogue: catalogue files in a walled child
 *   l_hook.c       core.run_hook: policy hooks in-process, under budgets
 *   l_certificate.c the offline verifier: certificates, notices, receipts
 *   l_crypto.c     signing keys, signatures, HMAC, SHA-256, random hex
 *   l_files.c      core.write_file: the careful writer under licensor.files
 *   l_ffi.c        what lua/licensor/ffi.lua needs
 *   l_policy.c     cat:resolve_policy: a license's own policy values
 *
 * The rule engine itself (date.c, catalogue.c, rules.c, pricing.c,
 * renewal.c, fraud.c, keys.c, store.c, pg.c, process.c) never includes lua.h,
 * nor does the offline verifier that vendors link (lsrv.c, lsrv_machine.c).
 */
#include "lbind.h"

#include "export.h"

typedef void (*area_open)(lua_State *L, int module, int mt);

static const area_open areas[] = {
  lb_open_catalogue, lb_open_fraud, lb_open_compile, lb_open_license, lb_open_time,
  lb_open_keys, lb_open_ffi, lb_open_store, lb_open_pg, lb_open_process, lb_open_data, lb_open_sandbox,
  lb_open_certificate, lb_open_crypto, lb_open_files,
  lb_open_hook,
  lb_open_policy,
};

/* tostring(failure) -> "code: message" (so an uncaught one still reads). */
static int failure_tostring(lua_State *L)
{
  lua_getfield(L, 1, "code");
  lua_getfield(L, 1, "message");
  lua_pushfstring(L, "%s: %s", luaL_optstring(L, -2, "failure"), luaL_optstring(L, -1, ""));
  return 1;
}

LSR_EXPORT int luaopen_licensor_core(lua_State *L);

LSR_EXPORT int luaopen_licensor_core(lua_State *L)
{
  int mt, module;
  luaL_newmetatable(L, LB_CATALOGUE_MT);
  mt = lua_gettop(L);
  lua_pushliteral(L, LB_CATALOGUE_MT);
  lua_setfield(L, mt, "__name");
  lua_newtable(L);   /* the methods, also exported so the Lua layer can add its own */
  lua_setfield(L, mt, "__index");
  lua_newtable(L);
  module = lua_gettop(L);
  for (size_t i = 0; i < sizeof areas / sizeof *areas; i++) areas[i](L, module, mt);
  lua_getfield(L, mt, "__index");
  lua_setfield(L, module, "catalogue_methods");
  luaL_newmetatable(L, LB_FAILURE_MT);
  lua_pushcfunction(L, failure_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_setfield(L, module, "Failure");
  lua_pushliteral(L, "0.2.0");
  lua_setfield(L, module, "_VERSION");
  return 1;
}
