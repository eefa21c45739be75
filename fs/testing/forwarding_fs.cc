#include "kmfuse/testing/forwarding_fs.h"

#include <utility>

namespace kmfuse::testing {

absl::Status ForwardingFs::Init(ConnectionInfo& conn) { return inner_->Init(conn); }

void ForwardingFs::Destroy() { inner_->Destroy(); }

void ForwardingFs::Lookup(const RequestContext& ctx, uint64_t parent, std::string_view name,
                          Reply r) {
  inner_->Lookup(ctx, parent, name, std::move(r));
}

void ForwardingFs::Forget(uint64_t ino, uint64_t nlookup) { inner_->Forget(ino, nlookup); }

void ForwardingFs::Getattr(const RequestContext& ctx, uint64_t ino, std::optional<uint64_t> fh,
                           Reply r) {
  inner_->Getattr(ctx, ino, fh, std::move(r));
}

void ForwardingFs::Setattr(const RequestContext& ctx, uint64_t ino, const abi::fuse_setattr_in& in,
                           Reply r) {
  inner_->Setattr(ctx, ino, in, std::move(r));
}

void ForwardingFs::Statx(const RequestContext& ctx, uint64_t ino, const abi::fuse_statx_in& in,
                         Reply r) {
  inner_->Statx(ctx, ino, in, std::move(r));
}

void ForwardingFs::Readlink(const RequestContext& ctx, uint64_t ino, Reply r) {
  inner_->Readlink(ctx, ino, std::move(r));
}

void ForwardingFs::Mknod(const RequestContext& ctx, uint64_t parent, std::string_view name,
                         const abi::fuse_mknod_in& in, Reply r) {
  inner_->Mknod(ctx, parent, name, in, std::move(r));
}

void ForwardingFs::Mkdir(const RequestContext& ctx, uint64_t parent, std::string_view name,
                         const abi::fuse_mkdir_in& in, Reply r) {
  inner_->Mkdir(ctx, parent, name, in, std::move(r));
}

void ForwardingFs::Unlink(const RequestContext& ctx, uint64_t parent, std::string_view name,
                          Reply r) {
  inner_->Unlink(ctx, parent, name, std::move(r));
}

void ForwardingFs::Rmdir(const RequestContext& ctx, uint64_t parent, std::string_view name,
                         Reply r) {
  inner_->Rmdir(ctx, parent, name, std::move(r));
}

void ForwardingFs::Symlink(const RequestContext& ctx, uint64_t parent, std::string_view name,
                           std::string_view target, Reply r) {
  inner_->Symlink(ctx, parent, name, target, std::move(r));
}

void ForwardingFs::Rename(const RequestContext& ctx, uint64_t parent, std::string_view name,
                          uint64_t newparent, std::string_view newname, uint32_t flags, Reply r) {
  inner_->Rename(ctx, parent, name, newparent, newname, flags, std::move(r));
}

void ForwardingFs::Link(const RequestContext& ctx, uint64_t ino, uint64_t newparent,
                        std::string_view newname, Reply r) {
  inner_->Link(ctx, ino, newparent, newname, std::move(r));
}

void ForwardingFs::Open(const RequestContext& ctx, uint64_t ino, const abi::fuse_open_in& in,
                        Reply r) {
  inner_->Open(ctx, ino, in, std::move(r));
}

void ForwardingFs::Create(const RequestContext& ctx, uint64_t parent, std::string_view name,
                          const abi::fuse_create_in& in, Reply r) {
  inner_->Create(ctx, parent, name, in, std::move(r));
}

void ForwardingFs::Tmpfile(const RequestContext& ctx, uint64_t parent,
                           const abi::fuse_create_in& in, Reply r) {
  inner_->Tmpfile(ctx, parent, in, std::move(r));
}

void ForwardingFs::Read(const RequestContext& ctx, uint64_t ino, const abi::fuse_read_in& in,
                        Reply r) {
  inner_->Read(ctx, ino, in, std::move(r));
}

void ForwardingFs::Write(const RequestContext& ctx, uint64_t ino, const abi::fuse_write_in& in,
                         absl::Span<const char> data, Reply r) {
  inner_->Write(ctx, ino, in, data, std::move(r));
}

void ForwardingFs::Flush(const RequestContext& ctx, uint64_t ino, const abi::fuse_flush_in& in,
                         Reply r) {
  inner_->Flush(ctx, ino, in, std::move(r));
}

void ForwardingFs::Release(const RequestContext& ctx, uint64_t ino, const abi::fuse_release_in& in,
                           Reply r) {
  inner_->Release(ctx, ino, in, std::move(r));
}

void ForwardingFs::Fsync(const RequestContext& ctx, uint64_t ino, uint64_t fh, bool datasync,
                         Reply r) {
  inner_->Fsync(ctx, ino, fh, datasync, std::move(r));
}

void ForwardingFs::Opendir(const RequestContext& ctx, uint64_t ino, const abi::fuse_open_in& in,
                           Reply r) {
  inner_->Opendir(ctx, ino, in, std::move(r));
}

void ForwardingFs::Readdir(const RequestContext& ctx, uint64_t ino, const abi::fuse_read_in& in,
                           bool plus, Reply r) {
  inner_->Readdir(ctx, ino, in, plus, std::move(r));
}

void ForwardingFs::Releasedir(const RequestContext& ctx, uint64_t ino,
                              const abi::fuse_release_in& in, Reply r) {
  inner_->Releasedir(ctx, ino, in, std::move(r));
}

void ForwardingFs::Fsyncdir(const RequestContext& ctx, uint64_t ino, uint64_t fh, bool datasync,
                            Reply r) {
  inner_->Fsyncdir(ctx, ino, fh, datasync, std::move(r));
}

void ForwardingFs::Statfs(const RequestContext& ctx, uint64_t ino, Reply r) {
  inner_->Statfs(ctx, ino, std::move(r));
}

void ForwardingFs::Setxattr(const RequestContext& ctx, uint64_t ino, std::string_view name,
                            absl::Span<const char> value, uint32_t flags, Reply r) {
  inner_->Setxattr(ctx, ino, name, value, flags, std::move(r));
}

void ForwardingFs::Getxattr(const RequestContext& ctx, uint64_t ino, std::string_view name,
                            uint32_t size, Reply r) {
  inner_->Getxattr(ctx, ino, name, size, std::move(r));
}

void ForwardingFs::Listxattr(const RequestContext& ctx, uint64_t ino, uint32_t size, Reply r) {
  inner_->Listxattr(ctx, ino, size, std::move(r));
}

void ForwardingFs::Removexattr(const RequestContext& ctx, uint64_t ino, std::string_view name,
                               Reply r) {
  inner_->Removexattr(ctx, ino, name, std::move(r));
}

void ForwardingFs::Access(const RequestContext& ctx, uint64_t ino, uint32_t mask, Reply r) {
  inner_->Access(ctx, ino, mask, std::move(r));
}

void ForwardingFs::Getlk(const RequestContext& ctx, uint64_t ino, const abi::fuse_lk_in& in,
                         Reply r) {
  inner_->Getlk(ctx, ino, in, std::move(r));
}

void ForwardingFs::Setlk(const RequestContext& ctx, uint64_t ino, const abi::fuse_lk_in& in,
                         bool sleep, Reply r) {
  inner_->Setlk(ctx, ino, in, sleep, std::move(r));
}

void ForwardingFs::Fallocate(const RequestContext& ctx, uint64_t ino,
                             const abi::fuse_fallocate_in& in, Reply r) {
  inner_->Fallocate(ctx, ino, in, std::move(r));
}

void ForwardingFs::Lseek(const RequestContext& ctx, uint64_t ino, const abi::fuse_lseek_in& in,
                         Reply r) {
  inner_->Lseek(ctx, ino, in, std::move(r));
}

void ForwardingFs::CopyFileRange(const RequestContext& ctx, uint64_t ino_in,
                                 const abi::fuse_copy_file_range_in& in, Reply r) {
  inner_->CopyFileRange(ctx, ino_in, in, std::move(r));
}

void ForwardingFs::Syncfs(const RequestContext& ctx, uint64_t ino, Reply r) {
  inner_->Syncfs(ctx, ino, std::move(r));
}

void ForwardingFs::Interrupt(uint64_t unique) { inner_->Interrupt(unique); }

void ForwardingFs::Retrieved(uint64_t cookie, uint64_t ino, uint64_t offset,
                             absl::Span<const char> data) {
  inner_->Retrieved(cookie, ino, offset, data);
}
}  // namespace kmfuse::testing
