// Negative tests on the kernel model: every malformed command gets the
// documented errno, policies turn registration failures into clear daemon
// Statuses, and the model catches daemon bugs (violations) while UringEntry
// aborts on commits outside kDaemon.
#include <errno.h>
#include <fcntl.h>

#include <sys/mman.h>
#include <unistd.h>
#include <array>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/kernel_model/kernel_model.h"
#include "tests/model_harness.h"
#include "tests/uring_raw.h"
#include "uring/buffer_ring.h"
#include "uring/fixed_buffers.h"
#include "uring/uapi.h"

namespace kmfuse::testing {
namespace {

using namespace kmfuse::abi;  // NOLINT
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

model::ModelOptions Opts(model::Mode mode) {
  model::ModelOptions o;
  o.mode = mode;
  o.nr_queues = 2;
  return o;
}

// Submits one prepared SQE and returns its completion res (1: none).
int One(uring::IoRing& ring, const std::function<void(io_uring_sqe*)>& prep) {
  io_uring_sqe* sqe = ring.GetSqe();
  prep(sqe);
  sqe->user_data = 77;
  for (const uring::Completion& c : Collect(ring, 1, absl::Milliseconds(200))) {
    if (c.user_data == 77) return c.res;
  }
  return 1;
}

TEST(ModelErrno, PerEntryRegistration) {
  model::KernelModel m(Opts(model::Mode::kPerEntry));
  const int fd = m.fuse_fd();
  RawEntry e(m.max_payload());
  {
    auto small = m.NewRing(4, /*sqe128=*/false);
    EXPECT_EQ(One(*small, [&](io_uring_sqe* s) { PrepRegister(*small, s, fd, 0, e, 0); }), -EINVAL);
  }
  auto ring = m.NewRing(16);
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) { PrepCmd(*ring, s, fd, 99, 0, 0, 0); }), -EINVAL);
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) {
              PrepRegister(*ring, s, fd, 0, e, 0);
              s->len = 1;
            }),
            -EINVAL);
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) {
              PrepRegister(*ring, s, fd, 0, e, 0);
              s->addr = 0;
            }),
            -EFAULT);
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) {
              PrepRegister(*ring, s, fd, 0, e, 0);
              e.iov[0].iov_len = 100;
            }),
            -EINVAL);
  RawEntry tiny(4096);
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) { PrepRegister(*ring, s, fd, 0, tiny, 0); }), -EINVAL);
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) { PrepRegister(*ring, s, fd, 2, e, 0); }), -EINVAL);
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) { PrepRegister(*ring, s, fd + 1, 0, e, 0); }),
            -EOPNOTSUPP);
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) {
              PrepCmd(*ring, s, fd, FUSE_IO_URING_CMD_COMMIT_AND_FETCH, 1, 42, 0);
            }),
            -ENOTCONN);  // no queue 1 yet
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) {
              PrepCmd(*ring, s, fd, FUSE_IO_URING_CMD_COMMIT_AND_FETCH, 0, 42, 0);
            }),
            -ENOENT);  // the failed REGISTERs above created queue 0
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) {
              PrepCmd(*ring, s, fd, FUSE_IO_URING_CMD_ADD_QUEUE, 0, 0, 0);
            }),
            -EINVAL);  // 6.14-6.18 know no buffer pools
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) {
              PrepCmd(*ring, s, fd, FUSE_IO_URING_CMD_COMMIT_AND_FETCH, 5, 42, 0);
            }),
            -EINVAL);  // qid out of range
  m.Abort();
}

TEST(ModelErrno, RegisterBeforeInitIsEagain) {
  model::ModelOptions o = Opts(model::Mode::kPerEntry);
  o.init_done = false;
  model::KernelModel m(o);
  auto ring = m.NewRing(16);
  RawEntry e(m.max_payload());
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) { PrepRegister(*ring, s, m.fuse_fd(), 0, e, 0); }),
            -EAGAIN);
}

