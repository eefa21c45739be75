#include "daemon/proto/request.h"

#include <errno.h>

#include <cstring>

namespace kmfuse::proto {

int PeekHeader(const char* buf, size_t received, abi::fuse_in_header* out) {
  if (received < sizeof(abi::fuse_in_header)) return -EINVAL;
  std::memcpy(out, buf, sizeof(*out));
  return 0;
}

int DecodeContiguous(const char* buf, size_t received, RequestView* out) {
  int rc = PeekHeader(buf, received, &out->in);
  if (rc != 0) return rc;
  if (out->in.len != received) return -EINVAL;
  size_t ext = size_t{out->in.total_extlen} * 8;
  size_t body = received - sizeof(abi::fuse_in_header);
  if (ext > body) return -EINVAL;
  // Extensions (security context, supplementary groups) trail the args; we do
  // not negotiate them, so they are excluded from the argument bytes.
  out->head = absl::Span<const char>(buf + sizeof(abi::fuse_in_header), body - ext);
  out->payload = {};
  out->split = false;
  return 0;
}

int DecodeSplit(const char* in_out, const char* op_in, const char* payload, size_t payload_sz,
                size_t payload_capacity, RequestView* out) {
  std::memcpy(&out->in, in_out, sizeof(out->in));
  if (payload_sz > payload_capacity) return -EINVAL;
  size_t ext = size_t{out->in.total_extlen} * 8;
  if (ext > payload_sz) return -EINVAL;
  out->head = absl::Span<const char>(op_in, abi::FUSE_URING_OP_IN_OUT_SZ);
  out->payload = absl::Span<const char>(payload, payload_sz - ext);
  out->split = true;
  return 0;
}

}  // namespace kmfuse::proto
