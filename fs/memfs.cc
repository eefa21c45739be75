#include "kmfuse/memfs.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <utility>

namespace kmfuse {
namespace {

constexpr size_t kNameMax = 255;
constexpr size_t kSymlinkMax = 4095;
constexpr size_t kXattrNameMax = 255;
constexpr size_t kXattrValueMax = 64 * 1024;
constexpr uint64_t kBlockSize = 4096;
constexpr uint64_t kMaxOffset = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
// Readdir offsets: 0 = start, 1 = after ".", 2 = after "..", then cookies.
constexpr uint64_t kFirstCookie = 3;

timespec Now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

void SplitSeconds(double t, uint64_t* sec, uint32_t* nsec) {
  if (!(t > 0)) {
    *sec = 0;
    *nsec = 0;
    return;
  }
  *sec = static_cast<uint64_t>(t);
  *nsec = static_cast<uint32_t>((t - static_cast<double>(*sec)) * 1e9);
}

}  // namespace

struct MemFs::Dir {
  struct Entry {
    uint64_t ino;
    uint64_t cookie;
  };
  using ByName = std::map<std::string, Entry, std::less<>>;

  // Both maps and the counter are guarded by MemFs::mu_.
  ByName by_name;
  // Readdir order. Iterators into by_name stay valid until that entry goes.
  std::map<uint64_t, ByName::iterator> by_cookie;
  uint64_t next_cookie = kFirstCookie;
  uint64_t parent = abi::FUSE_ROOT_ID;

  void Add(std::string_view name, uint64_t ino, uint64_t cookie) {
    auto it = by_name.emplace(std::string(name), Entry{ino, cookie}).first;
    by_cookie.emplace(cookie, it);
  }
  void Add(std::string_view name, uint64_t ino) { Add(name, ino, next_cookie++); }
  void Remove(ByName::iterator it) {
    by_cookie.erase(it->second.cookie);
    by_name.erase(it);
  }
};

struct MemFs::Inode {
  Inode(uint64_t ino, uint32_t type) : ino(ino), type(type) {}

  const uint64_t ino;
  const uint32_t type;  // S_IFMT bits; never changes

  Mutex mu;
  uint32_t perm ABSL_GUARDED_BY(mu) = 0;  // mode & 07777
  uint32_t uid ABSL_GUARDED_BY(mu) = 0;
  uint32_t gid ABSL_GUARDED_BY(mu) = 0;
  uint32_t rdev ABSL_GUARDED_BY(mu) = 0;
  // Written only with MemFs::mu_ held exclusively as well, so the namespace
  // code may read it under either lock.
  uint32_t nlink ABSL_GUARDED_BY(mu) = 0;
  timespec atime ABSL_GUARDED_BY(mu) = {};
  timespec mtime ABSL_GUARDED_BY(mu) = {};
  timespec ctime ABSL_GUARDED_BY(mu) = {};
  // File contents, or the symlink target (fixed at creation).
  std::string data ABSL_GUARDED_BY(mu);
  std::map<std::string, std::string, std::less<>> xattrs ABSL_GUARDED_BY(mu);
  uint64_t charged ABSL_GUARDED_BY(mu) = 0;  // bytes counted against capacity
  // Set when the inode leaves the table; late I/O through a stale pointer
  // then fails instead of charging capacity that would never be returned.
  bool dead ABSL_GUARDED_BY(mu) = false;

  // Directories only (the pointer is fixed at creation; the contents are
  // guarded by MemFs::mu_).
  std::unique_ptr<Dir> dir;

  // Incremented under MemFs::mu_ held shared or exclusive; decremented (and
  // tested for freeing) only under MemFs::mu_ exclusive.
  std::atomic<uint64_t> lookups{0};
  std::atomic<uint64_t> opens{0};

  bool is_dir() const { return type == S_IFDIR; }
  bool is_reg() const { return type == S_IFREG; }

  void FillAttr(abi::fuse_attr* a) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    *a = {};
    a->ino = ino;
    a->size = is_dir() ? kBlockSize : data.size();
    a->blocks = (a->size + 511) / 512;
    a->atime = static_cast<uint64_t>(atime.tv_sec);
    a->mtime = static_cast<uint64_t>(mtime.tv_sec);
    a->ctime = static_cast<uint64_t>(ctime.tv_sec);
    a->atimensec = static_cast<uint32_t>(atime.tv_nsec);
    a->mtimensec = static_cast<uint32_t>(mtime.tv_nsec);
    a->ctimensec = static_cast<uint32_t>(ctime.tv_nsec);
    a->mode = type | perm;
    a->nlink = nlink;
    a->uid = uid;
    a->gid = gid;
    a->rdev = rdev;
    a->blksize = kBlockSize;
  }

  // Sets a regular file's size, charging or returning capacity in `fs`.
  // ENOSPC / EFBIG leave the file as it was.
  int Resize(MemFs& fs, uint64_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const uint64_t cur = data.size();
    if (size > kMaxOffset) return EFBIG;
    if (size > cur) {
      if (!fs.Charge(size - cur)) return ENOSPC;
      charged += size - cur;
    } else {
      fs.Uncharge(cur - size);
      charged -= cur - size;
    }
    data.resize(size);
    // Give memory back after a large shrink; std::string never does it alone.
    if (data.capacity() > 2 * size && data.capacity() > 64 * 1024) data.shrink_to_fit();
    return 0;
  }

