/*
 * fuzz_certificate.c -- libFuzzer target: the certificate reader, the
 * whole verify path and the revocation notice reader on any bytes, against
 * a fixed public key.  Nothing may crash; nothing unsigned may come out
 * valid or be applied; a certificate's build cap is never exceeded.
 */
#include "licensor_verify.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const char pub[] = "licensor-public-key 1\nid: 0000000000000000\nkey: "
                            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
  lsrv_public_key key;
  lsrv_certificate cert;
  lsrv_result result;
  lsrv_state state;
  memset(&key, 0, sizeof key);
  memset(&state, 0, sizeof state);
  state.revoked = LSRV_NOT_REVOKED;
  (void)lsrv_public_key_parse(pub, sizeof pub - 1, &key);
  memcpy(key.id, "0000000000000000", 17);
  if (lsrv_read((const char *)data, size, &cert) == LSRV_VALID) {
    /* Without a cap the number plays no part; with one, nothing above it
     * runs, and the old entry point stays below the cap's day. */
    bool run_old = lsrv_may_run(&cert, 17868, 100, 20000);
    if (cert.build_cap == 0) {
      if (run_old != lsrv_may_run_build(&cert, 6911, 17868, 100, 20000)) abort();
    } else if (cert.format != 2 || lsrv_may_run_build(&cert, cert.build_cap + 1, 17868, 100, 20000) ||
               (run_old && 17868 >= cert.build_cap_released)) {
      abort();
    }
  }
  lsrv_verify((const char *)data, size, &key, 1, "smartertrack", "v1:mid=00", 1800000000, &state, &result);
  /* The all-zero key signs nothing: no input can be valid. */
  if (result.verdict == LSRV_VALID || result.verdict == LSRV_GRACE) abort();
  if (result.verdict != LSRV_MALFORMED) {
    (void)lsrv_may_run(&result.cert, 17868, 100, 20000);
    (void)lsrv_may_run_build(&result.cert, 6911, 17868, 100, 20000);
  }
  /* A state bound to the license and server of the corpus's notice. */
  state.bound = true;
  memcpy(state.license, "99F5NFF-5Q99SQQ-2P6TC32-00BTK2G", 32);
  memcpy(state.server, "air1", 5);
  if (lsrv_revocation_apply((const char *)data, size, &key, 1, &state) == LSRV_NOTICE_APPLIED) abort();
  if (state.revoked != LSRV_NOT_REVOKED) abort();
  return 0;
}
