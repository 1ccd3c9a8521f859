/*
 * pg.c -- the PostgreSQL connection (see pg.h), over the system libpq.
 */
#define _POSIX_C_SOURCE 200809L
#include "pg.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

long long lsr_pg_now_ms(void)
{
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Milliseconds until `limit` for poll(): -1 without one, 0 once passed. */
static int left_until(long long limit)
{
  long long left;
  if (limit <= 0) return -1;
  left = limit - lsr_pg_now_ms();
  if (left <= 0) return 0;
  return left > INT_MAX ? INT_MAX : (int)left;
}

/* Server notices: libpq would print them on stderr (a ROLLBACK with no
 * transaction, say), and the store reports failures itself.  A WARNING
 * that reaches a COMMIT in flight makes its outcome unknown: it is how
 * the server says a cancelled or terminated wait for synchronous
 * replication left the commit local only (any other WARNING there is
 * taken the same way: nothing but a plain COMMIT is acknowledged). */
static void receive_notice(void *arg, const PGresult *res)
{
  lsr_pg *pg = arg;
  const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char *text = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  if (!pg->committing || severity == NULL || strcmp(severity, "WARNING") != 0) return;
  if (state != NULL && strcmp(state, "25P01") == 0) return;   /* no transaction in progress */
  pg->commit_warned = true;
  snprintf(pg->warning, sizeof pg->warning, "%s", text ? text : "a warning from the server");
}

/* ---- licensor's own connection parameter ---- */

/* The URL form: removes `name=value` from the query in place (its `&`
 * or `?` too) and copies the value; *twice when it is there more than
 * once.  A URL's values are percent-encoded: no `&` or `?` hides in one. */
static bool take_from_url(char *conninfo, const char *name, char *value, size_t len, bool *twice)
{
  size_t n = strlen(name);
  bool found = false;
  char *query = strchr(conninfo, '?');
  for (char *p = query; p != NULL && (p = strstr(p, name)) != NULL; p++) {
    char before = p[-1], *start = p, *end;
    if (p[n] != '=' || (before != '?' && before != '&')) continue;
    if (found) {
      *twice = true;
      return true;
    }
    found = true;
    end = p + n + 1;
    while (*end != '\0' && *end != '&') end++;
    snprintf(value, len, "%.*s", (int)(end - (p + n + 1)), p + n + 1);
    if (*end == '&') end++;       /* "name=v&next": the next one moves up */
    else start--;                 /* the last one: its '&' or '?' goes too */
    memmove(start, end, strlen(end) + 1);
    p = start - 1;
    if (p < query) p = query;
  }
  return found;
}

/* The end of a keyword form's value at p: 'quoted' (with \' and \\
 * escapes, as libpq reads it) or up to a blank. */
static char *value_end(char *p)
{
  if (*p == '\'') {
    for (p++; *p != '\0' && *p != '\''; p++)
      if (*p == '\\' && p[1] != '\0') p++;
    return *p == '\'' ? p + 1 : p;
  }
  for (; *p != '\0' && !isspace((unsigned char)*p); p++)
    if (*p == '\\' && p[1] != '\0') p++;
  return p;
}

/* The keyword form (`key = value ...`, libpq's rules): the same as
 * take_from_url, token by token, so that a quoted value holding
 * "name=..." (a password, say) is never taken for the parameter. */
static bool take_from_keywords(char *conninfo, const char *name, char *value, size_t len, bool *twice)
{
  bool found = false;
  char *p = conninfo;
  for (;;) {
    char *start, *key_end, *v, *end;
    while (isspace((unsigned char)*p)) p++;
    if (*p == '\0') return found;
    start = p;
    while (*p != '\0' && *p != '=' && !isspace((unsigned char)*p)) p++;
    key_end = p;
    while (isspace((unsigned char)*p)) p++;
    if (*p != '=') return found;   /* not libpq's form: libpq will say so */
    for (p++; isspace((unsigned char)*p); p++) {}
    v = p;
    end = value_end(p);
    p = end;
    if ((size_t)(key_end - start) != strlen(name) || strncmp(start, name, strlen(name)) != 0) continue;
    if (found) {
      *twice = true;
      return true;
    }
    found = true;
    if (*v == '\'') snprintf(value, len, "%.*s", (int)(end - v > 1 ? end - v - 2 : 0), v + 1);
    else snprintf(value, len, "%.*s", (int)(end - v), v);
    memmove(start, end, strlen(end) + 1);
    p = start;
  }
}

/* Removes licensor's own parameter `name` from conninfo (a URL or the
 * keyword form) and copies its value; false when it is absent. */
static bool take_parameter(char *conninfo, const char *name, char *value, size_t len, bool *twice)
{
  bool url = strncmp(conninfo, "postgres://", 11) == 0 || strncmp(conninfo, "postgresql://", 13) == 0;
  *twice = false;
  return url ? take_from_url(conninfo, name, value, len, twice)
             : take_from_keywords(conninfo, name, value, len, twice);
}

/* ---- connecting ---- */

/* Processed in order: the caller's string, expanded from dbname, wins
 * over the keywords before it; client_encoding after it always holds (a
 * startup parameter: no round trip, and PgBouncer keeps it). */
static PGconn *start_connection(const lsr_pg *pg, bool blocking)
{
  const char *const keywords[] = { "connect_timeout", "application_name", "dbname", "client_encoding", NULL };
  const char *const values[] = { "5", "licensor", pg->conninfo, "UTF8", NULL };
  return blocking ? PQconnectdbParams(keywords, values, 1) : PQconnectStartParams(keywords, values, 1);
}

/* A new connection, within the deadline if there is one (PQconnectPoll
 * walks a multi-host string as PQconnectdb does); false with a message. */
static bool connect_now(lsr_pg *pg)
{
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  bool blocking = pg->deadline_ms <= 0;
  PGconn *conn = start_connection(pg, blocking);
  if (conn == NULL) {
    set_message(pg, "out of memory");
    return false;
  }
  while (!blocking && PQstatus(conn) != CONNECTION_BAD && state != PGRES_POLLING_OK &&
         state != PGRES_POLLING_FAILED) {
    struct pollfd p = { PQsocket(conn), state == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0 };
    int wait = left_until(pg->deadline_ms);
    int ready = wait == 0 ? 0 : poll(&p, 1, wait);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      PQfinish(conn);
      set_message(pg, "could not connect to PostgreSQL before the deadline");
      pg->timed_out = true;
      return false;
    }
    state = PQconnectPoll(conn);
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    set_message(pg, PQerrorMessage(conn));
    PQfinish(conn);
    return false;
  }
  PQsetNoticeReceiver(conn, receive_notice, pg);
  pg->conn = conn;
  pg->broken = false;
  return true;
}

