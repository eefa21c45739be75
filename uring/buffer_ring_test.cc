#include "uring/buffer_ring.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "uring/base/unique_fd.h"
#include "uring/ring.h"
#include "uring/sqe.h"
#include "uring/uapi.h"

namespace kmfuse::uring {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kTimeoutNs = 2'000'000'000;
constexpr uint64_t kUd = 0x1234;

// A pipe whose fds are closed when the test ends, pass or fail.
struct Pipe {
  UniqueFd reader, writer;
  explicit Pipe(int flags = 0) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | flags) == 0) {
      reader.reset(fds[0]);
      writer.reset(fds[1]);
    }
  }
  void CloseWrite() { writer.reset(); }
  void Write(const std::string& s) const {
    ASSERT_EQ(write(writer.get(), s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }
};

class BufferRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ring = Ring::Create(RingOptions{});
    if (!ring.ok()) GTEST_SKIP() << "io_uring unavailable: " << ring.status();
    ring_ = *std::move(ring);
  }

  // Waits (bounded) for one completion and returns it.
  Completion Next() {
    Completion out{0, -9999, 0};
    // Take exactly one CQE: any others reaped with it wait in pending_.
    if (!pending_.empty()) {
      out = pending_.front();
      pending_.erase(pending_.begin());
      return out;
    }
    int ret = ring_->SubmitAndWaitTimeout(1, kTimeoutNs);
    EXPECT_GE(ret, 1) << "no completion: " << strerror(-ret);
    if (ret < 1) return out;
    bool got = false;
    ring_->Reap([&](const Completion& c) {
      if (!got) {
        out = c;
        got = true;
      } else {
        pending_.push_back(c);
      }
    });
    return out;
  }

  std::unique_ptr<BufferRing> MakeProvided(uint16_t bgid, uint32_t entries, uint32_t buf_size,
                                           uint32_t head_room = 0) {
    BufferRingOptions o;
    o.bgid = bgid;
    o.entries = entries;
    o.buf_size = buf_size;
    o.head_room = head_room;
    auto br = BufferRing::Create(*ring_, o);
    EXPECT_TRUE(br.ok()) << br.status();
    return br.ok() ? *std::move(br) : nullptr;
  }

  std::unique_ptr<Ring> ring_;
  std::vector<Completion> pending_;
};

TEST_F(BufferRingTest, ProvidedReadSelectOnPipeFillsSuccessiveBids) {
  auto br = MakeProvided(3, 4, 4096);
  ASSERT_NE(br, nullptr);
  EXPECT_EQ(br->backing(), Backing::kProvided);
  EXPECT_EQ(br->Slot(1) - br->Slot(0), 4096);
  Pipe p;
  const std::string msgs[] = {"hello", "io_uring world", "x"};
  for (int i = 0; i < 3; ++i) {
    p.Write(msgs[i]);
    PrepReadSelect(ring_->GetSqe(), p.reader.get(), 0, ~0ULL, 3, kUd + i);
    Completion c = Next();
    EXPECT_EQ(c.user_data, kUd + i);
    ASSERT_EQ(c.res, static_cast<int>(msgs[i].size()));
    ASSERT_TRUE(BufferRing::HasBuffer(c.flags));
    uint16_t bid = BufferRing::BidFromCqeFlags(c.flags);
    EXPECT_EQ(bid, i);
    EXPECT_EQ(std::string(br->Data(bid), c.res), msgs[i]);
    br->Recycle(bid);
  }
}

