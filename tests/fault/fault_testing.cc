#include "tests/fault/fault_testing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kmfuse::itest {

const std::vector<std::string>& FaultTransports() {
  static const std::vector<std::string>* t = new std::vector<std::string>(RealTransports());
  return *t;
}

void TransportTest::SetUp() {
  if (absl::Status a = TransportAvailable(GetParam()); !a.ok()) GTEST_SKIP() << a.message();
}

absl::StatusOr<std::unique_ptr<DaemonProcess>> TransportTest::Start(std::vector<std::string> extra,
                                                                    std::vector<std::string> wrapper,
                                                                    absl::Duration watchdog) {
  DaemonProcess::Config c;
  c.source = src_;
  c.mountpoint = mnt_;
  c.args = {"-o", "transport=" + GetParam()};
  c.args.insert(c.args.end(), extra.begin(), extra.end());
  c.wrapper = std::move(wrapper);
  c.watchdog = watchdog;
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(c);
  if (d.ok() && (*d)->transport() != GetParam()) {
    return absl::FailedPreconditionError(
        absl::StrCat("asked for transport ", GetParam(), ", got: ", (*d)->serving_line()));
  }
  return d;
}

::testing::AssertionResult HasPatternPrefix(const std::string& path, uint32_t seed, uint64_t len) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ::testing::AssertionFailure() << "open " << path << ": " << strerror(errno);
  std::vector<char> got(1 << 20), want(1 << 20);
  uint64_t off = 0;
  while (off < len) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(got.size(), len - off));
    ssize_t n = pread(fd, got.data(), chunk, static_cast<off_t>(off));
    if (n <= 0) {
      int err = n < 0 ? errno : 0;
      close(fd);
      return ::testing::AssertionFailure() << path << ": only " << off << " of " << len
                                           << " durable bytes present" << (err ? ": " : "")
                                           << (err ? strerror(err) : "");
    }
    FillPattern(seed, off, want.data(), static_cast<size_t>(n));
    if (memcmp(got.data(), want.data(), static_cast<size_t>(n)) != 0) {
      size_t i = 0;
      while (got[i] == want[i]) i++;
      close(fd);
      return ::testing::AssertionFailure() << path << ": durable byte " << off + i << " differs";
    }
    off += static_cast<uint64_t>(n);
  }
  close(fd);
  return ::testing::AssertionSuccess();
}

namespace {

void WriterLoop(std::shared_ptr<WriterState> w, size_t block, uint64_t fsync_every) {
  auto finish = [&w] {
    w->done_ns = absl::ToUnixNanos(absl::Now());
    w->done = true;
  };
  int fd = open(w->path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    w->err = errno;
    return finish();
  }
  std::vector<char> buf(block);
  uint64_t off = 0, last_sync = 0;
  while (!w->stop) {
    FillPattern(w->seed, off, buf.data(), block);
    ssize_t n = pwrite(fd, buf.data(), block, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      w->err = n < 0 ? errno : EIO;
      break;
    }
    off += static_cast<uint64_t>(n);
    w->written = off;
    if (off - last_sync >= fsync_every) {
      if (fsync(fd) != 0) {
        w->err = errno;
        break;
      }
      last_sync = off;
      w->durable = off;
    }
  }
  if (w->err == 0) {
    if (fsync(fd) == 0) {
      w->durable = off;
    } else {
      w->err = errno;
    }
  }
  close(fd);
  finish();
}

}  // namespace

WriterPool::WriterPool(const std::vector<std::string>& paths, size_t block, uint64_t fsync_every,
                       uint32_t seed_base) {
  for (size_t i = 0; i < paths.size(); i++) {
    auto w = std::make_shared<WriterState>();
    w->path = paths[i];
    w->seed = seed_base + static_cast<uint32_t>(i);
    writers_.push_back(w);
  }
  for (auto& w : writers_) std::thread(WriterLoop, w, block, fsync_every).detach();
}

WriterPool::~WriterPool() { Stop(); }

