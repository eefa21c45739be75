// Errors of the backing store, per transport: a full source (ENOSPC), files
// deleted and directories renamed underneath the mount, a source remounted
// read-only (EROFS). The caller sees the source's own errno, and the daemon
// keeps serving everything else.
//
// cache=none where the test depends on the kernel asking the daemon again
// (no cached dentry hides a deletion for the 1 s entry timeout of the
// default cache=auto).
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fault/fault_testing.h"
#include "tests/testing/daemon_process.h"

namespace kmfuse::itest {
namespace {

using ::testing::AnyOf;
using ::testing::Eq;

int StatErrno(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? 0 : errno;
}

class BackingTest : public TransportTest {};

TEST_P(BackingTest, FullSourceGivesEnospcAndKeepsServing) {
  ASSERT_TRUE(MountTmpfs(src_, "2m"));
  ASSERT_TRUE(WriteFile(src_ + "/keep", "keep"));
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = Start();
  ASSERT_TRUE(d.ok()) << d.status();

  int fd = open((mnt_ + "/big").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << strerror(errno);
  std::string block = PatternAt(1, 0, 64 << 10);
  uint64_t written = 0;
  int err = 0;
  while (written < (8u << 20)) {
    ssize_t n = write(fd, block.data(), block.size());
    if (n < 0) {
      err = errno;
      break;
    }
    written += static_cast<uint64_t>(n);
  }
  Figure("bytes_before_enospc", static_cast<double>(written));
  EXPECT_EQ(err, ENOSPC) << strerror(err) << " after " << written << " bytes";
  EXPECT_LE(written, 2u << 20);
  EXPECT_EQ(fsync(fd), 0) << strerror(errno);
  EXPECT_EQ(close(fd), 0) << strerror(errno);

  // Everything else still works: reads, stat, statfs, namespace ops.
  EXPECT_EQ(ReadFile(mnt_ + "/keep"), "keep");
  struct statvfs vfs;
  EXPECT_EQ(statvfs(mnt_.c_str(), &vfs), 0) << strerror(errno);
  EXPECT_EQ(mkdir((mnt_ + "/dir").c_str(), 0755), 0) << strerror(errno);
  // What was acknowledged is in the source.
  EXPECT_TRUE(HasPatternPrefix(src_ + "/big", 1, 0));
  struct stat st;
  ASSERT_EQ(stat((src_ + "/big").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), written);
  // Space freed through the mount comes back once the kernel forgets the
  // inode (FORGET closes the daemon's O_PATH fd, which pins the blocks):
  // asynchronous, so retry for up to 5 s and report how long it took.
  ASSERT_EQ(unlink((mnt_ + "/big").c_str()), 0) << strerror(errno);
  absl::Time t0 = absl::Now();
  ::testing::AssertionResult wrote = ::testing::AssertionFailure();
  while (!(wrote = WriteFileSynced(mnt_ + "/dir/after", block)) && absl::Now() - t0 < absl::Seconds(5)) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  Figure("space_back_after_unlink_ms", absl::ToDoubleMilliseconds(absl::Now() - t0));
  EXPECT_TRUE(wrote);
  EXPECT_TRUE(ReadFile(src_ + "/dir/after") == block);
  absl::StatusOr<int> rc = (*d)->Stop(SIGTERM);
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0);
}

TEST_P(BackingTest, FilesDeletedUnderneath) {
  for (const char* n : {"a", "b", "c"}) ASSERT_TRUE(WriteFile(src_ + "/" + n, n));
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = Start({"-o", "cache=none"});
  ASSERT_TRUE(d.ok()) << d.status();
  int fd = open((mnt_ + "/a").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << strerror(errno);
  EXPECT_EQ(StatErrno(mnt_ + "/b"), 0);
  ASSERT_EQ(unlink((src_ + "/a").c_str()), 0);
  ASSERT_EQ(unlink((src_ + "/b").c_str()), 0);

  EXPECT_THAT(StatErrno(mnt_ + "/a"), AnyOf(Eq(ENOENT), Eq(ESTALE)));
  EXPECT_THAT(StatErrno(mnt_ + "/b"), AnyOf(Eq(ENOENT), Eq(ESTALE)));
  EXPECT_EQ(open((mnt_ + "/b").c_str(), O_RDONLY | O_CLOEXEC), -1);
  EXPECT_THAT(errno, AnyOf(Eq(ENOENT), Eq(ESTALE)));
  // An open file outlives its name, as on any POSIX filesystem.
  char buf[8] = {};
  EXPECT_EQ(pread(fd, buf, sizeof(buf), 0), 1) << strerror(errno);
  EXPECT_EQ(buf[0], 'a');
  struct stat st;
  EXPECT_EQ(fstat(fd, &st), 0) << strerror(errno);
  EXPECT_EQ(close(fd), 0);
  // The rest is untouched.
  EXPECT_EQ(ReadFile(mnt_ + "/c"), "c");
  EXPECT_TRUE(WriteFile(mnt_ + "/d", "d"));
  EXPECT_EQ(ReadFile(src_ + "/d"), "d");
  absl::StatusOr<int> rc = (*d)->Stop(SIGTERM);
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0);
}

// The source directory itself renamed away, then a subdirectory renamed:
// inodes the kernel already looked up are held by fd, so they keep working;
// stale names fail ENOENT; the daemon stays alive.
TEST_P(BackingTest, SourceRenamedAway) {
  ASSERT_EQ(mkdir((src_ + "/sub").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(src_ + "/sub/f", "f"));
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = Start({"-o", "cache=none"});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(StatErrno(mnt_ + "/sub/f"), 0);
  int fd = open((mnt_ + "/sub/f").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << strerror(errno);

  std::string moved = dir_.Join("src-moved");
  ASSERT_EQ(rename(src_.c_str(), moved.c_str()), 0) << strerror(errno);
  EXPECT_EQ(StatErrno(mnt_ + "/sub/f"), 0);
  EXPECT_EQ(ReadFile(mnt_ + "/sub/f"), "f");
  EXPECT_EQ(pwrite(fd, "g", 1, 1), 1) << strerror(errno);
  EXPECT_TRUE(WriteFile(mnt_ + "/sub/new", "new"));
  EXPECT_EQ(ReadFile(moved + "/sub/new"), "new") << "writes land in the renamed source";
  EXPECT_EQ(ReadFile(moved + "/sub/f"), "fg");

  ASSERT_EQ(rename((moved + "/sub").c_str(), (moved + "/sub2").c_str()), 0);
  EXPECT_THAT(StatErrno(mnt_ + "/sub/f"), AnyOf(Eq(ENOENT), Eq(ESTALE)));
  EXPECT_EQ(ReadFile(mnt_ + "/sub2/f"), "fg");
  struct stat st;
  EXPECT_EQ(fstat(fd, &st), 0) << strerror(errno);
  char buf[4] = {};
  EXPECT_EQ(pread(fd, buf, 2, 0), 2) << strerror(errno);
  EXPECT_EQ(close(fd), 0);
  EXPECT_TRUE(ProcessExists((*d)->pid()));
  absl::StatusOr<int> rc = (*d)->Stop(SIGTERM);
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0);
}

bool Remount(const std::string& dir, unsigned long flags) {
  // A file the daemon just released may still be open for writing for a
  // moment (RELEASE is asynchronous): retry EBUSY briefly.
  for (int i = 0; i < 200; i++) {
    if (mount(nullptr, dir.c_str(), nullptr, MS_REMOUNT | flags, nullptr) == 0) return true;
    if (errno != EBUSY) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ADD_FAILURE() << "remount " << dir << ": " << strerror(errno);
  return false;
}

TEST_P(BackingTest, SourceRemountedReadOnlyGivesErofs) {
  ASSERT_TRUE(MountTmpfs(src_, "8m"));
  ASSERT_TRUE(WriteFile(src_ + "/existing", "existing"));
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = Start();
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE(WriteFileSynced(mnt_ + "/before", "before"));
  ASSERT_TRUE(Remount(src_, MS_RDONLY));

  EXPECT_EQ(open((mnt_ + "/new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644), -1);
  EXPECT_EQ(errno, EROFS) << strerror(errno);
  EXPECT_EQ(open((mnt_ + "/existing").c_str(), O_WRONLY | O_CLOEXEC), -1);
  EXPECT_EQ(errno, EROFS) << strerror(errno);
  EXPECT_EQ(unlink((mnt_ + "/before").c_str()), -1);
  EXPECT_EQ(errno, EROFS) << strerror(errno);
  EXPECT_EQ(mkdir((mnt_ + "/d").c_str(), 0755), -1);
  EXPECT_EQ(errno, EROFS) << strerror(errno);
  EXPECT_EQ(ReadFile(mnt_ + "/existing"), "existing");
  EXPECT_EQ(ReadFile(mnt_ + "/before"), "before");

  ASSERT_TRUE(Remount(src_, 0));
  EXPECT_TRUE(WriteFile(mnt_ + "/new", "new"));
  EXPECT_EQ(ReadFile(src_ + "/new"), "new");
  absl::StatusOr<int> rc = (*d)->Stop(SIGTERM);
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0);
}

INSTANTIATE_TEST_SUITE_P(Transports, BackingTest, ::testing::ValuesIn(FaultTransports()),
                         TransportParamName);

}  // namespace
}  // namespace kmfuse::itest
