#include "tests/testing/file_io.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace kmfuse::itest {
namespace {

::testing::AssertionResult Write(const std::string& path, const std::string& data, int flags,
                                 bool fsync_it) {
  int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return ::testing::AssertionFailure() << "open " << path << ": " << strerror(errno);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(fd);
      return ::testing::AssertionFailure() << "write " << path << " at " << done << ": "
                                           << strerror(err);
    }
    done += static_cast<size_t>(n);
  }
  if (fsync_it && fsync(fd) != 0) {
    int err = errno;
    close(fd);
    return ::testing::AssertionFailure() << "fsync " << path << ": " << strerror(err);
  }
  if (close(fd) != 0) {
    return ::testing::AssertionFailure() << "close " << path << ": " << strerror(errno);
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

::testing::AssertionResult WriteFile(const std::string& path, const std::string& data,
                                     int flags) {
  return Write(path, data, flags, false);
}

::testing::AssertionResult WriteFileSynced(const std::string& path, const std::string& data) {
  return Write(path, data, kCreateTruncate, true);
}

std::string ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::StrCat("<error: open ", path, ": ", strerror(errno), ">");
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      out = absl::StrCat("<error: read ", path, ": ", strerror(errno), ">");
      break;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

}  // namespace kmfuse::itest
