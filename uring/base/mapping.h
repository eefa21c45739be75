// Mapping: the one owner of an mmap(2) region.
//
// Contract:
//   - Created only by the factories below, which do the mmap and return the
//     errno as an absl::Status on failure (MAP_FAILED never escapes), or by
//     Adopt for a region something else mapped and this object must unmap.
//   - Move-only; moves are noexcept and leave the source empty. The
//     destructor and reset() munmap the whole region once, with the length it
//     was mapped with.
//   - The memory stays valid while the Mapping lives. Whoever else holds a
//     pointer into it (a kernel ring that was told its address, an SQE in
//     flight) must be gone first: declare the Mapping before the things that
//     point into it, so it is destroyed after them.
//   - Thread-compatible: the bytes may be shared by many threads; the
//     Mapping object itself is not modified concurrently.
#ifndef KMFUSE_BASE_MAPPING_H_
#define KMFUSE_BASE_MAPPING_H_

#include <sys/types.h>

#include <cstddef>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kmfuse {

class Mapping {
 public:
  Mapping() noexcept = default;
  ~Mapping() { reset(); }

  Mapping(Mapping&& other) noexcept
      : addr_(std::exchange(other.addr_, nullptr)), len_(std::exchange(other.len_, 0)) {}
  Mapping& operator=(Mapping&& other) noexcept {
    if (this != &other) {
      reset();
      addr_ = std::exchange(other.addr_, nullptr);
      len_ = std::exchange(other.len_, 0);
    }
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  // mmap(NULL, len, prot, flags, fd, offset). len 0 is InvalidArgument (the
  // kernel says EINVAL too, but naming it here is clearer); a failed mmap is
  // the errno's Status with what (e.g. "queue 3: entry headers") in front.
  static absl::StatusOr<Mapping> Map(size_t len, int prot, int flags, int fd, off_t offset,
                                     absl::string_view what);

  // Private anonymous read/write memory, zero-filled by the kernel.
  // extra_flags is OR-ed into MAP_PRIVATE | MAP_ANONYMOUS (e.g. MAP_POPULATE,
  // MAP_NORESERVE).
  static absl::StatusOr<Mapping> Anonymous(size_t len, absl::string_view what,
                                           int extra_flags = 0);

  // Takes ownership of a region mapped elsewhere (addr from a successful
  // mmap of exactly len bytes). nullptr/0 gives an empty Mapping.
  static Mapping Adopt(void* addr, size_t len) noexcept { return Mapping(addr, len); }

  void* data() const noexcept { return addr_; }
  template <typename T>
  T* as() const noexcept {
    return static_cast<T*>(addr_);
  }
  size_t size() const noexcept { return len_; }
  bool valid() const noexcept { return addr_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }

  // Unmaps the region (if any); the object is left empty.
  void reset() noexcept;

 private:
  Mapping(void* addr, size_t len) noexcept : addr_(addr), len_(addr == nullptr ? 0 : len) {}

  void* addr_ = nullptr;
  size_t len_ = 0;
};

}  // namespace kmfuse

#endif  // KMFUSE_BASE_MAPPING_H_
