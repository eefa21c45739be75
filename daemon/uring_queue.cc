#include "daemon/uring_queue.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/proto/reply_header.h"
#include "daemon/proto/request.h"
#include "daemon/queue_sched.h"
#include "fs/plan_executor.h"
#include "uring/base/mapping.h"
#include "uring/fixed_buffers.h"
#include "uring/sqe.h"

namespace kmfuse {
namespace {

using abi::fuse_uring_cmd_req;
using abi::fuse_uring_req_header;

// user_data on a worker's ring: bits 16..31 name the queue (its place in
// the worker), the rest is the queue's own: an entry's index (< 65536) for
// its URING_CMDs, | kBackendReadBit for a backend read, | kFixedOpBit for a
// zero-copy fixed op, kWakeTag for the wake fd read.
constexpr unsigned kQueueShift = 16;
constexpr uint64_t kQueueBits = uint64_t{0xffff} << kQueueShift;
constexpr uint64_t kWakeTag = uint64_t{1} << 42;
// user_data of a backend read: entry index | kBackendReadBit; of a
// zero-copy fixed op: entry index | kFixedOpBit.
constexpr uint64_t kBackendReadBit = uint64_t{1} << 40;
constexpr uint64_t kFixedOpBit = uint64_t{1} << 41;

// Per-entry buffers: the 6.14+ ABI. Headers and payloads live in one
// anonymous mapping owned by the policy; REGISTER hands the kernel both
// through iovecs and the payload never moves.
class PerEntryPolicy final : public PayloadPolicy {
 public:
  const char* name() const override { return "per-entry"; }

  absl::Status Setup(uring::IoRing&, const PolicySetup& s) override {
    const uint16_t qid = s.qid;
    const unsigned entries = s.entries;
    qid_ = qid;
    entries_ = entries;
    // Page multiples keep every payload page-aligned; larger than the
    // kernel's size is allowed for per-entry buffers.
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    payload_ = (s.payload_size + page - 1) / page * page;
    headers_bytes_ = (entries * sizeof(fuse_uring_req_header) + 4095) & ~size_t{4095};
    bytes_ = headers_bytes_ + entries * payload_;
    absl::StatusOr<Mapping> m = Mapping::Anonymous(
        bytes_, absl::StrCat("queue ", qid, ": ", bytes_ >> 20,
                             " MiB of buffers (lower -o queue_depth or -o max_write)"));
    if (!m.ok()) return m.status();
    mem_map_ = std::move(*m);
    mem_ = mem_map_.as<char>();
    iov_.resize(entries * 2);
    return absl::OkStatus();
  }
  fuse_uring_req_header* Header(unsigned i) override {
    return reinterpret_cast<fuse_uring_req_header*>(mem_ + i * sizeof(fuse_uring_req_header));
  }
  char* Payload(unsigned i) const { return mem_ + headers_bytes_ + i * payload_; }

  void PrepRegister(io_uring_sqe* sqe, int fuse_fd, UringEntry& e, uint64_t ud) override {
    struct iovec* iov = &iov_[e.index() * 2];
    iov[0] = {e.header(), sizeof(fuse_uring_req_header)};
    iov[1] = {Payload(e.index()), payload_};
    e.set_payload(Payload(e.index()));
    PrepFuseUringCmd(sqe, fuse_fd, abi::FUSE_IO_URING_CMD_REGISTER, 0, 0, qid_, ud);
    sqe->addr = reinterpret_cast<uint64_t>(iov);
    sqe->len = 2;
  }
  void PrepCommit(io_uring_sqe* sqe, int fuse_fd, UringEntry& e, uint64_t ud) override {
    PrepFuseUringCmd(sqe, fuse_fd, abi::FUSE_IO_URING_CMD_COMMIT_AND_FETCH, 0, e.unique(),
                     qid_, ud);
  }
  int OnDelivered(UringEntry&, uint32_t) override { return 0; }
  size_t payload_capacity() const override { return payload_; }
  size_t buffer_bytes() const override { return bytes_; }
  // The kernel keeps each entry's payload address until the ring is gone.
  bool uses_ring_in_destructor() const override { return false; }

