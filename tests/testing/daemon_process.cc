#include "tests/testing/daemon_process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

extern char** environ;

namespace kmfuse::itest {
namespace {

std::string RealPathOrSelf(const std::string& p) {
  char buf[PATH_MAX];
  if (realpath(p.c_str(), buf) == nullptr) return p;
  return buf;
}

}  // namespace

int ExitCodeOf(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string KmfusedPath() {
  const char* srcdir = getenv("TEST_SRCDIR");
  if (srcdir != nullptr && *srcdir) {
    std::string p = absl::StrCat(srcdir, "/kmfuse/daemon/kmfused");
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  // Outside bazel test: next to the workspace's bazel-bin.
  return "bazel-bin/daemon/kmfused";
}

bool UringEnabled() {
  std::string v = ReadSmallFile("/sys/module/fuse/parameters/enable_uring");
  return !v.empty() && (v[0] == 'Y' || v[0] == '1');
}

const ProbeReport& Probe() {
  static const ProbeReport* report = [] {
    auto* r = new ProbeReport;
    CommandResult c = RunCommand({KmfusedPath(), "--probe"}, absl::Seconds(60));
    if (c.exit_code == 0) r->output = c.out;
    for (absl::string_view line : absl::StrSplit(r->output, '\n')) {
      if (absl::ConsumePrefix(&line, "auto: transport ")) {
        r->auto_transport = std::string(line.substr(0, line.find(' ')));
      }
    }
    return r;
  }();
  return *report;
}

std::string TransportParamName(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  for (char& c : n) {
    if (c == '-') c = '_';
  }
  return n;
}

absl::Status TransportAvailable(const std::string& name) {
  const ProbeReport& p = Probe();
  if (p.output.empty()) return absl::FailedPreconditionError("kmfused --probe did not run");
  const std::string prefix = absl::StrCat("transport ", name, ": ");
  for (absl::string_view line : absl::StrSplit(p.output, '\n')) {
    if (!absl::ConsumePrefix(&line, prefix)) continue;
    if (line == "available") return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("transport ", name, " is ", line, " on this kernel (kmfused --probe)"));
  }
  return absl::FailedPreconditionError(absl::StrCat("kmfused --probe does not list transport ", name));
}

ConnectionWatchdog::ConnectionWatchdog(unsigned conn, absl::Duration deadline)
    : thread_([this, conn, deadline] {
        if (disarmed_.WaitForNotificationWithTimeout(deadline)) return;
        fprintf(stderr, "watchdog: aborting FUSE connection %u after %s\n", conn,
                absl::FormatDuration(deadline).c_str());
        fired_ = true;
        AbortFuseConnection(conn);
      }) {}

ConnectionWatchdog::~ConnectionWatchdog() {
  disarmed_.Notify();
  thread_.join();
}

bool RunWithTimeout(std::function<void()> fn, absl::Duration deadline) {
  struct State {
    Mutex mu;
    bool done = false;
  };
  auto state = std::make_shared<State>();
  std::thread t([state, fn = std::move(fn)] {
    fn();
    MutexLock l(&state->mu);
    state->done = true;
  });
  bool done;
  {
    MutexLock l(&state->mu);
    done = state->mu.AwaitWithTimeout([&state] { return state->done; }, deadline);
  }
  if (done) {
    t.join();
  } else {
    t.detach();
  }
  return done;
}

CommandResult RunCommand(const std::vector<std::string>& argv, absl::Duration deadline,
                         const std::vector<std::string>& env) {
  CommandResult r;
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; e++) {
    std::string kv = *e;
    bool overridden = false;
    for (const std::string& x : env) {
      if (kv.compare(0, x.find('=') + 1, x, 0, x.find('=') + 1) == 0) overridden = true;
    }
    if (!overridden) envs.push_back(kv);
  }
  for (const std::string& x : env) envs.push_back(x);
  std::vector<char*> cenv;
  for (const std::string& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    r.err = absl::StrCat("pipe: ", strerror(errno));
    return r;
  }
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execvpe(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  if (pid < 0) {
    close(out[0]);
    close(err[0]);
    r.err = absl::StrCat("fork: ", strerror(errno));
    return r;
  }
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(err[0], F_SETFL, O_NONBLOCK);
  absl::Time end = absl::Now() + deadline;
  bool exited = false;
  int status = 0;
  auto drain = [&](int fd, std::string* to) {
    char buf[4096];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) return;
      to->append(buf, static_cast<size_t>(n));
    }
  };
  while (!exited) {
    struct pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    poll(p, 2, 20);
    drain(out[0], &r.out);
    drain(err[0], &r.err);
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    if (absl::Now() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      r.timed_out = true;
      exited = true;
    }
  }
  drain(out[0], &r.out);
  drain(err[0], &r.err);
  close(out[0]);
  close(err[0]);
  r.exit_code = ExitCodeOf(status);
  return r;
}

