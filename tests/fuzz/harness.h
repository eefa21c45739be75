// Fuzz harness for the request decoder and the dispatcher, fed through
// Dispatcher::Deliver as every transport feeds it.
//
// One input is one connection's worth of requests, in the shape the
// transports hand them to the protocol layer, answered by a fresh MemFs:
//
//   byte 0      layout: bit 0 clear = contiguous (/dev/fuse read(), ring-read
//               READ_MULTISHOT), set = split (FUSE-over-io_uring)
//   then up to kMaxRequests records, until the input ends:
//     contiguous  u32 received (little endian), then that many bytes as
//                 read() returned them (clamped to what is left and to the
//                 slot); the decoder must agree with fuse_in_header.len
//     split       u32 payload_sz (the ring entry's field, untrusted), u32 n,
//                 128 bytes in_out, 128 bytes op_in (zero-padded at the end
//                 of the input), then n payload bytes (clamped)
//
// Buffers are laid out as the transports lay them out (dev_channel.h's slot:
// request at kSlotRequestOffset, reply arguments in place at kSlotArgOffset;
// io_uring: header area + payload area that also takes the reply) and, in
// ASan builds, every byte the request does not cover is poisoned until the
// filesystem asks for the reply area, and the whole buffer is poisoned once
// the request is answered, so over-reads and use-after-reply are reported.
//
// Invariants checked on every request (abort() on violation):
// - a decode failure is exactly -EINVAL and Deliver returns what Decode
//   returns; PeekHeader agrees with the decoder; the decoded spans (op
//   struct, rest) lie inside what was received;
// - a request that does not decode is counted malformed exactly once and
//   answered EINVAL, or dropped for a no-reply opcode or a missing header;
//   the sink is told the header (Begin) exactly when one arrived;
// - exactly one Commit or Drop per request, before Deliver returns (MemFs
//   answers synchronously), and no Reply is destroyed unanswered;
// - committed errors are in (-4096, 0]; args_len <= ArgArea().size() and 0
//   with an error;
// - FORGET, BATCH_FORGET, INTERRUPT and NOTIFY_REPLY never Commit; every
//   other opcode never Drops (MemFs does not answer interrupts early);
// - unknown opcodes are answered ENOSYS;
// - READ / READDIR(PLUS) / GETXATTR / LISTXATTR replies never exceed the size
//   the request asked for.
#ifndef KMFUSE_TESTS_FUZZ_HARNESS_H_
#define KMFUSE_TESTS_FUZZ_HARNESS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kmfuse::fuzz {

// The contiguous transports' slot (daemon/dev_channel.h, max_write 128 KiB).
inline constexpr size_t kSlotArgOffset = 4096;
inline constexpr size_t kSlotRequestOffset = kSlotArgOffset - 40 - 40;
inline constexpr size_t kMaxWrite = 128 * 1024;
inline constexpr size_t kSlotSize = kSlotArgOffset + kMaxWrite + 4096;
inline constexpr size_t kMaxReceived = kSlotSize - kSlotRequestOffset;
// The io_uring entry's payload buffer (UringMinPayload for max_write 128 KiB).
inline constexpr size_t kPayloadCapacity = kMaxWrite;
inline constexpr size_t kUringAreaSize = 128;

inline constexpr size_t kMaxRequests = 64;
inline constexpr uint8_t kLayoutSplit = 1;

// How one request was answered.
struct Outcome {
  int decode = 0;        // Decode's (and Deliver's) result; not dispatched if != 0
  bool dropped = false;  // Drop() (no reply)
  int error = 0;         // positive errno of the Commit, 0 for success
  std::string args;      // committed reply argument bytes
};

// A fresh MemFs behind one Dispatcher, fed one request at a time.
class Harness {
 public:
  Harness();
  ~Harness();
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  // `received` as read() returned it from /dev/fuse (at most kMaxReceived).
  Outcome Contiguous(std::string_view received);
  // One io_uring entry: in_out and op_in are zero-padded to 128 bytes; the
  // payload bytes are placed at the start of the payload buffer and the
  // entry claims payload_sz of them.
  Outcome Split(std::string_view in_out, std::string_view op_in, uint32_t payload_sz,
                std::string_view payload);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Runs one input (format above) through a fresh Harness and returns how each
// of its requests was answered, in order; aborts on a broken invariant.
std::vector<Outcome> RunInput(const uint8_t* data, size_t size);

}  // namespace kmfuse::fuzz

// libFuzzer's entry point: RunInput, then 0 (libFuzzer's contract; a broken
// invariant aborts instead).
int KmfuseFuzzOne(const uint8_t* data, size_t size);

#endif  // KMFUSE_TESTS_FUZZ_HARNESS_H_
