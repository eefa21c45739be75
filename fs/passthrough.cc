// PassthroughFs: options, setup, INIT, and the entry/attribute ops.
// File I/O is in passthrough_file.cc, directories in passthrough_dir.cc,
// xattrs and the rest in passthrough_xattr.cc.
#include "kmfuse/passthrough.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "fs/passthrough_tables.h"
#include "fs/passthrough_util.h"
#include "uring/base/unique_fd.h"

namespace kmfuse {

using passthrough_internal::Handle;
using passthrough_internal::FdErrno;
using passthrough_internal::HandleTable;
using passthrough_internal::InodeRef;
using passthrough_internal::InodeTable;
using passthrough_internal::IsDotOrDotDot;
using passthrough_internal::KilledMode;
using passthrough_internal::ProcPath;
using passthrough_internal::ScopedFsIds;
using passthrough_internal::ValidName;

namespace {

// Abseil here is built with its own string_view type
// (ABSL_OPTION_USE_STD_STRING_VIEW 0): std::string_view does not convert.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status ParseBool(std::string_view key, std::string_view value, bool* out) {
  if (value.empty() || value == "1" || value == "true" || value == "yes" || value == "on") {
    *out = true;
  } else if (value == "0" || value == "false" || value == "no" || value == "off") {
    *out = false;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("option ", AV(key), ": expected no value or true/false, got '", AV(value), "'"));
  }
  return absl::OkStatus();
}

absl::Status SourceError(int err, const std::string& path, std::string_view what) {
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat("passthrough source ", path, ": ", AV(what), ": ", strerror(err)));
}

// Raises the soft RLIMIT_NOFILE to the hard limit. A passthrough server
// holds an fd for every open file of every caller (and an inode fd for each
// of those), so the common soft limit of 1024 (hard 4096 or more) would make
// it run out long before its callers do.
void RaiseNofileLimit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

// Half of the (raised) RLIMIT_NOFILE soft limit.
size_t DefaultBudget() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 4096;
  return static_cast<size_t>(rl.rlim_cur / 2);
}

}  // namespace

absl::Status ParsePassthroughOption(std::string_view key, std::string_view value,
                                    PassthroughOptions* opts) {
  if (key == "cache") {
    if (value == "none") {
      opts->cache = CacheMode::kNone;
    } else if (value == "auto") {
      opts->cache = CacheMode::kAuto;
    } else if (value == "always") {
      opts->cache = CacheMode::kAlways;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("option cache: expected none, auto or always, got '", AV(value), "'"));
    }
    return absl::OkStatus();
  }
  if (key == "writeback_cache") return ParseBool(key, value, &opts->writeback_cache);
  if (key == "passthrough") return ParseBool(key, value, &opts->passthrough);
  if (key == "posix_locks") return ParseBool(key, value, &opts->posix_locks);
  if (key == "flock_locks") return ParseBool(key, value, &opts->flock_locks);
  if (key == "run_as_caller") return ParseBool(key, value, &opts->run_as_caller);
  if (key == "ro" || key == "rw") {
    if (!value.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("option ", AV(key), " takes no value"));
    }
    opts->readonly = key == "ro";
    return absl::OkStatus();
  }
  if (key == "fd_budget") {
    uint64_t n = 0;
    if (!absl::SimpleAtoi(AV(value), &n)) {
      return absl::InvalidArgumentError(
          absl::StrCat("option fd_budget: expected a number of fds, got '", AV(value), "'"));
    }
    opts->fd_budget = static_cast<size_t>(n);
    return absl::OkStatus();
  }
  if (key == "source") {
    if (value.empty()) return absl::InvalidArgumentError("option source: empty path");
    opts->source = std::string(value);
    return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrCat("not a passthrough option: ", AV(key)));
}

