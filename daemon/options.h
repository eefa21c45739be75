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

// -o buffer_memory's default: what the payload buffers of every
// FUSE-over-io_uring queue may take together (see PlanUringBuffers).
inline constexpr uint64_t kDefaultBufferMemory = uint64_t{32} << 20;
// The io_uring transports' default serving threads: min(this, online CPUs,
// queues).
inline constexpr unsigned kDefaultUringThreads = 4;

struct DaemonOptions {
  std::string transport = "auto";  // auto|kmbuf|bufpool|uring|ring-read|read
  // io_uring entries (or ring buffers) per queue; for the io_uring
  // transports the most, -o buffer_memory may allow fewer.
  unsigned queue_depth = 16;
  unsigned threads = 0;            // read and ring-read workers; 0 = number of CPUs
  // The io_uring transports' serving threads (one ring each, serving several
  // FUSE queues); 0 = min(kDefaultUringThreads, online CPUs). -o threads=N
  // sets this and `threads`.
  unsigned uring_threads = 0;
  // Payload buffer memory of all io_uring queues together; 0 = default
  // (kDefaultBufferMemory).
  uint64_t buffer_memory = 0;
  uint32_t max_write = 1u << 20;   // bytes, 4 KiB .. 1 MiB
  bool max_write_set = false;      // -o max_write given: the io_uring plan keeps it
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

// CPUs the kernel counts for FUSE-over-io_uring's nr_queues
// (/sys/devices/system/cpu/possible; _SC_NPROCESSORS_CONF without it).
std::vector<int> PossibleCpus();

// How the io_uring transports size their buffers for `queues` FUSE queues
// (one per possible CPU): every queue gets `entries` entries of `payload`
// bytes, queues x entries x payload <= the budget (-o buffer_memory).
// entries = min(queue_depth, budget / (queues x payload)). When that is
// below 2 and -o max_write was not given, max_write is halved (down to
// 8 KiB, the kernel's smallest payload) until two entries per queue fit, or
// one entry at 8 KiB. payload is what the kernel will ask for:
// max(8 KiB, max_write rounded up to `page`). InvalidArgument, naming the
// minimum budget, when not even one entry per queue fits.
struct UringBufferPlan {
  uint32_t max_write = 0;  // what INIT should offer
  unsigned entries = 0;    // per queue
  size_t payload = 0;      // bytes per entry
  uint64_t budget = 0;     // bytes, the resolved -o buffer_memory
  unsigned threads = 0;    // serving threads (rings), <= queues
};
absl::StatusOr<UringBufferPlan> PlanUringBuffers(const DaemonOptions& o, unsigned queues,
                                                 size_t page, unsigned online_cpus);

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
