/*
 * store.h -- the SQLite connection under licensor.open: pragmas, prepared
 * statements kept for the life of the connection, BEGIN IMMEDIATE
 * transactions that wait out other writers (or deferred ones that read
 * first and take the write lock at their first write), and the process
 * that owns it.
 *
 * It knows nothing of licenses: lua/licensor/schema.lua holds the schema,
 * lua/licensor/store/ (init.lua, sql.lua and the workflow files) the
 * statements and the workflows, and drives this layer through the binding.
 * A database file it creates is private: mode 0600 (narrowed by the
 * umask), which SQLite gives its -wal and -shm files too.
 */
#ifndef LICENSOR_STORE_H
#define LICENSOR_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
  sqlite3 *db;
  pid_t owner;              /* the process that opened it */
  volatile unsigned char *fork_marker; /* a page the kernel zeroes in a child */
  sqlite3_stmt **stmts;     /* prepared once, reset after each use */
  sqlite3_stmt *begin_stmt; /* BEGIN IMMEDIATE, BEGIN DEFERRED, COMMIT, ROLLBACK, prepared */
  sqlite3_stmt *begin_deferred_stmt;
  sqlite3_stmt *commit_stmt;
  sqlite3_stmt *rollback_stmt;
  int n_stmts;
  int cap_stmts;
  int busy_ms;
  bool in_transaction;
  const unsigned char *shm; /* the WAL-index header, mapped read-only */
  size_t shm_len;
  long long query_deadline; /* store:query's end, on the monotonic clock (ms) */
  unsigned char stamp[48];  /* the header as last seen by lsr_store_generation */
  double generation;        /* bumped whenever that header changed */
} lsr_store;

/* Size of the WAL-index header copy that lsr_store_change_stamp reads. */
#define LSR_STAMP_LEN 48

/* Opens (or creates) path with WAL, foreign keys, the busy timeout and
 * synchronous=FULL (full) or NORMAL.  On failure returns false with a
 * message in err; *store is then closed. */
bool lsr_store_open(lsr_store *store, const char *path, bool full_sync, int busy_ms,
                    char *err, size_t errlen);

/* Finalises the statements and closes the connection (not in a forked
 * child: see lsr_store_forget). */
void lsr_store_close(lsr_store *store);

/* In a child of the owner: drops the handle without touching the file,
 * since closing would run the parent's WAL logic from the wrong process. */
void lsr_store_forget(lsr_store *store);

bool lsr_store_is_owner(const lsr_store *store);

/* Prepares sql and keeps it; returns its id (>= 0) or -1 (see errmsg). */
int lsr_store_prepare(lsr_store *store, const char *sql, size_t len);

sqlite3_stmt *lsr_store_statement(const lsr_store *store, int id);

/* BEGIN IMMEDIATE, retried while another writer holds the lock, up to
 * busy_ms in all; or (deferred) BEGIN DEFERRED, which takes no lock: the
 * first read takes a WAL snapshot, the first write the write lock.  That
 * upgrade does not wait: it fails at once with SQLITE_BUSY while another
 * connection holds the write lock, and with SQLITE_BUSY_SNAPSHOT when one
 * committed since the snapshot was taken (the caller rolls back and runs
 * again with BEGIN IMMEDIATE).  Returns the SQLite result code. */
int lsr_store_begin(lsr_store *store, bool deferred);
int lsr_store_commit(lsr_store *store);
void lsr_store_rollback(lsr_store *store);

/* Copies a stamp of the database's last commit into buf (LSR_STAMP_LEN
 * bytes): it differs after any commit by any process.  The stamp is the
 * WAL-index header (SQLite's documented "wal-index" format, version
 * 3007000), read from a read-only mapping of the -shm file without a
 * transaction or a system call.  False when no stamp can be read (no
 * shared memory, another format, a header being written): treat that as
 * "changed". */
bool lsr_store_change_stamp(lsr_store *store, unsigned char *buf);

/* A number that changes whenever the database may have changed since the
 * previous call: equal numbers mean no commit by anyone in between. */
double lsr_store_generation(lsr_store *store);

/* Prepares one statement of store:query for people: an authorizer allows
 * reading only (SELECT, and PRAGMAs that report), so BEGIN, ATTACH, any
 * write and any PRAGMA that sets something fail to prepare (SQLITE_AUTH).
 * Returns the SQLite code. */
int lsr_store_prepare_query(lsr_store *store, const char *sql, size_t len, sqlite3_stmt **stmt);

/* Steps a store:query statement, interrupted (SQLITE_INTERRUPT) once
 * limit_ms have passed since the first step of this query (first: true). */
int lsr_store_step_query(lsr_store *store, sqlite3_stmt *stmt, int limit_ms, bool first);

/* Copies the database into a new file at path with SQLite's online backup
 * API, a few pages at a time, so writers of other connections go on
 * meanwhile (a step that meets their lock waits and tries again, up to
 * busy_ms).  Returns the SQLite code; a message in err on failure. */
int lsr_store_backup(lsr_store *store, const char *path, char *err, size_t errlen);

/* Runs a script of statements without results (schema, pragmas). */
int lsr_store_exec(lsr_store *store, const char *sql);

#endif
