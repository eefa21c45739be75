#include "tests/fuzz/harness.h"

#include <errno.h>
#include <sanitizer/asan_interface.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "daemon/proto/dispatch.h"
#include "daemon/proto/request.h"
#include "kmfuse/fuse_abi.h"
#include "kmfuse/memfs.h"
#include "kmfuse/reply.h"

namespace kmfuse::fuzz {
namespace {

using namespace kmfuse::abi;  // NOLINT

[[noreturn]] void Violation(const char* what, uint32_t opcode) {
  fprintf(stderr, "kmfuse fuzz: invariant broken: %s (opcode %u %s)\n", what, opcode,
          proto::OpcodeName(opcode));
  abort();
}

void Poison(const char* p, size_t n) {
  (void)p;
  (void)n;
  if (n != 0) ASAN_POISON_MEMORY_REGION(p, n);
}
void Unpoison(const char* p, size_t n) {
  (void)p;
  (void)n;
  if (n != 0) ASAN_UNPOISON_MEMORY_REGION(p, n);
}

bool NoReply(uint32_t opcode) {
  return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT ||
         opcode == FUSE_NOTIFY_REPLY;
}

char* AllocPage(size_t n) {
  void* p = aligned_alloc(4096, (n + 4095) & ~size_t{4095});
  if (p == nullptr) abort();
  return static_cast<char*>(p);
}

// A CaptureSink that checks the ReplySink contract as it is used.
class CheckingSink final : public ReplySink {
 public:
  // A new request whose reply area is [area, area + size); `whole` is the
  // transport buffer the request lives in, poisoned after the answer.
  void Arm(char* area, size_t size, const char* whole, size_t whole_size,
           const char* whole2 = nullptr, size_t whole2_size = 0) {
    begun_ = false;
    opcode_ = 0;
    area_ = area;
    size_ = size;
    whole_ = whole;
    whole_size_ = whole_size;
    whole2_ = whole2;
    whole2_size_ = whole2_size;
    answers_ = 0;
    out_ = Outcome{};
  }

  void Begin(const fuse_in_header& in) override {
    if (begun_ || answers_ != 0) Violation("Begin twice or after the answer", in.opcode);
    begun_ = true;
    opcode_ = in.opcode;
  }

  absl::Span<char> ArgArea() override {
    if (answers_ != 0) Violation("reply area used after the answer", opcode_);
    Unpoison(area_, size_);
    return absl::Span<char>(area_, size_);
  }

  void Commit(kmfuse::Answer answer) override {
    if (answer.kind == kmfuse::Answer::Kind::kWriteToFd) {
      Violation("WRITE plan although DataInCallerPages() is false", opcode_);
    }
    if (answer.kind == kmfuse::Answer::Kind::kReadFromFd) {
      if (opcode_ != FUSE_READ) Violation("READ plan for another opcode", opcode_);
      // Executed as the /dev/fuse transports do: read into the reply area.
      Unpoison(area_, size_);
      const size_t len = std::min(answer.plan.len, size_);
      ssize_t n = pread(answer.plan.fd, area_, len, static_cast<off_t>(answer.plan.offset));
      answer = n < 0 ? kmfuse::Answer::Args(-errno, 0)
                     : kmfuse::Answer::Args(0, static_cast<size_t>(n));
    }
    const int32_t error = answer.error;
    const size_t args_len = answer.args_len;
    Answered();
    if (!begun_) Violation("committed without a header (no unique to answer)", opcode_);
    if (NoReply(opcode_)) Violation("no-reply opcode committed", opcode_);
    if (error > 0 || error <= -4096) Violation("error outside (-4096, 0]", opcode_);
    if (args_len > size_) Violation("args_len larger than ArgArea()", opcode_);
    if (error != 0 && args_len != 0) Violation("arguments with an error", opcode_);
    out_.error = -error;
    Unpoison(area_, args_len);
    out_.args.assign(area_, args_len);
    PoisonAll();
  }

  void Drop() override {
    Answered();
    if (begun_ && !NoReply(opcode_)) Violation("reply-expecting opcode dropped", opcode_);
    out_.dropped = true;
    PoisonAll();
  }

  int answers() const { return answers_; }
  bool begun() const { return begun_; }
  const Outcome& outcome() const { return out_; }

 private:
  void Answered() {
    if (++answers_ != 1) Violation("answered more than once", opcode_);
  }
  void PoisonAll() {
    Poison(whole_, whole_size_);
    Poison(whole2_, whole2_size_);
  }

