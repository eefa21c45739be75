// 16 kmfused instances at once, each with its own source and mountpoint:
// all of one transport, or a mix of every transport. Each is checked with a
// write/read through its mount (and in its source), then all are stopped
// together with SIGTERM and must exit 0 with their mounts gone.
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/fault/fault_testing.h"
#include "tests/testing/daemon_process.h"

namespace kmfuse::itest {
namespace {

constexpr int kMounts = 16;

class ManyMountsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "mixed") return;  // every available transport, mixed below
    if (absl::Status a = TransportAvailable(GetParam()); !a.ok()) GTEST_SKIP() << a.message();
  }
  TempDir dir_{"many"};
};

TEST_P(ManyMountsTest, SixteenAtOnce) {
  std::vector<std::string> transports = {GetParam()};
  if (GetParam() == "mixed") {
    transports.clear();
    for (const std::string& t : RealTransports()) {
      if (TransportAvailable(t).ok()) transports.push_back(t);
    }
  }
  std::vector<std::unique_ptr<DaemonProcess>> daemons;
  std::vector<std::string> srcs;
  absl::Time t0 = absl::Now();
  for (int i = 0; i < kMounts; i++) {
    DaemonProcess::Config c;
    c.source = dir_.Mkdir(absl::StrCat("src", i));
    c.mountpoint = dir_.Mkdir(absl::StrCat("mnt", i));
    const std::string& t = transports[i % transports.size()];
    c.args = {"-o", "transport=" + t};
    c.watchdog = absl::Seconds(120);
    absl::StatusOr<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(c);
    ASSERT_TRUE(d.ok()) << "instance " << i << ": " << d.status();
    EXPECT_EQ((*d)->transport(), t);
    srcs.push_back(c.source);
    daemons.push_back(std::move(*d));
  }
  Figure("start_16_ms", absl::ToDoubleMilliseconds(absl::Now() - t0));
  for (int i = 0; i < kMounts; i++) {
    std::string data = PatternAt(i, 0, 128 << 10);
    std::string path = absl::StrCat(daemons[i]->mountpoint(), "/f");
    ASSERT_TRUE(WriteFileSynced(path, data)) << "instance " << i;
    EXPECT_TRUE(ReadFile(path) == data) << "instance " << i;
    EXPECT_TRUE(ReadFile(srcs[i] + "/f") == data) << "instance " << i;
  }
  // Each mount shows only its own file: no cross-talk between connections.
  for (int i = 0; i < kMounts; i++) {
    EXPECT_TRUE(ReadFile(absl::StrCat(daemons[i]->mountpoint(), "/f")) ==
                PatternAt(i, 0, 128 << 10));
  }
  t0 = absl::Now();
  for (auto& d : daemons) kill(d->pid(), SIGTERM);
  for (int i = 0; i < kMounts; i++) {
    absl::StatusOr<int> rc = daemons[i]->WaitExit(absl::Seconds(15));
    ASSERT_TRUE(rc.ok()) << "instance " << i << ": " << rc.status();
    EXPECT_EQ(*rc, 0) << "instance " << i << ": " << daemons[i]->Stderr();
    EXPECT_EQ(MountCountAt(daemons[i]->mountpoint()), 0) << "instance " << i;
    EXPECT_FALSE(ProcessExists(daemons[i]->pid()));
  }
  Figure("stop_16_ms", absl::ToDoubleMilliseconds(absl::Now() - t0));
}

INSTANTIATE_TEST_SUITE_P(Transports, ManyMountsTest,
                         ::testing::Values("bufpool", "uring", "ring-read", "read", "mixed"), TransportParamName);

}  // namespace
}  // namespace kmfuse::itest
