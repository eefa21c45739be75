#include "daemon/queue_sched.h"

#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace kmfuse {
namespace {

using Class = IdleClassPolicy::Class;

constexpr uint64_t kMs = 1000 * 1000;

TEST(WaitedToRunTest, PreemptedByTheCallerIsNotContention) {
  // 2,000 requests in 10 ms, each a few µs behind the caller it answered.
  TaskSample a{false, 100 * kMs, 50 * kMs, 1000};
  TaskSample b{true, 104 * kMs, 56 * kMs, 3000};
  EXPECT_FALSE(WaitedToRun(a, b));
}

TEST(WaitedToRunTest, RunnableWithoutRunningIsContention) {
  TaskSample a{true, 100 * kMs, 50 * kMs, 1000};
  TaskSample b{true, 100 * kMs, 50 * kMs, 1000};  // the wait is counted when it runs
  EXPECT_TRUE(WaitedToRun(a, b));
  b.exec_ns += 1;  // it ran in between
  EXPECT_FALSE(WaitedToRun(a, b));
  a.runnable = false;  // it became runnable since
  b.exec_ns -= 1;
  EXPECT_FALSE(WaitedToRun(a, b));
}

TEST(WaitedToRunTest, LongWaitsPerRunAreContention) {
  TaskSample a{false, 100 * kMs, 50 * kMs, 1000};
  TaskSample b{false, 101 * kMs, 56 * kMs, 1004};  // 6 ms over 4 runs
  EXPECT_TRUE(WaitedToRun(a, b));
  b.wait_ns = 51 * kMs + kMs / 2;  // 1.5 ms in all: under kContendedWait
  EXPECT_FALSE(WaitedToRun(a, b));
  b.wait_ns = 56 * kMs;
  b.runs = 1100;  // 6 ms over 100 runs: 60 µs each
  EXPECT_FALSE(WaitedToRun(a, b));
}

TEST(WaitedToRunTest, ANewTaskWithTheSameIdIsNotContention) {
  TaskSample a{false, 100 * kMs, 50 * kMs, 1000};
  TaskSample b{false, 1 * kMs, 9 * kMs, 3};
  EXPECT_FALSE(WaitedToRun(a, b));
}

TEST(IdleClassPolicyTest, BusyGoesIdleContentionHoldsNormalThenDoubles) {
  IdleClassPolicy p;
  absl::Time t = absl::UnixEpoch() + absl::Hours(1);
  EXPECT_EQ(p.current(), Class::kNormal);
  EXPECT_EQ(p.Next(t, false, false), Class::kNormal);  // at rest
  EXPECT_EQ(p.Interval(t), absl::Milliseconds(500));
  EXPECT_EQ(p.Next(t += absl::Milliseconds(500), false, true), Class::kIdle);
  EXPECT_EQ(p.Interval(t), absl::Milliseconds(10));
  EXPECT_EQ(p.idle_moves(), 1u);

  EXPECT_EQ(p.Next(t += absl::Milliseconds(10), true, true), Class::kNormal);
  EXPECT_EQ(p.contentions(), 1u);
  // Held for the first hold (1 s) while busy and quiet.
  EXPECT_EQ(p.Next(t += absl::Milliseconds(990), false, true), Class::kNormal);
  EXPECT_EQ(p.Next(t += absl::Milliseconds(10), false, true), Class::kIdle);
  EXPECT_EQ(p.idle_moves(), 2u);

  // Again within twice the hold: 2 s now.
  EXPECT_EQ(p.Next(t += absl::Milliseconds(500), true, true), Class::kNormal);
  EXPECT_EQ(p.contentions(), 2u);
  EXPECT_EQ(p.Next(t += absl::Milliseconds(1500), false, true), Class::kNormal);
  EXPECT_EQ(p.Next(t += absl::Milliseconds(500), false, true), Class::kIdle);

  // Contention while already normal is not another move, but extends the hold.
  EXPECT_EQ(p.Next(t += absl::Milliseconds(10), true, true), Class::kNormal);
  EXPECT_EQ(p.Next(t += absl::Milliseconds(10), true, true), Class::kNormal);
  EXPECT_EQ(p.contentions(), 3u);
}

TEST(IdleClassPolicyTest, HoldIsCappedAndStartsOverAfterAQuietSpell) {
  IdleClassPolicy p;
  absl::Time t = absl::UnixEpoch() + absl::Hours(1);
  for (int i = 0; i < 20; i++) p.Next(t += absl::Milliseconds(10), true, true);
  // Capped at kMaxHold: idle again 64 s after the last contention.
  EXPECT_EQ(p.Next(t + IdleClassPolicy::kMaxHold - absl::Milliseconds(10), false, true),
            Class::kNormal);
  t += IdleClassPolicy::kMaxHold;
  EXPECT_EQ(p.Next(t, false, true), Class::kIdle);
  // A contention long after: back to the first hold.
  t += absl::Minutes(10);
  p.Next(t, true, true);
  EXPECT_EQ(p.Next(t + IdleClassPolicy::kFirstHold, false, true), Class::kIdle);
}

TEST(IdleClassPolicyTest, NothingServedForASecondParksInTheNormalClass) {
  IdleClassPolicy p;
  absl::Time t = absl::UnixEpoch() + absl::Hours(1);
  EXPECT_EQ(p.Next(t, false, true), Class::kIdle);
  EXPECT_EQ(p.Next(t += absl::Milliseconds(990), false, false), Class::kIdle);
  EXPECT_EQ(p.Next(t += absl::Milliseconds(10), false, false), Class::kNormal);
  EXPECT_EQ(p.Interval(t), absl::Milliseconds(500));
}

// The real guard: an enrolled thread that works alone goes to the idle
// class; a normal thread competing for its CPU makes the guard move it back
// quickly; at rest it ends normal.
int PolicyOf(pid_t tid) { return sched_getscheduler(tid); }

void PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

bool WaitForPolicy(pid_t tid, int policy, absl::Duration limit) {
  absl::Time deadline = absl::Now() + limit;
  while (absl::Now() < deadline) {
    if (PolicyOf(tid) == policy) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return PolicyOf(tid) == policy;
}

TEST(QueueSchedulerTest, IdleWhileAloneNormalUnderContentionAndAtRest) {
  QueueScheduler sched;
  ASSERT_TRUE(sched.Start().ok());
  std::atomic<pid_t> tid{0};
  std::atomic<int> phase{0};  // 0 work, 1 rest, 2 end, 3 work telling the guard
  std::atomic<int64_t> first_request{0};
  std::thread worker([&] {
    PinTo(0);
    sched.Enroll();
    tid = static_cast<pid_t>(syscall(SYS_gettid));
    while (phase.load() != 2) {
      if (phase.load() == 1) {
        absl::SleepFor(absl::Seconds(2));  // at rest: no run at all for a while
      } else {
        // Work in short bursts like a queue thread: run, then block a little.
        if (phase.load() == 3) {
          if (first_request.load() == 0) first_request = absl::ToUnixNanos(absl::Now());
          sched.OnRequests();
        }
        absl::Time until = absl::Now() + absl::Microseconds(200);
        while (absl::Now() < until) {
        }
        usleep(50);
      }
    }
  });
  while (tid.load() == 0) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_TRUE(WaitForPolicy(tid, SCHED_IDLE, absl::Seconds(3))) << sched.Stats();

  // A normal thread that never blocks, on the same CPU.
  std::atomic<bool> hog_on{true};
  absl::Time hog_start = absl::Now();
  std::thread hog([&] {
    PinTo(0);
    while (hog_on.load()) {
    }
  });
  EXPECT_TRUE(WaitForPolicy(tid, SCHED_OTHER, absl::Milliseconds(500))) << sched.Stats();
  absl::Duration reaction = absl::Now() - hog_start;
  EXPECT_LT(reaction, absl::Milliseconds(500));
  EXPECT_NE(sched.Stats().find("1 move(s) to normal on contention"), std::string::npos)
      << sched.Stats();
  // Held normal while the hog runs (the hold is 1 s at least).
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(PolicyOf(tid), SCHED_OTHER);
  hog_on = false;
  hog.join();
  // Alone again: idle class after the hold.
  EXPECT_TRUE(WaitForPolicy(tid, SCHED_IDLE, absl::Seconds(5))) << sched.Stats();
  // At rest: normal within a second or so.
  phase = 1;
  EXPECT_TRUE(WaitForPolicy(tid, SCHED_OTHER, absl::Milliseconds(1900))) << sched.Stats();
  // Requests after rest wake the parked guard: idle class again at once,
  // not at its next half-second sample. (The worker ends its 2 s rest first.)
  phase = 3;
  EXPECT_TRUE(WaitForPolicy(tid, SCHED_IDLE, absl::Seconds(3))) << sched.Stats();
  EXPECT_LT(absl::Now() - absl::FromUnixNanos(first_request.load()), absl::Milliseconds(200));
  phase = 2;
  worker.join();
  sched.Stop();
}

}  // namespace
}  // namespace kmfuse
