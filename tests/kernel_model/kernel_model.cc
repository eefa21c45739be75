// The kernel model's implementation. One mutex guards all state: the model
// is for correctness, not speed. The kernel functions each piece mirrors are
// named where it matters (fs/fuse/dev_uring.c, io_uring/kbuf.c).
#include "tests/kernel_model/kernel_model.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "kmfuse/sync.h"
#include "uring/fixed_buffers.h"
#include "uring/uapi.h"

namespace kmfuse::model {

const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kPerEntry: return "per-entry";
    case Mode::kKmbuf: return "kmbuf";
    case Mode::kBufpool: return "bufpool";
  }
  return "?";
}

namespace {

using abi::fuse_uring_cmd_req_v46;
using abi::fuse_uring_ent_in_out;
using abi::fuse_uring_req_header;

constexpr unsigned kRegisterBuffers = 0;
constexpr unsigned kUnregisterBuffers = 1;
constexpr int kErestartsys = 512;
constexpr size_t kHeaderSize = sizeof(fuse_uring_req_header);

uint64_t Checksum(uint64_t h, const char* p, size_t n) {
  // FNV-1a over 8-byte words: cheap enough for megabyte buffers per commit.
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ULL;
  }
  for (; i < n; i++) h = (h ^ static_cast<unsigned char>(p[i])) * 0x100000001b3ULL;
  return h;
}
constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ULL;

class RingImpl;
// io_uring_cmd_import_fixed(): whether `ring` has registered buffer `index`
// covering [p, p + len).
bool ImportFixedOk(const RingImpl* ring, int index, const char* p, size_t len);

// A set of equal buffers the kernel selects from: a kmbuf ring (FIFO of
// bids, like the ring's head/tail) or a bufpool (lowest free bit).
struct BufSet {
  char* base = nullptr;
  size_t buf_size = 0;
  unsigned count = 0;
  bool fifo = false;
  std::deque<unsigned> free_fifo;
  std::vector<bool> used;
  std::vector<bool> has_sum;
  std::vector<uint64_t> sum;
  // kmbuf only
  uint16_t bgid = 0;
  size_t bytes = 0;
  bool pinned = false;
  RingImpl* owner = nullptr;

  void Init(unsigned n) {
    count = n;
    used.assign(n, false);
    has_sum.assign(n, false);
    sum.assign(n, 0);
    for (unsigned i = 0; i < n; i++) free_fifo.push_back(i);
  }
  int Take() {
    if (fifo) {
      if (free_fifo.empty()) return -1;
      unsigned b = free_fifo.front();
      free_fifo.pop_front();
      used[b] = true;
      return static_cast<int>(b);
    }
    for (unsigned b = 0; b < count; b++) {
      if (!used[b]) {
        used[b] = true;
        return static_cast<int>(b);
      }
    }
    return -1;
  }
  void Put(unsigned b) {
    used[b] = false;
    if (fifo) free_fifo.push_back(b);
  }
  unsigned Free() const {
    return static_cast<unsigned>(std::count(used.begin(), used.end(), false));
  }
  char* Buf(unsigned b) const { return base + b * buf_size; }
};

struct Request {
  uint64_t ticket = 0;
  uint64_t unique = 0;
  uint16_t qid = 0;
  abi::fuse_in_header in{};
  std::string op, payload;
  uint32_t out_max = 0;
  bool needs_buf = false;
  // Zero-copy READ/WRITE: the caller's pages, registered in the entry's
  // slot while the daemon holds the request.
  bool zc = false;
  std::string pages;
  bool done = false;
  ModelReply reply;
};

struct Entry {
  enum St { kAvail, kUser, kDead };
  RingImpl* ring = nullptr;
  uint64_t user_data = 0;
  uint16_t qid = 0;
  unsigned index = 0;  // within the queue, for messages
  char* header = nullptr;
  char* payload = nullptr;  // per-entry payload
  size_t payload_len = 0;
  St st = kAvail;
  Request* req = nullptr;
  int buf = -1;  // index in the queue's BufSet
  bool has_sum = false;
  uint64_t sum = 0;
  int kmbuf_hdr = -1;
  uint16_t zc_slot = 0;  // REGISTER's ent_zero_copy_buf_index
};

struct Queue {
  std::vector<std::unique_ptr<Entry>> entries;
  std::deque<Entry*> avail;   // front: the entry that became idle last
  std::deque<Request*> pending;
  bool created = false;       // the kernel's queue exists (ADD_QUEUE or REGISTER)
  bool added = false;         // bufpool ADD_QUEUE
  bool zero_copy = false;     // ADD_QUEUE with FUSE_URING_ZERO_COPY
  bool per_entry = false;     // a REGISTER with a payload iovec fixed the mode
  bool registered_any = false;
  int fixed_index = -1;       // bufpool registered with this buf_index
  std::unique_ptr<BufSet> pool;  // bufpool
  BufSet* bufs = nullptr;     // kmbuf ring or pool: the queue selects from it
  bool memory_gone = false;   // a ring of this queue was destroyed
};

}  // namespace

struct KernelModel::State {
  explicit State(const ModelOptions& o)
      : opts(o),
        minor(o.minor != 0 ? o.minor : (o.mode == Mode::kBufpool ? 46u : 45u)),
        page(o.page_size != 0 ? o.page_size : static_cast<size_t>(sysconf(_SC_PAGESIZE))),
        queues(o.nr_queues),
        init_done(o.init_done) {}
  const ModelOptions opts;
  const uint32_t minor;
  const size_t page;
  mutable Mutex mu;
  CondVar cv;
  std::vector<Queue> queues ABSL_GUARDED_BY(mu);
  bool init_done ABSL_GUARDED_BY(mu);
  bool aborted ABSL_GUARDED_BY(mu) = false;
  bool uring_off ABSL_GUARDED_BY(mu) = false;  // 7.46: a REGISTER failed
  bool ready ABSL_GUARDED_BY(mu) = false;
  uint64_t next_unique ABSL_GUARDED_BY(mu) = 0;
  uint64_t next_ticket ABSL_GUARDED_BY(mu) = 0;
  std::map<uint64_t, std::unique_ptr<Request>> requests ABSL_GUARDED_BY(mu);
  std::vector<std::string> violations ABSL_GUARDED_BY(mu);
  ModelStats stats ABSL_GUARDED_BY(mu);
  std::set<RingImpl*> rings ABSL_GUARDED_BY(mu);
  // fh values of opens answered with FOPEN_IO_URING_ZERO_COPY (accepted).
  std::set<uint64_t> zc_fhs ABSL_GUARDED_BY(mu);

  size_t MaxPayload() const { return abi::UringMinPayload(opts.max_write, opts.max_pages, page); }
  bool Buffered() const { return opts.mode != Mode::kPerEntry; }
  // The connection negotiated buffer pools (FUSE_HAS_IO_URING_BUFPOOL).
  bool Bufpool() const { return minor >= 46 && opts.mode == Mode::kBufpool; }

