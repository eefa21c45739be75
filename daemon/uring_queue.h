// FUSE-over-io_uring queues: the request path shared by the `uring`, `kmbuf`
// and `bufpool` transports.
//
// One UringQueue per possible CPU (the kernel's qid). A UringWorker serves
// one or several queues on one SQE128 ring and one thread: every REGISTER
// names its queue's qid, so entries of several queues live on one ring, and
// a completion's user_data names the queue (its place in the worker, bits
// 16..31) and the entry (bits 0..15). Each of a queue's N UringEntry objects
// is one in-flight URING_CMD: REGISTER once, then COMMIT_AND_FETCH after
// every reply. The entry's address is stable for the queue's life.
//
// Buffer ownership is explicit in UringEntry::State:
//   kNew          -> not yet given to the kernel
//   kInKernel     -> SQE in flight; the kernel may write headers and payload.
//                    The daemon must not touch either.
//   kDaemon       -> CQE delivered a request; the filesystem (through the
//                    entry as its ReplySink) owns the headers and the
//                    selected payload buffer until it answers.
//   kBackendIo    -> answered with a plan whose fd operation (backend read,
//                    zero-copy fixed op, staging copy) is running or handed
//                    to the queue thread; that operation alone touches the
//                    buffers and commits when it ends.
//   kCommitQueued -> answered: the reply header is written and the
//                    COMMIT_AND_FETCH waits for the queue thread (on its
//                    wake list, when answered from another thread).
//   kDead         -> the kernel ended the entry (teardown).
// The moves:
//   kNew -> kInKernel (REGISTER)
//   kInKernel -> kDaemon (a request arrived) | kDead (the kernel ended it)
//   kDaemon -> kCommitQueued (Commit of arguments) | kBackendIo (a plan)
//   kBackendIo -> kCommitQueued (the fd operation ended)
//              | kDaemon (a staged zero-copy WRITE delivered again)
//   kCommitQueued -> kInKernel (COMMIT_AND_FETCH queued on the ring)
// Every move is one compare-and-swap (UringEntry::Transition), so two
// threads answering the same entry cannot both win. Finding the entry in
// another state than the move starts from, or using its buffers outside
// kDaemon, is an ownership bug: it aborts with a message naming both (the
// tests rely on this to catch use-after-commit and double commits).
//
// Where the payload lives is the PayloadPolicy's business: per-entry buffers
// (`uring`, 6.14+), a kernel-managed buffer ring that reports a bid in the
// CQE (`kmbuf`), or a buffer pool whose offset the kernel reports in
// ent_in_out (`bufpool`). The queue code is identical for all three and runs
// unchanged against a real ring or the kernel model (through uring::IoRing).
#ifndef KMFUSE_DAEMON_URING_QUEUE_H_
#define KMFUSE_DAEMON_URING_QUEUE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kmfuse/sync.h"
#include "daemon/proto/dispatch.h"
#include "daemon/request_gate.h"
#include "kmfuse/fuse_abi.h"
#include "kmfuse/reply.h"
#include "uring/base/unique_fd.h"
#include "uring/io_ring.h"

namespace kmfuse {

class QueueScheduler;  // daemon/queue_sched.h

class UringQueue;

class UringEntry final : public ReplySink {
 public:
  // See the top of this file.
  enum class State : uint8_t { kNew, kInKernel, kDaemon, kBackendIo, kCommitQueued, kDead };
  static const char* StateName(State s);

  UringEntry(UringQueue* q, uint16_t index, abi::fuse_uring_req_header* header)
      : queue_(q), index_(index), header_(header) {}

  uint16_t index() const { return index_; }
  State state() const { return state_.load(std::memory_order_acquire); }
  // Moves the entry from `from` to `to` in one compare-and-swap. Found in
  // any other state, the entry is reported as an ownership bug (`what`
  // while the entry is <state>) and the daemon aborts: a wrong move is
  // never acted on. Every state change goes through here (public for the
  // state-machine tests).
  void Transition(State from, State to, const char* what);
  abi::fuse_uring_req_header* header() const { return header_; }
  // The payload buffer the current request uses (set by the policy on
  // delivery; per-entry policies set it once). nullptr when the kernel gave
  // the request none (bufpool: a request without a copyable payload).
  char* payload() const { return payload_; }
  void set_payload(char* p) { payload_ = p; }
  // The current request's unique, which the kernel also uses as the commit id
  // (fuse_uring_cmd_req::commit_id) of its COMMIT_AND_FETCH.
  uint64_t unique() const { return unique_; }