TEST_F(BufferRingTest, ProvidedReadSelectOnFileHonoursLenAndOffset) {
  auto br = MakeProvided(0, 2, 4096);
  ASSERT_NE(br, nullptr);
  UniqueFd memfd(memfd_create("buffer_ring_test", MFD_CLOEXEC));
  ASSERT_TRUE(memfd.valid()) << "memfd_create: errno " << errno;
  const int fd = memfd.get();
  std::string content(1000, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>('a' + i % 26);
  ASSERT_EQ(pwrite(fd, content.data(), content.size(), 0), 1000);
  PrepReadSelect(ring_->GetSqe(), fd, 100, 10, 0, kUd);
  Completion c = Next();
  ASSERT_EQ(c.res, 100);
  ASSERT_TRUE(BufferRing::HasBuffer(c.flags));
  uint16_t bid = BufferRing::BidFromCqeFlags(c.flags);
  EXPECT_EQ(bid, 0);
  EXPECT_EQ(std::string(br->Data(bid), 100), content.substr(10, 100));
  // len 0 means "the selected buffer's length".
  PrepReadSelect(ring_->GetSqe(), fd, 0, 0, 0, kUd);
  c = Next();
  ASSERT_EQ(c.res, 1000);
  EXPECT_EQ(BufferRing::BidFromCqeFlags(c.flags), 1);
  EXPECT_EQ(std::string(br->Data(1), 1000), content);
}

TEST_F(BufferRingTest, MultishotReadFillsSuccessiveBidsWithMore) {
  auto br = MakeProvided(1, 8, 4096);
  ASSERT_NE(br, nullptr);
  Pipe p(O_NONBLOCK);
  PrepReadMultishot(ring_->GetSqe(), p.reader.get(), 1, kUd);
  ASSERT_GE(ring_->Submit(), 1);
  for (int i = 0; i < 5; ++i) {
    std::string msg = "request " + std::to_string(i) + std::string(i * 10, '#');
    p.Write(msg);
    Completion c = Next();
    EXPECT_EQ(c.user_data, kUd);
    ASSERT_EQ(c.res, static_cast<int>(msg.size()));
    ASSERT_TRUE(BufferRing::HasBuffer(c.flags));
    EXPECT_NE(c.flags & kCqeFMore, 0u) << "multishot must stay armed";
    uint16_t bid = BufferRing::BidFromCqeFlags(c.flags);
    EXPECT_EQ(bid, i);
    EXPECT_EQ(std::string(br->Data(bid), c.res), msg);
  }
  // EOF ends the multishot: a completion without F_MORE.
  p.CloseWrite();
  Completion c = Next();
  EXPECT_EQ(c.res, 0);
  EXPECT_EQ(c.flags & kCqeFMore, 0u);
}

TEST_F(BufferRingTest, SingleShotExhaustionGivesEnobufsThenRecycleServes) {
  auto br = MakeProvided(2, 2, 4096);
  ASSERT_NE(br, nullptr);
  Pipe p;
  for (int i = 0; i < 2; ++i) {
    p.Write("m" + std::to_string(i));
    PrepReadSelect(ring_->GetSqe(), p.reader.get(), 0, ~0ULL, 2, kUd);
    Completion c = Next();
    ASSERT_EQ(c.res, 2);
    EXPECT_EQ(BufferRing::BidFromCqeFlags(c.flags), i);
  }
  p.Write("m2");
  PrepReadSelect(ring_->GetSqe(), p.reader.get(), 0, ~0ULL, 2, kUd);
  Completion c = Next();
  EXPECT_EQ(c.res, -ENOBUFS);
  EXPECT_FALSE(BufferRing::HasBuffer(c.flags));
  br->Recycle(1);
  PrepReadSelect(ring_->GetSqe(), p.reader.get(), 0, ~0ULL, 2, kUd);
  c = Next();
  ASSERT_EQ(c.res, 2);
  EXPECT_EQ(BufferRing::BidFromCqeFlags(c.flags), 1);
  EXPECT_EQ(std::string(br->Data(1), 2), "m2");
}

TEST_F(BufferRingTest, MultishotExhaustionTerminatesThenRecycleAndRearm) {
  auto br = MakeProvided(4, 2, 4096);
  ASSERT_NE(br, nullptr);
  Pipe p(O_NONBLOCK);
  PrepReadMultishot(ring_->GetSqe(), p.reader.get(), 4, kUd);
  ASSERT_GE(ring_->Submit(), 1);
  for (int i = 0; i < 2; ++i) {
    p.Write("req" + std::to_string(i));
    Completion c = Next();
    ASSERT_EQ(c.res, 4);
    EXPECT_EQ(BufferRing::BidFromCqeFlags(c.flags), i);
    EXPECT_NE(c.flags & kCqeFMore, 0u);
  }
  p.Write("req2");
  Completion c = Next();
  EXPECT_EQ(c.res, -ENOBUFS);
  EXPECT_EQ(c.flags & kCqeFMore, 0u) << "ENOBUFS must terminate the multishot";
  EXPECT_FALSE(BufferRing::HasBuffer(c.flags));
  // The daemon's recovery: give a buffer back, re-arm, the pending data lands.
  EXPECT_EQ(std::string(br->Data(0), 4), "req0");
  br->Recycle(0);
  PrepReadMultishot(ring_->GetSqe(), p.reader.get(), 4, kUd + 1);
  c = Next();
  EXPECT_EQ(c.user_data, kUd + 1);
  ASSERT_EQ(c.res, 4);
  EXPECT_EQ(BufferRing::BidFromCqeFlags(c.flags), 0);
  EXPECT_EQ(std::string(br->Data(0), 4), "req2");
  p.CloseWrite();
  c = Next();  // the ring is dry again or EOF: either way, terminated
  EXPECT_EQ(c.flags & kCqeFMore, 0u);
}

TEST_F(BufferRingTest, StageAndPublishReturnBuffersInBatch) {
  auto br = MakeProvided(5, 2, 4096);
  ASSERT_NE(br, nullptr);
  Pipe p;
  for (int i = 0; i < 2; ++i) {
    p.Write("a");
    PrepReadSelect(ring_->GetSqe(), p.reader.get(), 0, ~0ULL, 5, kUd);
    ASSERT_EQ(Next().res, 1);
  }
  br->Stage(1);
  br->Stage(0);
  EXPECT_EQ(br->staged(), 2u);
  // Staged but unpublished buffers are invisible to the kernel.
  p.Write("b");
  PrepReadSelect(ring_->GetSqe(), p.reader.get(), 0, ~0ULL, 5, kUd);
  EXPECT_EQ(Next().res, -ENOBUFS);
  br->Publish();
  EXPECT_EQ(br->staged(), 0u);
  std::vector<uint16_t> bids;
  for (int i = 0; i < 2; ++i) {
    if (i == 1) p.Write("c");
    PrepReadSelect(ring_->GetSqe(), p.reader.get(), 0, ~0ULL, 5, kUd);
    Completion c = Next();
    ASSERT_EQ(c.res, 1);
    bids.push_back(BufferRing::BidFromCqeFlags(c.flags));
  }
  EXPECT_EQ(bids, (std::vector<uint16_t>{1, 0})) << "kernel takes buffers in staging order";
}

TEST_F(BufferRingTest, HeadRoomIsLeftUntouched) {
  constexpr uint32_t kHead = 64;
  auto br = MakeProvided(6, 2, 4096, kHead);
  ASSERT_NE(br, nullptr);
  EXPECT_EQ(br->data_len(), 4096u - kHead);
  EXPECT_EQ(br->Data(1), br->Slot(1) + kHead);
  std::memset(br->Slot(0), 0xee, kHead);  // caller owns the head room
  Pipe p;
  std::string big(5000, 'z');
  p.Write(big);
  PrepReadSelect(ring_->GetSqe(), p.reader.get(), 0, ~0ULL, 6, kUd);
  Completion c = Next();
  ASSERT_EQ(c.res, static_cast<int>(4096 - kHead)) << "kernel may only fill buf_size-head_room";
  ASSERT_EQ(BufferRing::BidFromCqeFlags(c.flags), 0);
  for (uint32_t i = 0; i < kHead; ++i) ASSERT_EQ(static_cast<unsigned char>(br->Slot(0)[i]), 0xee);
  EXPECT_EQ(std::string(br->Data(0), c.res), big.substr(0, c.res));
}

TEST_F(BufferRingTest, DuplicateBgidIsAlreadyExists) {
  auto a = MakeProvided(7, 2, 4096);
  ASSERT_NE(a, nullptr);
  BufferRingOptions o;
  o.bgid = 7;
  o.entries = 2;
  o.buf_size = 4096;
  auto b = BufferRing::Create(*ring_, o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("EEXIST"));
}

TEST_F(BufferRingTest, UnregisterFreesBgidForReuse) {
  auto a = MakeProvided(8, 2, 4096);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->Unregister().ok());
  EXPECT_FALSE(a->registered());
  EXPECT_TRUE(a->Unregister().ok()) << "idempotent";
  auto b = MakeProvided(8, 2, 4096);
  EXPECT_NE(b, nullptr);
}

