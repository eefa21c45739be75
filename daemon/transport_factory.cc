// Kernel probing before the mount and the transport name -> implementation map.
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "daemon/session.h"
#include "daemon/transport_uring.h"
#include "uring/probe.h"

namespace kmfuse {

absl::StatusOr<std::unique_ptr<Transport>> MakeRingReadTransport(const TransportEnv& env);


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

absl::StatusOr<std::unique_ptr<Transport>> MakeTransport(const std::string& name,
                                                         const TransportEnv& env) {
  if (name == "read") {
    return MakeReadTransport(env, env.opts->daemon.threads, /*clone_fds=*/true);
  }
  if (name == "ring-read") return MakeRingReadTransport(env);
  if (name == "uring") {
    return MakeUringFamilyTransport(name, env, MakePerEntryPolicy, RealRingFactory());
  }
  // Both are refused before the mount on every released kernel (select.cc:
  // the kmbuf probe gets EINVAL, INIT lacks FUSE_HAS_IO_URING_BUFPOOL); they
  // are exercised against tests/kernel_model.
  if (name == "kmbuf") {
    return MakeUringFamilyTransport(name, env, [] { return MakeKmbufPolicy(); },
                                    RealRingFactory());
  }
  if (name == "bufpool") {
    return MakeUringFamilyTransport(name, env, [] { return MakeBufpoolPolicy(); },
                                    RealRingFactory());
  }
  return absl::UnimplementedError(absl::StrCat("transport ", name, " is not built into this binary"));
}

}  // namespace kmfuse