// As 7.3 answers (tests/uring_crosscheck_test's bufpool scripts check the
// same against the real kernel in tools/vm).
TEST(ModelErrno, Bufpool) {
  model::KernelModel m(Opts(model::Mode::kBufpool));
  ASSERT_EQ(m.minor(), 46u);
  const int fd = m.fuse_fd();
  auto ring = m.NewRing(16);
  std::vector<char> pool(m.max_payload() * 2);
  auto add_pool = [&](uint16_t qid, int fixed, uint64_t uaddr, uint32_t len, uint64_t flags = 0,
                      uint32_t reserved = 0) {
    return One(*ring, [&](io_uring_sqe* s) {
      fuse_uring_cmd_req_v46 c{};
      c.flags = flags;
      c.qid = qid;
      c.bufpool.uaddr = uaddr;
      c.bufpool.len = len;
      c.bufpool.reserved = reserved;
      PrepCmdV46(s, fd, FUSE_IO_URING_CMD_ADD_BUFPOOL, c, 0, fixed);
    });
  };
  const uint64_t base = reinterpret_cast<uint64_t>(pool.data());
  const uint32_t len = static_cast<uint32_t>(pool.size());
  auto add_queue = [&](uint16_t qid, uint64_t flags) {
    return One(*ring, [&](io_uring_sqe* s) {
      PrepCmd(*ring, s, fd, FUSE_IO_URING_CMD_ADD_QUEUE, qid, 0, 0, flags);
    });
  };
  auto commit = [&](uint16_t qid) {
    return One(*ring, [&](io_uring_sqe* s) {
      PrepCmd(*ring, s, fd, FUSE_IO_URING_CMD_COMMIT_AND_FETCH, qid, 42, 0);
    });
  };
  EXPECT_EQ(add_pool(0, -1, base, len), -EINVAL);  // before ADD_QUEUE
  EXPECT_EQ(commit(0), -ENOTCONN);                 // no queue
  EXPECT_EQ(add_queue(0, FUSE_URING_ZERO_COPY), -EPERM);
  EXPECT_EQ(add_queue(0, 1u << 1), -EINVAL);  // unknown flag
  EXPECT_EQ(add_queue(0, 0), 0);
  EXPECT_EQ(add_queue(0, 0), -EEXIST);
  EXPECT_EQ(add_queue(7, 0), -EINVAL);
  EXPECT_EQ(commit(0), -ENOENT);  // a queue without entries
  EXPECT_EQ(add_pool(0, -1, base, len, /*flags=*/1), -EINVAL);
  EXPECT_EQ(add_pool(0, -1, base, len, 0, /*reserved=*/1), -EINVAL);
  EXPECT_EQ(add_pool(0, -1, 0, len), -EINVAL);  // uaddr 0
  EXPECT_EQ(add_pool(0, -1, base, static_cast<uint32_t>(m.max_payload() - 1)), -EINVAL);
  // ADD_BUFPOOL does not check a registered pool's index (the import
  // does); a remainder shorter than one buffer is ignored.
  EXPECT_EQ(add_queue(1, 0), 0);
  EXPECT_EQ(add_pool(1, 3, base, static_cast<uint32_t>(m.max_payload() * 3 / 2)), 0);
  EXPECT_EQ(m.TotalBuffers(1), 0u);  // counted once a REGISTER selects the pool
  EXPECT_EQ(add_pool(1, -1, base, len), -EINVAL);  // a second pool
  struct iovec reg = {pool.data(), pool.size()};
  ASSERT_EQ(ring->RegisterRaw(0, &reg, 1), 0);
  EXPECT_EQ(add_pool(0, 0, base, len), 0);
  EXPECT_EQ(add_pool(0, 0, base, len), -EINVAL);  // a second pool
  RawEntry e(0);
  RawEntry with_payload(m.max_payload());
  // A registered pool: REGISTER and COMMIT_AND_FETCH name its buf_index.
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) {
              PrepRegister(*ring, s, fd, 0, e, 0);
              s->uring_cmd_flags |= uring::kUringCmdFixed;
            }),
            1);  // registered: stays in flight
  EXPECT_EQ(m.TotalBuffers(0), 2u);
  EXPECT_EQ(commit(0), -EINVAL);  // without IORING_URING_CMD_FIXED
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) {
              PrepCmd(*ring, s, fd, FUSE_IO_URING_CMD_COMMIT_AND_FETCH, 0, 42, 0);
              s->uring_cmd_flags |= uring::kUringCmdFixed;
              s->buf_index = 1;
            }),
            -EINVAL);  // another buf_index
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) {
              PrepCmd(*ring, s, fd, FUSE_IO_URING_CMD_COMMIT_AND_FETCH, 0, 42, 0);
              s->uring_cmd_flags |= uring::kUringCmdFixed;
            }),
            -ENOENT);  // the pool's buf_index: now the commit_id is looked up
  // Any failed REGISTER switches io-uring off for the connection.
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) {
              PrepRegister(*ring, s, fd, 0, with_payload, 0);
              s->uring_cmd_flags |= uring::kUringCmdFixed;
            }),
            -EINVAL);  // pool queues take a {NULL, 0} payload iovec
  EXPECT_EQ(add_queue(1, 0), -EOPNOTSUPP);
  EXPECT_EQ(commit(1), -EOPNOTSUPP);
  m.Abort();
  EXPECT_EQ(commit(0), -ENOTCONN);
  ring.reset();

  model::ModelOptions admin = Opts(model::Mode::kBufpool);
  admin.cap_sys_admin = true;
  model::KernelModel m2(admin);
  auto ring2 = m2.NewRing(4);
  EXPECT_EQ(One(*ring2, [&](io_uring_sqe* s) {
              PrepCmd(*ring2, s, m2.fuse_fd(), FUSE_IO_URING_CMD_ADD_QUEUE, 0, 0, 0,
                      FUSE_URING_ZERO_COPY);
            }),
            0);
}

// 7.45 (6.14-6.18): no buffer pools, and a failed REGISTER does not change
// what later commands get.
TEST(ModelErrno, PerEntry745KeepsErrnosAfterAFailedRegister) {
  model::KernelModel m(Opts(model::Mode::kPerEntry));
  ASSERT_EQ(m.minor(), 45u);
  auto ring = m.NewRing(16);
  RawEntry tiny(4096);
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) { PrepRegister(*ring, s, m.fuse_fd(), 0, tiny, 0); }),
            -EINVAL);
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) { PrepCmd(*ring, s, m.fuse_fd(), 99, 0, 0, 0); }),
            -EINVAL);
  model::ModelOptions o = Opts(model::Mode::kPerEntry);
  o.minor = 46;
  model::KernelModel m46(o);
  auto ring46 = m46.NewRing(16);
  EXPECT_EQ(
      One(*ring46, [&](io_uring_sqe* s) { PrepRegister(*ring46, s, m46.fuse_fd(), 0, tiny, 0); }),
      -EINVAL);
  EXPECT_EQ(One(*ring46, [&](io_uring_sqe* s) { PrepCmd(*ring46, s, m46.fuse_fd(), 99, 0, 0, 0); }),
            -EOPNOTSUPP);
  // 7.46 without a negotiated buffer pool.
  model::KernelModel fresh(o);
  auto ring_f = fresh.NewRing(16);
  EXPECT_EQ(One(*ring_f, [&](io_uring_sqe* s) {
              PrepCmd(*ring_f, s, fresh.fuse_fd(), FUSE_IO_URING_CMD_ADD_QUEUE, 0, 0, 0);
            }),
            -EOPNOTSUPP);
}