TEST_F(BufferRingTest, KernelManagedIsCleanlyUnsupportedHere) {
  BufferRingOptions o;
  o.backing = Backing::kKernelManaged;
  o.entries = 8;
  o.buf_size = 1 << 20;
  auto br = BufferRing::Create(*ring_, o);
  if (br.ok()) GTEST_SKIP() << "this kernel has kmbuf rings; the unsupported path is untestable";
  EXPECT_EQ(br.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(br.status().message()), HasSubstr("IOU_PBUF_RING_KERNEL_MANAGED"));
  EXPECT_THAT(std::string(br.status().message()), HasSubstr("EINVAL"));
  // Nothing stayed registered: the bgid is free for a provided ring.
  EXPECT_NE(MakeProvided(0, 2, 4096), nullptr);
}

// ---- Fake kernel side ------------------------------------------------------

// Records register calls; maps anonymous memory for MapRegion. Models a
// kernel that has kmbuf rings (register_result 0) or pins them (EBUSY).
class FakeIoRing final : public IoRing {
 public:
  io_uring_sqe* GetSqe() override { return nullptr; }
  int Submit() override { return 0; }
  int SubmitAndWait(unsigned) override { return -EINVAL; }
  unsigned Reap(absl::FunctionRef<void(const Completion&)>) override { return 0; }
  int RegisterRaw(unsigned opcode, void* arg, unsigned nr_args) override {
    opcodes.push_back(opcode);
    if (opcode == kRegisterPbufRing) {
      std::memcpy(&last_reg, arg, sizeof(last_reg));
      EXPECT_EQ(nr_args, 1u);
      return register_result;
    }
    if (opcode == kUnregisterPbufRing) return unregister_result;
    return -EINVAL;
  }
  absl::StatusOr<void*> MapRegion(uint64_t offset, size_t len) override {
    map_offset = offset;
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return absl::InternalError("mmap");
    ++live_maps;
    return p;
  }
  void UnmapRegion(void* addr, size_t len) override {
    munmap(addr, len);
    --live_maps;
  }
  bool sqe128() const override { return true; }
  int ring_fd() const override { return -1; }