  // ReplySink: valid only in kDaemon. Empty when payload() is nullptr.
  absl::Span<char> ArgArea() override;
  // Executes the answer. kArgs: COMMIT_AND_FETCH (through the wake list from
  // another thread). A READ plan: on the queue thread the data is read
  // where it is cheapest (RWF_NOWAIT copy, plain read, or IORING_OP_READ on
  // the queue's own ring, chosen once per file from the plan's fd_flags)
  // and the commit follows; on another thread it is read there, into the
  // payload buffer, and the commit goes through the wake list. A zero-copy
  // READ (FUSE_URING_ENT_ZERO_COPY) is IORING_OP_READ_FIXED into the
  // caller's pages in the entry's slot, handed to the queue thread when
  // committed elsewhere; likewise a WRITE plan (WRITE_FIXED from the
  // caller's pages to the fd), which only a zero-copy WRITE may get.
  void Commit(Answer answer) override;
  void Drop() override;
  // True for a zero-copy WRITE: its data is in the caller's pages.
  bool DataInCallerPages() const override;
  bool ZeroCopyAvailable() const override;

  // True while the current request's data lives in the caller's pages,
  // registered by the kernel in this entry's fixed-buffer slot.
  bool zero_copy() const { return zero_copy_; }

 private:
  friend class UringQueue;
  friend class UringWorker;
  // What the entry's fd operation (a READ or WRITE plan) does.
  enum class FdOp : uint8_t {
    kNone,
    kRead,          // IORING_OP_READ into the payload buffer
    kReadFixed,     // READ_FIXED from the fd into the caller's pages
    kWriteFixed,    // WRITE_FIXED from the caller's pages to the fd
    kStageIn,       // READ_FIXED from the staging memfd into the caller's pages
    kStageOut,      // WRITE_FIXED from the caller's pages into the staging memfd
  };
  UringQueue* queue_;
  uint16_t index_;
  abi::fuse_uring_req_header* header_;
  char* payload_ = nullptr;
  uint64_t unique_ = 0;
  uint32_t opcode_ = 0;
  // Zero-copy request state (see zero_copy()): the registered bytes (the
  // READ or WRITE size), and whether the answer came from a fixed op.
  bool zero_copy_ = false;
  size_t zc_len_ = 0;
  bool zc_fixed_answer_ = false;
  // The fd operation in flight for this entry.
  FdOp op_ = FdOp::kNone;
  bool start_op_ = false;  // wake list: start op_ instead of committing
  // The current request was admitted by the session's gate; its commit is
  // reported to the gate once submitted.
  bool admitted_ = false;
  int read_fd_ = -1;
  std::shared_ptr<const void> read_pin_;  // keeps read_fd_ open
  uint64_t read_off_ = 0;
  size_t read_len_ = 0;
  size_t read_done_ = 0;
  std::atomic<State> state_{State::kNew};
};

// What a policy's Setup gets to know about its queue.
struct PolicySetup {
  uint16_t qid = 0;
  unsigned entries = 0;     // UringEntry objects (in-flight URING_CMDs) of the queue
  // The kernel's payload size for this connection, exactly:
  // max(8192, max_write, max_pages * page size) with the negotiated values.
  // Per-entry buffers may be larger; pool buffers are exactly this far apart.
  size_t payload_size = 0;
  int fuse_fd = -1;         // the connection's /dev/fuse fd (URING_CMD target)
  // Fixed-buffer slots. shared_table: the worker registered one sparse
  // table for every queue on the ring, and this queue's fixed_slots()
  // slots start at slot_base (table_error: -errno when that registration
  // failed; the policy then treats registering as refused). false: the
  // policy registers a table of its own (a ring it alone uses).
  bool shared_table = false;
  unsigned slot_base = 0;
  int table_error = 0;
};

// How payload buffers are provided, registered and found.
//
// Contract: one policy object per queue, used only from that queue's thread
// (OnDelivered, Prep*) except the const accessors. It owns every buffer,
// registration and buffer ring it creates and releases them in its
// destructor. When that destructor runs depends on
// uses_ring_in_destructor(): true, it runs BEFORE the ring is destroyed and
// may unregister; false, it runs AFTER the ring is gone and must not touch
// it. Memory the kernel may still write into (per-entry buffers, a buffer
// pool: the kernel has no command to take a pool back) must stay mapped
// until the ring is gone, so such policies say false. The kernel, not the
// policy, recycles kernel-selected buffers: no policy has a recycle
// operation.
class PayloadPolicy {
 public:
  virtual ~PayloadPolicy() = default;
  virtual const char* name() const = 0;
  // On the queue thread, after the ring exists and before any REGISTER or
  // other SQE was queued on it. Allocates and registers buffers. It may
  // submit commands of its own (e.g. ADD_QUEUE) and wait for their
  // completions: the ring holds nothing else yet, and it must leave no SQE
  // queued and no completion unreaped. Errors are control-plane Statuses
  // naming the queue and the kernel's errno; Unavailable says the kernel
  // answered EOPNOTSUPP because io-uring is off on this connection (the
  // queue then ends quietly and /dev/fuse carries the requests).
  virtual absl::Status Setup(uring::IoRing& ring, const PolicySetup& setup) = 0;
  // Headers for entry i (288 bytes each, stable for the queue's life).
  virtual abi::fuse_uring_req_header* Header(unsigned i) = 0;
  // Fills a REGISTER SQE for e (the command area, iovecs, buf_index...).
  virtual void PrepRegister(io_uring_sqe* sqe, int fuse_fd, UringEntry& e, uint64_t user_data) = 0;
  // Fills a COMMIT_AND_FETCH SQE for e.
  virtual void PrepCommit(io_uring_sqe* sqe, int fuse_fd, UringEntry& e, uint64_t user_data) = 0;
  // A request was delivered to e (CQE res == 0 with these flags): point
  // e.payload() at the buffer the kernel selected. -errno if the kernel's
  // report is impossible (out-of-range bid / offset).
  virtual int OnDelivered(UringEntry& e, uint32_t cqe_flags) = 0;
  // Capacity of the payload buffer an entry gets.
  virtual size_t payload_capacity() const = 0;
  // Memory this queue's buffers use, for Describe().
  virtual size_t buffer_bytes() const = 0;
  // See the contract above.
  virtual bool uses_ring_in_destructor() const { return true; }
  // Fixed-buffer slots a queue of `entries` entries wants in its ring's
  // table (PolicySetup::slot_base), asked before Setup.
  virtual unsigned fixed_slots(unsigned entries) const {
    (void)entries;
    return 0;
  }
  // False when the policy needs a ring of its own (it claims ring-wide
  // resources such as buffer group 0): its queues get a worker each.
  virtual bool shares_ring() const { return true; }
  // True when the queue was created with FUSE_URING_ZERO_COPY: the kernel
  // may register a READ/WRITE's pages in the entry's slot.
  virtual bool zero_copy() const { return false; }
  // The fixed-buffer slot entry e named at REGISTER (0: none).
  virtual uint16_t ZeroCopySlot(const UringEntry& e) const {
    (void)e;
    return 0;
  }
  // For the startup line: the name and, where it matters, the mode it ended
  // up in after refusals.
  virtual std::string Mode() const { return name(); }
};

// Whether the kernel gives a request of this opcode a payload buffer from a
// buffer pool: only requests with a copyable payload get one (more than one
// in-argument or any out-argument; docs/kernel-interfaces.md section 5).
// False for FLUSH, RELEASE(DIR), FSYNC(DIR), ACCESS, SETLK(W), FALLOCATE,
// SYNCFS and DESTROY (and FORGET, BATCH_FORGET, INTERRUPT, which never
// travel the rings): the kernel reports offset 0 for them without giving
// them buffer 0.
bool HasPoolPayload(uint32_t opcode);

using PolicyFactory = std::function<std::unique_ptr<PayloadPolicy>()>;
using RingFactory =
    std::function<absl::StatusOr<std::unique_ptr<uring::IoRing>>(uint16_t qid, unsigned entries)>;

// Per-entry payload buffers (mainline 6.14+ `uring`): REGISTER passes
// iovec[2] = {header, payload}; the payload never moves.
std::unique_ptr<PayloadPolicy> MakePerEntryPolicy();

// Kernel-managed buffer ring (`kmbuf`, the proposed series; docs section 4).
// MODEL ONLY: the series was never merged, so this policy runs only against
// tests/kernel_model (KernelModel); on a real kernel setup fails (below).
// Claims bgid 0 and the ring's registered-buffer table: one queue per ring
// (shares_ring() is false).
// Per queue: one IOU_PBUF_RING_KERNEL_MANAGED ring at bgid 0 with buf_size =
// payload_size and ring_entries = the smallest power of two >= entries (or
// options.ring_entries); headers in ONE registered buffer
// (IORING_REGISTER_BUFFERS), entry i's 288-byte header at offset i * 288.
// REGISTER carries FUSE_URING_BUF_RING, IORING_URING_CMD_FIXED,
// buf_index = entry index and no iovec. On delivery, IORING_CQE_F_BUFFER
// names the bid the request (and its reply) lives in; without the flag the
// entry keeps the buffer it had. The daemon never recycles: the kernel takes
// the buffer back after the commit. Setup fails with Unimplemented on every
// released kernel (the ring registration returns EINVAL).
struct KmbufOptions {
  unsigned ring_entries = 0;  // 0: smallest power of two >= entries
};
std::unique_ptr<PayloadPolicy> MakeKmbufPolicy();
std::unique_ptr<PayloadPolicy> MakeKmbufPolicy(const KmbufOptions& options);

// FUSE io-uring buffer pools (`bufpool`, protocol 7.46; docs section 5).
// Setup submits ADD_QUEUE then ADD_BUFPOOL ({uaddr, len} of one contiguous
// region of `bufs` buffers of payload_size) and waits for both; with
// `registered` the ring first gets a sparse fixed-buffer table whose slot 0
// is the pool, and every later URING_CMD of the queue carries
// IORING_URING_CMD_FIXED with buf_index 0. With `zero_copy` (needs
// `registered`) the table has one more slot per entry (entry i: slot i+1),
// ADD_QUEUE carries FUSE_URING_ZERO_COPY and REGISTER names the entry's slot
// in ent_zero_copy_buf_index.
// REGISTER passes iovec[2] = {header, {NULL, 0}}. On delivery the payload is
// pool + ring_ent_in_out.offset (checked: a multiple of payload_size inside
// the pool, else the request is failed with EIO), or none for a request
// without a copyable payload (HasPoolPayload) and for a zero-copy READ. The
// kernel recycles. The pool stays mapped (and registered) until the ring is
// gone.
// Refusals never fail Setup (each is logged once with the errno): zero-copy
// refused (EPERM without CAP_SYS_ADMIN) -> no zero-copy; registering the
// pool refused -> unregistered pool (and no zero-copy); ADD_BUFPOOL refused
// -> unregistered pool, then per-entry buffers. A zero-copy queue whose
// ADD_BUFPOOL is refused cannot step down (the kernel takes nothing else on
// it): Setup returns Unavailable and /dev/fuse carries the requests.
struct BufpoolOptions {
  unsigned bufs = 0;        // 0: one buffer per entry
  bool registered = false;  // register the pool as a fixed buffer
  bool zero_copy = false;   // zero-copy queue (only with `registered`)
  // Test-only: ask the kernel for something it refuses at that rung.
  bool refuse_zero_copy = false;   // ADD_QUEUE with an undefined flag bit
  bool refuse_registered = false;  // register unmapped memory as the pool
  bool refuse_bufpool = false;     // ADD_BUFPOOL with a non-zero reserved word
};
std::unique_ptr<PayloadPolicy> MakeBufpoolPolicy();
std::unique_ptr<PayloadPolicy> MakeBufpoolPolicy(const BufpoolOptions& options);

// Builds the SQE for a FUSE uring command with the 6.14 24-byte command.
void PrepFuseUringCmd(io_uring_sqe* sqe, int fuse_fd, uint32_t cmd_op, uint64_t flags,
                      uint64_t unique, uint16_t qid, uint64_t user_data);

struct UringQueueConfig {
  uint16_t qid = 0;
  unsigned entries = 8;
  size_t payload_size = 0;
  int fuse_fd = -1;
  int pin_cpu = -1;  // pin the queue thread to this CPU (-1: no pinning)
  // Set by the transport once every queue of the connection is a zero-copy
  // queue (the kernel refuses FOPEN_IO_URING_ZERO_COPY otherwise).
  const std::atomic<bool>* zero_copy_ready = nullptr;
  // The session's gate (request_gate.h): asked before a request is
  // dispatched, told when its COMMIT_AND_FETCH was submitted. nullptr:
  // every request is dispatched.
  RequestGate* gate = nullptr;
};

// Data-path counters of a queue (monotonic, relaxed).
struct UringQueueStats {
  uint64_t requests = 0;
  uint64_t zero_copy_requests = 0;  // delivered with FUSE_URING_ENT_ZERO_COPY
  uint64_t zero_copy_bytes = 0;     // moved by READ_FIXED/WRITE_FIXED on the caller's pages
  uint64_t zero_copy_staged = 0;    // zero-copy requests that went through daemon memory
  uint64_t copied_bytes = 0;        // READ/WRITE data through a payload buffer
};

class UringWorker;

// How many queues have submitted their REGISTERs (or failed before that):
// UringWorker::Run adds to it, whoever starts the workers waits on it.
// Thread-safe.
class QueueCounter {
 public:
  void Add(unsigned n) {
    MutexLock l(&mu_);
    count_ += n;
  }
  unsigned count() const {
    MutexLock l(&mu_);
    return count_;
  }
  // Blocks until the count reaches n.
  void WaitFor(unsigned n) const {
    MutexLock l(&mu_);
    mu_.Await([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ >= n; });
  }
  // As WaitFor, giving up after timeout: false if the count is still below n.
  bool WaitFor(unsigned n, absl::Duration timeout) const {
    MutexLock l(&mu_);
    return mu_.AwaitWithTimeout(
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ >= n; }, timeout);
  }

