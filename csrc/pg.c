/*
 * pg.c -- the PostgreSQL connection (see pg.h), over the system libpq.
 */
#define _POSIX_C_SOURCE 200809L
#include "pg.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* libpq prints server notices (a ROLLBACK with no transaction, say) on
 * stderr by default; the store reports failures itself. */
static void ignore_notice(void *arg, const char *message)
{
  (void)arg;
  (void)message;
}

static void set_message(lsr_pg *pg, const char *text)
{
  size_t len;
  snprintf(pg->message, sizeof pg->message, "%s", text && text[0] ? text : "unknown PostgreSQL failure");
  len = strlen(pg->message);
  while (len > 0 && (pg->message[len - 1] == '\n' || pg->message[len - 1] == ' ')) pg->message[--len] = '\0';
}

const char *lsr_pg_error(const lsr_pg *pg)
{
  return pg->message;
}

bool lsr_pg_open(lsr_pg *pg, const char *conninfo, int stale_ms, char *err, size_t errlen)
{
  /* Processed in order: the caller's string, expanded from dbname, wins
   * over these defaults. */
  const char *const keywords[] = { "connect_timeout", "application_name", "dbname", NULL };
  const char *const values[] = { "5", "licensor", conninfo, NULL };
  memset(pg, 0, sizeof *pg);
  pg->owner = getpid();
  pg->stale_ms = stale_ms;
  pg->conn = PQconnectdbParams(keywords, values, 1);
  if (pg->conn == NULL) {
    snprintf(err, errlen, "out of memory");
    return false;
  }
  if (PQstatus(pg->conn) != CONNECTION_OK) {
    set_message(pg, PQerrorMessage(pg->conn));
    snprintf(err, errlen, "%s", pg->message);
    lsr_pg_close(pg);
    return false;
  }
  PQsetNoticeProcessor(pg->conn, ignore_notice, NULL);
  PQsetClientEncoding(pg->conn, "UTF8");
  return true;
}

static void free_statements(lsr_pg *pg)
{
  for (int i = 0; i < pg->n_stmts; i++) free(pg->stmts[i].sql);
  free(pg->stmts);
  pg->stmts = NULL;
  pg->n_stmts = pg->cap_stmts = 0;
}

static void clear_deferred(lsr_pg *pg);

void lsr_pg_close(lsr_pg *pg)
{
  if (pg->conn != NULL) PQfinish(pg->conn);
  pg->conn = NULL;
  free_statements(pg);
  clear_deferred(pg);
  free(pg->deferred);
  pg->deferred = NULL;
  pg->cap_deferred = 0;
}

void lsr_pg_forget(lsr_pg *pg)
{
  int sock = pg->conn ? PQsocket(pg->conn) : -1;
  int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  /* PQfinish says goodbye on the socket: let it say so to /dev/null. */
  if (sock >= 0 && null_fd >= 0) dup2(null_fd, sock);
  if (null_fd >= 0) close(null_fd);
  lsr_pg_close(pg);
}

bool lsr_pg_is_owner(const lsr_pg *pg)
{
  return pg->owner == getpid();
}

/* Copies the quoted text or comment starting at *p (quote `end`, or a
 * line for "--"); false when out is full. */
static bool copy_until(const char **p, char end, char *out, size_t outlen, size_t *o)
{
  const char *s = *p;
  do {
    if (*o + 1 >= outlen) return false;
    out[(*o)++] = *s++;
  } while (*s != '\0' && *s != end);
  if (*s == end) {
    if (*o + 1 >= outlen) return false;
    out[(*o)++] = *s++;
  }
  *p = s;
  return true;
}

int lsr_pg_translate(const char *sql, char *out, size_t outlen)
{
  size_t o = 0;
  int max = 0;
  const char *p = sql;
  while (*p != '\0') {
    if (*p == '\'' || *p == '"') {
      if (!copy_until(&p, *p, out, outlen, &o)) return -1;
    } else if (p[0] == '-' && p[1] == '-') {
      if (!copy_until(&p, '\n', out, outlen, &o)) return -1;
    } else if (*p == '?') {
      long n = max + 1;
      int len;
      p++;
      if (isdigit((unsigned char)*p)) {
        char *end;
        n = strtol(p, &end, 10);
        p = end;
      }
      if (n < 1 || n > LSR_PG_MAX_PARAMS) return -1;
      len = snprintf(out + o, outlen - o, "$%ld", n);
      if (len < 0 || (size_t)len >= outlen - o) return -1;
      o += (size_t)len;
      if (n > max) max = (int)n;
    } else {
      if (o + 1 >= outlen) return -1;
      out[o++] = *p++;
    }
  }
  out[o] = '\0';
  return max;
}

