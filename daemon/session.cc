#include "daemon/session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "daemon/dev_channel.h"
#include "daemon/proto/reply_header.h"
#include "daemon/proto/request.h"

namespace kmfuse {
namespace {

using namespace kmfuse::abi;  // NOLINT

// INIT flags kmfused asks for when the kernel offers them; the filesystem's
// Init() may clear some (and add the optional ones it supports).
constexpr uint64_t kDefaultWant =
    FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES |
    FUSE_FLOCK_LOCKS | FUSE_AUTO_INVAL_DATA | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO |
    FUSE_ASYNC_DIO | FUSE_PARALLEL_DIROPS | FUSE_HANDLE_KILLPRIV_V2 | FUSE_MAX_PAGES |
    FUSE_CACHE_SYMLINKS | FUSE_INIT_EXT | FUSE_EXPORT_SUPPORT |
    // Shared mmap of a file opened with FOPEN_DIRECT_IO (cache=none, and any
    // O_DIRECT open) instead of ENODEV.
    FUSE_DIRECT_IO_ALLOW_MMAP;
// The kernel's max_pages when the INIT reply does not carry FUSE_MAX_PAGES
// (FUSE_DEFAULT_MAX_PAGES_PER_REQ), and its fs.fuse.max_pages_limit where
// that sysctl is absent (FUSE_MAX_MAX_PAGES).
constexpr uint32_t kKernelDefaultMaxPages = 32;
constexpr uint32_t kKernelMaxPagesLimit = 256;

// fs.fuse.max_pages_limit: the kernel clamps an accepted max_pages to it.
uint32_t KernelMaxPagesLimit() {
  uint32_t limit = kKernelMaxPagesLimit;
  int fd = open("/proc/sys/fs/fuse/max_pages_limit", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return limit;
  char buf[32] = {};
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  uint32_t v = 0;
  if (n > 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(buf, n)), &v) &&
      v > 0) {
    limit = v;
  }
  return limit;
}

// Optional features only a filesystem can ask for.
constexpr uint64_t kFsMayWant = FUSE_WRITEBACK_CACHE | FUSE_PASSTHROUGH | FUSE_DONT_MASK |
                                FUSE_POSIX_ACL | FUSE_NO_OPEN_SUPPORT |
                                FUSE_NO_OPENDIR_SUPPORT | FUSE_EXPLICIT_INVAL_DATA;

}  // namespace

absl::StatusOr<std::unique_ptr<Session>> Session::Start(const ServerOptions& opts,
                                                        FileSystem* fs) {
  const int preopened_fd = opts.dev_fd;
  KernelOffer offer = ProbeKernelOffer();
  // A forced transport that cannot work is refused before anything is mounted.
  if (opts.transport != TransportKind::kAuto) {
    absl::StatusOr<Choice> forced = ChooseTransport(opts.transport, offer);
    if (!forced.ok()) {
      if (preopened_fd >= 0) close(preopened_fd);  // ownership passed to us
      return forced.status();
    }
  }
  std::unique_ptr<Session> session(new Session(opts, fs));
  if (preopened_fd >= 0) {
    session->mount_ = FuseMount::Adopt(preopened_fd, opts.mountpoint);
  } else {
    MountFlags flags;
    flags.allow_other = opts.allow_other;
    flags.default_permissions = opts.default_permissions;
    flags.read_only = opts.read_only;
    flags.nosuid = opts.nosuid;
    flags.nodev = opts.nodev;
    flags.noexec = opts.noexec;
    flags.noatime = opts.noatime;
    flags.nonempty = opts.nonempty;
    flags.fsname = opts.fsname;
    flags.subtype = opts.subtype;
    absl::StatusOr<std::unique_ptr<FuseMount>> m = FuseMount::Create(opts.mountpoint, flags);
    if (!m.ok()) return m.status();
    session->mount_ = std::move(*m);
  }
  if (absl::Status s = session->Handshake(offer); !s.ok()) {
    session->mount_->Unmount();
    session->mount_->Abort();
    return s;
  }
  // Opened while the connection is certainly ours (fusectl numbers are
  // reused once a connection ends).
  if (const unsigned conn = session->mount_->conn_id(); conn != 0) {
    EnsureFusectl();
    session->abort_fd_ = open(absl::StrCat("/sys/fs/fuse/connections/", conn, "/abort").c_str(),
                              O_WRONLY | O_CLOEXEC);
  }
  TransportEnv env;
  env.dev_fd = session->mount_->fd();
  env.gate = &session->gate_;
  env.dispatcher = session->dispatcher_.get();
  env.opts = &session->opts_;
  env.max_write = session->max_write_;
  env.max_pages = session->max_pages_;
  absl::StatusOr<std::unique_ptr<Transport>> t = MakeTransport(session->choice_.transport, env);
  absl::Status started = t.ok() ? (*t)->Start() : t.status();
  if (t.ok()) session->transport_ = std::move(*t);
  if (!started.ok()) {
    session->mount_->Unmount();
    session->mount_->Abort();
    if (session->transport_) session->transport_->Join();
    session->transport_.reset();
    fs->Destroy();
    return absl::Status(started.code(), absl::StrCat("starting transport ",
                                                     TransportName(session->choice_.transport),
                                                     ": ", started.message()));
  }
  return session;
}

