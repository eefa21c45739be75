// Helpers for tests that run the real kmfused binary against the kernel
// (testonly).
//
// TempDir and the mount helpers (ForceUnmount, FuseConnectionAt, ...) are
// kmfuse/testing/temp_dir.h and kmfuse/testing/mounts.h (//fs/testing),
// named here too so these tests keep writing them unqualified. TempDir
// names contain "kmfuse" (tools/clean-mounts finds leftovers by that name).
// DaemonProcess  kmfused as a CHILD process (never in the test's process, so
//                a test blocked on the mount is released when the daemon
//                dies). Start() waits until the mount is live and the daemon
//                printed its "serving" line, or the child exited (then the
//                error carries its stderr). A watchdog thread bounds the whole
//                life of the mount: when its deadline passes it SIGKILLs the
//                daemon, aborts the FUSE connection through fusectl and
//                detaches the mount, which unblocks any file operation the
//                test has in flight (they fail with ENOTCONN). The destructor
//                does the same teardown unconditionally and reaps the child.
// ConnectionWatchdog aborts a FUSE connection (fusectl) unless destroyed
//                within a deadline: for tests that mount a Server in their
//                own process, where a stuck server would hang the test.
// RunWithTimeout runs a function on a helper thread with a deadline.
// RunCommand     runs a command with a deadline, capturing stdout/stderr.
//
// Threading: DaemonProcess methods are called from the test thread; only the
// watchdog runs on its own thread, synchronised by an internal mutex.
#ifndef KMFUSE_TESTS_TESTING_DAEMON_PROCESS_H_
#define KMFUSE_TESTS_TESTING_DAEMON_PROCESS_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kmfuse/sync.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "kmfuse/testing/mounts.h"
#include "kmfuse/testing/temp_dir.h"

namespace kmfuse::itest {

using ::kmfuse::testing::AbortFuseConnection;
using ::kmfuse::testing::ForceUnmount;
using ::kmfuse::testing::FuseConnectionAt;
using ::kmfuse::testing::MountCountAt;
using ::kmfuse::testing::MountTypeAt;
using ::kmfuse::testing::TempDir;

// Path of the kmfused binary in the test's runfiles
// ($TEST_SRCDIR/kmfuse/daemon/kmfused).
std::string KmfusedPath();

// /sys/module/fuse/parameters/enable_uring reads Y (or 1).
bool UringEnabled();

// What `kmfused --probe` says of this kernel, run once per test process.
// Suites instantiate every real transport and skip those the running kernel
// lacks, so one binary asserts the right things on 6.18 and on 7.3.
struct ProbeReport {
  std::string output;  // the whole --probe output (empty if it did not run)
  std::string auto_transport;  // "bufpool" from "auto: transport bufpool (...)"
};
const ProbeReport& Probe();
// OK when the probe says "transport NAME: available"; otherwise
// FailedPrecondition carrying the probe's reason, for GTEST_SKIP.
absl::Status TransportAvailable(const std::string& name);
// Every transport a kernel can really run, best first (kmbuf, which no
// kernel has, is not among them).
inline const std::vector<std::string>& RealTransports() {
  static const std::vector<std::string> kAll = {"bufpool", "uring", "ring-read", "read"};
  return kAll;
}
// gtest parameter name for a transport: "ring-read" -> "ring_read".
std::string TransportParamName(const ::testing::TestParamInfo<std::string>& info);

// Aborts FUSE connection `conn` through fusectl unless destroyed within
// `deadline`, so every request pending on it fails and the test goes on to
// report the hang. Destroy it before tearing the mount down.
class ConnectionWatchdog {
 public:
  ConnectionWatchdog(unsigned conn, absl::Duration deadline);
  ~ConnectionWatchdog();
  ConnectionWatchdog(const ConnectionWatchdog&) = delete;
  ConnectionWatchdog& operator=(const ConnectionWatchdog&) = delete;

  // True once the deadline passed and the connection was aborted.
  bool fired() const { return fired_.load(); }

