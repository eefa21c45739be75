#include "kmfuse/testing/mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kmfuse::testing {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t k = 1; k <= 3; k++) {
        char c = s[i + k];
        if (c < '0' || c > '7') ok = false;
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

void EnsureFusectl() {
  for (const MountEntry& m : ReadMountinfo()) {
    if (m.mountpoint == "/sys/fs/fuse/connections") return;
  }
  mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, nullptr);
}

}  // namespace

std::vector<MountEntry> ReadMountinfo() {
  std::vector<MountEntry> mounts;
  std::ifstream f("/proc/self/mountinfo");
  std::string line;
  while (std::getline(f, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ');
    if (fields.size() < 7) continue;
    MountEntry e;
    if (sscanf(fields[2].c_str(), "%u:%u", &e.major, &e.minor) != 2) continue;
    e.mountpoint = Unescape(fields[4]);
    auto sep = std::find(fields.begin() + 6, fields.end(), "-");
    if (sep == fields.end() || sep + 1 == fields.end()) continue;
    e.fstype = *(sep + 1);
    mounts.push_back(std::move(e));
  }
  return mounts;
}

unsigned FuseConnectionAt(const std::string& path) {
  unsigned found = 0;
  for (const MountEntry& m : ReadMountinfo()) {
    if (m.mountpoint != path) continue;
    found = (m.major == 0 && m.fstype.compare(0, 4, "fuse") == 0) ? m.minor : 0;
  }
  return found;
}

int MountCountAt(const std::string& path) {
  int n = 0;
  for (const MountEntry& m : ReadMountinfo()) n += m.mountpoint == path;
  return n;
}

std::string MountTypeAt(const std::string& path) {
  std::string type;
  for (const MountEntry& m : ReadMountinfo()) {
    if (m.mountpoint == path) type = m.fstype;
  }
  return type;
}

bool AbortFuseConnection(unsigned conn) {
  if (conn == 0) return false;
  EnsureFusectl();
  std::string path = absl::StrCat("/sys/fs/fuse/connections/", conn, "/abort");
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, "1", 1) == 1;
  close(fd);
  return ok;
}

void ForceUnmount(const std::string& path) {
  for (int i = 0; i < 16; i++) {
    unsigned conn = FuseConnectionAt(path);
    if (conn != 0) AbortFuseConnection(conn);
    if (MountCountAt(path) == 0) return;
    if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINTR) {
      if (errno == EINVAL || errno == ENOENT) return;
    }
  }
}

}  // namespace kmfuse::testing