  void Violation(std::string s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    fprintf(stderr, "kernel model: daemon bug: %s\n", s.c_str());
    violations.push_back(std::move(s));
  }
  void End(Request* r, int32_t err) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (r == nullptr || r->done) return;
    r->reply.error = err;
    r->reply.out.error = err;
    r->reply.out.unique = r->unique;
    r->reply.out.len = sizeof(abi::fuse_out_header);
    r->done = true;
    cv.SignalAll();
  }

  // --- checksums of memory the daemon handed back ---
  uint64_t EntrySum(const Queue& q, const Entry& e) const {
    uint64_t h = Checksum(kFnvBasis, e.header, kHeaderSize);
    if (e.payload != nullptr) h = Checksum(h, e.payload, e.payload_len);
    if (e.buf >= 0 && q.bufs) h = Checksum(h, q.bufs->Buf(e.buf), q.bufs->buf_size);
    return h;
  }
  void SumEntry(Queue& q, Entry& e) {
    e.sum = EntrySum(q, e);
    e.has_sum = true;
  }
  void VerifyEntry(Queue& q, Entry& e, const char* when) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!e.has_sum || q.memory_gone) return;
    if (EntrySum(q, e) != e.sum) {
      Violation(absl::StrCat("queue ", e.qid, " entry ", e.index,
                             ": header or payload buffer written after commit (seen ", when, ")"));
    }
    e.has_sum = false;
  }
  void VerifyBuf(Queue& q, unsigned b, const char* when) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    BufSet& s = *q.bufs;
    if (!s.has_sum[b] || q.memory_gone) return;
    if (Checksum(kFnvBasis, s.Buf(b), s.buf_size) != s.sum[b]) {
      Violation(absl::StrCat("queue ", &q - &queues[0], " buffer ", b,
                             ": written after the kernel took it back (seen ", when, ")"));
    }
    s.has_sum[b] = false;
  }
  // The kernel takes e's buffer back (io_uring_kmbuf_recycle / pool bit).
  void Recycle(Queue& q, Entry& e, const char* when) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (e.buf < 0 || q.bufs == nullptr) return;
    VerifyEntry(q, e, when);
    unsigned b = static_cast<unsigned>(e.buf);
    if (!q.memory_gone) {
      q.bufs->sum[b] = Checksum(kFnvBasis, q.bufs->Buf(b), q.bufs->buf_size);
      q.bufs->has_sum[b] = true;
    }
    q.bufs->Put(b);
    e.buf = -1;
    stats.recycles++;
  }

  void PostCqe(RingImpl* ring, uint64_t ud, int32_t res, uint32_t flags)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Zero-copy: registers r's pages in e's slot of e's ring (0, -EINVAL: no
  // such slot, -EBUSY: the slot holds a buffer) / drops them again (commit,
  // teardown).
  int ZcRegister(Entry& e, Request* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void ZcDrop(Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void Deliver(Queue& q, Entry& e, Request* r, bool new_sel) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    // The caller verified the entry's committed state; a newly selected
    // buffer is checked against its sum from when it was recycled.
    e.has_sum = false;
    if (new_sel) VerifyBuf(q, static_cast<unsigned>(e.buf), "when selected again");
    // A registered pool's buffer is imported through the entry's SQE and its
    // buf_index; when nothing registered covers it the request ends with
    // EFAULT (no CQE) and the entry fetches the next one (measured on 7.3).
    if (opts.mode == Mode::kBufpool && e.payload == nullptr && e.buf >= 0 && q.fixed_index >= 0 &&
        !ImportFixedOk(e.ring, q.fixed_index, q.bufs->Buf(e.buf), q.bufs->buf_size)) {
      End(r, -EFAULT);
      if (!TryDeliver(q, e)) Park(q, e);
      return;
    }
    // Zero-copy: the caller's pages go into the entry's slot as a kernel
    // buffer at address 0 before anything is copied; a slot that holds a
    // buffer ends the request with EBUSY (measured on 7.3: the pool's slot
    // named in REGISTER), one past the table with EINVAL
    // (io_buffer_register_bvec); the entry fetches the next request.
    if (r->zc) {
      if (int rc = ZcRegister(e, r); rc < 0) {
        End(r, rc);
        if (!TryDeliver(q, e)) Park(q, e);
        return;
      }
    }
    // fuse_uring_copy_to_ring(): the 40-byte in header, in_args[0] into
    // op_in, the whole ring_ent_in_out; nothing else of the header.
    fuse_uring_req_header* h = reinterpret_cast<fuse_uring_req_header*>(e.header);
    memcpy(h->in_out, &r->in, sizeof(r->in));
    memcpy(h->op_in, r->op.data(), r->op.size());
    if (opts.poison_headers) {
      memset(h->in_out + sizeof(r->in), kPoison, sizeof(h->in_out) - sizeof(r->in));
      memset(h->op_in + r->op.size(), kPoison, sizeof(h->op_in) - r->op.size());
    }
    fuse_uring_ent_in_out ent{};
    ent.flags = 0;
    ent.commit_id = r->unique;
    ent.payload_sz = static_cast<uint32_t>(r->payload.size());
    ent.reserved = 0;
    ent.offset = 0;  // padding on 6.14-6.18; 7.46: 0 without a pool buffer
    if (r->zc) {
      // A READ has no payload bytes, a WRITE counts the page bytes (its
      // pool buffer is for the reply).
      ent.flags = abi::FUSE_URING_ENT_ZERO_COPY;
      ent.payload_sz = r->in.opcode == abi::FUSE_WRITE ? static_cast<uint32_t>(r->pages.size()) : 0;
      stats.zero_copy++;
    }
    char* dst = e.payload;
    if (e.payload == nullptr && e.buf >= 0) {
      dst = q.bufs->Buf(e.buf);
      if (opts.mode == Mode::kBufpool) ent.offset = static_cast<uint32_t>(e.buf * q.bufs->buf_size);
    }
    memcpy(&h->ring_ent_in_out, &ent, sizeof(ent));
    if (!r->payload.empty() && !r->zc) memcpy(dst, r->payload.data(), r->payload.size());
    uint32_t flags = 0;
    if (opts.mode == Mode::kKmbuf && new_sel && e.payload == nullptr) {
      flags = uring::kCqeFBuffer | (static_cast<uint32_t>(e.buf) << uring::kCqeBufferShift);
    }
    e.st = Entry::kUser;
    e.req = r;
    stats.delivered++;
    if (q.bufs) {
      unsigned in_use = q.bufs->count - q.bufs->Free();
      stats.max_buffers_in_use = std::max(stats.max_buffers_in_use, in_use);
    }
    PostCqe(e.ring, e.user_data, 0, flags);
  }

  // fuse_uring_next_fuse_req() for e (just committed, not in avail): the
  // head of the queue, keeping, selecting or recycling e's buffer. False:
  // nothing queued, or the head needs a buffer and none is free.
  bool TryDeliver(Queue& q, Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!ready || q.pending.empty()) return false;
    Request* r = q.pending.front();
    // The kernel is about to read/overwrite what the daemon committed.
    VerifyEntry(q, e, "at the next delivery");
    bool new_sel = false;
    if (q.bufs != nullptr && e.payload == nullptr) {
      if (r->needs_buf) {
        if (e.buf < 0) {
          int b = q.bufs->Take();
          if (b < 0) {
            stats.waits_for_buffer++;
            SumEntry(q, e);  // verified above; keep watching it while it waits
            return false;
          }
          e.buf = b;
          new_sel = true;
          stats.buffer_selections++;
        } else {
          stats.buffer_keeps++;
        }
      } else {
        Recycle(q, e, "when recycled for a request without payload");
      }
    }
    q.pending.pop_front();
    Deliver(q, e, r, new_sel);
    return true;
  }
  // e goes idle (fuse_uring_ent_avail: to the head of the idle list); the
  // kernel takes its buffer back.
  void Park(Queue& q, Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Recycle(q, e, "when recycled by an idle entry");
    if (!q.memory_gone) SumEntry(q, e);
    e.st = Entry::kAvail;
    q.avail.push_front(&e);
  }
  // fuse_uring_queue_fuse_req(): the first idle entry takes r unless r needs
  // a buffer and none is free; otherwise r is queued (behind any waiting
  // request, which r may thereby overtake).
  void Arrive(Queue& q, Request* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!ready || q.avail.empty()) {
      q.pending.push_back(r);
      return;
    }
    Entry& e = *q.avail.front();
    bool new_sel = false;
    if (q.bufs != nullptr && e.payload == nullptr && r->needs_buf) {
      int b = q.bufs->Take();
      if (b < 0) {
        stats.waits_for_buffer++;
        q.pending.push_back(r);
        return;
      }
      VerifyEntry(q, e, "at the next delivery");
      e.buf = b;
      new_sel = true;
      stats.buffer_selections++;
    } else {
      VerifyEntry(q, e, "at the next delivery");
    }
    q.avail.pop_front();
    Deliver(q, e, r, new_sel);
  }
  void CheckReady() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (ready) return;
    for (const Queue& q : queues) {
      if (!q.registered_any) return;
    }
    ready = true;  // fuse_uring_do_register: ring->ready, fiq->ops switched
    // The callers blocked until now send their requests as new arrivals.
    for (Queue& q : queues) {
      std::deque<Request*> waiting;
      waiting.swap(q.pending);
      for (Request* r : waiting) Arrive(q, r);
    }
  }
};

