#include "daemon/request_gate.h"

#include <utility>

namespace kmfuse {

bool RequestGate::Admit(ReplySink* sink) {
  in_flight_.fetch_add(1, std::memory_order_seq_cst);
  if (state_.load(std::memory_order_seq_cst) == State::kOpen) return true;
  in_flight_.fetch_sub(1, std::memory_order_release);
  {
    MutexLock l(&mu_);
    held_total_++;
    if (state_.load(std::memory_order_acquire) == State::kQuiescing) {
      held_.push_back(sink);
      return false;
    }
  }
  sink->Drop();  // released already: the connection is aborted
  return false;
}

void RequestGate::AddWaker(std::function<void()> wake) {
  MutexLock l(&mu_);
  wakers_.push_back(std::move(wake));
}

void RequestGate::Quiesce() {
  std::vector<std::function<void()>> wakers;
  {
    MutexLock l(&mu_);
    if (state_.load(std::memory_order_acquire) != State::kOpen) return;
    state_.store(State::kQuiescing, std::memory_order_seq_cst);
    wakers = wakers_;
  }
  for (const auto& wake : wakers) wake();
}

void RequestGate::ReleaseHeld() {
  std::vector<ReplySink*> held;
  {
    MutexLock l(&mu_);
    state_.store(State::kReleased, std::memory_order_seq_cst);
    held.swap(held_);
  }
  for (ReplySink* sink : held) sink->Drop();
}

size_t RequestGate::held_total() const {
  MutexLock l(&mu_);
  return held_total_;
}

}  // namespace kmfuse
