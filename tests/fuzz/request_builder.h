// Builds fuzz inputs (the format of harness.h) and single requests, for the
// corpus generator and the replay test. Header-only, test code.
#ifndef KMFUSE_TESTS_FUZZ_REQUEST_BUILDER_H_
#define KMFUSE_TESTS_FUZZ_REQUEST_BUILDER_H_

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kmfuse/fuse_abi.h"
#include "tests/fuzz/harness.h"

namespace kmfuse::fuzz {

template <typename T>
std::string Bytes(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(v));
}

// Each name followed by its NUL.
inline std::string Names(std::initializer_list<std::string_view> names) {
  std::string s;
  for (std::string_view n : names) {
    s.append(n);
    s.push_back('\0');
  }
  return s;
}

// One request: header fields, the op's fixed struct and what follows it.
struct Req {
  uint32_t opcode = 0;
  uint64_t nodeid = abi::FUSE_ROOT_ID;
  std::string op;    // the fixed struct (op_in on io_uring)
  std::string rest;  // names, data (the payload on io_uring)
  uint64_t unique = 0;  // 0: numbered by Input()
  uint16_t total_extlen = 0;
  // Overrides: the header's len (contiguous) / the entry's payload_sz (split).
  std::optional<uint32_t> len;
  std::optional<uint32_t> payload_sz;
};

inline abi::fuse_in_header Header(const Req& r, uint32_t len, uint64_t unique) {
  abi::fuse_in_header in{};
  in.len = len;
  in.opcode = r.opcode;
  in.unique = r.unique != 0 ? r.unique : unique;
  in.nodeid = r.nodeid;
  in.pid = 1;
  in.total_extlen = r.total_extlen;
  return in;
}

// The bytes read() returns for r from /dev/fuse.
inline std::string ContiguousBytes(const Req& r, uint64_t unique = 1) {
  const size_t total = sizeof(abi::fuse_in_header) + r.op.size() + r.rest.size();
  return Bytes(Header(r, r.len.value_or(static_cast<uint32_t>(total)), unique)) + r.op + r.rest;
}

inline std::string Le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; i++) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

inline std::string Pad(std::string s, size_t n) {
  s.resize(n, '\0');
  return s;
}

// r's op_in and payload on io-uring: NOTIFY_REPLY's first argument is empty,
// so its op struct opens the payload, as the kernel sends it.
inline std::pair<std::string, std::string> SplitParts(const Req& r) {
  if (r.opcode == abi::FUSE_NOTIFY_REPLY) return {std::string(), r.op + r.rest};
  return {r.op, r.rest};
}

// A whole fuzz input: the layout byte, then one record per request.
inline std::string Input(bool split, const std::vector<Req>& reqs) {
  std::string s(1, split ? static_cast<char>(kLayoutSplit) : '\0');
  uint64_t unique = 1;
  for (const Req& r : reqs) {
    if (!split) {
      std::string b = ContiguousBytes(r, unique);
      s += Le32(static_cast<uint32_t>(b.size())) + b;
    } else {
      const uint32_t total =
          static_cast<uint32_t>(sizeof(abi::fuse_in_header) + r.op.size() + r.rest.size());
      const auto [op_in, payload] = SplitParts(r);
      s += Le32(r.payload_sz.value_or(static_cast<uint32_t>(payload.size())));
      s += Le32(static_cast<uint32_t>(payload.size()));
      s += Pad(Bytes(Header(r, r.len.value_or(total), unique)), kUringAreaSize);
      s += Pad(op_in, kUringAreaSize);
      s += payload;
    }
    unique += 2;
  }
  return s;
}

// Runs r through h in the chosen layout.
inline Outcome RunReq(Harness& h, bool split, const Req& r, uint64_t unique = 1) {
  if (!split) return h.Contiguous(ContiguousBytes(r, unique));
  const uint32_t total =
      static_cast<uint32_t>(sizeof(abi::fuse_in_header) + r.op.size() + r.rest.size());
  const auto [op_in, payload] = SplitParts(r);
  return h.Split(Bytes(Header(r, r.len.value_or(total), unique)), op_in,
                 r.payload_sz.value_or(static_cast<uint32_t>(payload.size())), payload);
}

}  // namespace kmfuse::fuzz

#endif  // KMFUSE_TESTS_FUZZ_REQUEST_BUILDER_H_
