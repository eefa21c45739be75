// Command line and daemon options (one struct, handed down; no globals).
#ifndef KMFUSE_DAEMON_OPTIONS_H_
#define KMFUSE_DAEMON_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kmfuse/passthrough.h"

namespace kmfuse {

// The kmfuse version, written here and nowhere else: `kmfused --version`
// prints it, tools/install writes it into kmfuse.pc and tools/package into
// debian/changelog (both read this line).
inline constexpr char kKmfuseVersion[] = "0.1";

// Transports in auto-selection order, best first.
inline constexpr const char* kTransportOrder[] = {"kmbuf", "bufpool", "uring", "ring-read", "read"};

struct MountFlags {
  bool allow_other = false;
  bool default_permissions = false;
  bool read_only = false;
  bool nosuid = true;
  bool nodev = true;
  bool noexec = false;
  bool noatime = false;
  bool nonempty = false;
  std::string fsname;            // default: SOURCE
  std::string subtype = "kmfused";
};

struct DaemonOptions {
  std::string transport = "auto";  // auto|kmbuf|bufpool|uring|ring-read|read
  unsigned queue_depth = 16;       // io_uring entries (or ring buffers) per queue
  unsigned threads = 0;            // read transport workers; 0 = number of CPUs
  uint32_t max_write = 1u << 20;   // bytes, 4 KiB .. 1 MiB
  uint16_t max_background = 64;
  bool debug = false;              // one line per request on stderr
  bool foreground = false;
  // FUSE io-uring zero-copy on bufpool queues: -1 default (on when the
  // daemon runs as root), 0 off, 1 on.
  int zero_copy = -1;
};

struct Options {
  std::string source;
  std::string mountpoint;
  MountFlags mount;
  DaemonOptions daemon;
  PassthroughOptions fs;
  bool probe = false;  // --probe: print kernel capabilities and exit
  bool help = false;
  bool version = false;
};

// Parses `kmfused SOURCE MOUNTPOINT [-o opt[,opt...]] [-f] [-d]` (libfuse
// style; also what mount.fuse3 passes for fstab entries). Errors are
// InvalidArgument with a message naming the offending option.
absl::StatusOr<Options> ParseCommandLine(const std::vector<std::string>& args);

// `kmfused --help`, generated from the one option table in options.cc:
// command-line flags, then every -o option, then the fstab options accepted
// and ignored. tests/consumer/manpage_test.sh checks docs/kmfused.8 against
// this text and the parser against both.
std::string UsageText();

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_OPTIONS_H_
