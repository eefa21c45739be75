#include "daemon/select.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/options.h"

namespace kmfuse {
namespace {

absl::Status UringReason(const KernelOffer& o) {
  if (!o.uring_cmd) {
    return absl::FailedPreconditionError("io_uring URING_CMD is not supported by this kernel");
  }
  if (!o.enable_uring_param_exists) {
    return absl::FailedPreconditionError(
        "this kernel has no FUSE-over-io_uring (needs Linux 6.14+ with CONFIG_FUSE_IO_URING)");
  }
  if (!o.enable_uring) {
    return absl::FailedPreconditionError(
        "enable_uring is off (echo 1 > /sys/module/fuse/parameters/enable_uring)");
  }
  if (o.init_known && !o.init_over_io_uring) {
    return absl::FailedPreconditionError("the kernel did not offer FUSE_OVER_IO_URING in INIT");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status TransportAvailability(const std::string& t, const KernelOffer& o) {
  if (t == "read") return absl::OkStatus();
  if (t == "ring-read") {
    if (!o.read_multishot) {
      return absl::FailedPreconditionError(
          "io_uring READ_MULTISHOT is not supported by this kernel (needs Linux 6.7+)");
    }
    return absl::OkStatus();
  }
  if (t == "uring") return UringReason(o);
  if (t == "kmbuf") {
    if (!o.kmbuf.ok()) {
      return absl::FailedPreconditionError(o.kmbuf.message());
    }
    return UringReason(o);
  }
  if (t == "bufpool") {
    if (absl::Status s = UringReason(o); !s.ok()) return s;
    if (o.init_known && !o.init_bufpool) {
      return absl::FailedPreconditionError(
          "the kernel did not offer FUSE_HAS_IO_URING_BUFPOOL in INIT (needs Linux 7.3+)");
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown transport '", t, "'"));
}

std::string Choice::Log() const {
  std::string s = absl::StrCat("transport ", transport);
  if (!skipped.empty()) absl::StrAppend(&s, " (skipped ", absl::StrJoin(skipped, "; "), ")");
  return s;
}

absl::StatusOr<Choice> ChooseTransport(const std::string& requested, const KernelOffer& offer) {
  Choice c;
  if (requested != "auto") {
    absl::Status s = TransportAvailability(requested, offer);
    if (!s.ok()) {
      if (absl::IsInvalidArgument(s)) return s;
      return absl::FailedPreconditionError(
          absl::StrCat("transport ", requested, " is not available: ", s.message()));
    }
    c.transport = requested;
    return c;
  }
  for (const char* t : kTransportOrder) {
    absl::Status s = TransportAvailability(t, offer);
    if (s.ok()) {
      c.transport = t;
      return c;
    }
    c.skipped.push_back(absl::StrCat(t, ": ", s.message()));
  }
  return absl::InternalError("no transport available");  // "read" always is
}

}  // namespace kmfuse
