#include "daemon/options.h"

#include <string.h>
#include <unistd.h>

#include <iterator>
#include <optional>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "daemon/select.h"

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
    if (c == 'g' || c == 'G') mult = uint64_t{1} << 30;
    if (mult != 1) v.remove_suffix(1);
  }
  uint64_t n = 0;
  if (!absl::SimpleAtoi(v, &n) || n > hi / mult || n * mult < lo) {
    return absl::InvalidArgumentError(absl::StrCat("option ", key, "=", value,
                                                   ": expected a number from ", lo, " to ", hi));
  }
  *out = n * mult;
  return absl::OkStatus();
}

// The one option table: `kmfused --help` is printed from it and
// docs/kmfused.8 is checked against that output (tests/consumer/
// manpage_test.sh), which also runs every row through the parser. A tag is
// what the user types, alternatives separated by ", ".
struct OptionDoc {
  const char* tag;
  const char* help;
};

constexpr OptionDoc kFlags[] = {
    {"-f", "stay in the foreground (default: return once the mount is live)"},
    {"-d", "debug: one line per request on stderr (implies -f)"},
    {"-s", "accepted for libfuse compatibility; transports choose their threads"},
    {"-o OPT[,OPT...]", "mount options, below"},
    {"--probe", "print what this kernel supports, one line per mechanism, and exit"},
    {"-h, --help", "this text"},
    {"-V, --version", "print the version and exit"},
};

constexpr OptionDoc kMountOptions[] = {
    {"transport=T", "auto (default), kmbuf, bufpool, uring, ring-read or read"},
    {"queue_depth=N", "io_uring entries (at most; see buffer_memory) / ring buffers per queue, "
                      "1..4096 (default 16)"},
    {"zero_copy=on|off", "bufpool: READ/WRITE data via the caller's pages (default on as root)"},
    {"threads=N", "serving threads, 1..256; io_uring transports: rings, each serving several "
                  "CPUs' queues (default: min(4, CPUs)); read, ring-read: workers (default: CPUs)"},
    {"buffer_memory=BYTES", "io_uring payload buffers of all queues together, 4K..16G "
                            "(default 32M; at least 8K per possible CPU); a default max_write "
                            "shrinks to fit 2 entries per queue"},
    {"max_write=BYTES", "largest write request, 4K..1M (default 1M)"},
    {"queue_sched=idle|normal", "io_uring transports: queue threads in the idle scheduling "
                                "class while CPUs are spare, so an answered caller stays on "
                                "its CPU (default idle; see docs/performance.md)"},
    {"max_background=N", "kernel background request limit, 1..65535 (default 64)"},
    {"cache=none|auto|always", "kernel page cache use (default auto)"},
    {"writeback_cache[=BOOL]", "let the kernel cache writes (default off)"},
    {"passthrough[=BOOL]", "kernel backing-file passthrough for reads and writes (default off)"},
    {"posix_locks[=BOOL]", "serve POSIX record locks on the source (default on)"},
    {"flock_locks[=BOOL]", "serve flock(2) locks on the source (default on)"},
    {"fd_budget=N", "most O_PATH inode fds held (default: half of RLIMIT_NOFILE)"},
    {"run_as_caller[=BOOL]", "act with each caller's uid, gids and groups (default off)"},
    {"allow_other", "let every user in; implies default_permissions and run_as_caller"},
    {"default_permissions", "the kernel checks modes and owners"},
    {"ro, rw", "read-only / read-write mount (default rw)"},
    {"nosuid, suid", "ignore / honour set-user-ID bits (default nosuid)"},
    {"nodev, dev", "ignore / honour device files (default nodev)"},
    {"noexec, exec", "forbid / allow executing files (default exec)"},
    {"noatime, atime", "do not / do update access times (default atime)"},
    {"nonempty", "mount over a non-empty directory"},
    {"fsname=NAME", "the source column of the mount table (default: SOURCE)"},
    {"subtype=NAME", "the type column is fuse.NAME (default kmfused)"},
    {"debug", "one line per request on stderr, like -d but without -f"},
};

// mount(8), fstab and systemd options that mean nothing to the daemon; a
// trailing '*' matches a prefix.
constexpr const char* kIgnoredMountOptions[] = {
    "defaults", "auto", "noauto", "user", "users", "nouser", "nofail", "_netdev",
    "relatime", "strictatime", "sync", "async", "comment=*", "x-*",
};

bool IsIgnoredMountOption(absl::string_view key) {
  for (absl::string_view pattern : kIgnoredMountOptions) {
    if (absl::ConsumeSuffix(&pattern, "*")) {
      absl::ConsumeSuffix(&pattern, "=");  // "comment=*": the key is "comment"
      if (pattern == key || (!pattern.empty() && pattern.back() == '-' &&
                             absl::StartsWith(key, pattern))) {
        return true;
      }
    } else if (pattern == key) {
      return true;
    }
  }
  return false;
}

void AppendRows(const OptionDoc* rows, size_t n, std::string* out) {
  for (size_t i = 0; i < n; i++) {
    absl::StrAppend(out, "  ", rows[i].tag);
    size_t width = strlen(rows[i].tag);
    if (width < 25) {
      out->append(25 - width, ' ');
    } else {
      absl::StrAppend(out, "\n", std::string(27, ' '));
    }
    absl::StrAppend(out, rows[i].help, "\n");
  }
}

