#include "daemon/options.h"

#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace kmfuse {
namespace {

absl::Status ParseSize(absl::string_view key, absl::string_view value, uint64_t lo, uint64_t hi,
                       uint64_t* out) {
  uint64_t mult = 1;
  absl::string_view v = value;
  if (!v.empty()) {
    char c = v.back();
    if (c == 'k' || c == 'K') mult = 1024;
    if (c == 'm' || c == 'M') mult = 1024 * 1024;
    if (mult != 1) v.remove_suffix(1);
  }
  uint64_t n = 0;
  if (!absl::SimpleAtoi(v, &n) || n * mult < lo || n * mult > hi) {
    return absl::InvalidArgumentError(absl::StrCat("option ", key, "=", value,
                                                   ": expected a number from ", lo, " to ", hi));
  }
  *out = n * mult;
  return absl::OkStatus();
}

bool IsTransport(absl::string_view t) {
  if (t == "auto") return true;
  for (const char* name : kTransportOrder) {
    if (t == name) return true;
  }
  return false;
}

absl::Status ApplyOption(absl::string_view opt, Options* o) {
  absl::string_view key = opt, value;
  bool has_value = false;
  if (size_t eq = opt.find('='); eq != absl::string_view::npos) {
    key = opt.substr(0, eq);
    value = opt.substr(eq + 1);
    has_value = true;
  }
  auto flag = [&](bool* f, bool v) -> absl::Status {
    if (has_value) return absl::InvalidArgumentError(absl::StrCat("option ", key, " takes no value"));
    *f = v;
    return absl::OkStatus();
  };
  uint64_t n = 0;
  if (key == "transport") {
    if (!IsTransport(value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "option transport=", value, ": expected auto, kmbuf, bufpool, uring, ring-read or read"));
    }
    o->daemon.transport = std::string(value);
    return absl::OkStatus();
  }
  if (key == "queue_depth") {
    if (auto s = ParseSize(key, value, 1, 4096, &n); !s.ok()) return s;
    o->daemon.queue_depth = static_cast<unsigned>(n);
    return absl::OkStatus();
  }
  if (key == "threads") {
    if (auto s = ParseSize(key, value, 1, 256, &n); !s.ok()) return s;
    o->daemon.threads = static_cast<unsigned>(n);
    return absl::OkStatus();
  }
  if (key == "max_write") {
    if (auto s = ParseSize(key, value, 4096, 1u << 20, &n); !s.ok()) return s;
    o->daemon.max_write = static_cast<uint32_t>(n);
    return absl::OkStatus();
  }
  if (key == "max_background") {
    if (auto s = ParseSize(key, value, 1, 65535, &n); !s.ok()) return s;
    o->daemon.max_background = static_cast<uint16_t>(n);
    return absl::OkStatus();
  }
  if (key == "fsname") {
    if (value.empty() || value.find(',') != absl::string_view::npos) {
      return absl::InvalidArgumentError("option fsname needs a non-empty value without commas");
    }
    o->mount.fsname = std::string(value);
    return absl::OkStatus();
  }
  if (key == "subtype") {
    o->mount.subtype = std::string(value);
    return absl::OkStatus();
  }
  if (key == "allow_other") return flag(&o->mount.allow_other, true);
  if (key == "default_permissions") return flag(&o->mount.default_permissions, true);
  if (key == "ro") {
    o->fs.readonly = true;
    return flag(&o->mount.read_only, true);
  }
  if (key == "rw") {
    o->fs.readonly = false;
    return flag(&o->mount.read_only, false);
  }
  if (key == "suid") return flag(&o->mount.nosuid, false);
  if (key == "nosuid") return flag(&o->mount.nosuid, true);
  if (key == "dev") return flag(&o->mount.nodev, false);
  if (key == "nodev") return flag(&o->mount.nodev, true);
  if (key == "exec") return flag(&o->mount.noexec, false);
  if (key == "noexec") return flag(&o->mount.noexec, true);
  if (key == "atime") return flag(&o->mount.noatime, false);
  if (key == "noatime") return flag(&o->mount.noatime, true);
  if (key == "nonempty") return flag(&o->mount.nonempty, true);
  if (key == "debug") return flag(&o->daemon.debug, true);
  // fstab / mount(8) noise that has no meaning for the daemon.
  if (key == "defaults" || key == "auto" || key == "noauto" || key == "user" ||
      key == "users" || key == "nouser" || key == "nofail" || key == "_netdev" ||
      key == "relatime" || key == "strictatime" || key == "comment" || key == "sync" ||
      key == "async" || absl::StartsWith(key, "x-")) {
    return absl::OkStatus();
  }
  absl::Status fs_status = ParsePassthroughOption(std::string_view(key.data(), key.size()),
                                                std::string_view(value.data(), value.size()), &o->fs);
  if (absl::IsNotFound(fs_status)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown option '", opt, "' (see kmfused --help)"));
  }
  return fs_status;
}

}  // namespace

