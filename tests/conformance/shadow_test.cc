// Randomized operation sequences applied to the mount and to a native shadow
// tree; results and errno are compared after every operation and the whole
// tree at the end of each seed. Per transport, default mount options.
//
// Environment:
//   KMFUSE_SHADOW_SEEDS  number of seeds (default 20), seeds 1..N
//   KMFUSE_SHADOW_OPS    operations per seed (default 300)
//   KMFUSE_SHADOW_SEED   run only this seed (replays a reported divergence)
//
// A divergence reports the seed, the index of the op and the op log up to
// it. Each seed runs in its own subdirectory of one mount.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/conformance/twin.h"

namespace kmfuse::conformance {
namespace {

constexpr int kSlots = 3;

// One side of the comparison: a root and the fds held in slots.
struct Side {
  std::string root;
  std::array<int, kSlots> fds{-1, -1, -1};
  std::string P(const std::string& rel) const { return root + "/" + rel; }
  void CloseAll() {
    for (int& fd : fds) {
      if (fd >= 0) close(fd);
      fd = -1;
    }
  }
};

// A generated operation; Apply runs it on one side.
struct Op {
  int kind = 0;
  std::string p, q;
  int flags = 0;
  int64_t off = 0, len = 0;
  int slot = 0;
  uint32_t data_seed = 0;

  std::string Describe() const {
    switch (kind) {
      case 0: return absl::StrCat("create ", p, " flags=0", absl::Hex(flags));
      case 1: return absl::StrCat("write ", p, " off=", off, " len=", len);
      case 2: return absl::StrCat("truncate ", p, " ", off);
      case 3: return absl::StrCat("rename ", p, " -> ", q);
      case 4: return absl::StrCat("link ", p, " -> ", q);
      case 5: return absl::StrCat("unlink ", p);
      case 6: return absl::StrCat("mkdir ", p);
      case 7: return absl::StrCat("rmdir ", p);
      case 8: return absl::StrCat("read-compare ", p);
      case 9: return absl::StrCat("fsync ", p);
      case 10: return absl::StrCat("open slot ", slot, " ", p);
      case 11: return absl::StrCat("slot ", slot, " pwrite off=", off, " len=", len);
      case 12: return absl::StrCat("slot ", slot, " pread off=", off, " len=", len);
      case 13: return absl::StrCat("slot ", slot, " ftruncate ", off, " + fstat");
      case 14: return absl::StrCat("close slot ", slot);
      case 15: return absl::StrCat("lstat ", p);
    }
    return "?";
  }

