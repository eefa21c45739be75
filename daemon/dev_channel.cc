#include "daemon/dev_channel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "daemon/proto/reply_header.h"
#include "fs/plan_executor.h"

namespace kmfuse {

int WriteToDev(int fd, const void* buf, size_t len) {
  for (;;) {
    ssize_t n = write(fd, buf, len);
    if (n >= 0) return 0;
    if (errno == EINTR) continue;
    return errno == ENOENT ? 0 : -errno;
  }
}

int WritevToDev(int fd, const struct iovec* iov, int cnt) {
  for (;;) {
    ssize_t n = writev(fd, iov, cnt);
    if (n >= 0) return 0;
    if (errno == EINTR) continue;
    return errno == ENOENT ? 0 : -errno;
  }
}

int CloneDevFd(int master_fd, bool nonblocking) {
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0));
  if (fd < 0) return -errno;
  uint32_t master = static_cast<uint32_t>(master_fd);
  if (ioctl(fd, abi::FUSE_DEV_IOC_CLONE, &master) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

void DevSlotSink::Commit(Answer answer) {
  answer = AnswerInMemory(std::move(answer), ArgArea());
  const int32_t error = answer.error;
  const size_t args_len = answer.args_len;
  char* hdr = slot_ + kReplyHeaderOffset;
  proto::WriteReplyHeader(hdr, unique_, error, args_len);
  int rc = WriteToDev(fd_, hdr, sizeof(abi::fuse_out_header) + args_len);
  if (rc != 0 && rc != -ENODEV && rc != -ECONNABORTED) {
    fprintf(stderr, "kmfused: reply to request %llu rejected by the kernel: %s\n",
            static_cast<unsigned long long>(unique_), strerror(-rc));
  }
  Recycle();
}

}  // namespace kmfuse
