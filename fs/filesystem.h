// The FileSystem interface: what a kmfuse filesystem implements.
//
// Inode-based like the FUSE low-level API. The daemon decodes each request
// once, checks it (INIT done, opcode known, sizes, names NUL-terminated and
// without '/'), and calls one method here with the decoded arguments and a
// Reply. Every method has an ENOSYS default; the daemon remembers ENOSYS for
// ops the kernel would otherwise keep asking (the kernel caches it too).
//
// Contracts
// - Lookup counts: every successful Lookup, Mknod, Mkdir, Symlink, Link,
//   Create, Tmpfile and every READDIRPLUS entry (other than "." and "..")
//   increments the kernel's lookup count of the returned inode by one; Forget
//   brings it down by nlookup. An inode may be dropped when it reaches 0.
//   The root (abi::FUSE_ROOT_ID) is never forgotten.
// - Node ids come from the kernel: never trust them as pointers; answer
//   ENOENT (or ESTALE) for ids you do not know.
// - Concurrency: methods are called concurrently from several queue threads
//   (one per CPU on io_uring transports), including for the same inode.
//   Implementations must be thread-safe. A Reply may be answered later from
//   any thread.
// - Buffers: string_view names and the write payload Span point into the
//   request's kernel-selected buffer and are valid only until the Reply is
//   answered (they may share memory with Reply::Buffer()).
// - Init() runs once, before any other method; Destroy() once at the end
//   (after the last reply), also when the kernel never sent DESTROY.
#ifndef KMFUSE_FS_FILESYSTEM_H_
#define KMFUSE_FS_FILESYSTEM_H_

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kmfuse/fuse_abi.h"
#include "kmfuse/reply.h"

namespace kmfuse {

// The caller of a request (from fuse_in_header).
struct RequestContext {
  uint64_t unique = 0;
  uint32_t opcode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t pid = 0;
};

// What the filesystem can ask of the session that serves it. Thread-safe;
// valid from Init() until Destroy() returns.
class FileSystemHost {
 public:
  virtual ~FileSystemHost() = default;
  // Kernel passthrough: registers fd as a backing file (FUSE_DEV_IOC_BACKING_OPEN)
  // and returns the backing id to put in fuse_open_out with FOPEN_PASSTHROUGH.
  virtual absl::StatusOr<int32_t> BackingOpen(int fd) = 0;
  virtual absl::Status BackingClose(int32_t backing_id) = 0;
  // Notifications (written on /dev/fuse with unique 0).
  virtual absl::Status NotifyInvalInode(uint64_t ino, int64_t off, int64_t len) = 0;
  virtual absl::Status NotifyInvalEntry(uint64_t parent, std::string_view name) = 0;
  virtual absl::Status NotifyDelete(uint64_t parent, uint64_t child, std::string_view name) = 0;
  virtual absl::Status NotifyStore(uint64_t ino, uint64_t offset, absl::Span<const char> data) = 0;
  // Asks the kernel for cached data; the answer arrives as Retrieved().
  virtual absl::Status NotifyRetrieve(uint64_t ino, uint64_t offset, uint32_t size,
                                      uint64_t cookie) = 0;
};

// Negotiated connection parameters, shown to Init(). The filesystem may clear
// bits of `want` (never set bits the kernel did not offer) and lower limits.
struct ConnectionInfo {
  uint32_t proto_major = 0;
  uint32_t proto_minor = 0;
  uint64_t offered = 0;  // INIT flags the kernel offered
  uint64_t want = 0;     // INIT flags the daemon will enable
  uint32_t max_write = 0;
  uint32_t max_readahead = 0;
  uint32_t time_gran = 1;
  bool passthrough_possible = false;  // kernel offered FUSE_PASSTHROUGH and we may use it
  uint32_t max_stack_depth = 1;
  FileSystemHost* host = nullptr;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  virtual absl::Status Init(ConnectionInfo& conn);
  virtual void Destroy() {}

