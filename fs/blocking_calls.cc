#include "kmfuse/blocking_calls.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include <thread>

namespace kmfuse {
namespace {

// SIGRTMIN+3: out of the way of applications and of libc's own use of the
// first realtime signals. The handler does nothing; its only effect is that
// the blocked syscall returns EINTR (no SA_RESTART).
int WakeSignal() { return SIGRTMIN + 3; }

void InstallWakeHandler() {
  static bool installed = [] {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sigaction(WakeSignal(), &sa, nullptr);
    return true;
  }();
  (void)installed;
}

}  // namespace

BlockingCalls::BlockingCalls(size_t max_waiters) : max_waiters_(max_waiters) {
  InstallWakeHandler();
}

BlockingCalls::~BlockingCalls() {
  std::vector<uint64_t> ids;
  {
    MutexLock l(&mu_);
    for (auto& [id, call] : calls_) ids.push_back(id);
  }
  for (uint64_t id : ids) Interrupt(id);
  MutexLock l(&mu_);
  mu_.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ == 0; });
}

size_t BlockingCalls::waiting() const {
  MutexLock l(&mu_);
  return running_;
}

void BlockingCalls::Run(uint64_t unique, std::function<int()> fn, Reply reply) {
  auto call = std::make_shared<Call>();
  {
    MutexLock l(&mu_);
    if (running_ >= max_waiters_) return reply.Error(ENOLCK);
    running_++;
    calls_[unique] = call;
  }
  std::thread([this, unique, call, fn = std::move(fn), reply = std::move(reply)]() mutable {
    {
      MutexLock l(&mu_);
      call->thread = pthread_self();
      call->started = true;
    }
    // The wake signal must reach this thread even if the process blocks it.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, WakeSignal());
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    int err;
    for (;;) {
      {
        MutexLock l(&mu_);
        if (call->interrupted) {
          err = EINTR;
          break;
        }
      }
      err = fn();
      if (err != EINTR) break;
    }
    {
      MutexLock l(&mu_);
      call->done = true;
      calls_.erase(unique);
    }
    reply.Error(err);
    MutexLock l(&mu_);
    running_--;
  }).detach();
}

void BlockingCalls::Interrupt(uint64_t unique) {
  {
    MutexLock l(&mu_);
    auto it = calls_.find(unique);
    if (it == calls_.end()) return;
    it->second->interrupted = true;
  }
  Kick(unique);
}

void BlockingCalls::Kick(uint64_t unique) {
  // A signal sent just before the thread enters its syscall is lost, so keep
  // kicking until the call has finished (bounded: the flag makes the thread
  // leave at its next EINTR, and every kick produces one).
  for (int i = 0; i < 200; i++) {
    std::shared_ptr<Call> call;
    {
      MutexLock l(&mu_);
      auto it = calls_.find(unique);
      if (it == calls_.end()) return;
      call = it->second;
      if (call->started && !call->done) pthread_kill(call->thread, WakeSignal());
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

}  // namespace kmfuse
