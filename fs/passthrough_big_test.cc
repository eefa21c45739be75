// PassthroughFs over a tree with far more files than RLIMIT_NOFILE allows
// fds: every file stays looked up (the kernel's view of a big `find`), yet
// the daemon holds no more inode fds than its budget. 200,000 files (about
// 15 s on ext4); tagged manual to keep the default suite fast: bazel test //fs:passthrough_big_test
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kmfuse/passthrough.h"
#include "kmfuse/testing/fs_testing.h"

namespace kmfuse {
namespace {

using ::kmfuse::testing::FsDriver;
using ::kmfuse::testing::TempDir;

TEST(PassthroughBigTest, TwoHundredThousandFilesWithinTheDefaultBudget) {
  constexpr int kDirs = 100;
  constexpr int kPerDir = 2000;
  struct rlimit rl;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  TempDir src;
  for (int d = 0; d < kDirs; ++d) {
    std::string dir = src.Join("d" + std::to_string(d));
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    for (int f = 0; f < kPerDir; ++f) {
      std::string p = dir + "/" + std::to_string(f);
      int fd = open(p.c_str(), O_CREAT | O_WRONLY, 0644);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(write(fd, p.data() + p.size() - 1, 1), 1);
      close(fd);
    }
  }
  PassthroughOptions opts;
  opts.source = src.path();
  auto fs = PassthroughFs::Create(opts);
  ASSERT_TRUE(fs.ok()) << fs.status();
  FsDriver drv(fs->get());
  ASSERT_TRUE(drv.Init().ok());
  const size_t budget = (*fs)->fd_budget();
  ASSERT_LT(budget, static_cast<size_t>(kDirs) * kPerDir);
  ASSERT_LE(budget, rl.rlim_cur);
  size_t total = 0;
  for (int d = 0; d < kDirs; ++d) {
    auto dir = drv.Lookup(abi::FUSE_ROOT_ID, "d" + std::to_string(d));
    ASSERT_TRUE(dir.ok()) << dir.status();
    // READDIRPLUS takes a lookup on every entry, like `ls -l` does.
    auto entries = drv.ReaddirAll(dir->nodeid, /*plus=*/true, 64 * 1024);
    ASSERT_TRUE(entries.ok()) << entries.status();
    for (const auto& e : *entries) {
      if (e.entry->nodeid == 0) continue;
      auto content = drv.ReadFile(e.entry->nodeid);
      ASSERT_TRUE(content.ok()) << e.name << ": " << content.status();
      ASSERT_EQ(*content, e.name.substr(e.name.size() - 1));
      ++total;
    }
    ASSERT_LE((*fs)->open_inode_fds(), budget);
  }
  EXPECT_EQ(total, static_cast<size_t>(kDirs) * kPerDir);
  EXPECT_EQ((*fs)->inode_count(), static_cast<size_t>(kDirs) * kPerDir + kDirs + 1);
}

}  // namespace
}  // namespace kmfuse