  void TouchChange(bool modified) ABSL_LOCKS_EXCLUDED(mu) {
    MutexLock l(&mu);
    ctime = Now();
    if (modified) mtime = ctime;
  }

  void AddLinks(int delta) ABSL_LOCKS_EXCLUDED(mu) {
    MutexLock l(&mu);
    nlink = static_cast<uint32_t>(static_cast<int64_t>(nlink) + delta);
    ctime = Now();
  }
};

std::unique_ptr<MemFs> MemFs::Create(const MemFsOptions& options) {
  return std::unique_ptr<MemFs>(new MemFs(options));
}

MemFs::MemFs(const MemFsOptions& options) : options_(options) {
  auto root = std::make_shared<Inode>(abi::FUSE_ROOT_ID, S_IFDIR);
  {
    MutexLock l(&root->mu);
    root->perm = 0755;
    root->uid = getuid();
    root->gid = getgid();
    root->nlink = 2;
    root->atime = root->mtime = root->ctime = Now();
  }
  root->dir = std::make_unique<Dir>();
  root->dir->parent = abi::FUSE_ROOT_ID;
  WriterMutexLock l(&mu_);
  inodes_.emplace(abi::FUSE_ROOT_ID, std::move(root));
  next_ino_ = abi::FUSE_ROOT_ID + 1;
}

MemFs::~MemFs() = default;

// ---- helpers ----

bool MemFs::Charge(uint64_t bytes) {
  uint64_t cur = used_bytes_.load(std::memory_order_relaxed);
  do {
    if (bytes > options_.capacity_bytes || cur > options_.capacity_bytes - bytes) return false;
  } while (!used_bytes_.compare_exchange_weak(cur, cur + bytes, std::memory_order_relaxed));
  return true;
}

void MemFs::Uncharge(uint64_t bytes) { used_bytes_.fetch_sub(bytes, std::memory_order_relaxed); }

std::shared_ptr<MemFs::Inode> MemFs::Find(uint64_t ino) const {
  ReaderMutexLock l(&mu_);
  return FindLocked(ino);
}

std::shared_ptr<MemFs::Inode> MemFs::FindLocked(uint64_t ino) const {
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? nullptr : it->second;
}

std::shared_ptr<MemFs::Inode> MemFs::FindDirLocked(uint64_t ino, int* err) const {
  std::shared_ptr<Inode> node = FindLocked(ino);
  if (node == nullptr) {
    *err = ENOENT;
  } else if (!node->is_dir()) {
    *err = ENOTDIR;
    node = nullptr;
  }
  return node;
}

void MemFs::FillEntry(Inode& node, abi::fuse_entry_out* out) const {
  *out = {};
  out->nodeid = node.ino;
  SplitSeconds(options_.entry_timeout, &out->entry_valid, &out->entry_valid_nsec);
  SplitSeconds(options_.attr_timeout, &out->attr_valid, &out->attr_valid_nsec);
  MutexLock l(&node.mu);
  node.FillAttr(&out->attr);
}

int MemFs::MakeNodeLocked(const RequestContext& ctx, uint64_t parent, std::string_view name,
                          uint32_t mode, uint32_t rdev, std::string_view target,
                          abi::fuse_entry_out* out, std::shared_ptr<Inode>* made) {
  if (name.size() > kNameMax) return ENAMETOOLONG;
  int err = 0;
  std::shared_ptr<Inode> pnode = FindDirLocked(parent, &err);
  if (pnode == nullptr) return err;
  Dir& pd = *pnode->dir;
  if (pd.by_name.find(name) != pd.by_name.end()) return EEXIST;
  if (inodes_.size() >= options_.max_inodes) return ENOSPC;
  if (!target.empty() && !Charge(target.size())) return ENOSPC;

  const uint32_t type = mode & S_IFMT;
  auto node = std::make_shared<Inode>(next_ino_++, type);
  const timespec now = Now();
  uint32_t gid = ctx.gid;
  uint32_t perm = mode & 07777;
  {
    MutexLock l(&pnode->mu);
    if (pnode->nlink == 0) {
      // The directory was removed while the kernel still had it.
      if (!target.empty()) Uncharge(target.size());
      return ENOENT;
    }
    if (pnode->perm & S_ISGID) {
      gid = pnode->gid;
      if (type == S_IFDIR) perm |= S_ISGID;
    }
    if (type == S_IFDIR) ++pnode->nlink;
    pnode->mtime = pnode->ctime = now;
  }
  {
    MutexLock l(&node->mu);
    node->perm = perm;
    node->uid = ctx.uid;
    node->gid = gid;
    node->rdev = rdev;
    node->nlink = type == S_IFDIR ? 2 : 1;
    node->atime = node->mtime = node->ctime = now;
    node->data.assign(target.data(), target.size());
    node->charged = target.size();
  }
  if (type == S_IFDIR) {
    node->dir = std::make_unique<Dir>();
    node->dir->parent = parent;
  }
  node->lookups.store(1, std::memory_order_relaxed);
  inodes_.emplace(node->ino, node);
  pd.Add(name, node->ino);
  FillEntry(*node, out);
  if (made != nullptr) *made = std::move(node);
  return 0;
}

bool MemFs::IsInSubtreeLocked(uint64_t ino, uint64_t dir) const {
  // Parent chains are acyclic by construction; the bound only guards
  // against looping forever should that ever break.
  for (size_t steps = 0; steps <= inodes_.size(); ++steps) {
    if (ino == dir) return true;
    if (ino == abi::FUSE_ROOT_ID) return false;
    std::shared_ptr<Inode> node = FindLocked(ino);
    if (node == nullptr || node->dir == nullptr) return false;
    ino = node->dir->parent;
  }
  return false;
}

