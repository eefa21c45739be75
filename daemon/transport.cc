#include "daemon/transport.h"

#include <stdio.h>

namespace kmfuse {

void QueueThreads::Spawn(std::function<absl::Status()> body) {
  live_.fetch_add(1);
  threads_.emplace_back([this, body = std::move(body)] {
    absl::Status s = body();
    if (!s.ok()) fprintf(stderr, "kmfused: %s\n", std::string(s.message()).c_str());
    MutexLock l(&mu_);
    if (!s.ok() && status_.ok()) status_ = s;
    live_.fetch_sub(1);
  });
}

bool QueueThreads::WaitFor(absl::Duration timeout) const {
  MutexLock l(&mu_);
  return mu_.AwaitWithTimeout([this] { return live_.load() == 0; }, timeout);
}

void QueueThreads::Join() {
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

absl::Status QueueThreads::status() const {
  MutexLock l(&mu_);
  return status_;
}

}  // namespace kmfuse
