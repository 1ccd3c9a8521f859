/*
 * layout.c -- the size of every public struct of licensor_verify.h and
 * the offset of each field version 2.0 had.  spec/verifier_spec.lua
 * compiles it against the 2.0 header (spec/verifier/abi-2.0) and against
 * today's: the same output means a program built for 2.0 runs unchanged
 * on this library (the same soname).
 */
#include <licensor_verify.h>

#include <stddef.h>
#include <stdio.h>

#define SIZE(type) printf("sizeof %s %zu\n", #type, sizeof(type))
#define AT(type, field) printf("%s.%s %zu\n", #type, #field, offsetof(type, field))

int main(void)
{
  SIZE(lsrv_public_key);
  AT(lsrv_public_key, key);
  AT(lsrv_public_key, id);
  SIZE(lsrv_addon);
  AT(lsrv_addon, name);
  AT(lsrv_addon, paid_through);
  SIZE(lsrv_certificate);
  AT(lsrv_certificate, format);
  AT(lsrv_certificate, signer);
  AT(lsrv_certificate, license);
  AT(lsrv_certificate, server);
  AT(lsrv_certificate, product);
  AT(lsrv_certificate, edition);
  AT(lsrv_certificate, level);
  AT(lsrv_certificate, kind);
  AT(lsrv_certificate, start);
  AT(lsrv_certificate, ms_expires);
  AT(lsrv_certificate, ends);
  AT(lsrv_certificate, version_lock);
  AT(lsrv_certificate, failover);
  AT(lsrv_certificate, addons);
  AT(lsrv_certificate, n_addons);
  AT(lsrv_certificate, newest_major);
  AT(lsrv_certificate, lock_first_release);
  AT(lsrv_certificate, fingerprint);
  AT(lsrv_certificate, match);
  AT(lsrv_certificate, issued);
  AT(lsrv_certificate, refresh_by);
  AT(lsrv_certificate, grace_days);
  AT(lsrv_certificate, signature);
  SIZE(lsrv_result);
  AT(lsrv_result, verdict);
  AT(lsrv_result, grace_days_left);
  AT(lsrv_result, cert);
  SIZE(lsrv_state);
  AT(lsrv_state, mark);
  AT(lsrv_state, revoked);
  AT(lsrv_state, reason);
  AT(lsrv_state, bound);
  AT(lsrv_state, license);
  AT(lsrv_state, server);
  AT(lsrv_state, binding);
  SIZE(lsrv_component);
  AT(lsrv_component, name);
  AT(lsrv_component, strong);
  AT(lsrv_component, found);
  AT(lsrv_component, source);
  AT(lsrv_component, hash);
  printf("LSRV_CERT_MAX %d LSRV_FIELD_MAX %d LSRV_MAX_ADDONS %d LSRV_FINGERPRINT_MAX %d LSRV_RECEIPT_MAX %d\n",
         LSRV_CERT_MAX, LSRV_FIELD_MAX, LSRV_MAX_ADDONS, LSRV_FINGERPRINT_MAX, LSRV_RECEIPT_MAX);
  return 0;
}
