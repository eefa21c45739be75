// Idle-class queue threads: -o queue_sched=idle, the io_uring transports'
// default (docs/performance.md, "Wake-up placement").
//
// Why. A FUSE-over-io_uring request goes to the queue of the CPU its caller
// runs on, and that queue's thread runs on that CPU. When the thread commits
// the reply, the kernel wakes the caller from inside that thread's
// io_uring_enter: the caller's CPU is busy (the queue thread is on it), so the
// scheduler wakes the caller on another, idle CPU if there is one. The
// caller's next request then goes to that CPU's queue, and so on: requests
// pay cross-CPU wake-ups (an IPI to a halted CPU; tens of µs on a VM) instead
// of a context switch. The scheduler counts a CPU whose runnable tasks are all
// SCHED_IDLE as idle for that choice, so with the queue threads in the idle
// class the caller is woken on its own CPU, preempts the thread (whose work
// for that request is done), and the thread resumes when the caller blocks on
// its next request.
//
// The risk. An idle-class thread gets almost no CPU while normal tasks want
// it, and every caller of the mount waits for it. A guard thread samples the
// queue threads and their io-wq workers (/proc/self/task/T/stat and
// schedstat) every 10 ms while they are busy; when one waited to run
// (WaitedToRun) it moves them all to SCHED_OTHER for a hold time (1 s,
// doubling while contention recurs, at most 64 s), then back to the idle
// class. After 1 s with nothing served they go to SCHED_OTHER and the guard
// samples twice a second, so an idle mount never has an idle-class thread.
//
// Moving a thread back from SCHED_IDLE needs CAP_SYS_NICE or RLIMIT_NICE >= 20;
// Start raises RLIMIT_NICE when it may (CAP_SYS_RESOURCE) and otherwise
// leaves the threads in SCHED_OTHER, saying why.
#ifndef KMFUSE_DAEMON_QUEUE_SCHED_H_
#define KMFUSE_DAEMON_QUEUE_SCHED_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "kmfuse/sync.h"

namespace kmfuse {

// What the guard reads about one task.
struct TaskSample {
  bool runnable = false;  // state R (running or waiting for a CPU)
  uint64_t exec_ns = 0;   // time on a CPU
  uint64_t wait_ns = 0;   // time runnable but waiting for a CPU
  uint64_t runs = 0;      // times it got a CPU
};

// Whether a task waited to run between two samples: runnable at both without
// running in between, or waits that add up to kContendedWait at an average
// of kLongWait or more per run. Being preempted by the caller it just
// answered (the point of the idle class) is a wait of a few µs per run.
inline constexpr absl::Duration kContendedWait = absl::Milliseconds(2);
inline constexpr absl::Duration kLongWait = absl::Milliseconds(1);
bool WaitedToRun(const TaskSample& before, const TaskSample& after);

// The guard's decisions, without clocks or /proc: fed one observation per
// sample, it says which class the threads belong in.
class IdleClassPolicy {
 public:
  enum class Class { kNormal, kIdle };
  static constexpr absl::Duration kFirstHold = absl::Seconds(1);
  static constexpr absl::Duration kMaxHold = absl::Seconds(64);
  static constexpr absl::Duration kPark = absl::Seconds(1);
  static constexpr absl::Duration kBusySample = absl::Milliseconds(10);
  static constexpr absl::Duration kParkedSample = absl::Milliseconds(500);

  // contended: some task WaitedToRun since the last sample; busy: some task
  // ran since the last sample.
  Class Next(absl::Time now, bool contended, bool busy);
  Class current() const { return class_; }
  // How long until the next sample: short while busy, long when parked.
  absl::Duration Interval(absl::Time now) const {
    return Parked(now) ? kParkedSample : kBusySample;
  }
  // Nothing served for kPark: the threads are normal and samples are rare.
  bool Parked(absl::Time now) const { return now - last_busy_ >= kPark; }
  uint64_t contentions() const { return contentions_; }  // moves to normal on contention
  uint64_t idle_moves() const { return idle_moves_; }     // moves to the idle class

 private:
  Class class_ = Class::kNormal;
  absl::Time last_busy_ = absl::InfinitePast();
  absl::Time hold_until_ = absl::InfinitePast();
  absl::Time last_contention_ = absl::InfinitePast();
  absl::Duration hold_ = kFirstHold;
  uint64_t contentions_ = 0;
  uint64_t idle_moves_ = 0;
};

// The guard thread and the tasks it moves.
class QueueScheduler {
 public:
  QueueScheduler() = default;
  QueueScheduler(const QueueScheduler&) = delete;
  QueueScheduler& operator=(const QueueScheduler&) = delete;
  ~QueueScheduler() { Stop(); }

  // Checks the class can be left again (raising RLIMIT_NICE if needed and
  // allowed) and starts the guard. An error says why the threads stay in
  // SCHED_OTHER; the transport carries on without the guard.
  absl::Status Start();
  // Called on each queue thread as it starts.
  void Enroll();
  // Called by queue threads whenever their wait for requests ends: one
  // relaxed load, and a wake-up of the guard only when it is parked, so a
  // burst after rest is sampled within kUnparkSample, not half a second.
  void OnRequests() {
    if (parked_.load(std::memory_order_relaxed)) Unpark();
  }
  static constexpr absl::Duration kUnparkSample = absl::Milliseconds(2);
  void Stop();
  // "queue threads: idle class now; 2 moves to normal on contention, 3 to
  // the idle class".
  std::string Stats() const;

 private:
  void Run();
  void Unpark();
  // Samples every watched task into last_; returns (contended, busy).
  std::pair<bool, bool> Sample() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Apply(IdleClassPolicy::Class c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool unparked_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> parked_{false};
  std::vector<pid_t> enrolled_ ABSL_GUARDED_BY(mu_);
  std::map<pid_t, TaskSample> last_ ABSL_GUARDED_BY(mu_);
  IdleClassPolicy policy_ ABSL_GUARDED_BY(mu_);
  std::thread guard_;
};

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_QUEUE_SCHED_H_
