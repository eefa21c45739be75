// IoRing: the narrow interface through which everything above the ring layer
// talks to io_uring. Ring (ring.h) implements it on a real kernel ring; tests
// and models of kernel features no machine here has (kmbuf rings, FUSE buffer
// pools) implement it with a fake.
//
// Contract shared by every implementation:
//   - Threading: an IoRing is thread-compatible, not thread-safe. One thread
//     (the queue's owner) calls GetSqe/Submit/SubmitAndWait/Reap; callers that
//     share a ring serialise externally. Rings created with single_issuer must
//     only ever be submitted to from the creating thread.
//   - SQE lifetime: the pointer from GetSqe is valid until the next Submit or
//     SubmitAndWait. Memory the SQE points at (buffers, iovecs, cmd payloads
//     passed by address) must stay valid until the matching completion, and
//     for multishot SQEs until a completion WITHOUT kCqeFMore.
//   - user_data is opaque to the ring; by project convention it is the
//     address of a pinned object that owns the in-flight SQE.
//   - Errors are negative errno values (data plane) or absl::Status
//     (MapRegion, a control-plane call). Nothing throws.
#ifndef KMFUSE_URING_IO_RING_H_
#define KMFUSE_URING_IO_RING_H_

#include <cstddef>
#include <cstdint>

#include <liburing.h>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace kmfuse::uring {

// A completion copied out of the CQ ring. Reap hands these to its callback
// after the CQE has been copied, so no caller ever reads shared CQ memory.
struct Completion {
  uint64_t user_data;
  int32_t res;     // >= 0 result, or -errno
  uint32_t flags;  // kCqeF* bits; bid in the upper 16 bits with kCqeFBuffer
};

class IoRing {
 public:
  virtual ~IoRing() = default;

  // A cleared SQE (all 64 or 128 bytes zeroed), or nullptr when the SQ is
  // full (Submit and retry).
  virtual io_uring_sqe* GetSqe() = 0;

  // Submits queued SQEs; returns number submitted or -errno.
  virtual int Submit() = 0;

  // Submits and waits for at least wait_nr completions; -errno (-EINTR
  // passes through so the caller's loop can check for shutdown).
  virtual int SubmitAndWait(unsigned wait_nr) = 0;

  // Calls fn for each CQE ready on entry (copied first into a Completion),
  // advances the CQ once per batch; returns count. Never blocks. Completions
  // arriving while fn runs are left for the next call. fn may call GetSqe and
  // Submit but must not call Reap (not reentrant).
  virtual unsigned Reap(absl::FunctionRef<void(const Completion&)> fn) = 0;

  // io_uring_register(2) raw: returns result (>= 0) or -errno.
  virtual int RegisterRaw(unsigned opcode, void* arg, unsigned nr_args) = 0;

  // mmap (shared, read/write) of a ring region, e.g. PbufRingOffset(bgid).
  // Returns the mapping or the errno as a Status. The caller unmaps it with
  // UnmapRegion(addr, len) using the same len.
  virtual absl::StatusOr<void*> MapRegion(uint64_t offset, size_t len) = 0;
  virtual void UnmapRegion(void* addr, size_t len) = 0;

  // True when SQEs are 128 bytes (80-byte command area).
  virtual bool sqe128() const = 0;
  // The ring's file descriptor (owned by the ring; do not close).
  virtual int ring_fd() const = 0;
};

}  // namespace kmfuse::uring

#endif  // KMFUSE_URING_IO_RING_H_
