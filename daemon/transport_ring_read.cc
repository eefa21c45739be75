// `ring-read`: /dev/fuse read through io_uring READ_MULTISHOT into a provided
// buffer ring. Per worker (one thread): a cloned O_NONBLOCK /dev/fuse fd (multishot read
// needs a pollable file), a ring, a BufferRing whose slots use the contiguous
// layout of dev_channel.h (the kernel is given slot + kRequestOffset), and one
// armed multishot read. Each CQE carries one whole request in buffer `bid`.
// The reply is written in place and with write(2); the slot is then recycled
// into the buffer ring. -ENOBUFS (every slot held by pending replies) ends the
// multishot: the worker re-arms as soon as a slot is back — no request is
// dropped, the kernel just keeps it queued meanwhile.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kmfuse/sync.h"
#include "daemon/dev_channel.h"
#include "daemon/proto/dispatch.h"
#include "daemon/transport.h"
#include "uring/base/unique_fd.h"
#include "uring/buffer_ring.h"
#include "uring/ring.h"
#include "uring/sqe.h"

namespace kmfuse {
namespace {

constexpr uint64_t kReadTag = 1ull << 62;
constexpr uint64_t kWakeTag = 1ull << 61;

class Worker;

class Slot final : public DevSlotSink {
 public:
  Slot(Worker* w, uint16_t bid) : worker_(w), bid_(bid) {}
  // Set while the request in the buffer was admitted by the session's gate.
  void set_admitted(bool a) { admitted_ = a; }

 protected:
  void Recycle() override;

 private:
  Worker* worker_;
  uint16_t bid_;
  bool admitted_ = false;
};

class Worker {
 public:
  Worker(UniqueFd fd, unsigned entries, size_t slot_size, proto::Dispatcher* d,
                RequestGate* gate)
      : fd_(std::move(fd)), entries_(entries), slot_size_(slot_size), dispatcher_(d),
        gate_(gate) {}
  ~Worker() {
    // The ring and its buffers go before the fds they read (the members
    // close wake_fd_, then fd_).
    buffers_.reset();
    ring_.reset();
  }

  absl::Status Setup() {
    uring::RingOptions ro;
    ro.entries = 8;
    ro.single_issuer = true;
    ro.defer_taskrun = true;
    absl::StatusOr<std::unique_ptr<uring::Ring>> ring = uring::Ring::Create(ro);
    if (!ring.ok()) return ring.status();
    ring_ = std::move(*ring);
    uring::BufferRingOptions bo;
    bo.backing = uring::Backing::kProvided;
    bo.bgid = 0;
    bo.entries = entries_;
    bo.buf_size = static_cast<uint32_t>(slot_size_);
    bo.head_room = static_cast<uint32_t>(kRequestOffset);
    absl::StatusOr<std::unique_ptr<uring::BufferRing>> br = uring::BufferRing::Create(*ring_, bo);
    if (!br.ok()) return br.status();
    buffers_ = std::move(*br);
    for (unsigned i = 0; i < entries_; i++) {
      slots_.push_back(std::make_unique<Slot>(this, static_cast<uint16_t>(i)));
    }
    absl::StatusOr<UniqueFd> wake = UniqueFd::FromSyscall(eventfd(0, EFD_CLOEXEC), "eventfd");
    if (!wake.ok()) return wake.status();
    wake_fd_ = std::move(*wake);
    return absl::OkStatus();
  }

  // Returns when the connection ended, after every pending reply.
  absl::Status Run() {
    thread_id_ = std::this_thread::get_id();
    ArmRead();
    ArmWake();
    absl::Status fatal;
    while (!ended_ || in_use_.load() > 0) {
      int rc = ring_->SubmitAndWait(1);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
        return absl::InternalError(absl::StrCat("io_uring_enter: ", strerror(-rc)));
      }
      ring_->Reap([&](const uring::Completion& c) {
        if (c.user_data == kWakeTag) {
          ArmWake();
          return;
        }
        if (c.res > 0 && uring::BufferRing::HasBuffer(c.flags)) {
          Deliver(uring::BufferRing::BidFromCqeFlags(c.flags), static_cast<size_t>(c.res));
        } else if (c.res == -ENODEV || c.res == -ECONNABORTED) {
          ended_ = true;  // unmounted or aborted (ECONNABORTED after a fusectl abort)
        } else if (c.res < 0 && c.res != -ENOBUFS && c.res != -EAGAIN && c.res != -EINTR &&
                   c.res != -ENOENT) {
          if (fatal.ok()) {
            fatal = absl::InternalError(
                absl::StrCat("READ_MULTISHOT on /dev/fuse: ", strerror(-c.res)));
          }
          ended_ = true;
        }
        if (!(c.flags & uring::kCqeFMore)) armed_ = false;
      });
      // Re-arm when the multishot ended and a slot is free to read into.
      if (!ended_ && !armed_ && in_use_.load() < entries_) ArmRead();
    }
    return fatal;
  }

