// TempDir: the one temporary-directory owner of every kmfuse test (testonly).
//
// Creates <$TEST_TMPDIR or /tmp>/kmfuse-<tag>-XXXXXX (the path resolved with
// realpath, so it compares equal to mount points in /proc/self/mountinfo).
// The destructor first detaches every mount below the directory (aborting
// FUSE connections, see ForceUnmount in kmfuse/testing/mounts.h) so the
// removal never walks into, or blocks on, a FUSE mount; then it removes the
// tree without following symlinks (tests plant some that point outside) and
// without crossing into another filesystem. Removal is best effort: one entry
// that resists does not stop the rest.
#ifndef KMFUSE_FS_TESTING_TEMP_DIR_H_
#define KMFUSE_FS_TESTING_TEMP_DIR_H_

#include <string>
#include <string_view>
#include <utility>

namespace kmfuse::testing {

class TempDir {
 public:
  // Aborts the test binary if the directory cannot be created.
  explicit TempDir(std::string_view tag = "test");
  ~TempDir();
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + rel.
  std::string Join(std::string_view rel) const;
  // Creates the subdirectory rel (mode 0755; an existing one is fine) and
  // returns its path; aborts the test binary on any other failure.
  std::string Mkdir(std::string_view rel) const;

 private:
  std::string path_;
};

}  // namespace kmfuse::testing

#endif  // KMFUSE_FS_TESTING_TEMP_DIR_H_
