// Raw FUSE-over-io_uring SQEs for tests that talk to a ring (the kernel
// model's or the real kernel's) without UringQueue: the scripted
// cross-check and the negative tests. Header-only, test-only.
//
// RawEntry owns one entry's header and payload; it must stay alive (and not
// move) while its REGISTER / COMMIT_AND_FETCH is in flight.
#ifndef KMFUSE_TESTS_URING_RAW_H_
#define KMFUSE_TESTS_URING_RAW_H_

#include <sys/uio.h>

#include <cstring>
#include <vector>

#include "absl/time/clock.h"
#include "kmfuse/fuse_abi.h"
#include "uring/io_ring.h"
#include "uring/sqe.h"

namespace kmfuse::testing {

struct RawEntry {
  explicit RawEntry(size_t payload_len) : payload(payload_len, 0) {}
  abi::fuse_uring_req_header hdr{};  // the kernel needs no particular alignment
  std::vector<char> payload;
  struct iovec iov[2]{};

  abi::fuse_in_header In() const {
    abi::fuse_in_header in;
    std::memcpy(&in, hdr.in_out, sizeof(in));
    return in;
  }
  abi::fuse_uring_ent_in_out Ent() const {
    abi::fuse_uring_ent_in_out e;
    std::memcpy(&e, &hdr.ring_ent_in_out, sizeof(e));
    return e;
  }
  // Writes the reply: out header + args at payload offset 0 + payload_sz.
  void Reply(uint64_t unique, int32_t error, const void* args, size_t len) {
    abi::fuse_out_header out{static_cast<uint32_t>(sizeof(out) + len), error, unique};
    std::memcpy(hdr.in_out, &out, sizeof(out));
    if (len) std::memcpy(payload.data(), args, len);
    abi::fuse_uring_ent_in_out e = Ent();
    e.payload_sz = static_cast<uint32_t>(len);
    std::memcpy(&hdr.ring_ent_in_out, &e, sizeof(e));
  }
};

// A FUSE uring command; the 40-byte 7.46 layout on SQE128 rings (the first
// 24 bytes are the 6.14 layout), the first 16 bytes on 64-byte SQEs.
inline void PrepCmd(uring::IoRing& ring, io_uring_sqe* sqe, int fd, uint32_t op, uint16_t qid,
                    uint64_t commit_id, uint64_t ud, uint64_t flags = 0) {
  abi::fuse_uring_cmd_req_v46 c{};
  c.flags = flags;
  c.commit_id = commit_id;
  c.qid = qid;
  size_t len = ring.sqe128() ? sizeof(c) : uring::kSqeCmdLen;
  bool ok = uring::PrepUringCmd(sqe, ring.sqe128(), fd, op, &c, len, ud);
  (void)ok;
}

inline void PrepRegister(uring::IoRing& ring, io_uring_sqe* sqe, int fd, uint16_t qid, RawEntry& e,
                         uint64_t ud) {
  e.iov[0] = {&e.hdr, sizeof(e.hdr)};
  e.iov[1] = {e.payload.data(), e.payload.size()};
  PrepCmd(ring, sqe, fd, abi::FUSE_IO_URING_CMD_REGISTER, qid, 0, ud);
  sqe->addr = reinterpret_cast<uint64_t>(e.iov);
  sqe->len = 2;
}

// A 7.46 command (SQE128 rings only) with every field of the 40-byte
// fuse_uring_cmd_req given. fixed_index >= 0 adds IORING_URING_CMD_FIXED and
// that buf_index (a registered pool: every SQE of the queue carries it).
inline void PrepCmdV46(io_uring_sqe* sqe, int fd, uint32_t op, const abi::fuse_uring_cmd_req_v46& c,
                       uint64_t ud, int fixed_index = -1) {
  bool ok = uring::PrepUringCmd(sqe, true, fd, op, &c, sizeof(c), ud);
  (void)ok;
  if (fixed_index >= 0) {
    sqe->uring_cmd_flags |= uring::kUringCmdFixed;
    sqe->buf_index = static_cast<uint16_t>(fixed_index);
  }
}

// The kernel writes only the in header (40 bytes of in_out) and in_args[0]
// (op_in) of a request. Tests fill the header with this pattern before
// handing it to the kernel and measure how much was written.
inline unsigned char HeaderFill(size_t i) { return static_cast<unsigned char>(0x80 | ((i * 29) & 0x7f)); }
inline void FillHeaderTail(abi::fuse_uring_req_header& h) {
  // in_out[0, 16) keeps the out header of a reply.
  for (size_t i = sizeof(abi::fuse_out_header); i < sizeof(h.in_out); i++) h.in_out[i] = HeaderFill(i);
  for (size_t i = 0; i < sizeof(h.op_in); i++) h.op_in[i] = HeaderFill(i);
}
// 1 + the index of the last byte that differs from the fill (0: none).
inline uint32_t WrittenPrefix(const char* p, size_t n) {
  for (size_t i = n; i > 0; i--) {
    if (static_cast<unsigned char>(p[i - 1]) != HeaderFill(i - 1)) return static_cast<uint32_t>(i);
  }
  return 0;
}

// Submits what is queued and collects completions until `n` arrived or
// `timeout` passed (never blocks in the ring).
inline std::vector<uring::Completion> Collect(uring::IoRing& ring, size_t n,
                                              absl::Duration timeout) {
  std::vector<uring::Completion> out;
  absl::Time deadline = absl::Now() + timeout;
  ring.Submit();
  while (out.size() < n && absl::Now() < deadline) {
    ring.Reap([&](const uring::Completion& c) { out.push_back(c); });
    if (out.size() < n) absl::SleepFor(absl::Milliseconds(1));
  }
  return out;
}

}  // namespace kmfuse::testing

#endif  // KMFUSE_TESTS_URING_RAW_H_