TEST(ModelErrno, KmbufRingRegistration) {
  model::KernelModel m(Opts(model::Mode::kKmbuf));
  auto ring = m.NewRing(16);
  auto reg = [&](uint32_t buf_size, uint32_t entries, uint16_t flags, uint64_t resv = 0,
                 uint16_t bgid = 0) {
    uring::KmbufReg r{};
    r.buf_size = buf_size;
    r.ring_entries = entries;
    r.bgid = bgid;
    r.flags = flags;
    r.resv[1] = resv;
    return ring->RegisterRaw(uring::kRegisterPbufRing, &r, 1);
  };
  const uint16_t km = uring::kPbufRingMmap | uring::kPbufRingKernelManaged;
  EXPECT_EQ(reg(4096, 4, uring::kPbufRingKernelManaged), -EINVAL);  // MMAP missing
  EXPECT_EQ(reg(4096, 4, km | uring::kPbufRingInc), -EINVAL);
  EXPECT_EQ(reg(0, 4, km), -EINVAL);
  EXPECT_EQ(reg(4097, 4, km), -EINVAL);
  EXPECT_EQ(reg(4096, 3, km), -EINVAL);
  EXPECT_EQ(reg(4096, 65536, km), -EINVAL);
  EXPECT_EQ(reg(4096, 4, km, /*resv=*/1), -EINVAL);
  EXPECT_EQ(reg(4096, 4, km, 0, /*bgid=*/5), 0);
  EXPECT_EQ(reg(4096, 4, km, 0, 5), -EEXIST);
  absl::StatusOr<void*> base = ring->MapRegion(uring::PbufRingOffset(5), 4 * 4096);
  EXPECT_TRUE(base.ok());
  EXPECT_FALSE(ring->MapRegion(uring::PbufRingOffset(6), 4096).ok());
  io_uring_buf_reg un{};
  un.bgid = 5;
  EXPECT_EQ(ring->RegisterRaw(uring::kUnregisterPbufRing, &un, 1), 0);  // not pinned

  // Pinned by a FUSE queue: unregister is EBUSY.
  uring::BufferRingOptions bo;
  bo.backing = uring::Backing::kKernelManaged;
  bo.entries = 4;
  bo.buf_size = static_cast<uint32_t>((m.max_payload() + 4095) & ~size_t{4095});
  absl::StatusOr<std::unique_ptr<uring::BufferRing>> br = uring::BufferRing::Create(*ring, bo);
  ASSERT_TRUE(br.ok()) << br.status();
  std::vector<abi::fuse_uring_req_header> headers(2);
  struct iovec hv = {headers.data(), headers.size() * sizeof(headers[0])};
  ASSERT_EQ(ring->RegisterRaw(0, &hv, 1), 0);
  const int fd = m.fuse_fd();
  auto kreg = [&](bool fixed, uint16_t index) {
    return One(*ring, [&](io_uring_sqe* s) {
      PrepCmd(*ring, s, fd, FUSE_IO_URING_CMD_REGISTER, 0, 0, 0, FUSE_URING_BUF_RING);
      if (fixed) s->uring_cmd_flags |= uring::kUringCmdFixed;
      s->buf_index = index;
    });
  };
  EXPECT_EQ(kreg(false, 0), -EINVAL);
  EXPECT_EQ(kreg(true, 2), -EFAULT);  // header 2 is beyond the registered buffer
  EXPECT_EQ(kreg(true, 0), 1);        // in flight
  absl::Status un2 = (*br)->Unregister();
  EXPECT_TRUE(absl::IsFailedPrecondition(un2)) << un2;
  EXPECT_THAT(std::string(un2.message()), HasSubstr("pinned"));
  m.Abort();
  br->reset();
}

TEST(ModelErrno, KmbufIsEinvalWithoutTheSeries) {
  model::KernelModel m(Opts(model::Mode::kPerEntry));  // like 6.18
  auto ring = m.NewRing(4);
  uring::BufferRingOptions bo;
  bo.backing = uring::Backing::kKernelManaged;
  bo.entries = 4;
  bo.buf_size = 4096;
  absl::StatusOr<std::unique_ptr<uring::BufferRing>> br = uring::BufferRing::Create(*ring, bo);
  EXPECT_TRUE(absl::IsUnimplemented(br.status())) << br.status();
}

// ---- registration failures become clear daemon errors ----------------------

absl::Status RunHarness(model::Mode mode, PolicyFactory policy, size_t payload) {
  HarnessOptions o;
  o.model = Opts(mode);
  o.policy = std::move(policy);
  o.payload_size = payload;
  ModelHarness h(o);
  absl::Status s = h.Start();
  absl::Status stopped = h.Stop();
  return s.ok() ? stopped : s;
}

TEST(DaemonErrors, PerEntryPayloadTooSmall) {
  absl::Status s = RunHarness(model::Mode::kPerEntry, [] { return MakePerEntryPolicy(); }, 4096);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("REGISTER failed: Invalid argument"));
}

TEST(DaemonErrors, KmbufBuffersTooSmall) {
  absl::Status s = RunHarness(model::Mode::kKmbuf, [] { return MakeKmbufPolicy(); }, 4096);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("REGISTER failed: Invalid argument"));
}

