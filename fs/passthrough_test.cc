// PassthroughFs against a real temporary source directory, through FsDriver.
#include "kmfuse/passthrough.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "kmfuse/sync.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kmfuse/testing/fs_testing.h"
#include "kmfuse/testing/status_macros.h"

namespace kmfuse {
namespace {

using ::kmfuse::testing::Created;
using ::kmfuse::testing::ErrnoOf;
using ::kmfuse::testing::FsDriver;
using ::kmfuse::testing::TempDir;
using ::testing::HasSubstr;

constexpr uint64_t kRoot = abi::FUSE_ROOT_ID;

void WriteHostFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary);
  f << content;
}

std::string ReadHostFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct stat HostStat(const std::string& path) {
  struct stat st {};
  lstat(path.c_str(), &st);
  return st;
}

class PassthroughTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(PassthroughOptions{}); }

  void Make(PassthroughOptions opts) {
    driver_.reset();
    fs_.reset();
    opts.source = src_.path();
    auto fs = PassthroughFs::Create(opts);
    ASSERT_TRUE(fs.ok()) << fs.status();
    fs_ = std::move(*fs);
    driver_ = std::make_unique<FsDriver>(fs_.get());
    ASSERT_TRUE(driver_->Init().ok());
  }

  FsDriver& d() { return *driver_; }
  std::string Src(const std::string& rel) { return src_.Join(rel); }

  TempDir src_;
  std::unique_ptr<PassthroughFs> fs_;
  std::unique_ptr<FsDriver> driver_;
};

// ---- setup and options ----

TEST(PassthroughCreateTest, ReportsBadSources) {
  TempDir t;
  PassthroughOptions opts;
  opts.source = t.Join("missing");
  auto fs = PassthroughFs::Create(opts);
  ASSERT_FALSE(fs.ok());
  EXPECT_THAT(std::string(fs.status().message()), HasSubstr(opts.source));
  EXPECT_THAT(std::string(fs.status().message()), HasSubstr(strerror(ENOENT)));

  WriteHostFile(t.Join("file"), "x");
  opts.source = t.Join("file");
  fs = PassthroughFs::Create(opts);
  ASSERT_FALSE(fs.ok());
  EXPECT_THAT(std::string(fs.status().message()), HasSubstr("not a directory"));

  opts.source = "";
  EXPECT_FALSE(PassthroughFs::Create(opts).ok());
}

TEST(PassthroughOptionTest, Parses) {
  PassthroughOptions o;
  EXPECT_TRUE(ParsePassthroughOption("cache", "none", &o).ok());
  EXPECT_EQ(o.cache, CacheMode::kNone);
  EXPECT_TRUE(ParsePassthroughOption("cache", "always", &o).ok());
  EXPECT_EQ(o.cache, CacheMode::kAlways);
  absl::Status s = ParsePassthroughOption("cache", "sometimes", &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("sometimes"));
  EXPECT_TRUE(ParsePassthroughOption("writeback_cache", "", &o).ok());
  EXPECT_TRUE(o.writeback_cache);
  EXPECT_TRUE(ParsePassthroughOption("passthrough", "false", &o).ok());
  EXPECT_FALSE(o.passthrough);
  EXPECT_TRUE(ParsePassthroughOption("ro", "", &o).ok());
  EXPECT_TRUE(o.readonly);
  EXPECT_TRUE(ParsePassthroughOption("rw", "", &o).ok());
  EXPECT_FALSE(o.readonly);
  EXPECT_TRUE(ParsePassthroughOption("fd_budget", "300", &o).ok());
  EXPECT_EQ(o.fd_budget, 300u);
  EXPECT_EQ(ParsePassthroughOption("fd_budget", "lots", &o).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParsePassthroughOption("passthrough", "maybe", &o).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParsePassthroughOption("allow_other", "", &o).code(), absl::StatusCode::kNotFound);
}

TEST_F(PassthroughTest, InitNegotiatesFlags) {
  ConnectionInfo c = FsDriver::DefaultConnection();
  c.offered |= abi::FUSE_PASSTHROUGH;
  c.want = c.offered & ~abi::FUSE_PASSTHROUGH;
  ASSERT_OK_AND_ASSIGN(auto out, d().Init(c));
  EXPECT_EQ(out.want & abi::FUSE_WRITEBACK_CACHE, 0u);
  EXPECT_EQ(out.want & abi::FUSE_PASSTHROUGH, 0u);
  EXPECT_NE(out.want & abi::FUSE_POSIX_LOCKS, 0u);

  PassthroughOptions o;
  o.writeback_cache = true;
  o.posix_locks = false;
  o.flock_locks = false;
  o.passthrough = true;
  Make(o);
  c.passthrough_possible = false;
  ASSERT_OK_AND_ASSIGN(out, d().Init(c));
  EXPECT_NE(out.want & abi::FUSE_WRITEBACK_CACHE, 0u);
  EXPECT_EQ(out.want & (abi::FUSE_POSIX_LOCKS | abi::FUSE_FLOCK_LOCKS), 0u);
  EXPECT_EQ(out.want & abi::FUSE_PASSTHROUGH, 0u);  // not possible, no host
}

// A host whose backing registrations succeed or fail on demand.
class FakeHost : public FileSystemHost {
 public:
  absl::StatusOr<int32_t> BackingOpen(int fd) override {
    MutexLock l(&mu);
    if (refuse) return absl::PermissionDeniedError("refused by test");
    opened.push_back(fd);
    return next_id++;
  }
  absl::Status BackingClose(int32_t id) override {
    MutexLock l(&mu);
    closed.push_back(id);
    return absl::OkStatus();
  }
  absl::Status NotifyInvalInode(uint64_t, int64_t, int64_t) override { return absl::OkStatus(); }
  absl::Status NotifyInvalEntry(uint64_t, std::string_view) override { return absl::OkStatus(); }
  absl::Status NotifyDelete(uint64_t, uint64_t, std::string_view) override {
    return absl::OkStatus();
  }
  absl::Status NotifyStore(uint64_t, uint64_t, absl::Span<const char>) override {
    return absl::OkStatus();
  }
  absl::Status NotifyRetrieve(uint64_t, uint64_t, uint32_t, uint64_t) override {
    return absl::OkStatus();
  }
  Mutex mu;
  bool refuse = false;
  int32_t next_id = 7;
  std::vector<int> opened;
  std::vector<int32_t> closed;
};

