// FsConformanceTest: the FileSystem contract, checked generically.
//
// A value-parameterised gtest suite. Each implementation instantiates it
// in its own test file with a factory returning a fresh, empty filesystem
// per test (Init is called by the suite):
//
//   INSTANTIATE_TEST_SUITE_P(
//       MemFs, FsConformanceTest,
//       ::testing::Values(FsConformanceParam{"memfs", [] { return MakeMemFs(); }}),
//       FsConformanceParamName);
//
// The suite only talks through FsDriver (filesystem.h and the wire structs).
// It checks what any Linux-like filesystem must do: create/write/read back,
// sizes, mkdir/readdir/rmdir, rename (plain and RENAME_NOREPLACE), unlink,
// truncate, symlinks, lookup counts (same node id while referenced), errno
// values of the common failures (ENOENT, EEXIST, ENOTEMPTY, ENOTDIR,
// EISDIR) and multi-request readdir. It does not assume node ids equal
// st_ino, that "." and ".." are listed, or any timeouts.
#ifndef KMFUSE_FS_CONFORMANCE_TEST_LIB_H_
#define KMFUSE_FS_CONFORMANCE_TEST_LIB_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "gtest/gtest.h"
#include "kmfuse/filesystem.h"
#include "kmfuse/testing/fs_testing.h"

namespace kmfuse::testing {

using FsFactory = std::function<std::unique_ptr<FileSystem>()>;

struct FsConformanceParam {
  std::string name;  // test-name suffix: letters, digits, '_'
  FsFactory factory;
};

inline std::ostream& operator<<(std::ostream& os, const FsConformanceParam& p) {
  return os << p.name;
}

// For INSTANTIATE_TEST_SUITE_P's name generator.
std::string FsConformanceParamName(const ::testing::TestParamInfo<FsConformanceParam>& info);

class FsConformanceTest : public ::testing::TestWithParam<FsConformanceParam> {
 protected:
  void SetUp() override;
  void TearDown() override;

  FsDriver& d() { return *driver_; }

  std::unique_ptr<FileSystem> fs_;
  std::unique_ptr<FsDriver> driver_;
};

}  // namespace kmfuse::testing

#endif  // KMFUSE_FS_CONFORMANCE_TEST_LIB_H_
