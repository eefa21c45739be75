// kmfused's io_uring transports with few serving threads and a small buffer
// budget (-o threads, -o buffer_memory): every possible CPU still gets its
// FUSE queue, several queues share a thread's ring, and data written and
// read by callers pinned to different CPUs (so through different queues)
// arrives intact. Runs on every real io_uring transport the kernel has
// (uring on 6.14+, bufpool on 7.3+), skipping the others.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kmfuse/sync.h"
#include "kmfuse/testing/pattern.h"
#include "tests/testing/daemon_process.h"

namespace kmfuse::itest {
namespace {

using ::kmfuse::testing::Pattern;
using ::testing::HasSubstr;

// /sys/devices/system/cpu/possible, counted: the kernel's queue count.
unsigned PossibleCpuCount() {
  std::ifstream f("/sys/devices/system/cpu/possible");
  std::string line;
  unsigned n = 0;
  if (std::getline(f, line)) {
    for (absl::string_view part : absl::StrSplit(line, ',', absl::SkipEmpty())) {
      std::vector<absl::string_view> r = absl::StrSplit(part, '-');
      unsigned lo = 0, hi = 0;
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(r[0]), &lo)) continue;
      hi = lo;
      if (r.size() > 1 && !absl::SimpleAtoi(absl::StripAsciiWhitespace(r[1]), &hi)) continue;
      n += hi - lo + 1;
    }
  }
  return n > 0 ? n : 1;
}

// The CPUs this process may run on.
std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; c++) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

// "Threads:" of /proc/PID/status.
int ThreadCount(pid_t pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/status"));
  std::string text;
  while (std::getline(f, text)) {
    int n = 0;
    absl::string_view line = text;
    if (absl::ConsumePrefix(&line, "Threads:") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &n)) {
      return n;
    }
  }
  return -1;
}

// Writes `size` bytes of pattern `seed` to path in uneven pieces, then reads
// them back in other pieces; "" or what went wrong.
std::string WriteAndVerify(const std::string& path, size_t size, uint32_t seed) {
  const std::string want = Pattern(size, seed);
  int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) return absl::StrCat("open ", path, ": ", strerror(errno));
  size_t off = 0;
  for (size_t piece = 4096 - 17; off < size; piece = piece * 3 % 200000 + 1) {
    size_t n = std::min(piece, size - off);
    ssize_t w = pwrite(fd, want.data() + off, n, static_cast<off_t>(off));
    if (w <= 0) {
      std::string err = absl::StrCat("pwrite ", path, " at ", off, ": ", strerror(errno));
      close(fd);
      return err;
    }
    off += static_cast<size_t>(w);
  }
  std::string got(size, '\0');
  off = 0;
  for (size_t piece = 65536 + 5; off < size; piece = piece * 7 % 150000 + 1) {
    size_t n = std::min(piece, size - off);
    ssize_t r = pread(fd, got.data() + off, n, static_cast<off_t>(off));
    if (r <= 0) {
      std::string err = absl::StrCat("pread ", path, " at ", off, ": ",
                                     r == 0 ? "EOF" : strerror(errno));
      close(fd);
      return err;
    }
    off += static_cast<size_t>(r);
  }
  close(fd);
  if (got != want) {
    size_t i = 0;
    while (got[i] == want[i]) i++;
    return absl::StrCat(path, ": first difference at byte ", i, " of ", size);
  }
  return "";
}

class ScaleTest : public ::testing::TestWithParam<std::tuple<std::string, unsigned>> {
 protected:
  void SetUp() override {
    if (absl::Status a = TransportAvailable(transport()); !a.ok()) GTEST_SKIP() << a.message();
  }
  std::string transport() const { return std::get<0>(GetParam()); }
  unsigned threads() const { return std::get<1>(GetParam()); }

  TempDir dir_{"scale"};
};