void MemFs::MaybeFreeLocked(const std::shared_ptr<Inode>& node) {
  if (node->ino == abi::FUSE_ROOT_ID) return;
  if (node->lookups.load() != 0 || node->opens.load() != 0) return;
  uint64_t freed = 0;
  {
    MutexLock l(&node->mu);
    if (node->nlink != 0 || node->dead) return;
    node->dead = true;
    freed = node->charged;
    node->charged = 0;
    std::string().swap(node->data);
    node->xattrs.clear();
  }
  inodes_.erase(node->ino);
  Uncharge(freed);
}

uint64_t MemFs::NewHandle(uint64_t ino) {
  const uint64_t fh = next_fh_.fetch_add(1);
  MutexLock l(&handles_mu_);
  handles_[fh] = ino;
  return fh;
}

bool MemFs::IsHandleOf(uint64_t fh, uint64_t ino) const {
  MutexLock l(&handles_mu_);
  auto it = handles_.find(fh);
  return it != handles_.end() && it->second == ino;
}

bool MemFs::EndHandle(uint64_t fh, uint64_t ino) {
  MutexLock l(&handles_mu_);
  auto it = handles_.find(fh);
  if (it == handles_.end() || it->second != ino) return false;
  handles_.erase(it);
  return true;
}

void MemFs::DropOpen(uint64_t ino) {
  WriterMutexLock l(&mu_);
  std::shared_ptr<Inode> node = FindLocked(ino);
  if (node == nullptr) return;
  uint64_t opens = node->opens.load();
  if (opens == 0) return;
  node->opens.store(opens - 1);
  MaybeFreeLocked(node);
}

// ---- names ----

void MemFs::Lookup(const RequestContext&, uint64_t parent, std::string_view name, Reply r) {
  if (name.size() > kNameMax) return r.Error(ENAMETOOLONG);
  abi::fuse_entry_out e;
  const int err = [&]() -> int {
    ReaderMutexLock l(&mu_);
    int err = 0;
    std::shared_ptr<Inode> pnode = FindDirLocked(parent, &err);
    if (pnode == nullptr) return err;
    uint64_t child_ino = 0;
    // The kernel asks for "." and ".." only when exporting (NFS).
    if (name == ".") {
      child_ino = parent;
    } else if (name == "..") {
      child_ino = pnode->dir->parent;
    } else {
      auto it = pnode->dir->by_name.find(name);
      if (it != pnode->dir->by_name.end()) child_ino = it->second.ino;
    }
    std::shared_ptr<Inode> child = child_ino != 0 ? FindLocked(child_ino) : nullptr;
    if (child == nullptr) return ENOENT;
    child->lookups.fetch_add(1);
    FillEntry(*child, &e);
    return 0;
  }();
  if (err != 0) return r.Error(err);
  r.Entry(e);
}

void MemFs::Forget(uint64_t ino, uint64_t nlookup) {
  WriterMutexLock l(&mu_);
  std::shared_ptr<Inode> node = FindLocked(ino);
  if (node == nullptr) return;
  uint64_t cur = node->lookups.load();
  node->lookups.store(nlookup >= cur ? 0 : cur - nlookup);
  MaybeFreeLocked(node);
}

void MemFs::Mknod(const RequestContext& ctx, uint64_t parent, std::string_view name,
                  const abi::fuse_mknod_in& in, Reply r) {
  uint32_t type = in.mode & S_IFMT;
  if (type == 0) type = S_IFREG;
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR &&
      type != S_IFBLK) {
    return r.Error(EINVAL);
  }
  const uint32_t mode = type | (in.mode & ~in.umask & 07777);
  abi::fuse_entry_out e;
  int err;
  {
    WriterMutexLock l(&mu_);
    err = MakeNodeLocked(ctx, parent, name, mode, in.rdev, {}, &e, nullptr);
  }
  if (err != 0) return r.Error(err);
  r.Entry(e);
}

void MemFs::Mkdir(const RequestContext& ctx, uint64_t parent, std::string_view name,
                  const abi::fuse_mkdir_in& in, Reply r) {
  const uint32_t mode = S_IFDIR | (in.mode & ~in.umask & 07777);
  abi::fuse_entry_out e;
  int err;
  {
    WriterMutexLock l(&mu_);
    err = MakeNodeLocked(ctx, parent, name, mode, 0, {}, &e, nullptr);
  }
  if (err != 0) return r.Error(err);
  r.Entry(e);
}

void MemFs::Symlink(const RequestContext& ctx, uint64_t parent, std::string_view name,
                    std::string_view target, Reply r) {
  if (target.empty()) return r.Error(ENOENT);
  if (target.size() > kSymlinkMax) return r.Error(ENAMETOOLONG);
  abi::fuse_entry_out e;
  int err;
  {
    WriterMutexLock l(&mu_);
    err = MakeNodeLocked(ctx, parent, name, S_IFLNK | 0777, 0, target, &e, nullptr);
  }
  if (err != 0) return r.Error(err);
  r.Entry(e);
}

