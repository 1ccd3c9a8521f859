/*
 * store.c -- the SQLite connection (see store.h).
 */
#define _DEFAULT_SOURCE   /* usleep */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WALINDEX_VERSION 3007000u

/* Maps the first bytes of "<db>-shm" read-only, if there is one. */
static void map_shm(lsr_store *store)
{
  const char *db = sqlite3_db_filename(store->db, "main");
  char path[4096];
  struct stat st;
  int fd;
  void *map;
  if (db == NULL || db[0] == '\0' || snprintf(path, sizeof path, "%s-shm", db) >= (int)sizeof path) return;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (fstat(fd, &st) == 0 && st.st_size >= 2 * LSR_STAMP_LEN) {
    map = mmap(NULL, 2 * LSR_STAMP_LEN, PROT_READ, MAP_SHARED, fd, 0);
    if (map != MAP_FAILED) {
      store->shm = map;
      store->shm_len = 2 * LSR_STAMP_LEN;
    }
  }
  close(fd);
}

static void unmap_shm(lsr_store *store)
{
  if (store->shm != NULL) munmap((void *)(uintptr_t)store->shm, store->shm_len);
  store->shm = NULL;
  store->shm_len = 0;
}

bool lsr_store_change_stamp(lsr_store *store, unsigned char *buf)
{
  unsigned char second[LSR_STAMP_LEN];
  uint32_t version;
  /* SQLite creates the -shm file with the first transaction: map it then. */
  if (store->shm == NULL) map_shm(store);
  if (store->shm == NULL) return false;
  /* SQLite keeps two copies of the header and writes them one after the
   * other: equal copies mean a header that is not being written. */
  __sync_synchronize();
  memcpy(buf, store->shm, LSR_STAMP_LEN);
  memcpy(second, store->shm + LSR_STAMP_LEN, LSR_STAMP_LEN);
  memcpy(&version, buf, sizeof version);
  return version == WALINDEX_VERSION && memcmp(buf, second, LSR_STAMP_LEN) == 0;
}

static bool fail(lsr_store *store, char *err, size_t errlen, const char *what)
{
  snprintf(err, errlen, "%s: %s", what, store->db ? sqlite3_errmsg(store->db) : "out of memory");
  lsr_store_close(store);
  return false;
}

/* One page marked 1 that the kernel hands a forked child zeroed
 * (MADV_WIPEONFORK): checking it costs no system call, unlike getpid(). */
static volatile unsigned char *new_fork_marker(void)
{
#ifdef MADV_WIPEONFORK
  long page = sysconf(_SC_PAGESIZE);
  void *map = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return NULL;
  if (madvise(map, (size_t)page, MADV_WIPEONFORK) != 0) {
    munmap(map, (size_t)page);
    return NULL;
  }
  *(volatile unsigned char *)map = 1;
  return map;
#else
  return NULL;
#endif
}

static void free_fork_marker(lsr_store *store)
{
  if (store->fork_marker != NULL)
    munmap((void *)(uintptr_t)store->fork_marker, (size_t)sysconf(_SC_PAGESIZE));
  store->fork_marker = NULL;
}

/* Creates the database file, empty, with mode 0600 when it does not exist
 * yet: SQLite would create it 0644, and gives its -wal and -shm files the
 * database file's mode.  Never through a symlink: a symlink whose target
 * does not exist is refused (false), since SQLite would create the target
 * 0644; an existing file, or a symlink to one, is left alone, as is any
 * other failure, which sqlite3_open_v2 then reports in its words.  Not
 * for SQLite's special names ("", ":memory:", "file:" URIs). */
static bool create_private(const char *path)
{
  struct stat st;
  int fd;
  if (path[0] == '\0' || strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0) return true;
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) {
    close(fd);
    return true;
  }
  if (errno == EEXIST && lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && stat(path, &st) != 0 && errno == ENOENT)
    return false;
  return true;
}