TEST(DaemonErrors, BufpoolTooSmall) {
  // ADD_BUFPOOL refuses a pool without one whole buffer (EINVAL); whether
  // the daemon reports that or the per-entry REGISTER it falls back to,
  // the kernel's errno must reach the Status.
  absl::Status s = RunHarness(model::Mode::kBufpool, [] { return MakeBufpoolPolicy(); }, 4096);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("Invalid argument"));
}

TEST(DaemonErrors, KmbufOnAKernelWithoutIt) {
  absl::Status s = RunHarness(model::Mode::kPerEntry, [] { return MakeKmbufPolicy(); }, 0);
  EXPECT_TRUE(absl::IsUnimplemented(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("IOU_PBUF_RING_KERNEL_MANAGED"));
}

TEST(DaemonErrors, BufpoolOnAKernelWithoutIt) {
  absl::Status s = RunHarness(model::Mode::kPerEntry, [] { return MakeBufpoolPolicy(); }, 0);
  EXPECT_TRUE(absl::IsUnimplemented(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("Linux 7.3"));
}

// ---- daemon-bug detection ---------------------------------------------------

// One registered entry per queue, driven by hand.
struct RawRig {
  explicit RawRig(model::Mode mode = model::Mode::kPerEntry) : m(Opts(mode)) {
    ring = m.NewRing(16);
    for (uint16_t q = 0; q < 2; q++) {
      e.push_back(std::make_unique<RawEntry>(m.max_payload()));
      PrepRegister(*ring, ring->GetSqe(), m.fuse_fd(), q, *e[q], q);
    }
    ring->Submit();
  }
  ~RawRig() {
    m.Abort();
    ring.reset();
  }
  // Injects a GETATTR on q0 and returns its ticket once delivered.
  uint64_t Deliver() {
    fuse_in_header in{};
    in.opcode = FUSE_GETATTR;
    in.nodeid = 1;
    fuse_getattr_in g{};
    uint64_t t = m.Inject(0, in, std::string(reinterpret_cast<char*>(&g), sizeof(g)), "",
                          sizeof(fuse_attr_out));
    std::vector<uring::Completion> c = Collect(*ring, 1, absl::Seconds(2));
    EXPECT_EQ(c.size(), 1u);
    return t;
  }
  void Commit(uint64_t commit_id) {
    PrepCmd(*ring, ring->GetSqe(), m.fuse_fd(), FUSE_IO_URING_CMD_COMMIT_AND_FETCH, 0, commit_id,
            0);
  }
  model::KernelModel m;
  std::unique_ptr<uring::IoRing> ring;
  std::vector<std::unique_ptr<RawEntry>> e;
};

// ---- what a delivery writes ---------------------------------------------------

// The kernel writes the 40-byte in header and in_args[0] only; the model
// fills the rest of in_out and op_in with kPoison (never zeroes), so a
// daemon that reads beyond its arguments sees garbage.
TEST(ModelDelivery, WritesOnlyTheInHeaderAndTheOpArgument) {
  RawRig r;
  std::memset(r.e[0]->hdr.in_out, 0, sizeof(r.e[0]->hdr.in_out));
  std::memset(r.e[0]->hdr.op_in, 0, sizeof(r.e[0]->hdr.op_in));
  uint64_t t = r.Deliver();  // GETATTR: fuse_getattr_in (16 bytes) in op_in
  const fuse_uring_req_header& h = r.e[0]->hdr;
  EXPECT_EQ(r.e[0]->In().unique, t);
  for (size_t i = sizeof(fuse_in_header); i < sizeof(h.in_out); i++) {
    ASSERT_EQ(static_cast<unsigned char>(h.in_out[i]), model::kPoison) << "in_out byte " << i;
  }
  for (size_t i = 0; i < sizeof(fuse_getattr_in); i++) ASSERT_EQ(h.op_in[i], 0) << i;
  for (size_t i = sizeof(fuse_getattr_in); i < sizeof(h.op_in); i++) {
    ASSERT_EQ(static_cast<unsigned char>(h.op_in[i]), model::kPoison) << "op_in byte " << i;
  }
}

// NOTIFY_REPLY travels the ring: op_in unwritten, fuse_notify_retrieve_in
// then the data in the payload, commit_id = the daemon's notify_unique.
TEST(ModelDelivery, NotifyReplyTravelsTheRing) {
  RawRig r;
  uint64_t t = r.m.InjectNotifyReply(0, 5, 0x4242, 8192, "cached");
  std::vector<uring::Completion> c = Collect(*r.ring, 1, absl::Seconds(2));
  ASSERT_EQ(c.size(), 1u);
  const RawEntry& e = *r.e[0];
  fuse_in_header in = e.In();
  EXPECT_EQ(in.opcode, FUSE_NOTIFY_REPLY);
  EXPECT_EQ(in.nodeid, 5u);
  EXPECT_EQ(in.unique, 0x4242u);
  EXPECT_EQ(e.Ent().commit_id, 0x4242u);
  EXPECT_EQ(e.Ent().payload_sz, sizeof(fuse_notify_retrieve_in) + 6);
  for (size_t i = 0; i < sizeof(e.hdr.op_in); i++) {
    ASSERT_EQ(static_cast<unsigned char>(e.hdr.op_in[i]), model::kPoison) << "op_in byte " << i;
  }
  fuse_notify_retrieve_in ri;
  std::memcpy(&ri, e.payload.data(), sizeof(ri));
  EXPECT_EQ(ri.offset, 8192u);
  EXPECT_EQ(ri.size, 6u);
  EXPECT_EQ(std::string(e.payload.data() + sizeof(ri), 6), "cached");
  r.e[0]->Reply(0x4242, 0, nullptr, 0);
  r.Commit(0x4242);
  r.ring->Submit();
  std::optional<model::ModelReply> rep = r.m.WaitReply(t, absl::Seconds(2));
  ASSERT_TRUE(rep.has_value());
  EXPECT_EQ(rep->error, 0);
  EXPECT_THAT(r.m.violations(), IsEmpty());
}

// ---- zero-copy --------------------------------------------------------------

// Two zero-copy queues with one entry each, both pools in registered slot 0
// of a sparse table; entry q names slot `slots[q]`. An fh opened with
// FOPEN_IO_URING_ZERO_COPY.
struct ZcRig {
  explicit ZcRig(std::vector<uint16_t> slots = {1, 2}) : m(ZcOpts()) {
    ring = m.NewRing(16);
    const size_t bs = m.max_payload();
    pool.assign(2 * bs, 0);
    EXPECT_EQ(uring::RegisterSparseBuffers(*ring, 3), 0);
    struct iovec iov = {pool.data(), pool.size()};
    EXPECT_EQ(uring::UpdateBuffers(*ring, 0, &iov, 1), 1);
    for (uint16_t q = 0; q < 2; q++) {
      EXPECT_EQ(Cmd(FUSE_IO_URING_CMD_ADD_QUEUE, q, FUSE_URING_ZERO_COPY, [](auto&) {}), 0);
      EXPECT_EQ(Cmd(FUSE_IO_URING_CMD_ADD_BUFPOOL, q, 0,
                    [&](fuse_uring_cmd_req_v46& c) {
                      c.bufpool.uaddr = reinterpret_cast<uint64_t>(pool.data() + q * bs);
                      c.bufpool.len = static_cast<uint32_t>(bs);
                    }),
                0);
      hdr.push_back(std::make_unique<fuse_uring_req_header>());
      iov2.push_back(std::make_unique<std::array<struct iovec, 2>>());
      (*iov2[q])[0] = {hdr[q].get(), sizeof(fuse_uring_req_header)};
      (*iov2[q])[1] = {nullptr, 0};
      fuse_uring_cmd_req_v46 c{};
      c.qid = q;
      c.ent_zero_copy_buf_index = slots[q];
      io_uring_sqe* sqe = ring->GetSqe();
      PrepCmdV46(sqe, m.fuse_fd(), FUSE_IO_URING_CMD_REGISTER, c, q, 0);
      sqe->addr = reinterpret_cast<uint64_t>(iov2[q]->data());
      sqe->len = 2;
    }
    ring->Submit();
    // OPEN on queue 0, answered with FOPEN_IO_URING_ZERO_COPY.
    fuse_in_header in{};
    in.opcode = FUSE_OPEN;
    in.nodeid = 2;
    fuse_open_in oi{};
    uint64_t t = m.Inject(0, in, std::string(reinterpret_cast<char*>(&oi), sizeof(oi)), "",
                          sizeof(fuse_open_out));
    EXPECT_EQ(Collect(*ring, 1, absl::Seconds(2)).size(), 1u);
    fuse_open_out oo{};
    oo.fh = kFh;
    oo.open_flags = FOPEN_IO_URING_ZERO_COPY;
    std::memcpy(pool.data(), &oo, sizeof(oo));
    Commit(0, t, sizeof(oo));
    std::optional<model::ModelReply> rep = m.WaitReply(t, absl::Seconds(2));
    EXPECT_TRUE(rep.has_value() && rep->error == 0);
  }
  ~ZcRig() {
    m.Abort();
    ring.reset();
  }
  static model::ModelOptions ZcOpts() {
    model::ModelOptions o = Opts(model::Mode::kBufpool);
    o.cap_sys_admin = true;
    return o;
  }
  int Cmd(uint32_t op, uint16_t qid, uint64_t flags,
          const std::function<void(fuse_uring_cmd_req_v46&)>& fill) {
    return One(*ring, [&](io_uring_sqe* s) {
      fuse_uring_cmd_req_v46 c{};
      c.flags = flags;
      c.qid = qid;
      fill(c);
      PrepCmdV46(s, m.fuse_fd(), op, c, 0, op == FUSE_IO_URING_CMD_ADD_BUFPOOL ? 0 : -1);
    });
  }
  // Replies (error 0, payload_sz) to what entry q holds and commits it.
  void Commit(uint16_t q, uint64_t unique, uint32_t payload_sz) {
    fuse_out_header out{static_cast<uint32_t>(sizeof(out) + payload_sz), 0, unique};
    std::memcpy(hdr[q]->in_out, &out, sizeof(out));
    fuse_uring_ent_in_out ent;
    std::memcpy(&ent, &hdr[q]->ring_ent_in_out, sizeof(ent));
    ent.payload_sz = payload_sz;
    std::memcpy(&hdr[q]->ring_ent_in_out, &ent, sizeof(ent));
    fuse_uring_cmd_req_v46 c{};
    c.qid = q;
    c.commit_id = unique;
    PrepCmdV46(ring->GetSqe(), m.fuse_fd(), FUSE_IO_URING_CMD_COMMIT_AND_FETCH, c, q, 0);
    ring->Submit();
  }
  // A READ of `size` bytes of kFh on queue 0 with the caller's pages.
  uint64_t Read(uint32_t size) {
    fuse_in_header in{};
    in.opcode = FUSE_READ;
    in.nodeid = 2;
    fuse_read_in ri{};
    ri.fh = kFh;
    ri.size = size;
    return m.InjectPages(0, in, std::string(reinterpret_cast<char*>(&ri), sizeof(ri)),
                         std::string(size, '\0'), size);
  }
  int Fixed(bool write, uint16_t slot, int fd, unsigned len) {
    return One(*ring, [&](io_uring_sqe* s) {
      if (write) {
        uring::PrepWriteFixed(s, fd, 0, len, 0, slot, 0);
      } else {
        uring::PrepReadFixed(s, fd, 0, len, 0, slot, 0);
      }
    });
  }
  static constexpr uint64_t kFh = 9;
  model::KernelModel m;
  std::unique_ptr<uring::IoRing> ring;
  std::vector<char> pool;
  std::vector<std::unique_ptr<fuse_uring_req_header>> hdr;
  std::vector<std::unique_ptr<std::array<struct iovec, 2>>> iov2;
};

TEST(ModelErrno, RegisteredBufferTable) {
  model::KernelModel m(Opts(model::Mode::kBufpool));
  auto ring = m.NewRing(16);
  std::vector<char> mem(8192);
  struct iovec iov = {mem.data(), mem.size()};
  EXPECT_EQ(uring::UpdateBuffers(*ring, 0, &iov, 1), -ENXIO);  // no table yet
  EXPECT_EQ(uring::RegisterSparseBuffers(*ring, 4), 0);
  EXPECT_EQ(uring::RegisterSparseBuffers(*ring, 4), -EBUSY);
  EXPECT_EQ(uring::UpdateBuffers(*ring, 4, &iov, 1), -EINVAL);  // past the table
  EXPECT_EQ(uring::UpdateBuffers(*ring, 3, &iov, 1), 1);
  int fd = memfd_create("model-fixed", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "fixed!", 6, 0), 6);
  // A user slot takes a user address; an empty slot is EFAULT.
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) {
              uring::PrepReadFixed(s, fd, reinterpret_cast<uint64_t>(mem.data()), 6, 0, 3, 0);
            }),
            6);
  EXPECT_EQ(std::string(mem.data(), 6), "fixed!");
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) { uring::PrepReadFixed(s, fd, 0, 6, 0, 3, 0); }),
            -EFAULT);  // address 0 is outside the user memory
  EXPECT_EQ(One(*ring, [&](io_uring_sqe* s) {
              uring::PrepReadFixed(s, fd, reinterpret_cast<uint64_t>(mem.data()), 6, 0, 1, 0);
            }),
            -EFAULT);
  EXPECT_EQ(uring::UnregisterBuffers(*ring), 0);
  EXPECT_EQ(uring::UnregisterBuffers(*ring), -ENXIO);
  close(fd);
  EXPECT_THAT(m.violations(), IsEmpty());
}

