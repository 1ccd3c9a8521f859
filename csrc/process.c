/*
 * process.c -- spawning, supervising and stopping child process groups
 * (see process.h).  Linux: /proc tells group membership, prctl ties the
 * child's life to ours.
 */
#define _GNU_SOURCE   /* prctl, sigtimedwait */
#include "process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* In the child, between fork and exec: only async-signal-safe calls. */
static void become_leader(const char *const argv[], const char *log_path, pid_t parent,
                          const sigset_t *mask, const lsr_spawn_user *user)
{
  int fd;
  setpgid(0, 0);
  /* The log is opened with our rights, then the rights are dropped; the
   * death signal is set after, since changing user clears it. */
  if (log_path != NULL && (fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644)) >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
  }
  if (user != NULL && (setgroups(0, NULL) != 0 || setgid(user->gid) != 0 || setuid(user->uid) != 0))
    _exit(126);
#ifdef __linux__
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(127);   /* the parent died before prctl */
#else
  (void)parent;
#endif
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  signal(SIGQUIT, SIG_DFL);
  signal(SIGCHLD, SIG_DFL);
  sigprocmask(SIG_SETMASK, mask, NULL);
  {
    /* execvp's prototype predates const; it does not write argv. */
    union { const char *const *in; char *const *out; } words;
    words.in = argv;
    execvp(argv[0], words.out);
  }
  _exit(127);
}

/* Spawns with the signal mask `child_mask` restored in the child. */
static pid_t spawn_masked(const char *const argv[], const char *log_path, const sigset_t *child_mask,
                          const lsr_spawn_user *user, char *err, size_t errlen)
{
  pid_t parent = getpid(), pid;
  if (argv == NULL || argv[0] == NULL) {
    snprintf(err, errlen, "no command to run");
    return -1;
  }
  pid = fork();
  if (pid < 0) {
    snprintf(err, errlen, "fork: %s", strerror(errno));
    return -1;
  }
  if (pid == 0) become_leader(argv, log_path, parent, child_mask, user);
  setpgid(pid, pid);   /* also here, so the group exists when fork returns */
  return pid;
}

pid_t lsr_spawn(const char *const argv[], const char *log_path, char *err, size_t errlen)
{
  return lsr_spawn_as(argv, log_path, NULL, err, errlen);
}

pid_t lsr_spawn_as(const char *const argv[], const char *log_path, const lsr_spawn_user *user,
                   char *err, size_t errlen)
{
  sigset_t mask;
  sigprocmask(SIG_SETMASK, NULL, &mask);
  return spawn_masked(argv, log_path, &mask, user, err, errlen);
}

/* The process group and state of /proc/PID/stat; false if unreadable. */
static bool read_stat(const char *pid_text, pid_t *pgrp, char *state)
{
  char path[64], buf[512];
  const char *close_paren;
  FILE *f;
  size_t n;
  int group = 0;
  snprintf(path, sizeof path, "/proc/%s/stat", pid_text);
  f = fopen(path, "r");
  if (f == NULL) return false;
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses. */
  close_paren = strrchr(buf, ')');
  if (close_paren == NULL || sscanf(close_paren + 1, " %c %*d %d", state, &group) != 2) return false;
  *pgrp = (pid_t)group;
  return true;
}

bool lsr_group_alive(pid_t pgid)
{
  DIR *proc;
  struct dirent *entry;
  bool alive = false;
  if (pgid <= 0) return false;
  if (kill(-pgid, 0) != 0 && errno == ESRCH) return false;
  proc = opendir("/proc");
  if (proc == NULL) return true;   /* cannot tell: assume the worst */
  while (!alive && (entry = readdir(proc)) != NULL) {
    pid_t group;
    char state;
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    if (read_stat(entry->d_name, &group, &state) && group == pgid && state != 'Z') alive = true;
  }
  closedir(proc);
  return alive;
}

