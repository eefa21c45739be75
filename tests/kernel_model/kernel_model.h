// KernelModel: the kernel side of FUSE-over-io_uring, as a test double.
//
// It implements uring::IoRing (NewRing), so UringQueue and the payload
// policies run against it unchanged, and it plays the FUSE connection: tests
// Inject() requests as the kernel would route them and WaitReply() for what
// the daemon answered. Three modes:
//   kPerEntry  6.14-6.18 `uring`: REGISTER iovec[2] = {header, payload};
//              verified against the real 6.18 and 7.3 kernels by
//              tests/uring_crosscheck_test.
//   kKmbuf     the proposed kernel-managed buffer rings (docs section 4):
//              this model is the only place the kmbuf transport runs.
//   kBufpool   FUSE io-uring buffer pools, protocol 7.46 (docs section 5).
// kmbuf follows docs/kernel-interfaces.md (no kernel has it); bufpool is
// verified against the real 7.3 kernel (tools/vm) by the same cross-check.
//
// Protocol minor. The kernel's behaviour differs between 7.45 (6.14-6.18) and
// 7.46 (7.3, buffer pools); ModelOptions::minor picks one (0: 7.46 for
// kBufpool, 7.45 otherwise). Both are checked against the real kernels by
// tests/uring_crosscheck_test (6.18 on the host, 7.3 in tools/vm).
//
// What the model does like the kernel
// - SQE checks, in the kernel's order, with its errnos. Both minors:
//   URING_CMD on a ring without SQE128 -> EINVAL; fd not the connection's ->
//   EOPNOTSUPP. 7.45: after Abort -> ENOTCONN (ECONNABORTED with
//   abort_error), then before SetInitDone -> EAGAIN. 7.46: before SetInitDone
//   -> EAGAIN, then after Abort as 7.45, then, once any REGISTER failed,
//   EOPNOTSUPP for every later command of the connection (the kernel turns
//   io-uring off for it). Then: unknown cmd_op -> EINVAL.
//   REGISTER: qid >= nr_queues -> EINVAL (the queue is created past this
//   check, even when the REGISTER fails later), sqe->len != 2 -> EINVAL,
//   iovec array at NULL -> EFAULT, 7.46: ent_zero_copy_buf_index non-zero on
//   a queue without FUSE_URING_ZERO_COPY -> EINVAL (a zero-copy queue takes
//   any index, 0 included), header iovec < 288 -> EINVAL; a queue with a pool needs a
//   {NULL, 0} payload iovec (else EINVAL), any other queue a payload iovec >=
//   max_payload (else EINVAL) and then stays per-entry.
//   COMMIT_AND_FETCH: qid out of range -> EINVAL, queue never created ->
//   ENOTCONN, commit_id not held by the daemon on that queue -> ENOENT (also
//   a recorded violation). A malformed out header does NOT fail the SQE (the
//   real kernel ends the request instead): error > 0 or <= -ERESTARTSYS, or
//   unique 0 -> the caller gets EINVAL; error 0 with a wrong unique ->
//   ENOENT; all three are recorded violations.
// - bufpool (7.46, kBufpool): ADD_QUEUE: qid out of range or unknown flags
//   -> EINVAL, FUSE_URING_ZERO_COPY without CAP_SYS_ADMIN -> EPERM, a queue
//   that exists (ADD_QUEUE or REGISTER made it) -> EEXIST. ADD_BUFPOOL:
//   qid out of range, flags or bufpool.reserved non-zero, no queue yet, a
//   pool already there or the queue already per-entry (a REGISTER happened)
//   -> EINVAL; uaddr 0 or len shorter than one max_payload buffer -> EINVAL
//   (a remainder is ignored: nr_bufs = len / max_payload). With
//   IORING_URING_CMD_FIXED the pool is registered under buf_index, which
//   ADD_BUFPOOL does not check; every later REGISTER/COMMIT_AND_FETCH of the
//   queue must carry IORING_URING_CMD_FIXED and that buf_index (else the SQE
//   gets EINVAL), and when no registered buffer of the entry's ring covers
//   the selected pool buffer the request ends with EFAULT at import (no
//   CQE; the entry fetches the next request). A zero-copy queue's pool may
//   be unregistered at ADD_BUFPOOL; its REGISTERs are refused. The pool's
//   registered slot need not be 0 (7.3 serves zero-copy with the pool in
//   slot 1). Without
//   buffer pools ADD_QUEUE/ADD_BUFPOOL are EINVAL (7.45: unknown command) /
//   EOPNOTSUPP (7.46 without kBufpool).
// - Delivery writes the 40-byte fuse_in_header into in_out, exactly the op
//   argument (Inject's `op`, in_args[0]) into op_in, and the whole
//   ring_ent_in_out (offset = buffer offset in the pool, 0 when the request
//   has no buffer). The rest of in_out and op_in is not written by the
//   kernel: the model fills it with kPoison (poison_headers) so a daemon
//   that reads beyond what it was given sees garbage, not zeroes.
// - Routing, as fuse_uring_queue_fuse_req / fuse_uring_next_fuse_req: idle
//   entries form a LIFO (the entry that became idle last gets the next
//   request). A new request goes to the first idle entry unless it needs a
//   buffer and none is free: then it is queued. So a request needing no
//   buffer overtakes one that waits for a buffer. A committing entry takes
//   the head of the queue: it keeps its buffer when that request needs one,
//   selects one if it has none (none free: it goes idle, the request stays
//   queued), and gives it back when the request needs none or nothing is
//   queued. Requests wait until every queue has a registered entry.
// - A request needs a buffer (kmbuf, bufpool) when it has a copyable
//   payload: payload bytes (in_numargs > 1) or reply arguments (out_max > 0).
//   The kernel (the model) recycles; the daemon has no way to.
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
// - Zero-copy (7.46, measured on 7.3 by the cross-check): an OPEN reply with
//   FOPEN_IO_URING_ZERO_COPY is accepted whatever the queues are; READ and
//   WRITE of that fh (InjectPages) travel zero-copy on queues created with
//   FUSE_URING_ZERO_COPY and as usual on the others. Before anything is
//   copied the caller's pages go into the entry's slot of its ring's buffer
//   table as a kernel buffer at address 0 (slot holding a buffer -> the
//   caller gets EBUSY, measured; slot past the table -> EINVAL, from
//   io_buffer_register_bvec), FUSE_URING_ENT_ZERO_COPY is set, a READ has
//   no pool buffer and payload_sz 0, a WRITE a pool buffer for its reply
//   and payload_sz = the page bytes. A zero-copy READ's reply is the first
//   payload_sz bytes of the pages. The slot is emptied at commit (and at
//   Abort for held requests).
// - Registered buffers: RegisterRaw(IORING_REGISTER_BUFFERS,
//   IORING_REGISTER_BUFFERS2 with or without IORING_RSRC_REGISTER_SPARSE,
//   IORING_REGISTER_BUFFERS_UPDATE, IORING_UNREGISTER_BUFFERS);
//   IORING_OP_READ_FIXED / WRITE_FIXED complete at once through
//   pread/pwrite on sqe->fd: user slots take a user address, kernel slots
//   an offset; an empty slot or a range outside the buffer -> EFAULT.
// - NOTIFY_REPLY (InjectNotifyReply) travels the ring like any request:
//   op_in unwritten, fuse_notify_retrieve_in then the data in the payload.
// - Teardown: Abort() ends queued requests and those held by the daemon with
//   ECONNABORTED (the latter without any CQE), completes idle entries with
//   -ENOTCONN, and every later command fails with -ENOTCONN. 7.45 only:
//   -ECONNABORTED when abort_error (FUSE_ABORT_ERROR was negotiated; from
//   the 6.18 source); 7.3 answers ENOTCONN either way (measured).
// - The wake fd: IORING_OP_READ on an eventfd completes once the fd is
//   readable (polled while SubmitAndWait blocks).
//
// What it does NOT model: the /dev/fuse side (INIT, FORGET, INTERRUPT,
// notifications, the fallback to /dev/fuse after a failed REGISTER), CPU
// routing (Inject names the queue), background-request queue selection,
// which opens qualify for zero-copy beyond the fh (the kernel's page-payload
// test), the timing race after a zero-copy WRITE (7.3 hands the caller's
// next request to either idle entry), the one-ring-per-queue
// (EXDEV) rule, request timeouts, and io_uring features beyond those listed
// (no SQPOLL, links, fixed files).
//
// Daemon-bug detection (violations(), a list the tests assert empty):
// reply payload_sz beyond the selected buffer or beyond what the request
// accepts, stale or double commit_id, a malformed out header, a zero-copy
// READ reply longer than the caller's pages, READ_FIXED/WRITE_FIXED on a
// slot whose zero-copy pages a commit dropped, and a buffer or header
// touched after commit: at each commit the model checksums the entry's
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
  // The kernel's max_pages: 32, or what the INIT reply asked for when it set
  // FUSE_MAX_PAGES (clamped by fs.fuse.max_pages_limit).
  uint32_t max_pages = 32;
  bool init_done = true;     // false: REGISTER gets EAGAIN until SetInitDone()
  bool cap_sys_admin = false;  // for FUSE_URING_ZERO_COPY
  // CAP_SYS_ADMIN is the effective set of the thread that submits (as the
  // kernel's capable() sees it) instead of cap_sys_admin.
  bool cap_from_submitter = false;
  int fuse_fd = 1 << 20;     // the fd URING_CMDs must name (never a real fd)
  // The kernel's FUSE protocol minor: 45 (6.14-6.18) or 46 (7.3). 0: 46 for
  // kBufpool, 45 otherwise.
  uint32_t minor = 0;
  // FUSE_ABORT_ERROR was negotiated: with 7.45, commands after Abort get
  // ECONNABORTED (7.46: ENOTCONN regardless, as 7.3 does).
  bool abort_error = false;
  // Fill what the kernel leaves unwritten in in_out and op_in with kPoison.
  // false: leave the daemon's bytes there, as the kernel does (the
  // cross-check compares with the real kernel byte for byte).
  bool poison_headers = true;
  // 0: the machine's page size (PAGE_SIZE in max_payload).
  size_t page_size = 0;
};