// A zero-copy READ whose entry names the pool's slot: the pages cannot be
// registered there and the caller gets EBUSY (as 7.3); the entry serves on.
TEST(ModelErrno, ZeroCopySlotHoldingABuffer) {
  ZcRig r({0, 2});
  uint64_t t = r.Read(4096);
  std::optional<model::ModelReply> rep = r.m.WaitReply(t, absl::Seconds(2));
  ASSERT_TRUE(rep.has_value());
  EXPECT_EQ(rep->error, -EBUSY);
  EXPECT_EQ(r.m.stats().zero_copy, 0u);
  EXPECT_THAT(r.m.violations(), IsEmpty());
}

TEST(BugDetection, ZeroCopyReadReplyBeyondThePages) {
  ZcRig r;
  uint64_t t = r.Read(4096);
  ASSERT_EQ(Collect(*r.ring, 1, absl::Seconds(2)).size(), 1u);
  fuse_uring_ent_in_out ent;
  std::memcpy(&ent, &r.hdr[0]->ring_ent_in_out, sizeof(ent));
  EXPECT_EQ(ent.flags, FUSE_URING_ENT_ZERO_COPY);
  EXPECT_EQ(ent.payload_sz, 0u);
  r.Commit(0, t, 4097);
  std::optional<model::ModelReply> rep = r.m.WaitReply(t, absl::Seconds(2));
  ASSERT_TRUE(rep.has_value());
  EXPECT_EQ(rep->error, -EINVAL);
  ASSERT_EQ(r.m.violations().size(), 1u);
  EXPECT_THAT(r.m.violations()[0], HasSubstr("beyond the caller's 4096 bytes"));
}