int lsr_pg_prepare(lsr_pg *pg, const char *sql)
{
  size_t cap = strlen(sql) * 2 + 16;   /* "?" becomes at most "$64" */
  char *text = malloc(cap);
  int n;
  if (text == NULL) {
    set_message(pg, "out of memory");
    return -1;
  }
  n = lsr_pg_translate(sql, text, cap);
  if (n < 0) {
    free(text);
    set_message(pg, "too many parameters");
    return -1;
  }
  if (pg->n_stmts == pg->cap_stmts) {
    int cap_stmts = pg->cap_stmts ? pg->cap_stmts * 2 : 64;
    lsr_pg_statement *grown = realloc(pg->stmts, (size_t)cap_stmts * sizeof *grown);
    if (grown == NULL) {
      free(text);
      set_message(pg, "out of memory");
      return -1;
    }
    pg->stmts = grown;
    pg->cap_stmts = cap_stmts;
  }
  pg->stmts[pg->n_stmts].sql = text;
  pg->stmts[pg->n_stmts].nparams = n;
  pg->stmts[pg->n_stmts].prepared = false;
  return pg->n_stmts++;
}

int lsr_pg_param_count(const lsr_pg *pg, int id)
{
  return id >= 0 && id < pg->n_stmts ? pg->stmts[id].nparams : -1;
}

const char *lsr_pg_sql(const lsr_pg *pg, int id)
{
  return id >= 0 && id < pg->n_stmts ? pg->stmts[id].sql : NULL;
}

/* What a failed result's SQLSTATE means. */
static lsr_pg_status classify(const char *state)
{
  if (state == NULL) return LSR_PG_UNAVAILABLE;
  if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
      strcmp(state, "57P03") == 0)
    return LSR_PG_UNAVAILABLE;
  if (strcmp(state, "25006") == 0) return LSR_PG_READ_ONLY;
  if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) return LSR_PG_RETRY;
  if (strncmp(state, "23", 2) == 0) return LSR_PG_CONSTRAINT;
  if (strcmp(state, "57014") == 0) return LSR_PG_TIMEOUT;
  if (strncmp(state, "42", 2) == 0 || strncmp(state, "22", 2) == 0 || strncmp(state, "0A", 2) == 0)
    return LSR_PG_INVALID;
  return LSR_PG_ERROR;
}

/* The status of a result; failures keep their message and free it. */
static lsr_pg_status check_result(lsr_pg *pg, PGresult *res)
{
  lsr_pg_status status;
  ExecStatusType kind = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (kind == PGRES_COMMAND_OK || kind == PGRES_TUPLES_OK) return LSR_PG_OK;
  if (res == NULL || PQstatus(pg->conn) == CONNECTION_BAD) {
    set_message(pg, PQerrorMessage(pg->conn));
    status = LSR_PG_UNAVAILABLE;
  } else {
    set_message(pg, PQresultErrorMessage(res));
    status = classify(PQresultErrorField(res, PG_DIAG_SQLSTATE));
  }
  PQclear(res);
  return status;
}

/* Re-establishes a broken connection; its prepared statements are gone. */
static bool reconnect(lsr_pg *pg)
{
  PQreset(pg->conn);
  if (PQstatus(pg->conn) != CONNECTION_OK) {
    set_message(pg, PQerrorMessage(pg->conn));
    return false;
  }
  for (int i = 0; i < pg->n_stmts; i++) pg->stmts[i].prepared = false;
  PQsetClientEncoding(pg->conn, "UTF8");
  return true;
}

static void statement_name(int id, char *name, size_t len)
{
  snprintf(name, len, "licensor_%d", id);
}

