#include "uring/buffer_ring.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "uring/errors.h"

namespace kmfuse::uring {
namespace {

// Largest power of two below 65536 (the kernel's bound on ring_entries).
constexpr uint32_t kMaxEntries = 32768;

bool IsPowerOfTwo(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

size_t RoundUpToPage(size_t n) {
  const size_t page = PageSize();
  return (n + page - 1) / page * page;
}

[[noreturn]] void Die(const char* what, unsigned a, unsigned b) {
  std::fprintf(stderr, "kmfuse::uring::BufferRing: %s (%u, %u)\n", what, a, b);
  std::fflush(stderr);
  std::abort();
}

std::string Describe(const BufferRingOptions& o) {
  return absl::StrCat(BackingName(o.backing), " buffer ring (bgid=", o.bgid,
                      ", entries=", o.entries, ", buf_size=", o.buf_size,
                      ", head_room=", o.head_room, ")");
}

absl::Status Validate(const BufferRingOptions& o) {
  if (!IsPowerOfTwo(o.entries) || o.entries > kMaxEntries) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(o), ": entries must be a power of two below 65536"));
  }
  if (o.buf_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat(Describe(o), ": buf_size must be non-zero"));
  }
  if (o.backing == Backing::kKernelManaged) {
    if (o.buf_size % PageSize() != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          Describe(o), ": kernel-managed buf_size must be a multiple of the page size (",
          PageSize(), ")"));
    }
    if (o.head_room != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          Describe(o), ": head_room is for provided rings only (the kernel picks the address)"));
    }
  } else if (o.head_room >= o.buf_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(o), ": head_room must be smaller than buf_size"));
  }
  return absl::OkStatus();
}

}  // namespace

const char* BackingName(Backing backing) {
  return backing == Backing::kKernelManaged ? "kernel-managed" : "provided";
}

absl::StatusOr<std::unique_ptr<BufferRing>> BufferRing::Create(IoRing& ring,
                                                               const BufferRingOptions& options) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  // Construct first so that the destructor releases whatever a failing Init
  // step leaves behind (it only unregisters once registered_ is set).
  std::unique_ptr<BufferRing> br(new BufferRing(ring, options));
  absl::Status s = options.backing == Backing::kProvided ? br->InitProvided()
                                                         : br->InitKernelManaged();
  if (!s.ok()) return s;
  return br;
}

absl::Status BufferRing::InitProvided() {
  const BufferRingOptions& o = options_;
  absl::StatusOr<Mapping> buffers = Mapping::Anonymous(
      RoundUpToPage(static_cast<size_t>(o.entries) * o.buf_size),
      absl::StrCat(Describe(o), ": buffers"));
  if (!buffers.ok()) return buffers.status();
  own_buffers_ = *std::move(buffers);
  base_ = own_buffers_.as<char>();

  // The ring must be page-aligned (the kernel pins whole pages of it); mmap
  // gives that.
  absl::StatusOr<Mapping> ring_map = Mapping::Anonymous(
      RoundUpToPage(static_cast<size_t>(o.entries) * sizeof(io_uring_buf)),
      absl::StrCat(Describe(o), ": ring"));
  if (!ring_map.ok()) return ring_map.status();
  own_ring_ = *std::move(ring_map);
  br_ = own_ring_.as<io_uring_buf_ring>();
  io_uring_buf_ring_init(br_);

  io_uring_buf_reg reg;
  std::memset(&reg, 0, sizeof(reg));
  reg.ring_addr = reinterpret_cast<uintptr_t>(br_);
  reg.ring_entries = o.entries;
  reg.bgid = o.bgid;
  int ret = ring_.RegisterRaw(kRegisterPbufRing, &reg, 1);
  if (ret < 0) {
    return internal::ErrnoStatus(ret, absl::StrCat(Describe(o), ": IORING_REGISTER_PBUF_RING"));
  }
  registered_ = true;

  for (uint32_t bid = 0; bid < o.entries; ++bid) Stage(static_cast<uint16_t>(bid));
  Publish();
  return absl::OkStatus();
}

