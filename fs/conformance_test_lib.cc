#include "fs/conformance_test_lib.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "kmfuse/testing/status_macros.h"

namespace kmfuse::testing {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

namespace {

constexpr uint64_t kRoot = abi::FUSE_ROOT_ID;

}  // namespace

std::string FsConformanceParamName(const ::testing::TestParamInfo<FsConformanceParam>& info) {
  return info.param.name;
}

void FsConformanceTest::SetUp() {
  fs_ = GetParam().factory();
  ASSERT_NE(fs_, nullptr);
  driver_ = std::make_unique<FsDriver>(fs_.get());
  auto conn = driver_->Init();
  ASSERT_TRUE(conn.ok()) << conn.status();
}

void FsConformanceTest::TearDown() {
  if (fs_ != nullptr) fs_->Destroy();
  driver_.reset();
  fs_.reset();
}

TEST_P(FsConformanceTest, RootIsADirectory) {
  ASSERT_OK_AND_ASSIGN(auto attr, d().Getattr(kRoot));
  EXPECT_TRUE(S_ISDIR(attr.attr.mode));
  ASSERT_OK_AND_ASSIGN(auto names, d().ReaddirNames(kRoot));
  EXPECT_THAT(names, IsEmpty());
}

TEST_P(FsConformanceTest, CreateWriteReadBack) {
  const std::string content = "hello, conformance";
  ASSERT_OK_AND_ASSIGN(uint64_t ino, d().CreateFile(kRoot, "f", content));
  ASSERT_OK_AND_ASSIGN(auto attr, d().Getattr(ino));
  EXPECT_TRUE(S_ISREG(attr.attr.mode));
  EXPECT_EQ(attr.attr.size, content.size());
  ASSERT_OK_AND_ASSIGN(std::string back, d().ReadFile(ino));
  EXPECT_EQ(back, content);

  ASSERT_OK_AND_ASSIGN(auto o, d().Open(ino, O_RDONLY));
  ASSERT_OK_AND_ASSIGN(std::string mid, d().Read(ino, o.fh, 7, 5));
  EXPECT_EQ(mid, "confo");
  ASSERT_OK_AND_ASSIGN(std::string past, d().Read(ino, o.fh, 1000, 10));
  EXPECT_EQ(past, "");
  EXPECT_EQ(d().Release(ino, o.fh), 0);

  ASSERT_OK_AND_ASSIGN(auto e, d().Lookup(kRoot, "f"));
  EXPECT_EQ(e.nodeid, ino);
  EXPECT_EQ(e.attr.size, content.size());
}

TEST_P(FsConformanceTest, WriteBeyondEndLeavesZeroHole) {
  ASSERT_OK_AND_ASSIGN(auto c, d().Create(kRoot, "sparse", O_RDWR | O_CREAT, 0644));
  ASSERT_OK_AND_ASSIGN(uint32_t n, d().Write(c.entry.nodeid, c.open.fh, 100, "tail"));
  EXPECT_EQ(n, 4u);
  ASSERT_OK_AND_ASSIGN(auto attr, d().Getattr(c.entry.nodeid));
  EXPECT_EQ(attr.attr.size, 104u);
  ASSERT_OK_AND_ASSIGN(std::string all, d().Read(c.entry.nodeid, c.open.fh, 0, 200));
  EXPECT_EQ(all, std::string(100, '\0') + "tail");
  EXPECT_EQ(d().Release(c.entry.nodeid, c.open.fh), 0);
}

TEST_P(FsConformanceTest, CreateExclusiveOnExistingIsEexist) {
  ASSERT_TRUE(d().CreateFile(kRoot, "f", "x").ok());
  EXPECT_EQ(ErrnoOf(d().Create(kRoot, "f", O_WRONLY | O_CREAT | O_EXCL).status()), EEXIST);
  EXPECT_EQ(ErrnoOf(d().Mkdir(kRoot, "f").status()), EEXIST);
}

TEST_P(FsConformanceTest, MissingNamesAreEnoent) {
  EXPECT_EQ(ErrnoOf(d().Lookup(kRoot, "nope").status()), ENOENT);
  EXPECT_EQ(d().Unlink(kRoot, "nope"), ENOENT);
  EXPECT_EQ(d().Rmdir(kRoot, "nope"), ENOENT);
  EXPECT_EQ(d().Rename(kRoot, "nope", kRoot, "other"), ENOENT);
}

TEST_P(FsConformanceTest, UnknownNodeIdsAreRejected) {
  const uint64_t bogus = 0x7fff'0000'1234ull;
  int err = ErrnoOf(d().Getattr(bogus).status());
  EXPECT_TRUE(err == ENOENT || err == ESTALE) << err;
  err = ErrnoOf(d().Lookup(bogus, "x").status());
  EXPECT_TRUE(err == ENOENT || err == ESTALE) << err;
}

TEST_P(FsConformanceTest, MkdirReaddirRmdir) {
  ASSERT_OK_AND_ASSIGN(auto dir, d().Mkdir(kRoot, "d", 0755));
  EXPECT_TRUE(S_ISDIR(dir.attr.mode));
  ASSERT_TRUE(d().CreateFile(dir.nodeid, "a", "1").ok());
  ASSERT_TRUE(d().CreateFile(dir.nodeid, "b", "22").ok());
  ASSERT_OK_AND_ASSIGN(auto sub, d().Mkdir(dir.nodeid, "sub", 0700));
  ASSERT_OK_AND_ASSIGN(auto names, d().ReaddirNames(dir.nodeid));
  EXPECT_THAT(names, ElementsAre("a", "b", "sub"));
  ASSERT_OK_AND_ASSIGN(auto root_names, d().ReaddirNames(kRoot));
  EXPECT_THAT(root_names, ElementsAre("d"));

  EXPECT_EQ(d().Rmdir(kRoot, "d"), ENOTEMPTY);
  EXPECT_EQ(d().Rmdir(dir.nodeid, "a"), ENOTDIR);
  EXPECT_EQ(d().Unlink(dir.nodeid, "sub"), EISDIR);
  EXPECT_EQ(ErrnoOf(d().Lookup(sub.nodeid, "x").status()), ENOENT);
  EXPECT_EQ(d().Unlink(dir.nodeid, "a"), 0);
  EXPECT_EQ(d().Unlink(dir.nodeid, "b"), 0);
  EXPECT_EQ(d().Rmdir(dir.nodeid, "sub"), 0);
  EXPECT_EQ(d().Rmdir(kRoot, "d"), 0);
  EXPECT_EQ(ErrnoOf(d().Lookup(kRoot, "d").status()), ENOENT);
}

TEST_P(FsConformanceTest, FileAsParentIsEnotdir) {
  ASSERT_OK_AND_ASSIGN(uint64_t f, d().CreateFile(kRoot, "f", "x"));
  EXPECT_EQ(ErrnoOf(d().Lookup(f, "x").status()), ENOTDIR);
  EXPECT_EQ(ErrnoOf(d().Create(f, "x", O_WRONLY | O_CREAT).status()), ENOTDIR);
  EXPECT_EQ(ErrnoOf(d().Opendir(f).status()), ENOTDIR);
}

TEST_P(FsConformanceTest, RenameMovesAndReplaces) {
  ASSERT_OK_AND_ASSIGN(auto dir, d().Mkdir(kRoot, "d"));
  ASSERT_OK_AND_ASSIGN(uint64_t a, d().CreateFile(kRoot, "a", "AAA"));
  ASSERT_TRUE(d().CreateFile(kRoot, "b", "BBBBB").ok());

  EXPECT_EQ(d().Rename(kRoot, "a", dir.nodeid, "moved"), 0);
  EXPECT_EQ(ErrnoOf(d().Lookup(kRoot, "a").status()), ENOENT);
  ASSERT_OK_AND_ASSIGN(auto moved, d().Lookup(dir.nodeid, "moved"));
  EXPECT_EQ(moved.nodeid, a);  // the same inode, still referenced
  ASSERT_OK_AND_ASSIGN(std::string content, d().ReadFile(moved.nodeid));
  EXPECT_EQ(content, "AAA");

  // Over an existing name: replaced. RENAME_NOREPLACE refuses.
  EXPECT_EQ(d().Rename(kRoot, "b", dir.nodeid, "moved", RENAME_NOREPLACE), EEXIST);
  EXPECT_EQ(d().Rename(kRoot, "b", dir.nodeid, "moved"), 0);
  ASSERT_OK_AND_ASSIGN(auto replaced, d().Lookup(dir.nodeid, "moved"));
  ASSERT_OK_AND_ASSIGN(std::string now, d().ReadFile(replaced.nodeid));
  EXPECT_EQ(now, "BBBBB");
  ASSERT_OK_AND_ASSIGN(auto root_names, d().ReaddirNames(kRoot));
  EXPECT_THAT(root_names, ElementsAre("d"));

  // A directory onto a non-empty directory.
  ASSERT_OK_AND_ASSIGN(auto e, d().Mkdir(kRoot, "e"));
  (void)e;
  EXPECT_EQ(d().Rename(kRoot, "e", kRoot, "d"), ENOTEMPTY);
}

TEST_P(FsConformanceTest, UnlinkedOpenFileStaysReadable) {
  ASSERT_OK_AND_ASSIGN(uint64_t ino, d().CreateFile(kRoot, "f", "still here"));
  ASSERT_OK_AND_ASSIGN(auto o, d().Open(ino, O_RDONLY));
  EXPECT_EQ(d().Unlink(kRoot, "f"), 0);
  EXPECT_EQ(ErrnoOf(d().Lookup(kRoot, "f").status()), ENOENT);
  ASSERT_OK_AND_ASSIGN(std::string content, d().Read(ino, o.fh, 0, 100));
  EXPECT_EQ(content, "still here");
  EXPECT_EQ(d().Release(ino, o.fh), 0);
  d().Forget(ino, 1);
}

TEST_P(FsConformanceTest, SetattrTruncate) {
  ASSERT_OK_AND_ASSIGN(uint64_t ino, d().CreateFile(kRoot, "f", "0123456789"));
  ASSERT_OK_AND_ASSIGN(auto a, d().Truncate(ino, 4));
  EXPECT_EQ(a.attr.size, 4u);
  ASSERT_OK_AND_ASSIGN(std::string s, d().ReadFile(ino));
  EXPECT_EQ(s, "0123");
  ASSERT_OK_AND_ASSIGN(auto o, d().Open(ino, O_RDWR));
  ASSERT_OK_AND_ASSIGN(auto b, d().Truncate(ino, 8, o.fh));
  EXPECT_EQ(b.attr.size, 8u);
  EXPECT_EQ(d().Release(ino, o.fh), 0);
  ASSERT_OK_AND_ASSIGN(s, d().ReadFile(ino));
  EXPECT_EQ(s, std::string("0123") + std::string(4, '\0'));
  ASSERT_OK_AND_ASSIGN(auto g, d().Getattr(ino));
  EXPECT_EQ(g.attr.size, 8u);
}

TEST_P(FsConformanceTest, OpenTruncEmptiesFile) {
  ASSERT_OK_AND_ASSIGN(uint64_t ino, d().CreateFile(kRoot, "f", "content"));
  ASSERT_OK_AND_ASSIGN(auto o, d().Open(ino, O_WRONLY | O_TRUNC));
  EXPECT_EQ(d().Release(ino, o.fh), 0);
  ASSERT_OK_AND_ASSIGN(auto g, d().Getattr(ino));
  EXPECT_EQ(g.attr.size, 0u);
}

TEST_P(FsConformanceTest, SetattrModeAndTimes) {
  ASSERT_OK_AND_ASSIGN(uint64_t ino, d().CreateFile(kRoot, "f", "x", 0644));
  abi::fuse_setattr_in in{};
  in.valid = abi::FATTR_MODE | abi::FATTR_MTIME | abi::FATTR_ATIME;
  in.mode = S_IFREG | 0600;
  in.mtime = 1000000000;
  in.mtimensec = 5;
  in.atime = 999999999;
  ASSERT_OK_AND_ASSIGN(auto a, d().Setattr(ino, in));
  EXPECT_EQ(a.attr.mode & 07777, 0600u);
  EXPECT_EQ(a.attr.mtime, 1000000000u);
  EXPECT_EQ(a.attr.mtimensec, 5u);
  EXPECT_EQ(a.attr.atime, 999999999u);
  ASSERT_OK_AND_ASSIGN(auto g, d().Getattr(ino));
  EXPECT_EQ(g.attr.mode & 07777, 0600u);
}

TEST_P(FsConformanceTest, SymlinkAndReadlink) {
  ASSERT_OK_AND_ASSIGN(auto l, d().Symlink(kRoot, "l", "some/target"));
  EXPECT_TRUE(S_ISLNK(l.attr.mode));
  ASSERT_OK_AND_ASSIGN(std::string t, d().Readlink(l.nodeid));
  EXPECT_EQ(t, "some/target");
  ASSERT_OK_AND_ASSIGN(auto e, d().Lookup(kRoot, "l"));
  EXPECT_EQ(e.nodeid, l.nodeid);
  EXPECT_TRUE(S_ISLNK(e.attr.mode));
  EXPECT_EQ(ErrnoOf(d().Symlink(kRoot, "l", "x").status()), EEXIST);
}

TEST_P(FsConformanceTest, LookupCountsKeepTheNodeId) {
  ASSERT_OK_AND_ASSIGN(uint64_t ino, d().CreateFile(kRoot, "f", "x"));  // count 1
  ASSERT_OK_AND_ASSIGN(auto e1, d().Lookup(kRoot, "f"));                // 2
  ASSERT_OK_AND_ASSIGN(auto e2, d().Lookup(kRoot, "f"));                // 3
  EXPECT_EQ(e1.nodeid, ino);
  EXPECT_EQ(e2.nodeid, ino);
  d().Forget(ino, 2);
  // Still referenced once: the id stays valid.
  ASSERT_OK_AND_ASSIGN(auto g, d().Getattr(ino));
  EXPECT_EQ(g.attr.size, 1u);
  d().Forget(ino, 1);
  // Fully forgotten: the name still resolves (perhaps to a new id).
  ASSERT_OK_AND_ASSIGN(auto e3, d().Lookup(kRoot, "f"));
  ASSERT_OK_AND_ASSIGN(std::string s, d().ReadFile(e3.nodeid));
  EXPECT_EQ(s, "x");
  d().Forget(e3.nodeid, 1);
  // The root is never forgotten.
  d().Forget(kRoot, 1000);
  EXPECT_TRUE(d().Getattr(kRoot).ok());
}

TEST_P(FsConformanceTest, HardLinkSharesContent) {
  ASSERT_OK_AND_ASSIGN(uint64_t ino, d().CreateFile(kRoot, "f", "shared"));
  ASSERT_OK_AND_ASSIGN(auto l, d().Link(ino, kRoot, "g"));
  EXPECT_EQ(l.nodeid, ino);
  EXPECT_EQ(l.attr.nlink, 2u);
  EXPECT_EQ(d().Unlink(kRoot, "f"), 0);
  ASSERT_OK_AND_ASSIGN(auto g, d().Lookup(kRoot, "g"));
  ASSERT_OK_AND_ASSIGN(std::string s, d().ReadFile(g.nodeid));
  EXPECT_EQ(s, "shared");
}

TEST_P(FsConformanceTest, ReaddirAcrossManySmallRequests) {
  std::vector<std::string> want;
  for (int i = 0; i < 150; ++i) {
    char name[32];
    snprintf(name, sizeof(name), "entry-%03d", i);
    want.push_back(name);
    ASSERT_OK_AND_ASSIGN(auto c, d().Create(kRoot, name, O_WRONLY | O_CREAT, 0644));
    ASSERT_EQ(d().Release(c.entry.nodeid, c.open.fh), 0);
  }
  // 200 bytes: a handful of entries per request.
  ASSERT_OK_AND_ASSIGN(auto all, d().ReaddirAll(kRoot, false, 200));
  std::vector<std::string> got;
  for (const auto& e : all) {
    if (e.name != "." && e.name != "..") got.push_back(e.name);
  }
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want);
}

