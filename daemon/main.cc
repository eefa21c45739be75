// kmfused: mounts a passthrough of SOURCE at MOUNTPOINT.
//
// Exit codes: 0 clean stop (signal or external unmount), 1 runtime error
// (mount refused, transport unavailable, fatal queue error), 2 usage error.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/mount.h"
#include "daemon/options.h"
#include "daemon/privileges.h"
#include "daemon/proto/reply_header.h"
#include "daemon/select.h"
#include "daemon/session.h"
#include "kmfuse/passthrough.h"
#include "kmfuse/server.h"
#include "uring/probe.h"

namespace kmfuse {
namespace {

// Scratch mount to learn the INIT flags this kernel offers (root only).
struct InitProbe {
  bool done = false;
  std::string error;
  uint32_t minor = 0;
  uint64_t flags = 0;
};

InitProbe ProbeInit() {
  InitProbe p;
  char dir[] = "/tmp/kmfused-probe-XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    p.error = absl::StrCat("mkdtemp: ", strerror(errno));
    return p;
  }
  MountFlags f;
  f.fsname = "kmfused-probe";
  f.subtype = "kmfused-probe";
  {
    absl::StatusOr<std::unique_ptr<FuseMount>> m = FuseMount::Create(dir, f);
    if (!m.ok()) {
      p.error = std::string(m.status().message());
    } else {
      std::vector<char> buf(1 << 20 | 8192);
      ssize_t n = read((*m)->fd(), buf.data(), buf.size());
      abi::fuse_in_header in;
      abi::fuse_init_in init{};
      if (n >= static_cast<ssize_t>(sizeof(in) + abi::FUSE_COMPAT_INIT_IN_SIZE)) {
        memcpy(&in, buf.data(), sizeof(in));
        memcpy(&init, buf.data() + sizeof(in),
               std::min(sizeof(init), static_cast<size_t>(n) - sizeof(in)));
        p.done = true;
        p.minor = init.minor;
        p.flags = init.flags;
        if (init.flags & abi::FUSE_INIT_EXT) p.flags |= uint64_t{init.flags2} << 32;
        // Refuse the connection: the probe only wanted the INIT flags.
        const abi::fuse_out_header out = proto::ReplyHeader(in.unique, -EPROTO, 0);
        ssize_t w = write((*m)->fd(), &out, sizeof(out));
        (void)w;
      } else {
        p.error = "no INIT from the kernel";
      }
      (*m)->Unmount();
    }
  }
  rmdir(dir);
  return p;
}

int RunProbe() {
  std::vector<uring::ProbeItem> items = uring::ProbeIoUring();
  for (const uring::ProbeItem& item : items) {
    printf("%s\n", uring::FormatProbeItem(item).c_str());
  }
  KernelOffer offer = ProbeKernelOffer(items);
  printf("fuse enable_uring parameter: %s\n",
         !offer.enable_uring_param_exists ? "absent (kernel without FUSE-over-io_uring)"
         : offer.enable_uring              ? "on"
                                           : "off (echo 1 > /sys/module/fuse/parameters/enable_uring)");
  InitProbe init = geteuid() == 0 ? ProbeInit() : InitProbe{};
  if (init.done) {
    offer.init_known = true;
    offer.init_over_io_uring = init.flags & abi::FUSE_OVER_IO_URING;
    offer.init_bufpool = init.flags & abi::FUSE_HAS_IO_URING_BUFPOOL;
    printf("fuse protocol: 7.%u\n", init.minor);
    printf("FUSE-over-io_uring (INIT FUSE_OVER_IO_URING): %s\n",
           offer.init_over_io_uring ? "available" : "not offered");
    printf("FUSE io-uring buffer pools (INIT FUSE_HAS_IO_URING_BUFPOOL): %s\n",
           offer.init_bufpool ? "available" : "absent (not offered in INIT)");
    printf("FUSE passthrough (INIT FUSE_PASSTHROUGH): %s\n",
           (init.flags & abi::FUSE_PASSTHROUGH) ? "available" : "not offered");
  } else {
    printf("FUSE-over-io_uring (INIT FUSE_OVER_IO_URING): %s\n",
           offer.enable_uring ? "available (enable_uring on; INIT not checked)" : "unavailable");
    printf("FUSE io-uring buffer pools (INIT FUSE_HAS_IO_URING_BUFPOOL): unknown until INIT (%s)\n",
           init.error.empty() ? "needs root for a scratch mount" : init.error.c_str());
  }
  for (TransportKind t : kTransportOrder) {
    const std::string name(TransportName(t));
    absl::Status s = TransportAvailability(t, offer);
    if (s.ok()) {
      printf("transport %s: available\n", name.c_str());
    } else {
      printf("transport %s: unavailable (%s)\n", name.c_str(), std::string(s.message()).c_str());
    }
  }
  absl::StatusOr<Choice> c = ChooseTransport(TransportKind::kAuto, offer);
  if (c.ok()) printf("auto: %s\n", c->Log().c_str());
  return 0;
}

int Serve(const CommandLine& cl) {
  umask(0);  // modes arrive already masked by the kernel
  absl::StatusOr<std::unique_ptr<PassthroughFs>> fs = PassthroughFs::Create(cl.fs);
  if (!fs.ok()) {
    fprintf(stderr, "kmfused: %s\n", std::string(fs.status().message()).c_str());
    return 1;
  }
  // Daemonize before any thread exists; the parent waits until the mount is
  // live (or failed) so scripts can use the mount as soon as we return.
  int ready[2] = {-1, -1};
  if (!cl.foreground) {
    if (pipe(ready) != 0) {
      perror("kmfused: pipe");
      return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
      perror("kmfused: fork");
      return 1;
    }
    if (pid > 0) {
      close(ready[1]);
      char status = 1;
      ssize_t n = read(ready[0], &status, 1);
      if (n == 1 && status == 0) return 0;
      // Failed: the child has reported (or died); reap it so that when the
      // command returns no daemon for this mountpoint is left, not even one
      // still exiting (scripts retry at once).
      int ws = 0;
      while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
      }
      return 1;
    }
    close(ready[0]);
    setsid();
  }
  // Blocked before the server's threads exist (they inherit the mask), so
  // only Server::WaitForSignal below takes them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Before Server::Start creates the first thread: capabilities are per
  // thread and threads inherit them.
  if (absl::StatusOr<uint64_t> kept = DropCapabilities(); !kept.ok()) {
    fprintf(stderr, "kmfused: warning: could not drop capabilities: %s; continuing with them\n",
            std::string(kept.status().message()).c_str());
  } else if (*kept != 0) {
    fprintf(stderr, "kmfused: capabilities: kept %s, dropped the rest; no_new_privs set\n",
            DescribeCapabilityMask(*kept).c_str());
  }
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(fs->get(), cl.server);
  if (!server.ok()) {
    fprintf(stderr, "kmfused: %s\n", std::string(server.status().message()).c_str());
    if (ready[1] >= 0) {
      char status = 1;
      ssize_t w = write(ready[1], &status, 1);
      (void)w;
    }
    return 1;
  }
  // Both lines in one write (stderr is unbuffered, one fprintf is one
  // write): whoever waits for the serving line finds the description with it.
  fprintf(stderr, "kmfused: serving %s at %s: %s\nkmfused: %s\n", cl.source.c_str(),
          (*server)->mountpoint().c_str(), (*server)->SelectionLog().c_str(),
          (*server)->Describe().c_str());
  if (ready[1] >= 0) {
    char status = 0;
    ssize_t w = write(ready[1], &status, 1);
    (void)w;
    close(ready[1]);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
      if (null > 2) close(null);
    }
  }
  if (int sig = (*server)->WaitForSignal(sigs); sig > 0) {
    fprintf(stderr, "kmfused: %s: unmounting %s\n", strsignal(sig),
            (*server)->mountpoint().c_str());
  }
  absl::Status s = (*server)->Stop();
  if (!s.ok()) {
    fprintf(stderr, "kmfused: stopped after error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace kmfuse

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  absl::StatusOr<kmfuse::CommandLine> opts = kmfuse::ParseCommandLine(args);
  if (!opts.ok()) {
    fprintf(stderr, "kmfused: %s\n", std::string(opts.status().message()).c_str());
    fprintf(stderr, "usage: kmfused SOURCE MOUNTPOINT [-o opt,...] [-f] [-d]; see --help\n");
    return 2;
  }
  if (opts->help) {
    fputs(kmfuse::UsageText().c_str(), stdout);
    return 0;
  }
  if (opts->version) {
    printf("kmfused %s (FUSE protocol 7.%u, io_uring transports)\n", kmfuse::kKmfuseVersion,
           kmfuse::abi::FUSE_KERNEL_MINOR_VERSION);
    return 0;
  }
  if (opts->probe) return kmfuse::RunProbe();
  return kmfuse::Serve(*opts);
}