namespace {

class RingImpl final : public uring::IoRing {
 public:
  RingImpl(KernelModel::State* s, unsigned entries, bool sqe128)
      : s_(s), sqe128_(sqe128), slots_(std::max(1u, entries) * 128) {
    MutexLock l(&s_->mu);
    s_->rings.insert(this);
  }
  ~RingImpl() override;

  io_uring_sqe* GetSqe() override {
    if (nsq_ * 128 >= slots_.size()) return nullptr;
    char* p = &slots_[nsq_ * 128];
    memset(p, 0, 128);
    nsq_++;
    return reinterpret_cast<io_uring_sqe*>(p);
  }
  int Submit() override {
    MutexLock l(&s_->mu);
    return SubmitLocked();
  }
  int SubmitAndWait(unsigned wait_nr) override {
    MutexLock l(&s_->mu);
    int n = SubmitLocked();
    for (;;) {
      PollReadsLocked();
      if (cq_.size() >= wait_nr) break;
      // Eventfd writes do not signal the model: poll them every 2 ms.
      s_->cv.WaitWithTimeout(&s_->mu, absl::Milliseconds(2));
    }
    return n;
  }
  unsigned Reap(absl::FunctionRef<void(const uring::Completion&)> fn) override {
    std::deque<uring::Completion> batch;
    {
      MutexLock l(&s_->mu);
      PollReadsLocked();
      batch.swap(cq_);
    }
    for (const uring::Completion& c : batch) fn(c);
    return static_cast<unsigned>(batch.size());
  }
  int RegisterRaw(unsigned opcode, void* arg, unsigned nr_args) override;
  absl::StatusOr<void*> MapRegion(uint64_t offset, size_t len) override;
  void UnmapRegion(void*, size_t) override {}  // the model owns the memory
  bool sqe128() const override { return sqe128_; }
  bool FixedCovers(int index, const char* p, size_t len) const {
    if (index < 0 || static_cast<size_t>(index) >= regbufs_.size() || kslot_[index]) return false;
    const char* lo = static_cast<const char*>(regbufs_[index].iov_base);
    return lo != nullptr && p >= lo && p + len <= lo + regbufs_[index].iov_len;
  }
  // io_buffer_register_bvec(): a kernel buffer (address 0) in an empty slot.
  int FillKernelSlot(uint16_t slot, char* p, size_t len) {
    if (slot >= regbufs_.size()) return -EINVAL;
    if (regbufs_[slot].iov_base != nullptr) return -EBUSY;
    regbufs_[slot] = {p, len};
    kslot_[slot] = 1;
    dropped_.erase(slot);
    return 0;
  }
  // io_buffer_unregister_bvec(): the slot is empty again.
  void DropKernelSlot(uint16_t slot) {
    if (slot >= regbufs_.size() || !kslot_[slot]) return;
    regbufs_[slot] = {};
    kslot_[slot] = 0;
    dropped_.insert(slot);
  }
  int ring_fd() const override { return -1; }

  std::deque<uring::Completion> cq_;  // guarded by s_->mu

 private:
  struct PendingRead {
    int fd;
    void* buf;
    unsigned len;
    uint64_t user_data;
  };