bool lsr_pg_open(lsr_pg *pg, const char *conninfo, int stale_ms, long long deadline_ms, char *err,
                 size_t errlen)
{
  char prepare[16];
  bool twice;
  memset(pg, 0, sizeof *pg);
  pg->owner = getpid();
  pg->stale_ms = stale_ms;
  pg->deadline_ms = deadline_ms;
  pg->conninfo = malloc(strlen(conninfo) + 1);
  if (pg->conninfo == NULL) {
    snprintf(err, errlen, "out of memory");
    return false;
  }
  memcpy(pg->conninfo, conninfo, strlen(conninfo) + 1);
  pg->prepare = true;
  if (take_parameter(pg->conninfo, "prepared_statements", prepare, sizeof prepare, &twice)) {
    if (twice || (strcmp(prepare, "off") != 0 && strcmp(prepare, "on") != 0)) {
      snprintf(err, errlen, "prepared_statements: on or off, once (PgBouncer's transaction mode needs off), "
               "not '%s'%s", prepare, twice ? " and another" : "");
      lsr_pg_close(pg);
      return false;
    }
    pg->prepare = strcmp(prepare, "on") == 0;
  }
  if (!connect_now(pg)) {
    snprintf(err, errlen, "%s", pg->message);
    lsr_pg_close(pg);
    return false;
  }
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
  free(pg->conninfo);
  pg->conninfo = NULL;
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

/* FNV-1a: statements are found again by their text. */
static unsigned text_hash(const char *text)
{
  unsigned h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) h = (h ^ *p) * 16777619u;
  return h;
}

