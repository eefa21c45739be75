// PassthroughFs: open files — open/create/tmpfile, read/write, flush,
// release, fsync, locks, fallocate, lseek, copy_file_range.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "fs/passthrough_tables.h"
#include "fs/passthrough_util.h"
#include "kmfuse/passthrough.h"
#include "uring/base/unique_fd.h"

namespace kmfuse {

using passthrough_internal::Handle;
using passthrough_internal::InodeRef;
using passthrough_internal::IsDotOrDotDot;
using passthrough_internal::KillSuidSgid;
using passthrough_internal::ProcPath;
using passthrough_internal::ScopedFsIds;
using passthrough_internal::ValidName;

namespace {

constexpr size_t kDirectAlign = 4096;
constexpr uint64_t kOffsetMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

bool Aligned(uint64_t v) { return (v & (kDirectAlign - 1)) == 0; }

ssize_t PwriteAll(int fd, const char* p, size_t len, off_t off) {
  ssize_t n;
  do {
    n = pwrite(fd, p, len, off);
  } while (n < 0 && errno == EINTR);
  return n;
}

// An O_DIRECT write the device refused (EINVAL) because memory, offset or
// length are not aligned. Aligned offset+length: copy to aligned memory.
// Otherwise read-modify-write the covering aligned blocks and trim the size
// back when the last block reached past the end of the file. Serialised per
// handle; a concurrent writer through another handle can still interleave.
ssize_t DirectWriteFallback(Handle& h, const char* data, size_t len, off_t off) {
  const uint64_t start = static_cast<uint64_t>(off) & ~uint64_t{kDirectAlign - 1};
  const uint64_t end =
      (static_cast<uint64_t>(off) + len + kDirectAlign - 1) & ~uint64_t{kDirectAlign - 1};
  const size_t span = static_cast<size_t>(end - start);
  void* raw = nullptr;
  if (span == 0 || posix_memalign(&raw, kDirectAlign, span) != 0) {
    errno = span == 0 ? EINVAL : ENOMEM;
    return -1;
  }
  char* bounce = static_cast<char*>(raw);
  ssize_t result = -1;
  if (Aligned(static_cast<uint64_t>(off)) && Aligned(len)) {
    memcpy(bounce, data, len);
    result = PwriteAll(h.fd, bounce, len, off);
  } else {
    MutexLock l(&h.mu);
    struct stat st;
    if (fstat(h.fd, &st) == 0) {
      ssize_t got;
      do {
        got = pread(h.fd, bounce, span, static_cast<off_t>(start));
      } while (got < 0 && errno == EINTR);
      if (got >= 0) {
        if (static_cast<size_t>(got) < span) memset(bounce + got, 0, span - got);
        memcpy(bounce + (static_cast<uint64_t>(off) - start), data, len);
        ssize_t n = PwriteAll(h.fd, bounce, span, static_cast<off_t>(start));
        if (n == static_cast<ssize_t>(span)) {
          off_t want = std::max<off_t>(st.st_size, off + static_cast<off_t>(len));
          result = (static_cast<off_t>(end) > want && ftruncate(h.fd, want) != 0)
                       ? -1
                       : static_cast<ssize_t>(len);
        } else if (n >= 0) {
          errno = EIO;
        }
      }
    }
  }
  int saved = errno;
  free(raw);
  errno = saved;
  return result;
}

// READ and WRITE of a regular file the daemon serves (no kernel
// passthrough) go through the caller's own pages when the connection's
// io-uring queues are zero-copy queues: Read answers with DataFromFd and
// Write with WriteToFd, so every byte moves between those pages and the
// backing fd by fixed-buffer I/O.
void OfferZeroCopy(bool regular, const Reply& r, abi::fuse_open_out* out) {
  if (regular && (out->open_flags & abi::FOPEN_PASSTHROUGH) == 0 && r.ZeroCopyAvailable()) {
    out->open_flags |= abi::FOPEN_IO_URING_ZERO_COPY;
  }
}

}  // namespace

int PassthroughFs::HostOpenFlags(uint32_t kflags) const {
  int f = static_cast<int>(kflags);
  // O_NOFOLLOW would make the /proc reopen fail with ELOOP (it is a link);
  // the inode is already resolved. Creation flags belong to Create.
  f &= ~(O_NOFOLLOW | O_CREAT | O_EXCL | O_NOCTTY);
  f |= O_CLOEXEC;
  if (writeback_on_.load()) {
    // The kernel's writeback cache reads pages it writes partially and does
    // append itself (it knows the size).
    if ((f & O_ACCMODE) == O_WRONLY) f = (f & ~O_ACCMODE) | O_RDWR;
    f &= ~O_APPEND;
  }
  return f;
}

int PassthroughFs::MakeFileHandle(int fd, InodeRef inode, int flags, abi::fuse_open_out* out) {
  auto h = std::make_shared<Handle>(fd, std::move(inode), flags, false);
  *out = {};
  bool pt = false;
  FileSystemHost* host = host_.load();
  if (passthrough_on_.load() && host != nullptr) {
    absl::StatusOr<int32_t> id =
        backing_->Acquire(h->inode.id(), [&] { return host->BackingOpen(fd); });
    if (id.ok()) {
      h->backing_id.store(*id);
      out->backing_id = *id;
      out->open_flags |= abi::FOPEN_PASSTHROUGH;
      pt = true;
    } else {
      fprintf(stderr, "kmfuse passthrough: inode %llu served by the daemon: %s\n",
              static_cast<unsigned long long>(h->inode.id()),
              std::string(id.status().message()).c_str());
    }
  }
  // The kernel refuses FOPEN_KEEP_CACHE together with FOPEN_PASSTHROUGH.
  // An O_DIRECT open bypasses the page cache whatever the mode; answering
  // FOPEN_DIRECT_IO sends its reads and writes as plain synchronous
  // requests instead of through the kernel's async-DIO path (a background
  // request and a completion per call), and lets direct writes run in
  // parallel.
  if (!pt && (opts_.cache == CacheMode::kNone || (flags & O_DIRECT) != 0)) {
    out->open_flags |= abi::FOPEN_DIRECT_IO | abi::FOPEN_PARALLEL_DIRECT_WRITES;
  }
  if (!pt && opts_.cache == CacheMode::kAlways) out->open_flags |= abi::FOPEN_KEEP_CACHE;
  out->fh = handles_->Add(std::move(h));
  return 0;
}

void PassthroughFs::Open(const RequestContext& /*ctx*/, uint64_t ino, const abi::fuse_open_in& in,
                         Reply r) {
  const int acc = static_cast<int>(in.flags) & O_ACCMODE;
  if (opts_.readonly && (acc != O_RDONLY || (in.flags & O_TRUNC) != 0)) return r.Error(EROFS);
  InodeRef i;
  if (int err = inodes_->Acquire(ino, &i); err != 0) return r.Error(err);
  if (i.is_dir() && acc != O_RDONLY) return r.Error(EISDIR);
  if (S_ISLNK(i.mode())) return r.Error(ELOOP);
  int flags = HostOpenFlags(in.flags);
  UniqueFd fd(open(ProcPath(i.fd()).c_str(), flags));
  if (!fd) return r.Error(passthrough_internal::FdErrno());
  if ((in.open_flags & abi::FUSE_OPEN_KILL_SUIDGID) != 0 && (flags & O_TRUNC) != 0) {
    if (int err = KillSuidSgid(fd.get()); err != 0) return r.Error(err);
  }
  const bool regular = S_ISREG(i.mode());
  abi::fuse_open_out out;
  MakeFileHandle(fd.release(), std::move(i), flags, &out);
  OfferZeroCopy(regular, r, &out);
  r.Open(out);
}

void PassthroughFs::CreateCommon(const RequestContext& ctx, uint64_t parent,
                                 const std::string* name, const abi::fuse_create_in& in,
                                 Reply r) {
  if (opts_.readonly) return r.Error(EROFS);
  InodeRef p;
  if (int err = inodes_->Acquire(parent, &p); err != 0) return r.Error(err);
  if (!p.is_dir()) return r.Error(ENOTDIR);
  int flags = HostOpenFlags(in.flags);
  const char* path;
  if (name != nullptr) {
    // O_NOFOLLOW: a symlink planted under this name must not be followed
    // (it could point outside the source).
    flags |= O_CREAT | O_NOFOLLOW | (static_cast<int>(in.flags) & O_EXCL);
    path = name->c_str();
  } else {
    flags = (flags & ~O_DIRECTORY) | O_TMPFILE | (static_cast<int>(in.flags) & O_EXCL);
    if ((flags & O_ACCMODE) == O_RDONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
    path = ".";
  }
  UniqueFd fd;
  {
    ScopedFsIds ids(opts_.run_as_caller, ctx);
    fd.reset(openat(p.fd(), path, flags, in.mode & 07777));
  }
  if (!fd) return r.Error(passthrough_internal::FdErrno());
  abi::fuse_entry_out e;
  if (int err = EntryFromOpenFd(fd.get(), &e); err != 0) return r.Error(err);
  InodeRef i;
  if (int err = inodes_->Acquire(e.nodeid, &i); err != 0) {
    inodes_->Forget(e.nodeid, 1);
    return r.Error(err);
  }
  abi::fuse_open_out o;
  MakeFileHandle(fd.release(), std::move(i), flags, &o);
  OfferZeroCopy(true, r, &o);
  r.Create(e, o);
}

void PassthroughFs::Create(const RequestContext& ctx, uint64_t parent, std::string_view name,
                           const abi::fuse_create_in& in, Reply r) {
  if (!ValidName(name)) return r.Error(name.empty() ? ENOENT : EINVAL);
  if (IsDotOrDotDot(name)) return r.Error(EISDIR);
  std::string n(name);
  CreateCommon(ctx, parent, &n, in, std::move(r));
}

void PassthroughFs::Tmpfile(const RequestContext& ctx, uint64_t parent,
                            const abi::fuse_create_in& in, Reply r) {
  CreateCommon(ctx, parent, nullptr, in, std::move(r));
}

void PassthroughFs::Read(const RequestContext& /*ctx*/, uint64_t /*ino*/,
                         const abi::fuse_read_in& in, Reply r) {
  std::shared_ptr<Handle> h = handles_->Get(in.fh);
  if (h == nullptr || h->is_dir) return r.Error(EBADF);
  r.DataFromFd(h->fd, static_cast<off_t>(in.offset), in.size, h, h->flags);
}

void PassthroughFs::Write(const RequestContext& /*ctx*/, uint64_t /*ino*/,
                          const abi::fuse_write_in& in, absl::Span<const char> data, Reply r) {
  if (opts_.readonly) return r.Error(EROFS);
  std::shared_ptr<Handle> h = handles_->Get(in.fh);
  if (h == nullptr || h->is_dir) return r.Error(EBADF);
  size_t len = std::min<size_t>(data.size(), in.size);
  off_t off = static_cast<off_t>(in.offset);
  if ((in.write_flags & abi::FUSE_WRITE_KILL_SUIDGID) != 0 && r.ZeroCopyAvailable()) {
    // A zero-copy write completes on the ring: drop the bits first.
    if (int err = KillSuidSgid(h->fd); err != 0) return r.Error(err);
  }
  // Zero-copy (FOPEN_IO_URING_ZERO_COPY): the data is in the caller's pages
  // and `data` holds none of it; the transport writes and answers.
  if (r.WriteToFd(h->fd, off, len, h)) return;
  ssize_t n = PwriteAll(h->fd, data.data(), len, off);
  if (n < 0 && errno == EINVAL && (h->flags & O_DIRECT) != 0) {
    n = DirectWriteFallback(*h, data.data(), len, off);
  }
  if (n < 0) return r.Error(errno);
  if ((in.write_flags & abi::FUSE_WRITE_KILL_SUIDGID) != 0) {
    if (int err = KillSuidSgid(h->fd); err != 0) return r.Error(err);
  }
  r.Write(static_cast<uint32_t>(n));
}

void PassthroughFs::Flush(const RequestContext& /*ctx*/, uint64_t /*ino*/,
                          const abi::fuse_flush_in& in, Reply r) {
  std::shared_ptr<Handle> h = handles_->Get(in.fh);
  if (h == nullptr) return r.Error(EBADF);
  // POSIX: closing any fd of a file releases the closing process's locks.
  lock_owners_->Drop(h->inode.id(), in.lock_owner);
  // close() of a duplicate reports deferred write errors (NFS, FUSE below)
  // the way the caller's close() would, without closing our fd.
  int dup_fd = dup(h->fd);
  if (dup_fd < 0) return r.Error(passthrough_internal::FdErrno());
  if (close(dup_fd) != 0 && errno != EINTR) return r.Error(errno);
  r.Empty();
}

void PassthroughFs::Release(const RequestContext& /*ctx*/, uint64_t /*ino*/,
                            const abi::fuse_release_in& in, Reply r) {
  std::shared_ptr<Handle> h = handles_->Remove(in.fh);
  if (h == nullptr) return r.Error(EBADF);
  if ((in.release_flags & abi::FUSE_RELEASE_FLOCK_UNLOCK) != 0) flock(h->fd, LOCK_UN);
  {
    MutexLock l(&h->mu);
    for (uint64_t owner : h->lock_owners) lock_owners_->Drop(h->inode.id(), owner);
    h->lock_owners.clear();
  }
  int32_t id = h->backing_id.exchange(-1);
  FileSystemHost* host = host_.load();
  if (id >= 0 && backing_->Release(h->inode.id(), &id) && host != nullptr) {
    absl::Status s = host->BackingClose(id);
    if (!s.ok()) {
      fprintf(stderr, "kmfuse passthrough: closing backing id %d: %s\n", id,
              std::string(s.message()).c_str());
    }
  }
  r.Empty();
}

void PassthroughFs::Fsync(const RequestContext& /*ctx*/, uint64_t /*ino*/, uint64_t fh,
                          bool datasync, Reply r) {
  std::shared_ptr<Handle> h = handles_->Get(fh);
  if (h == nullptr) return r.Error(EBADF);
  int rc = datasync ? fdatasync(h->fd) : fsync(h->fd);
  if (rc != 0) return r.Error(errno);
  r.Empty();
}

namespace {

void ToFlock(const abi::fuse_file_lock& lk, struct flock* fl) {
  *fl = {};
  fl->l_type = static_cast<short>(lk.type);
  fl->l_whence = SEEK_SET;
  fl->l_start = static_cast<off_t>(lk.start);
  fl->l_len = lk.end >= kOffsetMax ? 0 : static_cast<off_t>(lk.end - lk.start + 1);
  fl->l_pid = 0;  // required by the OFD commands
}

}  // namespace

void PassthroughFs::Getlk(const RequestContext& /*ctx*/, uint64_t /*ino*/,
                          const abi::fuse_lk_in& in, Reply r) {
  std::shared_ptr<Handle> h = handles_->Get(in.fh);
  if (h == nullptr) return r.Error(EBADF);
  struct flock fl;
  ToFlock(in.lk, &fl);
  // The owner's own locks never conflict: test on its fd when it has one
  // (the handle's fd carries no record locks).
  int err = 0;
  std::shared_ptr<passthrough_internal::LockOwners::OwnerFd> o =
      lock_owners_->Get(h->inode.id(), in.owner, false, nullptr, &err);
  if (fcntl(o != nullptr ? o->fd : h->fd, F_OFD_GETLK, &fl) != 0) return r.Error(errno);
  abi::fuse_file_lock out{};
  out.type = static_cast<uint32_t>(fl.l_type);
  if (fl.l_type != F_UNLCK) {
    out.start = static_cast<uint64_t>(fl.l_start);
    out.end = fl.l_len == 0 ? kOffsetMax : static_cast<uint64_t>(fl.l_start + fl.l_len - 1);
    // OFD locks have no owning process (-1); 0 tells the kernel "unknown".
    out.pid = fl.l_pid > 0 ? static_cast<uint32_t>(fl.l_pid) : 0;
  }
  r.Lock(out);
}

void PassthroughFs::Setlk(const RequestContext& ctx, uint64_t /*ino*/,
                          const abi::fuse_lk_in& in, bool sleep, Reply r) {
  std::shared_ptr<Handle> h = handles_->Get(in.fh);
  if (h == nullptr) return r.Error(EBADF);
  std::function<int()> call;
  if ((in.lk_flags & abi::FUSE_LK_FLOCK) != 0) {
    int op;
    switch (in.lk.type) {
      case F_RDLCK:
        op = LOCK_SH;
        break;
      case F_WRLCK:
        op = LOCK_EX;
        break;
      case F_UNLCK:
        op = LOCK_UN;
        break;
      default:
        return r.Error(EINVAL);
    }
    if (!sleep || in.lk.type == F_UNLCK) op |= LOCK_NB;
    call = [h, op] { return flock(h->fd, op) == 0 ? 0 : errno; };
  } else {
    struct flock fl;
    ToFlock(in.lk, &fl);
    int cmd = sleep && in.lk.type != F_UNLCK ? F_OFD_SETLKW : F_OFD_SETLK;
    // A new open file description of the same file for this owner: read-write
    // when permitted so any lock type fits (the kernel already checked the
    // caller's fd mode), else the handle's own access mode.
    const int hfd = h->fd, acc = h->flags & O_ACCMODE;
    int err = 0;
    std::shared_ptr<passthrough_internal::LockOwners::OwnerFd> o = lock_owners_->Get(
        h->inode.id(), in.owner, in.lk.type != F_UNLCK,
        [hfd, acc] {
          int fd = open(ProcPath(hfd).c_str(), O_RDWR | O_CLOEXEC);
          if (fd < 0) fd = open(ProcPath(hfd).c_str(), acc | O_CLOEXEC);
          return fd < 0 ? -passthrough_internal::FdErrno() : fd;
        },
        &err);
    if (err != 0) return r.Error(err);
    if (o == nullptr) return r.Error(0);  // unlocking an owner that holds nothing
    {
      MutexLock l(&h->mu);
      if (std::find(h->lock_owners.begin(), h->lock_owners.end(), in.owner) ==
          h->lock_owners.end()) {
        h->lock_owners.push_back(in.owner);
      }
    }
    call = [o, cmd, fl]() mutable { return fcntl(o->fd, cmd, &fl) == 0 ? 0 : errno; };
  }
  if (!sleep || in.lk.type == F_UNLCK) {
    int err;
    do {
      err = call();
    } while (err == EINTR);
    return r.Error(err);
  }
  // A waiting lock may wait forever: never on a queue thread.
  blocking_->Run(ctx.unique, std::move(call), std::move(r));
}

void PassthroughFs::Interrupt(uint64_t unique) { blocking_->Interrupt(unique); }

void PassthroughFs::Fallocate(const RequestContext& /*ctx*/, uint64_t /*ino*/,
                              const abi::fuse_fallocate_in& in, Reply r) {
  if (opts_.readonly) return r.Error(EROFS);
  std::shared_ptr<Handle> h = handles_->Get(in.fh);
  if (h == nullptr) return r.Error(EBADF);
  if (fallocate(h->fd, static_cast<int>(in.mode), static_cast<off_t>(in.offset),
                static_cast<off_t>(in.length)) != 0) {
    return r.Error(errno);
  }
  r.Empty();
}

void PassthroughFs::Lseek(const RequestContext& /*ctx*/, uint64_t /*ino*/,
                          const abi::fuse_lseek_in& in, Reply r) {
  std::shared_ptr<Handle> h = handles_->Get(in.fh);
  if (h == nullptr) return r.Error(EBADF);
  off_t res = lseek(h->fd, static_cast<off_t>(in.offset), static_cast<int>(in.whence));
  if (res < 0) return r.Error(errno);
  r.Lseek(static_cast<uint64_t>(res));
}

void PassthroughFs::CopyFileRange(const RequestContext& /*ctx*/, uint64_t /*ino_in*/,
                                  const abi::fuse_copy_file_range_in& in, Reply r) {
  if (opts_.readonly) return r.Error(EROFS);
  std::shared_ptr<Handle> hin = handles_->Get(in.fh_in);
  std::shared_ptr<Handle> hout = handles_->Get(in.fh_out);
  if (hin == nullptr || hout == nullptr) return r.Error(EBADF);
  // The reply (fuse_write_out) carries 32 bits; the kernel loops for more.
  size_t len = static_cast<size_t>(std::min<uint64_t>(in.len, 0xfffff000u));
  off_t off_in = static_cast<off_t>(in.off_in);
  off_t off_out = static_cast<off_t>(in.off_out);
  ssize_t n = copy_file_range(hin->fd, &off_in, hout->fd, &off_out, len,
                              static_cast<unsigned>(in.flags));
  if (n < 0) return r.Error(errno);
  r.Write(static_cast<uint32_t>(n));
}

}  // namespace kmfuse
