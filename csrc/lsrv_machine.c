/*
 * lsrv_machine.c -- the machine side of the offline verifier
 * (licensor_verify.h): this machine's fingerprint from stable Linux
 * sources, matching with drift tolerance, and the clock mark's state file.
 */
#define _POSIX_C_SOURCE 200809L   /* gethostname, fsync, rename */
#include "licensor_verify.h"

#include <sodium.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMPONENT_HEX 16   /* 8 bytes of BLAKE2b, in hex */

/* ------------------------------------------------------------------ */
/* Fingerprint                                                         */
/* ------------------------------------------------------------------ */

/* Reads the first line of a small file into buf; false if none. */
static bool read_first_line(const char *path, char *buf, size_t size)
{
  FILE *f = fopen(path, "r");
  size_t n;
  if (f == NULL) return false;
  if (fgets(buf, (int)size, f) == NULL) buf[0] = '\0';
  fclose(f);
  n = strcspn(buf, "\r\n");
  buf[n] = '\0';
  return n > 0;
}

static int compare_strings(const void *a, const void *b)
{
  return strcmp((const char *)a, (const char *)b);
}

/* The network cards' MAC addresses, sorted and joined (loopback and
 * all-zero addresses left out). */
static bool mac_addresses(char *buf, size_t size)
{
  char macs[32][32], path[300];
  int n = 0;
  struct dirent *e;
  DIR *d = opendir("/sys/class/net");
  if (d == NULL) return false;
  while ((e = readdir(d)) != NULL && n < 32) {
    if (e->d_name[0] == '.' || strcmp(e->d_name, "lo") == 0) continue;
    snprintf(path, sizeof path, "/sys/class/net/%.255s/address", e->d_name);
    if (read_first_line(path, macs[n], sizeof macs[n]) && strcmp(macs[n], "00:00:00:00:00:00") != 0) n++;
  }
  closedir(d);
  if (n == 0) return false;
  qsort(macs, (size_t)n, sizeof macs[0], compare_strings);
  buf[0] = '\0';
  for (int i = 0; i < n; i++) {
    strncat(buf, macs[i], size - strlen(buf) - 1);
    strncat(buf, ",", size - strlen(buf) - 1);
  }
  return true;
}

/* The root file system's device and type, from stat and mountinfo. */
static bool root_disk(char *buf, size_t size)
{
  struct stat st;
  char line[1024], fstype[64] = "";
  FILE *f;
  if (stat("/", &st) != 0) return false;
  f = fopen("/proc/self/mountinfo", "r");
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    char mount_point[256], type[64];
    /* id parent major:minor root mount-point options ... - type source ... */
    const char *dash = strstr(line, " - ");
    if (sscanf(line, "%*s %*s %*s %*s %255s", mount_point) == 1 && strcmp(mount_point, "/") == 0 &&
        dash != NULL && sscanf(dash + 3, "%63s", type) == 1) {
      snprintf(fstype, sizeof fstype, "%s", type);
    }
  }
  if (f != NULL) fclose(f);
  snprintf(buf, size, "%lu:%s", (unsigned long)st.st_dev, fstype);
  return true;
}

/* Appends ",name=<hash of value>" (the first without the comma). */
static void add_component(char *out, size_t outlen, size_t *used, const char *name, const char *value)
{
  unsigned char hash[16];
  char key[64], hex[2 * sizeof hash + 1];
  int n;
  snprintf(key, sizeof key, "licensor-fingerprint-1:%s", name);
  crypto_generichash(hash, sizeof hash, (const unsigned char *)value, strlen(value),
                     (const unsigned char *)key, strlen(key));
  sodium_bin2hex(hex, sizeof hex, hash, COMPONENT_HEX / 2);
  n = snprintf(out + *used, outlen - *used, "%s%s=%s", *used > 3 ? "," : "", name, hex);
  if (n > 0 && (size_t)n < outlen - *used) *used += (size_t)n;
}

size_t lsrv_fingerprint(char *out, size_t outlen)
{
  char value[1024];
  size_t used;
  if (out == NULL || outlen < 4 || sodium_init() < 0) return 0;
  memcpy(out, "v1:", 4);
  used = 3;
  if (read_first_line("/etc/machine-id", value, sizeof value)) add_component(out, outlen, &used, "mid", value);
  if (read_first_line("/sys/class/dmi/id/product_uuid", value, sizeof value))
    add_component(out, outlen, &used, "uuid", value);
  if (mac_addresses(value, sizeof value)) add_component(out, outlen, &used, "mac", value);
  if (root_disk(value, sizeof value)) add_component(out, outlen, &used, "disk", value);
  if (gethostname(value, sizeof value) == 0 && value[0] != '\0') {
    value[sizeof value - 1] = '\0';
    add_component(out, outlen, &used, "host", value);
  }
  return used > 3 ? used : 0;
}

