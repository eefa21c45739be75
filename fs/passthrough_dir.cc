// PassthroughFs: directories — opendir, readdir(plus), releasedir, fsyncdir.
//
// Offsets handed to the kernel are the source filesystem's own d_off
// cookies from getdents64 (what telldir returns), so they stay valid across
// requests and across concurrent changes to the directory the way they do
// for a local reader. Each READDIR seeks to the kernel's offset and reads
// afresh; entries that did not fit are simply read again next time, so no
// per-handle entry buffer has to be kept consistent.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>

#include "fs/passthrough_tables.h"
#include "fs/passthrough_util.h"
#include "kmfuse/passthrough.h"

namespace kmfuse {

using passthrough_internal::Handle;
using passthrough_internal::InodeRef;

void PassthroughFs::Opendir(const RequestContext& /*ctx*/, uint64_t ino,
                            const abi::fuse_open_in& /*in*/, Reply r) {
  InodeRef i;
  if (int err = inodes_->Acquire(ino, &i); err != 0) return r.Error(err);
  if (!i.is_dir()) return r.Error(ENOTDIR);
  int fd = openat(i.fd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return r.Error(passthrough_internal::FdErrno());
  auto h = std::make_shared<Handle>(fd, std::move(i), O_RDONLY | O_DIRECTORY, true);
  abi::fuse_open_out out{};
  if (opts_.cache == CacheMode::kAlways) out.open_flags |= abi::FOPEN_CACHE_DIR;
  out.fh = handles_->Add(std::move(h));
  r.Open(out);
}

void PassthroughFs::Readdir(const RequestContext& /*ctx*/, uint64_t /*ino*/,
                            const abi::fuse_read_in& in, bool plus, Reply r) {
  std::shared_ptr<Handle> h = handles_->Get(in.fh);
  if (h == nullptr || !h->is_dir) return r.Error(EBADF);
  MutexLock l(&h->mu);
  if (lseek(h->fd, static_cast<off_t>(in.offset), SEEK_SET) < 0) return r.Error(errno);

  absl::Span<char> out = r.Buffer();
  const size_t limit = std::min<size_t>(out.size(), in.size);
  DirentWriter w(out, in.size);
  // linux_dirent64 records are a little smaller than fuse_dirent ones, so a
  // buffer the size of the request rarely reads more than will fit.
  const size_t bufsize = std::max<size_t>(4096, std::min<size_t>(limit, 64 * 1024));
  std::unique_ptr<char[]> buf(new char[bufsize]);
  bool full = false;
  while (!full) {
    ssize_t n = getdents64(h->fd, buf.get(), bufsize);
    if (n < 0) {
      if (w.empty()) return r.Error(errno);
      break;
    }
    if (n == 0) break;
    for (ssize_t pos = 0; pos < n && !full;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf.get() + pos);
      pos += d->d_reclen;
      std::string_view name(d->d_name);
      const uint64_t next = static_cast<uint64_t>(d->d_off);
      if (!plus) {
        full = !w.Add(name, d->d_ino, d->d_type, next);
        continue;
      }
      abi::fuse_entry_out e{};
      if (passthrough_internal::IsDotOrDotDot(name)) {
        // nodeid 0: the kernel shows the entry but links nothing.
        e.attr.ino = d->d_ino;
        e.attr.mode = static_cast<uint32_t>(d->d_type) << 12;
        full = !w.AddPlus(name, e, next);
        continue;
      }
      // Check the fit before the lookup: a lookup reference must not be
      // taken for an entry the kernel never sees.
      if (w.size() + abi::FuseDirentAlign(sizeof(abi::fuse_direntplus) + name.size()) > limit) {
        full = true;
        break;
      }
      int err = LookupAt(h->fd, std::string(name), &e);
      if (err == ENOENT) continue;  // removed since getdents64
      if (err != 0) {
        if (w.empty()) return r.Error(err);
        full = true;
        break;
      }
      w.AddPlus(name, e, next);
    }
  }
  r.Ok(w.size());
}

void PassthroughFs::Releasedir(const RequestContext& /*ctx*/, uint64_t /*ino*/,
                               const abi::fuse_release_in& in, Reply r) {
  std::shared_ptr<Handle> h = handles_->Remove(in.fh);
  if (h == nullptr) return r.Error(EBADF);
  r.Empty();
}

void PassthroughFs::Fsyncdir(const RequestContext& /*ctx*/, uint64_t /*ino*/, uint64_t fh,
                             bool datasync, Reply r) {
  std::shared_ptr<Handle> h = handles_->Get(fh);
  if (h == nullptr || !h->is_dir) return r.Error(EBADF);
  int rc = datasync ? fdatasync(h->fd) : fsync(h->fd);
  if (rc != 0) return r.Error(errno);
  r.Empty();
}

}  // namespace kmfuse