TEST(BugDetection, ZeroCopySlotTouchedAfterCommit) {
  ZcRig r;
  int fd = memfd_create("model-zc", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 8192), 0);
  uint64_t t = r.Read(4096);
  ASSERT_EQ(Collect(*r.ring, 1, absl::Seconds(2)).size(), 1u);
  EXPECT_EQ(r.Fixed(false, 1, fd, 4096), 4096);  // while held: the caller's pages
  EXPECT_EQ(r.Fixed(false, 1, fd, 4097), -EFAULT);  // beyond them
  r.Commit(0, t, 4096);
  std::optional<model::ModelReply> rep = r.m.WaitReply(t, absl::Seconds(2));
  ASSERT_TRUE(rep.has_value());
  EXPECT_EQ(rep->error, 0);
  EXPECT_EQ(rep->data, std::string(4096, '\0'));
  EXPECT_THAT(r.m.violations(), IsEmpty());
  EXPECT_EQ(r.Fixed(true, 1, fd, 4096), -EFAULT);
  ASSERT_EQ(r.m.violations().size(), 1u);
  EXPECT_THAT(r.m.violations()[0], HasSubstr("WRITE_FIXED on slot 1 after the commit"));
  close(fd);
}

TEST(BugDetection, ReplyBeyondTheBuffer) {
  RawRig r;
  uint64_t t = r.Deliver();
  fuse_attr_out a{};
  r.e[0]->Reply(t, 0, &a, sizeof(a));
  fuse_uring_ent_in_out ent = r.e[0]->Ent();
  ent.payload_sz = static_cast<uint32_t>(r.m.max_payload() + 1);
  std::memcpy(&r.e[0]->hdr.ring_ent_in_out, &ent, sizeof(ent));
  r.Commit(t);
  r.ring->Submit();
  EXPECT_EQ(r.m.WaitReply(t, absl::Seconds(2))->error, -EINVAL);
  ASSERT_EQ(r.m.violations().size(), 1u);
  EXPECT_THAT(r.m.violations()[0], HasSubstr("beyond the selected buffer"));
}