/* The hash of component `name` in a fingerprint, or NULL. */
static const char *component(const char *fp, const char *name, size_t *len)
{
  size_t n = strlen(name);
  const char *p;
  if (strncmp(fp, "v1:", 3) != 0) return NULL;
  for (p = fp + 3; *p != '\0';) {
    const char *end = strchr(p, ','), *eq = strchr(p, '=');
    if (end == NULL) end = p + strlen(p);
    if (eq != NULL && eq < end && (size_t)(eq - p) == n && strncmp(p, name, n) == 0) {
      *len = (size_t)(end - eq - 1);
      return eq + 1;
    }
    p = *end == ',' ? end + 1 : end;
  }
  return NULL;
}

bool lsrv_fingerprint_match(const char *expected, const char *seen, lsrv_match policy)
{
  static const char *const names[] = { "mid", "uuid", "mac", "disk", "host" };
  int total = 0, matching = 0;
  if (expected == NULL || seen == NULL) return false;
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    size_t a_len = 0, b_len = 0;
    const char *a = component(expected, names[i], &a_len), *b;
    if (a == NULL) continue;
    total++;
    b = component(seen, names[i], &b_len);
    if (b != NULL && a_len == b_len && memcmp(a, b, a_len) == 0) matching++;
  }
  if (total == 0) return false;
  if (policy == LSRV_MATCH_ALL) return matching == total;
  if (policy == LSRV_MATCH_ANY) return matching > 0;
  return 2 * matching > total;
}

/* ------------------------------------------------------------------ */
/* The clock mark's state file                                         */
/* ------------------------------------------------------------------ */

/* "licensor-state 1 MARK CHECK": CHECK is a hash of the rest, so that a
 * damaged file reads as corrupt rather than as another mark. */
static void state_check(int64_t mark, char hex[17])
{
  unsigned char hash[16];
  char text[64];
  int n = snprintf(text, sizeof text, "licensor-state 1 %lld", (long long)mark);
  crypto_generichash(hash, sizeof hash, (const unsigned char *)text, (unsigned long long)n, NULL, 0);
  sodium_bin2hex(hex, 17, hash, 8);
}

lsrv_state_status lsrv_state_load(const char *path, lsrv_state *state)
{
  char line[128], check[17], expected[17];
  long long mark;
  FILE *f;
  if (sodium_init() < 0) return LSRV_STATE_CORRUPT;
  f = fopen(path, "r");
  if (f == NULL) return errno == ENOENT ? LSRV_STATE_MISSING : LSRV_STATE_CORRUPT;
  if (fgets(line, sizeof line, f) == NULL) {
    fclose(f);
    return LSRV_STATE_CORRUPT;
  }
  fclose(f);
  if (sscanf(line, "licensor-state 1 %lld %16s", &mark, check) != 2 || mark < 0) return LSRV_STATE_CORRUPT;
  state_check((int64_t)mark, expected);
  if (strcmp(check, expected) != 0) return LSRV_STATE_CORRUPT;
  state->mark = (int64_t)mark;
  return LSRV_STATE_OK;
}

lsrv_state_status lsrv_state_save(const char *path, const lsrv_state *state)
{
  char tmp[4096], check[17];
  FILE *f;
  bool ok;
  if (sodium_init() < 0 || snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
    return LSRV_STATE_UNWRITABLE;
  state_check(state->mark, check);
  f = fopen(tmp, "w");
  if (f == NULL) return LSRV_STATE_UNWRITABLE;
  ok = fprintf(f, "licensor-state 1 %lld %s\n", (long long)state->mark, check) > 0;
  ok = fflush(f) == 0 && ok;
  ok = fsync(fileno(f)) == 0 && ok;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    return LSRV_STATE_UNWRITABLE;
  }
  return LSRV_STATE_OK;
}

const char *lsrv_state_status_name(lsrv_state_status status)
{
  static const char *const names[] = { "ok", "state_missing", "state_corrupt", "state_unwritable" };
  return (unsigned)status < sizeof names / sizeof *names ? names[status] : "state_corrupt";
}
