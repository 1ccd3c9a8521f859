/*
 * lsrv_machine.c -- the machine side of the offline verifier
 * (licensor_verify.h): this machine's fingerprint from stable Linux
 * sources, matching with drift tolerance, the state file (clock mark and
 * revocations, bound to a certificate and a machine, saved under a lock
 * that merges concurrent saves) and the offline return of a certificate
 * file.  Certificate texts are lsrv.c's.
 */
#define _POSIX_C_SOURCE 200809L   /* gethostname, fsync, mkstemp, O_NOFOLLOW (flock: <sys/file.h>) */
#include "licensor_verify.h"

#include <sodium.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_MAX 256      /* a state file's bytes, at most */

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

/* The physical network cards' MAC addresses under `net` (/sys/class/net),
 * sorted and joined.  Only an interface with a `device` entry (the card
 * on a bus behind it) counts: virtual ones (loopback, veth, tap, bridges,
 * docker0, ifb, bonds, VLANs) come and go with containers and VMs and
 * would move the component; all-zero addresses are left out too.  False
 * when none is found (the component is then absent). */
static bool mac_addresses(const char *net, char *buf, size_t size)
{
  char macs[32][32], device[512], path[512];
  struct stat st;
  int n = 0;
  struct dirent *e;
  DIR *d = opendir(net);
  if (d == NULL) return false;
  while ((e = readdir(d)) != NULL && n < 32) {
    if (e->d_name[0] == '.') continue;
    if (snprintf(device, sizeof device, "%s/%s/device", net, e->d_name) >= (int)sizeof device ||
        stat(device, &st) != 0 ||
        snprintf(path, sizeof path, "%s/%s/address", net, e->d_name) >= (int)sizeof path)
      continue;
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

/* Copies src into dst (size bytes), cut to fit, with its NUL. */
static void set_text(char *dst, size_t size, const char *src)
{
  size_t n = strlen(src);
  if (n >= size) n = size - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

/* The root file system's "major:minor" from mountinfo (the last mount on
 * "/" is the one in force). */
static bool root_device(char *buf, size_t size)
{
  char line[1024];
  bool found = false;
  FILE *f = fopen("/proc/self/mountinfo", "r");
  if (f == NULL) return false;
  while (fgets(line, sizeof line, f) != NULL) {
    char device[32], mount_point[256];
    /* id parent major:minor root mount-point options ... */
    if (sscanf(line, "%*s %*s %31s %*s %255s", device, mount_point) == 2 && strcmp(mount_point, "/") == 0) {
      snprintf(buf, size, "%s", device);
      found = true;
    }
  }
  fclose(f);
  return found;
}

/* The root file system's UUID: the /dev/disk/by-uuid link whose block
 * device is the one "/" lives on. */
static bool root_uuid(char *buf, size_t size, char *source, size_t source_size)
{
  struct stat root, st;
  char path[320];
  struct dirent *e;
  bool found = false;
  DIR *d;
  if (stat("/", &root) != 0 || (d = opendir("/dev/disk/by-uuid")) == NULL) return false;
  while (!found && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "/dev/disk/by-uuid/%.255s", e->d_name);
    if (stat(path, &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == root.st_dev) {
      snprintf(buf, size, "uuid:%s", e->d_name);
      set_text(source, source_size, path);
      found = true;
    }
  }
  closedir(d);
  return found;
}

/* The serial (or WWID, or device-mapper UUID) of the disk the root file
 * system is on, from /sys/dev/block/MAJOR:MINOR (of a partition: of its
 * disk, the directory above). */
static bool root_serial(char *buf, size_t size, char *source, size_t source_size)
{
  static const char *const files[] = { "serial", "device/serial", "wwid", "device/wwid", "dm/uuid" };
  char device[32], base[96], path[160], value[512];
  struct stat st;
  if (!root_device(device, sizeof device)) return false;
  snprintf(base, sizeof base, "/sys/dev/block/%s", device);
  snprintf(path, sizeof path, "%s/partition", base);
  if (stat(path, &st) == 0) snprintf(base, sizeof base, "/sys/dev/block/%s/..", device);
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    snprintf(path, sizeof path, "%s/%s", base, files[i]);
    if (read_first_line(path, value, sizeof value)) {
      snprintf(buf, size, "serial:%s", value);
      set_text(source, source_size, path);
      return true;
    }
  }
  return false;
}

/* The root disk: its file system's UUID, else its serial. */
static bool root_disk(char *buf, size_t size, char *source, size_t source_size)
{
  if (root_uuid(buf, size, source, source_size) || root_serial(buf, size, source, source_size)) return true;
  set_text(source, source_size, "/dev/disk/by-uuid, /sys/dev/block/*/serial or wwid");
  return false;
}

/* Fills c with the hash of value (keyed by the component's name). */
static void set_component(lsrv_component *c, const char *value)
{
  unsigned char hash[16];
  char key[64];
  snprintf(key, sizeof key, "licensor-fingerprint-1:%s", c->name);
  crypto_generichash(hash, sizeof hash, (const unsigned char *)value, strlen(value),
                     (const unsigned char *)key, strlen(key));
  sodium_bin2hex(c->hash, sizeof c->hash, hash, LSRV_COMPONENT_HEX / 2);
  c->found = true;
}

/* Names one component (missing until set_component). */
static void name_component(lsrv_component *c, const char *name, bool strong, const char *source)
{
  memset(c, 0, sizeof *c);
  c->name = name;
  c->strong = strong;
  set_text(c->source, sizeof c->source, source);
}

int lsrv_fingerprint_explain(lsrv_component out[LSRV_COMPONENTS])
{
  char value[1024];
  int found = 0;
  if (out == NULL) return 0;
  name_component(&out[0], "mid", true, "/etc/machine-id");
  name_component(&out[1], "uuid", true, "/sys/class/dmi/id/product_uuid");
  name_component(&out[2], "mac", false, "/sys/class/net/*/address (with a device)");
  name_component(&out[3], "disk", false, "");
  name_component(&out[4], "host", false, "gethostname");
  if (sodium_init() < 0) return 0;
  if (read_first_line(out[0].source, value, sizeof value)) set_component(&out[0], value);
  if (read_first_line(out[1].source, value, sizeof value)) set_component(&out[1], value);
  if (mac_addresses("/sys/class/net", value, sizeof value)) set_component(&out[2], value);
  if (root_disk(value, sizeof value, out[3].source, sizeof out[3].source)) set_component(&out[3], value);
  if (gethostname(value, sizeof value) == 0 && value[0] != '\0') {
    value[sizeof value - 1] = '\0';
    set_component(&out[4], value);
  }
  sodium_memzero(value, sizeof value);
  for (int i = 0; i < LSRV_COMPONENTS; i++) found += out[i].found;
  return found;
}

size_t lsrv_fingerprint(char *out, size_t outlen)
{
  lsrv_component c[LSRV_COMPONENTS];
  size_t used = 3;
  if (out == NULL || outlen < 4) return 0;
  memcpy(out, "v1:", 4);
  if (lsrv_fingerprint_explain(c) == 0) return 0;
  for (int i = 0; i < LSRV_COMPONENTS; i++) {
    int n;
    if (!c[i].found) continue;
    n = snprintf(out + used, outlen - used, "%s%s=%s", used > 3 ? "," : "", c[i].name, c[i].hash);
    if (n < 0 || (size_t)n >= outlen - used) return 0;
    used += (size_t)n;
  }
  return used;
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
  int total = 0, matching = 0, strong = 0;
  if (expected == NULL || seen == NULL) return false;
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    size_t a_len = 0, b_len = 0;
    const char *a = component(expected, names[i], &a_len), *b;
    if (a == NULL) continue;
    total++;
    b = component(seen, names[i], &b_len);
    if (b != NULL && a_len == b_len && memcmp(a, b, a_len) == 0) {
      matching++;
      if (i < 2) strong++;   /* mid, uuid */
    }
  }
  /* Hostname, MAC and disk are the owner's to set: never enough alone. */
  if (strong == 0) return false;
  if (policy == LSRV_MATCH_ALL) return matching == total;
  if (policy == LSRV_MATCH_ANY) return true;
  return 2 * matching > total;
}

/* ------------------------------------------------------------------ */
/* The state file                                                      */
/* ------------------------------------------------------------------ */

bool lsrv_state_bind(lsrv_state *state, const char *cert, size_t len, const char *fingerprint)
{
  static const char *const strong[] = { "mid", "uuid" };
  lsrv_certificate c;
  crypto_generichash_state h;
  if (state == NULL) return false;
  memset(state, 0, sizeof *state);
  state->revoked = LSRV_NOT_REVOKED;
  if (sodium_init() < 0 || lsrv_read(cert, len, &c) != LSRV_VALID) return false;
  if (fingerprint == NULL) fingerprint = c.fingerprint;
  memcpy(state->license, c.license, sizeof state->license);
  memcpy(state->server, c.server, sizeof state->server);
  /* The key: license, server and the machine's identity (its strong
   * components, so that a new network card or hostname keeps the state). */
  crypto_generichash_init(&h, NULL, 0, sizeof state->binding);
  crypto_generichash_update(&h, (const unsigned char *)"licensor-state-2", 17);
  crypto_generichash_update(&h, (const unsigned char *)c.license, strlen(c.license) + 1);
  crypto_generichash_update(&h, (const unsigned char *)c.server, strlen(c.server) + 1);
  for (size_t i = 0; i < sizeof strong / sizeof *strong; i++) {
    size_t n = 0;
    const char *v = component(fingerprint, strong[i], &n);
    crypto_generichash_update(&h, (const unsigned char *)strong[i], strlen(strong[i]) + 1);
    if (v != NULL && n <= LSRV_FINGERPRINT_MAX) crypto_generichash_update(&h, (const unsigned char *)v, n);
    crypto_generichash_update(&h, (const unsigned char *)"", 1);
  }
  crypto_generichash_final(&h, state->binding, sizeof state->binding);
  state->bound = true;
  return true;
}

/* "licensor-state 2 MARK REVOKED REASON CHECK\n" (REVOKED and REASON "-"
 * for none): CHECK is a BLAKE2b hash of the rest keyed to the state's
 * binding, so that a damaged file, or another certificate's or machine's,
 * reads as corrupt.  Returns the line's length (0 if it does not fit). */
static size_t state_line(const lsrv_state *state, char *buf, size_t size)
{
  unsigned char hash[16];
  char revoked[24] = "-", hex[2 * sizeof hash + 1];
  bool has = state->revoked != LSRV_NOT_REVOKED;
  int body, n;
  if (has) snprintf(revoked, sizeof revoked, "%lld", (long long)state->revoked);
  body = snprintf(buf, size, "licensor-state 2 %lld %s %s", (long long)state->mark, revoked,
                  has && state->reason[0] != '\0' ? state->reason : "-");
  if (body < 0 || (size_t)body >= size) return 0;
  crypto_generichash(hash, sizeof hash, (const unsigned char *)buf, (unsigned long long)body, state->binding,
                     sizeof state->binding);
  sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
  n = snprintf(buf + body, size - (size_t)body, " %s\n", hex);
  return n > 0 && (size_t)n < size - (size_t)body ? (size_t)(body + n) : 0;
}

/* Reads the fields of a state line into *out; the caller compares the
 * line written back from them with the file, byte for byte. */
static bool read_state_line(const char *line, lsrv_state *out)
{
  char revoked[24], reason[LSRV_REASON_MAX], check[40];
  long long mark = 0, at = 0;
  if (sscanf(line, "licensor-state 2 %18lld %19s %15s %33s", &mark, revoked, reason, check) != 4 || mark < 0)
    return false;
  out->mark = (int64_t)mark;
  out->revoked = LSRV_NOT_REVOKED;
  out->reason[0] = '\0';
  if (strcmp(revoked, "-") == 0) return strcmp(reason, "-") == 0;
  if (sscanf(revoked, "%18lld", &at) != 1) return false;
  out->revoked = (int64_t)at;
  if (strcmp(reason, "-") == 0) return true;
  if (strspn(reason, "abcdefghijklmnopqrstuvwxyz") != strlen(reason)) return false;
  snprintf(out->reason, sizeof out->reason, "%s", reason);
  return true;
}

lsrv_state_status lsrv_state_load(const char *path, lsrv_state *state)
{
  char text[STATE_MAX + 1], line[STATE_MAX + 1];
  lsrv_state read_back;
  struct stat st;
  ssize_t n;
  size_t line_len;
  int fd;
  if (state == NULL || !state->bound) return LSRV_STATE_UNBOUND;
  if (path == NULL || sodium_init() < 0) return LSRV_STATE_CORRUPT;
  /* O_NOFOLLOW: a symlink at path fails (ELOOP), never read through;
   * O_NONBLOCK: a FIFO planted there does not hang the open. */
  fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? LSRV_STATE_MISSING : LSRV_STATE_CORRUPT;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return LSRV_STATE_CORRUPT;
  }
  n = read(fd, text, STATE_MAX);
  close(fd);
  if (n <= 0 || n >= STATE_MAX) return LSRV_STATE_CORRUPT;
  text[n] = '\0';
  read_back = *state;
  if (strlen(text) != (size_t)n || !read_state_line(text, &read_back)) return LSRV_STATE_CORRUPT;
  line_len = state_line(&read_back, line, sizeof line);
  if (line_len != (size_t)n || memcmp(line, text, line_len) != 0) return LSRV_STATE_CORRUPT;
  *state = read_back;
  return LSRV_STATE_OK;
}

