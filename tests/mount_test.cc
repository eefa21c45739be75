// kmfused end to end: a passthrough of a temp dir mounted by the real binary
// (a child process) over each real transport, exercised through the kernel.
//
// Every test runs under the DaemonProcess watchdog: if a file operation on
// the mount blocks, the watchdog kills the daemon, aborts the connection and
// detaches the mount at its deadline, so the operation fails instead of
// hanging the suite.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kmfuse/testing/pattern.h"
#include "tests/testing/daemon_process.h"
#include "tests/testing/file_io.h"

namespace kmfuse::itest {
namespace {

using ::kmfuse::testing::Pattern;
using ::testing::HasSubstr;


// Compares big strings without printing megabytes on failure.
::testing::AssertionResult SameBytes(const std::string& got, const std::string& want) {
  if (got == want) return ::testing::AssertionSuccess();
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != expected " << want.size()
                                         << (got.size() < 200 ? absl::StrCat(" (got '", got, "')") : "");
  }
  size_t i = 0;
  while (got[i] == want[i]) i++;
  return ::testing::AssertionFailure() << "first difference at byte " << i << " of " << want.size();
}

std::set<std::string> ListDir(const std::string& path, int* duplicates, int* err) {
  std::set<std::string> names;
  *duplicates = 0;
  *err = 0;
  DIR* d = opendir(path.c_str());
  if (d == nullptr) {
    *err = errno;
    return names;
  }
  errno = 0;
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    if (!names.insert(n).second) ++*duplicates;
  }
  *err = errno;
  closedir(d);
  return names;
}

class MountTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (absl::Status a = TransportAvailable(GetParam()); !a.ok()) GTEST_SKIP() << a.message();
    src_ = dir_.Mkdir("src");
    mnt_ = dir_.Mkdir("mnt");
    StartDaemon({});
  }

  void StartDaemon(std::vector<std::string> extra) {
    DaemonProcess::Config c;
    c.source = src_;
    c.mountpoint = mnt_;
    c.args = {"-o", absl::StrCat("transport=", GetParam())};
    c.args.insert(c.args.end(), extra.begin(), extra.end());
    c.watchdog = absl::Seconds(60);
    absl::StatusOr<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(c);
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(*d);
    ASSERT_EQ(daemon_->transport(), GetParam()) << daemon_->serving_line();
  }

  void StopDaemon() {
    if (daemon_ == nullptr) return;
    absl::StatusOr<int> rc = daemon_->Stop(SIGTERM);
    EXPECT_TRUE(rc.ok()) << rc.status();
    if (rc.ok()) { EXPECT_EQ(*rc, 0) << daemon_->Stderr(); }
    EXPECT_FALSE(daemon_->watchdog_fired()) << "a file operation blocked; see the log above";
    EXPECT_EQ(MountCountAt(daemon_->mountpoint()), 0);
    daemon_.reset();
  }

  void TearDown() override { StopDaemon(); }

  std::string M(const std::string& rel) const { return absl::StrCat(mnt_, "/", rel); }
  std::string S(const std::string& rel) const { return absl::StrCat(src_, "/", rel); }

  TempDir dir_{"mount"};
  std::string src_, mnt_;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_P(MountTest, ServesOverTheRequestedTransport) {
  EXPECT_EQ(daemon_->transport(), GetParam());
  EXPECT_EQ(MountTypeAt(daemon_->mountpoint()), "fuse.kmfused");
  EXPECT_THAT(daemon_->Stderr(), HasSubstr(absl::StrCat("kmfused: ", GetParam(), ": ")));
}