TEST_P(ScaleTest, PinnedCallersOnManyQueuesWithFewThreadsAndSmallBuffers) {
  const unsigned queues = PossibleCpuCount();
  // Two 16 KiB entries per queue: the default max_write shrinks to 16 KiB,
  // so a 1 MiB write is 64 requests.
  const uint64_t budget = uint64_t{queues} * 2 * 16384;
  const std::string src = dir_.Mkdir("src"), mnt = dir_.Mkdir("mnt");
  DaemonProcess::Config c;
  c.source = src;
  c.mountpoint = mnt;
  // cache=none: every read and write of the callers is a request.
  c.args = {"-o", absl::StrCat("transport=", transport(), ",threads=", threads(),
                               ",buffer_memory=", budget, ",cache=none")};
  c.watchdog = absl::Seconds(120);
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(c);
  ASSERT_TRUE(d.ok()) << d.status();
  std::unique_ptr<DaemonProcess> daemon = std::move(*d);
  ASSERT_EQ(daemon->transport(), transport()) << daemon->serving_line();
  const int idle_threads = ThreadCount(daemon->pid());

  // One caller per allowed CPU (at most 16), each pinned there: the kernel
  // sends its requests to that CPU's queue.
  std::vector<int> cpus = AllowedCpus();
  if (cpus.size() > 16) cpus.resize(16);
  ASSERT_FALSE(cpus.empty());
  Mutex mu;
  std::vector<std::string> errors;
  std::vector<std::thread> callers;
  for (int cpu : cpus) {
    callers.emplace_back([&, cpu] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      std::string err;
      if (sched_setaffinity(0, sizeof(set), &set) != 0) {
        err = absl::StrCat("pinning to CPU ", cpu, ": ", strerror(errno));
      }
      for (int round = 0; round < 3 && err.empty(); round++) {
        err = WriteAndVerify(absl::StrCat(mnt, "/cpu", cpu, "-", round),
                             (1 << 20) + 4096 * round + 777, static_cast<uint32_t>(cpu * 10 + round));
      }
      if (!err.empty()) {
        MutexLock l(&mu);
        errors.push_back(absl::StrCat("CPU ", cpu, ": ", err));
      }
    });
  }
  for (auto& t : callers) t.join();
  for (const std::string& e : errors) ADD_FAILURE() << e;
  // What the daemon wrote is what the source holds.
  for (int cpu : cpus) {
    std::ifstream f(absl::StrCat(src, "/cpu", cpu, "-2"), std::ios::binary);
    std::string got((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(got == Pattern((1 << 20) + 4096 * 2 + 777, static_cast<uint32_t>(cpu * 10 + 2)))
        << "source file of CPU " << cpu;
  }
  const int busy_threads = ThreadCount(daemon->pid());

  absl::StatusOr<int> rc = daemon->Stop(SIGTERM);
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0) << daemon->Stderr();
  EXPECT_FALSE(daemon->watchdog_fired()) << "a file operation blocked";
  // The startup line (it may follow the "serving" line by a while).
  const std::string log = daemon->Stderr();
  const unsigned serving = std::min(threads(), queues);
  EXPECT_THAT(log, HasSubstr(absl::StrCat(queues, " queue(s) on ", serving,
                                          " thread(s) x 2 entries")));
  EXPECT_THAT(log, HasSubstr("max_write 16 KiB"));
  // Every pinned caller's queue carried requests.
  size_t at = log.find("requests on the rings (");
  ASSERT_NE(at, std::string::npos) << log;
  unsigned used = 0;
  std::string rest = log.substr(at + 23, 12);
  ASSERT_TRUE(absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &used)) << log.substr(at, 80);
  EXPECT_GE(used, cpus.size()) << log.substr(at, 80);
  RecordProperty("daemon_threads_idle", idle_threads);
  RecordProperty("daemon_threads_busy", busy_threads);
  RecordProperty("queues_used", static_cast<int>(used));
  std::printf("%s threads=%u: %u queues, %zu pinned callers, %u queues used, daemon threads %d "
              "idle / %d busy\n",
              transport().c_str(), threads(), queues, cpus.size(), used, idle_threads,
              busy_threads);
}

// threads=1: every queue on one ring; threads=2 as the issue asks.
INSTANTIATE_TEST_SUITE_P(IoUringTransports, ScaleTest,
                         ::testing::Combine(::testing::Values("bufpool", "uring"),
                                            ::testing::Values(1u, 2u)),
                         [](const auto& info) {
                           return absl::StrCat(std::get<0>(info.param), "_threads",
                                               std::get<1>(info.param));
                         });

}  // namespace
}  // namespace kmfuse::itest
