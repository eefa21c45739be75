#include "kmfuse/server.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/select.h"
#include "daemon/session.h"

namespace kmfuse {
namespace {

// The same bounds kmfused's -o parser enforces, so both front ends accept the
// same configurations.
absl::Status Validate(FileSystem* fs, const ServerOptions& o) {
  if (fs == nullptr) return absl::InvalidArgumentError("Server::Start: FileSystem is null");
  if (o.mountpoint.empty()) {
    return absl::InvalidArgumentError("ServerOptions.mountpoint is empty");
  }
  if (!ParseTransport(TransportName(o.transport)).has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ServerOptions.transport ", static_cast<int>(o.transport), ": expected ",
                     TransportChoices()));
  }
  if (o.queue_depth < 1 || o.queue_depth > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("ServerOptions.queue_depth ", o.queue_depth, ": expected 1 .. 4096"));
  }
  if (o.threads > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("ServerOptions.threads ", o.threads, ": expected 0 .. 256"));
  }
  if (o.buffer_memory != 0 && (o.buffer_memory < 4096 || o.buffer_memory > (uint64_t{16} << 30))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ServerOptions.buffer_memory ", o.buffer_memory, ": expected 0 or 4096 .. 17179869184"));
  }
  if (o.max_write != 0 && (o.max_write < 4096 || o.max_write > (1u << 20))) {
    return absl::InvalidArgumentError(
        absl::StrCat("ServerOptions.max_write ", o.max_write, ": expected 0 or 4096 .. 1048576"));
  }
  if (o.max_background < 1) {
    return absl::InvalidArgumentError("ServerOptions.max_background 0: expected 1 .. 65535");
  }
  if (o.zero_copy < -1 || o.zero_copy > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("ServerOptions.zero_copy ", o.zero_copy, ": expected -1, 0 or 1"));
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

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(FileSystem* fs, const ServerOptions& options) {
  if (absl::Status s = Validate(fs, options); !s.ok()) {
    if (options.dev_fd >= 0) close(options.dev_fd);  // ownership passed to us
    return s;
  }
  absl::StatusOr<std::unique_ptr<Session>> session = Session::Start(options, fs);
  if (!session.ok()) return session.status();
  return std::unique_ptr<Server>(new Server(std::move(*session)));
}

Server::Server(std::unique_ptr<Session> session) : session_(std::move(session)) {}

Server::~Server() { Stop().IgnoreError(); }

TransportKind Server::transport() const { return session_->transport(); }
const std::string& Server::mountpoint() const { return session_->mountpoint(); }
std::string Server::SelectionLog() const { return session_->SelectionLog(); }
std::string Server::Describe() const { return session_->Describe(); }
unsigned Server::connection_id() const { return session_->conn_id(); }
bool Server::Done() const { return session_->Done(); }
bool Server::WaitFor(absl::Duration timeout) const { return session_->WaitFor(timeout); }

void Server::Wait() const {
  while (!session_->WaitFor(absl::Hours(1))) {
  }
}

absl::Status Server::Stop() { return session_->Stop(); }

int Server::WaitForSignal(const sigset_t& signals) const {
  // Polling rather than a signalfd: the connection can also end by an
  // external unmount, which no fd we could wait on reports.
  const struct timespec tick = {0, 100 * 1000 * 1000};
  while (!Done()) {
    int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig > 0) return sig;
  }
  return 0;
}

absl::Status Server::Run(FileSystem* fs, const ServerOptions& options) {
  // Block the stop signals before any queue thread exists so that every
  // thread inherits the mask and only WaitForSignal consumes them.
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
      (*server)->WaitForSignal(stop_sigs);
      result = (*server)->Stop();
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  return result;
}

}  // namespace kmfuse