TEST_F(PassthroughTest, KernelPassthroughWithPerFileFallback) {
  PassthroughOptions o;
  o.passthrough = true;
  o.cache = CacheMode::kAlways;
  Make(o);
  FakeHost host;
  ConnectionInfo c = FsDriver::DefaultConnection();
  c.offered |= abi::FUSE_PASSTHROUGH;
  c.passthrough_possible = true;
  c.max_stack_depth = 0;
  c.host = &host;
  ASSERT_OK_AND_ASSIGN(auto out, d().Init(c));
  EXPECT_NE(out.want & abi::FUSE_PASSTHROUGH, 0u);
  EXPECT_EQ(out.max_stack_depth, 1u);

  ASSERT_OK_AND_ASSIGN(Created cr, d().Create(kRoot, "f", O_RDWR | O_CREAT, 0644));
  EXPECT_NE(cr.open.open_flags & abi::FOPEN_PASSTHROUGH, 0u);
  EXPECT_EQ(cr.open.open_flags & abi::FOPEN_KEEP_CACHE, 0u);  // the kernel refuses both
  EXPECT_EQ(cr.open.backing_id, 7);
  EXPECT_EQ(d().Release(cr.entry.nodeid, cr.open.fh), 0);
  EXPECT_EQ(host.closed, std::vector<int32_t>{7});

  host.refuse = true;
  ASSERT_OK_AND_ASSIGN(auto op, d().Open(cr.entry.nodeid, O_RDONLY));
  EXPECT_EQ(op.open_flags & abi::FOPEN_PASSTHROUGH, 0u);
  EXPECT_NE(op.open_flags & abi::FOPEN_KEEP_CACHE, 0u);
  ASSERT_OK_AND_ASSIGN(std::string s, d().Read(cr.entry.nodeid, op.fh, 0, 10));
  EXPECT_EQ(s, "");
  EXPECT_EQ(d().Release(cr.entry.nodeid, op.fh), 0);
}

TEST_F(PassthroughTest, CacheModesSetTimeoutsAndOpenFlags) {
  WriteHostFile(Src("f"), "abc");
  struct Case {
    CacheMode mode;
    uint64_t timeout;
    uint32_t flag;
  };
  for (Case c : {Case{CacheMode::kNone, 0, abi::FOPEN_DIRECT_IO},
                 Case{CacheMode::kAuto, 1, 0},
                 Case{CacheMode::kAlways, 86400, abi::FOPEN_KEEP_CACHE}}) {
    PassthroughOptions o;
    o.cache = c.mode;
    Make(o);
    ASSERT_OK_AND_ASSIGN(auto e, d().Lookup(kRoot, "f"));
    EXPECT_EQ(e.entry_valid, c.timeout);
    EXPECT_EQ(e.attr_valid, c.timeout);
    ASSERT_OK_AND_ASSIGN(auto a, d().Getattr(e.nodeid));
    EXPECT_EQ(a.attr_valid, c.timeout);
    ASSERT_OK_AND_ASSIGN(auto op, d().Open(e.nodeid, O_RDONLY));
    EXPECT_EQ(op.open_flags & (abi::FOPEN_DIRECT_IO | abi::FOPEN_KEEP_CACHE), c.flag);
    EXPECT_EQ(d().Release(e.nodeid, op.fh), 0);
  }
}

