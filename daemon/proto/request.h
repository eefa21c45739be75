// Decoding a FUSE request from the bytes a transport received.
//
// Two layouts reach the protocol layer:
// - contiguous (/dev/fuse read(), READ_MULTISHOT into a provided buffer):
//   fuse_in_header, then every in-argument back to back;
// - split (FUSE-over-io_uring, all its variants): the header in in_out, the
//   first in-argument in op_in, the remaining arguments (names, write data)
//   in the payload buffer, payload_sz bytes.
// Both decode into one RequestView. Decoding copies the header, checks every
// length against what was received and never reads beyond it; a malformed
// request is reported as a negative errno (EINVAL) without touching a
// filesystem. The view borrows the transport's buffer: it is valid until the
// request is answered.
#ifndef KMFUSE_DAEMON_PROTO_REQUEST_H_
#define KMFUSE_DAEMON_PROTO_REQUEST_H_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"
#include "kmfuse/fuse_abi.h"

namespace kmfuse::proto {

struct RequestView {
  abi::fuse_in_header in{};
  // Contiguous: every argument after the header (the dispatcher splits off
  // the op's fixed struct). Split: the op_in area (128 bytes; only the op's
  // own struct is meaningful).
  absl::Span<const char> head;
  // Split layout only: the payload area (names, write data).
  absl::Span<const char> payload;
  bool split = false;
};

// buf holds `received` bytes read from /dev/fuse. Returns 0 or -EINVAL when
// the header is short, in.len disagrees with what arrived, or the extension
// area does not fit.
int DecodeContiguous(const char* buf, size_t received, RequestView* out);

// FUSE-over-io_uring entry: header area (128 bytes), op_in (128 bytes) and the
// payload with payload_sz valid bytes out of payload_capacity.
int DecodeSplit(const char* in_out, const char* op_in, const char* payload, size_t payload_sz,
                size_t payload_capacity, RequestView* out);

// Reads only the header (for routing FORGET/INTERRUPT); -EINVAL if short.
int PeekHeader(const char* buf, size_t received, abi::fuse_in_header* out);

}  // namespace kmfuse::proto

#endif  // KMFUSE_DAEMON_PROTO_REQUEST_H_