void MemFs::Unlink(const RequestContext&, uint64_t parent, std::string_view name, Reply r) {
  const int err = [&]() -> int {
    WriterMutexLock l(&mu_);
    int err = 0;
    std::shared_ptr<Inode> pnode = FindDirLocked(parent, &err);
    if (pnode == nullptr) return err;
    auto it = pnode->dir->by_name.find(name);
    if (it == pnode->dir->by_name.end()) return ENOENT;
    std::shared_ptr<Inode> child = FindLocked(it->second.ino);
    if (child == nullptr) return ENOENT;
    if (child->is_dir()) return EISDIR;
    pnode->dir->Remove(it);
    pnode->TouchChange(true);
    child->AddLinks(-1);
    MaybeFreeLocked(child);
    return 0;
  }();
  r.Error(err);
}

void MemFs::Rmdir(const RequestContext&, uint64_t parent, std::string_view name, Reply r) {
  if (name == ".") return r.Error(EINVAL);
  if (name == "..") return r.Error(ENOTEMPTY);
  const int err = [&]() -> int {
    WriterMutexLock l(&mu_);
    int err = 0;
    std::shared_ptr<Inode> pnode = FindDirLocked(parent, &err);
    if (pnode == nullptr) return err;
    auto it = pnode->dir->by_name.find(name);
    if (it == pnode->dir->by_name.end()) return ENOENT;
    std::shared_ptr<Inode> child = FindLocked(it->second.ino);
    if (child == nullptr) return ENOENT;
    if (!child->is_dir()) return ENOTDIR;
    if (!child->dir->by_name.empty()) return ENOTEMPTY;
    pnode->dir->Remove(it);
    pnode->AddLinks(-1);
    pnode->TouchChange(true);
    {
      MutexLock cl(&child->mu);
      child->nlink = 0;
      child->ctime = Now();
    }
    MaybeFreeLocked(child);
    return 0;
  }();
  r.Error(err);
}

