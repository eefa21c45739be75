// POSIX conformance of the kmfused passthrough, by comparison: every
// operation runs on the mount and on a native twin directory that started
// with the same tree, and the outcomes (return value, errno, data, stat
// fields, listings, xattrs) must be equal. Parameterised over every real
// transport and the mount variants of twin.h.
//
// What is not compared, and why:
// - atime: the kernel decides when a FUSE atime is updated (it is not
//   relatime-driven for FUSE inodes); only explicitly set atimes are checked.
// - ctime, st_ino, st_dev, st_blocks: differ between two directories by
//   construction (times of the operations, inode allocation).
// - l_pid of F_GETLK: the kernel reports FUSE lock owners' pids through the
//   daemon's answer; the conflicting range and type are compared.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/conformance/twin.h"

namespace kmfuse::conformance {
namespace {

using Param = std::tuple<std::string, std::string>;  // transport, variant

std::string J(const std::string& root, const std::string& rel) { return root + "/" + rel; }

// open() that closes the fd again: fd numbers differ between the sides.
Outcome OpenOnly(const std::string& path, int flags, mode_t mode = 0644) {
  int fd = open(path.c_str(), flags | O_CLOEXEC, mode);
  Outcome o = Sys(fd);
  if (fd >= 0) {
    o.ret = 0;
    close(fd);
  }
  return o;
}

// Whole-file read as an Outcome (data = contents).
Outcome ReadWhole(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Sys(-1);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      Outcome o = Sys(-1);
      close(fd);
      return o;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return SysData(static_cast<int64_t>(out.size()), out);
}

bool WriteFile(const std::string& path, const std::string& data, mode_t mode = 0644) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  return close(fd) == 0 && ok;
}

// Runs fn on an fd opened with flags on path (errors from open are the
// outcome).
Outcome WithFd(const std::string& path, int flags, const std::function<Outcome(int)>& fn) {
  int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return Sys(-1);
  Outcome o = fn(fd);
  close(fd);
  return o;
}

class ConformanceTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    const auto& [transport, variant] = GetParam();
    if (std::string why = TransportSkipReason(transport); !why.empty()) GTEST_SKIP() << why;
    umask(022);
    twin_ = std::make_unique<Twin>(transport, variant);
    // The initial tree, built in the source and in the native twin.
    for (const std::string& root : {twin_->M(), twin_->N()}) {
      ASSERT_TRUE(WriteFile(J(root, "file"), "hello, world\n"));
      ASSERT_EQ(mkdir(J(root, "dir").c_str(), 0755), 0);
      ASSERT_TRUE(WriteFile(J(root, "dir/inner"), "inner"));
      ASSERT_EQ(mkdir(J(root, "empty").c_str(), 0755), 0);
      ASSERT_EQ(mkdir(J(root, "empty2").c_str(), 0700), 0);
    }
    absl::Status s = twin_->Start();
    ASSERT_TRUE(s.ok()) << s;
  }

  void TearDown() override {
    if (twin_ == nullptr) return;
    if (twin_->daemon() != nullptr && !HasFatalFailure()) { EXPECT_TRUE(twin_->SameTreeNow()); }
    EXPECT_TRUE(twin_->Stop());
    twin_.reset();
  }

  bool Variant(const char* v) const { return std::get<1>(GetParam()) == v; }

  std::unique_ptr<Twin> twin_;
};

// SAME("what", statements returning an Outcome for root r).
#define SAME(what, ...) \
  EXPECT_TRUE(twin_->Same(what, [&](const std::string& r) -> Outcome { __VA_ARGS__; }))

TEST_P(ConformanceTest, OpenFlags) {
  SAME("O_CREAT|O_EXCL on an existing file", return OpenOnly(J(r, "file"), O_CREAT | O_EXCL | O_RDWR));
  SAME("O_CREAT|O_EXCL on a new name", return OpenOnly(J(r, "new"), O_CREAT | O_EXCL | O_RDWR, 0640));
  EXPECT_TRUE(twin_->SameStat("new"));
  SAME("O_CREAT on a directory", return OpenOnly(J(r, "dir"), O_CREAT | O_WRONLY));
  SAME("O_WRONLY on a directory", return OpenOnly(J(r, "dir"), O_WRONLY));
  SAME("O_DIRECTORY on a file", return OpenOnly(J(r, "file"), O_DIRECTORY | O_RDONLY));
  SAME("O_DIRECTORY on a directory", return OpenOnly(J(r, "dir"), O_DIRECTORY | O_RDONLY));
  SAME("open missing", return OpenOnly(J(r, "missing"), O_RDONLY));
  SAME("open below a file", return OpenOnly(J(r, "file/x"), O_RDONLY | O_CREAT));
  ASSERT_EQ(symlink("file", twin_->M("link").c_str()), 0);
  ASSERT_EQ(symlink("file", twin_->N("link").c_str()), 0);
  SAME("O_NOFOLLOW on a symlink", return OpenOnly(J(r, "link"), O_NOFOLLOW | O_RDONLY));
  SAME("O_CREAT|O_EXCL on a symlink", return OpenOnly(J(r, "link"), O_CREAT | O_EXCL | O_WRONLY));

  SAME("O_TRUNC", return OpenOnly(J(r, "file"), O_TRUNC | O_WRONLY));
  EXPECT_TRUE(twin_->SameStat("file"));
  SAME("read after O_TRUNC", return ReadWhole(J(r, "file")));

  // O_APPEND: every write lands at the end, whatever the file offset.
  for (const std::string& root : {twin_->M(), twin_->N()}) {
    ASSERT_TRUE(WriteFile(J(root, "app"), "0123456789"));
  }
  SAME("O_APPEND writes", return WithFd(J(r, "app"), O_WRONLY | O_APPEND, [](int fd) {
         lseek(fd, 2, SEEK_SET);
         ssize_t a = write(fd, "AB", 2);
         lseek(fd, 0, SEEK_SET);
         ssize_t b = write(fd, "CD", 2);
         off_t pos = lseek(fd, 0, SEEK_CUR);
         return Sys(a < 0 || b < 0 ? -1 : pos);
       }));
  SAME("O_APPEND content", return ReadWhole(J(r, "app")));
  SAME("O_APPEND|O_RDWR read at 0", return WithFd(J(r, "app"), O_RDWR | O_APPEND, [](int fd) {
         char buf[4];
         ssize_t n = pread(fd, buf, sizeof(buf), 0);
         if (n < 0) return Sys(-1);
         ssize_t w = write(fd, "E", 1);
         return SysData(w, std::string(buf, static_cast<size_t>(n)));
       }));
  SAME("O_APPEND content 2", return ReadWhole(J(r, "app")));
  EXPECT_TRUE(twin_->SameStat("app"));
}