void WriterPool::Stop() {
  for (auto& w : writers_) w->stop = true;
}

bool WriterPool::WaitAll(absl::Duration d) const {
  absl::Time end = absl::Now() + d;
  for (;;) {
    bool all = true;
    for (auto& w : writers_) all = all && w->done;
    if (all) return true;
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
}

bool WriterPool::WaitWritten(uint64_t bytes, absl::Duration d) const {
  absl::Time end = absl::Now() + d;
  for (;;) {
    bool all = true;
    for (auto& w : writers_) {
      if (w->err != 0) return false;
      all = all && w->written >= bytes;
    }
    if (all) return true;
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

uint64_t WriterPool::TotalWritten() const {
  uint64_t n = 0;
  for (auto& w : writers_) n += w->written;
  return n;
}

absl::Time WriterPool::LastDone() const {
  int64_t last = 0;
  for (auto& w : writers_) last = std::max<int64_t>(last, w->done_ns);
  return absl::FromUnixNanos(last);
}

void ExpectDurableIntact(const WriterPool& pool, const std::string& dir) {
  for (const auto& w : pool.writers()) {
    std::string base = w->path.substr(w->path.rfind('/') + 1);
    EXPECT_TRUE(HasPatternPrefix(dir + "/" + base, w->seed, w->durable))
        << "writer " << base << " had " << w->durable << " of " << w->written << " bytes fsync'ed";
  }
}

ProcFigures ReadProcFigures(pid_t pid) {
  ProcFigures f;
  std::string status = ReadSmallFile(absl::StrCat("/proc/", pid, "/status"));
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    std::vector<absl::string_view> kv = absl::StrSplit(line, absl::ByAnyChar(" \t:"), absl::SkipEmpty());
    if (kv.size() < 2) continue;
    int64_t v = 0;
    if (kv[0] == "VmRSS" && absl::SimpleAtoi(kv[1], &v)) f.rss_kib = v;
    if (kv[0] == "Threads" && absl::SimpleAtoi(kv[1], &v)) f.threads = static_cast<int>(v);
  }
  DIR* d = opendir(absl::StrCat("/proc/", pid, "/fd").c_str());
  if (d != nullptr) {
    f.fds = 0;
    while (struct dirent* e = readdir(d)) f.fds += e->d_name[0] != '.';
    closedir(d);
  }
  return f;
}

bool ProcessExists(pid_t pid) { return access(absl::StrCat("/proc/", pid).c_str(), F_OK) == 0; }

void Figure(const std::string& name, double value) {
  const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string test = t != nullptr ? absl::StrCat(t->test_suite_name(), ".", t->name()) : "-";
  printf("FIGURE %s %s %.3f\n", test.c_str(), name.c_str(), value);
  fflush(stdout);
  ::testing::Test::RecordProperty(name, absl::StrCat(value));
}

int RunAsUser(uid_t uid, gid_t gid, const std::function<int()>& fn, absl::Duration deadline) {
  return RunAsUserWithGroups(uid, gid, {}, fn, deadline);
}

int RunAsUserWithGroups(uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
                        const std::function<int()>& fn, absl::Duration deadline) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(groups.size(), groups.data()) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
      _exit(254);
    }
    _exit(fn() & 0xff);
  }
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << strerror(errno);
    return 255;
  }
  absl::StatusOr<int> rc = WaitForProcessExit(pid, deadline);
  if (!rc.ok()) {
    kill(pid, SIGKILL);
    (void)WaitForProcessExit(pid, absl::Seconds(10));
    ADD_FAILURE() << "child as uid " << uid << " still ran after " << absl::FormatDuration(deadline);
    return 255;
  }
  return *rc;
}

bool MountTmpfs(const std::string& dir, const std::string& size) {
  std::string opts = absl::StrCat("size=", size, ",mode=0755");
  if (mount("kmfuse-fault", dir.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
    fprintf(stderr, "mount tmpfs at %s: %s\n", dir.c_str(), strerror(errno));
    return false;
  }
  return true;
}

}  // namespace kmfuse::itest
