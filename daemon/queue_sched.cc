#include "daemon/queue_sched.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"

namespace kmfuse {

bool WaitedToRun(const TaskSample& before, const TaskSample& after) {
  if (before.runnable && after.runnable && after.exec_ns == before.exec_ns) return true;
  if (after.wait_ns < before.wait_ns || after.runs < before.runs) return false;  // a new task
  const uint64_t wait = after.wait_ns - before.wait_ns;
  const uint64_t runs = std::max<uint64_t>(1, after.runs - before.runs);
  return wait >= static_cast<uint64_t>(absl::ToInt64Nanoseconds(kContendedWait)) &&
         wait / runs >= static_cast<uint64_t>(absl::ToInt64Nanoseconds(kLongWait));
}

IdleClassPolicy::Class IdleClassPolicy::Next(absl::Time now, bool contended, bool busy) {
  if (busy) last_busy_ = now;
  if (contended) {
    // Contention again within twice the last hold: the machine stays busy,
    // so hold longer; after a long quiet spell start over.
    if (now - last_contention_ < 2 * hold_) {
      hold_ = std::min(2 * hold_, kMaxHold);
    } else {
      hold_ = kFirstHold;
    }
    last_contention_ = now;
    hold_until_ = now + hold_;
    if (class_ == Class::kIdle) contentions_++;
    class_ = Class::kNormal;
    return class_;
  }
  if (Parked(now)) {
    class_ = Class::kNormal;  // nothing served lately: no idle-class thread waits at rest
  } else if (busy && now >= hold_until_ && class_ == Class::kNormal) {
    class_ = Class::kIdle;
    idle_moves_++;
  }
  return class_;
}

namespace {

pid_t Gettid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// Reads a small /proc file; false when the task is gone.
bool ReadSmall(const std::string& path, char* buf, size_t cap, absl::string_view* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, cap - 1);
  close(fd);
  if (n <= 0) return false;
  *out = absl::string_view(buf, static_cast<size_t>(n));
  return true;
}

// state from .../stat (after the ")" that ends the command name), and the
// three numbers of .../schedstat.
bool ReadTask(pid_t tid, TaskSample* s) {
  char buf[512];
  absl::string_view text;
  const std::string dir = absl::StrCat("/proc/self/task/", tid, "/");
  if (!ReadSmall(dir + "stat", buf, sizeof(buf), &text)) return false;
  size_t close_paren = text.rfind(')');
  if (close_paren == absl::string_view::npos || close_paren + 2 >= text.size()) return false;
  s->runnable = text[close_paren + 2] == 'R';
  if (!ReadSmall(dir + "schedstat", buf, sizeof(buf), &text)) return false;
  std::vector<absl::string_view> f = absl::StrSplit(absl::StripAsciiWhitespace(text), ' ');
  return f.size() >= 3 && absl::SimpleAtoi(f[0], &s->exec_ns) &&
         absl::SimpleAtoi(f[1], &s->wait_ns) && absl::SimpleAtoi(f[2], &s->runs);
}

// io_uring's io-wq workers of this process ("iou-wrk-<tid>"): they run the
// queue threads' blocking I/O and inherit their class when created.
std::vector<pid_t> IoWorkers() {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    pid_t tid = 0;
    if (!absl::SimpleAtoi(e->d_name, &tid)) continue;
    char buf[64];
    absl::string_view comm;
    if (ReadSmall(absl::StrCat("/proc/self/task/", tid, "/comm"), buf, sizeof(buf), &comm) &&
        absl::StartsWith(comm, "iou-wrk-")) {
      out.push_back(tid);
    }
  }
  closedir(d);
  return out;
}

int SetClass(pid_t tid, IdleClassPolicy::Class c) {
  sched_param p{};
  return sched_setscheduler(tid, c == IdleClassPolicy::Class::kIdle ? SCHED_IDLE : SCHED_OTHER,
                            &p) == 0
             ? 0
             : errno;
}

// Whether a thread that enters SCHED_IDLE can leave it again, tried on a
// scratch thread.
int CanLeaveIdleClass() {
  int err = 0;
  std::thread t([&err] {
    if (SetClass(0, IdleClassPolicy::Class::kIdle) != 0) {
      err = errno;
      return;
    }
    err = SetClass(0, IdleClassPolicy::Class::kNormal);
  });
  t.join();
  return err;
}

}  // namespace