std::vector<pid_t> PidsWithArg(const std::string& arg) {
  std::vector<pid_t> pids;
  DIR* d = opendir("/proc");
  if (d == nullptr) return pids;
  while (struct dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0' || pid == getpid()) continue;
    std::string cmd = ReadSmallFile(absl::StrCat("/proc/", pid, "/cmdline"));
    for (absl::string_view a : absl::StrSplit(cmd, '\0')) {
      if (a == arg) {
        pids.push_back(static_cast<pid_t>(pid));
        break;
      }
    }
  }
  closedir(d);
  return pids;
}

absl::StatusOr<int> WaitForProcessExit(pid_t pid, absl::Duration deadline) {
  absl::Time end = absl::Now() + deadline;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return ExitCodeOf(status);
    if (r < 0 && errno == ECHILD) {
      std::string stat = ReadSmallFile(absl::StrCat("/proc/", pid, "/stat"));
      size_t paren = stat.rfind(')');
      if (stat.empty() || (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z')) {
        return 0;
      }
    }
    if (absl::Now() > end) {
      return absl::DeadlineExceededError(absl::StrCat("process ", pid, " still runs after ",
                                                      absl::FormatDuration(deadline)));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

void BecomeSubreaper() { prctl(PR_SET_CHILD_SUBREAPER, 1); }

absl::StatusOr<std::unique_ptr<DaemonProcess>> DaemonProcess::Start(Config config) {
  std::unique_ptr<DaemonProcess> d(new DaemonProcess());
  d->mountpoint_ = RealPathOrSelf(config.mountpoint);
  d->logdir_ = std::make_unique<TempDir>("log");
  d->stderr_path_ = d->logdir_->Join("kmfused.stderr");
  std::vector<std::string> argv = config.wrapper;
  argv.push_back(KmfusedPath());
  argv.insert(argv.end(), {config.source, config.mountpoint, "-f"});
  argv.insert(argv.end(), config.args.begin(), config.args.end());
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  int log = open(d->stderr_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return absl::InternalError(absl::StrCat("open ", d->stderr_path_, ": ", strerror(errno)));
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // Dies with the test process, so a killed test never leaves a daemon
    // serving (or wedging) a mount.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(log, 1);
    dup2(log, 2);
    execvp(cargv[0], cargv.data());
    dprintf(2, "exec %s: %s\n", cargv[0], strerror(errno));
    _exit(127);
  }
  close(log);
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  d->pid_ = pid;
  {
    MutexLock l(&d->mu_);
    d->watchdog_deadline_ = absl::Now() + config.watchdog;
  }
  d->watchdog_ = std::thread([p = d.get()] { p->WatchdogLoop(); });

  absl::Time end = absl::Now() + config.start_deadline;
  for (;;) {
    bool exited;
    {
      MutexLock l(&d->mu_);
      exited = d->ReapLocked();
    }
    std::string err = d->Stderr();
    if (exited) {
      int code;
      {
        MutexLock l(&d->mu_);
        code = ExitCodeOf(d->status_);
      }
      return absl::FailedPreconditionError(absl::StrCat(
          "kmfused exited with status ", code, " before serving ", d->mountpoint_, "; stderr:\n", err));
    }
    size_t at = err.find("kmfused: serving ");
    if (at != std::string::npos && d->mounted()) {
      size_t eol = err.find('\n', at);
      if (eol != std::string::npos) {
        d->serving_line_ = err.substr(at, eol - at);
        size_t t = d->serving_line_.find(": transport ");
        if (t != std::string::npos) {
          std::string rest = d->serving_line_.substr(t + strlen(": transport "));
          d->transport_ = rest.substr(0, rest.find(' '));
        }
        return d;
      }
    }
    if (absl::Now() > end) {
      d->KillAndDetach();
      return absl::DeadlineExceededError(absl::StrCat("kmfused did not serve ", d->mountpoint_,
                                                      " within ", absl::FormatDuration(config.start_deadline),
                                                      "; stderr:\n", err));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

std::string DaemonProcess::Stderr() const { return ReadSmallFile(stderr_path_); }

bool DaemonProcess::ReapLocked() {
  if (reaped_) return true;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    reaped_ = true;
    status_ = status;
  }
  return reaped_;
}

void DaemonProcess::KillAndDetach() {
  {
    MutexLock l(&mu_);
    if (!ReapLocked()) kill(pid_, SIGKILL);
  }
  ForceUnmount(mountpoint_);
  absl::Time end = absl::Now() + absl::Seconds(10);
  for (;;) {
    {
      MutexLock l(&mu_);
      if (ReapLocked()) break;
    }
    if (absl::Now() > end) {
      fprintf(stderr, "DaemonProcess: pid %d did not die after SIGKILL\n", pid_);
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  ForceUnmount(mountpoint_);
}

void DaemonProcess::WatchdogLoop() {
  MutexLock l(&mu_);
  for (;;) {
    if (shutdown_) return;
    absl::Time deadline = watchdog_deadline_;
    if (absl::Now() >= deadline) break;
    // Wakes on shutdown, on a rearm (the deadline moved) or at the deadline.
    watchdog_seen_ = watchdog_generation_;
    mu_.AwaitWithDeadline(
        [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return shutdown_ || watchdog_generation_ != watchdog_seen_;
        },
        deadline);
  }
  fired_ = true;
  fprintf(stderr,
          "DaemonProcess watchdog: %s still mounted at the deadline; killing kmfused (pid %d), "
          "aborting the connection and detaching the mount\n",
          mountpoint_.c_str(), pid_);
  mu_.Unlock();
  KillAndDetach();
  mu_.Lock();
}

void DaemonProcess::RearmWatchdog(absl::Duration d) {
  MutexLock l(&mu_);
  watchdog_deadline_ = absl::Now() + d;
  watchdog_generation_++;
}

bool DaemonProcess::watchdog_fired() const {
  MutexLock l(&mu_);
  return fired_;
}

absl::StatusOr<int> DaemonProcess::WaitExit(absl::Duration deadline) {
  absl::Time end = absl::Now() + deadline;
  for (;;) {
    {
      MutexLock l(&mu_);
      if (ReapLocked()) return ExitCodeOf(status_);
    }
    if (absl::Now() > end) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  KillAndDetach();
  return absl::DeadlineExceededError(absl::StrCat("kmfused (pid ", pid_, ") did not exit within ",
                                                  absl::FormatDuration(deadline),
                                                  "; killed it. stderr:\n", Stderr()));
}

absl::StatusOr<int> DaemonProcess::Stop(int sig, absl::Duration deadline) {
  {
    MutexLock l(&mu_);
    if (!ReapLocked()) kill(pid_, sig);
  }
  return WaitExit(deadline);
}

DaemonProcess::~DaemonProcess() {
  {
    MutexLock l(&mu_);
    shutdown_ = true;
  }
  if (watchdog_.joinable()) watchdog_.join();
  KillAndDetach();
}

}  // namespace kmfuse::itest
