// PassthroughFs: a FileSystem that mirrors a directory of the host.
//
// Every inode the kernel knows is held as an O_PATH|O_NOFOLLOW fd in an inode
// table keyed by (st_dev, st_ino); all access is relative to those fds
// (openat/fstatat with AT_EMPTY_PATH|AT_SYMLINK_NOFOLLOW, /proc/self/fd/N to
// reopen an O_PATH fd with real access), so no path given by the kernel or
// planted in the source (symlinks, "..") is ever resolved from a string and
// nothing outside the source is reachable. Node ids are generated numbers
// (never pointers); the root is abi::FUSE_ROOT_ID; unknown ids get ENOENT.
//
// Contracts
// - Lookup counts follow filesystem.h: Lookup, Mknod, Mkdir, Symlink, Link,
//   Create, Tmpfile and every READDIRPLUS entry other than "." and ".." add
//   one; Forget removes nlookup; at 0 the inode leaves the table and its fd is
//   closed as soon as no request is using it. The root is never dropped.
// - fd budget: at most `fd_budget` O_PATH inode fds are open at once. Beyond
//   it, fds of inodes that no request and no open file handle is using are
//   closed least-recently-used first, after saving a file handle
//   (name_to_handle_at); the inode is reopened with open_by_handle_at when it
//   is used again (ESTALE if it was deleted meanwhile). When the source does
//   not support file handles (or is a different mount than the root), such
//   inodes cannot be evicted. Inodes in use by a request or an open handle
//   are never evicted; when every held fd is in use or unevictable, a new
//   inode fd goes over the budget rather than fail the request (logged
//   once). The default budget is half of RLIMIT_NOFILE, whose soft limit
//   Create raises to the hard one.
// - The daemon's own EMFILE never reaches a caller: a call that cannot get
//   an fd in the daemon is answered ENFILE.
// - Closing: fds of forgotten inodes are closed on background threads, never
//   on the thread handling FORGET (the last close of an unlinked host inode
//   frees it and can wait for the device); Statfs first waits (bounded) for
//   those closes, so free-inode counts match a native run.
// - File handles: fh is an index into a handle table holding the real open
//   fd (plus a pin on its inode). Unknown fh values get EBADF.
// - Locks: POSIX locks keep POSIX semantics: they are OFD locks on one open
//   file per (inode, kernel lock_owner), so two opens by one process share
//   them and FLUSH (every close) releases the owner's locks. FUSE_LK_FLOCK
//   requests use flock(2) on the handle's fd. A blocking SETLKW or flock
//   waits on a BlockingCalls thread, never on a queue thread.
// - Credentials: requests run as the daemon's user. With run_as_caller the
//   creation ops (Mknod, Mkdir, Symlink, Link, Create, Tmpfile) switch the
//   calling thread's fsuid/fsgid and supplementary groups (from
//   /proc/<pid>/status) to the caller's for the syscall, so new files get
//   the caller's ownership and group-writable directories work as natively.
// - The daemon runs with umask 0: modes arrive masked by the kernel and are
//   applied as given.
// - Thread-safe: every method may run concurrently with any other.
#ifndef KMFUSE_FS_PASSTHROUGH_H_
#define KMFUSE_FS_PASSTHROUGH_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kmfuse/blocking_calls.h"
#include "kmfuse/filesystem.h"

namespace kmfuse {

namespace passthrough_internal {
class InodeTable;
class InodeRef;
class HandleTable;
class BackingIds;
class LockOwners;
}  // namespace passthrough_internal

enum class CacheMode {
  kNone,    // entry/attr timeouts 0, FOPEN_DIRECT_IO
  kAuto,    // 1 s timeouts, page cache dropped on open
  kAlways,  // 86400 s timeouts, FOPEN_KEEP_CACHE (and FOPEN_CACHE_DIR)
};

struct PassthroughOptions {
  std::string source;  // directory to mirror
  CacheMode cache = CacheMode::kAuto;
  // Keep FUSE_WRITEBACK_CACHE in Init (cleared otherwise). With it, files
  // opened O_WRONLY are opened O_RDWR (the kernel reads partial pages) and
  // O_APPEND is left to the kernel.
  bool writeback_cache = false;
  // Kernel backing-file passthrough: set FUSE_PASSTHROUGH in Init when the
  // session allows it; Open/Create then register the fd with
  // FileSystemHost::BackingOpen and answer FOPEN_PASSTHROUGH. A refused
  // registration is logged on stderr with its reason and that file is served
  // through the daemon.
  bool passthrough = false;
  bool readonly = false;  // EROFS for every modifying op
  bool posix_locks = true;
  bool flock_locks = true;
  // Max O_PATH inode fds held; 0 = half of the RLIMIT_NOFILE soft limit.
  // Values below 8 are raised to 8.
  size_t fd_budget = 0;
  // See "Credentials" above.
  bool run_as_caller = false;
};

// Parses one "-o key[=value]" option into *opts:
//   cache=none|auto|always, writeback_cache, passthrough, ro, rw,
//   fd_budget=N, run_as_caller.
// Unknown key -> NotFound (the caller tries other parsers); a bad value ->
// InvalidArgument naming the key and the accepted values.
absl::Status ParsePassthroughOption(std::string_view key, std::string_view value,
                                    PassthroughOptions* opts);

class PassthroughFs final : public FileSystem {
 public:
  // Opens the source. Errors (with the path and strerror): missing, not a
  // directory, unreadable.
  static absl::StatusOr<std::unique_ptr<PassthroughFs>> Create(const PassthroughOptions& opts);
  ~PassthroughFs() override;

