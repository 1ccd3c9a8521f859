/*
 * export.h -- the two symbols the shared library exports: luaopen_licensor_core
 * for require, and lsr_ffi_eligible for LuaJIT's FFI.  Everything else is
 * built with -fvisibility=hidden by the Makefile.
 */
#ifndef LICENSOR_EXPORT_H
#define LICENSOR_EXPORT_H

#if defined(__GNUC__)
#define LSR_EXPORT __attribute__((visibility("default")))
#else
#define LSR_EXPORT
#endif

#endif