  bool begun_ = false;
  uint32_t opcode_ = 0;
  char* area_ = nullptr;
  size_t size_ = 0;
  const char* whole_ = nullptr;
  size_t whole_size_ = 0;
  const char* whole2_ = nullptr;
  size_t whole2_size_ = 0;
  int answers_ = 0;
  Outcome out_;
};

// The start of the op's fixed struct, copied before dispatch (the buffer is
// poisoned once the request is answered).
struct OpPrefix {
  explicit OpPrefix(const proto::RequestView& v)
      : opcode(v.in.opcode), len(std::min(v.op.size(), sizeof(bytes))) {
    if (len != 0) std::memcpy(bytes, v.op.data(), len);
  }
  uint32_t opcode;
  size_t len;
  char bytes[sizeof(fuse_read_in)];
};
static_assert(sizeof(fuse_read_in) >= sizeof(fuse_getxattr_in));

template <typename T>
bool OpStruct(const OpPrefix& v, T* out) {
  if (v.len < sizeof(T)) return false;
  std::memcpy(out, v.bytes, sizeof(T));
  return true;
}

// Replies never larger than what the request asked for.
void CheckReplySize(const OpPrefix& v, const Outcome& o) {
  if (o.dropped || o.error != 0) return;
  const uint32_t op = v.opcode;
  switch (op) {
    case FUSE_READ:
    case FUSE_READDIR:
    case FUSE_READDIRPLUS: {
      fuse_read_in in;
      if (OpStruct(v, &in) && o.args.size() > in.size) Violation("reply beyond in.size", op);
      break;
    }
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR: {
      fuse_getxattr_in in;
      if (!OpStruct(v, &in)) break;
      if (in.size == 0 && o.args.size() != sizeof(fuse_getxattr_out)) {
        Violation("size probe not answered with fuse_getxattr_out", op);
      }
      if (in.size != 0 && o.args.size() > in.size) Violation("reply beyond in.size", op);
      break;
    }
    default:
      break;
  }
}

}  // namespace

struct Harness::Impl {
  Impl()
      : fs(MemFs::Create(Options())),
        dispatcher(fs.get(), &hooks, false),
        slot(AllocPage(kSlotSize)),
        header(AllocPage(sizeof(fuse_uring_req_header))),
        payload(AllocPage(kPayloadCapacity)) {}
  ~Impl() {
    Unpoison(slot, kSlotSize);
    Unpoison(header, sizeof(fuse_uring_req_header));
    Unpoison(payload, kPayloadCapacity);
    free(slot);
    free(header);
    free(payload);
  }

  static MemFsOptions Options() {
    MemFsOptions o;
    o.capacity_bytes = 8u << 20;
    o.max_inodes = 512;
    return o;
  }

  // Delivers the request (decoded as `view`, Decode's result `decode`) and
  // checks the answer.
  Outcome Run(const proto::RequestBytes& bytes, const proto::RequestView& view, int decode) {
    const uint64_t missing = Reply::MissingReplies();
    const uint64_t malformed = dispatcher.stats().malformed.load();
    const OpPrefix prefix(view);
    const int rc = dispatcher.Deliver(bytes, &sink);
    const uint32_t op = view.in.opcode;
    if (rc != decode) Violation("Deliver disagrees with Decode", op);
    if (sink.answers() != 1) Violation("Deliver returned without an answer", op);
    if (sink.begun() != view.has_header) Violation("Begin not called exactly for a header", op);
    if (Reply::MissingReplies() != missing) Violation("a Reply was destroyed unanswered", op);
    if (dispatcher.stats().malformed.load() != malformed + (decode != 0)) {
      Violation("malformed request not counted exactly once", op);
    }
    Outcome o = sink.outcome();
    o.decode = decode;
    if (decode != 0) {
      if (view.has_header && !NoReply(op) && o.error != EINVAL) {
        Violation("malformed request not answered EINVAL", op);
      }
      return o;
    }
    if (std::strcmp(proto::OpcodeName(op), "UNKNOWN") == 0 && o.error != ENOSYS) {
      Violation("unknown opcode not answered ENOSYS", op);
    }
    CheckReplySize(prefix, o);
    return o;
  }

