// MemFs: a complete, thread-safe, in-memory FileSystem.
//
// Used by the daemon's "memfs" mode, the mount tests and the conformance
// suite. Everything lives in process memory and is gone with the object.
//
// Contracts
// - Node ids: generated from a counter starting after abi::FUSE_ROOT_ID and
//   never reused, so a stale id always answers ENOENT. Generation is 0.
// - Lifetime: an inode stays in the table while it has a name (nlink > 0),
//   kernel lookup references (Lookup, Mknod, Mkdir, Symlink, Link, Create and
//   every READDIRPLUS entry other than "." and ".." take one; Forget drops
//   them) or open handles (Open/Create/Opendir take one; Release/Releasedir
//   drop it). When all three reach zero its memory and its share of the
//   capacity are returned at once. The root is never freed.
// - File handles: Open/Create/Opendir hand out a new fh each (never reused).
//   Read and Write need a live handle of that inode, EBADF otherwise (after
//   the node checks: ENOENT, EISDIR, EINVAL come first). Release and
//   Releasedir of an unknown handle answer EBADF and drop nothing. Other
//   calls that carry an fh do not look at it.
// - Capacity: file contents, symlink targets and xattr names+values are
//   charged against MemFsOptions::capacity_bytes; inodes against max_inodes.
//   An operation that would exceed either fails with ENOSPC and changes
//   nothing (writes are all-or-nothing, never short). Files have no holes:
//   extending a file charges the zero-filled range.
// - Permissions: the mount is expected to use default_permissions (the kernel
//   checks modes, sticky bits and ownership before calling in). MemFs itself
//   checks modes only in Access(), against ctx.uid/ctx.gid (supplementary
//   groups are not known to a FUSE server); uid 0 bypasses read/write checks
//   and needs one x bit (or a directory) for X_OK.
// - Ownership and modes of new inodes: uid = ctx.uid; gid = ctx.gid, or the
//   parent's gid when the parent is set-group-ID (new directories then
//   inherit S_ISGID too); mode & ~umask.
// - Times: CLOCK_REALTIME. atime changes only through Setattr (reads do not
//   update it, as on a noatime mount); mtime/ctime follow POSIX.
// - Directories: entries are kept in a name-ordered map for lookup and carry
//   a per-directory cookie from a monotonically increasing counter. READDIR
//   returns entries in cookie order and uses the cookie as the resume offset
//   ("." is offset 1, ".." offset 2), so entries removed or added between
//   requests never make another entry repeat or be skipped. A rename within
//   one directory keeps the entry's cookie. Directory handles carry no state.
// - Errors: unknown ids ENOENT; wrong file type ENOTDIR / EISDIR / EINVAL as
//   the syscalls document; names longer than 255 bytes ENAMETOOLONG; symlink
//   targets longer than 4095 bytes ENAMETOOLONG; rename never EXDEV;
//   RENAME_WHITEOUT is not supported (EINVAL).
// - Threading: every method may be called concurrently, also for the same
//   inode. One reader/writer lock guards the namespace (inode table,
//   directory contents, link counts); each inode has its own lock for data
//   and attributes, so I/O on different files runs in parallel. Locks are
//   always taken namespace first, then at most one inode at a time. Every
//   Reply is answered before the method returns and after all locks are
//   released.
// - Buffers: arguments that may share memory with Reply::Buffer() (names,
//   write payloads, the op structs) are fully consumed before the reply
//   buffer is written.
#ifndef KMFUSE_FS_MEMFS_H_
#define KMFUSE_FS_MEMFS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "kmfuse/sync.h"
#include "kmfuse/filesystem.h"

