// Decoding a FUSE request from the bytes a transport received.
//
// Two layouts reach the protocol layer:
// - contiguous (/dev/fuse read(), READ_MULTISHOT into a provided buffer):
//   fuse_in_header, then every in-argument back to back;
// - split (FUSE-over-io_uring, all its variants): the header in in_out, the
//   first in-argument in op_in, the remaining arguments (names, write data)
//   in the payload buffer, payload_sz bytes. NOTIFY_REPLY is the exception:
//   its first argument is empty, so fuse_notify_retrieve_in opens the
//   payload, followed by the data.
// Both decode into one RequestView {header, op struct, rest}: the op struct
// is exactly the opcode's fixed struct as the opcode table sizes it
// (FindOp), whatever the layout. Decoding copies the header, checks every
// length against what was received and never reads beyond it; a malformed
// request is reported as -EINVAL without touching a filesystem. The view
// borrows the transport's buffer: it is valid until the request is answered.
#ifndef KMFUSE_DAEMON_PROTO_REQUEST_H_
#define KMFUSE_DAEMON_PROTO_REQUEST_H_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"
#include "kmfuse/fuse_abi.h"

namespace kmfuse::proto {

// What the opcode table (dispatch.cc) knows of an opcode besides its handler.
struct OpInfo {
  const char* name = nullptr;
  // Bytes of the op's fixed struct: exactly what RequestView::op holds.
  uint32_t arg_size = 0;
  // FORGET, BATCH_FORGET, INTERRUPT, NOTIFY_REPLY: always dropped (never
  // answered), even when malformed.
  bool dropped = false;
};

// The opcode table's row, or nullptr for an opcode we do not know.
const OpInfo* FindOp(uint32_t opcode);

enum class Layout : uint8_t { kContiguous, kSplit };

// The bytes of one request as a transport received them.
struct RequestBytes {
  // buf holds `received` bytes read from /dev/fuse.
  static RequestBytes Contiguous(const char* buf, size_t received) {
    RequestBytes b;
    b.layout = Layout::kContiguous;
    b.buf = buf;
    b.received = received;
    return b;
  }
  // A FUSE-over-io_uring entry: header area and op_in area
  // (FUSE_URING_IN_OUT_HEADER_SZ / FUSE_URING_OP_IN_OUT_SZ bytes), and the
  // payload buffer of payload_capacity bytes of which the kernel says
  // payload_sz are valid (untrusted).
  static RequestBytes Split(const char* in_out, const char* op_in, const char* payload,
                            size_t payload_sz, size_t payload_capacity) {
    RequestBytes b;
    b.layout = Layout::kSplit;
    b.buf = in_out;
    b.op_in = op_in;
    b.payload = payload;
    b.payload_sz = payload_sz;
    b.payload_capacity = payload_capacity;
    return b;
  }

  Layout layout = Layout::kContiguous;
  const char* buf = nullptr;  // contiguous: the request; split: in_out
  size_t received = 0;
  const char* op_in = nullptr;
  const char* payload = nullptr;
  size_t payload_sz = 0;
  size_t payload_capacity = 0;
};

struct RequestView {
  abi::fuse_in_header in{};
  // Whether `in` holds the request's header: false only when fewer bytes
  // than a header arrived (such a request cannot be answered).
  bool has_header = false;
  // The op's fixed struct, exactly FindOp(opcode)->arg_size bytes (empty for
  // an unknown opcode).
  absl::Span<const char> op;
  // The arguments after it (names, write data), extensions excluded.
  absl::Span<const char> rest;
};

// Returns 0, or -EINVAL when the header is short, in.len disagrees with what
// arrived, payload_sz exceeds its buffer, the extension area does not fit,
// or the op's fixed struct is incomplete. On -EINVAL, out->has_header says
// whether out->in can be answered.
int Decode(const RequestBytes& bytes, RequestView* out);

// Reads only the header; -EINVAL if short.
int PeekHeader(const char* buf, size_t received, abi::fuse_in_header* out);

}  // namespace kmfuse::proto

#endif  // KMFUSE_DAEMON_PROTO_REQUEST_H_