 private:
  mutable Mutex mu_;
  unsigned count_ ABSL_GUARDED_BY(mu_) = 0;
};

class UringQueue {
 public:
  UringQueue(const UringQueueConfig& cfg, std::unique_ptr<PayloadPolicy> policy,
             proto::Dispatcher* dispatcher);
  // A queue served by a UringWorker it does not own must outlive that
  // worker (the worker drops the ring before the queue's buffers go).
  ~UringQueue();

  // Runs the queue alone (a worker of its own, pinned to cfg.pin_cpu) on
  // the calling thread until every entry is dead (the connection ended) or
  // a fatal error. `registered` gets 1 once all of this queue's REGISTERs
  // are submitted.
  absl::Status Run(const RingFactory& ring_factory, QueueCounter* registered);

  uint16_t qid() const { return cfg_.qid; }
  unsigned entries() const { return cfg_.entries; }
  const PayloadPolicy& policy() const { return *policy_; }
  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }
  // True once a command of this queue got EOPNOTSUPP: the kernel switched
  // FUSE-over-io_uring off for the connection (7.3 does after a failed
  // REGISTER, on every queue) and sends requests through /dev/fuse. The
  // queue then ends without an error; Setup failing with Unavailable means
  // the same.
  bool uring_off() const { return uring_off_.load(); }
  UringQueueStats stats() const;

 private:
  friend class UringEntry;
  friend class UringWorker;
  // user_data of entry e's commands: the worker's bits for this queue | the
  // entry's index.
  uint64_t Tag(const UringEntry* e) const { return ud_base_ | e->index(); }
  // Worker phases on the worker thread: the policy's Setup (every queue of
  // the ring before any REGISTER), then the REGISTERs and the wake fd read.
  absl::Status SetUp(uring::IoRing* ring, const PolicySetup& setup);
  absl::Status Begin();
  // Answers e with arguments already in its payload buffer: claims it
  // (`from` -> kCommitQueued), writes the reply header and queues the
  // COMMIT_AND_FETCH (through the wake list from another thread).
  void CommitFromEntry(UringEntry* e, int32_t error, size_t args_len,
                       UringEntry::State from = UringEntry::State::kDaemon);
  void StartBackendRead(UringEntry* e, FdPlan plan);
  void StartZeroCopyWrite(UringEntry* e, FdPlan plan);
  // A READ plan read synchronously into the payload buffer, then committed.
  void ReadNowAndCommit(UringEntry* e, const FdPlan& plan, size_t len);
  void FinishBackendRead(UringEntry* e, int32_t res);
  // Zero-copy fd operations (queue thread only).
  bool StartFixed(UringEntry* e, UringEntry::FdOp op, int fd, uint64_t offset, size_t len,
                  std::shared_ptr<const void> pin);
  void HandOver(UringEntry* e, UringEntry::FdOp op, int fd, uint64_t offset, size_t len,
                std::shared_ptr<const void> pin);
  void SubmitFixed(UringEntry* e);
  void FinishFixed(UringEntry* e, int32_t res);
  void EndFixed(UringEntry* e, int32_t error, size_t done);
  int StagingFd();
  void StageReadIn(UringEntry* e);
  void Deliver(UringEntry* e);
  void QueueCommitSqe(UringEntry* e);
  void HandleCompletion(const uring::Completion& c);
  void DrainWakeList();
  void ArmWake();
  [[noreturn]] void OwnershipBug(const UringEntry& e, const char* what) const;
  [[noreturn]] void OwnershipBug(const UringEntry& e, const char* what,
                                 UringEntry::State seen) const;

  UringQueueConfig cfg_;
  std::unique_ptr<PayloadPolicy> policy_;
  proto::Dispatcher* dispatcher_;
  // Set by the worker serving the queue: its ring, and this queue's
  // user_data bits.
  uring::IoRing* ring_ = nullptr;
  uint64_t ud_base_ = 0;
  std::unique_ptr<UringWorker> own_worker_;  // Run(): a worker of its own
  bool active_ = false;  // set up, REGISTERs submitted (not switched off)
  std::vector<std::unique_ptr<UringEntry>> entries_;
  unsigned live_ = 0;
  // Commits of admitted requests queued since the last submission.
  unsigned gate_unsubmitted_ = 0;
  std::thread::id thread_id_;
  absl::Status fatal_;
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> zc_requests_{0};
  std::atomic<uint64_t> zc_bytes_{0};
  std::atomic<uint64_t> zc_staged_{0};
  std::atomic<uint64_t> copied_bytes_{0};
  std::atomic<bool> uring_off_{false};
  // Zero-copy fallbacks (O_DIRECT alignment the fixed op cannot meet):
  // bytes pass through this memfd, entry i at offset i * payload_size.
  UniqueFd staging_fd_;
  std::vector<char> staging_buf_;

  // The wake: commits from other threads (async replies) go on the wake
  // list, and a write to the wake fd (an eventfd whose read is armed on the
  // ring) wakes the queue thread, which alone submits to its ring.
  UniqueFd wake_fd_;
  uint64_t wake_buf_ = 0;
  Mutex wake_mu_;
  std::vector<UringEntry*> wake_list_ ABSL_GUARDED_BY(wake_mu_);
};

