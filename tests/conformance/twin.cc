#include "tests/conformance/twin.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace kmfuse::conformance {

std::vector<std::string> Transports() { return itest::RealTransports(); }
std::vector<std::string> Variants() { return {"default", "cache_none", "writeback", "passthrough"}; }

std::vector<std::string> VariantArgs(const std::string& variant) {
  if (variant == "cache_none") return {"-o", "cache=none"};
  if (variant == "writeback") return {"-o", "writeback_cache"};
  if (variant == "passthrough") return {"-o", "passthrough"};
  return {};
}

std::string Describe(const Outcome& o) {
  std::string s = absl::StrCat("ret=", o.ret);
  if (o.err != 0) absl::StrAppend(&s, " errno=", strerrorname_np(o.err));
  if (!o.data.empty()) {
    std::string shown = o.data.substr(0, 64);
    for (char& c : shown) {
      if (c < 32 || c > 126) c = '.';
    }
    absl::StrAppend(&s, " data=[", o.data.size(), " bytes: '", shown,
                    o.data.size() > 64 ? "...'" : "'", "]");
  }
  return s;
}

Outcome Sys(int64_t ret) { return SysData(ret, ""); }

Outcome SysData(int64_t ret, std::string data) {
  Outcome o;
  o.ret = ret;
  o.err = ret < 0 ? errno : 0;
  if (ret < 0) o.ret = -1;
  o.data = std::move(data);
  return o;
}

std::string Describe(const StatFields& s) {
  if (s.err != 0) return absl::StrCat("lstat errno=", strerrorname_np(s.err));
  char mode[16];
  snprintf(mode, sizeof(mode), "%07o", static_cast<unsigned>(s.mode));
  return absl::StrCat("mode=", mode, " size=", s.size, " nlink=", s.nlink, " uid=", s.uid,
                      " gid=", s.gid);
}

StatFields LstatFields(const std::string& path) {
  StatFields f;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    f.err = errno;
    return f;
  }
  f.mode = st.st_mode;
  f.size = st.st_size;
  f.nlink = st.st_nlink;
  f.uid = st.st_uid;
  f.gid = st.st_gid;
  return f;
}

namespace {

bool ReadAll(const std::string& path, std::string* out, std::string* err) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    *err = absl::StrCat("open ", path, ": ", strerror(errno));
    return false;
  }
  char buf[1 << 16];
  out->clear();
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = absl::StrCat("read ", path, ": ", strerror(errno));
      close(fd);
      return false;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

std::map<std::string, std::string> UserXattrs(const std::string& path, std::string* err) {
  std::map<std::string, std::string> out;
  char names[4096];
  ssize_t n = llistxattr(path.c_str(), names, sizeof(names));
  if (n < 0) {
    *err = absl::StrCat("llistxattr ", path, ": ", strerror(errno));
    return out;
  }
  for (ssize_t i = 0; i < n;) {
    std::string name(names + i);
    i += static_cast<ssize_t>(name.size()) + 1;
    if (name.rfind("user.", 0) != 0) continue;
    char value[4096];
    ssize_t v = lgetxattr(path.c_str(), name.c_str(), value, sizeof(value));
    if (v < 0) {
      *err = absl::StrCat("lgetxattr ", path, " ", name, ": ", strerror(errno));
      return out;
    }
    out[name] = std::string(value, static_cast<size_t>(v));
  }
  return out;
}

void Walk(const std::string& root, const std::string& rel,
          std::map<std::string, NodeSnapshot>* out, std::string* err) {
  const std::string path = rel.empty() ? root : absl::StrCat(root, "/", rel);
  NodeSnapshot& node = (*out)[rel];
  node.st = LstatFields(path);
  if (node.st.err != 0) {
    *err = absl::StrCat("lstat ", path, ": ", strerror(node.st.err));
    return;
  }
  if (!S_ISLNK(node.st.mode)) node.xattrs = UserXattrs(path, err);
  if (!err->empty()) return;
  if (S_ISREG(node.st.mode)) {
    ReadAll(path, &node.content, err);
  } else if (S_ISLNK(node.st.mode)) {
    char target[4096];
    ssize_t n = readlink(path.c_str(), target, sizeof(target));
    if (n < 0) {
      *err = absl::StrCat("readlink ", path, ": ", strerror(errno));
      return;
    }
    node.content.assign(target, static_cast<size_t>(n));
  } else if (S_ISDIR(node.st.mode)) {
    DIR* d = opendir(path.c_str());
    if (d == nullptr) {
      *err = absl::StrCat("opendir ", path, ": ", strerror(errno));
      return;
    }
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    int rerr = errno;
    closedir(d);
    if (rerr != 0) {
      *err = absl::StrCat("readdir ", path, ": ", strerror(rerr));
      return;
    }
    std::set<std::string> unique(names.begin(), names.end());
    if (unique.size() != names.size()) {
      *err = absl::StrCat("readdir ", path, ": duplicate names");
      return;
    }
    node.content = absl::StrJoin(unique, "\n");
    for (const std::string& name : unique) {
      Walk(root, rel.empty() ? name : absl::StrCat(rel, "/", name), out, err);
      if (!err->empty()) return;
    }
  }
}

}  // namespace

std::map<std::string, NodeSnapshot> SnapshotTree(const std::string& root, std::string* err) {
  std::map<std::string, NodeSnapshot> out;
  err->clear();
  Walk(root, "", &out, err);
  return out;
}