 private:
  Notification disarmed_;
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

// Runs fn on a helper thread; true if it returned within deadline. On
// timeout the thread is detached and stays blocked until whatever blocks it
// (normally a FUSE mount) is torn down, so fn must own everything it touches
// (capture by value / shared_ptr), never the caller's stack.
bool RunWithTimeout(std::function<void()> fn, absl::Duration deadline);

struct CommandResult {
  bool timed_out = false;  // killed (SIGKILL) at the deadline
  int exit_code = -1;      // exit status, or 128 + signal
  std::string out;
  std::string err;
};
// Runs argv (argv[0] searched in PATH) with stdin from /dev/null and extra
// environment entries "K=V". Never blocks past the deadline: the child is
// SIGKILLed then. Descendants that keep the output pipes open (a daemon that
// forked into the background) do not delay the return once the child exited.
CommandResult RunCommand(const std::vector<std::string>& argv, absl::Duration deadline,
                         const std::vector<std::string>& env = {});

// Pids of processes (other than this one) whose command line contains arg
// as one of its arguments.
std::vector<pid_t> PidsWithArg(const std::string& arg);

// Waits until process pid (not necessarily a child) exits. A child of this
// process (also an orphan adopted because this process is a child subreaper,
// see BecomeSubreaper) is reaped and its exit code returned; for other
// processes the code is unknown and reported as 0 once /proc/PID is gone or
// a zombie. DeadlineExceeded if it still runs at the deadline.
absl::StatusOr<int> WaitForProcessExit(pid_t pid, absl::Duration deadline);
// Makes this process adopt orphaned descendants (PR_SET_CHILD_SUBREAPER), so
// a daemon that forked into the background stays waitable by the test.
void BecomeSubreaper();

class DaemonProcess {
 public:
  struct Config {
    std::string source;
    std::string mountpoint;
    // Extra arguments, e.g. {"-o", "transport=read"}; -f is always added.
    std::vector<std::string> args;
    absl::Duration start_deadline = absl::Seconds(15);
    // The watchdog tears the mount down this long after Start().
    absl::Duration watchdog = absl::Seconds(90);
    // Command prefix the daemon is started through (argv[0] searched in
    // PATH), e.g. {"prlimit", "--nofile=64:64", "--"} or a setpriv that
    // changes user. It must exec kmfused in the same process so that pid()
    // is the daemon. A wrapper that changes credentials clears the parent
    // death signal: such a daemon outlives a killed test, and only the
    // destructor (or the watchdog) ends it.
    std::vector<std::string> wrapper;
  };

  // Starts the daemon and waits until it serves the mount.
  static absl::StatusOr<std::unique_ptr<DaemonProcess>> Start(Config config);
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  pid_t pid() const { return pid_; }
  // The mountpoint as the kernel reports it (realpath of the one asked).
  const std::string& mountpoint() const { return mountpoint_; }
  // "uring" from "kmfused: serving SRC at MNT: transport uring (skipped ...)".
  const std::string& transport() const { return transport_; }
  // The whole serving line.
  const std::string& serving_line() const { return serving_line_; }
  // Everything the daemon wrote to stderr so far.
  std::string Stderr() const;
  // The fusectl connection number of the mount (0 once it is gone).
  unsigned connection() const { return FuseConnectionAt(mountpoint_); }
  bool mounted() const { return FuseConnectionAt(mountpoint_) != 0; }

  // Sends sig and waits for the exit. Returns the exit code (128 + signal if
  // killed by one); DeadlineExceeded (after SIGKILL + abort + detach) if it
  // did not exit in time.
  absl::StatusOr<int> Stop(int sig, absl::Duration deadline = absl::Seconds(10));
  // Waits for the daemon to exit on its own (after an external unmount).
  absl::StatusOr<int> WaitExit(absl::Duration deadline = absl::Seconds(10));
  // Moves the watchdog's deadline to now + d.
  void RearmWatchdog(absl::Duration d);
  // True once the watchdog had to tear the mount down.
  bool watchdog_fired() const;

 private:
  DaemonProcess() = default;
  // Reaps the child if it exited; true if it has been reaped.
  bool ReapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void KillAndDetach();
  void WatchdogLoop();

  std::string mountpoint_;
  std::string stderr_path_;
  std::string transport_;
  std::string serving_line_;
  pid_t pid_ = -1;
  std::unique_ptr<TempDir> logdir_;

  mutable Mutex mu_;
  bool reaped_ ABSL_GUARDED_BY(mu_) = false;
  int status_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool fired_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time watchdog_deadline_ ABSL_GUARDED_BY(mu_);
  uint64_t watchdog_generation_ ABSL_GUARDED_BY(mu_) = 0;  // bumped by RearmWatchdog
  uint64_t watchdog_seen_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread watchdog_;
};

// Exit code from a waitpid status: the exit status, or 128 + signal.
int ExitCodeOf(int wait_status);

// Reads a whole (small) file; "" if it cannot be read.
std::string ReadSmallFile(const std::string& path);

}  // namespace kmfuse::itest

#endif  // KMFUSE_TESTS_TESTING_DAEMON_PROCESS_H_
