// PassthroughFs: extended attributes, access, statfs, syncfs.
//
// The *xattr calls take a path: /proc/self/fd/N of the inode's O_PATH fd
// (f*xattr refuse O_PATH fds, and opening the file for real would block on
// FIFOs and need read permission).
#include <errno.h>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "fs/passthrough_tables.h"
#include "fs/passthrough_util.h"
#include "kmfuse/passthrough.h"

namespace kmfuse {

using passthrough_internal::InodeRef;
using passthrough_internal::ProcPath;

void PassthroughFs::Setxattr(const RequestContext& /*ctx*/, uint64_t ino, std::string_view name,
                             absl::Span<const char> value, uint32_t flags, Reply r) {
  if (opts_.readonly) return r.Error(EROFS);
  InodeRef i;
  if (int err = inodes_->Acquire(ino, &i); err != 0) return r.Error(err);
  if (setxattr(ProcPath(i.fd()).c_str(), std::string(name).c_str(), value.data(), value.size(),
               static_cast<int>(flags)) != 0) {
    return r.Error(errno);
  }
  // The kernel answers these by only marking the cached ctime stale (no
  // attr_version bump), so a GETATTR answered before the change and
  // delivered after it would be cached as current for the attr timeout. An
  // inode invalidation sent before the reply bumps attr_version: the kernel
  // then drops every answer computed before it (docs/kernel-interfaces.md,
  // section 8; tests/fault/ctime_test.cc).
  InvalidateCachedAttrs(ino);
  r.Empty();
}

void PassthroughFs::Getxattr(const RequestContext& /*ctx*/, uint64_t ino, std::string_view name,
                             uint32_t size, Reply r) {
  InodeRef i;
  if (int err = inodes_->Acquire(ino, &i); err != 0) return r.Error(err);
  // Copy the name first: it may share memory with the reply buffer.
  const std::string n(name);
  const std::string path = ProcPath(i.fd());
  if (size == 0) {
    ssize_t len = getxattr(path.c_str(), n.c_str(), nullptr, 0);
    if (len < 0) return r.Error(errno);
    return r.XattrSize(static_cast<uint32_t>(len));
  }
  absl::Span<char> buf = r.Buffer();
  ssize_t len = getxattr(path.c_str(), n.c_str(), buf.data(), std::min<size_t>(size, buf.size()));
  if (len < 0) return r.Error(errno);
  r.Ok(static_cast<size_t>(len));
}

void PassthroughFs::Listxattr(const RequestContext& /*ctx*/, uint64_t ino, uint32_t size,
                              Reply r) {
  InodeRef i;
  if (int err = inodes_->Acquire(ino, &i); err != 0) return r.Error(err);
  const std::string path = ProcPath(i.fd());
  if (size == 0) {
    ssize_t len = listxattr(path.c_str(), nullptr, 0);
    if (len < 0) return r.Error(errno);
    return r.XattrSize(static_cast<uint32_t>(len));
  }
  absl::Span<char> buf = r.Buffer();
  ssize_t len = listxattr(path.c_str(), buf.data(), std::min<size_t>(size, buf.size()));
  if (len < 0) return r.Error(errno);
  r.Ok(static_cast<size_t>(len));
}

void PassthroughFs::Removexattr(const RequestContext& /*ctx*/, uint64_t ino,
                                std::string_view name, Reply r) {
  if (opts_.readonly) return r.Error(EROFS);
  InodeRef i;
  if (int err = inodes_->Acquire(ino, &i); err != 0) return r.Error(err);
  if (removexattr(ProcPath(i.fd()).c_str(), std::string(name).c_str()) != 0) {
    return r.Error(errno);
  }
  InvalidateCachedAttrs(ino);  // as in Setxattr
  r.Empty();
}

void PassthroughFs::Access(const RequestContext& /*ctx*/, uint64_t ino, uint32_t mask, Reply r) {
  InodeRef i;
  if (int err = inodes_->Acquire(ino, &i); err != 0) return r.Error(err);
  if (opts_.readonly && (mask & W_OK) != 0) return r.Error(EROFS);
  if (S_ISLNK(i.mode())) return r.Empty();  // access() follows; links are always 0777
  if (faccessat(AT_FDCWD, ProcPath(i.fd()).c_str(), static_cast<int>(mask), 0) != 0) {
    return r.Error(errno);
  }
  r.Empty();
}

void PassthroughFs::Statfs(const RequestContext& /*ctx*/, uint64_t ino, Reply r) {
  // Natively the inodes an unlink or rmdir frees are free when it returns;
  // here they are freed when the kernel forgets them and the closer closes
  // their fds. Count them as natively (stress-ng's dirdeep computes inodes
  // used as an unsigned difference of two statfs calls and stops when free
  // inodes go up), waiting a bounded time under a storm of closes.
  inodes_->SettleCloses(absl::Seconds(1));
  InodeRef i;
  if (int err = inodes_->Acquire(ino, &i); err != 0) return r.Error(err);
  struct statvfs st;
  if (fstatvfs(i.fd(), &st) != 0) return r.Error(errno);
  r.Statfs(st);
}

void PassthroughFs::Syncfs(const RequestContext& /*ctx*/, uint64_t /*ino*/, Reply r) {
  if (syncfs(root_read_fd_) != 0) return r.Error(errno);
  r.Empty();
}

}  // namespace kmfuse
