// -o queue_sched (daemon/queue_sched.h) on real mounts. Bazel runs this
// target alone (tags exclusive): the idle class is only used while the
// machine has CPUs to spare, and other tests' load is contention the guard
// rightly answers with the normal class.
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/daemon_process.h"

namespace kmfuse::itest {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Under a QD1 load the io_uring
// transports' queue threads go to the idle scheduling class; at rest, with
// queue_sched=normal and on read/ring-read no thread is ever there; a busy
// loop on every CPU makes the guard move them back to normal.
class QueueSchedTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to mount";
    if (absl::Status a = TransportAvailable(GetParam()); !a.ok()) GTEST_SKIP() << a.message();
  }
  bool IoUring() const { return GetParam() == "uring" || GetParam() == "bufpool"; }

  std::unique_ptr<DaemonProcess> Start(const std::string& sched) {
    DaemonProcess::Config c;
    c.source = src_;
    c.mountpoint = mnt_;
    c.args = {"-o", absl::StrCat("transport=", GetParam(), ",cache=none,queue_sched=", sched)};
    c.watchdog = absl::Seconds(60);
    std::ofstream(src_ + "/f") << "x";
    absl::StatusOr<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(c);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? std::move(*d) : nullptr;
  }

  // Threads of pid in SCHED_IDLE now.
  static int IdleThreads(pid_t pid) {
    int n = 0;
    std::string task_dir = absl::StrCat("/proc/", pid, "/task");
    DIR* dp = opendir(task_dir.c_str());
    if (dp == nullptr) return 0;
    while (dirent* e = readdir(dp)) {
      if (e->d_name[0] == '.') continue;
      n += sched_getscheduler(atoi(e->d_name)) == SCHED_IDLE;
    }
    closedir(dp);
    return n;
  }

  // stat()s through the mount (cache=none: each one a GETATTR) from one
  // thread for `length`; returns the most threads seen in the idle class.
  int LoadAndWatch(pid_t pid, absl::Duration length, absl::Duration* worst) {
    std::atomic<bool> stop{false};
    std::atomic<int64_t> worst_ns{0};
    std::string path = mnt_ + "/f";
    std::thread load([&] {
      struct stat st;
      while (!stop.load()) {
        absl::Time a = absl::Now();
        stat(path.c_str(), &st);
        int64_t ns = absl::ToInt64Nanoseconds(absl::Now() - a);
        if (ns > worst_ns.load()) worst_ns = ns;
      }
    });
    int most = 0;
    absl::Time until = absl::Now() + length;
    while (absl::Now() < until) {
      most = std::max(most, IdleThreads(pid));
      absl::SleepFor(absl::Milliseconds(20));
    }
    stop = true;
    load.join();
    if (worst != nullptr) *worst = absl::Nanoseconds(worst_ns.load());
    return most;
  }

  TempDir dir_{"qsched"};
  std::string src_ = dir_.Mkdir("src");
  std::string mnt_ = dir_.Mkdir("mnt");
};

TEST_P(QueueSchedTest, IdleClassUnderLoadNormalAtRest) {
  std::unique_ptr<DaemonProcess> d = Start("idle");
  ASSERT_NE(d, nullptr);
  int most = LoadAndWatch(d->pid(), absl::Milliseconds(1500), nullptr);
  if (IoUring()) {
    EXPECT_GE(most, 1) << "no queue thread in SCHED_IDLE under load\n" << d->Stderr();
  } else {
    EXPECT_EQ(most, 0) << GetParam() << " has no queue threads to move";
  }
  // At rest (nothing served for a second) every thread is normal again.
  absl::Time until = absl::Now() + absl::Seconds(4);
  while (IdleThreads(d->pid()) > 0 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(IdleThreads(d->pid()), 0) << "idle-class threads at rest";
  absl::StatusOr<int> rc = d->Stop(SIGTERM);
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0) << d->Stderr();
  if (IoUring()) EXPECT_THAT(d->Stderr(), HasSubstr("to the idle class"));
}

TEST_P(QueueSchedTest, NormalNeverUsesTheIdleClass) {
  std::unique_ptr<DaemonProcess> d = Start("normal");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(LoadAndWatch(d->pid(), absl::Milliseconds(800), nullptr), 0);
  absl::StatusOr<int> rc = d->Stop(SIGTERM);
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0) << d->Stderr();
  EXPECT_THAT(d->Stderr(), Not(HasSubstr("queue threads:")));
}

TEST_P(QueueSchedTest, BusyLoopOnEveryCpuMovesThemBackToNormal) {
  if (!IoUring()) GTEST_SKIP() << GetParam() << " has no queue threads to move";
  std::unique_ptr<DaemonProcess> d = Start("idle");
  ASSERT_NE(d, nullptr);
  std::atomic<bool> hogs_on{true};
  std::vector<std::thread> hogs;
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  for (long c = 0; c < cpus && c < CPU_SETSIZE; c++) {
    hogs.emplace_back([&hogs_on, c] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(static_cast<int>(c), &set);
      pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
      while (hogs_on.load(std::memory_order_relaxed)) {
      }
    });
  }
  absl::Duration worst;
  LoadAndWatch(d->pid(), absl::Seconds(2), &worst);
  hogs_on = false;
  for (auto& t : hogs) t.join();
  absl::StatusOr<int> rc = d->Stop(SIGTERM);
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0) << d->Stderr();
  // Some sample saw a queue thread wait to run and moved it back.
  EXPECT_THAT(d->Stderr(), Not(HasSubstr("; 0 move(s) to normal on contention")));
  EXPECT_THAT(d->Stderr(), HasSubstr("move(s) to normal on contention"));
  // An idle-class thread left to a busy loop waits for whole seconds; the
  // guard bounds a stat's wait to a few of its 10 ms samples and slices.
  EXPECT_LT(worst, absl::Seconds(1));
}

INSTANTIATE_TEST_SUITE_P(Transports, QueueSchedTest, ::testing::ValuesIn(RealTransports()),
                         TransportParamName);

}  // namespace
}  // namespace kmfuse::itest