  virtual void Lookup(const RequestContext& ctx, uint64_t parent, std::string_view name, Reply r);
  // No reply: the kernel drops nlookup references to ino.
  virtual void Forget(uint64_t ino, uint64_t nlookup);
  // fh is set when the kernel asks about an open file (FUSE_GETATTR_FH).
  virtual void Getattr(const RequestContext& ctx, uint64_t ino, std::optional<uint64_t> fh, Reply r);
  virtual void Setattr(const RequestContext& ctx, uint64_t ino, const abi::fuse_setattr_in& in,
                       Reply r);
  virtual void Statx(const RequestContext& ctx, uint64_t ino, const abi::fuse_statx_in& in, Reply r);
  virtual void Readlink(const RequestContext& ctx, uint64_t ino, Reply r);
  virtual void Mknod(const RequestContext& ctx, uint64_t parent, std::string_view name,
                     const abi::fuse_mknod_in& in, Reply r);
  virtual void Mkdir(const RequestContext& ctx, uint64_t parent, std::string_view name,
                     const abi::fuse_mkdir_in& in, Reply r);
  virtual void Unlink(const RequestContext& ctx, uint64_t parent, std::string_view name, Reply r);
  virtual void Rmdir(const RequestContext& ctx, uint64_t parent, std::string_view name, Reply r);
  virtual void Symlink(const RequestContext& ctx, uint64_t parent, std::string_view name,
                       std::string_view target, Reply r);
  // flags: RENAME_NOREPLACE / RENAME_EXCHANGE (0 for plain RENAME).
  virtual void Rename(const RequestContext& ctx, uint64_t parent, std::string_view name,
                      uint64_t newparent, std::string_view newname, uint32_t flags, Reply r);
  virtual void Link(const RequestContext& ctx, uint64_t ino, uint64_t newparent,
                    std::string_view newname, Reply r);
  virtual void Open(const RequestContext& ctx, uint64_t ino, const abi::fuse_open_in& in, Reply r);
  virtual void Create(const RequestContext& ctx, uint64_t parent, std::string_view name,
                      const abi::fuse_create_in& in, Reply r);
  virtual void Tmpfile(const RequestContext& ctx, uint64_t parent, const abi::fuse_create_in& in,
                       Reply r);
  // Reply with at most in.size bytes (Reply::DataFromFd, or Buffer() + Ok()).
  virtual void Read(const RequestContext& ctx, uint64_t ino, const abi::fuse_read_in& in, Reply r);
  // data is the request's payload in place (in.size bytes).
  virtual void Write(const RequestContext& ctx, uint64_t ino, const abi::fuse_write_in& in,
                     absl::Span<const char> data, Reply r);
  virtual void Flush(const RequestContext& ctx, uint64_t ino, const abi::fuse_flush_in& in, Reply r);
  virtual void Release(const RequestContext& ctx, uint64_t ino, const abi::fuse_release_in& in,
                       Reply r);
  virtual void Fsync(const RequestContext& ctx, uint64_t ino, uint64_t fh, bool datasync, Reply r);
  virtual void Opendir(const RequestContext& ctx, uint64_t ino, const abi::fuse_open_in& in,
                       Reply r);
  // plus: READDIRPLUS (entries carry fuse_entry_out and count as lookups).
  virtual void Readdir(const RequestContext& ctx, uint64_t ino, const abi::fuse_read_in& in,
                       bool plus, Reply r);
  virtual void Releasedir(const RequestContext& ctx, uint64_t ino, const abi::fuse_release_in& in,
                          Reply r);
  virtual void Fsyncdir(const RequestContext& ctx, uint64_t ino, uint64_t fh, bool datasync,
                        Reply r);
  virtual void Statfs(const RequestContext& ctx, uint64_t ino, Reply r);
  virtual void Setxattr(const RequestContext& ctx, uint64_t ino, std::string_view name,
                        absl::Span<const char> value, uint32_t flags, Reply r);
  // size == 0: reply XattrSize(n); else Data() or ERANGE.
  virtual void Getxattr(const RequestContext& ctx, uint64_t ino, std::string_view name,
                        uint32_t size, Reply r);
  virtual void Listxattr(const RequestContext& ctx, uint64_t ino, uint32_t size, Reply r);
  virtual void Removexattr(const RequestContext& ctx, uint64_t ino, std::string_view name, Reply r);
  virtual void Access(const RequestContext& ctx, uint64_t ino, uint32_t mask, Reply r);
  virtual void Getlk(const RequestContext& ctx, uint64_t ino, const abi::fuse_lk_in& in, Reply r);
  // sleep: SETLKW. in.lk_flags & FUSE_LK_FLOCK: flock(2) semantics.
  virtual void Setlk(const RequestContext& ctx, uint64_t ino, const abi::fuse_lk_in& in, bool sleep,
                     Reply r);
  virtual void Fallocate(const RequestContext& ctx, uint64_t ino, const abi::fuse_fallocate_in& in,
                         Reply r);
  virtual void Lseek(const RequestContext& ctx, uint64_t ino, const abi::fuse_lseek_in& in, Reply r);
  virtual void CopyFileRange(const RequestContext& ctx, uint64_t ino_in,
                             const abi::fuse_copy_file_range_in& in, Reply r);
  virtual void Syncfs(const RequestContext& ctx, uint64_t ino, Reply r);
  // The kernel gave up waiting for request `unique` (a signal reached the
  // caller). The filesystem may answer that request early with EINTR.
  virtual void Interrupt(uint64_t unique);
  // Data the kernel returned for NotifyRetrieve(cookie).
  virtual void Retrieved(uint64_t cookie, uint64_t ino, uint64_t offset,
                         absl::Span<const char> data);
};

// struct stat -> fuse_attr.
void FillAttr(const struct stat& st, abi::fuse_attr* attr);

}  // namespace kmfuse

#endif  // KMFUSE_FS_FILESYSTEM_H_
