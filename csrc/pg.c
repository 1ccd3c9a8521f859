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

void lsr_pg_close(lsr_pg *pg)
{
  if (pg->conn != NULL) PQfinish(pg->conn);
  pg->conn = NULL;
  free_statements(pg);
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

static lsr_pg_status attempt(lsr_pg *pg, int id, const char *sql, int n, const char *const *values,
                             PGresult **result)
{
  PGresult *res;
  lsr_pg_status status;
  if (id >= 0) {
    char name[24];
    lsr_pg_statement *stmt = &pg->stmts[id];
    snprintf(name, sizeof name, "licensor_%d", id);
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

/* A connection to send on: a broken one is re-established outside a
 * transaction; inside one, the transaction is lost. */
static bool usable(lsr_pg *pg)
{
  if (PQstatus(pg->conn) != CONNECTION_BAD) return true;
  if (pg->in_transaction) {
    set_message(pg, "the connection to PostgreSQL was lost during the transaction");
    return false;
  }
  return reconnect(pg);
}

lsr_pg_status lsr_pg_run(lsr_pg *pg, int id, const char *sql, int n, const char *const *values,
                         PGresult **result)
{
  lsr_pg_status status;
  *result = NULL;
  if (!usable(pg)) return LSR_PG_UNAVAILABLE;
  status = attempt(pg, id, sql, n, values, result);
  /* A connection that broke while idle (a restarted or promoted server)
   * is found by this statement: outside a transaction, nothing was done,
   * so reconnect and try once more. */
  if (status == LSR_PG_UNAVAILABLE && !pg->in_transaction && PQstatus(pg->conn) == CONNECTION_BAD &&
      reconnect(pg))
    status = attempt(pg, id, sql, n, values, result);
  return status;
}

lsr_pg_status lsr_pg_exec(lsr_pg *pg, const char *script)
{
  if (!usable(pg)) return LSR_PG_UNAVAILABLE;
  return check_result(pg, PQexec(pg->conn, script));
}

lsr_pg_status lsr_pg_begin(lsr_pg *pg, bool read_only)
{
  PGresult *res = NULL;
  lsr_pg_status status = lsr_pg_run(pg, -1, read_only ? "BEGIN READ ONLY" : "BEGIN", 0, NULL, &res);
  PQclear(res);
  if (status == LSR_PG_OK) pg->in_transaction = true;
  return status;
}

lsr_pg_status lsr_pg_commit(lsr_pg *pg)
{
  PGresult *res;
  lsr_pg_status status;
  pg->in_transaction = false;
  if (PQstatus(pg->conn) == CONNECTION_BAD) {
    set_message(pg, "the connection to PostgreSQL was lost before the commit");
    return LSR_PG_UNAVAILABLE;
  }
  res = PQexec(pg->conn, "COMMIT");
  status = check_result(pg, res);
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
  pg->in_transaction = false;
  if (pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_OK) PQclear(PQexec(pg->conn, "ROLLBACK"));
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