TEST(BugDetection, StaleAndDoubleCommit) {
  RawRig r;
  uint64_t t = r.Deliver();
  fuse_attr_out a{};
  r.e[0]->Reply(t, 0, &a, sizeof(a));
  r.Commit(t);
  r.Commit(t);  // double commit in the same batch
  std::vector<uring::Completion> c = Collect(*r.ring, 1, absl::Seconds(2));
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].res, -ENOENT);
  EXPECT_EQ(r.m.WaitReply(t, absl::Seconds(2))->error, 0);
  r.Commit(t - 2);  // stale: never delivered / long gone
  c = Collect(*r.ring, 1, absl::Seconds(2));
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].res, -ENOENT);
  std::vector<std::string> v = r.m.violations();
  ASSERT_EQ(v.size(), 2u);
  EXPECT_THAT(v[0], HasSubstr("stale or double commit"));
}

TEST(BugDetection, BadOutHeader) {
  RawRig r;
  uint64_t t = r.Deliver();
  r.e[0]->Reply(t, -600, nullptr, 0);  // below -ERESTARTSYS
  r.Commit(t);
  r.ring->Submit();
  EXPECT_EQ(r.m.WaitReply(t, absl::Seconds(2))->error, -EINVAL);
  EXPECT_EQ(r.m.violations().size(), 1u);
}

TEST(BugDetection, HeaderOrPayloadWrittenAfterCommit) {
  RawRig r;
  uint64_t t = r.Deliver();
  fuse_attr_out a{};
  r.e[0]->Reply(t, 0, &a, sizeof(a));
  r.Commit(t);
  r.ring->Submit();
  ASSERT_EQ(r.m.WaitReply(t, absl::Seconds(2))->error, 0);
  EXPECT_THAT(r.m.violations(), IsEmpty());
  r.e[0]->payload[100] ^= 1;  // the kernel owns it again
  r.Deliver();
  ASSERT_EQ(r.m.violations().size(), 1u);
  EXPECT_THAT(r.m.violations()[0], HasSubstr("written after commit"));
}

// kmbuf: a buffer the kernel recycled is written by the daemon.
TEST(BugDetection, KmbufBufferWrittenAfterRecycle) {
  model::KernelModel m(Opts(model::Mode::kKmbuf));
  auto ring = m.NewRing(16);
  std::unique_ptr<PayloadPolicy> p[2] = {MakeKmbufPolicy(), MakeKmbufPolicy()};
  // Two queues on one ring cannot share bgid 0: a ring per queue.
  auto ring1 = m.NewRing(16);
  uring::IoRing* rings[2] = {ring.get(), ring1.get()};
  std::vector<std::unique_ptr<UringEntry>> entries;
  for (uint16_t q = 0; q < 2; q++) {
    PolicySetup s;
    s.qid = q;
    s.entries = 1;
    s.payload_size = (m.max_payload() + 4095) & ~size_t{4095};
    s.fuse_fd = m.fuse_fd();
    ASSERT_TRUE(p[q]->Setup(*rings[q], s).ok());
    entries.push_back(std::make_unique<UringEntry>(nullptr, 0, p[q]->Header(0)));
    p[q]->PrepRegister(rings[q]->GetSqe(), m.fuse_fd(), *entries[q], 0);
    rings[q]->Submit();
  }
  ASSERT_TRUE(m.ready());
  fuse_in_header in{};
  in.opcode = FUSE_GETATTR;
  in.nodeid = 1;
  fuse_getattr_in g{};
  std::string op(reinterpret_cast<char*>(&g), sizeof(g));
  uint64_t t = m.Inject(0, in, op, "", sizeof(fuse_attr_out));
  std::vector<uring::Completion> c = Collect(*ring, 1, absl::Seconds(2));
  ASSERT_EQ(c.size(), 1u);
  ASSERT_TRUE(uring::BufferRing::HasBuffer(c[0].flags));
  UringEntry& e = *entries[0];
  ASSERT_EQ(p[0]->OnDelivered(e, c[0].flags), 0);
  char* buf = e.payload();
  ASSERT_NE(buf, nullptr);
  // Reply by hand (the entry has no queue): out header + payload_sz.
  fuse_out_header oh{sizeof(fuse_out_header), 0, t};
  std::memcpy(e.header()->in_out, &oh, sizeof(oh));
  PrepCmd(*ring, ring->GetSqe(), m.fuse_fd(), FUSE_IO_URING_CMD_COMMIT_AND_FETCH, 0, t, 0);
  ring->Submit();
  ASSERT_EQ(m.WaitReply(t, absl::Seconds(2))->error, 0);
  EXPECT_EQ(m.FreeBuffers(0), m.TotalBuffers(0));  // recycled by the kernel side
  buf[7] = 'x';                                    // use after recycle
  m.VerifyQuiescent();
  ASSERT_EQ(m.violations().size(), 1u);
  EXPECT_THAT(m.violations()[0], HasSubstr("after the kernel took it back"));
  m.Abort();
  for (auto& pp : p) pp.reset();
}

