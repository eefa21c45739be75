// Locks that every kmfuse thread shares: Mutex (exclusive, with absl-style
// Await on a predicate), SharedMutex (readers/writer), CondVar and
// Notification, plus their scoped holders.
//
// Why not absl::Mutex: Debian ships Abseil prebuilt without
// -fsanitize=thread, so ThreadSanitizer cannot see absl::Mutex acquire and
// release and reports every access it guards as a race. These types sit on
// the C++ standard library (pthread underneath, which TSan intercepts), keep
// absl's spelling (Lock/Unlock/Await/MutexLock) and carry the clang
// thread-safety annotations, so ABSL_GUARDED_BY and friends keep working.
//
// Await semantics match absl::Mutex: the predicate is evaluated with the
// mutex held, and re-evaluated whenever another thread releases the mutex,
// so state the predicate reads must be guarded by this mutex.
#ifndef KMFUSE_BASE_SYNC_H_
#define KMFUSE_BASE_SYNC_H_

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace kmfuse {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  // Wakes every Await()er so it re-evaluates its predicate; free when
  // nobody waits.
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    if (waiters_ > 0) cv_.notify_all();
    mu_.unlock();
  }
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) { return mu_.try_lock(); }
  // For the static analysis only (std::mutex cannot tell who holds it).
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

  // Blocks (releasing the mutex) until pred() is true. Requires the mutex.
  template <typename Pred>
  void Await(Pred pred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    while (!pred()) WaitOnce(nullptr);
  }
  // As Await, giving up at the deadline; returns pred()'s final value.
  template <typename Pred>
  bool AwaitWithDeadline(Pred pred, absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    while (!pred()) {
      if (absl::Now() >= deadline) return false;
      const auto steady = std::chrono::steady_clock::now() +
                          absl::ToChronoNanoseconds(deadline - absl::Now());
      WaitOnce(&steady);
    }
    return true;
  }
  template <typename Pred>
  bool AwaitWithTimeout(Pred pred, absl::Duration timeout) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    return AwaitWithDeadline(std::move(pred), absl::Now() + timeout);
  }

 private:
  friend class CondVar;
  // One wait on cv_ (spurious wakeups allowed), until *deadline if given.
  void WaitOnce(const std::chrono::steady_clock::time_point* deadline) {
    std::unique_lock<std::mutex> hold(mu_, std::adopt_lock);
    ++waiters_;
    if (deadline == nullptr) {
      cv_.wait(hold);
    } else {
      cv_.wait_until(hold, *deadline);
    }
    --waiters_;
    hold.release();  // still locked; the caller's MutexLock unlocks it
  }

  std::mutex mu_;
  std::condition_variable cv_;
  int waiters_ = 0;  // guarded by mu_
};

// A readers/writer lock (no Await; use Mutex where a thread must wait on
// state).
class ABSL_LOCKABLE SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  void ReaderLock() ABSL_SHARED_LOCK_FUNCTION() { mu_.lock_shared(); }
  void ReaderUnlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock_shared(); }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}
  void AssertReaderHeld() const ABSL_ASSERT_SHARED_LOCK() {}

 private:
  std::shared_mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class ABSL_SCOPED_LOCKABLE WriterMutexLock {
 public:
  explicit WriterMutexLock(SharedMutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~WriterMutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  WriterMutexLock(const WriterMutexLock&) = delete;
  WriterMutexLock& operator=(const WriterMutexLock&) = delete;

 private:
  SharedMutex* const mu_;
};

class ABSL_SCOPED_LOCKABLE ReaderMutexLock {
 public:
  explicit ReaderMutexLock(SharedMutex* mu) ABSL_SHARED_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->ReaderLock();
  }
  ~ReaderMutexLock() ABSL_UNLOCK_FUNCTION() { mu_->ReaderUnlock(); }
  ReaderMutexLock(const ReaderMutexLock&) = delete;
  ReaderMutexLock& operator=(const ReaderMutexLock&) = delete;

 private:
  SharedMutex* const mu_;
};

// A condition variable bound to a Mutex at each wait.
class CondVar {
 public:
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> hold(mu->mu_, std::adopt_lock);
    cv_.wait(hold);
    hold.release();
  }
  // Returns true on timeout (absl::CondVar's convention).
  bool WaitWithTimeout(Mutex* mu, absl::Duration timeout) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::unique_lock<std::mutex> hold(mu->mu_, std::adopt_lock);
    const bool timed_out = cv_.wait_for(hold, absl::ToChronoNanoseconds(timeout)) ==
                           std::cv_status::timeout;
    hold.release();
    return timed_out;
  }
  bool WaitWithDeadline(Mutex* mu, absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return WaitWithTimeout(mu, deadline - absl::Now());
  }

 private:
  std::condition_variable cv_;
};

// A one-shot event.
class Notification {
 public:
  void Notify() {
    MutexLock l(&mu_);
    notified_ = true;
  }
  bool HasBeenNotified() const {
    MutexLock l(&mu_);
    return notified_;
  }
  void WaitForNotification() const {
    MutexLock l(&mu_);
    mu_.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return notified_; });
  }
  bool WaitForNotificationWithTimeout(absl::Duration timeout) const {
    MutexLock l(&mu_);
    return mu_.AwaitWithTimeout([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return notified_; },
                                timeout);
  }

 private:
  mutable Mutex mu_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kmfuse

#endif  // KMFUSE_BASE_SYNC_H_