int MemFs::RenameLocked(uint64_t parent, std::string_view name, uint64_t newparent,
                        std::string_view newname, uint32_t flags) {
  if ((flags & ~static_cast<uint32_t>(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0) return EINVAL;
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) return EINVAL;
  const bool exchange = (flags & RENAME_EXCHANGE) != 0;
  if (name.size() > kNameMax || newname.size() > kNameMax) return ENAMETOOLONG;
  int err = 0;
  std::shared_ptr<Inode> pnode = FindDirLocked(parent, &err);
  if (pnode == nullptr) return err;
  std::shared_ptr<Inode> npnode = FindDirLocked(newparent, &err);
  if (npnode == nullptr) return err;
  Dir& pd = *pnode->dir;
  Dir& nd = *npnode->dir;

  auto sit = pd.by_name.find(name);
  if (sit == pd.by_name.end()) return ENOENT;
  auto dit = nd.by_name.find(newname);
  const bool has_dst = dit != nd.by_name.end();
  if (exchange && !has_dst) return ENOENT;
  if ((flags & RENAME_NOREPLACE) && has_dst) return EEXIST;
  if (parent == newparent && name == newname) return 0;

  std::shared_ptr<Inode> src = FindLocked(sit->second.ino);
  std::shared_ptr<Inode> dst = has_dst ? FindLocked(dit->second.ino) : nullptr;
  if (src == nullptr || (has_dst && dst == nullptr)) return ENOENT;
  const bool src_dir = src->is_dir();
  const bool dst_dir = dst != nullptr && dst->is_dir();
  if (src_dir && IsInSubtreeLocked(newparent, src->ino)) return EINVAL;

  if (exchange) {
    if (dst_dir && IsInSubtreeLocked(parent, dst->ino)) return EINVAL;
    // Names (and their cookies) stay; the inodes behind them swap.
    std::swap(sit->second.ino, dit->second.ino);
    if (parent != newparent) {
      if (src_dir) src->dir->parent = newparent;
      if (dst_dir) dst->dir->parent = parent;
      const int moved = static_cast<int>(src_dir) - static_cast<int>(dst_dir);
      if (moved != 0) {
        pnode->AddLinks(-moved);
        npnode->AddLinks(moved);
      }
    }
    src->TouchChange(false);
    dst->TouchChange(false);
    pnode->TouchChange(true);
    if (parent != newparent) npnode->TouchChange(true);
    return 0;
  }

  if (dst != nullptr) {
    // POSIX: renaming onto another link of the same file does nothing.
    if (dst == src) return 0;
    if (src_dir && !dst_dir) return ENOTDIR;
    if (!src_dir && dst_dir) return EISDIR;
    if (dst_dir && !dst->dir->by_name.empty()) return ENOTEMPTY;
  }

  const uint64_t cookie = sit->second.cookie;
  const uint64_t src_ino = src->ino;
  if (dst != nullptr) {
    nd.Remove(dit);
    if (dst_dir) {
      MutexLock l(&dst->mu);
      dst->nlink = 0;
      dst->ctime = Now();
    } else {
      dst->AddLinks(-1);
    }
    if (dst_dir) npnode->AddLinks(-1);
  }
  pd.Remove(sit);
  if (parent == newparent) {
    // Keep the position: a readdir in progress neither sees the entry twice
    // nor misses it.
    nd.Add(newname, src_ino, cookie);
  } else {
    nd.Add(newname, src_ino);
  }
  if (src_dir && parent != newparent) {
    src->dir->parent = newparent;
    pnode->AddLinks(-1);
    npnode->AddLinks(1);
  }
  src->TouchChange(false);
  pnode->TouchChange(true);
  if (parent != newparent) npnode->TouchChange(true);
  if (dst != nullptr) MaybeFreeLocked(dst);
  return 0;
}

void MemFs::Rename(const RequestContext&, uint64_t parent, std::string_view name,
                   uint64_t newparent, std::string_view newname, uint32_t flags, Reply r) {
  int err;
  {
    WriterMutexLock l(&mu_);
    err = RenameLocked(parent, name, newparent, newname, flags);
  }
  r.Error(err);
}

void MemFs::Link(const RequestContext&, uint64_t ino, uint64_t newparent,
                 std::string_view newname, Reply r) {
  if (newname.size() > kNameMax) return r.Error(ENAMETOOLONG);
  abi::fuse_entry_out e;
  const int err = [&]() -> int {
    WriterMutexLock l(&mu_);
    std::shared_ptr<Inode> node = FindLocked(ino);
    if (node == nullptr) return ENOENT;
    if (node->is_dir()) return EPERM;
    int err = 0;
    std::shared_ptr<Inode> npnode = FindDirLocked(newparent, &err);
    if (npnode == nullptr) return err;
    Dir& nd = *npnode->dir;
    if (nd.by_name.find(newname) != nd.by_name.end()) return EEXIST;
    {
      MutexLock nl(&node->mu);
      if (node->nlink == 0) return ENOENT;
      ++node->nlink;
      node->ctime = Now();
    }
    nd.Add(newname, ino);
    npnode->TouchChange(true);
    node->lookups.fetch_add(1);
    FillEntry(*node, &e);
    return 0;
  }();
  if (err != 0) return r.Error(err);
  r.Entry(e);
}

// ---- attributes ----

void MemFs::Getattr(const RequestContext&, uint64_t ino, std::optional<uint64_t>, Reply r) {
  std::shared_ptr<Inode> node = Find(ino);
  if (node == nullptr) return r.Error(ENOENT);
  abi::fuse_attr_out out{};
  SplitSeconds(options_.attr_timeout, &out.attr_valid, &out.attr_valid_nsec);
  bool dead;
  {
    MutexLock l(&node->mu);
    dead = node->dead;
    node->FillAttr(&out.attr);
  }
  if (dead) return r.Error(ENOENT);
  r.Attr(out);
}

void MemFs::Setattr(const RequestContext&, uint64_t ino, const abi::fuse_setattr_in& in,
                    Reply r) {
  std::shared_ptr<Inode> node = Find(ino);
  if (node == nullptr) return r.Error(ENOENT);
  const uint32_t valid = in.valid;
  abi::fuse_attr_out out{};
  SplitSeconds(options_.attr_timeout, &out.attr_valid, &out.attr_valid_nsec);
  const int err = [&]() -> int {
    MutexLock l(&node->mu);
    if (node->dead) return ENOENT;
    const timespec now = Now();
    // The only step that can fail goes first, so a failed setattr changes
    // nothing.
    if (valid & abi::FATTR_SIZE) {
      if (node->is_dir()) return EISDIR;
      if (!node->is_reg()) return EINVAL;
      int err = node->Resize(*this, in.size);
      if (err != 0) return err;
      node->mtime = now;
    }
    if (valid & abi::FATTR_MODE) {
      node->perm = in.mode & 07777;
    } else if ((valid & abi::FATTR_KILL_SUIDGID) && !node->is_dir()) {
      node->perm &= ~static_cast<uint32_t>(S_ISUID);
      if (node->perm & S_IXGRP) node->perm &= ~static_cast<uint32_t>(S_ISGID);
    }
    if (valid & abi::FATTR_UID) node->uid = in.uid;
    if (valid & abi::FATTR_GID) node->gid = in.gid;
    if (valid & abi::FATTR_ATIME_NOW) {
      node->atime = now;
    } else if (valid & abi::FATTR_ATIME) {
      node->atime = {static_cast<time_t>(in.atime), static_cast<long>(in.atimensec)};
    }
    if (valid & abi::FATTR_MTIME_NOW) {
      node->mtime = now;
    } else if (valid & abi::FATTR_MTIME) {
      node->mtime = {static_cast<time_t>(in.mtime), static_cast<long>(in.mtimensec)};
    }
    if (valid & abi::FATTR_CTIME) {
      node->ctime = {static_cast<time_t>(in.ctime), static_cast<long>(in.ctimensec)};
    } else {
      node->ctime = now;
    }
    node->FillAttr(&out.attr);
    return 0;
  }();
  if (err != 0) return r.Error(err);
  r.Attr(out);
}

void MemFs::Readlink(const RequestContext&, uint64_t ino, Reply r) {
  std::shared_ptr<Inode> node = Find(ino);
  if (node == nullptr) return r.Error(ENOENT);
  if (node->type != S_IFLNK) return r.Error(EINVAL);
  std::string target;
  bool dead;
  {
    MutexLock l(&node->mu);
    dead = node->dead;
    target = node->data;
  }
  if (dead) return r.Error(ENOENT);
  r.Data(target);
}

void MemFs::Access(const RequestContext& ctx, uint64_t ino, uint32_t mask, Reply r) {
  std::shared_ptr<Inode> node = Find(ino);
  if (node == nullptr) return r.Error(ENOENT);
  uint32_t perm, uid, gid;
  bool dead;
  {
    MutexLock l(&node->mu);
    dead = node->dead;
    perm = node->perm;
    uid = node->uid;
    gid = node->gid;
  }
  if (dead) return r.Error(ENOENT);
  mask &= R_OK | W_OK | X_OK;
  if (mask == 0) return r.Empty();  // F_OK
  if (ctx.uid == 0) {
    // CAP_DAC_OVERRIDE: everything but executing a file nobody may execute.
    const bool any_x = (perm & (S_IXUSR | S_IXGRP | S_IXOTH)) != 0;
    if ((mask & X_OK) && !node->is_dir() && !any_x) return r.Error(EACCES);
    return r.Empty();
  }
  uint32_t bits;
  if (ctx.uid == uid) {
    bits = (perm >> 6) & 7;
  } else if (ctx.gid == gid) {
    bits = (perm >> 3) & 7;
  } else {
    bits = perm & 7;
  }
  if ((bits & mask) != mask) return r.Error(EACCES);
  r.Empty();
}

// ---- files ----

void MemFs::Open(const RequestContext&, uint64_t ino, const abi::fuse_open_in& in, Reply r) {
  const uint32_t flags = in.flags;
  std::shared_ptr<Inode> node;
  const int err = [&]() -> int {
    ReaderMutexLock l(&mu_);
    node = FindLocked(ino);
    if (node == nullptr) return ENOENT;
    if (node->is_dir()) return EISDIR;
    if (!node->is_reg()) return EINVAL;
    node->opens.fetch_add(1);
    return 0;
  }();
  if (err != 0) return r.Error(err);
  if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
    MutexLock l(&node->mu);
    if (!node->dead && !node->data.empty()) {
      node->Resize(*this, 0);  // shrinking cannot fail
      node->mtime = node->ctime = Now();
    }
  }
  abi::fuse_open_out out{};
  out.fh = NewHandle(ino);
  r.Open(out);
}

