// KernelModel: the kernel side of FUSE-over-io_uring, as a test double.
//
// It implements uring::IoRing (NewRing), so UringQueue and the payload
// policies run against it unchanged, and it plays the FUSE connection: tests
// Inject() requests as the kernel would route them and WaitReply() for what
// the daemon answered. Three modes:
//   kPerEntry  6.14-6.18 `uring`: REGISTER iovec[2] = {header, payload};
//              verified against the real 6.18 kernel by
//              tests/uring_crosscheck_test.
//   kKmbuf     the proposed kernel-managed buffer rings (docs section 4).
//   kBufpool   FUSE io-uring buffer pools, protocol 7.46 (docs section 5).
// kmbuf and bufpool follow docs/kernel-interfaces.md; no kernel here can
// confirm them.
//
// What the model does like the kernel
// - SQE checks, in the kernel's order, with its errnos: URING_CMD on a ring
//   without SQE128 -> EINVAL; fd not the connection's -> EOPNOTSUPP; after
//   Abort -> ENOTCONN; before SetInitDone -> EAGAIN; unknown cmd_op -> EINVAL;
//   REGISTER: qid >= nr_queues -> EINVAL, sqe->len != 2 -> EINVAL, iovec
//   array at NULL -> EFAULT, header iovec < 288 -> EINVAL, payload iovec <
//   max_payload -> EINVAL. COMMIT_AND_FETCH: qid out of range -> EINVAL, no
//   queue yet -> ENOTCONN, commit_id not held by the daemon on that queue ->
//   ENOENT (also a recorded violation). A malformed out header does NOT fail
//   the SQE (the real kernel ends the request instead): error > 0 or
//   <= -ERESTARTSYS, or unique 0 -> the caller gets EINVAL; error 0 with a
//   wrong unique -> ENOENT; all three are recorded violations.
// - kmbuf: RegisterRaw(IORING_REGISTER_PBUF_RING) with KERNEL_MANAGED:
//   MMAP required, INC rejected, buf_size non-zero page multiple, entries a
//   power of two < 65536, resv zero (else EINVAL), bgid taken -> EEXIST;
//   buffers pre-filled bid i -> buffer i, one contiguous region returned by
//   MapRegion(PbufRingOffset(bgid)). Unregistering a ring a queue pinned ->
//   EBUSY. REGISTER with FUSE_URING_BUF_RING needs IORING_URING_CMD_FIXED,
//   registered buffer 0 large enough for header buf_index, sqe->len 0, a
//   ring at bgid 0 with buf_size >= max_payload (else EINVAL). Delivery with
//   a newly selected buffer carries IORING_CQE_F_BUFFER | bid << 16; without
//   the flag the entry keeps its buffer.
// - bufpool: ADD_QUEUE (twice -> EEXIST; FUSE_URING_ZERO_COPY without
//   cap_sys_admin -> EPERM), ADD_BUFPOOL (before ADD_QUEUE or after the
//   queue's first REGISTER -> EINVAL, twice -> EEXIST, fewer than one
//   max_payload buffer -> EINVAL; with IORING_URING_CMD_FIXED the region must
//   lie in registered buffer buf_index, and every later SQE of the queue must
//   carry that buf_index, else EINVAL). REGISTER on a pool queue needs a
//   {NULL, 0} payload iovec. Delivery writes ring_ent_in_out.offset; requests
//   that need no buffer leave it unchanged (the 7.3 header text was not seen).
// - Readiness: requests wait until every queue has a registered entry.
// - Buffer life (kmbuf, bufpool): a request needs a buffer when it carries
//   payload bytes or may get reply arguments (out_max > 0). A free buffer is
//   selected on delivery; at commit the entry keeps it when the next queued
//   request needs one, and otherwise the kernel (the model) recycles it: on
//   a request without payload, when nothing is queued, at Abort and when the
//   ring goes away. The daemon has no way to recycle. No free buffer: the
//   request stays queued (FIFO, head of line) until one is recycled.
// - Teardown: Abort() ends queued requests and those held by the daemon with
//   ECONNABORTED, completes idle entries with -ENOTCONN, and every later
//   command fails with -ENOTCONN (as after umount; the fusectl abort would
//   give ECONNABORTED for later commands).
// - The mailbox: IORING_OP_READ on an eventfd completes once the fd is
//   readable (polled while SubmitAndWait blocks).
//
// What it does NOT model: the /dev/fuse side (INIT, FORGET, INTERRUPT,
// notifications, the fallback to /dev/fuse after a failed REGISTER), CPU
// routing (Inject names the queue), zero-copy, request timeouts, and
// io_uring features beyond those listed (no SQPOLL, links, fixed files).
//
// Daemon-bug detection (violations(), a list the tests assert empty):
// reply payload_sz beyond the selected buffer or beyond what the request
// accepts, stale or double commit_id, a malformed out header, and a buffer or
// header touched after commit: at each commit the model checksums the entry's
// header and its buffer and verifies the sum when it next reads, reuses or
// recycles them, at Abort and at VerifyQuiescent().
//
// Threading: every method is thread-safe (one model mutex). A ring from
// NewRing is thread-compatible like any IoRing. The model must outlive its
// rings. Memory the daemon registered (headers, per-entry payloads, pools)
// must stay mapped until its ring is destroyed or Abort() was called.
#ifndef KMFUSE_TESTS_KERNEL_MODEL_KERNEL_MODEL_H_
#define KMFUSE_TESTS_KERNEL_MODEL_KERNEL_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "kmfuse/fuse_abi.h"
#include "uring/io_ring.h"