namespace kmfuse {

struct MemFsOptions {
  // Bytes of file data, symlink targets and xattrs the filesystem may hold;
  // Statfs reports it as the size of the filesystem.
  uint64_t capacity_bytes = 1ull << 30;
  // Inodes that may exist at once (the root included).
  uint64_t max_inodes = 1 << 20;
  // Seconds the kernel may cache names and attributes.
  double entry_timeout = 1.0, attr_timeout = 1.0;
};

class MemFs final : public FileSystem {
 public:
  // Never fails; returns a filesystem holding only an empty root directory
  // (mode 0755, owned by the calling process's uid/gid).
  static std::unique_ptr<MemFs> Create(const MemFsOptions& options = {});
  ~MemFs() override;

  MemFs(const MemFs&) = delete;
  MemFs& operator=(const MemFs&) = delete;

  void Lookup(const RequestContext& ctx, uint64_t parent, std::string_view name, Reply r) override;
  void Forget(uint64_t ino, uint64_t nlookup) override;
  void Getattr(const RequestContext& ctx, uint64_t ino, std::optional<uint64_t> fh,
               Reply r) override;
  // Honours FATTR_MODE (permission bits only; the type never changes), UID,
  // GID, SIZE (regular files; EISDIR for directories, EINVAL otherwise),
  // ATIME/MTIME with their _NOW variants, CTIME and KILL_SUIDGID.
  void Setattr(const RequestContext& ctx, uint64_t ino, const abi::fuse_setattr_in& in,
               Reply r) override;
  void Readlink(const RequestContext& ctx, uint64_t ino, Reply r) override;
  // Regular files, FIFOs, sockets and device nodes (rdev kept as given).
  void Mknod(const RequestContext& ctx, uint64_t parent, std::string_view name,
             const abi::fuse_mknod_in& in, Reply r) override;
  void Mkdir(const RequestContext& ctx, uint64_t parent, std::string_view name,
             const abi::fuse_mkdir_in& in, Reply r) override;
  void Unlink(const RequestContext& ctx, uint64_t parent, std::string_view name, Reply r) override;
  void Rmdir(const RequestContext& ctx, uint64_t parent, std::string_view name, Reply r) override;
  void Symlink(const RequestContext& ctx, uint64_t parent, std::string_view name,
               std::string_view target, Reply r) override;
  // RENAME_NOREPLACE: EEXIST if newname exists. RENAME_EXCHANGE: ENOENT if it
  // does not. EINVAL for moving a directory into its own subtree and for
  // unknown or combined flags; ENOTEMPTY, ENOTDIR, EISDIR as rename(2).
  // Renaming onto another link of the same inode succeeds and does nothing.
  void Rename(const RequestContext& ctx, uint64_t parent, std::string_view name,
              uint64_t newparent, std::string_view newname, uint32_t flags, Reply r) override;
  // EPERM for directories; ENOENT for an inode whose last name is gone.
  void Link(const RequestContext& ctx, uint64_t ino, uint64_t newparent, std::string_view newname,
            Reply r) override;
  // Regular files only (EISDIR / EINVAL otherwise). O_TRUNC truncates.
  void Open(const RequestContext& ctx, uint64_t ino, const abi::fuse_open_in& in, Reply r) override;
  // Opens an existing regular file unless O_EXCL is set (EEXIST then).
  void Create(const RequestContext& ctx, uint64_t parent, std::string_view name,
              const abi::fuse_create_in& in, Reply r) override;
  // Copies straight into Reply::Buffer(); short at end of file.
  void Read(const RequestContext& ctx, uint64_t ino, const abi::fuse_read_in& in, Reply r) override;
  // EFBIG if offset + size overflows; ENOSPC over capacity (nothing written).
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
  // 4 KiB blocks: blocks = capacity, bfree = bavail = capacity - used;
  // files = max_inodes, ffree = max_inodes - live inodes; namemax 255.
  void Statfs(const RequestContext& ctx, uint64_t ino, Reply r) override;
  // XATTR_CREATE: EEXIST if present; XATTR_REPLACE: ENODATA if absent.
  void Setxattr(const RequestContext& ctx, uint64_t ino, std::string_view name,
                absl::Span<const char> value, uint32_t flags, Reply r) override;
  // size 0 probes (XattrSize); too small a size gives ERANGE; absent ENODATA.
  void Getxattr(const RequestContext& ctx, uint64_t ino, std::string_view name, uint32_t size,
                Reply r) override;
  // NUL-terminated names in name order; size probing and ERANGE as Getxattr.
  void Listxattr(const RequestContext& ctx, uint64_t ino, uint32_t size, Reply r) override;
  void Removexattr(const RequestContext& ctx, uint64_t ino, std::string_view name,
                   Reply r) override;
  void Access(const RequestContext& ctx, uint64_t ino, uint32_t mask, Reply r) override;
  // Mode 0 zero-fills up to offset + length; FALLOC_FL_KEEP_SIZE alone is
  // accepted and changes nothing; PUNCH_HOLE|KEEP_SIZE zeroes the range (the
  // space stays charged). Other modes EOPNOTSUPP.
  void Fallocate(const RequestContext& ctx, uint64_t ino, const abi::fuse_fallocate_in& in,
                 Reply r) override;
  // SEEK_DATA returns the offset, SEEK_HOLE the file size (no holes); ENXIO
  // at or beyond the end; EINVAL for other whence values.
  void Lseek(const RequestContext& ctx, uint64_t ino, const abi::fuse_lseek_in& in,
             Reply r) override;