bool lsr_store_open(lsr_store *store, const char *path, bool full_sync, int busy_ms,
                    char *err, size_t errlen)
{
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  char pragmas[256];
  memset(store, 0, sizeof *store);
  store->owner = getpid();
  store->fork_marker = new_fork_marker();
  store->busy_ms = busy_ms;
  if (!create_private(path)) {
    snprintf(err, errlen, "%s: a symlink to no file (a new database is never created through a symlink: "
             "give the target's path)", path);
    lsr_store_close(store);
    return false;
  }
  if (sqlite3_open_v2(path, &store->db, flags, NULL) != SQLITE_OK) return fail(store, err, errlen, path);
  sqlite3_extended_result_codes(store->db, 1);
  /* More lookaside slots: a workflow's statements then rarely call malloc. */
  sqlite3_db_config(store->db, SQLITE_DBCONFIG_LOOKASIDE, NULL, 512, 512);
  sqlite3_busy_timeout(store->db, busy_ms);
  /* WAL: readers never block the writer; synchronous FULL also survives
   * power loss, NORMAL survives a killed process. */
  snprintf(pragmas, sizeof pragmas,
           "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; PRAGMA foreign_keys = ON;"
           " PRAGMA trusted_schema = OFF; PRAGMA wal_autocheckpoint = 10000;",
           full_sync ? "FULL" : "NORMAL");
  if (sqlite3_exec(store->db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
    return fail(store, err, errlen, path);
  if (sqlite3_prepare_v3(store->db, "BEGIN IMMEDIATE", -1, SQLITE_PREPARE_PERSISTENT, &store->begin_stmt, NULL) ||
      sqlite3_prepare_v3(store->db, "BEGIN DEFERRED", -1, SQLITE_PREPARE_PERSISTENT, &store->begin_deferred_stmt,
                         NULL) ||
      sqlite3_prepare_v3(store->db, "COMMIT", -1, SQLITE_PREPARE_PERSISTENT, &store->commit_stmt, NULL) ||
      sqlite3_prepare_v3(store->db, "ROLLBACK", -1, SQLITE_PREPARE_PERSISTENT, &store->rollback_stmt, NULL))
    return fail(store, err, errlen, path);
  return true;
}

/* Runs one of the transaction statements; returns the SQLite code. */
static int run_once(sqlite3_stmt *stmt)
{
  int rc = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void finalize_all(lsr_store *store)
{
  sqlite3_finalize(store->begin_stmt);
  sqlite3_finalize(store->begin_deferred_stmt);
  sqlite3_finalize(store->commit_stmt);
  sqlite3_finalize(store->rollback_stmt);
  store->begin_stmt = store->begin_deferred_stmt = store->commit_stmt = store->rollback_stmt = NULL;
  for (int i = 0; i < store->n_stmts; i++) sqlite3_finalize(store->stmts[i]);
  free(store->stmts);
  store->stmts = NULL;
  store->n_stmts = store->cap_stmts = 0;
}

void lsr_store_close(lsr_store *store)
{
  free_fork_marker(store);
  if (store->db == NULL) return;
  unmap_shm(store);
  finalize_all(store);
  sqlite3_close_v2(store->db);
  store->db = NULL;
}

void lsr_store_forget(lsr_store *store)
{
  /* The statements belong to the parent's connection: drop, not finalise. */
  store->begin_stmt = store->begin_deferred_stmt = store->commit_stmt = store->rollback_stmt = NULL;
  unmap_shm(store);
  free_fork_marker(store);
  free(store->stmts);
  store->stmts = NULL;
  store->n_stmts = store->cap_stmts = 0;
  store->db = NULL;
}

bool lsr_store_is_owner(const lsr_store *store)
{
  if (store->fork_marker != NULL) return store->fork_marker[0] == 1;
  /* Without the marker: inside a transaction this process began, it is the
   * owner, which spares a getpid() on every statement of a workflow. */
  return store->in_transaction || store->owner == getpid();
}

int lsr_store_prepare(lsr_store *store, const char *sql, size_t len)
{
  sqlite3_stmt *stmt = NULL;
  if (store->n_stmts == store->cap_stmts) {
    int grown = store->cap_stmts ? store->cap_stmts * 2 : 32;
    sqlite3_stmt **bigger = realloc(store->stmts, (size_t)grown * sizeof *bigger);
    if (bigger == NULL) return -1;
    store->stmts = bigger;
    store->cap_stmts = grown;
  }
  if (sqlite3_prepare_v3(store->db, sql, (int)len, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) != SQLITE_OK ||
      stmt == NULL) {
    sqlite3_finalize(stmt);
    return -1;
  }
  store->stmts[store->n_stmts] = stmt;
  return store->n_stmts++;
}

sqlite3_stmt *lsr_store_statement(const lsr_store *store, int id)
{
  return id >= 0 && id < store->n_stmts ? store->stmts[id] : NULL;
}

static long long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int lsr_store_begin(lsr_store *store, bool deferred)
{
  /* The busy handler already waits inside one attempt; this loop covers
   * the cases where SQLite returns BUSY at once (e.g. a WAL restart).
   * BEGIN DEFERRED locks nothing, so it is never busy. */
  long long deadline = now_ms() + store->busy_ms;
  sqlite3_stmt *begin = deferred ? store->begin_deferred_stmt : store->begin_stmt;
  int rc;
  for (;;) {
    rc = run_once(begin);
    if ((rc & 0xff) != SQLITE_BUSY || now_ms() >= deadline) break;
    usleep(1000);
  }
  store->in_transaction = rc == SQLITE_OK;
  return rc;
}

int lsr_store_commit(lsr_store *store)
{
  long long deadline = now_ms() + store->busy_ms;
  int rc;
  for (;;) {
    rc = run_once(store->commit_stmt);
    if ((rc & 0xff) != SQLITE_BUSY || now_ms() >= deadline) break;
    usleep(1000);
  }
  if (rc != SQLITE_OK) lsr_store_rollback(store);
  store->in_transaction = false;
  return rc;
}

void lsr_store_rollback(lsr_store *store)
{
  if (sqlite3_get_autocommit(store->db) == 0) run_once(store->rollback_stmt);
  store->in_transaction = false;
}

double lsr_store_generation(lsr_store *store)
{
  unsigned char now[LSR_STAMP_LEN];
  if (!lsr_store_change_stamp(store, now) || memcmp(now, store->stamp, sizeof now) != 0) {
    memcpy(store->stamp, now, sizeof now);
    store->generation += 1;
  }
  return store->generation;
}

int lsr_store_exec(lsr_store *store, const char *sql)
{
  return sqlite3_exec(store->db, sql, NULL, NULL, NULL);
}

/* PRAGMAs store:query may run: those that only report, with or without an
 * argument, and those that would set something when given a value. */
static bool reading_pragma(const char *name, const char *value)
{
  static const char *const reports[] = {
    "integrity_check", "quick_check", "foreign_key_check", "foreign_key_list", "table_info",
    "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "page_count",
    "freelist_count", "data_version", "compile_options", "database_list", "collation_list",
    "function_list", "pragma_list", NULL
  };
  static const char *const settings[] = {
    "user_version", "journal_mode", "page_size", "synchronous", "foreign_keys", "cache_size",
    "application_id", "auto_vacuum", "encoding", "wal_autocheckpoint", "busy_timeout", NULL
  };
  if (name == NULL) return false;
  for (int i = 0; reports[i] != NULL; i++)
    if (sqlite3_stricmp(name, reports[i]) == 0) return true;
  for (int i = 0; settings[i] != NULL; i++)
    if (sqlite3_stricmp(name, settings[i]) == 0) return value == NULL;
  return false;
}

/* The authorizer of store:query: reading only.  *saw_pragma notes a
 * PRAGMA, which sqlite3_stmt_readonly never calls read-only. */
static int reading_only(void *saw_pragma, int action, const char *a1, const char *a2, const char *db,
                        const char *trigger)
{
  (void)db;
  (void)trigger;
  switch (action) {
  case SQLITE_SELECT:
  case SQLITE_READ:
  case SQLITE_FUNCTION:
  case SQLITE_RECURSIVE:
    return SQLITE_OK;
  case SQLITE_PRAGMA:
    *(bool *)saw_pragma = true;
    return reading_pragma(a1, a2) ? SQLITE_OK : SQLITE_DENY;
  default:
    return SQLITE_DENY;
  }
}

int lsr_store_prepare_query(lsr_store *store, const char *sql, size_t len, sqlite3_stmt **stmt)
{
  int rc;
  bool saw_pragma = false;
  sqlite3_set_authorizer(store->db, reading_only, &saw_pragma);
  rc = sqlite3_prepare_v2(store->db, sql, (int)len, stmt, NULL);
  sqlite3_set_authorizer(store->db, NULL, NULL);
  /* What the authorizer never sees (VACUUM) must still not write. */
  if (rc == SQLITE_OK && *stmt != NULL && !saw_pragma && !sqlite3_stmt_readonly(*stmt)) {
    sqlite3_finalize(*stmt);
    *stmt = NULL;
    rc = SQLITE_AUTH;
  }
  return rc;
}

/* Progress handler of store:query: non-zero past the deadline. */
static int past_deadline(void *data)
{
  const lsr_store *store = data;
  return now_ms() > store->query_deadline;
}

int lsr_store_step_query(lsr_store *store, sqlite3_stmt *stmt, int limit_ms, bool first)
{
  int rc;
  if (first) store->query_deadline = now_ms() + limit_ms;
  sqlite3_progress_handler(store->db, 1000, past_deadline, store);
  rc = sqlite3_step(stmt);
  sqlite3_progress_handler(store->db, 0, NULL, NULL);
  return rc;
}

int lsr_store_backup(lsr_store *store, const char *path, char *err, size_t errlen)
{
  sqlite3 *dest = NULL;
  long long deadline = now_ms() + store->busy_ms;
  int rc = sqlite3_open_v2(path, &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_backup *backup = sqlite3_backup_init(dest, "main", store->db, "main");
    if (backup == NULL) {
      rc = sqlite3_errcode(dest);
    } else {
      do {
        rc = sqlite3_backup_step(backup, 256);
        if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && now_ms() < deadline) sqlite3_sleep(5);
        else if (rc == SQLITE_OK) deadline = now_ms() + store->busy_ms;   /* progress: wait afresh */
      } while (rc == SQLITE_OK || ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && now_ms() < deadline));
      sqlite3_backup_finish(backup);
      if (rc == SQLITE_DONE) rc = sqlite3_errcode(dest);
    }
  }
  if (rc != SQLITE_OK) snprintf(err, errlen, "%s: %s", path, dest ? sqlite3_errmsg(dest) : sqlite3_errstr(rc));
  sqlite3_close(dest);
  return rc;
}
