// UniqueFd: closes exactly once, moves hand ownership over, release() does
// not close, FromSyscall carries the errno.
#include "uring/base/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace kmfuse {
namespace {

// True while fd names an open descriptor of this process.
bool IsOpen(int fd) { return fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

// A fresh pipe; both ends owned by the returned pair.
std::pair<UniqueFd, UniqueFd> Pipe() {
  int p[2];
  EXPECT_EQ(pipe2(p, O_CLOEXEC), 0) << "pipe2: errno " << errno;
  return {UniqueFd(p[0]), UniqueFd(p[1])};
}

TEST(UniqueFdTest, DefaultIsEmpty) {
  UniqueFd fd;
  EXPECT_FALSE(fd.valid());
  EXPECT_FALSE(fd);
  EXPECT_EQ(fd.get(), -1);
  UniqueFd negative(-5);
  EXPECT_EQ(negative.get(), -1);
}

TEST(UniqueFdTest, DestructorCloses) {
  int raw;
  {
    auto [r, w] = Pipe();
    raw = r.get();
    ASSERT_TRUE(IsOpen(raw));
  }
  EXPECT_FALSE(IsOpen(raw));
}

TEST(UniqueFdTest, MoveTransfersOwnership) {
  auto [r, w] = Pipe();
  const int raw = r.get();
  UniqueFd moved(std::move(r));
  EXPECT_EQ(moved.get(), raw);
  EXPECT_EQ(r.get(), -1);  // NOLINT(bugprone-use-after-move): the contract
  UniqueFd assigned;
  assigned = std::move(moved);
  EXPECT_EQ(assigned.get(), raw);
  EXPECT_FALSE(moved.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(IsOpen(raw));
}

TEST(UniqueFdTest, MoveAssignmentClosesThePreviousFd) {
  auto [r1, w1] = Pipe();
  auto [r2, w2] = Pipe();
  const int old_raw = r1.get();
  const int new_raw = r2.get();
  r1 = std::move(r2);
  EXPECT_FALSE(IsOpen(old_raw));
  EXPECT_EQ(r1.get(), new_raw);
  EXPECT_TRUE(IsOpen(new_raw));
}

TEST(UniqueFdTest, ReleaseDoesNotClose) {
  int raw;
  {
    auto [r, w] = Pipe();
    raw = r.release();
    EXPECT_FALSE(r.valid());
  }
  EXPECT_TRUE(IsOpen(raw));
  ASSERT_EQ(close(raw), 0);
}

TEST(UniqueFdTest, ResetClosesAndAdopts) {
  auto [r, w] = Pipe();
  const int first = r.get();
  const int second = dup(w.get());
  ASSERT_GE(second, 0);
  r.reset(second);
  EXPECT_FALSE(IsOpen(first));
  EXPECT_EQ(r.get(), second);
  r.reset(second);  // the same fd again: kept, not closed
  EXPECT_TRUE(IsOpen(second));
  r.reset();
  EXPECT_FALSE(IsOpen(second));
  EXPECT_FALSE(r.valid());
}

TEST(UniqueFdTest, FromSyscallKeepsTheFd) {
  absl::StatusOr<UniqueFd> fd = UniqueFd::FromSyscall(open("/", O_RDONLY | O_CLOEXEC), "open /");
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_TRUE(IsOpen(fd->get()));
}

TEST(UniqueFdTest, FromSyscallReportsTheErrno) {
  absl::StatusOr<UniqueFd> fd =
      UniqueFd::FromSyscall(open("/nonexistent-kmfuse-path", O_RDONLY | O_CLOEXEC), "open it");
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(fd.status().message().find("open it"), absl::string_view::npos) << fd.status();
}

}  // namespace
}  // namespace kmfuse
