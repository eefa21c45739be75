#include "kmfuse/testing/fs_testing.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/types/optional.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "fs/plan_executor.h"

namespace kmfuse::testing {
namespace {

constexpr char kErrnoPayload[] = "kmfuse/errno";

// Abseil here is built with its own string_view type
// (ABSL_OPTION_USE_STD_STRING_VIEW 0): std::string_view does not convert.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

template <typename T>
absl::StatusOr<T> Decode(const Answer& a, std::string_view op) {
  if (a.error != 0) return ErrnoStatus(a.error, op);
  if (a.args.size() < sizeof(T)) {
    return absl::InternalError(absl::StrCat(AV(op), ": reply of ", a.args.size(),
                                            " bytes, expected ", sizeof(T)));
  }
  T out;
  std::memcpy(&out, a.args.data(), sizeof(T));
  return out;
}

}  // namespace

CaptureSink::CaptureSink(size_t capacity) : capacity_(capacity) {
  void* p = nullptr;
  if (posix_memalign(&p, 4096, capacity_) != 0) abort();
  buf_ = static_cast<char*>(p);
  std::memset(buf_, 0xa5, capacity_);  // stale bytes are visible, not zeros
}

CaptureSink::~CaptureSink() { free(buf_); }

void CaptureSink::Reset() {
  MutexLock l(&mu_);
  answers_ = 0;
  dropped_ = false;
  error_ = 0;
  args_.clear();
  std::memset(buf_, 0xa5, std::min<size_t>(capacity_, 64 * 1024));
}

absl::Span<char> CaptureSink::ArgArea() { return absl::Span<char>(buf_, capacity_); }

void CaptureSink::Commit(kmfuse::Answer answer) {
  // A READ plan is read into the buffer here, on the answering thread, as
  // the /dev/fuse transports do.
  answer = AnswerInMemory(std::move(answer), ArgArea());
  MutexLock l(&mu_);
  answers_++;
  error_ = -answer.error;
  args_.assign(buf_, std::min(answer.args_len, capacity_));
}

void CaptureSink::Drop() {
  MutexLock l(&mu_);
  answers_++;
  dropped_ = true;
}

bool CaptureSink::WaitAnswered(absl::Duration timeout) const {
  MutexLock l(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return answers_ > 0; };
  return mu_.AwaitWithTimeout(done, timeout);
}

bool CaptureSink::answered() const {
  MutexLock l(&mu_);
  return answers_ > 0;
}
bool CaptureSink::dropped() const {
  MutexLock l(&mu_);
  return dropped_;
}
int CaptureSink::answers() const {
  MutexLock l(&mu_);
  return answers_;
}
int CaptureSink::error() const {
  MutexLock l(&mu_);
  return error_;
}
std::string CaptureSink::args() const {
  MutexLock l(&mu_);
  return args_;
}

absl::Status ErrnoStatus(int err, std::string_view op) {
  absl::Status s(absl::ErrnoToStatusCode(err),
                 absl::StrCat(AV(op), ": ", strerror(err), " (errno ", err, ")"));
  s.SetPayload(kErrnoPayload, absl::Cord(absl::StrCat(err)));
  return s;
}

int ErrnoOf(const absl::Status& s) {
  if (s.ok()) return 0;
  auto p = s.GetPayload(kErrnoPayload);
  int err = 0;
  if (!p.has_value() || !absl::SimpleAtoi(std::string(*p), &err)) return EIO;
  return err;
}

absl::StatusOr<std::vector<Dirent>> ParseDirents(std::string_view bytes, bool plus) {
  std::vector<Dirent> out;
  size_t pos = 0;
  const size_t head = plus ? sizeof(abi::fuse_direntplus) : sizeof(abi::fuse_dirent);
  while (pos < bytes.size()) {
    if (bytes.size() - pos < head) return absl::InternalError("truncated dirent header");
    Dirent d;
    abi::fuse_dirent de;
    if (plus) {
      abi::fuse_direntplus dp;
      std::memcpy(&dp, bytes.data() + pos, sizeof(dp));
      d.entry = dp.entry_out;
      de = dp.dirent;
    } else {
      std::memcpy(&de, bytes.data() + pos, sizeof(de));
    }
    if (de.namelen == 0 || de.namelen > 1024 || bytes.size() - pos - head < de.namelen) {
      return absl::InternalError("bad dirent name length");
    }
    d.name.assign(bytes.data() + pos + head, de.namelen);
    d.ino = de.ino;
    d.off = de.off;
    d.type = de.type;
    out.push_back(std::move(d));
    pos += abi::FuseDirentAlign(head + de.namelen);
  }
  return out;
}

FsDriver::FsDriver(FileSystem* fs, size_t buffer_capacity) : fs_(fs), capacity_(buffer_capacity) {
  ctx_.pid = 1;
}

RequestContext FsDriver::NextContext(uint32_t opcode) {
  RequestContext c = ctx_;
  c.unique = ++unique_ * 2;
  c.opcode = opcode;
  return c;
}

ConnectionInfo FsDriver::DefaultConnection() {
  ConnectionInfo c;
  c.proto_major = abi::FUSE_KERNEL_VERSION;
  c.proto_minor = abi::FUSE_KERNEL_MINOR_VERSION;
  c.offered = abi::FUSE_ASYNC_READ | abi::FUSE_POSIX_LOCKS | abi::FUSE_ATOMIC_O_TRUNC |
              abi::FUSE_BIG_WRITES | abi::FUSE_DONT_MASK | abi::FUSE_FLOCK_LOCKS |
              abi::FUSE_DO_READDIRPLUS | abi::FUSE_READDIRPLUS_AUTO | abi::FUSE_WRITEBACK_CACHE |
              abi::FUSE_PARALLEL_DIROPS | abi::FUSE_HANDLE_KILLPRIV_V2 | abi::FUSE_MAX_PAGES |
              abi::FUSE_INIT_EXT;
  c.want = c.offered;
  c.max_write = 1u << 20;
  c.max_readahead = 1u << 20;
  return c;
}

absl::StatusOr<ConnectionInfo> FsDriver::Init(ConnectionInfo conn) {
  absl::Status s = fs_->Init(conn);
  if (!s.ok()) return s;
  return conn;
}

absl::StatusOr<abi::fuse_entry_out> FsDriver::Lookup(uint64_t parent, std::string_view name) {
  return Decode<abi::fuse_entry_out>(
      Call(abi::FUSE_LOOKUP,
           [&](const RequestContext& c, Reply r) { fs_->Lookup(c, parent, name, std::move(r)); }),
      "lookup");
}

void FsDriver::Forget(uint64_t ino, uint64_t nlookup) { fs_->Forget(ino, nlookup); }

absl::StatusOr<abi::fuse_attr_out> FsDriver::Getattr(uint64_t ino, std::optional<uint64_t> fh) {
  return Decode<abi::fuse_attr_out>(
      Call(abi::FUSE_GETATTR,
           [&](const RequestContext& c, Reply r) { fs_->Getattr(c, ino, fh, std::move(r)); }),
      "getattr");
}

absl::StatusOr<abi::fuse_attr_out> FsDriver::Setattr(uint64_t ino,
                                                     const abi::fuse_setattr_in& in) {
  return Decode<abi::fuse_attr_out>(
      Call(abi::FUSE_SETATTR,
           [&](const RequestContext& c, Reply r) { fs_->Setattr(c, ino, in, std::move(r)); }),
      "setattr");
}

absl::StatusOr<abi::fuse_attr_out> FsDriver::Truncate(uint64_t ino, uint64_t size,
                                                      std::optional<uint64_t> fh) {
  abi::fuse_setattr_in in{};
  in.valid = abi::FATTR_SIZE;
  in.size = size;
  if (fh) {
    in.valid |= abi::FATTR_FH;
    in.fh = *fh;
  }
  return Setattr(ino, in);
}

absl::StatusOr<abi::fuse_statx_out> FsDriver::Statx(uint64_t ino, uint32_t mask) {
  abi::fuse_statx_in in{};
  in.sx_mask = mask;
  return Decode<abi::fuse_statx_out>(
      Call(abi::FUSE_STATX,
           [&](const RequestContext& c, Reply r) { fs_->Statx(c, ino, in, std::move(r)); }),
      "statx");
}

absl::StatusOr<std::string> FsDriver::Readlink(uint64_t ino) {
  Answer a = Call(abi::FUSE_READLINK,
                  [&](const RequestContext& c, Reply r) { fs_->Readlink(c, ino, std::move(r)); });
  if (a.error != 0) return ErrnoStatus(a.error, "readlink");
  return a.args;
}

absl::StatusOr<abi::fuse_entry_out> FsDriver::Mknod(uint64_t parent, std::string_view name,
                                                    uint32_t mode, uint32_t rdev) {
  abi::fuse_mknod_in in{};
  in.mode = mode;
  in.rdev = rdev;
  return Decode<abi::fuse_entry_out>(
      Call(abi::FUSE_MKNOD,
           [&](const RequestContext& c, Reply r) {
             fs_->Mknod(c, parent, name, in, std::move(r));
           }),
      "mknod");
}

absl::StatusOr<abi::fuse_entry_out> FsDriver::Mkdir(uint64_t parent, std::string_view name,
                                                    uint32_t mode) {
  abi::fuse_mkdir_in in{};
  in.mode = mode;
  return Decode<abi::fuse_entry_out>(
      Call(abi::FUSE_MKDIR,
           [&](const RequestContext& c, Reply r) {
             fs_->Mkdir(c, parent, name, in, std::move(r));
           }),
      "mkdir");
}

absl::StatusOr<abi::fuse_entry_out> FsDriver::Symlink(uint64_t parent, std::string_view name,
                                                      std::string_view target) {
  return Decode<abi::fuse_entry_out>(
      Call(abi::FUSE_SYMLINK,
           [&](const RequestContext& c, Reply r) {
             fs_->Symlink(c, parent, name, target, std::move(r));
           }),
      "symlink");
}

absl::StatusOr<abi::fuse_entry_out> FsDriver::Link(uint64_t ino, uint64_t newparent,
                                                   std::string_view newname) {
  return Decode<abi::fuse_entry_out>(
      Call(abi::FUSE_LINK,
           [&](const RequestContext& c, Reply r) {
             fs_->Link(c, ino, newparent, newname, std::move(r));
           }),
      "link");
}

int FsDriver::Unlink(uint64_t parent, std::string_view name) {
  return Call(abi::FUSE_UNLINK, [&](const RequestContext& c, Reply r) {
           fs_->Unlink(c, parent, name, std::move(r));
         }).error;
}

int FsDriver::Rmdir(uint64_t parent, std::string_view name) {
  return Call(abi::FUSE_RMDIR, [&](const RequestContext& c, Reply r) {
           fs_->Rmdir(c, parent, name, std::move(r));
         }).error;
}

int FsDriver::Rename(uint64_t parent, std::string_view name, uint64_t newparent,
                     std::string_view newname, uint32_t flags) {
  return Call(flags != 0 ? abi::FUSE_RENAME2 : abi::FUSE_RENAME,
              [&](const RequestContext& c, Reply r) {
                fs_->Rename(c, parent, name, newparent, newname, flags, std::move(r));
              })
      .error;
}

absl::StatusOr<abi::fuse_open_out> FsDriver::Open(uint64_t ino, uint32_t flags,
                                                  uint32_t open_flags) {
  abi::fuse_open_in in{};
  in.flags = flags;
  in.open_flags = open_flags;
  return Decode<abi::fuse_open_out>(
      Call(abi::FUSE_OPEN,
           [&](const RequestContext& c, Reply r) { fs_->Open(c, ino, in, std::move(r)); }),
      "open");
}

absl::StatusOr<Created> FsDriver::Create(uint64_t parent, std::string_view name, uint32_t flags,
                                         uint32_t mode, uint32_t open_flags) {
  abi::fuse_create_in in{};
  in.flags = flags;
  in.mode = mode;
  in.open_flags = open_flags;
  return Decode<Created>(
      Call(abi::FUSE_CREATE,
           [&](const RequestContext& c, Reply r) {
             fs_->Create(c, parent, name, in, std::move(r));
           }),
      "create");
}

absl::StatusOr<Created> FsDriver::Tmpfile(uint64_t parent, uint32_t flags, uint32_t mode) {
  abi::fuse_create_in in{};
  in.flags = flags;
  in.mode = mode;
  return Decode<Created>(
      Call(abi::FUSE_TMPFILE,
           [&](const RequestContext& c, Reply r) { fs_->Tmpfile(c, parent, in, std::move(r)); }),
      "tmpfile");
}

absl::StatusOr<std::string> FsDriver::Read(uint64_t ino, uint64_t fh, uint64_t off,
                                           uint32_t size) {
  abi::fuse_read_in in{};
  in.fh = fh;
  in.offset = off;
  in.size = size;
  Answer a = Call(abi::FUSE_READ,
                  [&](const RequestContext& c, Reply r) { fs_->Read(c, ino, in, std::move(r)); });
  if (a.error != 0) return ErrnoStatus(a.error, "read");
  if (a.args.size() > size) return absl::InternalError("read: reply larger than asked");
  return a.args;
}

absl::StatusOr<uint32_t> FsDriver::Write(uint64_t ino, uint64_t fh, uint64_t off,
                                         std::string_view data, uint32_t write_flags) {
  abi::fuse_write_in in{};
  in.fh = fh;
  in.offset = off;
  in.size = static_cast<uint32_t>(data.size());
  in.write_flags = write_flags;
  auto out = Decode<abi::fuse_write_out>(
      Call(abi::FUSE_WRITE,
           [&](const RequestContext& c, Reply r) {
             fs_->Write(c, ino, in, absl::Span<const char>(data.data(), data.size()),
                        std::move(r));
           }),
      "write");
  if (!out.ok()) return out.status();
  return out->size;
}

int FsDriver::Flush(uint64_t ino, uint64_t fh) {
  abi::fuse_flush_in in{};
  in.fh = fh;
  return Call(abi::FUSE_FLUSH, [&](const RequestContext& c, Reply r) {
           fs_->Flush(c, ino, in, std::move(r));
         }).error;
}

int FsDriver::Release(uint64_t ino, uint64_t fh, uint32_t release_flags) {
  abi::fuse_release_in in{};
  in.fh = fh;
  in.release_flags = release_flags;
  return Call(abi::FUSE_RELEASE, [&](const RequestContext& c, Reply r) {
           fs_->Release(c, ino, in, std::move(r));
         }).error;
}

int FsDriver::Fsync(uint64_t ino, uint64_t fh, bool datasync) {
  return Call(abi::FUSE_FSYNC, [&](const RequestContext& c, Reply r) {
           fs_->Fsync(c, ino, fh, datasync, std::move(r));
         }).error;
}

absl::StatusOr<abi::fuse_open_out> FsDriver::Opendir(uint64_t ino) {
  abi::fuse_open_in in{};
  in.flags = O_RDONLY | O_DIRECTORY;
  return Decode<abi::fuse_open_out>(
      Call(abi::FUSE_OPENDIR,
           [&](const RequestContext& c, Reply r) { fs_->Opendir(c, ino, in, std::move(r)); }),
      "opendir");
}

absl::StatusOr<std::vector<Dirent>> FsDriver::ReaddirChunk(uint64_t ino, uint64_t fh,
                                                           uint64_t off, uint32_t size,
                                                           bool plus) {
  abi::fuse_read_in in{};
  in.fh = fh;
  in.offset = off;
  in.size = size;
  Answer a = Call(plus ? abi::FUSE_READDIRPLUS : abi::FUSE_READDIR,
                  [&](const RequestContext& c, Reply r) {
                    fs_->Readdir(c, ino, in, plus, std::move(r));
                  });
  if (a.error != 0) return ErrnoStatus(a.error, plus ? "readdirplus" : "readdir");
  if (a.args.size() > size) return absl::InternalError("readdir: reply larger than asked");
  return ParseDirents(a.args, plus);
}

int FsDriver::Releasedir(uint64_t ino, uint64_t fh) {
  abi::fuse_release_in in{};
  in.fh = fh;
  return Call(abi::FUSE_RELEASEDIR, [&](const RequestContext& c, Reply r) {
           fs_->Releasedir(c, ino, in, std::move(r));
         }).error;
}

int FsDriver::Fsyncdir(uint64_t ino, uint64_t fh, bool datasync) {
  return Call(abi::FUSE_FSYNCDIR, [&](const RequestContext& c, Reply r) {
           fs_->Fsyncdir(c, ino, fh, datasync, std::move(r));
         }).error;
}

absl::StatusOr<std::vector<Dirent>> FsDriver::ReaddirAll(uint64_t ino, bool plus,
                                                         uint32_t chunk) {
  auto dir = Opendir(ino);
  if (!dir.ok()) return dir.status();
  std::vector<Dirent> all;
  uint64_t off = 0;
  absl::Status status;
  for (;;) {
    auto part = ReaddirChunk(ino, dir->fh, off, chunk, plus);
    if (!part.ok()) {
      status = part.status();
      break;
    }
    if (part->empty()) break;
    off = part->back().off;
    for (auto& d : *part) all.push_back(std::move(d));
  }
  int err = Releasedir(ino, dir->fh);
  if (!status.ok()) return status;
  if (err != 0) return ErrnoStatus(err, "releasedir");
  return all;
}

absl::StatusOr<std::vector<std::string>> FsDriver::ReaddirNames(uint64_t ino) {
  auto all = ReaddirAll(ino);
  if (!all.ok()) return all.status();
  std::vector<std::string> names;
  for (const Dirent& d : *all) {
    if (d.name != "." && d.name != "..") names.push_back(d.name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<abi::fuse_kstatfs> FsDriver::Statfs(uint64_t ino) {
  auto out = Decode<abi::fuse_statfs_out>(
      Call(abi::FUSE_STATFS,
           [&](const RequestContext& c, Reply r) { fs_->Statfs(c, ino, std::move(r)); }),
      "statfs");
  if (!out.ok()) return out.status();
  return out->st;
}

int FsDriver::Setxattr(uint64_t ino, std::string_view name, std::string_view value,
                       uint32_t flags) {
  return Call(abi::FUSE_SETXATTR, [&](const RequestContext& c, Reply r) {
           fs_->Setxattr(c, ino, name, absl::Span<const char>(value.data(), value.size()), flags,
                         std::move(r));
         }).error;
}

absl::StatusOr<std::string> FsDriver::Getxattr(uint64_t ino, std::string_view name,
                                               uint32_t size) {
  Answer a = Call(abi::FUSE_GETXATTR, [&](const RequestContext& c, Reply r) {
    fs_->Getxattr(c, ino, name, size, std::move(r));
  });
  if (a.error != 0) return ErrnoStatus(a.error, "getxattr");
  return a.args;
}

absl::StatusOr<uint32_t> FsDriver::GetxattrSize(uint64_t ino, std::string_view name) {
  auto out = Decode<abi::fuse_getxattr_out>(
      Call(abi::FUSE_GETXATTR,
           [&](const RequestContext& c, Reply r) { fs_->Getxattr(c, ino, name, 0, std::move(r)); }),
      "getxattr");
  if (!out.ok()) return out.status();
  return out->size;
}

absl::StatusOr<std::string> FsDriver::Listxattr(uint64_t ino, uint32_t size) {
  Answer a = Call(abi::FUSE_LISTXATTR, [&](const RequestContext& c, Reply r) {
    fs_->Listxattr(c, ino, size, std::move(r));
  });
  if (a.error != 0) return ErrnoStatus(a.error, "listxattr");
  return a.args;
}

absl::StatusOr<uint32_t> FsDriver::ListxattrSize(uint64_t ino) {
  auto out = Decode<abi::fuse_getxattr_out>(
      Call(abi::FUSE_LISTXATTR,
           [&](const RequestContext& c, Reply r) { fs_->Listxattr(c, ino, 0, std::move(r)); }),
      "listxattr");
  if (!out.ok()) return out.status();
  return out->size;
}

int FsDriver::Removexattr(uint64_t ino, std::string_view name) {
  return Call(abi::FUSE_REMOVEXATTR, [&](const RequestContext& c, Reply r) {
           fs_->Removexattr(c, ino, name, std::move(r));
         }).error;
}

int FsDriver::Access(uint64_t ino, uint32_t mask) {
  return Call(abi::FUSE_ACCESS, [&](const RequestContext& c, Reply r) {
           fs_->Access(c, ino, mask, std::move(r));
         }).error;
}

absl::StatusOr<abi::fuse_file_lock> FsDriver::Getlk(uint64_t ino, uint64_t fh,
                                                    const abi::fuse_file_lock& lk,
                                                    uint64_t owner) {
  abi::fuse_lk_in in{};
  in.fh = fh;
  in.owner = owner;
  in.lk = lk;
  auto out = Decode<abi::fuse_lk_out>(
      Call(abi::FUSE_GETLK,
           [&](const RequestContext& c, Reply r) { fs_->Getlk(c, ino, in, std::move(r)); }),
      "getlk");
  if (!out.ok()) return out.status();
  return out->lk;
}

int FsDriver::Setlk(uint64_t ino, uint64_t fh, const abi::fuse_file_lock& lk, bool sleep,
                    bool flock, uint64_t owner) {
  abi::fuse_lk_in in{};
  in.fh = fh;
  in.owner = owner;
  in.lk = lk;
  in.lk_flags = flock ? abi::FUSE_LK_FLOCK : 0;
  return Call(sleep ? abi::FUSE_SETLKW : abi::FUSE_SETLK, [&](const RequestContext& c, Reply r) {
           fs_->Setlk(c, ino, in, sleep, std::move(r));
         }).error;
}

int FsDriver::Fallocate(uint64_t ino, uint64_t fh, uint64_t off, uint64_t len, uint32_t mode) {
  abi::fuse_fallocate_in in{};
  in.fh = fh;
  in.offset = off;
  in.length = len;
  in.mode = mode;
  return Call(abi::FUSE_FALLOCATE, [&](const RequestContext& c, Reply r) {
           fs_->Fallocate(c, ino, in, std::move(r));
         }).error;
}

absl::StatusOr<uint64_t> FsDriver::Lseek(uint64_t ino, uint64_t fh, uint64_t off,
                                         uint32_t whence) {
  abi::fuse_lseek_in in{};
  in.fh = fh;
  in.offset = off;
  in.whence = whence;
  auto out = Decode<abi::fuse_lseek_out>(
      Call(abi::FUSE_LSEEK,
           [&](const RequestContext& c, Reply r) { fs_->Lseek(c, ino, in, std::move(r)); }),
      "lseek");
  if (!out.ok()) return out.status();
  return out->offset;
}

absl::StatusOr<uint32_t> FsDriver::CopyFileRange(uint64_t ino_in, uint64_t fh_in, uint64_t off_in,
                                                 uint64_t ino_out, uint64_t fh_out,
                                                 uint64_t off_out, uint64_t len) {
  abi::fuse_copy_file_range_in in{};
  in.fh_in = fh_in;
  in.off_in = off_in;
  in.nodeid_out = ino_out;
  in.fh_out = fh_out;
  in.off_out = off_out;
  in.len = len;
  auto out = Decode<abi::fuse_write_out>(
      Call(abi::FUSE_COPY_FILE_RANGE,
           [&](const RequestContext& c, Reply r) {
             fs_->CopyFileRange(c, ino_in, in, std::move(r));
           }),
      "copy_file_range");
  if (!out.ok()) return out.status();
  return out->size;
}

int FsDriver::Syncfs(uint64_t ino) {
  return Call(abi::FUSE_SYNCFS, [&](const RequestContext& c, Reply r) {
           fs_->Syncfs(c, ino, std::move(r));
         }).error;
}

absl::StatusOr<uint64_t> FsDriver::CreateFile(uint64_t parent, std::string_view name,
                                              std::string_view content, uint32_t mode) {
  auto c = Create(parent, name, O_WRONLY | O_CREAT | O_EXCL, mode);
  if (!c.ok()) return c.status();
  const uint64_t ino = c->entry.nodeid;
  size_t done = 0;
  while (done < content.size()) {
    size_t n = std::min<size_t>(content.size() - done, 1u << 20);
    auto w = Write(ino, c->open.fh, done, content.substr(done, n));
    if (!w.ok() || *w == 0) {
      Release(ino, c->open.fh);
      return w.ok() ? ErrnoStatus(EIO, "write: no progress") : w.status();
    }
    done += *w;
  }
  if (int err = Release(ino, c->open.fh); err != 0) return ErrnoStatus(err, "release");
  return ino;
}

absl::StatusOr<std::string> FsDriver::ReadFile(uint64_t ino) {
  auto o = Open(ino, O_RDONLY);
  if (!o.ok()) return o.status();
  std::string all;
  for (;;) {
    auto part = Read(ino, o->fh, all.size(), 64 * 1024);
    if (!part.ok()) {
      Release(ino, o->fh);
      return part.status();
    }
    if (part->empty()) break;
    all += *part;
  }
  if (int err = Release(ino, o->fh); err != 0) return ErrnoStatus(err, "release");
  return all;
}

}  // namespace kmfuse::testing
