#include "fs/passthrough_tables.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "fs/passthrough_util.h"
#include "kmfuse/fuse_abi.h"

namespace kmfuse::passthrough_internal {

namespace {
// Closer threads: enough that device waits overlap (see FdCloser); they
// sleep when there is nothing to close.
constexpr unsigned kCloserThreads = 16;
}  // namespace

FdCloser::FdCloser(std::atomic<size_t>* open_count, std::atomic<size_t>* closing,
                   unsigned threads)
    : open_count_(open_count), closing_(closing), nthreads_(threads == 0 ? 1 : threads) {}

FdCloser::~FdCloser() {
  std::vector<std::thread> threads;
  {
    MutexLock l(&mu_);
    stop_ = true;
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
}

void FdCloser::Close(int fd) {
  MutexLock l(&mu_);
  queue_.push_back(fd);
  queued_++;
  if (threads_.empty()) {
    for (unsigned i = 0; i < nthreads_; i++) threads_.emplace_back([this] { Run(); });
  }
}

void FdCloser::Run() {
  for (;;) {
    int fd;
    {
      MutexLock l(&mu_);
      mu_.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); });
      // Stopping drains the queue first.
      if (queue_.empty()) return;
      fd = queue_.back();
      queue_.pop_back();
    }
    close(fd);
    open_count_->fetch_sub(1);
    closing_->fetch_sub(1);
    MutexLock l(&mu_);
    closed_++;
  }
}

bool FdCloser::Drain(absl::Duration timeout) {
  MutexLock l(&mu_);
  const uint64_t target = queued_;
  return mu_.AwaitWithTimeout(
      [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ >= target; }, timeout);
}

bool FdCloser::WaitBelow(size_t n, absl::Duration timeout) {
  MutexLock l(&mu_);
  return mu_.AwaitWithTimeout(
      [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return queued_ - closed_ <= n; }, timeout);
}

size_t FdCloser::pending() const {
  MutexLock l(&mu_);
  return static_cast<size_t>(queued_ - closed_);
}

Inode::~Inode() {
  if (fd >= 0) table->CloseLater(fd);
}

void InodeTable::CloseLater(int fd) {
  closing_.fetch_add(1);
  closer_->Close(fd);
}

void InodeTable::CloseNow(const std::vector<int>& fds) {
  for (int fd : fds) {
    close(fd);
    open_count_.fetch_sub(1);
    closing_.fetch_sub(1);
  }
}

bool InodeTable::SettleCloses(absl::Duration timeout) { return closer_->Drain(timeout); }

void InodeTable::ThrottleCloses() {
  // Bounded: a close stuck on a dead device must not wedge unlink forever.
  if (closing_.load() > kMaxPendingCloses) closer_->WaitBelow(kMaxPendingCloses, absl::Seconds(5));
}

