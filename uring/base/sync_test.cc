// kmfuse::Mutex and friends: exclusion, Await wake-ups and deadlines,
// readers sharing a SharedMutex, CondVar timeouts, Notification. Also run
// under --config=tsan, where a lock TSan cannot see would show as a race.
#include "kmfuse/sync.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace kmfuse {
namespace {

TEST(MutexTest, ExcludesConcurrentWriters) {
  Mutex mu;
  long counter = 0;  // plain: only the lock keeps the increments whole
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) {
        MutexLock l(&mu);
        counter = counter + 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  MutexLock l(&mu);
  EXPECT_EQ(counter, 400000);
}

TEST(MutexTest, AwaitWakesWhenAnotherThreadMakesThePredicateTrue) {
  Mutex mu;
  int stage = 0;
  std::thread t([&] {
    for (int i = 1; i <= 3; ++i) {
      absl::SleepFor(absl::Milliseconds(5));
      MutexLock l(&mu);
      stage = i;
    }
  });
  {
    MutexLock l(&mu);
    mu.Await([&] { return stage == 3; });  // stages 1 and 2 are spurious wake-ups
    EXPECT_EQ(stage, 3);
  }
  t.join();
}

TEST(MutexTest, AwaitWithTimeoutGivesUpAtTheDeadline) {
  Mutex mu;
  bool never = false;
  MutexLock l(&mu);
  const absl::Time start = absl::Now();
  EXPECT_FALSE(mu.AwaitWithTimeout([&] { return never; }, absl::Milliseconds(50)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  EXPECT_TRUE(mu.AwaitWithTimeout([] { return true; }, absl::ZeroDuration()));
}

TEST(MutexTest, AwaitWithDeadlineReturnsTrueOnceSatisfied) {
  Mutex mu;
  bool ready = false;
  std::thread t([&] {
    absl::SleepFor(absl::Milliseconds(10));
    MutexLock l(&mu);
    ready = true;
  });
  {
    MutexLock l(&mu);
    EXPECT_TRUE(mu.AwaitWithDeadline([&] { return ready; }, absl::Now() + absl::Seconds(30)));
  }
  t.join();
}

TEST(SharedMutexTest, ReadersShareAndAWriterExcludesThem) {
  SharedMutex mu;
  std::atomic<bool> second_reader_in{false};
  {
    ReaderMutexLock first(&mu);
    std::thread t([&] {
      ReaderMutexLock second(&mu);  // would block forever if readers excluded each other
      second_reader_in = true;
    });
    t.join();
  }
  EXPECT_TRUE(second_reader_in);

  std::atomic<bool> reader_in{false};
  std::thread reader;
  {
    WriterMutexLock w(&mu);
    reader = std::thread([&] {
      ReaderMutexLock r(&mu);
      reader_in = true;
    });
    absl::SleepFor(absl::Milliseconds(30));
    EXPECT_FALSE(reader_in) << "a reader got in while the writer held the lock";
  }
  reader.join();
  EXPECT_TRUE(reader_in);
}

TEST(CondVarTest, WaitWithTimeoutReportsTimeoutAndSignal) {
  Mutex mu;
  CondVar cv;
  bool flag = false;
  {
    MutexLock l(&mu);
    EXPECT_TRUE(cv.WaitWithTimeout(&mu, absl::Milliseconds(20)));
  }
  std::thread t([&] {
    absl::SleepFor(absl::Milliseconds(5));
    MutexLock l(&mu);
    flag = true;
    cv.SignalAll();
  });
  {
    MutexLock l(&mu);
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!flag && absl::Now() < deadline) cv.WaitWithTimeout(&mu, absl::Seconds(1));
    EXPECT_TRUE(flag);
  }
  t.join();
}

TEST(NotificationTest, WaitsForNotify) {
  Notification n;
  EXPECT_FALSE(n.HasBeenNotified());
  EXPECT_FALSE(n.WaitForNotificationWithTimeout(absl::Milliseconds(10)));
  std::thread t([&] { n.Notify(); });
  n.WaitForNotification();
  EXPECT_TRUE(n.HasBeenNotified());
  EXPECT_TRUE(n.WaitForNotificationWithTimeout(absl::ZeroDuration()));
  t.join();
}

}  // namespace
}  // namespace kmfuse
