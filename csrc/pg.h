/*
 * pg.h -- the PostgreSQL connection under licensor.open("postgresql://..."):
 * the same shape as store.h's SQLite layer, so that lua/licensor/store/
 * drives either through one set of methods.
 *
 * Statements are written once, with SQLite's `?` and `?N` placeholders;
 * lsr_pg_prepare rewrites them to PostgreSQL's `$N` and prepares each on
 * a connection the first time it runs there.  A connection found broken
 * outside a transaction is re-established (PQreset, which walks a
 * multi-host connection string again, so target_session_attrs=read-write
 * finds a promoted standby) and the statement tried once more; inside a
 * transaction a broken connection is the transaction's failure.
 *
 * Every wait on the server is bounded by the connection's deadline
 * (deadline_ms, on CLOCK_MONOTONIC, the clock of core.monotonic_ms): when
 * it passes, the statement is cancelled (PQcancel) and its answer awaited
 * LSR_PG_CANCEL_GRACE_MS longer; then the connection is dropped.  A
 * connection that sent a cancel is always dropped after the call, so a
 * late cancel can never hit the next statement.
 *
 * Only a COMMIT the server confirmed is LSR_PG_OK.  A COMMIT answered with
 * a WARNING (the cancelled wait for synchronous replication: "committed
 * locally, but might not have been replicated"), or whose connection was
 * lost or whose answer never came, is LSR_PG_UNKNOWN: it may or may not
 * have happened, and may be lost with the primary.
 *
 * It knows nothing of licenses and does not include lua.h.
 */
#ifndef LICENSOR_PG_H
#define LICENSOR_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* What a failed call means to the caller (lsr_pg_error says more). */
typedef enum {
  LSR_PG_OK = 0,
  LSR_PG_UNAVAILABLE,   /* no connection to a writable server */
  LSR_PG_RETRY,         /* serialization failure or deadlock: run the transaction again */
  LSR_PG_CONSTRAINT,    /* a unique, foreign-key or check constraint */
  LSR_PG_TIMEOUT,       /* statement_timeout */
  LSR_PG_READ_ONLY,     /* a write inside a read-only transaction */
  LSR_PG_INVALID,       /* SQL the server refuses (syntax, unknown names) */
  LSR_PG_UNKNOWN,       /* a COMMIT whose outcome is unknown (see above) */
  LSR_PG_ERROR          /* anything else */
} lsr_pg_status;

typedef struct {
  char *sql;      /* with $N placeholders */
  unsigned hash;  /* of the text as given, for lsr_pg_prepare's lookup */
  int nparams;
  bool prepared;  /* on the current connection */
} lsr_pg_statement;

/* A statement sent with the next one (lsr_pg_defer): its id (-1: BEGIN)
 * and copies of its values. */
typedef struct {
  int id;
  int n;
  char **values;
} lsr_pg_deferred;

typedef struct {
  PGconn *conn;
  char *conninfo;             /* as libpq takes it (licensor's own parameters removed) */
  bool prepare;               /* named prepared statements (prepared_statements=off: none) */
  long long deadline_ms;      /* CLOCK_MONOTONIC ms after which waits end; 0: none */
  bool broken;                /* to be dropped and opened again before its next use */
  bool timed_out;             /* the last call ended at its deadline without an answer */
  bool committing;            /* a COMMIT is in flight: its WARNINGs make it unknown */
  bool commit_warned;
  char warning[256];          /* the WARNING a COMMIT got */
  pid_t owner;                /* the process that opened it */
  lsr_pg_statement *stmts;
  int n_stmts;
  int cap_stmts;
  bool in_transaction;
  bool sent;                  /* some of the current transaction reached the server */
  lsr_pg_deferred *deferred;  /* statements waiting for the next round trip */
  int n_deferred;
  int cap_deferred;
  int stale_ms;               /* how old a cached read may be (lsr_pg_generation) */
  unsigned long commits;      /* committed by this connection */
  unsigned long calls;        /* generation calls, for stale_ms 0 */
  char message[512];          /* the last failure */
} lsr_pg;