  std::vector<unsigned> opcodes;
  KmbufReg last_reg{};
  int register_result = 0;
  int unregister_result = 0;
  uint64_t map_offset = 0;
  int live_maps = 0;
};

BufferRingOptions KmOptions(uint32_t entries, uint32_t buf_size) {
  BufferRingOptions o;
  o.backing = Backing::kKernelManaged;
  o.bgid = 3;
  o.entries = entries;
  o.buf_size = buf_size;
  return o;
}

TEST(BufferRingFakeTest, InvalidOptionsFailWithoutSyscall) {
  FakeIoRing fake;
  const long page = sysconf(_SC_PAGESIZE);
  struct Case {
    BufferRingOptions o;
    const char* why;
  } cases[] = {
      {KmOptions(6, page), "entries not a power of two"},
      {KmOptions(0, page), "zero entries"},
      {KmOptions(65536, page), "entries not below 65536"},
      {KmOptions(8, page + 512), "buf_size not page-aligned"},
      {KmOptions(8, 100), "buf_size below a page"},
      {KmOptions(8, 0), "zero buf_size"},
  };
  for (const Case& c : cases) {
    auto br = BufferRing::Create(fake, c.o);
    ASSERT_FALSE(br.ok()) << c.why;
    EXPECT_EQ(br.status().code(), absl::StatusCode::kInvalidArgument) << c.why;
  }
  BufferRingOptions provided;
  provided.entries = 3;
  provided.buf_size = 4096;
  EXPECT_EQ(BufferRing::Create(fake, provided).status().code(),
            absl::StatusCode::kInvalidArgument);
  provided.entries = 4;
  provided.head_room = 4096;
  EXPECT_EQ(BufferRing::Create(fake, provided).status().code(),
            absl::StatusCode::kInvalidArgument);
  BufferRingOptions km_head = KmOptions(8, page);
  km_head.head_room = 64;
  EXPECT_EQ(BufferRing::Create(fake, km_head).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(fake.opcodes.empty()) << "validation must precede any register call";
}

TEST(BufferRingFakeTest, KernelManagedRegistersKmbufRegAndMapsContiguously) {
  FakeIoRing fake;
  const uint32_t page = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  {
    auto br = BufferRing::Create(fake, KmOptions(8, 4 * page));
    ASSERT_TRUE(br.ok()) << br.status();
    EXPECT_EQ(fake.last_reg.buf_size, 4 * page);
    EXPECT_EQ(fake.last_reg.ring_entries, 8u);
    EXPECT_EQ(fake.last_reg.bgid, 3);
    EXPECT_EQ(fake.last_reg.flags, kPbufRingMmap | kPbufRingKernelManaged);
    EXPECT_EQ(fake.last_reg.resv[0] | fake.last_reg.resv[1] | fake.last_reg.resv[2], 0u);
    EXPECT_EQ(fake.map_offset, kOffPbufRing | (3ULL << kOffPbufShift));
    EXPECT_EQ(fake.live_maps, 1);
    for (uint16_t bid = 0; bid < 8; ++bid) {
      EXPECT_EQ((*br)->Slot(bid), (*br)->Slot(0) + bid * 4 * page);
      EXPECT_EQ((*br)->Data(bid), (*br)->Slot(bid));
    }
    (*br)->Slot(7)[4 * page - 1] = 'x';  // the last byte is mapped
  }
  EXPECT_EQ(fake.live_maps, 0);
  EXPECT_EQ(fake.opcodes, (std::vector<unsigned>{kRegisterPbufRing, kUnregisterPbufRing}));
}

TEST(BufferRingFakeTest, PinnedUnregisterIsFailedPrecondition) {
  FakeIoRing fake;
  auto br = BufferRing::Create(fake, KmOptions(8, sysconf(_SC_PAGESIZE)));
  ASSERT_TRUE(br.ok()) << br.status();
  fake.unregister_result = -EBUSY;
  absl::Status s = (*br)->Unregister();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("pinned"));
  EXPECT_TRUE((*br)->registered());
  fake.unregister_result = 0;
  EXPECT_TRUE((*br)->Unregister().ok());
}

