/*
 * l_ffi.c -- what the LuaJIT FFI path (lua/licensor/ffi.lua) needs from
 * the binding: a catalogue's compiled pointer and build records, and the
 * layout of lsr_ffi_query as this compiler laid it out, so a spec can check
 * ffi.lua's cdef against it field by field.
 */
#include "lbind.h"

#include "ffi.h"

#include <stddef.h>

/* core._internals(cat) -> compiled catalogue pointer, build records. */
static int l_internals(lua_State *L)
{
  catalogue_box *box = luaL_checkudata(L, 1, LB_CATALOGUE_MT);
  if (box->cat == NULL) return 0;
  lua_pushlightuserdata(L, box->cat);
  lsr_getuservalue(L, 1);
  return 2;
}

#define QUERY_FIELD(name) { #name, offsetof(lsr_ffi_query, name) }

/* core._ffi_layout() -> {size=, offsets={field=offset}} of lsr_ffi_query. */
static int l_ffi_layout(lua_State *L)
{
  static const struct { const char *name; size_t offset; } fields[] = {
    QUERY_FIELD(product), QUERY_FIELD(edition), QUERY_FIELD(start), QUERY_FIELD(ms_expires),
    QUERY_FIELD(disabled), QUERY_FIELD(lease_ended), QUERY_FIELD(on), QUERY_FIELD(level),
    QUERY_FIELD(trial_days), QUERY_FIELD(version_lock), QUERY_FIELD(product_len),
    QUERY_FIELD(edition_len), QUERY_FIELD(start_len), QUERY_FIELD(ms_expires_len),
    QUERY_FIELD(disabled_len), QUERY_FIELD(lease_ended_len), QUERY_FIELD(on_len),
    QUERY_FIELD(kind),
  };
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)sizeof(lsr_ffi_query));
  lua_setfield(L, -2, "size");
  lua_createtable(L, 0, (int)(sizeof fields / sizeof *fields));
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
    lua_pushinteger(L, (lua_Integer)fields[i].offset);
    lua_setfield(L, -2, fields[i].name);
  }
  lua_setfield(L, -2, "offsets");
  return 1;
}

static const luaL_Reg ffi_functions[] = {
  { "_internals", l_internals },
  { "_ffi_layout", l_ffi_layout },
  { NULL, NULL }
};

void lb_open_ffi(lua_State *L, int module, int mt)
{
  lb_setfuncs(L, module, mt, ffi_functions);
}
