// UniqueFd: the one owner of a file descriptor.
//
// Contract:
//   - Move-only; moves are noexcept and leave the source empty (-1).
//   - The destructor and reset() close the owned fd once. close(2) is never
//     retried on EINTR: Linux has released the descriptor by then, and a
//     retry could close a number another thread was just handed. Its result
//     is ignored; a caller that must see a close error (a written file whose
//     last write-back fails) calls release() and closes it itself.
//   - release() hands the fd to the caller without closing it.
//   - Thread-compatible: one UniqueFd is not shared between threads without
//     external locking; the fd it owns may of course be used by many.
//   - FromSyscall converts an fd-returning call's result once, at the syscall
//     boundary: the fd, or the errno (read right away) as an absl::Status.
#ifndef KMFUSE_BASE_UNIQUE_FD_H_
#define KMFUSE_BASE_UNIQUE_FD_H_

#include <unistd.h>

#include <cerrno>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kmfuse {

class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  // Takes ownership of fd; -1 (or any negative value) is "no fd".
  explicit UniqueFd(int fd) noexcept : fd_(fd < 0 ? -1 : fd) {}
  ~UniqueFd() { reset(); }

  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  // The result of a call that returns an fd or -1 with errno set (open,
  // socket, eventfd, memfd_create, ...): what names the call in the Status.
  // Must be called before anything else can change errno.
  static absl::StatusOr<UniqueFd> FromSyscall(int rc, absl::string_view what) {
    if (rc < 0) return absl::ErrnoToStatus(errno, what);
    return UniqueFd(rc);
  }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }

  // Gives up ownership without closing; the object is left empty.
  [[nodiscard]] int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

  // Closes the owned fd (if any and not fd itself), then owns fd.
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0 && fd_ != fd) ::close(fd_);
    fd_ = fd < 0 ? -1 : fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace kmfuse

#endif  // KMFUSE_BASE_UNIQUE_FD_H_
