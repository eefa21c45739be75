// Transport selection and buffer planning: pure logic over what the kernel
// offers and the ServerOptions, so every branch is unit-tested without a
// kernel (daemon/select_test.cc, daemon/options_test.cc).
#ifndef KMFUSE_DAEMON_SELECT_H_
#define KMFUSE_DAEMON_SELECT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kmfuse/server_options.h"

namespace kmfuse {

// What this kernel offers. Filled from probes before the mount and from the
// kernel's INIT flags after it.
struct KernelOffer {
  bool enable_uring_param_exists = false;  // /sys/module/fuse/parameters/enable_uring
  bool enable_uring = false;               // ... and it is on
  bool init_known = false;                 // INIT flags below are real
  bool init_over_io_uring = false;         // INIT offered FUSE_OVER_IO_URING
  bool init_bufpool = false;               // INIT offered FUSE_HAS_IO_URING_BUFPOOL
  bool read_multishot = false;             // io_uring READ_MULTISHOT works
  bool uring_cmd = false;                  // io_uring URING_CMD opcode exists
  absl::Status kmbuf = absl::UnknownError("not probed");  // kernel-managed buffer ring registration
};

// True for the transports that serve FUSE-over-io_uring (INIT asks for
// FUSE_OVER_IO_URING, buffers follow PlanUringBuffers): kmbuf, bufpool and
// uring.
bool IsFuseOverIoUring(TransportKind t);

// Why `transport` cannot run on this kernel; OK if it can (or might: bufpool
// and uring before INIT is known). kAuto is InvalidArgument: not a transport.
absl::Status TransportAvailability(TransportKind transport, const KernelOffer& offer);

struct Choice {
  TransportKind transport = TransportKind::kRead;
  // One entry per better transport that was skipped: "kmbuf: <reason>".
  std::vector<std::string> skipped;
  // "transport uring (skipped kmbuf: ...; bufpool: ...)"
  std::string Log() const;
};

// requested: kAuto or a transport. A forced transport the kernel lacks is
// FailedPrecondition naming the reason and what to do; never a fallback.
absl::StatusOr<Choice> ChooseTransport(TransportKind requested, const KernelOffer& offer);

// CPUs the kernel counts for FUSE-over-io_uring's nr_queues
// (/sys/devices/system/cpu/possible; _SC_NPROCESSORS_CONF without it).
std::vector<int> PossibleCpus();

// How the io_uring transports size their buffers for `queues` FUSE queues
// (one per possible CPU): every queue gets `entries` entries of `payload`
// bytes, queues x entries x payload <= the budget (buffer_memory).
// entries = min(queue_depth, budget / (queues x payload)). When that is
// below 2 and max_write was not given (0), max_write is halved from
// kDefaultMaxWrite (down to 8 KiB, the kernel's smallest payload) until two
// entries per queue fit, or one entry at 8 KiB. payload is what the kernel
// will ask for: max(8 KiB, max_write rounded up to `page`). InvalidArgument,
// naming the minimum budget, when not even one entry per queue fits.
struct UringBufferPlan {
  uint32_t max_write = 0;  // what INIT should offer
  unsigned entries = 0;    // per queue
  size_t payload = 0;      // bytes per entry
  uint64_t budget = 0;     // bytes, the resolved buffer_memory
  unsigned threads = 0;    // serving threads (rings), <= queues
};
absl::StatusOr<UringBufferPlan> PlanUringBuffers(const ServerOptions& o, unsigned queues,
                                                 size_t page, unsigned online_cpus);

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_SELECT_H_