 private:
  struct Inode;
  struct Dir;

  explicit MemFs(const MemFsOptions& options);

  std::shared_ptr<Inode> Find(uint64_t ino) const ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<Inode> FindLocked(uint64_t ino) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The directory `ino`, or the errno (ENOENT / ENOTDIR) in *err.
  std::shared_ptr<Inode> FindDirLocked(uint64_t ino, int* err) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Creates and links a new inode (lookup count 1); fills *out.
  int MakeNodeLocked(const RequestContext& ctx, uint64_t parent, std::string_view name,
                     uint32_t mode, uint32_t rdev, std::string_view target,
                     abi::fuse_entry_out* out, std::shared_ptr<Inode>* made)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int RenameLocked(uint64_t parent, std::string_view name, uint64_t newparent,
                   std::string_view newname, uint32_t flags) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True when `ino` is `dir` or lies below it.
  bool IsInSubtreeLocked(uint64_t ino, uint64_t dir) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Frees the inode if nothing references it any more.
  void MaybeFreeLocked(const std::shared_ptr<Inode>& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropOpen(uint64_t ino) ABSL_LOCKS_EXCLUDED(mu_);
  void FillEntry(Inode& node, abi::fuse_entry_out* out) const;

  // Capacity accounting (lock-free; reservations are undone on failure).
  bool Charge(uint64_t bytes);
  void Uncharge(uint64_t bytes);

  const MemFsOptions options_;
  std::atomic<uint64_t> used_bytes_{0};
  std::atomic<uint64_t> next_fh_{1};

  // Live handles: fh -> node id. A leaf lock, never held while taking mu_
  // or an inode lock.
  mutable Mutex handles_mu_;
  absl::flat_hash_map<uint64_t, uint64_t> handles_ ABSL_GUARDED_BY(handles_mu_);
  // A new handle of `ino`.
  uint64_t NewHandle(uint64_t ino) ABSL_LOCKS_EXCLUDED(handles_mu_);
  // True if fh is a live handle of `ino`.
  bool IsHandleOf(uint64_t fh, uint64_t ino) const ABSL_LOCKS_EXCLUDED(handles_mu_);
  // Forgets handle fh of `ino`; false if it was not one.
  bool EndHandle(uint64_t fh, uint64_t ino) ABSL_LOCKS_EXCLUDED(handles_mu_);

  mutable SharedMutex mu_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Inode>> inodes_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ino_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kmfuse

#endif  // KMFUSE_FS_MEMFS_H_
