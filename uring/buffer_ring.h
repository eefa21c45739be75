// BufferRing: one buffer group (bgid) of equal-sized buffers that the kernel
// selects from (IOSQE_BUFFER_SELECT, multishot reads, uring_cmd with buffer
// selection). One abstraction, two backings:
//
//   kProvided       mainline "provided buffer ring" (IORING_REGISTER_PBUF_RING,
//                   5.19+). We allocate the ring and the buffers; userspace
//                   gives buffers back with Recycle / Stage+Publish.
//   kKernelManaged  the kmbuf series (IOU_PBUF_RING_KERNEL_MANAGED): the
//                   kernel allocates ring and buffers and recycles them
//                   itself; we only mmap the buffers. Never merged in
//                   mainline: Create reports kUnimplemented on every released
//                   kernel. It exists so the same code can run against a
//                   model (a fake IoRing) of that kernel side.
//
// Memory layout (both backings): buffer `bid` occupies
//   [Slot(bid), Slot(bid) + buf_size), Slot(bid) = base + bid * buf_size,
// and the kernel writes at Data(bid) = Slot(bid) + head_room, at most
// buf_size - head_room bytes. head_room (provided backing only) reserves
// bytes in front of every buffer for the caller, e.g. to build a reply
// header in front of received data without copying.
//
// Buffer lifetime (provided backing):
//   - Initially every buffer is owned by the kernel.
//   - A completion with HasBuffer(flags) transfers buffer
//     BidFromCqeFlags(flags) to the caller: the kernel will not touch it, and
//     the caller may read/write the whole slot, head room included.
//   - Recycle(bid) (or Stage(bid) then Publish()) transfers it back; from that
//     call on the caller must not read or write it. Recycling a buffer the
//     caller does not own corrupts the ring (the kernel may hand the same bid
//     out twice); BufferRing cannot detect that, since it never sees CQEs.
// Buffer lifetime (kernel-managed backing): the kernel consumer decides (for
// the kmbuf FUSE design: the buffer belongs to the queue entry from its
// completion until the entry's commit). The caller never recycles.
//
// Ownership: BufferRing owns its mappings and its registration and releases
// both in the destructor. It holds a reference to the IoRing, which must
// outlive it. Every request that may select from this group must have
// completed (or been cancelled) before Unregister/destruction: a read that
// already picked a provided buffer would otherwise write into unmapped (or
// re-used) address space.
//
// Threading: Slot/Data/accessors are const and safe from any thread.
// Recycle/Stage/Publish/Unregister are not thread-safe: the caller serialises
// producers (normally the single thread that reaps the ring).
#ifndef KMFUSE_URING_BUFFER_RING_H_
#define KMFUSE_URING_BUFFER_RING_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include <liburing.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "uring/base/mapping.h"
#include "uring/io_ring.h"
#include "uring/uapi.h"

namespace kmfuse::uring {

// kKernelManaged is MODEL ONLY (see above): real kernels refuse it.
enum class Backing { kProvided, kKernelManaged };

// "provided" / "kernel-managed".
const char* BackingName(Backing backing);

struct BufferRingOptions {
  Backing backing = Backing::kProvided;
  uint16_t bgid = 0;
  uint32_t entries = 8;    // power of two, < 65536
  uint32_t buf_size = 0;   // bytes per slot (kernel-managed: page-aligned)
  uint32_t head_room = 0;  // provided only: the kernel is given slot+head_room,
                           // len buf_size-head_room
};

class BufferRing {
 public:
  // Validates options (InvalidArgument, before any syscall), then registers
  // the group with `ring`:
  //   provided: anonymous page-aligned mappings for the buffers and the ring,
  //     IORING_REGISTER_PBUF_RING, all buffers added and published.
  //     A taken bgid gives AlreadyExists (EEXIST).
  //   kernel-managed: IORING_REGISTER_PBUF_RING with KmbufReg and
  //     flags MMAP|KERNEL_MANAGED, then one mmap of all buffers at
  //     PbufRingOffset(bgid). -EINVAL from the kernel gives Unimplemented
  //     saying the kernel lacks IOU_PBUF_RING_KERNEL_MANAGED.
  // Never crashes; on failure nothing stays registered or mapped.
  static absl::StatusOr<std::unique_ptr<BufferRing>> Create(IoRing& ring,
                                                            const BufferRingOptions& options);

  ~BufferRing();  // unregisters + unmaps/frees; never throws
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  // base + bid * buf_size (same mapping rule for both backings). bid must be
  // < entries() (checked: aborts with a message).
  char* Slot(uint16_t bid) const;
  // Slot(bid) + head_room: where the kernel wrote.
  char* Data(uint16_t bid) const;

  uint32_t buf_size() const { return options_.buf_size; }
  uint32_t entries() const { return options_.entries; }
  uint16_t bgid() const { return options_.bgid; }
  Backing backing() const { return options_.backing; }
  uint32_t head_room() const { return options_.head_room; }
  // Bytes the kernel may write per buffer: buf_size - head_room.
  uint32_t data_len() const { return options_.buf_size - options_.head_room; }
  // Buffers staged but not yet published.
  uint32_t staged() const { return staged_; }
  bool registered() const { return registered_; }

  // Provided backing only (kernel-managed: the kernel recycles; calling these
  // is a programming error -> abort with message). Not thread-safe.
  //
  // Recycle(bid) == Stage(bid) + Publish(): it also publishes buffers staged
  // earlier. Staging more than entries() buffers without publishing aborts.
  void Recycle(uint16_t bid);  // add + advance
  void Stage(uint16_t bid);    // add without publishing
  void Publish();              // advance by all staged (release store of tail)

  // Explicit unregister (the destructor then only unmaps). The mappings stay
  // valid until destruction, so buffers the caller owns stay readable.
  // Idempotent. -EBUSY (a kernel consumer pinned a kernel-managed ring) ->
  // FailedPrecondition naming "pinned"; the ring stays registered.
  absl::Status Unregister();

  static uint16_t BidFromCqeFlags(uint32_t flags) {
    return static_cast<uint16_t>(flags >> kCqeBufferShift);
  }
  static bool HasBuffer(uint32_t flags) { return (flags & kCqeFBuffer) != 0; }

 private:
  BufferRing(IoRing& ring, const BufferRingOptions& options) : ring_(ring), options_(options) {}

  absl::Status InitProvided();
  absl::Status InitKernelManaged();
  void RequireProvided(const char* what) const;

  IoRing& ring_;
  const BufferRingOptions options_;
  // Provided rings: the buffers and the ring, mapped by this object.
  Mapping own_buffers_;
  Mapping own_ring_;
  char* base_ = nullptr;             // buffers: entries * buf_size bytes
  size_t ring_base_len_ = 0;         // kernel-managed: base_ came from ring_.MapRegion
  io_uring_buf_ring* br_ = nullptr;  // provided only: own_ring_'s memory
  uint32_t staged_ = 0;
  bool registered_ = false;
};

}  // namespace kmfuse::uring

#endif  // KMFUSE_URING_BUFFER_RING_H_