absl::Status Session::Handshake(KernelOffer offer) {
  const int fd = mount_->fd();
  std::vector<char> buf(DevSlotSize(1u << 20));
  ssize_t n;
  for (;;) {
    n = read(fd, buf.data(), buf.size());
    if (n >= 0) break;
    if (errno == EINTR || errno == EAGAIN || errno == ENOENT) continue;
    return absl::ErrnoToStatus(errno, "reading INIT from /dev/fuse");
  }
  fuse_in_header in;
  if (proto::PeekHeader(buf.data(), static_cast<size_t>(n), &in) != 0 || in.opcode != FUSE_INIT ||
      static_cast<size_t>(n) < sizeof(in) + FUSE_COMPAT_INIT_IN_SIZE) {
    return absl::InternalError("the kernel's first request was not a valid INIT");
  }
  fuse_init_in init{};
  std::memcpy(&init, buf.data() + sizeof(in),
              std::min(sizeof(init), static_cast<size_t>(n) - sizeof(in)));

  auto reply = [&](int32_t error, const void* arg, size_t len) {
    fuse_out_header out = proto::ReplyHeader(in.unique, error, len);
    struct iovec iov[2] = {{&out, sizeof(out)}, {const_cast<void*>(arg), len}};
    return WritevToDev(fd, iov, len ? 2 : 1);
  };

  if (init.major != FUSE_KERNEL_VERSION || init.minor < FUSE_MIN_SUPPORTED_MINOR) {
    reply(-EPROTO, nullptr, 0);
    return absl::FailedPreconditionError(absl::StrCat(
        "kernel FUSE protocol ", init.major, ".", init.minor, " is not supported (need 7.",
        FUSE_MIN_SUPPORTED_MINOR, "+)"));
  }
  uint64_t offered = init.flags;
  if (init.flags & FUSE_INIT_EXT) offered |= uint64_t{init.flags2} << 32;
  offer.init_known = true;
  offer.init_over_io_uring = offered & FUSE_OVER_IO_URING;
  offer.init_bufpool = offered & FUSE_HAS_IO_URING_BUFPOOL;

  absl::StatusOr<Choice> choice = ChooseTransport(opts_.transport, offer);
  if (!choice.ok()) {
    // Refuse the connection; the caller unmounts.
    reply(-EPROTO, nullptr, 0);
    return choice.status();
  }
  choice_ = *choice;
  if (!IsFuseOverIoUring(choice_.transport) && opts_.threads == 0) {
    // read and ring-read: one worker per online CPU (the io_uring transports
    // resolve 0 in PlanUringBuffers).
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    opts_.threads = online > 0 ? static_cast<unsigned>(online) : 1;
  }

  proto_minor_ = std::min(init.minor, FUSE_KERNEL_MINOR_VERSION);
  const uint32_t page = static_cast<uint32_t>(sysconf(_SC_PAGESIZE));
  max_write_ = opts_.max_write != 0 ? opts_.max_write : kDefaultMaxWrite;
  if (IsFuseOverIoUring(choice_.transport)) {
    // The io_uring transports fit every queue's buffers into buffer_memory,
    // shrinking a default max_write on many CPUs (select.h).
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    absl::StatusOr<UringBufferPlan> plan =
        PlanUringBuffers(opts_, static_cast<unsigned>(PossibleCpus().size()), page,
                         online > 0 ? static_cast<unsigned>(online) : 1);
    if (plan.ok()) max_write_ = plan->max_write;
  }

  ConnectionInfo conn;
  conn.proto_major = init.major;
  conn.proto_minor = proto_minor_;
  conn.offered = offered;
  conn.want = offered & kDefaultWant;
  conn.max_write = max_write_;
  conn.max_readahead = init.max_readahead;
  conn.passthrough_possible = (offered & FUSE_PASSTHROUGH) && geteuid() == 0;
  conn.host = this;
  if (absl::Status s = fs_->Init(conn); !s.ok()) {
    reply(-EIO, nullptr, 0);
    return absl::Status(s.code(), absl::StrCat("filesystem init: ", s.message()));
  }
  uint64_t want = conn.want & offered & (kDefaultWant | kFsMayWant);
  if (IsFuseOverIoUring(choice_.transport)) want |= FUSE_OVER_IO_URING;
  // The kernel reads flags2 (FUSE_OVER_IO_URING and every other bit above
  // 31) only when the reply carries FUSE_INIT_EXT, also if Init() cleared it.
  if ((want >> 32) != 0 && (offered & FUSE_INIT_EXT)) want |= FUSE_INIT_EXT;
  if (!(want & FUSE_PASSTHROUGH)) conn.max_stack_depth = 0;
  // The kernel raises max_write below 4 KiB to 4 KiB.
  max_write_ = std::max<uint32_t>(4096, std::min(max_write_, conn.max_write));
  // max_pages: what we ask for covers max_write; the kernel takes it only
  // with FUSE_MAX_PAGES (clamped to fs.fuse.max_pages_limit) and keeps its
  // default otherwise. max_pages_ is the kernel's value: it sizes requests
  // and the FUSE-over-io_uring payload buffers.
  const uint32_t asked_pages =
      std::min<uint32_t>(UINT16_MAX, std::max<uint32_t>(1, (max_write_ + page - 1) / page));
  max_pages_ = (want & FUSE_MAX_PAGES) ? std::min(asked_pages, KernelMaxPagesLimit())
                                        : kKernelDefaultMaxPages;

  fuse_init_out out{};
  out.major = FUSE_KERNEL_VERSION;
  out.minor = proto_minor_;
  out.max_readahead = conn.max_readahead;
  out.flags = static_cast<uint32_t>(want);
  out.flags2 = static_cast<uint32_t>(want >> 32);
  out.max_background = opts_.max_background;
  out.congestion_threshold = static_cast<uint16_t>(opts_.max_background * 3 / 4);
  out.max_write = max_write_;
  out.time_gran = conn.time_gran;
  out.max_pages = static_cast<uint16_t>(asked_pages);
  out.max_stack_depth = conn.max_stack_depth;
  size_t out_len = sizeof(out);
  if (init.minor < 23) out_len = 24;  // FUSE_COMPAT_22_INIT_OUT_SIZE
  if (int rc = reply(0, &out, out_len); rc != 0) return absl::ErrnoToStatus(-rc, "answering INIT");

  dispatcher_ = std::make_unique<proto::Dispatcher>(fs_, this, opts_.debug);
  return absl::OkStatus();
}