TEST_P(ConformanceTest, ReadWriteAtOffsetsWithHoles) {
  const std::string a = Pattern(70000, 1), b = Pattern(5000, 2);
  SAME("pwrite at 0", return WithFd(J(r, "f"), O_RDWR | O_CREAT, [&](int fd) {
         return Sys(pwrite(fd, a.data(), a.size(), 0));
       }));
  SAME("pwrite beyond EOF (hole)", return WithFd(J(r, "f"), O_RDWR, [&](int fd) {
         return Sys(pwrite(fd, b.data(), b.size(), (1 << 20) + 3));
       }));
  EXPECT_TRUE(twin_->SameStat("f"));
  SAME("pread across the hole", return WithFd(J(r, "f"), O_RDONLY, [](int fd) {
         std::string buf(200000, 'x');
         ssize_t n = pread(fd, buf.data(), buf.size(), 60000);
         return SysData(n, buf.substr(0, n > 0 ? static_cast<size_t>(n) : 0));
       }));
  SAME("pread at EOF", return WithFd(J(r, "f"), O_RDONLY, [&](int fd) {
         char buf[16];
         return Sys(pread(fd, buf, sizeof(buf), (1 << 20) + 3 + 5000));
       }));
  SAME("pread past EOF", return WithFd(J(r, "f"), O_RDONLY, [&](int fd) {
         char buf[16];
         return Sys(pread(fd, buf, sizeof(buf), 5 << 20));
       }));
  SAME("short pread at the tail", return WithFd(J(r, "f"), O_RDONLY, [&](int fd) {
         std::string buf(8192, 'x');
         ssize_t n = pread(fd, buf.data(), buf.size(), (1 << 20) + 3 + 5000 - 100);
         return SysData(n, buf.substr(0, n > 0 ? static_cast<size_t>(n) : 0));
       }));
  SAME("write after lseek, then read the offset", return WithFd(J(r, "f"), O_RDWR, [&](int fd) {
         lseek(fd, 4093, SEEK_SET);
         ssize_t n = write(fd, "straddles a page", 16);
         return Sys(n < 0 ? -1 : lseek(fd, 0, SEEK_CUR));
       }));
  SAME("lseek SEEK_END", return WithFd(J(r, "f"), O_RDONLY, [](int fd) {
         return Sys(lseek(fd, -10, SEEK_END));
       }));
  SAME("read of a write-only fd", return WithFd(J(r, "f"), O_WRONLY, [](int fd) {
         char c;
         return Sys(read(fd, &c, 1));
       }));
  SAME("write to a read-only fd", return WithFd(J(r, "f"), O_RDONLY, [](int fd) {
         return Sys(write(fd, "x", 1));
       }));
  SAME("read a directory", return WithFd(J(r, "dir"), O_RDONLY, [](int fd) {
         char c;
         return Sys(read(fd, &c, 1));
       }));
  SAME("whole file", return ReadWhole(J(r, "f")));
}

TEST_P(ConformanceTest, TruncateGrowAndShrink) {
  SAME("truncate grow", return Sys(truncate(J(r, "file").c_str(), 10000)));
  EXPECT_TRUE(twin_->SameStat("file"));
  SAME("content after grow", return ReadWhole(J(r, "file")));
  SAME("truncate shrink", return Sys(truncate(J(r, "file").c_str(), 3)));
  SAME("content after shrink", return ReadWhole(J(r, "file")));
  SAME("ftruncate grow then write", return WithFd(J(r, "file"), O_RDWR, [](int fd) {
         if (ftruncate(fd, 70001) != 0) return Sys(-1);
         return Sys(pwrite(fd, "tail", 4, 69000));
       }));
  SAME("ftruncate shrink keeps reading", return WithFd(J(r, "file"), O_RDWR, [](int fd) {
         if (ftruncate(fd, 69002) != 0) return Sys(-1);
         char buf[16];
         ssize_t n = pread(fd, buf, sizeof(buf), 68998);
         return SysData(n, std::string(buf, n > 0 ? static_cast<size_t>(n) : 0));
       }));
  EXPECT_TRUE(twin_->SameStat("file"));
  SAME("content", return ReadWhole(J(r, "file")));
  SAME("ftruncate on a read-only fd", return WithFd(J(r, "file"), O_RDONLY, [](int fd) {
         return Sys(ftruncate(fd, 0));
       }));
  SAME("truncate a directory", return Sys(truncate(J(r, "dir").c_str(), 0)));
  SAME("truncate negative", return Sys(truncate(J(r, "file").c_str(), -1)));
  SAME("truncate missing", return Sys(truncate(J(r, "missing").c_str(), 0)));
}

TEST_P(ConformanceTest, MkdirRmdir) {
  SAME("mkdir new", return Sys(mkdir(J(r, "d1").c_str(), 0710)));
  EXPECT_TRUE(twin_->SameStat("d1"));
  EXPECT_TRUE(twin_->SameStat(""));
  SAME("mkdir existing", return Sys(mkdir(J(r, "dir").c_str(), 0755)));
  SAME("mkdir over a file", return Sys(mkdir(J(r, "file").c_str(), 0755)));
  SAME("mkdir below a file", return Sys(mkdir(J(r, "file/x").c_str(), 0755)));
  SAME("mkdir below missing", return Sys(mkdir(J(r, "missing/x").c_str(), 0755)));
  SAME("mkdir nested", return Sys(mkdir(J(r, "d1/d2").c_str(), 0755)));
  EXPECT_TRUE(twin_->SameStat("d1"));
  SAME("rmdir non-empty", return Sys(rmdir(J(r, "d1").c_str())));
  SAME("rmdir a file", return Sys(rmdir(J(r, "file").c_str())));
  SAME("rmdir missing", return Sys(rmdir(J(r, "missing").c_str())));
  SAME("rmdir '.'", return Sys(rmdir(J(r, "d1/.").c_str())));
  SAME("rmdir nested", return Sys(rmdir(J(r, "d1/d2").c_str())));
  EXPECT_TRUE(twin_->SameStat("d1"));
  SAME("rmdir now empty", return Sys(rmdir(J(r, "d1").c_str())));
  SAME("stat removed", return Sys(access(J(r, "d1").c_str(), F_OK)));
  EXPECT_TRUE(twin_->SameStat(""));
}

TEST_P(ConformanceTest, Unlink) {
  SAME("unlink a directory", return Sys(unlink(J(r, "dir").c_str())));
  SAME("unlink missing", return Sys(unlink(J(r, "missing").c_str())));
  SAME("unlink below a file", return Sys(unlink(J(r, "file/x").c_str())));
  SAME("unlink file", return Sys(unlink(J(r, "dir/inner").c_str())));
  SAME("stat unlinked", return Sys(access(J(r, "dir/inner").c_str(), F_OK)));
  // An open file keeps its data after unlink.
  SAME("read and write an unlinked open file", return WithFd(J(r, "file"), O_RDWR, [&](int fd) {
         if (unlink(J(r, "file").c_str()) != 0) return Sys(-1);
         if (pwrite(fd, "X", 1, 0) != 1) return Sys(-1);
         struct stat st;
         if (fstat(fd, &st) != 0) return Sys(-1);
         char buf[64];
         ssize_t n = pread(fd, buf, sizeof(buf), 0);
         return SysData(static_cast<int64_t>(st.st_nlink),
                        std::string(buf, n > 0 ? static_cast<size_t>(n) : 0));
       }));
  EXPECT_TRUE(twin_->SameStat("dir"));
}

