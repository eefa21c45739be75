// The harness's own guarantees: a test blocked on a mount whose daemon
// stopped answering is released by the watchdog or by the destructor, and
// nothing stays mounted.
#include "tests/testing/daemon_process.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace kmfuse::itest {
namespace {

// SIGSTOP is asynchronous: a worker already running in user space can still
// answer one request before it stops. Wait until every thread is stopped.
bool StopAndWait(pid_t pid) {
  if (kill(pid, SIGSTOP) != 0) return false;
  for (int i = 0; i < 500; i++) {
    bool all = true;
    std::string dir = "/proc/" + std::to_string(pid) + "/task";
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) return false;
    while (struct dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      FILE* f = fopen((dir + "/" + e->d_name + "/stat").c_str(), "r");
      if (f == nullptr) continue;
      char buf[512] = {};
      size_t n = fread(buf, 1, sizeof(buf) - 1, f);
      fclose(f);
      const char* close = strrchr(buf, ')');
      if (n == 0 || close == nullptr || close[2] != 'T') all = false;
    }
    closedir(d);
    if (all) return true;
    usleep(2000);
  }
  return false;
}

std::unique_ptr<DaemonProcess> StartRead(const TempDir& dir, absl::Duration watchdog) {
  DaemonProcess::Config c;
  c.source = dir.Mkdir("src");
  c.mountpoint = dir.Mkdir("mnt");
  c.args = {"-o", "transport=read"};
  c.watchdog = watchdog;
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(c);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(*d) : nullptr;
}

TEST(DaemonProcessTest, WatchdogReleasesAnOperationBlockedOnAStoppedDaemon) {
  TempDir dir("harness");
  std::unique_ptr<DaemonProcess> d = StartRead(dir, absl::Seconds(30));
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->transport(), "read");
  ASSERT_TRUE(StopAndWait(d->pid()));
  d->RearmWatchdog(absl::Seconds(1));
  absl::Time t0 = absl::Now();
  struct stat st;
  // LOOKUP of a new name must go to the (stopped) daemon.
  int rc = stat((d->mountpoint() + "/never-looked-up").c_str(), &st);
  int err = errno;
  EXPECT_LT(absl::Now() - t0, absl::Seconds(15));
  EXPECT_EQ(rc, -1);
  // An aborted connection fails requests with ECONNABORTED (in flight) or
  // ENOTCONN (new ones).
  EXPECT_TRUE(err == ECONNABORTED || err == ENOTCONN) << strerror(err);
  EXPECT_TRUE(d->watchdog_fired());
  EXPECT_EQ(MountCountAt(d->mountpoint()), 0);
  absl::StatusOr<int> code = d->WaitExit(absl::Seconds(5));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 128 + SIGKILL);
}

TEST(DaemonProcessTest, DestructorReleasesABlockedHelperThread) {
  TempDir dir("harness");
  std::unique_ptr<DaemonProcess> d = StartRead(dir, absl::Seconds(30));
  ASSERT_NE(d, nullptr);
  std::string mnt = d->mountpoint();
  ASSERT_TRUE(StopAndWait(d->pid()));
  auto result = std::make_shared<std::atomic<int>>(0);
  EXPECT_FALSE(RunWithTimeout(
      [mnt, result] {
        int fd = open((mnt + "/blocked").c_str(), O_RDONLY);
        *result = fd < 0 ? errno : -1;
        if (fd >= 0) close(fd);
      },
      absl::Milliseconds(300)));
  absl::Time t0 = absl::Now();
  d.reset();
  EXPECT_LT(absl::Now() - t0, absl::Seconds(15));
  EXPECT_EQ(MountCountAt(mnt), 0);
  // The detached helper got its error once the connection was aborted.
  absl::Time until = absl::Now() + absl::Seconds(5);
  while (result->load() == 0 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_TRUE(result->load() == ECONNABORTED || result->load() == ENOTCONN) << result->load();
}

TEST(DaemonProcessTest, StartReportsTheDaemonsStderrWhenItExits) {
  TempDir dir("harness");
  DaemonProcess::Config c;
  c.source = dir.Join("no-such-source");
  c.mountpoint = dir.Mkdir("mnt");
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(c);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("exited with status 1"), absl::string_view::npos) << d.status();
  EXPECT_NE(d.status().message().find("no-such-source"), absl::string_view::npos) << d.status();
}

TEST(RunCommandTest, KillsAtTheDeadline) {
  absl::Time t0 = absl::Now();
  CommandResult r = RunCommand({"sleep", "30"}, absl::Milliseconds(200));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, 128 + SIGKILL);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
  r = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"}, absl::Seconds(10), {"X=1"});
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
}

}  // namespace
}  // namespace kmfuse::itest
