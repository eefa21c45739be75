// kmfused's command line, parsed into the library's ServerOptions.
#ifndef KMFUSE_DAEMON_OPTIONS_H_
#define KMFUSE_DAEMON_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kmfuse/passthrough.h"
#include "kmfuse/server_options.h"

namespace kmfuse {

// The kmfuse version, written here and nowhere else: `kmfused --version`
// prints it, tools/install writes it into kmfuse.pc and tools/package into
// debian/changelog (both read this line).
inline constexpr char kKmfuseVersion[] = "0.1";

// What kmfused's command line says: the server's options (mountpoint,
// transport, buffers, mount flags), the passthrough's, and the daemon's own.
struct CommandLine {
  std::string source;
  // mountpoint, transport, threads, buffers, debug and the mount flags.
  // fsname defaults to SOURCE and subtype to "kmfused".
  ServerOptions server;
  PassthroughOptions fs;
  bool foreground = false;
  bool probe = false;  // --probe: print kernel capabilities and exit
  bool help = false;
  bool version = false;
};

// Parses `kmfused SOURCE MOUNTPOINT [-o opt[,opt...]] [-f] [-d]` (libfuse
// style; also what mount.fuse3 passes for fstab entries). Errors are
// InvalidArgument with a message naming the offending option.
absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args);

// `kmfused --help`, generated from the one option table in options.cc:
// command-line flags, then every -o option, then the fstab options accepted
// and ignored. tests/consumer/manpage_test.sh checks docs/kmfused.8 against
// this text and the parser against both.
std::string UsageText();

}  // namespace kmfuse

#endif  // KMFUSE_DAEMON_OPTIONS_H_