absl::Status BufferRing::InitKernelManaged() {
  const BufferRingOptions& o = options_;
  KmbufReg reg;
  std::memset(&reg, 0, sizeof(reg));
  reg.buf_size = o.buf_size;
  reg.ring_entries = o.entries;
  reg.bgid = o.bgid;
  reg.flags = kPbufRingMmap | kPbufRingKernelManaged;
  int ret = ring_.RegisterRaw(kRegisterPbufRing, &reg, 1);
  if (ret == -EINVAL) {
    // The arguments were validated above, so EINVAL means the flag itself is
    // unknown: mainline rejects any unknown io_uring_buf_reg flag this way.
    return absl::UnimplementedError(absl::StrCat(
        Describe(o),
        ": the kernel lacks IOU_PBUF_RING_KERNEL_MANAGED (kernel-managed \"kmbuf\" buffer "
        "rings, proposed in 2026 and never merged in mainline): IORING_REGISTER_PBUF_RING "
        "with flags MMAP|KERNEL_MANAGED returned EINVAL"));
  }
  if (ret < 0) {
    return internal::ErrnoStatus(
        ret, absl::StrCat(Describe(o), ": IORING_REGISTER_PBUF_RING (MMAP|KERNEL_MANAGED)"));
  }
  registered_ = true;

  const size_t len = static_cast<size_t>(o.entries) * o.buf_size;
  absl::StatusOr<void*> base = ring_.MapRegion(PbufRingOffset(o.bgid), len);
  if (!base.ok()) {
    return absl::Status(base.status().code(),
                        absl::StrCat(Describe(o), ": mapping the buffers: ", base.status().message()));
  }
  base_ = static_cast<char*>(*base);
  ring_base_len_ = len;
  return absl::OkStatus();
}

BufferRing::~BufferRing() {
  if (registered_) {
    // Errors cannot be reported from here; a caller that needs to know (e.g.
    // -EBUSY on a pinned kernel-managed ring) calls Unregister() first.
    absl::Status ignored = Unregister();
    (void)ignored;
  }
  // Kernel-managed buffers belong to the ring's mapping interface (a fake
  // ring maps them its own way); own_buffers_ and own_ring_ unmap themselves
  // after this, once the kernel no longer knows the ring.
  if (ring_base_len_ != 0) ring_.UnmapRegion(base_, ring_base_len_);
}

char* BufferRing::Slot(uint16_t bid) const {
  if (bid >= options_.entries) Die("bid out of range (bid, entries)", bid, options_.entries);
  return base_ + static_cast<size_t>(bid) * options_.buf_size;
}

char* BufferRing::Data(uint16_t bid) const { return Slot(bid) + options_.head_room; }

void BufferRing::RequireProvided(const char* what) const {
  if (options_.backing != Backing::kProvided) {
    std::fprintf(stderr,
                 "kmfuse::uring::BufferRing::%s on a kernel-managed buffer ring (bgid %u): "
                 "the kernel recycles kernel-managed buffers; userspace must not\n",
                 what, options_.bgid);
    std::fflush(stderr);
    std::abort();
  }
}

void BufferRing::Recycle(uint16_t bid) {
  RequireProvided("Recycle");
  Stage(bid);
  Publish();
}

void BufferRing::Stage(uint16_t bid) {
  RequireProvided("Stage");
  if (bid >= options_.entries) Die("Stage: bid out of range (bid, entries)", bid, options_.entries);
  if (staged_ >= options_.entries) {
    Die("Stage: more buffers staged than the ring holds (staged, entries)", staged_,
        options_.entries);
  }
  io_uring_buf_ring_add(br_, Data(bid), data_len(), bid,
                        io_uring_buf_ring_mask(options_.entries), static_cast<int>(staged_));
  ++staged_;
}

void BufferRing::Publish() {
  RequireProvided("Publish");
  if (staged_ == 0) return;
  // Release store of the tail: the entries written by Stage become visible
  // to the kernel no earlier than the tail.
  io_uring_buf_ring_advance(br_, static_cast<int>(staged_));
  staged_ = 0;
}

absl::Status BufferRing::Unregister() {
  if (!registered_) return absl::OkStatus();
  io_uring_buf_reg reg;
  std::memset(&reg, 0, sizeof(reg));
  reg.bgid = options_.bgid;
  int ret = ring_.RegisterRaw(kUnregisterPbufRing, &reg, 1);
  if (ret == -EBUSY) {
    return absl::FailedPreconditionError(absl::StrCat(
        Describe(options_),
        ": IORING_UNREGISTER_PBUF_RING returned EBUSY: the ring is pinned by a kernel "
        "consumer (e.g. a FUSE queue); release that first"));
  }
  if (ret < 0) {
    return internal::ErrnoStatus(ret,
                                 absl::StrCat(Describe(options_), ": IORING_UNREGISTER_PBUF_RING"));
  }
  registered_ = false;
  return absl::OkStatus();
}

}  // namespace kmfuse::uring