static void sleep_ms(long ms)
{
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Reaps pid if it has ended; true once it has (or was reaped already). */
static bool reaped(pid_t pid, int *status)
{
  pid_t r = waitpid(pid, status, WNOHANG);
  return r == pid || (r < 0 && errno == ECHILD);
}

int lsr_stop_group(pid_t pid, int grace_ms)
{
  int status = -1;
  long waited = 0;
  if (pid <= 0) return -1;
  if (reaped(pid, &status) && !lsr_group_alive(pid)) return status;
  kill(pid, SIGTERM);
  while (waited < grace_ms && !reaped(pid, &status)) {
    sleep_ms(10);
    waited += 10;
  }
  kill(-pid, SIGKILL);
  for (waited = 0; waited < 10000; waited += 10) {
    bool leader_gone = reaped(pid, &status);
    if (leader_gone && !lsr_group_alive(pid)) break;
    sleep_ms(10);
  }
  return status;
}

static int exit_code(int status)
{
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int lsr_wait(pid_t pid, int timeout_ms)
{
  int status = 0;
  for (long waited = 0;; waited += 10) {
    if (reaped(pid, &status)) return exit_code(status);
    if (waited >= timeout_ms) return -1;
    sleep_ms(10);
  }
}

/* Milliseconds on the monotonic clock (the drain's bound ignores the
 * wall clock's steps). */
static long long monotonic_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_stop_signal(int sig)
{
  return sig == SIGTERM || sig == SIGQUIT || sig == SIGINT || sig == SIGHUP;
}

/* The hard stop of group pid: its exit code, 0 when the stop reaped it
 * without a status (it had been reaped already). */
static int stop_hard(pid_t pid, int grace_ms)
{
  int status = lsr_stop_group(pid, grace_ms);
  return status < 0 ? 0 : exit_code(status);
}

/* Drains group pid (see lsr_run_opts): drain_signal to the leader, then
 * waits, still taking the stop signals, until the leader is reaped and no
 * member is left, drain_ms pass, or a second stop signal arrives; then
 * stops whatever is left hard, at once (the group had its time). */
static int drain_group(pid_t pid, const lsr_run_opts *opts, const sigset_t *stops, lsr_run_outcome *outcome)
{
  long long deadline = monotonic_ms() + opts->drain_ms;
  int status = 0, code = 0;
  bool leader_done = false;
  if (opts->on_drain != NULL) opts->on_drain(opts->data, outcome->stop_signal);
  kill(pid, opts->drain_signal);
  while (monotonic_ms() < deadline) {
    struct timespec tick = { 0, 50 * 1000000L };   /* the group's end is polled, not signalled */
    int sig = sigtimedwait(stops, NULL, &tick);
    if (!leader_done && waitpid(pid, &status, WNOHANG) == pid) {
      leader_done = true;
      code = exit_code(status);
    }
    if (leader_done && !lsr_group_alive(pid)) {
      outcome->drained = true;
      return code;
    }
    if (is_stop_signal(sig)) break;   /* asked again: no more waiting */
  }
  if (leader_done) {
    lsr_stop_group(pid, 0);
    return code;
  }
  return stop_hard(pid, 0);
}

int lsr_run_group(const char *const argv[], const lsr_run_opts *opts, lsr_run_outcome *outcome, char *err,
                  size_t errlen)
{
  sigset_t stops, old;
  pid_t pid;
  int status = 0, code = -1;
  outcome->stop_signal = 0;
  outcome->drained = false;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGQUIT);
  sigaddset(&stops, SIGINT);
  sigaddset(&stops, SIGHUP);
  sigaddset(&stops, SIGCHLD);
  /* Blocked before the fork, so no stop request can slip in between. */
  sigprocmask(SIG_BLOCK, &stops, &old);
  pid = spawn_masked(argv, NULL, &old, NULL, err, errlen);
  if (pid < 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    return -1;
  }
  for (;;) {
    struct timespec tick = { 1, 0 };
    int sig = sigtimedwait(&stops, NULL, &tick);
    if (reaped(pid, &status)) {
      code = exit_code(status);
      lsr_stop_group(pid, 0);   /* workers its end left behind */
      break;
    }
    if (is_stop_signal(sig)) {
      outcome->stop_signal = sig;
      if ((sig == SIGTERM || sig == SIGQUIT) && opts->drain_ms > 0)
        code = drain_group(pid, opts, &stops, outcome);
      else
        code = stop_hard(pid, opts->grace_ms);
      break;
    }
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  return code;
}
