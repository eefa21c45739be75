// The `bufpool` payload policy: FUSE io-uring buffer pools, protocol 7.46
// (docs/kernel-interfaces.md section 5). Linux 7.3 is the first kernel with
// them; they run for real there (the tools/vm lane) and against
// tests/kernel_model everywhere.
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <memory>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/uring_queue.h"
#include "uring/sqe.h"
#include "uring/uapi.h"

namespace kmfuse {
namespace {

using abi::fuse_uring_req_header;

constexpr unsigned kRegisterBuffers = 0;
// user_data of Setup's own commands; entries use their index (< 65536).
constexpr uint64_t kAddQueueTag = 0xb0f0000000000001ULL;
constexpr uint64_t kAddPoolTag = 0xb0f0000000000002ULL;

class BufpoolPolicy final : public PayloadPolicy {
 public:
  explicit BufpoolPolicy(const BufpoolOptions& o) : options_(o) {}
  // Runs after the ring is gone (uses_ring_in_destructor() is false): no
  // command takes a pool back, so the kernel may copy into it until then;
  // closing the ring also drops the fixed-buffer registration.
  ~BufpoolPolicy() override {
    if (pool_ != nullptr) munmap(pool_, pool_map_bytes_);
    if (headers_ != nullptr) munmap(headers_, headers_bytes_);
  }
  const char* name() const override { return "bufpool"; }
  bool uses_ring_in_destructor() const override { return false; }

  absl::Status Setup(uring::IoRing& ring, const PolicySetup& s) override {
    qid_ = s.qid;
    // The kernel cuts the pool into buffers of exactly its payload size
    // (buffer i at uaddr + i * size), so no rounding here.
    buf_size_ = s.payload_size;
    const unsigned bufs = options_.bufs ? options_.bufs : s.entries;
    pool_bytes_ = bufs * buf_size_;
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    pool_map_bytes_ = (pool_bytes_ + page - 1) / page * page;
    if (pool_bytes_ > UINT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(
          "queue ", qid_, ": a buffer pool of ", pool_bytes_ >> 20,
          " MiB does not fit the 32-bit length of ADD_BUFPOOL (lower -o queue_depth or max_write)"));
    }
    headers_bytes_ = (s.entries * sizeof(fuse_uring_req_header) + page - 1) / page * page;
    void* h = mmap(nullptr, headers_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    void* p = mmap(nullptr, pool_map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (h != MAP_FAILED) headers_ = static_cast<char*>(h);
    if (p != MAP_FAILED) pool_ = static_cast<char*>(p);
    if (headers_ == nullptr || pool_ == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat("queue ", qid_, ": cannot map a ",
                                                       pool_bytes_ >> 10, " KiB buffer pool: ",
                                                       strerror(errno)));
    }
    if (options_.registered) {
      struct iovec iov = {pool_, pool_bytes_};
      int rc = ring.RegisterRaw(kRegisterBuffers, &iov, 1);
      if (rc < 0) {
        return absl::ErrnoToStatus(
            -rc, absl::StrCat("queue ", qid_, ": IORING_REGISTER_BUFFERS (buffer pool)"));
      }
    }
    iov_.resize(s.entries * 2);

    // ADD_QUEUE, then ADD_BUFPOOL, one at a time: ADD_BUFPOOL needs the
    // queue. Both complete at once (no request wait); EAGAIN (INIT not yet
    // processed) is resubmitted like a REGISTER.
    if (int res = RunCmd(ring, s.fuse_fd, abi::FUSE_IO_URING_CMD_ADD_QUEUE, kAddQueueTag);
        res != 0) {
      return CmdError("ADD_QUEUE", res);
    }
    if (int res = RunCmd(ring, s.fuse_fd, abi::FUSE_IO_URING_CMD_ADD_BUFPOOL, kAddPoolTag);
        res != 0) {
      return CmdError("ADD_BUFPOOL", res);
    }
    return absl::OkStatus();
  }

  fuse_uring_req_header* Header(unsigned i) override {
    return reinterpret_cast<fuse_uring_req_header*>(headers_ + i * sizeof(fuse_uring_req_header));
  }

