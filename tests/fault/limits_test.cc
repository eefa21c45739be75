// Resource limits, per transport: kmfused under RLIMIT_NOFILE 64 serving a
// tree of 2,000 files (its fd budget keeps it working; what cannot fit fails
// ENFILE, never the daemon's own EMFILE, and nothing crashes), and the
// largest max_write with a deep queue.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kmfuse/sync.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fault/fault_testing.h"
#include "tests/testing/daemon_process.h"

namespace kmfuse::itest {
namespace {

using ::testing::HasSubstr;

constexpr int kDirs = 20;
constexpr int kFilesPerDir = 100;

class LimitsTest : public TransportTest {};

TEST_P(LimitsTest, SmallNofileLimitWithTwoThousandFiles) {
  for (int d = 0; d < kDirs; d++) {
    std::string dir = dir_.Mkdir(absl::StrCat("src/d", d));
    for (int f = 0; f < kFilesPerDir; f++) {
      ASSERT_TRUE(WriteFile(absl::StrCat(dir, "/f", f), absl::StrCat(d, "/", f)));
    }
  }
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = Start({}, {"prlimit", "--nofile=64:64", "--"});
  ASSERT_TRUE(d.ok()) << d.status();
  pid_t pid = (*d)->pid();
  EXPECT_THAT(ReadSmallFile(absl::StrCat("/proc/", pid, "/limits")),
              HasSubstr("Max open files            64                   64"));

  // Every file stat'ed and read through the mount, on a thread with a
  // deadline; errors are counted by errno.
  struct Walk {
    Mutex mu;
    std::map<int, int> errors;
    int ok = 0;
    int wrong = 0;
  };
  auto w = std::make_shared<Walk>();
  std::string mnt = mnt_;
  absl::Time t0 = absl::Now();
  bool finished = RunWithTimeout(
      [w, mnt] {
        for (int d = 0; d < kDirs; d++) {
          for (int f = 0; f < kFilesPerDir; f++) {
            std::string p = absl::StrCat(mnt, "/d", d, "/f", f);
            struct stat st;
            int err = stat(p.c_str(), &st) == 0 ? 0 : errno;
            std::string got;
            if (err == 0) {
              got = ReadFile(p);
              if (got.rfind("<error: ", 0) == 0) err = got.find("Too many open files in system") != std::string::npos ? ENFILE : EIO;
            }
            MutexLock l(&w->mu);
            if (err != 0) {
              w->errors[err]++;
            } else if (got == absl::StrCat(d, "/", f)) {
              w->ok++;
            } else {
              w->wrong++;
            }
          }
        }
      },
      absl::Seconds(60));
  ASSERT_TRUE(finished) << "walking 2,000 files did not finish within 60 s";
  Figure("walk_2000_ms", absl::ToDoubleMilliseconds(absl::Now() - t0));
  {
    MutexLock l(&w->mu);
    Figure("walk_ok", w->ok);
    EXPECT_EQ(w->wrong, 0) << "files read back with the wrong content";
    for (auto& [err, n] : w->errors) {
      EXPECT_EQ(err, ENFILE) << n << " operations failed with " << strerror(err);
    }
    Figure("walk_enfile", w->errors[ENFILE]);
  }
  ProcFigures f = ReadProcFigures(pid);
  Figure("daemon_fds_after_walk", f.fds);
  EXPECT_LE(f.fds, 64);

  // Open handles cannot be evicted: hold files open until the daemon runs
  // out, which must be a clean ENFILE (the caller's own fd table is not
  // full, so the daemon's EMFILE would mislead it), then close them and
  // carry on.
  std::vector<int> fds;
  int first_err = 0;
  for (int i = 0; i < 100 && first_err == 0; i++) {
    int fd = open(absl::StrCat(mnt_, "/d1/f", i).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      first_err = errno;
    } else {
      fds.push_back(fd);
    }
  }
  Figure("open_handles_before_enfile", static_cast<double>(fds.size()));
  if (first_err != 0) {
    EXPECT_EQ(first_err, ENFILE) << strerror(first_err);
  }
  for (int fd : fds) close(fd);
  EXPECT_TRUE(ProcessExists(pid));
  // Release is asynchronous: give the daemon a moment to close the handles.
  std::string got;
  for (int i = 0; i < 100; i++) {
    got = ReadFile(mnt_ + "/d19/f99");
    if (got == "19/99") break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(got, "19/99");
  EXPECT_TRUE(WriteFile(mnt_ + "/d0/new", "new"));
  EXPECT_EQ(ReadFile(src_ + "/d0/new"), "new");
  absl::StatusOr<int> rc = (*d)->Stop(SIGTERM);
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0) << (*d)->Stderr();
}

TEST_P(LimitsTest, LargeMaxWriteDeepQueue) {
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = Start({"-o", "max_write=1M,queue_depth=64"});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT((*d)->Stderr(), HasSubstr("max_write 1024 KiB"));
  Figure("daemon_rss_kib_idle", ReadProcFigures((*d)->pid()).rss_kib);
  std::string data = PatternAt(7, 0, 16 << 20);
  int fd = open((mnt_ + "/big").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  for (size_t off = 0; off < data.size(); off += 1 << 20) {
    ASSERT_EQ(pwrite(fd, data.data() + off, 1 << 20, static_cast<off_t>(off)), 1 << 20) << strerror(errno);
  }
  ASSERT_EQ(fsync(fd), 0) << strerror(errno);
  ASSERT_EQ(close(fd), 0);
  EXPECT_TRUE(ReadFile(mnt_ + "/big") == data);
  EXPECT_TRUE(HasPatternPrefix(src_ + "/big", 7, data.size()));
  Figure("daemon_rss_kib_after_16mib", ReadProcFigures((*d)->pid()).rss_kib);
  absl::StatusOr<int> rc = (*d)->Stop(SIGTERM);
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0);
}

INSTANTIATE_TEST_SUITE_P(Transports, LimitsTest, ::testing::ValuesIn(FaultTransports()),
                         TransportParamName);

}  // namespace
}  // namespace kmfuse::itest