  Outcome Apply(Side& s) const {
    switch (kind) {
      case 0: {
        int fd = open(s.P(p).c_str(), flags | O_CLOEXEC, 0644);
        Outcome o = Sys(fd);
        if (fd >= 0) {
          o.ret = 0;
          close(fd);
        }
        return o;
      }
      case 1: {
        int fd = open(s.P(p).c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) return Sys(-1);
        std::string d = Pattern(static_cast<size_t>(len), data_seed);
        Outcome o = Sys(pwrite(fd, d.data(), d.size(), off));
        close(fd);
        return o;
      }
      case 2: return Sys(truncate(s.P(p).c_str(), off));
      case 3: return Sys(rename(s.P(p).c_str(), s.P(q).c_str()));
      case 4: return Sys(link(s.P(p).c_str(), s.P(q).c_str()));
      case 5: return Sys(unlink(s.P(p).c_str()));
      case 6: return Sys(mkdir(s.P(p).c_str(), 0755));
      case 7: return Sys(rmdir(s.P(p).c_str()));
      case 8: {
        int fd = open(s.P(p).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return Sys(-1);
        std::string all;
        char buf[1 << 16];
        ssize_t n;
        while ((n = read(fd, buf, sizeof(buf))) > 0) all.append(buf, static_cast<size_t>(n));
        Outcome o = n < 0 ? Sys(-1) : SysData(static_cast<int64_t>(all.size()), all);
        close(fd);
        return o;
      }
      case 9: {
        int fd = open(s.P(p).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return Sys(-1);
        Outcome o = Sys(fsync(fd));
        close(fd);
        return o;
      }
      case 10: {
        if (s.fds[slot] >= 0) close(s.fds[slot]);
        s.fds[slot] = open(s.P(p).c_str(), O_RDWR | O_CLOEXEC);
        return Sys(s.fds[slot] < 0 ? -1 : 0);
      }
      case 11: {
        std::string d = Pattern(static_cast<size_t>(len), data_seed);
        return Sys(pwrite(s.fds[slot], d.data(), d.size(), off));
      }
      case 12: {
        std::string buf(static_cast<size_t>(len), '\0');
        ssize_t n = pread(s.fds[slot], buf.data(), buf.size(), off);
        return SysData(n, n > 0 ? buf.substr(0, static_cast<size_t>(n)) : "");
      }
      case 13: {
        if (ftruncate(s.fds[slot], off) != 0) return Sys(-1);
        struct stat st;
        if (fstat(s.fds[slot], &st) != 0) return Sys(-1);
        return SysData(0, absl::StrCat("size=", st.st_size, " nlink=", st.st_nlink,
                                       " mode=", st.st_mode));
      }
      case 14: {
        int fd = s.fds[slot];
        s.fds[slot] = -1;
        return Sys(fd < 0 ? 0 : close(fd));
      }
      case 15: {
        StatFields f = LstatFields(s.P(p));
        Outcome o;
        o.ret = f.err ? -1 : 0;
        o.err = f.err;
        if (!f.err) o.data = conformance::Describe(f);
        return o;
      }
    }
    return Sys(0);
  }
};

std::string RandomPath(std::mt19937& rng) {
  static const char* kDirs[] = {"", "d0/", "d1/", "d0/d1/"};
  static const char* kLeaves[] = {"a", "b", "c", "d0", "d1"};
  return absl::StrCat(kDirs[rng() % 4], kLeaves[rng() % 5]);
}

Op RandomOp(std::mt19937& rng, uint32_t data_seed) {
  Op op;
  // Weights: writes and creates dominate so files have content to compare.
  static const int kWeights[] = {10, 14, 6, 8, 5, 6, 8, 5, 8, 3, 5, 8, 5, 3, 3, 4};
  int total = 0;
  for (int w : kWeights) total += w;
  int pick = static_cast<int>(rng() % static_cast<unsigned>(total));
  for (op.kind = 0; pick >= kWeights[op.kind]; op.kind++) pick -= kWeights[op.kind];
  op.p = RandomPath(rng);
  op.q = RandomPath(rng);
  op.slot = static_cast<int>(rng() % kSlots);
  op.data_seed = data_seed;
  op.flags = O_CREAT | O_WRONLY;
  if (rng() % 3 == 0) op.flags |= O_EXCL;
  if (rng() % 3 == 0) op.flags |= O_TRUNC;
  // Offsets up to ~300 KB cross page and request boundaries and leave holes.
  op.off = rng() % 3 == 0 ? rng() % 4096 : rng() % 300000;
  op.len = 1 + rng() % (rng() % 4 == 0 ? 70000 : 5000);
  return op;
}

// (transport, variant): every transport with kernel passthrough off
// ("default") and on ("passthrough").
class ShadowTest : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  const std::string& transport() const { return std::get<0>(GetParam()); }
  const std::string& variant() const { return std::get<1>(GetParam()); }
};

TEST_P(ShadowTest, RandomOperationsMatchNative) {
  if (std::string why = TransportSkipReason(transport()); !why.empty()) GTEST_SKIP() << why;
  umask(022);
  const uint64_t seeds = EnvNumber("KMFUSE_SHADOW_SEEDS", 20);
  const uint64_t ops = EnvNumber("KMFUSE_SHADOW_OPS", 300);
  const uint64_t only = EnvNumber("KMFUSE_SHADOW_SEED", 0);
  std::vector<uint64_t> seed_list;
  if (only != 0) {
    seed_list.push_back(only);
  } else {
    for (uint64_t s = 1; s <= seeds; s++) seed_list.push_back(s);
  }
  Twin twin(transport(), variant());
  // The watchdog bounds the run; scale it with the work asked for.
  absl::Status st = twin.Start(absl::Seconds(60) + absl::Milliseconds(30) *
                                                       static_cast<int64_t>(seed_list.size() * ops));
  ASSERT_TRUE(st.ok()) << st;
  int failed_seeds = 0;
  for (uint64_t seed : seed_list) {
    const std::string dir = absl::StrCat("seed-", seed);
    ASSERT_EQ(mkdir(twin.M(dir).c_str(), 0755), 0) << strerror(errno);
    ASSERT_EQ(mkdir(twin.N(dir).c_str(), 0755), 0) << strerror(errno);
    Side m{twin.M(dir)}, n{twin.N(dir)};
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::vector<std::string> log;
    bool diverged = false;
    for (uint64_t i = 0; i < ops && !diverged; i++) {
      Op op = RandomOp(rng, static_cast<uint32_t>(seed * 100003 + i));
      log.push_back(absl::StrCat("#", i, " ", op.Describe()));
      Outcome om = op.Apply(m);
      Outcome on = op.Apply(n);
      if (om != on) {
        diverged = true;
        ADD_FAILURE() << "transport " << transport() << " (" << variant() << "): seed " << seed << " diverged at op " << i
                      << ": mount " << Describe(om) << ", native " << Describe(on)
                      << "\nreplay: KMFUSE_SHADOW_SEED=" << seed << " KMFUSE_SHADOW_OPS=" << ops
                      << "\nop log:\n  " << absl::StrJoin(log, "\n  ");
      }
    }
    m.CloseAll();
    n.CloseAll();
    if (!diverged) {
      ::testing::AssertionResult same = SameTree(m.root, n.root);
      if (!same) {
        diverged = true;
        ADD_FAILURE() << "transport " << transport() << " (" << variant() << "): seed " << seed << ": after " << ops
                      << " ops the trees differ: " << same.message()
                      << "\nreplay: KMFUSE_SHADOW_SEED=" << seed << " KMFUSE_SHADOW_OPS=" << ops
                      << "\nop log:\n  " << absl::StrJoin(log, "\n  ");
      }
    }
    if (diverged && ++failed_seeds >= 3) break;
  }
  EXPECT_TRUE(twin.Stop());
}

INSTANTIATE_TEST_SUITE_P(
    Transports, ShadowTest,
    ::testing::Combine(::testing::ValuesIn(Transports()),
                       ::testing::Values(std::string("default"), std::string("passthrough"))),
    [](const ::testing::TestParamInfo<std::tuple<std::string, std::string>>& info) {
      std::string s = std::get<0>(info.param) + "_" + std::get<1>(info.param);
      for (char& c : s) {
        if (c == '-') c = '_';
      }
      return s;
    });

}  // namespace
}  // namespace kmfuse::conformance
