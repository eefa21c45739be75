#include "fs/plan_executor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>

namespace kmfuse {

ssize_t ReadFull(int fd, char* buf, size_t len, off_t offset) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, buf + done, len - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL) {
      // O_DIRECT wants aligned memory, offset and length: read the covering
      // aligned range into a bounce buffer and copy the part asked for.
      const size_t kAlign = 4096;
      off_t want = offset + static_cast<off_t>(done);
      off_t start = want & ~static_cast<off_t>(kAlign - 1);
      size_t head = static_cast<size_t>(want - start);
      size_t span = (head + (len - done) + kAlign - 1) & ~(kAlign - 1);
      void* bounce = nullptr;
      if (posix_memalign(&bounce, kAlign, span) != 0) return -ENOMEM;
      ssize_t m;
      do {
        m = pread(fd, bounce, span, start);
      } while (m < 0 && errno == EINTR);
      if (m < 0) {
        int err = errno;
        free(bounce);
        return -err;
      }
      size_t got = static_cast<size_t>(m) > head ? static_cast<size_t>(m) - head : 0;
      got = std::min(got, len - done);
      std::memcpy(buf + done, static_cast<char*>(bounce) + head, got);
      free(bounce);
      return static_cast<ssize_t>(done + got);
    }
    if (n < 0) return -errno;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

Answer AnswerInMemory(Answer answer, absl::Span<char> area) {
  switch (answer.kind) {
    case Answer::Kind::kArgs:
      return answer;
    case Answer::Kind::kReadFromFd: {
      FdPlan plan = std::move(answer.plan);
      const size_t len = std::min(plan.len, area.size());
      ssize_t n = ReadFull(plan.fd, area.data(), len, static_cast<off_t>(plan.offset));
      if (n < 0) return Answer::Args(static_cast<int32_t>(n), 0);
      return Answer::Args(0, static_cast<size_t>(n));
    }
    case Answer::Kind::kWriteToFd:
      break;
  }
  static std::atomic<bool> said{false};
  if (!said.exchange(true)) {
    fprintf(stderr,
            "kmfuse: BUG: a WRITE plan was committed to a sink whose request data is in "
            "memory (Reply::WriteToFd builds one only for data in the caller's pages); "
            "answering EIO\n");
  }
  return Answer::Args(-EIO, 0);
}

}  // namespace kmfuse