void MemFs::Create(const RequestContext& ctx, uint64_t parent, std::string_view name,
                   const abi::fuse_create_in& in, Reply r) {
  const uint32_t flags = in.flags;
  const uint32_t mode = S_IFREG | (in.mode & ~in.umask & 07777);
  abi::fuse_entry_out e;
  const int err = [&]() -> int {
    WriterMutexLock l(&mu_);
    if (name.size() > kNameMax) return ENAMETOOLONG;
    int err = 0;
    std::shared_ptr<Inode> pnode = FindDirLocked(parent, &err);
    if (pnode == nullptr) return err;
    auto it = pnode->dir->by_name.find(name);
    std::shared_ptr<Inode> node;
    if (it != pnode->dir->by_name.end()) {
      // Lost a race with another creator: behave like open(O_CREAT).
      if (flags & O_EXCL) return EEXIST;
      node = FindLocked(it->second.ino);
      if (node == nullptr) return ENOENT;
      if (node->is_dir()) return EISDIR;
      if (!node->is_reg()) return EINVAL;
      if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
        MutexLock nl(&node->mu);
        if (!node->data.empty()) {
          node->Resize(*this, 0);
          node->mtime = node->ctime = Now();
        }
      }
      node->lookups.fetch_add(1);
      FillEntry(*node, &e);
    } else {
      err = MakeNodeLocked(ctx, parent, name, mode, 0, {}, &e, &node);
      if (err != 0) return err;
    }
    node->opens.fetch_add(1);
    return 0;
  }();
  if (err != 0) return r.Error(err);
  abi::fuse_open_out o{};
  o.fh = NewHandle(e.nodeid);
  r.Create(e, o);
}

void MemFs::Read(const RequestContext&, uint64_t ino, const abi::fuse_read_in& in, Reply r) {
  const uint64_t off = in.offset;
  const size_t size = in.size;
  std::shared_ptr<Inode> node = Find(ino);
  if (node == nullptr) return r.Error(ENOENT);
  if (node->is_dir()) return r.Error(EISDIR);
  if (!node->is_reg()) return r.Error(EINVAL);
  if (!IsHandleOf(in.fh, ino)) return r.Error(EBADF);
  size_t n = 0;
  bool dead;
  {
    MutexLock l(&node->mu);
    dead = node->dead;
    absl::Span<char> buf = r.Buffer();
    if (!dead && off < node->data.size()) {
      n = std::min({size, buf.size(), static_cast<size_t>(node->data.size() - off)});
      std::memcpy(buf.data(), node->data.data() + off, n);
    }
  }
  if (dead) return r.Error(ENOENT);
  r.Ok(n);
}

void MemFs::Write(const RequestContext&, uint64_t ino, const abi::fuse_write_in& in,
                  absl::Span<const char> data, Reply r) {
  const uint64_t off = in.offset;
  const size_t size = std::min<size_t>(in.size, data.size());
  const bool kill_suid = (in.write_flags & abi::FUSE_WRITE_KILL_SUIDGID) != 0;
  std::shared_ptr<Inode> node = Find(ino);
  if (node == nullptr) return r.Error(ENOENT);
  if (node->is_dir()) return r.Error(EISDIR);
  if (!node->is_reg()) return r.Error(EINVAL);
  if (!IsHandleOf(in.fh, ino)) return r.Error(EBADF);
  if (off > kMaxOffset || size > kMaxOffset - off) return r.Error(EFBIG);
  const int err = [&]() -> int {
    MutexLock l(&node->mu);
    if (node->dead) return ENOENT;
    if (off + size > node->data.size()) {
      int err = node->Resize(*this, off + size);
      if (err != 0) return err;
    }
    if (size != 0) std::memcpy(&node->data[off], data.data(), size);
    node->mtime = node->ctime = Now();
    if (kill_suid) {
      node->perm &= ~static_cast<uint32_t>(S_ISUID);
      if (node->perm & S_IXGRP) node->perm &= ~static_cast<uint32_t>(S_ISGID);
    }
    return 0;
  }();
  if (err != 0) return r.Error(err);
  // The payload may share memory with the reply buffer: it is consumed now.
  r.Write(static_cast<uint32_t>(size));
}