 private:
  uint16_t qid_ = 0;
  unsigned entries_ = 0;
  size_t payload_ = 0;
  size_t headers_bytes_ = 0;
  size_t bytes_ = 0;
  // Headers and payloads; unmapped when the policy goes, after the ring.
  Mapping mem_map_;
  char* mem_ = nullptr;
  std::vector<struct iovec> iov_;  // must stay valid while REGISTER is in flight
};

// How a READ plan (Answer::ReadFromFd) is served on the queue thread.
// Decided from the plan's fd_flags (the flags the filesystem opened the file
// with) and, for O_DIRECT only, one fstatfs per open file remembered per
// serving thread, so the steady state costs the read itself and nothing
// else.
enum class ReadRoute {
  // preadv2(RWF_NOWAIT) right here; only a read that would block (EAGAIN)
  // goes to the ring. Buffered fds of filesystems that support NOWAIT.
  kNowait,
  // A plain synchronous read on the queue thread. Files in memory (tmpfs,
  // ramfs) opened O_DIRECT: tmpfs refuses RWF_NOWAIT (EOPNOTSUPP) and the
  // ring punts such a read to an io-wq worker, a thread hop and a second
  // io_uring_enter per request for what is a memcpy. Also buffered fds
  // whose filesystem answered RWF_NOWAIT with EOPNOTSUPP.
  kSync,
  // IORING_OP_READ on the queue's ring, committed on completion: O_DIRECT
  // on a device, where a synchronous read would stall the queue.
  kRing,
};

ReadRoute ClassifyReadFd(int fd, int fd_flags) {
  if ((fd_flags & O_DIRECT) == 0) return ReadRoute::kNowait;
  struct statfs st;
  if (fstatfs(fd, &st) == 0 &&
      (st.f_type == TMPFS_MAGIC || st.f_type == RAMFS_MAGIC)) {
    return ReadRoute::kSync;
  }
  return ReadRoute::kRing;
}

// A few recently used O_DIRECT files per serving thread. An entry is keyed
// by the fd and by the control block of the object that owns it (the plan's
// `pin`): the weak_ptr keeps that control block allocated, so no
// other object can reuse it while the entry exists, and a stale fd number
// never matches a newer file. A wrong guess would only cost speed: every
// route reads the same bytes.
class ReadRouteCache {
 public:
  ReadRoute Get(int fd, int fd_flags, const std::shared_ptr<const void>& pin) {
    if (pin == nullptr) return ClassifyReadFd(fd, fd_flags);
    Slot& s = slots_[(reinterpret_cast<uintptr_t>(pin.get()) >> 4 ^ static_cast<unsigned>(fd)) %
                     kSlots];
    if (s.fd == fd && !s.owner.owner_before(pin) && !pin.owner_before(s.owner) &&
        !s.owner.expired()) {
      return s.route;
    }
    s.owner = pin;
    s.fd = fd;
    s.route = ClassifyReadFd(fd, fd_flags);
    return s.route;
  }
  // The filesystem refused RWF_NOWAIT for this file: read it synchronously
  // from now on (as the caller would after every refusal).
  void Demote(int fd, const std::shared_ptr<const void>& pin) {
    if (pin == nullptr) return;
    Slot& s = slots_[(reinterpret_cast<uintptr_t>(pin.get()) >> 4 ^ static_cast<unsigned>(fd)) %
                     kSlots];
    if (s.fd == fd && !s.owner.owner_before(pin) && !pin.owner_before(s.owner)) {
      s.route = ReadRoute::kSync;
    }
  }