TEST_P(ConformanceTest, Rename) {
  for (const std::string& root : {twin_->M(), twin_->N()}) {
    ASSERT_TRUE(WriteFile(J(root, "other"), "other contents"));
    ASSERT_TRUE(WriteFile(J(root, "empty2/x"), "x"));
  }
  SAME("file over an existing file", return Sys(rename(J(r, "other").c_str(), J(r, "file").c_str())));
  SAME("content of the replaced name", return ReadWhole(J(r, "file")));
  SAME("old name gone", return Sys(access(J(r, "other").c_str(), F_OK)));
  SAME("dir over a non-empty dir", return Sys(rename(J(r, "dir").c_str(), J(r, "empty2").c_str())));
  SAME("file over a dir", return Sys(rename(J(r, "file").c_str(), J(r, "empty").c_str())));
  SAME("dir over a file", return Sys(rename(J(r, "dir").c_str(), J(r, "file").c_str())));
  SAME("dir into its own subdir", return Sys(rename(J(r, "dir").c_str(), J(r, "dir/sub").c_str())));
  SAME("missing source", return Sys(rename(J(r, "missing").c_str(), J(r, "x").c_str())));
  SAME("to itself", return Sys(rename(J(r, "file").c_str(), J(r, "file").c_str())));
  SAME("dir over an empty dir", return Sys(rename(J(r, "dir").c_str(), J(r, "empty").c_str())));
  SAME("moved dir content", return ReadWhole(J(r, "empty/inner")));
  SAME("across directories", return Sys(rename(J(r, "empty/inner").c_str(), J(r, "empty2/inner").c_str())));
  EXPECT_TRUE(twin_->SameStat("empty"));
  EXPECT_TRUE(twin_->SameStat("empty2"));
  EXPECT_TRUE(twin_->SameStat(""));
  // A hard link renamed over its twin name: nothing happens (POSIX).
  SAME("link", return Sys(link(J(r, "file").c_str(), J(r, "file2").c_str())));
  SAME("rename over own hard link", return Sys(rename(J(r, "file").c_str(), J(r, "file2").c_str())));
  EXPECT_TRUE(twin_->SameStat("file"));
  EXPECT_TRUE(twin_->SameStat("file2"));
  // An open fd follows the renamed file.
  SAME("write through an fd across a rename", return WithFd(J(r, "file2"), O_RDWR, [&](int fd) {
         if (rename(J(r, "file2").c_str(), J(r, "dir-moved-file").c_str()) != 0) return Sys(-1);
         return Sys(pwrite(fd, "moved", 5, 0));
       }));
  SAME("content after", return ReadWhole(J(r, "dir-moved-file")));
}

TEST_P(ConformanceTest, Renameat2NoReplaceAndExchange) {
  SAME("NOREPLACE over an existing file",
       return Sys(renameat2(AT_FDCWD, J(r, "file").c_str(), AT_FDCWD, J(r, "dir/inner").c_str(),
                            RENAME_NOREPLACE)));
  SAME("NOREPLACE over an existing dir",
       return Sys(renameat2(AT_FDCWD, J(r, "empty").c_str(), AT_FDCWD, J(r, "empty2").c_str(),
                            RENAME_NOREPLACE)));
  SAME("NOREPLACE to a new name",
       return Sys(renameat2(AT_FDCWD, J(r, "file").c_str(), AT_FDCWD, J(r, "renamed").c_str(),
                            RENAME_NOREPLACE)));
  SAME("EXCHANGE file and dir",
       return Sys(renameat2(AT_FDCWD, J(r, "renamed").c_str(), AT_FDCWD, J(r, "dir").c_str(),
                            RENAME_EXCHANGE)));
  EXPECT_TRUE(twin_->SameStat("renamed"));
  EXPECT_TRUE(twin_->SameStat("dir"));
  SAME("content of exchanged", return ReadWhole(J(r, "dir")));
  SAME("content inside exchanged", return ReadWhole(J(r, "renamed/inner")));
  SAME("EXCHANGE across directories",
       return Sys(renameat2(AT_FDCWD, J(r, "renamed/inner").c_str(), AT_FDCWD, J(r, "dir").c_str(),
                            RENAME_EXCHANGE)));
  SAME("EXCHANGE with a missing name",
       return Sys(renameat2(AT_FDCWD, J(r, "dir").c_str(), AT_FDCWD, J(r, "missing").c_str(),
                            RENAME_EXCHANGE)));
  SAME("EXCHANGE|NOREPLACE",
       return Sys(renameat2(AT_FDCWD, J(r, "dir").c_str(), AT_FDCWD, J(r, "empty").c_str(),
                            RENAME_EXCHANGE | RENAME_NOREPLACE)));
}

TEST_P(ConformanceTest, HardLinks) {
  SAME("link", return Sys(link(J(r, "file").c_str(), J(r, "dir/hard").c_str())));
  EXPECT_TRUE(twin_->SameStat("file"));
  EXPECT_TRUE(twin_->SameStat("dir/hard"));
  SAME("write through one name", return WithFd(J(r, "dir/hard"), O_WRONLY | O_APPEND, [](int fd) {
         return Sys(write(fd, "more", 4));
       }));
  SAME("read through the other", return ReadWhole(J(r, "file")));
  SAME("link to an existing name", return Sys(link(J(r, "file").c_str(), J(r, "dir/inner").c_str())));
  SAME("link a directory", return Sys(link(J(r, "dir").c_str(), J(r, "dirlink").c_str())));
  SAME("link missing", return Sys(link(J(r, "missing").c_str(), J(r, "x").c_str())));
  SAME("third link", return Sys(link(J(r, "dir/hard").c_str(), J(r, "empty/third").c_str())));
  EXPECT_TRUE(twin_->SameStat("file"));
  SAME("unlink one", return Sys(unlink(J(r, "file").c_str())));
  EXPECT_TRUE(twin_->SameStat("dir/hard"));
  EXPECT_TRUE(twin_->SameStat("empty/third"));
  SAME("chmod through a link", return Sys(chmod(J(r, "dir/hard").c_str(), 0600)));
  EXPECT_TRUE(twin_->SameStat("empty/third"));
}

TEST_P(ConformanceTest, SymlinkReadlink) {
  auto readlink_outcome = [](const std::string& p) {
    char buf[4096];
    ssize_t n = readlink(p.c_str(), buf, sizeof(buf));
    return SysData(n, std::string(buf, n > 0 ? static_cast<size_t>(n) : 0));
  };
  SAME("dangling symlink", return Sys(symlink("no/such/target", J(r, "dangling").c_str())));
  SAME("readlink", return readlink_outcome(J(r, "dangling")));
  EXPECT_TRUE(twin_->SameStat("dangling"));
  SAME("follow dangling", return OpenOnly(J(r, "dangling"), O_RDONLY));
  SAME("relative symlink", return Sys(symlink("dir/inner", J(r, "rel").c_str())));
  SAME("read through it", return ReadWhole(J(r, "rel")));
  SAME("symlink over an existing name", return Sys(symlink("x", J(r, "file").c_str())));
  SAME("readlink on a file", return readlink_outcome(J(r, "file")));
  SAME("readlink with a short buffer", {
    char buf[3];
    ssize_t n = readlink(J(r, "dangling").c_str(), buf, sizeof(buf));
    return SysData(n, std::string(buf, n > 0 ? static_cast<size_t>(n) : 0));
  });
  const std::string long_target(4000, 'a');
  SAME("long target", return Sys(symlink(long_target.c_str(), J(r, "long").c_str())));
  SAME("readlink long", return readlink_outcome(J(r, "long")));
  SAME("symlink to a dir, then list through it", {
    if (symlink("dir", J(r, "dl").c_str()) != 0) return Sys(-1);
    return ReadWhole(J(r, "dl/inner"));
  });
}

