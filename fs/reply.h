// Reply: the one way a filesystem answers a FUSE request.
//
// Contract
// - Every request that expects an answer carries exactly one Reply. It must be
//   answered exactly once (any of the answer methods below). Reply is
//   move-only; it may be moved to another thread and answered there (the
//   transport routes the commit back to the queue that owns the buffer).
// - A Reply destroyed while still pending is a filesystem bug: it is reported
//   on stderr (request unique and opcode), counted (MissingReplies()), and the
//   request is answered EIO so the caller never hangs.
// - Buffer() is the argument area (the sink's ArgArea()) of the
//   kernel-selected buffer the request arrived in (or the entry's payload
//   buffer on io_uring transports).
//   Writing there and calling Ok(n) is the zero-copy path. The bytes of the
//   request (names, write payload) may share that memory: read what you need
//   from the request before writing the reply. After the answer, neither the
//   Reply's buffer nor the request's bytes may be touched.
// - Errors are positive errno values (Error(ENOENT)); the conversion to the
//   wire's negative error happens once, here.
#ifndef KMFUSE_FS_REPLY_H_
#define KMFUSE_FS_REPLY_H_

#include <sys/statvfs.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

#include "absl/types/span.h"
#include "kmfuse/fuse_abi.h"

namespace kmfuse {

// How a request is answered from a file instead of from memory: the
// filesystem names the file, the transport moves the bytes. Used for READ
// (Reply::DataFromFd) and, on zero-copy io-uring queues, for WRITE
// (Reply::WriteToFd).
struct FdPlan {
  int fd = -1;
  uint64_t offset = 0;
  // Bytes asked for; a READ is clamped by the transport to what the request
  // can take (its reply area, or the caller's pages for a zero-copy READ).
  size_t len = 0;
  // The flags fd was opened with, as the filesystem knows them: O_DIRECT
  // decides how a transport reads (alignment, whether a read may block on
  // the device). A wrong value costs speed, never bytes: an O_DIRECT
  // refusal (EINVAL) is still retried through an aligned bounce buffer.
  int fd_flags = 0;
  // Whatever owns fd; the transport holds it until the I/O is done, so fd
  // stays open even if a RELEASE of the file is handled meanwhile.
  std::shared_ptr<const void> pin;
};

// The one thing a sink is given to end a request (besides Drop()).
struct Answer {
  enum class Kind : uint8_t {
    // error <= 0; args_len bytes already written at ArgArea().data()
    // (0 when error != 0).
    kArgs,
    // READ: read up to plan.len bytes of plan.fd at plan.offset into the
    // reply (short at EOF is fine) and answer with what was read, or the
    // read's error.
    kReadFromFd,
    // Zero-copy WRITE: write plan.len bytes of the request's data, which
    // lives in the caller's pages (ReplySink::DataInCallerPages()), to
    // plan.fd at plan.offset and answer fuse_write_out with the count, or
    // the error.
    kWriteToFd,
  };
  static Answer Args(int32_t error, size_t args_len) {
    Answer a;
    a.error = error;
    a.args_len = error == 0 ? args_len : 0;
    return a;
  }
  static Answer ReadFromFd(FdPlan plan) {
    Answer a;
    a.kind = Kind::kReadFromFd;
    a.plan = std::move(plan);
    return a;
  }
  static Answer WriteToFd(FdPlan plan) {
    Answer a;
    a.kind = Kind::kWriteToFd;
    a.plan = std::move(plan);
    return a;
  }

  Kind kind = Kind::kArgs;
  int32_t error = 0;    // kArgs
  size_t args_len = 0;  // kArgs
  FdPlan plan;          // kReadFromFd, kWriteToFd
};

// Implemented by transports. Exactly one of Commit()/Drop() is called, once,
// from any thread; after it the sink may be reused for another request at
// once. Whatever the answer, executing it (reading a file for a READ plan
// included) is the transport's business: the filesystem never calls back.
class ReplySink {
 public:
  virtual ~ReplySink() = default;
  // The protocol layer (proto::Dispatcher::Deliver) tells the sink the
  // request's header once, before any answer: a transport takes the reply's
  // unique from it. Not called when fewer bytes than a header arrived (the
  // request is then dropped).
  virtual void Begin(const abi::fuse_in_header& in) { (void)in; }
  // Where reply arguments go (in place in the request's buffer). Its size is
  // the buffer's capacity; a reply never exceeds what the request asked for.
  virtual absl::Span<char> ArgArea() = 0;
  // The answer (see Answer). A READ plan is executed by the sink however
  // its transport reads best (into ArgArea(), or straight into the
  // caller's pages on a zero-copy queue, where ArgArea() is empty); a
  // WRITE plan is only ever given to a sink whose DataInCallerPages() said
  // true for this request.
  virtual void Commit(Answer answer) = 0;
  // The request needs no reply (FORGET) or must not get one.
  virtual void Drop() = 0;
  // Zero-copy WRITE (FUSE io-uring, FOPEN_IO_URING_ZERO_COPY): true when the
  // current request's data is not in memory but in the caller's pages,
  // registered in the transport's fixed-buffer table; such a request can
  // only be answered with a WRITE plan (or an error).
  virtual bool DataInCallerPages() const { return false; }
  // Whether an OPEN/CREATE answered through this sink may set
  // FOPEN_IO_URING_ZERO_COPY: the connection's every io-uring queue is a
  // zero-copy queue. Only a filesystem that answers READ with DataFromFd
  // and WRITE with WriteToFd may set it.
  virtual bool ZeroCopyAvailable() const { return false; }
};

class Reply {
 public:
  Reply() = default;
  Reply(ReplySink* sink, uint64_t unique, uint32_t opcode)
      : sink_(sink), unique_(unique), opcode_(opcode) {}
  Reply(Reply&& other) noexcept { *this = std::move(other); }
  Reply& operator=(Reply&& other) noexcept;
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  ~Reply();