absl::StatusOr<std::unique_ptr<PassthroughFs>> PassthroughFs::Create(
    const PassthroughOptions& opts) {
  const std::string& src = opts.source;
  if (src.empty()) return absl::InvalidArgumentError("passthrough: no source directory given");
  struct stat st;
  if (stat(src.c_str(), &st) != 0) return SourceError(errno, src, "cannot stat");
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("passthrough source ", src, ": not a directory"));
  }
  UniqueFd rfd(open(src.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!rfd) return SourceError(errno, src, "cannot open for reading");
  UniqueFd pfd(open(src.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!pfd) return SourceError(errno, src, "cannot open");
  if (fstat(pfd.get(), &st) != 0) return SourceError(errno, src, "cannot stat");
  // Probe file handles once: they decide whether the fd budget can evict.
  bool handles_ok = false;
  int mount_id = -1;
  {
    alignas(struct file_handle) char buf[sizeof(struct file_handle) + 128];
    auto* fh = reinterpret_cast<struct file_handle*>(buf);
    fh->handle_bytes = 128;
    if (name_to_handle_at(pfd.get(), "", fh, &mount_id, AT_EMPTY_PATH) == 0) {
      handles_ok = UniqueFd(open_by_handle_at(rfd.get(), fh, O_PATH | O_CLOEXEC)).valid();
    }
    if (!handles_ok) {
      fprintf(stderr,
              "kmfuse passthrough: %s: file handles unavailable (%s); inode fds are never "
              "evicted and the fd budget is not kept\n",
              src.c_str(), strerror(errno));
    }
  }
  RaiseNofileLimit();
  size_t budget = opts.fd_budget != 0 ? opts.fd_budget : DefaultBudget();
  budget = std::max<size_t>(budget, 8);
  auto inodes =
      std::make_unique<InodeTable>(pfd.release(), st, budget, rfd.get(), handles_ok, mount_id);
  return std::unique_ptr<PassthroughFs>(new PassthroughFs(opts, rfd.release(), std::move(inodes)));
}

PassthroughFs::PassthroughFs(const PassthroughOptions& opts, int root_read_fd,
                             std::unique_ptr<InodeTable> inodes)
    : opts_(opts), root_read_fd_(root_read_fd), inodes_(std::move(inodes)),
      handles_(std::make_unique<HandleTable>()),
      backing_(std::make_unique<passthrough_internal::BackingIds>()),
      lock_owners_(std::make_unique<passthrough_internal::LockOwners>()),
      blocking_(std::make_unique<BlockingCalls>()) {}

PassthroughFs::~PassthroughFs() {
  Destroy();
  handles_.reset();
  inodes_.reset();
  close(root_read_fd_);
}

size_t PassthroughFs::open_inode_fds() const { return inodes_->open_fds(); }
size_t PassthroughFs::closing_inode_fds() const { return inodes_->closing_fds(); }
bool PassthroughFs::SettleCloses(absl::Duration timeout) {
  return inodes_->SettleCloses(timeout);
}
size_t PassthroughFs::inode_count() const { return inodes_->size(); }
size_t PassthroughFs::fd_budget() const { return inodes_->budget(); }

absl::Status PassthroughFs::Init(ConnectionInfo& conn) {
  host_.store(conn.host);
  uint64_t want = conn.want;
  if (opts_.writeback_cache && (conn.offered & abi::FUSE_WRITEBACK_CACHE) != 0) {
    want |= abi::FUSE_WRITEBACK_CACHE;
  } else {
    want &= ~abi::FUSE_WRITEBACK_CACHE;
  }
  if (!opts_.posix_locks) want &= ~abi::FUSE_POSIX_LOCKS;
  if (!opts_.flock_locks) want &= ~abi::FUSE_FLOCK_LOCKS;
  bool pt = opts_.passthrough && conn.passthrough_possible &&
            (conn.offered & abi::FUSE_PASSTHROUGH) != 0 && conn.host != nullptr;
  if (pt) {
    want |= abi::FUSE_PASSTHROUGH;
    // Our backing files live on a host filesystem, which is itself depth 0.
    conn.max_stack_depth = 1;
  } else {
    want &= ~abi::FUSE_PASSTHROUGH;
    if (opts_.passthrough) {
      fprintf(stderr,
              "kmfuse passthrough: kernel passthrough unavailable for this session "
              "(offered=%d possible=%d); serving reads and writes through the daemon\n",
              (conn.offered & abi::FUSE_PASSTHROUGH) != 0, conn.passthrough_possible);
    }
  }
  conn.want = want;
  passthrough_on_.store(pt);
  writeback_on_.store((want & abi::FUSE_WRITEBACK_CACHE) != 0);
  return absl::OkStatus();
}

void PassthroughFs::Destroy() {
  FileSystemHost* host = host_.load();
  for (auto& h : handles_->TakeAll()) h->backing_id.store(-1);
  for (int32_t id : backing_->TakeAll()) {
    if (host != nullptr) host->BackingClose(id).IgnoreError();
  }
  lock_owners_->Clear();
  inodes_->Clear();
}

uint64_t PassthroughFs::AttrTimeout() const {
  switch (opts_.cache) {
    case CacheMode::kNone:
      return 0;
    case CacheMode::kAuto:
      return 1;
    case CacheMode::kAlways:
      return 86400;
  }
  return 0;
}

void PassthroughFs::InvalidateCachedAttrs(uint64_t ino) {
  FileSystemHost* host = host_.load();
  if (host == nullptr || AttrTimeout() == 0) return;
  // ENOENT: the kernel holds no inode for it, so nothing is cached.
  host->NotifyInvalInode(ino, -1, 0).IgnoreError();
}

void PassthroughFs::FillTimeouts(abi::fuse_entry_out* e) const {
  e->entry_valid = AttrTimeout();
  e->attr_valid = AttrTimeout();
  e->entry_valid_nsec = 0;
  e->attr_valid_nsec = 0;
}

int PassthroughFs::LookupAt(int parent_fd, const std::string& name, abi::fuse_entry_out* out) {
  int fd = openat(parent_fd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return FdErrno();
  return EntryFromPathFd(fd, out);
}

int PassthroughFs::EntryFromOpenFd(int fd, abi::fuse_entry_out* out) {
  // Not O_NOFOLLOW: that would give an fd on the /proc magic link itself.
  int pfd = open(ProcPath(fd).c_str(), O_PATH | O_CLOEXEC);
  if (pfd < 0) return FdErrno();
  return EntryFromPathFd(pfd, out);
}

int PassthroughFs::EntryFromPathFd(int fd, abi::fuse_entry_out* out) {
  struct stat st;
  if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    int err = errno;
    close(fd);
    return err;
  }
  uint64_t id = 0;
  if (int err = inodes_->Register(fd, st, &id); err != 0) return err;
  *out = {};
  out->nodeid = id;
  FillAttr(st, &out->attr);
  FillTimeouts(out);
  return 0;
}

void PassthroughFs::Lookup(const RequestContext& /*ctx*/, uint64_t parent, std::string_view name,
                           Reply r) {
  if (!ValidName(name)) return r.Error(name.empty() ? ENOENT : EINVAL);
  InodeRef p;
  if (int err = inodes_->Acquire(parent, &p); err != 0) return r.Error(err);
  if (!p.is_dir()) return r.Error(ENOTDIR);
  std::string n(name);
  // ".." of the root is the root: the source's parent is outside.
  if (n == ".." && parent == abi::FUSE_ROOT_ID) n = ".";
  abi::fuse_entry_out e;
  if (int err = LookupAt(p.fd(), n, &e); err != 0) return r.Error(err);
  r.Entry(e);
}

void PassthroughFs::Forget(uint64_t ino, uint64_t nlookup) { inodes_->Forget(ino, nlookup); }

void PassthroughFs::Getattr(const RequestContext& /*ctx*/, uint64_t ino,
                            std::optional<uint64_t> fh, Reply r) {
  struct stat st;
  std::shared_ptr<Handle> h = fh ? handles_->Get(*fh) : nullptr;
  if (h != nullptr) {
    if (fstat(h->fd, &st) != 0) return r.Error(errno);
  } else {
    InodeRef i;
    if (int err = inodes_->Acquire(ino, &i); err != 0) return r.Error(err);
    if (fstatat(i.fd(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
      return r.Error(errno);
    }
  }
  abi::fuse_attr_out out{};
  out.attr_valid = AttrTimeout();
  FillAttr(st, &out.attr);
  r.Attr(out);
}

void PassthroughFs::Setattr(const RequestContext& /*ctx*/, uint64_t ino,
                            const abi::fuse_setattr_in& in, Reply r) {
  if (opts_.readonly) return r.Error(EROFS);
  InodeRef i;
  if (int err = inodes_->Acquire(ino, &i); err != 0) return r.Error(err);
  std::shared_ptr<Handle> h;
  if ((in.valid & abi::FATTR_FH) != 0) {
    h = handles_->Get(in.fh);
    if (h == nullptr) return r.Error(EBADF);
  }
  const int hfd = h != nullptr ? h->fd : -1;
  const std::string path = ProcPath(i.fd());
  const bool is_link = S_ISLNK(i.mode());

  if ((in.valid & abi::FATTR_MODE) != 0) {
    int rc = hfd >= 0 ? fchmod(hfd, in.mode & 07777) : chmod(path.c_str(), in.mode & 07777);
    if (rc != 0) return r.Error(errno);
  }
  if ((in.valid & (abi::FATTR_UID | abi::FATTR_GID)) != 0) {
    uid_t uid = (in.valid & abi::FATTR_UID) != 0 ? in.uid : static_cast<uid_t>(-1);
    gid_t gid = (in.valid & abi::FATTR_GID) != 0 ? in.gid : static_cast<gid_t>(-1);
    if (fchownat(i.fd(), "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
      return r.Error(errno);
    }
  }
  if ((in.valid & abi::FATTR_SIZE) != 0) {
    if (is_link || i.is_dir()) return r.Error(i.is_dir() ? EISDIR : EINVAL);
    off_t size = static_cast<off_t>(in.size);
    int rc = hfd >= 0 ? ftruncate(hfd, size) : truncate(path.c_str(), size);
    if (rc != 0) return r.Error(errno);
  }
  if ((in.valid & (abi::FATTR_ATIME | abi::FATTR_MTIME)) != 0) {
    struct timespec ts[2];
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_nsec = UTIME_OMIT;
    if ((in.valid & abi::FATTR_ATIME_NOW) != 0) {
      ts[0].tv_nsec = UTIME_NOW;
    } else if ((in.valid & abi::FATTR_ATIME) != 0) {
      ts[0].tv_sec = static_cast<time_t>(in.atime);
      ts[0].tv_nsec = in.atimensec;
    }
    if ((in.valid & abi::FATTR_MTIME_NOW) != 0) {
      ts[1].tv_nsec = UTIME_NOW;
    } else if ((in.valid & abi::FATTR_MTIME) != 0) {
      ts[1].tv_sec = static_cast<time_t>(in.mtime);
      ts[1].tv_nsec = in.mtimensec;
    }
    int rc;
    if (hfd >= 0) {
      rc = futimens(hfd, ts);
    } else {
      rc = utimensat(i.fd(), "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
      // Kernels before 5.8 refuse AT_EMPTY_PATH here; /proc works for all
      // but symlinks.
      if (rc != 0 && errno == EINVAL && !is_link) rc = utimensat(AT_FDCWD, path.c_str(), ts, 0);
    }
    if (rc != 0) return r.Error(errno);
  }
  if ((in.valid & abi::FATTR_KILL_SUIDGID) != 0 && (in.valid & abi::FATTR_MODE) == 0 &&
      !is_link) {
    struct stat st;
    if (fstatat(i.fd(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return r.Error(errno);
    mode_t m = KilledMode(st.st_mode);
    if (m != st.st_mode && chmod(path.c_str(), m & 07777) != 0) return r.Error(errno);
  }
  struct stat st;
  int rc = hfd >= 0 ? fstat(hfd, &st) : fstatat(i.fd(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
  if (rc != 0) return r.Error(errno);
  abi::fuse_attr_out out{};
  out.attr_valid = AttrTimeout();
  FillAttr(st, &out.attr);
  r.Attr(out);
}

void PassthroughFs::Statx(const RequestContext& /*ctx*/, uint64_t ino,
                          const abi::fuse_statx_in& in, Reply r) {
  InodeRef i;
  if (int err = inodes_->Acquire(ino, &i); err != 0) return r.Error(err);
  int fd = i.fd();
  std::shared_ptr<Handle> h;
  if ((in.getattr_flags & abi::FUSE_GETATTR_FH) != 0) {
    h = handles_->Get(in.fh);
    if (h != nullptr) fd = h->fd;
  }
  unsigned mask = in.sx_mask != 0 ? in.sx_mask : (STATX_BASIC_STATS | STATX_BTIME);
  int flags = AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | (in.sx_flags & AT_STATX_SYNC_TYPE);
  struct statx sx;
  if (statx(fd, "", flags, mask, &sx) != 0) return r.Error(errno);
  abi::fuse_statx_out out{};
  out.attr_valid = AttrTimeout();
  abi::fuse_statx& s = out.stat;
  s.mask = sx.stx_mask;
  s.blksize = sx.stx_blksize;
  s.attributes = sx.stx_attributes;
  s.nlink = sx.stx_nlink;
  s.uid = sx.stx_uid;
  s.gid = sx.stx_gid;
  s.mode = sx.stx_mode;
  s.ino = sx.stx_ino;
  s.size = sx.stx_size;
  s.blocks = sx.stx_blocks;
  s.attributes_mask = sx.stx_attributes_mask;
  auto t = [](const struct statx_timestamp& ts) {
    abi::fuse_sx_time o{};
    o.tv_sec = ts.tv_sec;
    o.tv_nsec = ts.tv_nsec;
    return o;
  };
  s.atime = t(sx.stx_atime);
  s.btime = t(sx.stx_btime);
  s.ctime = t(sx.stx_ctime);
  s.mtime = t(sx.stx_mtime);
  s.rdev_major = sx.stx_rdev_major;
  s.rdev_minor = sx.stx_rdev_minor;
  s.dev_major = sx.stx_dev_major;
  s.dev_minor = sx.stx_dev_minor;
  r.Struct(out);
}

void PassthroughFs::Readlink(const RequestContext& /*ctx*/, uint64_t ino, Reply r) {
  InodeRef i;
  if (int err = inodes_->Acquire(ino, &i); err != 0) return r.Error(err);
  if (!S_ISLNK(i.mode())) return r.Error(EINVAL);
  char buf[PATH_MAX + 1];
  ssize_t n = readlinkat(i.fd(), "", buf, sizeof(buf));
  if (n < 0) return r.Error(errno);
  r.Data(buf, static_cast<size_t>(n));
}

void PassthroughFs::Mknod(const RequestContext& ctx, uint64_t parent, std::string_view name,
                          const abi::fuse_mknod_in& in, Reply r) {
  if (opts_.readonly) return r.Error(EROFS);
  if (!ValidName(name) || IsDotOrDotDot(name)) return r.Error(name.empty() ? ENOENT : EEXIST);
  InodeRef p;
  if (int err = inodes_->Acquire(parent, &p); err != 0) return r.Error(err);
  std::string n(name);
  {
    ScopedFsIds ids(opts_.run_as_caller, ctx);
    if (mknodat(p.fd(), n.c_str(), in.mode, static_cast<dev_t>(in.rdev)) != 0) {
      return r.Error(errno);
    }
  }
  abi::fuse_entry_out e;
  if (int err = LookupAt(p.fd(), n, &e); err != 0) return r.Error(err);
  r.Entry(e);
}

void PassthroughFs::Mkdir(const RequestContext& ctx, uint64_t parent, std::string_view name,
                          const abi::fuse_mkdir_in& in, Reply r) {
  if (opts_.readonly) return r.Error(EROFS);
  if (!ValidName(name) || IsDotOrDotDot(name)) return r.Error(name.empty() ? ENOENT : EEXIST);
  InodeRef p;
  if (int err = inodes_->Acquire(parent, &p); err != 0) return r.Error(err);
  std::string n(name);
  {
    ScopedFsIds ids(opts_.run_as_caller, ctx);
    if (mkdirat(p.fd(), n.c_str(), in.mode & 07777) != 0) return r.Error(errno);
  }
  abi::fuse_entry_out e;
  if (int err = LookupAt(p.fd(), n, &e); err != 0) return r.Error(err);
  r.Entry(e);
}

void PassthroughFs::Unlink(const RequestContext& /*ctx*/, uint64_t parent, std::string_view name,
                           Reply r) {
  if (opts_.readonly) return r.Error(EROFS);
  if (!ValidName(name)) return r.Error(ENOENT);
  if (IsDotOrDotDot(name)) return r.Error(EISDIR);
  inodes_->ThrottleCloses();
  InodeRef p;
  if (int err = inodes_->Acquire(parent, &p); err != 0) return r.Error(err);
  if (unlinkat(p.fd(), std::string(name).c_str(), 0) != 0) return r.Error(errno);
  r.Empty();
}

void PassthroughFs::Rmdir(const RequestContext& /*ctx*/, uint64_t parent, std::string_view name,
                          Reply r) {
  if (opts_.readonly) return r.Error(EROFS);
  if (!ValidName(name)) return r.Error(ENOENT);
  if (name == ".") return r.Error(EINVAL);
  if (name == "..") return r.Error(ENOTEMPTY);
  inodes_->ThrottleCloses();
  InodeRef p;
  if (int err = inodes_->Acquire(parent, &p); err != 0) return r.Error(err);
  if (unlinkat(p.fd(), std::string(name).c_str(), AT_REMOVEDIR) != 0) return r.Error(errno);
  r.Empty();
}

void PassthroughFs::Symlink(const RequestContext& ctx, uint64_t parent, std::string_view name,
                            std::string_view target, Reply r) {
  if (opts_.readonly) return r.Error(EROFS);
  if (!ValidName(name) || IsDotOrDotDot(name)) return r.Error(name.empty() ? ENOENT : EEXIST);
  if (target.empty() || target.find('\0') != std::string_view::npos) return r.Error(ENOENT);
  InodeRef p;
  if (int err = inodes_->Acquire(parent, &p); err != 0) return r.Error(err);
  std::string n(name);
  {
    ScopedFsIds ids(opts_.run_as_caller, ctx);
    if (symlinkat(std::string(target).c_str(), p.fd(), n.c_str()) != 0) return r.Error(errno);
  }
  abi::fuse_entry_out e;
  if (int err = LookupAt(p.fd(), n, &e); err != 0) return r.Error(err);
  r.Entry(e);
}

void PassthroughFs::Rename(const RequestContext& /*ctx*/, uint64_t parent, std::string_view name,
                           uint64_t newparent, std::string_view newname, uint32_t flags,
                           Reply r) {
  if (opts_.readonly) return r.Error(EROFS);
  if (!ValidName(name) || !ValidName(newname)) return r.Error(ENOENT);
  if (IsDotOrDotDot(name) || IsDotOrDotDot(newname)) return r.Error(EBUSY);
  if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) != 0) {
    return r.Error(EINVAL);
  }
  inodes_->ThrottleCloses();
  InodeRef p, np;
  if (int err = inodes_->Acquire(parent, &p); err != 0) return r.Error(err);
  if (int err = inodes_->Acquire(newparent, &np); err != 0) return r.Error(err);
  if (renameat2(p.fd(), std::string(name).c_str(), np.fd(), std::string(newname).c_str(),
                flags) != 0) {
    return r.Error(errno);
  }
  // A rename only marks the moved inode's cached ctime stale in the kernel
  // (and the other one's with RENAME_EXCHANGE): invalidate them as Setxattr
  // does. Their ids come from a lookup given back at once.
  if (AttrTimeout() > 0) {
    auto invalidate = [&](int dir_fd, std::string_view n) {
      abi::fuse_entry_out e;
      if (LookupAt(dir_fd, std::string(n), &e) != 0) return;
      InvalidateCachedAttrs(e.nodeid);
      inodes_->Forget(e.nodeid, 1);
    };
    invalidate(np.fd(), newname);
    if ((flags & RENAME_EXCHANGE) != 0) invalidate(p.fd(), name);
  }
  r.Empty();
}

void PassthroughFs::Link(const RequestContext& ctx, uint64_t ino, uint64_t newparent,
                         std::string_view newname, Reply r) {
  if (opts_.readonly) return r.Error(EROFS);
  if (!ValidName(newname) || IsDotOrDotDot(newname)) {
    return r.Error(newname.empty() ? ENOENT : EEXIST);
  }
  InodeRef i, np;
  if (int err = inodes_->Acquire(ino, &i); err != 0) return r.Error(err);
  if (i.is_dir()) return r.Error(EPERM);
  if (int err = inodes_->Acquire(newparent, &np); err != 0) return r.Error(err);
  std::string n(newname);
  {
    ScopedFsIds ids(opts_.run_as_caller, ctx);
    // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc form works without
    // it for everything but symlinks.
    if (linkat(i.fd(), "", np.fd(), n.c_str(), AT_EMPTY_PATH) != 0) {
      int err = errno;
      if ((err != ENOENT && err != EPERM) || S_ISLNK(i.mode()) ||
          linkat(AT_FDCWD, ProcPath(i.fd()).c_str(), np.fd(), n.c_str(), AT_SYMLINK_FOLLOW) !=
              0) {
        return r.Error(err == ENOENT || err == EPERM ? errno : err);
      }
    }
  }
  abi::fuse_entry_out e;
  if (int err = LookupAt(np.fd(), n, &e); err != 0) return r.Error(err);
  r.Entry(e);
}

}  // namespace kmfuse