  class Hooks final : public proto::SessionHooks {} hooks;
  std::unique_ptr<MemFs> fs;
  proto::Dispatcher dispatcher;
  CheckingSink sink;
  char* slot;
  char* header;
  char* payload;
};

Harness::Harness() : impl_(std::make_unique<Impl>()) {}
Harness::~Harness() = default;

Outcome Harness::Contiguous(std::string_view received) {
  Impl& m = *impl_;
  const size_t n = std::min(received.size(), kMaxReceived);
  char* req = m.slot + kSlotRequestOffset;
  Unpoison(m.slot, kSlotSize);
  std::memcpy(req, received.data(), n);
  // Only the bytes read() returned are readable until the reply area is asked for.
  Poison(m.slot, kSlotRequestOffset);
  Poison(req + n, kSlotSize - kSlotRequestOffset - n);

  fuse_in_header peek;
  const int prc = proto::PeekHeader(req, n, &peek);
  if (prc != (n < sizeof(fuse_in_header) ? -EINVAL : 0)) Violation("PeekHeader result", 0);
  const proto::RequestBytes bytes = proto::RequestBytes::Contiguous(req, n);
  proto::RequestView view;
  const int decode = proto::Decode(bytes, &view);
  if (decode != 0 && decode != -EINVAL) Violation("decode error other than EINVAL", peek.opcode);
  if (view.has_header != (prc == 0)) Violation("has_header disagrees with PeekHeader", 0);
  if (prc == 0 && std::memcmp(&peek, &view.in, sizeof(peek)) != 0) {
    Violation("PeekHeader disagrees", 0);
  }
  const char* args = req + sizeof(fuse_in_header);
  if (decode == 0 &&
      (view.in.len != n || view.op.size() > n - sizeof(fuse_in_header) ||
       (!view.op.empty() && view.op.data() != args) ||
       view.rest.data() + view.rest.size() > req + n ||
       (!view.rest.empty() && view.rest.data() != args + view.op.size()))) {
    Violation("contiguous view outside what was received", view.in.opcode);
  }
  m.sink.Arm(m.slot + kSlotArgOffset, kSlotSize - kSlotArgOffset, m.slot, kSlotSize);
  Outcome o = m.Run(bytes, view, decode);
  Unpoison(m.slot, kSlotSize);
  return o;
}

Outcome Harness::Split(std::string_view in_out, std::string_view op_in, uint32_t payload_sz,
                       std::string_view payload) {
  Impl& m = *impl_;
  Unpoison(m.header, sizeof(fuse_uring_req_header));
  Unpoison(m.payload, kPayloadCapacity);
  fuse_uring_req_header* h = reinterpret_cast<fuse_uring_req_header*>(m.header);
  std::memset(h, 0, sizeof(*h));
  std::memcpy(h->in_out, in_out.data(), std::min(in_out.size(), kUringAreaSize));
  std::memcpy(h->op_in, op_in.data(), std::min(op_in.size(), kUringAreaSize));
  h->ring_ent_in_out.payload_sz = payload_sz;
  const size_t copied = std::min(payload.size(), kPayloadCapacity);
  const size_t valid = std::min<size_t>(payload_sz, kPayloadCapacity);
  std::memcpy(m.payload, payload.data(), copied);
  if (valid > copied) std::memset(m.payload + copied, 0, valid - copied);
  // Bytes past payload_sz are stale: nobody may read them.
  Poison(m.payload + valid, kPayloadCapacity - valid);

  const proto::RequestBytes bytes =
      proto::RequestBytes::Split(h->in_out, h->op_in, m.payload, payload_sz, kPayloadCapacity);
  proto::RequestView view;
  const int decode = proto::Decode(bytes, &view);
  if (decode != 0 && decode != -EINVAL) Violation("decode error other than EINVAL", 0);
  if (!view.has_header) Violation("split header not decoded", 0);
  const char* op_at = view.in.opcode == FUSE_NOTIFY_REPLY ? m.payload : h->op_in;
  if (decode == 0 &&
      ((!view.op.empty() && view.op.data() != op_at) ||
       (view.op.data() == h->op_in && view.op.size() > kUringAreaSize) ||
       (!view.rest.empty() && (view.rest.data() < m.payload ||
                               view.rest.data() + view.rest.size() > m.payload + payload_sz)))) {
    Violation("split view outside the entry", view.in.opcode);
  }
  m.sink.Arm(m.payload, kPayloadCapacity, m.payload, kPayloadCapacity, m.header,
             sizeof(fuse_uring_req_header));
  Outcome o = m.Run(bytes, view, decode);
  Unpoison(m.header, sizeof(fuse_uring_req_header));
  Unpoison(m.payload, kPayloadCapacity);
  return o;
}

}  // namespace kmfuse::fuzz

namespace {

uint32_t Le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

}  // namespace

namespace kmfuse::fuzz {

std::vector<Outcome> RunInput(const uint8_t* data, size_t size) {
  std::vector<Outcome> outcomes;
  if (size == 0) return outcomes;
  const bool split = (data[0] & kLayoutSplit) != 0;
  Harness h;
  size_t pos = 1;
  const char* bytes = reinterpret_cast<const char*>(data);
  for (size_t i = 0; i < kMaxRequests && size - pos >= 4; i++) {
    if (!split) {
      size_t n = Le32(data + pos);
      pos += 4;
      n = std::min({n, size - pos, kMaxReceived});
      outcomes.push_back(h.Contiguous(std::string_view(bytes + pos, n)));
      pos += n;
      continue;
    }
    if (size - pos < 8) break;
    const uint32_t payload_sz = Le32(data + pos);
    size_t n = Le32(data + pos + 4);
    pos += 8;
    std::string_view in_out(bytes + pos, std::min(kUringAreaSize, size - pos));
    pos += in_out.size();
    std::string_view op_in(bytes + pos, std::min(kUringAreaSize, size - pos));
    pos += op_in.size();
    n = std::min(n, size - pos);
    outcomes.push_back(h.Split(in_out, op_in, payload_sz, std::string_view(bytes + pos, n)));
    pos += n;
  }
  return outcomes;
}

}  // namespace kmfuse::fuzz

int KmfuseFuzzOne(const uint8_t* data, size_t size) {
  kmfuse::fuzz::RunInput(data, size);
  return 0;
}