 private:
  static constexpr unsigned kSlots = 16;
  struct Slot {
    std::weak_ptr<const void> owner;
    int fd = -1;
    ReadRoute route = ReadRoute::kRing;
  };
  Slot slots_[kSlots];
};

thread_local ReadRouteCache read_routes;

}  // namespace

std::unique_ptr<PayloadPolicy> MakePerEntryPolicy() { return std::make_unique<PerEntryPolicy>(); }

bool HasPoolPayload(uint32_t opcode) {
  switch (opcode) {
    case abi::FUSE_FORGET:
    case abi::FUSE_RELEASE:
    case abi::FUSE_FSYNC:
    case abi::FUSE_FLUSH:
    case abi::FUSE_RELEASEDIR:
    case abi::FUSE_FSYNCDIR:
    case abi::FUSE_SETLK:
    case abi::FUSE_SETLKW:
    case abi::FUSE_ACCESS:
    case abi::FUSE_INTERRUPT:
    case abi::FUSE_DESTROY:
    case abi::FUSE_BATCH_FORGET:
    case abi::FUSE_FALLOCATE:
    case abi::FUSE_SYNCFS:
      return false;
    default:
      return true;
  }
}

void PrepFuseUringCmd(io_uring_sqe* sqe, int fuse_fd, uint32_t cmd_op, uint64_t flags,
                      uint64_t unique, uint16_t qid, uint64_t user_data) {
  fuse_uring_cmd_req req{};
  req.flags = flags;
  req.commit_id = unique;  // the kernel's commit id is the request's unique
  req.qid = qid;
  // 24 bytes always fit the 80-byte SQE128 command area.
  bool fits = uring::PrepUringCmd(sqe, true, fuse_fd, cmd_op, &req, sizeof(req), user_data);
  (void)fits;
}

absl::Span<char> UringEntry::ArgArea() {
  if (state() != State::kDaemon) queue_->OwnershipBug(*this, "reply buffer used");
  if (payload_ == nullptr) return {};
  return absl::Span<char>(payload_, queue_->policy_->payload_capacity());
}

void UringEntry::Commit(Answer answer) {
  switch (answer.kind) {
    case Answer::Kind::kArgs:
      return queue_->CommitFromEntry(this, answer.error, answer.args_len);
    case Answer::Kind::kReadFromFd:
      return queue_->StartBackendRead(this, std::move(answer.plan));
    case Answer::Kind::kWriteToFd:
      return queue_->StartZeroCopyWrite(this, std::move(answer.plan));
  }
}

bool UringEntry::DataInCallerPages() const {
  if (state() != State::kDaemon) queue_->OwnershipBug(*this, "zero-copy write");
  return zero_copy_ && opcode_ == abi::FUSE_WRITE;
}

bool UringEntry::ZeroCopyAvailable() const {
  const std::atomic<bool>* ready = queue_->cfg_.zero_copy_ready;
  return ready != nullptr && ready->load(std::memory_order_acquire);
}

void UringEntry::Drop() {
  // Requests that take no reply (FORGET, INTERRUPT) never travel the ring;
  // the entry still has to be committed to fetch the next request.
  queue_->CommitFromEntry(this, -EIO, 0);
}

UringQueue::UringQueue(const UringQueueConfig& cfg, std::unique_ptr<PayloadPolicy> policy,
                       proto::Dispatcher* dispatcher)
    : cfg_(cfg), policy_(std::move(policy)), dispatcher_(dispatcher) {}

UringQueue::~UringQueue() {
  // A worker of its own goes first (it drops the ring, and before it a
  // policy that uses the ring in its destructor); a transport's workers are
  // gone already. The kernel may write into the policy's memory until then.
  own_worker_.reset();
  policy_.reset();
}

const char* UringEntry::StateName(State s) {
  switch (s) {
    case State::kNew:
      return "new";
    case State::kInKernel:
      return "in-kernel";
    case State::kDaemon:
      return "daemon";
    case State::kBackendIo:
      return "backend-io";
    case State::kCommitQueued:
      return "commit-queued";
    case State::kDead:
      return "dead";
  }
  return "invalid";
}

void UringEntry::Transition(State from, State to, const char* what) {
  State seen = from;
  if (!state_.compare_exchange_strong(seen, to, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
    queue_->OwnershipBug(*this, what, seen);
  }
}

void UringQueue::OwnershipBug(const UringEntry& e, const char* what) const {
  OwnershipBug(e, what, e.state());
}

void UringQueue::OwnershipBug(const UringEntry& e, const char* what,
                              UringEntry::State seen) const {
  using State = UringEntry::State;
  const char* owner = seen == State::kInKernel       ? "the kernel"
                      : seen == State::kDaemon       ? "the filesystem"
                      : seen == State::kBackendIo    ? "the queue's fd operation"
                      : seen == State::kCommitQueued ? "the queue's pending commit"
                                                     : "nobody";
  fprintf(stderr,
          "kmfused: BUG: queue %u entry %u: %s while the entry is %s (buffer owned by %s)\n",
          cfg_.qid, e.index(), what, UringEntry::StateName(seen), owner);
  abort();
}

UringQueueStats UringQueue::stats() const {
  UringQueueStats st;
  st.requests = requests_.load(std::memory_order_relaxed);
  st.zero_copy_requests = zc_requests_.load(std::memory_order_relaxed);
  st.zero_copy_bytes = zc_bytes_.load(std::memory_order_relaxed);
  st.zero_copy_staged = zc_staged_.load(std::memory_order_relaxed);
  st.copied_bytes = copied_bytes_.load(std::memory_order_relaxed);
  return st;
}

void UringQueue::CommitFromEntry(UringEntry* e, int32_t error, size_t args_len,
                                 UringEntry::State from) {
  // The claim: of two threads answering the same entry, one wins here and
  // the other is reported, before either touches the header.
  e->Transition(from, UringEntry::State::kCommitQueued, "commit");
  if (e->zero_copy_ && e->opcode_ == abi::FUSE_WRITE && !e->zc_fixed_answer_ && error == 0) {
    // Answered as if the data span held the caller's bytes: it does not.
    static std::atomic<bool> said{false};
    if (!said.exchange(true)) {
      fprintf(stderr,
              "kmfused: BUG: a zero-copy WRITE was answered without Reply::WriteToFd (a "
              "filesystem set FOPEN_IO_URING_ZERO_COPY but wrote the data span); answering EIO\n");
    }
    error = -EIO;
    args_len = 0;
  }
  if (error == 0 && !e->zero_copy_ && e->opcode_ == abi::FUSE_READ) {
    copied_bytes_.fetch_add(args_len, std::memory_order_relaxed);
  }
  e->zero_copy_ = false;
  // Headers are written by whichever thread answers; it owns the entry now.
  proto::WriteReplyHeader(e->header_->in_out, e->unique_, error, args_len);
  abi::fuse_uring_ent_in_out ent;
  std::memcpy(&ent, &e->header_->ring_ent_in_out, sizeof(ent));
  ent.payload_sz = static_cast<uint32_t>(args_len);
  std::memcpy(&e->header_->ring_ent_in_out, &ent, sizeof(ent));
  if (std::this_thread::get_id() == thread_id_) {
    QueueCommitSqe(e);
    return;
  }
  {
    MutexLock l(&wake_mu_);
    wake_list_.push_back(e);
  }
  uint64_t one = 1;
  ssize_t n = write(wake_fd_.get(), &one, sizeof(one));
  (void)n;  // an eventfd write only fails on counter overflow, which cannot happen here
}

void UringQueue::StartZeroCopyWrite(UringEntry* e, FdPlan plan) {
  if (e->state() != UringEntry::State::kDaemon) OwnershipBug(*e, "zero-copy write");
  if (!e->zero_copy_ || e->opcode_ != abi::FUSE_WRITE) {
    // Reply::WriteToFd builds a WRITE plan only after DataInCallerPages().
    static std::atomic<bool> said{false};
    if (!said.exchange(true)) {
      fprintf(stderr,
              "kmfused: BUG: queue %u entry %u: a WRITE plan for a request whose data is in "
              "memory (opcode %u); answering EIO\n",
              cfg_.qid, e->index(), e->opcode_);
    }
    return CommitFromEntry(e, -EIO, 0);
  }
  e->Transition(UringEntry::State::kDaemon, UringEntry::State::kBackendIo, "zero-copy write");
  const size_t len = std::min(plan.len, e->zc_len_);
  if (std::this_thread::get_id() != thread_id_) {
    return HandOver(e, UringEntry::FdOp::kWriteFixed, plan.fd, plan.offset, len,
                    std::move(plan.pin));
  }
  StartFixed(e, UringEntry::FdOp::kWriteFixed, plan.fd, plan.offset, len, std::move(plan.pin));
}

void UringQueue::ReadNowAndCommit(UringEntry* e, const FdPlan& plan, size_t len) {
  ssize_t n = ReadFull(plan.fd, e->payload_, len, static_cast<off_t>(plan.offset));
  if (n < 0) return CommitFromEntry(e, static_cast<int32_t>(n), 0, UringEntry::State::kBackendIo);
  CommitFromEntry(e, 0, static_cast<size_t>(n), UringEntry::State::kBackendIo);
}

void UringQueue::StartBackendRead(UringEntry* e, FdPlan plan) {
  e->Transition(UringEntry::State::kDaemon, UringEntry::State::kBackendIo, "backend read");
  if (e->zero_copy_) {
    // The caller's pages are reachable only through the ring.
    const size_t len = std::min(plan.len, e->zc_len_);
    if (std::this_thread::get_id() != thread_id_) {
      return HandOver(e, UringEntry::FdOp::kReadFixed, plan.fd, plan.offset, len,
                      std::move(plan.pin));
    }
    StartFixed(e, UringEntry::FdOp::kReadFixed, plan.fd, plan.offset, len, std::move(plan.pin));
    return;
  }
  const size_t len =
      std::min(plan.len, e->payload_ != nullptr ? policy_->payload_capacity() : size_t{0});
  // Only the queue thread submits to its ring (single issuer): the thread
  // that answered reads into the payload buffer itself, as it would have
  // written any other reply there, and the commit goes through the wake list.
  if (std::this_thread::get_id() != thread_id_) return ReadNowAndCommit(e, plan, len);
  // Data already in memory (page cache, tmpfs) is cheapest to copy right
  // here: a ring round trip would cost an extra io_uring_enter per request.
  // RWF_NOWAIT fails with EAGAIN instead of blocking; only then the read
  // goes to the ring, so a slow device never stalls the queue.
  // Not for O_DIRECT: RWF_NOWAIT only avoids blocking on locks and block
  // mapping there, a synchronous direct read still waits for the device.
  const ReadRoute route = read_routes.Get(plan.fd, plan.fd_flags, plan.pin);
  if (route == ReadRoute::kSync) return ReadNowAndCommit(e, plan, len);
  struct iovec iov = {e->payload_, len};
  ssize_t n = -1;
  errno = EAGAIN;
  if (route == ReadRoute::kNowait) {
    n = preadv2(plan.fd, &iov, 1, static_cast<off_t>(plan.offset), RWF_NOWAIT);
    if (n < 0 && errno == EOPNOTSUPP) read_routes.Demote(plan.fd, plan.pin);
  }
  if (n >= 0) {
    if (static_cast<size_t>(n) < len && n > 0) {
      // Partly cached, or EOF: finish synchronously (ReadFull stops at EOF).
      ssize_t rest = ReadFull(plan.fd, e->payload_ + n, len - n,
                              static_cast<off_t>(plan.offset + n));
      if (rest > 0) n += rest;
    }
    return CommitFromEntry(e, 0, static_cast<size_t>(n), UringEntry::State::kBackendIo);
  }
  // EOPNOTSUPP, misaligned O_DIRECT...: the synchronous path knows how.
  if (errno != EAGAIN) return ReadNowAndCommit(e, plan, len);
  io_uring_sqe* sqe = ring_->GetSqe();
  if (sqe == nullptr) return ReadNowAndCommit(e, plan, len);
  e->read_fd_ = plan.fd;
  e->read_pin_ = std::move(plan.pin);
  e->read_off_ = plan.offset;
  e->read_len_ = len;
  io_uring_prep_read(sqe, plan.fd, e->payload_, static_cast<unsigned>(len), plan.offset);
  sqe->user_data = Tag(e) | kBackendReadBit;
}

void UringQueue::HandOver(UringEntry* e, UringEntry::FdOp op, int fd, uint64_t offset, size_t len,
                          std::shared_ptr<const void> pin) {
  // Only the queue thread submits to its ring: the op starts there.
  e->op_ = op;
  e->read_fd_ = fd;
  e->read_pin_ = std::move(pin);
  e->read_off_ = offset;
  e->read_len_ = len;
  e->start_op_ = true;
  {
    MutexLock l(&wake_mu_);
    wake_list_.push_back(e);
  }
  uint64_t one = 1;
  ssize_t n = write(wake_fd_.get(), &one, sizeof(one));
  (void)n;  // an eventfd write only fails on counter overflow, which cannot happen here
}

bool UringQueue::StartFixed(UringEntry* e, UringEntry::FdOp op, int fd, uint64_t offset,
                            size_t len, std::shared_ptr<const void> pin) {
  e->op_ = op;
  e->read_fd_ = fd;
  e->read_pin_ = std::move(pin);
  e->read_off_ = offset;
  e->read_len_ = len;
  e->read_done_ = 0;
  e->start_op_ = false;
  if (len == 0) {
    EndFixed(e, 0, 0);
    return true;
  }
  SubmitFixed(e);
  return true;
}

void UringQueue::SubmitFixed(UringEntry* e) {
  io_uring_sqe* sqe = uring::NextSqe(*ring_);
  const uint16_t slot = policy_->ZeroCopySlot(*e);
  // The kernel registered the caller's pages as a buffer starting at
  // address 0: addr is the offset into them.
  const uint64_t addr = e->read_done_;
  const unsigned len = static_cast<unsigned>(e->read_len_ - e->read_done_);
  const uint64_t off = e->read_off_ + e->read_done_;
  const uint64_t ud = Tag(e) | kFixedOpBit;
  switch (e->op_) {
    case UringEntry::FdOp::kReadFixed:
    case UringEntry::FdOp::kStageIn:
      uring::PrepReadFixed(sqe, e->read_fd_, addr, len, off, slot, ud);
      break;
    case UringEntry::FdOp::kWriteFixed:
    case UringEntry::FdOp::kStageOut:
      uring::PrepWriteFixed(sqe, e->read_fd_, addr, len, off, slot, ud);
      break;
    default:
      OwnershipBug(*e, "fixed op without an operation");
  }
}

int UringQueue::StagingFd() {
  if (!staging_fd_) staging_fd_.reset(memfd_create("kmfused-zero-copy-staging", MFD_CLOEXEC));
  return staging_fd_.get();
}

void UringQueue::FinishFixed(UringEntry* e, int32_t res) {
  if (e->state() != UringEntry::State::kBackendIo) OwnershipBug(*e, "fixed op completed");
  using FdOp = UringEntry::FdOp;
  const bool staged = e->op_ == FdOp::kStageIn || e->op_ == FdOp::kStageOut;
  if (res > 0) {
    e->read_done_ += static_cast<size_t>(res);
    if (!staged) zc_bytes_.fetch_add(static_cast<uint64_t>(res), std::memory_order_relaxed);
    // Short: go on until done, EOF (0) or an error, as ReadFull and
    // pwrite loops do.
    if (e->read_done_ < e->read_len_) return SubmitFixed(e);
    return EndFixed(e, 0, e->read_done_);
  }
  if (res == 0 || e->read_done_ > 0) return EndFixed(e, 0, e->read_done_);
  if (!staged && (res == -EINVAL || res == -EAGAIN || res == -EOPNOTSUPP)) {
    // An O_DIRECT fd whose alignment the caller's pages do not meet, or a
    // file without fixed-buffer I/O: go through daemon memory, answering
    // exactly what the copy path answers.
    zc_staged_.fetch_add(1, std::memory_order_relaxed);
    if (e->op_ == FdOp::kReadFixed) return StageReadIn(e);
    // WRITE: copy the caller's bytes into the payload buffer (the data span
    // the filesystem was shown) through the staging memfd, then hand the
    // request to the filesystem again as an ordinary WRITE.
    const int sfd = StagingFd();
    if (sfd < 0 || e->payload_ == nullptr) return EndFixed(e, -EIO, 0);
    e->read_pin_.reset();
    e->op_ = FdOp::kStageOut;
    e->read_fd_ = sfd;
    e->read_off_ = uint64_t{e->index()} * cfg_.payload_size;
    e->read_len_ = e->zc_len_;
    e->read_done_ = 0;
    return SubmitFixed(e);
  }
  EndFixed(e, res, 0);
}

void UringQueue::StageReadIn(UringEntry* e) {
  // Read into daemon memory the way the copy path does (ReadFull copes
  // with O_DIRECT alignment), then into the caller's pages from the memfd.
  const int sfd = StagingFd();
  if (sfd < 0) return EndFixed(e, -EIO, 0);
  if (staging_buf_.size() < cfg_.payload_size) staging_buf_.resize(cfg_.payload_size);
  const size_t len = std::min(e->read_len_, staging_buf_.size());
  ssize_t n = ReadFull(e->read_fd_, staging_buf_.data(), len, static_cast<off_t>(e->read_off_));
  e->read_pin_.reset();
  if (n <= 0) return EndFixed(e, static_cast<int32_t>(n), 0);
  const off_t at = static_cast<off_t>(uint64_t{e->index()} * cfg_.payload_size);
  if (pwrite(sfd, staging_buf_.data(), static_cast<size_t>(n), at) != n) {
    return EndFixed(e, -EIO, 0);
  }
  e->op_ = UringEntry::FdOp::kStageIn;
  e->read_fd_ = sfd;
  e->read_off_ = static_cast<uint64_t>(at);
  e->read_len_ = static_cast<size_t>(n);
  e->read_done_ = 0;
  SubmitFixed(e);
}

void UringQueue::EndFixed(UringEntry* e, int32_t error, size_t done) {
  using FdOp = UringEntry::FdOp;
  const FdOp op = e->op_;
  e->op_ = FdOp::kNone;
  e->read_fd_ = -1;
  e->read_pin_.reset();
  if (op == FdOp::kStageOut) {
    // The caller's bytes are in the memfd: into the data span, then the
    // filesystem answers the WRITE again, from memory this time.
    ssize_t n = error == 0 && done == e->zc_len_
                    ? pread(staging_fd_.get(), e->payload_, e->zc_len_,
                            static_cast<off_t>(uint64_t{e->index()} * cfg_.payload_size))
                    : -1;
    if (n != static_cast<ssize_t>(e->zc_len_)) {
      return CommitFromEntry(e, -EIO, 0, UringEntry::State::kBackendIo);
    }
    e->zero_copy_ = false;
    e->Transition(UringEntry::State::kBackendIo, UringEntry::State::kDaemon,
                  "staged write delivered again");
    return Deliver(e);
  }
  constexpr UringEntry::State kFrom = UringEntry::State::kBackendIo;
  if (error != 0) return CommitFromEntry(e, error, 0, kFrom);
  e->zc_fixed_answer_ = true;
  if (op == FdOp::kWriteFixed) {
    abi::fuse_write_out out{};
    out.size = static_cast<uint32_t>(done);
    if (e->payload_ == nullptr) return CommitFromEntry(e, -EIO, 0, kFrom);
    std::memcpy(e->payload_, &out, sizeof(out));
    return CommitFromEntry(e, 0, sizeof(out), kFrom);
  }
  CommitFromEntry(e, 0, done, kFrom);
}

void UringQueue::FinishBackendRead(UringEntry* e, int32_t res) {
  if (e->state() != UringEntry::State::kBackendIo) OwnershipBug(*e, "backend read completed");
  if (res == -EINVAL || res == -EAGAIN || res == -EOPNOTSUPP) {
    // O_DIRECT alignment the ring read cannot meet, or a file that does not
    // support it: the synchronous path knows how (bounce buffer).
    ssize_t n = ReadFull(e->read_fd_, e->payload_, e->read_len_,
                          static_cast<off_t>(e->read_off_));
    res = static_cast<int32_t>(n);
  } else if (res >= 0 && static_cast<size_t>(res) < e->read_len_ && res > 0) {
    // A short read before EOF (possible on some files): finish synchronously.
    ssize_t n = ReadFull(e->read_fd_, e->payload_ + res, e->read_len_ - res,
                          static_cast<off_t>(e->read_off_ + res));
    if (n > 0) res += static_cast<int32_t>(n);
  }
  e->read_fd_ = -1;
  e->read_pin_.reset();
  if (res < 0) return CommitFromEntry(e, res, 0, UringEntry::State::kBackendIo);
  CommitFromEntry(e, 0, static_cast<size_t>(res), UringEntry::State::kBackendIo);
}

void UringQueue::QueueCommitSqe(UringEntry* e) {
  io_uring_sqe* sqe = uring::NextSqe(*ring_);
  e->Transition(UringEntry::State::kCommitQueued, UringEntry::State::kInKernel, "commit");
  policy_->PrepCommit(sqe, cfg_.fuse_fd, *e, Tag(e));
  if (e->admitted_) {
    e->admitted_ = false;
    gate_unsubmitted_++;
  }
}

void UringQueue::ArmWake() {
  io_uring_sqe* sqe = uring::NextSqe(*ring_);
  io_uring_prep_read(sqe, wake_fd_.get(), &wake_buf_, sizeof(wake_buf_), 0);
  sqe->user_data = ud_base_ | kWakeTag;
}

void UringQueue::DrainWakeList() {
  std::vector<UringEntry*> batch;
  {
    MutexLock l(&wake_mu_);
    batch.swap(wake_list_);
  }
  for (UringEntry* e : batch) {
    if (e->start_op_) {
      if (e->state() != UringEntry::State::kBackendIo) OwnershipBug(*e, "handed-over fd op");
      StartFixed(e, e->op_, e->read_fd_, e->read_off_, e->read_len_, std::move(e->read_pin_));
    } else {
      QueueCommitSqe(e);
    }
  }
}

void UringQueue::HandleCompletion(const uring::Completion& c) {
  if (c.user_data == kWakeTag) {
    DrainWakeList();
    if (live_ > 0) ArmWake();
    return;
  }
  if (c.user_data & kBackendReadBit) {
    uint64_t i = c.user_data & ~kBackendReadBit;
    if (i < entries_.size()) FinishBackendRead(entries_[i].get(), c.res);
    return;
  }
  if (c.user_data & kFixedOpBit) {
    uint64_t i = c.user_data & ~kFixedOpBit;
    if (i < entries_.size()) FinishFixed(entries_[i].get(), c.res);
    return;
  }
  if (c.user_data >= entries_.size()) {
    fprintf(stderr, "kmfused: queue %u: completion for unknown entry %llu\n", cfg_.qid,
            static_cast<unsigned long long>(c.user_data));
    return;
  }
  UringEntry* e = entries_[c.user_data].get();
  if (c.res < 0) {
    int err = -c.res;
    if (err == EAGAIN && e->state() == UringEntry::State::kInKernel && e->unique_ == 0) {
      // REGISTER raced INIT processing: resubmit, as the kernel asks.
      io_uring_sqe* sqe = ring_->GetSqe();
      if (sqe != nullptr) {
        policy_->PrepRegister(sqe, cfg_.fuse_fd, *e, Tag(e));
        return;
      }
    }
    e->Transition(UringEntry::State::kInKernel, UringEntry::State::kDead, "end of entry");
    live_--;
    if (err == EOPNOTSUPP) {
      // 7.3 switches io-uring off for the connection after a failed
      // REGISTER and answers every later command EOPNOTSUPP; requests then
      // arrive on /dev/fuse, where the transport's reader serves them.
      if (!uring_off_.exchange(true)) {
        fprintf(stderr,
                "kmfused: queue %u: %s returned EOPNOTSUPP: FUSE-over-io_uring is off on this "
                "connection (the kernel switches it off after a failed REGISTER); serving "
                "requests through /dev/fuse\n",
                cfg_.qid, e->unique_ ? "COMMIT_AND_FETCH" : "REGISTER");
      }
      return;
    }
    if (err != ENOTCONN && err != ECONNABORTED && err != ECANCELED && err != ENODEV &&
        fatal_.ok()) {
      fatal_ = absl::InternalError(absl::StrCat("queue ", cfg_.qid, " entry ", e->index(), ": ",
                                                e->unique_ ? "COMMIT_AND_FETCH" : "REGISTER",
                                                " failed: ", strerror(err)));
      fprintf(stderr, "kmfused: %s\n", std::string(fatal_.message()).c_str());
    }
    return;
  }
  // A request arrived: the daemon owns the entry until it commits.
  e->Transition(UringEntry::State::kInKernel, UringEntry::State::kDaemon, "request delivered");
  requests_.fetch_add(1, std::memory_order_relaxed);
  abi::fuse_uring_ent_in_out ent;
  std::memcpy(&ent, &e->header_->ring_ent_in_out, sizeof(ent));
  e->unique_ = ent.commit_id;
  e->zero_copy_ = false;
  e->zc_fixed_answer_ = false;
  e->zc_len_ = 0;
  {
    abi::fuse_in_header in;
    std::memcpy(&in, e->header_->in_out, sizeof(in));
    e->opcode_ = in.opcode;
    // The kernel makes the commit id (ent_in_out.commit_id) the request's unique.
    if (in.unique != e->unique_) e->unique_ = in.unique;
  }
  if (int rc = policy_->OnDelivered(*e, c.flags); rc != 0) {
    fprintf(stderr, "kmfused: queue %u entry %u: kernel reported an impossible buffer: %s\n",
            cfg_.qid, e->index(), strerror(-rc));
    return CommitFromEntry(e, -EIO, 0);
  }
  if ((ent.flags & abi::FUSE_URING_ENT_ZERO_COPY) != 0) {
    // The caller's pages are in this entry's slot; only READ and WRITE
    // qualify, sized by their op header.
    if (!policy_->zero_copy() ||
        (e->opcode_ != abi::FUSE_READ && e->opcode_ != abi::FUSE_WRITE)) {
      fprintf(stderr, "kmfused: queue %u entry %u: zero-copy flag on opcode %u\n", cfg_.qid,
              e->index(), e->opcode_);
      return CommitFromEntry(e, -EIO, 0);
    }
    zc_requests_.fetch_add(1, std::memory_order_relaxed);
    e->zero_copy_ = true;
    if (e->opcode_ == abi::FUSE_READ) {
      abi::fuse_read_in rin;
      std::memcpy(&rin, e->header_->op_in, sizeof(rin));
      e->zc_len_ = rin.size;
    } else {
      abi::fuse_write_in win;
      std::memcpy(&win, e->header_->op_in, sizeof(win));
      e->zc_len_ = win.size;
    }
  }
  // A stopping session holds the request undispatched until the abort.
  if (cfg_.gate != nullptr && !cfg_.gate->Admit(e)) return;
  e->admitted_ = cfg_.gate != nullptr;
  Deliver(e);
}

void UringQueue::Deliver(UringEntry* e) {
  if (e->opcode_ == abi::FUSE_WRITE && !e->zero_copy_) {
    abi::fuse_write_in win;
    std::memcpy(&win, e->header_->op_in, sizeof(win));
    copied_bytes_.fetch_add(win.size, std::memory_order_relaxed);
  }
  abi::fuse_uring_ent_in_out ent;
  std::memcpy(&ent, &e->header_->ring_ent_in_out, sizeof(ent));
  dispatcher_->Deliver(
      proto::RequestBytes::Split(e->header_->in_out, e->header_->op_in, e->payload_,
                                 ent.payload_sz,
                                 e->payload_ != nullptr ? policy_->payload_capacity() : 0),
      e);
}

absl::Status UringQueue::Run(const RingFactory& ring_factory, QueueCounter* registered) {
  std::vector<int> pin;
  if (cfg_.pin_cpu >= 0) pin.push_back(cfg_.pin_cpu);
  own_worker_ = std::make_unique<UringWorker>(std::vector<UringQueue*>{this}, std::move(pin));
  return own_worker_->Run(ring_factory, registered);
}

absl::Status UringQueue::SetUp(uring::IoRing* ring, const PolicySetup& setup) {
  thread_id_ = std::this_thread::get_id();
  ring_ = ring;
  if (absl::Status s = policy_->Setup(*ring_, setup); !s.ok()) {
    if (absl::IsUnavailable(s)) {
      // io-uring is off on this connection (EOPNOTSUPP): requests arrive on
      // /dev/fuse instead. Not an error of this queue.
      uring_off_.store(true);
      fprintf(stderr, "kmfused: %s; serving requests through /dev/fuse\n",
              std::string(s.message()).c_str());
      return absl::OkStatus();
    }
    return s;
  }
  absl::StatusOr<UniqueFd> wake =
      UniqueFd::FromSyscall(eventfd(0, EFD_CLOEXEC), absl::StrCat("queue ", cfg_.qid, ": eventfd"));
  if (!wake.ok()) return wake.status();
  wake_fd_ = std::move(*wake);
  active_ = true;
  return absl::OkStatus();
}

absl::Status UringQueue::Begin() {
  if (!active_) return absl::OkStatus();
  for (unsigned i = 0; i < cfg_.entries; i++) {
    entries_.push_back(std::make_unique<UringEntry>(this, static_cast<uint16_t>(i), policy_->Header(i)));
  }
  for (auto& e : entries_) {
    io_uring_sqe* sqe = uring::NextSqe(*ring_);
    e->Transition(UringEntry::State::kNew, UringEntry::State::kInKernel, "register");
    policy_->PrepRegister(sqe, cfg_.fuse_fd, *e, Tag(e.get()));
  }
  live_ = cfg_.entries;
  ArmWake();
  if (cfg_.gate != nullptr) {
    // A quiescing session wakes the thread so the commits it queued get
    // submitted and reported (the thread may sleep in io_uring_enter).
    const int wake_fd = wake_fd_.get();
    cfg_.gate->AddWaker([wake_fd] {
      uint64_t one = 1;
      ssize_t n = write(wake_fd, &one, sizeof(one));
      (void)n;
    });
  }
  return absl::OkStatus();
}

UringWorker::UringWorker(std::vector<UringQueue*> queues, std::vector<int> pin_cpus,
                         QueueScheduler* sched)
    : queues_(std::move(queues)), pin_cpus_(std::move(pin_cpus)), sched_(sched) {
  for (size_t i = 0; i < queues_.size(); i++) {
    queues_[i]->ud_base_ = uint64_t{i} << kQueueShift;
  }
}

UringWorker::~UringWorker() {
  // Buffer rings and registrations of such policies belong to the ring: they
  // go first. Every other policy's memory may be written by the kernel until
  // the ring is gone: those go with their queues, later.
  for (UringQueue* q : queues_) {
    if (q->policy_ != nullptr && q->policy_->uses_ring_in_destructor()) q->policy_.reset();
    q->ring_ = nullptr;
  }
  ring_.reset();
}

bool UringWorker::Live() const {
  for (const UringQueue* q : queues_) {
    if (q->live_ > 0) return true;
  }
  return false;
}

absl::Status UringWorker::SetUp(const RingFactory& ring_factory) {
  if (queues_.empty()) return absl::InvalidArgumentError("a uring worker without queues");
  if (queues_.size() > (kQueueBits >> kQueueShift) + 1) {
    return absl::InvalidArgumentError(absl::StrCat(queues_.size(), " queues on one ring"));
  }
  unsigned entries = 0;
  unsigned slots = 0;
  for (UringQueue* q : queues_) {
    if (!q->policy_->shares_ring() && queues_.size() > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "queue ", q->qid(), ": the ", q->policy_->name(), " policy needs a ring of its own"));
    }
    entries += q->cfg_.entries;
    slots += q->policy_->fixed_slots(q->cfg_.entries);
  }
  // SQ: one SQE per entry plus each wake fd read, with room to spare; the
  // SQ is flushed when full, the CQ (twice the SQ) overflows into the
  // kernel's list rather than dropping completions.
  const unsigned sq = std::min<unsigned>(4096, entries * 2 + 4 * static_cast<unsigned>(queues_.size()));
  absl::StatusOr<std::unique_ptr<uring::IoRing>> ring = ring_factory(queues_[0]->qid(), sq);
  if (!ring.ok()) return ring.status();
  ring_ = std::move(*ring);
  // One sparse fixed-buffer table for every queue on the ring (a ring has
  // one table): each queue's slots follow the previous queue's.
  int table_error = 0;
  if (slots > 0) table_error = std::min(0, uring::RegisterSparseBuffers(*ring_, slots));
  unsigned slot_base = 0;
  for (UringQueue* q : queues_) {
    PolicySetup setup;
    setup.qid = q->cfg_.qid;
    setup.entries = q->cfg_.entries;
    setup.payload_size = q->cfg_.payload_size;
    setup.fuse_fd = q->cfg_.fuse_fd;
    setup.shared_table = true;
    setup.slot_base = slot_base;
    setup.table_error = table_error;
    slot_base += q->policy_->fixed_slots(q->cfg_.entries);
    if (absl::Status s = q->SetUp(ring_.get(), setup); !s.ok()) return s;
  }
  for (UringQueue* q : queues_) {
    if (absl::Status s = q->Begin(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status UringWorker::Run(const RingFactory& ring_factory, QueueCounter* registered) {
  if (!pin_cpus_.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu : pin_cpus_) {
      if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_SET(cpu, &set);
    }
    // EINVAL when none of them is online: the thread then runs anywhere.
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  }
  if (sched_ != nullptr) sched_->Enroll();
  absl::Status s = SetUp(ring_factory);
  int rc = s.ok() && Live() ? ring_->Submit() : 0;
  if (registered) registered->Add(static_cast<unsigned>(queues_.size()));
  if (!s.ok()) return s;
  if (rc < 0) return absl::InternalError(absl::StrCat("io_uring_enter: ", strerror(-rc)));

  // The completion loop: submit pending commits and wait, then hand every
  // ready completion (res and flags copied first by Reap) to its queue.
  RequestGate* gate = queues_[0]->cfg_.gate;
  while (Live()) {
    unsigned submitting = 0;
    for (UringQueue* q : queues_) {
      submitting += q->gate_unsubmitted_;
      q->gate_unsubmitted_ = 0;
    }
    if (gate != nullptr && submitting != 0 && gate->quiescing()) {
      // Stopping: report the commits as soon as they are submitted, not
      // after the next completion. The next request of the caller that
      // was answered may reach another queue (or be held by the gate), so
      // this ring may see no completion until the abort, and the session
      // would wait out its whole grace for these commits. (A quiesce that
      // starts after this check wakes the ring through the wake fd.)
      rc = ring_->Submit();
      if (rc >= 0) {
        gate->Done(submitting);
        submitting = 0;
      }
    }
    rc = ring_->SubmitAndWait(1);
    if (sched_ != nullptr) sched_->OnRequests();
    if (gate != nullptr) {
      // rc >= 0: every queued SQE was submitted (a COMMIT_AND_FETCH hands its
      // reply to the kernel at submission).
      if (rc >= 0) {
        gate->Done(submitting);
      } else {
        queues_[0]->gate_unsubmitted_ += submitting;
      }
    }
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
      return absl::InternalError(absl::StrCat("queue ", queues_[0]->qid(),
                                              queues_.size() > 1 ? absl::StrCat("..", queues_.back()->qid()) : "",
                                              ": io_uring_enter: ", strerror(-rc)));
    }
    ring_->Reap([this](const uring::Completion& c) {
      const uint64_t q = (c.user_data & kQueueBits) >> kQueueShift;
      if (q >= queues_.size()) {
        fprintf(stderr, "kmfused: completion for unknown queue %llu\n",
                static_cast<unsigned long long>(q));
        return;
      }
      uring::Completion own = c;
      own.user_data &= ~kQueueBits;
      queues_[q]->HandleCompletion(own);
    });
  }
  for (UringQueue* q : queues_) {
    if (!q->fatal_.ok()) return q->fatal_;
  }
  return absl::OkStatus();
}

}  // namespace kmfuse