  int SubmitLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_->mu) {
    int n = static_cast<int>(nsq_);
    for (unsigned i = 0; i < nsq_; i++) {
      Process(reinterpret_cast<const io_uring_sqe*>(&slots_[i * 128]));
    }
    nsq_ = 0;
    return n;
  }
  void PollReadsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_->mu) {
    for (auto it = reads_.begin(); it != reads_.end();) {
      struct pollfd p = {it->fd, POLLIN, 0};
      if (poll(&p, 1, 0) == 1) {
        ssize_t n = read(it->fd, it->buf, it->len);
        cq_.push_back({it->user_data, n < 0 ? -errno : static_cast<int32_t>(n), 0});
        it = reads_.erase(it);
      } else {
        ++it;
      }
    }
  }
  void Post(uint64_t ud, int32_t res) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_->mu) {
    s_->PostCqe(this, ud, res, 0);
  }
  void Process(const io_uring_sqe* sqe) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_->mu);
  void UringCmd(const io_uring_sqe* sqe) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_->mu);
  // Fixed-buffer rule of a registered bufpool: 0 or -EINVAL.
  int CheckFixed(const Queue& q, const io_uring_sqe* sqe) const {
    if (q.fixed_index < 0) return 0;
    if (!(sqe->uring_cmd_flags & uring::kUringCmdFixed) || sqe->buf_index != q.fixed_index) {
      return -EINVAL;
    }
    return 0;
  }
  bool CapSysAdmin() const {
    if (!s_->opts.cap_from_submitter) return s_->opts.cap_sys_admin;
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &hdr, data) != 0) return false;
    return (data[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32))) != 0;
  }
  int Register(const io_uring_sqe* sqe, const fuse_uring_cmd_req_v46& c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_->mu);
  int Commit(const io_uring_sqe* sqe, const fuse_uring_cmd_req_v46& c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_->mu);
  int AddQueue(const fuse_uring_cmd_req_v46& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_->mu);
  int AddBufpool(const io_uring_sqe* sqe, const fuse_uring_cmd_req_v46& c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_->mu);
  // IORING_OP_READ_FIXED / WRITE_FIXED, done at once with pread/pwrite.
  int FixedIo(const io_uring_sqe* sqe) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_->mu);

  KernelModel::State* s_;
  const bool sqe128_;
  std::vector<char> slots_;  // always 128 bytes per slot; sqe128_ decides validity
  unsigned nsq_ = 0;
  std::vector<PendingRead> reads_;
  // The registered-buffer table: user memory, kernel pages (kslot_ 1:
  // zero-copy pages at address 0) or empty ({nullptr, 0}).
  std::vector<struct iovec> regbufs_;
  std::vector<char> kslot_;
  std::set<uint16_t> dropped_;  // slots whose zero-copy pages a commit dropped
  std::map<uint16_t, std::unique_ptr<BufSet>> kmrings_;
};

bool ImportFixedOk(const RingImpl* ring, int index, const char* p, size_t len) {
  return ring != nullptr && ring->FixedCovers(index, p, len);
}

}  // namespace

int KernelModel::State::ZcRegister(Entry& e, Request* r) {
  if (e.ring == nullptr) return -EINVAL;
  return e.ring->FillKernelSlot(e.zc_slot, r->pages.data(), r->pages.size());
}

void KernelModel::State::ZcDrop(Entry& e) {
  if (e.ring != nullptr) e.ring->DropKernelSlot(e.zc_slot);
}

void KernelModel::State::PostCqe(RingImpl* ring, uint64_t ud, int32_t res, uint32_t flags) {
  if (ring == nullptr) return;
  ring->cq_.push_back({ud, res, flags});
  cv.SignalAll();
}

