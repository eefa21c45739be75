#include "kmfuse/memfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kmfuse/testing/fs_testing.h"

namespace kmfuse {
namespace {

using ::kmfuse::testing::Dirent;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAreArray;

constexpr uint64_t kRoot = abi::FUSE_ROOT_ID;

// One request's answer, recorded by the shared CaptureSink over a buffer the
// size of a kernel request buffer (64 KiB of payload plus room for the op
// headers).
class TestSink {
 public:
  static constexpr size_t kCapacity = 64 * 1024 + 4096;

  // A Reply for the next request (the previous answer is forgotten).
  Reply NewReply(uint32_t opcode) {
    sink_.Reset();
    return Reply(&sink_, ++unique_, opcode);
  }

  // The positive errno of the answer (0 for success); -1 if never answered.
  int err() const {
    EXPECT_LE(sink_.answers(), 1) << "answered twice";
    return sink_.answered() && !sink_.dropped() ? sink_.error() : -1;
  }
  bool dropped() const { return sink_.dropped(); }
  std::string bytes() const { return sink_.args(); }
  template <typename T>
  T As() const {
    const std::string b = bytes();
    T v{};
    EXPECT_EQ(b.size(), sizeof(T));
    std::memcpy(&v, b.data(), std::min(b.size(), sizeof(T)));
    return v;
  }

 private:
  testing::CaptureSink sink_{kCapacity};
  uint64_t unique_ = 0;
};

timespec Now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

class MemFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    missing_before_ = Reply::MissingReplies();
    fs_ = MemFs::Create(options_);
    ctx_.uid = 1000;
    ctx_.gid = 100;
  }
  void TearDown() override { EXPECT_EQ(Reply::MissingReplies(), missing_before_); }

  void Recreate(const MemFsOptions& o) {
    options_ = o;
    fs_ = MemFs::Create(options_);
  }

  // Each helper uses its own sink, so helpers may run on several threads.
  int Lookup(uint64_t parent, std::string_view name, abi::fuse_entry_out* e = nullptr) {
    TestSink s;
    fs_->Lookup(ctx_, parent, name, s.NewReply(abi::FUSE_LOOKUP));
    if (s.err() == 0 && e != nullptr) *e = s.As<abi::fuse_entry_out>();
    return s.err();
  }
  int Getattr(uint64_t ino, abi::fuse_attr* a = nullptr) {
    TestSink s;
    fs_->Getattr(ctx_, ino, std::nullopt, s.NewReply(abi::FUSE_GETATTR));
    if (s.err() == 0 && a != nullptr) *a = s.As<abi::fuse_attr_out>().attr;
    return s.err();
  }
  int Setattr(uint64_t ino, const abi::fuse_setattr_in& in, abi::fuse_attr* a = nullptr) {
    TestSink s;
    fs_->Setattr(ctx_, ino, in, s.NewReply(abi::FUSE_SETATTR));
    if (s.err() == 0 && a != nullptr) *a = s.As<abi::fuse_attr_out>().attr;
    return s.err();
  }
  int Truncate(uint64_t ino, uint64_t size) {
    abi::fuse_setattr_in in{};
    in.valid = abi::FATTR_SIZE;
    in.size = size;
    return Setattr(ino, in);
  }
  int Mknod(uint64_t parent, std::string_view name, uint32_t mode, uint64_t* ino = nullptr,
            uint32_t rdev = 0) {
    TestSink s;
    abi::fuse_mknod_in in{};
    in.mode = mode;
    in.rdev = rdev;
    fs_->Mknod(ctx_, parent, name, in, s.NewReply(abi::FUSE_MKNOD));
    if (s.err() == 0 && ino != nullptr) *ino = s.As<abi::fuse_entry_out>().nodeid;
    return s.err();
  }
  uint64_t File(uint64_t parent, std::string_view name) {
    uint64_t ino = 0;
    EXPECT_EQ(Mknod(parent, name, S_IFREG | 0644, &ino), 0) << name;
    return ino;
  }
  int Mkdir(uint64_t parent, std::string_view name, uint64_t* ino = nullptr,
            uint32_t mode = 0755, uint32_t umask = 0) {
    TestSink s;
    abi::fuse_mkdir_in in{};
    in.mode = mode;
    in.umask = umask;
    fs_->Mkdir(ctx_, parent, name, in, s.NewReply(abi::FUSE_MKDIR));
    if (s.err() == 0 && ino != nullptr) *ino = s.As<abi::fuse_entry_out>().nodeid;
    return s.err();
  }
  uint64_t Dir(uint64_t parent, std::string_view name) {
    uint64_t ino = 0;
    EXPECT_EQ(Mkdir(parent, name, &ino), 0) << name;
    return ino;
  }
  int Symlink(uint64_t parent, std::string_view name, std::string_view target,
              uint64_t* ino = nullptr) {
    TestSink s;
    fs_->Symlink(ctx_, parent, name, target, s.NewReply(abi::FUSE_SYMLINK));
    if (s.err() == 0 && ino != nullptr) *ino = s.As<abi::fuse_entry_out>().nodeid;
    return s.err();
  }
  int Readlink(uint64_t ino, std::string* target) {
    TestSink s;
    fs_->Readlink(ctx_, ino, s.NewReply(abi::FUSE_READLINK));
    if (s.err() == 0) *target = s.bytes();
    return s.err();
  }
  int Unlink(uint64_t parent, std::string_view name) {
    TestSink s;
    fs_->Unlink(ctx_, parent, name, s.NewReply(abi::FUSE_UNLINK));
    return s.err();
  }
  int Rmdir(uint64_t parent, std::string_view name) {
    TestSink s;
    fs_->Rmdir(ctx_, parent, name, s.NewReply(abi::FUSE_RMDIR));
    return s.err();
  }
  int Rename(uint64_t parent, std::string_view name, uint64_t newparent,
             std::string_view newname, uint32_t flags = 0) {
    TestSink s;
    fs_->Rename(ctx_, parent, name, newparent, newname, flags, s.NewReply(abi::FUSE_RENAME2));
    return s.err();
  }
  int Link(uint64_t ino, uint64_t newparent, std::string_view newname,
           abi::fuse_entry_out* e = nullptr) {
    TestSink s;
    fs_->Link(ctx_, ino, newparent, newname, s.NewReply(abi::FUSE_LINK));
    if (s.err() == 0 && e != nullptr) *e = s.As<abi::fuse_entry_out>();
    return s.err();
  }
  int Open(uint64_t ino, uint32_t flags, uint64_t* fh = nullptr) {
    TestSink s;
    abi::fuse_open_in in{};
    in.flags = flags;
    fs_->Open(ctx_, ino, in, s.NewReply(abi::FUSE_OPEN));
    if (s.err() == 0 && fh != nullptr) *fh = s.As<abi::fuse_open_out>().fh;
    return s.err();
  }
  int Opendir(uint64_t ino, uint64_t* fh = nullptr) {
    TestSink s;
    fs_->Opendir(ctx_, ino, abi::fuse_open_in{}, s.NewReply(abi::FUSE_OPENDIR));
    if (s.err() == 0 && fh != nullptr) *fh = s.As<abi::fuse_open_out>().fh;
    return s.err();
  }
  int Create(uint64_t parent, std::string_view name, uint32_t flags, uint32_t mode,
             abi::fuse_entry_out* e = nullptr, uint64_t* fh = nullptr) {
    TestSink s;
    abi::fuse_create_in in{};
    in.flags = flags;
    in.mode = mode;
    fs_->Create(ctx_, parent, name, in, s.NewReply(abi::FUSE_CREATE));
    if (s.err() == 0) {
      const std::string b = s.bytes();
      EXPECT_EQ(b.size(), sizeof(abi::fuse_entry_out) + sizeof(abi::fuse_open_out));
      abi::fuse_open_out o{};
      if (e != nullptr) std::memcpy(e, b.data(), std::min(b.size(), sizeof(*e)));
      if (b.size() >= sizeof(abi::fuse_entry_out) + sizeof(o)) {
        std::memcpy(&o, b.data() + sizeof(abi::fuse_entry_out), sizeof(o));
      }
      if (fh != nullptr) *fh = o.fh;
    }
    return s.err();
  }
  int Release(uint64_t ino, uint64_t fh = 0) {
    TestSink s;
    abi::fuse_release_in in{};
    in.fh = fh;
    fs_->Release(ctx_, ino, in, s.NewReply(abi::FUSE_RELEASE));
    return s.err();
  }
  int Releasedir(uint64_t ino, uint64_t fh = 0) {
    TestSink s;
    abi::fuse_release_in in{};
    in.fh = fh;
    fs_->Releasedir(ctx_, ino, in, s.NewReply(abi::FUSE_RELEASEDIR));
    return s.err();
  }
  // Write and Read open a handle of their own around the request (MemFs
  // checks it); an inode Open refuses gives Open's errno, which is the one
  // Write or Read would give (ENOENT, EISDIR, EINVAL).
  int Write(uint64_t ino, uint64_t off, std::string_view data, uint32_t write_flags = 0) {
    uint64_t fh = 0;
    if (int err = Open(ino, O_WRONLY, &fh); err != 0) return err;
    int err = WriteFh(ino, fh, off, data, write_flags);
    EXPECT_EQ(Release(ino, fh), 0);
    return err;
  }
  int WriteFh(uint64_t ino, uint64_t fh, uint64_t off, std::string_view data,
              uint32_t write_flags = 0) {
    TestSink s;
    abi::fuse_write_in in{};
    in.fh = fh;
    in.offset = off;
    in.size = static_cast<uint32_t>(data.size());
    in.write_flags = write_flags;
    fs_->Write(ctx_, ino, in, absl::MakeConstSpan(data.data(), data.size()),
               s.NewReply(abi::FUSE_WRITE));
    if (s.err() == 0) {
      EXPECT_EQ(s.As<abi::fuse_write_out>().size, data.size());
    }
    return s.err();
  }
  int Read(uint64_t ino, uint64_t off, uint32_t size, std::string* out) {
    uint64_t fh = 0;
    if (int err = Open(ino, O_RDONLY, &fh); err != 0) return err;
    int err = ReadFh(ino, fh, off, size, out);
    EXPECT_EQ(Release(ino, fh), 0);
    return err;
  }
  int ReadFh(uint64_t ino, uint64_t fh, uint64_t off, uint32_t size, std::string* out) {
    TestSink s;
    abi::fuse_read_in in{};
    in.fh = fh;
    in.offset = off;
    in.size = size;
    fs_->Read(ctx_, ino, in, s.NewReply(abi::FUSE_READ));
    if (s.err() == 0) *out = s.bytes();
    return s.err();
  }
  std::string ReadAll(uint64_t ino) {
    std::string all, part;
    while (Read(ino, all.size(), 64 * 1024, &part) == 0 && !part.empty()) all += part;
    return all;
  }
  int Readdir(uint64_t ino, uint64_t off, uint32_t size, bool plus, std::vector<Dirent>* out) {
    TestSink s;
    abi::fuse_read_in in{};
    in.offset = off;
    in.size = size;
    fs_->Readdir(ctx_, ino, in, plus,
                 s.NewReply(plus ? abi::FUSE_READDIRPLUS : abi::FUSE_READDIR));
    if (s.err() == 0) {
      const std::string b = s.bytes();
      EXPECT_LE(b.size(), size);
      absl::StatusOr<std::vector<Dirent>> d = testing::ParseDirents(b, plus);
      EXPECT_TRUE(d.ok()) << d.status();
      *out = d.ok() ? *d : std::vector<Dirent>{};
    }
    return s.err();
  }
  // Reads a whole directory in requests of `size` bytes.
  std::vector<Dirent> ReadDirAll(uint64_t ino, bool plus = false, uint32_t size = 4096) {
    std::vector<Dirent> all, page;
    uint64_t off = 0;
    while (Readdir(ino, off, size, plus, &page) == 0 && !page.empty()) {
      off = page.back().off;
      all.insert(all.end(), page.begin(), page.end());
    }
    return all;
  }
  std::vector<std::string> Names(uint64_t dir) {
    std::vector<std::string> names;
    for (const Dirent& d : ReadDirAll(dir)) names.push_back(d.name);
    return names;
  }
  int Statfs(abi::fuse_kstatfs* st) {
    TestSink s;
    fs_->Statfs(ctx_, kRoot, s.NewReply(abi::FUSE_STATFS));
    if (s.err() == 0) *st = s.As<abi::fuse_statfs_out>().st;
    return s.err();
  }
  int Setxattr(uint64_t ino, std::string_view name, std::string_view value, uint32_t flags = 0) {
    TestSink s;
    fs_->Setxattr(ctx_, ino, name, absl::MakeConstSpan(value.data(), value.size()), flags,
                  s.NewReply(abi::FUSE_SETXATTR));
    return s.err();
  }
  // size 0: *out gets the decimal size from the probe.
  int Getxattr(uint64_t ino, std::string_view name, uint32_t size, std::string* out) {
    TestSink s;
    fs_->Getxattr(ctx_, ino, name, size, s.NewReply(abi::FUSE_GETXATTR));
    if (s.err() == 0) {
      *out = size == 0 ? std::to_string(s.As<abi::fuse_getxattr_out>().size) : s.bytes();
    }
    return s.err();
  }
  int Listxattr(uint64_t ino, uint32_t size, std::string* out) {
    TestSink s;
    fs_->Listxattr(ctx_, ino, size, s.NewReply(abi::FUSE_LISTXATTR));
    if (s.err() == 0) {
      *out = size == 0 ? std::to_string(s.As<abi::fuse_getxattr_out>().size) : s.bytes();
    }
    return s.err();
  }
  int Removexattr(uint64_t ino, std::string_view name) {
    TestSink s;
    fs_->Removexattr(ctx_, ino, name, s.NewReply(abi::FUSE_REMOVEXATTR));
    return s.err();
  }
  int Access(uint64_t ino, uint32_t mask, uint32_t uid, uint32_t gid) {
    TestSink s;
    RequestContext c = ctx_;
    c.uid = uid;
    c.gid = gid;
    fs_->Access(c, ino, mask, s.NewReply(abi::FUSE_ACCESS));
    return s.err();
  }
  int Fallocate(uint64_t ino, uint64_t off, uint64_t len, uint32_t mode) {
    TestSink s;
    abi::fuse_fallocate_in in{};
    in.offset = off;
    in.length = len;
    in.mode = mode;
    fs_->Fallocate(ctx_, ino, in, s.NewReply(abi::FUSE_FALLOCATE));
    return s.err();
  }
  int Lseek(uint64_t ino, uint64_t off, uint32_t whence, uint64_t* result) {
    TestSink s;
    abi::fuse_lseek_in in{};
    in.offset = off;
    in.whence = whence;
    fs_->Lseek(ctx_, ino, in, s.NewReply(abi::FUSE_LSEEK));
    if (s.err() == 0) *result = s.As<abi::fuse_lseek_out>().offset;
    return s.err();
  }
  abi::fuse_attr Attr(uint64_t ino) {
    abi::fuse_attr a{};
    EXPECT_EQ(Getattr(ino, &a), 0) << ino;
    return a;
  }