TEST_P(ConformanceTest, MknodFifoAndRegular) {
  SAME("mkfifo", return Sys(mkfifo(J(r, "fifo").c_str(), 0640)));
  EXPECT_TRUE(twin_->SameStat("fifo"));
  SAME("mkfifo existing", return Sys(mkfifo(J(r, "fifo").c_str(), 0640)));
  SAME("open fifo nonblocking for reading", return OpenOnly(J(r, "fifo"), O_RDONLY | O_NONBLOCK));
  SAME("open fifo nonblocking for writing without reader",
       return OpenOnly(J(r, "fifo"), O_WRONLY | O_NONBLOCK));
  SAME("mknod regular", return Sys(mknod(J(r, "reg").c_str(), S_IFREG | 0600, 0)));
  EXPECT_TRUE(twin_->SameStat("reg"));
  SAME("mknod socket", return Sys(mknod(J(r, "sock").c_str(), S_IFSOCK | 0644, 0)));
  EXPECT_TRUE(twin_->SameStat("sock"));
}

TEST_P(ConformanceTest, ChmodChownUtimens) {
  SAME("chmod", return Sys(chmod(J(r, "file").c_str(), 0751)));
  EXPECT_TRUE(twin_->SameStat("file"));
  SAME("chmod setuid+setgid", return Sys(chmod(J(r, "file").c_str(), 06755)));
  EXPECT_TRUE(twin_->SameStat("file"));
  SAME("chown", return Sys(chown(J(r, "file").c_str(), 1234, 5678)));
  EXPECT_TRUE(twin_->SameStat("file"));
  SAME("chown gid only", return Sys(chown(J(r, "file").c_str(), -1, 42)));
  EXPECT_TRUE(twin_->SameStat("file"));
  SAME("write as root after chown", return WithFd(J(r, "file"), O_WRONLY, [](int fd) {
         return Sys(write(fd, "w", 1));
       }));
  EXPECT_TRUE(twin_->SameStat("file"));
  SAME("chown of a dir", return Sys(chown(J(r, "dir").c_str(), 7, 8)));
  EXPECT_TRUE(twin_->SameStat("dir"));
  SAME("symlink", return Sys(symlink("file", J(r, "sl").c_str())));
  SAME("lchown of a symlink", return Sys(lchown(J(r, "sl").c_str(), 99, 98)));
  EXPECT_TRUE(twin_->SameStat("sl"));
  EXPECT_TRUE(twin_->SameStat("file"));
  SAME("chmod missing", return Sys(chmod(J(r, "missing").c_str(), 0644)));
  SAME("fchmod", return WithFd(J(r, "dir/inner"), O_RDONLY, [](int fd) {
         return Sys(fchmod(fd, 0604));
       }));
  EXPECT_TRUE(twin_->SameStat("dir/inner"));

  auto times = [](const std::string& p) {
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) return Sys(-1);
    return SysData(0, absl::StrCat("atime=", st.st_atim.tv_sec, ".", st.st_atim.tv_nsec,
                                   " mtime=", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec));
  };
  SAME("utimensat explicit", {
    struct timespec ts[2] = {{1000000000, 123456789}, {1200000000, 987654321}};
    return Sys(utimensat(AT_FDCWD, J(r, "file").c_str(), ts, 0));
  });
  SAME("times after explicit", return times(J(r, "file")));
  SAME("utimensat UTIME_OMIT atime", {
    struct timespec ts[2] = {{0, UTIME_OMIT}, {1300000000, 5}};
    return Sys(utimensat(AT_FDCWD, J(r, "file").c_str(), ts, 0));
  });
  SAME("times after UTIME_OMIT", return times(J(r, "file")));
  SAME("utimensat on a symlink (AT_SYMLINK_NOFOLLOW)", {
    struct timespec ts[2] = {{1400000000, 1}, {1400000000, 2}};
    return Sys(utimensat(AT_FDCWD, J(r, "sl").c_str(), ts, AT_SYMLINK_NOFOLLOW));
  });
  SAME("symlink times", return times(J(r, "sl")));
  SAME("futimens", return WithFd(J(r, "dir/inner"), O_RDONLY, [](int fd) {
         struct timespec ts[2] = {{1500000000, 0}, {1500000001, 999999999}};
         return Sys(futimens(fd, ts));
       }));
  SAME("times after futimens", return times(J(r, "dir/inner")));
  // UTIME_NOW: the clock differs between the two calls, so compare with now.
  SAME("utimensat UTIME_NOW mtime, UTIME_OMIT atime", {
    struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    int rc = utimensat(AT_FDCWD, J(r, "file").c_str(), ts, 0);
    if (rc != 0) return Sys(-1);
    struct stat st;
    if (lstat(J(r, "file").c_str(), &st) != 0) return Sys(-1);
    int64_t age = absl::ToUnixSeconds(absl::Now()) - st.st_mtim.tv_sec;
    return SysData(0, absl::StrCat("mtime recent=", age >= 0 && age < 30,
                                   " atime=", st.st_atim.tv_sec, ".", st.st_atim.tv_nsec));
  });
  SAME("utimensat missing", return Sys(utimensat(AT_FDCWD, J(r, "missing").c_str(), nullptr, 0)));
}

