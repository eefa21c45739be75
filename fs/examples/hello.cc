// hello: a read-only filesystem holding one file, /hello. Usage: hello MOUNTPOINT
#include <stdio.h>
#include <algorithm>
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
}  // namespace
int main(int argc, char** argv) {
  if (argc != 2) return fprintf(stderr, "usage: %s MOUNTPOINT\n", argv[0]), 2;
  HelloFs fs;
  kmfuse::ServerOptions opts;
  opts.mountpoint = argv[1];
  opts.read_only = true;
  absl::Status s = kmfuse::Server::Run(&fs, opts);  // until SIGINT/SIGTERM or umount
  if (!s.ok()) fprintf(stderr, "hello: %s\n", std::string(s.message()).c_str());
  return s.ok() ? 0 : 1;
}