absl::Status QueueScheduler::Start() {
  int err = CanLeaveIdleClass();
  if (err == EPERM) {
    // Leaving SCHED_IDLE for nice 0 needs RLIMIT_NICE >= 20 (or CAP_SYS_NICE).
    rlimit r{};
    if (getrlimit(RLIMIT_NICE, &r) == 0 && r.rlim_cur < 20) {
      r.rlim_cur = 20;
      r.rlim_max = std::max<rlim_t>(r.rlim_max, 20);
      if (setrlimit(RLIMIT_NICE, &r) == 0) err = CanLeaveIdleClass();
    }
  }
  if (err != 0) {
    return absl::ErrnoToStatus(
        err, "queue_sched=idle: a thread could not leave SCHED_IDLE (needs CAP_SYS_NICE or "
             "RLIMIT_NICE >= 20, e.g. prlimit --nice=20); queue threads stay SCHED_OTHER");
  }
  guard_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void QueueScheduler::Enroll() {
  MutexLock l(&mu_);
  const pid_t tid = Gettid();
  enrolled_.push_back(tid);
  if (policy_.current() == IdleClassPolicy::Class::kIdle) SetClass(tid, policy_.current());
}

void QueueScheduler::Stop() {
  {
    MutexLock l(&mu_);
    stop_ = true;
  }
  if (guard_.joinable()) guard_.join();
}

std::pair<bool, bool> QueueScheduler::Sample() {
  std::vector<pid_t> tasks = enrolled_;
  for (pid_t w : IoWorkers()) tasks.push_back(w);
  bool contended = false, busy = false;
  std::map<pid_t, TaskSample> now;
  for (pid_t tid : tasks) {
    TaskSample s;
    if (!ReadTask(tid, &s)) continue;  // ended
    auto it = last_.find(tid);
    if (it != last_.end()) {
      contended = contended || WaitedToRun(it->second, s);
      busy = busy || s.exec_ns != it->second.exec_ns;
    } else if (policy_.current() == IdleClassPolicy::Class::kIdle) {
      SetClass(tid, policy_.current());  // normally inherited already
    }
    now[tid] = s;
  }
  last_ = std::move(now);
  return {contended, busy};
}

void QueueScheduler::Apply(IdleClassPolicy::Class c) {
  for (const auto& [tid, sample] : last_) SetClass(tid, c);
  for (pid_t tid : enrolled_) {
    if (last_.count(tid) == 0) SetClass(tid, c);
  }
}

void QueueScheduler::Unpark() {
  MutexLock l(&mu_);
  parked_.store(false, std::memory_order_relaxed);
  unparked_ = true;  // the unlock wakes the guard's Await
}

void QueueScheduler::Run() {
  pthread_setname_np(pthread_self(), "kmfuse-sched");  // for top and ps -L
  MutexLock l(&mu_);
  absl::Time now = absl::Now();
  for (;;) {
    parked_.store(policy_.Parked(now), std::memory_order_relaxed);
    mu_.AwaitWithTimeout([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || unparked_; },
                         policy_.Interval(now));
    if (stop_) break;
    if (unparked_) {
      // Requests after rest: sample again shortly, over a short window.
      unparked_ = false;
      mu_.AwaitWithTimeout([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; },
                           kUnparkSample);
      if (stop_) break;
    }
    now = absl::Now();
    auto [contended, busy] = Sample();
    const IdleClassPolicy::Class before = policy_.current();
    if (policy_.Next(now, contended, busy) != before) Apply(policy_.current());
  }
  parked_.store(false, std::memory_order_relaxed);
  // The threads may outlive the guard briefly (Join follows): leave them
  // where the kernel treats them like any other.
  Apply(IdleClassPolicy::Class::kNormal);
}

std::string QueueScheduler::Stats() const {
  MutexLock l(&mu_);
  return absl::StrCat("queue threads: ",
                      policy_.current() == IdleClassPolicy::Class::kIdle ? "idle class"
                                                                         : "normal class",
                      " now; ", policy_.contentions(), " move(s) to normal on contention, ",
                      policy_.idle_moves(), " to the idle class");
}

}  // namespace kmfuse
