// ForwardingFs (testonly): a FileSystem that hands every call, Init and
// Destroy included, to an inner FileSystem. A test derives from it and
// overrides only the calls it wants to watch, delay, drop or alter; the rest
// reach the inner filesystem (normally a MemFs) unchanged.
//
// The inner filesystem is not owned and must outlive the ForwardingFs.
// Threading: whatever the inner filesystem allows (calls are forwarded on
// the caller's thread, nothing is locked here).
#ifndef KMFUSE_FS_TESTING_FORWARDING_FS_H_
#define KMFUSE_FS_TESTING_FORWARDING_FS_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "kmfuse/filesystem.h"
#include "kmfuse/fuse_abi.h"
#include "kmfuse/reply.h"

namespace kmfuse::testing {

class ForwardingFs : public FileSystem {
 public:
  explicit ForwardingFs(FileSystem* inner) : inner_(inner) {}
  ForwardingFs(const ForwardingFs&) = delete;
  ForwardingFs& operator=(const ForwardingFs&) = delete;

  FileSystem* inner() const { return inner_; }

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
  void Unlink(const RequestContext& ctx, uint64_t parent, std::string_view name, Reply r) override;
  void Rmdir(const RequestContext& ctx, uint64_t parent, std::string_view name, Reply r) override;
  void Symlink(const RequestContext& ctx, uint64_t parent, std::string_view name,
               std::string_view target, Reply r) override;
  void Rename(const RequestContext& ctx, uint64_t parent, std::string_view name, uint64_t newparent,
              std::string_view newname, uint32_t flags, Reply r) override;
  void Link(const RequestContext& ctx, uint64_t ino, uint64_t newparent, std::string_view newname,
            Reply r) override;
  void Open(const RequestContext& ctx, uint64_t ino, const abi::fuse_open_in& in, Reply r) override;
  void Create(const RequestContext& ctx, uint64_t parent, std::string_view name,
              const abi::fuse_create_in& in, Reply r) override;
  void Tmpfile(const RequestContext& ctx, uint64_t parent, const abi::fuse_create_in& in,
               Reply r) override;
  void Read(const RequestContext& ctx, uint64_t ino, const abi::fuse_read_in& in, Reply r) override;
  void Write(const RequestContext& ctx, uint64_t ino, const abi::fuse_write_in& in,
             absl::Span<const char> data, Reply r) override;
  void Flush(const RequestContext& ctx, uint64_t ino, const abi::fuse_flush_in& in,
             Reply r) override;
  void Release(const RequestContext& ctx, uint64_t ino, const abi::fuse_release_in& in,
               Reply r) override;
  void Fsync(const RequestContext& ctx, uint64_t ino, uint64_t fh, bool datasync, Reply r) override;
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
  void Getlk(const RequestContext& ctx, uint64_t ino, const abi::fuse_lk_in& in, Reply r) override;
  void Setlk(const RequestContext& ctx, uint64_t ino, const abi::fuse_lk_in& in, bool sleep,
             Reply r) override;
  void Fallocate(const RequestContext& ctx, uint64_t ino, const abi::fuse_fallocate_in& in,
                 Reply r) override;
  void Lseek(const RequestContext& ctx, uint64_t ino, const abi::fuse_lseek_in& in,
             Reply r) override;
  void CopyFileRange(const RequestContext& ctx, uint64_t ino_in,
                     const abi::fuse_copy_file_range_in& in, Reply r) override;
  void Syncfs(const RequestContext& ctx, uint64_t ino, Reply r) override;
  void Interrupt(uint64_t unique) override;
  void Retrieved(uint64_t cookie, uint64_t ino, uint64_t offset,
                 absl::Span<const char> data) override;

 private:
  FileSystem* inner_;
};

}  // namespace kmfuse::testing

#endif  // KMFUSE_FS_TESTING_FORWARDING_FS_H_