  MemFsOptions options_;
  std::unique_ptr<MemFs> fs_;
  RequestContext ctx_;
  uint64_t missing_before_ = 0;
};

bool NotBefore(uint64_t sec, uint32_t nsec, const timespec& t) {
  return sec > static_cast<uint64_t>(t.tv_sec) ||
         (sec == static_cast<uint64_t>(t.tv_sec) && nsec >= static_cast<uint32_t>(t.tv_nsec));
}

// ---- basics ----

TEST_F(MemFsTest, RootAndUnknownIds) {
  abi::fuse_attr a = Attr(kRoot);
  EXPECT_EQ(a.ino, kRoot);
  EXPECT_EQ(a.mode, S_IFDIR | 0755);
  EXPECT_EQ(a.nlink, 2u);
  EXPECT_EQ(Getattr(12345), ENOENT);
  EXPECT_EQ(Lookup(12345, "x"), ENOENT);
  EXPECT_EQ(Lookup(kRoot, "missing"), ENOENT);
  uint64_t f = File(kRoot, "f");
  EXPECT_EQ(Lookup(f, "x"), ENOTDIR);
  EXPECT_EQ(Mknod(f, "x", S_IFREG | 0644), ENOTDIR);
  EXPECT_EQ(Lookup(kRoot, std::string(256, 'n')), ENAMETOOLONG);
  EXPECT_EQ(Mknod(kRoot, std::string(256, 'n'), S_IFREG | 0644), ENAMETOOLONG);
  EXPECT_EQ(Mknod(kRoot, std::string(255, 'n'), S_IFREG | 0644), 0);
}

