// FUSE-over-io_uring transports (`uring`, `kmbuf`, `bufpool`): one queue per
// possible CPU (the kernel routes a request to the queue of the CPU its caller
// runs on), served by a few threads with a ring each (-o threads, default
// min(4, online CPUs)): thread t serves a contiguous block of queues and is
// pinned to those queues' CPUs. Entries and buffer sizes come from
// PlanUringBuffers (-o buffer_memory). kmbuf needs a ring per queue, so it
// keeps a thread per queue. Plus a /dev/fuse reader for what never travels the rings (FORGET, BATCH_FORGET, INTERRUPT,
// and any request sent before every queue has registered, or after the
// kernel switched io-uring off for the connection: 7.3 does after a failed
// REGISTER). NOTIFY_REPLY travels the rings once they are ready.
#include "daemon/transport_uring.h"

#include <stdio.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/queue_sched.h"
#include "daemon/select.h"
#include "kmfuse/sync.h"
#include "uring/ring.h"

namespace kmfuse {

RingFactory RealRingFactory() {
  return [](uint16_t, unsigned entries) -> absl::StatusOr<std::unique_ptr<uring::IoRing>> {
    uring::RingOptions o;
    o.entries = entries;
    o.sqe128 = true;
    o.single_issuer = true;
    o.defer_taskrun = true;
    // The queue thread creates, submits and waits: one fd lookup fewer per enter.
    o.register_ring_fd = true;
    o.best_effort = true;
    absl::StatusOr<std::unique_ptr<uring::Ring>> r = uring::Ring::Create(o);
    if (!r.ok()) return r.status();
    return std::unique_ptr<uring::IoRing>(std::move(*r));
  };
}

namespace {

class UringTransport final : public Transport {
 public:
  UringTransport(std::string name, const TransportEnv& env, PolicyFactory policies,
                 RingFactory rings, std::unique_ptr<Transport> side)
      : name_(std::move(name)), env_(env), policies_(std::move(policies)),
        rings_(std::move(rings)), side_(std::move(side)) {}
  ~UringTransport() override { Join(); }

  std::string Describe() const override {
    size_t bytes = queues_.empty() ? 0 : queues_[0]->policy().buffer_bytes();
    size_t total = 0;
    for (const auto& q : queues_) total += q->policy().buffer_bytes();
    // Queues normally end up alike; after per-queue refusals say how many
    // differ from queue 0.
    std::string mode = queues_.empty() ? "" : queues_[0]->policy().Mode();
    size_t other = 0;
    for (const auto& q : queues_) other += q->policy().Mode() != mode;
    return absl::StrCat(queues_.size(), " queue(s) on ", workers_.size(), " thread(s) x ",
                        entries_, " entries, ", mode, " payload buffers",
                        other ? absl::StrCat(" (", other, " queue(s) in another mode)") : "",
                        ", ", bytes >> 10, " KiB per queue (", total >> 10, " KiB in all, budget ",
                        budget_ >> 10, " KiB)",
                        zero_copy_ready_.load() ? ", zero-copy in effect" : "",
                        UringOff() ? " (io-uring switched off by the kernel: requests come "
                                     "through /dev/fuse)"
                                   : "");
  }
  std::string Stats() const override {
    UringQueueStats sum;
    size_t used = 0;  // queues that carried a request
    for (const auto& q : queues_) {
      UringQueueStats st = q->stats();
      used += st.requests > 0;
      sum.requests += st.requests;
      sum.zero_copy_requests += st.zero_copy_requests;
      sum.zero_copy_bytes += st.zero_copy_bytes;
      sum.zero_copy_staged += st.zero_copy_staged;
      sum.copied_bytes += st.copied_bytes;
    }
    return absl::StrCat(name_, " stats: ", sum.requests, " requests on the rings (", used, " of ",
                        queues_.size(), " queue(s) used), ",
                        sum.zero_copy_requests, " zero-copy (", sum.zero_copy_bytes,
                        " bytes by fixed-buffer I/O, ", sum.zero_copy_staged,
                        " staged through daemon memory), ", sum.copied_bytes,
                        " READ/WRITE bytes through payload buffers",
                        sched_ ? absl::StrCat("; ", sched_->Stats()) : "");
  }

  bool UringOff() const {
    for (const auto& q : queues_) {
      if (q->uring_off()) return true;
    }
    return false;
  }

