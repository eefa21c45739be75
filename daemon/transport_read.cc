// The classic transport: worker threads reading /dev/fuse.
//
// Each worker owns a few slots. A request is read into a free slot,
// dispatched, and the slot is recycled onto the worker's free list when the
// reply is written (or the request dropped) —
// usually before Dispatch returns, so the same cache-hot slot is reused. A
// filesystem that answers later (from another thread) keeps its slot busy and
// the worker reads the next request into another one; a worker has up to
// kMaxSlots slots and then the worker waits for a reply.
#include <errno.h>
#include <stdio.h>
#include <string.h>
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
#include "uring/base/mapping.h"
#include "uring/base/unique_fd.h"

namespace kmfuse {
namespace {

constexpr size_t kMaxSlots = 64;

class Worker;

class Slot final : public DevSlotSink {
 public:
  Slot(Worker* w, Mapping mem) : worker_(w), mem_(std::move(mem)) {}
  char* mem() const { return mem_.as<char>(); }
  size_t size() const { return mem_.size(); }
  // Set while the request in the slot was admitted by the session's gate.
  void set_admitted(bool a) { admitted_ = a; }

 protected:
  void Recycle() override;

 private:
  Worker* worker_;
  Mapping mem_;
  bool admitted_ = false;
};

class Worker {
 public:
  // fd: the /dev/fuse fd to read; `owned` is set for a clone of its own
  // (closed with the worker), empty when it reads the session's fd.
  Worker(int fd, UniqueFd owned, size_t slot_size, proto::Dispatcher* d, RequestGate* gate)
      : fd_(fd), owned_fd_(std::move(owned)), slot_size_(slot_size), dispatcher_(d),
        gate_(gate) {}

  // Returns 0 at the end of the connection, or -errno on a fatal error.
  int Run() {
    for (;;) {
      Slot* slot = Acquire();
      if (slot == nullptr) return -ENOMEM;
      char* req = slot->mem() + kRequestOffset;
      ssize_t n = read(fd_, req, slot->size() - kRequestOffset);
      if (n < 0) {
        int err = errno;
        Recycle(slot);
        // ENOENT: the request was interrupted before we read it.
        if (err == EINTR || err == EAGAIN || err == ENOENT) continue;
        // The end of the connection: ENODEV after an unmount or abort,
        // ECONNABORTED for reads after a fusectl abort.
        if (err == ENODEV || err == ECONNABORTED) return 0;
        return -err;
      }
      slot->Arm(fd_, slot->mem(), slot->size());
      // A stopping session holds the request undispatched until the abort.
      if (gate_ != nullptr && !gate_->Admit(slot)) continue;
      slot->set_admitted(gate_ != nullptr);
      dispatcher_->Deliver(slot->Request(static_cast<size_t>(n)), slot);
    }
  }

  void Recycle(Slot* s) {
    MutexLock l(&mu_);
    free_.push_back(s);
  }
  RequestGate* gate() const { return gate_; }

 private:
  Slot* Acquire() {
    MutexLock l(&mu_);
    if (free_.empty() && all_.size() < kMaxSlots) {
      absl::StatusOr<Mapping> mem = Mapping::Anonymous(slot_size_, "read transport slot");
      if (!mem.ok()) return nullptr;
      auto s = std::make_unique<Slot>(this, std::move(*mem));
      free_.push_back(s.get());
      all_.push_back(std::move(s));
    }
    mu_.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !free_.empty(); });
    Slot* s = free_.back();
    free_.pop_back();
    return s;
  }

  int fd_;
  UniqueFd owned_fd_;
  size_t slot_size_;
  proto::Dispatcher* dispatcher_;
  RequestGate* gate_;
  Mutex mu_;
  std::vector<Slot*> free_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Slot>> all_ ABSL_GUARDED_BY(mu_);
};

void Slot::Recycle() {
  const bool admitted = admitted_;
  admitted_ = false;
  worker_->Recycle(this);
  if (admitted) worker_->gate()->Done();
}

class ReadTransport final : public Transport {
 public:
  ReadTransport(const TransportEnv& env, unsigned threads, bool clone_fds)
      : env_(env), threads_(threads), clone_fds_(clone_fds) {}
  ~ReadTransport() override { Join(); }

  std::string Describe() const override {
    return absl::StrCat(threads_, " worker thread(s), ", DevSlotSize(env_.max_write) / 1024,
                        " KiB slots");
  }

  absl::Status Start() override {
    size_t slot = DevSlotSize(env_.max_write);
    for (unsigned i = 0; i < threads_; i++) {
      int fd = env_.dev_fd;
      UniqueFd clone;
      if (clone_fds_ && i > 0) {
        fd = CloneDevFd(env_.dev_fd, false);
        if (fd < 0) {
          return absl::InternalError(
              absl::StrCat("FUSE_DEV_IOC_CLONE failed: ", strerror(-fd)));
        }
        clone.reset(fd);
      }
      workers_.push_back(
          std::make_unique<Worker>(fd, std::move(clone), slot, env_.dispatcher, env_.gate));
    }
    for (auto& w : workers_) {
      Worker* worker = w.get();
      threads_vec_.Spawn([worker] {
        int rc = worker->Run();
        if (rc == 0) return absl::OkStatus();
        return absl::InternalError(absl::StrCat("read from /dev/fuse: ", strerror(-rc)));
      });
    }
    return absl::OkStatus();
  }

  bool Done() const override { return threads_vec_.Done(); }
  bool WaitFor(absl::Duration timeout) const override { return threads_vec_.WaitFor(timeout); }
  void Join() override { threads_vec_.Join(); }
  absl::Status status() const override { return threads_vec_.status(); }

 private:
  TransportEnv env_;
  unsigned threads_;
  bool clone_fds_;
  std::vector<std::unique_ptr<Worker>> workers_;
  QueueThreads threads_vec_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> MakeReadTransport(const TransportEnv& env,
                                                             unsigned threads, bool clone_fds) {
  if (threads == 0) threads = 1;
  return std::unique_ptr<Transport>(new ReadTransport(env, threads, clone_fds));
}

}  // namespace kmfuse