std::string UsageText() {
  return R"(usage: kmfused SOURCE MOUNTPOINT [-o opt[,opt...]] [-f] [-d]
       kmfused --probe

Mounts a passthrough of SOURCE at MOUNTPOINT. Requests arrive in
kernel-selected buffers over the best transport this kernel offers.

  -f                     stay in the foreground
  -d                     debug: one line per request (implies -f)
  -o transport=T         auto (default), kmbuf, bufpool, uring, ring-read, read
  -o queue_depth=N       io_uring entries / ring buffers per queue (default 16)
  -o threads=N           worker threads of the read transport (default: CPUs)
  -o max_write=BYTES     largest write request, 4K..1M (default 1M)
  -o max_background=N    kernel background request limit (default 64)
  -o cache=none|auto|always, writeback_cache, passthrough, fd_budget=N
  -o ro, rw, allow_other, default_permissions, fsname=NAME, subtype=NAME,
     suid, dev, exec, noatime, nonempty, run_as_caller
     (allow_other implies default_permissions and run_as_caller)
  --probe                print what this kernel supports and exit
  -h, --help             this text
  -V, --version          version
)";
}

absl::StatusOr<Options> ParseCommandLine(const std::vector<std::string>& args) {
  Options o;
  std::vector<std::string> positional;
  for (size_t i = 1; i < args.size(); i++) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      o.help = true;
    } else if (a == "-V" || a == "--version") {
      o.version = true;
    } else if (a == "--probe") {
      o.probe = true;
    } else if (a == "-f") {
      o.daemon.foreground = true;
    } else if (a == "-d") {
      o.daemon.debug = true;
      o.daemon.foreground = true;
    } else if (a == "-s") {
      // libfuse's single-threaded flag: accepted, transports choose threads.
    } else if (a == "-o" || absl::StartsWith(a, "-o")) {
      std::string list;
      if (a == "-o") {
        if (i + 1 >= args.size()) return absl::InvalidArgumentError("-o needs an option list");
        list = args[++i];
      } else {
        list = a.substr(2);
      }
      for (absl::string_view opt : absl::StrSplit(list, ',', absl::SkipEmpty())) {
        if (auto s = ApplyOption(opt, &o); !s.ok()) return s;
      }
    } else if (!a.empty() && a[0] == '-') {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag '", a, "' (see kmfused --help)"));
    } else {
      positional.push_back(a);
    }
  }
  if (o.help || o.version || o.probe) return o;
  if (positional.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected SOURCE and MOUNTPOINT, got ", positional.size(), " argument(s)"));
  }
  // allow_other lets every user into the mount, and the passthrough serves
  // every request with the daemon's own credentials (root, normally): with no
  // permission check any user could read and write whatever the daemon can.
  // The kernel's default_permissions checks each call as its caller against
  // the modes and owners the source reports, so allow_other implies it.
  // And the files a user creates must be that user's, not the daemon's:
  // allow_other implies run_as_caller too (a no-op for a daemon that cannot
  // switch ids, where every caller's files belong to the mounting user).
  if (o.mount.allow_other) {
    o.mount.default_permissions = true;
    o.fs.run_as_caller = true;
  }
  o.source = positional[0];
  o.mountpoint = positional[1];
  o.fs.source = o.source;
  if (o.mount.fsname.empty()) o.mount.fsname = o.source;
  if (o.daemon.threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o.daemon.threads = n > 0 ? static_cast<unsigned>(n) : 1;
  }
  return o;
}

}  // namespace kmfuse