TEST_P(ConformanceTest, ExtendedAttributes) {
  SAME("XATTR_CREATE new", return Sys(setxattr(J(r, "file").c_str(), "user.a", "v1", 2, XATTR_CREATE)));
  SAME("XATTR_CREATE existing", return Sys(setxattr(J(r, "file").c_str(), "user.a", "v2", 2, XATTR_CREATE)));
  SAME("XATTR_REPLACE missing", return Sys(setxattr(J(r, "file").c_str(), "user.b", "v", 1, XATTR_REPLACE)));
  SAME("XATTR_REPLACE existing", return Sys(setxattr(J(r, "file").c_str(), "user.a", "value-2", 7, XATTR_REPLACE)));
  SAME("set second", return Sys(setxattr(J(r, "file").c_str(), "user.second", "", 0, 0)));
  SAME("set binary", {
    const std::string v("\0\1\2\377binary", 10);
    return Sys(setxattr(J(r, "file").c_str(), "user.bin", v.data(), v.size(), 0));
  });
  auto get = [](const std::string& p, const char* name, size_t size) {
    std::string buf(size, '\0');
    ssize_t n = getxattr(p.c_str(), name, size ? buf.data() : nullptr, size);
    return SysData(n, size && n > 0 ? buf.substr(0, static_cast<size_t>(n)) : "");
  };
  SAME("get", return get(J(r, "file"), "user.a", 100));
  SAME("get binary", return get(J(r, "file"), "user.bin", 100));
  SAME("get empty value", return get(J(r, "file"), "user.second", 100));
  SAME("get size query", return get(J(r, "file"), "user.a", 0));
  SAME("get too small buffer", return get(J(r, "file"), "user.a", 3));
  SAME("get missing", return get(J(r, "file"), "user.missing", 100));
  SAME("get on missing file", return get(J(r, "missing"), "user.a", 100));
  auto list = [](const std::string& p, size_t size) {
    std::string buf(size, '\0');
    ssize_t n = listxattr(p.c_str(), size ? buf.data() : nullptr, size);
    if (n <= 0 || size == 0) return Sys(n);
    std::vector<std::string> names =
        absl::StrSplit(buf.substr(0, static_cast<size_t>(n)), '\0', absl::SkipEmpty());
    std::sort(names.begin(), names.end());
    return SysData(n, absl::StrJoin(names, ","));
  };
  SAME("list", return list(J(r, "file"), 4096));
  SAME("list size query", return list(J(r, "file"), 0));
  SAME("list too small buffer", return list(J(r, "file"), 5));
  SAME("list of a file without xattrs", return list(J(r, "dir/inner"), 4096));
  SAME("remove", return Sys(removexattr(J(r, "file").c_str(), "user.a")));
  SAME("remove again", return Sys(removexattr(J(r, "file").c_str(), "user.a")));
  SAME("get removed", return get(J(r, "file"), "user.a", 100));
  SAME("list after remove", return list(J(r, "file"), 4096));
  SAME("set on a dir", return Sys(setxattr(J(r, "dir").c_str(), "user.d", "dirval", 6, 0)));
  SAME("get on a dir", return get(J(r, "dir"), "user.d", 100));
  SAME("user xattr on a symlink", {
    if (symlink("file", J(r, "sl").c_str()) != 0) return Sys(-1);
    return Sys(lsetxattr(J(r, "sl").c_str(), "user.x", "v", 1, 0));
  });
  SAME("unknown namespace", return Sys(setxattr(J(r, "file").c_str(), "bogus.x", "v", 1, 0)));
  SAME("fsetxattr/fgetxattr", return WithFd(J(r, "dir/inner"), O_RDONLY, [](int fd) {
         if (fsetxattr(fd, "user.f", "fv", 2, 0) != 0) return Sys(-1);
         char buf[16];
         ssize_t n = fgetxattr(fd, "user.f", buf, sizeof(buf));
         return SysData(n, std::string(buf, n > 0 ? static_cast<size_t>(n) : 0));
       }));
  const std::string big(3000, 'z');
  SAME("large value", return Sys(setxattr(J(r, "file").c_str(), "user.big", big.data(), big.size(), 0)));
  SAME("get large", return get(J(r, "file"), "user.big", 4096));
}

TEST_P(ConformanceTest, Access) {
  ASSERT_EQ(chmod(twin_->M("empty2").c_str(), 0), 0);
  ASSERT_EQ(chmod(twin_->N("empty2").c_str(), 0), 0);
  SAME("chmod 0", return Sys(chmod(J(r, "dir/inner").c_str(), 0)));
  for (int mask : {F_OK, R_OK, W_OK, X_OK, R_OK | W_OK, R_OK | W_OK | X_OK}) {
    for (const char* p : {"file", "dir", "dir/inner", "empty2", "missing"}) {
      SAME(absl::StrCat("access ", p, " mask ", mask), return Sys(access(J(r, p).c_str(), mask)));
    }
  }
  SAME("chmod +x", return Sys(chmod(J(r, "file").c_str(), 0744)));
  SAME("access X_OK after chmod", return Sys(access(J(r, "file").c_str(), X_OK)));
  SAME("faccessat AT_EACCESS", return Sys(faccessat(AT_FDCWD, J(r, "file").c_str(), W_OK, AT_EACCESS)));
}

TEST_P(ConformanceTest, StatfsSanity) {
  struct statfs m, n;
  ASSERT_EQ(statfs(twin_->M().c_str(), &m), 0) << strerror(errno);
  ASSERT_EQ(statfs(twin_->N().c_str(), &n), 0) << strerror(errno);
  // Same underlying filesystem: geometry matches; free counts move with
  // whatever else runs on the machine.
  EXPECT_EQ(m.f_bsize, n.f_bsize);
  EXPECT_EQ(m.f_blocks, n.f_blocks);
  EXPECT_EQ(m.f_files, n.f_files);
  EXPECT_EQ(m.f_namelen, n.f_namelen);
  EXPECT_LE(m.f_bfree, m.f_blocks);
  EXPECT_LE(m.f_bavail, m.f_bfree);
  EXPECT_LE(m.f_ffree, m.f_files);
  EXPECT_GT(m.f_bsize, 0);
  const double tolerance = 0.05 * static_cast<double>(n.f_blocks);
  EXPECT_NEAR(static_cast<double>(m.f_bfree), static_cast<double>(n.f_bfree), tolerance);
  struct statfs f;
  EXPECT_EQ(statfs(twin_->M("dir/inner").c_str(), &f), 0);
  EXPECT_EQ(f.f_blocks, n.f_blocks);
}

// SEEK_DATA / SEEK_HOLE answers at interesting offsets, as one string.
Outcome SeekMap(int fd) {
  std::string map;
  for (off_t at : {0L, 4096L, 65536L, 100000L, 1L << 20, (1L << 20) + 70000, 3L << 20}) {
    off_t d = lseek(fd, at, SEEK_DATA);
    int derr = d < 0 ? errno : 0;
    off_t h = lseek(fd, at, SEEK_HOLE);
    int herr = h < 0 ? errno : 0;
    absl::StrAppend(&map, at, ":data=", d, "/", derr, ",hole=", h, "/", herr, " ");
  }
  return SysData(0, map);
}

