// Data integrity through the mount with fio's crc32c verify: every block
// written is read back and checked. Buffered and O_DIRECT, sequential and
// random, with block sizes crossing max_write (1 MiB and 1.5 MiB blocks
// against the default max_write of 1 MiB and against max_write=128 KiB), per
// transport. Zero verify errors: fio's exit code, every job's "error" field
// in its JSON report, no verify complaint on its stderr, and every job must
// have read back (verified) as many bytes as it wrote.
//
// KMFUSE_FIO_SIZE_MB sets the size per job (default 12; a multiple of 3 keeps
// whole 1.5 MiB blocks).
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/conformance/twin.h"
#include "tests/testing/daemon_process.h"

namespace kmfuse::conformance {
namespace {

using Param = std::tuple<std::string, int>;  // transport, max_write (0 = default)

// The number after `"key" : ` at or after pos in s; -1 if absent.
int64_t JsonNumberAfter(const std::string& s, const std::string& key, size_t pos, size_t end) {
  size_t at = s.find(absl::StrCat("\"", key, "\""), pos);
  if (at == std::string::npos || at >= end) return -1;
  at = s.find(':', at);
  if (at == std::string::npos) return -1;
  at++;
  while (at < s.size() && s[at] == ' ') at++;
  size_t stop = at;
  while (stop < s.size() && ((s[stop] >= '0' && s[stop] <= '9') || s[stop] == '-')) stop++;
  int64_t v = -1;
  if (!absl::SimpleAtoi(s.substr(at, stop - at), &v)) return -1;
  return v;
}

struct JobResult {
  std::string name;
  int64_t error = -1;
  int64_t read_bytes = -1;
  int64_t write_bytes = -1;
};

// Extracts per-job error and byte counts from fio's JSON output.
std::vector<JobResult> ParseFioJson(const std::string& json) {
  std::vector<JobResult> jobs;
  size_t pos = 0;
  while ((pos = json.find("\"jobname\"", pos)) != std::string::npos) {
    size_t next = json.find("\"jobname\"", pos + 1);
    size_t end = next == std::string::npos ? json.size() : next;
    JobResult j;
    size_t q1 = json.find('"', json.find(':', pos) + 1);
    size_t q2 = json.find('"', q1 + 1);
    j.name = json.substr(q1 + 1, q2 - q1 - 1);
    j.error = JsonNumberAfter(json, "error", pos, end);
    size_t rd = json.find("\"read\"", pos);
    if (rd < end) j.read_bytes = JsonNumberAfter(json, "io_bytes", rd, end);
    size_t wr = json.find("\"write\"", pos);
    if (wr < end) j.write_bytes = JsonNumberAfter(json, "io_bytes", wr, end);
    jobs.push_back(j);
    pos = end;
  }
  return jobs;
}

class FioVerifyTest : public ::testing::TestWithParam<Param> {};

TEST_P(FioVerifyTest, Crc32cVerifyThroughTheMount) {
  const auto& [transport, max_write] = GetParam();
  if (std::string why = TransportSkipReason(transport); !why.empty()) GTEST_SKIP() << why;
  itest::CommandResult probe = itest::RunCommand({"fio", "--version"}, absl::Seconds(10));
  if (probe.exit_code != 0) GTEST_SKIP() << "fio is not installed";

  const uint64_t size_mb = EnvNumber("KMFUSE_FIO_SIZE_MB", 12);
  itest::TempDir dir("fio");
  const std::string src = dir.Mkdir("src"), mnt = dir.Mkdir("mnt");
  itest::DaemonProcess::Config c;
  c.source = src;
  c.mountpoint = mnt;
  c.args = {"-o", absl::StrCat("transport=", transport)};
  if (max_write != 0) {
    c.args.push_back("-o");
    c.args.push_back(absl::StrCat("max_write=", max_write));
  }
  c.watchdog = absl::Seconds(120) + absl::Seconds(3) * static_cast<int64_t>(size_mb);
  absl::StatusOr<std::unique_ptr<itest::DaemonProcess>> d = itest::DaemonProcess::Start(c);
  ASSERT_TRUE(d.ok()) << d.status();
  std::unique_ptr<itest::DaemonProcess> daemon = std::move(*d);
  ASSERT_EQ(daemon->transport(), transport) << daemon->serving_line();
  EXPECT_THAT(daemon->Stderr(),
              ::testing::HasSubstr(absl::StrCat("max_write ", max_write ? max_write / 1024 : 1024,
                                                " KiB")));

  // One job file, jobs run one after another (stonewall).
  std::string jobs = absl::StrCat(
      "[global]\ndirectory=", mnt, "\nsize=", size_mb,
      "m\nioengine=psync\nverify=crc32c\ndo_verify=1\nverify_fatal=1\n"
      "verify_dump=0\nverify_state_save=0\nstonewall\nrandrepeat=0\n");
  int count = 0;
  for (const char* io : {"buffered", "direct"}) {
    for (const char* rw : {"write", "randwrite"}) {
      for (const char* bs : {"1m", "1536k"}) {
        absl::StrAppend(&jobs, "\n[", io, "-", rw, "-", bs, "]\nrw=", rw, "\nbs=", bs,
                        "\ndirect=", std::string(io) == "direct" ? 1 : 0, "\nfilename=", io, "-",
                        rw, "-", bs, "\n");
        count++;
      }
    }
  }
  const std::string jobfile = dir.Join("verify.fio");
  const std::string out = dir.Join("out.json");
  {
    std::ofstream f(jobfile);
    f << jobs;
  }
  itest::CommandResult r = itest::RunCommand(
      {"fio", "--output-format=json", absl::StrCat("--output=", out), jobfile},
      absl::Seconds(90) + absl::Seconds(3) * static_cast<int64_t>(size_mb));
  std::string json = itest::ReadSmallFile(out);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << "fio stderr:\n" << r.err << "\nstdout:\n" << r.out;
  EXPECT_THAT(r.err, ::testing::Not(::testing::HasSubstr("verify"))) << r.err;
  EXPECT_THAT(r.err, ::testing::Not(::testing::HasSubstr("bad"))) << r.err;
  std::vector<JobResult> results = ParseFioJson(json);
  ASSERT_EQ(results.size(), static_cast<size_t>(count)) << json.substr(0, 4000);
  const int64_t bytes = static_cast<int64_t>(size_mb) << 20;
  for (const JobResult& j : results) {
    SCOPED_TRACE(j.name);
    EXPECT_EQ(j.error, 0);
    EXPECT_EQ(j.write_bytes, bytes);
    // The verify phase reads every written block back.
    EXPECT_EQ(j.read_bytes, bytes);
  }
  absl::StatusOr<int> rc = daemon->Stop(SIGTERM);
  EXPECT_TRUE(rc.ok()) << rc.status();
  EXPECT_FALSE(daemon->watchdog_fired()) << daemon->Stderr();
  if (rc.ok()) { EXPECT_EQ(*rc, 0) << daemon->Stderr(); }
}

INSTANTIATE_TEST_SUITE_P(
    All, FioVerifyTest,
    ::testing::Combine(::testing::ValuesIn(Transports()), ::testing::Values(0, 131072)),
    [](const ::testing::TestParamInfo<Param>& info) {
      std::string s = absl::StrCat(std::get<0>(info.param), "_max_write_",
                                   std::get<1>(info.param) ? absl::StrCat(std::get<1>(info.param))
                                                           : std::string("default"));
      for (char& ch : s) {
        if (ch == '-') ch = '_';
      }
      return s;
    });

// FUSE io-uring zero-copy (bufpool on 7.3+, root): the same crc32c verify
// with zero-copy on and off, block sizes 4 KiB to 1 MiB, sequential and
// random, buffered and O_DIRECT. Every write job is followed by a
// verify_only job of the same layout, so the verify reads of buffered files
// also reach the daemon (fio drops the file's cached pages before a job).
// With zero-copy on, the daemon's stats must show zero-copy requests and no
// READ/WRITE byte through a payload buffer; with it off, the reverse.
class FioZeroCopyTest : public ::testing::TestWithParam<bool> {};

int64_t StatsNumberBefore(const std::string& log, const std::string& what) {
  size_t line = log.find("bufpool stats: ");
  if (line == std::string::npos) return -1;
  size_t at = log.find(what, line);
  if (at == std::string::npos) return -1;
  size_t end = at;
  while (end > line && log[end - 1] == ' ') end--;
  size_t start = end;
  while (start > line && log[start - 1] >= '0' && log[start - 1] <= '9') start--;
  int64_t v = -1;
  if (start == end || !absl::SimpleAtoi(log.substr(start, end - start), &v)) return -1;
  return v;
}

TEST_P(FioZeroCopyTest, Crc32cVerify4KTo1M) {
  const bool zero_copy = GetParam();
  if (std::string why = TransportSkipReason("bufpool"); !why.empty()) GTEST_SKIP() << why;
  if (geteuid() != 0) GTEST_SKIP() << "zero-copy needs CAP_SYS_ADMIN (run as root)";
  itest::CommandResult probe = itest::RunCommand({"fio", "--version"}, absl::Seconds(10));
  if (probe.exit_code != 0) GTEST_SKIP() << "fio is not installed";

  const uint64_t size_mb = EnvNumber("KMFUSE_FIO_ZC_SIZE_MB", 4);
  itest::TempDir dir("fio-zc");
  const std::string src = dir.Mkdir("src"), mnt = dir.Mkdir("mnt");
  itest::DaemonProcess::Config c;
  c.source = src;
  c.mountpoint = mnt;
  c.args = {"-o", absl::StrCat("transport=bufpool,zero_copy=", zero_copy ? "on" : "off")};
  c.watchdog = absl::Seconds(300) + absl::Seconds(20) * static_cast<int64_t>(size_mb);
  absl::StatusOr<std::unique_ptr<itest::DaemonProcess>> d = itest::DaemonProcess::Start(c);
  ASSERT_TRUE(d.ok()) << d.status();
  std::unique_ptr<itest::DaemonProcess> daemon = std::move(*d);
  ASSERT_EQ(daemon->transport(), "bufpool") << daemon->serving_line();
  if (zero_copy) {
    ASSERT_THAT(daemon->Stderr(), ::testing::HasSubstr("zero-copy in effect"));
  } else {
    ASSERT_THAT(daemon->Stderr(), ::testing::HasSubstr("zero-copy off"));
  }

  std::string jobs = absl::StrCat(
      "[global]\ndirectory=", mnt, "\nsize=", size_mb,
      "m\nioengine=psync\nverify=crc32c\nverify_fatal=1\n"
      "verify_dump=0\nverify_state_save=0\nstonewall\nrandrepeat=0\ninvalidate=1\n");
  int count = 0;
  for (const char* io : {"buffered", "direct"}) {
    for (const char* rw : {"write", "randwrite"}) {
      for (const char* bs : {"4k", "64k", "1m"}) {
        const std::string file = absl::StrCat(io, "-", rw, "-", bs);
        const std::string common = absl::StrCat("rw=", rw, "\nbs=", bs, "\ndirect=",
                                                std::string(io) == "direct" ? 1 : 0,
                                                "\nfilename=", file, "\n");
        // Write and verify, then verify again from a cold cache.
        absl::StrAppend(&jobs, "\n[", file, "]\ndo_verify=1\n", common);
        absl::StrAppend(&jobs, "\n[", file, "-reread]\nverify_only=1\n", common);
        count += 2;
      }
    }
  }
  const std::string jobfile = dir.Join("verify.fio");
  const std::string out = dir.Join("out.json");
  {
    std::ofstream f(jobfile);
    f << jobs;
  }
  itest::CommandResult r = itest::RunCommand(
      {"fio", "--output-format=json", absl::StrCat("--output=", out), jobfile},
      absl::Seconds(240) + absl::Seconds(20) * static_cast<int64_t>(size_mb));
  std::string json = itest::ReadSmallFile(out);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << "fio stderr:\n" << r.err << "\nstdout:\n" << r.out;
  EXPECT_THAT(r.err, ::testing::Not(::testing::HasSubstr("verify"))) << r.err;
  EXPECT_THAT(r.err, ::testing::Not(::testing::HasSubstr("bad"))) << r.err;
  std::vector<JobResult> results = ParseFioJson(json);
  ASSERT_EQ(results.size(), static_cast<size_t>(count)) << json.substr(0, 4000);
  const int64_t bytes = static_cast<int64_t>(size_mb) << 20;
  for (const JobResult& j : results) {
    SCOPED_TRACE(j.name);
    EXPECT_EQ(j.error, 0);
    // fio counts a verify_only job's skipped writes as written: both jobs
    // report the size written, and both read all of it back.
    EXPECT_EQ(j.write_bytes, bytes);
    EXPECT_EQ(j.read_bytes, bytes);
  }
  absl::StatusOr<int> rc = daemon->Stop(SIGTERM);
  const std::string log = daemon->Stderr();
  EXPECT_TRUE(rc.ok()) << rc.status();
  EXPECT_FALSE(daemon->watchdog_fired()) << log;
  if (rc.ok()) { EXPECT_EQ(*rc, 0) << log; }
  const int64_t zc = StatsNumberBefore(log, "zero-copy (");
  const int64_t copied = StatsNumberBefore(log, "READ/WRITE bytes through payload buffers");
  if (zero_copy) {
    // Every job's data, written and read back, by fixed-buffer I/O.
    EXPECT_GT(zc, count) << log;
    EXPECT_GE(StatsNumberBefore(log, "bytes by fixed-buffer I/O"), bytes * count) << log;
    EXPECT_EQ(copied, 0) << log;
  } else {
    EXPECT_EQ(zc, 0) << log;
    EXPECT_GE(copied, bytes * count) << log;
  }
}

INSTANTIATE_TEST_SUITE_P(Bufpool, FioZeroCopyTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return std::string(info.param ? "zero_copy_on" : "zero_copy_off");
                         });

}  // namespace
}  // namespace kmfuse::conformance
