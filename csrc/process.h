/*
 * process.h -- child process groups that always stop: the nginx of
 * `licensor gateway` and of the specs.
 *
 * A child runs in a process group of its own (so a terminal's SIGINT and
 * SIGHUP reach only the supervisor, which decides), gets SIGTERM if its
 * parent dies (PR_SET_PDEATHSIG on Linux), and is stopped as a group:
 * SIGTERM to the leader, then SIGKILL to whatever of the group is left,
 * then a wait until none of it is alive.  A supervised child may instead
 * be drained: asked to stop by itself (nginx's graceful quit), waited for
 * up to a bound, and only then stopped as a group.  Plain C, no Lua.
 */
#ifndef LICENSOR_PROCESS_H
#define LICENSOR_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Starts argv (argv[0] searched on PATH) as the leader of a new process
 * group, with stdout and stderr appended to log_path when it is not NULL.
 * Returns its pid, or -1 with a message in err. */
pid_t lsr_spawn(const char *const argv[], const char *log_path, char *err, size_t errlen);

/* The user a child runs as (a server that refuses root: PostgreSQL). */
typedef struct {
  uid_t uid;
  gid_t gid;
} lsr_spawn_user;

/* lsr_spawn, running as `user` (NULL: as we are). */
pid_t lsr_spawn_as(const char *const argv[], const char *log_path, const lsr_spawn_user *user,
                   char *err, size_t errlen);

/* True while any process of group pgid is alive (zombies do not count). */
bool lsr_group_alive(pid_t pgid);

/* Stops group pgid whose leader is our child pid: SIGTERM to the leader,
 * SIGKILL to the group after grace_ms (0: at once), and waits until no
 * member is alive (up to 10 s more).  Reaps the leader.  Returns the
 * leader's wait status, or -1 if it had been reaped already. */
int lsr_stop_group(pid_t pid, int grace_ms);

/* Waits up to timeout_ms for our child pid to end and reaps it.  Returns
 * its exit code (128 + signal if a signal ended it), or -1 if it still
 * runs. */
int lsr_wait(pid_t pid, int timeout_ms);

/* How lsr_run_group stops its child when the caller is asked to stop. */
typedef struct {
  int grace_ms;       /* a hard stop: the leader's own shutdown before SIGKILL to the group */
  int drain_ms;       /* SIGTERM or SIGQUIT: how long the group may take to end by itself
                       * after drain_signal; 0: those stop it hard at once, as SIGINT does */
  int drain_signal;   /* what asks the leader to finish its work and exit (nginx: SIGQUIT) */
  void (*on_drain)(void *data, int sig);   /* told once a drain starts (NULL: no one) */
  void *data;         /* on_drain's first argument */
} lsr_run_opts;

/* What ended an lsr_run_group. */
typedef struct {
  int stop_signal;    /* the caller's signal that stopped the child, 0 if it ended by itself */
  bool drained;       /* a drain ended with the whole group gone within drain_ms */
} lsr_run_outcome;

/* Runs argv in the foreground until it exits or the caller gets SIGTERM,
 * SIGQUIT, SIGINT or SIGHUP.  SIGTERM and SIGQUIT drain (opts->drain_ms
 * > 0): drain_signal to the leader, then up to drain_ms for the group to
 * end; what is left then, or at a second stop signal, is stopped hard at
 * once.  SIGINT and SIGHUP stop the group hard (grace_ms for the
 * leader's own shutdown).  The group never outlives the call.  Returns
 * the child's exit code (128 + signal if a signal ended it; 0 when it
 * was reaped by the stop), or -1 with a message in err. */
int lsr_run_group(const char *const argv[], const lsr_run_opts *opts, lsr_run_outcome *outcome, char *err,
                  size_t errlen);

#endif
