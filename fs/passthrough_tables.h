// Inode and handle tables of PassthroughFs (private to the passthrough library).
//
// InodeTable owns one O_PATH|O_NOFOLLOW fd per known inode, keyed by
// (st_dev, st_ino) and by a generated node id. An InodeRef pins an inode:
// while it lives the inode's fd stays open and valid (the table neither
// evicts nor closes it), even if the kernel forgets the inode meanwhile.
// Unpinned inodes with fds sit on an LRU list; when opening one more fd
// would exceed the budget, the oldest is evicted (fd closed, file handle
// kept) and reopened by handle on the next Acquire. When every held fd is
// pinned, the table goes over the budget rather than fail the request: the
// budget is half of RLIMIT_NOFILE, and a caller must never get the daemon's
// own EMFILE.
//
// Closing is never done under the table lock, and the fds of forgotten
// inodes are closed on FdCloser threads, never on the thread that handles
// FORGET: closing the last reference to an unlinked host inode frees it
// inside close(), which can wait for the device (see FdCloser).
//
// HandleTable maps fh numbers (indices, never pointers) to open files.
// Handles are shared_ptr so a Release racing with a Read on the same fh
// leaves the reader a valid fd until it is done.
//
// Both are thread-safe; all methods take the table's own mutex. Syscalls
// made under the inode mutex are the ones that change which fds are open
// (close, open_by_handle_at, name_to_handle_at), so the budget is exact.
#ifndef KMFUSE_FS_PASSTHROUGH_TABLES_H_
#define KMFUSE_FS_PASSTHROUGH_TABLES_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kmfuse/sync.h"
#include "uring/base/unique_fd.h"

namespace kmfuse::passthrough_internal {

class InodeTable;

// Closes fds on background threads. close() of the last fd on a host inode
// that was unlinked meanwhile frees the inode right there; on ext4 mounted
// with -o discard that waits for the device's discard. Measured on this
// project's host (ext4, discard), 2,500 removed directories: one thread
// closes ~400/s, 4 threads ~5,000/s, 16 threads ~13,000/s (the waits
// overlap). FORGET and BATCH_FORGET are handled on one thread (the uring
// transports' /dev/fuse side reader, or a /dev/fuse worker), so closing
// there queued every later FORGET behind the device: inode fds piled up to
// the budget under a mkdir/rmdir storm and the source's free-inode count
// caught up seconds after the last rmdir. Thread-safe.
class FdCloser {
 public:
  // `open_count` (and `closing`) are decremented after each close. Starts
  // no thread: the `threads` closers start with the first Close(), so a
  // filesystem can be created before a daemon forks into the background or
  // drops capabilities (threads do not survive fork(), a mutex one of them
  // held would stay locked in the child, and capabilities are per thread).
  FdCloser(std::atomic<size_t>* open_count, std::atomic<size_t>* closing, unsigned threads);
  // Closes everything queued, then joins the threads.
  ~FdCloser();
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

  // Queues fd (owned from here on) for closing; the caller has already
  // counted it in *closing.
  void Close(int fd);
  // Waits until every fd queued before the call has been closed, or until
  // the timeout. True when they were.
  bool Drain(absl::Duration timeout);
  // Waits until at most `n` fds are queued or being closed, or until the
  // timeout. True when they are.
  bool WaitBelow(size_t n, absl::Duration timeout);
  // Fds queued or being closed.
  size_t pending() const;

 private:
  void Run();

  std::atomic<size_t>* const open_count_;
  std::atomic<size_t>* const closing_;
  mutable Mutex mu_;
  std::vector<int> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t queued_ ABSL_GUARDED_BY(mu_) = 0;  // fds ever queued
  uint64_t closed_ ABSL_GUARDED_BY(mu_) = 0;  // fds ever closed
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  const unsigned nthreads_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

struct Inode {
  Inode(uint64_t id, dev_t dev, ino_t ino, mode_t mode, InodeTable* table)
      : id(id), dev(dev), ino(ino), mode(mode), table(table) {}
  // Hands a still-open fd to the table's FdCloser.
  ~Inode();
  Inode(const Inode&) = delete;
  Inode& operator=(const Inode&) = delete;

  const uint64_t id;
  const dev_t dev;
  const ino_t ino;
  const mode_t mode;  // file type bits are stable; permission bits are a hint
  InodeTable* const table;

