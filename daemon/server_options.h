// ServerOptions: everything a kmfuse::Server is configured with, and the
// transports it can serve over. Public as "kmfuse/server_options.h" (included
// by "kmfuse/server.h"); kmfused's command line parses into the same struct,
// so the library and the daemon accept the same configurations.
#ifndef KMFUSE_DAEMON_SERVER_OPTIONS_H_
#define KMFUSE_DAEMON_SERVER_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kmfuse {

// How requests travel between the kernel and the queue threads
// (docs/transports.md). kAuto is a request only: the server resolves it to
// the first transport of kTransportOrder the kernel offers.
enum class TransportKind {
  kAuto,
  kKmbuf,     // FUSE-over-io_uring with kernel-managed buffer rings (model only:
              // never merged, so no real kernel offers it; tests/kernel_model)
  kBufpool,   // FUSE-over-io_uring with the kernel's buffer pools (Linux 7.3+)
  kUring,     // FUSE-over-io_uring, one buffer per ring entry (Linux 6.14+)
  kRingRead,  // io_uring READ_MULTISHOT on /dev/fuse (Linux 6.7+)
  kRead,      // read(2) / write(2) on /dev/fuse, every kernel
};

// Auto-selection order, best first.
inline constexpr TransportKind kTransportOrder[] = {TransportKind::kKmbuf, TransportKind::kBufpool,
                                                    TransportKind::kUring, TransportKind::kRingRead,
                                                    TransportKind::kRead};

// The name the command line, logs and probes use: "auto", "kmbuf", "bufpool",
// "uring", "ring-read", "read".
const char* TransportName(TransportKind t);
// The inverse of TransportName; nullopt for any other string.
std::optional<TransportKind> ParseTransport(std::string_view name);
// "auto, kmbuf, bufpool, uring, ring-read or read": every accepted name, for
// error messages.
std::string TransportChoices();

// -o buffer_memory's / ServerOptions::buffer_memory's default: what the
// payload buffers of every FUSE-over-io_uring queue may take together.
inline constexpr uint64_t kDefaultBufferMemory = uint64_t{32} << 20;
// The io_uring transports' default serving threads: min(this, online CPUs,
// queues).
inline constexpr unsigned kDefaultUringThreads = 4;
// max_write when ServerOptions::max_write is 0.
inline constexpr uint32_t kDefaultMaxWrite = 1u << 20;

// How the io_uring transports' queue threads are scheduled
// (daemon/queue_sched.h, docs/performance.md "Wake-up placement").
enum class QueueSched {
  kIdle,    // SCHED_IDLE while the machine has CPUs to spare, so the caller a
            // thread answers is woken on its own CPU; SCHED_OTHER under
            // contention and at rest (a guard thread decides)
  kNormal,  // always SCHED_OTHER
};

struct ServerOptions {
  // Where to mount: an existing, empty directory (see nonempty). Required,
  // also with dev_fd (Stop unmounts it).
  std::string mountpoint;
  // kAuto picks the best the kernel offers (Server::SelectionLog says why); a
  // forced transport the kernel lacks fails Start() with FailedPrecondition
  // before anything is mounted.
  TransportKind transport = TransportKind::kAuto;
  // io_uring entries (or ring buffers) per queue: 1 .. 4096. The io_uring
  // transports use fewer when buffer_memory allows fewer.
  unsigned queue_depth = 16;
  // Serving threads, 0 .. 256. kRead and kRingRead: workers (0 = number of
  // online CPUs). io_uring transports: rings, each serving several CPUs'
  // FUSE queues (0 = min(kDefaultUringThreads, online CPUs)); there is one
  // FUSE queue per possible CPU either way.
  unsigned threads = 0;
  // Payload buffer memory of all io_uring queues together: 0 (default,
  // kDefaultBufferMemory) or 4 KiB .. 16 GiB. Every queue gets the same
  // number of entries; see max_write.
  uint64_t buffer_memory = 0;
  // Largest WRITE payload, also the size of every request buffer: 0 or
  // 4096 .. 1 MiB. 0 means kDefaultMaxWrite, which the io_uring transports
  // halve (down to 8 KiB) until two entries per queue fit buffer_memory; a
  // value given here is kept (one entry per queue at least).
  uint32_t max_write = 0;
  // The kernel's background request limit: 1 .. 65535.
  uint16_t max_background = 64;
  // io_uring transports only (kmbuf, bufpool, uring).
  QueueSched queue_sched = QueueSched::kIdle;
  // kBufpool: READ/WRITE data through the caller's pages. -1: on when the
  // process runs as root; 0 off; 1 on.
  int zero_copy = -1;
  // One line per request on stderr.
  bool debug = false;
  // Mount options.
  bool allow_other = false, default_permissions = false, read_only = false;
  bool nosuid = true, nodev = true, noexec = false, noatime = false;
  bool nonempty = false;  // mount over a non-empty directory
  std::string fsname = "kmfuse", subtype = "kmfuse";
  // >= 0: an open /dev/fuse fd of a mount the caller already made at
  // `mountpoint` (INIT not yet answered). Ownership passes to Start(): the fd
  // is closed when the Server ends, and also when Start() fails.
  int dev_fd = -1;
};

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_SERVER_OPTIONS_H_