TEST_P(MountTest, CreateWriteReadBack) {
  ASSERT_TRUE(WriteFile(M("hello.txt"), "hello, kmfuse\n"));
  EXPECT_EQ(ReadFile(M("hello.txt")), "hello, kmfuse\n");
  EXPECT_EQ(ReadFile(S("hello.txt")), "hello, kmfuse\n");
  ASSERT_TRUE(WriteFile(M("hello.txt"), "more\n", O_WRONLY | O_APPEND));
  EXPECT_EQ(ReadFile(M("hello.txt")), "hello, kmfuse\nmore\n");
  EXPECT_EQ(ReadFile(S("hello.txt")), "hello, kmfuse\nmore\n");
  // A file created on the source shows through.
  ASSERT_TRUE(WriteFile(S("from-source"), "abc"));
  EXPECT_EQ(ReadFile(M("from-source")), "abc");
  struct stat st;
  EXPECT_EQ(stat(M("missing").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
}

// 8 MiB + a bit, written with one write() and read with one read(): the
// kernel splits both into max_write / max_read chunks. With -d every request
// is logged, so the chunking is visible and counted.
TEST_P(MountTest, LargeFileSpansManyWriteChunks) {
  const size_t kSize = (8u << 20) + 3 * 4096 + 17;
  const std::string data = Pattern(kSize, 7);
  for (uint32_t max_write : {0u, 131072u}) {
    SCOPED_TRACE(max_write ? absl::StrCat("max_write=", max_write) : "default max_write");
    StopDaemon();
    std::vector<std::string> extra = {"-d"};
    if (max_write != 0) extra = {"-d", "-o", absl::StrCat("max_write=", max_write)};
    ASSERT_NO_FATAL_FAILURE(StartDaemon(extra));
    const uint32_t effective = max_write ? max_write : (1u << 20);
    EXPECT_THAT(daemon_->Stderr(), HasSubstr(absl::StrCat("max_write ", effective / 1024, " KiB")));

    std::string name = absl::StrCat("big-", max_write);
    int fd = open(M(name).c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size())) << strerror(errno);
    ASSERT_EQ(fsync(fd), 0) << strerror(errno);
    std::string back(kSize, '\0');
    size_t got = 0;
    while (got < kSize) {
      ssize_t n = pread(fd, back.data() + got, kSize - got, static_cast<off_t>(got));
      ASSERT_GT(n, 0) << "pread at " << got << ": " << strerror(errno);
      got += static_cast<size_t>(n);
    }
    close(fd);
    EXPECT_TRUE(SameBytes(back, data));
    EXPECT_TRUE(SameBytes(ReadFile(S(name)), data));
    EXPECT_TRUE(SameBytes(ReadFile(M(name)), data));

    std::string log = daemon_->Stderr();
    size_t writes = 0;
    for (size_t at = log.find("op=WRITE("); at != std::string::npos; at = log.find("op=WRITE(", at + 1)) {
      writes++;
    }
    EXPECT_GE(writes, (kSize + effective - 1) / effective) << "WRITE requests seen in the -d log";
  }
}

TEST_P(MountTest, DirectIoWithAlignedBuffers) {
  const size_t kSize = 1 << 20;
  void* wbuf = nullptr;
  void* rbuf = nullptr;
  ASSERT_EQ(posix_memalign(&wbuf, 4096, kSize), 0);
  ASSERT_EQ(posix_memalign(&rbuf, 4096, kSize), 0);
  std::unique_ptr<void, decltype(&free)> wfree(wbuf, free), rfree(rbuf, free);
  const std::string data = Pattern(kSize, 11);
  memcpy(wbuf, data.data(), kSize);

  int fd = open(M("direct").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << "open O_DIRECT: " << strerror(errno);
  ASSERT_EQ(pwrite(fd, wbuf, kSize, 0), static_cast<ssize_t>(kSize)) << strerror(errno);
  ASSERT_EQ(pwrite(fd, wbuf, 4096, 3 * 4096 + kSize), 4096) << strerror(errno);
  memset(rbuf, 0, kSize);
  ASSERT_EQ(pread(fd, rbuf, kSize, 0), static_cast<ssize_t>(kSize)) << strerror(errno);
  EXPECT_EQ(memcmp(rbuf, wbuf, kSize), 0);
  memset(rbuf, 0, kSize);
  // Reading across EOF returns the short tail.
  EXPECT_EQ(pread(fd, rbuf, 8192, kSize + 3 * 4096), 4096) << strerror(errno);
  EXPECT_EQ(memcmp(rbuf, wbuf, 4096), 0);
  close(fd);

  std::string src = ReadFile(S("direct"));
  ASSERT_EQ(src.size(), kSize + 4 * 4096);
  EXPECT_TRUE(SameBytes(src.substr(0, kSize), data));
  EXPECT_EQ(src.substr(kSize, 3 * 4096), std::string(3 * 4096, '\0'));
  EXPECT_TRUE(SameBytes(src.substr(kSize + 3 * 4096), data.substr(0, 4096)));
}

TEST_P(MountTest, ReaddirOfTenThousandEntries) {
  const int kN = 10000;
  std::string dir = S("many");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  for (int i = 0; i < kN; i++) {
    std::string p = absl::StrCat(dir, "/entry-with-a-longish-name-", i);
    int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << p << ": " << strerror(errno);
    close(fd);
  }
  int dups = 0, err = 0;
  std::set<std::string> names = ListDir(M("many"), &dups, &err);
  EXPECT_EQ(err, 0) << strerror(err);
  EXPECT_EQ(dups, 0);
  EXPECT_EQ(names.size(), static_cast<size_t>(kN));
  int missing = 0;
  for (int i = 0; i < kN; i++) {
    missing += names.count(absl::StrCat("entry-with-a-longish-name-", i)) == 0;
  }
  EXPECT_EQ(missing, 0);
}

TEST_P(MountTest, NamespaceOperations) {
  // rename
  ASSERT_TRUE(WriteFile(M("a"), "A"));
  ASSERT_EQ(rename(M("a").c_str(), M("b").c_str()), 0) << strerror(errno);
  EXPECT_EQ(access(S("a").c_str(), F_OK), -1);
  EXPECT_EQ(ReadFile(S("b")), "A");
  EXPECT_EQ(ReadFile(M("b")), "A");
  // unlink
  ASSERT_EQ(unlink(M("b").c_str()), 0) << strerror(errno);
  EXPECT_EQ(access(S("b").c_str(), F_OK), -1);
  struct stat st;
  EXPECT_EQ(stat(M("b").c_str(), &st), -1);
  // truncate (shrink and grow, by path and by fd)
  ASSERT_TRUE(WriteFile(M("t"), Pattern(10000, 3)));
  ASSERT_EQ(truncate(M("t").c_str(), 1000), 0) << strerror(errno);
  ASSERT_EQ(stat(S("t").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1000);
  EXPECT_TRUE(SameBytes(ReadFile(M("t")), Pattern(10000, 3).substr(0, 1000)));
  int fd = open(M("t").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 5000), 0) << strerror(errno);
  close(fd);
  EXPECT_TRUE(SameBytes(ReadFile(S("t")), Pattern(10000, 3).substr(0, 1000) + std::string(4000, '\0')));
  // mkdir / rmdir
  ASSERT_EQ(mkdir(M("d").c_str(), 0750), 0) << strerror(errno);
  ASSERT_EQ(stat(S("d").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  ASSERT_TRUE(WriteFile(M("d/inner"), "x"));
  EXPECT_EQ(rmdir(M("d").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  ASSERT_EQ(rename(M("d/inner").c_str(), M("moved").c_str()), 0) << strerror(errno);
  ASSERT_EQ(rmdir(M("d").c_str()), 0) << strerror(errno);
  EXPECT_EQ(access(S("d").c_str(), F_OK), -1);
  EXPECT_EQ(ReadFile(S("moved")), "x");
  // symlink / readlink
  ASSERT_EQ(symlink("moved", M("link").c_str()), 0) << strerror(errno);
  char buf[256];
  ssize_t n = readlink(M("link").c_str(), buf, sizeof(buf));
  ASSERT_EQ(n, 5) << strerror(errno);
  EXPECT_EQ(std::string(buf, 5), "moved");
  n = readlink(S("link").c_str(), buf, sizeof(buf));
  ASSERT_EQ(n, 5);
  EXPECT_EQ(ReadFile(M("link")), "x");
  ASSERT_EQ(lstat(M("link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  // hard link
  ASSERT_EQ(link(M("moved").c_str(), M("hard").c_str()), 0) << strerror(errno);
  ASSERT_EQ(stat(M("hard").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  struct stat s1, s2;
  ASSERT_EQ(stat(S("moved").c_str(), &s1), 0);
  ASSERT_EQ(stat(S("hard").c_str(), &s2), 0);
  EXPECT_EQ(s1.st_ino, s2.st_ino);
  ASSERT_TRUE(WriteFile(M("hard"), "y", O_WRONLY | O_APPEND));
  EXPECT_EQ(ReadFile(M("moved")), "xy");
  // chmod
  ASSERT_EQ(chmod(M("moved").c_str(), 0640), 0) << strerror(errno);
  ASSERT_EQ(stat(S("moved").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_EQ(stat(M("moved").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  // utimes
  struct timespec times[2] = {{1000000000, 123456789}, {1200000000, 987654321}};
  ASSERT_EQ(utimensat(AT_FDCWD, M("moved").c_str(), times, 0), 0) << strerror(errno);
  ASSERT_EQ(stat(S("moved").c_str(), &st), 0);
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000);
  EXPECT_EQ(st.st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 987654321);
  ASSERT_EQ(stat(M("moved").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 987654321);
}

TEST_P(MountTest, ExtendedAttributes) {
  ASSERT_TRUE(WriteFile(M("x"), "data"));
  const std::string value = "value with \0 a NUL";
  ASSERT_EQ(setxattr(M("x").c_str(), "user.kmfuse", value.data(), value.size(), 0), 0) << strerror(errno);
  ASSERT_EQ(setxattr(M("x").c_str(), "user.second", "2", 1, XATTR_CREATE), 0) << strerror(errno);
  EXPECT_EQ(setxattr(M("x").c_str(), "user.second", "3", 1, XATTR_CREATE), -1);
  EXPECT_EQ(errno, EEXIST);
  char buf[256];
  EXPECT_EQ(getxattr(M("x").c_str(), "user.kmfuse", nullptr, 0), static_cast<ssize_t>(value.size()));
  ssize_t n = getxattr(M("x").c_str(), "user.kmfuse", buf, sizeof(buf));
  ASSERT_EQ(n, static_cast<ssize_t>(value.size())) << strerror(errno);
  EXPECT_EQ(std::string(buf, n), value);
  EXPECT_EQ(getxattr(M("x").c_str(), "user.kmfuse", buf, 2), -1);
  EXPECT_EQ(errno, ERANGE);
  n = getxattr(S("x").c_str(), "user.kmfuse", buf, sizeof(buf));
  ASSERT_EQ(n, static_cast<ssize_t>(value.size()));
  EXPECT_EQ(std::string(buf, n), value);

  n = listxattr(M("x").c_str(), buf, sizeof(buf));
  ASSERT_GT(n, 0) << strerror(errno);
  std::vector<std::string> names = absl::StrSplit(absl::string_view(buf, n - 1), '\0');
  EXPECT_THAT(names, ::testing::IsSupersetOf({"user.kmfuse", "user.second"}));

  ASSERT_EQ(removexattr(M("x").c_str(), "user.kmfuse"), 0) << strerror(errno);
  EXPECT_EQ(getxattr(M("x").c_str(), "user.kmfuse", buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ENODATA);
  EXPECT_EQ(getxattr(S("x").c_str(), "user.kmfuse", buf, sizeof(buf)), -1);
  EXPECT_EQ(removexattr(M("x").c_str(), "user.kmfuse"), -1);
  EXPECT_EQ(errno, ENODATA);
}

TEST_P(MountTest, StatfsMatchesSource) {
  struct statvfs m, s;
  ASSERT_EQ(statvfs(mnt_.c_str(), &m), 0) << strerror(errno);
  ASSERT_EQ(statvfs(src_.c_str(), &s), 0);
  EXPECT_EQ(m.f_bsize, s.f_bsize);
  EXPECT_EQ(m.f_blocks, s.f_blocks);
  EXPECT_EQ(m.f_files, s.f_files);
  EXPECT_EQ(m.f_namemax, s.f_namemax);
  // Free space moves with other tenants of the disk; just sanity.
  EXPECT_LE(m.f_bfree, m.f_blocks);
}

TEST_P(MountTest, StatMatchesSource) {
  ASSERT_TRUE(WriteFile(S("plain"), Pattern(12345, 1)));
  ASSERT_EQ(chmod(S("plain").c_str(), 0604), 0);
  struct timespec times[2] = {{1500000000, 1}, {1600000000, 500000000}};
  ASSERT_EQ(utimensat(AT_FDCWD, S("plain").c_str(), times, 0), 0);
  ASSERT_EQ(mkdir(S("dir").c_str(), 0711), 0);
  ASSERT_TRUE(WriteFile(M("via-mount"), Pattern(77777, 2)));
  ASSERT_EQ(symlink("plain", S("sym").c_str()), 0);
  for (const char* name : {"plain", "dir", "via-mount", "sym"}) {
    SCOPED_TRACE(name);
    struct stat m, s;
    ASSERT_EQ(lstat(M(name).c_str(), &m), 0) << strerror(errno);
    ASSERT_EQ(lstat(S(name).c_str(), &s), 0);
    EXPECT_EQ(m.st_mode, s.st_mode);
    if (!S_ISDIR(s.st_mode)) {
      EXPECT_EQ(m.st_size, s.st_size);
    }
    EXPECT_EQ(m.st_nlink, s.st_nlink);
    EXPECT_EQ(m.st_mtim.tv_sec, s.st_mtim.tv_sec);
    EXPECT_EQ(m.st_mtim.tv_nsec, s.st_mtim.tv_nsec);
    EXPECT_EQ(m.st_uid, s.st_uid);
    EXPECT_EQ(m.st_gid, s.st_gid);
  }
}

// 8 threads at once: each writes and verifies its own file, writes and
// verifies its own stripe of one shared file, and keeps reading a shared
// read-only file whose content must never change.
TEST_P(MountTest, ConcurrentReadersAndWriters) {
  const int kThreads = 8;
  const size_t kFile = 1 << 20;
  const size_t kStripe = 256 << 10;
  const std::string ro = Pattern(4 << 20, 99);
  ASSERT_TRUE(WriteFile(S("shared-ro"), ro));
  ASSERT_TRUE(WriteFile(S("shared-rw"), std::string(kThreads * kStripe, 'z')));

  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::string& err = errors[t];
      auto fail = [&](const std::string& what) {
        if (err.empty()) err = absl::StrCat("thread ", t, ": ", what, ": ", strerror(errno));
      };
      const std::string mine = Pattern(kFile, 1000 + t);
      const std::string stripe = Pattern(kStripe, 2000 + t);
      int own = open(M(absl::StrCat("own-", t)).c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      int rw = open(M("shared-rw").c_str(), O_RDWR | O_CLOEXEC);
      int rofd = open(M("shared-ro").c_str(), O_RDONLY | O_CLOEXEC);
      if (own < 0 || rw < 0 || rofd < 0) return fail("open");
      std::string buf(kStripe, '\0');
      for (int round = 0; round < 4 && err.empty(); round++) {
        // own file, in 64 KiB pieces
        for (size_t off = 0; off < kFile; off += 65536) {
          if (pwrite(own, mine.data() + off, 65536, static_cast<off_t>(off)) != 65536) return fail("pwrite own");
        }
        // own stripe of the shared file
        off_t base = static_cast<off_t>(t * kStripe);
        if (pwrite(rw, stripe.data(), kStripe, base) != static_cast<ssize_t>(kStripe)) return fail("pwrite shared");
        if (pread(rw, buf.data(), kStripe, base) != static_cast<ssize_t>(kStripe)) return fail("pread shared");
        if (buf != stripe) {
          err = absl::StrCat("thread ", t, ": shared stripe content differs in round ", round);
          return;
        }
        // the read-only file at a few offsets
        for (int k = 0; k < 4; k++) {
          size_t off = ((t * 7 + k * 13 + round) % 60) * 65536;
          if (pread(rofd, buf.data(), 65536, static_cast<off_t>(off)) != 65536) return fail("pread ro");
          if (memcmp(buf.data(), ro.data() + off, 65536) != 0) {
            err = absl::StrCat("thread ", t, ": shared read-only content differs at ", off);
            return;
          }
        }
        std::string back(kFile, '\0');
        if (pread(own, back.data(), kFile, 0) != static_cast<ssize_t>(kFile)) return fail("pread own");
        if (back != mine) {
          err = absl::StrCat("thread ", t, ": own file content differs in round ", round);
          return;
        }
      }
      close(own);
      close(rw);
      close(rofd);
    });
  }
  for (std::thread& th : threads) th.join();
  for (const std::string& e : errors) EXPECT_EQ(e, "");

  // The source holds exactly what the threads wrote.
  for (int t = 0; t < kThreads; t++) {
    EXPECT_TRUE(SameBytes(ReadFile(S(absl::StrCat("own-", t))), Pattern(kFile, 1000 + t))) << t;
  }
  std::string shared = ReadFile(S("shared-rw"));
  ASSERT_EQ(shared.size(), kThreads * kStripe);
  for (int t = 0; t < kThreads; t++) {
    EXPECT_TRUE(SameBytes(shared.substr(t * kStripe, kStripe), Pattern(kStripe, 2000 + t))) << t;
  }
  EXPECT_TRUE(SameBytes(ReadFile(S("shared-ro")), ro));
}

INSTANTIATE_TEST_SUITE_P(Transports, MountTest, ::testing::ValuesIn(RealTransports()),
                         TransportParamName);

// auto takes the best transport the probe of this kernel reports (bufpool
// on 7.3, uring on 6.14+ with enable_uring, ring-read otherwise) and names
// every better one it skipped, with the reason.
TEST(AutoTransportTest, PicksTheBestTransportTheProbeReportsAndSaysWhyBetterOnesWereSkipped) {
  std::string best;
  for (const std::string& t : RealTransports()) {
    if (TransportAvailable(t).ok()) {
      best = t;
      break;
    }
  }
  ASSERT_FALSE(best.empty()) << Probe().output;
  EXPECT_EQ(Probe().auto_transport, best) << Probe().output;
  TempDir dir("auto");
  DaemonProcess::Config c;
  c.source = dir.Mkdir("src");
  c.mountpoint = dir.Mkdir("mnt");
  c.args = {"-o", "transport=auto"};
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(c);
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string line = (*d)->serving_line();
  EXPECT_EQ((*d)->transport(), best) << line;
  EXPECT_THAT(line, HasSubstr("skipped kmbuf: ")) << line;
  if (best != "bufpool") { EXPECT_THAT(line, HasSubstr("; bufpool: ")) << line; }
  if (best == "ring-read" && !UringEnabled()) {
    EXPECT_THAT(line, HasSubstr("uring: enable_uring is off")) << line;
  }
  ASSERT_TRUE(WriteFile(c.mountpoint + "/f", "auto"));
  EXPECT_EQ(ReadFile(c.source + "/f"), "auto");
  absl::StatusOr<int> rc = (*d)->Stop(SIGTERM);
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0) << (*d)->Stderr();
}

}  // namespace
}  // namespace kmfuse::itest
