// Test helpers for FileSystem implementations (testonly).
//
// CaptureSink  a ReplySink over an owned, page-aligned buffer that records
//              the answer (errno, argument bytes, Drop) of one request;
//              a READ plan (Reply::DataFromFd) is read into the buffer
//              when committed.
// FsDriver     calls FileSystem methods one request at a time and waits for
//              the answer, returning decoded results. Generic over
//              FileSystem: it knows the wire structs, nothing of any
//              implementation. Failed requests come back as an
//              absl::Status carrying the errno (ErrnoOf), or as the errno
//              itself for ops with no reply arguments (0 = success).
// TempDir      the tests' temporary directory (kmfuse/testing/temp_dir.h,
//              included here).
//
// Threading: a CaptureSink may be answered from any thread; FsDriver waits
// for it (up to a timeout, after which it reports ETIMEDOUT and leaks the
// sink so a late answer stays harmless). One FsDriver is meant for one test
// thread; several drivers may drive one FileSystem concurrently.
#ifndef KMFUSE_FS_TESTING_FS_TESTING_H_
#define KMFUSE_FS_TESTING_FS_TESTING_H_

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kmfuse/sync.h"
#include "absl/time/time.h"
#include "kmfuse/filesystem.h"
#include "kmfuse/fuse_abi.h"
#include "kmfuse/reply.h"
#include "kmfuse/testing/temp_dir.h"

namespace kmfuse::testing {

class CaptureSink final : public ReplySink {
 public:
  // 1 MiB of arguments (the largest max_write) plus a page of headroom.
  static constexpr size_t kDefaultCapacity = (1u << 20) + 4096;

  explicit CaptureSink(size_t capacity = kDefaultCapacity);
  ~CaptureSink() override;
  CaptureSink(const CaptureSink&) = delete;
  CaptureSink& operator=(const CaptureSink&) = delete;

  absl::Span<char> ArgArea() override;
  // A READ plan is executed at once (fs/plan_executor.h); the answer is
  // recorded as the bytes read.
  void Commit(kmfuse::Answer answer) override;
  void Drop() override;

  // Makes the sink ready for another request: forgets the answer and
  // poisons the first 64 KiB of the buffer so a reply that claims bytes it
  // never wrote shows up as 0xa5 garbage rather than stale data.
  void Reset();

  // Waits until Commit() or Drop() was called.
  bool WaitAnswered(absl::Duration timeout) const;
  bool answered() const;
  bool dropped() const;
  int answers() const;          // Commit + Drop calls (more than 1 is a bug)
  int error() const;            // positive errno, 0 on success
  std::string args() const;     // the committed argument bytes

 private:
  char* buf_;
  size_t capacity_;
  mutable Mutex mu_;
  int answers_ ABSL_GUARDED_BY(mu_) = 0;
  bool dropped_ ABSL_GUARDED_BY(mu_) = false;
  int error_ ABSL_GUARDED_BY(mu_) = 0;
  std::string args_ ABSL_GUARDED_BY(mu_);
};

// A Status for a failed request: code from the errno, message naming the op,
// the errno kept as a payload.
absl::Status ErrnoStatus(int err, std::string_view op);
// The errno in a status made by ErrnoStatus; 0 for OK, EIO for other errors.
int ErrnoOf(const absl::Status& s);

struct Answer {
  int error = 0;     // positive errno
  std::string args;  // reply argument bytes
  bool dropped = false;
};

struct Dirent {
  std::string name;
  uint64_t ino = 0;   // fuse_dirent.ino
  uint64_t off = 0;   // offset of the next entry
  uint32_t type = 0;  // DT_*
  std::optional<abi::fuse_entry_out> entry;  // READDIRPLUS only
};

struct Created {
  abi::fuse_entry_out entry;
  abi::fuse_open_out open;
};

class FsDriver {
 public:
  explicit FsDriver(FileSystem* fs, size_t buffer_capacity = CaptureSink::kDefaultCapacity);

  FileSystem* fs() const { return fs_; }
  // Caller identity put in every RequestContext (default uid/gid 0, pid 1).
  RequestContext& context() { return ctx_; }

  // A connection offering every flag kmfuse knows (no passthrough, no host).
  static ConnectionInfo DefaultConnection();
  absl::StatusOr<ConnectionInfo> Init(ConnectionInfo conn = DefaultConnection());

  // Runs one request: fn(ctx, reply) must hand the Reply to the filesystem.
  template <typename Fn>
  Answer Call(uint32_t opcode, Fn&& fn);

  absl::StatusOr<abi::fuse_entry_out> Lookup(uint64_t parent, std::string_view name);
  void Forget(uint64_t ino, uint64_t nlookup);
  absl::StatusOr<abi::fuse_attr_out> Getattr(uint64_t ino, std::optional<uint64_t> fh = {});
  absl::StatusOr<abi::fuse_attr_out> Setattr(uint64_t ino, const abi::fuse_setattr_in& in);
  // Setattr of FATTR_SIZE only (through fh when given).
  absl::StatusOr<abi::fuse_attr_out> Truncate(uint64_t ino, uint64_t size,
                                              std::optional<uint64_t> fh = {});
  absl::StatusOr<abi::fuse_statx_out> Statx(uint64_t ino, uint32_t mask = 0);
  absl::StatusOr<std::string> Readlink(uint64_t ino);
  absl::StatusOr<abi::fuse_entry_out> Mknod(uint64_t parent, std::string_view name, uint32_t mode,
                                            uint32_t rdev = 0);
  absl::StatusOr<abi::fuse_entry_out> Mkdir(uint64_t parent, std::string_view name,
                                            uint32_t mode = 0755);
  absl::StatusOr<abi::fuse_entry_out> Symlink(uint64_t parent, std::string_view name,
                                              std::string_view target);
  absl::StatusOr<abi::fuse_entry_out> Link(uint64_t ino, uint64_t newparent,
                                           std::string_view newname);
  int Unlink(uint64_t parent, std::string_view name);
  int Rmdir(uint64_t parent, std::string_view name);
  int Rename(uint64_t parent, std::string_view name, uint64_t newparent, std::string_view newname,
             uint32_t flags = 0);

