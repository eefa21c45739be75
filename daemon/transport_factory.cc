// Kernel probing before the mount and the transport name -> implementation map.
#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "daemon/session.h"
#include "daemon/transport_uring.h"
#include "uring/buffer_ring.h"
#include "uring/probe.h"
#include "uring/ring.h"

namespace kmfuse {

absl::StatusOr<std::unique_ptr<Transport>> MakeRingReadTransport(const TransportEnv& env);

namespace {

absl::Status ProbeKmbuf() {
  uring::RingOptions o;
  o.entries = 4;
  absl::StatusOr<std::unique_ptr<uring::Ring>> ring = uring::Ring::Create(o);
  if (!ring.ok()) return ring.status();
  uring::BufferRingOptions bo;
  bo.backing = uring::Backing::kKernelManaged;
  bo.entries = 2;
  bo.buf_size = 4096;
  absl::StatusOr<std::unique_ptr<uring::BufferRing>> br = uring::BufferRing::Create(**ring, bo);
  if (absl::IsUnimplemented(br.status())) {
    // Keep the log line short; the full story is in docs/transports.md.
    return absl::UnimplementedError(
        "IORING_REGISTER_PBUF_RING with IOU_PBUF_RING_KERNEL_MANAGED returned EINVAL: "
        "kmbuf rings were never merged in mainline");
  }
  return br.status();
}

}  // namespace

KernelOffer ProbeKernelOffer() {
  KernelOffer o;
  int fd = open("/sys/module/fuse/parameters/enable_uring", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    o.enable_uring_param_exists = true;
    char c = 0;
    if (read(fd, &c, 1) == 1) o.enable_uring = (c == 'Y' || c == '1');
    close(fd);
  }
  std::vector<uring::ProbeItem> items = uring::ProbeIoUring();
  auto ok = [&](uring::ProbeId id) {
    const uring::ProbeItem* it = uring::FindProbeItem(items, id);
    return it != nullptr && it->supported;
  };
  o.read_multishot = ok(uring::ProbeId::kOpReadMultishot) && ok(uring::ProbeId::kReadMultishotPipe);
  o.uring_cmd = ok(uring::ProbeId::kOpUringCmd) && ok(uring::ProbeId::kSqe128);
  o.kmbuf = ProbeKmbuf();
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