// Through UringQueue: a filesystem that keeps writing into the reply buffer
// after its reply was committed.
class ScribblingFs : public FileSystem {
 public:
  ~ScribblingFs() override {
    for (auto& t : threads_) t.join();
  }
  void Getattr(const RequestContext&, uint64_t, std::optional<uint64_t>, Reply r) override {
    threads_.emplace_back([r = std::move(r)]() mutable {
      absl::Span<char> buf = r.Buffer();
      fuse_attr_out a{};
      a.attr.ino = 1;
      a.attr.mode = S_IFDIR | 0755;
      r.Attr(a);
      absl::SleepFor(absl::Milliseconds(50));
      std::memset(buf.data(), 0x5a, 32);  // BUG: the buffer went back with the commit
    });
  }

 private:
  std::vector<std::thread> threads_;
};

class ScribbleTest : public ::testing::TestWithParam<model::Mode> {};

TEST_P(ScribbleTest, WriteAfterCommitIsCaught) {
  ScribblingFs fs;
  HarnessOptions o;
  o.model = Opts(GetParam());
  o.policy = GetParam() == model::Mode::kPerEntry   ? PolicyFactory(MakePerEntryPolicy)
             : GetParam() == model::Mode::kKmbuf    ? PolicyFactory([] { return MakeKmbufPolicy(); })
                                                    : PolicyFactory([] { return MakeBufpoolPolicy(); });
  o.fs = &fs;
  ModelHarness h(o);
  ASSERT_TRUE(h.Start().ok());
  fuse_attr_out a{};
  ASSERT_EQ(h.Getattr(0, FUSE_ROOT_ID, &a), 0);
  absl::SleepFor(absl::Milliseconds(150));
  h.model().VerifyQuiescent();
  EXPECT_THAT(h.model().violations(), Not(IsEmpty()));
  EXPECT_TRUE(h.Stop().ok());
}

INSTANTIATE_TEST_SUITE_P(AllModes, ScribbleTest,
                         ::testing::Values(model::Mode::kPerEntry, model::Mode::kKmbuf,
                                           model::Mode::kBufpool));

// UringEntry's own ownership check: a commit while the kernel owns the entry
// aborts the daemon with a message.
TEST(OwnershipDeathTest, CommitOutsideDaemonAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  fuse_uring_req_header hdr{};
  UringQueueConfig cfg;
  UringQueue q(cfg, MakePerEntryPolicy(), nullptr);
  UringEntry e(&q, 3, &hdr);
  EXPECT_DEATH(e.Commit(Answer::Args(0, 0)), "queue 0 entry 3: commit while the entry is new");
  EXPECT_DEATH(e.ArgArea(), "reply buffer used while the entry is new");
}

// The entry's own states for an answer in progress: a READ plan's backend
// read in flight (backend-io) and a commit queued from another thread
// (commit-queued) are told apart, and a second answer in either is reported
// and never acted on.
TEST(OwnershipDeathTest, SecondAnswerWhileBackendIoOrCommitQueuedAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  using State = UringEntry::State;
  fuse_uring_req_header hdr{};
  UringQueueConfig cfg;
  UringQueue q(cfg, MakePerEntryPolicy(), nullptr);
  UringEntry e(&q, 5, &hdr);
  e.Transition(State::kNew, State::kInKernel, "register");
  e.Transition(State::kInKernel, State::kDaemon, "request delivered");
  // A move from a state the entry is not in is reported with the real one.
  EXPECT_DEATH(e.Transition(State::kInKernel, State::kDaemon, "request delivered"),
               "queue 0 entry 5: request delivered while the entry is daemon");
  e.Transition(State::kDaemon, State::kBackendIo, "backend read");
  EXPECT_DEATH(e.Commit(Answer::Args(0, 0)),
               "queue 0 entry 5: commit while the entry is backend-io");
  EXPECT_DEATH(e.Commit(Answer::ReadFromFd(FdPlan{})),
               "backend read while the entry is backend-io");
  EXPECT_DEATH(e.ArgArea(), "reply buffer used while the entry is backend-io");
  e.Transition(State::kBackendIo, State::kDaemon, "staged write delivered again");
  // This thread is not the queue's: the commit is queued for it.
  e.Commit(Answer::Args(-ENOENT, 0));
  EXPECT_EQ(e.state(), State::kCommitQueued);
  EXPECT_DEATH(e.Commit(Answer::Args(0, 0)),
               "queue 0 entry 5: commit while the entry is commit-queued");
  EXPECT_DEATH(e.Drop(), "commit while the entry is commit-queued");
  EXPECT_DEATH(e.Commit(Answer::ReadFromFd(FdPlan{})),
               "backend read while the entry is commit-queued");
}

// Two threads answering one entry at once: the claim is one compare-and-swap,
// so exactly one wins and the other is reported (a check followed by the
// act would let both through).
TEST(OwnershipDeathTest, RacingCommitsOneWinsTheOtherAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  using State = UringEntry::State;
  EXPECT_DEATH(
      {
        fuse_uring_req_header hdr{};
        UringQueueConfig cfg;
        UringQueue q(cfg, MakePerEntryPolicy(), nullptr);
        UringEntry e(&q, 2, &hdr);
        e.Transition(State::kNew, State::kInKernel, "register");
        e.Transition(State::kInKernel, State::kDaemon, "request delivered");
        std::atomic<bool> go{false};
        std::thread a([&] {
          while (!go.load()) {
          }
          e.Commit(Answer::Args(0, 0));
        });
        std::thread b([&] {
          while (!go.load()) {
          }
          e.Commit(Answer::Args(-EIO, 0));
        });
        go.store(true);
        a.join();
        b.join();
      },
      "queue 0 entry 2: commit while the entry is commit-queued");
}

}  // namespace
}  // namespace kmfuse::testing
