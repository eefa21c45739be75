#include "kmfuse/testing/pattern.h"

namespace kmfuse::testing {

void FillPattern(uint32_t seed, uint64_t offset, char* buf, size_t len) {
  // One 64-bit mix (splitmix64's finaliser) per aligned 8-byte word, so a
  // byte depends only on (seed, offset).
  for (size_t i = 0; i < len;) {
    uint64_t pos = offset + i;
    uint64_t word = pos / 8;
    uint64_t x = word * 0x9E3779B97F4A7C15ull + seed * 0xD1B54A32D192ED03ull + 1;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    for (size_t b = pos % 8; b < 8 && i < len; b++, i++) buf[i] = static_cast<char>(x >> (8 * b));
  }
}

std::string PatternAt(uint32_t seed, uint64_t offset, size_t len) {
  std::string s(len, '\0');
  FillPattern(seed, offset, s.data(), len);
  return s;
}

std::string Pattern(size_t size, uint32_t seed) { return PatternAt(seed, 0, size); }

}  // namespace kmfuse::testing