// One serving thread with one ring for one or several queues (see the top
// of this file). Run() creates the ring, registers one sparse fixed-buffer
// table holding every queue's fixed_slots(), runs each policy's Setup in
// turn, submits every queue's REGISTERs and serves completions until every
// entry of every queue is dead. Queues are not owned and must outlive the
// worker; its destructor drops the policies that use the ring in their
// destructor, then the ring. A policy that does not share_ring() must be the
// worker's only queue.
class UringWorker {
 public:
  // pin_cpus: the thread's CPU set (empty: no pinning). sched (not owned,
  // may be null): the thread enrolls with it and tells it when requests come.
  UringWorker(std::vector<UringQueue*> queues, std::vector<int> pin_cpus,
              QueueScheduler* sched = nullptr);
  ~UringWorker();
  UringWorker(const UringWorker&) = delete;
  UringWorker& operator=(const UringWorker&) = delete;

  // `registered` gets one per queue when its REGISTERs are submitted (or
  // the worker failed before that).
  absl::Status Run(const RingFactory& ring_factory, QueueCounter* registered);
  const std::vector<UringQueue*>& queues() const { return queues_; }

 private:
  absl::Status SetUp(const RingFactory& ring_factory);
  bool Live() const;

  std::vector<UringQueue*> queues_;
  std::vector<int> pin_cpus_;
  QueueScheduler* sched_;
  std::unique_ptr<uring::IoRing> ring_;
};

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_URING_QUEUE_H_