// An O_DIRECT open is answered FOPEN_DIRECT_IO in every cache mode: the
// kernel then sends its reads as plain synchronous requests, not through its
// async-DIO path (a background request and a completion per read).
TEST_F(PassthroughTest, ODirectOpensAreDirectIoInEveryCacheMode) {
  WriteHostFile(Src("f"), "abc");
  int probe = open(Src("f").c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (probe < 0) GTEST_SKIP() << "the test's source filesystem refuses O_DIRECT: " << strerror(errno);
  close(probe);
  for (CacheMode mode : {CacheMode::kNone, CacheMode::kAuto, CacheMode::kAlways}) {
    PassthroughOptions o;
    o.cache = mode;
    Make(o);
    ASSERT_OK_AND_ASSIGN(auto e, d().Lookup(kRoot, "f"));
    ASSERT_OK_AND_ASSIGN(auto op, d().Open(e.nodeid, O_RDONLY | O_DIRECT));
    EXPECT_NE(op.open_flags & abi::FOPEN_DIRECT_IO, 0u);
    EXPECT_NE(op.open_flags & abi::FOPEN_PARALLEL_DIRECT_WRITES, 0u);
    EXPECT_EQ(d().Release(e.nodeid, op.fh), 0);
    ASSERT_OK_AND_ASSIGN(Created cr, d().Create(kRoot, "g", O_RDWR | O_CREAT | O_DIRECT, 0644));
    EXPECT_NE(cr.open.open_flags & abi::FOPEN_DIRECT_IO, 0u);
    EXPECT_EQ(d().Release(cr.entry.nodeid, cr.open.fh), 0);
    ASSERT_EQ(unlink(Src("g").c_str()), 0);
    if (mode != CacheMode::kNone) {
      ASSERT_OK_AND_ASSIGN(auto plain, d().Open(e.nodeid, O_RDONLY));
      EXPECT_EQ(plain.open_flags & abi::FOPEN_DIRECT_IO, 0u);
      EXPECT_EQ(d().Release(e.nodeid, plain.fh), 0);
    }
  }
}

// ---- attributes ----

TEST_F(PassthroughTest, GetattrMatchesHost) {
  WriteHostFile(Src("f"), "12345");
  ASSERT_OK_AND_ASSIGN(auto e, d().Lookup(kRoot, "f"));
  struct stat st = HostStat(Src("f"));
  EXPECT_EQ(e.attr.ino, st.st_ino);
  EXPECT_EQ(e.attr.size, 5u);
  EXPECT_NE(e.nodeid, st.st_ino);  // generated ids, not inode numbers
  ASSERT_OK_AND_ASSIGN(auto sx, d().Statx(e.nodeid));
  EXPECT_EQ(sx.stat.ino, st.st_ino);
  EXPECT_EQ(sx.stat.size, 5u);
  EXPECT_NE(sx.stat.mask & STATX_SIZE, 0u);
  ASSERT_OK_AND_ASSIGN(auto root, d().Getattr(kRoot));
  EXPECT_EQ(root.attr.ino, HostStat(src_.path()).st_ino);
}

TEST_F(PassthroughTest, SetattrOwnerModeTimesAndKillSuid) {
  ASSERT_OK_AND_ASSIGN(uint64_t ino, d().CreateFile(kRoot, "f", "data"));
  abi::fuse_setattr_in in{};
  in.valid = abi::FATTR_UID | abi::FATTR_GID;
  in.uid = 1234;
  in.gid = 5678;
  ASSERT_OK_AND_ASSIGN(auto a, d().Setattr(ino, in));
  EXPECT_EQ(a.attr.uid, 1234u);
  EXPECT_EQ(HostStat(Src("f")).st_gid, 5678u);

  in = {};
  in.valid = abi::FATTR_MODE;
  in.mode = S_IFREG | 06755;
  ASSERT_OK_AND_ASSIGN(a, d().Setattr(ino, in));
  EXPECT_EQ(a.attr.mode & 07777, 06755u);

  in = {};
  in.valid = abi::FATTR_KILL_SUIDGID;
  ASSERT_OK_AND_ASSIGN(a, d().Setattr(ino, in));
  EXPECT_EQ(a.attr.mode & 07777, 0755u);

  in = {};
  in.valid = abi::FATTR_ATIME | abi::FATTR_MTIME;
  in.atime = 100;
  in.mtime = 200;
  ASSERT_OK_AND_ASSIGN(a, d().Setattr(ino, in));
  EXPECT_EQ(a.attr.atime, 100u);
  EXPECT_EQ(a.attr.mtime, 200u);
  in.valid = abi::FATTR_MTIME | abi::FATTR_MTIME_NOW;
  ASSERT_OK_AND_ASSIGN(a, d().Setattr(ino, in));
  EXPECT_EQ(a.attr.atime, 100u);  // omitted
  EXPECT_GT(a.attr.mtime, 1600000000u);

  // Times on a symlink itself.
  ASSERT_OK_AND_ASSIGN(auto l, d().Symlink(kRoot, "l", "f"));
  in = {};
  in.valid = abi::FATTR_MTIME;
  in.mtime = 300;
  ASSERT_OK_AND_ASSIGN(a, d().Setattr(l.nodeid, in));
  EXPECT_EQ(HostStat(Src("l")).st_mtime, 300);
  EXPECT_NE(HostStat(Src("f")).st_mtime, 300);
}

TEST_F(PassthroughTest, WriteWithKillSuidgidClearsSuid) {
  ASSERT_OK_AND_ASSIGN(Created c, d().Create(kRoot, "s", O_RDWR | O_CREAT, 06755));
  ASSERT_EQ(HostStat(Src("s")).st_mode & 07777, 06755u);
  // Root keeps suid on plain writes (CAP_FSETID)...
  ASSERT_TRUE(d().Write(c.entry.nodeid, c.open.fh, 0, "x").ok());
  EXPECT_EQ(HostStat(Src("s")).st_mode & 07777, 06755u);
  // ...and the kernel's request clears it.
  ASSERT_TRUE(d().Write(c.entry.nodeid, c.open.fh, 1, "y", abi::FUSE_WRITE_KILL_SUIDGID).ok());
  EXPECT_EQ(HostStat(Src("s")).st_mode & 07777, 0755u);

  // sgid without group-exec is not a "set-group-ID executable": kept.
  ASSERT_EQ(chmod(Src("s").c_str(), 02744), 0);
  ASSERT_TRUE(d().Write(c.entry.nodeid, c.open.fh, 1, "z", abi::FUSE_WRITE_KILL_SUIDGID).ok());
  EXPECT_EQ(HostStat(Src("s")).st_mode & 07777, 02744u);
  EXPECT_EQ(d().Release(c.entry.nodeid, c.open.fh), 0);

  ASSERT_EQ(chmod(Src("s").c_str(), 04755), 0);
  ASSERT_OK_AND_ASSIGN(auto op,
                       d().Open(c.entry.nodeid, O_WRONLY | O_TRUNC, abi::FUSE_OPEN_KILL_SUIDGID));
  EXPECT_EQ(HostStat(Src("s")).st_mode & 07777, 0755u);
  EXPECT_EQ(HostStat(Src("s")).st_size, 0);
  EXPECT_EQ(d().Release(c.entry.nodeid, op.fh), 0);
}

// ---- entries ----

TEST_F(PassthroughTest, MknodFifoSocketDevice) {
  ASSERT_OK_AND_ASSIGN(auto fifo, d().Mknod(kRoot, "fifo", S_IFIFO | 0640));
  EXPECT_TRUE(S_ISFIFO(fifo.attr.mode));
  EXPECT_TRUE(S_ISFIFO(HostStat(Src("fifo")).st_mode));
  ASSERT_OK_AND_ASSIGN(auto sock, d().Mknod(kRoot, "sock", S_IFSOCK | 0600));
  EXPECT_TRUE(S_ISSOCK(sock.attr.mode));
  ASSERT_OK_AND_ASSIGN(auto dev, d().Mknod(kRoot, "null", S_IFCHR | 0666,
                                           static_cast<uint32_t>(makedev(1, 3))));
  EXPECT_TRUE(S_ISCHR(dev.attr.mode));
  EXPECT_EQ(HostStat(Src("null")).st_rdev, makedev(1, 3));
  EXPECT_EQ(ErrnoOf(d().Mknod(kRoot, "fifo", S_IFIFO | 0640).status()), EEXIST);
  // xattrs and access on a FIFO must not open (and block on) it.
  EXPECT_EQ(d().Access(fifo.nodeid, R_OK), 0);
  EXPECT_EQ(d().Setxattr(fifo.nodeid, "trusted.k", "v"), 0);
}

TEST_F(PassthroughTest, RenameFlags) {
  WriteHostFile(Src("a"), "A");
  WriteHostFile(Src("b"), "B");
  EXPECT_EQ(d().Rename(kRoot, "a", kRoot, "b", RENAME_EXCHANGE), 0);
  EXPECT_EQ(ReadHostFile(Src("a")), "B");
  EXPECT_EQ(ReadHostFile(Src("b")), "A");
  EXPECT_EQ(d().Rename(kRoot, "a", kRoot, "b", RENAME_NOREPLACE), EEXIST);
  EXPECT_EQ(d().Rename(kRoot, "a", kRoot, "c", RENAME_EXCHANGE), ENOENT);
  EXPECT_EQ(d().Rename(kRoot, "a", kRoot, "c", RENAME_NOREPLACE), 0);
  EXPECT_EQ(ReadHostFile(Src("c")), "B");
}

TEST_F(PassthroughTest, ErrnosForDirectoriesAndFiles) {
  ASSERT_OK_AND_ASSIGN(auto dir, d().Mkdir(kRoot, "d"));
  ASSERT_OK_AND_ASSIGN(uint64_t f, d().CreateFile(dir.nodeid, "f", "x"));
  EXPECT_EQ(d().Rmdir(kRoot, "d"), ENOTEMPTY);
  EXPECT_EQ(d().Unlink(kRoot, "d"), EISDIR);
  EXPECT_EQ(d().Rmdir(dir.nodeid, "f"), ENOTDIR);
  EXPECT_EQ(ErrnoOf(d().Lookup(f, "x").status()), ENOTDIR);
  EXPECT_EQ(ErrnoOf(d().Open(dir.nodeid, O_WRONLY).status()), EISDIR);
  EXPECT_EQ(ErrnoOf(d().Mkdir(kRoot, "d").status()), EEXIST);
  EXPECT_EQ(ErrnoOf(d().Link(dir.nodeid, kRoot, "dl").status()), EPERM);
  EXPECT_EQ(ErrnoOf(d().Lookup(kRoot, "missing").status()), ENOENT);
  EXPECT_EQ(ErrnoOf(d().Getattr(999999).status()), ENOENT);
  EXPECT_EQ(ErrnoOf(d().Lookup(kRoot, "a/b").status()), EINVAL);
  EXPECT_EQ(ErrnoOf(d().Lookup(kRoot, std::string(300, 'n')).status()), ENAMETOOLONG);
}

TEST_F(PassthroughTest, OpenFlagsAreHonoured) {
  WriteHostFile(Src("f"), "0123456789");
  ASSERT_OK_AND_ASSIGN(auto e, d().Lookup(kRoot, "f"));
  ASSERT_OK_AND_ASSIGN(auto app, d().Open(e.nodeid, O_WRONLY | O_APPEND));
  ASSERT_TRUE(d().Write(e.nodeid, app.fh, 0, "AB").ok());  // offset ignored: appends
  EXPECT_EQ(ReadHostFile(Src("f")), "0123456789AB");
  EXPECT_EQ(d().Flush(e.nodeid, app.fh), 0);
  EXPECT_EQ(d().Fsync(e.nodeid, app.fh, true), 0);
  EXPECT_EQ(d().Fsync(e.nodeid, app.fh, false), 0);
  EXPECT_EQ(d().Release(e.nodeid, app.fh), 0);
  EXPECT_EQ(d().Release(e.nodeid, app.fh), EBADF);

  ASSERT_OK_AND_ASSIGN(auto ro, d().Open(e.nodeid, O_RDONLY | O_NOFOLLOW));
  EXPECT_EQ(ErrnoOf(d().Write(e.nodeid, ro.fh, 0, "x").status()), EBADF);
  EXPECT_EQ(d().Release(e.nodeid, ro.fh), 0);

  ASSERT_OK_AND_ASSIGN(auto tr, d().Open(e.nodeid, O_RDWR | O_TRUNC));
  EXPECT_EQ(HostStat(Src("f")).st_size, 0);
  EXPECT_EQ(d().Release(e.nodeid, tr.fh), 0);

  EXPECT_EQ(ErrnoOf(d().Create(kRoot, "f", O_WRONLY | O_CREAT | O_EXCL).status()), EEXIST);
  ASSERT_OK_AND_ASSIGN(Created again, d().Create(kRoot, "f", O_WRONLY | O_CREAT));
  EXPECT_EQ(again.entry.nodeid, e.nodeid);
  EXPECT_EQ(d().Release(e.nodeid, again.open.fh), 0);
}

TEST_F(PassthroughTest, TmpfileIsAnonymous) {
  ASSERT_OK_AND_ASSIGN(Created t, d().Tmpfile(kRoot, O_RDWR, 0600));
  ASSERT_TRUE(d().Write(t.entry.nodeid, t.open.fh, 0, "temp").ok());
  ASSERT_OK_AND_ASSIGN(std::string s, d().Read(t.entry.nodeid, t.open.fh, 0, 10));
  EXPECT_EQ(s, "temp");
  ASSERT_OK_AND_ASSIGN(auto names, d().ReaddirNames(kRoot));
  EXPECT_TRUE(names.empty());
  // Linking it in makes it visible (what the kernel does for linkat).
  ASSERT_OK_AND_ASSIGN(auto l, d().Link(t.entry.nodeid, kRoot, "named"));
  EXPECT_EQ(l.nodeid, t.entry.nodeid);
  EXPECT_EQ(ReadHostFile(Src("named")), "temp");
  EXPECT_EQ(d().Release(t.entry.nodeid, t.open.fh), 0);
}

TEST_F(PassthroughTest, RunAsCallerOwnsNewFiles) {
  PassthroughOptions o;
  o.run_as_caller = true;
  Make(o);
  // The caller's own permissions apply: let everyone create in the root.
  ASSERT_EQ(chmod(src_.path().c_str(), 0777), 0);
  d().context().uid = 4321;
  d().context().gid = 8765;
  ASSERT_OK_AND_ASSIGN(auto dir, d().Mkdir(kRoot, "d", 0777));
  EXPECT_EQ(dir.attr.uid, 4321u);
  EXPECT_EQ(dir.attr.gid, 8765u);
  ASSERT_OK_AND_ASSIGN(Created c, d().Create(dir.nodeid, "f", O_WRONLY | O_CREAT, 0644));
  EXPECT_EQ(HostStat(Src("d/f")).st_uid, 4321u);
  EXPECT_EQ(d().Release(c.entry.nodeid, c.open.fh), 0);
  // The thread is root again afterwards.
  d().context().uid = 0;
  d().context().gid = 0;
  ASSERT_OK_AND_ASSIGN(auto mine, d().Mkdir(kRoot, "r", 0755));
  EXPECT_EQ(mine.attr.uid, 0u);
}

// ---- lookup counts ----

TEST_F(PassthroughTest, ForgetClosesInodeFdAtZero) {
  WriteHostFile(Src("f"), "x");
  EXPECT_EQ(fs_->open_inode_fds(), 1u);  // the root
  ASSERT_OK_AND_ASSIGN(auto e1, d().Lookup(kRoot, "f"));
  ASSERT_OK_AND_ASSIGN(auto e2, d().Lookup(kRoot, "f"));
  EXPECT_EQ(e1.nodeid, e2.nodeid);
  EXPECT_EQ(fs_->open_inode_fds(), 2u);
  EXPECT_EQ(fs_->inode_count(), 2u);
  d().Forget(e1.nodeid, 1);
  EXPECT_EQ(fs_->open_inode_fds(), 2u);
  d().Forget(e1.nodeid, 1);
  // The fd goes to the closer threads.
  ASSERT_TRUE(fs_->SettleCloses(absl::Seconds(10)));
  EXPECT_EQ(fs_->open_inode_fds(), 1u);
  EXPECT_EQ(fs_->inode_count(), 1u);
  EXPECT_EQ(ErrnoOf(d().Getattr(e1.nodeid).status()), ENOENT);
  // Forgetting unknown ids and the root is harmless.
  d().Forget(e1.nodeid, 5);
  d().Forget(kRoot, 5);
  EXPECT_TRUE(d().Getattr(kRoot).ok());

  // An open file pins its inode past the last forget.
  ASSERT_OK_AND_ASSIGN(auto e3, d().Lookup(kRoot, "f"));
  ASSERT_OK_AND_ASSIGN(auto op, d().Open(e3.nodeid, O_RDONLY));
  d().Forget(e3.nodeid, 1);
  ASSERT_TRUE(fs_->SettleCloses(absl::Seconds(10)));
  EXPECT_EQ(fs_->open_inode_fds(), 2u);
  ASSERT_OK_AND_ASSIGN(std::string s, d().Read(e3.nodeid, op.fh, 0, 10));
  EXPECT_EQ(s, "x");
  EXPECT_EQ(d().Release(e3.nodeid, op.fh), 0);
  ASSERT_TRUE(fs_->SettleCloses(absl::Seconds(10)));
  EXPECT_EQ(fs_->open_inode_fds(), 1u);
}

// ---- directories ----

TEST_F(PassthroughTest, ReaddirTenThousandEntriesStableOffsets) {
  ASSERT_EQ(mkdir(Src("big").c_str(), 0755), 0);
  constexpr int kN = 10000;
  for (int i = 0; i < kN; ++i) {
    char name[32];
    snprintf(name, sizeof(name), "big/file-%05d", i);
    int fd = open(Src(name).c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    close(fd);
  }
  ASSERT_OK_AND_ASSIGN(auto dir, d().Lookup(kRoot, "big"));
  ASSERT_OK_AND_ASSIGN(auto od, d().Opendir(dir.nodeid));
  std::vector<testing::Dirent> all;
  std::vector<uint64_t> request_offsets;
  uint64_t off = 0;
  int requests = 0;
  for (;;) {
    ASSERT_OK_AND_ASSIGN(auto part, d().ReaddirChunk(dir.nodeid, od.fh, off, 4096));
    if (part.empty()) break;
    ++requests;
    request_offsets.push_back(off);
    off = part.back().off;
    for (auto& e : part) all.push_back(std::move(e));
  }
  EXPECT_GT(requests, 50);
  std::set<std::string> names;
  for (const auto& e : all) {
    EXPECT_TRUE(names.insert(e.name).second) << "duplicate " << e.name;
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(kN + 2));
  EXPECT_TRUE(names.count(".") && names.count(".."));

  // Re-reading from an offset handed out earlier yields the same entries.
  const uint64_t mid = request_offsets[request_offsets.size() / 2];
  ASSERT_OK_AND_ASSIGN(auto again, d().ReaddirChunk(dir.nodeid, od.fh, mid, 4096));
  ASSERT_FALSE(again.empty());
  auto it = std::find_if(all.begin(), all.end(),
                         [&](const testing::Dirent& e) { return e.name == again[0].name; });
  ASSERT_NE(it, all.end());
  for (size_t i = 0; i < again.size() && it + i != all.end(); ++i) {
    EXPECT_EQ(again[i].name, it[i].name);
    EXPECT_EQ(again[i].off, it[i].off);
  }
  // And from a second handle, concurrently open.
  ASSERT_OK_AND_ASSIGN(auto od2, d().Opendir(dir.nodeid));
  ASSERT_OK_AND_ASSIGN(auto other, d().ReaddirChunk(dir.nodeid, od2.fh, mid, 4096));
  ASSERT_FALSE(other.empty());
  EXPECT_EQ(other[0].name, again[0].name);
  EXPECT_EQ(d().Fsyncdir(dir.nodeid, od.fh), 0);
  EXPECT_EQ(d().Releasedir(dir.nodeid, od.fh), 0);
  EXPECT_EQ(d().Releasedir(dir.nodeid, od2.fh), 0);
}

TEST_F(PassthroughTest, ReaddirplusTakesLookupsOnlyForWhatFits) {
  for (int i = 0; i < 40; ++i) WriteHostFile(Src("f" + std::to_string(i)), "x");
  ASSERT_OK_AND_ASSIGN(auto od, d().Opendir(kRoot));
  // Room for about three direntplus records per request.
  ASSERT_OK_AND_ASSIGN(auto part, d().ReaddirChunk(kRoot, od.fh, 0, 500, true));
  ASSERT_FALSE(part.empty());
  size_t with_ids = 0;
  for (const auto& e : part) {
    if (e.name == "." || e.name == "..") {
      EXPECT_EQ(e.entry->nodeid, 0u);
    } else {
      ++with_ids;
      EXPECT_NE(e.entry->nodeid, 0u);
    }
  }
  EXPECT_EQ(fs_->inode_count(), 1 + with_ids);
  EXPECT_EQ(d().Releasedir(kRoot, od.fh), 0);
  for (const auto& e : part) {
    if (e.entry->nodeid != 0) d().Forget(e.entry->nodeid, 1);
  }
  EXPECT_EQ(fs_->inode_count(), 1u);

  ASSERT_OK_AND_ASSIGN(auto all, d().ReaddirAll(kRoot, true, 700));
  EXPECT_EQ(all.size(), 42u);
  EXPECT_EQ(fs_->inode_count(), 41u);
}

// ---- xattrs, access, statfs ----

TEST_F(PassthroughTest, Xattrs) {
  ASSERT_OK_AND_ASSIGN(uint64_t ino, d().CreateFile(kRoot, "f", "x"));
  if (setxattr(Src("f").c_str(), "user.probe", "1", 1, 0) != 0 && errno == ENOTSUP) {
    GTEST_SKIP() << "source filesystem has no user xattrs";
  }
  EXPECT_EQ(d().Setxattr(ino, "user.color", "blue"), 0);
  ASSERT_OK_AND_ASSIGN(uint32_t size, d().GetxattrSize(ino, "user.color"));
  EXPECT_EQ(size, 4u);
  ASSERT_OK_AND_ASSIGN(std::string v, d().Getxattr(ino, "user.color", 100));
  EXPECT_EQ(v, "blue");
  EXPECT_EQ(ErrnoOf(d().Getxattr(ino, "user.color", 2).status()), ERANGE);
  EXPECT_EQ(ErrnoOf(d().Getxattr(ino, "user.none", 100).status()), ENODATA);
  EXPECT_EQ(d().Setxattr(ino, "user.color", "red", XATTR_CREATE), EEXIST);
  ASSERT_OK_AND_ASSIGN(uint32_t lsize, d().ListxattrSize(ino));
  ASSERT_OK_AND_ASSIGN(std::string list, d().Listxattr(ino, lsize));
  EXPECT_THAT(list, HasSubstr(std::string("user.color\0", 11)));
  EXPECT_EQ(ErrnoOf(d().Listxattr(ino, 3).status()), ERANGE);
  EXPECT_EQ(d().Removexattr(ino, "user.color"), 0);
  EXPECT_EQ(d().Removexattr(ino, "user.color"), ENODATA);
  // On directories too.
  EXPECT_EQ(d().Setxattr(kRoot, "user.dir", "d"), 0);
  ASSERT_OK_AND_ASSIGN(std::string dv, d().Getxattr(kRoot, "user.dir", 10));
  EXPECT_EQ(dv, "d");
}

TEST_F(PassthroughTest, AccessStatfsSyncfs) {
  ASSERT_OK_AND_ASSIGN(uint64_t ino, d().CreateFile(kRoot, "f", "x", 0644));
  EXPECT_EQ(d().Access(ino, R_OK | W_OK), 0);
  EXPECT_EQ(d().Access(ino, X_OK), EACCES);  // root needs some x bit
  ASSERT_OK_AND_ASSIGN(auto st, d().Statfs(kRoot));
  EXPECT_GT(st.blocks, 0u);
  EXPECT_GT(st.namelen, 0u);
  EXPECT_EQ(d().Syncfs(kRoot), 0);
}

// ---- locks, fallocate, lseek, copy ----

TEST_F(PassthroughTest, PosixAndFlockLocks) {
  ASSERT_OK_AND_ASSIGN(uint64_t ino, d().CreateFile(kRoot, "f", "0123456789"));
  ASSERT_OK_AND_ASSIGN(auto h1, d().Open(ino, O_RDWR));
  ASSERT_OK_AND_ASSIGN(auto h2, d().Open(ino, O_RDWR));
  abi::fuse_file_lock lk{};
  lk.type = F_WRLCK;
  lk.start = 2;
  lk.end = 5;
  EXPECT_EQ(d().Setlk(ino, h1.fh, lk), 0);
  // POSIX locks belong to the lock owner: the same owner through another
  // handle shares them, another owner conflicts.
  EXPECT_EQ(d().Setlk(ino, h2.fh, lk, false, false, /*owner=*/1), 0);
  ASSERT_OK_AND_ASSIGN(auto got, d().Getlk(ino, h2.fh, lk, /*owner=*/2));
  EXPECT_EQ(got.type, static_cast<uint32_t>(F_WRLCK));
  EXPECT_EQ(got.start, 2u);
  EXPECT_EQ(got.end, 5u);
  EXPECT_EQ(d().Setlk(ino, h2.fh, lk, false, false, 2), EAGAIN);
  abi::fuse_file_lock other = lk;
  other.start = 6;
  other.end = INT64_MAX;
  EXPECT_EQ(d().Setlk(ino, h2.fh, other, false, false, 2), 0);  // no overlap
  lk.type = F_UNLCK;
  EXPECT_EQ(d().Setlk(ino, h1.fh, lk), 0);
  lk.type = F_WRLCK;
  ASSERT_OK_AND_ASSIGN(got, d().Getlk(ino, h1.fh, other, 3));
  EXPECT_EQ(got.type, static_cast<uint32_t>(F_WRLCK));  // owner 2 still holds 6..
  EXPECT_EQ(got.start, 6u);
  lk.type = F_UNLCK;
  EXPECT_EQ(d().Setlk(ino, h2.fh, lk, false, false, 2), 0);
  lk.type = F_WRLCK;
  ASSERT_OK_AND_ASSIGN(got, d().Getlk(ino, h1.fh, lk, 3));
  EXPECT_EQ(got.type, static_cast<uint32_t>(F_UNLCK));

  abi::fuse_file_lock fl{};
  fl.type = F_WRLCK;
  EXPECT_EQ(d().Setlk(ino, h1.fh, fl, false, true), 0);
  EXPECT_EQ(d().Setlk(ino, h2.fh, fl, false, true), EWOULDBLOCK);
  EXPECT_EQ(d().Release(ino, h1.fh, abi::FUSE_RELEASE_FLOCK_UNLOCK), 0);
  EXPECT_EQ(d().Setlk(ino, h2.fh, fl, false, true), 0);
  EXPECT_EQ(d().Release(ino, h2.fh), 0);
}

TEST_F(PassthroughTest, FallocateLseekCopyFileRange) {
  ASSERT_OK_AND_ASSIGN(Created c, d().Create(kRoot, "f", O_RDWR | O_CREAT, 0644));
  const uint64_t ino = c.entry.nodeid;
  EXPECT_EQ(d().Fallocate(ino, c.open.fh, 0, 1 << 20, FALLOC_FL_KEEP_SIZE), 0);
  EXPECT_EQ(HostStat(Src("f")).st_size, 0);
  EXPECT_EQ(d().Fallocate(ino, c.open.fh, 0, 8192), 0);
  EXPECT_EQ(HostStat(Src("f")).st_size, 8192);
  // Data at 1 MiB after a hole.
  ASSERT_TRUE(d().Write(ino, c.open.fh, 1 << 20, std::string(4096, 'd')).ok());
  ASSERT_OK_AND_ASSIGN(uint64_t data, d().Lseek(ino, c.open.fh, 64 * 1024, SEEK_DATA));
  EXPECT_EQ(data, 1u << 20);
  ASSERT_OK_AND_ASSIGN(uint64_t hole, d().Lseek(ino, c.open.fh, 0, SEEK_HOLE));
  EXPECT_LT(hole, 1u << 20);
  EXPECT_EQ(ErrnoOf(d().Lseek(ino, c.open.fh, 2 << 20, SEEK_DATA).status()), ENXIO);

  ASSERT_OK_AND_ASSIGN(Created out, d().Create(kRoot, "g", O_RDWR | O_CREAT, 0644));
  ASSERT_OK_AND_ASSIGN(uint32_t n, d().CopyFileRange(ino, c.open.fh, 1 << 20, out.entry.nodeid,
                                                     out.open.fh, 10, 4096));
  EXPECT_EQ(n, 4096u);
  EXPECT_EQ(ReadHostFile(Src("g")), std::string(10, '\0') + std::string(4096, 'd'));
  EXPECT_EQ(d().Release(ino, c.open.fh), 0);
  EXPECT_EQ(d().Release(out.entry.nodeid, out.open.fh), 0);
}

// ---- O_DIRECT ----

TEST_F(PassthroughTest, DirectIoAlignmentFallback) {
  int probe = open(Src("probe").c_str(), O_CREAT | O_RDWR | O_DIRECT, 0644);
  if (probe < 0) GTEST_SKIP() << "no O_DIRECT on the test's temp filesystem";
  close(probe);
  WriteHostFile(Src("f"), std::string(10000, 'a'));
  ASSERT_OK_AND_ASSIGN(auto e, d().Lookup(kRoot, "f"));
  ASSERT_OK_AND_ASSIGN(auto h, d().Open(e.nodeid, O_RDWR | O_DIRECT));
  // Unaligned offset and length in the middle, then past the end.
  ASSERT_OK_AND_ASSIGN(uint32_t n, d().Write(e.nodeid, h.fh, 4000, "HELLO"));
  EXPECT_EQ(n, 5u);
  ASSERT_OK_AND_ASSIGN(n, d().Write(e.nodeid, h.fh, 9998, "TAIL!"));
  EXPECT_EQ(n, 5u);
  // Aligned offset and length (the driver's buffer is not aligned).
  ASSERT_OK_AND_ASSIGN(n, d().Write(e.nodeid, h.fh, 12288, std::string(4096, 'z')));
  EXPECT_EQ(n, 4096u);
  ASSERT_OK_AND_ASSIGN(std::string mid, d().Read(e.nodeid, h.fh, 3998, 9));
  EXPECT_EQ(mid, "aaHELLOaa");
  ASSERT_OK_AND_ASSIGN(std::string tail, d().Read(e.nodeid, h.fh, 9995, 8));
  EXPECT_EQ(tail, "aaaTAIL!");
  EXPECT_EQ(d().Release(e.nodeid, h.fh), 0);
  std::string host = ReadHostFile(Src("f"));
  ASSERT_EQ(host.size(), 16384u);
  EXPECT_EQ(host.substr(3998, 9), "aaHELLOaa");
  EXPECT_EQ(host.substr(10003, 2285), std::string(2285, '\0'));
  EXPECT_EQ(host.substr(12288), std::string(4096, 'z'));

  // Write that ends before EOF leaves the size; one that extends it by a
  // partial block trims the padding.
  ASSERT_OK_AND_ASSIGN(auto h2, d().Open(e.nodeid, O_RDWR | O_DIRECT | O_TRUNC));
  ASSERT_OK_AND_ASSIGN(n, d().Write(e.nodeid, h2.fh, 1, "xyz"));
  EXPECT_EQ(HostStat(Src("f")).st_size, 4);
  EXPECT_EQ(d().Release(e.nodeid, h2.fh), 0);
}

// ---- readonly ----

TEST_F(PassthroughTest, ReadonlyRefusesEveryChange) {
  WriteHostFile(Src("f"), "content");
  ASSERT_EQ(mkdir(Src("d").c_str(), 0755), 0);
  PassthroughOptions o;
  o.readonly = true;
  Make(o);
  ASSERT_OK_AND_ASSIGN(auto f, d().Lookup(kRoot, "f"));
  ASSERT_OK_AND_ASSIGN(auto dir, d().Lookup(kRoot, "d"));
  EXPECT_EQ(ErrnoOf(d().Create(kRoot, "n", O_WRONLY | O_CREAT).status()), EROFS);
  EXPECT_EQ(ErrnoOf(d().Tmpfile(kRoot, O_RDWR).status()), EROFS);
  EXPECT_EQ(ErrnoOf(d().Mkdir(kRoot, "n").status()), EROFS);
  EXPECT_EQ(ErrnoOf(d().Mknod(kRoot, "n", S_IFIFO | 0600).status()), EROFS);
  EXPECT_EQ(ErrnoOf(d().Symlink(kRoot, "n", "f").status()), EROFS);
  EXPECT_EQ(ErrnoOf(d().Link(f.nodeid, kRoot, "n").status()), EROFS);
  EXPECT_EQ(d().Unlink(kRoot, "f"), EROFS);
  EXPECT_EQ(d().Rmdir(kRoot, "d"), EROFS);
  EXPECT_EQ(d().Rename(kRoot, "f", dir.nodeid, "f"), EROFS);
  EXPECT_EQ(ErrnoOf(d().Truncate(f.nodeid, 0).status()), EROFS);
  EXPECT_EQ(ErrnoOf(d().Open(f.nodeid, O_WRONLY).status()), EROFS);
  EXPECT_EQ(ErrnoOf(d().Open(f.nodeid, O_RDONLY | O_TRUNC).status()), EROFS);
  EXPECT_EQ(d().Setxattr(f.nodeid, "user.x", "1"), EROFS);
  EXPECT_EQ(d().Removexattr(f.nodeid, "user.x"), EROFS);
  EXPECT_EQ(d().Access(f.nodeid, W_OK), EROFS);
  ASSERT_OK_AND_ASSIGN(auto h, d().Open(f.nodeid, O_RDONLY));
  EXPECT_EQ(ErrnoOf(d().Write(f.nodeid, h.fh, 0, "x").status()), EROFS);
  EXPECT_EQ(d().Fallocate(f.nodeid, h.fh, 0, 10), EROFS);
  EXPECT_EQ(ErrnoOf(d().CopyFileRange(f.nodeid, h.fh, 0, f.nodeid, h.fh, 10, 1).status()), EROFS);
  ASSERT_OK_AND_ASSIGN(std::string s, d().Read(f.nodeid, h.fh, 0, 100));
  EXPECT_EQ(s, "content");
  EXPECT_EQ(d().Release(f.nodeid, h.fh), 0);
  EXPECT_EQ(ReadHostFile(Src("f")), "content");
}

// ---- staying inside the source ----

TEST_F(PassthroughTest, PlantedSymlinksAreNeverFollowed) {
  TempDir outside;
  WriteHostFile(outside.Join("secret"), "secret");
  ASSERT_EQ(symlink(outside.path().c_str(), Src("out").c_str()), 0);
  ASSERT_EQ(symlink(outside.Join("secret").c_str(), Src("secretlink").c_str()), 0);
  ASSERT_EQ(symlink(outside.Join("new").c_str(), Src("dangling").c_str()), 0);
  ASSERT_EQ(symlink("..", Src("up").c_str()), 0);

  ASSERT_OK_AND_ASSIGN(auto out, d().Lookup(kRoot, "out"));
  EXPECT_TRUE(S_ISLNK(out.attr.mode));
  EXPECT_EQ(ErrnoOf(d().Lookup(out.nodeid, "secret").status()), ENOTDIR);
  EXPECT_EQ(ErrnoOf(d().Opendir(out.nodeid).status()), ENOTDIR);
  EXPECT_EQ(ErrnoOf(d().Mkdir(out.nodeid, "x").status()), ENOTDIR);
  ASSERT_OK_AND_ASSIGN(auto up, d().Lookup(kRoot, "up"));
  EXPECT_EQ(ErrnoOf(d().Lookup(up.nodeid, "f").status()), ENOTDIR);

  ASSERT_OK_AND_ASSIGN(auto sl, d().Lookup(kRoot, "secretlink"));
  EXPECT_NE(ErrnoOf(d().Open(sl.nodeid, O_RDONLY).status()), 0);
  ASSERT_OK_AND_ASSIGN(std::string target, d().Readlink(sl.nodeid));
  EXPECT_EQ(target, outside.Join("secret"));  // only the text is shown
  abi::fuse_setattr_in in{};
  in.valid = abi::FATTR_MODE;
  in.mode = 0777;
  d().Setattr(sl.nodeid, in).IgnoreError();
  in.valid = abi::FATTR_UID;
  in.uid = 999;
  ASSERT_TRUE(d().Setattr(sl.nodeid, in).ok());
  EXPECT_EQ(HostStat(outside.Join("secret")).st_uid, 0u);
  EXPECT_EQ(HostStat(outside.Join("secret")).st_mode & 0777, 0644u);
  EXPECT_EQ(d().Setxattr(sl.nodeid, "user.x", "1") == 0 ? 0 : 1, 1);  // EPERM on links

  // Creating through a dangling link must not create the target outside.
  int err = ErrnoOf(d().Create(kRoot, "dangling", O_WRONLY | O_CREAT).status());
  EXPECT_TRUE(err == ELOOP || err == EEXIST) << err;
  EXPECT_NE(access(outside.Join("new").c_str(), F_OK), 0);
  err = ErrnoOf(d().Create(kRoot, "secretlink", O_WRONLY | O_CREAT | O_TRUNC).status());
  EXPECT_NE(err, 0);
  EXPECT_EQ(ReadHostFile(outside.Join("secret")), "secret");
  ASSERT_OK_AND_ASSIGN(auto dl, d().Lookup(kRoot, "dangling"));
  EXPECT_NE(d().Truncate(dl.nodeid, 0).ok(), true);
  EXPECT_NE(access(outside.Join("new").c_str(), F_OK), 0);
}

TEST_F(PassthroughTest, DotDotAtRootStaysInside) {
  ASSERT_OK_AND_ASSIGN(auto up, d().Lookup(kRoot, ".."));
  EXPECT_EQ(up.nodeid, kRoot);
  EXPECT_EQ(up.attr.ino, HostStat(src_.path()).st_ino);
  ASSERT_OK_AND_ASSIGN(auto dot, d().Lookup(kRoot, "."));
  EXPECT_EQ(dot.nodeid, kRoot);
  ASSERT_OK_AND_ASSIGN(auto sub, d().Mkdir(kRoot, "sub"));
  ASSERT_OK_AND_ASSIGN(auto subup, d().Lookup(sub.nodeid, ".."));
  EXPECT_EQ(subup.nodeid, kRoot);
  ASSERT_OK_AND_ASSIGN(auto upup, d().Lookup(subup.nodeid, ".."));
  EXPECT_EQ(upup.nodeid, kRoot);
  EXPECT_EQ(d().Rmdir(kRoot, ".."), ENOTEMPTY);
  EXPECT_EQ(d().Unlink(kRoot, ".."), EISDIR);
  EXPECT_EQ(d().Rename(kRoot, "..", kRoot, "x"), EBUSY);
}

TEST_F(PassthroughTest, RenamedDirectoryKeepsItsInode) {
  ASSERT_EQ(mkdir(Src("a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(Src("a/b").c_str(), 0755), 0);
  ASSERT_OK_AND_ASSIGN(auto a, d().Lookup(kRoot, "a"));
  ASSERT_OK_AND_ASSIGN(auto b, d().Lookup(a.nodeid, "b"));
  // Renamed through the filesystem and behind its back.
  EXPECT_EQ(d().Rename(kRoot, "a", kRoot, "c"), 0);
  ASSERT_EQ(rename(Src("c/b").c_str(), Src("moved").c_str()), 0);
  ASSERT_TRUE(d().CreateFile(b.nodeid, "f", "here").ok());
  EXPECT_EQ(ReadHostFile(Src("moved/f")), "here");
  ASSERT_OK_AND_ASSIGN(auto parent, d().Lookup(b.nodeid, ".."));
  EXPECT_EQ(parent.nodeid, kRoot);
  ASSERT_OK_AND_ASSIGN(auto names, d().ReaddirNames(b.nodeid));
  EXPECT_EQ(names, std::vector<std::string>{"f"});
}

// ---- fd budget ----

void MakeFlatTree(const std::string& dir, int n) {
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  for (int i = 0; i < n; ++i) {
    std::string p = dir + "/f" + std::to_string(i);
    int fd = open(p.c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    std::string content = std::to_string(i);
    ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    close(fd);
  }
}

TEST_F(PassthroughTest, FdBudgetEvictsAndReopensByHandle) {
  constexpr int kFiles = 5000;
  MakeFlatTree(Src("t"), kFiles);
  PassthroughOptions o;
  o.fd_budget = 256;
  Make(o);
  ASSERT_EQ(fs_->fd_budget(), 256u);
  ASSERT_OK_AND_ASSIGN(auto t, d().Lookup(kRoot, "t"));
  std::vector<uint64_t> ids;
  for (int i = 0; i < kFiles; ++i) {
    ASSERT_OK_AND_ASSIGN(auto e, d().Lookup(t.nodeid, "f" + std::to_string(i)));
    ids.push_back(e.nodeid);
    ASSERT_OK_AND_ASSIGN(std::string s, d().ReadFile(e.nodeid));
    ASSERT_EQ(s, std::to_string(i));
    ASSERT_LE(fs_->open_inode_fds(), 256u);
  }
  EXPECT_EQ(fs_->inode_count(), static_cast<size_t>(kFiles + 2));
  // The first ones were evicted long ago: reopened by handle.
  for (int i = 0; i < 50; ++i) {
    ASSERT_OK_AND_ASSIGN(auto a, d().Getattr(ids[i]));
    EXPECT_EQ(a.attr.size, std::to_string(i).size());
  }
  ASSERT_LE(fs_->open_inode_fds(), 256u);
  // A lookup of an evicted inode finds the same node id.
  ASSERT_OK_AND_ASSIGN(auto again, d().Lookup(t.nodeid, "f100"));
  EXPECT_EQ(again.nodeid, ids[100]);
  // Deleted while evicted: ESTALE, never another file.
  ASSERT_EQ(unlink(Src("t/f200").c_str()), 0);
  EXPECT_EQ(ErrnoOf(d().Getattr(ids[200]).status()), ESTALE);
  // Everything forgotten: only the root remains open.
  for (uint64_t id : ids) d().Forget(id, 1);
  d().Forget(ids[100], 1);
  d().Forget(t.nodeid, 1);
  EXPECT_EQ(fs_->inode_count(), 1u);
  ASSERT_TRUE(fs_->SettleCloses(absl::Seconds(10)));
  EXPECT_EQ(fs_->open_inode_fds(), 1u);
}

TEST_F(PassthroughTest, FdBudgetGoesOverForOpenFilesNeverEmfile) {
  MakeFlatTree(Src("t"), 20);
  PassthroughOptions o;
  o.fd_budget = 8;
  Make(o);
  ASSERT_OK_AND_ASSIGN(auto t, d().Lookup(kRoot, "t"));
  // Open handles pin their inodes: past the budget a lookup still succeeds
  // (the table goes over it) instead of handing the caller EMFILE.
  std::vector<std::pair<uint64_t, uint64_t>> open;
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK_AND_ASSIGN(auto e, d().Lookup(t.nodeid, "f" + std::to_string(i)));
    ASSERT_OK_AND_ASSIGN(auto h, d().Open(e.nodeid, O_RDONLY));
    open.emplace_back(e.nodeid, h.fh);
  }
  // root, t and the 20 open files.
  EXPECT_EQ(fs_->open_inode_fds(), 22u);
  for (auto& [ino, fh] : open) EXPECT_EQ(d().Release(ino, fh), 0);
  // Unpinned again: the next new fd brings the table back under the budget.
  MakeFlatTree(Src("u"), 1);
  ASSERT_OK_AND_ASSIGN(auto u, d().Lookup(kRoot, "u"));
  EXPECT_LE(fs_->open_inode_fds(), 8u);
  ASSERT_OK_AND_ASSIGN(auto e, d().Lookup(t.nodeid, "f19"));
  ASSERT_OK_AND_ASSIGN(std::string s, d().ReadFile(e.nodeid));
  EXPECT_EQ(s, "19");
  (void)u;
}

// Forgetting an inode whose source was removed frees the source inode in
// close(), which runs on the closer threads; Statfs waits for those closes,
// so it counts the inodes as freed (as a native rmdir would have).
TEST_F(PassthroughTest, StatfsCountsForgottenRemovedInodesAsFree) {
  Make(PassthroughOptions{});
  constexpr int kDirs = 300;
  std::vector<uint64_t> ids;
  for (int i = 0; i < kDirs; ++i) {
    ASSERT_OK_AND_ASSIGN(auto e, d().Mkdir(kRoot, "d" + std::to_string(i), 0755));
    ids.push_back(e.nodeid);
  }
  ASSERT_OK_AND_ASSIGN(auto before, d().Statfs(kRoot));
  for (int i = 0; i < kDirs; ++i) ASSERT_EQ(d().Rmdir(kRoot, "d" + std::to_string(i)), 0);
  // Still held by our fds: the source has not freed them yet.
  EXPECT_EQ(fs_->open_inode_fds(), static_cast<size_t>(kDirs + 1));
  for (uint64_t id : ids) d().Forget(id, 1);
  EXPECT_EQ(fs_->inode_count(), 1u);
  ASSERT_OK_AND_ASSIGN(auto after, d().Statfs(kRoot));
  EXPECT_EQ(fs_->closing_inode_fds(), 0u);
  EXPECT_EQ(fs_->open_inode_fds(), 1u);
  // Other processes share the source's filesystem: allow for their noise.
  EXPECT_GE(after.ffree + 50, before.ffree + kDirs)
      << "free inodes before " << before.ffree << ", after " << after.ffree;
}

}  // namespace
}  // namespace kmfuse