  void PrepRegister(io_uring_sqe* sqe, int fuse_fd, UringEntry& e, uint64_t ud) override {
    struct iovec* iov = &iov_[e.index() * 2];
    iov[0] = {e.header(), sizeof(fuse_uring_req_header)};
    iov[1] = {nullptr, 0};  // the payload comes from the pool
    e.set_payload(nullptr);
    PrepCmd(sqe, fuse_fd, abi::FUSE_IO_URING_CMD_REGISTER, 0, ud);
    sqe->addr = reinterpret_cast<uint64_t>(iov);
    sqe->len = 2;
  }
  void PrepCommit(io_uring_sqe* sqe, int fuse_fd, UringEntry& e, uint64_t ud) override {
    PrepCmd(sqe, fuse_fd, abi::FUSE_IO_URING_CMD_COMMIT_AND_FETCH, e.commit_id(), ud);
  }
  int OnDelivered(UringEntry& e, uint32_t) override {
    abi::fuse_uring_ent_in_out ent;
    std::memcpy(&ent, &e.header()->ring_ent_in_out, sizeof(ent));
    abi::fuse_in_header in;
    std::memcpy(&in, e.header()->in_out, sizeof(in));
    if (!HasPoolPayload(in.opcode)) {
      // No buffer: the reported offset 0 is not this request's, buffer 0
      // may belong to another entry.
      e.set_payload(nullptr);
      return ent.payload_sz == 0 ? 0 : -ERANGE;
    }
    if (ent.offset % buf_size_ != 0 || size_t{ent.offset} + buf_size_ > pool_bytes_) {
      e.set_payload(nullptr);
      return -ERANGE;
    }
    e.set_payload(pool_ + ent.offset);
    return 0;
  }
  size_t payload_capacity() const override { return buf_size_; }
  size_t buffer_bytes() const override { return headers_bytes_ + pool_bytes_; }

 private:
  // Every SQE of a queue with a registered pool names the same fixed buffer.
  void PrepCmd(io_uring_sqe* sqe, int fuse_fd, uint32_t op, uint64_t commit_id, uint64_t ud) {
    abi::fuse_uring_cmd_req_v46 req{};
    req.commit_id = commit_id;
    req.qid = qid_;
    if (op == abi::FUSE_IO_URING_CMD_ADD_BUFPOOL) {
      req.bufpool.uaddr = reinterpret_cast<uint64_t>(pool_);
      req.bufpool.len = static_cast<uint32_t>(pool_bytes_);
    }
    // 40 bytes always fit the 80-byte SQE128 command area.
    bool fits = uring::PrepUringCmd(sqe, true, fuse_fd, op, &req, sizeof(req), ud);
    (void)fits;
    if (options_.registered) {
      sqe->uring_cmd_flags |= uring::kUringCmdFixed;
      sqe->buf_index = 0;
    }
  }
  // Submits one command and returns its completion's res (-EIO if none).
  int RunCmd(uring::IoRing& ring, int fuse_fd, uint32_t op, uint64_t tag) {
    for (int attempt = 0; attempt < 10000; attempt++) {
      io_uring_sqe* sqe = ring.GetSqe();
      if (sqe == nullptr) return -EBUSY;
      PrepCmd(sqe, fuse_fd, op, 0, tag);
      int res = 1;  // 1: no completion yet
      for (int tries = 0; tries < 1000 && res == 1; tries++) {
        int rc = ring.SubmitAndWait(1);
        if (rc < 0 && rc != -EINTR) return rc;
        ring.Reap([&](const uring::Completion& c) {
          if (c.user_data == tag) res = c.res;
        });
      }
      if (res == 1) return -EIO;
      if (res != -EAGAIN) return res;
      usleep(1000);
    }
    return -EAGAIN;
  }
  absl::Status CmdError(const char* what, int res) const {
    // 6.14-6.18 answer an unknown command with EINVAL: no buffer pools.
    if (std::string_view(what) == "ADD_QUEUE" && res == -EINVAL) {
      return absl::UnimplementedError(absl::StrCat(
          "queue ", qid_, ": FUSE_IO_URING_CMD_", what, " returned ", strerror(-res),
          ": the kernel has no FUSE io-uring buffer pools (protocol 7.46, Linux 7.3+)"));
    }
    // EOPNOTSUPP: io-uring is off on this connection, although INIT offered
    // buffer pools: the INIT reply did not enable it, or a REGISTER on it
    // failed (7.3 then switches io-uring off for the connection).
    if (res == -EOPNOTSUPP) {
      return absl::UnavailableError(absl::StrCat(
          "queue ", qid_, ": FUSE_IO_URING_CMD_", what, " returned ", strerror(-res),
          " (EOPNOTSUPP): FUSE-over-io_uring is off on this connection (the INIT reply did not "
          "enable it, or an earlier REGISTER failed and the kernel switched it off)"));
    }
    return absl::ErrnoToStatus(-res, absl::StrCat("queue ", qid_, ": FUSE_IO_URING_CMD_", what));
  }

  const BufpoolOptions options_;
  uint16_t qid_ = 0;
  size_t buf_size_ = 0;
  char* pool_ = nullptr;
  size_t pool_bytes_ = 0;      // buffers x buf_size_: the length ADD_BUFPOOL names
  size_t pool_map_bytes_ = 0;  // pool_bytes_ rounded up to a page
  char* headers_ = nullptr;
  size_t headers_bytes_ = 0;
  std::vector<struct iovec> iov_;  // must stay valid while REGISTER is in flight
};

}  // namespace

std::unique_ptr<PayloadPolicy> MakeBufpoolPolicy() { return MakeBufpoolPolicy(BufpoolOptions{}); }
std::unique_ptr<PayloadPolicy> MakeBufpoolPolicy(const BufpoolOptions& options) {
  return std::make_unique<BufpoolPolicy>(options);
}

}  // namespace kmfuse