int lsr_pg_prepare(lsr_pg *pg, const char *sql)
{
  size_t cap = strlen(sql) * 2 + 16;   /* "?" becomes at most "$64" */
  char *text = malloc(cap);
  unsigned hash;
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
  hash = text_hash(text);
  for (int i = 0; i < pg->n_stmts; i++) {
    if (pg->stmts[i].hash == hash && strcmp(pg->stmts[i].sql, text) == 0) {
      free(text);
      return i;
    }
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
  pg->stmts[pg->n_stmts] = (lsr_pg_statement){ text, hash, n, false };
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
  /* A value the server cannot take (data exceptions) is the caller's; SQL
   * it refuses (42: syntax, unknown names, a prepared statement another
   * client left behind a pooler) is the store's own trouble, as is
   * anything else. */
  if (strncmp(state, "22", 2) == 0) return LSR_PG_INVALID;
  return LSR_PG_ERROR;
}

/* ---- waiting, within the deadline ---- */

/* The cancel request, sent by a thread of its own that nobody waits for:
 * libpq 15's PQcancel blocks (it connects, sends, then waits for the
 * server to close), with no time limit, and a frozen or unreachable server
 * would hold the caller past its deadline for as long.  The thread ends
 * when the server answers or the connection attempt fails. */
static void *send_cancel(void *arg)
{
  char why[256];
  PQcancel(arg, why, sizeof why);
  PQfreeCancel(arg);
  return NULL;
}

/* Asks the server to cancel what the connection runs, without waiting
 * for the request to arrive.  The connection is dropped after this call
 * in any case: a cancel that arrives late must not stop the next
 * statement.  No thread to spare: no cancel (the drop still ends the
 * call). */
static void cancel(lsr_pg *pg)
{
  PGcancel *request = PQgetCancel(pg->conn);
  pthread_attr_t attr;
  pthread_t thread;
  bool started = false;
  pg->broken = true;
  if (request == NULL) return;
  if (pthread_attr_init(&attr) == 0) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    started = pthread_create(&thread, &attr, send_cancel, request) == 0;
    pthread_attr_destroy(&attr);
  }
  if (!started) PQfreeCancel(request);
}

/* Waits until PQgetResult will not block.  At the deadline the statement
 * is cancelled and its answer awaited LSR_PG_CANCEL_GRACE_MS more; false
 * (with a message, pg->timed_out set) when none came, or when the
 * connection failed. */
static bool await(lsr_pg *pg)
{
  long long limit = pg->deadline_ms;
  bool cancelled = false;
  while (PQisBusy(pg->conn)) {
    struct pollfd p = { PQsocket(pg->conn), POLLIN, 0 };
    int wait = left_until(limit), ready;
    if (wait == 0) {
      if (cancelled) {
        set_message(pg, "PostgreSQL did not answer before the deadline, nor after the cancel");
        pg->timed_out = pg->broken = true;
        return false;
      }
      cancel(pg);
      cancelled = true;
      limit = lsr_pg_now_ms() + LSR_PG_CANCEL_GRACE_MS;
      continue;
    }
    ready = poll(&p, 1, wait);
    if (ready < 0 && errno != EINTR) {
      set_message(pg, strerror(errno));
      pg->broken = true;
      return false;
    }
    if (ready > 0 && PQconsumeInput(pg->conn) != 1) {
      set_message(pg, PQerrorMessage(pg->conn));
      pg->broken = true;
      return false;
    }
  }
  return true;
}

/* The next result of the query in flight, waited for within the deadline;
 * NULL at its end, or (*failed set) when the wait failed. */
static PGresult *next_result(lsr_pg *pg, bool *failed)
{
  if (!await(pg)) {
    *failed = true;
    return NULL;
  }
  return PQgetResult(pg->conn);
}