  absl::Status Init(ConnectionInfo& conn) override;
  void Destroy() override;

  void Lookup(const RequestContext& ctx, uint64_t parent, std::string_view name, Reply r) override;
  void Forget(uint64_t ino, uint64_t nlookup) override;
  void Getattr(const RequestContext& ctx, uint64_t ino, std::optional<uint64_t> fh,
               Reply r) override;
  void Setattr(const RequestContext& ctx, uint64_t ino, const abi::fuse_setattr_in& in,
               Reply r) override;
  void Statx(const RequestContext& ctx, uint64_t ino, const abi::fuse_statx_in& in,
             Reply r) override;
  void Readlink(const RequestContext& ctx, uint64_t ino, Reply r) override;
  void Mknod(const RequestContext& ctx, uint64_t parent, std::string_view name,
             const abi::fuse_mknod_in& in, Reply r) override;
  void Mkdir(const RequestContext& ctx, uint64_t parent, std::string_view name,
             const abi::fuse_mkdir_in& in, Reply r) override;
  void Unlink(const RequestContext& ctx, uint64_t parent, std::string_view name,
              Reply r) override;
  void Rmdir(const RequestContext& ctx, uint64_t parent, std::string_view name, Reply r) override;
  void Symlink(const RequestContext& ctx, uint64_t parent, std::string_view name,
               std::string_view target, Reply r) override;
  void Rename(const RequestContext& ctx, uint64_t parent, std::string_view name,
              uint64_t newparent, std::string_view newname, uint32_t flags, Reply r) override;
  void Link(const RequestContext& ctx, uint64_t ino, uint64_t newparent,
            std::string_view newname, Reply r) override;
  void Open(const RequestContext& ctx, uint64_t ino, const abi::fuse_open_in& in,
            Reply r) override;
  void Create(const RequestContext& ctx, uint64_t parent, std::string_view name,
              const abi::fuse_create_in& in, Reply r) override;
  void Tmpfile(const RequestContext& ctx, uint64_t parent, const abi::fuse_create_in& in,
               Reply r) override;
  void Read(const RequestContext& ctx, uint64_t ino, const abi::fuse_read_in& in,
            Reply r) override;
  void Write(const RequestContext& ctx, uint64_t ino, const abi::fuse_write_in& in,
             absl::Span<const char> data, Reply r) override;
  void Flush(const RequestContext& ctx, uint64_t ino, const abi::fuse_flush_in& in,
             Reply r) override;
  void Release(const RequestContext& ctx, uint64_t ino, const abi::fuse_release_in& in,
               Reply r) override;
  void Fsync(const RequestContext& ctx, uint64_t ino, uint64_t fh, bool datasync,
             Reply r) override;
  void Opendir(const RequestContext& ctx, uint64_t ino, const abi::fuse_open_in& in,
               Reply r) override;
  void Readdir(const RequestContext& ctx, uint64_t ino, const abi::fuse_read_in& in, bool plus,
               Reply r) override;
  void Releasedir(const RequestContext& ctx, uint64_t ino, const abi::fuse_release_in& in,
                  Reply r) override;
  void Fsyncdir(const RequestContext& ctx, uint64_t ino, uint64_t fh, bool datasync,
                Reply r) override;
  void Statfs(const RequestContext& ctx, uint64_t ino, Reply r) override;
  void Setxattr(const RequestContext& ctx, uint64_t ino, std::string_view name,
                absl::Span<const char> value, uint32_t flags, Reply r) override;
  void Getxattr(const RequestContext& ctx, uint64_t ino, std::string_view name, uint32_t size,
                Reply r) override;
  void Listxattr(const RequestContext& ctx, uint64_t ino, uint32_t size, Reply r) override;
  void Removexattr(const RequestContext& ctx, uint64_t ino, std::string_view name,
                   Reply r) override;
  void Access(const RequestContext& ctx, uint64_t ino, uint32_t mask, Reply r) override;
  void Getlk(const RequestContext& ctx, uint64_t ino, const abi::fuse_lk_in& in,
             Reply r) override;
  void Setlk(const RequestContext& ctx, uint64_t ino, const abi::fuse_lk_in& in, bool sleep,
             Reply r) override;
  // Wakes a waiting SETLKW / flock of request `unique` (answered EINTR).
  void Interrupt(uint64_t unique) override;
  void Fallocate(const RequestContext& ctx, uint64_t ino, const abi::fuse_fallocate_in& in,
                 Reply r) override;
  void Lseek(const RequestContext& ctx, uint64_t ino, const abi::fuse_lseek_in& in,
             Reply r) override;
  void CopyFileRange(const RequestContext& ctx, uint64_t ino_in,
                     const abi::fuse_copy_file_range_in& in, Reply r) override;
  void Syncfs(const RequestContext& ctx, uint64_t ino, Reply r) override;