::testing::AssertionResult SameTree(const std::string& mount_root,
                                    const std::string& native_root) {
  std::string merr, nerr;
  std::map<std::string, NodeSnapshot> m = SnapshotTree(mount_root, &merr);
  std::map<std::string, NodeSnapshot> n = SnapshotTree(native_root, &nerr);
  if (!merr.empty() || !nerr.empty()) {
    return ::testing::AssertionFailure() << "snapshot failed: mount: " << merr
                                         << "; native: " << nerr;
  }
  std::vector<std::string> diffs;
  for (const auto& [rel, node] : n) {
    auto it = m.find(rel);
    if (it == m.end()) {
      diffs.push_back(absl::StrCat("'", rel, "' missing on the mount"));
      continue;
    }
    const NodeSnapshot& got = it->second;
    if (!(got.st == node.st)) {
      diffs.push_back(absl::StrCat("'", rel, "' stat: mount ", Describe(got.st), " native ",
                                   Describe(node.st)));
    }
    if (got.content != node.content) {
      diffs.push_back(absl::StrCat("'", rel, "' content differs (mount ", got.content.size(),
                                   " bytes, native ", node.content.size(), " bytes)"));
    }
    if (got.xattrs != node.xattrs) diffs.push_back(absl::StrCat("'", rel, "' xattrs differ"));
  }
  for (const auto& [rel, node] : m) {
    if (n.count(rel) == 0) diffs.push_back(absl::StrCat("'", rel, "' only on the mount"));
  }
  if (diffs.empty()) return ::testing::AssertionSuccess();
  if (diffs.size() > 20) diffs.resize(20);
  return ::testing::AssertionFailure() << "trees differ:\n  " << absl::StrJoin(diffs, "\n  ");
}

Twin::Twin(const std::string& transport, const std::string& variant)
    : transport_(transport), variant_(variant) {
  src_ = dir_.Mkdir("src");
  mnt_ = dir_.Mkdir("mnt");
  native_ = dir_.Mkdir("native");
}

Twin::~Twin() {
  if (daemon_ != nullptr) daemon_->Stop(SIGTERM).IgnoreError();
}

absl::Status Twin::Start(absl::Duration watchdog) {
  itest::DaemonProcess::Config c;
  c.source = src_;
  c.mountpoint = mnt_;
  c.args = {"-o", absl::StrCat("transport=", transport_)};
  for (const std::string& a : VariantArgs(variant_)) c.args.push_back(a);
  c.watchdog = watchdog;
  absl::StatusOr<std::unique_ptr<itest::DaemonProcess>> d = itest::DaemonProcess::Start(c);
  if (!d.ok()) return d.status();
  daemon_ = std::move(*d);
  started_ = true;
  if (daemon_->transport() != transport_) {
    return absl::FailedPreconditionError(
        absl::StrCat("asked for transport ", transport_, ", got: ", daemon_->serving_line()));
  }
  return absl::OkStatus();
}

::testing::AssertionResult Twin::Stop() {
  if (daemon_ == nullptr) return ::testing::AssertionSuccess();
  std::unique_ptr<itest::DaemonProcess> d = std::move(daemon_);
  absl::StatusOr<int> rc = d->Stop(SIGTERM);
  if (d->watchdog_fired()) {
    return ::testing::AssertionFailure() << "the watchdog fired: a file operation blocked; stderr:\n"
                                         << d->Stderr();
  }
  if (!rc.ok()) return ::testing::AssertionFailure() << rc.status() << "\n" << d->Stderr();
  if (*rc != 0) {
    return ::testing::AssertionFailure() << "kmfused exited " << *rc << "; stderr:\n"
                                         << d->Stderr();
  }
  if (itest::MountCountAt(d->mountpoint()) != 0) {
    return ::testing::AssertionFailure() << "mount left behind at " << d->mountpoint();
  }
  return ::testing::AssertionSuccess();
}

std::string Twin::M(const std::string& rel) const {
  const std::string& root = started_ ? mnt_ : src_;
  return rel.empty() ? root : absl::StrCat(root, "/", rel);
}
std::string Twin::N(const std::string& rel) const {
  return rel.empty() ? native_ : absl::StrCat(native_, "/", rel);
}
std::string Twin::S(const std::string& rel) const {
  return rel.empty() ? src_ : absl::StrCat(src_, "/", rel);
}

::testing::AssertionResult Twin::Same(const std::string& what,
                                      const std::function<Outcome(const std::string&)>& fn) {
  Outcome m = fn(M());
  Outcome n = fn(N());
  if (m == n) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": mount " << Describe(m) << ", native "
                                       << Describe(n);
}

::testing::AssertionResult Twin::SameStat(const std::string& rel) {
  StatFields m = LstatFields(M(rel));
  StatFields n = LstatFields(N(rel));
  if (m == n) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "stat '" << rel << "': mount " << Describe(m)
                                       << ", native " << Describe(n);
}

std::string TransportSkipReason(const std::string& transport) {
  absl::Status a = itest::TransportAvailable(transport);
  return a.ok() ? "" : std::string(a.message());
}

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  uint64_t n = 0;
  if (v == nullptr || !absl::SimpleAtoi(v, &n) || n == 0) return fallback;
  return n;
}

}  // namespace kmfuse::conformance