TEST_F(MemFsTest, NewNodesTakeOwnerModeAndTimes) {
  ctx_.uid = 1234;
  ctx_.gid = 567;
  timespec before = Now();
  uint64_t d = 0;
  ASSERT_EQ(Mkdir(kRoot, "d", &d, 0777, 022), 0);
  timespec after = Now();
  abi::fuse_attr a = Attr(d);
  EXPECT_EQ(a.mode, S_IFDIR | 0755u);
  EXPECT_EQ(a.uid, 1234u);
  EXPECT_EQ(a.gid, 567u);
  EXPECT_TRUE(NotBefore(a.mtime, a.mtimensec, before));
  EXPECT_TRUE(NotBefore(after.tv_sec, after.tv_nsec,
                        timespec{static_cast<time_t>(a.ctime), static_cast<long>(a.ctimensec)}));
  EXPECT_EQ(a.atime, a.mtime);
  // The parent's mtime moved with the new entry.
  abi::fuse_attr root = Attr(kRoot);
  EXPECT_TRUE(NotBefore(root.mtime, root.mtimensec, before));

  // Set-group-ID directories hand their group (and, to subdirectories, the
  // bit) down.
  abi::fuse_setattr_in in{};
  in.valid = abi::FATTR_MODE | abi::FATTR_GID;
  in.mode = 02775;
  in.gid = 42;
  ASSERT_EQ(Setattr(d, in), 0);
  uint64_t f = File(d, "f");
  uint64_t sub = Dir(d, "sub");
  EXPECT_EQ(Attr(f).gid, 42u);
  EXPECT_EQ(Attr(f).mode & S_ISGID, 0u);
  EXPECT_EQ(Attr(sub).gid, 42u);
  EXPECT_EQ(Attr(sub).mode, S_IFDIR | S_ISGID | 0755u);
}

// ---- lookup counts ----

TEST_F(MemFsTest, LookupCountsAndForget) {
  abi::fuse_kstatfs st0;
  ASSERT_EQ(Statfs(&st0), 0);
  uint64_t f = File(kRoot, "f");  // lookup count 1
  ASSERT_EQ(Write(f, 0, std::string(10000, 'x')), 0);
  abi::fuse_entry_out e;
  ASSERT_EQ(Lookup(kRoot, "f", &e), 0);
  EXPECT_EQ(e.nodeid, f);
  EXPECT_EQ(e.entry_valid, 1u);
  EXPECT_EQ(e.attr.size, 10000u);
  ASSERT_EQ(Lookup(kRoot, "f"), 0);  // 3

  // A linked inode survives losing all lookups.
  fs_->Forget(f, 3);
  EXPECT_EQ(Getattr(f), 0);
  ASSERT_EQ(Lookup(kRoot, "f"), 0);  // 1
  ASSERT_EQ(Lookup(kRoot, "f"), 0);  // 2

  // An unlinked inode lives until the last lookup goes.
  ASSERT_EQ(Unlink(kRoot, "f"), 0);
  EXPECT_EQ(Lookup(kRoot, "f"), ENOENT);
  EXPECT_EQ(Attr(f).nlink, 0u);
  fs_->Forget(f, 1);
  EXPECT_EQ(Getattr(f), 0);
  abi::fuse_kstatfs st1;
  ASSERT_EQ(Statfs(&st1), 0);
  EXPECT_EQ(st1.ffree, st0.ffree - 1);
  EXPECT_LT(st1.bfree, st0.bfree);
  fs_->Forget(f, 1);
  EXPECT_EQ(Getattr(f), ENOENT);
  EXPECT_EQ(Write(f, 0, "x"), ENOENT);
  // Inode and bytes are back.
  ASSERT_EQ(Statfs(&st1), 0);
  EXPECT_EQ(st1.ffree, st0.ffree);
  EXPECT_EQ(st1.bfree, st0.bfree);

  // Ids are never reused; forgetting unknown ids or the root is harmless.
  uint64_t g = File(kRoot, "g");
  EXPECT_GT(g, f);
  fs_->Forget(f, 10);
  fs_->Forget(kRoot, 10);
  EXPECT_EQ(Getattr(kRoot), 0);
  // Over-forgetting clamps at zero.
  ASSERT_EQ(Unlink(kRoot, "g"), 0);
  fs_->Forget(g, 100);
  EXPECT_EQ(Getattr(g), ENOENT);
}

TEST_F(MemFsTest, OpenInodeOutlivesUnlinkAndForget) {
  abi::fuse_entry_out e;
  uint64_t fh = 0;
  ASSERT_EQ(Create(kRoot, "f", O_RDWR, 0644, &e, &fh), 0);
  const uint64_t f = e.nodeid;
  ASSERT_EQ(Write(f, 0, "still here"), 0);
  ASSERT_EQ(Unlink(kRoot, "f"), 0);
  fs_->Forget(f, 1);
  std::string got;
  ASSERT_EQ(Read(f, 0, 100, &got), 0);
  EXPECT_EQ(got, "still here");
  EXPECT_EQ(Release(f, fh), 0);
  EXPECT_EQ(Getattr(f), ENOENT);
  EXPECT_EQ(Read(f, 0, 100, &got), ENOENT);
}

