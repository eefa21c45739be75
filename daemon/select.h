// Transport selection: pure logic over what the kernel offers, so every
// branch is unit-tested without a kernel (daemon/select_test.cc).
#ifndef KMFUSE_DAEMON_SELECT_H_
#define KMFUSE_DAEMON_SELECT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

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

// Why `transport` cannot run on this kernel; OK if it can (or might: bufpool
// and uring before INIT is known).
absl::Status TransportAvailability(const std::string& transport, const KernelOffer& offer);

struct Choice {
  std::string transport;
  // One entry per better transport that was skipped: "kmbuf: <reason>".
  std::vector<std::string> skipped;
  // "transport uring (skipped kmbuf: ...; bufpool: ...)"
  std::string Log() const;
};

// requested: "auto" or a transport name. A forced transport the kernel lacks
// is FailedPrecondition naming the reason and what to do; never a fallback.
absl::StatusOr<Choice> ChooseTransport(const std::string& requested, const KernelOffer& offer);

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_SELECT_H_