absl::Status ApplyOption(absl::string_view opt, CommandLine* o) {
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
    std::optional<TransportKind> t =
        ParseTransport(std::string_view(value.data(), value.size()));
    if (!t.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("option transport=", value, ": expected ", TransportChoices()));
    }
    o->server.transport = *t;
    return absl::OkStatus();
  }
  if (key == "queue_depth") {
    if (auto s = ParseSize(key, value, 1, 4096, &n); !s.ok()) return s;
    o->server.queue_depth = static_cast<unsigned>(n);
    return absl::OkStatus();
  }
  if (key == "zero_copy") {
    if (value != "on" && value != "off") {
      return absl::InvalidArgumentError(
          absl::StrCat("option zero_copy=", value, ": expected on or off"));
    }
    o->server.zero_copy = value == "on" ? 1 : 0;
    return absl::OkStatus();
  }
  if (key == "queue_sched") {
    if (value != "idle" && value != "normal") {
      return absl::InvalidArgumentError(
          absl::StrCat("option queue_sched=", value, ": expected idle or normal"));
    }
    o->server.queue_sched = value == "idle" ? QueueSched::kIdle : QueueSched::kNormal;
    return absl::OkStatus();
  }
  if (key == "threads") {
    if (auto s = ParseSize(key, value, 1, 256, &n); !s.ok()) return s;
    o->server.threads = static_cast<unsigned>(n);
    return absl::OkStatus();
  }
  if (key == "buffer_memory") {
    if (auto s = ParseSize(key, value, 4096, uint64_t{16} << 30, &n); !s.ok()) return s;
    o->server.buffer_memory = n;
    return absl::OkStatus();
  }
  if (key == "max_write") {
    if (auto s = ParseSize(key, value, 4096, 1u << 20, &n); !s.ok()) return s;
    o->server.max_write = static_cast<uint32_t>(n);
    return absl::OkStatus();
  }
  if (key == "max_background") {
    if (auto s = ParseSize(key, value, 1, 65535, &n); !s.ok()) return s;
    o->server.max_background = static_cast<uint16_t>(n);
    return absl::OkStatus();
  }
  if (key == "fsname") {
    if (value.empty() || value.find(',') != absl::string_view::npos) {
      return absl::InvalidArgumentError("option fsname needs a non-empty value without commas");
    }
    o->server.fsname = std::string(value);
    return absl::OkStatus();
  }
  if (key == "subtype") {
    o->server.subtype = std::string(value);
    return absl::OkStatus();
  }
  if (key == "allow_other") return flag(&o->server.allow_other, true);
  if (key == "default_permissions") return flag(&o->server.default_permissions, true);
  if (key == "ro") {
    o->fs.readonly = true;
    return flag(&o->server.read_only, true);
  }
  if (key == "rw") {
    o->fs.readonly = false;
    return flag(&o->server.read_only, false);
  }
  if (key == "suid") return flag(&o->server.nosuid, false);
  if (key == "nosuid") return flag(&o->server.nosuid, true);
  if (key == "dev") return flag(&o->server.nodev, false);
  if (key == "nodev") return flag(&o->server.nodev, true);
  if (key == "exec") return flag(&o->server.noexec, false);
  if (key == "noexec") return flag(&o->server.noexec, true);
  if (key == "atime") return flag(&o->server.noatime, false);
  if (key == "noatime") return flag(&o->server.noatime, true);
  if (key == "nonempty") return flag(&o->server.nonempty, true);
  if (key == "debug") return flag(&o->server.debug, true);
  if (IsIgnoredMountOption(key)) return absl::OkStatus();
  // PassthroughOptions::source is the SOURCE argument; a second spelling of
  // it in -o would be silently overridden.
  if (key == "source") {
    return absl::InvalidArgumentError("option source: give the source directory as SOURCE");
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
  std::string out = absl::StrCat(
      "usage: kmfused SOURCE MOUNTPOINT [-o opt[,opt...]] [-f] [-d]\n"
      "       kmfused --probe\n\n"
      "Mounts a passthrough of SOURCE at MOUNTPOINT. Requests arrive in\n"
      "kernel-selected buffers over the best transport this kernel offers.\n"
      "In /etc/fstab: SOURCE MOUNTPOINT fuse.kmfused defaults[,opt...] 0 0\n"
      "\nFlags:\n");
  AppendRows(kFlags, std::size(kFlags), &out);
  out += "\nMount options (-o, comma-separated; BOOL is true/false, yes/no, on/off, 1/0):\n";
  AppendRows(kMountOptions, std::size(kMountOptions), &out);
  out += "\nAccepted and ignored (fstab, mount(8), systemd):\n ";
  for (const char* o : kIgnoredMountOptions) absl::StrAppend(&out, " ", o);
  out += "\n\nExit status: 0 stopped cleanly (signal or unmount), 1 error, 2 usage error.\n"
         "See kmfused(8).\n";
  return out;
}

absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args) {
  CommandLine o;
  o.server.fsname.clear();  // SOURCE unless -o fsname= says otherwise
  o.server.subtype = "kmfused";
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
      o.foreground = true;
    } else if (a == "-d") {
      o.server.debug = true;
      o.foreground = true;
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
  if (o.server.allow_other) {
    o.server.default_permissions = true;
    o.fs.run_as_caller = true;
  }
  o.source = positional[0];
  o.server.mountpoint = positional[1];
  o.fs.source = o.source;
  if (o.server.fsname.empty()) o.server.fsname = o.source;
  // The io_uring transports' buffers must fit -o buffer_memory with one
  // queue per possible CPU: refused here, before anything is mounted.
  // (auto may pick one of them.)
  if (o.server.transport == TransportKind::kAuto || IsFuseOverIoUring(o.server.transport)) {
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    absl::StatusOr<UringBufferPlan> plan =
        PlanUringBuffers(o.server, static_cast<unsigned>(PossibleCpus().size()),
                         static_cast<size_t>(sysconf(_SC_PAGESIZE)),
                         online > 0 ? static_cast<unsigned>(online) : 1);
    if (!plan.ok()) return plan.status();
  }
  return o;
}

}  // namespace kmfuse
