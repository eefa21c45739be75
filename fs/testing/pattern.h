// Deterministic test content (testonly): byte `offset` of the stream `seed`
// depends only on (seed, offset), so any range of a file can be checked
// without the rest of it, and different seeds give different bytes.
#ifndef KMFUSE_FS_TESTING_PATTERN_H_
#define KMFUSE_FS_TESTING_PATTERN_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace kmfuse::testing {

// Writes bytes [offset, offset + len) of stream `seed` to buf.
void FillPattern(uint32_t seed, uint64_t offset, char* buf, size_t len);
// Bytes [offset, offset + len) of stream `seed`.
std::string PatternAt(uint32_t seed, uint64_t offset, size_t len);
// The first `size` bytes of stream `seed`: PatternAt(seed, 0, size).
std::string Pattern(size_t size, uint32_t seed);

}  // namespace kmfuse::testing

#endif  // KMFUSE_FS_TESTING_PATTERN_H_
