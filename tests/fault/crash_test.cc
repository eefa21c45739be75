// How a mount ends while writers are busy, per transport: the daemon killed
// (SIGKILL), stopped (SIGTERM), unmounted from outside (umount,
// fusermount3 -u) and its connection aborted through fusectl. In every case
// blocked callers return within a bound, the daemon (if alive) exits within
// a bound, and nothing a writer had fsync'ed is missing from the source.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fault/fault_testing.h"
#include "tests/testing/daemon_process.h"

namespace kmfuse::itest {
namespace {

using ::testing::AnyOf;
using ::testing::Eq;
using ::testing::HasSubstr;

constexpr int kWriters = 4;
constexpr size_t kBlock = 64 << 10;
constexpr uint64_t kFsyncEvery = 1 << 20;

std::string Describe(const CommandResult& r) {
  return absl::StrCat("exit ", r.exit_code, r.timed_out ? " (killed at the deadline)" : "",
                      "\nstdout:\n", r.out, "\nstderr:\n", r.err);
}

bool HaveFusermount3() {
  return access("/usr/bin/fusermount3", X_OK) == 0 || access("/bin/fusermount3", X_OK) == 0;
}

class CrashTest : public TransportTest {
 protected:
  // Files written, fsync'ed and closed before the fault: must survive it.
  void WriteSyncedFiles(int n) {
    for (int i = 0; i < n; i++) {
      ASSERT_TRUE(
          WriteFileSynced(absl::StrCat(mnt_, "/synced-", i), PatternAt(i, 0, 256 << 10)));
    }
  }
  void ExpectSyncedFiles(const std::string& dir, int n) {
    for (int i = 0; i < n; i++) {
      std::string got = ReadFile(absl::StrCat(dir, "/synced-", i));
      EXPECT_TRUE(got == PatternAt(i, 0, 256 << 10)) << dir << "/synced-" << i << ": " << got.substr(0, 80);
    }
  }
  std::unique_ptr<WriterPool> StartWriters() {
    std::vector<std::string> paths;
    for (int i = 0; i < kWriters; i++) paths.push_back(absl::StrCat(mnt_, "/busy-", i));
    auto pool = std::make_unique<WriterPool>(paths, kBlock, kFsyncEvery);
    // Heavy I/O under way: each writer past a few fsyncs.
    EXPECT_TRUE(pool->WaitWritten(3 * kFsyncEvery, absl::Seconds(10)))
        << "writers did not get going; first errno " << pool->writers()[0]->err;
    return pool;
  }
};

// The daemon dies (SIGKILL) under load: every caller returns ENOTCONN or
// ECONNABORTED within seconds, the dead mount is cleaned with umount -l, a
// new daemon mounts the same mountpoint and fsync'ed data is intact.
TEST_P(CrashTest, SigkillDuringHeavyIo) {
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = Start();
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_NO_FATAL_FAILURE(WriteSyncedFiles(3));
  std::unique_ptr<WriterPool> pool = StartWriters();

  absl::Time t0 = absl::Now();
  absl::StatusOr<int> rc = (*d)->Stop(SIGKILL, absl::Seconds(10));
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 128 + SIGKILL);
  // Callers are not asked to stop: they must be thrown out by the kernel.
  ASSERT_TRUE(pool->WaitAll(absl::Seconds(5))) << "a writer is still blocked 5 s after SIGKILL";
  absl::Duration returned = pool->LastDone() - t0;
  Figure("sigkill_callers_return_ms", absl::ToDoubleMilliseconds(returned));
  EXPECT_LT(returned, absl::Seconds(3));
  for (const auto& w : pool->writers()) {
    // uring and bufpool (both FUSE-over-io_uring): a request the dead daemon
    // had fetched from its ring entry is ended by the kernel's io_uring
    // cancellation, which reports ECANCELED (seen on 6.18 and 7.3).
    if (GetParam() == "uring" || GetParam() == "bufpool") {
      EXPECT_THAT(w->err.load(), AnyOf(Eq(ENOTCONN), Eq(ECONNABORTED), Eq(ECANCELED)))
          << w->path << ": " << strerror(w->err);
    } else {
      EXPECT_THAT(w->err.load(), AnyOf(Eq(ENOTCONN), Eq(ECONNABORTED)))
          << w->path << ": " << strerror(w->err);
    }
  }
  // The mount is dead, not gone: new calls fail at once instead of blocking.
  struct stat st;
  bool failed_fast = RunWithTimeout(
      [m = mnt_] {
        struct stat s;
        (void)stat((m + "/synced-0").c_str(), &s);
      },
      absl::Seconds(2));
  EXPECT_TRUE(failed_fast) << "stat on the dead mount blocked";
  EXPECT_NE(FuseConnectionAt((*d)->mountpoint()), 0u) << "the kernel keeps the dead mount";

