/*
 * l_files.c -- core.write_file: the one careful file writer under
 * lua/licensor/files.lua (database exports, signing keys, certificates,
 * state).  A new file is written under a temporary name in the same
 * directory, created with the caller's mode (the umask may narrow it),
 * fsynced, and only then given its name, so a full disk or a crash leaves
 * nothing half written under `path`.  Not a reader: files.lua reads with
 * io.open.
 */
#define _POSIX_C_SOURCE 200809L   /* O_NOFOLLOW, O_CLOEXEC */
#include "lbind.h"

#include <sodium.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

/* How many temporary names are tried before giving up (each is 96 random
 * bits, so a second try already means someone is racing us). */
#define TEMP_TRIES 16

/* Writes all of text to fd, retrying short writes and EINTR; 0 or errno. */
static int write_all(int fd, const char *text, size_t len)
{
  while (len > 0) {
    ssize_t n = write(fd, text, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    text += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Writes, then closes fd (fsyncing a regular file first); 0 or the first
 * errno.  The descriptor is closed whatever happens. */
static int finish(int fd, const char *text, size_t len, int sync)
{
  int err = write_all(fd, text, len);
  if (err == 0 && sync && fsync(fd) != 0) err = errno;
  if (close(fd) != 0 && err == 0) err = errno;
  return err;
}

/* nil, "what path: strerror(err)", code. */
static int file_fail(lua_State *L, const char *code, const char *what, const char *path, int err)
{
  lua_pushnil(L);
  lua_pushfstring(L, "%s%s%s: %s", what, *what ? " " : "", path, strerror(err));
  lua_pushstring(L, code);
  return 3;
}

/* The device case: path names an existing character device or FIFO
 * (/dev/stdout, /dev/full, a pipe), which is written in place.  Answers 1
 * when written (or failed: results pushed), 0 when path is not a device. */
static int write_device(lua_State *L, const char *what, const char *path, const char *text, size_t len,
                        int *nret)
{
  struct stat st;
  int err, fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return 0;   /* absent, or not writable as it is: the file path decides */
  if (fstat(fd, &st) != 0 || !(S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
    close(fd);   /* a regular file: opened without O_TRUNC, so untouched */
    return 0;
  }
  err = finish(fd, text, len, 0);
  if (err != 0) *nret = file_fail(L, "io_error", what, path, err);
  else {
    lua_pushboolean(L, 1);
    *nret = 1;
  }
  return 1;
}

/* core.write_file(path, text, mode, replace, device, what) -> true, or
 * nil, "what path: reason", code ("exists", "io_error").
 *
 *  - mode: the new file's permission bits (the umask narrows them).
 *  - replace: false keeps an existing name (file, directory, symlink,
 *    even a dangling one) and answers "exists"; true replaces it
 *    atomically.  Either way a symlink at path is never followed: the
 *    name itself gets the new file.
 *  - device: true lets an existing character device, FIFO or socket
 *    (also through a symlink, as /dev/stdout is) be written in place.
 *    Without it such a path is "exists", or refused with replace. */
static int l_write_file(lua_State *L)
{
  size_t len, path_len;
  const char *path = luaL_checklstring(L, 1, &path_len);
  const char *text = luaL_checklstring(L, 2, &len);
  lua_Integer mode = luaL_checkinteger(L, 3);
  int replace = lua_toboolean(L, 4), device = lua_toboolean(L, 5);
  const char *what = luaL_optstring(L, 6, "");
  const char *slash, *base;
  struct stat st;
  luaL_Buffer b;
  const char *temp;
  int fd = -1, err, nret, tries;
  luaL_argcheck(L, mode >= 0 && mode <= 07777, 3, "a file mode (0 to 0o7777) expected");
  luaL_argcheck(L, path_len > 0 && strlen(path) == path_len, 1, "a file path expected");
  if (device && write_device(L, what, path, text, len, &nret)) return nret;
  if (lstat(path, &st) == 0) {
    if (!replace) return file_fail(L, "exists", what, path, EEXIST);
    if (S_ISDIR(st.st_mode)) return file_fail(L, "io_error", what, path, EISDIR);
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
      lua_pushnil(L);
      lua_pushfstring(L, "%s%s%s: is a device, pipe or socket (written only when asked: device = true)",
                      what, *what ? " " : "", path);
      lua_pushliteral(L, "exists");
      return 3;
    }
  }
  if (sodium_init() < 0) return luaL_error(L, "libsodium could not be initialised");
  /* The temporary name: DIR/.BASE.XXXXXXXXXXXXXXXXXXXXXXXX.tmp */
  slash = strrchr(path, '/');
  base = slash ? slash + 1 : path;
  for (tries = 0; tries < TEMP_TRIES; tries++) {
    unsigned char bytes[12];
    char hex[2 * sizeof bytes + 1];
    randombytes_buf(bytes, sizeof bytes);
    sodium_bin2hex(hex, sizeof hex, bytes, sizeof bytes);
    lua_settop(L, 6);
    luaL_buffinit(L, &b);
    if (slash) luaL_addlstring(&b, path, (size_t)(base - path));
    luaL_addchar(&b, '.');
    luaL_addstring(&b, base);
    luaL_addchar(&b, '.');
    luaL_addstring(&b, hex);
    luaL_addstring(&b, ".tmp");
    luaL_pushresult(&b);
    temp = lua_tostring(L, -1);
    fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, (mode_t)mode);
    if (fd >= 0 || errno != EEXIST) break;
  }
  if (fd < 0) return file_fail(L, "io_error", what, path, tries == TEMP_TRIES ? EEXIST : errno);
  /* An explicit mode wider than 0600 still obeys the umask: open did. */
  err = finish(fd, text, len, 1);
  if (err == 0) {
    if (replace) {
      if (rename(temp, path) != 0) err = errno;
    } else if (link(temp, path) != 0) {
      /* link refuses an existing name atomically; a file system without
       * hard links falls back to a checked rename. */
      err = errno;
      if ((err == EPERM || err == EOPNOTSUPP || err == EMLINK) && lstat(path, &st) != 0 && errno == ENOENT)
        err = rename(temp, path) == 0 ? 0 : errno;
    }
  }
  if (unlink(temp) != 0 && errno != ENOENT && err == 0) err = errno;
  if (err != 0) return file_fail(L, err == EEXIST ? "exists" : "io_error", what, path, err);
  /* The directory's own fsync makes the name durable; a file system that
   * cannot fsync a directory (EINVAL) has no other way, so it is not an
   * error. */
  {
    char *dir = NULL;
    size_t dir_len = slash ? (size_t)(slash - path) : 0;
    int dfd;
    if (slash) {
      dir = malloc(dir_len + 2);
      if (dir == NULL) return luaL_error(L, "out of memory");
      memcpy(dir, path, dir_len ? dir_len : 1);   /* "/name": the root */
      dir[dir_len ? dir_len : 1] = '\0';
    }
    dfd = open(dir ? dir : ".", O_RDONLY | O_CLOEXEC);
    free(dir);
    if (dfd >= 0) {
      (void)fsync(dfd);
      close(dfd);
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.lstat(path[, follow]) -> {uid=, mode= (permission bits), kind=
 * "directory", "file", "link" or "other", special= (a character device,
 * FIFO or socket)}, or nil, "path: strerror", "io_error".  The name
 * itself, never a symlink's target (for ownership checks: the gateway's
 * prefix), unless follow: then what it names (stat), which is how the
 * CLI tells a device from a database file without opening it (opening a
 * FIFO would block). */
static int l_lstat(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  bool follow = lua_toboolean(L, 2);
  struct stat st;
  const char *kind;
  if ((follow ? stat(path, &st) : lstat(path, &st)) != 0) return file_fail(L, "io_error", "", path, errno);
  if (S_ISDIR(st.st_mode)) kind = "directory";
  else if (S_ISREG(st.st_mode)) kind = "file";
  else if (S_ISLNK(st.st_mode)) kind = "link";
  else kind = "other";
  lua_createtable(L, 0, 4);
  lua_pushboolean(L, S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
  lua_setfield(L, -2, "special");
  lua_pushinteger(L, (lua_Integer)st.st_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
  lua_setfield(L, -2, "mode");
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  return 1;
}

static const luaL_Reg files_functions[] = {
  { "write_file", l_write_file },
  { "lstat", l_lstat },
  { NULL, NULL }
};

void lb_open_files(lua_State *L, int module, int mt)
{
  lb_setfuncs(L, module, mt, files_functions);
}