/* The last result of the query sent (sent: libpq queued it), as PQexec
 * would answer it, but within the deadline; NULL when the wait failed or
 * nothing could be sent. */
static PGresult *last_result(lsr_pg *pg, bool sent)
{
  PGresult *last = NULL, *res;
  bool failed = false;
  if (!sent) {
    set_message(pg, PQerrorMessage(pg->conn));
    return NULL;
  }
  while ((res = next_result(pg, &failed)) != NULL) {
    PQclear(last);
    last = res;
  }
  if (failed) {
    PQclear(last);
    return NULL;
  }
  return last;
}

/* What a failed wait means: the deadline's timeout or a lost connection. */
static lsr_pg_status wait_failure(const lsr_pg *pg)
{
  return pg->timed_out ? LSR_PG_TIMEOUT : LSR_PG_UNAVAILABLE;
}

/* The status of a result; failures keep their message and free it.  A
 * NULL result is a failed wait (or libpq's out of memory). */
static lsr_pg_status check_result(lsr_pg *pg, PGresult *res)
{
  lsr_pg_status status;
  ExecStatusType kind = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (kind == PGRES_COMMAND_OK || kind == PGRES_TUPLES_OK) return LSR_PG_OK;
  if (res == NULL) {
    if (pg->message[0] == '\0') set_message(pg, PQerrorMessage(pg->conn));
    return wait_failure(pg);
  }
  if (PQstatus(pg->conn) == CONNECTION_BAD) {
    set_message(pg, PQerrorMessage(pg->conn));
    status = LSR_PG_UNAVAILABLE;
  } else {
    set_message(pg, PQresultErrorMessage(res));
    status = classify(PQresultErrorField(res, PG_DIAG_SQLSTATE));
  }
  PQclear(res);
  return status;
}

/* check_result for a result whose rows nobody reads: freed either way. */
static lsr_pg_status check_done(lsr_pg *pg, PGresult *res)
{
  lsr_pg_status status = check_result(pg, res);
  if (status == LSR_PG_OK) PQclear(res);
  return status;
}

/* Opens the connection again (a broken or dropped one); its prepared
 * statements are gone. */
static bool reconnect(lsr_pg *pg)
{
  if (pg->conn != NULL) PQfinish(pg->conn);
  pg->conn = NULL;
  for (int i = 0; i < pg->n_stmts; i++) pg->stmts[i].prepared = false;
  return connect_now(pg);
}

static void statement_name(int id, char *name, size_t len)
{
  snprintf(name, len, "licensor_%d", id);
}

/* Without named prepared statements (PgBouncer in transaction mode, whose
 * server connections change between transactions): statement id's text
 * is sent each time, as an unnamed statement. */
static bool send_one(lsr_pg *pg, int id, const char *sql, int n, const char *const *values)
{
  if (id < 0) return PQsendQueryParams(pg->conn, sql, n, NULL, values, NULL, NULL, 0) == 1;
  return PQsendQueryParams(pg->conn, pg->stmts[id].sql, n, NULL, values, NULL, NULL, 0) == 1;
}

