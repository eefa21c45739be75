// Run-time probe of the io_uring mechanisms the daemon can use, run against
// the live kernel: which transports are possible here and why not.
//
// Every check creates and destroys its own rings, pipes and buffer rings;
// nothing stays behind. ProbeIoUring needs no privileges, takes a few
// milliseconds (bounded by internal 1 s timeouts on the real multishot read)
// and is safe to call from any thread. It never crashes and never fails as a
// whole: an unavailable io_uring shows up as items that are not supported.
#ifndef KMFUSE_URING_PROBE_H_
#define KMFUSE_URING_PROBE_H_

#include <string>
#include <vector>

namespace kmfuse::uring {

// Stable identity of each check, for code that looks items up.
enum class ProbeId {
  kRingSetup,           // io_uring_setup with default flags
  kSqe128,              // IORING_SETUP_SQE128 (FUSE-over-io_uring needs it)
  kSingleIssuer,        // IORING_SETUP_SINGLE_ISSUER
  kDeferTaskrun,        // IORING_SETUP_DEFER_TASKRUN (with SINGLE_ISSUER)
  kOpReadMultishot,     // opcode probe: IORING_OP_READ_MULTISHOT (49)
  kOpUringCmd,          // opcode probe: IORING_OP_URING_CMD (46)
  kProvidedBufferRing,  // IORING_REGISTER_PBUF_RING with a user ring
  kReadMultishotPipe,   // a real multishot read on a pipe into that ring
  kKmbufRing,           // IOU_PBUF_RING_KERNEL_MANAGED registration (never merged:
                        // unavailable on every released kernel; kmbuf is model only)
};

struct ProbeItem {
  std::string mechanism;  // human-readable name, e.g. "kmbuf ring (IOU_PBUF_RING_KERNEL_MANAGED)"
  bool supported;
  std::string detail;     // e.g. "errno EINVAL", or what the check observed
  int error = 0;          // positive errno when the kernel refused, else 0
  ProbeId id = ProbeId::kRingSetup;
};

// Runs all checks in ProbeId order; one item per ProbeId.
std::vector<ProbeItem> ProbeIoUring();

// The item with `id`, or nullptr.
const ProbeItem* FindProbeItem(const std::vector<ProbeItem>& items, ProbeId id);

// "<mechanism>: supported" / "<mechanism>: not supported (EINVAL)"; without
// an errno the detail, if any, goes in the parentheses.
std::string FormatProbeItem(const ProbeItem& item);

}  // namespace kmfuse::uring

#endif  // KMFUSE_URING_PROBE_H_
