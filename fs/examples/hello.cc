// hello: a read-only filesystem holding one file, /hello.
//
//   hello MOUNTPOINT [-f] [-d] [-o opt[,opt...]]
//
// The flags every FUSE example takes: without -f it returns once the mount is
// live and serves in the background (libfuse's fuse_daemonize); -d logs each
// request on stderr and stays in the foreground; -o takes transport=,
// queue_depth=, threads=, max_write=, allow_other, default_permissions,
// fsname=, subtype=, ro and debug. SIGINT, SIGTERM, SIGHUP or umount end it
// with status 0; 1 is a mount or serving error, 2 a usage error.
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>

#include "kmfuse/filesystem.h"
#include "kmfuse/server.h"

namespace {
using kmfuse::Reply;
using kmfuse::RequestContext;
namespace abi = kmfuse::abi;
constexpr std::string_view kText = "Hello, world!\n";
constexpr uint64_t kFile = 2;  // node id of /hello; the root is abi::FUSE_ROOT_ID
class HelloFs : public kmfuse::FileSystem {
  static abi::fuse_attr Attr(uint64_t ino) {
    abi::fuse_attr a{};
    a.ino = ino;
    a.mode = ino == kFile ? S_IFREG | 0444 : S_IFDIR | 0555;
    a.nlink = ino == kFile ? 1 : 2;
    a.size = ino == kFile ? kText.size() : 0;
    return a;
  }
  void Lookup(const RequestContext&, uint64_t parent, std::string_view name, Reply r) override {
    if (parent != abi::FUSE_ROOT_ID || name != "hello") return r.Error(ENOENT);
    abi::fuse_entry_out e{};
    e.nodeid = kFile;
    e.attr = Attr(kFile);
    r.Entry(e);
  }
  void Getattr(const RequestContext&, uint64_t ino, std::optional<uint64_t>, Reply r) override {
    if (ino != kFile && ino != abi::FUSE_ROOT_ID) return r.Error(ENOENT);
    abi::fuse_attr_out out{};
    out.attr = Attr(ino);
    r.Attr(out);
  }
  void Read(const RequestContext&, uint64_t, const abi::fuse_read_in& in, Reply r) override {
    r.Data(kText.substr(std::min<size_t>(in.offset, kText.size()), in.size));
  }
  void Readdir(const RequestContext&, uint64_t, const abi::fuse_read_in& in, bool plus,
               Reply r) override {
    kmfuse::DirentWriter w(r.Buffer(), in.size);
    abi::fuse_entry_out e{};  // READDIRPLUS with nodeid 0: no dentry, no lookup reference
    e.attr = Attr(kFile);
    if (in.offset < 1) plus ? w.AddPlus("hello", e, 1) : w.Add("hello", kFile, S_IFREG >> 12, 1);
    r.Ok(w.size());
  }
};
// Applies one -o option; false if it is not one hello knows.
bool ApplyOption(const std::string& opt, kmfuse::ServerOptions* o) {
  size_t eq = opt.find('=');
  std::string key = opt.substr(0, eq), value = eq == std::string::npos ? "" : opt.substr(eq + 1);
  unsigned long n = strtoul(value.c_str(), nullptr, 10);
  if (key == "transport") {
    std::optional<kmfuse::TransportKind> t = kmfuse::ParseTransport(value);
    if (!t.has_value()) return false;
    o->transport = *t;
  } else if (key == "queue_depth" && n > 0) o->queue_depth = static_cast<unsigned>(n);
  else if (key == "threads" && n > 0) o->threads = static_cast<unsigned>(n);
  else if (key == "max_write" && n > 0) o->max_write = static_cast<uint32_t>(n);
  else if (key == "fsname" && !value.empty()) o->fsname = value;
  else if (key == "subtype" && !value.empty()) o->subtype = value;
  else if (opt == "allow_other") o->allow_other = true;
  else if (opt == "default_permissions") o->default_permissions = true;
  else if (opt == "debug") o->debug = true;
  else if (opt != "ro") return false;  // hello is always read-only
  return true;
}
}  // namespace
int main(int argc, char** argv) {
  kmfuse::ServerOptions opts;
  opts.read_only = true;
  opts.fsname = opts.subtype = "hello";
  bool foreground = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "-f") {
      foreground = true;
    } else if (a == "-d") {
      foreground = opts.debug = true;
    } else if (a.rfind("-o", 0) == 0 && (a.size() > 2 || i + 1 < argc)) {
      std::string list = a.size() > 2 ? a.substr(2) : argv[++i];
      for (size_t at = 0; at <= list.size();) {
        size_t comma = std::min(list.find(',', at), list.size());
        std::string opt = list.substr(at, comma - at);
        if (!opt.empty() && !ApplyOption(opt, &opts)) {
          return fprintf(stderr, "hello: unknown option -o %s\n", opt.c_str()), 2;
        }
        at = comma + 1;
      }
    } else if (a[0] != '-' && opts.mountpoint.empty()) {
      opts.mountpoint = a;
    } else {
      return fprintf(stderr, "usage: %s MOUNTPOINT [-f] [-d] [-o opt[,opt...]]\n", argv[0]), 2;
    }
  }
  if (opts.mountpoint.empty()) {
    return fprintf(stderr, "usage: %s MOUNTPOINT [-f] [-d] [-o opt[,opt...]]\n", argv[0]), 2;
  }
  // Background: fork before any thread exists; the parent returns the
  // child's mount result once the mount is live (or failed).
  int ready[2] = {-1, -1};
  if (!foreground) {
    if (pipe(ready) != 0) return perror("hello: pipe"), 1;
    pid_t pid = fork();
    if (pid < 0) return perror("hello: fork"), 1;
    if (pid > 0) {
      close(ready[1]);
      char status = 1;
      return read(ready[0], &status, 1) == 1 ? status : 1;
    }
    close(ready[0]);
    setsid();
  }
  // Signals are taken by this thread only: block them before the server's
  // threads start (they inherit the mask).
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&sigs, sig);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  HelloFs fs;
  absl::StatusOr<std::unique_ptr<kmfuse::Server>> server = kmfuse::Server::Start(&fs, opts);
  char status = server.ok() ? 0 : 1;
  if (!server.ok()) fprintf(stderr, "hello: %s\n", std::string(server.status().message()).c_str());
  if (ready[1] >= 0) {
    ssize_t w = write(ready[1], &status, 1);
    (void)w;  // a parent that is gone cannot be told
    close(ready[1]);
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd <= 2 && null >= 0; fd++) dup2(null, fd);
  }
  if (!server.ok()) return 1;
  (*server)->WaitForSignal(sigs);  // or an external umount
  absl::Status s = (*server)->Stop();  // unmounts if still mounted
  if (!s.ok()) fprintf(stderr, "hello: %s\n", std::string(s.message()).c_str());
  return s.ok() ? 0 : 1;
}