namespace {

RingImpl::~RingImpl() {
  MutexLock l(&s_->mu);
  // io_uring exit cancels every command of the ring: entries are released
  // and the requests they held end with ECONNABORTED. Their memory may be
  // unmapped already (policies go before rings), so nothing is read.
  for (Queue& q : s_->queues) {
    bool touched = false;
    for (auto& e : q.entries) {
      if (e->ring != this || e->st == Entry::kDead) continue;
      touched = true;
      if (e->st == Entry::kUser) s_->End(e->req, -ECONNABORTED);
      e->req = nullptr;
      if (e->buf >= 0 && q.bufs) q.bufs->Put(static_cast<unsigned>(e->buf));
      e->buf = -1;
      e->has_sum = false;
      e->st = Entry::kDead;
      q.avail.erase(std::remove(q.avail.begin(), q.avail.end(), e.get()), q.avail.end());
    }
    if (touched) q.memory_gone = true;
    if (q.bufs && q.bufs->owner == this) q.bufs = nullptr;
  }
  for (auto& [bgid, br] : kmrings_) munmap(br->base, br->bytes);
  s_->rings.erase(this);
}

void RingImpl::Process(const io_uring_sqe* sqe) {
  switch (sqe->opcode) {
    case IORING_OP_NOP:
      return Post(sqe->user_data, 0);
    case IORING_OP_READ:
      reads_.push_back({sqe->fd, reinterpret_cast<void*>(sqe->addr), sqe->len, sqe->user_data});
      PollReadsLocked();
      if (!cq_.empty()) s_->cv.SignalAll();
      return;
    case uring::kOpUringCmd:
      return UringCmd(sqe);
    case IORING_OP_READ_FIXED:
    case IORING_OP_WRITE_FIXED:
      return Post(sqe->user_data, FixedIo(sqe));
    default:
      return Post(sqe->user_data, -EINVAL);
  }
}

void RingImpl::UringCmd(const io_uring_sqe* sqe) {
  const uint64_t ud = sqe->user_data;
  KernelModel::State& s = *s_;
  // fuse_uring_cmd(): the order of these checks is the kernel's.
  if (!sqe128_) return Post(ud, -EINVAL);
  if (sqe->fd != s.opts.fuse_fd) return Post(ud, -EOPNOTSUPP);
  // After the connection ended. 7.3 answers ENOTCONN even with
  // FUSE_ABORT_ERROR negotiated (measured after umount + fusectl abort).
  const int gone = (s.opts.abort_error && s.minor < 46) ? -ECONNABORTED : -ENOTCONN;
  if (s.minor >= 46) {
    if (!s.init_done) return Post(ud, -EAGAIN);
    if (s.aborted) return Post(ud, gone);
    if (s.uring_off) return Post(ud, -EOPNOTSUPP);
  } else {
    if (s.aborted) return Post(ud, gone);
    if (!s.init_done) return Post(ud, -EAGAIN);
  }
  fuse_uring_cmd_req_v46 c;
  memcpy(&c, reinterpret_cast<const char*>(sqe) + uring::kSqeCmdOffset, sizeof(c));
  int rc;
  switch (sqe->cmd_op) {
    case abi::FUSE_IO_URING_CMD_REGISTER:
      rc = Register(sqe, c);
      // 7.46: a failed REGISTER switches io-uring off for the connection.
      if (rc < 0 && s.minor >= 46) s.uring_off = true;
      break;
    case abi::FUSE_IO_URING_CMD_COMMIT_AND_FETCH:
      rc = Commit(sqe, c);
      break;
    case abi::FUSE_IO_URING_CMD_ADD_QUEUE:
      if (s.minor < 46) return Post(ud, -EINVAL);  // unknown cmd_op
      if (!s.Bufpool()) return Post(ud, -EOPNOTSUPP);
      return Post(ud, AddQueue(c));
    case abi::FUSE_IO_URING_CMD_ADD_BUFPOOL:
      if (s.minor < 46) return Post(ud, -EINVAL);
      if (!s.Bufpool()) return Post(ud, -EOPNOTSUPP);
      return Post(ud, AddBufpool(sqe, c));
    default:
      return Post(ud, -EINVAL);
  }
  // REGISTER and COMMIT_AND_FETCH stay in flight (-EIOCBQUEUED) on success.
  if (rc < 0) Post(ud, rc);
}

int RingImpl::Register(const io_uring_sqe* sqe, const fuse_uring_cmd_req_v46& c) {
  KernelModel::State& s = *s_;
  if (c.qid >= s.queues.size()) return -EINVAL;
  Queue& q = s.queues[c.qid];
  q.created = true;  // fuse_uring_create_queue() before the entry checks
  auto e = std::make_unique<Entry>();
  e->ring = this;
  e->user_data = sqe->user_data;
  e->qid = c.qid;
  e->index = static_cast<unsigned>(q.entries.size());
  if (s.opts.mode == Mode::kKmbuf && (c.flags & abi::FUSE_URING_BUF_RING)) {
    if (!(sqe->uring_cmd_flags & uring::kUringCmdFixed) || sqe->len != 0) return -EINVAL;
    // Headers live in registered buffer 0, entry buf_index at buf_index * 288.
    if (regbufs_.empty()) return -EFAULT;
    size_t off = size_t{sqe->buf_index} * kHeaderSize;
    if (off + kHeaderSize > regbufs_[0].iov_len) return -EFAULT;
    auto it = kmrings_.find(0);
    if (it == kmrings_.end()) return -EINVAL;
    BufSet* ring = it->second.get();
    if (ring->buf_size < s.MaxPayload()) return -EINVAL;
    if (q.bufs != nullptr && q.bufs != ring) return -EINVAL;
    for (auto& other : q.entries) {
      if (other->st != Entry::kDead && other->ring == this && other->kmbuf_hdr == sqe->buf_index) {
        return -EINVAL;
      }
    }
    ring->pinned = true;
    q.bufs = ring;
    e->kmbuf_hdr = sqe->buf_index;
    e->header = static_cast<char*>(regbufs_[0].iov_base) + off;
  } else {
    // fuse_uring_create_ring_ent()
    if (sqe->len != 2) return -EINVAL;
    if (sqe->addr == 0) return -EFAULT;  // import_iovec
    struct iovec iov[2];
    memcpy(iov, reinterpret_cast<const void*>(sqe->addr), sizeof(iov));
    if (s.minor >= 46) {
      // A slot on a queue without zero-copy is EINVAL; a zero-copy queue
      // takes any index, 0 included (measured on 7.3).
      if (c.ent_zero_copy_buf_index != 0 && !q.zero_copy) return -EINVAL;
      if (iov[0].iov_base == nullptr) return -EINVAL;
    }
    if (iov[0].iov_len < kHeaderSize) return -EINVAL;
    if (q.pool) {
      if (iov[1].iov_base != nullptr || iov[1].iov_len != 0) return -EINVAL;
      if (int rc = CheckFixed(q, sqe); rc < 0) return rc;
      if (q.zero_copy && q.fixed_index < 0) return -EINVAL;
      q.bufs = q.pool.get();
    } else {
      if (iov[1].iov_len < s.MaxPayload()) return -EINVAL;
      if (q.zero_copy) return -EINVAL;  // zero-copy needs a registered pool
      q.per_entry = true;
      e->payload = static_cast<char*>(iov[1].iov_base);
      e->payload_len = iov[1].iov_len;
    }
    e->header = static_cast<char*>(iov[0].iov_base);
    if (s.minor >= 46) e->zc_slot = c.ent_zero_copy_buf_index;
  }
  Entry* raw = e.get();
  q.entries.push_back(std::move(e));
  q.registered_any = true;
  // fuse_uring_do_register(): idle at the head of the list; it fetches
  // nothing by itself (queued requests wait for a commit or readiness).
  raw->st = Entry::kAvail;
  q.avail.push_front(raw);
  s.CheckReady();
  return 0;
}

int RingImpl::Commit(const io_uring_sqe* sqe, const fuse_uring_cmd_req_v46& c) {
  KernelModel::State& s = *s_;
  if (c.qid >= s.queues.size()) return -EINVAL;
  Queue& q = s.queues[c.qid];
  if (!q.created) return -ENOTCONN;
  if (int rc = CheckFixed(q, sqe); rc < 0) return rc;
  Entry* e = nullptr;
  for (auto& cand : q.entries) {
    if (cand->st == Entry::kUser && cand->req != nullptr && cand->req->unique == c.commit_id) {
      e = cand.get();
      break;
    }
  }
  if (e == nullptr) {
    s.Violation(absl::StrCat("queue ", c.qid, ": COMMIT_AND_FETCH with commit_id ", c.commit_id,
                             " that the daemon does not hold (stale or double commit)"));
    return -ENOENT;
  }
  e->ring = this;  // ent->cmd = cmd: this SQE now fetches for the entry
  e->user_data = sqe->user_data;
  Request* r = e->req;
  // fuse_uring_commit(): out header, then the reply args by payload_sz.
  const fuse_uring_req_header* h = reinterpret_cast<const fuse_uring_req_header*>(e->header);
  abi::fuse_out_header oh;
  memcpy(&oh, h->in_out, sizeof(oh));
  fuse_uring_ent_in_out ent;
  memcpy(&ent, &h->ring_ent_in_out, sizeof(ent));
  ModelReply rep;
  rep.out = oh;
  int32_t err = 0;
  const char* buf = e->payload;
  size_t cap = e->payload_len;
  if (buf == nullptr && e->buf >= 0 && q.bufs) {
    buf = q.bufs->Buf(e->buf);
    cap = q.bufs->buf_size;
  }
  const std::string who = absl::StrCat("queue ", c.qid, " entry ", e->index, " unique ", r->unique);
  if (oh.unique == 0) {
    s.Violation(absl::StrCat(who, ": reply with unique 0 (notifications are not supported on the ring)"));
    err = -EINVAL;
  } else if (oh.error <= -kErestartsys || oh.error > 0) {
    s.Violation(absl::StrCat(who, ": reply error ", oh.error, " outside (-ERESTARTSYS, 0]"));
    err = -EINVAL;
  } else if (oh.error != 0) {
    err = oh.error;
  } else if (oh.unique != r->unique) {
    s.Violation(absl::StrCat(who, ": reply unique ", oh.unique, " does not match"));
    err = -ENOENT;
  } else if (r->zc && r->in.opcode == abi::FUSE_READ) {
    // The data is in the caller's pages already; payload_sz says how much.
    if (ent.payload_sz > r->pages.size()) {
      s.Violation(absl::StrCat(who, ": zero-copy READ reply payload_sz ", ent.payload_sz,
                               " beyond the caller's ", r->pages.size(), " bytes"));
      err = -EINVAL;
    } else {
      rep.data.assign(r->pages.data(), ent.payload_sz);
    }
  } else if (ent.payload_sz > cap) {
    s.Violation(absl::StrCat(who, ": reply payload_sz ", ent.payload_sz,
                             " beyond the selected buffer (", cap, " bytes)"));
    err = -EINVAL;
  } else if (ent.payload_sz > r->out_max) {
    s.Violation(absl::StrCat(who, ": reply payload_sz ", ent.payload_sz,
                             " beyond what the request accepts (", r->out_max, " bytes)"));
    err = -EINVAL;
  } else {
    rep.data.assign(buf, ent.payload_sz);
  }
  if (err == 0 && r->in.opcode == abi::FUSE_OPEN && rep.data.size() >= sizeof(abi::fuse_open_out)) {
    abi::fuse_open_out oo;
    memcpy(&oo, rep.data.data(), sizeof(oo));
    // 7.3 accepts the flag whatever the queues are (measured: none or only
    // some zero-copy); READ/WRITE then go zero-copy on zero-copy queues.
    if (oo.open_flags & abi::FOPEN_IO_URING_ZERO_COPY) s.zc_fhs.insert(oo.fh);
  }
  if (r->zc) s.ZcDrop(*e);  // the pages leave the slot at commit
  rep.error = err;
  rep.out.len = static_cast<uint32_t>(sizeof(oh) + rep.data.size());
  r->reply = std::move(rep);
  r->done = true;
  e->req = nullptr;
  s.cv.SignalAll();
  s.SumEntry(q, *e);
  // fuse_uring_next_fuse_req(): this entry fetches the head request if it
  // can; otherwise it goes idle and its buffer goes back. (After a
  // zero-copy WRITE, 7.3 races here: the caller's next request took the
  // other idle entry in one run and this one in another.)
  if (!s.TryDeliver(q, *e)) s.Park(q, *e);
  return 0;
}

int RingImpl::AddQueue(const fuse_uring_cmd_req_v46& c) {
  KernelModel::State& s = *s_;
  if (c.qid >= s.queues.size()) return -EINVAL;
  Queue& q = s.queues[c.qid];
  if (c.flags & ~abi::FUSE_URING_ZERO_COPY) return -EINVAL;
  const bool zc = (c.flags & abi::FUSE_URING_ZERO_COPY) != 0;
  if (zc && !CapSysAdmin()) return -EPERM;
  if (q.created) return -EEXIST;
  q.created = true;
  q.added = true;
  q.zero_copy = zc;
  return 0;
}

int RingImpl::AddBufpool(const io_uring_sqe* sqe, const fuse_uring_cmd_req_v46& c) {
  KernelModel::State& s = *s_;
  if (c.qid >= s.queues.size()) return -EINVAL;
  if (c.flags != 0 || c.bufpool.reserved != 0) return -EINVAL;
  Queue& q = s.queues[c.qid];
  if (!q.created) return -EINVAL;
  const size_t bufsz = s.MaxPayload();
  // nr_bufs = len / max_payload (a remainder is ignored, measured on 7.3).
  if (c.bufpool.uaddr == 0) return -EINVAL;
  const unsigned n = static_cast<unsigned>(c.bufpool.len / bufsz);
  if (n == 0) return -EINVAL;
  // IORING_URING_CMD_FIXED marks the pool registered under buf_index; 7.3
  // checks neither the index nor the region here (nor that a zero-copy
  // queue's pool is registered: REGISTER refuses that).
  const int fixed = (sqe->uring_cmd_flags & uring::kUringCmdFixed) ? sqe->buf_index : -1;
  // The queue's payload mode is fixed by its first pool or REGISTER.
  if (q.pool || q.per_entry) return -EINVAL;
  q.pool = std::make_unique<BufSet>();
  q.pool->base = reinterpret_cast<char*>(c.bufpool.uaddr);
  q.pool->buf_size = bufsz;
  q.pool->fifo = false;
  q.pool->Init(n);
  q.fixed_index = fixed;
  return 0;
}

int RingImpl::RegisterRaw(unsigned opcode, void* arg, unsigned nr_args) {
  MutexLock l(&s_->mu);
  switch (opcode) {
    case kRegisterBuffers: {
      if (!regbufs_.empty()) return -EBUSY;
      if (arg == nullptr || nr_args == 0) return -EINVAL;
      const struct iovec* iov = static_cast<const struct iovec*>(arg);
      regbufs_.assign(iov, iov + nr_args);
      kslot_.assign(nr_args, 0);
      return 0;
    }
    case uring::kRegisterBuffers2: {
      if (arg == nullptr || nr_args != sizeof(io_uring_rsrc_register)) return -EINVAL;
      io_uring_rsrc_register rr;
      memcpy(&rr, arg, sizeof(rr));
      if (rr.resv2 != 0 || (rr.flags & ~uring::kRsrcRegisterSparse) != 0) return -EINVAL;
      if (!regbufs_.empty()) return -EBUSY;
      if (rr.nr == 0) return -EINVAL;
      if (rr.flags & uring::kRsrcRegisterSparse) {
        if (rr.data != 0) return -EINVAL;
        regbufs_.assign(rr.nr, iovec{});
      } else {
        const struct iovec* iov = reinterpret_cast<const struct iovec*>(rr.data);
        if (iov == nullptr) return -EFAULT;
        regbufs_.assign(iov, iov + rr.nr);
      }
      kslot_.assign(rr.nr, 0);
      dropped_.clear();
      return 0;
    }
    case uring::kRegisterBuffersUpdate: {
      if (arg == nullptr || nr_args != sizeof(io_uring_rsrc_update2)) return -EINVAL;
      io_uring_rsrc_update2 up;
      memcpy(&up, arg, sizeof(up));
      if (regbufs_.empty()) return -ENXIO;
      if (up.resv != 0 || up.resv2 != 0) return -EINVAL;
      if (size_t{up.offset} + up.nr > regbufs_.size()) return -EINVAL;
      const struct iovec* iov = reinterpret_cast<const struct iovec*>(up.data);
      if (iov == nullptr && up.nr != 0) return -EFAULT;
      for (unsigned i = 0; i < up.nr; i++) {
        regbufs_[up.offset + i] = iov[i];
        kslot_[up.offset + i] = 0;
        dropped_.erase(static_cast<uint16_t>(up.offset + i));
      }
      return static_cast<int>(up.nr);
    }
    case kUnregisterBuffers:
      if (regbufs_.empty()) return -ENXIO;
      regbufs_.clear();
      kslot_.clear();
      dropped_.clear();
      return 0;
    case uring::kRegisterPbufRing: {
      if (nr_args != 1 || arg == nullptr) return -EINVAL;
      uring::KmbufReg reg;
      memcpy(&reg, arg, sizeof(reg));
      // Provided (userspace-allocated) rings are not modelled; without the
      // kmbuf series the kernel-managed flag is unknown: EINVAL (as 6.18).
      if (!(reg.flags & uring::kPbufRingKernelManaged) || s_->opts.mode != Mode::kKmbuf) {
        return -EINVAL;
      }
      if (!(reg.flags & uring::kPbufRingMmap) || (reg.flags & uring::kPbufRingInc)) return -EINVAL;
      if (reg.resv[0] || reg.resv[1] || reg.resv[2]) return -EINVAL;
      if (reg.buf_size == 0 || reg.buf_size % 4096 != 0) return -EINVAL;
      if (reg.ring_entries == 0 || reg.ring_entries >= 65536 ||
          (reg.ring_entries & (reg.ring_entries - 1)) != 0) {
        return -EINVAL;
      }
      if (kmrings_.count(reg.bgid)) return -EEXIST;
      auto br = std::make_unique<BufSet>();
      br->bytes = size_t{reg.ring_entries} * reg.buf_size;
      void* m = mmap(nullptr, br->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) return -ENOMEM;
      br->base = static_cast<char*>(m);
      br->buf_size = reg.buf_size;
      br->fifo = true;
      br->bgid = reg.bgid;
      br->owner = this;
      br->Init(reg.ring_entries);  // pre-filled: bid i -> buffer i
      kmrings_[reg.bgid] = std::move(br);
      return 0;
    }
    case uring::kUnregisterPbufRing: {
      if (nr_args != 1 || arg == nullptr) return -EINVAL;
      io_uring_buf_reg reg;
      memcpy(&reg, arg, sizeof(reg));
      auto it = kmrings_.find(reg.bgid);
      if (it == kmrings_.end()) return -ENOENT;
      if (it->second->pinned) return -EBUSY;
      munmap(it->second->base, it->second->bytes);
      kmrings_.erase(it);
      return 0;
    }
    default:
      return -EINVAL;
  }
}

int RingImpl::FixedIo(const io_uring_sqe* sqe) {
  const uint16_t slot = sqe->buf_index;
  const bool write = sqe->opcode == IORING_OP_WRITE_FIXED;
  if (slot >= regbufs_.size() || regbufs_[slot].iov_base == nullptr) {
    if (dropped_.count(slot)) {
      s_->Violation(absl::StrCat(write ? "WRITE_FIXED" : "READ_FIXED", " on slot ", slot,
                                 " after the commit that dropped its zero-copy pages"));
    }
    return -EFAULT;  // io_import_reg_buf(): no buffer in that slot
  }
  char* lo = static_cast<char*>(regbufs_[slot].iov_base);
  const size_t n = regbufs_[slot].iov_len;
  char* p;
  if (kslot_[slot]) {
    // Kernel pages start at address 0: addr is the offset into them.
    if (sqe->addr > n || sqe->len > n - sqe->addr) return -EFAULT;
    p = lo + sqe->addr;
  } else {
    const uint64_t base = reinterpret_cast<uint64_t>(lo);
    if (sqe->addr < base || sqe->addr - base > n || sqe->len > n - (sqe->addr - base)) return -EFAULT;
    p = reinterpret_cast<char*>(sqe->addr);
  }
  ssize_t r = write ? pwrite(sqe->fd, p, sqe->len, static_cast<off_t>(sqe->off))
                    : pread(sqe->fd, p, sqe->len, static_cast<off_t>(sqe->off));
  s_->stats.fixed_ops++;
  return r < 0 ? -errno : static_cast<int>(r);
}

absl::StatusOr<void*> RingImpl::MapRegion(uint64_t offset, size_t len) {
  MutexLock l(&s_->mu);
  if (!(offset & uring::kOffPbufRing)) return absl::InvalidArgumentError("unknown mmap offset");
  uint16_t bgid = static_cast<uint16_t>((offset & ~uring::kOffPbufRing) >> uring::kOffPbufShift);
  auto it = kmrings_.find(bgid);
  if (it == kmrings_.end()) return absl::InvalidArgumentError("no kernel-managed ring at that bgid");
  if (len > it->second->bytes) return absl::InvalidArgumentError("mapping longer than the buffers");
  return static_cast<void*>(it->second->base);
}

}  // namespace

