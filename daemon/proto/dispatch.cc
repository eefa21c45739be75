#include "daemon/proto/dispatch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>

#include <array>
#include <cstring>
#include <optional>
#include <string_view>

namespace kmfuse::proto {
namespace {

using namespace kmfuse::abi;  // NOLINT: the table reads like the kernel's

// What a handler gets: the caller, the op's fixed struct (complete, checked
// by the gate) and the bytes after it.
struct Args {
  const fuse_in_header& in;
  const RequestContext& ctx;
  const char* op;
  absl::Span<const char> rest;
  Dispatcher& d;
};

template <typename T>
T Op(const Args& a) {
  T v;
  std::memcpy(&v, a.op, sizeof(T));
  return v;
}

// Splits one NUL-terminated name off the front of `rest`. False if the NUL
// is missing (a malformed request).
bool TakeName(absl::Span<const char>* rest, std::string_view* name) {
  const void* nul = std::memchr(rest->data(), '\0', rest->size());
  if (nul == nullptr) return false;
  size_t len = static_cast<const char*>(nul) - rest->data();
  *name = std::string_view(rest->data(), len);
  *rest = rest->subspan(len + 1);
  return true;
}

// Whether a name may reach the filesystem as one path component: 0 if so;
// EINVAL if it is malformed (empty or holding '/', which the kernel never
// sends); ENAMETOOLONG past NAME_MAX: the kernel does send such names (up
// to 1024 bytes on older kernels, up to PATH_MAX on newer ones) and every
// Linux filesystem refuses them so.
// Malformed wins over too long.
int CheckComponent(std::string_view name) {
  if (name.empty() || name.find('/') != std::string_view::npos) return EINVAL;
  return name.size() > NAME_MAX ? ENAMETOOLONG : 0;
}
// Same, for a name a new entry gets: "." and ".." are malformed there.
int CheckNewComponent(std::string_view name) {
  if (name == "." || name == "..") return EINVAL;
  return CheckComponent(name);
}

// The one check of a handler that takes a single name: takes it off `rest`
// and returns the errno to answer (0 to go on).
int TakeComponent(absl::Span<const char>* rest, std::string_view* name) {
  return TakeName(rest, name) ? CheckComponent(*name) : EINVAL;
}
int TakeNewComponent(absl::Span<const char>* rest, std::string_view* name) {
  return TakeName(rest, name) ? CheckNewComponent(*name) : EINVAL;
}

using Handler = void (*)(const Args&, Reply);

void DoLookup(const Args& a, Reply r) {
  auto rest = a.rest;
  std::string_view name;
  if (int e = TakeComponent(&rest, &name); e != 0) return r.Error(e);
  a.d.fs()->Lookup(a.ctx, a.in.nodeid, name, std::move(r));
}
void DoForget(const Args& a, Reply r) {
  a.d.fs()->Forget(a.in.nodeid, Op<fuse_forget_in>(a).nlookup);
  r.None();
}
void DoBatchForget(const Args& a, Reply r) {
  auto bf = Op<fuse_batch_forget_in>(a);
  size_t n = a.rest.size() / sizeof(fuse_forget_one);
  if (bf.count < n) n = bf.count;
  for (size_t i = 0; i < n; i++) {
    fuse_forget_one one;
    std::memcpy(&one, a.rest.data() + i * sizeof(one), sizeof(one));
    if (one.nodeid != 0) a.d.fs()->Forget(one.nodeid, one.nlookup);
  }
  r.None();
}
void DoGetattr(const Args& a, Reply r) {
  auto g = Op<fuse_getattr_in>(a);
  std::optional<uint64_t> fh;
  if (g.getattr_flags & FUSE_GETATTR_FH) fh = g.fh;
  a.d.fs()->Getattr(a.ctx, a.in.nodeid, fh, std::move(r));
}
void DoSetattr(const Args& a, Reply r) {
  a.d.fs()->Setattr(a.ctx, a.in.nodeid, Op<fuse_setattr_in>(a), std::move(r));
}
void DoStatx(const Args& a, Reply r) {
  a.d.fs()->Statx(a.ctx, a.in.nodeid, Op<fuse_statx_in>(a), std::move(r));
}
void DoReadlink(const Args& a, Reply r) { a.d.fs()->Readlink(a.ctx, a.in.nodeid, std::move(r)); }
void DoSymlink(const Args& a, Reply r) {
  auto rest = a.rest;
  std::string_view name, target;
  if (!TakeName(&rest, &name) || !TakeName(&rest, &target) || target.empty()) {
    return r.Error(EINVAL);
  }
  if (int e = CheckNewComponent(name); e != 0) return r.Error(e);
  a.d.fs()->Symlink(a.ctx, a.in.nodeid, name, target, std::move(r));
}
void DoMknod(const Args& a, Reply r) {
  auto rest = a.rest;
  std::string_view name;
  if (int e = TakeNewComponent(&rest, &name); e != 0) return r.Error(e);
  a.d.fs()->Mknod(a.ctx, a.in.nodeid, name, Op<fuse_mknod_in>(a), std::move(r));
}
void DoMkdir(const Args& a, Reply r) {
  auto rest = a.rest;
  std::string_view name;
  if (int e = TakeNewComponent(&rest, &name); e != 0) return r.Error(e);
  a.d.fs()->Mkdir(a.ctx, a.in.nodeid, name, Op<fuse_mkdir_in>(a), std::move(r));
}
void DoUnlink(const Args& a, Reply r) {
  auto rest = a.rest;
  std::string_view name;
  if (int e = TakeNewComponent(&rest, &name); e != 0) return r.Error(e);
  a.d.fs()->Unlink(a.ctx, a.in.nodeid, name, std::move(r));
}
void DoRmdir(const Args& a, Reply r) {
  auto rest = a.rest;
  std::string_view name;
  if (int e = TakeNewComponent(&rest, &name); e != 0) return r.Error(e);
  a.d.fs()->Rmdir(a.ctx, a.in.nodeid, name, std::move(r));
}
void RenameCommon(const Args& a, uint64_t newdir, uint32_t flags, Reply r) {
  auto rest = a.rest;
  std::string_view name, newname;
  if (!TakeName(&rest, &name) || !TakeName(&rest, &newname)) return r.Error(EINVAL);
  int e_old = CheckNewComponent(name), e_new = CheckNewComponent(newname);
  // Malformed in either name wins over too long in either.
  if (e_old == EINVAL || e_new == EINVAL) return r.Error(EINVAL);
  if (e_old != 0 || e_new != 0) return r.Error(ENAMETOOLONG);
  a.d.fs()->Rename(a.ctx, a.in.nodeid, name, newdir, newname, flags, std::move(r));
}
void DoRename(const Args& a, Reply r) {
  RenameCommon(a, Op<fuse_rename_in>(a).newdir, 0, std::move(r));
}
void DoRename2(const Args& a, Reply r) {
  auto in = Op<fuse_rename2_in>(a);
  RenameCommon(a, in.newdir, in.flags, std::move(r));
}
void DoLink(const Args& a, Reply r) {
  auto rest = a.rest;
  std::string_view newname;
  if (int e = TakeNewComponent(&rest, &newname); e != 0) return r.Error(e);
  a.d.fs()->Link(a.ctx, Op<fuse_link_in>(a).oldnodeid, a.in.nodeid, newname, std::move(r));
}
void DoOpen(const Args& a, Reply r) {
  a.d.fs()->Open(a.ctx, a.in.nodeid, Op<fuse_open_in>(a), std::move(r));
}
void DoCreate(const Args& a, Reply r) {
  auto rest = a.rest;
  std::string_view name;
  if (int e = TakeNewComponent(&rest, &name); e != 0) return r.Error(e);
  a.d.fs()->Create(a.ctx, a.in.nodeid, name, Op<fuse_create_in>(a), std::move(r));
}
void DoTmpfile(const Args& a, Reply r) {
  a.d.fs()->Tmpfile(a.ctx, a.in.nodeid, Op<fuse_create_in>(a), std::move(r));
}
void DoRead(const Args& a, Reply r) {
  a.d.fs()->Read(a.ctx, a.in.nodeid, Op<fuse_read_in>(a), std::move(r));
}
void DoWrite(const Args& a, Reply r) {
  auto in = Op<fuse_write_in>(a);
  if (a.rest.size() < in.size) return r.Error(EINVAL);
  a.d.fs()->Write(a.ctx, a.in.nodeid, in, a.rest.first(in.size), std::move(r));
}
void DoStatfs(const Args& a, Reply r) { a.d.fs()->Statfs(a.ctx, a.in.nodeid, std::move(r)); }
void DoRelease(const Args& a, Reply r) {
  a.d.fs()->Release(a.ctx, a.in.nodeid, Op<fuse_release_in>(a), std::move(r));
}
void DoReleasedir(const Args& a, Reply r) {
  a.d.fs()->Releasedir(a.ctx, a.in.nodeid, Op<fuse_release_in>(a), std::move(r));
}
void DoFsync(const Args& a, Reply r) {
  auto in = Op<fuse_fsync_in>(a);
  a.d.fs()->Fsync(a.ctx, a.in.nodeid, in.fh, in.fsync_flags & FUSE_FSYNC_FDATASYNC, std::move(r));
}
void DoFsyncdir(const Args& a, Reply r) {
  auto in = Op<fuse_fsync_in>(a);
  a.d.fs()->Fsyncdir(a.ctx, a.in.nodeid, in.fh, in.fsync_flags & FUSE_FSYNC_FDATASYNC,
                     std::move(r));
}
void DoSetxattr(const Args& a, Reply r) {
  // Without FUSE_SETXATTR_EXT the kernel sends the 8-byte compat struct.
  fuse_setxattr_in in{};
  std::memcpy(&in, a.op, FUSE_COMPAT_SETXATTR_IN_SIZE);
  auto rest = a.rest;
  std::string_view name;
  if (!TakeName(&rest, &name) || name.empty() || rest.size() < in.size) return r.Error(EINVAL);
  a.d.fs()->Setxattr(a.ctx, a.in.nodeid, name, rest.first(in.size), in.flags, std::move(r));
}
void DoGetxattr(const Args& a, Reply r) {
  auto rest = a.rest;
  std::string_view name;
  if (!TakeName(&rest, &name) || name.empty()) return r.Error(EINVAL);
  a.d.fs()->Getxattr(a.ctx, a.in.nodeid, name, Op<fuse_getxattr_in>(a).size, std::move(r));
}
void DoListxattr(const Args& a, Reply r) {
  a.d.fs()->Listxattr(a.ctx, a.in.nodeid, Op<fuse_getxattr_in>(a).size, std::move(r));
}
void DoRemovexattr(const Args& a, Reply r) {
  auto rest = a.rest;
  std::string_view name;
  if (!TakeName(&rest, &name) || name.empty()) return r.Error(EINVAL);
  a.d.fs()->Removexattr(a.ctx, a.in.nodeid, name, std::move(r));
}
void DoFlush(const Args& a, Reply r) {
  a.d.fs()->Flush(a.ctx, a.in.nodeid, Op<fuse_flush_in>(a), std::move(r));
}
void DoInitAgain(const Args&, Reply r) {
  // INIT is handled once by the session before any transport runs.
  r.Error(EIO);
}
void DoOpendir(const Args& a, Reply r) {
  a.d.fs()->Opendir(a.ctx, a.in.nodeid, Op<fuse_open_in>(a), std::move(r));
}
void DoReaddir(const Args& a, Reply r) {
  a.d.fs()->Readdir(a.ctx, a.in.nodeid, Op<fuse_read_in>(a), false, std::move(r));
}
void DoReaddirplus(const Args& a, Reply r) {
  a.d.fs()->Readdir(a.ctx, a.in.nodeid, Op<fuse_read_in>(a), true, std::move(r));
}
void DoGetlk(const Args& a, Reply r) {
  a.d.fs()->Getlk(a.ctx, a.in.nodeid, Op<fuse_lk_in>(a), std::move(r));
}
void DoSetlk(const Args& a, Reply r) {
  a.d.fs()->Setlk(a.ctx, a.in.nodeid, Op<fuse_lk_in>(a), false, std::move(r));
}
void DoSetlkw(const Args& a, Reply r) {
  a.d.fs()->Setlk(a.ctx, a.in.nodeid, Op<fuse_lk_in>(a), true, std::move(r));
}
void DoAccess(const Args& a, Reply r) {
  a.d.fs()->Access(a.ctx, a.in.nodeid, Op<fuse_access_in>(a).mask, std::move(r));
}
void DoInterrupt(const Args& a, Reply r) {
  a.d.fs()->Interrupt(Op<fuse_interrupt_in>(a).unique);
  r.None();
}
void DoDestroy(const Args& a, Reply r) {
  if (a.d.hooks() != nullptr) a.d.hooks()->OnDestroy();
  r.Empty();
}
void DoNotifyReply(const Args& a, Reply r) {
  auto in = Op<fuse_notify_retrieve_in>(a);
  size_t n = in.size < a.rest.size() ? in.size : a.rest.size();
  a.d.fs()->Retrieved(a.in.unique, a.in.nodeid, in.offset, a.rest.first(n));
  r.None();
}
void DoFallocate(const Args& a, Reply r) {
  a.d.fs()->Fallocate(a.ctx, a.in.nodeid, Op<fuse_fallocate_in>(a), std::move(r));
}
void DoLseek(const Args& a, Reply r) {
  a.d.fs()->Lseek(a.ctx, a.in.nodeid, Op<fuse_lseek_in>(a), std::move(r));
}
void DoCopyFileRange(const Args& a, Reply r) {
  a.d.fs()->CopyFileRange(a.ctx, a.in.nodeid, Op<fuse_copy_file_range_in>(a), std::move(r));
}
void DoSyncfs(const Args& a, Reply r) { a.d.fs()->Syncfs(a.ctx, a.in.nodeid, std::move(r)); }
void DoEnosys(const Args&, Reply r) { r.Error(ENOSYS); }

struct OpRow {
  const char* name = nullptr;
  Handler handler = nullptr;
  // Bytes of the op's fixed struct that must be present (OpInfo::arg_size).
  uint32_t arg_size = 0;
  bool dropped = false;  // OpInfo::dropped
};

constexpr std::array<OpRow, FUSE_OPCODE_LIMIT> BuildTable() {
  std::array<OpRow, FUSE_OPCODE_LIMIT> t{};
  t[FUSE_LOOKUP] = {"LOOKUP", DoLookup, 0};
  t[FUSE_FORGET] = {"FORGET", DoForget, sizeof(fuse_forget_in), true};
  t[FUSE_GETATTR] = {"GETATTR", DoGetattr, sizeof(fuse_getattr_in)};
  t[FUSE_SETATTR] = {"SETATTR", DoSetattr, sizeof(fuse_setattr_in)};
  t[FUSE_READLINK] = {"READLINK", DoReadlink, 0};
  t[FUSE_SYMLINK] = {"SYMLINK", DoSymlink, 0};
  t[FUSE_MKNOD] = {"MKNOD", DoMknod, sizeof(fuse_mknod_in)};
  t[FUSE_MKDIR] = {"MKDIR", DoMkdir, sizeof(fuse_mkdir_in)};
  t[FUSE_UNLINK] = {"UNLINK", DoUnlink, 0};
  t[FUSE_RMDIR] = {"RMDIR", DoRmdir, 0};
  t[FUSE_RENAME] = {"RENAME", DoRename, sizeof(fuse_rename_in)};
  t[FUSE_LINK] = {"LINK", DoLink, sizeof(fuse_link_in)};
  t[FUSE_OPEN] = {"OPEN", DoOpen, sizeof(fuse_open_in)};
  t[FUSE_READ] = {"READ", DoRead, sizeof(fuse_read_in)};
  t[FUSE_WRITE] = {"WRITE", DoWrite, sizeof(fuse_write_in)};
  t[FUSE_STATFS] = {"STATFS", DoStatfs, 0};
  t[FUSE_RELEASE] = {"RELEASE", DoRelease, sizeof(fuse_release_in)};
  t[FUSE_FSYNC] = {"FSYNC", DoFsync, sizeof(fuse_fsync_in)};
  t[FUSE_SETXATTR] = {"SETXATTR", DoSetxattr, FUSE_COMPAT_SETXATTR_IN_SIZE};
  t[FUSE_GETXATTR] = {"GETXATTR", DoGetxattr, sizeof(fuse_getxattr_in)};
  t[FUSE_LISTXATTR] = {"LISTXATTR", DoListxattr, sizeof(fuse_getxattr_in)};
  t[FUSE_REMOVEXATTR] = {"REMOVEXATTR", DoRemovexattr, 0};
  t[FUSE_FLUSH] = {"FLUSH", DoFlush, sizeof(fuse_flush_in)};
  t[FUSE_INIT] = {"INIT", DoInitAgain, 0};
  t[FUSE_OPENDIR] = {"OPENDIR", DoOpendir, sizeof(fuse_open_in)};
  t[FUSE_READDIR] = {"READDIR", DoReaddir, sizeof(fuse_read_in)};
  t[FUSE_RELEASEDIR] = {"RELEASEDIR", DoReleasedir, sizeof(fuse_release_in)};
  t[FUSE_FSYNCDIR] = {"FSYNCDIR", DoFsyncdir, sizeof(fuse_fsync_in)};
  t[FUSE_GETLK] = {"GETLK", DoGetlk, sizeof(fuse_lk_in)};
  t[FUSE_SETLK] = {"SETLK", DoSetlk, sizeof(fuse_lk_in)};
  t[FUSE_SETLKW] = {"SETLKW", DoSetlkw, sizeof(fuse_lk_in)};
  t[FUSE_ACCESS] = {"ACCESS", DoAccess, sizeof(fuse_access_in)};
  t[FUSE_CREATE] = {"CREATE", DoCreate, sizeof(fuse_create_in)};
  t[FUSE_INTERRUPT] = {"INTERRUPT", DoInterrupt, sizeof(fuse_interrupt_in), true};
  t[FUSE_BMAP] = {"BMAP", DoEnosys, sizeof(fuse_bmap_in)};
  t[FUSE_DESTROY] = {"DESTROY", DoDestroy, 0};
  t[FUSE_IOCTL] = {"IOCTL", DoEnosys, sizeof(fuse_ioctl_in)};
  t[FUSE_POLL] = {"POLL", DoEnosys, sizeof(fuse_poll_in)};
  t[FUSE_NOTIFY_REPLY] = {"NOTIFY_REPLY", DoNotifyReply, sizeof(fuse_notify_retrieve_in), true};
  t[FUSE_BATCH_FORGET] = {"BATCH_FORGET", DoBatchForget, sizeof(fuse_batch_forget_in), true};
  t[FUSE_FALLOCATE] = {"FALLOCATE", DoFallocate, sizeof(fuse_fallocate_in)};
  t[FUSE_READDIRPLUS] = {"READDIRPLUS", DoReaddirplus, sizeof(fuse_read_in)};
  t[FUSE_RENAME2] = {"RENAME2", DoRename2, sizeof(fuse_rename2_in)};
  t[FUSE_LSEEK] = {"LSEEK", DoLseek, sizeof(fuse_lseek_in)};
  t[FUSE_COPY_FILE_RANGE] = {"COPY_FILE_RANGE", DoCopyFileRange, sizeof(fuse_copy_file_range_in)};
  t[FUSE_SETUPMAPPING] = {"SETUPMAPPING", DoEnosys, 0};
  t[FUSE_REMOVEMAPPING] = {"REMOVEMAPPING", DoEnosys, 0};
  t[FUSE_SYNCFS] = {"SYNCFS", DoSyncfs, sizeof(fuse_syncfs_in)};
  t[FUSE_TMPFILE] = {"TMPFILE", DoTmpfile, sizeof(fuse_create_in)};
  t[FUSE_STATX] = {"STATX", DoStatx, sizeof(fuse_statx_in)};
  t[FUSE_COPY_FILE_RANGE_64] = {"COPY_FILE_RANGE_64", DoEnosys, sizeof(fuse_copy_file_range_in)};
  return t;
}

constexpr std::array<OpRow, FUSE_OPCODE_LIMIT> kOps = BuildTable();

// The table without its handlers, for the decoder.
constexpr std::array<OpInfo, FUSE_OPCODE_LIMIT> BuildInfo() {
  std::array<OpInfo, FUSE_OPCODE_LIMIT> t{};
  for (size_t i = 0; i < kOps.size(); i++) {
    t[i] = {kOps[i].name, kOps[i].arg_size, kOps[i].dropped};
  }
  return t;
}
constexpr std::array<OpInfo, FUSE_OPCODE_LIMIT> kInfo = BuildInfo();

// Every op struct fits the split layout's op_in area and Dispatch's copy.
constexpr bool OpStructsFit() {
  for (const OpRow& row : kOps) {
    if (row.arg_size > FUSE_URING_OP_IN_OUT_SZ || row.arg_size > sizeof(fuse_setattr_in)) {
      return false;
    }
  }
  return true;
}
static_assert(OpStructsFit());

}  // namespace

const OpInfo* FindOp(uint32_t opcode) {
  return opcode < kOps.size() && kOps[opcode].handler != nullptr ? &kInfo[opcode] : nullptr;
}

const char* OpcodeName(uint32_t opcode) {
  const OpInfo* op = FindOp(opcode);
  return op != nullptr ? op->name : "UNKNOWN";
}

int Dispatcher::Deliver(const RequestBytes& bytes, ReplySink* sink) {
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  RequestView view;
  const int rc = Decode(bytes, &view);
  if (rc == 0) {
    sink->Begin(view.in);
    Dispatch(view, sink);
    return 0;
  }
  stats_.malformed.fetch_add(1, std::memory_order_relaxed);
  if (debug_ || !said_malformed_.exchange(true, std::memory_order_relaxed)) {
    fprintf(stderr,
            "kmfused: malformed %s request (opcode %u, len %u): answered EINVAL%s\n",
            bytes.layout == Layout::kSplit ? "io-uring" : "/dev/fuse", view.in.opcode,
            view.in.len, debug_ ? "" : "; further ones are only counted");
  }
  if (!view.has_header) {
    sink->Drop();
    return rc;
  }
  sink->Begin(view.in);
  Reply reply(sink, view.in.unique, view.in.opcode);
  const OpInfo* op = FindOp(view.in.opcode);
  if (op != nullptr && op->dropped) {
    reply.None();
  } else {
    reply.Error(-rc);
  }
  return rc;
}

void Dispatcher::Dispatch(const RequestView& req, ReplySink* sink) {
  const fuse_in_header& in = req.in;
  const OpRow* row = in.opcode < kOps.size() && kOps[in.opcode].handler != nullptr
                         ? &kOps[in.opcode]
                         : nullptr;
  if (debug_) {
    fprintf(stderr, "kmfused: unique=%llu op=%s(%u) nodeid=%llu len=%u uid=%u pid=%u\n",
            static_cast<unsigned long long>(in.unique), OpcodeName(in.opcode), in.opcode,
            static_cast<unsigned long long>(in.nodeid), in.len, in.uid, in.pid);
  }
  Reply reply(sink, in.unique, in.opcode);
  if (row == nullptr) {
    stats_.unknown.fetch_add(1, std::memory_order_relaxed);
    return reply.Error(ENOSYS);
  }
  RequestContext ctx;
  ctx.unique = in.unique;
  ctx.opcode = in.opcode;
  ctx.uid = in.uid;
  ctx.gid = in.gid;
  ctx.pid = in.pid;
  // The op struct is copied out of the buffer before the handler runs: a
  // reply written in place may overwrite it.
  // (OpStructsFit: every op struct fits.)
  alignas(8) char op_copy[sizeof(fuse_setattr_in)];
  std::memcpy(op_copy, req.op.data(), req.op.size());
  Args args{in, ctx, op_copy, req.rest, *this};
  row->handler(args, std::move(reply));
}

}  // namespace kmfuse::proto
