/*
 * lbind.h -- what the binding files (l_*.c) share, and only they: the
 * upvalue layout, the failure helpers, date reading, and each area's
 * registration function.  The plain-C core never includes this file.
 *
 * Conventions, the same in every binding file:
 *  - Public queries answer data problems io.open style, `nil, message,
 *    code` (`false, message, code` for yes/no questions): see lb_fail and
 *    lb_push_failure.  Programming errors (wrong argument types) raise
 *    through luaL_argerror.
 *  - Internal objects (the store connection under licensor.store) raise
 *    failure objects instead, `{code=, message=}` with the metatable
 *    LB_FAILURE_MT, which the Lua layer catches at its public boundary and
 *    turns into `nil, message, code` (see lua/licensor/failure.lua).
 */
#ifndef LICENSOR_LBIND_H
#define LICENSOR_LBIND_H

#include "compat.h"

#include "catalogue.h"
#include "date.h"
#include "rules.h"

#include <stdbool.h>

#if defined(__GNUC__)
#define LB_PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define LB_PRINTF_LIKE(fmt, args)
#endif

#define LB_CATALOGUE_MT "licensor.catalogue"
#define LB_STORE_MT "licensor.db"
#define LB_FAILURE_MT "licensor.failure"
#define LB_POLICY_MT "licensor.policy"
#define LB_ERRLEN 512

/* Upvalues shared by every function of the catalogue and license areas:
 * the catalogue metatable and the interned key strings the hot path reads
 * with lua_rawget. */
enum {
  UV_MT = 1,
  UV_PRODUCT, UV_KIND, UV_EDITION, UV_LEVEL, UV_START, UV_MS_EXPIRES,
  UV_MS_START, UV_DISABLED, UV_LEASE_ENDED, UV_TRIAL_DAYS, UV_VERSION_LOCK,
  UV_ADDONS, UV_FAILOVER, UV_KEY, UV_OWNER, UV_TRANSFER_CONSENT,
  UV_PERPETUAL, UV_LEASE, UV_TRIAL, UV_UNLIMITED, UV_POLICY, UV_POLICY_OVERRIDE,
  UV_COUNT = UV_POLICY_OVERRIDE
};

#define UV(n) lua_upvalueindex(n)

/* The field name of upvalue uv (UV_PRODUCT and after). */
const char *lb_upvalue_name(int uv);

/* The catalogue userdata: the compiled catalogue, NULL once closed.  Its
 * user value holds the shared build records. */
typedef struct {
  lsr_catalogue *cat;
} catalogue_box;

/* ---- failures (l_common.c) ---- */

/* With the message on top: pushes nil (or false when `first`), message,
 * code and returns 3. */
int lb_push_failure(lua_State *L, int first, const char *code);
/* nil, formatted message, code. */
int lb_fail(lua_State *L, const char *code, const char *fmt, ...) LB_PRINTF_LIKE(3, 4);
/* Raises a failure object {code=, message=} (internal objects only);
 * never returns (written `return lb_raise(...)` for the compiler). */
int lb_raise(lua_State *L, const char *code, const char *fmt, ...) LB_PRINTF_LIKE(3, 4);

/* ---- values (l_common.c) ---- */

void lb_push_date(lua_State *L, lsr_day day);
const char *lb_date_text(lsr_day day, char *buf);
void lb_set_string(lua_State *L, const char *field, const char *value);
void lb_set_bool(lua_State *L, const char *field, bool value);
void lb_check_table(lua_State *L, int arg, const char *what);
/* Checks self (argument 1) is an open catalogue and fixes the stack at
 * nargs arguments, so absent optional arguments read as nil. */
lsr_catalogue *lb_check_catalogue(lua_State *L, int nargs);

enum { LB_DATE_OK = 0, LB_DATE_ABSENT, LB_DATE_BAD };
/* Reads a date at stack index idx (nil is LB_DATE_ABSENT). */
int lb_read_date(lua_State *L, int idx, lsr_day *out);
/* nil, "field: ... is not a date", "invalid_date" for the value at idx. */
int lb_bad_date(lua_State *L, int idx, const char *field);
/* The optional `on` argument; today (UTC) when absent.  0 or a failure count. */
int lb_read_on(lua_State *L, int arg, lsr_day *on);
/* A level: positive integer or "unlimited" (needs the upvalues). */
bool lb_read_level(lua_State *L, int idx, lsr_level *out);
/* A renewal basis name; false unless "from_expiry" or "from_renewal". */
bool lb_read_basis(const char *name, int *basis);
const char *lb_basis_name(int basis);
/* A fingerprint match policy name ("most", "all", "any"). */
bool lb_read_match(const char *name, int *match);
const char *lb_match_name(int match);

/* ---- licenses (l_license.c) ---- */

