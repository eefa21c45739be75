#include "daemon/select.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

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

// 32M, 96K, 5000: the largest unit that divides evenly.
std::string FormatSize(uint64_t bytes) {
  if (bytes != 0 && bytes % (uint64_t{1} << 30) == 0) return absl::StrCat(bytes >> 30, "G");
  if (bytes != 0 && bytes % (uint64_t{1} << 20) == 0) return absl::StrCat(bytes >> 20, "M");
  if (bytes != 0 && bytes % 1024 == 0) return absl::StrCat(bytes >> 10, "K");
  return absl::StrCat(bytes);
}

}  // namespace

bool IsFuseOverIoUring(TransportKind t) {
  switch (t) {
    case TransportKind::kKmbuf:
    case TransportKind::kBufpool:
    case TransportKind::kUring:
      return true;
    case TransportKind::kAuto:
    case TransportKind::kRingRead:
    case TransportKind::kRead:
      return false;
  }
  return false;
}

absl::Status TransportAvailability(TransportKind t, const KernelOffer& o) {
  switch (t) {
    case TransportKind::kRead:
      return absl::OkStatus();
    case TransportKind::kRingRead:
      if (!o.read_multishot) {
        return absl::FailedPreconditionError(
            "io_uring READ_MULTISHOT is not supported by this kernel (needs Linux 6.7+)");
      }
      return absl::OkStatus();
    case TransportKind::kUring:
      return UringReason(o);
    case TransportKind::kKmbuf:
      if (!o.kmbuf.ok()) return absl::FailedPreconditionError(o.kmbuf.message());
      return UringReason(o);
    case TransportKind::kBufpool:
      if (absl::Status s = UringReason(o); !s.ok()) return s;
      if (o.init_known && !o.init_bufpool) {
        return absl::FailedPreconditionError(
            "the kernel did not offer FUSE_HAS_IO_URING_BUFPOOL in INIT (needs Linux 7.3+)");
      }
      return absl::OkStatus();
    case TransportKind::kAuto:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", TransportName(t), "' is a request, not a transport"));
}

std::string Choice::Log() const {
  std::string s = absl::StrCat("transport ", TransportName(transport));
  if (!skipped.empty()) absl::StrAppend(&s, " (skipped ", absl::StrJoin(skipped, "; "), ")");
  return s;
}

absl::StatusOr<Choice> ChooseTransport(TransportKind requested, const KernelOffer& offer) {
  Choice c;
  if (requested != TransportKind::kAuto) {
    absl::Status s = TransportAvailability(requested, offer);
    if (!s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "transport ", TransportName(requested), " is not available: ", s.message()));
    }
    c.transport = requested;
    return c;
  }
  for (TransportKind t : kTransportOrder) {
    absl::Status s = TransportAvailability(t, offer);
    if (s.ok()) {
      c.transport = t;
      return c;
    }
    c.skipped.push_back(absl::StrCat(TransportName(t), ": ", s.message()));
  }
  return absl::InternalError("no transport available");  // kRead always is
}

std::vector<int> PossibleCpus() {
  std::vector<int> cpus;
  std::ifstream f("/sys/devices/system/cpu/possible");
  std::string line;
  if (std::getline(f, line)) {
    for (absl::string_view part : absl::StrSplit(line, ',', absl::SkipEmpty())) {
      std::vector<absl::string_view> range = absl::StrSplit(part, '-');
      int lo = 0, hi = 0;
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(range[0]), &lo)) continue;
      hi = lo;
      if (range.size() > 1 && !absl::SimpleAtoi(absl::StripAsciiWhitespace(range[1]), &hi)) {
        continue;
      }
      for (int c = lo; c <= hi; c++) cpus.push_back(c);
    }
  }
  if (cpus.empty()) {
    long n = sysconf(_SC_NPROCESSORS_CONF);
    for (long c = 0; c < (n > 0 ? n : 1); c++) cpus.push_back(static_cast<int>(c));
  }
  return cpus;
}

absl::StatusOr<UringBufferPlan> PlanUringBuffers(const ServerOptions& o, unsigned queues,
                                                 size_t page, unsigned online_cpus) {
  UringBufferPlan plan;
  queues = std::max(1u, queues);
  page = std::max<size_t>(page, 1);
  // The kernel's payload size for a max_write when it takes FUSE_MAX_PAGES:
  // max(8 KiB, max_write in whole pages) (abi::UringMinPayload).
  auto payload_of = [page](uint64_t max_write) {
    return std::max<uint64_t>(8192, (max_write + page - 1) / page * page);
  };
  const bool max_write_set = o.max_write != 0;
  uint32_t max_write = max_write_set ? o.max_write : kDefaultMaxWrite;
  plan.budget = o.buffer_memory;
  if (plan.budget == 0) {
    // The default budget, or one entry per queue when max_write asks for
    // more than that allows.
    plan.budget = kDefaultBufferMemory;
    if (max_write_set) plan.budget = std::max(plan.budget, queues * payload_of(max_write));
  }
  auto fit = [&](uint64_t mw) { return plan.budget / (queues * payload_of(mw)); };
  uint64_t n = fit(max_write);
  const uint64_t want = std::min<uint64_t>(2, std::max(1u, o.queue_depth));
  if (!max_write_set) {
    while (n < want && max_write > 8192) {
      max_write = std::max<uint32_t>(8192, max_write / 2);
      n = fit(max_write);
    }
  }
  if (n == 0) {
    const uint64_t min_bytes = queues * payload_of(max_write);
    return absl::InvalidArgumentError(absl::StrCat(
        "option buffer_memory=", FormatSize(plan.budget), ": ", queues,
        " io_uring queue(s) (one per possible CPU) need at least ", FormatSize(min_bytes),
        " for one entry of ", FormatSize(payload_of(max_write)), " each",
        max_write_set ? " (lower -o max_write or raise -o buffer_memory)"
                      : " (raise -o buffer_memory)"));
  }
  plan.max_write = max_write;
  plan.entries = static_cast<unsigned>(std::min<uint64_t>(n, std::max(1u, o.queue_depth)));
  plan.payload = payload_of(max_write);
  const unsigned threads =
      o.threads ? o.threads : std::min(kDefaultUringThreads, std::max(1u, online_cpus));
  plan.threads = std::min(threads, queues);
  return plan;
}

}  // namespace kmfuse
