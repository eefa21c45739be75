// Buffers and replies of the transports that read whole requests from
// /dev/fuse (read, ring-read): the contiguous layout.
//
// Slot layout (one kernel-selected buffer):
//
//   0            4016          4080      4096                       slot_size
//   | head room  | in_header + | out hdr | reply args / payload ... |
//                  fuse_write_in
//
// The request is read at kRequestOffset so a WRITE payload starts page
// aligned at kArgOffset; the reply header goes at kReplyHeaderOffset and the
// reply arguments at kArgOffset, page aligned for O_DIRECT preads straight
// into the buffer. Replying in place overwrites the request: the dispatcher
// copies the op struct first, and the FileSystem contract says request bytes
// die when the reply is written.
#ifndef KMFUSE_DAEMON_DEV_CHANNEL_H_
#define KMFUSE_DAEMON_DEV_CHANNEL_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "daemon/proto/request.h"
#include "kmfuse/fuse_abi.h"
#include "kmfuse/reply.h"

namespace kmfuse {

inline constexpr size_t kArgOffset = 4096;
inline constexpr size_t kRequestOffset =
    kArgOffset - sizeof(abi::fuse_in_header) - sizeof(abi::fuse_write_in);
inline constexpr size_t kReplyHeaderOffset = kArgOffset - sizeof(abi::fuse_out_header);

// Bytes per slot for a connection with this max_write: room for the largest
// request (80 + max_write, and never below the kernel's 8192 minimum) read at
// kRequestOffset, and for the largest reply.
inline size_t DevSlotSize(uint32_t max_write) {
  size_t need = kArgOffset + max_write + 4096;
  size_t min = kRequestOffset + abi::FUSE_MIN_READ_BUFFER;
  return need > min ? need : min;
}

// Writes one reply or notification; retries EINTR. Returns 0 or -errno;
// -ENOENT (the request was interrupted or aborted) is not an error.
int WriteToDev(int fd, const void* buf, size_t len);
int WritevToDev(int fd, const struct iovec* iov, int cnt);

// Opens a new /dev/fuse fd bound to the same connection (FUSE_DEV_IOC_CLONE).
int CloneDevFd(int master_fd, bool nonblocking);

// A ReplySink over one slot. Arm() before Deliver (which tells the sink the
// request's unique through Begin); after Commit()/Drop() the slot is
// recycled through Recycle() (the subclass decides how: onto a worker's free
// list, or its buffer id into a buffer ring). A READ plan is executed by Commit() on
// the committing thread: pread straight into the slot's argument area
// (page aligned, so an aligned O_DIRECT read needs no bounce;
// AnswerInMemory, fs/plan_executor.h).
class DevSlotSink : public ReplySink {
 public:
  void Arm(int fd, char* slot, size_t slot_size) {
    fd_ = fd;
    slot_ = slot;
    slot_size_ = slot_size;
    unique_ = 0;
  }
  // The request read into the slot: kRequestOffset onwards, `received` bytes.
  proto::RequestBytes Request(size_t received) const {
    return proto::RequestBytes::Contiguous(slot_ + kRequestOffset, received);
  }
  void Begin(const abi::fuse_in_header& in) override { unique_ = in.unique; }
  absl::Span<char> ArgArea() override {
    return absl::Span<char>(slot_ + kArgOffset, slot_size_ - kArgOffset);
  }
  void Commit(Answer answer) override;
  void Drop() override { Recycle(); }

 protected:
  virtual void Recycle() = 0;

 private:
  int fd_ = -1;
  char* slot_ = nullptr;
  size_t slot_size_ = 0;
  uint64_t unique_ = 0;
};

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_DEV_CHANNEL_H_