static lsr_pg_status attempt(lsr_pg *pg, int id, const char *sql, int n, const char *const *values,
                             PGresult **result)
{
  PGresult *res;
  lsr_pg_status status;
  if (id >= 0) {
    char name[24];
    lsr_pg_statement *stmt = &pg->stmts[id];
    statement_name(id, name, sizeof name);
    if (!stmt->prepared) {
      status = check_result(pg, PQprepare(pg->conn, name, stmt->sql, stmt->nparams, NULL));
      if (status != LSR_PG_OK) return status;
      stmt->prepared = true;
    }
    res = PQexecPrepared(pg->conn, name, n, values, NULL, NULL, 0);
  } else {
    res = PQexecParams(pg->conn, sql, n, NULL, values, NULL, NULL, 0);
  }
  status = check_result(pg, res);
  if (status == LSR_PG_OK) *result = res;
  return status;
}

/* ---- deferred statements, sent in one round trip (pipeline mode) ---- */

static void free_deferred(lsr_pg_deferred *d)
{
  for (int i = 0; i < d->n; i++) free(d->values[i]);
  free(d->values);
  d->values = NULL;
  d->n = 0;
}

static void clear_deferred(lsr_pg *pg)
{
  for (int i = 0; i < pg->n_deferred; i++) free_deferred(&pg->deferred[i]);
  pg->n_deferred = 0;
}

static char *copy_text(const char *text)
{
  size_t len;
  char *copy;
  if (text == NULL) return NULL;
  len = strlen(text) + 1;
  copy = malloc(len);
  if (copy != NULL) memcpy(copy, text, len);
  return copy;
}

/* One query of a pipeline: what its results are for. */
typedef enum { SENT_PREPARE, SENT_DEFERRED, SENT_MAIN } sent_kind;

typedef struct {
  sent_kind kind;
  int id;   /* the statement prepared (SENT_PREPARE) */
} sent_query;

/* The most queries one pipeline holds: deferred statements (flushed at
 * LSR_PG_MAX_DEFERRED), the main one, and a prepare before each. */
#define LSR_PG_MAX_DEFERRED 32
#define MAX_SENT (2 * (LSR_PG_MAX_DEFERRED + 1))

/* Sends statement id (or the text sql) in pipeline mode, preparing it
 * first on this connection if needed; false if libpq refused to queue it. */
static bool send_query(lsr_pg *pg, int id, const char *sql, int n, const char *const *values, sent_kind kind,
                       sent_query *sent, int *n_sent)
{
  if (id < 0) {
    sent[(*n_sent)++] = (sent_query){ kind, id };
    return PQsendQueryParams(pg->conn, sql, n, NULL, values, NULL, NULL, 0) == 1;
  }
  char name[24];
  lsr_pg_statement *stmt = &pg->stmts[id];
  statement_name(id, name, sizeof name);
  if (!stmt->prepared) {
    sent[(*n_sent)++] = (sent_query){ SENT_PREPARE, id };
    if (PQsendPrepare(pg->conn, name, stmt->sql, stmt->nparams, NULL) != 1) return false;
    stmt->prepared = true;   /* queued before its first use; undone below if it fails */
  }
  sent[(*n_sent)++] = (sent_query){ kind, id };
  return PQsendQueryPrepared(pg->conn, name, n, values, NULL, NULL, 0) == 1;
}

/* Reads every result of a pipeline up to its sync point.  The first
 * failure is the answer; the main query's rows go to *result. */
static lsr_pg_status read_pipeline(lsr_pg *pg, const sent_query *sent, int n_sent, PGresult **result)
{
  lsr_pg_status status = LSR_PG_OK;
  int query = 0, empty = 0;
  for (;;) {
    PGresult *res = PQgetResult(pg->conn);
    ExecStatusType kind;
    if (res == NULL) {   /* the end of one query's results */
      if (PQstatus(pg->conn) == CONNECTION_BAD || ++empty > n_sent + 1) {
        if (status == LSR_PG_OK) set_message(pg, PQerrorMessage(pg->conn));
        return LSR_PG_UNAVAILABLE;
      }
      query++;
      continue;
    }
    empty = 0;
    kind = PQresultStatus(res);
    if (kind == PGRES_PIPELINE_SYNC) {
      PQclear(res);
      return status;
    }
    if (kind == PGRES_PIPELINE_ABORTED) {
      if (query < n_sent && sent[query].kind == SENT_PREPARE) pg->stmts[sent[query].id].prepared = false;
      PQclear(res);
    } else if (kind == PGRES_COMMAND_OK || kind == PGRES_TUPLES_OK) {
      if (query < n_sent && sent[query].kind == SENT_MAIN && status == LSR_PG_OK) *result = res;
      else PQclear(res);
    } else {
      if (query < n_sent && sent[query].kind == SENT_PREPARE) pg->stmts[sent[query].id].prepared = false;
      if (status == LSR_PG_OK) status = check_result(pg, res);
      else PQclear(res);
    }
  }
}

