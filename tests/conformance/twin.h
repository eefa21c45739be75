// Twin trees for conformance tests (testonly): a kmfused mount of SOURCE and
// a native directory that started identical, so every operation can be run
// on both and the outcomes compared.
//
// Mount configurations are (transport, variant) pairs. Variants:
//   default      no extra options (cache=auto)
//   cache_none   -o cache=none (FOPEN_DIRECT_IO, zero timeouts)
//   writeback    -o writeback_cache
//   passthrough  -o passthrough (kernel backing files; the daemon serves a
//                file itself when the kernel refuses one, and says so on
//                stderr)
//
// Twin owns one TempDir holding src/, mnt/ and native/, and the daemon
// (DaemonProcess, so every blocking operation on the mount is bounded by the
// daemon's watchdog). Operations are given a root ("the mount" or "native")
// and a path relative to it. Not thread-safe; one test thread uses it.
#ifndef KMFUSE_TESTS_CONFORMANCE_TWIN_H_
#define KMFUSE_TESTS_CONFORMANCE_TWIN_H_

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "kmfuse/testing/pattern.h"
#include "tests/testing/daemon_process.h"

namespace kmfuse::conformance {

// Every real transport (bufpool, uring, ring-read, read); a case skips the
// ones kmfused --probe says this kernel lacks (TransportSkipReason).
std::vector<std::string> Transports();
// {"default", "cache_none", "writeback", "passthrough"}.
std::vector<std::string> Variants();

// The daemon arguments of a variant (after -o transport=T).
std::vector<std::string> VariantArgs(const std::string& variant);

// The result of one system call: its return value and, when it failed,
// errno; `data` carries whatever the call produced that must match too
// (bytes read, a link target, a listing). errno is 0 on success so that
// stale values never make outcomes differ.
struct Outcome {
  int64_t ret = 0;
  int err = 0;
  std::string data;

  bool operator==(const Outcome& o) const {
    return ret == o.ret && err == o.err && data == o.data;
  }
  bool operator!=(const Outcome& o) const { return !(*this == o); }
};
// "ret=-1 errno=ENOENT data=[12 bytes: 'abc...']".
std::string Describe(const Outcome& o);
// ret from a call returning -1/errno: ret < 0 records errno.
Outcome Sys(int64_t ret);
Outcome SysData(int64_t ret, std::string data);

// The stat fields a passthrough must reproduce exactly.
struct StatFields {
  int err = 0;  // lstat errno
  mode_t mode = 0;  // type and permission bits
  int64_t size = 0;
  uint64_t nlink = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  bool operator==(const StatFields& o) const {
    return err == o.err && mode == o.mode && size == o.size && nlink == o.nlink && uid == o.uid &&
           gid == o.gid;
  }
};
std::string Describe(const StatFields& s);
StatFields LstatFields(const std::string& path);

// One entry of a recursive snapshot: stat fields, contents of regular files,
// target of symlinks, user.* xattrs.
struct NodeSnapshot {
  StatFields st;
  std::string content;
  std::map<std::string, std::string> xattrs;
};
// Relative path -> node, for the tree below root (root itself is "").
// Stops with *err set on an unexpected error (listing or reading failed).
std::map<std::string, NodeSnapshot> SnapshotTree(const std::string& root, std::string* err);
// Success if both trees are identical; otherwise lists the differences.
::testing::AssertionResult SameTree(const std::string& mount_root,
                                    const std::string& native_root);

class Twin {
 public:
  Twin(const std::string& transport, const std::string& variant);
  ~Twin();

  // Starts kmfused on src/ at mnt/ (after building the initial tree, which is
  // copied into native/ first). Returns the error if the daemon would not
  // start or does not serve over the requested transport.
  absl::Status Start(absl::Duration watchdog = absl::Seconds(90));
  // Stops the daemon with SIGTERM; a failure describes what went wrong
  // (exit code, watchdog fired, mount left behind).
  ::testing::AssertionResult Stop();

  // Roots of the two trees. Before Start(), M() is the source directory so
  // that the initial tree can be populated by Both().
  std::string M(const std::string& rel = "") const;
  std::string N(const std::string& rel = "") const;
  // The source directory behind the mount.
  std::string S(const std::string& rel = "") const;

  // Runs fn on both roots (mount first) and checks the outcomes are equal.
  ::testing::AssertionResult Same(const std::string& what,
                                  const std::function<Outcome(const std::string& root)>& fn);
  // Compares LstatFields of rel on both sides.
  ::testing::AssertionResult SameStat(const std::string& rel);
  ::testing::AssertionResult SameTreeNow() { return SameTree(M(), N()); }

  itest::DaemonProcess* daemon() const { return daemon_.get(); }
  const std::string& transport() const { return transport_; }
  const std::string& variant() const { return variant_; }

 private:
  std::string transport_, variant_;
  itest::TempDir dir_{"conform"};
  std::string src_, mnt_, native_;
  bool started_ = false;
  std::unique_ptr<itest::DaemonProcess> daemon_;
};

// Skip reason for a transport that cannot run here ("" if it can).
std::string TransportSkipReason(const std::string& transport);

// Reads an environment variable as a positive number, or fallback.
uint64_t EnvNumber(const char* name, uint64_t fallback);

// Deterministic bytes for tests (kmfuse/testing/pattern.h).
using ::kmfuse::testing::Pattern;

}  // namespace kmfuse::conformance

#endif  // KMFUSE_TESTS_CONFORMANCE_TWIN_H_
