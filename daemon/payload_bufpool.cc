// The `bufpool` payload policy: FUSE io-uring buffer pools, protocol 7.46
// (docs/kernel-interfaces.md section 5). Linux 7.3 is the first kernel with
// them; they run for real there (the tools/vm lane) and against
// tests/kernel_model everywhere.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/uring_queue.h"
#include "uring/base/mapping.h"
#include "uring/fixed_buffers.h"
#include "uring/sqe.h"
#include "uring/uapi.h"

namespace kmfuse {
namespace {

using abi::fuse_uring_req_header;

// user_data of Setup's own commands; entries use their index (< 65536).
constexpr uint64_t kAddQueueTag = 0xb0f0000000000001ULL;
constexpr uint64_t kAddPoolTag = 0xb0f0000000000002ULL;
constexpr uint64_t kSwitchOffTag = 0xb0f0000000000003ULL;

class BufpoolPolicy final : public PayloadPolicy {
 public:
  explicit BufpoolPolicy(const BufpoolOptions& o) : options_(o) {}
  // Runs after the ring is gone (uses_ring_in_destructor() is false): no
  // command takes a pool back, so the kernel may copy into it until then;
  // closing the ring also drops the fixed-buffer registration. The
  // Mappings unmap the memory then.
  ~BufpoolPolicy() override = default;
  const char* name() const override { return "bufpool"; }
  bool uses_ring_in_destructor() const override { return false; }

  // Slot 0 of the queue's range: the pool; then one per entry on a
  // zero-copy queue.
  unsigned fixed_slots(unsigned entries) const override {
    if (!options_.registered) return 0;
    return options_.zero_copy ? entries + 1 : 1;
  }

  absl::Status Setup(uring::IoRing& ring, const PolicySetup& s) override {
    qid_ = s.qid;
    shared_table_ = s.shared_table;
    slot_base_ = s.shared_table ? s.slot_base : 0;
    table_error_ = s.shared_table ? s.table_error : 0;
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
    absl::StatusOr<Mapping> h =
        Mapping::Anonymous(headers_bytes_, absl::StrCat("queue ", qid_, ": entry headers"));
    if (!h.ok()) return h.status();
    headers_map_ = std::move(*h);
    headers_ = headers_map_.as<char>();
    absl::StatusOr<Mapping> p = Mapping::Anonymous(
        pool_map_bytes_,
        absl::StrCat("queue ", qid_, ": a ", pool_bytes_ >> 10, " KiB buffer pool"));
    if (!p.ok()) return p.status();
    pool_map_ = std::move(*p);
    pool_ = pool_map_.as<char>();
    iov_.resize(s.entries * 2);
    entries_ = s.entries;

    // The ladder (each refusal logged once, with the kernel's errno; none
    // fails the mount): zero-copy queue with a registered pool -> registered
    // pool -> unregistered pool -> per-entry buffers.
    registered_ = options_.registered;
    zero_copy_ = options_.zero_copy && registered_;
    if (registered_) {
      if (int rc = RegisterPool(ring); rc < 0) {
        Note(absl::StrCat("registering the buffer pool as fixed buffer ", slot_base_, " returned ",
                          strerror(-rc), ": unregistered pool",
                          options_.zero_copy ? ", no zero-copy (it needs a registered pool)" : ""));
        registered_ = false;
        zero_copy_ = false;
      }
    }

    // ADD_QUEUE, then ADD_BUFPOOL, one at a time: ADD_BUFPOOL needs the
    // queue. Both complete at once (no request wait); EAGAIN (INIT not yet
    // processed) is resubmitted like a REGISTER.
    int res = RunCmd(ring, s.fuse_fd, abi::FUSE_IO_URING_CMD_ADD_QUEUE, kAddQueueTag);
    if (res != 0 && zero_copy_ && res != -EOPNOTSUPP) {
      // EPERM without CAP_SYS_ADMIN; EINVAL from a kernel without the flag.
      // The queue was not created: ask again without zero-copy.
      Note(absl::StrCat("ADD_QUEUE with FUSE_URING_ZERO_COPY returned ", strerror(-res),
                        res == -EPERM ? " (zero-copy needs CAP_SYS_ADMIN)" : "",
                        ": no zero-copy"));
      zero_copy_ = false;
      res = RunCmd(ring, s.fuse_fd, abi::FUSE_IO_URING_CMD_ADD_QUEUE, kAddQueueTag);
    }
    if (res != 0) return CmdError("ADD_QUEUE", res);
    res = RunCmd(ring, s.fuse_fd, abi::FUSE_IO_URING_CMD_ADD_BUFPOOL, kAddPoolTag);
    if (res != 0 && res != -EOPNOTSUPP && zero_copy_) {
      // A zero-copy queue takes only a registered pool and no per-entry
      // buffers (kernel rule): it cannot step down. While io-uring is on
      // for the connection, the kernel holds every request until each
      // queue has an entry, which this one never gets: a REGISTER it
      // refuses (no payload buffer) makes 7.3 switch io-uring off for the
      // connection, and /dev/fuse then carries every request.
      int reg = SwitchOffUring(ring, s.fuse_fd);
      return absl::UnavailableError(absl::StrCat(
          "queue ", qid_, ": ADD_BUFPOOL on a zero-copy queue returned ", strerror(-res),
          " and such a queue takes no other buffers; a REGISTER without buffers (",
          reg < 0 ? strerror(-reg) : "accepted", ") switched io-uring off for the connection"));
    }
    if (res != 0 && res != -EOPNOTSUPP && registered_) {
      Note(absl::StrCat("ADD_BUFPOOL of the registered pool returned ", strerror(-res),
                        ": unregistered pool"));
      registered_ = false;
      res = RunCmd(ring, s.fuse_fd, abi::FUSE_IO_URING_CMD_ADD_BUFPOOL, kAddPoolTag);
    }
    if (res != 0 && res != -EOPNOTSUPP) {
      Note(absl::StrCat("ADD_BUFPOOL returned ", strerror(-res), ": per-entry buffers"));
      return StartPerEntry(page);
    }
    if (res != 0) return CmdError("ADD_BUFPOOL", res);
    return absl::OkStatus();
  }

