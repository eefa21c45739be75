// The `kmbuf` payload policy: payloads in a kernel-managed buffer ring, one
// per queue (docs/kernel-interfaces.md section 4; the series was never
// merged, so this runs only against the kernel model).
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/uring_queue.h"
#include "uring/base/mapping.h"
#include "uring/buffer_ring.h"
#include "uring/uapi.h"

namespace kmfuse {
namespace {

using abi::fuse_uring_req_header;

// io_uring_register(2) opcodes for fixed buffers (mainline since 5.1).
constexpr unsigned kRegisterBuffers = 0;
constexpr unsigned kUnregisterBuffers = 1;

unsigned RoundUpPow2(unsigned n) {
  unsigned p = 1;
  while (p < n) p <<= 1;
  return p;
}

class KmbufPolicy final : public PayloadPolicy {
 public:
  explicit KmbufPolicy(const KmbufOptions& o) : options_(o) {}
  ~KmbufPolicy() override {
    // The buffer ring goes first: with entries still registered the kernel
    // answers its unregister with EBUSY (pinned) and drops it with the ring.
    buffers_.reset();
    if (headers_registered_) ring_->RegisterRaw(kUnregisterBuffers, nullptr, 0);
    // headers_map_ unmaps the headers after this body, unregistered now.
  }
  const char* name() const override { return "kmbuf"; }
  // bgid 0 and the ring's one registered-buffer table (the headers).
  bool shares_ring() const override { return false; }

  absl::Status Setup(uring::IoRing& ring, const PolicySetup& s) override {
    ring_ = &ring;
    qid_ = s.qid;
    entries_ = s.entries;
    // Kernel-managed buffers must be page multiples; the queue already
    // rounds, this keeps the policy correct on its own.
    buf_size_ = (s.payload_size + 4095) & ~size_t{4095};
    uring::BufferRingOptions bo;
    bo.backing = uring::Backing::kKernelManaged;
    bo.bgid = 0;
    bo.entries = options_.ring_entries ? options_.ring_entries : RoundUpPow2(s.entries);
    bo.buf_size = static_cast<uint32_t>(buf_size_);
    absl::StatusOr<std::unique_ptr<uring::BufferRing>> br = uring::BufferRing::Create(ring, bo);
    if (!br.ok()) {
      return absl::Status(br.status().code(),
                          absl::StrCat("queue ", qid_, ": kmbuf ring: ", br.status().message()));
    }
    buffers_ = std::move(*br);

    headers_bytes_ = (s.entries * sizeof(fuse_uring_req_header) + 4095) & ~size_t{4095};
    absl::StatusOr<Mapping> m =
        Mapping::Anonymous(headers_bytes_, absl::StrCat("queue ", qid_, ": entry headers"));
    if (!m.ok()) return m.status();
    headers_map_ = std::move(*m);
    headers_ = headers_map_.as<char>();
    struct iovec iov = {headers_, headers_bytes_};
    int rc = ring.RegisterRaw(kRegisterBuffers, &iov, 1);
    if (rc < 0) {
      return absl::ErrnoToStatus(
          -rc, absl::StrCat("queue ", qid_, ": IORING_REGISTER_BUFFERS (entry headers)"));
    }
    headers_registered_ = true;
    return absl::OkStatus();
  }

  fuse_uring_req_header* Header(unsigned i) override {
    return reinterpret_cast<fuse_uring_req_header*>(headers_ + i * sizeof(fuse_uring_req_header));
  }

  void PrepRegister(io_uring_sqe* sqe, int fuse_fd, UringEntry& e, uint64_t ud) override {
    // No buffer until the kernel selects one for a request.
    e.set_payload(nullptr);
    PrepFuseUringCmd(sqe, fuse_fd, abi::FUSE_IO_URING_CMD_REGISTER, abi::FUSE_URING_BUF_RING, 0,
                     qid_, ud);
    sqe->uring_cmd_flags |= uring::kUringCmdFixed;
    sqe->buf_index = e.index();
  }
  void PrepCommit(io_uring_sqe* sqe, int fuse_fd, UringEntry& e, uint64_t ud) override {
    PrepFuseUringCmd(sqe, fuse_fd, abi::FUSE_IO_URING_CMD_COMMIT_AND_FETCH, 0, e.unique(), qid_,
                     ud);
    sqe->uring_cmd_flags |= uring::kUringCmdFixed;
    sqe->buf_index = e.index();
  }
  int OnDelivered(UringEntry& e, uint32_t cqe_flags) override {
    if (!uring::BufferRing::HasBuffer(cqe_flags)) return 0;  // keeps its buffer (or needs none)
    uint16_t bid = uring::BufferRing::BidFromCqeFlags(cqe_flags);
    if (bid >= buffers_->entries()) return -ERANGE;
    e.set_payload(buffers_->Slot(bid));
    return 0;
  }
  size_t payload_capacity() const override { return buf_size_; }
  size_t buffer_bytes() const override {
    return headers_bytes_ + (buffers_ ? size_t{buffers_->entries()} * buf_size_ : 0);
  }

 private:
  const KmbufOptions options_;
  uring::IoRing* ring_ = nullptr;
  uint16_t qid_ = 0;
  unsigned entries_ = 0;
  size_t buf_size_ = 0;
  std::unique_ptr<uring::BufferRing> buffers_;
  Mapping headers_map_;  // unmapped once the destructor unregistered it
  char* headers_ = nullptr;
  size_t headers_bytes_ = 0;
  bool headers_registered_ = false;
};

}  // namespace

std::unique_ptr<PayloadPolicy> MakeKmbufPolicy() { return MakeKmbufPolicy(KmbufOptions{}); }
std::unique_ptr<PayloadPolicy> MakeKmbufPolicy(const KmbufOptions& options) {
  return std::make_unique<KmbufPolicy>(options);
}

}  // namespace kmfuse
