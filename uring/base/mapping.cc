#include "uring/base/mapping.h"

#include <sys/mman.h>

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kmfuse {

absl::StatusOr<Mapping> Mapping::Map(size_t len, int prot, int flags, int fd, off_t offset,
                                     absl::string_view what) {
  if (len == 0) return absl::InvalidArgumentError(absl::StrCat(what, ": mmap of 0 bytes"));
  void* addr = mmap(nullptr, len, prot, flags, fd, offset);
  if (addr == MAP_FAILED) {
    return absl::ErrnoToStatus(errno, absl::StrCat(what, ": mmap of ", len, " bytes"));
  }
  return Mapping(addr, len);
}

absl::StatusOr<Mapping> Mapping::Anonymous(size_t len, absl::string_view what, int extra_flags) {
  return Map(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0, what);
}

void Mapping::reset() noexcept {
  // munmap fails only for arguments this class never builds (an unaligned
  // address or a zero length), so there is nothing to report.
  if (addr_ != nullptr) munmap(addr_, len_);
  addr_ = nullptr;
  len_ = 0;
}

}  // namespace kmfuse