  // Guarded by InodeTable::mu_.
  int fd = -1;
  uint64_t nlookup = 0;
  uint32_t pins = 0;
  bool forgotten = false;
  bool evictable = true;
  std::string handle;  // struct file_handle bytes, once saved
  bool in_lru = false;
  std::list<Inode*>::iterator lru_it;
};

// A pin on an inode; move-only. fd() is an O_PATH fd valid while it lives.
class InodeRef {
 public:
  InodeRef() = default;
  InodeRef(InodeRef&& o) noexcept { *this = std::move(o); }
  InodeRef& operator=(InodeRef&& o) noexcept;
  ~InodeRef() { Reset(); }
  void Reset();

  explicit operator bool() const { return inode_ != nullptr; }
  int fd() const { return fd_; }
  uint64_t id() const { return inode_->id; }
  mode_t mode() const { return inode_->mode; }
  bool is_dir() const { return S_ISDIR(inode_->mode); }

 private:
  friend class InodeTable;
  InodeTable* table_ = nullptr;
  std::shared_ptr<Inode> inode_;
  int fd_ = -1;
};

class InodeTable {
 public:
  // root_fd: O_PATH fd of the source (owned). mount_fd: a readable fd on the
  // source's filesystem for open_by_handle_at (not owned). handles_ok: the
  // source supports name_to_handle_at/open_by_handle_at.
  InodeTable(int root_fd, const struct stat& root_st, size_t budget, int mount_fd,
             bool handles_ok, int root_mount_id);
  ~InodeTable();

  // Pins inode `id`, reopening its fd when it was evicted. Returns 0 or an
  // errno (ENOENT unknown id, ESTALE deleted meanwhile, ENFILE when the
  // daemon itself is out of fds).
  int Acquire(uint64_t id, InodeRef* out);
  // Adds one lookup to the inode `fd` (an O_PATH fd, consumed) refers to,
  // creating it when new. Returns 0 and sets *id.
  int Register(int fd, const struct stat& st, uint64_t* id);
  // Never blocks on close(): the fd goes to the FdCloser.
  void Forget(uint64_t id, uint64_t nlookup);
  // Drops every inode but the root (Destroy).
  void Clear();
  // Waits (up to `timeout`) until the fds of inodes forgotten or evicted
  // before the call are closed, so the source's statfs counts what a native
  // unlink or rmdir would already have freed. True when they are.
  bool SettleCloses(absl::Duration timeout);
  // Called before an unlink, rmdir or rename, which can leave an inode for
  // the closer: waits (bounded) while the closer is more than
  // kMaxPendingCloses behind. Natively the caller of unlink or rmdir pays
  // for freeing the inode; here it returns at once and the close comes
  // later, so without this a storm of mkdir and rmdir outruns the closer
  // and the pending fds pile up (measured: 1,600 inode fds held at the
  // peak of 5,000 mkdir+rmdir pairs with 2 directories alive at a time).
  void ThrottleCloses();
  static constexpr size_t kMaxPendingCloses = 128;

  // Inode fds open, including those being closed.
  size_t open_fds() const { return open_count_.load(); }
  // Inode fds handed over for closing and not closed yet.
  size_t closing_fds() const { return closing_.load(); }
  // Times a new inode fd went over the budget because every held fd was
  // pinned by a request or an open file.
  uint64_t over_budget() const { return over_budget_.load(); }
  size_t size() const;
  size_t budget() const { return budget_; }

 private:
  friend class InodeRef;
  friend struct Inode;
  struct Key {
    dev_t dev;
    ino_t ino;
    bool operator==(const Key& o) const { return dev == o.dev && ino == o.ino; }
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.dev, k.ino);
    }
  };

  void Unpin(Inode* inode);
  // Acquire under the table lock; fds it evicts go to *to_close.
  int Pin(uint64_t id, InodeRef* out, std::vector<int>* to_close);
  // Makes room for one more fd, evicting LRU inodes; their fds are added to
  // *to_close (and counted in closing_) for the caller to close after
  // unlocking. When nothing is evictable the new fd goes over the budget.
  void ReserveSlotLocked(std::vector<int>* to_close) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closes fds collected by ReserveSlotLocked (table lock not held).
  void CloseNow(const std::vector<int>& fds);
  // Hands an inode's fd to the closer (from ~Inode).
  void CloseLater(int fd);
  bool SaveHandleLocked(Inode* inode) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HandleOf(int fd, std::string* handle, int* mount_id) const;
  void LruRemoveLocked(Inode* inode) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LruAddLocked(Inode* inode) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t budget_;
  const int mount_fd_;
  const bool handles_ok_;
  const int root_mount_id_;
  std::atomic<size_t> open_count_{0};
  std::atomic<size_t> closing_{0};
  std::atomic<uint64_t> over_budget_{0};
  // Declared before the maps so it is destroyed after them: the last
  // inodes' destructors queue their fds here.
  std::unique_ptr<FdCloser> closer_;