/* The deferred statements and then statement id or sql (none when both
 * are absent: id < 0 and sql NULL), in one round trip. */
static lsr_pg_status pipeline(lsr_pg *pg, int id, const char *sql, int n, const char *const *values,
                              PGresult **result)
{
  sent_query sent[MAX_SENT];
  int n_sent = 0;
  bool queued = PQenterPipelineMode(pg->conn) == 1;
  lsr_pg_status status;
  for (int i = 0; queued && i < pg->n_deferred; i++) {
    const lsr_pg_deferred *d = &pg->deferred[i];
    const char *const *dv = (const char *const *)d->values;
    queued = send_query(pg, d->id, "BEGIN", d->n, dv, SENT_DEFERRED, sent, &n_sent);
  }
  if (queued && (id >= 0 || sql != NULL)) queued = send_query(pg, id, sql, n, values, SENT_MAIN, sent, &n_sent);
  if (queued) queued = PQpipelineSync(pg->conn) == 1;
  pg->sent = true;
  if (!queued) {
    set_message(pg, PQerrorMessage(pg->conn));
    status = LSR_PG_UNAVAILABLE;
  } else {
    status = read_pipeline(pg, sent, n_sent, result);
  }
  if (PQexitPipelineMode(pg->conn) != 1 && status == LSR_PG_OK) {
    set_message(pg, PQerrorMessage(pg->conn));
    status = LSR_PG_UNAVAILABLE;
  }
  if (status != LSR_PG_OK && *result != NULL) {
    PQclear(*result);
    *result = NULL;
  }
  /* Kept when the connection failed: they may go again on a new one. */
  if (status != LSR_PG_UNAVAILABLE) clear_deferred(pg);
  return status;
}

lsr_pg_status lsr_pg_defer(lsr_pg *pg, int id, int n, const char *const *values)
{
  lsr_pg_deferred *d;
  if (pg->n_deferred == LSR_PG_MAX_DEFERRED) {
    PGresult *none = NULL;
    lsr_pg_status status = lsr_pg_run(pg, -1, NULL, 0, NULL, &none);
    if (status != LSR_PG_OK) return status;
  }
  if (pg->n_deferred == pg->cap_deferred) {
    lsr_pg_deferred *grown = realloc(pg->deferred, LSR_PG_MAX_DEFERRED * sizeof *grown);
    if (grown == NULL) goto out_of_memory;
    pg->deferred = grown;
    pg->cap_deferred = LSR_PG_MAX_DEFERRED;
  }
  d = &pg->deferred[pg->n_deferred];
  d->id = id;
  d->n = 0;
  d->values = n > 0 ? calloc((size_t)n, sizeof *d->values) : NULL;
  if (n > 0 && d->values == NULL) goto out_of_memory;
  for (; d->n < n; d->n++) {
    d->values[d->n] = copy_text(values[d->n]);
    if (values[d->n] != NULL && d->values[d->n] == NULL) {
      free_deferred(d);
      goto out_of_memory;
    }
  }
  pg->n_deferred++;
  return LSR_PG_OK;
out_of_memory:
  set_message(pg, "out of memory");
  return LSR_PG_ERROR;
}

/* A connection to send on.  A broken one is re-established unless part
 * of the current transaction has reached the server (then the transaction
 * is lost); deferred statements wait for the new connection. */