// The byte the model writes where the kernel writes nothing (see above).
inline constexpr unsigned char kPoison = 0xa5;

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
  uint64_t zero_copy = 0;          // requests delivered with FUSE_URING_ENT_ZERO_COPY
  uint64_t fixed_ops = 0;          // READ_FIXED/WRITE_FIXED completed
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
  // max(8192, max_write, max_pages * PAGE_SIZE): the payload every entry
  // needs and the size of every pool buffer (ring->max_payload_sz).
  size_t max_payload() const;
  // The protocol minor in effect (45 or 46).
  uint32_t minor() const;

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
  // NOTIFY_REPLY, the kernel's answer to a NotifyRetrieve the daemon wrote
  // with notify_unique: in.unique = notify_unique, op_in unwritten, payload =
  // fuse_notify_retrieve_in {offset, size = data.size()} then data. The
  // daemon commits it like any request (its reply is not delivered to
  // anyone); WaitReply(returned ticket, odd, not the unique) tells when it
  // did.
  // A READ or WRITE with page payload (the caller's buffer: `pages`, for a
  // WRITE the data, for a READ its size bytes that the reply fills). When
  // the OPEN that returned the fh in op's first 8 bytes was answered with
  // FOPEN_IO_URING_ZERO_COPY (and accepted), the request travels zero-copy:
  // FUSE_URING_ENT_ZERO_COPY in ent_in_out.flags, the pages registered in
  // the entry's slot (ent_zero_copy_buf_index) of its ring's buffer table as
  // a kernel buffer at address 0, no pool buffer for a READ (payload_sz 0),
  // a pool buffer for a WRITE's reply (payload_sz = the page bytes). The
  // reply of a zero-copy READ is pages[0, payload_sz). Otherwise it is
  // Inject(qid, in, op, WRITE ? pages : "", out_max).
  uint64_t InjectPages(uint16_t qid, const abi::fuse_in_header& in, absl::string_view op,
                       absl::string_view pages, uint32_t out_max);
  uint64_t InjectNotifyReply(uint16_t qid, uint64_t nodeid, uint64_t notify_unique,
                             uint64_t offset, absl::string_view data);
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
