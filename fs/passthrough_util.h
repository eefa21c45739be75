// Small helpers shared by the PassthroughFs op families (private).
#ifndef KMFUSE_FS_PASSTHROUGH_UTIL_H_
#define KMFUSE_FS_PASSTHROUGH_UTIL_H_

#include <errno.h>
#include <stdio.h>
#include <sys/fsuid.h>
#include <sys/stat.h>

#include <string>
#include <string_view>
#include <vector>

#include "kmfuse/filesystem.h"

namespace kmfuse::passthrough_internal {

// The path that reopens (or operates on) what an fd refers to. The kernel
// resolves it by jumping to the fd's file, never by walking names, so it
// cannot lead outside what the fd already reaches.
inline std::string ProcPath(int fd) {
  char buf[32];
  snprintf(buf, sizeof(buf), "/proc/self/fd/%d", fd);
  return buf;
}

// A name as the kernel sent it, checked again: the daemon already rejects
// '/' and NUL, but a name is the one thing that can walk, so it is cheap to
// be sure. "." and ".." are handled by the callers that allow them. Length
// is left to the source filesystem (ENAMETOOLONG).
inline bool ValidName(std::string_view name) {
  return !name.empty() && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

// errno of a failed call that creates an fd in the daemon. EMFILE is the
// daemon's own fd table being full; passed on, a caller would read it as
// its own ("the per-process limit on open files has been reached"), so it
// becomes ENFILE, a limit outside the caller's process.
inline int FdErrno() { return errno == EMFILE ? ENFILE : errno; }

inline bool IsDotOrDotDot(std::string_view name) { return name == "." || name == ".."; }

// The kernel's should_remove_suid(): S_ISUID always, S_ISGID only together
// with group-execute (without it, S_ISGID means mandatory locking).
inline mode_t KilledMode(mode_t mode) {
  mode_t kill = S_ISUID;
  if ((mode & S_IXGRP) != 0) kill |= S_ISGID;
  return mode & ~kill;
}

// Clears suid/sgid on an open fd. The daemon runs as root, which holds
// CAP_FSETID, so the kernel never clears them on its own writes.
inline int KillSuidSgid(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return errno;
  mode_t m = KilledMode(st.st_mode);
  if (m == st.st_mode) return 0;
  return fchmod(fd, m & 07777) == 0 ? 0 : errno;
}

// Switches the calling thread's credentials to the request's caller for a
// creation syscall: supplementary groups (read from /proc/<pid>/status of
// the calling thread; none if it is gone), then fsgid and fsuid. Raw
// syscalls, so only this thread changes (glibc's setgroups() would switch
// every thread of the daemon). Needs CAP_SETUID/CAP_SETGID (a root daemon);
// without them the syscalls fail and the thread keeps its ids. Restores on
// destruction.
class ScopedFsIds {
 public:
  ScopedFsIds(bool on, const RequestContext& ctx);
  ~ScopedFsIds();
  ScopedFsIds(const ScopedFsIds&) = delete;
  ScopedFsIds& operator=(const ScopedFsIds&) = delete;

 private:
  bool on_;
  bool groups_switched_ = false;
  int old_uid_ = 0;
  int old_gid_ = 0;
  std::vector<gid_t> old_groups_;
};

// The supplementary groups of thread `tid` ("Groups:" of /proc/<tid>/status).
// False if the thread is gone or the line is missing.
bool ReadCallerGroups(uint32_t tid, std::vector<gid_t>* groups);

}  // namespace kmfuse::passthrough_internal

#endif  // KMFUSE_FS_PASSTHROUGH_UTIL_H_