/* Syncs the directory of path, so that the rename survives a crash. */
static void sync_directory(const char *path)
{
  char dir[4096];
  const char *slash = strrchr(path, '/');
  int fd;
  if (slash == NULL) snprintf(dir, sizeof dir, ".");
  else if (slash == path) snprintf(dir, sizeof dir, "/");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)fsync(fd);
  close(fd);
}

/* Takes the exclusive lock of the state file at path: an flock on
 * PATH.lock, made on first use (mode 0600, never through a symlink, left
 * in place: removing it while another process holds it would let a third
 * lock a new file).  An flock belongs to the open file, so two threads
 * exclude each other as two processes do.  The lock's fd, or -1. */
static int lock_state(const char *path)
{
  char name[4096];
  struct stat st;
  int fd, r;
  if (snprintf(name, sizeof name, "%s.lock", path) >= (int)sizeof name) return -1;
  fd = open(name, O_RDONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return -1;
  }
  while ((r = flock(fd, LOCK_EX)) != 0 && errno == EINTR) {}
  if (r != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Merges into *state what the file at path holds now for the same binding
 * (another process may have saved it since this one loaded): the later
 * mark, and the later revocation with its reason.  A file that does not
 * read as this binding's adds nothing. */
static void merge_saved(const char *path, lsrv_state *state)
{
  lsrv_state saved = *state;
  if (lsrv_state_load(path, &saved) != LSRV_STATE_OK) return;
  if (saved.mark > state->mark) state->mark = saved.mark;
  if (saved.revoked != LSRV_NOT_REVOKED && (state->revoked == LSRV_NOT_REVOKED || saved.revoked > state->revoked)) {
    state->revoked = saved.revoked;
    memcpy(state->reason, saved.reason, sizeof state->reason);
  }
}

lsrv_state_status lsrv_state_save(const char *path, const lsrv_state *state)
{
  char tmp[4096], line[STATE_MAX + 1];
  lsrv_state merged;
  struct stat st;
  size_t len;
  int fd, lock;
  bool ok;
  if (state == NULL || !state->bound) return LSRV_STATE_UNBOUND;
  if (path == NULL || sodium_init() < 0) return LSRV_STATE_UNWRITABLE;
  /* A symlink (or anything but a file) at path is refused: rename would
   * replace the link, but a product must not be pointed at other files. */
  if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) return LSRV_STATE_UNWRITABLE;
  /* The temporary file: in the same directory (rename stays on one file
   * system), with a name nobody can guess or plant a link at. */
  if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp) return LSRV_STATE_UNWRITABLE;
  /* Under the lock, re-read and merge: a return or a notice another
   * process saved after this one loaded is never written over. */
  if ((lock = lock_state(path)) < 0) return LSRV_STATE_UNWRITABLE;
  merged = *state;
  merge_saved(path, &merged);
  len = state_line(&merged, line, sizeof line);
  fd = len == 0 ? -1 : mkstemp(tmp);
  if (fd < 0) {
    close(lock);
    return LSRV_STATE_UNWRITABLE;
  }
  ok = write(fd, line, len) == (ssize_t)len;
  ok = fsync(fd) == 0 && ok;
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    close(lock);
    return LSRV_STATE_UNWRITABLE;
  }
  sync_directory(path);
  close(lock);   /* unlocks */
  return LSRV_STATE_OK;
}