KernelModel::KernelModel(const ModelOptions& options)
    : options_(options), s_(std::make_unique<State>(options)) {}

KernelModel::~KernelModel() {
  MutexLock l(&s_->mu);
  if (!s_->rings.empty()) {
    fprintf(stderr, "kernel model: destroyed while %zu ring(s) still exist\n", s_->rings.size());
    abort();
  }
}

size_t KernelModel::max_payload() const { return s_->MaxPayload(); }

uint32_t KernelModel::minor() const { return s_->minor; }

std::unique_ptr<uring::IoRing> KernelModel::NewRing(unsigned entries, bool sqe128) {
  return std::make_unique<RingImpl>(s_.get(), entries, sqe128);
}

void KernelModel::SetInitDone() {
  MutexLock l(&s_->mu);
  s_->init_done = true;
}

uint64_t KernelModel::Inject(uint16_t qid, const abi::fuse_in_header& in, absl::string_view op,
                             absl::string_view payload, uint32_t out_max) {
  if (qid >= options_.nr_queues || op.size() > abi::FUSE_URING_OP_IN_OUT_SZ ||
      payload.size() > max_payload()) {
    fprintf(stderr, "kernel model: Inject: qid %u / op %zu / payload %zu bytes out of range\n", qid,
            op.size(), payload.size());
    abort();
  }
  MutexLock l(&s_->mu);
  auto r = std::make_unique<Request>();
  s_->next_unique += 2;  // FUSE_REQ_ID_STEP
  r->ticket = s_->next_unique;  // == unique, as callers may rely on
  r->unique = s_->next_unique;
  r->qid = qid;
  r->in = in;
  r->in.unique = r->unique;
  r->in.len = static_cast<uint32_t>(sizeof(in) + op.size() + payload.size());
  r->op = std::string(op);
  r->payload = std::string(payload);
  r->out_max = out_max;
  // fuse_uring_req_has_copyable_payload(): in_numargs > 1 || out_numargs.
  r->needs_buf = !payload.empty() || out_max > 0;
  Request* raw = r.get();
  s_->requests[raw->ticket] = std::move(r);
  if (s_->aborted) {
    s_->End(raw, -ENOTCONN);
  } else {
    s_->Arrive(s_->queues[qid], raw);
  }
  return raw->ticket;
}