  absl::StatusOr<abi::fuse_open_out> Open(uint64_t ino, uint32_t flags, uint32_t open_flags = 0);
  absl::StatusOr<Created> Create(uint64_t parent, std::string_view name, uint32_t flags,
                                 uint32_t mode = 0644, uint32_t open_flags = 0);
  absl::StatusOr<Created> Tmpfile(uint64_t parent, uint32_t flags, uint32_t mode = 0600);
  absl::StatusOr<std::string> Read(uint64_t ino, uint64_t fh, uint64_t off, uint32_t size);
  absl::StatusOr<uint32_t> Write(uint64_t ino, uint64_t fh, uint64_t off, std::string_view data,
                                 uint32_t write_flags = 0);
  int Flush(uint64_t ino, uint64_t fh);
  int Release(uint64_t ino, uint64_t fh, uint32_t release_flags = 0);
  int Fsync(uint64_t ino, uint64_t fh, bool datasync = false);

  absl::StatusOr<abi::fuse_open_out> Opendir(uint64_t ino);
  // One READDIR(PLUS) request of `size` bytes at `off`.
  absl::StatusOr<std::vector<Dirent>> ReaddirChunk(uint64_t ino, uint64_t fh, uint64_t off,
                                                   uint32_t size, bool plus = false);
  int Releasedir(uint64_t ino, uint64_t fh);
  int Fsyncdir(uint64_t ino, uint64_t fh, bool datasync = false);
  // Opendir, READDIR(PLUS) of `chunk` bytes until empty, Releasedir. With
  // plus, the entries' lookup references stay taken (the caller forgets).
  absl::StatusOr<std::vector<Dirent>> ReaddirAll(uint64_t ino, bool plus = false,
                                                 uint32_t chunk = 4096);
  // Sorted names without "." and "..".
  absl::StatusOr<std::vector<std::string>> ReaddirNames(uint64_t ino);

  absl::StatusOr<abi::fuse_kstatfs> Statfs(uint64_t ino);
  int Setxattr(uint64_t ino, std::string_view name, std::string_view value, uint32_t flags = 0);
  // size 0: the value's size via XattrSize; else the value (ERANGE if larger).
  absl::StatusOr<std::string> Getxattr(uint64_t ino, std::string_view name, uint32_t size);
  absl::StatusOr<uint32_t> GetxattrSize(uint64_t ino, std::string_view name);
  absl::StatusOr<std::string> Listxattr(uint64_t ino, uint32_t size);
  absl::StatusOr<uint32_t> ListxattrSize(uint64_t ino);
  int Removexattr(uint64_t ino, std::string_view name);
  int Access(uint64_t ino, uint32_t mask);
  absl::StatusOr<abi::fuse_file_lock> Getlk(uint64_t ino, uint64_t fh,
                                            const abi::fuse_file_lock& lk, uint64_t owner = 1);
  int Setlk(uint64_t ino, uint64_t fh, const abi::fuse_file_lock& lk, bool sleep = false,
            bool flock = false, uint64_t owner = 1);
  int Fallocate(uint64_t ino, uint64_t fh, uint64_t off, uint64_t len, uint32_t mode = 0);
  absl::StatusOr<uint64_t> Lseek(uint64_t ino, uint64_t fh, uint64_t off, uint32_t whence);
  absl::StatusOr<uint32_t> CopyFileRange(uint64_t ino_in, uint64_t fh_in, uint64_t off_in,
                                         uint64_t ino_out, uint64_t fh_out, uint64_t off_out,
                                         uint64_t len);
  int Syncfs(uint64_t ino);

  // Conveniences built from the ops above.
  // Create(O_WRONLY|O_EXCL) + Write + Release; returns the new node id (its
  // lookup reference is kept).
  absl::StatusOr<uint64_t> CreateFile(uint64_t parent, std::string_view name,
                                      std::string_view content, uint32_t mode = 0644);
  // Open(O_RDONLY), Read to EOF in 64 KiB requests, Release.
  absl::StatusOr<std::string> ReadFile(uint64_t ino);

 private:
  RequestContext NextContext(uint32_t opcode);

  FileSystem* fs_;
  size_t capacity_;
  std::unique_ptr<CaptureSink> sink_;  // reused while requests are answered
  RequestContext ctx_;
  uint64_t unique_ = 0;
};

// Parses a READDIR / READDIRPLUS reply.
absl::StatusOr<std::vector<Dirent>> ParseDirents(std::string_view bytes, bool plus);

template <typename Fn>
Answer FsDriver::Call(uint32_t opcode, Fn&& fn) {
  if (sink_ == nullptr) {
    sink_ = std::make_unique<CaptureSink>(capacity_);
  } else {
    sink_->Reset();
  }
  CaptureSink* sink = sink_.get();
  RequestContext ctx = NextContext(opcode);
  fn(ctx, Reply(sink, ctx.unique, opcode));
  Answer a;
  if (!sink->WaitAnswered(absl::Seconds(60))) {
    sink_.release();  // a late answer must find live memory
    a.error = ETIMEDOUT;
    return a;
  }
  a.error = sink->error();
  a.args = sink->args();
  a.dropped = sink->dropped();
  return a;
}

}  // namespace kmfuse::testing

#endif  // KMFUSE_FS_TESTING_FS_TESTING_H_