/* The most parameters one statement takes. */
#define LSR_PG_MAX_PARAMS 64
/* How long a cancelled statement's answer is awaited past the deadline. */
#define LSR_PG_CANCEL_GRACE_MS 1000
/* The most databases one OS thread keeps a connection to (lsr_pg_thread). */
#define LSR_PG_THREAD_MAX 4

/* Connects with conninfo (a URL or keyword=value string; connect_timeout
 * defaults to 5 s; licensor's own parameter prepared_statements=off is
 * taken out), within deadline_ms if not 0.  False with a message in err;
 * *pg is then closed. */
bool lsr_pg_open(lsr_pg *pg, const char *conninfo, int stale_ms, long long deadline_ms, char *err,
                 size_t errlen);

/* The calling OS thread's connection to conninfo, opened at its first use
 * and kept for the thread's life (nginx's thread pool: the Lua VMs that
 * run there come and go, the connections stay, one per thread).  NULL
 * with a message in err when it cannot be opened (tried again next time). */
lsr_pg *lsr_pg_thread(const char *conninfo, int stale_ms, long long deadline_ms, char *err, size_t errlen);

/* CLOCK_MONOTONIC in milliseconds (the deadline's clock). */
long long lsr_pg_now_ms(void);
void lsr_pg_close(lsr_pg *pg);
/* In a forked child: frees the handle without telling the server, whose
 * session still belongs to the parent. */
void lsr_pg_forget(lsr_pg *pg);
bool lsr_pg_is_owner(const lsr_pg *pg);

/* Rewrites `?` (numbered in order) and `?N` to `$N` outside quotes and
 * comments.  Returns the highest parameter number, or -1 when out is too
 * small or a number is out of range. */
int lsr_pg_translate(const char *sql, char *out, size_t outlen);

/* Keeps sql (translated) and returns its id (>= 0), or -1; the same text
 * twice is the same id. */
int lsr_pg_prepare(lsr_pg *pg, const char *sql);
int lsr_pg_param_count(const lsr_pg *pg, int id);
const char *lsr_pg_sql(const lsr_pg *pg, int id);

/* Runs statement `id` (or, with id < 0, the SQL text `sql`, translated
 * by the caller) with n text values (NULL is SQL NULL).  On LSR_PG_OK
 * *result holds the rows (PQclear it). */
lsr_pg_status lsr_pg_run(lsr_pg *pg, int id, const char *sql, int n, const char *const *values,
                         PGresult **result);

/* Queues statement `id` with n values (copied) to be sent with the next
 * statement that needs an answer, or with the commit, in one round trip
 * (libpq's pipeline mode): for statements whose answer nobody reads (row
 * locks, inserts).  The server runs everything in order, so a later read
 * sees their effects; a failure of one of them is the failure of the call
 * that sends it. */
lsr_pg_status lsr_pg_defer(lsr_pg *pg, int id, int n, const char *const *values);

/* A script of statements without parameters or results (schema). */
lsr_pg_status lsr_pg_exec(lsr_pg *pg, const char *script);

/* READ COMMITTED transactions; workflows take row locks (see store).  A
 * read-write BEGIN is deferred: it travels with the transaction's first
 * statement. */
lsr_pg_status lsr_pg_begin(lsr_pg *pg, bool read_only);
lsr_pg_status lsr_pg_commit(lsr_pg *pg);
void lsr_pg_rollback(lsr_pg *pg);

/* A number that changes at least every stale_ms milliseconds and after
 * every commit of this connection: a cache of reads kept while it is
 * unchanged is never older than stale_ms (stale_ms 0: it always changes). */
double lsr_pg_generation(lsr_pg *pg);

const char *lsr_pg_error(const lsr_pg *pg);

#endif