  mutable Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 2;  // 1 is FUSE_ROOT_ID
  absl::flat_hash_map<uint64_t, std::shared_ptr<Inode>> by_id_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Key, uint64_t> by_key_ ABSL_GUARDED_BY(mu_);
  std::list<Inode*> lru_ ABSL_GUARDED_BY(mu_);
};

// An open file or directory.
struct Handle {
  // Takes ownership of fd; it is closed when the last holder lets go.
  Handle(int fd, InodeRef inode, int flags, bool is_dir)
      : owned_fd(fd), fd(owned_fd.get()), inode(std::move(inode)), flags(flags), is_dir(is_dir) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  const UniqueFd owned_fd;
  const int fd;  // owned_fd.get(), spelled once for the many readers
  InodeRef inode;
  const int flags;  // host open flags
  const bool is_dir;
  std::atomic<int32_t> backing_id{-1};
  // Lock owners that set POSIX/OFD locks through this handle: RELEASE drops
  // them (an OFD lock's owner is the open file, which FLUSH does not name).
  std::vector<uint64_t> lock_owners ABSL_GUARDED_BY(mu);
  // Serialises lseek+getdents64 on directories and read-modify-write of
  // unaligned O_DIRECT writes.
  Mutex mu;
};

class HandleTable {
 public:
  uint64_t Add(std::shared_ptr<Handle> h);
  std::shared_ptr<Handle> Get(uint64_t fh) const;
  std::shared_ptr<Handle> Remove(uint64_t fh);
  // Removes every handle (Destroy).
  std::vector<std::shared_ptr<Handle>> TakeAll();

 private:
  mutable Mutex mu_;
  std::vector<std::shared_ptr<Handle>> slots_ ABSL_GUARDED_BY(mu_) =
      std::vector<std::shared_ptr<Handle>>(1);  // fh 0 is never used
  std::vector<uint64_t> free_ ABSL_GUARDED_BY(mu_);
};

// Kernel backing ids (FUSE passthrough), one per inode. The kernel requires
// every passthrough open of an inode to name the same backing file: a second
// open answered with a different backing id fails in the caller with EIO. So
// the first open registers the id, later opens of the inode share it, each
// handle holds one use, and the release of the last use closes it. Opening a
// new id happens under the table's mutex, so two racing opens of one inode
// cannot register two ids. Thread-safe.
class BackingIds {
 public:
  // The inode's backing id, registered with open_id() if the inode has none;
  // one more use on success.
  absl::StatusOr<int32_t> Acquire(uint64_t ino,
                                  const std::function<absl::StatusOr<int32_t>()>& open_id);
  // Drops one use of the inode's id. True (with *last set to the id) when it
  // was the last use: the caller closes the id with the kernel.
  bool Release(uint64_t ino, int32_t* last);
  // Forgets every id (Destroy) and returns them for closing.
  std::vector<int32_t> TakeAll();

 private:
  struct Entry {
    int32_t id;
    uint64_t uses;
  };
  Mutex mu_;
  absl::flat_hash_map<uint64_t, Entry> by_ino_ ABSL_GUARDED_BY(mu_);
};

// POSIX (fcntl) record locks per lock owner. POSIX locks belong to a process
// (the kernel's lock_owner), not to an open file: two fds of one process
// share them, and closing any fd of the file drops them all. Host OFD locks
// have open-file semantics, so each (inode, owner) pair gets its own open
// file description (an OwnerFd) that carries exactly that owner's locks;
// FLUSH with the owner (sent on every close) drops the pair, closing the fd
// and so releasing the locks; RELEASE drops the owners that locked through
// the handle (OFD locks taken through FUSE have the open file as owner). A blocking SETLKW holds the OwnerFd it waits
// on, so the fd stays open until it returns. Thread-safe.
class LockOwners {
 public:
  struct OwnerFd {
    explicit OwnerFd(int fd) : owned(fd), fd(owned.get()) {}
    const UniqueFd owned;  // closing it drops the owner's locks
    const int fd;
  };
  // The owner's fd on ino; if none, opened with open_fd() (an fd or -errno)
  // when create is set, else nullptr. *err is the errno of a failed open.
  std::shared_ptr<OwnerFd> Get(uint64_t ino, uint64_t owner, bool create,
                               const std::function<int()>& open_fd, int* err);
  // Forgets the owner's fd on ino (its locks go when the last user lets go).
  void Drop(uint64_t ino, uint64_t owner);
  void Clear();

 private:
  Mutex mu_;
  absl::flat_hash_map<std::pair<uint64_t, uint64_t>, std::shared_ptr<OwnerFd>> fds_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace kmfuse::passthrough_internal

#endif  // KMFUSE_FS_PASSTHROUGH_TABLES_H_
