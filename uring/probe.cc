#include "uring/probe.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <liburing.h>

#include "absl/strings/str_cat.h"
#include "uring/base/unique_fd.h"
#include "uring/buffer_ring.h"
#include "uring/errors.h"
#include "uring/ring.h"
#include "uring/sqe.h"
#include "uring/uapi.h"

namespace kmfuse::uring {
namespace {

constexpr int64_t kWaitNs = 1'000'000'000;
constexpr unsigned kRegisterProbe = 8;  // IORING_REGISTER_PROBE
constexpr unsigned kProbeOps = 256;

ProbeItem Item(ProbeId id, std::string mechanism, bool supported, std::string detail = "",
               int error = 0) {
  return ProbeItem{std::move(mechanism), supported, std::move(detail), error, id};
}

ProbeItem ErrnoItem(ProbeId id, std::string mechanism, int err) {
  if (err < 0) err = -err;
  return Item(id, std::move(mechanism), false, "errno " + internal::ErrnoName(err), err);
}

// io_uring_setup with `flags`, straight through liburing so the errno is
// exact (Ring::Create's best-effort fallback would hide it).
ProbeItem SetupItem(ProbeId id, std::string mechanism, unsigned flags) {
  io_uring ring;
  io_uring_params params;
  std::memset(&params, 0, sizeof(params));
  params.flags = flags;
  int ret = io_uring_queue_init_params(8, &ring, &params);
  if (ret < 0) return ErrnoItem(id, std::move(mechanism), ret);
  io_uring_queue_exit(&ring);
  return Item(id, std::move(mechanism), true);
}

ProbeItem OpcodeItem(ProbeId id, std::string mechanism, const io_uring_probe* probe,
                     int probe_ret, unsigned op) {
  if (probe_ret < 0) return ErrnoItem(id, std::move(mechanism), probe_ret);
  bool ok = op <= probe->last_op && (probe->ops[op].flags & IO_URING_OP_SUPPORTED) != 0;
  return Item(id, std::move(mechanism), ok,
              ok ? "" : absl::StrCat("kernel's last opcode is ", probe->last_op));
}

// A real multishot read: the only check that proves the whole path works
// (opcode probe success alone does not prove buffer selection with it).
ProbeItem MultishotPipeItem(Ring& ring, std::string mechanism) {
  const ProbeId id = ProbeId::kReadMultishotPipe;
  BufferRingOptions o;
  o.bgid = 0;
  o.entries = 2;
  o.buf_size = 4096;
  auto br = BufferRing::Create(ring, o);
  if (!br.ok()) return Item(id, std::move(mechanism), false, std::string(br.status().message()));
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    return Item(id, std::move(mechanism), false, "pipe2: " + internal::ErrnoName(errno));
  }
  UniqueFd reader(fds[0]);
  UniqueFd writer(fds[1]);
  io_uring_sqe* sqe = ring.GetSqe();
  if (sqe == nullptr) return Item(id, std::move(mechanism), false, "no SQE");
  PrepReadMultishot(sqe, reader.get(), 0, 1);
  int ret = ring.Submit();
  if (ret < 0) return ErrnoItem(id, std::move(mechanism), ret);
  static constexpr char kMsg[] = "kmfuse probe";
  if (write(writer.get(), kMsg, sizeof(kMsg)) != static_cast<ssize_t>(sizeof(kMsg))) {
    return Item(id, std::move(mechanism), false, "pipe write failed");
  }
  ret = ring.SubmitAndWaitTimeout(1, kWaitNs);
  if (ret < 0) return ErrnoItem(id, std::move(mechanism), ret);
  Completion c{0, 0, 0};
  ring.Reap([&c](const Completion& got) { c = got; });

  // Close the writer so the multishot ends (EOF) before its buffer ring goes.
  writer.reset();
  if (c.flags & kCqeFMore) {
    if (ring.SubmitAndWaitTimeout(1, kWaitNs) >= 0) ring.Reap([](const Completion&) {});
  }