uint64_t KernelModel::InjectPages(uint16_t qid, const abi::fuse_in_header& in,
                                  absl::string_view op, absl::string_view pages, uint32_t out_max) {
  const bool write = in.opcode == abi::FUSE_WRITE;
  uint64_t fh = 0;
  if (op.size() >= sizeof(fh)) memcpy(&fh, op.data(), sizeof(fh));
  bool zc = false;
  {
    MutexLock l(&s_->mu);
    zc = qid < options_.nr_queues && (write || in.opcode == abi::FUSE_READ) &&
         s_->zc_fhs.count(fh) != 0 && s_->queues[qid].zero_copy;
  }
  if (!zc) return Inject(qid, in, op, write ? pages : absl::string_view(), out_max);
  if (op.size() > abi::FUSE_URING_OP_IN_OUT_SZ) {
    fprintf(stderr, "kernel model: InjectPages: op %zu bytes out of range\n", op.size());
    abort();
  }
  MutexLock l(&s_->mu);
  auto r = std::make_unique<Request>();
  s_->next_unique += 2;
  r->ticket = s_->next_unique;
  r->unique = s_->next_unique;
  r->qid = qid;
  r->in = in;
  r->in.unique = r->unique;
  r->in.len = static_cast<uint32_t>(sizeof(in) + op.size() + (write ? pages.size() : 0));
  r->op = std::string(op);
  r->out_max = out_max;
  r->zc = true;
  r->pages = std::string(pages);
  // A zero-copy READ needs no pool buffer; a WRITE one for its reply.
  r->needs_buf = write;
  Request* raw = r.get();
  s_->requests[raw->ticket] = std::move(r);
  if (s_->aborted) {
    s_->End(raw, -ENOTCONN);
  } else {
    s_->Arrive(s_->queues[qid], raw);
  }
  return raw->ticket;
}

