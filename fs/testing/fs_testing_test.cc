// The shared test helpers' own contracts: Pattern is addressable by offset,
// ASSERT_OK_AND_ASSIGN unwraps, ForwardingFs reaches the inner filesystem
// for every call a test does not override.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "kmfuse/memfs.h"
#include "kmfuse/testing/forwarding_fs.h"
#include "kmfuse/testing/fs_testing.h"
#include "kmfuse/testing/pattern.h"
#include "kmfuse/testing/status_macros.h"

namespace kmfuse::testing {
namespace {

constexpr uint64_t kRoot = abi::FUSE_ROOT_ID;

TEST(PatternTest, AnyRangeEqualsTheSameBytesOfTheWholeStream) {
  const std::string whole = Pattern(100000, 7);
  ASSERT_EQ(whole.size(), 100000u);
  for (uint64_t off : {0u, 1u, 7u, 8u, 9u, 4095u, 65536u, 99990u}) {
    for (size_t len : {0u, 1u, 3u, 8u, 10u}) {
      EXPECT_EQ(PatternAt(7, off, len), whole.substr(off, len)) << off << "+" << len;
    }
  }
  char buf[13];
  FillPattern(7, 12345, buf, sizeof(buf));
  EXPECT_EQ(std::string(buf, sizeof(buf)), whole.substr(12345, sizeof(buf)));
}

TEST(PatternTest, SeedsGiveDifferentStreamsAndTheSameSeedTheSame) {
  EXPECT_EQ(Pattern(4096, 1), Pattern(4096, 1));
  EXPECT_NE(Pattern(4096, 1), Pattern(4096, 2));
  EXPECT_NE(Pattern(4096, 0), std::string(4096, '\0'));
  // Not periodic in the word: shifting by 8 bytes gives other content.
  EXPECT_NE(PatternAt(3, 0, 64), PatternAt(3, 8, 64));
}

absl::StatusOr<int> Value(bool ok) {
  if (!ok) return absl::NotFoundError("no value");
  return 42;
}

TEST(StatusMacrosTest, AssignsTheValue) {
  ASSERT_OK_AND_ASSIGN(int v, Value(true));
  EXPECT_EQ(v, 42);
  int existing = 0;
  ASSERT_OK_AND_ASSIGN(existing, Value(true));
  EXPECT_EQ(existing, 42);
}

TEST(StatusMacrosTest, FailsOnAnError) {
  EXPECT_FATAL_FAILURE(
      {
        ASSERT_OK_AND_ASSIGN(int v, Value(false));
        (void)v;
      },
      "no value");
}

// Every call below would be ENOSYS from FileSystem's defaults: each success
// is a call ForwardingFs handed to the MemFs.
TEST(ForwardingFsTest, EveryCallReachesTheInnerFilesystem) {
  std::unique_ptr<MemFs> mem = MemFs::Create(MemFsOptions{});
  ForwardingFs fwd(mem.get());
  EXPECT_EQ(fwd.inner(), mem.get());
  FsDriver d(&fwd);
  ASSERT_TRUE(d.Init().ok());

  ASSERT_OK_AND_ASSIGN(Created c, d.Create(kRoot, "f", O_RDWR));
  const uint64_t f = c.entry.nodeid, fh = c.open.fh;
  EXPECT_EQ(d.Write(f, fh, 0, "hello").value_or(0), 5u);
  EXPECT_EQ(d.Read(f, fh, 0, 100).value_or(""), "hello");
  EXPECT_EQ(d.Flush(f, fh), 0);
  EXPECT_EQ(d.Fsync(f, fh), 0);
  EXPECT_TRUE(d.Lookup(kRoot, "f").ok());
  EXPECT_TRUE(d.Getattr(f).ok());
  EXPECT_TRUE(d.Truncate(f, 3).ok());
  EXPECT_EQ(d.Setxattr(f, "user.k", "v"), 0);
  EXPECT_EQ(d.Getxattr(f, "user.k", 16).value_or(""), "v");
  EXPECT_TRUE(d.Listxattr(f, 64).ok());
  EXPECT_EQ(d.Removexattr(f, "user.k"), 0);
  EXPECT_EQ(d.Access(f, R_OK), 0);
  EXPECT_EQ(d.Release(f, fh), 0);
  ASSERT_OK_AND_ASSIGN(abi::fuse_entry_out dir, d.Mkdir(kRoot, "d"));
  EXPECT_TRUE(d.Symlink(dir.nodeid, "s", "../f").ok());
  EXPECT_TRUE(d.Link(f, dir.nodeid, "h").ok());
  EXPECT_EQ(d.Rename(dir.nodeid, "h", kRoot, "h2"), 0);
  EXPECT_TRUE(d.Mknod(kRoot, "n", S_IFREG | 0644).ok());
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, d.ReaddirNames(kRoot));
  EXPECT_EQ(names, (std::vector<std::string>{"d", "f", "h2", "n"}));
  EXPECT_TRUE(d.Statfs(kRoot).ok());
  EXPECT_EQ(d.Unlink(kRoot, "n"), 0);
  EXPECT_EQ(d.Unlink(dir.nodeid, "s"), 0);
  EXPECT_EQ(d.Rmdir(kRoot, "d"), 0);
  fwd.Destroy();
}

// A test overrides one call; the others still forward.
class CountingReads final : public ForwardingFs {
 public:
  using ForwardingFs::ForwardingFs;
  std::atomic<int> reads{0};
  void Read(const RequestContext& ctx, uint64_t ino, const abi::fuse_read_in& in,
            Reply r) override {
    reads++;
    ForwardingFs::Read(ctx, ino, in, std::move(r));
  }
};

TEST(ForwardingFsTest, AnOverrideSeesItsCallsAndForwardsTheRest) {
  std::unique_ptr<MemFs> mem = MemFs::Create(MemFsOptions{});
  CountingReads fs(mem.get());
  FsDriver d(&fs);
  ASSERT_TRUE(d.Init().ok());
  ASSERT_OK_AND_ASSIGN(uint64_t f, d.CreateFile(kRoot, "f", "content"));
  EXPECT_EQ(fs.reads.load(), 0);
  EXPECT_EQ(d.ReadFile(f).value_or(""), "content");
  EXPECT_GE(fs.reads.load(), 1);
}

}  // namespace
}  // namespace kmfuse::testing
