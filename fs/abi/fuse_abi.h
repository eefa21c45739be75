// The FUSE wire ABI as kmfuse speaks it: protocol 7.45 (Linux 6.18), the
// FUSE-over-io_uring structures and commands (6.14+), the 7.46 buffer-pool
// additions (merged for 7.3) and the kmbuf-ring FUSE flag of the proposed
// (never merged) kernel-managed buffer ring series.
//
// Own definitions on purpose: Debian's linux-libc-dev is 6.1 and lacks all of
// the io_uring parts. Every size and offset the kernel fixes is pinned with a
// static_assert so a typo is a build error, not a corrupt reply. Decode with
// memcpy from these layouts; never cast kernel bytes to pointers.
//
// Names follow include/uapi/linux/fuse.h so the kernel source can be read
// side by side; they live in kmfuse::abi to stay clear of any system header.
#ifndef KMFUSE_FS_ABI_FUSE_ABI_H_
#define KMFUSE_FS_ABI_FUSE_ABI_H_

#include <sys/ioctl.h>

#include <cstddef>
#include <cstdint>

namespace kmfuse::abi {

inline constexpr uint32_t FUSE_KERNEL_VERSION = 7;
inline constexpr uint32_t FUSE_KERNEL_MINOR_VERSION = 45;
inline constexpr uint64_t FUSE_ROOT_ID = 1;
inline constexpr size_t FUSE_MIN_READ_BUFFER = 8192;
// Oldest minor we accept: FUSE-over-io_uring and everything below needs new
// kernels anyway; 7.31 (Linux 5.10) has every struct size used here.
inline constexpr uint32_t FUSE_MIN_SUPPORTED_MINOR = 31;

// ---- opcodes ----
enum fuse_opcode : uint32_t {
  FUSE_LOOKUP = 1,
  FUSE_FORGET = 2,
  FUSE_GETATTR = 3,
  FUSE_SETATTR = 4,
  FUSE_READLINK = 5,
  FUSE_SYMLINK = 6,
  FUSE_MKNOD = 8,
  FUSE_MKDIR = 9,
  FUSE_UNLINK = 10,
  FUSE_RMDIR = 11,
  FUSE_RENAME = 12,
  FUSE_LINK = 13,
  FUSE_OPEN = 14,
  FUSE_READ = 15,
  FUSE_WRITE = 16,
  FUSE_STATFS = 17,
  FUSE_RELEASE = 18,
  FUSE_FSYNC = 20,
  FUSE_SETXATTR = 21,
  FUSE_GETXATTR = 22,
  FUSE_LISTXATTR = 23,
  FUSE_REMOVEXATTR = 24,
  FUSE_FLUSH = 25,
  FUSE_INIT = 26,
  FUSE_OPENDIR = 27,
  FUSE_READDIR = 28,
  FUSE_RELEASEDIR = 29,
  FUSE_FSYNCDIR = 30,
  FUSE_GETLK = 31,
  FUSE_SETLK = 32,
  FUSE_SETLKW = 33,
  FUSE_ACCESS = 34,
  FUSE_CREATE = 35,
  FUSE_INTERRUPT = 36,
  FUSE_BMAP = 37,
  FUSE_DESTROY = 38,
  FUSE_IOCTL = 39,
  FUSE_POLL = 40,
  FUSE_NOTIFY_REPLY = 41,
  FUSE_BATCH_FORGET = 42,
  FUSE_FALLOCATE = 43,
  FUSE_READDIRPLUS = 44,
  FUSE_RENAME2 = 45,
  FUSE_LSEEK = 46,
  FUSE_COPY_FILE_RANGE = 47,
  FUSE_SETUPMAPPING = 48,
  FUSE_REMOVEMAPPING = 49,
  FUSE_SYNCFS = 50,
  FUSE_TMPFILE = 51,
  FUSE_STATX = 52,
  FUSE_COPY_FILE_RANGE_64 = 53,
  FUSE_OPCODE_LIMIT = 54,  // one past the highest opcode kmfuse knows
};

enum fuse_notify_code : int32_t {
  FUSE_NOTIFY_POLL = 1,
  FUSE_NOTIFY_INVAL_INODE = 2,
  FUSE_NOTIFY_INVAL_ENTRY = 3,
  FUSE_NOTIFY_STORE = 4,
  FUSE_NOTIFY_RETRIEVE = 5,
  FUSE_NOTIFY_DELETE = 6,
  FUSE_NOTIFY_RESEND = 7,
  FUSE_NOTIFY_INC_EPOCH = 8,
};

// ---- INIT flags (flags | flags2 << 32) ----
inline constexpr uint64_t FUSE_ASYNC_READ = 1ULL << 0;
inline constexpr uint64_t FUSE_POSIX_LOCKS = 1ULL << 1;
inline constexpr uint64_t FUSE_FILE_OPS = 1ULL << 2;
inline constexpr uint64_t FUSE_ATOMIC_O_TRUNC = 1ULL << 3;
inline constexpr uint64_t FUSE_EXPORT_SUPPORT = 1ULL << 4;
inline constexpr uint64_t FUSE_BIG_WRITES = 1ULL << 5;
inline constexpr uint64_t FUSE_DONT_MASK = 1ULL << 6;
inline constexpr uint64_t FUSE_SPLICE_WRITE = 1ULL << 7;
inline constexpr uint64_t FUSE_SPLICE_MOVE = 1ULL << 8;
inline constexpr uint64_t FUSE_SPLICE_READ = 1ULL << 9;
inline constexpr uint64_t FUSE_FLOCK_LOCKS = 1ULL << 10;
inline constexpr uint64_t FUSE_HAS_IOCTL_DIR = 1ULL << 11;
inline constexpr uint64_t FUSE_AUTO_INVAL_DATA = 1ULL << 12;
inline constexpr uint64_t FUSE_DO_READDIRPLUS = 1ULL << 13;
inline constexpr uint64_t FUSE_READDIRPLUS_AUTO = 1ULL << 14;
inline constexpr uint64_t FUSE_ASYNC_DIO = 1ULL << 15;
inline constexpr uint64_t FUSE_WRITEBACK_CACHE = 1ULL << 16;
inline constexpr uint64_t FUSE_NO_OPEN_SUPPORT = 1ULL << 17;
inline constexpr uint64_t FUSE_PARALLEL_DIROPS = 1ULL << 18;
inline constexpr uint64_t FUSE_HANDLE_KILLPRIV = 1ULL << 19;
inline constexpr uint64_t FUSE_POSIX_ACL = 1ULL << 20;
inline constexpr uint64_t FUSE_ABORT_ERROR = 1ULL << 21;
inline constexpr uint64_t FUSE_MAX_PAGES = 1ULL << 22;
inline constexpr uint64_t FUSE_CACHE_SYMLINKS = 1ULL << 23;
inline constexpr uint64_t FUSE_NO_OPENDIR_SUPPORT = 1ULL << 24;
inline constexpr uint64_t FUSE_EXPLICIT_INVAL_DATA = 1ULL << 25;
inline constexpr uint64_t FUSE_MAP_ALIGNMENT = 1ULL << 26;
inline constexpr uint64_t FUSE_SUBMOUNTS = 1ULL << 27;
inline constexpr uint64_t FUSE_HANDLE_KILLPRIV_V2 = 1ULL << 28;
inline constexpr uint64_t FUSE_SETXATTR_EXT = 1ULL << 29;
inline constexpr uint64_t FUSE_INIT_EXT = 1ULL << 30;
inline constexpr uint64_t FUSE_INIT_RESERVED = 1ULL << 31;
inline constexpr uint64_t FUSE_SECURITY_CTX = 1ULL << 32;
inline constexpr uint64_t FUSE_HAS_INODE_DAX = 1ULL << 33;
inline constexpr uint64_t FUSE_CREATE_SUPP_GROUP = 1ULL << 34;
inline constexpr uint64_t FUSE_HAS_EXPIRE_ONLY = 1ULL << 35;
inline constexpr uint64_t FUSE_DIRECT_IO_ALLOW_MMAP = 1ULL << 36;
inline constexpr uint64_t FUSE_PASSTHROUGH = 1ULL << 37;
inline constexpr uint64_t FUSE_NO_EXPORT_SUPPORT = 1ULL << 38;
inline constexpr uint64_t FUSE_HAS_RESEND = 1ULL << 39;
inline constexpr uint64_t FUSE_ALLOW_IDMAP = 1ULL << 40;
inline constexpr uint64_t FUSE_OVER_IO_URING = 1ULL << 41;
inline constexpr uint64_t FUSE_REQUEST_TIMEOUT = 1ULL << 42;
// 7.46 (Linux 7.3): the kernel offers io-uring buffer pools.
inline constexpr uint64_t FUSE_HAS_IO_URING_BUFPOOL = 1ULL << 43;

// ---- open / attr / misc flags ----
inline constexpr uint32_t FOPEN_DIRECT_IO = 1u << 0;
inline constexpr uint32_t FOPEN_KEEP_CACHE = 1u << 1;
inline constexpr uint32_t FOPEN_NONSEEKABLE = 1u << 2;
inline constexpr uint32_t FOPEN_CACHE_DIR = 1u << 3;
inline constexpr uint32_t FOPEN_STREAM = 1u << 4;
inline constexpr uint32_t FOPEN_NOFLUSH = 1u << 5;
inline constexpr uint32_t FOPEN_PARALLEL_DIRECT_WRITES = 1u << 6;
inline constexpr uint32_t FOPEN_PASSTHROUGH = 1u << 7;
inline constexpr uint32_t FOPEN_IO_URING_ZERO_COPY = 1u << 8;  // 7.46

inline constexpr uint32_t FATTR_MODE = 1u << 0;
inline constexpr uint32_t FATTR_UID = 1u << 1;
inline constexpr uint32_t FATTR_GID = 1u << 2;
inline constexpr uint32_t FATTR_SIZE = 1u << 3;
inline constexpr uint32_t FATTR_ATIME = 1u << 4;
inline constexpr uint32_t FATTR_MTIME = 1u << 5;
inline constexpr uint32_t FATTR_FH = 1u << 6;
inline constexpr uint32_t FATTR_ATIME_NOW = 1u << 7;
inline constexpr uint32_t FATTR_MTIME_NOW = 1u << 8;
inline constexpr uint32_t FATTR_LOCKOWNER = 1u << 9;
inline constexpr uint32_t FATTR_CTIME = 1u << 10;
inline constexpr uint32_t FATTR_KILL_SUIDGID = 1u << 11;

inline constexpr uint32_t FUSE_GETATTR_FH = 1u << 0;
inline constexpr uint32_t FUSE_RELEASE_FLUSH = 1u << 0;
inline constexpr uint32_t FUSE_RELEASE_FLOCK_UNLOCK = 1u << 1;
inline constexpr uint32_t FUSE_WRITE_CACHE = 1u << 0;
inline constexpr uint32_t FUSE_WRITE_LOCKOWNER = 1u << 1;
inline constexpr uint32_t FUSE_WRITE_KILL_SUIDGID = 1u << 2;
inline constexpr uint32_t FUSE_READ_LOCKOWNER = 1u << 1;
inline constexpr uint32_t FUSE_LK_FLOCK = 1u << 0;
inline constexpr uint32_t FUSE_FSYNC_FDATASYNC = 1u << 0;
inline constexpr uint32_t FUSE_OPEN_KILL_SUIDGID = 1u << 0;
inline constexpr uint32_t FUSE_SETXATTR_ACL_KILL_SGID = 1u << 0;
inline constexpr uint32_t FUSE_EXPIRE_ONLY = 1u << 0;
inline constexpr uint32_t FUSE_ATTR_SUBMOUNT = 1u << 0;
inline constexpr uint32_t FUSE_ATTR_DAX = 1u << 1;

// ---- headers ----
struct fuse_in_header {
  uint32_t len;
  uint32_t opcode;
  uint64_t unique;
  uint64_t nodeid;
  uint32_t uid;
  uint32_t gid;
  uint32_t pid;
  uint16_t total_extlen;  // in units of 8 bytes
  uint16_t padding;
};
static_assert(sizeof(fuse_in_header) == 40);
static_assert(offsetof(fuse_in_header, unique) == 8);
static_assert(offsetof(fuse_in_header, nodeid) == 16);
static_assert(offsetof(fuse_in_header, total_extlen) == 36);

struct fuse_out_header {
  uint32_t len;
  int32_t error;
  uint64_t unique;
};
static_assert(sizeof(fuse_out_header) == 16);

// ---- attributes ----
struct fuse_attr {
  uint64_t ino;
  uint64_t size;
  uint64_t blocks;
  uint64_t atime;
  uint64_t mtime;
  uint64_t ctime;
  uint32_t atimensec;
  uint32_t mtimensec;
  uint32_t ctimensec;
  uint32_t mode;
  uint32_t nlink;
  uint32_t uid;
  uint32_t gid;
  uint32_t rdev;
  uint32_t blksize;
  uint32_t flags;
};
static_assert(sizeof(fuse_attr) == 88);
static_assert(offsetof(fuse_attr, atimensec) == 48);
static_assert(offsetof(fuse_attr, mode) == 60);
static_assert(offsetof(fuse_attr, blksize) == 80);

struct fuse_sx_time {
  int64_t tv_sec;
  uint32_t tv_nsec;
  int32_t reserved;
};
static_assert(sizeof(fuse_sx_time) == 16);

struct fuse_statx {
  uint32_t mask;
  uint32_t blksize;
  uint64_t attributes;
  uint32_t nlink;
  uint32_t uid;
  uint32_t gid;
  uint16_t mode;
  uint16_t spare0[1];
  uint64_t ino;
  uint64_t size;
  uint64_t blocks;
  uint64_t attributes_mask;
  fuse_sx_time atime;
  fuse_sx_time btime;
  fuse_sx_time ctime;
  fuse_sx_time mtime;
  uint32_t rdev_major;
  uint32_t rdev_minor;
  uint32_t dev_major;
  uint32_t dev_minor;
  uint64_t spare2[14];
};
static_assert(sizeof(fuse_statx) == 256);
static_assert(offsetof(fuse_statx, ino) == 32);
static_assert(offsetof(fuse_statx, atime) == 64);
static_assert(offsetof(fuse_statx, rdev_major) == 128);

struct fuse_kstatfs {
  uint64_t blocks;
  uint64_t bfree;
  uint64_t bavail;
  uint64_t files;
  uint64_t ffree;
  uint32_t bsize;
  uint32_t namelen;
  uint32_t frsize;
  uint32_t padding;
  uint32_t spare[6];
};
static_assert(sizeof(fuse_kstatfs) == 80);

struct fuse_file_lock {
  uint64_t start;
  uint64_t end;
  uint32_t type;
  uint32_t pid;
};
static_assert(sizeof(fuse_file_lock) == 24);

// ---- per-op arguments and replies ----
struct fuse_entry_out {
  uint64_t nodeid;
  uint64_t generation;
  uint64_t entry_valid;
  uint64_t attr_valid;
  uint32_t entry_valid_nsec;
  uint32_t attr_valid_nsec;
  fuse_attr attr;
};
static_assert(sizeof(fuse_entry_out) == 128);
static_assert(offsetof(fuse_entry_out, attr) == 40);

struct fuse_forget_in { uint64_t nlookup; };
static_assert(sizeof(fuse_forget_in) == 8);
struct fuse_forget_one { uint64_t nodeid; uint64_t nlookup; };
static_assert(sizeof(fuse_forget_one) == 16);
struct fuse_batch_forget_in { uint32_t count; uint32_t dummy; };
static_assert(sizeof(fuse_batch_forget_in) == 8);

struct fuse_getattr_in { uint32_t getattr_flags; uint32_t dummy; uint64_t fh; };
static_assert(sizeof(fuse_getattr_in) == 16);

struct fuse_attr_out {
  uint64_t attr_valid;
  uint32_t attr_valid_nsec;
  uint32_t dummy;
  fuse_attr attr;
};
static_assert(sizeof(fuse_attr_out) == 104);

struct fuse_statx_in {
  uint32_t getattr_flags;
  uint32_t reserved;
  uint64_t fh;
  uint32_t sx_flags;
  uint32_t sx_mask;
};
static_assert(sizeof(fuse_statx_in) == 24);

struct fuse_statx_out {
  uint64_t attr_valid;
  uint32_t attr_valid_nsec;
  uint32_t flags;
  uint64_t spare[2];
  fuse_statx stat;
};
static_assert(sizeof(fuse_statx_out) == 288);

struct fuse_mknod_in { uint32_t mode; uint32_t rdev; uint32_t umask; uint32_t padding; };
static_assert(sizeof(fuse_mknod_in) == 16);
struct fuse_mkdir_in { uint32_t mode; uint32_t umask; };
static_assert(sizeof(fuse_mkdir_in) == 8);
struct fuse_rename_in { uint64_t newdir; };
static_assert(sizeof(fuse_rename_in) == 8);
struct fuse_rename2_in { uint64_t newdir; uint32_t flags; uint32_t padding; };
static_assert(sizeof(fuse_rename2_in) == 16);
struct fuse_link_in { uint64_t oldnodeid; };
static_assert(sizeof(fuse_link_in) == 8);

struct fuse_setattr_in {
  uint32_t valid;
  uint32_t padding;
  uint64_t fh;
  uint64_t size;
  uint64_t lock_owner;
  uint64_t atime;
  uint64_t mtime;
  uint64_t ctime;
  uint32_t atimensec;
  uint32_t mtimensec;
  uint32_t ctimensec;
  uint32_t mode;
  uint32_t unused4;
  uint32_t uid;
  uint32_t gid;
  uint32_t unused5;
};
static_assert(sizeof(fuse_setattr_in) == 88);
static_assert(offsetof(fuse_setattr_in, atimensec) == 56);
static_assert(offsetof(fuse_setattr_in, uid) == 76);

struct fuse_open_in { uint32_t flags; uint32_t open_flags; };
static_assert(sizeof(fuse_open_in) == 8);
struct fuse_create_in { uint32_t flags; uint32_t mode; uint32_t umask; uint32_t open_flags; };
static_assert(sizeof(fuse_create_in) == 16);
struct fuse_open_out { uint64_t fh; uint32_t open_flags; int32_t backing_id; };
static_assert(sizeof(fuse_open_out) == 16);
struct fuse_release_in { uint64_t fh; uint32_t flags; uint32_t release_flags; uint64_t lock_owner; };
static_assert(sizeof(fuse_release_in) == 24);
struct fuse_flush_in { uint64_t fh; uint32_t unused; uint32_t padding; uint64_t lock_owner; };
static_assert(sizeof(fuse_flush_in) == 24);

struct fuse_read_in {
  uint64_t fh;
  uint64_t offset;
  uint32_t size;
  uint32_t read_flags;
  uint64_t lock_owner;
  uint32_t flags;
  uint32_t padding;
};
static_assert(sizeof(fuse_read_in) == 40);

struct fuse_write_in {
  uint64_t fh;
  uint64_t offset;
  uint32_t size;
  uint32_t write_flags;
  uint64_t lock_owner;
  uint32_t flags;
  uint32_t padding;
};
static_assert(sizeof(fuse_write_in) == 40);
struct fuse_write_out { uint32_t size; uint32_t padding; };
static_assert(sizeof(fuse_write_out) == 8);

struct fuse_statfs_out { fuse_kstatfs st; };
static_assert(sizeof(fuse_statfs_out) == 80);

struct fuse_fsync_in { uint64_t fh; uint32_t fsync_flags; uint32_t padding; };
static_assert(sizeof(fuse_fsync_in) == 16);

inline constexpr size_t FUSE_COMPAT_SETXATTR_IN_SIZE = 8;
struct fuse_setxattr_in { uint32_t size; uint32_t flags; uint32_t setxattr_flags; uint32_t padding; };
static_assert(sizeof(fuse_setxattr_in) == 16);
struct fuse_getxattr_in { uint32_t size; uint32_t padding; };
static_assert(sizeof(fuse_getxattr_in) == 8);
struct fuse_getxattr_out { uint32_t size; uint32_t padding; };
static_assert(sizeof(fuse_getxattr_out) == 8);

struct fuse_lk_in {
  uint64_t fh;
  uint64_t owner;
  fuse_file_lock lk;
  uint32_t lk_flags;
  uint32_t padding;
};
static_assert(sizeof(fuse_lk_in) == 48);
struct fuse_lk_out { fuse_file_lock lk; };
static_assert(sizeof(fuse_lk_out) == 24);

struct fuse_access_in { uint32_t mask; uint32_t padding; };
static_assert(sizeof(fuse_access_in) == 8);

struct fuse_init_in {
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint32_t flags2;
  uint32_t unused[11];
};
static_assert(sizeof(fuse_init_in) == 64);
// The kernel sends only this much before 7.36 (no flags2).
inline constexpr size_t FUSE_COMPAT_INIT_IN_SIZE = 16;

struct fuse_init_out {
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint16_t max_background;
  uint16_t congestion_threshold;
  uint32_t max_write;
  uint32_t time_gran;
  uint16_t max_pages;
  uint16_t map_alignment;
  uint32_t flags2;
  uint32_t max_stack_depth;
  uint16_t request_timeout;
  uint16_t unused[11];
};
static_assert(sizeof(fuse_init_out) == 64);
static_assert(offsetof(fuse_init_out, max_write) == 20);
static_assert(offsetof(fuse_init_out, max_pages) == 28);
static_assert(offsetof(fuse_init_out, flags2) == 32);
static_assert(offsetof(fuse_init_out, max_stack_depth) == 36);

struct fuse_interrupt_in { uint64_t unique; };
static_assert(sizeof(fuse_interrupt_in) == 8);
struct fuse_bmap_in { uint64_t block; uint32_t blocksize; uint32_t padding; };
static_assert(sizeof(fuse_bmap_in) == 16);
struct fuse_bmap_out { uint64_t block; };
static_assert(sizeof(fuse_bmap_out) == 8);

struct fuse_ioctl_in {
  uint64_t fh;
  uint32_t flags;
  uint32_t cmd;
  uint64_t arg;
  uint32_t in_size;
  uint32_t out_size;
};
static_assert(sizeof(fuse_ioctl_in) == 32);

struct fuse_poll_in { uint64_t fh; uint64_t kh; uint32_t flags; uint32_t events; };
static_assert(sizeof(fuse_poll_in) == 24);
struct fuse_poll_out { uint32_t revents; uint32_t padding; };
static_assert(sizeof(fuse_poll_out) == 8);

struct fuse_fallocate_in { uint64_t fh; uint64_t offset; uint64_t length; uint32_t mode; uint32_t padding; };
static_assert(sizeof(fuse_fallocate_in) == 32);

struct fuse_lseek_in { uint64_t fh; uint64_t offset; uint32_t whence; uint32_t padding; };
static_assert(sizeof(fuse_lseek_in) == 24);
struct fuse_lseek_out { uint64_t offset; };
static_assert(sizeof(fuse_lseek_out) == 8);

struct fuse_copy_file_range_in {
  uint64_t fh_in;
  uint64_t off_in;
  uint64_t nodeid_out;
  uint64_t fh_out;
  uint64_t off_out;
  uint64_t len;
  uint64_t flags;
};
static_assert(sizeof(fuse_copy_file_range_in) == 56);
struct fuse_copy_file_range_out { uint64_t bytes_copied; };

struct fuse_syncfs_in { uint64_t padding; };
static_assert(sizeof(fuse_syncfs_in) == 8);

// ---- directory entries ----
struct fuse_dirent {
  uint64_t ino;
  uint64_t off;
  uint32_t namelen;
  uint32_t type;
  // char name[] follows
};
static_assert(sizeof(fuse_dirent) == 24);
struct fuse_direntplus {
  fuse_entry_out entry_out;
  fuse_dirent dirent;
};
static_assert(sizeof(fuse_direntplus) == 152);
constexpr size_t FuseDirentAlign(size_t x) { return (x + 7) & ~size_t{7}; }

// ---- notifications (written with unique = 0, error = code) ----
struct fuse_notify_inval_inode_out { uint64_t ino; int64_t off; int64_t len; };
static_assert(sizeof(fuse_notify_inval_inode_out) == 24);
struct fuse_notify_inval_entry_out { uint64_t parent; uint32_t namelen; uint32_t flags; };
static_assert(sizeof(fuse_notify_inval_entry_out) == 16);
struct fuse_notify_delete_out { uint64_t parent; uint64_t child; uint32_t namelen; uint32_t padding; };
static_assert(sizeof(fuse_notify_delete_out) == 24);
struct fuse_notify_store_out { uint64_t nodeid; uint64_t offset; uint32_t size; uint32_t padding; };
static_assert(sizeof(fuse_notify_store_out) == 24);
struct fuse_notify_retrieve_out {
  uint64_t notify_unique;
  uint64_t nodeid;
  uint64_t offset;
  uint32_t size;
  uint32_t padding;
};
static_assert(sizeof(fuse_notify_retrieve_out) == 32);
// Arrives as the argument of a FUSE_NOTIFY_REPLY request.
struct fuse_notify_retrieve_in {
  uint64_t dummy1;
  uint64_t offset;
  uint32_t size;
  uint32_t dummy2;
  uint64_t dummy3;
  uint64_t dummy4;
};
static_assert(sizeof(fuse_notify_retrieve_in) == 40);

// ---- /dev/fuse ioctls ----
struct fuse_backing_map { int32_t fd; uint32_t flags; uint64_t padding; };
static_assert(sizeof(fuse_backing_map) == 16);
inline constexpr unsigned FUSE_DEV_IOC_MAGIC = 229;
inline constexpr unsigned long FUSE_DEV_IOC_CLONE = _IOR(FUSE_DEV_IOC_MAGIC, 0, uint32_t);
inline constexpr unsigned long FUSE_DEV_IOC_BACKING_OPEN = _IOW(FUSE_DEV_IOC_MAGIC, 1, fuse_backing_map);
inline constexpr unsigned long FUSE_DEV_IOC_BACKING_CLOSE = _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t);

