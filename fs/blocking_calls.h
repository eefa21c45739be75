// BlockingCalls: runs calls that may block indefinitely (SETLKW, blocking
// flock) on their own threads, so they never stall a queue thread — on the
// io_uring transports one stalled queue would stall every caller on its CPU.
//
// Interrupt(unique) wakes the call of that request: its thread gets a signal
// (installed once, without SA_RESTART) so the syscall returns EINTR, and the
// request is answered EINTR. The kernel sends FUSE_INTERRUPT when the
// caller is signalled; the caller then sees EINTR as it would natively.
//
// Thread-safety: all methods may be called from any thread. At most
// `max_waiters` calls wait at once; beyond that Run() answers ENOLCK.
#ifndef KMFUSE_FS_BLOCKING_CALLS_H_
#define KMFUSE_FS_BLOCKING_CALLS_H_

#include <pthread.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "kmfuse/sync.h"
#include "kmfuse/reply.h"

namespace kmfuse {

class BlockingCalls {
 public:
  explicit BlockingCalls(size_t max_waiters = 256);
  // Waits for every running call to finish (they are interrupted first).
  ~BlockingCalls();

  // Runs fn() on a new thread; fn returns 0 or a positive errno; EINTR
  // retries unless the request was interrupted. The reply is answered with
  // the result.
  void Run(uint64_t unique, std::function<int()> fn, Reply reply);
  // Interrupts the call serving `unique` if it is waiting; no-op otherwise.
  void Interrupt(uint64_t unique);
  size_t waiting() const;

 private:
  struct Call {
    pthread_t thread{};
    bool started = false;
    bool interrupted = false;
    bool done = false;
  };
  void Kick(uint64_t unique);

  const size_t max_waiters_;
  mutable Mutex mu_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Call>> calls_ ABSL_GUARDED_BY(mu_);
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kmfuse

#endif  // KMFUSE_FS_BLOCKING_CALLS_H_