InodeRef& InodeRef::operator=(InodeRef&& o) noexcept {
  if (this != &o) {
    Reset();
    table_ = std::exchange(o.table_, nullptr);
    inode_ = std::move(o.inode_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

void InodeRef::Reset() {
  if (inode_ != nullptr) {
    table_->Unpin(inode_.get());
    // The last reference of a forgotten inode hands its fd to the closer
    // here, outside the table lock.
    inode_.reset();
  }
  table_ = nullptr;
  fd_ = -1;
}

InodeTable::InodeTable(int root_fd, const struct stat& root_st, size_t budget, int mount_fd,
                       bool handles_ok, int root_mount_id)
    : budget_(budget), mount_fd_(mount_fd), handles_ok_(handles_ok),
      root_mount_id_(root_mount_id),
      closer_(std::make_unique<FdCloser>(&open_count_, &closing_, kCloserThreads)) {
  auto root = std::make_shared<Inode>(abi::FUSE_ROOT_ID, root_st.st_dev, root_st.st_ino,
                                      root_st.st_mode, this);
  root->fd = root_fd;
  root->nlookup = 1;
  root->evictable = false;
  open_count_.fetch_add(1);
  MutexLock l(&mu_);
  by_key_[Key{root_st.st_dev, root_st.st_ino}] = abi::FUSE_ROOT_ID;
  by_id_[abi::FUSE_ROOT_ID] = std::move(root);
}

InodeTable::~InodeTable() {
  MutexLock l(&mu_);
  lru_.clear();
  by_key_.clear();
  by_id_.clear();
}

size_t InodeTable::size() const {
  MutexLock l(&mu_);
  return by_id_.size();
}

void InodeTable::LruRemoveLocked(Inode* inode) {
  if (!inode->in_lru) return;
  lru_.erase(inode->lru_it);
  inode->in_lru = false;
}

void InodeTable::LruAddLocked(Inode* inode) {
  if (inode->in_lru || inode->fd < 0 || !inode->evictable || inode->forgotten ||
      inode->pins != 0) {
    return;
  }
  inode->lru_it = lru_.insert(lru_.end(), inode);
  inode->in_lru = true;
}

bool InodeTable::HandleOf(int fd, std::string* handle, int* mount_id) const {
  // MAX_HANDLE_SZ is 128 bytes of f_handle.
  alignas(struct file_handle) char buf[sizeof(struct file_handle) + 128];
  auto* fh = reinterpret_cast<struct file_handle*>(buf);
  fh->handle_bytes = 128;
  if (name_to_handle_at(fd, "", fh, mount_id, AT_EMPTY_PATH) != 0) return false;
  handle->assign(buf, sizeof(struct file_handle) + fh->handle_bytes);
  return true;
}

bool InodeTable::SaveHandleLocked(Inode* inode) {
  if (!inode->handle.empty()) return true;
  if (!handles_ok_) return false;
  int mount_id = -1;
  std::string h;
  // Another mount below the source would need its own mount_fd; such inodes
  // simply stay open.
  if (!HandleOf(inode->fd, &h, &mount_id) || mount_id != root_mount_id_) return false;
  inode->handle = std::move(h);
  return true;
}

void InodeTable::ReserveSlotLocked(std::vector<int>* to_close) {
  // Fds already on their way to close() make room without another eviction.
  while (open_count_.load() - closing_.load() >= budget_) {
    if (lru_.empty()) {
      // Everything held is pinned by a request or an open file (each of
      // which also holds an fd of the caller's): go over the budget rather
      // than fail the request; RLIMIT_NOFILE is twice the budget.
      if (over_budget_.fetch_add(1) == 0) {
        fprintf(stderr,
                "kmfuse passthrough: all %zu inode fds of the budget are in use by requests "
                "and open files; going over it\n",
                budget_);
      }
      return;
    }
    Inode* victim = lru_.front();
    LruRemoveLocked(victim);
    if (!SaveHandleLocked(victim)) {
      victim->evictable = false;
      continue;
    }
    to_close->push_back(victim->fd);
    closing_.fetch_add(1);
    victim->fd = -1;
  }
}

int InodeTable::Acquire(uint64_t id, InodeRef* out) {
  out->Reset();
  std::vector<int> to_close;
  int err = Pin(id, out, &to_close);
  CloseNow(to_close);
  return err;
}

int InodeTable::Pin(uint64_t id, InodeRef* out, std::vector<int>* to_close) {
  MutexLock l(&mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return ENOENT;
  Inode* inode = it->second.get();
  if (inode->fd < 0) {
    ReserveSlotLocked(to_close);
    std::string h = inode->handle;  // open_by_handle_at may rewrite handle_bytes
    int fd = open_by_handle_at(mount_fd_, reinterpret_cast<struct file_handle*>(h.data()),
                               O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? ESTALE : FdErrno();
    inode->fd = fd;
    open_count_.fetch_add(1);
  }
  LruRemoveLocked(inode);
  inode->pins++;
  out->table_ = this;
  out->inode_ = it->second;
  out->fd_ = inode->fd;
  return 0;
}

void InodeTable::Unpin(Inode* inode) {
  MutexLock l(&mu_);
  inode->pins--;
  LruAddLocked(inode);
}

int InodeTable::Register(int fd, const struct stat& st, uint64_t* id) {
  int to_close = -1;
  std::vector<int> evicted;
  {
    MutexLock l(&mu_);
    Key key{st.st_dev, st.st_ino};
    auto kit = by_key_.find(key);
    if (kit != by_key_.end()) {
      Inode* inode = by_id_[kit->second].get();
      if (inode->fd >= 0) {
        // An open fd pins the inode, so (dev, ino) cannot have been reused.
        inode->nlookup++;
        *id = inode->id;
        to_close = fd;
      } else {
        // Evicted: the number may belong to a new file now. Same handle
        // (which includes the generation) means same file.
        std::string h;
        int mount_id = -1;
        if (HandleOf(fd, &h, &mount_id) && h == inode->handle) {
          ReserveSlotLocked(&evicted);
          inode->fd = fd;
          open_count_.fetch_add(1);
          inode->nlookup++;
          *id = inode->id;
          LruAddLocked(inode);
        } else {
          by_key_.erase(kit);
          kit = by_key_.end();
        }
      }
    }
    if (kit == by_key_.end()) {
      ReserveSlotLocked(&evicted);
      auto inode = std::make_shared<Inode>(next_id_++, st.st_dev, st.st_ino, st.st_mode, this);
      inode->fd = fd;
      inode->nlookup = 1;
      open_count_.fetch_add(1);
      *id = inode->id;
      by_key_[key] = inode->id;
      LruAddLocked(inode.get());
      by_id_[inode->id] = std::move(inode);
    }
  }
  CloseNow(evicted);
  // Not one of ours yet: this fd never counted against the budget.
  if (to_close >= 0) close(to_close);
  return 0;
}

void InodeTable::Forget(uint64_t id, uint64_t nlookup) {
  if (id == abi::FUSE_ROOT_ID) return;
  std::shared_ptr<Inode> dropped;
  {
    MutexLock l(&mu_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return;
    Inode* inode = it->second.get();
    inode->nlookup = nlookup >= inode->nlookup ? 0 : inode->nlookup - nlookup;
    if (inode->nlookup != 0) return;
    inode->forgotten = true;
    LruRemoveLocked(inode);
    auto kit = by_key_.find(Key{inode->dev, inode->ino});
    if (kit != by_key_.end() && kit->second == id) by_key_.erase(kit);
    dropped = std::move(it->second);
    by_id_.erase(it);
  }
  // Hands the fd to the closer unless a request still pins the inode.
  dropped.reset();
}

void InodeTable::Clear() {
  std::vector<std::shared_ptr<Inode>> dropped;
  {
    MutexLock l(&mu_);
    for (auto it = by_id_.begin(); it != by_id_.end();) {
      if (it->first == abi::FUSE_ROOT_ID) {
        ++it;
        continue;
      }
      Inode* inode = it->second.get();
      inode->forgotten = true;
      LruRemoveLocked(inode);
      dropped.push_back(std::move(it->second));
      by_id_.erase(it++);
    }
    for (auto it = by_key_.begin(); it != by_key_.end();) {
      if (it->second != abi::FUSE_ROOT_ID) {
        by_key_.erase(it++);
      } else {
        ++it;
      }
    }
  }
}

uint64_t HandleTable::Add(std::shared_ptr<Handle> h) {
  MutexLock l(&mu_);
  if (!free_.empty()) {
    uint64_t fh = free_.back();
    free_.pop_back();
    slots_[fh] = std::move(h);
    return fh;
  }
  slots_.push_back(std::move(h));
  return slots_.size() - 1;
}

std::shared_ptr<Handle> HandleTable::Get(uint64_t fh) const {
  MutexLock l(&mu_);
  if (fh == 0 || fh >= slots_.size()) return nullptr;
  return slots_[fh];
}

std::shared_ptr<Handle> HandleTable::Remove(uint64_t fh) {
  MutexLock l(&mu_);
  if (fh == 0 || fh >= slots_.size() || slots_[fh] == nullptr) return nullptr;
  std::shared_ptr<Handle> h = std::move(slots_[fh]);
  slots_[fh] = nullptr;
  free_.push_back(fh);
  return h;
}

std::vector<std::shared_ptr<Handle>> HandleTable::TakeAll() {
  MutexLock l(&mu_);
  std::vector<std::shared_ptr<Handle>> all;
  for (uint64_t fh = 1; fh < slots_.size(); ++fh) {
    if (slots_[fh] != nullptr) {
      all.push_back(std::move(slots_[fh]));
      slots_[fh] = nullptr;
      free_.push_back(fh);
    }
  }
  return all;
}

absl::StatusOr<int32_t> BackingIds::Acquire(
    uint64_t ino, const std::function<absl::StatusOr<int32_t>()>& open_id) {
  MutexLock l(&mu_);
  auto it = by_ino_.find(ino);
  if (it != by_ino_.end()) {
    it->second.uses++;
    return it->second.id;
  }
  absl::StatusOr<int32_t> id = open_id();
  if (id.ok()) by_ino_[ino] = Entry{*id, 1};
  return id;
}

bool BackingIds::Release(uint64_t ino, int32_t* last) {
  MutexLock l(&mu_);
  auto it = by_ino_.find(ino);
  if (it == by_ino_.end()) return false;
  if (--it->second.uses > 0) return false;
  *last = it->second.id;
  by_ino_.erase(it);
  return true;
}

std::vector<int32_t> BackingIds::TakeAll() {
  MutexLock l(&mu_);
  std::vector<int32_t> ids;
  for (const auto& [ino, e] : by_ino_) ids.push_back(e.id);
  by_ino_.clear();
  return ids;
}

std::shared_ptr<LockOwners::OwnerFd> LockOwners::Get(uint64_t ino, uint64_t owner, bool create,
                                                     const std::function<int()>& open_fd,
                                                     int* err) {
  *err = 0;
  MutexLock l(&mu_);
  auto it = fds_.find({ino, owner});
  if (it != fds_.end()) return it->second;
  if (!create) return nullptr;
  int fd = open_fd();
  if (fd < 0) {
    *err = -fd;
    return nullptr;
  }
  auto o = std::make_shared<OwnerFd>(fd);
  fds_[{ino, owner}] = o;
  return o;
}

void LockOwners::Drop(uint64_t ino, uint64_t owner) {
  std::shared_ptr<OwnerFd> gone;
  MutexLock l(&mu_);
  auto it = fds_.find({ino, owner});
  if (it == fds_.end()) return;
  gone = std::move(it->second);
  fds_.erase(it);
}

void LockOwners::Clear() {
  MutexLock l(&mu_);
  fds_.clear();
}

}  // namespace kmfuse::passthrough_internal
