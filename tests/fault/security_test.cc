// Who may use a mount, per transport. Another user is a forked child with
// uid/gid 65534 (nobody). The test tree lives under /tmp with mode 0755 so
// nobody can reach the mountpoint at all (the Bazel TEST_TMPDIR is under
// root's home), which each test checks before it relies on it.
//
// - The default mount is private to the mounting user: nobody gets EACCES.
// - allow_other without default_permissions: access is checked as the
//   caller (kmfused turns default_permissions on), so nobody reads a 0644
//   root file but not a 0600 one, and cannot write or create as root.
// - Two unprivileged users through one allow_other mount each act as
//   themselves (kmfused turns run_as_caller on): access, new files' owners,
//   supplementary groups, the sticky bit.
// - An unprivileged user mounts through fusermount3 (kmfused run as nobody)
//   and cannot read through the mount what it could not read before.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fault/fault_testing.h"
#include "tests/testing/daemon_process.h"

namespace kmfuse::itest {
namespace {

using ::testing::HasSubstr;

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

// errno of open(path, flags) as nobody (0 = success; a read must then
// return want, else EIO).
int OpenAsNobody(const std::string& path, int flags, const std::string& want = "") {
  return RunAsUser(kNobody, kNogroup, [&path, flags, &want]() -> int {
    int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd < 0) return errno;
    if ((flags & O_ACCMODE) == O_RDONLY && !want.empty()) {
      char buf[256];
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n != static_cast<ssize_t>(want.size()) || memcmp(buf, want.data(), want.size()) != 0) return EIO;
    }
    close(fd);
    return 0;
  });
}

int StatAsNobody(const std::string& path) {
  return RunAsUser(kNobody, kNogroup, [&path]() -> int {
    struct stat st;
    return stat(path.c_str(), &st) == 0 ? 0 : errno;
  });
}

bool PutFile(const std::string& path, const std::string& data, mode_t mode, uid_t uid) {
  if (!WriteFile(path, data)) return false;
  return chmod(path.c_str(), mode) == 0 && chown(path.c_str(), uid, uid == 0 ? 0 : kNogroup) == 0;
}

class SecurityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (absl::Status a = TransportAvailable(GetParam()); !a.ok()) GTEST_SKIP() << a.message();
    // Reachable by nobody: /tmp, not root's Bazel output tree.
    setenv("TEST_TMPDIR", "/tmp", 1);
    dir_ = std::make_unique<TempDir>("sec");
    ASSERT_EQ(chmod(dir_->path().c_str(), 0755), 0);
    src_ = dir_->Mkdir("src");
    mnt_ = dir_->Mkdir("mnt");
    ASSERT_TRUE(PutFile(src_ + "/public", "public", 0644, 0));
    ASSERT_TRUE(PutFile(src_ + "/secret", "secret", 0600, 0));
    ASSERT_EQ(StatAsNobody(mnt_), 0) << "nobody cannot reach " << mnt_ << "; the test needs it";
  }
  void TearDown() override { daemon_.reset(); }

  void Start(std::vector<std::string> extra, std::vector<std::string> wrapper = {}) {
    DaemonProcess::Config c;
    c.source = src_;
    c.mountpoint = mnt_;
    c.args = {"-o", "transport=" + GetParam()};
    c.args.insert(c.args.end(), extra.begin(), extra.end());
    c.wrapper = std::move(wrapper);
    c.watchdog = absl::Seconds(60);
    absl::StatusOr<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(c);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ((*d)->transport(), GetParam());
    daemon_ = std::move(*d);
  }

  void StopCleanly() {
    absl::StatusOr<int> rc = daemon_->Stop(SIGTERM);
    ASSERT_TRUE(rc.ok()) << rc.status();
    EXPECT_EQ(*rc, 0) << daemon_->Stderr();
    EXPECT_EQ(MountCountAt(daemon_->mountpoint()), 0);
  }

  std::unique_ptr<TempDir> dir_;
  std::string src_, mnt_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_P(SecurityTest, DefaultMountIsPrivateToTheMounter) {
  ASSERT_NO_FATAL_FAILURE(Start({}));
  EXPECT_EQ(ReadFile(mnt_ + "/public"), "public");
  EXPECT_EQ(StatAsNobody(mnt_), EACCES);
  EXPECT_EQ(StatAsNobody(mnt_ + "/public"), EACCES);
  EXPECT_EQ(OpenAsNobody(mnt_ + "/public", O_RDONLY), EACCES);
  StopCleanly();
}

