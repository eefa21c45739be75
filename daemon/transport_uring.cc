// FUSE-over-io_uring transports (`uring`, `kmbuf`, `bufpool`): one queue per
// possible CPU (the kernel routes a request to the queue of the CPU its caller
// runs on), each on its own thread pinned to that CPU, plus a /dev/fuse
// reader for what never travels the rings (FORGET, BATCH_FORGET, INTERRUPT,
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
#include "kmfuse/sync.h"
#include "uring/ring.h"

namespace kmfuse {

std::vector<int> PossibleCpus() {
  std::vector<int> cpus;
  std::ifstream f("/sys/devices/system/cpu/possible");
  std::string line;
  if (std::getline(f, line)) {
    for (absl::string_view part : absl::StrSplit(line, ',', absl::SkipEmpty())) {
      std::vector<absl::string_view> range = absl::StrSplit(part, '-');
      int lo = 0, hi = 0;
      if (!absl::SimpleAtoi(range[0], &lo)) continue;
      hi = lo;
      if (range.size() > 1 && !absl::SimpleAtoi(range[1], &hi)) continue;
      for (int c = lo; c <= hi; c++) cpus.push_back(c);
    }
  }
  if (cpus.empty()) {
    long n = sysconf(_SC_NPROCESSORS_CONF);
    for (long c = 0; c < (n > 0 ? n : 1); c++) cpus.push_back(static_cast<int>(c));
  }
  return cpus;
}

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

  const char* name() const override { return name_.c_str(); }
  std::string Describe() const override {
    size_t bytes = queues_.empty() ? 0 : queues_[0]->policy().buffer_bytes();
    // Queues normally end up alike; after per-queue refusals say how many
    // differ from queue 0.
    std::string mode = queues_.empty() ? "" : queues_[0]->policy().Mode();
    size_t other = 0;
    for (const auto& q : queues_) other += q->policy().Mode() != mode;
    return absl::StrCat(queues_.size(), " queue(s) x ", env_.opts->daemon.queue_depth,
                        " entries, ", mode, " payload buffers",
                        other ? absl::StrCat(" (", other, " queue(s) in another mode)") : "",
                        ", ", bytes >> 10, " KiB per queue",
                        zero_copy_ready_.load() ? ", zero-copy in effect" : "",
                        UringOff() ? " (io-uring switched off by the kernel: requests come "
                                     "through /dev/fuse)"
                                   : "");
  }
  std::string Stats() const override {
    UringQueueStats sum;
    for (const auto& q : queues_) {
      UringQueueStats st = q->stats();
      sum.requests += st.requests;
      sum.zero_copy_requests += st.zero_copy_requests;
      sum.zero_copy_bytes += st.zero_copy_bytes;
      sum.zero_copy_staged += st.zero_copy_staged;
      sum.copied_bytes += st.copied_bytes;
    }
    return absl::StrCat(name_, " stats: ", sum.requests, " requests on the rings, ",
                        sum.zero_copy_requests, " zero-copy (", sum.zero_copy_bytes,
                        " bytes by fixed-buffer I/O, ", sum.zero_copy_staged,
                        " staged through daemon memory), ", sum.copied_bytes,
                        " READ/WRITE bytes through payload buffers");
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
    // Exactly the kernel's payload size, from the negotiated max_write and
    // the kernel's own max_pages (Session) and the real page size.
    const size_t payload = abi::UringMinPayload(env_.max_write, env_.max_pages,
                                                static_cast<size_t>(sysconf(_SC_PAGESIZE)));
    for (size_t q = 0; q < cpus.size(); q++) {
      UringQueueConfig cfg;
      cfg.qid = static_cast<uint16_t>(q);
      cfg.entries = env_.opts->daemon.queue_depth;
      cfg.payload_size = payload;
      cfg.fuse_fd = env_.dev_fd;
      cfg.pin_cpu = cpus[q];
      cfg.zero_copy_ready = &zero_copy_ready_;
      cfg.gate = env_.gate;
      queues_.push_back(std::make_unique<UringQueue>(cfg, policies_(), env_.dispatcher));
    }
    for (auto& q : queues_) {
      UringQueue* queue = q.get();
      threads_.Spawn([this, queue] { return queue->Run(rings_, &registered_); });
    }
    // Wait until every queue has submitted its REGISTERs (or failed) so a
    // setup error is reported by Start, not discovered later.
    while (registered_.load() < queues_.size()) absl::SleepFor(absl::Milliseconds(1));
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
  void Join() override {
    threads_.Join();
    side_->Join();
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
  std::atomic<unsigned> registered_{0};
  std::atomic<bool> zero_copy_ready_{false};
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