// ---- FUSE-over-io_uring (6.14+, protocol 7.42+) ----
inline constexpr size_t FUSE_URING_IN_OUT_HEADER_SZ = 128;
inline constexpr size_t FUSE_URING_OP_IN_OUT_SZ = 128;

struct fuse_uring_ent_in_out {
  uint64_t flags;
  // Request unique; echoed in the COMMIT_AND_FETCH command.
  uint64_t commit_id;
  // Bytes of payload: request args beyond op_in going in, reply args coming
  // back (the kernel uses this, not fuse_out_header.len).
  uint32_t payload_sz;
  // 7.46 buffer pools: payload offset from the pool base (was padding).
  uint32_t offset;
  uint64_t reserved;
};
static_assert(sizeof(fuse_uring_ent_in_out) == 32);
static_assert(offsetof(fuse_uring_ent_in_out, payload_sz) == 16);
static_assert(offsetof(fuse_uring_ent_in_out, offset) == 20);

struct fuse_uring_req_header {
  char in_out[FUSE_URING_IN_OUT_HEADER_SZ];  // fuse_in_header / fuse_out_header
  char op_in[FUSE_URING_OP_IN_OUT_SZ];       // first in-arg (per-op header)
  fuse_uring_ent_in_out ring_ent_in_out;
};
static_assert(sizeof(fuse_uring_req_header) == 288);
static_assert(offsetof(fuse_uring_req_header, op_in) == 128);
static_assert(offsetof(fuse_uring_req_header, ring_ent_in_out) == 256);

