// Mapping: factories map or report the errno, moves hand the region over,
// the destructor unmaps exactly the mapped length.
#include "uring/base/mapping.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "uring/base/unique_fd.h"

namespace kmfuse {
namespace {

// True while [addr, addr+len) is mapped in this process (mincore fails with
// ENOMEM on an unmapped page).
bool IsMapped(void* addr, size_t len) {
  unsigned char vec[64];
  return mincore(addr, len, vec) == 0;
}

const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));

TEST(MappingTest, AnonymousIsZeroedWritableAndUnmappedAtEnd) {
  void* addr;
  {
    absl::StatusOr<Mapping> m = Mapping::Anonymous(3 * kPage, "test region");
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_TRUE(m->valid());
    EXPECT_EQ(m->size(), 3 * kPage);
    addr = m->data();
    for (size_t i = 0; i < m->size(); i += 511) EXPECT_EQ(m->as<unsigned char>()[i], 0);
    memset(m->data(), 0xab, m->size());
    EXPECT_TRUE(IsMapped(addr, 3 * kPage));
  }
  EXPECT_FALSE(IsMapped(addr, kPage));
  EXPECT_FALSE(IsMapped(static_cast<char*>(addr) + 2 * kPage, kPage));
}

TEST(MappingTest, MoveHandsTheRegionOver) {
  absl::StatusOr<Mapping> m = Mapping::Anonymous(kPage, "a");
  ASSERT_TRUE(m.ok()) << m.status();
  void* addr = m->data();
  Mapping moved(std::move(*m));
  EXPECT_FALSE(m->valid());  // NOLINT(bugprone-use-after-move): the contract
  EXPECT_EQ(m->size(), 0u);
  EXPECT_EQ(moved.data(), addr);
  absl::StatusOr<Mapping> other = Mapping::Anonymous(kPage, "b");
  ASSERT_TRUE(other.ok()) << other.status();
  void* other_addr = other->data();
  moved = std::move(*other);  // unmaps the first region
  EXPECT_FALSE(IsMapped(addr, kPage));
  EXPECT_EQ(moved.data(), other_addr);
  EXPECT_TRUE(IsMapped(other_addr, kPage));
  moved.reset();
  EXPECT_FALSE(moved.valid());
  EXPECT_FALSE(IsMapped(other_addr, kPage));
}

TEST(MappingTest, MapOfAFileSeesItsBytes) {
  char path[] = "/tmp/kmfuse-mapping-test.XXXXXX";
  UniqueFd fd(mkstemp(path));
  ASSERT_TRUE(fd.valid()) << "mkstemp: errno " << errno;
  unlink(path);
  ASSERT_EQ(pwrite(fd.get(), "kmfuse", 6, 0), 6);
  absl::StatusOr<Mapping> m = Mapping::Map(kPage, PROT_READ, MAP_SHARED, fd.get(), 0, "file");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(memcmp(m->data(), "kmfuse", 6), 0);
}

TEST(MappingTest, FailedMmapReportsErrnoAndWhat) {
  // A bad fd for a file-backed mapping: EBADF.
  absl::StatusOr<Mapping> m = Mapping::Map(kPage, PROT_READ, MAP_SHARED, -1, 0, "queue 7 headers");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition) << m.status();
  EXPECT_NE(m.status().message().find("queue 7 headers"), absl::string_view::npos) << m.status();
}

TEST(MappingTest, ZeroLengthIsInvalidArgument) {
  absl::StatusOr<Mapping> m = Mapping::Anonymous(0, "empty");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MappingTest, AdoptUnmapsWhatItWasGiven) {
  void* addr = mmap(nullptr, kPage, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(addr, MAP_FAILED);
  { Mapping m = Mapping::Adopt(addr, kPage); }
  EXPECT_FALSE(IsMapped(addr, kPage));
  Mapping empty = Mapping::Adopt(nullptr, kPage);
  EXPECT_FALSE(empty.valid());
  EXPECT_EQ(empty.size(), 0u);
}

}  // namespace
}  // namespace kmfuse
