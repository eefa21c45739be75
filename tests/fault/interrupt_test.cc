// Interrupts, per transport: a SETLKW blocked behind another process's lock
// is interrupted by a signal whose handler is installed without SA_RESTART.
// The caller gets EINTR within 2 s, the mount keeps serving, the holder can
// unlock, and the interrupted request never takes the lock afterwards.
//
// Holder and waiter are forked children talking over pipes; the fixture
// SIGKILLs and reaps them, so a stuck child never outlives the test.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/fault/fault_testing.h"
#include "tests/testing/daemon_process.h"

namespace kmfuse::itest {
namespace {

struct Result {
  int rc = 0;
  int err = 0;
  int64_t ns = 0;  // CLOCK_MONOTONIC when the call returned
};

int64_t MonoNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

void OnSignal(int) {}

struct flock WriteLock(short type) {
  struct flock l = {};
  l.l_type = type;
  l.l_whence = SEEK_SET;
  return l;
}

class InterruptTest : public TransportTest {
 protected:
  void TearDown() override {
    for (pid_t pid : children_) {
      kill(pid, SIGKILL);
      (void)WaitForProcessExit(pid, absl::Seconds(10));
    }
  }

  // A child that runs body(cmd_read_fd, result_write_fd).
  pid_t Child(int* to_child, int* from_child, void (*body)(const char*, int, int), const std::string& path) {
    int cmd[2], res[2];
    if (pipe2(cmd, O_CLOEXEC) != 0 || pipe2(res, O_CLOEXEC) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
      close(cmd[1]);
      close(res[0]);
      body(path.c_str(), cmd[0], res[1]);
      _exit(0);
    }
    close(cmd[0]);
    close(res[1]);
    *to_child = cmd[1];
    *from_child = res[0];
    if (pid > 0) children_.push_back(pid);
    return pid;
  }

  std::vector<pid_t> children_;
};

void Report(int fd, int rc, int err) {
  Result r{rc, err, MonoNs()};
  ssize_t n = write(fd, &r, sizeof(r));
  (void)n;
}

void AwaitCommand(int fd) {
  char c;
  ssize_t n = read(fd, &c, 1);
  (void)n;
}

// Holder: lock, report, wait for the command, unlock, report, wait to exit.
void Holder(const char* path, int cmd, int res) {
  int fd = open(path, O_RDWR);
  struct flock l = WriteLock(F_WRLCK);
  int rc = fd < 0 ? -1 : fcntl(fd, F_SETLK, &l);
  Report(res, rc, errno);
  AwaitCommand(cmd);
  struct flock u = WriteLock(F_UNLCK);
  rc = fcntl(fd, F_SETLK, &u);
  Report(res, rc, errno);
  AwaitCommand(cmd);
}

// Waiter: SIGUSR1 handler without SA_RESTART, then a blocking SETLKW.
void Waiter(const char* path, int cmd, int res) {
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGUSR1, &sa, nullptr);
  int fd = open(path, O_RDWR);
  Report(res, fd < 0 ? -1 : 0, errno);
  struct flock l = WriteLock(F_WRLCK);
  int rc = fcntl(fd, F_SETLKW, &l);
  Report(res, rc, errno);
  AwaitCommand(cmd);  // keeps its file open until told
}

bool ReadResult(int fd, Result* r, absl::Duration deadline) {
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(deadline))) != 1) return false;
  return read(fd, r, sizeof(*r)) == sizeof(*r);
}

TEST_P(InterruptTest, SetlkwInterruptedBySignalReturnsEintr) {
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = Start();
  ASSERT_TRUE(d.ok()) << d.status();
  std::string path = mnt_ + "/lockfile";
  ASSERT_TRUE(WriteFile(path, "lock"));

  int hold_cmd = -1, hold_res = -1;
  pid_t holder = Child(&hold_cmd, &hold_res, Holder, path);
  ASSERT_GT(holder, 0);
  Result r;
  ASSERT_TRUE(ReadResult(hold_res, &r, absl::Seconds(10))) << "holder did not report";
  ASSERT_EQ(r.rc, 0) << "holder lock: " << strerror(r.err);

  int wait_cmd = -1, wait_res = -1;
  pid_t waiter = Child(&wait_cmd, &wait_res, Waiter, path);
  ASSERT_GT(waiter, 0);
  ASSERT_TRUE(ReadResult(wait_res, &r, absl::Seconds(10))) << "waiter did not open";
  ASSERT_EQ(r.rc, 0) << "waiter open: " << strerror(r.err);
  // Blocked: no result for a while.
  EXPECT_FALSE(ReadResult(wait_res, &r, absl::Milliseconds(500))) << "SETLKW did not block";

  int64_t sent = MonoNs();
  ASSERT_EQ(kill(waiter, SIGUSR1), 0);
  ASSERT_TRUE(ReadResult(wait_res, &r, absl::Seconds(2))) << "SETLKW still blocked 2 s after the signal";
  Figure("signal_to_eintr_ms", (r.ns - sent) / 1e6);
  EXPECT_EQ(r.rc, -1);
  EXPECT_EQ(r.err, EINTR) << strerror(r.err);
  EXPECT_LT(r.ns - sent, int64_t{2000000000});

  // The mount keeps serving.
  EXPECT_TRUE(WriteFile(mnt_ + "/other", "other"));
  EXPECT_EQ(ReadFile(mnt_ + "/other"), "other");
  EXPECT_EQ(ReadFile(path), "lock");

  // The holder unlocks; the interrupted request must not grab the lock
  // (the waiter still has its file open), so this process can take it.
  ASSERT_EQ(write(hold_cmd, "u", 1), 1);
  ASSERT_TRUE(ReadResult(hold_res, &r, absl::Seconds(10))) << "holder did not unlock";
  EXPECT_EQ(r.rc, 0) << "unlock: " << strerror(r.err);
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << strerror(errno);
  struct flock l = WriteLock(F_WRLCK);
  auto ok = std::make_shared<std::atomic<int>>(-1);
  bool returned = RunWithTimeout([fd, l, ok]() mutable { *ok = fcntl(fd, F_SETLK, &l) == 0 ? 0 : errno; },
                                 absl::Seconds(5));
  ASSERT_TRUE(returned);
  EXPECT_EQ(ok->load(), 0) << "the lock is taken after the holder unlocked: " << strerror(*ok);
  close(fd);

  ASSERT_EQ(write(wait_cmd, "x", 1), 1);
  ASSERT_EQ(write(hold_cmd, "x", 1), 1);
  for (pid_t pid : {holder, waiter}) {
    absl::StatusOr<int> rc = WaitForProcessExit(pid, absl::Seconds(10));
    ASSERT_TRUE(rc.ok()) << rc.status();
    EXPECT_EQ(*rc, 0);
  }
  children_.clear();
  close(hold_cmd);
  close(hold_res);
  close(wait_cmd);
  close(wait_res);
  absl::StatusOr<int> rc = (*d)->Stop(SIGTERM);
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0);
}

INSTANTIATE_TEST_SUITE_P(Transports, InterruptTest, ::testing::ValuesIn(FaultTransports()),
                         TransportParamName);

}  // namespace
}  // namespace kmfuse::itest