  CommandResult u = RunCommand({"umount", "-l", mnt_}, absl::Seconds(10));
  EXPECT_EQ(u.exit_code, 0) << Describe(u);
  EXPECT_EQ(MountCountAt((*d)->mountpoint()), 0);
  d->reset();  // its teardown must not touch the next daemon's mount

  // Durable data is in the source, before any new daemon runs.
  ExpectSyncedFiles(src_, 3);
  ExpectDurableIntact(*pool, src_);

  absl::StatusOr<std::unique_ptr<DaemonProcess>> again = Start();
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectSyncedFiles(mnt_, 3);
  ASSERT_EQ(stat((mnt_ + "/busy-0").c_str(), &st), 0) << strerror(errno);
  EXPECT_GE(static_cast<uint64_t>(st.st_size), pool->writers()[0]->durable.load());
  ASSERT_TRUE(WriteFile(mnt_ + "/after", "after"));
  EXPECT_EQ(ReadFile(src_ + "/after"), "after");
  absl::StatusOr<int> rc2 = (*again)->Stop(SIGTERM);
  ASSERT_TRUE(rc2.ok()) << rc2.status();
  EXPECT_EQ(*rc2, 0);
}

// SIGTERM under load: exit 0, the process is gone (no thread left behind),
// writers are released, fsync'ed data intact.
TEST_P(CrashTest, SigtermDuringIo) {
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = Start();
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_NO_FATAL_FAILURE(WriteSyncedFiles(2));
  std::unique_ptr<WriterPool> pool = StartWriters();
  pid_t pid = (*d)->pid();
  absl::Time t0 = absl::Now();
  absl::StatusOr<int> rc = (*d)->Stop(SIGTERM, absl::Seconds(15));
  ASSERT_TRUE(rc.ok()) << rc.status();
  Figure("sigterm_exit_ms", absl::ToDoubleMilliseconds(absl::Now() - t0));
  EXPECT_EQ(*rc, 0) << (*d)->Stderr();
  EXPECT_FALSE(ProcessExists(pid));
  EXPECT_EQ(MountCountAt((*d)->mountpoint()), 0);
  ASSERT_TRUE(pool->WaitAll(absl::Seconds(5))) << "a writer is still blocked after the daemon exited";
  Figure("sigterm_callers_return_ms", absl::ToDoubleMilliseconds(pool->LastDone() - t0));
  for (const auto& w : pool->writers()) {
    EXPECT_THAT(w->err.load(), AnyOf(Eq(ENOTCONN), Eq(ECONNABORTED)))
        << w->path << ": " << strerror(w->err);
  }
  ExpectSyncedFiles(src_, 2);
  ExpectDurableIntact(*pool, src_);
}

// umount / fusermount3 -u while files are open: the plain unmount is
// refused (busy) and the daemon keeps serving; the lazy one detaches the
// mount, open files keep working until closed, then the daemon exits 0.
// Whether statx reports STATX_MNT_ID_UNIQUE (Linux 6.8+).
bool KernelReportsUniqueMountIds() {
  struct statx stx;
  return statx(AT_FDCWD, "/", AT_STATX_DONT_SYNC, 0x4000, &stx) == 0 && (stx.stx_mask & 0x4000) != 0;
}

class ExternalUnmountTest : public CrashTest {
 protected:
  void Run(const std::vector<std::string>& plain, const std::vector<std::string>& lazy) {
    absl::StatusOr<std::unique_ptr<DaemonProcess>> d = Start();
    ASSERT_TRUE(d.ok()) << d.status();
    ASSERT_NO_FATAL_FAILURE(WriteSyncedFiles(2));
    std::unique_ptr<WriterPool> pool = StartWriters();
    pid_t pid = (*d)->pid();

    CommandResult busy = RunCommand(plain, absl::Seconds(10));
    EXPECT_NE(busy.exit_code, 0) << Describe(busy);
    EXPECT_THAT(busy.err, HasSubstr("busy")) << Describe(busy);
    uint64_t before = pool->TotalWritten();
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_GT(pool->TotalWritten(), before) << "writers stalled after a refused unmount";
    EXPECT_TRUE(ProcessExists(pid));

    CommandResult u = RunCommand(lazy, absl::Seconds(10));
    EXPECT_EQ(u.exit_code, 0) << Describe(u);
    EXPECT_EQ(MountCountAt((*d)->mountpoint()), 0) << "detached from the namespace";
    before = pool->TotalWritten();
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_GT(pool->TotalWritten(), before) << "open files stopped working after the lazy unmount";
    // Someone else mounts at the same path meanwhile; when the daemon's
    // connection ends it must leave that mount alone.
    ASSERT_TRUE(MountTmpfs(mnt_, "1m"));
    absl::Cleanup unmount_other = [this] { umount2(mnt_.c_str(), MNT_DETACH); };

    absl::Time t0 = absl::Now();
    pool->Stop();
    ASSERT_TRUE(pool->WaitAll(absl::Seconds(10)));
    for (const auto& w : pool->writers()) EXPECT_EQ(w->err, 0) << w->path << ": " << strerror(w->err);
    absl::StatusOr<int> rc = (*d)->WaitExit(absl::Seconds(10));
    ASSERT_TRUE(rc.ok()) << rc.status();
    Figure("exit_after_last_close_ms", absl::ToDoubleMilliseconds(absl::Now() - t0));
    EXPECT_EQ(*rc, 0) << (*d)->Stderr();
    EXPECT_FALSE(ProcessExists(pid));
    EXPECT_EQ(MountCountAt((*d)->mountpoint()), 1) << "the daemon detached a mount that is not its own";
    EXPECT_EQ(MountTypeAt((*d)->mountpoint()), "tmpfs");
    ExpectSyncedFiles(src_, 2);
    ExpectDurableIntact(*pool, src_);
    // Everything was closed cleanly: every written byte is in the source.
    for (const auto& w : pool->writers()) EXPECT_EQ(w->durable.load(), w->written.load());
  }
};

TEST_P(ExternalUnmountTest, UmountDuringIo) { Run({"umount", mnt_}, {"umount", "-l", mnt_}); }

TEST_P(ExternalUnmountTest, FusermountDuringIo) {
  if (!HaveFusermount3()) GTEST_SKIP() << "fusermount3 is missing (install fuse3)";
  Run({"fusermount3", "-u", mnt_}, {"fusermount3", "-u", "-z", mnt_});
}

// Abort through /sys/fs/fuse/connections/N/abort (only our own N) while
// writers run: writers get ECONNABORTED, the daemon exits within 10 s with
// status 0 (the queues treat an aborted connection as the end of the
// session) and detaches its dead mount, which it can prove is still its own
// by the unique mount id (Linux 6.8+; on older kernels the mount stays until
// umount -l, and new calls on it fail ENOTCONN at once).
TEST_P(CrashTest, FusectlAbortDuringIo) {
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = Start();
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_NO_FATAL_FAILURE(WriteSyncedFiles(2));
  std::unique_ptr<WriterPool> pool = StartWriters();
  unsigned conn = (*d)->connection();
  ASSERT_NE(conn, 0u);
  pid_t pid = (*d)->pid();
  std::string abort_path = absl::StrCat("/sys/fs/fuse/connections/", conn, "/abort");
  int fd = open(abort_path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << abort_path << ": " << strerror(errno);
  absl::Time t0 = absl::Now();
  EXPECT_EQ(write(fd, "1", 1), 1) << strerror(errno);
  close(fd);
  absl::StatusOr<int> rc = (*d)->WaitExit(absl::Seconds(10));
  ASSERT_TRUE(rc.ok()) << rc.status();
  Figure("abort_exit_ms", absl::ToDoubleMilliseconds(absl::Now() - t0));
  EXPECT_EQ(*rc, 0) << (*d)->Stderr();
  EXPECT_FALSE(ProcessExists(pid));
  ASSERT_TRUE(pool->WaitAll(absl::Seconds(5))) << "a writer is still blocked after the abort";
  Figure("abort_callers_return_ms", absl::ToDoubleMilliseconds(pool->LastDone() - t0));
  for (const auto& w : pool->writers()) {
    EXPECT_THAT(w->err.load(), AnyOf(Eq(ENOTCONN), Eq(ECONNABORTED)))
        << w->path << ": " << strerror(w->err);
  }
  if (KernelReportsUniqueMountIds()) {
    EXPECT_EQ(MountCountAt((*d)->mountpoint()), 0) << "the daemon left its aborted mount behind";
  } else {
    EXPECT_EQ(MountCountAt((*d)->mountpoint()), 1);
    auto probe = std::make_shared<std::atomic<int>>(0);
    bool fast = RunWithTimeout(
        [m = mnt_, probe] {
          struct stat st;
          *probe = stat((m + "/synced-0").c_str(), &st) == 0 ? 0 : errno;
        },
        absl::Seconds(2));
    EXPECT_TRUE(fast) << "stat on the aborted mount blocked";
    if (fast) { EXPECT_EQ(probe->load(), ENOTCONN) << strerror(*probe); }
    CommandResult u = RunCommand({"umount", "-l", mnt_}, absl::Seconds(10));
    EXPECT_EQ(u.exit_code, 0) << Describe(u);
    EXPECT_EQ(MountCountAt((*d)->mountpoint()), 0);
  }
  ExpectSyncedFiles(src_, 2);
  ExpectDurableIntact(*pool, src_);
}

INSTANTIATE_TEST_SUITE_P(Transports, CrashTest, ::testing::ValuesIn(FaultTransports()),
                         TransportParamName);
INSTANTIATE_TEST_SUITE_P(Transports, ExternalUnmountTest, ::testing::ValuesIn(FaultTransports()),
                         TransportParamName);

}  // namespace
}  // namespace kmfuse::itest
