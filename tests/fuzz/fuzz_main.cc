// libFuzzer entry point (built by fuzz_decoder_test.sh with clang).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return KmfuseFuzzOne(data, size);
}