void MemFs::Flush(const RequestContext&, uint64_t ino, const abi::fuse_flush_in&, Reply r) {
  r.Error(Find(ino) == nullptr ? ENOENT : 0);
}

void MemFs::Release(const RequestContext&, uint64_t ino, const abi::fuse_release_in& in,
                    Reply r) {
  if (!EndHandle(in.fh, ino)) return r.Error(EBADF);
  DropOpen(ino);
  r.Empty();
}

void MemFs::Fsync(const RequestContext&, uint64_t ino, uint64_t, bool, Reply r) {
  r.Error(Find(ino) == nullptr ? ENOENT : 0);
}

void MemFs::Fallocate(const RequestContext&, uint64_t ino, const abi::fuse_fallocate_in& in,
                      Reply r) {
  const uint64_t off = in.offset;
  const uint64_t len = in.length;
  const uint32_t mode = in.mode;
  std::shared_ptr<Inode> node = Find(ino);
  if (node == nullptr) return r.Error(ENOENT);
  if (node->is_dir()) return r.Error(EISDIR);
  if (!node->is_reg()) return r.Error(ENODEV);
  if (len == 0) return r.Error(EINVAL);
  if (off > kMaxOffset || len > kMaxOffset - off) return r.Error(EFBIG);
  const uint64_t end = off + len;
  const int err = [&]() -> int {
    MutexLock l(&node->mu);
    if (node->dead) return ENOENT;
    if (mode == 0) {
      if (end > node->data.size()) {
        int err = node->Resize(*this, end);
        if (err != 0) return err;
        node->mtime = node->ctime = Now();
      }
    } else if (mode == FALLOC_FL_KEEP_SIZE) {
      // Nothing to preallocate: memory is taken when written.
    } else if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
      if (off < node->data.size()) {
        const uint64_t stop = std::min<uint64_t>(end, node->data.size());
        std::memset(&node->data[off], 0, stop - off);
        node->mtime = node->ctime = Now();
      }
    } else {
      return EOPNOTSUPP;
    }
    return 0;
  }();
  r.Error(err);
}

void MemFs::Lseek(const RequestContext&, uint64_t ino, const abi::fuse_lseek_in& in, Reply r) {
  const uint64_t off = in.offset;
  const uint32_t whence = in.whence;
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return r.Error(EINVAL);
  std::shared_ptr<Inode> node = Find(ino);
  if (node == nullptr) return r.Error(ENOENT);
  uint64_t size;
  bool dead;
  {
    MutexLock l(&node->mu);
    dead = node->dead;
    size = node->data.size();
  }
  if (dead) return r.Error(ENOENT);
  if (off >= size) return r.Error(ENXIO);
  r.Lseek(whence == SEEK_DATA ? off : size);
}

// ---- directories ----

void MemFs::Opendir(const RequestContext&, uint64_t ino, const abi::fuse_open_in&, Reply r) {
  int err = 0;
  {
    ReaderMutexLock l(&mu_);
    std::shared_ptr<Inode> node = FindDirLocked(ino, &err);
    if (node != nullptr) node->opens.fetch_add(1);
  }
  if (err != 0) return r.Error(err);
  abi::fuse_open_out out{};
  out.fh = NewHandle(ino);
  r.Open(out);
}

void MemFs::Readdir(const RequestContext&, uint64_t ino, const abi::fuse_read_in& in, bool plus,
                    Reply r) {
  const uint64_t off = in.offset;
  const size_t size = in.size;
  size_t used = 0;
  const int err = [&]() -> int {
    ReaderMutexLock l(&mu_);
    int err = 0;
    std::shared_ptr<Inode> node = FindDirLocked(ino, &err);
    if (node == nullptr) return err;
    const Dir& d = *node->dir;
    DirentWriter w(r.Buffer(), size);
    // "." and "..": plain attributes, nodeid 0 (the kernel takes no lookup
    // reference for them and the contract says we must not count one).
    auto add_dot = [&](std::string_view name, uint64_t dot_ino, uint64_t next) {
      if (!plus) return w.Add(name, dot_ino, S_IFDIR >> 12, next);
      abi::fuse_entry_out e{};
      e.attr.ino = dot_ino;
      e.attr.mode = S_IFDIR;
      return w.AddPlus(name, e, next);
    };
    bool full = false;
    if (off < 1) full = !add_dot(".", ino, 1);
    if (!full && off < 2) full = !add_dot("..", d.parent, 2);
    if (!full) {
      for (auto it = d.by_cookie.upper_bound(std::max<uint64_t>(off, kFirstCookie - 1));
           it != d.by_cookie.end(); ++it) {
        const std::string& name = it->second->first;
        std::shared_ptr<Inode> child = FindLocked(it->second->second.ino);
        if (child == nullptr) continue;
        if (plus) {
          abi::fuse_entry_out e;
          FillEntry(*child, &e);
          if (!w.AddPlus(name, e, it->first)) break;
          child->lookups.fetch_add(1);
        } else {
          if (!w.Add(name, child->ino, child->type >> 12, it->first)) break;
        }
      }
    }
    used = w.size();
    return 0;
  }();
  if (err != 0) return r.Error(err);
  r.Ok(used);
}