TEST_F(MemFsTest, ReadAndWriteNeedALiveHandleOfTheInode) {
  abi::fuse_entry_out e;
  uint64_t fh = 0;
  ASSERT_EQ(Create(kRoot, "f", O_RDWR, 0644, &e, &fh), 0);
  const uint64_t f = e.nodeid;
  const uint64_t g = File(kRoot, "g");
  uint64_t gfh = 0;
  ASSERT_EQ(Open(g, O_RDWR, &gfh), 0);
  std::string got;
  EXPECT_EQ(WriteFh(f, fh, 0, "abc"), 0);
  EXPECT_EQ(ReadFh(f, fh, 0, 10, &got), 0);
  EXPECT_EQ(got, "abc");
  EXPECT_EQ(WriteFh(f, 0xdead'beef, 0, "x"), EBADF);
  EXPECT_EQ(ReadFh(f, 0xdead'beef, 0, 10, &got), EBADF);
  EXPECT_EQ(WriteFh(f, gfh, 0, "x"), EBADF);  // another inode's handle
  EXPECT_EQ(ReadFh(f, gfh, 0, 10, &got), EBADF);
  EXPECT_EQ(ReadFh(g, gfh, 0, 10, &got), 0);
  // Releasing an unknown handle drops nothing: the open unlinked inode stays.
  ASSERT_EQ(Unlink(kRoot, "f"), 0);
  fs_->Forget(f, 1);
  EXPECT_EQ(Release(f, gfh), EBADF);
  EXPECT_EQ(Release(f, 0xdead'beef), EBADF);
  EXPECT_EQ(Getattr(f), 0);
  EXPECT_EQ(Release(f, fh), 0);
  EXPECT_EQ(Getattr(f), ENOENT);
  EXPECT_EQ(Release(f, fh), EBADF);  // released twice
  EXPECT_EQ(Release(g, gfh), 0);
  EXPECT_EQ(ReadFh(g, gfh, 0, 10, &got), EBADF);  // released
  uint64_t d = Dir(kRoot, "d"), dfh = 0;
  ASSERT_EQ(Opendir(d, &dfh), 0);
  EXPECT_EQ(Releasedir(d, dfh + 1000), EBADF);
  EXPECT_EQ(Releasedir(g, dfh), EBADF);
  EXPECT_EQ(Releasedir(d, dfh), 0);
  EXPECT_EQ(Releasedir(d, dfh), EBADF);
}

TEST_F(MemFsTest, RemovedDirectoryStaysUntilForgottenButTakesNoEntries) {
  uint64_t d = Dir(kRoot, "d");
  uint64_t fh;
  ASSERT_EQ(Opendir(d, &fh), 0);
  ASSERT_EQ(Rmdir(kRoot, "d"), 0);
  EXPECT_EQ(Attr(d).nlink, 0u);
  EXPECT_EQ(Mknod(d, "x", S_IFREG | 0644), ENOENT);
  std::vector<Dirent> ents;
  ASSERT_EQ(Readdir(d, 0, 4096, false, &ents), 0);
  EXPECT_EQ(ents.size(), 2u);  // "." and ".."
  fs_->Forget(d, 1);
  EXPECT_EQ(Getattr(d), 0);  // still open
  EXPECT_EQ(Releasedir(d, fh), 0);
  EXPECT_EQ(Getattr(d), ENOENT);
}

// ---- file data ----

TEST_F(MemFsTest, ReadWrite) {
  uint64_t f = File(kRoot, "f");
  abi::fuse_attr before = Attr(f);
  ASSERT_EQ(Write(f, 0, "hello"), 0);
  ASSERT_EQ(Write(f, 10, "world"), 0);
  abi::fuse_attr a = Attr(f);
  EXPECT_EQ(a.size, 15u);
  EXPECT_EQ(a.blocks, 1u);
  EXPECT_TRUE(a.mtime > before.mtime ||
              (a.mtime == before.mtime && a.mtimensec >= before.mtimensec));
  std::string got;
  ASSERT_EQ(Read(f, 0, 100, &got), 0);
  EXPECT_EQ(got, std::string("hello\0\0\0\0\0world", 15));
  ASSERT_EQ(Read(f, 3, 4, &got), 0);
  EXPECT_EQ(got, std::string("lo\0\0", 4));
  ASSERT_EQ(Read(f, 12, 100, &got), 0);
  EXPECT_EQ(got, "rld");
  ASSERT_EQ(Read(f, 15, 100, &got), 0);
  EXPECT_EQ(got, "");
  ASSERT_EQ(Read(f, 1 << 30, 100, &got), 0);
  EXPECT_EQ(got, "");
  // Overwrite in the middle keeps the size.
  ASSERT_EQ(Write(f, 1, "EL"), 0);
  EXPECT_EQ(ReadAll(f).substr(0, 5), "hELlo");
  EXPECT_EQ(Attr(f).size, 15u);
  // A full 64 KiB request lands in the reply buffer in one piece.
  std::string big(64 * 1024, 'b');
  ASSERT_EQ(Write(f, 0, big), 0);
  ASSERT_EQ(Read(f, 0, 64 * 1024, &got), 0);
  EXPECT_EQ(got, big);
  EXPECT_EQ(Write(f, UINT64_MAX - 2, "abcd"), EFBIG);

  uint64_t d = Dir(kRoot, "d");
  EXPECT_EQ(Read(d, 0, 10, &got), EISDIR);
  EXPECT_EQ(Write(d, 0, "x"), EISDIR);
  uint64_t fifo = 0;
  ASSERT_EQ(Mknod(kRoot, "p", S_IFIFO | 0644, &fifo), 0);
  EXPECT_EQ(Read(fifo, 0, 10, &got), EINVAL);
  EXPECT_EQ(Read(999, 0, 10, &got), ENOENT);
}

TEST_F(MemFsTest, WriteKillsSuidGid) {
  uint64_t f = File(kRoot, "f");
  abi::fuse_setattr_in in{};
  in.valid = abi::FATTR_MODE;
  in.mode = 06755;
  ASSERT_EQ(Setattr(f, in), 0);
  ASSERT_EQ(Write(f, 0, "x"), 0);
  EXPECT_EQ(Attr(f).mode, S_IFREG | 06755u);
  ASSERT_EQ(Write(f, 0, "x", abi::FUSE_WRITE_KILL_SUIDGID), 0);
  EXPECT_EQ(Attr(f).mode, S_IFREG | 0755u);
}

// ---- setattr ----

TEST_F(MemFsTest, Setattr) {
  uint64_t f = File(kRoot, "f");
  ASSERT_EQ(Write(f, 0, "0123456789"), 0);
  abi::fuse_attr a;

  abi::fuse_setattr_in in{};
  in.valid = abi::FATTR_MODE | abi::FATTR_UID | abi::FATTR_GID;
  in.mode = S_IFDIR | 0600;  // the type is ignored
  in.uid = 7;
  in.gid = 8;
  ASSERT_EQ(Setattr(f, in, &a), 0);
  EXPECT_EQ(a.mode, S_IFREG | 0600u);
  EXPECT_EQ(a.uid, 7u);
  EXPECT_EQ(a.gid, 8u);
  EXPECT_EQ(a.size, 10u);

  ASSERT_EQ(Truncate(f, 4), 0);
  EXPECT_EQ(ReadAll(f), "0123");
  ASSERT_EQ(Truncate(f, 6), 0);
  EXPECT_EQ(ReadAll(f), std::string("0123\0\0", 6));

  in = {};
  in.valid = abi::FATTR_ATIME | abi::FATTR_MTIME;
  in.atime = 1000;
  in.atimensec = 1;
  in.mtime = 2000;
  in.mtimensec = 2;
  timespec before = Now();
  ASSERT_EQ(Setattr(f, in, &a), 0);
  EXPECT_EQ(a.atime, 1000u);
  EXPECT_EQ(a.atimensec, 1u);
  EXPECT_EQ(a.mtime, 2000u);
  EXPECT_EQ(a.mtimensec, 2u);
  EXPECT_TRUE(NotBefore(a.ctime, a.ctimensec, before));

  in = {};
  in.valid = abi::FATTR_ATIME | abi::FATTR_ATIME_NOW | abi::FATTR_MTIME | abi::FATTR_MTIME_NOW;
  before = Now();
  ASSERT_EQ(Setattr(f, in, &a), 0);
  EXPECT_TRUE(NotBefore(a.atime, a.atimensec, before));
  EXPECT_TRUE(NotBefore(a.mtime, a.mtimensec, before));

  in = {};
  in.valid = abi::FATTR_CTIME;
  in.ctime = 3000;
  ASSERT_EQ(Setattr(f, in, &a), 0);
  EXPECT_EQ(a.ctime, 3000u);

  // KILL_SUIDGID: setuid always, setgid only with group execute.
  in = {};
  in.valid = abi::FATTR_MODE;
  in.mode = 06750;
  ASSERT_EQ(Setattr(f, in), 0);
  in.valid = abi::FATTR_KILL_SUIDGID;
  ASSERT_EQ(Setattr(f, in, &a), 0);
  EXPECT_EQ(a.mode, S_IFREG | 0750u);

  uint64_t d = Dir(kRoot, "d");
  uint64_t l = 0;
  ASSERT_EQ(Symlink(kRoot, "l", "f", &l), 0);
  EXPECT_EQ(Truncate(d, 0), EISDIR);
  EXPECT_EQ(Truncate(l, 0), EINVAL);
  EXPECT_EQ(Truncate(999, 0), ENOENT);
}

// ---- directories ----

TEST_F(MemFsTest, MkdirRmdirUnlink) {
  uint64_t d = Dir(kRoot, "d");
  EXPECT_EQ(Attr(d).nlink, 2u);
  EXPECT_EQ(Attr(kRoot).nlink, 3u);
  EXPECT_EQ(Mkdir(kRoot, "d"), EEXIST);
  EXPECT_EQ(Mknod(kRoot, "d", S_IFREG | 0644), EEXIST);
  uint64_t sub = Dir(d, "sub");
  EXPECT_EQ(Attr(d).nlink, 3u);
  File(d, "f");
  EXPECT_EQ(Rmdir(kRoot, "d"), ENOTEMPTY);
  EXPECT_EQ(Rmdir(d, "f"), ENOTDIR);
  EXPECT_EQ(Unlink(d, "sub"), EISDIR);
  EXPECT_EQ(Unlink(d, "nope"), ENOENT);
  EXPECT_EQ(Rmdir(d, "nope"), ENOENT);
  EXPECT_EQ(Rmdir(d, "."), EINVAL);
  EXPECT_EQ(Rmdir(d, ".."), ENOTEMPTY);
  ASSERT_EQ(Rmdir(d, "sub"), 0);
  EXPECT_EQ(Attr(d).nlink, 2u);
  EXPECT_EQ(Attr(sub).nlink, 0u);
  ASSERT_EQ(Unlink(d, "f"), 0);
  ASSERT_EQ(Rmdir(kRoot, "d"), 0);
  EXPECT_EQ(Attr(kRoot).nlink, 2u);
  EXPECT_EQ(Lookup(kRoot, "d"), ENOENT);
  // "." and ".." resolve (the kernel asks for them when exporting).
  uint64_t e = Dir(kRoot, "e");
  abi::fuse_entry_out out;
  ASSERT_EQ(Lookup(e, "..", &out), 0);
  EXPECT_EQ(out.nodeid, kRoot);
  ASSERT_EQ(Lookup(e, ".", &out), 0);
  EXPECT_EQ(out.nodeid, e);
}

TEST_F(MemFsTest, ReaddirBasics) {
  uint64_t d = Dir(kRoot, "d");
  uint64_t f = File(d, "file");
  uint64_t s = Dir(d, "sub");
  ASSERT_EQ(Symlink(d, "link", "file"), 0);
  std::vector<Dirent> ents = ReadDirAll(d);
  ASSERT_EQ(ents.size(), 5u);
  EXPECT_EQ(ents[0].name, ".");
  EXPECT_EQ(ents[0].ino, d);
  EXPECT_EQ(ents[0].type, static_cast<uint32_t>(DT_DIR));
  EXPECT_EQ(ents[1].name, "..");
  EXPECT_EQ(ents[1].ino, kRoot);
  EXPECT_EQ(ents[2].name, "file");
  EXPECT_EQ(ents[2].ino, f);
  EXPECT_EQ(ents[2].type, static_cast<uint32_t>(DT_REG));
  EXPECT_EQ(ents[3].name, "sub");
  EXPECT_EQ(ents[3].ino, s);
  EXPECT_EQ(ents[4].name, "link");
  EXPECT_EQ(ents[4].type, static_cast<uint32_t>(DT_LNK));
  // Offsets resume after the entry that carried them.
  std::vector<Dirent> rest;
  ASSERT_EQ(Readdir(d, ents[2].off, 4096, false, &rest), 0);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].name, "sub");
  // A buffer that holds one entry returns one entry.
  ASSERT_EQ(Readdir(d, 0, 40, false, &rest), 0);
  EXPECT_EQ(rest.size(), 1u);
  ASSERT_EQ(Readdir(d, ents.back().off, 4096, false, &rest), 0);
  EXPECT_TRUE(rest.empty());
  ASSERT_EQ(Readdir(f, 0, 4096, false, &rest), ENOTDIR);
  ASSERT_EQ(Readdir(999, 0, 4096, false, &rest), ENOENT);
}

TEST_F(MemFsTest, ReaddirplusTakesLookupReferences) {
  uint64_t d = Dir(kRoot, "d");
  std::vector<uint64_t> inos;
  for (int i = 0; i < 20; ++i) inos.push_back(File(d, absl::StrCat("f", i)));
  for (uint64_t ino : inos) fs_->Forget(ino, 1);  // drop the Mknod references
  std::vector<Dirent> ents = ReadDirAll(d, /*plus=*/true);
  ASSERT_EQ(ents.size(), 22u);
  EXPECT_EQ(ents[0].entry->nodeid, 0u);  // "." and ".." carry no reference
  EXPECT_EQ(ents[1].entry->nodeid, 0u);
  for (size_t i = 2; i < ents.size(); ++i) {
    EXPECT_EQ(ents[i].entry->nodeid, inos[i - 2]);
    EXPECT_EQ(ents[i].entry->attr.ino, inos[i - 2]);
    EXPECT_EQ(ents[i].entry->attr.mode, S_IFREG | 0644u);
    EXPECT_EQ(ents[i].entry->entry_valid, 1u);
  }
  // Unlinked, each inode is now held only by the READDIRPLUS reference.
  for (int i = 0; i < 20; ++i) ASSERT_EQ(Unlink(d, absl::StrCat("f", i)), 0);
  for (uint64_t ino : inos) EXPECT_EQ(Getattr(ino), 0);
  for (uint64_t ino : inos) fs_->Forget(ino, 1);
  for (uint64_t ino : inos) EXPECT_EQ(Getattr(ino), ENOENT);
  // Plain READDIR takes none.
  uint64_t g = File(d, "g");
  fs_->Forget(g, 1);
  ReadDirAll(d, /*plus=*/false);
  ASSERT_EQ(Unlink(d, "g"), 0);
  EXPECT_EQ(Getattr(g), ENOENT);
}

TEST_F(MemFsTest, ReaddirTenThousandEntriesAcrossRequests) {
  uint64_t d = Dir(kRoot, "big");
  constexpr int kN = 10000;
  std::vector<std::string> want = {".", ".."};
  for (int i = 0; i < kN; ++i) {
    want.push_back(absl::StrCat("entry-", i));
    ASSERT_EQ(Mknod(d, want.back(), S_IFREG | 0644), 0);
  }
  for (bool plus : {false, true}) {
    SCOPED_TRACE(plus ? "plus" : "plain");
    std::vector<Dirent> page;
    std::vector<std::string> got;
    std::vector<uint64_t> offs;
    uint64_t off = 0;
    int requests = 0;
    while (Readdir(d, off, 4096, plus, &page) == 0 && !page.empty()) {
      ++requests;
      for (const Dirent& e : page) {
        got.push_back(e.name);
        offs.push_back(e.off);
      }
      off = page.back().off;
    }
    EXPECT_GT(requests, 10);
    EXPECT_EQ(got, want);  // creation order, each name once
    for (size_t i = 1; i < offs.size(); ++i) ASSERT_LT(offs[i - 1], offs[i]);
    // Any offset handed out resumes at the same place later.
    std::vector<Dirent> again;
    ASSERT_EQ(Readdir(d, offs[5000], 4096, plus, &again), 0);
    ASSERT_FALSE(again.empty());
    EXPECT_EQ(again[0].name, want[5001]);
  }
  // Removing entries does not move the others' offsets.
  std::vector<Dirent> all = ReadDirAll(d);
  ASSERT_EQ(Unlink(d, all[3000].name), 0);
  ASSERT_EQ(Unlink(d, all[3001].name), 0);
  std::vector<Dirent> after;
  ASSERT_EQ(Readdir(d, all[2999].off, 4096, false, &after), 0);
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(after[0].name, all[3002].name);
}

TEST_F(MemFsTest, ReaddirWhileDeletingNeverRepeatsOrSkipsSurvivors) {
  uint64_t d = Dir(kRoot, "big");
  constexpr int kN = 10000;
  for (int i = 0; i < kN; ++i) ASSERT_EQ(Mknod(d, absl::StrCat("e", i), S_IFREG | 0644), 0);
  std::atomic<bool> reader_started{false};
  std::thread deleter([&] {
    while (!reader_started.load()) std::this_thread::yield();
    for (int i = 0; i < kN; i += 2) EXPECT_EQ(Unlink(d, absl::StrCat("e", i)), 0);
  });
  std::vector<std::string> seen;
  std::vector<Dirent> page;
  uint64_t off = 0;
  while (Readdir(d, off, 1024, false, &page) == 0 && !page.empty()) {
    reader_started.store(true);
    for (const Dirent& e : page) seen.push_back(e.name);
    off = page.back().off;
  }
  reader_started.store(true);
  deleter.join();
  absl::flat_hash_set<std::string> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), seen.size()) << "an entry was returned twice";
  for (int i = 1; i < kN; i += 2) EXPECT_TRUE(unique.contains(absl::StrCat("e", i))) << i;
  EXPECT_EQ(ReadDirAll(d).size(), 2u + kN / 2);
}

// ---- symlinks, special files, hard links ----

TEST_F(MemFsTest, SymlinkReadlink) {
  uint64_t l = 0;
  ASSERT_EQ(Symlink(kRoot, "l", "some/target/path", &l), 0);
  abi::fuse_attr a = Attr(l);
  EXPECT_EQ(a.mode, S_IFLNK | 0777u);
  EXPECT_EQ(a.size, 16u);
  EXPECT_EQ(a.uid, ctx_.uid);
  std::string target;
  ASSERT_EQ(Readlink(l, &target), 0);
  EXPECT_EQ(target, "some/target/path");
  uint64_t f = File(kRoot, "f");
  EXPECT_EQ(Readlink(f, &target), EINVAL);
  EXPECT_EQ(Readlink(999, &target), ENOENT);
  EXPECT_EQ(Symlink(kRoot, "l", "x"), EEXIST);
  EXPECT_EQ(Symlink(kRoot, "empty", ""), ENOENT);
  EXPECT_EQ(Symlink(kRoot, "long", std::string(4096, 'x')), ENAMETOOLONG);
  ASSERT_EQ(Symlink(kRoot, "max", std::string(4095, 'x')), 0);
}

TEST_F(MemFsTest, MknodSpecialFiles) {
  uint64_t p = 0, c = 0, r = 0;
  ASSERT_EQ(Mknod(kRoot, "fifo", S_IFIFO | 0640, &p), 0);
  EXPECT_EQ(Attr(p).mode, S_IFIFO | 0640u);
  ASSERT_EQ(Mknod(kRoot, "chr", S_IFCHR | 0600, &c, makedev(1, 3)), 0);
  EXPECT_EQ(Attr(c).mode, S_IFCHR | 0600u);
  EXPECT_EQ(Attr(c).rdev, makedev(1, 3));
  ASSERT_EQ(Mknod(kRoot, "plain", 0644, &r), 0);  // no type means regular
  EXPECT_EQ(Attr(r).mode, S_IFREG | 0644u);
  EXPECT_EQ(Mknod(kRoot, "dir", S_IFDIR | 0755), EINVAL);
  EXPECT_EQ(Mknod(kRoot, "lnk", S_IFLNK | 0777), EINVAL);
  EXPECT_EQ(Open(p, O_RDONLY), EINVAL);
  std::vector<Dirent> ents = ReadDirAll(kRoot);
  ASSERT_EQ(ents.size(), 5u);
  EXPECT_EQ(ents[2].type, static_cast<uint32_t>(DT_FIFO));
  EXPECT_EQ(ents[3].type, static_cast<uint32_t>(DT_CHR));
}

TEST_F(MemFsTest, HardLinks) {
  uint64_t f = File(kRoot, "f");
  ASSERT_EQ(Write(f, 0, "shared"), 0);
  uint64_t d = Dir(kRoot, "d");
  abi::fuse_entry_out e;
  ASSERT_EQ(Link(f, d, "g", &e), 0);  // lookup count 2
  EXPECT_EQ(e.nodeid, f);
  EXPECT_EQ(e.attr.nlink, 2u);
  EXPECT_EQ(Link(f, d, "g"), EEXIST);
  EXPECT_EQ(Link(d, kRoot, "dlink"), EPERM);
  EXPECT_EQ(Link(999, kRoot, "x"), ENOENT);
  EXPECT_EQ(Link(f, f, "x"), ENOTDIR);
  ASSERT_EQ(Unlink(kRoot, "f"), 0);
  ASSERT_EQ(Lookup(d, "g", &e), 0);  // 3
  EXPECT_EQ(e.nodeid, f);
  EXPECT_EQ(e.attr.nlink, 1u);
  std::string got;
  ASSERT_EQ(Read(f, 0, 100, &got), 0);
  EXPECT_EQ(got, "shared");
  ASSERT_EQ(Unlink(d, "g"), 0);
  EXPECT_EQ(Link(f, kRoot, "again"), ENOENT);  // no name left to link from
  fs_->Forget(f, 2);
  EXPECT_EQ(Getattr(f), 0);
  fs_->Forget(f, 1);
  EXPECT_EQ(Getattr(f), ENOENT);
}

// ---- rename ----

TEST_F(MemFsTest, RenamePlainAndReplace) {
  uint64_t a = File(kRoot, "a");
  uint64_t b = File(kRoot, "b");
  uint64_t d = Dir(kRoot, "d");
  ASSERT_EQ(Rename(kRoot, "a", d, "a2"), 0);
  EXPECT_EQ(Lookup(kRoot, "a"), ENOENT);
  abi::fuse_entry_out e;
  ASSERT_EQ(Lookup(d, "a2", &e), 0);
  EXPECT_EQ(e.nodeid, a);
  // Replacing a file unlinks it; it lives until forgotten.
  ASSERT_EQ(Rename(d, "a2", kRoot, "b"), 0);
  ASSERT_EQ(Lookup(kRoot, "b", &e), 0);
  EXPECT_EQ(e.nodeid, a);
  EXPECT_EQ(Attr(b).nlink, 0u);
  fs_->Forget(b, 1);
  EXPECT_EQ(Getattr(b), ENOENT);
  EXPECT_EQ(Rename(kRoot, "missing", kRoot, "x"), ENOENT);
  EXPECT_EQ(Rename(999, "b", kRoot, "x"), ENOENT);
  EXPECT_EQ(Rename(kRoot, "b", a, "x"), ENOTDIR);
  // Onto itself and onto another link of the same inode: nothing happens.
  EXPECT_EQ(Rename(kRoot, "b", kRoot, "b"), 0);
  ASSERT_EQ(Link(a, kRoot, "b2"), 0);
  EXPECT_EQ(Rename(kRoot, "b", kRoot, "b2"), 0);
  EXPECT_EQ(Lookup(kRoot, "b"), 0);
  EXPECT_EQ(Lookup(kRoot, "b2"), 0);
  EXPECT_EQ(Attr(a).nlink, 2u);
}

TEST_F(MemFsTest, RenameDirectories) {
  uint64_t a = Dir(kRoot, "a");
  uint64_t b = Dir(kRoot, "b");
  uint64_t sub = Dir(a, "sub");
  uint64_t deep = Dir(sub, "deep");
  File(kRoot, "file");
  EXPECT_EQ(Rename(kRoot, "a", sub, "x"), EINVAL);   // into its own subtree
  EXPECT_EQ(Rename(kRoot, "a", deep, "x"), EINVAL);
  EXPECT_EQ(Rename(kRoot, "a", a, "x"), EINVAL);
  EXPECT_EQ(Rename(kRoot, "a", kRoot, "file"), ENOTDIR);
  EXPECT_EQ(Rename(kRoot, "file", kRoot, "a"), EISDIR);
  EXPECT_EQ(Rename(kRoot, "b", kRoot, "a"), ENOTEMPTY);

  // Moving a directory moves its ".." and the parents' link counts.
  ASSERT_EQ(Rename(a, "sub", b, "sub"), 0);
  EXPECT_EQ(Attr(a).nlink, 2u);
  EXPECT_EQ(Attr(b).nlink, 3u);
  abi::fuse_entry_out e;
  ASSERT_EQ(Lookup(sub, "..", &e), 0);
  EXPECT_EQ(e.nodeid, b);
  EXPECT_EQ(ReadDirAll(sub)[1].ino, b);

  // Replacing an empty directory removes it.
  ASSERT_EQ(Rename(kRoot, "b", kRoot, "a"), 0);
  EXPECT_EQ(Attr(a).nlink, 0u);
  EXPECT_EQ(Attr(kRoot).nlink, 3u);
  ASSERT_EQ(Lookup(kRoot, "a", &e), 0);
  EXPECT_EQ(e.nodeid, b);
}

TEST_F(MemFsTest, RenameFlags) {
  uint64_t a = File(kRoot, "a");
  uint64_t b = File(kRoot, "b");
  EXPECT_EQ(Rename(kRoot, "a", kRoot, "b", RENAME_NOREPLACE), EEXIST);
  EXPECT_EQ(Rename(kRoot, "a", kRoot, "c", RENAME_EXCHANGE), ENOENT);
  EXPECT_EQ(Rename(kRoot, "a", kRoot, "b", RENAME_NOREPLACE | RENAME_EXCHANGE), EINVAL);
  EXPECT_EQ(Rename(kRoot, "a", kRoot, "c", RENAME_WHITEOUT), EINVAL);
  EXPECT_EQ(Rename(kRoot, "a", kRoot, "c", 1u << 20), EINVAL);
  ASSERT_EQ(Rename(kRoot, "a", kRoot, "c", RENAME_NOREPLACE), 0);
  ASSERT_EQ(Rename(kRoot, "c", kRoot, "b", RENAME_EXCHANGE), 0);
  abi::fuse_entry_out e;
  ASSERT_EQ(Lookup(kRoot, "b", &e), 0);
  EXPECT_EQ(e.nodeid, a);
  ASSERT_EQ(Lookup(kRoot, "c", &e), 0);
  EXPECT_EQ(e.nodeid, b);
  EXPECT_EQ(Attr(a).nlink, 1u);
  EXPECT_EQ(Attr(b).nlink, 1u);

  // Exchanging a directory and a file across directories.
  uint64_t d1 = Dir(kRoot, "d1");
  uint64_t d2 = Dir(kRoot, "d2");
  uint64_t sub = Dir(d1, "sub");
  uint64_t f = File(d2, "f");
  ASSERT_EQ(Rename(d1, "sub", d2, "f", RENAME_EXCHANGE), 0);
  ASSERT_EQ(Lookup(d1, "sub", &e), 0);
  EXPECT_EQ(e.nodeid, f);
  ASSERT_EQ(Lookup(d2, "f", &e), 0);
  EXPECT_EQ(e.nodeid, sub);
  EXPECT_EQ(Attr(d1).nlink, 2u);
  EXPECT_EQ(Attr(d2).nlink, 3u);
  ASSERT_EQ(Lookup(sub, "..", &e), 0);
  EXPECT_EQ(e.nodeid, d2);
  // Exchanging a directory with something inside it would detach a cycle.
  uint64_t inner = File(sub, "inner");
  (void)inner;
  EXPECT_EQ(Rename(d2, "f", sub, "inner", RENAME_EXCHANGE), EINVAL);
  EXPECT_EQ(Rename(sub, "inner", d2, "f", RENAME_EXCHANGE), EINVAL);
}

TEST_F(MemFsTest, RenameWithinDirectoryKeepsReaddirPosition) {
  for (int i = 0; i < 5; ++i) File(kRoot, absl::StrCat("n", i));
  std::vector<Dirent> before = ReadDirAll(kRoot);
  ASSERT_EQ(Rename(kRoot, "n1", kRoot, "renamed"), 0);
  EXPECT_THAT(Names(kRoot), ElementsAre(".", "..", "n0", "renamed", "n2", "n3", "n4"));
  // A reader already past the entry does not see it again.
  std::vector<Dirent> rest;
  ASSERT_EQ(Readdir(kRoot, before[3].off, 4096, false, &rest), 0);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[0].name, "n2");
}

// ---- xattrs ----

TEST_F(MemFsTest, Xattrs) {
  uint64_t f = File(kRoot, "f");
  std::string v;
  EXPECT_EQ(Getxattr(f, "user.a", 0, &v), ENODATA);
  EXPECT_EQ(Removexattr(f, "user.a"), ENODATA);
  EXPECT_EQ(Setxattr(f, "user.a", "x", XATTR_REPLACE), ENODATA);
  ASSERT_EQ(Setxattr(f, "user.a", "value-a", XATTR_CREATE), 0);
  EXPECT_EQ(Setxattr(f, "user.a", "other", XATTR_CREATE), EEXIST);
  ASSERT_EQ(Getxattr(f, "user.a", 0, &v), 0);
  EXPECT_EQ(v, "7");
  EXPECT_EQ(Getxattr(f, "user.a", 6, &v), ERANGE);
  ASSERT_EQ(Getxattr(f, "user.a", 7, &v), 0);
  EXPECT_EQ(v, "value-a");
  ASSERT_EQ(Setxattr(f, "user.a", "A", XATTR_REPLACE), 0);
  ASSERT_EQ(Getxattr(f, "user.a", 100, &v), 0);
  EXPECT_EQ(v, "A");
  ASSERT_EQ(Setxattr(f, "user.b", ""), 0);  // empty values are values
  ASSERT_EQ(Getxattr(f, "user.b", 0, &v), 0);
  EXPECT_EQ(v, "0");
  ASSERT_EQ(Setxattr(f, "trusted.c", "3"), 0);

  ASSERT_EQ(Listxattr(f, 0, &v), 0);
  EXPECT_EQ(v, "24");
  EXPECT_EQ(Listxattr(f, 23, &v), ERANGE);
  ASSERT_EQ(Listxattr(f, 24, &v), 0);
  EXPECT_EQ(v, std::string("trusted.c\0user.a\0user.b\0", 24));
  ASSERT_EQ(Removexattr(f, "user.a"), 0);
  EXPECT_EQ(Getxattr(f, "user.a", 0, &v), ENODATA);
  ASSERT_EQ(Listxattr(f, 100, &v), 0);
  EXPECT_EQ(v, std::string("trusted.c\0user.b\0", 17));

  EXPECT_EQ(Setxattr(f, "user.x", "v", 4), EINVAL);
  EXPECT_EQ(Setxattr(f, "", "v"), ERANGE);
  EXPECT_EQ(Setxattr(f, std::string(256, 'n'), "v"), ERANGE);
  EXPECT_EQ(Setxattr(f, "user.big", std::string(64 * 1024 + 1, 'v')), E2BIG);
  EXPECT_EQ(Setxattr(999, "user.a", "v"), ENOENT);
  // Directories carry xattrs too.
  ASSERT_EQ(Setxattr(kRoot, "user.root", "r"), 0);
  ASSERT_EQ(Getxattr(kRoot, "user.root", 10, &v), 0);
  EXPECT_EQ(v, "r");
  uint64_t empty = File(kRoot, "e");
  ASSERT_EQ(Listxattr(empty, 0, &v), 0);
  EXPECT_EQ(v, "0");
}

// ---- statfs, access ----

TEST_F(MemFsTest, StatfsReportsCapacity) {
  MemFsOptions o;
  o.capacity_bytes = 1 << 20;
  o.max_inodes = 100;
  Recreate(o);
  abi::fuse_kstatfs st;
  ASSERT_EQ(Statfs(&st), 0);
  EXPECT_EQ(st.bsize, 4096u);
  EXPECT_EQ(st.frsize, 4096u);
  EXPECT_EQ(st.blocks, 256u);
  EXPECT_EQ(st.bfree, 256u);
  EXPECT_EQ(st.bavail, 256u);
  EXPECT_EQ(st.files, 100u);
  EXPECT_EQ(st.ffree, 99u);
  EXPECT_EQ(st.namelen, 255u);
  uint64_t f = File(kRoot, "f");
  ASSERT_EQ(Write(f, 0, std::string(8192, 'x')), 0);
  ASSERT_EQ(Statfs(&st), 0);
  EXPECT_EQ(st.bfree, 254u);
  EXPECT_EQ(st.ffree, 98u);
}

TEST_F(MemFsTest, Access) {
  ctx_.uid = 10;
  ctx_.gid = 20;
  uint64_t f = File(kRoot, "f");
  abi::fuse_setattr_in in{};
  in.valid = abi::FATTR_MODE;
  in.mode = 0640;
  ASSERT_EQ(Setattr(f, in), 0);
  EXPECT_EQ(Access(f, F_OK, 99, 99), 0);
  EXPECT_EQ(Access(f, R_OK | W_OK, 10, 99), 0);       // owner
  EXPECT_EQ(Access(f, X_OK, 10, 99), EACCES);
  EXPECT_EQ(Access(f, R_OK, 11, 20), 0);              // group
  EXPECT_EQ(Access(f, W_OK, 11, 20), EACCES);
  EXPECT_EQ(Access(f, R_OK, 11, 21), EACCES);         // other
  EXPECT_EQ(Access(f, R_OK | W_OK, 0, 0), 0);         // root bypass
  EXPECT_EQ(Access(f, X_OK, 0, 0), EACCES);           // ... but x needs an x bit
  in.mode = 0641;
  ASSERT_EQ(Setattr(f, in), 0);
  EXPECT_EQ(Access(f, X_OK, 0, 0), 0);
  EXPECT_EQ(Access(f, X_OK, 11, 21), 0);
  uint64_t d = Dir(kRoot, "d");
  in.mode = 0700;
  ASSERT_EQ(Setattr(d, in), 0);
  EXPECT_EQ(Access(d, X_OK, 0, 0), 0);
  EXPECT_EQ(Access(d, X_OK, 11, 20), EACCES);
  EXPECT_EQ(Access(999, F_OK, 0, 0), ENOENT);
}

// ---- open, create, handles ----

TEST_F(MemFsTest, OpenCreateOpendir) {
  abi::fuse_entry_out e;
  uint64_t fh1 = 0, fh2 = 0, fh3 = 0;
  ASSERT_EQ(Create(kRoot, "f", O_RDWR | O_CREAT, 0666, &e, &fh1), 0);
  const uint64_t f = e.nodeid;
  EXPECT_EQ(e.attr.mode, S_IFREG | 0666u);
  EXPECT_EQ(e.attr.uid, ctx_.uid);
  ASSERT_EQ(Write(f, 0, "content"), 0);
  EXPECT_EQ(Create(kRoot, "f", O_RDWR | O_CREAT | O_EXCL, 0644), EEXIST);
  // Without O_EXCL an existing file is opened (a lost creation race).
  ASSERT_EQ(Create(kRoot, "f", O_RDWR | O_CREAT, 0644, &e, &fh2), 0);
  EXPECT_EQ(e.nodeid, f);
  EXPECT_EQ(e.attr.size, 7u);
  ASSERT_EQ(Open(f, O_RDONLY | O_TRUNC, &fh3), 0);  // read-only: no truncation
  EXPECT_EQ(Attr(f).size, 7u);
  EXPECT_NE(fh1, fh2);
  EXPECT_NE(fh2, fh3);
  uint64_t fh4 = 0;
  ASSERT_EQ(Open(f, O_WRONLY | O_TRUNC, &fh4), 0);
  EXPECT_EQ(Attr(f).size, 0u);
  ASSERT_EQ(Write(f, 0, "again"), 0);
  ASSERT_EQ(Create(kRoot, "f", O_WRONLY | O_CREAT | O_TRUNC, 0644, &e), 0);
  EXPECT_EQ(e.attr.size, 0u);

  uint64_t d = Dir(kRoot, "d");
  EXPECT_EQ(Open(d, O_RDONLY), EISDIR);
  EXPECT_EQ(Create(kRoot, "d", O_RDWR | O_CREAT, 0644), EISDIR);
  EXPECT_EQ(Opendir(f), ENOTDIR);
  EXPECT_EQ(Open(999, O_RDONLY), ENOENT);
  EXPECT_EQ(Opendir(999), ENOENT);
  EXPECT_EQ(Create(f, "x", O_RDWR | O_CREAT, 0644), ENOTDIR);
  uint64_t dfh = 0;
  ASSERT_EQ(Opendir(d, &dfh), 0);
  EXPECT_NE(dfh, 0u);

  // The no-op family answers success for known inodes.
  TestSink s;
  fs_->Flush(ctx_, f, abi::fuse_flush_in{}, s.NewReply(abi::FUSE_FLUSH));
  EXPECT_EQ(s.err(), 0);
  fs_->Fsync(ctx_, f, fh1, true, s.NewReply(abi::FUSE_FSYNC));
  EXPECT_EQ(s.err(), 0);
  fs_->Fsyncdir(ctx_, d, dfh, false, s.NewReply(abi::FUSE_FSYNCDIR));
  EXPECT_EQ(s.err(), 0);
  fs_->Fsync(ctx_, 999, 0, false, s.NewReply(abi::FUSE_FSYNC));
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_EQ(Releasedir(d, dfh), 0);
  for (uint64_t fh : {fh1, fh2, fh3, fh4}) EXPECT_EQ(Release(f, fh), 0);
  // Create's umask applies.
  TestSink cs;
  abi::fuse_create_in in{};
  in.flags = O_RDWR | O_CREAT;
  in.mode = 0666;
  in.umask = 027;
  fs_->Create(ctx_, kRoot, "masked", in, cs.NewReply(abi::FUSE_CREATE));
  ASSERT_EQ(cs.err(), 0);
  abi::fuse_entry_out me;
  ASSERT_GE(cs.bytes().size(), sizeof(me));
  std::memcpy(&me, cs.bytes().data(), sizeof(me));
  EXPECT_EQ(me.attr.mode, S_IFREG | 0640u);
}

// ---- lseek, fallocate ----

TEST_F(MemFsTest, LseekDataAndHole) {
  uint64_t f = File(kRoot, "f");
  ASSERT_EQ(Write(f, 0, std::string(100, 'x')), 0);
  uint64_t off = 0;
  ASSERT_EQ(Lseek(f, 10, SEEK_DATA, &off), 0);
  EXPECT_EQ(off, 10u);
  ASSERT_EQ(Lseek(f, 10, SEEK_HOLE, &off), 0);
  EXPECT_EQ(off, 100u);
  EXPECT_EQ(Lseek(f, 100, SEEK_DATA, &off), ENXIO);
  EXPECT_EQ(Lseek(f, 100, SEEK_HOLE, &off), ENXIO);
  EXPECT_EQ(Lseek(f, 0, SEEK_SET, &off), EINVAL);
  EXPECT_EQ(Lseek(999, 0, SEEK_DATA, &off), ENOENT);
}

TEST_F(MemFsTest, Fallocate) {
  uint64_t f = File(kRoot, "f");
  ASSERT_EQ(Write(f, 0, "abcdef"), 0);
  ASSERT_EQ(Fallocate(f, 4, 10, 0), 0);
  EXPECT_EQ(Attr(f).size, 14u);
  EXPECT_EQ(ReadAll(f), std::string("abcdef\0\0\0\0\0\0\0\0", 14));
  ASSERT_EQ(Fallocate(f, 0, 4, 0), 0);  // inside: nothing changes
  EXPECT_EQ(Attr(f).size, 14u);
  ASSERT_EQ(Fallocate(f, 0, 100, FALLOC_FL_KEEP_SIZE), 0);
  EXPECT_EQ(Attr(f).size, 14u);
  ASSERT_EQ(Fallocate(f, 1, 2, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE), 0);
  EXPECT_EQ(ReadAll(f).substr(0, 4), std::string("a\0\0d", 4));
  EXPECT_EQ(Fallocate(f, 0, 1, FALLOC_FL_PUNCH_HOLE), EOPNOTSUPP);
  EXPECT_EQ(Fallocate(f, 0, 1, FALLOC_FL_COLLAPSE_RANGE), EOPNOTSUPP);
  EXPECT_EQ(Fallocate(f, 0, 0, 0), EINVAL);
  EXPECT_EQ(Fallocate(kRoot, 0, 1, 0), EISDIR);
  EXPECT_EQ(Fallocate(999, 0, 1, 0), ENOENT);
}

// ---- limits ----

TEST_F(MemFsTest, CapacityLimitGivesEnospc) {
  MemFsOptions o;
  o.capacity_bytes = 64 * 1024;
  Recreate(o);
  uint64_t f = File(kRoot, "f");
  ASSERT_EQ(Write(f, 0, std::string(60 * 1024, 'a')), 0);
  EXPECT_EQ(Write(f, 60 * 1024, std::string(8 * 1024, 'b')), ENOSPC);
  EXPECT_EQ(Attr(f).size, 60u * 1024);  // nothing written
  EXPECT_EQ(Write(f, 1 << 20, "x"), ENOSPC);
  EXPECT_EQ(Truncate(f, 65 * 1024), ENOSPC);
  EXPECT_EQ(Fallocate(f, 0, 65 * 1024, 0), ENOSPC);
  EXPECT_EQ(Setxattr(f, "user.x", std::string(8 * 1024, 'x')), ENOSPC);
  EXPECT_EQ(Symlink(kRoot, "l", std::string(4095, 't')), 0);
  EXPECT_EQ(Symlink(kRoot, "l2", std::string(4095, 't')), ENOSPC);
  // Overwriting in place needs no space.
  EXPECT_EQ(Write(f, 0, std::string(1024, 'c')), 0);
  // Shrinking gives the space back.
  ASSERT_EQ(Truncate(f, 0), 0);
  EXPECT_EQ(Write(f, 0, std::string(60 * 1024, 'd')), 0);
  // Freeing an inode gives its space back.
  ASSERT_EQ(Unlink(kRoot, "f"), 0);
  fs_->Forget(f, 1);
  uint64_t g = File(kRoot, "g");
  EXPECT_EQ(Write(g, 0, std::string(60 * 1024, 'e')), 0);
}

TEST_F(MemFsTest, InodeLimitGivesEnospc) {
  MemFsOptions o;
  o.max_inodes = 4;  // the root and three more
  Recreate(o);
  uint64_t a = File(kRoot, "a");
  Dir(kRoot, "b");
  ASSERT_EQ(Symlink(kRoot, "c", "a"), 0);
  EXPECT_EQ(Mknod(kRoot, "d", S_IFREG | 0644), ENOSPC);
  EXPECT_EQ(Mkdir(kRoot, "d"), ENOSPC);
  EXPECT_EQ(Create(kRoot, "d", O_RDWR | O_CREAT, 0644), ENOSPC);
  EXPECT_EQ(Link(a, kRoot, "hard"), 0);  // links take no inode
  ASSERT_EQ(Unlink(kRoot, "a"), 0);
  ASSERT_EQ(Unlink(kRoot, "hard"), 0);
  fs_->Forget(a, 2);
  EXPECT_EQ(Mknod(kRoot, "d", S_IFREG | 0644), 0);
}

// ---- concurrency ----

TEST_F(MemFsTest, ConcurrentWritersToDifferentFiles) {
  constexpr int kThreads = 8;
  constexpr int kChunks = 200;
  constexpr size_t kChunk = 4096;
  std::vector<uint64_t> inos(kThreads);
  for (int t = 0; t < kThreads; ++t) inos[t] = File(kRoot, absl::StrCat("w", t));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Back to front, so most writes extend the file and some fill holes.
      for (int c = kChunks - 1; c >= 0; --c) {
        std::string chunk(kChunk, static_cast<char>('A' + (t + c) % 26));
        EXPECT_EQ(Write(inos[t], static_cast<uint64_t>(c) * kChunk, chunk), 0);
        std::string back;
        EXPECT_EQ(Read(inos[t], static_cast<uint64_t>(c) * kChunk, kChunk, &back), 0);
        EXPECT_EQ(back, chunk);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    std::string all = ReadAll(inos[t]);
    ASSERT_EQ(all.size(), kChunks * kChunk);
    for (int c = 0; c < kChunks; ++c) {
      ASSERT_EQ(all.substr(c * kChunk, kChunk),
                std::string(kChunk, static_cast<char>('A' + (t + c) % 26)))
          << "thread " << t << " chunk " << c;
    }
  }
  abi::fuse_kstatfs st;
  ASSERT_EQ(Statfs(&st), 0);
  EXPECT_EQ(st.blocks - st.bfree, static_cast<uint64_t>(kThreads * kChunks));
}

TEST_F(MemFsTest, ConcurrentNamespaceChurnKeepsCountsConsistent) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 300;
  uint64_t d = Dir(kRoot, "churn");
  abi::fuse_kstatfs st0;
  ASSERT_EQ(Statfs(&st0), 0);
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) {
      std::vector<Dirent> ents = ReadDirAll(d, /*plus=*/true, 1024);
      std::set<std::string> names;
      for (const Dirent& e : ents) {
        EXPECT_TRUE(names.insert(e.name).second) << e.name;
        if (e.entry && e.entry->nodeid != 0) fs_->Forget(e.entry->nodeid, 1);
      }
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        std::string a = absl::StrCat("t", t, "-", i);
        std::string b = absl::StrCat("t", t, "-", i, "-moved");
        uint64_t ino = 0;
        ASSERT_EQ(Mknod(d, a, S_IFREG | 0644, &ino), 0);
        ASSERT_EQ(Write(ino, 0, a), 0);
        ASSERT_EQ(Rename(d, a, d, b), 0);
        if (i % 3 != 0) {
          ASSERT_EQ(Unlink(d, b), 0);
        }
        fs_->Forget(ino, 1);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  stop.store(true);
  reader.join();
  // Every third file remains; everything else is gone, space included.
  std::vector<Dirent> ents = ReadDirAll(d);
  EXPECT_EQ(ents.size(), 2u + kThreads * ((kRounds + 2) / 3));
  abi::fuse_kstatfs st;
  ASSERT_EQ(Statfs(&st), 0);
  EXPECT_EQ(st0.ffree - st.ffree, ents.size() - 2);
}

}  // namespace
}  // namespace kmfuse
