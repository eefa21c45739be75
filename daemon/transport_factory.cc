// Kernel probing before the mount and the TransportKind -> implementation map.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/session.h"
#include "daemon/transport_uring.h"
#include "uring/probe.h"

namespace kmfuse {

absl::StatusOr<std::unique_ptr<Transport>> MakeRingReadTransport(const TransportEnv& env);


BufpoolOptions BufpoolOptionsFor(const ServerOptions& opts) {
  BufpoolOptions o;
  o.registered = true;
  o.zero_copy = opts.zero_copy < 0 ? geteuid() == 0 : opts.zero_copy == 1;
  // Test-only: KMFUSE_TEST_REFUSE=zero_copy,registered,bufpool makes the
  // daemon ask the kernel for what it refuses at those rungs, so the tests
  // can walk the fallback ladder on a kernel that would grant everything.
  if (const char* refuse = getenv("KMFUSE_TEST_REFUSE"); refuse != nullptr) {
    for (absl::string_view r : absl::StrSplit(refuse, ',', absl::SkipEmpty())) {
      if (r == "zero_copy") o.refuse_zero_copy = true;
      if (r == "registered") o.refuse_registered = true;
      if (r == "bufpool") o.refuse_bufpool = true;
    }
  }
  return o;
}

KernelOffer ProbeKernelOffer() { return ProbeKernelOffer(uring::ProbeIoUring()); }

KernelOffer ProbeKernelOffer(const std::vector<uring::ProbeItem>& items) {
  KernelOffer o;
  int fd = open("/sys/module/fuse/parameters/enable_uring", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    o.enable_uring_param_exists = true;
    char c = 0;
    if (read(fd, &c, 1) == 1) o.enable_uring = (c == 'Y' || c == '1');
    close(fd);
  }
  auto ok = [&](uring::ProbeId id) {
    const uring::ProbeItem* it = uring::FindProbeItem(items, id);
    return it != nullptr && it->supported;
  };
  o.read_multishot = ok(uring::ProbeId::kOpReadMultishot) && ok(uring::ProbeId::kReadMultishotPipe);
  o.uring_cmd = ok(uring::ProbeId::kOpUringCmd) && ok(uring::ProbeId::kSqe128);
  // The probe already tried a kernel-managed buffer ring registration.
  const uring::ProbeItem* kmbuf = uring::FindProbeItem(items, uring::ProbeId::kKmbufRing);
  if (kmbuf != nullptr && kmbuf->supported) {
    o.kmbuf = absl::OkStatus();
  } else if (kmbuf != nullptr && kmbuf->error == EINVAL) {
    // Keep the log line short; the full story is in docs/transports.md.
    o.kmbuf = absl::UnimplementedError(
        "IORING_REGISTER_PBUF_RING with IOU_PBUF_RING_KERNEL_MANAGED returned EINVAL: "
        "kmbuf rings were never merged in mainline");
  } else {
    o.kmbuf = absl::FailedPreconditionError(
        kmbuf != nullptr ? uring::FormatProbeItem(*kmbuf) : "kmbuf ring registration not probed");
  }
  return o;
}

absl::StatusOr<std::unique_ptr<Transport>> MakeTransport(TransportKind transport,
                                                         const TransportEnv& env) {
  const std::string name(TransportName(transport));
  switch (transport) {
    case TransportKind::kRead:
      return MakeReadTransport(env, env.opts->threads, /*clone_fds=*/true);
    case TransportKind::kRingRead:
      return MakeRingReadTransport(env);
    case TransportKind::kUring:
      return MakeUringFamilyTransport(name, env, MakePerEntryPolicy, RealRingFactory());
    // kmbuf is refused before the mount on every released kernel (select.cc:
    // the kmbuf probe gets EINVAL); it is exercised against tests/kernel_model.
    case TransportKind::kKmbuf:
      return MakeUringFamilyTransport(name, env, [] { return MakeKmbufPolicy(); },
                                      RealRingFactory());
    // bufpool runs on Linux 7.3+ (INIT offers FUSE_HAS_IO_URING_BUFPOOL):
    // a registered pool by default, zero-copy queues as root unless
    // zero_copy is off; each refusal steps down a rung (BufpoolOptions).
    case TransportKind::kBufpool: {
      BufpoolOptions o = BufpoolOptionsFor(*env.opts);
      return MakeUringFamilyTransport(name, env, [o] { return MakeBufpoolPolicy(o); },
                                      RealRingFactory());
    }
    case TransportKind::kAuto:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat("transport ", name, ": not a transport"));
}

}  // namespace kmfuse
