// Small helpers shared by the PassthroughFs op families (private).
#ifndef KMFUSE_FS_PASSTHROUGH_UTIL_H_
#define KMFUSE_FS_PASSTHROUGH_UTIL_H_

#include <errno.h>
#include <stdio.h>
#include <sys/fsuid.h>
#include <sys/stat.h>

#include <string>
#include <string_view>

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

// Switches the calling thread's fsuid/fsgid to the request's caller for a
// creation syscall (setfsuid is per thread). Restores on destruction.
class ScopedFsIds {
 public:
  ScopedFsIds(bool on, const RequestContext& ctx) : on_(on) {
    if (!on_) return;
    old_gid_ = setfsgid(ctx.gid);
    old_uid_ = setfsuid(ctx.uid);
  }
  ~ScopedFsIds() {
    if (!on_) return;
    setfsuid(old_uid_);
    setfsgid(old_gid_);
  }
  ScopedFsIds(const ScopedFsIds&) = delete;
  ScopedFsIds& operator=(const ScopedFsIds&) = delete;

 private:
  bool on_;
  int old_uid_ = 0;
  int old_gid_ = 0;
};

}  // namespace kmfuse::passthrough_internal

#endif  // KMFUSE_FS_PASSTHROUGH_UTIL_H_
