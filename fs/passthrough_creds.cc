// Per-request credentials for the passthrough's creation ops (run_as_caller).
#include <fcntl.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "fs/passthrough_util.h"
#include "uring/base/unique_fd.h"

namespace kmfuse::passthrough_internal {

bool ReadCallerGroups(uint32_t tid, std::vector<gid_t>* groups) {
  groups->clear();
  if (tid == 0) return false;
  char path[48];
  snprintf(path, sizeof(path), "/proc/%u/status", tid);
  std::string text;
  {
    UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
    if (!fd) return false;
    char buf[4096];
    for (;;) {
      ssize_t n = read(fd.get(), buf, sizeof(buf));
      if (n <= 0) break;
      text.append(buf, static_cast<size_t>(n));
    }
  }
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, "Groups:")) continue;
    for (absl::string_view g : absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
      uint32_t id = 0;
      if (!absl::SimpleAtoi(g, &id)) return false;
      groups->push_back(static_cast<gid_t>(id));
    }
    return true;
  }
  return false;
}

ScopedFsIds::ScopedFsIds(bool on, const RequestContext& ctx) : on_(on) {
  if (!on_) return;
  std::vector<gid_t> groups;
  (void)ReadCallerGroups(ctx.pid, &groups);  // a vanished caller gets no extra groups
  int n = getgroups(0, nullptr);
  if (n >= 0) {
    old_groups_.resize(static_cast<size_t>(n));
    n = getgroups(n, old_groups_.data());
  }
  if (n >= 0) {
    old_groups_.resize(static_cast<size_t>(n));
    groups_switched_ = syscall(SYS_setgroups, groups.size(), groups.data()) == 0;
  }
  old_gid_ = setfsgid(ctx.gid);
  old_uid_ = setfsuid(ctx.uid);
}

ScopedFsIds::~ScopedFsIds() {
  if (!on_) return;
  setfsuid(old_uid_);
  setfsgid(old_gid_);
  if (groups_switched_) syscall(SYS_setgroups, old_groups_.size(), old_groups_.data());
}

}  // namespace kmfuse::passthrough_internal