  RequestGate* gate() const { return gate_; }

  void Recycle(uint16_t bid) {
    {
      MutexLock l(&recycle_mu_);
      buffers_->Recycle(bid);
    }
    in_use_.fetch_sub(1);
    if (std::this_thread::get_id() != thread_id_) {
      // The worker thread may be waiting for a slot (or for the last reply).
      uint64_t one = 1;
      ssize_t n = write(wake_fd_.get(), &one, sizeof(one));
      (void)n;
    }
  }

 private:
  void Deliver(uint16_t bid, size_t len) {
    in_use_.fetch_add(1);
    char* slot = buffers_->Slot(bid);
    Slot* sink = slots_[bid].get();
    sink->Arm(fd_.get(), slot, slot_size_);
    // A stopping session holds the request undispatched until the abort.
    if (gate_ != nullptr && !gate_->Admit(sink)) return;
    sink->set_admitted(gate_ != nullptr);
    dispatcher_->Deliver(sink->Request(len), sink);
  }

  io_uring_sqe* Sqe() { return uring::NextSqe(*ring_); }
  void ArmRead() {
    uring::PrepReadMultishot(Sqe(), fd_.get(), 0, kReadTag);
    armed_ = true;
  }
  void ArmWake() {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_read(sqe, wake_fd_.get(), &wake_buf_, sizeof(wake_buf_), 0);
    sqe->user_data = kWakeTag;
  }

  UniqueFd fd_;
  unsigned entries_;
  size_t slot_size_;
  proto::Dispatcher* dispatcher_;
  RequestGate* gate_;
  std::unique_ptr<uring::Ring> ring_;
  std::unique_ptr<uring::BufferRing> buffers_;
  std::vector<std::unique_ptr<Slot>> slots_;
  Mutex recycle_mu_;
  std::atomic<unsigned> in_use_{0};
  UniqueFd wake_fd_;
  uint64_t wake_buf_ = 0;
  bool armed_ = false;
  bool ended_ = false;
  std::thread::id thread_id_;
};

void Slot::Recycle() {
  const bool admitted = admitted_;
  admitted_ = false;
  worker_->Recycle(bid_);
  if (admitted) worker_->gate()->Done();
}

unsigned RoundUpPow2(unsigned n) {
  unsigned p = 1;
  while (p < n) p <<= 1;
  return p;
}

class RingReadTransport final : public Transport {
 public:
  explicit RingReadTransport(const TransportEnv& env) : env_(env) {}
  ~RingReadTransport() override { Join(); }
  std::string Describe() const override {
    return absl::StrCat(workers_.size(), " queue(s) x ", entries_, " provided buffers of ",
                        slot_size_ >> 10, " KiB, READ_MULTISHOT");
  }

  absl::Status Start() override {
    entries_ = RoundUpPow2(std::max(2u, env_.opts->queue_depth));
    slot_size_ = (DevSlotSize(env_.max_write) + 4095) & ~size_t{4095};
    unsigned nq = std::max(1u, env_.opts->threads);
    for (unsigned i = 0; i < nq; i++) {
      int fd = CloneDevFd(env_.dev_fd, true);
      if (fd < 0) {
        return absl::InternalError(absl::StrCat("FUSE_DEV_IOC_CLONE failed: ", strerror(-fd)));
      }
      auto q = std::make_unique<Worker>(UniqueFd(fd), entries_, slot_size_,
                                               env_.dispatcher, env_.gate);
      workers_.push_back(std::move(q));
    }
    // Start waits until every worker has set up (or failed); the threads
    // touch these locals only before they count themselves in.
    Mutex setup_mu;
    unsigned ready = 0;
    absl::Status setup_status;
    for (auto& q : workers_) {
      Worker* worker = q.get();
      threads_.Spawn([worker, &ready, &setup_mu, &setup_status] {
        // The ring is created on its own thread (single issuer).
        absl::Status s = worker->Setup();
        {
          MutexLock l(&setup_mu);
          if (!s.ok() && setup_status.ok()) setup_status = s;
          ready++;
        }
        return s.ok() ? worker->Run() : s;
      });
    }
    MutexLock l(&setup_mu);
    setup_mu.Await([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(setup_mu) { return ready == nq; });
    return setup_status;
  }

  bool Done() const override { return threads_.Done(); }
  bool WaitFor(absl::Duration timeout) const override { return threads_.WaitFor(timeout); }
  void Join() override { threads_.Join(); }
  absl::Status status() const override { return threads_.status(); }

 private:
  TransportEnv env_;
  unsigned entries_ = 0;
  size_t slot_size_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
  QueueThreads threads_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> MakeRingReadTransport(const TransportEnv& env) {
  return std::unique_ptr<Transport>(new RingReadTransport(env));
}

}  // namespace kmfuse