TEST_P(SecurityTest, AllowOtherChecksAccessAsTheCaller) {
  // Control: what nobody may do on the source itself.
  ASSERT_EQ(OpenAsNobody(src_ + "/public", O_RDONLY, "public"), 0);
  ASSERT_EQ(OpenAsNobody(src_ + "/secret", O_RDONLY), EACCES);
  ASSERT_NO_FATAL_FAILURE(Start({"-o", "allow_other"}));
  EXPECT_EQ(OpenAsNobody(mnt_ + "/public", O_RDONLY, "public"), 0);
  EXPECT_EQ(OpenAsNobody(mnt_ + "/secret", O_RDONLY), EACCES) << "nobody read a 0600 root file";
  EXPECT_EQ(OpenAsNobody(mnt_ + "/public", O_WRONLY), EACCES) << "nobody opened a 0644 root file for writing";
  EXPECT_EQ(OpenAsNobody(mnt_ + "/created", O_WRONLY | O_CREAT), EACCES)
      << "nobody created a file in a 0755 root directory";
  EXPECT_NE(access((src_ + "/created").c_str(), F_OK), 0);
  EXPECT_EQ(ReadFile(mnt_ + "/secret"), "secret") << "root still reads it";
  StopCleanly();
}

// Two unprivileged users through one root daemon with allow_other: each
// acts as itself. User A's private file stays A's, B's new files are B's
// (uid and gid), B's supplementary group lets it create in a group-writable
// directory exactly as it could natively, and the sticky bit holds.
TEST_P(SecurityTest, AllowOtherServesTwoUsersAsThemselves) {
  constexpr uid_t kA = 60001, kB = 60002;
  constexpr gid_t kTeam = 60010;
  const std::string home = src_ + "/home-a";
  ASSERT_EQ(mkdir(home.c_str(), 0755), 0);
  ASSERT_EQ(chown(home.c_str(), kA, kA), 0);
  ASSERT_TRUE(WriteFile(home + "/private", "a-private"));
  ASSERT_TRUE(WriteFile(home + "/shared", "a-shared"));
  for (const char* f : {"/private", "/shared"}) {
    ASSERT_EQ(chown((home + f).c_str(), kA, kA), 0);
  }
  ASSERT_EQ(chmod((home + "/private").c_str(), 0600), 0);
  ASSERT_EQ(chmod((home + "/shared").c_str(), 0644), 0);
  ASSERT_EQ(mkdir((src_ + "/team").c_str(), 0775), 0);
  ASSERT_EQ(chown((src_ + "/team").c_str(), 0, kTeam), 0);
  ASSERT_EQ(chmod((src_ + "/team").c_str(), 0775), 0);  // mkdir's mode met the umask
  ASSERT_EQ(mkdir((src_ + "/tmp").c_str(), 01777), 0);
  ASSERT_EQ(chmod((src_ + "/tmp").c_str(), 01777), 0);

  auto as_a = [&](const std::function<int()>& fn) { return RunAsUserWithGroups(kA, kA, {}, fn); };
  auto as_b = [&](const std::function<int()>& fn) {
    return RunAsUserWithGroups(kB, kB, {kTeam}, fn);
  };
  auto read_is = [](const std::string& path, const std::string& want) {
    return [path, want]() -> int {
      int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return errno;
      char buf[64];
      ssize_t n = read(fd, buf, sizeof(buf));
      close(fd);
      return n == static_cast<ssize_t>(want.size()) && memcmp(buf, want.data(), want.size()) == 0
                 ? 0
                 : EIO;
    };
  };
  auto open_errno = [](const std::string& path, int flags) {
    return [path, flags]() -> int {
      int fd = open(path.c_str(), flags | O_CLOEXEC, 0640);
      if (fd < 0) return errno;
      close(fd);
      return 0;
    };
  };
  // Control: the same calls on the source itself.
  ASSERT_EQ(as_b(read_is(home + "/private", "a-private")), EACCES);
  ASSERT_EQ(as_b(open_errno(src_ + "/team/native-b", O_WRONLY | O_CREAT)), 0);
  ASSERT_EQ(unlink((src_ + "/team/native-b").c_str()), 0);

  ASSERT_NO_FATAL_FAILURE(Start({"-o", "allow_other"}));
  const std::string m = mnt_;
  EXPECT_EQ(as_a(read_is(m + "/home-a/private", "a-private")), 0);
  EXPECT_EQ(as_b(read_is(m + "/home-a/private", "a-private")), EACCES) << "B read A's 0600 file";
  EXPECT_EQ(as_b(read_is(m + "/home-a/shared", "a-shared")), 0);
  EXPECT_EQ(as_b(open_errno(m + "/home-a/shared", O_WRONLY)), EACCES) << "B opened A's file for writing";
  EXPECT_EQ(as_b(open_errno(m + "/home-a/b-file", O_WRONLY | O_CREAT)), EACCES)
      << "B created a file in A's 0755 directory";

  // New files belong to whoever created them.
  EXPECT_EQ(as_a(open_errno(m + "/home-a/new-a", O_WRONLY | O_CREAT)), 0);
  EXPECT_EQ(as_b(open_errno(m + "/tmp/new-b", O_WRONLY | O_CREAT)), 0);
  EXPECT_EQ(as_b([&m]() { return mkdir((m + "/tmp/dir-b").c_str(), 0755) == 0 ? 0 : errno; }), 0);
  struct Want {
    std::string path;
    uid_t uid;
    gid_t gid;
  };
  for (const Want& w : {Want{home + "/new-a", kA, kA}, Want{src_ + "/tmp/new-b", kB, kB},
                        Want{src_ + "/tmp/dir-b", kB, kB}}) {
    struct stat st;
    ASSERT_EQ(stat(w.path.c_str(), &st), 0) << w.path;
    EXPECT_EQ(st.st_uid, w.uid) << w.path;
    EXPECT_EQ(st.st_gid, w.gid) << w.path;
  }
  // B may create in root:team 0775 only through its supplementary group.
  EXPECT_EQ(as_b(open_errno(m + "/team/b-team", O_WRONLY | O_CREAT)), 0)
      << "B's supplementary group was not honoured for a create";
  EXPECT_EQ(as_a(open_errno(m + "/team/a-team", O_WRONLY | O_CREAT)), EACCES)
      << "A is not in the team group";
  // Sticky /tmp: A cannot remove B's file.
  EXPECT_EQ(as_a([&m]() { return unlink((m + "/tmp/new-b").c_str()) == 0 ? 0 : errno; }), EPERM);
  EXPECT_EQ(access((src_ + "/tmp/new-b").c_str(), F_OK), 0);
  StopCleanly();
}

