#include "uring/ring.h"

#include <cerrno>
#include <cstring>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "uring/base/unique_fd.h"
#include "uring/sqe.h"
#include "uring/uapi.h"

namespace kmfuse::uring {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kTimeoutNs = 2'000'000'000;

std::unique_ptr<Ring> MakeRingOrSkip(const RingOptions& o = {}) {
  auto ring = Ring::Create(o);
  if (!ring.ok()) return nullptr;
  return *std::move(ring);
}

#define REQUIRE_RING(var, opts)                                             \
  auto var = MakeRingOrSkip(opts);                                          \
  if (var == nullptr) {                                                     \
    GTEST_SKIP() << "io_uring unavailable: " << Ring::Create(opts).status(); \
  }

TEST(RingTest, CreatesDefaultRing) {
  REQUIRE_RING(ring, RingOptions{});
  EXPECT_GE(ring->ring_fd(), 0);
  EXPECT_FALSE(ring->sqe128());
  EXPECT_EQ(ring->setup_flags() & kSetupSqe128, 0u);
  EXPECT_GE(ring->sq_entries(), 64u);
}

TEST(RingTest, Sqe128RingClearsWholeSqe) {
  RingOptions o;
  o.sqe128 = true;
  REQUIRE_RING(ring, o);
  EXPECT_TRUE(ring->sqe128());
  EXPECT_NE(ring->setup_flags() & kSetupSqe128, 0u);
  // Dirty every SQE slot's full 128 bytes, then check GetSqe hands them back
  // zeroed (slots are reused after submission).
  for (unsigned i = 0; i < ring->sq_entries(); ++i) {
    io_uring_sqe* sqe = ring->GetSqe();
    ASSERT_NE(sqe, nullptr);
    std::memset(sqe, 0xab, kSqe128Size);
    io_uring_prep_nop(sqe);
    std::memset(reinterpret_cast<char*>(sqe) + kSqeSize, 0xab, kSqe128Size - kSqeSize);
  }
  EXPECT_EQ(ring->GetSqe(), nullptr) << "SQ full must give nullptr";
  ASSERT_EQ(ring->SubmitAndWaitTimeout(ring->sq_entries(), kTimeoutNs),
            static_cast<int>(ring->sq_entries()));
  ring->Reap([](const Completion&) {});
  io_uring_sqe* sqe = ring->GetSqe();
  ASSERT_NE(sqe, nullptr);
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(sqe);
  for (size_t i = 0; i < kSqe128Size; ++i) ASSERT_EQ(bytes[i], 0) << "byte " << i;
}

TEST(RingTest, NopRoundTrip) {
  REQUIRE_RING(ring, RingOptions{});
  io_uring_sqe* sqe = ring->GetSqe();
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_nop(sqe);
  sqe->user_data = 0xfeedface;
  ASSERT_EQ(ring->SubmitAndWait(1), 1);
  std::vector<Completion> got;
  EXPECT_EQ(ring->Reap([&](const Completion& c) { got.push_back(c); }), 1u);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].user_data, 0xfeedfaceu);
  EXPECT_EQ(got[0].res, 0);
  EXPECT_EQ(got[0].flags & kCqeFMore, 0u);
  EXPECT_EQ(ring->Reap([](const Completion&) { FAIL() << "CQ should be empty"; }), 0u);
}

TEST(RingTest, ReapBatchesInOrderAcrossChunks) {
  RingOptions o;
  o.entries = 128;
  REQUIRE_RING(ring, o);
  constexpr unsigned kN = 100;  // more than one internal batch of 32
  for (unsigned i = 0; i < kN; ++i) {
    io_uring_sqe* sqe = ring->GetSqe();
    ASSERT_NE(sqe, nullptr);
    io_uring_prep_nop(sqe);
    sqe->user_data = i;
  }
  ASSERT_EQ(ring->SubmitAndWaitTimeout(kN, kTimeoutNs), static_cast<int>(kN));
  std::vector<uint64_t> ids;
  EXPECT_EQ(ring->Reap([&](const Completion& c) { ids.push_back(c.user_data); }), kN);
  ASSERT_EQ(ids.size(), kN);
  for (unsigned i = 0; i < kN; ++i) EXPECT_EQ(ids[i], i);
}

