// Internal helpers: errno -> names and absl::Status, converted once at the
// syscall boundary. Not part of the public API of //uring.
#ifndef KMFUSE_URING_ERRORS_H_
#define KMFUSE_URING_ERRORS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace kmfuse::uring::internal {

// "EINVAL" for 22 (sign ignored); "errno 4242" when the name is unknown.
std::string ErrnoName(int err);

// A Status whose code follows the errno (absl::ErrnoToStatusCode) and whose
// message is "<what>: <ERRNAME> (<strerror>)". err may be negative.
absl::Status ErrnoStatus(int err, absl::string_view what);

}  // namespace kmfuse::uring::internal

#endif  // KMFUSE_URING_ERRORS_H_
