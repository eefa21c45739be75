// Server: serve a FileSystem at a mountpoint (the embedding entry point).
//
//   #include "kmfuse/server.h"
//   kmfuse::ServerOptions opts;
//   opts.mountpoint = "/mnt/x";
//   absl::Status s = kmfuse::Server::Run(&my_fs, opts);  // blocks
//
// Lifecycle
// - Start() validates the options, probes the kernel, mounts (or adopts the
//   caller's mount, see ServerOptions::dev_fd), answers INIT (calling
//   FileSystem::Init inside it) and starts the transport's queue threads. When
//   it returns OK the mount is live. On failure nothing stays mounted.
// - The connection ends by Stop(), by an external `umount` / `fusermount3 -u`,
//   or by a fusectl abort. Stop() (also run by the destructor) unmounts,
//   stops dispatching (a request arriving from then on never reaches the
//   FileSystem), waits until every request the FileSystem already has is
//   answered (at most 2 s), then, if open files keep the connection alive,
//   aborts it (requests the kernel still holds fail with ECONNABORTED), joins
//   every queue thread and runs FileSystem::Destroy exactly once. Under
//   continuous load it returns as soon as the FileSystem's requests are
//   answered.
// - The FileSystem must outlive the Server. It is not owned.
//
// Threading
// - FileSystem methods are called from the transport's queue threads
//   (ServerOptions::threads: workers with kRead and kRingRead, rings each
//   serving several CPUs' queues with the io_uring transports). Calls are
//   concurrent, also for the same inode.
// - A Reply may be moved to any thread and answered there, later. The
//   request's buffer stays reserved until then; a queue that runs out of free
//   buffers waits for replies, so a filesystem that never answers stalls its
//   queue. A Reply destroyed unanswered is reported on stderr (request unique
//   and opcode), counted by Reply::MissingReplies() and answered EIO.
// - Every Reply must be answered (or destroyed) before Stop() returns or the
//   Server is destroyed: after that its buffer no longer exists. Stop() waits
//   up to 2 s for unanswered Replies, then aborts the connection, so pending
//   requests fail in the kernel and their late answers are discarded, but the
//   memory they point into is freed.
// - Stop(), WaitFor(), Wait() and the accessors are thread-safe. Do not call
//   Stop() or destroy the Server from inside a FileSystem method (it joins
//   the thread running that method).
// - Never access the mount from a thread the filesystem needs to answer: a
//   process reading its own mount deadlocks if the answer depends on it.
//
// Buffers
// - Names and write payloads passed to FileSystem methods point into the
//   kernel-selected buffer the request arrived in. They are valid until the
//   Reply is answered, and may share memory with Reply::Buffer(): read the
//   request before writing the reply. Op structs (fuse_read_in, ...) passed by
//   reference are valid only during the call: copy them to answer later.
// - Reply::Buffer() + Reply::Ok(n) and Reply::DataFromFd() fill the reply in
//   place (zero copy); Reply::Data() copies.
//
// Process state
// - Start() changes no process-wide state: no signal handlers, no umask.
//   Run() blocks SIGINT and SIGTERM in the calling thread for its duration
//   (the queue threads it starts inherit that mask) and restores the mask.
//   Threads the caller started earlier must block them too, or a signal may
//   be delivered there (default action: the process dies).
// - The kernel applies the caller's umask to modes itself (FUSE passes it
//   along); filesystems that create real files (PassthroughFs) expect the
//   process umask to be 0, which kmfused sets and embedders should too.
// - Mounting without root goes through fusermount3 (libfuse3's setuid helper).
#ifndef KMFUSE_DAEMON_SERVER_H_
#define KMFUSE_DAEMON_SERVER_H_

#include <signal.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kmfuse/filesystem.h"
#include "kmfuse/server_options.h"

namespace kmfuse {

class Session;

class Server {
 public:
  // Mounts and starts serving `fs` (not owned; must outlive the Server).
  // Errors: InvalidArgument (bad options), FailedPrecondition (transport
  // unavailable, mountpoint unusable, protocol too old), PermissionDenied /
  // Internal from the mount, or the FileSystem::Init status. Messages name
  // what failed (the mountpoint, the transport and why) and carry no prefix
  // of their own.
  static absl::StatusOr<std::unique_ptr<Server>> Start(FileSystem* fs,
                                                       const ServerOptions& options);
  // Stops (see Stop()).
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The transport in use (never kAuto); TransportName() spells it.
  TransportKind transport() const;
  // The mountpoint being served.
  const std::string& mountpoint() const;
  // Which transport was chosen and why better ones were skipped, e.g.
  // "transport uring (skipped kmbuf: ...; bufpool: ...)".
  std::string SelectionLog() const;
  // One line: the transport's queues and buffers, max_write and protocol,
  // e.g. "uring: 2 queue(s) ..., max_write 1024 KiB, protocol 7.45".
  std::string Describe() const;
  // The fusectl connection number (/sys/fs/fuse/connections/N), 0 if unknown.
  unsigned connection_id() const;

  // True once the connection has ended (Stop, external unmount or abort).
  bool Done() const;
  // Blocks until the connection ended or `timeout` passed; true if ended.
  bool WaitFor(absl::Duration timeout) const;
  // Blocks until the connection ended.
  void Wait() const;
  // Unmounts, stops dispatching, waits for the requests the FileSystem has
  // (at most 2 s), aborts the connection if files keep it alive, joins the
  // queue threads and runs FileSystem::Destroy. Idempotent: later calls
  // return the first result.
  // Returns the first fatal transport error, OK after a clean end.
  absl::Status Stop();

  // Blocks until the connection ended (returns 0) or one of `signals` is
  // pending for the calling thread (takes it and returns its number). The
  // caller blocks `signals` in every thread before Start() (the queue
  // threads inherit the mask), so only this call consumes them.
  int WaitForSignal(const sigset_t& signals) const;

  // Start(), then serve until SIGINT or SIGTERM reaches the process or the
  // mount is removed externally (WaitForSignal), then Stop(). Returns the
  // Start() error or Stop()'s result. Prints nothing itself.
  static absl::Status Run(FileSystem* fs, const ServerOptions& options);

 private:
  explicit Server(std::unique_ptr<Session> session);

  std::unique_ptr<Session> session_;
};

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_SERVER_H_
