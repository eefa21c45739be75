#include "kmfuse/testing/temp_dir.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "kmfuse/testing/mounts.h"

namespace kmfuse::testing {
namespace {

int RemoveOne(const char* path, const struct stat* /*st*/, int flag, struct FTW* /*ftw*/) {
  // Best effort: keep going so one entry that resists removal does not leave the rest behind.
  if (flag == FTW_DP) {
    rmdir(path);
  } else {
    unlink(path);
  }
  return 0;
}

// Abseil here is built with its own string_view type
// (ABSL_OPTION_USE_STD_STRING_VIEW 0): std::string_view does not convert.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

TempDir::TempDir(std::string_view tag) {
  const char* base = getenv("TEST_TMPDIR");
  if (base == nullptr || *base == '\0') base = "/tmp";
  std::string tmpl = absl::StrCat(base, "/kmfuse-", AV(tag), "-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    fprintf(stderr, "TempDir: mkdtemp(%s): %s\n", tmpl.c_str(), strerror(errno));
    abort();
  }
  char real[PATH_MAX];
  path_ = realpath(tmpl.c_str(), real) != nullptr ? std::string(real) : tmpl;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  // Deepest mounts first, so each detach leaves its parent mount empty.
  const std::string prefix = path_ + "/";
  std::vector<std::string> below;
  for (const MountEntry& m : ReadMountinfo()) {
    if (m.mountpoint.compare(0, prefix.size(), prefix) == 0) below.push_back(m.mountpoint);
  }
  for (auto it = below.rbegin(); it != below.rend(); ++it) ForceUnmount(*it);
  // FTW_PHYS: never follow symlinks; FTW_MOUNT: stay on this filesystem;
  // FTW_DEPTH: children before their directory.
  nftw(path_.c_str(), RemoveOne, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

std::string TempDir::Join(std::string_view rel) const { return absl::StrCat(path_, "/", AV(rel)); }

std::string TempDir::Mkdir(std::string_view rel) const {
  std::string p = Join(rel);
  if (mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "TempDir: mkdir %s: %s\n", p.c_str(), strerror(errno));
    abort();
  }
  return p;
}

}  // namespace kmfuse::testing
