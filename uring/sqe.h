// SQE preparation for the opcodes liburing 2.3 has no helper for (everything
// else: use liburing's io_uring_prep_* directly), and NextSqe, the one way to
// get an SQE when the submission queue may be full.
//
// Contract: `sqe` comes from IoRing::GetSqe (already zeroed); these helpers
// only set the fields they name, so callers may add flags (IOSQE_FIXED_FILE,
// IOSQE_IO_LINK...) afterwards. Memory referenced by the SQE (the command
// payload is copied, buffers selected from a group are not) follows the
// lifetime rules in io_ring.h. Pure functions, any thread.
#ifndef KMFUSE_URING_SQE_H_
#define KMFUSE_URING_SQE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <liburing.h>

#include "uring/io_ring.h"
#include "uring/uapi.h"

namespace kmfuse::uring {

// A cleared SQE from ring, never nullptr: while the SQ is full, submits what
// is queued (the kernel consumes SQ entries on submit, so a slot frees) and
// tries again. Same threading as IoRing::GetSqe: the ring's owner thread.
inline io_uring_sqe* NextSqe(IoRing& ring) {
  io_uring_sqe* sqe = ring.GetSqe();
  while (sqe == nullptr) {
    ring.Submit();
    sqe = ring.GetSqe();
  }
  return sqe;
}

// IORING_OP_READ_MULTISHOT (49): one SQE that keeps reading `fd` (which must
// be pollable, e.g. opened O_NONBLOCK) into buffers selected from group
// `bgid`. Each completion carries kCqeFBuffer and the bid; kCqeFMore means the
// SQE is still armed. Without kCqeFMore (EOF, -ENOBUFS, error) it must be
// re-armed by the owner.
inline void PrepReadMultishot(io_uring_sqe* sqe, int fd, uint16_t bgid, uint64_t user_data) {
  io_uring_prep_rw(kOpReadMultishot, sqe, fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = bgid;
  sqe->user_data = user_data;
}

// Single-shot IORING_OP_READ of up to `len` bytes (0: the selected buffer's
// length) at file offset `off` (-1 / ~0ULL: current position) into a buffer
// selected from group `bgid`.
inline void PrepReadSelect(io_uring_sqe* sqe, int fd, unsigned len, uint64_t off, uint16_t bgid,
                           uint64_t user_data) {
  io_uring_prep_rw(IORING_OP_READ, sqe, fd, nullptr, len, off);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = bgid;
  sqe->user_data = user_data;
}

// Command-area capacity for an SQE of the given size: 16 or 80 bytes.
constexpr size_t UringCmdCapacity(bool sqe128) { return sqe128 ? kSqe128CmdLen : kSqeCmdLen; }

// IORING_OP_URING_CMD (46) on `fd` with driver command `cmd_op`; the
// `cmd_len` bytes at `cmd` are copied into the SQE's command area (the caller
// may reuse `cmd` immediately). `sqe128` must match the ring (IoRing::sqe128)
// or the copy would run past a 64-byte SQE. Returns false, leaving the SQE
// unchanged, if the command does not fit (or cmd is null with cmd_len > 0).
// For a registered buffer set afterwards: sqe->uring_cmd_flags |= kUringCmdFixed;
// sqe->buf_index = index. For a registered file: IOSQE_FIXED_FILE, fd = slot.
[[nodiscard]] inline bool PrepUringCmd(io_uring_sqe* sqe, bool sqe128, int fd, uint32_t cmd_op,
                                       const void* cmd, size_t cmd_len, uint64_t user_data) {
  if (cmd_len > UringCmdCapacity(sqe128) || (cmd == nullptr && cmd_len > 0)) return false;
  sqe->opcode = kOpUringCmd;
  sqe->fd = fd;
  sqe->cmd_op = cmd_op;
  sqe->user_data = user_data;
  if (cmd_len > 0) std::memcpy(reinterpret_cast<char*>(sqe) + kSqeCmdOffset, cmd, cmd_len);
  return true;
}

}  // namespace kmfuse::uring

#endif  // KMFUSE_URING_SQE_H_
