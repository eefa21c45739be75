// The one fuse_out_header encoder. Every answer the daemon sends starts with
// one: replies written to /dev/fuse (read, ring-read), replies committed on a
// FUSE-over-io_uring entry (the header goes in the entry's in_out area), the
// INIT handshake, and notifications (unique 0, the notify code in `error`).
// len counts the header and the arguments that follow it.
#ifndef KMFUSE_DAEMON_PROTO_REPLY_HEADER_H_
#define KMFUSE_DAEMON_PROTO_REPLY_HEADER_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kmfuse/fuse_abi.h"

namespace kmfuse::proto {

// error: 0 or a negative errno (in (-4096, 0]); args_len bytes follow.
inline abi::fuse_out_header ReplyHeader(uint64_t unique, int32_t error, size_t args_len) {
  abi::fuse_out_header out{};
  out.len = static_cast<uint32_t>(sizeof(out) + args_len);
  out.error = error;
  out.unique = unique;
  return out;
}

// The same header written at dst (a transport's buffer, any alignment).
inline void WriteReplyHeader(void* dst, uint64_t unique, int32_t error, size_t args_len) {
  const abi::fuse_out_header out = ReplyHeader(unique, error, args_len);
  std::memcpy(dst, &out, sizeof(out));
}

// A notification (FUSE_NOTIFY_*) whose arguments are iov[0..cnt).
inline abi::fuse_out_header NotifyHeader(int32_t code, const struct iovec* iov, int cnt) {
  size_t len = 0;
  for (int i = 0; i < cnt; i++) len += iov[i].iov_len;
  return ReplyHeader(0, code, len);
}

}  // namespace kmfuse::proto

#endif  // KMFUSE_DAEMON_PROTO_REPLY_HEADER_H_
