// Registered (fixed) buffer tables and the fixed-buffer read/write SQEs.
//
// A ring's registered-buffer table may be created sparse (every slot empty)
// and filled slot by slot: userspace fills slots with its own memory
// (UpdateBuffers), and kernel subsystems may fill empty slots with pages of
// their own for the length of one request (FUSE io-uring zero-copy registers
// the caller's pages into the slot an entry named). IORING_OP_READ_FIXED /
// WRITE_FIXED then move data between a file and a slot without a bounce.
//
// addr of a fixed op: for a slot filled from userspace memory it is a user
// address inside that memory; for a slot a kernel subsystem filled with
// pages (io_buffer_register_bvec) the buffer starts at address 0, so addr is
// the byte offset into the registered pages (checked on Linux 7.3,
// docs/kernel-interfaces.md section 5).
//
// Contract: plain functions over IoRing (real ring or model); errors are
// negative errno values. Not thread-safe beyond IoRing's own rules: call
// from the ring's owner thread. Pure data + inline functions.
#ifndef KMFUSE_URING_FIXED_BUFFERS_H_
#define KMFUSE_URING_FIXED_BUFFERS_H_

#include <sys/uio.h>

#include <cstdint>

#include <liburing.h>

#include "uring/io_ring.h"

namespace kmfuse::uring {

// io_uring_register(2) opcodes and flags (mainline since 5.13).
inline constexpr unsigned kUnregisterBuffers = 1;        // IORING_UNREGISTER_BUFFERS
inline constexpr unsigned kRegisterBuffers2 = 15;        // IORING_REGISTER_BUFFERS2
inline constexpr unsigned kRegisterBuffersUpdate = 16;   // IORING_REGISTER_BUFFERS_UPDATE
inline constexpr uint32_t kRsrcRegisterSparse = 1u << 0;  // IORING_RSRC_REGISTER_SPARSE
static_assert(IORING_UNREGISTER_BUFFERS == kUnregisterBuffers, "");
static_assert(IORING_REGISTER_BUFFERS2 == kRegisterBuffers2, "");
static_assert(IORING_REGISTER_BUFFERS_UPDATE == kRegisterBuffersUpdate, "");
static_assert(IORING_RSRC_REGISTER_SPARSE == kRsrcRegisterSparse, "");
static_assert(sizeof(io_uring_rsrc_register) == 32, "");
static_assert(sizeof(io_uring_rsrc_update2) == 32, "");

// A registered-buffer table of `slots` empty slots (replaces none: the ring
// must have no table yet). 0 or -errno (-EBUSY: a table exists; -ENOMEM /
// -EPERM: accounting limits).
inline int RegisterSparseBuffers(IoRing& ring, unsigned slots) {
  io_uring_rsrc_register rr{};
  rr.nr = slots;
  rr.flags = kRsrcRegisterSparse;
  return ring.RegisterRaw(kRegisterBuffers2, &rr, sizeof(rr));
}

// Fills slots [first, first + n) with the given user memory (pinned by the
// kernel until replaced, unregistered or the ring is gone). Returns the
// number of slots updated or -errno (-EFAULT: bad memory; -ENOMEM: the
// RLIMIT_MEMLOCK accounting of a process without CAP_IPC_LOCK).
inline int UpdateBuffers(IoRing& ring, unsigned first, const struct iovec* iov, unsigned n) {
  io_uring_rsrc_update2 up{};
  up.offset = first;
  up.data = reinterpret_cast<uint64_t>(iov);
  up.nr = n;
  return ring.RegisterRaw(kRegisterBuffersUpdate, &up, sizeof(up));
}

// Drops the whole table (slots in use by in-flight requests stay alive
// until those complete). 0 or -errno.
inline int UnregisterBuffers(IoRing& ring) { return ring.RegisterRaw(kUnregisterBuffers, nullptr, 0); }

// IORING_OP_READ_FIXED: up to len bytes of fd at file offset `off` into the
// registered buffer `slot` at `addr` (see the addr rule above).
inline void PrepReadFixed(io_uring_sqe* sqe, int fd, uint64_t addr, unsigned len, uint64_t off,
                          uint16_t slot, uint64_t user_data) {
  io_uring_prep_rw(IORING_OP_READ_FIXED, sqe, fd, reinterpret_cast<const void*>(addr), len, off);
  sqe->buf_index = slot;
  sqe->user_data = user_data;
}

// IORING_OP_WRITE_FIXED: len bytes from registered buffer `slot` at `addr`
// to fd at file offset `off`.
inline void PrepWriteFixed(io_uring_sqe* sqe, int fd, uint64_t addr, unsigned len, uint64_t off,
                           uint16_t slot, uint64_t user_data) {
  io_uring_prep_rw(IORING_OP_WRITE_FIXED, sqe, fd, reinterpret_cast<const void*>(addr), len, off);
  sqe->buf_index = slot;
  sqe->user_data = user_data;
}

}  // namespace kmfuse::uring

#endif  // KMFUSE_URING_FIXED_BUFFERS_H_