namespace kmfuse::model {

enum class Mode { kPerEntry, kKmbuf, kBufpool };
const char* ModeName(Mode mode);

struct ModelOptions {
  Mode mode = Mode::kPerEntry;
  uint16_t nr_queues = 2;          // the kernel's number of possible CPUs
  uint32_t max_write = 128 * 1024;  // negotiated in INIT
  uint32_t max_pages = 32;
  bool init_done = true;     // false: REGISTER gets EAGAIN until SetInitDone()
  bool cap_sys_admin = false;  // for FUSE_URING_ZERO_COPY
  int fuse_fd = 1 << 20;     // the fd URING_CMDs must name (never a real fd)
};

// What the caller of a request saw.
struct ModelReply {
  int32_t error = 0;       // 0 or -errno, as the syscall would see it
  abi::fuse_out_header out{};  // as the daemon wrote it (len recomputed from payload_sz)
  std::string data;        // reply arguments (payload_sz bytes)
};

struct ModelStats {
  uint64_t delivered = 0;
  uint64_t buffer_selections = 0;  // a free buffer handed to an entry
  uint64_t buffer_keeps = 0;       // an entry kept its buffer for the next request
  uint64_t recycles = 0;           // buffers returned by the kernel side
  uint64_t waits_for_buffer = 0;   // a request found no free buffer
  unsigned max_buffers_in_use = 0;
};

class KernelModel {
 public:
  explicit KernelModel(const ModelOptions& options);
  ~KernelModel();
  KernelModel(const KernelModel&) = delete;
  KernelModel& operator=(const KernelModel&) = delete;

  const ModelOptions& options() const { return options_; }
  int fuse_fd() const { return options_.fuse_fd; }
  // max(8192, max_write, max_pages * 4096): the payload every entry needs.
  size_t max_payload() const;

  // A new ring (as io_uring_setup with or without IORING_SETUP_SQE128).
  std::unique_ptr<uring::IoRing> NewRing(unsigned entries, bool sqe128 = true);

  // The INIT reply was processed: REGISTER stops returning EAGAIN.
  void SetInitDone();

  // Queues a request on queue qid as the kernel would route it there. The
  // model assigns in.unique (and in.len); op goes to op_in (<= 128 bytes),
  // payload to the payload buffer (<= max_payload). out_max: reply argument
  // bytes the caller accepts (larger replies fail with EINVAL, as
  // fuse_copy_out_args). Returns the ticket (== unique) for WaitReply. After
  // Abort the request ends at once with ENOTCONN.
  uint64_t Inject(uint16_t qid, const abi::fuse_in_header& in, absl::string_view op,
                  absl::string_view payload, uint32_t out_max);
  // The reply, or nullopt after timeout.
  std::optional<ModelReply> WaitReply(uint64_t ticket, absl::Duration timeout);

  // Connection end (umount/abort), see above.
  void Abort();
  bool aborted() const;

  // True once every queue has had a registered entry.
  bool ready() const;
  unsigned RegisteredEntries(uint16_t qid) const;
  // kmbuf/bufpool: buffers of queue qid not held by any entry; total.
  unsigned FreeBuffers(uint16_t qid) const;
  unsigned TotalBuffers(uint16_t qid) const;
  // Requests queued on qid and not yet delivered.
  size_t Queued(uint16_t qid) const;

  // Verifies the checksums of every idle entry and free buffer now.
  void VerifyQuiescent();
  std::vector<std::string> violations() const;
  void ClearViolations();
  ModelStats stats() const;

  struct State;  // implementation
 private:
  const ModelOptions options_;
  std::unique_ptr<State> s_;
};

}  // namespace kmfuse::model

#endif  // KMFUSE_TESTS_KERNEL_MODEL_KERNEL_MODEL_H_
