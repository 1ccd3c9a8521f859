/*
 * ffi.h -- cat:eligible for LuaJIT's FFI.
 *
 * Under LuaJIT a call into a lua_CFunction stops the trace compiler; an FFI
 * call does not.  lua/licensor/ffi.lua fills one lsr_ffi_query from the
 * license table in compiled Lua and calls lsr_ffi_eligible; anything this
 * fast path does not accept goes to the classic binding, which gives the
 * exact `nil, message, code` answer.  The declarations are repeated in
 * ffi.lua's cdef; spec/ffi_spec.lua checks that cdef against the layout
 * this compiler gave (core._ffi_layout, l_ffi.c), field by field.
 */
#ifndef LICENSOR_FFI_H
#define LICENSOR_FFI_H

#include "catalogue.h"
#include "export.h"

typedef struct {
  const char *product;
  const char *edition;       /* NULL: none */
  const char *start;
  const char *ms_expires;    /* NULL: absent (likewise below) */
  const char *disabled;
  const char *lease_ended;
  const char *on;            /* NULL: today */
  double level;              /* 0: none, -1: "unlimited" */
  double trial_days;         /* 0: the policy's */
  double version_lock;       /* 0: none */
  int32_t product_len;
  int32_t edition_len;
  int32_t start_len;
  int32_t ms_expires_len;
  int32_t disabled_len;
  int32_t lease_ended_len;
  int32_t on_len;
  int32_t kind;              /* 0 perpetual, 1 lease, 2 trial */
} lsr_ffi_query;

/* Index (0-based) of the eligible build's record among all records, or -1
 * when the license is refused or malformed: the caller then asks the
 * classic binding for the message and code. */
LSR_EXPORT int lsr_ffi_eligible(const lsr_catalogue *cat, const lsr_ffi_query *q);

#endif
