// Shared pieces of the fault and load tests (testonly): a fixture
// parameterised over the real transports, writer threads whose fsync'ed
// prefix can be checked in the source afterwards, /proc figures of the
// daemon, and children that run as another user.
//
// Everything that touches a mount either runs on a detached thread that
// owns its state (shared_ptr), so a test never waits on it without a
// deadline, or runs in a child process that the test SIGKILLs at its
// deadline. Daemons are DaemonProcess children (tests/testing).
//
// Measured figures go to stdout as "FIGURE <test> <name> <value>" lines (and
// into the test XML through RecordProperty), so a run's log carries the
// numbers docs/reliability.md quotes.
#ifndef KMFUSE_TESTS_FAULT_FAULT_TESTING_H_
#define KMFUSE_TESTS_FAULT_FAULT_TESTING_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "kmfuse/testing/pattern.h"
#include "tests/testing/daemon_process.h"
#include "tests/testing/file_io.h"

namespace kmfuse::itest {

// The transports every fault test runs over.
const std::vector<std::string>& FaultTransports();
// TransportParamName (tests/testing/daemon_process.h) names their instances.

// Fixture: skips (with the probe's reason) a transport this kernel lacks; owns a
// TempDir with src/ and mnt/. Start() runs kmfused with
// "-o transport=<param>" plus extra and checks the transport really in use.
class TransportTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override;
  absl::StatusOr<std::unique_ptr<DaemonProcess>> Start(std::vector<std::string> extra = {},
                                                       std::vector<std::string> wrapper = {},
                                                       absl::Duration watchdog = absl::Seconds(90));

  TempDir dir_{"fault"};
  std::string src_ = dir_.Mkdir("src");
  std::string mnt_ = dir_.Mkdir("mnt");
};

// Deterministic content (kmfuse/testing/pattern.h): the byte at file offset
// off of stream seed, so any prefix can be checked on its own.
using ::kmfuse::testing::FillPattern;
using ::kmfuse::testing::PatternAt;

// The first len bytes of path equal PatternAt(seed, 0, len).
::testing::AssertionResult HasPatternPrefix(const std::string& path, uint32_t seed, uint64_t len);

// One writer thread appending PatternAt(seed, ...) to its file through the mount,
// fsync'ing every fsync_every bytes. Durable bytes are those covered by a
// successful fsync: they must survive anything the daemon does.
struct WriterState {
  std::string path;
  uint32_t seed = 0;
  std::atomic<bool> stop{false};
  std::atomic<bool> done{false};
  std::atomic<uint64_t> written{0};
  std::atomic<uint64_t> durable{0};
  std::atomic<int> err{0};          // first errno of write/fsync/open, 0 if none
  std::atomic<int64_t> done_ns{0};  // absl::ToUnixNanos of the moment it returned
};

class WriterPool {
 public:
  // Starts one detached thread per path (seed = index + seed_base).
  WriterPool(const std::vector<std::string>& paths, size_t block, uint64_t fsync_every,
             uint32_t seed_base = 100);
  ~WriterPool();  // asks the threads to stop; never waits
  void Stop();
  // True once every writer returned; waits at most d.
  bool WaitAll(absl::Duration d) const;
  // Waits until every writer wrote at least bytes (or one failed) or d passed.
  bool WaitWritten(uint64_t bytes, absl::Duration d) const;
  uint64_t TotalWritten() const;
  // Latest return time of all writers (meaningful once WaitAll is true).
  absl::Time LastDone() const;
  const std::vector<std::shared_ptr<WriterState>>& writers() const { return writers_; }

 private:
  std::vector<std::shared_ptr<WriterState>> writers_;
};

// Checks that every writer's durable prefix is intact in the file named
// base(path) under dir (normally the source, read without the mount).
void ExpectDurableIntact(const WriterPool& pool, const std::string& dir);

// /proc figures of a process.
struct ProcFigures {
  int64_t rss_kib = -1;  // VmRSS
  int fds = -1;          // entries of /proc/PID/fd
  int threads = -1;      // Threads
};
ProcFigures ReadProcFigures(pid_t pid);
bool ProcessExists(pid_t pid);

// Prints "FIGURE <suite.test> <name> <value>" and records it as a property.
void Figure(const std::string& name, double value);

// Runs fn in a forked child with uid/gid (and no supplementary groups); fn
// returns an errno-like code (0 = success) that becomes the exit status.
// The child is SIGKILLed at the deadline (then 255 + a test failure).
int RunAsUser(uid_t uid, gid_t gid, const std::function<int()>& fn,
              absl::Duration deadline = absl::Seconds(10));
// As RunAsUser, with these supplementary groups.
int RunAsUserWithGroups(uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
                        const std::function<int()>& fn,
                        absl::Duration deadline = absl::Seconds(10));

// Mounts a tmpfs of the given size (e.g. "2m") at dir; false with a message
// on stderr if that is not possible.
bool MountTmpfs(const std::string& dir, const std::string& size);

}  // namespace kmfuse::itest

#endif  // KMFUSE_TESTS_FAULT_FAULT_TESTING_H_
