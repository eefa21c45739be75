#include "kmfuse/reply.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

namespace kmfuse {
namespace {
std::atomic<uint64_t> g_missing_replies{0};
}  // namespace

Reply& Reply::operator=(Reply&& other) noexcept {
  if (this != &other) {
    if (sink_ != nullptr) Finish(-EIO, 0);
    sink_ = std::exchange(other.sink_, nullptr);
    unique_ = other.unique_;
    opcode_ = other.opcode_;
  }
  return *this;
}

Reply::~Reply() {
  if (sink_ == nullptr) return;
  g_missing_replies.fetch_add(1, std::memory_order_relaxed);
  fprintf(stderr,
          "kmfuse: request %llu (opcode %u) was never answered by the filesystem; "
          "replying EIO\n",
          static_cast<unsigned long long>(unique_), opcode_);
  Finish(-EIO, 0);
}

uint64_t Reply::MissingReplies() { return g_missing_replies.load(); }

absl::Span<char> Reply::Buffer() const {
  if (sink_ == nullptr) return {};
  return sink_->ArgArea();
}

void Reply::Finish(int32_t error, size_t len) { Finish(Answer::Args(error, len)); }

void Reply::Finish(Answer answer) {
  ReplySink* sink = std::exchange(sink_, nullptr);
  if (sink == nullptr) {
    fprintf(stderr, "kmfuse: request %llu answered twice; second answer ignored\n",
            static_cast<unsigned long long>(unique_));
    return;
  }
  sink->Commit(std::move(answer));
}

void Reply::Ok(size_t args_len) {
  if (sink_ != nullptr && args_len > sink_->ArgArea().size()) return Finish(-EIO, 0);
  Finish(0, args_len);
}

void Reply::Error(int err) {
  // The single errno -> wire conversion. Out-of-range values would make the
  // kernel reject the whole reply, so they become EIO.
  if (err < 0 || err >= 4096) err = EIO;
  Finish(-err, 0);
}

void Reply::None() {
  ReplySink* sink = std::exchange(sink_, nullptr);
  if (sink != nullptr) sink->Drop();
}

void Reply::Create(const abi::fuse_entry_out& e, const abi::fuse_open_out& o) {
  absl::Span<char> buf = Buffer();
  if (buf.size() < sizeof(e) + sizeof(o)) return Error(EIO);
  std::memcpy(buf.data(), &e, sizeof(e));
  std::memcpy(buf.data() + sizeof(e), &o, sizeof(o));
  Ok(sizeof(e) + sizeof(o));
}

void Reply::Write(uint32_t count) {
  abi::fuse_write_out out{};
  out.size = count;
  Struct(out);
}

void Reply::Statfs(const struct statvfs& st) {
  abi::fuse_statfs_out out{};
  out.st.blocks = st.f_blocks;
  out.st.bfree = st.f_bfree;
  out.st.bavail = st.f_bavail;
  out.st.files = st.f_files;
  out.st.ffree = st.f_ffree;
  out.st.bsize = static_cast<uint32_t>(st.f_bsize);
  out.st.namelen = static_cast<uint32_t>(st.f_namemax);
  out.st.frsize = static_cast<uint32_t>(st.f_frsize);
  Struct(out);
}

void Reply::XattrSize(uint32_t size) {
  abi::fuse_getxattr_out out{};
  out.size = size;
  Struct(out);
}

void Reply::Lock(const abi::fuse_file_lock& lk) {
  abi::fuse_lk_out out{};
  out.lk = lk;
  Struct(out);
}

void Reply::Lseek(uint64_t offset) {
  abi::fuse_lseek_out out{};
  out.offset = offset;
  Struct(out);
}

void Reply::Data(const void* data, size_t len) {
  absl::Span<char> buf = Buffer();
  if (buf.size() < len) return Error(EIO);
  if (len != 0) std::memcpy(buf.data(), data, len);
  Ok(len);
}

void Reply::DataFromFd(int fd, off_t offset, size_t len, std::shared_ptr<const void> pin,
                       int fd_flags) {
  if (offset < 0) return Error(EINVAL);
  FdPlan plan;
  plan.fd = fd;
  plan.offset = static_cast<uint64_t>(offset);
  plan.len = len;
  plan.fd_flags = fd_flags;
  plan.pin = std::move(pin);
  Finish(Answer::ReadFromFd(std::move(plan)));
}

bool Reply::WriteToFd(int fd, off_t offset, size_t len, std::shared_ptr<const void> pin) {
  if (sink_ == nullptr || !sink_->DataInCallerPages()) return false;
  if (offset < 0) {
    Error(EINVAL);
    return true;
  }
  FdPlan plan;
  plan.fd = fd;
  plan.offset = static_cast<uint64_t>(offset);
  plan.len = len;
  plan.pin = std::move(pin);
  Finish(Answer::WriteToFd(std::move(plan)));
  return true;
}

DirentWriter::DirentWriter(absl::Span<char> buffer, size_t requested_size)
    : buf_(buffer.data()), limit_(std::min(buffer.size(), requested_size)) {}

bool DirentWriter::Add(std::string_view name, uint64_t ino, uint32_t type, uint64_t next_off) {
  size_t entlen = sizeof(abi::fuse_dirent) + name.size();
  size_t padded = abi::FuseDirentAlign(entlen);
  if (used_ + padded > limit_) return false;
  abi::fuse_dirent d{};
  d.ino = ino;
  d.off = next_off;
  d.namelen = static_cast<uint32_t>(name.size());
  d.type = type;
  char* p = buf_ + used_;
  std::memcpy(p, &d, sizeof(d));
  std::memcpy(p + sizeof(d), name.data(), name.size());
  std::memset(p + entlen, 0, padded - entlen);
  used_ += padded;
  return true;
}

bool DirentWriter::AddPlus(std::string_view name, const abi::fuse_entry_out& entry,
                           uint64_t next_off) {
  size_t entlen = sizeof(abi::fuse_direntplus) + name.size();
  size_t padded = abi::FuseDirentAlign(entlen);
  if (used_ + padded > limit_) return false;
  abi::fuse_direntplus d{};
  d.entry_out = entry;
  d.dirent.ino = entry.attr.ino;
  d.dirent.off = next_off;
  d.dirent.namelen = static_cast<uint32_t>(name.size());
  d.dirent.type = (entry.attr.mode & 0170000) >> 12;
  char* p = buf_ + used_;
  std::memcpy(p, &d, sizeof(d));
  std::memcpy(p + sizeof(d), name.data(), name.size());
  std::memset(p + entlen, 0, padded - entlen);
  used_ += padded;
  return true;
}

}  // namespace kmfuse
