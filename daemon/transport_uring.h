// The FUSE-over-io_uring transport family, built from a payload policy and a
// ring factory (real rings in the daemon, the kernel model in tests).
#ifndef KMFUSE_DAEMON_TRANSPORT_URING_H_
#define KMFUSE_DAEMON_TRANSPORT_URING_H_

#include <memory>
#include <string>
#include <vector>

#include "daemon/transport.h"
#include "daemon/uring_queue.h"

namespace kmfuse {

// SQE128 rings with single-issuer + defer-taskrun when the kernel takes them.
RingFactory RealRingFactory();

absl::StatusOr<std::unique_ptr<Transport>> MakeUringFamilyTransport(const std::string& name,
                                                                    const TransportEnv& env,
                                                                    PolicyFactory policies,
                                                                    RingFactory rings);

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_TRANSPORT_URING_H_
