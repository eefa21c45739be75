#include "kmfuse/filesystem.h"

#include <errno.h>

namespace kmfuse {

absl::Status FileSystem::Init(ConnectionInfo&) { return absl::OkStatus(); }

void FileSystem::Lookup(const RequestContext&, uint64_t, std::string_view, Reply r) { r.Error(ENOSYS); }
void FileSystem::Forget(uint64_t, uint64_t) {}
void FileSystem::Getattr(const RequestContext&, uint64_t, std::optional<uint64_t>, Reply r) { r.Error(ENOSYS); }
void FileSystem::Setattr(const RequestContext&, uint64_t, const abi::fuse_setattr_in&, Reply r) { r.Error(ENOSYS); }
void FileSystem::Statx(const RequestContext&, uint64_t, const abi::fuse_statx_in&, Reply r) { r.Error(ENOSYS); }
void FileSystem::Readlink(const RequestContext&, uint64_t, Reply r) { r.Error(ENOSYS); }
void FileSystem::Mknod(const RequestContext&, uint64_t, std::string_view, const abi::fuse_mknod_in&, Reply r) { r.Error(ENOSYS); }
void FileSystem::Mkdir(const RequestContext&, uint64_t, std::string_view, const abi::fuse_mkdir_in&, Reply r) { r.Error(ENOSYS); }
void FileSystem::Unlink(const RequestContext&, uint64_t, std::string_view, Reply r) { r.Error(ENOSYS); }
void FileSystem::Rmdir(const RequestContext&, uint64_t, std::string_view, Reply r) { r.Error(ENOSYS); }
void FileSystem::Symlink(const RequestContext&, uint64_t, std::string_view, std::string_view, Reply r) { r.Error(ENOSYS); }
void FileSystem::Rename(const RequestContext&, uint64_t, std::string_view, uint64_t, std::string_view, uint32_t, Reply r) { r.Error(ENOSYS); }
void FileSystem::Link(const RequestContext&, uint64_t, uint64_t, std::string_view, Reply r) { r.Error(ENOSYS); }
void FileSystem::Open(const RequestContext&, uint64_t, const abi::fuse_open_in&, Reply r) { r.Error(ENOSYS); }
void FileSystem::Create(const RequestContext&, uint64_t, std::string_view, const abi::fuse_create_in&, Reply r) { r.Error(ENOSYS); }
void FileSystem::Tmpfile(const RequestContext&, uint64_t, const abi::fuse_create_in&, Reply r) { r.Error(ENOSYS); }
void FileSystem::Read(const RequestContext&, uint64_t, const abi::fuse_read_in&, Reply r) { r.Error(ENOSYS); }
void FileSystem::Write(const RequestContext&, uint64_t, const abi::fuse_write_in&, absl::Span<const char>, Reply r) { r.Error(ENOSYS); }
void FileSystem::Flush(const RequestContext&, uint64_t, const abi::fuse_flush_in&, Reply r) { r.Error(ENOSYS); }
void FileSystem::Release(const RequestContext&, uint64_t, const abi::fuse_release_in&, Reply r) { r.Empty(); }
void FileSystem::Fsync(const RequestContext&, uint64_t, uint64_t, bool, Reply r) { r.Error(ENOSYS); }
void FileSystem::Opendir(const RequestContext&, uint64_t, const abi::fuse_open_in&, Reply r) { r.Error(ENOSYS); }
void FileSystem::Readdir(const RequestContext&, uint64_t, const abi::fuse_read_in&, bool, Reply r) { r.Error(ENOSYS); }
void FileSystem::Releasedir(const RequestContext&, uint64_t, const abi::fuse_release_in&, Reply r) { r.Empty(); }
void FileSystem::Fsyncdir(const RequestContext&, uint64_t, uint64_t, bool, Reply r) { r.Error(ENOSYS); }
void FileSystem::Statfs(const RequestContext&, uint64_t, Reply r) { r.Error(ENOSYS); }
void FileSystem::Setxattr(const RequestContext&, uint64_t, std::string_view, absl::Span<const char>, uint32_t, Reply r) { r.Error(ENOSYS); }
void FileSystem::Getxattr(const RequestContext&, uint64_t, std::string_view, uint32_t, Reply r) { r.Error(ENOSYS); }
void FileSystem::Listxattr(const RequestContext&, uint64_t, uint32_t, Reply r) { r.Error(ENOSYS); }
void FileSystem::Removexattr(const RequestContext&, uint64_t, std::string_view, Reply r) { r.Error(ENOSYS); }
void FileSystem::Access(const RequestContext&, uint64_t, uint32_t, Reply r) { r.Error(ENOSYS); }
void FileSystem::Getlk(const RequestContext&, uint64_t, const abi::fuse_lk_in&, Reply r) { r.Error(ENOSYS); }
void FileSystem::Setlk(const RequestContext&, uint64_t, const abi::fuse_lk_in&, bool, Reply r) { r.Error(ENOSYS); }
void FileSystem::Fallocate(const RequestContext&, uint64_t, const abi::fuse_fallocate_in&, Reply r) { r.Error(ENOSYS); }
void FileSystem::Lseek(const RequestContext&, uint64_t, const abi::fuse_lseek_in&, Reply r) { r.Error(ENOSYS); }
void FileSystem::CopyFileRange(const RequestContext&, uint64_t, const abi::fuse_copy_file_range_in&, Reply r) { r.Error(ENOSYS); }
void FileSystem::Syncfs(const RequestContext&, uint64_t, Reply r) { r.Error(ENOSYS); }
void FileSystem::Interrupt(uint64_t) {}
void FileSystem::Retrieved(uint64_t, uint64_t, uint64_t, absl::Span<const char>) {}

void FillAttr(const struct stat& st, abi::fuse_attr* a) {
  *a = {};
  a->ino = st.st_ino;
  a->size = static_cast<uint64_t>(st.st_size);
  a->blocks = static_cast<uint64_t>(st.st_blocks);
  a->atime = static_cast<uint64_t>(st.st_atim.tv_sec);
  a->mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
  a->ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
  a->atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
  a->mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  a->ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  a->mode = st.st_mode;
  a->nlink = static_cast<uint32_t>(st.st_nlink);
  a->uid = st.st_uid;
  a->gid = st.st_gid;
  a->rdev = static_cast<uint32_t>(st.st_rdev);
  a->blksize = static_cast<uint32_t>(st.st_blksize);
}

}  // namespace kmfuse