enum fuse_uring_cmd : uint32_t {
  FUSE_IO_URING_CMD_INVALID = 0,
  FUSE_IO_URING_CMD_REGISTER = 1,
  FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2,
  FUSE_IO_URING_CMD_ADD_QUEUE = 3,    // 7.46 buffer pools
  FUSE_IO_URING_CMD_ADD_BUFPOOL = 4,  // 7.46 buffer pools
};

// The command area of the SQE128 as 6.14-6.18 read it.
struct fuse_uring_cmd_req {
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};
static_assert(sizeof(fuse_uring_cmd_req) == 24);
static_assert(offsetof(fuse_uring_cmd_req, qid) == 16);

// The 7.46 command area: the same 24 bytes, then a union at offset 24.
struct fuse_uring_cmd_req_v46 {
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
  union {
    struct {
      uint64_t uaddr;
      uint32_t len;
      uint32_t reserved;
    } bufpool;
    uint16_t ent_zero_copy_buf_index;
  };
};
static_assert(sizeof(fuse_uring_cmd_req_v46) == 40);
static_assert(offsetof(fuse_uring_cmd_req_v46, bufpool) == 24);

// Command flags.
// kmbuf proposal (never merged; only tests/kernel_model accepts it): REGISTER.
inline constexpr uint64_t FUSE_URING_BUF_RING = 1ULL << 0;
inline constexpr uint64_t FUSE_URING_ZERO_COPY = 1ULL << 0;  // 7.46: ADD_QUEUE
// ring_ent_in_out.flags
inline constexpr uint64_t FUSE_URING_ENT_ZERO_COPY = 1ULL << 0;  // 7.46

// Payload the kernel requires per entry: >= max(8192, max_write, max_pages * page).
constexpr size_t UringMinPayload(size_t max_write, size_t max_pages, size_t page) {
  size_t m = FUSE_MIN_READ_BUFFER;
  if (max_write > m) m = max_write;
  if (max_pages * page > m) m = max_pages * page;
  return m;
}


}  // namespace kmfuse::abi

#endif  // KMFUSE_FS_ABI_FUSE_ABI_H_
