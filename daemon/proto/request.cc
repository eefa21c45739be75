#include "daemon/proto/request.h"

#include <errno.h>

#include <cstring>

namespace kmfuse::proto {

int PeekHeader(const char* buf, size_t received, abi::fuse_in_header* out) {
  if (received < sizeof(abi::fuse_in_header)) return -EINVAL;
  std::memcpy(out, buf, sizeof(*out));
  return 0;
}

int Decode(const RequestBytes& b, RequestView* out) {
  *out = RequestView{};
  if (b.layout == Layout::kContiguous) {
    if (PeekHeader(b.buf, b.received, &out->in) != 0) return -EINVAL;
  } else {
    std::memcpy(&out->in, b.buf, sizeof(out->in));
  }
  out->has_header = true;
  const OpInfo* op = FindOp(out->in.opcode);
  const size_t arg_size = op != nullptr ? op->arg_size : 0;
  // Extensions (security context, supplementary groups) trail the args; we
  // do not negotiate them, so they are excluded from the argument bytes.
  const size_t ext = size_t{out->in.total_extlen} * 8;
  // `args` holds the op struct and, unless split, everything after it.
  absl::Span<const char> args;
  bool split = b.layout == Layout::kSplit;
  if (!split) {
    if (out->in.len != b.received) return -EINVAL;
    size_t body = b.received - sizeof(abi::fuse_in_header);
    if (ext > body) return -EINVAL;
    args = absl::Span<const char>(b.buf + sizeof(abi::fuse_in_header), body - ext);
  } else {
    if (b.payload_sz > b.payload_capacity || ext > b.payload_sz) return -EINVAL;
    absl::Span<const char> payload(b.payload, b.payload_sz - ext);
    if (out->in.opcode == abi::FUSE_NOTIFY_REPLY) {
      // Its first argument is empty: the op struct opens the payload.
      args = payload;
      split = false;
    } else {
      args = absl::Span<const char>(b.op_in, abi::FUSE_URING_OP_IN_OUT_SZ);
      out->rest = payload;
    }
  }
  if (arg_size > args.size()) return -EINVAL;
  out->op = args.first(arg_size);
  // Split: whatever op_in holds past the op struct is not an argument.
  if (!split) out->rest = args.subspan(arg_size);
  return 0;
}

}  // namespace kmfuse::proto
