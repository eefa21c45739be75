// Session: one mounted FUSE connection served by one transport.
//
// Start() probes the kernel, refuses a forced transport the kernel lacks
// before mounting anything, mounts, answers INIT on /dev/fuse (negotiating
// the protocol and telling the kernel about FUSE-over-io_uring when that
// transport was chosen), then starts the transport. The FileSystem's Init()
// runs inside the INIT exchange; Destroy() runs once after the last queue
// thread has exited.
//
// Ending: an external umount / fusermount3 -u / fusectl abort ends the
// connection, every queue sees it and exits, Done() turns true. Stop() does
// the same from inside: unmount; quiesce the RequestGate every transport
// asks before dispatching (request_gate.h), so requests arriving from then
// on never reach the filesystem; let the requests the filesystem already
// has run to their reply (at most `grace`); then, if files kept the
// connection alive, abort it. Under continuous load Stop takes as long as
// the slowest request in the filesystem, not the grace.
#ifndef KMFUSE_DAEMON_SESSION_H_
#define KMFUSE_DAEMON_SESSION_H_

#include <sys/uio.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kmfuse/sync.h"
#include "absl/time/time.h"
#include "daemon/mount.h"
#include "kmfuse/server_options.h"
#include "daemon/proto/dispatch.h"
#include "daemon/request_gate.h"
#include "daemon/select.h"
#include "daemon/transport.h"
#include "daemon/uring_queue.h"
#include "uring/probe.h"
#include "kmfuse/filesystem.h"

namespace kmfuse {

// Probes everything knowable before a mount (enable_uring, io_uring opcodes,
// kmbuf ring registration).
KernelOffer ProbeKernelOffer();
// The same from io_uring probe results the caller already has.
KernelOffer ProbeKernelOffer(const std::vector<uring::ProbeItem>& items);

class Session final : public proto::SessionHooks, public FileSystemHost {
 public:
  // fs must outlive the session. opts.dev_fd >= 0: the caller already
  // mounted opts.mountpoint with this /dev/fuse fd (ownership passes here,
  // also when Start fails: the fd is closed then). The options are checked
  // by the caller (Server::Start).
  static absl::StatusOr<std::unique_ptr<Session>> Start(const ServerOptions& opts,
                                                        FileSystem* fs);
  ~Session() override;

  TransportKind transport() const { return choice_.transport; }
  // "transport uring (skipped kmbuf: ...; bufpool: ...)"
  std::string SelectionLog() const { return choice_.Log(); }
  std::string Describe() const;
  const std::string& mountpoint() const { return mount_->mountpoint(); }
  unsigned conn_id() const { return mount_->conn_id(); }
  const proto::Dispatcher& dispatcher() const { return *dispatcher_; }

  bool Done() const { return transport_->Done(); }
  // Blocks until the connection ended or the timeout passed; true if ended.
  bool WaitFor(absl::Duration timeout) const;
  // Unmounts and quiesces the gate: a request that arrives from then on is
  // held undispatched. Waits until every request already dispatched has had
  // its reply handed to the kernel (a Reply the filesystem keeps past its
  // method included), at most `grace`. If the connection outlives the
  // unmount (files still open on the detached mount), aborts it through
  // fusectl: requests the kernel still holds, and the held ones, fail with
  // its abort error (ECONNABORTED; callers may see ENOTCONN afterwards).
  // Then joins every thread and runs FileSystem::Destroy. Idempotent.
  // Returns the first fatal transport error, if any.
  absl::Status Stop(absl::Duration grace = absl::Seconds(2));

  // SessionHooks
  void OnDestroy() override;

  // FileSystemHost
  absl::StatusOr<int32_t> BackingOpen(int fd) override;
  absl::Status BackingClose(int32_t backing_id) override;
  absl::Status NotifyInvalInode(uint64_t ino, int64_t off, int64_t len) override;
  absl::Status NotifyInvalEntry(uint64_t parent, std::string_view name) override;
  absl::Status NotifyDelete(uint64_t parent, uint64_t child, std::string_view name) override;
  absl::Status NotifyStore(uint64_t ino, uint64_t offset, absl::Span<const char> data) override;
  absl::Status NotifyRetrieve(uint64_t ino, uint64_t offset, uint32_t size,
                              uint64_t cookie) override;

 private:
  Session(const ServerOptions& opts, FileSystem* fs) : opts_(opts), fs_(fs) {}
  absl::Status Handshake(KernelOffer offer);
  // fusectl abort of this connection (through abort_fd_ when it is open).
  void AbortConnection();
  absl::Status Notify(int32_t code, const struct iovec* iov, int cnt);

  // The caller's options; threads resolved for the chosen transport once it
  // is known (Handshake). dev_fd is not used after Start.
  ServerOptions opts_;
  FileSystem* fs_;
  std::unique_ptr<FuseMount> mount_;
  Choice choice_;
  uint32_t max_write_ = 0;
  uint32_t max_pages_ = 0;
  uint32_t proto_minor_ = 0;
  std::unique_ptr<proto::Dispatcher> dispatcher_;
  // Outlives transport_ (whose queues use it).
  RequestGate gate_;
  // /sys/fs/fuse/connections/N/abort, opened at Start; -1 if unavailable.
  int abort_fd_ = -1;
  std::unique_ptr<Transport> transport_;
  Mutex stop_mu_;
  bool stopped_ ABSL_GUARDED_BY(stop_mu_) = false;
  absl::Status stop_status_ ABSL_GUARDED_BY(stop_mu_);
};

// The bufpool transport's options from the server options: a registered
// pool, zero-copy per zero_copy (default: when running as root), and the
// test-only refusals of KMFUSE_TEST_REFUSE (a comma list of zero_copy,
// registered, bufpool).
BufpoolOptions BufpoolOptionsFor(const ServerOptions& opts);

// Builds `transport` (not kAuto) for a connection whose INIT is done.
absl::StatusOr<std::unique_ptr<Transport>> MakeTransport(TransportKind transport,
                                                         const TransportEnv& env);

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_SESSION_H_
