// Transport: how requests reach the one dispatch path.
//
// Every transport reduces to the same shape: a request lands in buffer `bid`
// of a queue's buffer set, is decoded once, dispatched, answered in place, and
// the buffer goes back to its set (by the kernel or by us). Transports differ
// only in how a bid is learnt, how a reply is committed and who recycles.
//
// Lifecycle: Start() spawns the queue threads. A transport ends when the
// connection ends (unmount, abort, or a fatal queue error): every queue thread
// exits and Done() becomes true. Join() waits for that. The session ends the
// connection (unmount, then fusectl abort if needed); transports never need a
// separate stop signal, so there is exactly one shutdown path.
//
// Stopping under load: every transport asks the session's RequestGate
// (TransportEnv::gate) before it dispatches a request and reports when the
// reply reached the kernel (request_gate.h). Once the session quiesces the
// gate, requests that arrive are held undispatched until the abort fails
// them in the kernel; those already dispatched run to their reply first.
#ifndef KMFUSE_DAEMON_TRANSPORT_H_
#define KMFUSE_DAEMON_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kmfuse/sync.h"
#include "kmfuse/server_options.h"
#include "daemon/proto/dispatch.h"
#include "daemon/request_gate.h"

namespace kmfuse {

struct TransportEnv {
  int dev_fd = -1;                        // the connection's /dev/fuse fd (INIT done)
  proto::Dispatcher* dispatcher = nullptr;
  // The session's options; threads already resolved for read and ring-read.
  const ServerOptions* opts = nullptr;
  uint32_t max_write = 0;                 // negotiated (the kernel's value)
  uint32_t max_pages = 0;                 // the kernel's (FUSE_MAX_PAGES or its default)
  RequestGate* gate = nullptr;            // the session's; nullptr: admit everything
};

class Transport {
 public:
  virtual ~Transport() = default;
  // One line: queues, entries, buffer sizes.
  virtual std::string Describe() const = 0;
  virtual absl::Status Start() = 0;
  virtual bool Done() const = 0;
  // Blocks until Done() or until `timeout` passed; returns Done(). Waits on
  // the queue threads' exits (no polling).
  virtual bool WaitFor(absl::Duration timeout) const = 0;
  virtual void Join() = 0;
  // First fatal error a queue hit (OK after a normal end of connection).
  virtual absl::Status status() const = 0;
  // One line of data-path counters for the end of the session ("" when the
  // transport keeps none). FUSE-over-io_uring transports: requests,
  // zero-copy requests and bytes, and READ/WRITE bytes that went through a
  // payload buffer.
  virtual std::string Stats() const { return ""; }
};

// The threads of a transport's queues: how many still run, and the first
// fatal error one of them returned. Every transport keeps one.
class QueueThreads {
 public:
  QueueThreads() = default;
  QueueThreads(const QueueThreads&) = delete;
  QueueThreads& operator=(const QueueThreads&) = delete;
  ~QueueThreads() { Join(); }

  // Runs body on a new thread; a non-OK result becomes status() (first wins).
  void Spawn(std::function<absl::Status()> body);
  bool Done() const { return live_.load() == 0; }
  // Blocks until every spawned thread's body returned or `timeout` passed;
  // returns Done().
  bool WaitFor(absl::Duration timeout) const;
  void Join();
  absl::Status status() const;

 private:
  std::vector<std::thread> threads_;
  // Decremented under mu_, so that unlocking it wakes WaitFor.
  std::atomic<unsigned> live_{0};
  mutable Mutex mu_;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

// Classic: `threads` workers, each with a cloned /dev/fuse fd (the first uses
// dev_fd itself when clone_fds is false), one request per read(), one write()
// per reply.
absl::StatusOr<std::unique_ptr<Transport>> MakeReadTransport(const TransportEnv& env,
                                                             unsigned threads, bool clone_fds);

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_TRANSPORT_H_