static bool usable(lsr_pg *pg)
{
  if (PQstatus(pg->conn) != CONNECTION_BAD) return true;
  if (pg->in_transaction && pg->sent) {
    set_message(pg, "the connection to PostgreSQL was lost during the transaction");
    return false;
  }
  return reconnect(pg);
}

/* Runs with the deferred statements, if any, in the same round trip. */
static lsr_pg_status send_and_run(lsr_pg *pg, int id, const char *sql, int n, const char *const *values,
                                  PGresult **result)
{
  if (pg->n_deferred > 0 || (id < 0 && sql == NULL)) return pipeline(pg, id, sql, n, values, result);
  return attempt(pg, id, sql, n, values, result);
}

lsr_pg_status lsr_pg_run(lsr_pg *pg, int id, const char *sql, int n, const char *const *values,
                         PGresult **result)
{
  lsr_pg_status status;
  /* Nothing of this transaction (if any) has reached the server yet. */
  bool fresh = !pg->in_transaction || !pg->sent;
  *result = NULL;
  if (id < 0 && sql == NULL && pg->n_deferred == 0) return LSR_PG_OK;
  if (!usable(pg)) return LSR_PG_UNAVAILABLE;
  status = send_and_run(pg, id, sql, n, values, result);
  /* A connection that broke while idle (a restarted or promoted server)
   * is found by this call: when it began the work of its transaction and
   * commits nothing, nothing was done, so reconnect and send it again. */
  if (status == LSR_PG_UNAVAILABLE && fresh && PQstatus(pg->conn) == CONNECTION_BAD && reconnect(pg)) {
    pg->sent = false;
    status = send_and_run(pg, id, sql, n, values, result);
  }
  return status;
}

lsr_pg_status lsr_pg_exec(lsr_pg *pg, const char *script)
{
  PGresult *none = NULL;
  lsr_pg_status status = lsr_pg_run(pg, -1, NULL, 0, NULL, &none);   /* deferred ones first */
  if (status != LSR_PG_OK) return status;
  if (!usable(pg)) return LSR_PG_UNAVAILABLE;
  pg->sent = true;
  return check_result(pg, PQexec(pg->conn, script));
}

lsr_pg_status lsr_pg_begin(lsr_pg *pg, bool read_only)
{
  PGresult *res = NULL;
  lsr_pg_status status;
  clear_deferred(pg);
  pg->sent = false;
  if (!read_only) {
    pg->in_transaction = true;
    return lsr_pg_defer(pg, -1, 0, NULL);
  }
  status = lsr_pg_run(pg, -1, "BEGIN READ ONLY", 0, NULL, &res);
  PQclear(res);
  if (status == LSR_PG_OK) pg->in_transaction = pg->sent = true;
  return status;
}

lsr_pg_status lsr_pg_commit(lsr_pg *pg)
{
  PGresult *res = NULL;
  lsr_pg_status status;
  if (!usable(pg)) {
    pg->in_transaction = false;
    return LSR_PG_UNAVAILABLE;
  }
  /* Never sent again after a failure: the first COMMIT may have happened. */
  status = send_and_run(pg, -1, "COMMIT", 0, NULL, &res);
  pg->in_transaction = false;
  if (status != LSR_PG_OK) return status;
  /* COMMIT of a transaction that had failed answers ROLLBACK, not an error. */
  if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
    PQclear(res);
    set_message(pg, "the transaction was rolled back");
    return LSR_PG_ERROR;
  }
  PQclear(res);
  pg->commits++;
  return LSR_PG_OK;
}

void lsr_pg_rollback(lsr_pg *pg)
{
  bool sent = pg->sent;
  clear_deferred(pg);
  pg->in_transaction = pg->sent = false;
  if (sent && pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_OK) PQclear(PQexec(pg->conn, "ROLLBACK"));
}

double lsr_pg_generation(lsr_pg *pg)
{
  struct timespec now;
  long long ms, bucket;
  if (pg->stale_ms <= 0) return (double)++pg->calls;
  clock_gettime(CLOCK_MONOTONIC, &now);
  ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
  bucket = ms / pg->stale_ms;
  /* 32 bits of the bucket and 20 of the commit count: exact in a double. */
  return (double)(bucket & 0xffffffffLL) * 1048576.0 + (double)(pg->commits & 0xfffffUL);
}