TEST(BufferRingFakeTest, KernelEinvalNamesMissingFeature) {
  FakeIoRing fake;
  fake.register_result = -EINVAL;
  auto br = BufferRing::Create(fake, KmOptions(8, sysconf(_SC_PAGESIZE)));
  ASSERT_FALSE(br.ok());
  EXPECT_EQ(br.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(br.status().message()), HasSubstr("IOU_PBUF_RING_KERNEL_MANAGED"));
  EXPECT_EQ(fake.opcodes, std::vector<unsigned>{kRegisterPbufRing}) << "nothing to unregister";
  EXPECT_EQ(fake.live_maps, 0);
}

TEST(BufferRingFakeTest, OtherKernelErrorsKeepTheirErrno) {
  FakeIoRing fake;
  fake.register_result = -ENOMEM;
  auto br = BufferRing::Create(fake, KmOptions(8, sysconf(_SC_PAGESIZE)));
  ASSERT_FALSE(br.ok());
  EXPECT_EQ(br.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(br.status().message()), HasSubstr("ENOMEM"));
}

TEST(BufferRingDeathTest, RecycleOnKernelManagedAborts) {
  FakeIoRing fake;
  auto br = BufferRing::Create(fake, KmOptions(8, sysconf(_SC_PAGESIZE)));
  ASSERT_TRUE(br.ok()) << br.status();
  EXPECT_DEATH((*br)->Recycle(0), "kernel recycles");
  EXPECT_DEATH((*br)->Stage(0), "kernel-managed");
  EXPECT_DEATH((*br)->Slot(8), "out of range");
}

TEST(BufferRingStaticTest, CqeFlagDecoding) {
  const uint32_t flags = (513u << kCqeBufferShift) | kCqeFBuffer | kCqeFMore;
  EXPECT_TRUE(BufferRing::HasBuffer(flags));
  EXPECT_EQ(BufferRing::BidFromCqeFlags(flags), 513);
  EXPECT_FALSE(BufferRing::HasBuffer(kCqeFMore));
}

}  // namespace
}  // namespace kmfuse::uring
