#include "uring/errors.h"

#include <string.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace kmfuse::uring::internal {

std::string ErrnoName(int err) {
  if (err < 0) err = -err;
  // strerrorname_np is glibc 2.32+ (Debian 12 ships 2.36); it returns null
  // for numbers it does not know.
  const char* name = strerrorname_np(err);
  if (name == nullptr) return absl::StrCat("errno ", err);
  return name;
}

absl::Status ErrnoStatus(int err, absl::string_view what) {
  if (err < 0) err = -err;
  char buf[128];
  const char* text = strerror_r(err, buf, sizeof(buf));  // GNU variant
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat(what, ": ", ErrnoName(err), " (", text, ")"));
}

}  // namespace kmfuse::uring::internal