  absl::Status Start() override {
    if (absl::Status s = side_->Start(); !s.ok()) return s;
    std::vector<int> cpus = PossibleCpus();
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    // Exactly the kernel's payload size, from the negotiated max_write and
    // the kernel's own max_pages (Session) and the real page size.
    const size_t payload = abi::UringMinPayload(env_.max_write, env_.max_pages, page);
    const unsigned nq = static_cast<unsigned>(cpus.size());
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    absl::StatusOr<UringBufferPlan> plan = PlanUringBuffers(
        *env_.opts, nq, page, online > 0 ? static_cast<unsigned>(online) : 1);
    if (!plan.ok()) return plan.status();
    budget_ = plan->budget;
    // The plan sized max_write (Session offered it); the kernel's payload may
    // still be larger (a kernel that kept its own max_pages): entries follow
    // the real size, at least one per queue.
    entries_ = static_cast<unsigned>(std::max<uint64_t>(
        1, std::min<uint64_t>(plan->entries, budget_ / (uint64_t{nq} * payload))));
    if (uint64_t{nq} * payload > budget_) {
      fprintf(stderr,
              "kmfused: one %zu KiB entry per queue for %u queues exceeds buffer_memory "
              "(%llu KiB): using one anyway\n",
              payload >> 10, nq, static_cast<unsigned long long>(budget_ >> 10));
    }
    for (size_t q = 0; q < cpus.size(); q++) {
      UringQueueConfig cfg;
      cfg.qid = static_cast<uint16_t>(q);
      cfg.entries = entries_;
      cfg.payload_size = payload;
      cfg.fuse_fd = env_.dev_fd;
      cfg.zero_copy_ready = &zero_copy_ready_;
      cfg.gate = env_.gate;
      queues_.push_back(std::make_unique<UringQueue>(cfg, policies_(), env_.dispatcher));
    }
    if (env_.opts->queue_sched == QueueSched::kIdle) {
      sched_ = std::make_unique<QueueScheduler>();
      if (absl::Status s = sched_->Start(); !s.ok()) {
        fprintf(stderr, "kmfused: %s\n", s.ToString().c_str());
        sched_.reset();
      }
    }
    // Thread t serves queues [t*nq/T, (t+1)*nq/T): neighbouring CPUs (one
    // cache or NUMA node, usually) share a thread, which runs on them.
    const unsigned nt = queues_[0]->policy().shares_ring() ? plan->threads : nq;
    for (unsigned t = 0; t < nt; t++) {
      std::vector<UringQueue*> served;
      std::vector<int> pin;
      for (unsigned q = t * nq / nt; q < (t + 1) * nq / nt; q++) {
        served.push_back(queues_[q].get());
        pin.push_back(cpus[q]);
      }
      workers_.push_back(
          std::make_unique<UringWorker>(std::move(served), std::move(pin), sched_.get()));
    }
    for (auto& w : workers_) {
      UringWorker* worker = w.get();
      threads_.Spawn([this, worker] { return worker->Run(rings_, &registered_); });
    }
    // Wait until every queue has submitted its REGISTERs (or failed) so a
    // setup error is reported by Start, not discovered later.
    registered_.WaitFor(static_cast<unsigned>(queues_.size()));
    // Opens get FOPEN_IO_URING_ZERO_COPY only when every queue is a
    // zero-copy queue. 7.3 accepts the flag anyway (the cross-check shows a
    // request on a queue without zero-copy then uses the pool buffer), but
    // the startup line's "zero-copy in effect" must mean every READ/WRITE.
    bool all_zero_copy = !queues_.empty();
    for (const auto& q : queues_) {
      all_zero_copy = all_zero_copy && q->policy().zero_copy() && !q->uring_off();
    }
    zero_copy_ready_.store(all_zero_copy, std::memory_order_release);
    return threads_.status();
  }

  bool Done() const override { return threads_.Done() && side_->Done(); }
  bool WaitFor(absl::Duration timeout) const override {
    const absl::Time deadline = absl::Now() + timeout;
    return threads_.WaitFor(timeout) && side_->WaitFor(deadline - absl::Now());
  }
  void Join() override {
    threads_.Join();
    side_->Join();
    if (sched_) sched_->Stop();
  }
  absl::Status status() const override {
    absl::Status s = threads_.status();
    return s.ok() ? side_->status() : s;
  }

 private:
  std::string name_;
  TransportEnv env_;
  PolicyFactory policies_;
  RingFactory rings_;
  std::unique_ptr<Transport> side_;
  std::vector<std::unique_ptr<UringQueue>> queues_;
  // After queues_: destroyed first (a worker drops its ring before the
  // queues' buffers go).
  std::vector<std::unique_ptr<UringWorker>> workers_;
  unsigned entries_ = 0;
  uint64_t budget_ = 0;
  QueueCounter registered_;
  std::atomic<bool> zero_copy_ready_{false};
  // The guard of -o queue_sched=idle; stopped after the threads it moves.
  std::unique_ptr<QueueScheduler> sched_;
  QueueThreads threads_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> MakeUringFamilyTransport(const std::string& name,
                                                                    const TransportEnv& env,
                                                                    PolicyFactory policies,
                                                                    RingFactory rings) {
  absl::StatusOr<std::unique_ptr<Transport>> side = MakeReadTransport(env, 1, false);
  if (!side.ok()) return side.status();
  return std::unique_ptr<Transport>(
      new UringTransport(name, env, std::move(policies), std::move(rings), std::move(*side)));
}

}  // namespace kmfuse
