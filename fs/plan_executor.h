// Executing an Answer's fd plan with plain syscalls (private to the tree,
// not installed): the transports that reply from memory (read, ring-read),
// the io_uring queues' synchronous routes and fallbacks, and the in-process
// test sinks all read a READ plan the same way here.
//
// Contract
// - ReadFull: pread until len bytes, EOF or an error; retries EINTR. When
//   the kernel refuses the read with EINVAL (O_DIRECT: memory, offset or
//   length not aligned), reads the covering aligned range through a bounce
//   buffer and copies the part asked for. Returns bytes read or -errno.
// - AnswerInMemory: the kArgs answer a sink whose reply area is ordinary
//   memory sends for `answer`. kArgs passes through; a READ plan is read
//   into `area` now (clamped to it) on the calling thread, its pin released
//   before returning; a WRITE plan is a contract violation for such a sink
//   (Reply::WriteToFd only builds one for a sink whose DataInCallerPages()
//   is true): reported once on stderr and answered EIO.
#ifndef KMFUSE_FS_PLAN_EXECUTOR_H_
#define KMFUSE_FS_PLAN_EXECUTOR_H_

#include <sys/types.h>

#include <cstddef>

#include "absl/types/span.h"
#include "kmfuse/reply.h"

namespace kmfuse {

ssize_t ReadFull(int fd, char* buf, size_t len, off_t offset);

Answer AnswerInMemory(Answer answer, absl::Span<char> area);

}  // namespace kmfuse

#endif  // KMFUSE_FS_PLAN_EXECUTOR_H_
