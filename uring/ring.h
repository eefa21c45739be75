// Ring: the real io_uring, an IoRing over liburing's struct io_uring.
//
// Ownership: a Ring owns its io_uring instance (fd, SQ/CQ mappings) and tears
// it down in the destructor (io_uring_queue_exit), which also cancels every
// in-flight request. Objects registered with the ring (buffer rings, files,
// fixed buffers) must be destroyed or unregistered BEFORE the Ring.
// Ring is neither copyable nor movable: its address is stable for the life of
// the unique_ptr returned by Create, so other objects may hold an IoRing&.
//
// Threading: thread-compatible (see io_ring.h). With single_issuer the kernel
// binds submission to the creating thread; submitting from another thread
// fails with -EEXIST.
//
// Setup flags: defer_taskrun requires single_issuer (kernel rule). With
// best_effort (the default), an -EINVAL from io_uring_setup while any of
// single_issuer / defer_taskrun / coop_taskrun is asked makes Create retry once
// without those three; setup_flags() reports what is really in use. sqe128 is
// never dropped: callers asking for it need it (FUSE-over-io_uring).
#ifndef KMFUSE_URING_RING_H_
#define KMFUSE_URING_RING_H_

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>

#include <liburing.h>

#include "absl/status/statusor.h"
#include "uring/io_ring.h"

namespace kmfuse::uring {

struct RingOptions {
  unsigned entries = 64;  // SQ size; CQ is twice that (kernel default)
  bool sqe128 = false;
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool coop_taskrun = false;
  bool best_effort = true;  // drop single_issuer/defer/coop on EINVAL and retry
  // Register the ring's own fd with the creating thread
  // (IORING_REGISTER_RING_FDS): every io_uring_enter of that thread then
  // skips the fd table lookup and its reference count (an atomic pair per
  // enter in a multi-threaded process). Only the creating thread may submit
  // and wait through the registered index, so only ask for it with
  // single_issuer. Refused (older kernels) it is silently not used;
  // ring_fd_registered() says what happened. A ring destroyed on another
  // thread stays referenced by the creator's registration until that thread
  // exits (the kernel drops registrations at exit).
  bool register_ring_fd = false;
};

// "SQE128|SINGLE_ISSUER" style rendering of io_uring setup flags ("none" for 0).
std::string SetupFlagsToString(uint32_t flags);

class Ring final : public IoRing {
 public:
  // Creates the ring. Errors name the errno and the flags asked, e.g.
  // "io_uring_setup(entries=0, flags=SQE128): EINVAL (Invalid argument)".
  static absl::StatusOr<std::unique_ptr<Ring>> Create(const RingOptions& options);

  ~Ring() override;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // IoRing.
  io_uring_sqe* GetSqe() override;
  int Submit() override;
  int SubmitAndWait(unsigned wait_nr) override;
  unsigned Reap(absl::FunctionRef<void(const Completion&)> fn) override;
  int RegisterRaw(unsigned opcode, void* arg, unsigned nr_args) override;
  absl::StatusOr<void*> MapRegion(uint64_t offset, size_t len) override;
  void UnmapRegion(void* addr, size_t len) override;
  bool sqe128() const override { return (setup_flags_ & IORING_SETUP_SQE128) != 0; }
  int ring_fd() const override { return ring_.ring_fd; }

  // Like SubmitAndWait, but gives up after timeout_ns nanoseconds with -ETIME.
  // Returns >= 0 once wait_nr completions are ready. Meant for tests and
  // probes that must never hang.
  int SubmitAndWaitTimeout(unsigned wait_nr, int64_t timeout_ns);

  // Setup flags actually in use (after any best-effort fallback).
  unsigned setup_flags() const { return setup_flags_; }
  // True when io_uring_enter goes through the registered ring fd.
  bool ring_fd_registered() const { return ring_fd_registered_; }
  // Entries of the SQ as granted by the kernel.
  unsigned sq_entries() const { return ring_.sq.ring_entries; }

  // io_uring_register_files / io_uring_register_buffers: 0 or -errno.
  // fds and iovecs are copied by the kernel; the memory the iovecs describe
  // is pinned by the kernel until unregistered or the ring is destroyed.
  int RegisterFiles(const int* fds, unsigned n);
  int RegisterBuffers(const struct iovec* iovecs, unsigned n);

 private:
  Ring() = default;

  struct io_uring ring_ {};
  unsigned setup_flags_ = 0;
  bool ring_fd_registered_ = false;
};

}  // namespace kmfuse::uring

#endif  // KMFUSE_URING_RING_H_
