// FsConformanceTest for PassthroughFs: each test mirrors a fresh temp dir.
#include <memory>
#include <vector>

#include "fs/conformance_test_lib.h"
#include "kmfuse/passthrough.h"
#include "kmfuse/testing/fs_testing.h"

namespace kmfuse::testing {
namespace {

std::unique_ptr<FileSystem> MakePassthrough(CacheMode cache) {
  // The source directories live until the test binary exits (then removed).
  static auto* dirs = new std::vector<std::unique_ptr<TempDir>>();
  static struct Cleanup {
    ~Cleanup() { dirs->clear(); }
  } cleanup;
  dirs->push_back(std::make_unique<TempDir>());
  PassthroughOptions opts;
  opts.source = dirs->back()->path();
  opts.cache = cache;
  auto fs = PassthroughFs::Create(opts);
  if (!fs.ok()) return nullptr;
  return std::move(*fs);
}

INSTANTIATE_TEST_SUITE_P(
    Passthrough, FsConformanceTest,
    ::testing::Values(
        FsConformanceParam{"cache_auto", [] { return MakePassthrough(CacheMode::kAuto); }},
        FsConformanceParam{"cache_none", [] { return MakePassthrough(CacheMode::kNone); }}),
    FsConformanceParamName);

}  // namespace
}  // namespace kmfuse::testing