  fuse_uring_req_header* Header(unsigned i) override {
    return reinterpret_cast<fuse_uring_req_header*>(headers_ + i * sizeof(fuse_uring_req_header));
  }

  void PrepRegister(io_uring_sqe* sqe, int fuse_fd, UringEntry& e, uint64_t ud) override {
    struct iovec* iov = &iov_[e.index() * 2];
    iov[0] = {e.header(), sizeof(fuse_uring_req_header)};
    if (per_entry_ != nullptr) {
      iov[1] = {per_entry_ + e.index() * buf_size_, buf_size_};
      e.set_payload(per_entry_ + e.index() * buf_size_);
    } else {
      iov[1] = {nullptr, 0};  // the payload comes from the pool
      e.set_payload(nullptr);
    }
    PrepCmd(sqe, fuse_fd, abi::FUSE_IO_URING_CMD_REGISTER, 0, ud, ZeroCopySlot(e));
    sqe->addr = reinterpret_cast<uint64_t>(iov);
    sqe->len = 2;
  }
  void PrepCommit(io_uring_sqe* sqe, int fuse_fd, UringEntry& e, uint64_t ud) override {
    PrepCmd(sqe, fuse_fd, abi::FUSE_IO_URING_CMD_COMMIT_AND_FETCH, e.unique(), ud);
  }
  int OnDelivered(UringEntry& e, uint32_t) override {
    if (per_entry_ != nullptr) return 0;  // the entry's own buffer, set at REGISTER
    abi::fuse_uring_ent_in_out ent;
    std::memcpy(&ent, &e.header()->ring_ent_in_out, sizeof(ent));
    abi::fuse_in_header in;
    std::memcpy(&in, e.header()->in_out, sizeof(in));
    // A zero-copy READ carries nothing but its pages (registered in the
    // entry's slot): no pool buffer. A zero-copy WRITE still gets one for
    // its fuse_write_out.
    const bool zc_read = zero_copy_ && (ent.flags & abi::FUSE_URING_ENT_ZERO_COPY) != 0 &&
                         in.opcode == abi::FUSE_READ;
    if (!HasPoolPayload(in.opcode) || zc_read) {
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
  size_t buffer_bytes() const override { return headers_bytes_ + pool_bytes_ + per_entry_bytes_; }
  bool zero_copy() const override { return zero_copy_; }
  uint16_t ZeroCopySlot(const UringEntry& e) const override {
    return zero_copy_ ? static_cast<uint16_t>(slot_base_ + 1 + e.index()) : 0;
  }
  std::string Mode() const override {
    if (per_entry_ != nullptr) return "bufpool (refused: per-entry buffers)";
    return absl::StrCat("bufpool (", registered_ ? "registered" : "unregistered", " pool, zero-copy ",
                        zero_copy_ ? "on" : "off", ")");
  }

 private:
  // Every SQE of a queue with a registered pool names the same fixed buffer
  // (the first slot of the queue's range: slot 0 on a ring of its own; 7.3
  // accepts the pool in any slot, see the cross-check).
  void PrepCmd(io_uring_sqe* sqe, int fuse_fd, uint32_t op, uint64_t unique, uint64_t ud,
               uint16_t zc_slot = 0) {
    abi::fuse_uring_cmd_req_v46 req{};
    req.commit_id = unique;
    req.qid = qid_;
    if (op == abi::FUSE_IO_URING_CMD_ADD_QUEUE && zero_copy_) {
      req.flags = abi::FUSE_URING_ZERO_COPY;
      // Test-only refusal: an undefined flag bit, which the kernel rejects.
      if (options_.refuse_zero_copy) req.flags |= uint64_t{1} << 63;
    }
    if (op == abi::FUSE_IO_URING_CMD_ADD_BUFPOOL) {
      req.bufpool.uaddr = reinterpret_cast<uint64_t>(pool_);
      req.bufpool.len = static_cast<uint32_t>(pool_bytes_);
      // Test-only refusal: the reserved word must be 0.
      if (options_.refuse_bufpool) req.bufpool.reserved = 1;
    }
    if (op == abi::FUSE_IO_URING_CMD_REGISTER) req.ent_zero_copy_buf_index = zc_slot;
    // 40 bytes always fit the 80-byte SQE128 command area.
    bool fits = uring::PrepUringCmd(sqe, true, fuse_fd, op, &req, sizeof(req), ud);
    (void)fits;
    if (registered_) {
      sqe->uring_cmd_flags |= uring::kUringCmdFixed;
      sqe->buf_index = static_cast<uint16_t>(slot_base_);
    }
  }
  // The pool in the first slot of the queue's range, the zero-copy pages of
  // entry i in slot_base + 1 + i. On a ring of its own the policy registers
  // the sparse table itself and drops it again on failure; on a shared
  // table (the worker's) the slot stays empty. 0 or -errno.
  int RegisterPool(uring::IoRing& ring) {
    if (shared_table_ && table_error_ < 0) return table_error_;
    if (!shared_table_) {
      const unsigned slots = zero_copy_ ? entries_ + 1 : 1;
      int rc = uring::RegisterSparseBuffers(ring, slots);
      if (rc < 0) return rc;
    }
    // Test-only refusal: memory that is not mapped (EFAULT), standing for
    // the ENOMEM a locked-memory limit gives.
    struct iovec iov = {options_.refuse_registered ? reinterpret_cast<void*>(uintptr_t{4096})
                                                   : static_cast<void*>(pool_),
                        pool_bytes_};
    int rc = uring::UpdateBuffers(ring, slot_base_, &iov, 1);
    if (rc >= 0) return 0;
    if (!shared_table_) uring::UnregisterBuffers(ring);
    return rc;
  }
  // Per-entry buffers after ADD_BUFPOOL was refused: each entry REGISTERs
  // its own buffer of exactly the kernel's payload size.
  absl::Status StartPerEntry(size_t page) {
    registered_ = false;
    zero_copy_ = false;
    absl::StatusOr<Mapping> m = Mapping::Anonymous((entries_ * buf_size_ + page - 1) / page * page,
                                                   absl::StrCat("queue ", qid_, ": per-entry buffers"));
    if (!m.ok()) return m.status();
    per_entry_map_ = std::move(*m);
    per_entry_ = per_entry_map_.as<char>();
    per_entry_bytes_ = per_entry_map_.size();
    return absl::OkStatus();
  }
  // One line per refusal per queue.
  void Note(const std::string& what) const {
    fprintf(stderr, "kmfused: queue %u: %s\n", qid_, what.c_str());
  }
  // A REGISTER the kernel refuses (a zero-copy queue without a pool, no
  // payload buffer): 7.3 then switches io-uring off for the connection.
  // Returns its completion's res.
  int SwitchOffUring(uring::IoRing& ring, int fuse_fd) {
    iov_[0] = {headers_, sizeof(fuse_uring_req_header)};
    iov_[1] = {nullptr, 0};
    return RunCmd(ring, fuse_fd, abi::FUSE_IO_URING_CMD_REGISTER, kSwitchOffTag, iov_.data());
  }
  // Submits one command and returns its completion's res (-EIO if none).
  int RunCmd(uring::IoRing& ring, int fuse_fd, uint32_t op, uint64_t tag,
             struct iovec* register_iov = nullptr) {
    for (int attempt = 0; attempt < 10000; attempt++) {
      io_uring_sqe* sqe = ring.GetSqe();
      if (sqe == nullptr) return -EBUSY;
      PrepCmd(sqe, fuse_fd, op, 0, tag,
              register_iov != nullptr ? static_cast<uint16_t>(slot_base_ + 1) : 0);
      if (register_iov != nullptr) {
        sqe->addr = reinterpret_cast<uint64_t>(register_iov);
        sqe->len = 2;
      }
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
  unsigned entries_ = 0;
  bool registered_ = false;  // the pool is fixed buffer slot_base_ (every SQE says so)
  bool shared_table_ = false;  // the worker's table (PolicySetup::shared_table)
  unsigned slot_base_ = 0;
  int table_error_ = 0;
  bool zero_copy_ = false;   // ADD_QUEUE took FUSE_URING_ZERO_COPY
  // The memory (unmapped when the policy goes, after the ring), and where
  // in it each part starts.
  Mapping headers_map_;
  Mapping pool_map_;
  Mapping per_entry_map_;  // after a refused ADD_BUFPOOL
  char* per_entry_ = nullptr;
  size_t per_entry_bytes_ = 0;
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
