// Replays the fuzz corpus and the regression inputs through the fuzz
// harness (gcc build, every `bazel test //...`), and sends hostile requests
// one at a time with the exact answers they must get.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kmfuse/fuse_abi.h"
#include "tests/fuzz/corpus_requests.h"
#include "tests/fuzz/harness.h"
#include "tests/fuzz/request_builder.h"

namespace kmfuse::fuzz {
namespace {

using namespace kmfuse::abi;  // NOLINT
using seeds::CreateIn;
using seeds::R;
using seeds::U32Pair;
using seeds::U64;

std::string RunfilesDir(const std::string& rel) {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* ws = getenv("TEST_WORKSPACE");
  return std::string(srcdir ? srcdir : ".") + "/" + (ws ? ws : "kmfuse") + "/" + rel;
}

// Regular files in dir (sorted), without the directory's README.
std::vector<std::string> Files(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == ".." || name == "README.md") continue;
    out.push_back(dir + "/" + name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Replays one input (the harness aborts on a broken invariant) and checks it
// really exercised Deliver: at least one request, and for a seed at least one
// decoded or answered (a seed of malformed requests gets EINVAL answers).
void Replay(const std::string& path, bool seed) {
  SCOPED_TRACE(path);
  std::string data = Slurp(path);
  ASSERT_FALSE(data.empty()) << "empty input";
  std::vector<Outcome> out = RunInput(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  ASSERT_FALSE(out.empty()) << "no request in the input";
  size_t delivered = 0;
  for (const Outcome& o : out) delivered += o.decode == 0 || o.error != 0;
  if (seed) { EXPECT_GT(delivered, 0u) << "no request of the seed decoded or answered"; }
}

TEST(CorpusReplay, EveryCorpusFile) {
  std::vector<std::string> files = Files(RunfilesDir("tests/fuzz/corpus"));
  ASSERT_GE(files.size(), 2 * CorpusSeeds().size()) << "corpus missing from runfiles";
  for (const std::string& f : files) Replay(f, /*seed=*/true);
}

TEST(CorpusReplay, EveryRegressionFile) {
  std::vector<std::string> files = Files(RunfilesDir("tests/fuzz/regressions"));
  if (files.empty()) {
    GTEST_SKIP() << "tests/fuzz/regressions holds no input yet (no fuzz run has found an "
                    "invariant violation to keep)";
  }
  for (const std::string& f : files) Replay(f, /*seed=*/false);
}

TEST(CorpusReplay, CommittedSeedsMatchTheGenerator) {
  for (const Seed& seed : CorpusSeeds()) {
    for (bool split : {false, true}) {
      std::string path = RunfilesDir("tests/fuzz/corpus/" + seed.name + (split ? ".split" : ".contig"));
      EXPECT_EQ(Slurp(path), Input(split, seed.reqs))
          << path << " is stale: bazel run //tests/fuzz:gen_corpus -- $PWD/tests/fuzz/corpus";
    }
  }
}

// ---- hostile requests, in both layouts ----

class Hostile : public ::testing::TestWithParam<bool> {
 protected:
  bool split() const { return GetParam(); }
  Outcome Run(const Req& r) { return RunReq(h_, split(), r, ++unique_); }
  // Runs r and returns its errno; fails the test if it was not dispatched
  // and committed.
  int Errno(const Req& r) {
    Outcome o = Run(r);
    EXPECT_EQ(o.decode, 0);
    EXPECT_FALSE(o.dropped);
    return o.error;
  }
  bool Dropped(const Req& r) {
    Outcome o = Run(r);
    return o.decode == 0 && o.dropped;
  }
  // A regular file "f" in the root with `content`: node 2, handle 1.
  void MakeFile(const std::string& content) {
    ASSERT_EQ(Errno(R(FUSE_CREATE, 1, CreateIn(O_RDWR | O_CREAT, 0644), Names({"f"}))), 0);
    if (!content.empty()) {
      ASSERT_EQ(Errno(R(FUSE_WRITE, 2, seeds::Write(1, 0, content.size()), content)), 0);
    }
  }
  size_t ArgAreaSize() const {
    return split() ? kPayloadCapacity : kSlotSize - kSlotArgOffset;
  }

  Harness h_;
  uint64_t unique_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Layouts, Hostile, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return std::string(i.param ? "Split" : "Contiguous");
                         });

TEST_P(Hostile, UnknownOpcodesAreEnosys) {
  for (uint32_t op : {0u, 7u, 19u, uint32_t{FUSE_OPCODE_LIMIT}, 4096u, 0xffffffffu}) {
    EXPECT_EQ(Errno(R(op, 1)), ENOSYS) << op;
  }
  // Known to the table but not served by kmfuse.
  for (uint32_t op : {uint32_t{FUSE_BMAP}, uint32_t{FUSE_IOCTL}, uint32_t{FUSE_POLL},
                      uint32_t{FUSE_SETUPMAPPING}, uint32_t{FUSE_COPY_FILE_RANGE_64}}) {
    EXPECT_EQ(Errno(R(op, 1, std::string(56, '\0'))), ENOSYS) << op;
  }
  EXPECT_EQ(Errno(R(FUSE_INIT, 0, std::string(64, '\0'))), EIO);
}

TEST_P(Hostile, ExtensionsLongerThanTheRequestAreRejected) {
  Req r = R(FUSE_LOOKUP, 1, {}, Names({"x"}));
  r.total_extlen = 1;  // 8 bytes, more than the 2 bytes of arguments
  EXPECT_EQ(Run(r).decode, -EINVAL);
  r.total_extlen = 0xffff;
  EXPECT_EQ(Run(r).decode, -EINVAL);
}

TEST_P(Hostile, NamesWithoutNulOrWithSlashAreEinval) {
  fuse_mkdir_in md{0755, 0};
  fuse_mknod_in mk{S_IFREG | 0644, 0, 0, 0};
  EXPECT_EQ(Errno(R(FUSE_LOOKUP, 1, {}, "no-nul")), EINVAL);
  EXPECT_EQ(Errno(R(FUSE_LOOKUP, 1, {}, "")), EINVAL);
  EXPECT_EQ(Errno(R(FUSE_LOOKUP, 1, {}, Names({"a/b"}))), EINVAL);
  EXPECT_EQ(Errno(R(FUSE_LOOKUP, 1, {}, Names({""}))), EINVAL);
  EXPECT_EQ(Errno(R(FUSE_LOOKUP, 1, {}, Names({std::string(256, 'n')}))), ENAMETOOLONG);  // well formed, too long
  EXPECT_EQ(Errno(R(FUSE_LOOKUP, 1, {}, Names({std::string(255, 'n')}))), ENOENT);
  EXPECT_EQ(Errno(R(FUSE_MKDIR, 1, Bytes(md), Names({"/"}))), EINVAL);
  EXPECT_EQ(Errno(R(FUSE_MKNOD, 1, Bytes(mk), "x")), EINVAL);
  EXPECT_EQ(Errno(R(FUSE_UNLINK, 1, {}, Names({"a/"}))), EINVAL);
  EXPECT_EQ(Errno(R(FUSE_SYMLINK, 1, {}, Names({"s"}))), EINVAL);  // no target
  EXPECT_EQ(Errno(R(FUSE_SYMLINK, 1, {}, Names({"s", ""}))), EINVAL);
  EXPECT_EQ(Errno(R(FUSE_RENAME, 1, U64(1), Names({"a"}))), EINVAL);  // no new name
  EXPECT_EQ(Errno(R(FUSE_GETXATTR, 1, U32Pair(0, 0), "user.no-nul")), EINVAL);
  EXPECT_EQ(Errno(R(FUSE_REMOVEXATTR, 1, {}, Names({""}))), EINVAL);
  // None of them created anything.
  EXPECT_EQ(Errno(R(FUSE_LOOKUP, 1, {}, Names({"x"}))), ENOENT);
  EXPECT_EQ(Errno(R(FUSE_LOOKUP, 1, {}, Names({"s"}))), ENOENT);
}

TEST_P(Hostile, DotAndDotDotAreNeverNewNames) {
  MakeFile("");
  fuse_mkdir_in md{0755, 0};
  fuse_mknod_in mk{S_IFREG | 0644, 0, 0, 0};
  for (const char* bad : {".", ".."}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(Errno(R(FUSE_MKDIR, 1, Bytes(md), Names({bad}))), EINVAL);
    EXPECT_EQ(Errno(R(FUSE_MKNOD, 1, Bytes(mk), Names({bad}))), EINVAL);
    EXPECT_EQ(Errno(R(FUSE_CREATE, 1, CreateIn(O_RDWR | O_CREAT, 0644), Names({bad}))), EINVAL);
    EXPECT_EQ(Errno(R(FUSE_SYMLINK, 1, {}, Names({bad, "t"}))), EINVAL);
    EXPECT_EQ(Errno(R(FUSE_LINK, 1, U64(2), Names({bad}))), EINVAL);
    EXPECT_EQ(Errno(R(FUSE_RENAME, 1, U64(1), Names({"f", bad}))), EINVAL);
    EXPECT_EQ(Errno(R(FUSE_RENAME, 1, U64(1), Names({bad, "g"}))), EINVAL);
    EXPECT_EQ(Errno(R(FUSE_UNLINK, 1, {}, Names({bad}))), EINVAL);
    EXPECT_EQ(Errno(R(FUSE_RMDIR, 1, {}, Names({bad}))), EINVAL);
  }
  // "f" is still there under its name.
  EXPECT_EQ(Errno(R(FUSE_LOOKUP, 1, {}, Names({"f"}))), 0);
}

TEST_P(Hostile, WriteLargerThanItsPayloadIsEinval) {
  MakeFile("");
  EXPECT_EQ(Errno(R(FUSE_WRITE, 2, seeds::Write(1, 0, 1000), "short")), EINVAL);
  EXPECT_EQ(Errno(R(FUSE_WRITE, 2, seeds::Write(1, 0, 0xffffffff), "short")), EINVAL);
  // Nothing was written.
  Outcome o = Run(R(FUSE_READ, 2, seeds::Read(1, 0, 4096)));
  EXPECT_EQ(o.error, 0);
  EXPECT_EQ(o.args, "");
}

TEST_P(Hostile, OffsetsThatOverflowAreEfbig) {
  MakeFile("abc");
  EXPECT_EQ(Errno(R(FUSE_WRITE, 2, seeds::Write(1, ~uint64_t{0} - 2, 5), "abcde")), EFBIG);
  EXPECT_EQ(Errno(R(FUSE_WRITE, 2, seeds::Write(1, uint64_t{1} << 63, 1), "a")), EFBIG);
  fuse_fallocate_in fa{1, ~uint64_t{0} - 10, 100, 0, 0};
  EXPECT_EQ(Errno(R(FUSE_FALLOCATE, 2, Bytes(fa))), EFBIG);
  fa = {1, 0, 0, 0, 0};
  EXPECT_EQ(Errno(R(FUSE_FALLOCATE, 2, Bytes(fa))), EINVAL);
  // In range but past the 8 MiB capacity.
  fa = {1, 0, uint64_t{1} << 40, 0, 0};
  EXPECT_EQ(Errno(R(FUSE_FALLOCATE, 2, Bytes(fa))), ENOSPC);
  EXPECT_EQ(Errno(R(FUSE_WRITE, 2, seeds::Write(1, uint64_t{1} << 40, 1), "a")), ENOSPC);
  // Reads past the end are empty, never an error.
  Outcome o = Run(R(FUSE_READ, 2, seeds::Read(1, ~uint64_t{0}, 10)));
  EXPECT_EQ(o.error, 0);
  EXPECT_EQ(o.args, "");
  fuse_lseek_in ls{1, ~uint64_t{0}, SEEK_DATA, 0};
  EXPECT_EQ(Errno(R(FUSE_LSEEK, 2, Bytes(ls))), ENXIO);
  // The file is unchanged.
  o = Run(R(FUSE_READ, 2, seeds::Read(1, 0, 100)));
  EXPECT_EQ(o.args, "abc");
}

TEST_P(Hostile, ReadLargerThanTheBufferIsCappedAtTheBuffer) {
  MakeFile("");
  const std::string chunk(64 * 1024, 'z');
  for (uint64_t off = 0; off < 4 * chunk.size(); off += chunk.size()) {
    ASSERT_EQ(Errno(R(FUSE_WRITE, 2, seeds::Write(1, off, chunk.size()), chunk)), 0);
  }
  Outcome o = Run(R(FUSE_READ, 2, seeds::Read(1, 0, 0xffffffff)));
  EXPECT_EQ(o.error, 0);
  EXPECT_EQ(o.args.size(), ArgAreaSize());
  o = Run(R(FUSE_READ, 2, seeds::Read(1, 10, 7)));
  EXPECT_EQ(o.args, "zzzzzzz");
}

TEST_P(Hostile, BatchForgetCountLargerThanItsPayloadIsBounded) {
  MakeFile("");
  fuse_forget_one one{2, 1};
  // Claims 2^32-1 entries, carries one (plus a partial one).
  EXPECT_TRUE(Dropped(R(FUSE_BATCH_FORGET, 0, U32Pair(0xffffffff, 0), Bytes(one) + "partial")));
  EXPECT_TRUE(Dropped(R(FUSE_BATCH_FORGET, 0, U32Pair(5, 0), {})));
  // The file keeps its name, so it survives its last forget.
  EXPECT_EQ(Errno(R(FUSE_GETATTR, 2, std::string(16, '\0'))), 0);
}

TEST_P(Hostile, ForgetOfUnknownNodesIsIgnored) {
  EXPECT_TRUE(Dropped(R(FUSE_FORGET, 999, U64(1))));
  EXPECT_TRUE(Dropped(R(FUSE_FORGET, 0, U64(~uint64_t{0}))));
  EXPECT_TRUE(Dropped(R(FUSE_FORGET, ~uint64_t{0}, U64(1))));
  // The root is never forgotten.
  EXPECT_TRUE(Dropped(R(FUSE_FORGET, FUSE_ROOT_ID, U64(~uint64_t{0}))));
  fuse_forget_one ones[2] = {{12345, 1}, {FUSE_ROOT_ID, 1000}};
  EXPECT_TRUE(Dropped(R(FUSE_BATCH_FORGET, 0, U32Pair(2, 0), Bytes(ones))));
  EXPECT_TRUE(Dropped(R(FUSE_INTERRUPT, 0, U64(424242))));
  fuse_notify_retrieve_in nr{};
  nr.size = 0xffffffff;
  EXPECT_TRUE(Dropped(R(FUSE_NOTIFY_REPLY, 1, Bytes(nr), "abc")));
  EXPECT_EQ(Errno(R(FUSE_GETATTR, FUSE_ROOT_ID, std::string(16, '\0'))), 0);
  EXPECT_EQ(Errno(R(FUSE_GETATTR, 999, std::string(16, '\0'))), ENOENT);
  EXPECT_EQ(Errno(R(FUSE_GETATTR, 0, std::string(16, '\0'))), ENOENT);
}

TEST_P(Hostile, XattrValueLargerThanItsPayloadIsEinval) {
  EXPECT_EQ(Errno(R(FUSE_SETXATTR, 1, U32Pair(1000, 0), Names({"user.x"}) + "v")), EINVAL);
  EXPECT_EQ(Errno(R(FUSE_GETXATTR, 1, U32Pair(0, 0), Names({"user.x"}))), ENODATA);
}

// ---- layout-specific ----

TEST(HostileContiguous, HeaderLengthMustMatchWhatArrived) {
  Harness h;
  Req r = R(FUSE_GETATTR, 1, std::string(16, '\0'));
  EXPECT_EQ(h.Contiguous("").decode, -EINVAL);
  EXPECT_EQ(h.Contiguous(std::string(39, '\0')).decode, -EINVAL);
  r.len = 20;  // shorter than the header itself
  EXPECT_EQ(h.Contiguous(ContiguousBytes(r)).decode, -EINVAL);
  r.len = 57;  // one more than arrived
  EXPECT_EQ(h.Contiguous(ContiguousBytes(r)).decode, -EINVAL);
  r.len = 0xffffffff;
  EXPECT_EQ(h.Contiguous(ContiguousBytes(r)).decode, -EINVAL);
  r.len = 55;  // one less
  EXPECT_EQ(h.Contiguous(ContiguousBytes(r)).decode, -EINVAL);
  r.len.reset();
  EXPECT_EQ(h.Contiguous(ContiguousBytes(r)).error, 0);
}

TEST(HostileContiguous, TruncatedOpStructsAreEinvalOrDropped) {
  Harness h;
  EXPECT_EQ(h.Contiguous(ContiguousBytes(R(FUSE_GETATTR, 1, "xx"))).error, EINVAL);
  EXPECT_EQ(h.Contiguous(ContiguousBytes(R(FUSE_READ, 1, std::string(39, '\0')))).error, EINVAL);
  EXPECT_EQ(h.Contiguous(ContiguousBytes(R(FUSE_SETATTR, 1, std::string(87, '\0')))).error, EINVAL);
  EXPECT_EQ(h.Contiguous(ContiguousBytes(R(FUSE_SETXATTR, 1, std::string(7, '\0')))).error, EINVAL);
  EXPECT_TRUE(h.Contiguous(ContiguousBytes(R(FUSE_FORGET, 1, "abc"))).dropped);
  EXPECT_TRUE(h.Contiguous(ContiguousBytes(R(FUSE_BATCH_FORGET, 0, "abc"))).dropped);
  EXPECT_TRUE(h.Contiguous(ContiguousBytes(R(FUSE_INTERRUPT, 0, ""))).dropped);
}

TEST(HostileSplit, PayloadSizeBeyondTheBufferIsRejected) {
  Harness h;
  Req r = R(FUSE_LOOKUP, 1, {}, Names({"x"}));
  r.payload_sz = kPayloadCapacity + 1;
  EXPECT_EQ(RunReq(h, true, r).decode, -EINVAL);
  r.payload_sz = 0xffffffff;
  EXPECT_EQ(RunReq(h, true, r).decode, -EINVAL);
  // payload_sz shorter than the name: the NUL is not inside it.
  r.payload_sz = 1;
  EXPECT_EQ(RunReq(h, true, r).error, EINVAL);
  r.payload_sz = kPayloadCapacity;  // the rest of the buffer is zeros: "x" is found
  EXPECT_EQ(RunReq(h, true, r).error, ENOENT);
}

// One policy for malformed requests in both layouts (Dispatcher::Deliver):
// answered EINVAL, or dropped when the opcode takes no reply. The split path
// used to answer a malformed FORGET with EINVAL.
TEST_P(Hostile, MalformedNoReplyOpcodesAreDropped) {
  for (uint32_t op : {uint32_t{FUSE_FORGET}, uint32_t{FUSE_BATCH_FORGET},
                      uint32_t{FUSE_INTERRUPT}, uint32_t{FUSE_NOTIFY_REPLY}}) {
    Req r = R(op, 1, std::string(16, '\0'));
    if (split()) {
      r.payload_sz = kPayloadCapacity + 1;
    } else {
      r.len = 57;  // one more than arrived
    }
    Outcome o = Run(r);
    EXPECT_EQ(o.decode, -EINVAL) << op;
    EXPECT_TRUE(o.dropped) << op;
  }
  Req r = R(FUSE_GETATTR, 1, std::string(16, '\0'));
  r.total_extlen = 0xffff;  // extensions beyond what arrived
  Outcome o = Run(r);
  EXPECT_EQ(o.decode, -EINVAL);
  EXPECT_FALSE(o.dropped);
  EXPECT_EQ(o.error, EINVAL);
}

}  // namespace
}  // namespace kmfuse::fuzz