TEST(RingTest, ReapOnlyHandlesCompletionsReadyOnEntry) {
  REQUIRE_RING(ring, RingOptions{});
  io_uring_sqe* sqe = ring->GetSqe();
  io_uring_prep_nop(sqe);
  sqe->user_data = 1;
  ASSERT_EQ(ring->SubmitAndWait(1), 1);
  unsigned calls = 0;
  // The callback submits another nop, which completes inline during Submit.
  EXPECT_EQ(ring->Reap([&](const Completion&) {
    ++calls;
    io_uring_sqe* s = ring->GetSqe();
    io_uring_prep_nop(s);
    s->user_data = 2;
    ring->Submit();
  }),
            1u);
  EXPECT_EQ(calls, 1u);
  ASSERT_GE(ring->SubmitAndWaitTimeout(1, kTimeoutNs), 1);
  std::vector<uint64_t> ids;
  EXPECT_EQ(ring->Reap([&](const Completion& c) { ids.push_back(c.user_data); }), 1u);
  EXPECT_EQ(ids, std::vector<uint64_t>{2});
}

TEST(RingTest, TimeoutWaitReturnsEtime) {
  REQUIRE_RING(ring, RingOptions{});
  EXPECT_EQ(ring->SubmitAndWaitTimeout(1, 10'000'000), -ETIME);
}

TEST(RingTest, BadOptionsNameErrnoAndFlags) {
  RingOptions o;
  o.entries = 0;
  o.sqe128 = true;
  auto ring = Ring::Create(o);
  ASSERT_FALSE(ring.ok());
  EXPECT_EQ(ring.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ring.status().message()), HasSubstr("EINVAL"));
  EXPECT_THAT(std::string(ring.status().message()), HasSubstr("SQE128"));
  EXPECT_THAT(std::string(ring.status().message()), HasSubstr("entries=0"));
}

TEST(RingTest, DeferTaskrunWithoutSingleIssuerStrictFails) {
  RingOptions o;
  o.defer_taskrun = true;  // kernel requires SINGLE_ISSUER with it
  o.best_effort = false;
  auto ring = Ring::Create(o);
  ASSERT_FALSE(ring.ok());
  EXPECT_THAT(std::string(ring.status().message()), HasSubstr("DEFER_TASKRUN"));
  EXPECT_THAT(std::string(ring.status().message()), HasSubstr("EINVAL"));
}

TEST(RingTest, BestEffortDropsOptionalFlags) {
  RingOptions o;
  o.defer_taskrun = true;  // invalid alone: best effort falls back
  auto ring = Ring::Create(o);
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_EQ((*ring)->setup_flags() & (kSetupDeferTaskrun | kSetupSingleIssuer), 0u);
}

TEST(RingTest, SingleIssuerDeferTaskrunNopRoundTrip) {
  RingOptions o;
  o.single_issuer = true;
  o.defer_taskrun = true;
  o.best_effort = false;
  REQUIRE_RING(ring, o);
  EXPECT_NE(ring->setup_flags() & kSetupDeferTaskrun, 0u);
  io_uring_sqe* sqe = ring->GetSqe();
  io_uring_prep_nop(sqe);
  sqe->user_data = 7;
  ASSERT_EQ(ring->SubmitAndWait(1), 1);
  unsigned n = ring->Reap([](const Completion& c) { EXPECT_EQ(c.user_data, 7u); });
  EXPECT_EQ(n, 1u);
}

TEST(RingTest, RegisteredRingFdRoundTrips) {
  RingOptions o;
  o.single_issuer = true;
  o.defer_taskrun = true;
  o.register_ring_fd = true;
  REQUIRE_RING(ring, o);
  if (!ring->ring_fd_registered()) {
    GTEST_SKIP() << "the kernel refused IORING_REGISTER_RING_FDS";
  }
  // Enter calls go through the registered index; waits, timeouts, reaping
  // and io_uring_register (which keeps the real fd) all still work.
  for (uint64_t i = 0; i < 3; i++) {
    io_uring_sqe* sqe = ring->GetSqe();
    ASSERT_NE(sqe, nullptr);
    io_uring_prep_nop(sqe);
    sqe->user_data = 40 + i;
    ASSERT_EQ(ring->SubmitAndWait(1), 1);
    unsigned n = ring->Reap([&](const Completion& c) { EXPECT_EQ(c.user_data, 40 + i); });
    EXPECT_EQ(n, 1u);
  }
  EXPECT_EQ(ring->SubmitAndWaitTimeout(1, 1'000'000), -ETIME);
  io_uring_buf_reg reg;
  std::memset(&reg, 0, sizeof(reg));
  reg.bgid = 78;
  EXPECT_EQ(ring->RegisterRaw(kUnregisterPbufRing, &reg, 1), -ENOENT);
  REQUIRE_RING(plain, RingOptions{});
  EXPECT_FALSE(plain->ring_fd_registered());
}

