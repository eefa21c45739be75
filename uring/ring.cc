#include "uring/ring.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "uring/errors.h"
#include "uring/uapi.h"

namespace kmfuse::uring {
namespace {

constexpr uint32_t kOptionalFlags =
    kSetupSingleIssuer | kSetupDeferTaskrun | kSetupCoopTaskrun;

uint32_t FlagsFor(const RingOptions& o) {
  uint32_t flags = 0;
  if (o.sqe128) flags |= kSetupSqe128;
  if (o.single_issuer) flags |= kSetupSingleIssuer;
  if (o.defer_taskrun) flags |= kSetupDeferTaskrun;
  if (o.coop_taskrun) flags |= kSetupCoopTaskrun;
  return flags;
}

}  // namespace

std::string SetupFlagsToString(uint32_t flags) {
  static constexpr struct {
    uint32_t bit;
    const char* name;
  } kNames[] = {
      {IORING_SETUP_IOPOLL, "IOPOLL"},       {IORING_SETUP_SQPOLL, "SQPOLL"},
      {IORING_SETUP_SQ_AFF, "SQ_AFF"},       {IORING_SETUP_CQSIZE, "CQSIZE"},
      {IORING_SETUP_CLAMP, "CLAMP"},         {IORING_SETUP_ATTACH_WQ, "ATTACH_WQ"},
      {IORING_SETUP_R_DISABLED, "R_DISABLED"}, {IORING_SETUP_SUBMIT_ALL, "SUBMIT_ALL"},
      {kSetupCoopTaskrun, "COOP_TASKRUN"},   {kSetupTaskrunFlag, "TASKRUN_FLAG"},
      {kSetupSqe128, "SQE128"},              {kSetupCqe32, "CQE32"},
      {kSetupSingleIssuer, "SINGLE_ISSUER"}, {kSetupDeferTaskrun, "DEFER_TASKRUN"},
  };
  std::vector<std::string> parts;
  for (const auto& n : kNames) {
    if (flags & n.bit) {
      parts.emplace_back(n.name);
      flags &= ~n.bit;
    }
  }
  if (flags != 0) parts.push_back(absl::StrCat("0x", absl::Hex(flags)));
  if (parts.empty()) return "none";
  return absl::StrJoin(parts, "|");
}

absl::StatusOr<std::unique_ptr<Ring>> Ring::Create(const RingOptions& options) {
  std::unique_ptr<Ring> ring(new Ring());
  const uint32_t asked = FlagsFor(options);
  uint32_t flags = asked;
  io_uring_params params;
  std::memset(&params, 0, sizeof(params));
  params.flags = flags;
  int ret = io_uring_queue_init_params(options.entries, &ring->ring_, &params);
  if (ret == -EINVAL && options.best_effort && (flags & kOptionalFlags) != 0) {
    // Older kernels reject the newer taskrun/issuer flags with EINVAL (and
    // DEFER_TASKRUN without SINGLE_ISSUER is always EINVAL). They are
    // optimisations, so retry without them rather than fail the daemon.
    flags &= ~kOptionalFlags;
    std::memset(&params, 0, sizeof(params));
    params.flags = flags;
    ret = io_uring_queue_init_params(options.entries, &ring->ring_, &params);
  }
  if (ret < 0) {
    // io_uring_queue_init_params leaves ring_ unusable on failure; the
    // destructor must not call io_uring_queue_exit on it.
    ring->ring_.ring_fd = -1;
    std::string what = absl::StrCat("io_uring_setup(entries=", options.entries,
                                    ", flags=", SetupFlagsToString(asked));
    if (flags != asked) absl::StrAppend(&what, ", retried with ", SetupFlagsToString(flags));
    absl::StrAppend(&what, ")");
    return internal::ErrnoStatus(ret, what);
  }
  ring->setup_flags_ = ring->ring_.flags;
  if (options.register_ring_fd) {
    // liburing switches its enter calls to the registered index on success
    // (1 = one fd registered); any failure leaves the plain fd in use.
    ring->ring_fd_registered_ = io_uring_register_ring_fd(&ring->ring_) == 1;
  }
  return ring;
}

Ring::~Ring() {
  if (ring_.ring_fd >= 0) io_uring_queue_exit(&ring_);
}

io_uring_sqe* Ring::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) return nullptr;
  // liburing 2.3's prep helpers do not clear the second half of a 128-byte
  // SQE, and SQE slots are reused: stale command bytes would reach the driver.
  std::memset(sqe, 0, sqe128() ? kSqe128Size : kSqeSize);
  return sqe;
}