  bool pending() const { return sink_ != nullptr; }
  uint64_t unique() const { return unique_; }
  uint32_t opcode() const { return opcode_; }

  // The argument area, in place (ReplySink::ArgArea(); empty once
  // answered). The public API's name for it: embedders call it.
  absl::Span<char> Buffer() const;

  // Answers with args_len bytes already written at Buffer().data().
  void Ok(size_t args_len);
  // err > 0: an errno; err == 0: success without arguments.
  void Error(int err);
  void Empty() { Error(0); }
  // No answer at all (only FORGET-like requests, or an interrupted request
  // whose answer the kernel no longer wants).
  void None();

  template <typename T>
  void Struct(const T& value) {
    absl::Span<char> buf = Buffer();
    if (buf.size() < sizeof(T)) return Error(EIO);
    std::memcpy(buf.data(), &value, sizeof(T));
    Ok(sizeof(T));
  }
  void Entry(const abi::fuse_entry_out& e) { Struct(e); }
  void Attr(const abi::fuse_attr_out& a) { Struct(a); }
  void Open(const abi::fuse_open_out& o) { Struct(o); }
  void Create(const abi::fuse_entry_out& e, const abi::fuse_open_out& o);
  void Write(uint32_t count);
  void Statfs(const struct statvfs& st);
  void XattrSize(uint32_t size);
  void Lock(const abi::fuse_file_lock& lk);
  void Lseek(uint64_t offset);
  // Copies bytes into the reply (readlink targets, xattr values, small reads).
  void Data(const void* data, size_t len);
  void Data(std::string_view s) { Data(s.data(), s.size()); }
  // Answers with up to len bytes of fd at offset (short at EOF is fine):
  // commits a READ plan (Answer::ReadFromFd) that the transport executes,
  // reading straight into the reply buffer or the caller's pages, possibly
  // later and on another thread. fd_flags: the flags fd was opened with
  // (FdPlan::fd_flags; O_DIRECT fds whose buffer or length is not aligned
  // are read through an aligned bounce buffer). `pin` (optional) owns fd;
  // the transport holds it until the read is done.
  void DataFromFd(int fd, off_t offset, size_t len, std::shared_ptr<const void> pin = nullptr,
                  int fd_flags = 0);
  // WRITE of a file opened with FOPEN_IO_URING_ZERO_COPY: when the request's
  // data lives in the caller's pages (ReplySink::DataInCallerPages), commits
  // a WRITE plan (Answer::WriteToFd): the transport writes len bytes of it
  // to fd at offset and answers with the count (short writes and errors as
  // pwrite(2) reports them); returns true, the Reply is answered. Returns
  // false when the data is in memory: the caller writes the data span
  // itself and answers. A filesystem that sets FOPEN_IO_URING_ZERO_COPY
  // must try this before touching the data span: for a zero-copy request
  // that span holds no caller data, and answering such a request any other
  // way is answered EIO by the transport.
  bool WriteToFd(int fd, off_t offset, size_t len, std::shared_ptr<const void> pin = nullptr);
  // See ReplySink::ZeroCopyAvailable (false once answered).
  bool ZeroCopyAvailable() const { return sink_ != nullptr && sink_->ZeroCopyAvailable(); }

  // Replies that the filesystem never answered (process-wide, for tests and
  // diagnostics).
  static uint64_t MissingReplies();

 private:
  void Finish(int32_t error, size_t len);
  void Finish(Answer answer);

  ReplySink* sink_ = nullptr;
  uint64_t unique_ = 0;
  uint32_t opcode_ = 0;
};

// Packs READDIR / READDIRPLUS entries into a reply buffer, never beyond the
// size the kernel asked for.
class DirentWriter {
 public:
  DirentWriter(absl::Span<char> buffer, size_t requested_size);
  // false when the entry does not fit (stop and reply with what is there).
  bool Add(std::string_view name, uint64_t ino, uint32_t type, uint64_t next_off);
  bool AddPlus(std::string_view name, const abi::fuse_entry_out& entry, uint64_t next_off);
  size_t size() const { return used_; }
  bool empty() const { return used_ == 0; }

 private:
  char* buf_;
  size_t limit_;
  size_t used_ = 0;
};

}  // namespace kmfuse

#endif  // KMFUSE_FS_REPLY_H_