  // Inode fds currently open (root included, and those being closed); for
  // tests and diagnostics.
  size_t open_inode_fds() const;
  // Inode fds handed over for closing and not closed yet.
  size_t closing_inode_fds() const;
  // Waits (up to `timeout`) until the inode fds handed over for closing
  // before the call are closed; true when they are.
  bool SettleCloses(absl::Duration timeout);
  // Inodes in the table (root included).
  size_t inode_count() const;
  // The effective fd budget.
  size_t fd_budget() const;

 private:
  PassthroughFs(const PassthroughOptions& opts, int root_read_fd,
                std::unique_ptr<passthrough_internal::InodeTable> inodes);

  // Opens parent_fd/name as O_PATH|O_NOFOLLOW and registers it (one lookup).
  int LookupAt(int parent_fd, const std::string& name, abi::fuse_entry_out* out);
  // Registers the inode an open fd refers to (one lookup); fd is not consumed.
  int EntryFromOpenFd(int fd, abi::fuse_entry_out* out);
  // Registers the O_PATH fd (ownership passes to the inode table, or it is
  // closed on error) and fills the entry for the inode it names.
  int EntryFromPathFd(int fd, abi::fuse_entry_out* out);
  void FillTimeouts(abi::fuse_entry_out* e) const;
  uint64_t AttrTimeout() const;
  // With attributes cached (attr timeout > 0): FUSE_NOTIFY_INVAL_INODE for
  // attributes only, before the reply of a change whose reply carries no
  // attributes (see Setxattr in passthrough_xattr.cc).
  void InvalidateCachedAttrs(uint64_t ino);
  // Wraps fd in a handle and answers fuse_open_out fields (passthrough, cache).
  int MakeFileHandle(int fd, passthrough_internal::InodeRef inode, int flags,
                     abi::fuse_open_out* out);
  // Shared tail of Create and Tmpfile.
  void CreateCommon(const RequestContext& ctx, uint64_t parent, const std::string* name,
                    const abi::fuse_create_in& in, Reply r);
  // Turns kernel open flags into flags for the real open.
  int HostOpenFlags(uint32_t flags) const;

  const PassthroughOptions opts_;
  const int root_read_fd_;  // O_RDONLY|O_DIRECTORY on the source: syncfs, mount_fd
  std::unique_ptr<passthrough_internal::InodeTable> inodes_;
  std::unique_ptr<passthrough_internal::HandleTable> handles_;
  // Passthrough backing ids shared by all handles of an inode.
  std::unique_ptr<passthrough_internal::BackingIds> backing_;
  // POSIX lock state per (inode, lock owner); see passthrough_tables.h.
  std::unique_ptr<passthrough_internal::LockOwners> lock_owners_;
  // SETLKW / blocking flock run here, never on a queue thread.
  std::unique_ptr<BlockingCalls> blocking_;
  std::atomic<FileSystemHost*> host_{nullptr};
  std::atomic<bool> passthrough_on_{false};
  std::atomic<bool> writeback_on_{false};
};

}  // namespace kmfuse

#endif  // KMFUSE_FS_PASSTHROUGH_H_