  if (c.res < 0) return ErrnoItem(id, std::move(mechanism), c.res);
  const bool has_buf = BufferRing::HasBuffer(c.flags);
  const uint16_t bid = BufferRing::BidFromCqeFlags(c.flags);
  const bool data_ok = has_buf && c.res == static_cast<int>(sizeof(kMsg)) &&
                       std::memcmp((*br)->Data(bid), kMsg, sizeof(kMsg)) == 0;
  const bool more = (c.flags & kCqeFMore) != 0;
  std::string detail = absl::StrCat("res ", c.res, has_buf ? absl::StrCat(", bid ", bid) : ", no buffer",
                                    more ? ", F_MORE" : ", no F_MORE",
                                    data_ok ? ", data intact" : ", data mismatch");
  return Item(id, std::move(mechanism), data_ok && more, std::move(detail));
}

ProbeItem KmbufItem(Ring& ring, std::string mechanism) {
  const ProbeId id = ProbeId::kKmbufRing;
  KmbufReg reg;
  std::memset(&reg, 0, sizeof(reg));
  reg.buf_size = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  reg.ring_entries = 8;
  reg.bgid = 1;
  reg.flags = kPbufRingMmap | kPbufRingKernelManaged;
  int ret = ring.RegisterRaw(kRegisterPbufRing, &reg, 1);
  if (ret < 0) return ErrnoItem(id, std::move(mechanism), ret);
  io_uring_buf_reg unreg;
  std::memset(&unreg, 0, sizeof(unreg));
  unreg.bgid = 1;
  ring.RegisterRaw(kUnregisterPbufRing, &unreg, 1);
  return Item(id, std::move(mechanism), true);
}

}  // namespace

std::vector<ProbeItem> ProbeIoUring() {
  std::vector<ProbeItem> items;
  items.push_back(SetupItem(ProbeId::kRingSetup, "io_uring setup", 0));
  items.push_back(SetupItem(ProbeId::kSqe128, "SQE128 ring (IORING_SETUP_SQE128)", kSetupSqe128));
  items.push_back(SetupItem(ProbeId::kSingleIssuer, "single issuer (IORING_SETUP_SINGLE_ISSUER)",
                            kSetupSingleIssuer));
  items.push_back(SetupItem(ProbeId::kDeferTaskrun, "defer taskrun (IORING_SETUP_DEFER_TASKRUN)",
                            kSetupSingleIssuer | kSetupDeferTaskrun));

  const char* kNames[] = {
      "opcode READ_MULTISHOT (49)",
      "opcode URING_CMD (46)",
      "provided buffer ring (IORING_REGISTER_PBUF_RING)",
      "READ_MULTISHOT on a pipe into a provided buffer ring",
      "kmbuf ring (IOU_PBUF_RING_KERNEL_MANAGED)",
  };
  auto ring = Ring::Create(RingOptions{});
  if (!ring.ok()) {
    std::string why = absl::StrCat("io_uring unavailable: ", ring.status().message());
    ProbeId ids[] = {ProbeId::kOpReadMultishot, ProbeId::kOpUringCmd, ProbeId::kProvidedBufferRing,
                     ProbeId::kReadMultishotPipe, ProbeId::kKmbufRing};
    for (int i = 0; i < 5; ++i) items.push_back(Item(ids[i], kNames[i], false, why));
    return items;
  }

  const size_t probe_len = sizeof(io_uring_probe) + kProbeOps * sizeof(io_uring_probe_op);
  std::unique_ptr<char[]> probe_mem(new char[probe_len]());
  auto* probe = reinterpret_cast<io_uring_probe*>(probe_mem.get());
  int probe_ret = (*ring)->RegisterRaw(kRegisterProbe, probe, kProbeOps);
  items.push_back(OpcodeItem(ProbeId::kOpReadMultishot, kNames[0], probe, probe_ret, kOpReadMultishot));
  items.push_back(OpcodeItem(ProbeId::kOpUringCmd, kNames[1], probe, probe_ret, kOpUringCmd));

  {
    BufferRingOptions o;
    o.bgid = 2;
    o.entries = 4;
    o.buf_size = 4096;
    auto br = BufferRing::Create(**ring, o);
    items.push_back(br.ok() ? Item(ProbeId::kProvidedBufferRing, kNames[2], true)
                            : Item(ProbeId::kProvidedBufferRing, kNames[2], false,
                                   std::string(br.status().message())));
  }
  items.push_back(MultishotPipeItem(**ring, kNames[3]));
  items.push_back(KmbufItem(**ring, kNames[4]));
  return items;
}

const ProbeItem* FindProbeItem(const std::vector<ProbeItem>& items, ProbeId id) {
  for (const ProbeItem& item : items) {
    if (item.id == id) return &item;
  }
  return nullptr;
}

std::string FormatProbeItem(const ProbeItem& item) {
  std::string out = absl::StrCat(item.mechanism, ": ", item.supported ? "supported" : "not supported");
  if (item.error != 0) {
    absl::StrAppend(&out, " (", internal::ErrnoName(item.error), ")");
  } else if (!item.detail.empty()) {
    absl::StrAppend(&out, " (", item.detail, ")");
  }
  return out;
}

}  // namespace kmfuse::uring