static lsr_pg_status attempt(lsr_pg *pg, int id, const char *sql, int n, const char *const *values,
                             PGresult **result)
{
  lsr_pg_status status;
  if (id >= 0 && pg->prepare) {
    char name[24];
    lsr_pg_statement *stmt = &pg->stmts[id];
    statement_name(id, name, sizeof name);
    if (!stmt->prepared) {
      status = check_done(pg, last_result(pg, PQsendPrepare(pg->conn, name, stmt->sql, stmt->nparams,
                                                             NULL) == 1));
      if (status != LSR_PG_OK) return status;
      stmt->prepared = true;
    }
    status = check_result(pg, *result = last_result(pg, PQsendQueryPrepared(pg->conn, name, n, values,
                                                                              NULL, NULL, 0) == 1));
  } else {
    status = check_result(pg, *result = last_result(pg, send_one(pg, id, sql, n, values)));
  }
  if (status != LSR_PG_OK) *result = NULL;
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
  char name[24];
  if (id < 0 || !pg->prepare) {
    sent[(*n_sent)++] = (sent_query){ kind, id };
    return send_one(pg, id, sql, n, values);
  }
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
    bool failed = false;
    PGresult *res = next_result(pg, &failed);
    ExecStatusType kind;
    if (failed) return wait_failure(pg);
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
  if (!pg->broken && PQexitPipelineMode(pg->conn) != 1 && status == LSR_PG_OK) {
    set_message(pg, PQerrorMessage(pg->conn));
    status = LSR_PG_UNAVAILABLE;
  }
  if (status != LSR_PG_OK && *result != NULL) {
    PQclear(*result);
    *result = NULL;
  }
  /* Kept when the connection failed: they may go again on a new one. */
  if (status != LSR_PG_UNAVAILABLE || pg->timed_out) clear_deferred(pg);
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

/* A connection to send on.  A broken one (lost, or dropped after a
 * cancel) is opened again unless part of the current transaction has
 * reached the server (then the transaction is lost); deferred statements
 * wait for the new connection. */
static bool usable(lsr_pg *pg)
{
  if (!pg->broken && PQstatus(pg->conn) != CONNECTION_BAD) return true;
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

/* Before a call: its failure flags cleared; false (and a message) when its
 * deadline has passed already, so nothing is sent. */
static bool in_time(lsr_pg *pg)
{
  pg->timed_out = false;
  pg->message[0] = '\0';
  if (left_until(pg->deadline_ms) != 0) return true;
  set_message(pg, "the deadline passed before the statement was sent");
  pg->timed_out = true;
  return false;
}

lsr_pg_status lsr_pg_run(lsr_pg *pg, int id, const char *sql, int n, const char *const *values,
                         PGresult **result)
{
  lsr_pg_status status;
  /* Nothing of this transaction (if any) has reached the server yet. */
  bool fresh = !pg->in_transaction || !pg->sent;
  *result = NULL;
  if (id < 0 && sql == NULL && pg->n_deferred == 0) return LSR_PG_OK;
  if (!in_time(pg)) return LSR_PG_TIMEOUT;
  if (!usable(pg)) return wait_failure(pg);
  status = send_and_run(pg, id, sql, n, values, result);
  /* A connection that broke while idle (a restarted or promoted server)
   * is found by this call: when it began the work of its transaction and
   * commits nothing, nothing was done, so reconnect and send it again. */
  if (status == LSR_PG_UNAVAILABLE && fresh && !pg->timed_out && PQstatus(pg->conn) == CONNECTION_BAD &&
      reconnect(pg)) {
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
  if (!in_time(pg)) return LSR_PG_TIMEOUT;
  if (!usable(pg)) return wait_failure(pg);
  pg->sent = true;
  return check_done(pg, last_result(pg, PQsendQuery(pg->conn, script) == 1));
}

lsr_pg_status lsr_pg_begin(lsr_pg *pg, bool read_only)
{
  PGresult *res = NULL;
  lsr_pg_status status;
  /* A transaction a caller left open (a Lua VM that went away in the
   * middle, on a connection the thread keeps) ends here. */
  if (pg->in_transaction) lsr_pg_rollback(pg);
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

/* The answer to a COMMIT that may have happened: never acknowledged. */
static lsr_pg_status unknown(lsr_pg *pg, const char *why)
{
  char reason[sizeof pg->message - 32];
  snprintf(reason, sizeof reason, "%s", why);
  snprintf(pg->message, sizeof pg->message, "commit outcome unknown: %s", reason);
  return LSR_PG_UNKNOWN;
}

lsr_pg_status lsr_pg_commit(lsr_pg *pg)
{
  PGresult *res = NULL;
  lsr_pg_status status;
  bool in_time_now = in_time(pg);
  if (!in_time_now || !usable(pg)) {
    /* Nothing of COMMIT was sent: the server rolls the transaction back. */
    lsr_pg_rollback(pg);
    return in_time_now ? LSR_PG_UNAVAILABLE : LSR_PG_TIMEOUT;
  }
  /* Never sent again after a failure: the first COMMIT may have happened. */
  pg->committing = true;
  pg->commit_warned = false;
  status = send_and_run(pg, -1, "COMMIT", 0, NULL, &res);
  pg->committing = false;
  pg->in_transaction = false;
  /* A statement sent with the COMMIT that failed left the transaction
   * open, aborted: `sent` stays, so the caller's rollback ends it. */
  if (status == LSR_PG_OK) pg->sent = false;
  if (status == LSR_PG_OK && pg->commit_warned) {
    PQclear(res);
    return unknown(pg, pg->warning);
  }
  /* No answer, or the connection went: the COMMIT may have been applied. */
  if (status == LSR_PG_UNAVAILABLE || (status == LSR_PG_TIMEOUT && pg->timed_out)) {
    pg->broken = true;
    return unknown(pg, pg->message);
  }
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

/* Ends the transaction; never fails.  A connection to be dropped is not
 * spoken to (closing it ends the transaction on the server); otherwise the
 * ROLLBACK gets the call's deadline or, past it, LSR_PG_CANCEL_GRACE_MS. */
void lsr_pg_rollback(lsr_pg *pg)
{
  bool sent = pg->sent;
  long long deadline = pg->deadline_ms;
  clear_deferred(pg);
  pg->in_transaction = pg->sent = false;
  if (!sent || pg->conn == NULL || pg->broken || PQstatus(pg->conn) != CONNECTION_OK) return;
  if (deadline > 0 && left_until(deadline) == 0) pg->deadline_ms = lsr_pg_now_ms() + LSR_PG_CANCEL_GRACE_MS;
  PQclear(last_result(pg, PQsendQuery(pg->conn, "ROLLBACK") == 1));
  pg->deadline_ms = deadline;
}

/* ---- one connection per OS thread ---- */

/* The C core's only process-wide state: a thread-specific key made once,
 * whose value in each thread is that thread's connections.  Nothing is
 * shared between threads; each list is its own thread's. */
typedef struct {
  int n;
  struct {
    char *conninfo;
    lsr_pg *pg;
  } item[LSR_PG_THREAD_MAX];
} thread_connections;

static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;
static int thread_key_status = -1;

static void free_thread_connections(void *arg)
{
  thread_connections *t = arg;
  for (int i = 0; i < t->n; i++) {
    lsr_pg_close(t->item[i].pg);
    free(t->item[i].pg);
    free(t->item[i].conninfo);
  }
  free(t);
}

static void make_thread_key(void)
{
  thread_key_status = pthread_key_create(&thread_key, free_thread_connections);
}

static thread_connections *this_thread(void)
{
  thread_connections *t;
  pthread_once(&thread_key_once, make_thread_key);
  if (thread_key_status != 0) return NULL;
  t = pthread_getspecific(thread_key);
  if (t == NULL) {
    t = calloc(1, sizeof *t);
    if (t != NULL && pthread_setspecific(thread_key, t) != 0) {
      free(t);
      t = NULL;
    }
  }
  return t;
}

lsr_pg *lsr_pg_thread(const char *conninfo, int stale_ms, long long deadline_ms, char *err, size_t errlen)
{
  thread_connections *t = this_thread();
  lsr_pg *pg;
  char *key;
  if (t == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  for (int i = 0; i < t->n; i++)
    if (strcmp(t->item[i].conninfo, conninfo) == 0) return t->item[i].pg;
  if (t->n == LSR_PG_THREAD_MAX) {
    snprintf(err, errlen, "one thread keeps connections to at most %d databases", LSR_PG_THREAD_MAX);
    return NULL;
  }
  pg = malloc(sizeof *pg);
  key = malloc(strlen(conninfo) + 1);
  if (pg == NULL || key == NULL) {
    free(pg);
    free(key);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (!lsr_pg_open(pg, conninfo, stale_ms, deadline_ms, err, errlen)) {
    free(pg);
    free(key);
    return NULL;
  }
  memcpy(key, conninfo, strlen(conninfo) + 1);
  t->item[t->n].conninfo = key;
  t->item[t->n].pg = pg;
  t->n++;
  return pg;
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