std::string Session::Describe() const {
  return absl::StrCat(TransportName(choice_.transport), ": ", transport_->Describe(),
                      ", max_write ", max_write_ / 1024, " KiB, protocol 7.", proto_minor_);
}

bool Session::WaitFor(absl::Duration timeout) const { return transport_->WaitFor(timeout); }

void Session::AbortConnection() {
  if (abort_fd_ >= 0) {
    // Bound to this connection's fusectl inode: a no-op once it ended, even
    // if a new connection got the same number since.
    ssize_t n = write(abort_fd_, "1", 1);
    if (n == 1) return;
  }
  mount_->Abort();
}

absl::Status Session::Stop(absl::Duration grace) {
  MutexLock l(&stop_mu_);
  if (stopped_) return stop_status_;
  stopped_ = true;
  const absl::Time begin = absl::Now();
  if (transport_->Done()) {
    mount_->DetachIfStillOurs();
  } else {
    mount_->Unmount();
  }
  // umount2 itself can take long on a busy machine (mount namespace locks);
  // the grace starts after it.
  const absl::Time unmounted = absl::Now();
  const absl::Time deadline = unmounted + grace;
  // From here no request reaches the filesystem; those it has run to their
  // reply, bounded by the grace.
  gate_.Quiesce();
  while (gate_.in_flight() != 0 && !transport_->Done() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  if (!transport_->Done()) {
    // Files are still open on the detached mount (or the kernel is still
    // tearing it down): end the connection. Requests still in the kernel,
    // and those held by the gate, fail with the kernel's abort error.
    AbortConnection();
  }
  // The held requests' buffers go back to their queues, which can then end.
  gate_.ReleaseHeld();
  if (!WaitFor(absl::Seconds(10))) {
    fprintf(stderr, "kmfused: queues did not stop 10 s after abort; still waiting\n");
  }
  transport_->Join();
  fprintf(stderr,
          "kmfused: stopped: unmount took %lld ms, then %lld ms to answer what the filesystem "
          "had and end the connection (%zu request(s) held until the abort)\n",
          static_cast<long long>(absl::ToInt64Milliseconds(unmounted - begin)),
          static_cast<long long>(absl::ToInt64Milliseconds(absl::Now() - unmounted)),
          gate_.held_total());
  if (std::string stats = transport_->Stats(); !stats.empty()) {
    fprintf(stderr, "kmfused: %s\n", stats.c_str());
  }
  stop_status_ = transport_->status();
  fs_->Destroy();
  return stop_status_;
}

Session::~Session() {
  if (transport_ != nullptr) Stop().IgnoreError();
  if (abort_fd_ >= 0) close(abort_fd_);
}

void Session::OnDestroy() {}

absl::StatusOr<int32_t> Session::BackingOpen(int fd) {
  fuse_backing_map map{};
  map.fd = fd;
  int id = ioctl(mount_->fd(), FUSE_DEV_IOC_BACKING_OPEN, &map);
  if (id < 0) return absl::ErrnoToStatus(errno, "FUSE_DEV_IOC_BACKING_OPEN");
  return id;
}

absl::Status Session::BackingClose(int32_t backing_id) {
  uint32_t id = static_cast<uint32_t>(backing_id);
  if (ioctl(mount_->fd(), FUSE_DEV_IOC_BACKING_CLOSE, &id) != 0) {
    return absl::ErrnoToStatus(errno, "FUSE_DEV_IOC_BACKING_CLOSE");
  }
  return absl::OkStatus();
}

absl::Status Session::Notify(int32_t code, const struct iovec* iov, int cnt) {
  fuse_out_header out = proto::NotifyHeader(code, iov, cnt);
  std::vector<struct iovec> v;
  v.push_back({&out, sizeof(out)});
  v.insert(v.end(), iov, iov + cnt);
  for (;;) {
    ssize_t n = writev(mount_->fd(), v.data(), static_cast<int>(v.size()));
    if (n >= 0) return absl::OkStatus();
    if (errno == EINTR) continue;
    return absl::ErrnoToStatus(errno, "writing notification to /dev/fuse");
  }
}

absl::Status Session::NotifyInvalInode(uint64_t ino, int64_t off, int64_t len) {
  fuse_notify_inval_inode_out o{ino, off, len};
  struct iovec iov[] = {{&o, sizeof(o)}};
  return Notify(FUSE_NOTIFY_INVAL_INODE, iov, 1);
}

absl::Status Session::NotifyInvalEntry(uint64_t parent, std::string_view name) {
  fuse_notify_inval_entry_out o{parent, static_cast<uint32_t>(name.size()), 0};
  char nul = 0;
  struct iovec iov[] = {{&o, sizeof(o)},
                        {const_cast<char*>(name.data()), name.size()},
                        {&nul, 1}};
  return Notify(FUSE_NOTIFY_INVAL_ENTRY, iov, 3);
}

absl::Status Session::NotifyDelete(uint64_t parent, uint64_t child, std::string_view name) {
  fuse_notify_delete_out o{parent, child, static_cast<uint32_t>(name.size()), 0};
  char nul = 0;
  struct iovec iov[] = {{&o, sizeof(o)},
                        {const_cast<char*>(name.data()), name.size()},
                        {&nul, 1}};
  return Notify(FUSE_NOTIFY_DELETE, iov, 3);
}

absl::Status Session::NotifyStore(uint64_t ino, uint64_t offset, absl::Span<const char> data) {
  fuse_notify_store_out o{ino, offset, static_cast<uint32_t>(data.size()), 0};
  struct iovec iov[] = {{&o, sizeof(o)}, {const_cast<char*>(data.data()), data.size()}};
  return Notify(FUSE_NOTIFY_STORE, iov, 2);
}

absl::Status Session::NotifyRetrieve(uint64_t ino, uint64_t offset, uint32_t size,
                                     uint64_t cookie) {
  fuse_notify_retrieve_out o{cookie, ino, offset, size, 0};
  struct iovec iov[] = {{&o, sizeof(o)}};
  return Notify(FUSE_NOTIFY_RETRIEVE, iov, 1);
}

}  // namespace kmfuse