/* Reads and validates every field the rules use; 0 or a failure count.
 * *policy (when policy is not NULL) receives the values the license's
 * rules read: its `policy` value's, or the catalogue's. */
int lb_read_license(lua_State *L, const lsr_catalogue *cat, int lic_idx, lsr_license *lic,
                    const lsr_policy **policy);
/* The product alone (for can_install, which reports unknown_build first). */
int lb_read_product(lua_State *L, const lsr_catalogue *cat, int lic_idx, lsr_license *lic);
/* License (argument 2) and `on` (argument on_arg) together. */
int lb_read_query(lua_State *L, const lsr_catalogue *cat, lsr_license *lic, int on_arg, lsr_day *on,
                  const lsr_policy **policy);
/* Pushes lic[field] for upvalue uv; returns its type. */
int lb_get_field(lua_State *L, int lic_idx, int uv);
/* nil, "license 'KEY': message", code. */
int lb_license_fail(lua_State *L, int lic_idx, const char *code, const char *fmt, ...)
  LB_PRINTF_LIKE(4, 5);
const char *lb_code_name(lsr_code code);
const char *lb_kind_name(lsr_kind kind);
/* Pushes the message explaining why a well-formed license has no build. */
void lb_push_refusal_message(lua_State *L, int lic_idx, const lsr_license *lic, lsr_day on,
                             lsr_code code);
int lb_push_refusal(lua_State *L, int first, int lic_idx, const lsr_license *lic, lsr_day on,
                    lsr_code code);

/* ---- policy values (l_policy.c, reading in l_compile.c) ---- */

/* A resolved policy value (metatable LB_POLICY_MT): a whole policy, the
 * catalogue's with overrides applied, owing nothing to the catalogue it
 * came from.  `set` has bit i for setting i (lb_policy_setting_name)
 * given in the overrides. */
typedef struct {
  lsr_policy policy;
  uint32_t set;
} lb_policy_value;

/* Applies the policy table at idx onto *policy with the catalogue's
 * bounds, messages and cross-checks, refusing unknown keys; false with
 * the message in err.  Leaves the stack as it found it. */
bool lb_read_policy_table(lua_State *L, int idx, lsr_policy *policy, char *err, size_t errlen);
/* The settings of a policy table by position: the whole-number fields of
 * lsr_policy_fields, then the named ones; NULL past the last. */
const char *lb_policy_setting_name(int i);
/* The position of a setting's name, or -1. */
int lb_policy_setting_index(const char *name);
/* Pushes the policy as a table (cat:policy's shape). */
void lb_push_policy(lua_State *L, const lsr_policy *policy);
/* Pushes lic.policy (left on the stack, which keeps the value alive) and
 * points *policy at its values, or the catalogue's when it is nil;
 * 0 or a failure count (invalid_license) when it is not a policy value. */
int lb_license_policy(lua_State *L, const lsr_catalogue *cat, int lic_idx, const lsr_policy **policy);

/* ---- catalogue data as text (l_data.c) ---- */

/* A growable text buffer (malloc'd; the owner frees data). */
typedef struct {
  char *data;
  size_t len, cap;
} lb_text;

#define LB_TEXT_MAX ((size_t)64 << 20)

/* Appends the value at idx as data text ("return {...}", see data.h),
 * reading tables with raw access only.  False with *why on failure. */
bool lb_write_data(lua_State *L, int idx, lb_text *out, const char **why);

/* ---- registration ---- */

/* Registers the metatable `name` of an object class: its metamethods
 * (meta) and its methods as __index. */
void lb_new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods);

/* Sets funcs into the table at `table`, each closing over the shared
 * upvalues (the catalogue metatable at mt, then the key strings). */
void lb_setfuncs(lua_State *L, int table, int mt, const luaL_Reg *funcs);

/* Each area registers its functions into the module table at `module`
 * (and its methods into the catalogue metatable at `mt`). */
void lb_open_catalogue(lua_State *L, int module, int mt);
void lb_open_fraud(lua_State *L, int module, int mt);
void lb_open_compile(lua_State *L, int module, int mt);
void lb_open_license(lua_State *L, int module, int mt);
void lb_open_time(lua_State *L, int module, int mt);
void lb_open_keys(lua_State *L, int module, int mt);
void lb_open_ffi(lua_State *L, int module, int mt);
void lb_open_store(lua_State *L, int module, int mt);
void lb_open_pg(lua_State *L, int module, int mt);
void lb_open_process(lua_State *L, int module, int mt);
void lb_open_data(lua_State *L, int module, int mt);
void lb_open_sandbox(lua_State *L, int module, int mt);
void lb_open_hook(lua_State *L, int module, int mt);
void lb_open_certificate(lua_State *L, int module, int mt);
void lb_open_files(lua_State *L, int module, int mt);
void lb_open_crypto(lua_State *L, int module, int mt);
void lb_open_policy(lua_State *L, int module, int mt);

#endif