void MemFs::Releasedir(const RequestContext&, uint64_t ino, const abi::fuse_release_in& in,
                       Reply r) {
  if (!EndHandle(in.fh, ino)) return r.Error(EBADF);
  DropOpen(ino);
  r.Empty();
}

void MemFs::Fsyncdir(const RequestContext&, uint64_t ino, uint64_t, bool, Reply r) {
  r.Error(Find(ino) == nullptr ? ENOENT : 0);
}

void MemFs::Statfs(const RequestContext&, uint64_t, Reply r) {
  uint64_t inodes;
  {
    ReaderMutexLock l(&mu_);
    inodes = inodes_.size();
  }
  const uint64_t used = used_bytes_.load(std::memory_order_relaxed);
  const uint64_t blocks = options_.capacity_bytes / kBlockSize;
  const uint64_t used_blocks = std::min(blocks, (used + kBlockSize - 1) / kBlockSize);
  struct statvfs st {};
  st.f_bsize = kBlockSize;
  st.f_frsize = kBlockSize;
  st.f_blocks = blocks;
  st.f_bfree = blocks - used_blocks;
  st.f_bavail = blocks - used_blocks;
  st.f_files = options_.max_inodes;
  st.f_ffree = options_.max_inodes - std::min<uint64_t>(inodes, options_.max_inodes);
  st.f_favail = st.f_ffree;
  st.f_namemax = kNameMax;
  r.Statfs(st);
}

// ---- xattrs ----

void MemFs::Setxattr(const RequestContext&, uint64_t ino, std::string_view name,
                     absl::Span<const char> value, uint32_t flags, Reply r) {
  if (name.empty() || name.size() > kXattrNameMax) return r.Error(ERANGE);
  if (value.size() > kXattrValueMax) return r.Error(E2BIG);
  if ((flags & ~static_cast<uint32_t>(XATTR_CREATE | XATTR_REPLACE)) != 0) return r.Error(EINVAL);
  std::shared_ptr<Inode> node = Find(ino);
  if (node == nullptr) return r.Error(ENOENT);
  const int err = [&]() -> int {
    MutexLock l(&node->mu);
    if (node->dead) return ENOENT;
    auto it = node->xattrs.find(name);
    const bool exists = it != node->xattrs.end();
    if ((flags & XATTR_CREATE) && exists) return EEXIST;
    if ((flags & XATTR_REPLACE) && !exists) return ENODATA;
    const uint64_t old_bytes = exists ? name.size() + it->second.size() : 0;
    const uint64_t new_bytes = name.size() + value.size();
    if (new_bytes > old_bytes) {
      if (!Charge(new_bytes - old_bytes)) return ENOSPC;
      node->charged += new_bytes - old_bytes;
    } else {
      Uncharge(old_bytes - new_bytes);
      node->charged -= old_bytes - new_bytes;
    }
    if (exists) {
      it->second.assign(value.data(), value.size());
    } else {
      node->xattrs.emplace(std::string(name), std::string(value.data(), value.size()));
    }
    node->ctime = Now();
    return 0;
  }();
  r.Error(err);
}

void MemFs::Getxattr(const RequestContext&, uint64_t ino, std::string_view name, uint32_t size,
                     Reply r) {
  std::shared_ptr<Inode> node = Find(ino);
  if (node == nullptr) return r.Error(ENOENT);
  std::string value;
  const int err = [&]() -> int {
    MutexLock l(&node->mu);
    if (node->dead) return ENOENT;
    auto it = node->xattrs.find(name);
    if (it == node->xattrs.end()) return ENODATA;
    value = it->second;
    return 0;
  }();
  if (err != 0) return r.Error(err);
  if (size == 0) return r.XattrSize(static_cast<uint32_t>(value.size()));
  if (size < value.size()) return r.Error(ERANGE);
  r.Data(value);
}

void MemFs::Listxattr(const RequestContext&, uint64_t ino, uint32_t size, Reply r) {
  std::shared_ptr<Inode> node = Find(ino);
  if (node == nullptr) return r.Error(ENOENT);
  std::string list;
  bool dead;
  {
    MutexLock l(&node->mu);
    dead = node->dead;
    for (const auto& [name, value] : node->xattrs) {
      list.append(name);
      list.push_back('\0');
    }
  }
  if (dead) return r.Error(ENOENT);
  if (size == 0) return r.XattrSize(static_cast<uint32_t>(list.size()));
  if (size < list.size()) return r.Error(ERANGE);
  r.Data(list);
}

void MemFs::Removexattr(const RequestContext&, uint64_t ino, std::string_view name, Reply r) {
  std::shared_ptr<Inode> node = Find(ino);
  if (node == nullptr) return r.Error(ENOENT);
  const int err = [&]() -> int {
    MutexLock l(&node->mu);
    if (node->dead) return ENOENT;
    auto it = node->xattrs.find(name);
    if (it == node->xattrs.end()) return ENODATA;
    const uint64_t bytes = it->first.size() + it->second.size();
    node->xattrs.erase(it);
    Uncharge(bytes);
    node->charged -= bytes;
    node->ctime = Now();
    return 0;
  }();
  r.Error(err);
}

}  // namespace kmfuse
