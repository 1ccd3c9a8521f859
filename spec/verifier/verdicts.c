/*
 * verdicts.c -- the whole C API of the verifier library driven from the
 * specs (spec/verifier_spec.lua builds it with ASan and UBSan): every
 * verdict at an explicit time, revocation notices, returns and the state
 * file.  Not an example for vendors (spec/verifier/example.c is).
 *
 *   verdicts PUBLIC_KEY PRODUCT FINGERPRINT NOW CERT [STATE [NOTICE]]
 *     binds STATE to CERT and FINGERPRINT ("-": the certificate's own),
 *     loads it (missing: a new one), applies NOTICE, verifies CERT at NOW
 *     (unix seconds) and saves STATE; prints "notice STATUS" and the
 *     verdict, one a line
 *   verdicts --return PUBLIC_KEY PRODUCT CERT STATE
 *     returns CERT (lsrv_return); prints the status, then the receipt
 *   verdicts --save CERT STATE
 *     saves a new state bound to CERT; prints the status
 *   verdicts --race PUBLIC_KEY PRODUCT NOW CERT STATE NOTICE|--return
 *     two processes' lost update, interleaved in one: loads STATE (bound
 *     to CERT) as A and as B; B verifies an hour after NOW, revokes
 *     (applies NOTICE, or returns CERT) and saves; A, loaded before all
 *     that, verifies at NOW and saves.  Prints A's verdict, then the
 *     verdict and reason of CERT against STATE loaded afresh
 *   verdicts --may-run PUBLIC_KEY PRODUCT NOW CERT DAY BUILD...
 *     verifies CERT at NOW (no machine check, no state), prints the
 *     verdict and its format, then for each BUILD (NUMBER:RELEASED:MAJOR,
 *     days as day numbers) "NUMBER OLD NEW": lsrv_may_run's and
 *     lsrv_may_run_build's answer on DAY (a day number), "yes" or "no"
 *
 * Exits 0 when it ran, 2 for bad arguments or unreadable files.
 */
#include <licensor_verify.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int return_certificate(const lsrv_public_key *key, const char *product, const char *cert_path,
                              const char *state_path)
{
  char cert[LSRV_CERT_MAX + 1], receipt[LSRV_RECEIPT_MAX];
  lsrv_state state;
  lsrv_return_status status;
  if (!lsrv_state_bind(&state, cert, slurp(cert_path, cert, sizeof cert), NULL)) return 2;
  if (lsrv_state_load(state_path, &state) == LSRV_STATE_CORRUPT) return 2;
  status = lsrv_return(cert_path, key, 1, product, &state, receipt, sizeof receipt);
  printf("%s\n", lsrv_return_status_name(status));
  if (status != LSRV_RETURNED) return 0;
  printf("%s", receipt);
  return lsrv_state_save(state_path, &state) == LSRV_STATE_OK ? 0 : 2;
}

/* --race: see the head of the file.  Exits 2 if a step fails. */
static int race(const lsrv_public_key *key, const char *product, int64_t now, const char *cert_path,
                const char *state_path, const char *notice_path)
{
  char cert[LSRV_CERT_MAX + 1], notice[LSRV_CERT_MAX + 1];
  size_t len = slurp(cert_path, cert, sizeof cert);
  lsrv_state a, b, fresh;
  lsrv_result r;
  if (!lsrv_state_bind(&a, cert, len, NULL) || lsrv_state_load(state_path, &a) != LSRV_STATE_OK ||
      !lsrv_state_bind(&b, cert, len, NULL) || lsrv_state_load(state_path, &b) != LSRV_STATE_OK)
    return 2;
  lsrv_verify(cert, len, key, 1, product, NULL, now + 3600, &b, &r);
  if (strcmp(notice_path, "--return") == 0) {
    char receipt[LSRV_RECEIPT_MAX];
    if (lsrv_return(cert_path, key, 1, product, &b, receipt, sizeof receipt) != LSRV_RETURNED) return 2;
  } else if (lsrv_revocation_apply(notice, slurp(notice_path, notice, sizeof notice), key, 1, &b) !=
             LSRV_NOTICE_APPLIED) {
    return 2;
  }
  if (lsrv_state_save(state_path, &b) != LSRV_STATE_OK) return 2;
  lsrv_verify(cert, len, key, 1, product, NULL, now, &a, &r);
  printf("%s\n", lsrv_verdict_name(r.verdict));
  if (lsrv_state_save(state_path, &a) != LSRV_STATE_OK) return 2;
  if (!lsrv_state_bind(&fresh, cert, len, NULL) || lsrv_state_load(state_path, &fresh) != LSRV_STATE_OK) return 2;
  lsrv_verify(cert, len, key, 1, product, NULL, now, &fresh, &r);
  printf("%s %s\n", lsrv_verdict_name(r.verdict), r.verdict == LSRV_REVOKED ? fresh.reason : "-");
  return 0;
}

