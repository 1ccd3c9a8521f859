/*
 * process.h -- child process groups that always stop: the nginx of
 * `licensor gateway` and of the specs.
 *
 * A child runs in a process group of its own (so a terminal's SIGINT and
 * SIGHUP reach only the supervisor, which decides), gets SIGTERM if its
 * parent dies (PR_SET_PDEATHSIG on Linux), and is stopped as a group:
 * SIGTERM to the leader, then SIGKILL to whatever of the group is left,
 * then a wait until none of it is alive.  Plain C, no Lua.
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

/* Runs argv in the foreground until it exits or the caller gets SIGTERM,
 * SIGINT or SIGHUP; on such a signal stops the group (grace_ms for the
 * leader's own shutdown).  *stop_signal receives that signal, 0 if the
 * child ended by itself.  Returns the child's exit code (128 + signal if
 * a signal ended it), or -1 with a message in err. */
int lsr_run_group(const char *const argv[], int grace_ms, int *stop_signal, char *err, size_t errlen);

#endif
