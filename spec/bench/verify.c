/*
 * verify.c -- `make bench`: lsrv_verify (parsing, the signature and the
 * rules) against libsodium's raw crypto_sign_verify_detached over the same
 * signed bytes, in the same run.  The target is at least 0.8x of raw.
 *
 *   verify CERT PUBLIC_KEY
 */
#define _POSIX_C_SOURCE 200809L
#include "licensor_verify.h"

#include <sodium.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

static double seconds(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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
  char cert[LSRV_CERT_MAX + 1], pub[512];
  unsigned char sig[64];
  lsrv_public_key key;
  lsrv_result result;
  size_t len, sig_len = 0, signed_len;
  const char *sig_line, *b64;
  int rounds = 20000, ok = 0;
  double best_full = 0, best_raw = 0;
  if (argc < 3 || sodium_init() < 0) return 2;
  len = slurp(argv[1], cert, sizeof cert);
  if (!lsrv_public_key_parse(pub, slurp(argv[2], pub, sizeof pub), &key)) return 2;
  cert[len] = '\0';
  /* The product the certificate names (the bench checks any of them). */
  if (lsrv_read(cert, len, &result.cert) != LSRV_VALID) return 2;
  sig_line = strstr(cert, "\nsignature: ");
  if (sig_line == NULL) return 2;
  signed_len = (size_t)(sig_line - cert) + 1;
  b64 = sig_line + 12;
  if (sodium_base642bin(sig, sizeof sig, b64, 88, NULL, &sig_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
    return 2;
  for (int round = 0; round < 3; round++) {
    double t0 = seconds(), full, raw;
    for (int i = 0; i < rounds; i++)
      ok += lsrv_verify(cert, len, &key, 1, result.cert.product, NULL, (int64_t)time(NULL), NULL, &result) ==
            LSRV_VALID;
    full = rounds / (seconds() - t0);
    t0 = seconds();
    for (int i = 0; i < rounds; i++)
      ok += crypto_sign_verify_detached(sig, (const unsigned char *)cert, signed_len, key.key) == 0;
    raw = rounds / (seconds() - t0);
    if (full > best_full) best_full = full;
    if (raw > best_raw) best_raw = raw;
  }
  printf("certificate verify   lsrv_verify %8.0f/s   raw crypto_sign_verify_detached %8.0f/s   ratio %.2fx"
         "   (%d valid)\n", best_full, best_raw, best_full / best_raw, ok);
  return 0;
}
