// Prints one line per io_uring mechanism: what this kernel supports.
#include <cstdio>

#include "uring/probe.h"

int main() {
  for (const kmfuse::uring::ProbeItem& item : kmfuse::uring::ProbeIoUring()) {
    std::printf("%s\n", kmfuse::uring::FormatProbeItem(item).c_str());
  }
  return 0;
}