TEST_P(FsConformanceTest, ReaddirplusEntriesAreLookups) {
  ASSERT_OK_AND_ASSIGN(uint64_t ino, d().CreateFile(kRoot, "f", "abc"));
  ASSERT_OK_AND_ASSIGN(auto all, d().ReaddirAll(kRoot, true));
  bool seen = false;
  for (const auto& e : all) {
    ASSERT_TRUE(e.entry.has_value());
    if (e.name != "f") continue;
    seen = true;
    EXPECT_EQ(e.entry->nodeid, ino);
    EXPECT_EQ(e.entry->attr.size, 3u);
    EXPECT_TRUE(S_ISREG(e.entry->attr.mode));
  }
  EXPECT_TRUE(seen);
  // Create + READDIRPLUS = 2 references; dropping one keeps the id.
  d().Forget(ino, 1);
  EXPECT_TRUE(d().Getattr(ino).ok());
  d().Forget(ino, 1);
}

TEST_P(FsConformanceTest, UnknownFileHandleIsRejected) {
  ASSERT_OK_AND_ASSIGN(uint64_t ino, d().CreateFile(kRoot, "f", "abc"));
  EXPECT_FALSE(d().Read(ino, 0xdead'beef, 0, 10).ok());
  EXPECT_FALSE(d().Write(ino, 0xdead'beef, 0, "x").ok());
}

}  // namespace kmfuse::testing