bool FusermountUsable(std::string* why) {
  struct stat st;
  if (stat("/usr/bin/fusermount3", &st) != 0 && stat("/bin/fusermount3", &st) != 0) {
    *why = "fusermount3 is missing (install fuse3)";
    return false;
  }
  if (st.st_uid != 0 || (st.st_mode & S_ISUID) == 0) {
    *why = "fusermount3 is not setuid root";
    return false;
  }
  // fusermount3 opens /dev/fuse as the calling user.
  if (stat("/dev/fuse", &st) != 0 || (st.st_mode & 0006) != 0006) {
    char mode[16];
    snprintf(mode, sizeof(mode), "%04o", st.st_mode & 07777);
    *why = absl::StrCat("/dev/fuse is mode ", mode,
                        " (not usable by other users): unprivileged mounts are impossible here");
    return false;
  }
  std::string conf = ReadSmallFile("/etc/fuse.conf");
  for (absl::string_view line : absl::StrSplit(conf, '\n')) {
    if (absl::StartsWith(line, "mount_max")) {
      int n = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(line.find('=') + 1)), &n) && n == 0) {
        *why = "/etc/fuse.conf sets mount_max = 0";
        return false;
      }
    }
  }
  return true;
}

TEST_P(SecurityTest, UnprivilegedMountCannotWidenAccess) {
  std::string why;
  if (!FusermountUsable(&why)) GTEST_SKIP() << why;
  ASSERT_EQ(chown(src_.c_str(), kNobody, kNogroup), 0);
  ASSERT_EQ(chown(mnt_.c_str(), kNobody, kNogroup), 0);
  ASSERT_TRUE(PutFile(src_ + "/mine", "mine", 0600, kNobody));
  // Control: nobody cannot read the root-only file directly.
  ASSERT_EQ(OpenAsNobody(src_ + "/secret", O_RDONLY), EACCES);
  ASSERT_EQ(OpenAsNobody(src_ + "/mine", O_RDONLY, "mine"), 0);

  std::vector<std::string> as_nobody = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"};
  ASSERT_NO_FATAL_FAILURE(Start({}, as_nobody));
  EXPECT_THAT(ReadSmallFile(absl::StrCat("/proc/", daemon_->pid(), "/status")), HasSubstr("Uid:\t65534\t65534\t65534"));
  // fusermount3 forces nosuid,nodev on a user mount.
  std::string line;
  for (absl::string_view l : absl::StrSplit(ReadSmallFile("/proc/self/mountinfo"), '\n')) {
    if (absl::StrContains(l, " " + daemon_->mountpoint() + " ")) line = std::string(l);
  }
  EXPECT_THAT(line, HasSubstr("nosuid"));
  EXPECT_THAT(line, HasSubstr("nodev"));
  EXPECT_THAT(line, HasSubstr("user_id=65534"));

  EXPECT_EQ(OpenAsNobody(mnt_ + "/mine", O_RDONLY, "mine"), 0);
  EXPECT_EQ(OpenAsNobody(mnt_ + "/public", O_RDONLY, "public"), 0);
  EXPECT_EQ(OpenAsNobody(mnt_ + "/secret", O_RDONLY), EACCES) << "the mount widened nobody's access";
  EXPECT_EQ(OpenAsNobody(mnt_ + "/new", O_WRONLY | O_CREAT), 0);
  struct stat st;
  ASSERT_EQ(stat((src_ + "/new").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kNobody) << "files created through a user mount belong to that user";
  // Root is another user of nobody's private mount, too.
  int fd = open((mnt_ + "/public").c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, EACCES);
  if (fd >= 0) close(fd);
  StopCleanly();
}

INSTANTIATE_TEST_SUITE_P(Transports, SecurityTest, ::testing::ValuesIn(FaultTransports()),
                         TransportParamName);

}  // namespace
}  // namespace kmfuse::itest
