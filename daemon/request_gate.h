// RequestGate: a session's quiesce state and its count of requests inside the
// daemon. Every transport asks it before dispatching a request, so a stopping
// session stops feeding the filesystem at one place, whatever the transport.
//
// Transport side (queue threads, any number):
//   Admit(sink)  before Dispatcher::Dispatch, once per request delivered by
//                the kernel (never again for a request re-dispatched inside
//                the daemon). true: dispatch it and call Done() once its
//                reply has been handed to the kernel (written to /dev/fuse,
//                or its COMMIT_AND_FETCH submitted) or it was dropped.
//                false: the session is stopping. The gate now holds the
//                request: it is not dispatched, the transport must not touch
//                it again, and it is answered with sink->Drop() by
//                ReleaseHeld() after the connection was aborted (the kernel
//                has failed the request by then; Drop only returns the
//                buffer). After ReleaseHeld(), Admit drops at once.
//   Done(n)      n admitted requests are answered.
//   AddWaker(f)  f is called by Quiesce(). For a transport that counts a
//                reply as answered only after a submission it makes later
//                (io_uring: commits are submitted by the next
//                io_uring_enter): f wakes its thread so it submits and
//                reports.
// Session side (one thread, the one stopping the session):
//   Quiesce()    stop admitting; call the wakers. Idempotent.
//   in_flight()  admitted requests not answered yet; the session waits for
//                0 (or for the connection to end, or its grace to pass).
//   ReleaseHeld() drops every held request (after the abort).
//
// Cost on the request path: one atomic increment and one decrement per
// request, plus one atomic load; the mutex is only taken while stopping.
#ifndef KMFUSE_DAEMON_REQUEST_GATE_H_
#define KMFUSE_DAEMON_REQUEST_GATE_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <vector>

#include "kmfuse/reply.h"
#include "kmfuse/sync.h"

namespace kmfuse {

class RequestGate {
 public:
  RequestGate() = default;
  RequestGate(const RequestGate&) = delete;
  RequestGate& operator=(const RequestGate&) = delete;

  bool Admit(ReplySink* sink);
  void Done(unsigned n = 1) {
    if (n != 0) in_flight_.fetch_sub(n, std::memory_order_release);
  }
  void AddWaker(std::function<void()> wake);

  void Quiesce();
  void ReleaseHeld();

  bool quiescing() const { return state_.load(std::memory_order_acquire) != State::kOpen; }
  // Admitted requests not yet answered.
  unsigned in_flight() const { return in_flight_.load(std::memory_order_seq_cst); }
  // Requests held since Quiesce() (all of them, also those already released).
  size_t held_total() const;

 private:
  enum class State { kOpen, kQuiescing, kReleased };

  // Admit and Quiesce pair sequentially consistent operations on these two,
  // so either Admit sees the quiesce or in_flight() sees the admitted request.
  std::atomic<State> state_{State::kOpen};
  std::atomic<unsigned> in_flight_{0};

  mutable Mutex mu_;
  std::vector<ReplySink*> held_ ABSL_GUARDED_BY(mu_);
  size_t held_total_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::function<void()>> wakers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_REQUEST_GATE_H_
