/*
 * example.c -- spec/verifier/example.c as it was for version 2.0 of the
 * library (lsrv_may_run, the header next to it): spec/verifier_spec.lua
 * builds it with that header and runs it on today's library, as a product
 * built for 2.0 runs after an update.
 *
 *   example CERT PUBLIC_KEY [FINGERPRINT] [STATE]
 *
 * The product is SmarterTrack ("smartertrack"): another product's
 * certificate is wrong_product.  Prints the verdict, whether build 6911
 * (released 2018-12-03, major 100) may run today and whether its add-on
 * "eas" works; exits 0 when the product may run.
 */
#include <licensor_verify.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#define PRODUCT "smartertrack"

static size_t slurp(const char *path, char *buf, size_t size)
{
  FILE *f = fopen(path, "rb");
  size_t n = 0;
  if (f != NULL) {
    n = fread(buf, 1, size, f);
    fclose(f);
  }
  return n;
}

int main(int argc, char **argv)
{
  char cert[LSRV_CERT_MAX + 1], pub[512], fp[LSRV_FINGERPRINT_MAX];
  lsrv_public_key key;
  lsrv_result result;
  lsrv_state state;
  size_t cert_len;
  int64_t now = (int64_t)time(NULL);
  int32_t today = (int32_t)(now / 86400);
  bool with_state = false;
  if (argc < 3) return 2;
  cert_len = slurp(argv[1], cert, sizeof cert);
  if (!lsrv_public_key_parse(pub, slurp(argv[2], pub, sizeof pub), &key)) return 2;
  if (argc > 3) snprintf(fp, sizeof fp, "%s", argv[3]);
  else lsrv_fingerprint(fp, sizeof fp);
  /* The state belongs to this certificate's license and server and to
   * this machine: bind it, then load it (a missing file: a new state). */
  if (argc > 4 && lsrv_state_bind(&state, cert, cert_len, fp)) {
    if (lsrv_state_load(argv[4], &state) == LSRV_STATE_CORRUPT) return 2;
    with_state = true;
  }
  lsrv_verify(cert, cert_len, &key, 1, PRODUCT, fp, now, with_state ? &state : NULL, &result);
  if (with_state) lsrv_state_save(argv[4], &state);
  printf("%s %d\n", lsrv_verdict_name(result.verdict), result.grace_days_left);
  if (result.verdict != LSRV_VALID && result.verdict != LSRV_GRACE) return 1;
  /* Build 6911, released 2018-12-03 (day 17868), major 100. */
  printf("build 6911 %s\n", lsrv_may_run(&result.cert, 17868, 100, today) ? "may run" : "may not run");
  printf("eas %s\n", lsrv_addon_active(&result.cert, "eas", 100, today) ? "works" : "does not work");
  return 0;
}
