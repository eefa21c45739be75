#include "kmfuse/server.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/options.h"
#include "daemon/session.h"

namespace kmfuse {
namespace {

bool KnownTransport(const std::string& t) {
  if (t == "auto") return true;
  for (const char* name : kTransportOrder) {
    if (t == name) return true;
  }
  return false;
}

// The same bounds kmfused's -o parser enforces, so both front ends accept the
// same configurations.
absl::Status Validate(FileSystem* fs, const ServerOptions& o) {
  if (fs == nullptr) return absl::InvalidArgumentError("Server::Start: FileSystem is null");
  if (o.mountpoint.empty()) {
    return absl::InvalidArgumentError("ServerOptions.mountpoint is empty");
  }
  if (!KnownTransport(o.transport)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ServerOptions.transport '", o.transport,
                     "': expected auto, kmbuf, bufpool, uring, ring-read or read"));
  }
  if (o.queue_depth < 1 || o.queue_depth > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("ServerOptions.queue_depth ", o.queue_depth, ": expected 1 .. 4096"));
  }
  if (o.threads > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("ServerOptions.threads ", o.threads, ": expected 0 .. 256"));
  }
  if (o.max_write < 4096 || o.max_write > (1u << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ServerOptions.max_write ", o.max_write, ": expected 4096 .. 1048576"));
  }
  // Both end up inside the comma-separated mount(2) option string.
  for (const auto& [field, value] : {std::pair<const char*, const std::string&>{"fsname", o.fsname},
                                     {"subtype", o.subtype}}) {
    if (value.find_first_of(",\n") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("ServerOptions.", field, " '", value, "' must not contain ',' or newlines"));
    }
  }
  if (o.subtype.empty()) return absl::InvalidArgumentError("ServerOptions.subtype is empty");
  return absl::OkStatus();
}

Options ToOptions(const ServerOptions& o) {
  Options opts;
  opts.source = o.fsname;
  opts.mountpoint = o.mountpoint;
  opts.mount.allow_other = o.allow_other;
  opts.mount.default_permissions = o.default_permissions;
  opts.mount.read_only = o.read_only;
  opts.mount.fsname = o.fsname;
  opts.mount.subtype = o.subtype;
  opts.daemon.transport = o.transport;
  opts.daemon.queue_depth = o.queue_depth;
  opts.daemon.threads = o.threads;
  if (opts.daemon.threads == 0) {  // as kmfused's option parser resolves it
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    opts.daemon.threads = n > 0 ? static_cast<unsigned>(n) : 1;
  }
  opts.daemon.max_write = o.max_write;
  opts.daemon.debug = o.debug;
  opts.daemon.foreground = true;
  return opts;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(FileSystem* fs, const ServerOptions& options) {
  if (absl::Status s = Validate(fs, options); !s.ok()) {
    if (options.dev_fd >= 0) close(options.dev_fd);  // ownership passed to us
    return s;
  }
  absl::StatusOr<std::unique_ptr<Session>> session =
      Session::Start(ToOptions(options), fs, options.dev_fd);
  if (!session.ok()) {
    return absl::Status(session.status().code(),
                        absl::StrCat("kmfuse: serving ", options.mountpoint, ": ",
                                     session.status().message()));
  }
  return std::unique_ptr<Server>(new Server(std::move(*session)));
}

Server::Server(std::unique_ptr<Session> session) : session_(std::move(session)) {}

Server::~Server() { Stop().IgnoreError(); }

const std::string& Server::transport() const { return session_->transport_name(); }
std::string Server::SelectionLog() const { return session_->SelectionLog(); }
unsigned Server::connection_id() const { return session_->conn_id(); }
bool Server::Done() const { return session_->Done(); }
bool Server::WaitFor(absl::Duration timeout) const { return session_->WaitFor(timeout); }

void Server::Wait() const {
  while (!session_->WaitFor(absl::Hours(1))) {
  }
}

absl::Status Server::Stop() { return session_->Stop(); }

absl::Status Server::Run(FileSystem* fs, const ServerOptions& options) {
  // Block the stop signals before any queue thread exists so that every
  // thread inherits the mask and only sigtimedwait below consumes them.
  sigset_t stop_sigs, old_mask;
  sigemptyset(&stop_sigs);
  sigaddset(&stop_sigs, SIGINT);
  sigaddset(&stop_sigs, SIGTERM);
  if (int rc = pthread_sigmask(SIG_BLOCK, &stop_sigs, &old_mask); rc != 0) {
    if (options.dev_fd >= 0) close(options.dev_fd);
    return absl::InternalError(absl::StrCat("pthread_sigmask: ", strerror(rc)));
  }
  absl::Status result;
  {
    absl::StatusOr<std::unique_ptr<Server>> server = Start(fs, options);
    if (!server.ok()) {
      result = server.status();
    } else {
      // Polling rather than a signalfd: the connection can also end by an
      // external unmount, which no fd we could wait on reports.
      const struct timespec tick = {0, 100 * 1000 * 1000};
      while (!(*server)->Done()) {
        int sig = sigtimedwait(&stop_sigs, nullptr, &tick);
        if (sig > 0) break;
      }
      result = (*server)->Stop();
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  return result;
}

}  // namespace kmfuse