uint64_t KernelModel::InjectNotifyReply(uint16_t qid, uint64_t nodeid, uint64_t notify_unique,
                                        uint64_t offset, absl::string_view data) {
  if (qid >= options_.nr_queues ||
      sizeof(abi::fuse_notify_retrieve_in) + data.size() > max_payload()) {
    fprintf(stderr, "kernel model: InjectNotifyReply: qid %u / %zu bytes out of range\n", qid,
            data.size());
    abort();
  }
  abi::fuse_notify_retrieve_in ri{};
  ri.offset = offset;
  ri.size = static_cast<uint32_t>(data.size());
  std::string payload(reinterpret_cast<const char*>(&ri), sizeof(ri));
  payload.append(data.data(), data.size());
  MutexLock l(&s_->mu);
  auto r = std::make_unique<Request>();
  r->ticket = (++s_->next_ticket << 1) | 1;  // odd: never a request's unique
  r->unique = notify_unique;  // fuse_simple_notify_reply(): the daemon's id
  r->qid = qid;
  r->in.opcode = abi::FUSE_NOTIFY_REPLY;
  r->in.nodeid = nodeid;
  r->in.unique = notify_unique;
  r->in.len = static_cast<uint32_t>(sizeof(r->in) + payload.size());
  r->payload = std::move(payload);
  r->out_max = 0;
  r->needs_buf = true;
  Request* raw = r.get();
  s_->requests[raw->ticket] = std::move(r);
  if (s_->aborted) {
    s_->End(raw, -ENOTCONN);
  } else {
    s_->Arrive(s_->queues[qid], raw);
  }
  return raw->ticket;
}

std::optional<ModelReply> KernelModel::WaitReply(uint64_t ticket, absl::Duration timeout) {
  MutexLock l(&s_->mu);
  absl::Time deadline = absl::Now() + timeout;
  auto it = s_->requests.find(ticket);
  if (it == s_->requests.end()) return std::nullopt;
  Request* r = it->second.get();
  while (!r->done) {
    if (s_->cv.WaitWithDeadline(&s_->mu, deadline) && !r->done) return std::nullopt;
  }
  ModelReply rep = r->reply;
  s_->requests.erase(it);
  return rep;
}

void KernelModel::Abort() {
  MutexLock l(&s_->mu);
  State& s = *s_;
  if (s.aborted) return;
  s.aborted = true;
  for (Queue& q : s.queues) {
    // fuse_uring_abort_end_requests(): queued requests end ECONNABORTED.
    for (Request* r : q.pending) s.End(r, -ECONNABORTED);
    q.pending.clear();
    for (auto& e : q.entries) {
      if (e->st == Entry::kUser) {
        // Held by the daemon: the request ends now; its later commit fails.
        if (e->req != nullptr && e->req->zc) s.ZcDrop(*e);
        s.End(e->req, -ECONNABORTED);
        e->req = nullptr;
      } else if (e->st == Entry::kAvail) {
        // fuse_uring_teardown_entries(): idle entries complete -ENOTCONN.
        s.Recycle(q, *e, "at teardown");
        s.VerifyEntry(q, *e, "at teardown");
        e->st = Entry::kDead;
        s.PostCqe(e->ring, e->user_data, -ENOTCONN, 0);
      }
    }
    q.avail.clear();
  }
  s.cv.SignalAll();
}

bool KernelModel::aborted() const {
  MutexLock l(&s_->mu);
  return s_->aborted;
}

bool KernelModel::ready() const {
  MutexLock l(&s_->mu);
  return s_->ready;
}

unsigned KernelModel::RegisteredEntries(uint16_t qid) const {
  MutexLock l(&s_->mu);
  unsigned n = 0;
  for (auto& e : s_->queues.at(qid).entries) n += e->st != Entry::kDead;
  return n;
}

unsigned KernelModel::FreeBuffers(uint16_t qid) const {
  MutexLock l(&s_->mu);
  const Queue& q = s_->queues.at(qid);
  return q.bufs ? q.bufs->Free() : 0;
}

unsigned KernelModel::TotalBuffers(uint16_t qid) const {
  MutexLock l(&s_->mu);
  const Queue& q = s_->queues.at(qid);
  return q.bufs ? q.bufs->count : 0;
}

size_t KernelModel::Queued(uint16_t qid) const {
  MutexLock l(&s_->mu);
  return s_->queues.at(qid).pending.size();
}

void KernelModel::VerifyQuiescent() {
  MutexLock l(&s_->mu);
  for (Queue& q : s_->queues) {
    if (q.memory_gone) continue;
    for (auto& e : q.entries) {
      if (e->st != Entry::kAvail || !e->has_sum) continue;
      s_->VerifyEntry(q, *e, "by VerifyQuiescent");
      s_->SumEntry(q, *e);
    }
    if (q.bufs == nullptr) continue;
    for (unsigned b = 0; b < q.bufs->count; b++) {
      if (q.bufs->used[b] || !q.bufs->has_sum[b]) continue;
      s_->VerifyBuf(q, b, "by VerifyQuiescent");
      q.bufs->sum[b] = Checksum(kFnvBasis, q.bufs->Buf(b), q.bufs->buf_size);
      q.bufs->has_sum[b] = true;
    }
  }
}

std::vector<std::string> KernelModel::violations() const {
  MutexLock l(&s_->mu);
  return s_->violations;
}

void KernelModel::ClearViolations() {
  MutexLock l(&s_->mu);
  s_->violations.clear();
}

ModelStats KernelModel::stats() const {
  MutexLock l(&s_->mu);
  return s_->stats;
}

}  // namespace kmfuse::model