TEST(RingTest, RegisterRawReportsErrno) {
  REQUIRE_RING(ring, RingOptions{});
  // Unregistering a buffer group that was never registered.
  io_uring_buf_reg reg;
  std::memset(&reg, 0, sizeof(reg));
  reg.bgid = 77;
  EXPECT_EQ(ring->RegisterRaw(kUnregisterPbufRing, &reg, 1), -ENOENT);
}

TEST(RingTest, RegisterFilesAndBuffers) {
  REQUIRE_RING(ring, RingOptions{});
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  UniqueFd reader(fds[0]), writer(fds[1]);
  EXPECT_EQ(ring->RegisterFiles(fds, 2), 0);
  static char buf[4096];
  iovec iov{buf, sizeof(buf)};
  EXPECT_EQ(ring->RegisterBuffers(&iov, 1), 0);
}

TEST(RingTest, NextSqeSubmitsWhenTheQueueIsFull) {
  RingOptions o;
  o.entries = 2;
  REQUIRE_RING(ring, o);
  for (uint64_t i = 0; i < 2; ++i) {
    io_uring_sqe* sqe = ring->GetSqe();
    ASSERT_NE(sqe, nullptr);
    io_uring_prep_nop(sqe);
    sqe->user_data = i;
  }
  ASSERT_EQ(ring->GetSqe(), nullptr) << "a 2-entry SQ holds 2 SQEs";
  io_uring_sqe* third = NextSqe(*ring);
  ASSERT_NE(third, nullptr);
  io_uring_prep_nop(third);
  third->user_data = 2;
  ASSERT_GE(ring->SubmitAndWaitTimeout(3, kTimeoutNs), 0);
  std::vector<uint64_t> done;
  while (done.size() < 3) {
    if (ring->Reap([&](const Completion& c) { done.push_back(c.user_data); }) == 0) {
      ASSERT_GE(ring->SubmitAndWaitTimeout(1, kTimeoutNs), 0);
    }
  }
  EXPECT_THAT(done, ::testing::UnorderedElementsAre(0u, 1u, 2u));
}

TEST(RingTest, UringCmdPrepFitsCommandArea) {
  io_uring_sqe sqes[2];
  std::memset(sqes, 0, sizeof(sqes));
  char cmd[80];
  std::memset(cmd, 0x5a, sizeof(cmd));
  EXPECT_FALSE(PrepUringCmd(&sqes[0], /*sqe128=*/false, 3, 1, cmd, 17, 9));
  EXPECT_EQ(sqes[0].opcode, 0) << "failed prep must leave the SQE alone";
  EXPECT_TRUE(PrepUringCmd(&sqes[0], /*sqe128=*/false, 3, 1, cmd, 16, 9));
  EXPECT_EQ(sqes[0].opcode, kOpUringCmd);
  EXPECT_EQ(sqes[0].cmd_op, 1u);
  EXPECT_EQ(sqes[0].user_data, 9u);
  EXPECT_EQ(sqes[0].addr3, 0x5a5a5a5a5a5a5a5aull);
  std::memset(sqes, 0, sizeof(sqes));
  EXPECT_FALSE(PrepUringCmd(&sqes[0], /*sqe128=*/true, 3, 2, cmd, 81, 9));
  EXPECT_TRUE(PrepUringCmd(&sqes[0], /*sqe128=*/true, 3, 2, cmd, 80, 9));
  const unsigned char* b = reinterpret_cast<const unsigned char*>(sqes);
  for (size_t i = kSqeCmdOffset; i < kSqe128Size; ++i) ASSERT_EQ(b[i], 0x5a) << i;
}

TEST(RingTest, UringCmdOnPipeIsRejectedByKernel) {
  RingOptions o;
  o.sqe128 = true;
  REQUIRE_RING(ring, o);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  UniqueFd reader(fds[0]), writer(fds[1]);
  io_uring_sqe* sqe = ring->GetSqe();
  char cmd[24] = {};
  ASSERT_TRUE(PrepUringCmd(sqe, ring->sqe128(), fds[0], 1, cmd, sizeof(cmd), 5));
  ASSERT_EQ(ring->SubmitAndWaitTimeout(1, kTimeoutNs), 1);
  std::vector<Completion> got;
  ring->Reap([&](const Completion& c) { got.push_back(c); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].user_data, 5u);
  EXPECT_EQ(got[0].res, -EOPNOTSUPP) << "pipes have no uring_cmd handler";
}

}  // namespace
}  // namespace kmfuse::uring