TEST_P(ConformanceTest, FallocateAndSeekDataHole) {
  const std::string a = Pattern(65536, 3);
  SAME("sparse file", return WithFd(J(r, "sp"), O_RDWR | O_CREAT, [&](int fd) {
         if (pwrite(fd, a.data(), a.size(), 0) != 65536) return Sys(-1);
         if (pwrite(fd, a.data(), a.size(), 1 << 20) != 65536) return Sys(-1);
         if (ftruncate(fd, 2 << 20) != 0) return Sys(-1);
         return Sys(fsync(fd));
       }));
  SAME("seek map", return WithFd(J(r, "sp"), O_RDONLY, SeekMap));
  SAME("fallocate mode 0 grows", return WithFd(J(r, "sp"), O_RDWR, [](int fd) {
         return Sys(fallocate(fd, 0, 0, 3 << 20));
       }));
  EXPECT_TRUE(twin_->SameStat("sp"));
  SAME("fallocate KEEP_SIZE beyond EOF", return WithFd(J(r, "sp"), O_RDWR, [](int fd) {
         return Sys(fallocate(fd, FALLOC_FL_KEEP_SIZE, 3 << 20, 1 << 20));
       }));
  EXPECT_TRUE(twin_->SameStat("sp"));
  SAME("punch a hole", return WithFd(J(r, "sp"), O_RDWR, [](int fd) {
         return Sys(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192));
       }));
  SAME("punch without KEEP_SIZE", return WithFd(J(r, "sp"), O_RDWR, [](int fd) {
         return Sys(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 4096, 8192));
       }));
  SAME("punch an unaligned range", return WithFd(J(r, "sp"), O_RDWR, [](int fd) {
         return Sys(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (1 << 20) + 100, 1000));
       }));
  EXPECT_TRUE(twin_->SameStat("sp"));
  SAME("content after punching", return ReadWhole(J(r, "sp")));
  SAME("fallocate on a read-only fd", return WithFd(J(r, "sp"), O_RDONLY, [](int fd) {
         return Sys(fallocate(fd, 0, 0, 4096));
       }));
  SAME("fallocate bad length", return WithFd(J(r, "sp"), O_RDWR, [](int fd) {
         return Sys(fallocate(fd, 0, 0, 0));
       }));
  SAME("SEEK_DATA past EOF", return WithFd(J(r, "file"), O_RDONLY, [](int fd) {
         return Sys(lseek(fd, 1 << 20, SEEK_DATA));
       }));
  SAME("SEEK_HOLE in a dense file", return WithFd(J(r, "file"), O_RDONLY, [](int fd) {
         return Sys(lseek(fd, 0, SEEK_HOLE));
       }));
  // A freshly written sparse file, not synced: data still in caches must be
  // seen as data. Kernel-imposed difference: with writeback_cache the dirty
  // pages (and the size) stay in the kernel and FUSE_LSEEK is sent without
  // writing them back first, so the daemon sees an empty file (ENXIO). For
  // that variant the data is made durable first; the others must match as is.
  const bool sync_first = Variant("writeback");
  SAME("unsynced sparse file", return WithFd(J(r, "sp2"), O_RDWR | O_CREAT, [&](int fd) {
         if (pwrite(fd, a.data(), 4096, 1 << 20) != 4096) return Sys(-1);
         if (sync_first && fdatasync(fd) != 0) return Sys(-1);
         return SeekMap(fd);
       }));
}