const char *lsrv_state_status_name(lsrv_state_status status)
{
  static const char *const names[] = { "ok", "state_missing", "state_corrupt", "state_unwritable", "state_unbound" };
  return (unsigned)status < sizeof names / sizeof *names ? names[status] : "state_corrupt";
}

/* ------------------------------------------------------------------ */
/* Returning a certificate                                             */
/* ------------------------------------------------------------------ */

lsrv_return_status lsrv_return(const char *cert_path, const lsrv_public_key *keys, size_t n_keys,
                               const char *product, lsrv_state *state, char *receipt, size_t receipt_len)
{
  char text[LSRV_CERT_MAX + 1];
  lsrv_result r;
  struct stat st;
  ssize_t n;
  int fd, written;
  const lsrv_certificate *c = &r.cert;
  if (cert_path == NULL || (fd = open(cert_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
    return LSRV_RETURN_UNREADABLE;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return LSRV_RETURN_UNREADABLE;
  }
  n = read(fd, text, sizeof text);
  close(fd);
  if (n <= 0 || n > LSRV_CERT_MAX) return LSRV_RETURN_UNREADABLE;
  /* Genuine and this product's: the machine and the dates do not matter
   * (an expired certificate may be returned too), so the verdicts after
   * wrong_product are all fine here (the time 0 stops at clock_rollback). */
  switch (lsrv_verify(text, (size_t)n, keys, n_keys, product, NULL, 0, NULL, &r)) {
  case LSRV_MALFORMED: case LSRV_UNKNOWN_SIGNER: case LSRV_BAD_SIGNATURE: case LSRV_WRONG_PRODUCT:
    return LSRV_RETURN_REFUSED;
  default:
    break;
  }
  if (state == NULL || !state->bound || strcmp(state->license, c->license) != 0 ||
      strcmp(state->server, c->server) != 0)
    return LSRV_RETURN_STATE_MISMATCH;
  if (receipt == NULL) return LSRV_RETURN_NO_ROOM;
  written = snprintf(receipt, receipt_len,
                     "-----BEGIN LICENSOR RETURN RECEIPT-----\nformat: 1\nlicense: %s\nserver: %s\n"
                     "fingerprint: %s\ncertificate: %s\n-----END LICENSOR RETURN RECEIPT-----\n",
                     c->license, c->server, c->fingerprint, c->signature);
  if (written < 0 || (size_t)written >= receipt_len) {
    if (receipt_len > 0) receipt[0] = '\0';
    return LSRV_RETURN_NO_ROOM;
  }
  if (unlink(cert_path) != 0) {
    receipt[0] = '\0';
    return LSRV_RETURN_UNDELETABLE;
  }
  if (state->revoked == LSRV_NOT_REVOKED || c->issued > state->revoked) {
    state->revoked = c->issued;
    snprintf(state->reason, sizeof state->reason, "returned");
  }
  return LSRV_RETURNED;
}

const char *lsrv_return_status_name(lsrv_return_status status)
{
  static const char *const names[] = { "returned", "certificate_unreadable", "certificate_refused",
                                       "state_mismatch", "receipt_too_long", "certificate_undeletable" };
  return (unsigned)status < sizeof names / sizeof *names ? names[status] : "certificate_refused";
}