int Ring::Submit() { return io_uring_submit(&ring_); }

int Ring::SubmitAndWait(unsigned wait_nr) {
  return io_uring_submit_and_wait(&ring_, wait_nr);
}

int Ring::SubmitAndWaitTimeout(unsigned wait_nr, int64_t timeout_ns) {
  __kernel_timespec ts;
  ts.tv_sec = timeout_ns / 1000000000;
  ts.tv_nsec = timeout_ns % 1000000000;
  io_uring_cqe* cqe = nullptr;
  if (wait_nr == 0) return io_uring_submit(&ring_);
  int ret = io_uring_submit_and_wait_timeout(&ring_, &cqe, wait_nr, &ts, nullptr);
  if (ret < 0) return ret;
  // liburing returns once ANY completion is there on some paths; make the
  // "at least wait_nr" promise hold by waiting for the rest.
  while (io_uring_cq_ready(&ring_) < wait_nr) {
    ret = io_uring_submit_and_wait_timeout(&ring_, &cqe, wait_nr, &ts, nullptr);
    if (ret < 0) return ret;
  }
  return static_cast<int>(io_uring_cq_ready(&ring_));
}

unsigned Ring::Reap(absl::FunctionRef<void(const Completion&)> fn) {
  unsigned ready = io_uring_cq_ready(&ring_);
  if (ready == 0 &&
      (setup_flags_ & (kSetupDeferTaskrun | kSetupCoopTaskrun)) != 0) {
    // With DEFER_TASKRUN completions are only posted when the task enters the
    // kernel to get events; with COOP_TASKRUN they may wait for the next
    // syscall. A GETEVENTS enter with min_complete 0 runs that work without
    // blocking.
    io_uring_get_events(&ring_);
    ready = io_uring_cq_ready(&ring_);
  }
  // Only CQEs present on entry are handled: a callback that submits work which
  // completes inline cannot keep this loop alive forever.
  constexpr unsigned kBatch = 32;
  Completion batch[kBatch];
  unsigned total = 0;
  while (total < ready) {
    unsigned n = 0;
    unsigned head;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      if (n == kBatch || total + n == ready) break;
      batch[n++] = Completion{cqe->user_data, cqe->res, cqe->flags};
    }
    if (n == 0) break;
    // Copied out: release the slots before running callbacks, so nothing
    // reads a CQE after it was marked seen.
    io_uring_cq_advance(&ring_, n);
    for (unsigned i = 0; i < n; ++i) fn(batch[i]);
    total += n;
  }
  return total;
}

int Ring::RegisterRaw(unsigned opcode, void* arg, unsigned nr_args) {
  // Direct syscall: liburing 2.3's io_uring_register() wrapper reports errors
  // through errno or the return value depending on its build (nolibc or not).
  long ret = syscall(__NR_io_uring_register, ring_.ring_fd, opcode, arg, nr_args);
  if (ret < 0) return -errno;
  return static_cast<int>(ret);
}

absl::StatusOr<void*> Ring::MapRegion(uint64_t offset, size_t len) {
  void* addr = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                    ring_.ring_fd, static_cast<off_t>(offset));
  if (addr == MAP_FAILED) {
    return internal::ErrnoStatus(
        errno, absl::StrCat("mmap(ring fd, offset=0x", absl::Hex(offset), ", len=", len, ")"));
  }
  return addr;
}

void Ring::UnmapRegion(void* addr, size_t len) {
  if (addr != nullptr) munmap(addr, len);
}

int Ring::RegisterFiles(const int* fds, unsigned n) {
  return io_uring_register_files(&ring_, fds, n);
}

int Ring::RegisterBuffers(const struct iovec* iovecs, unsigned n) {
  return io_uring_register_buffers(&ring_, iovecs, n);
}

}  // namespace kmfuse::uring