/* --may-run: see the head of the file. */
static int may_run(const lsrv_public_key *key, const char *product, int64_t now, const char *cert_path,
                   int32_t day, int n_builds, char **builds)
{
  char cert[LSRV_CERT_MAX + 1];
  lsrv_result r;
  lsrv_verify(cert, slurp(cert_path, cert, sizeof cert), key, 1, product, NULL, now, NULL, &r);
  printf("%s %d\n", lsrv_verdict_name(r.verdict), r.verdict == LSRV_MALFORMED ? 0 : r.cert.format);
  if (r.verdict != LSRV_VALID && r.verdict != LSRV_GRACE) return 0;
  for (int i = 0; i < n_builds; i++) {
    long long number, released, major;
    if (sscanf(builds[i], "%lld:%lld:%lld", &number, &released, &major) != 3) return 2;
    printf("%lld %s %s\n", number, lsrv_may_run(&r.cert, (int32_t)released, (int64_t)major, day) ? "yes" : "no",
           lsrv_may_run_build(&r.cert, (int64_t)number, (int32_t)released, (int64_t)major, day) ? "yes" : "no");
  }
  return 0;
}

int main(int argc, char **argv)
{
  char cert[LSRV_CERT_MAX + 1], pub[512], notice[LSRV_CERT_MAX + 1];
  const char *fingerprint;
  lsrv_public_key key;
  lsrv_result result;
  lsrv_state state;
  size_t cert_len;
  long long now;
  bool with_state;
  if (argc == 4 && strcmp(argv[1], "--save") == 0) {
    if (!lsrv_state_bind(&state, cert, slurp(argv[2], cert, sizeof cert), NULL)) return 2;
    printf("%s\n", lsrv_state_status_name(lsrv_state_save(argv[3], &state)));
    return 0;
  }
  if (argc == 8 && strcmp(argv[1], "--race") == 0) {
    if (!lsrv_public_key_parse(pub, slurp(argv[2], pub, sizeof pub), &key)) return 2;
    return race(&key, argv[3], (int64_t)strtoll(argv[4], NULL, 10), argv[5], argv[6], argv[7]);
  }
  if (argc >= 7 && strcmp(argv[1], "--may-run") == 0) {
    if (!lsrv_public_key_parse(pub, slurp(argv[2], pub, sizeof pub), &key)) return 2;
    return may_run(&key, argv[3], (int64_t)strtoll(argv[4], NULL, 10), argv[5], (int32_t)strtol(argv[6], NULL, 10),
                   argc - 7, argv + 7);
  }
  if (argc == 6 && strcmp(argv[1], "--return") == 0) {
    if (!lsrv_public_key_parse(pub, slurp(argv[2], pub, sizeof pub), &key)) return 2;
    return return_certificate(&key, argv[3], argv[4], argv[5]);
  }
  if (argc < 6 || !lsrv_public_key_parse(pub, slurp(argv[1], pub, sizeof pub), &key)) return 2;
  fingerprint = strcmp(argv[3], "-") == 0 ? NULL : argv[3];
  now = strtoll(argv[4], NULL, 10);
  cert_len = slurp(argv[5], cert, sizeof cert);
  with_state = argc > 6 && lsrv_state_bind(&state, cert, cert_len, fingerprint);
  if (with_state) {
    lsrv_state_status status = lsrv_state_load(argv[6], &state);
    if (status != LSRV_STATE_OK && status != LSRV_STATE_MISSING) {
      printf("%s\n", lsrv_state_status_name(status));
      return 0;
    }
    if (argc > 7) {
      size_t n = slurp(argv[7], notice, sizeof notice);
      printf("notice %s\n", lsrv_notice_status_name(lsrv_revocation_apply(notice, n, &key, 1, &state)));
    }
  }
  lsrv_verify(cert, cert_len, &key, 1, strcmp(argv[2], "-") == 0 ? NULL : argv[2], fingerprint, (int64_t)now,
              with_state ? &state : NULL, &result);
  printf("%s\n", lsrv_verdict_name(result.verdict));
  if (with_state && lsrv_state_save(argv[6], &state) != LSRV_STATE_OK) return 2;
  return 0;
}