TEST_P(ConformanceTest, CopyFileRange) {
  const std::string a = Pattern(300000, 4);
  for (const std::string& root : {twin_->M(), twin_->N()}) ASSERT_TRUE(WriteFile(J(root, "src"), a));
  auto cfr = [](const std::string& from, off_t in_off, const std::string& to, off_t out_off,
                size_t len) {
    int in = open(from.c_str(), O_RDONLY | O_CLOEXEC);
    int out = open(to.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    Outcome o;
    if (in < 0 || out < 0) {
      o = Sys(-1);
    } else {
      loff_t i = in_off, j = out_off;
      o = Sys(copy_file_range(in, &i, out, &j, len, 0));
      if (o.ret >= 0) o.data = absl::StrCat("in=", i, " out=", j);
    }
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    return o;
  };
  SAME("whole file", return cfr(J(r, "src"), 0, J(r, "dst"), 0, a.size()));
  SAME("dst content", return ReadWhole(J(r, "dst")));
  SAME("at offsets into a hole", return cfr(J(r, "src"), 1000, J(r, "dst"), 500000, 70000));
  SAME("dst content 2", return ReadWhole(J(r, "dst")));
  EXPECT_TRUE(twin_->SameStat("dst"));
  SAME("past the end of the input", return cfr(J(r, "src"), 400000, J(r, "dst"), 0, 10));
  SAME("short at the end of the input", return cfr(J(r, "src"), 299990, J(r, "dst"), 7, 100));
  SAME("overlapping within one file", return cfr(J(r, "src"), 0, J(r, "src"), 100, 1000));
  SAME("across directories", return cfr(J(r, "src"), 5, J(r, "dir/copy"), 3, 4096));
  SAME("copy content", return ReadWhole(J(r, "dir/copy")));
  SAME("from a directory", return cfr(J(r, "dir"), 0, J(r, "dst"), 0, 10));
  SAME("file offset use (NULL offsets)", {
    int in = open(J(r, "src").c_str(), O_RDONLY | O_CLOEXEC);
    int out = open(J(r, "dst").c_str(), O_WRONLY | O_CLOEXEC);
    lseek(in, 10, SEEK_SET);
    lseek(out, 20, SEEK_SET);
    Outcome o = Sys(copy_file_range(in, nullptr, out, nullptr, 50, 0));
    o.data = absl::StrCat("in=", lseek(in, 0, SEEK_CUR), " out=", lseek(out, 0, SEEK_CUR));
    close(in);
    close(out);
    return o;
  });
  SAME("dst content 3", return ReadWhole(J(r, "dst")));
}

// Runs fn in a forked child and returns its exit code (or -1). fn must only
// make system calls: the parent has other threads.
int InChild(const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) _exit(fn());
  if (pid < 0) return -1;
  for (int i = 0; i < 2000; i++) {
    int status;
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    usleep(5000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

TEST_P(ConformanceTest, Locks) {
  auto lock = [](int fd, int cmd, short type, off_t start, off_t len) {
    struct flock fl = {};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    return fcntl(fd, cmd, &fl);
  };
  SAME("OFD locks between two fds", {
    int a = open(J(r, "file").c_str(), O_RDWR | O_CLOEXEC);
    int b = open(J(r, "file").c_str(), O_RDWR | O_CLOEXEC);
    std::string log;
    absl::StrAppend(&log, "a-wr:", lock(a, F_OFD_SETLK, F_WRLCK, 0, 100) == 0 ? 0 : errno);
    absl::StrAppend(&log, " b-wr:", lock(b, F_OFD_SETLK, F_WRLCK, 50, 10) == 0 ? 0 : errno);
    absl::StrAppend(&log, " b-wr-outside:", lock(b, F_OFD_SETLK, F_WRLCK, 100, 10) == 0 ? 0 : errno);
    struct flock fl = {};
    fl.l_type = F_WRLCK;
    fl.l_start = 0;
    fl.l_len = 0;
    int g = fcntl(b, F_OFD_GETLK, &fl);
    absl::StrAppend(&log, " b-getlk:", g, ",type=", fl.l_type, ",start=", fl.l_start,
                    ",len=", fl.l_len);
    absl::StrAppend(&log, " a-rd:", lock(a, F_OFD_SETLK, F_RDLCK, 0, 100) == 0 ? 0 : errno);
    absl::StrAppend(&log, " b-rd:", lock(b, F_OFD_SETLK, F_RDLCK, 0, 100) == 0 ? 0 : errno);
    absl::StrAppend(&log, " a-unlock:", lock(a, F_OFD_SETLK, F_UNLCK, 0, 0) == 0 ? 0 : errno);
    absl::StrAppend(&log, " b-wr-after:", lock(b, F_OFD_SETLK, F_WRLCK, 0, 100) == 0 ? 0 : errno);
    close(a);
    close(b);
    return SysData(0, log);
  });
  SAME("flock between two fds", {
    int a = open(J(r, "file").c_str(), O_RDONLY | O_CLOEXEC);
    int b = open(J(r, "file").c_str(), O_RDONLY | O_CLOEXEC);
    std::string log;
    absl::StrAppend(&log, "a-ex:", flock(a, LOCK_EX | LOCK_NB) == 0 ? 0 : errno);
    absl::StrAppend(&log, " b-ex:", flock(b, LOCK_EX | LOCK_NB) == 0 ? 0 : errno);
    absl::StrAppend(&log, " b-sh:", flock(b, LOCK_SH | LOCK_NB) == 0 ? 0 : errno);
    absl::StrAppend(&log, " a-un:", flock(a, LOCK_UN) == 0 ? 0 : errno);
    absl::StrAppend(&log, " b-sh-after:", flock(b, LOCK_SH | LOCK_NB) == 0 ? 0 : errno);
    absl::StrAppend(&log, " a-sh:", flock(a, LOCK_SH | LOCK_NB) == 0 ? 0 : errno);
    absl::StrAppend(&log, " a-ex-upgrade:", flock(a, LOCK_EX | LOCK_NB) == 0 ? 0 : errno);
    close(a);
    close(b);
    return SysData(0, log);
  });
  // Classic POSIX locks belong to the process: a child conflicts with the
  // parent's lock.
  SAME("F_SETLK conflict with another process", {
    int a = open(J(r, "file").c_str(), O_RDWR | O_CLOEXEC);
    if (a < 0) return Sys(-1);
    std::string log;
    absl::StrAppend(&log, "parent-wr:", lock(a, F_SETLK, F_WRLCK, 0, 10) == 0 ? 0 : errno);
    const std::string path = J(r, "file");
    int child = InChild([&] {
      int b = open(path.c_str(), O_RDWR | O_CLOEXEC);
      if (b < 0) return 200;
      struct flock fl = {};
      fl.l_type = F_WRLCK;
      fl.l_whence = SEEK_SET;
      fl.l_start = 5;
      fl.l_len = 1;
      if (fcntl(b, F_SETLK, &fl) == 0) return 0;
      int e = errno;
      fl.l_type = F_WRLCK;
      fl.l_start = 0;
      fl.l_len = 0;
      if (fcntl(b, F_GETLK, &fl) != 0) return 201;
      if (fl.l_type != F_WRLCK || fl.l_start != 0 || fl.l_len != 10) return 202;
      fl.l_type = F_WRLCK;
      fl.l_start = 10;
      fl.l_len = 5;
      if (fcntl(b, F_SETLK, &fl) != 0) return 203;
      return e;
    });
    absl::StrAppend(&log, " child:", child);
    close(a);
    return SysData(0, log);
  });
  // ... and two fds of one process share the process's locks: no conflict,
  // and closing either fd drops them.
  SAME("F_SETLK on two fds of one process", {
    int a = open(J(r, "file").c_str(), O_RDWR | O_CLOEXEC);
    int b = open(J(r, "file").c_str(), O_RDWR | O_CLOEXEC);
    std::string log;
    absl::StrAppend(&log, "a-wr:", lock(a, F_SETLK, F_WRLCK, 0, 10) == 0 ? 0 : errno);
    absl::StrAppend(&log, " b-wr:", lock(b, F_SETLK, F_WRLCK, 0, 10) == 0 ? 0 : errno);
    close(b);
    const std::string path = J(r, "file");
    int child = InChild([&] {
      int c = open(path.c_str(), O_RDWR | O_CLOEXEC);
      struct flock fl = {};
      fl.l_type = F_WRLCK;
      fl.l_whence = SEEK_SET;
      fl.l_len = 10;
      return fcntl(c, F_SETLK, &fl) == 0 ? 0 : errno;
    });
    absl::StrAppend(&log, " child-after-close:", child);
    close(a);
    return SysData(0, log);
  });
}

TEST_P(ConformanceTest, TmpfileAndLinkat) {
  SAME("O_TMPFILE, write, link in", {
    int fd = open(J(r, "dir").c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0640);
    if (fd < 0) return Sys(-1);
    std::string log;
    absl::StrAppend(&log, "write:", write(fd, "temporary", 9));
    struct stat st;
    fstat(fd, &st);
    absl::StrAppend(&log, " nlink:", st.st_nlink, " mode:", st.st_mode, " size:", st.st_size);
    const std::string proc = absl::StrCat("/proc/self/fd/", fd);
    int rc = linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, J(r, "dir/linked").c_str(), AT_SYMLINK_FOLLOW);
    absl::StrAppend(&log, " linkat:", rc == 0 ? 0 : errno);
    fstat(fd, &st);
    absl::StrAppend(&log, " nlink:", st.st_nlink);
    close(fd);
    return SysData(0, log);
  });
  EXPECT_TRUE(twin_->SameStat("dir/linked"));
  SAME("linked content", return ReadWhole(J(r, "dir/linked")));
  SAME("O_TMPFILE without write access", return OpenOnly(J(r, "dir"), O_TMPFILE | O_RDONLY, 0600));
  SAME("O_TMPFILE on a file", return OpenOnly(J(r, "file"), O_TMPFILE | O_RDWR, 0600));
  SAME("O_TMPFILE|O_EXCL cannot be linked", {
    int fd = open(J(r, "dir").c_str(), O_TMPFILE | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) return Sys(-1);
    const std::string proc = absl::StrCat("/proc/self/fd/", fd);
    Outcome o = Sys(linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, J(r, "dir/excl").c_str(),
                           AT_SYMLINK_FOLLOW));
    close(fd);
    return o;
  });
}

// A name longer than NAME_MAX: every operation that names it answers
// ENAMETOOLONG on a Linux filesystem. The FUSE kernel passes such names on
// to the daemon (up to 1024 bytes on older kernels; 6.18 passes 4000), so it
// is the daemon's answer that is compared. NAME_MAX exactly is an ordinary
// name. One check per operation and length.
TEST_P(ConformanceTest, NamesPastNameMax) {
  const std::string max(NAME_MAX, 'm');
  for (size_t len : {size_t{NAME_MAX + 1}, size_t{1024}, size_t{1025}, size_t{4000}}) {
    const std::string n(len, 'n');
    SCOPED_TRACE(absl::StrCat("name of ", len, " bytes"));
    SAME("open O_CREAT", return OpenOnly(J(r, n), O_CREAT | O_WRONLY));
    SAME("open O_CREAT|O_EXCL in a subdir", return OpenOnly(J(r, "dir/" + n), O_CREAT | O_EXCL | O_RDWR));
    SAME("creat", {
      int fd = creat(J(r, n).c_str(), 0600);
      if (fd >= 0) close(fd);
      return Sys(fd < 0 ? -1 : 0);
    });
    SAME("open existing-style O_RDONLY", return OpenOnly(J(r, n), O_RDONLY));
    SAME("stat", return Sys(access(J(r, n).c_str(), F_OK)));
    SAME("mkdir", return Sys(mkdir(J(r, n).c_str(), 0755)));
    SAME("mkdir below it", return Sys(mkdir(J(r, n + "/x").c_str(), 0755)));
    SAME("mknod regular", return Sys(mknod(J(r, n).c_str(), S_IFREG | 0600, 0)));
    SAME("mkfifo", return Sys(mkfifo(J(r, n).c_str(), 0600)));
    SAME("link to it", return Sys(link(J(r, "file").c_str(), J(r, n).c_str())));
    SAME("link from it", return Sys(link(J(r, n).c_str(), J(r, "x").c_str())));
    SAME("symlink named it", return Sys(symlink("file", J(r, n).c_str())));
    SAME("rename from it", return Sys(rename(J(r, n).c_str(), J(r, "x").c_str())));
    SAME("rename to it", return Sys(rename(J(r, "file").c_str(), J(r, n).c_str())));
    SAME("renameat2 NOREPLACE to it",
         return Sys(renameat2(AT_FDCWD, J(r, "file").c_str(), AT_FDCWD, J(r, n).c_str(),
                              RENAME_NOREPLACE)));
    SAME("renameat2 EXCHANGE with it",
         return Sys(renameat2(AT_FDCWD, J(r, "file").c_str(), AT_FDCWD, J(r, n).c_str(),
                              RENAME_EXCHANGE)));
    SAME("unlink", return Sys(unlink(J(r, n).c_str())));
    SAME("rmdir", return Sys(rmdir(J(r, n).c_str())));
    SAME("chmod", return Sys(chmod(J(r, n).c_str(), 0600)));
    SAME("chown", return Sys(chown(J(r, n).c_str(), 1, 1)));
    SAME("truncate", return Sys(truncate(J(r, n).c_str(), 0)));
    SAME("utimensat", return Sys(utimensat(AT_FDCWD, J(r, n).c_str(), nullptr, 0)));
    SAME("setxattr", return Sys(setxattr(J(r, n).c_str(), "user.k", "v", 1, 0)));
  }
  // NAME_MAX itself works for each kind of entry.
  SAME("create NAME_MAX", return OpenOnly(J(r, max), O_CREAT | O_WRONLY));
  SAME("rename to NAME_MAX", return Sys(rename(J(r, max).c_str(), J(r, "dir/" + max).c_str())));
  SAME("mkdir NAME_MAX", return Sys(mkdir(J(r, max).c_str(), 0755)));
  SAME("mkfifo NAME_MAX", return Sys(mkfifo(J(r, "empty/" + max).c_str(), 0600)));
  SAME("link NAME_MAX", return Sys(link(J(r, "file").c_str(), J(r, "empty2/" + max).c_str())));
  SAME("symlink NAME_MAX", return Sys(symlink(max.c_str(), J(r, max + "/" + max).c_str())));
  SAME("readlink NAME_MAX", {
    char buf[512];
    ssize_t got = readlink(J(r, max + "/" + max).c_str(), buf, sizeof(buf));
    return SysData(got, std::string(buf, got > 0 ? static_cast<size_t>(got) : 0));
  });
  SAME("unlink NAME_MAX", return Sys(unlink(J(r, "empty2/" + max).c_str())));
  EXPECT_TRUE(twin_->SameStat("dir/" + max));
  EXPECT_TRUE(twin_->SameStat(max));
}

// Reads the rest of a directory stream.
std::vector<std::string> Rest(DIR* d) {
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d)) names.push_back(e->d_name);
  return names;
}

