// Capability hardening for a root kmfused: after option parsing and before
// any thread exists (capabilities are per thread; threads inherit them), drop
// every capability a passthrough daemon does not use, from the effective,
// permitted, inheritable, ambient and bounding sets, and set no_new_privs.
//
// Kept (each for a named reason, see kKeptCapabilities in privileges.cc):
// file access on behalf of callers (DAC_OVERRIDE, DAC_READ_SEARCH for
// open_by_handle_at, FOWNER, FSETID, CHOWN, MKNOD, SETFCAP), run_as_caller
// (SETUID, SETGID), mount/umount and FUSE passthrough backing files
// (SYS_ADMIN), writes into reserved space and raised fd limits
// (SYS_RESOURCE), and io_uring buffers without RLIMIT_MEMLOCK accounting
// (IPC_LOCK). Everything else (net, module, ptrace, rawio, kill, boot, time,
// audit, bpf, ...) goes.
#ifndef KMFUSE_DAEMON_PRIVILEGES_H_
#define KMFUSE_DAEMON_PRIVILEGES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace kmfuse {

// The kept set as a capability bit mask (bit N = capability N).
uint64_t KeptCapabilityMask();

// Drops the rest for the calling thread and the bounding set, sets
// no_new_privs; returns the capabilities kept. A no-op returning 0 when the
// process holds no capabilities (an unprivileged daemon). On failure nothing
// is promised about what was dropped; the Status names the step and errno.
absl::StatusOr<uint64_t> DropCapabilities();

// "chown,dac_override,..." for the log.
std::string DescribeCapabilityMask(uint64_t mask);

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_PRIVILEGES_H_
