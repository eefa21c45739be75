// FsConformanceTest for MemFs: each test gets a fresh, empty MemFs.
#include <memory>

#include "fs/conformance_test_lib.h"
#include "kmfuse/memfs.h"

namespace kmfuse::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(MemFs, FsConformanceTest,
                         ::testing::Values(FsConformanceParam{
                             "memfs", [] { return std::unique_ptr<FileSystem>(MemFs::Create()); }}),
                         FsConformanceParamName);

}  // namespace
}  // namespace kmfuse::testing