TEST_P(ConformanceTest, ReaddirTelldirSeekdir) {
  for (const std::string& root : {twin_->M(), twin_->N()}) {
    ASSERT_EQ(mkdir(J(root, "many").c_str(), 0755), 0);
  }
  // Long names so the listing spans several getdents buffers.
  for (int i = 0; i < 400; i++) {
    SAME(absl::StrCat("create ", i), return OpenOnly(J(r, absl::StrCat("many/entry-", i, "-",
                                                                      std::string(60, 'n'))),
                                                     O_CREAT | O_WRONLY));
  }
  SAME("telldir/seekdir resume", {
    DIR* d = opendir(J(r, "many").c_str());
    if (d == nullptr) return Sys(-1);
    std::vector<std::string> all;
    std::vector<std::pair<long, size_t>> marks;  // telldir value, index into all
    for (;;) {
      if (all.size() % 37 == 0) marks.emplace_back(telldir(d), all.size());
      struct dirent* e = readdir(d);
      if (e == nullptr) break;
      all.push_back(e->d_name);
    }
    std::string problems;
    for (auto it = marks.rbegin(); it != marks.rend(); ++it) {
      seekdir(d, it->first);
      std::vector<std::string> rest = Rest(d);
      std::vector<std::string> want(all.begin() + static_cast<long>(it->second), all.end());
      if (rest != want) {
        absl::StrAppend(&problems, "after seekdir to entry ", it->second, ": ", rest.size(),
                        " entries, expected ", want.size(), "; ");
      }
    }
    rewinddir(d);
    if (Rest(d) != all) absl::StrAppend(&problems, "rewinddir listing differs; ");
    closedir(d);
    std::sort(all.begin(), all.end());
    return SysData(static_cast<int64_t>(all.size()),
                   absl::StrCat(problems, absl::StrJoin(all, ",")));
  });
  SAME("listing after unlinking while open", {
    DIR* d = opendir(J(r, "many").c_str());
    if (d == nullptr) return Sys(-1);
    for (int i = 0; i < 50; i++) readdir(d);
    for (int i = 0; i < 400; i += 2) {
      unlink(J(r, absl::StrCat("many/entry-", i, "-", std::string(60, 'n'))).c_str());
    }
    rewinddir(d);
    std::vector<std::string> names = Rest(d);
    closedir(d);
    std::sort(names.begin(), names.end());
    return SysData(static_cast<int64_t>(names.size()), absl::StrJoin(names, ","));
  });
  SAME("opendir on a file", {
    DIR* d = opendir(J(r, "file").c_str());
    if (d != nullptr) closedir(d);
    return Sys(d == nullptr ? -1 : 0);
  });
  SAME("d_type of entries", {
    DIR* d = opendir(r.c_str());
    if (d == nullptr) return Sys(-1);
    std::vector<std::string> types;
    while (struct dirent* e = readdir(d)) types.push_back(absl::StrCat(e->d_name, ":", e->d_type));
    closedir(d);
    std::sort(types.begin(), types.end());
    return SysData(0, absl::StrJoin(types, ","));
  });
}

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  std::string s = absl::StrCat(std::get<0>(info.param), "_", std::get<1>(info.param));
  for (char& c : s) {
    if (c == '-') c = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(All, ConformanceTest,
                         ::testing::Combine(::testing::ValuesIn(Transports()),
                                            ::testing::ValuesIn(Variants())),
                         ParamName);

}  // namespace
}  // namespace kmfuse::conformance
