// The same scripted FUSE-over-io_uring sessions against the real kernel and
// against the kernel model: the observable results must be equal. Where they
// differ the real kernel is right and the model is fixed. The model runs with
// the protocol minor the real kernel offers (7.45 on 6.14-6.18, 7.46 on 7.3),
// so this passes on the host's 6.18 and in tools/vm's 7.3.
//
// Per-entry script (raw SQEs, one SQE128 ring, 2 entries per queue):
//   1. REGISTER before the INIT reply           -> EAGAIN
//   2. INIT answered (FUSE_INIT_EXT | FUSE_OVER_IO_URING), entries registered
//   3. client: stat("hello") on CPU 0, open+read("hello") on the last CPU,
//      stat("missing"), stat("bad") (reply error +1), stat("mismatch")
//      (reply with a wrong unique); each request's header fields are recorded
//   4. malformed REGISTERs: 64-byte SQE ring, qid = nr_queues, payload iovec
//      too small, sqe->len 1, iovec array at NULL, unknown cmd_op
//   5. COMMIT_AND_FETCH with an unknown commit_id
//   6. teardown (umount / Abort): every idle entry completes with ENOTCONN
// Every delivery also records how many bytes of in_out and op_in the kernel
// wrote (the server fills both with a pattern first) and the offset field.
//
// The bufpool scripts (7.46 buffer pools) and the zero-copy scripts are
// described further down; they skip, naming the reason, where the kernel
// does not offer buffer pools. Golden73() holds what 7.3 answered, which the
// model must reproduce on any machine.
//
// The real side mounts a FUSE connection itself (as root) and skips with a
// reason when /dev/fuse, root or enable_uring is missing. It always detaches
// the mount and aborts the connection through fusectl before joining the
// client thread, also when an assertion fails.
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "kmfuse/sync.h"
#include "gtest/gtest.h"
#include "tests/kernel_model/kernel_model.h"
#include "tests/uring_raw.h"
#include "uring/fixed_buffers.h"
#include "uring/ring.h"

namespace kmfuse::testing {
namespace {

using namespace kmfuse::abi;  // NOLINT

constexpr uint32_t kMaxWrite = 128 * 1024;
constexpr uint32_t kMaxPages = kMaxWrite / 4096;
constexpr unsigned kPerQueue = 2;
constexpr uint64_t kHelloIno = 2;
constexpr uint64_t kZcIno = 3;
constexpr size_t kZcSize = 64 * 1024;  // the zero-copy file

unsigned PossibleCpus() {
  std::ifstream f("/sys/devices/system/cpu/possible");
  std::string line;
  std::getline(f, line);
  // "0-1" or "0": the kernel's nr_queues is the count.
  size_t dash = line.find('-');
  if (dash == std::string::npos) return 1;
  return static_cast<unsigned>(std::stoi(line.substr(dash + 1)) + 1);
}

// What a client operation saw (the syscall's view).
struct ClientResult {
  int err = 0;  // errno, 0 on success, ETIMEDOUT if it never finished
  uint64_t size = 0, ino = 0;
  std::string data;
  bool operator==(const ClientResult& o) const {
    return err == o.err && size == o.size && ino == o.ino && data == o.data;
  }
};
std::string Str(const ClientResult& r) {
  return absl::StrCat("{err ", r.err, ", size ", r.size, ", ino ", r.ino, ", data '", r.data, "'}");
}

// What the server saw for one request.
struct Seen {
  uint16_t qid;
  uint32_t opcode;
  uint64_t nodeid;
  uint32_t len;
  uint32_t payload_sz;
  std::string payload;
  bool commit_id_is_unique;
  uint32_t read_size;
  uint64_t read_offset;
  uint32_t offset;          // ring_ent_in_out.offset (pool buffer; 0 without one)
  uint64_t flags;           // ring_ent_in_out.flags
  uint32_t in_out_written;  // bytes of in_out the kernel wrote (the in header)
  uint32_t op_in_written;   // bytes of op_in the kernel wrote (in_args[0])
  int entry;                // bufpool: which entry (user_data) got it; per-entry: 0
  bool operator==(const Seen& o) const {
    return qid == o.qid && opcode == o.opcode && nodeid == o.nodeid && len == o.len &&
           payload_sz == o.payload_sz && payload == o.payload &&
           commit_id_is_unique == o.commit_id_is_unique && read_size == o.read_size &&
           read_offset == o.read_offset && offset == o.offset && flags == o.flags &&
           in_out_written == o.in_out_written && op_in_written == o.op_in_written &&
           entry == o.entry;
  }
};
std::string Str(const Seen& s) {
  return absl::StrCat("{q", s.qid, " op ", s.opcode, " node ", s.nodeid, " len ", s.len,
                      " payload_sz ", s.payload_sz, " commit_id==unique ", s.commit_id_is_unique,
                      " read ", s.read_size, "@", s.read_offset, " offset ", s.offset, " flags ",
                      s.flags, " wrote in_out ", s.in_out_written, " op_in ", s.op_in_written,
                      " entry ", s.entry, " payload '", absl::CHexEscape(s.payload.substr(0, 16)),
                      "'}");
}

// The INIT reply a script gives.
struct InitParams {
  uint64_t flags = 0;
  uint32_t max_write = 0;
  uint32_t max_pages = 0;
  uint32_t minor_cap = 0;  // the reply's minor is min(offered, minor_cap)
};

// The model half of a client operation: injects the requests the kernel
// builds for the syscalls, on the queue of the client's CPU.
class ModelClient {
 public:
  ModelClient(model::KernelModel& m, uint16_t qid) : m_(m), qid_(qid) {}
  // Returns the errno the syscall would see (0 on success).
  int Call(uint32_t opcode, uint64_t node, const std::string& op, const std::string& payload,
           uint32_t out_max, std::string* data = nullptr) {
    fuse_in_header in{};
    in.opcode = opcode;
    in.nodeid = node;
    uint64_t t = m_.Inject(qid_, in, op, payload, out_max);
    std::optional<model::ModelReply> rep = m_.WaitReply(t, absl::Seconds(10));
    if (!rep) return ETIMEDOUT;
    if (data) *data = rep->data;
    return -rep->error;
  }
  // A READ/WRITE with page payload (KernelModel::InjectPages).
  int CallPages(uint32_t opcode, uint64_t node, const std::string& op, const std::string& pages,
                uint32_t out_max, std::string* data) {
    fuse_in_header in{};
    in.opcode = opcode;
    in.nodeid = node;
    uint64_t t = m_.InjectPages(qid_, in, op, pages, out_max);
    std::optional<model::ModelReply> rep = m_.WaitReply(t, absl::Seconds(10));
    if (!rep) return ETIMEDOUT;
    if (data) *data = rep->data;
    return -rep->error;
  }

 private:
  model::KernelModel& m_;
  uint16_t qid_;
};

template <typename T>
std::string Bytes(const T& t) {
  return std::string(reinterpret_cast<const char*>(&t), sizeof(t));
}

// One client operation: the syscalls (real kernel) and the requests the
// kernel builds for them (model). Both report a ClientResult.
struct ClientOp {
  std::string name;
  std::function<ClientResult(const std::string& dir)> real;
  std::function<ClientResult(ModelClient&)> model;
};

// One side of the comparison: the real kernel or the model.
class Side {
 public:
  virtual ~Side() = default;
  virtual uring::IoRing& ring() = 0;
  virtual std::unique_ptr<uring::IoRing> NewRing(bool sqe128) = 0;
  virtual int fd() const = 0;
  virtual unsigned nr_queues() const = 0;
  // Answers INIT with p (real) / marks it processed (model). False: INIT
  // failed or the kernel does not offer FUSE_OVER_IO_URING.
  virtual bool FinishInit(const InitParams& p) = 0;
  // The INIT request's minor and flags (real: as the kernel offered them).
  virtual uint32_t offered_minor() const = 0;
  virtual uint64_t offered_flags() const = 0;
  // Runs op as a client on `cpu`, asynchronously; returns its slot.
  virtual int StartOp(const ClientOp& op, int cpu) = 0;
  virtual bool OpDone(int slot) = 0;
  // Joins the client; one that has not finished is ended by Teardown() first
  // and reported as ETIMEDOUT.
  virtual ClientResult OpResult(int slot) = 0;
  // Ends the connection (umount / Abort).
  virtual void Teardown() = 0;
};

struct ClientSlot {
  std::thread thread;
  std::atomic<bool> done{false};
  ClientResult result;
};

// ---- the real kernel -------------------------------------------------------

class RealSide final : public Side {
 public:
  static std::unique_ptr<RealSide> Create(std::string* skip) {
    if (geteuid() != 0) {
      *skip = "needs root to mount";
      return nullptr;
    }
    if (access("/dev/fuse", R_OK | W_OK) != 0) {
      *skip = "no /dev/fuse";
      return nullptr;
    }
    std::ifstream p("/sys/module/fuse/parameters/enable_uring");
    std::string v;
    if (!(p >> v) || (v != "Y" && v != "1")) {
      *skip = "FUSE-over-io_uring is off (echo 1 > /sys/module/fuse/parameters/enable_uring)";
      return nullptr;
    }
    auto s = std::unique_ptr<RealSide>(new RealSide());
    if (!s->Mount(skip)) return nullptr;
    uring::RingOptions o;
    o.entries = 64;
    o.sqe128 = true;
    absl::StatusOr<std::unique_ptr<uring::Ring>> r = uring::Ring::Create(o);
    if (!r.ok()) {
      *skip = absl::StrCat("cannot create an SQE128 ring: ", r.status().message());
      return nullptr;
    }
    s->ring_ = std::move(*r);
    return s;
  }
  ~RealSide() override {
    Teardown();
    for (auto& c : clients_) {
      if (c->thread.joinable()) c->thread.join();
    }
    ring_.reset();
    if (fd_ >= 0) close(fd_);
    if (!dir_.empty()) rmdir(dir_.c_str());
  }

  uring::IoRing& ring() override { return *ring_; }
  std::unique_ptr<uring::IoRing> NewRing(bool sqe128) override {
    uring::RingOptions o;
    o.entries = 8;
    o.sqe128 = sqe128;
    absl::StatusOr<std::unique_ptr<uring::Ring>> r = uring::Ring::Create(o);
    if (!r.ok()) return nullptr;
    return std::move(*r);
  }
  int fd() const override { return fd_; }
  unsigned nr_queues() const override { return PossibleCpus(); }
  uint32_t offered_minor() const override { return offered_minor_; }
  uint64_t offered_flags() const override { return offered_; }

  bool FinishInit(const InitParams& p) override {
    std::vector<char> buf(1 << 20);
    ssize_t n = read(fd_, buf.data(), buf.size());
    if (n < static_cast<ssize_t>(sizeof(fuse_in_header) + 8)) return false;
    fuse_in_header in;
    std::memcpy(&in, buf.data(), sizeof(in));
    if (in.opcode != FUSE_INIT) return false;
    fuse_init_in init{};
    std::memcpy(&init, buf.data() + sizeof(in),
                std::min(sizeof(init), static_cast<size_t>(n) - sizeof(in)));
    offered_ = init.flags | (uint64_t{init.flags2} << 32);
    offered_minor_ = init.minor;
    if (!(offered_ & FUSE_OVER_IO_URING)) return false;
    fuse_init_out out{};
    out.major = FUSE_KERNEL_VERSION;
    out.minor = std::min(init.minor, p.minor_cap);
    out.max_readahead = init.max_readahead;
    uint64_t want = p.flags & offered_;
    out.flags = static_cast<uint32_t>(want);
    out.flags2 = static_cast<uint32_t>(want >> 32);
    out.max_background = 16;
    out.congestion_threshold = 12;
    out.max_write = p.max_write;
    out.time_gran = 1;
    out.max_pages = static_cast<uint16_t>(p.max_pages);
    fuse_out_header oh{static_cast<uint32_t>(sizeof(oh) + sizeof(out)), 0, in.unique};
    struct iovec iov[2] = {{&oh, sizeof(oh)}, {&out, sizeof(out)}};
    return writev(fd_, iov, 2) == static_cast<ssize_t>(sizeof(oh) + sizeof(out));
  }

  int StartOp(const ClientOp& op, int cpu) override {
    clients_.push_back(std::make_unique<ClientSlot>());
    ClientSlot* c = clients_.back().get();
    std::string base = dir_;
    auto fn = op.real;
    c->thread = std::thread([c, fn, cpu, base] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
      c->result = fn(base);
      c->done = true;
    });
    return static_cast<int>(clients_.size() - 1);
  }
  bool OpDone(int slot) override { return clients_[slot]->done.load(); }
  ClientResult OpResult(int slot) override {
    ClientSlot& c = *clients_[slot];
    if (!c.done.load()) {
      // Never join a thread blocked on the mount: end the connection first.
      // A client still running when the script did not end the connection
      // itself is reported as timed out.
      const bool ended_by_script = torn_down_;
      Teardown();
      if (c.thread.joinable()) c.thread.join();
      if (!ended_by_script) {
        ClientResult r;
        r.err = ETIMEDOUT;
        return r;
      }
    }
    if (c.thread.joinable()) c.thread.join();
    return c.result;
  }
  void Teardown() override {
    if (torn_down_) return;
    torn_down_ = true;
    umount2(dir_.c_str(), MNT_DETACH);
    // A detached mount with a blocked caller keeps the connection: abort it.
    std::string abort_path = absl::StrCat("/sys/fs/fuse/connections/", conn_, "/abort");
    int a = open(abort_path.c_str(), O_WRONLY | O_CLOEXEC);
    if (a >= 0) {
      ssize_t w = write(a, "1", 1);
      (void)w;
      close(a);
    }
  }

 private:
  RealSide() = default;
  bool Mount(std::string* why) {
    char tmpl[] = "/tmp/kmfuse-xcheck-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      *why = absl::StrCat("mkdtemp: ", strerror(errno));
      return false;
    }
    dir_ = tmpl;
    fd_ = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd_ < 0) {
      *why = absl::StrCat("open /dev/fuse: ", strerror(errno));
      return false;
    }
    std::string opts = absl::StrCat("fd=", fd_, ",rootmode=40000,user_id=0,group_id=0");
    if (mount("kmfuse-xcheck", dir_.c_str(), "fuse.kmfuse-xcheck", MS_NOSUID | MS_NODEV,
              opts.c_str()) != 0) {
      *why = absl::StrCat("mount: ", strerror(errno));
      return false;
    }
    torn_down_ = false;
    // The connection number is the mount's minor device number; from
    // mountinfo, because stat() on the root would wait for INIT.
    std::ifstream mi("/proc/self/mountinfo");
    std::string line;
    while (std::getline(mi, line)) {
      std::istringstream ss(line);
      std::string id, parent, devno, root, point;
      ss >> id >> parent >> devno >> root >> point;
      if (point == dir_) conn_ = std::stoul(devno.substr(devno.find(':') + 1));
    }
    return true;
  }

  std::string dir_;
  int fd_ = -1;
  unsigned long conn_ = 0;
  bool torn_down_ = true;
  uint64_t offered_ = 0;
  uint32_t offered_minor_ = 0;
  std::unique_ptr<uring::Ring> ring_;
  std::vector<std::unique_ptr<ClientSlot>> clients_;
};

// ---- the model -------------------------------------------------------------

class ModelSide final : public Side {
 public:
  explicit ModelSide(const model::ModelOptions& o) {
    model_ = std::make_unique<model::KernelModel>(o);
    ring_ = model_->NewRing(64, true);
  }
  ~ModelSide() override {
    Teardown();
    for (auto& c : clients_) {
      if (c->thread.joinable()) c->thread.join();
    }
    ring_.reset();
  }
  model::KernelModel& model() { return *model_; }
  uring::IoRing& ring() override { return *ring_; }
  std::unique_ptr<uring::IoRing> NewRing(bool sqe128) override {
    return model_->NewRing(8, sqe128);
  }
  int fd() const override { return model_->fuse_fd(); }
  unsigned nr_queues() const override { return model_->options().nr_queues; }
  uint32_t offered_minor() const override { return model_->minor(); }
  uint64_t offered_flags() const override {
    return FUSE_OVER_IO_URING | (model_->minor() >= 46 ? FUSE_HAS_IO_URING_BUFPOOL : 0);
  }
  bool FinishInit(const InitParams&) override {
    model_->SetInitDone();
    return true;
  }
  int StartOp(const ClientOp& op, int cpu) override {
    clients_.push_back(std::make_unique<ClientSlot>());
    ClientSlot* c = clients_.back().get();
    auto fn = op.model;
    model::KernelModel* m = model_.get();
    c->thread = std::thread([c, fn, cpu, m] {
      ModelClient client(*m, static_cast<uint16_t>(cpu));
      c->result = fn(client);
      c->done = true;
    });
    return static_cast<int>(clients_.size() - 1);
  }
  bool OpDone(int slot) override { return clients_[slot]->done.load(); }
  ClientResult OpResult(int slot) override {
    ClientSlot& c = *clients_[slot];
    if (!c.done.load()) {
      const bool ended_by_script = model_->aborted();
      Teardown();
      if (c.thread.joinable()) c.thread.join();
      if (!ended_by_script) {
        ClientResult r;
        r.err = ETIMEDOUT;
        return r;
      }
    }
    if (c.thread.joinable()) c.thread.join();
    return c.result;
  }
  void Teardown() override { model_->Abort(); }

 private:
  std::unique_ptr<model::KernelModel> model_;
  std::unique_ptr<uring::IoRing> ring_;
  std::vector<std::unique_ptr<ClientSlot>> clients_;
};

// ---- client operations ---------------------------------------------------------

// Real: stat(name). Kernel: LOOKUP (in_args[0] empty, the name as payload).
ClientOp StatOp(const std::string& name) {
  ClientOp op;
  op.name = "stat " + name;
  op.real = [name](const std::string& dir) {
    ClientResult r;
    struct stat st;
    if (stat((dir + "/" + name).c_str(), &st) != 0) {
      r.err = errno;
    } else {
      r.size = st.st_size;
      r.ino = st.st_ino;
    }
    return r;
  };
  op.model = [name](ModelClient& c) {
    ClientResult r;
    std::string d;
    r.err = c.Call(FUSE_LOOKUP, FUSE_ROOT_ID, "", name + '\0', sizeof(fuse_entry_out), &d);
    if (r.err == 0) {
      fuse_entry_out e;
      std::memcpy(&e, d.data(), sizeof(e));
      r.size = e.attr.size;
      r.ino = e.attr.ino;
    }
    return r;
  };
  return op;
}

// Real: open + read(100) + close of the cached "hello". Kernel: OPEN, READ,
// FLUSH, RELEASE.
ClientOp ReadHelloOp() {
  ClientOp op;
  op.name = "read hello";
  op.real = [](const std::string& dir) {
    ClientResult r;
    int f = open((dir + "/hello").c_str(), O_RDONLY | O_CLOEXEC);
    if (f < 0) {
      r.err = errno;
      return r;
    }
    char buf[100];
    ssize_t n = read(f, buf, sizeof(buf));
    if (n < 0) r.err = errno; else r.data.assign(buf, n);
    close(f);
    return r;
  };
  op.model = [](ModelClient& c) {
    ClientResult r;
    fuse_open_in oi{};
    oi.flags = O_RDONLY | O_LARGEFILE;
    std::string d;
    r.err = c.Call(FUSE_OPEN, kHelloIno, Bytes(oi), "", sizeof(fuse_open_out), &d);
    if (r.err) return r;
    fuse_open_out oo;
    std::memcpy(&oo, d.data(), sizeof(oo));
    fuse_read_in ri{};
    ri.fh = oo.fh;
    ri.size = 100;
    ri.flags = O_RDONLY | O_LARGEFILE;
    r.err = c.Call(FUSE_READ, kHelloIno, Bytes(ri), "", 100, &r.data);
    fuse_flush_in fi{};
    fi.fh = oo.fh;
    c.Call(FUSE_FLUSH, kHelloIno, Bytes(fi), "", 0);
    fuse_release_in rl{};
    rl.fh = oo.fh;
    rl.flags = O_RDONLY | O_LARGEFILE;
    c.Call(FUSE_RELEASE, kHelloIno, Bytes(rl), "", 0);
    return r;
  };
  return op;
}

// Real: access(hello, R_OK). Kernel: ACCESS (no copyable payload).
ClientOp AccessOp() {
  ClientOp op;
  op.name = "access hello";
  op.real = [](const std::string& dir) {
    ClientResult r;
    if (access((dir + "/hello").c_str(), R_OK) != 0) r.err = errno;
    return r;
  };
  op.model = [](ModelClient& c) {
    ClientResult r;
    fuse_access_in a{};
    a.mask = R_OK;
    r.err = c.Call(FUSE_ACCESS, kHelloIno, Bytes(a), "", 0);
    return r;
  };
  return op;
}

// Real: statx(hello, AT_STATX_FORCE_SYNC). Kernel: GETATTR (reply args only).
ClientOp GetattrOp() {
  ClientOp op;
  op.name = "getattr hello";
  op.real = [](const std::string& dir) {
    ClientResult r;
    struct statx stx;
    if (statx(AT_FDCWD, (dir + "/hello").c_str(), AT_STATX_FORCE_SYNC, STATX_BASIC_STATS,
              &stx) != 0) {
      r.err = errno;
    } else {
      r.size = stx.stx_size;
      r.ino = stx.stx_ino;
    }
    return r;
  };
  op.model = [](ModelClient& c) {
    ClientResult r;
    fuse_getattr_in g{};
    std::string d;
    r.err = c.Call(FUSE_GETATTR, kHelloIno, Bytes(g), "", sizeof(fuse_attr_out), &d);
    if (r.err == 0) {
      fuse_attr_out a;
      std::memcpy(&a, d.data(), sizeof(a));
      r.size = a.attr.size;
      r.ino = a.attr.ino;
    }
    return r;
  };
  return op;
}

constexpr char kWriteData[] = "0123456789";

// Real: open(O_RDWR), write 10 bytes, fsync, F_SETLK, fallocate(KEEP_SIZE),
// close. Kernel: OPEN, WRITE (data as payload), FSYNC, SETLK, GETXATTR
// (security.capability, from fallocate), FALLOCATE, FLUSH, RELEASE. result.data names the first step that failed.
ClientOp FileOpsOp() {
  ClientOp op;
  op.name = "file ops";
  op.real = [](const std::string& dir) {
    ClientResult r;
    int f = open((dir + "/hello").c_str(), O_RDWR | O_CLOEXEC);
    if (f < 0) {
      r.err = errno;
      r.data = "open";
      return r;
    }
    auto fail = [&](const char* step) {
      if (r.err == 0) {
        r.err = errno;
        r.data = step;
      }
    };
    ssize_t n = write(f, kWriteData, 10);
    if (n < 0) fail("write"); else r.size = static_cast<uint64_t>(n);
    if (fsync(f) != 0) fail("fsync");
    struct flock fl{};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(f, F_SETLK, &fl) != 0) fail("setlk");
    if (fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 4096) != 0) fail("fallocate");
    if (close(f) != 0) fail("close");
    return r;
  };
  op.model = [](ModelClient& c) {
    ClientResult r;
    auto step = [&](int err, const char* name) {
      if (err != 0 && r.err == 0) {
        r.err = err;
        r.data = name;
      }
    };
    fuse_open_in oi{};
    oi.flags = O_RDWR | O_LARGEFILE;
    std::string d;
    step(c.Call(FUSE_OPEN, kHelloIno, Bytes(oi), "", sizeof(fuse_open_out), &d), "open");
    if (r.err) return r;
    fuse_open_out oo;
    std::memcpy(&oo, d.data(), sizeof(oo));
    fuse_write_in wi{};
    wi.fh = oo.fh;
    wi.size = 10;
    wi.flags = O_RDWR | O_LARGEFILE;
    int err = c.Call(FUSE_WRITE, kHelloIno, Bytes(wi), kWriteData, sizeof(fuse_write_out), &d);
    step(err, "write");
    if (err == 0) {
      fuse_write_out wo;
      std::memcpy(&wo, d.data(), sizeof(wo));
      r.size = wo.size;
    }
    fuse_fsync_in fs{};
    fs.fh = oo.fh;
    step(c.Call(FUSE_FSYNC, kHelloIno, Bytes(fs), "", 0), "fsync");
    fuse_lk_in lk{};
    lk.fh = oo.fh;
    lk.lk.type = F_WRLCK;
    lk.lk.end = INT64_MAX;
    step(c.Call(FUSE_SETLK, kHelloIno, Bytes(lk), "", 0), "setlk");
    // fallocate's file_modified() asks whether security.capability must go
    // (the server answers ENOSYS; the kernel then stops asking).
    fuse_getxattr_in gx{};
    c.Call(FUSE_GETXATTR, kHelloIno, Bytes(gx), std::string("security.capability") + '\0',
           sizeof(fuse_getxattr_out));
    fuse_fallocate_in fa{};
    fa.fh = oo.fh;
    fa.length = 4096;
    fa.mode = FALLOC_FL_KEEP_SIZE;
    step(c.Call(FUSE_FALLOCATE, kHelloIno, Bytes(fa), "", 0), "fallocate");
    fuse_flush_in fi{};
    fi.fh = oo.fh;
    step(c.Call(FUSE_FLUSH, kHelloIno, Bytes(fi), "", 0), "close");
    fuse_release_in rl{};
    rl.fh = oo.fh;
    rl.flags = O_RDWR | O_LARGEFILE;
    c.Call(FUSE_RELEASE, kHelloIno, Bytes(rl), "", 0);
    return r;
  };
  return op;
}

// ---- the script --------------------------------------------------------------

struct Observed {
  std::map<std::string, int> res;  // case -> CQE res
  std::map<std::string, ClientResult> client;
  std::vector<Seen> seen;
  int teardown_enotconn = 0;
  int teardown_other = 0;
  std::vector<std::string> unexpected;  // bufpool: CQEs with an error outside teardown
};

fuse_attr HelloAttr() {
  fuse_attr a{};
  a.ino = kHelloIno;
  a.size = 5;
  a.mode = S_IFREG | 0644;
  a.nlink = 1;
  a.blksize = 4096;
  return a;
}

fuse_attr ZcAttr() {
  fuse_attr a = HelloAttr();
  a.ino = kZcIno;
  a.size = kZcSize;
  return a;
}

class Server {
 public:
  Server(Side& side, Observed* obs) : side_(side), obs_(obs) {
    const size_t payload = UringMinPayload(kMaxWrite, kMaxPages, 4096);
    for (unsigned i = 0; i < side.nr_queues() * kPerQueue; i++) {
      entries_.push_back(std::make_unique<RawEntry>(payload));
    }
  }
  uint16_t QidOf(uint64_t ud) const { return static_cast<uint16_t>(ud / kPerQueue); }

  void RegisterAll() {
    for (uint64_t i = 0; i < entries_.size(); i++) {
      FillHeaderTail(entries_[i]->hdr);
      PrepRegister(side_.ring(), side_.ring().GetSqe(), side_.fd(), QidOf(i), *entries_[i], i);
    }
    side_.ring().Submit();
  }

  // Serves requests until the client op finishes (or 10 s).
  ClientResult RunClient(const ClientOp& op, int cpu) {
    int slot = side_.StartOp(op, cpu);
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!side_.OpDone(slot) && absl::Now() < deadline) {
      for (const uring::Completion& c : Collect(side_.ring(), 1, absl::Milliseconds(5))) Handle(c);
    }
    // Late requests of this op (an async RELEASE) are served by the next
    // call or drained here.
    for (const uring::Completion& c : Collect(side_.ring(), 1, absl::Milliseconds(50))) Handle(c);
    return side_.OpResult(slot);
  }

  void Handle(const uring::Completion& c) {
    if (c.user_data >= entries_.size()) {
      late_.push_back(c);
      return;
    }
    if (c.res < 0) {
      late_.push_back(c);
      return;
    }
    RawEntry& e = *entries_[c.user_data];
    fuse_in_header in = e.In();
    fuse_uring_ent_in_out ent = e.Ent();
    Seen s{};
    s.qid = QidOf(c.user_data);
    s.opcode = in.opcode;
    s.nodeid = in.nodeid;
    s.len = in.len;
    s.payload_sz = ent.payload_sz;
    s.payload.assign(e.payload.data(), std::min<size_t>(ent.payload_sz, 64));
    s.commit_id_is_unique = ent.commit_id == in.unique;
    s.offset = ent.offset;
    s.in_out_written = WrittenPrefix(e.hdr.in_out, sizeof(e.hdr.in_out));
    s.op_in_written = WrittenPrefix(e.hdr.op_in, sizeof(e.hdr.op_in));
    if (in.opcode == FUSE_READ) {
      fuse_read_in ri;
      std::memcpy(&ri, e.hdr.op_in, sizeof(ri));
      s.read_size = ri.size;
      s.read_offset = ri.offset;
    }
    if (in.opcode == FUSE_LOOKUP || in.opcode == FUSE_OPEN || in.opcode == FUSE_READ) {
      obs_->seen.push_back(s);
    }
    Answer(e, in);
    FillHeaderTail(e.hdr);  // to see what the kernel writes next time
    fuse_uring_ent_in_out back = e.Ent();
    back.offset = 0xdeadbeef;  // the kernel ignores it on commit and rewrites it
    std::memcpy(&e.hdr.ring_ent_in_out, &back, sizeof(back));
    PrepCmd(side_.ring(), side_.ring().GetSqe(), side_.fd(), FUSE_IO_URING_CMD_COMMIT_AND_FETCH,
            QidOf(c.user_data), ent.commit_id, c.user_data);
    side_.ring().Submit();
  }

  void Answer(RawEntry& e, const fuse_in_header& in) {
    switch (in.opcode) {
      case FUSE_LOOKUP: {
        std::string name(e.payload.data());
        fuse_entry_out eo{};
        eo.nodeid = kHelloIno;
        eo.entry_valid = eo.attr_valid = 100;
        eo.attr = HelloAttr();
        if (name == "hello") return e.Reply(in.unique, 0, &eo, sizeof(eo));
        if (name == "bad") return e.Reply(in.unique, 1, nullptr, 0);  // error > 0
        if (name == "mismatch") return e.Reply(in.unique + 1000, 0, &eo, sizeof(eo));
        return e.Reply(in.unique, -ENOENT, nullptr, 0);
      }
      case FUSE_GETATTR: {
        fuse_attr_out ao{};
        ao.attr_valid = 100;
        if (in.nodeid == FUSE_ROOT_ID) {
          ao.attr.ino = 1;
          ao.attr.mode = S_IFDIR | 0755;
          ao.attr.nlink = 2;
        } else {
          ao.attr = HelloAttr();
        }
        return e.Reply(in.unique, 0, &ao, sizeof(ao));
      }
      case FUSE_OPEN: {
        fuse_open_out oo{};
        oo.fh = 7;
        oo.open_flags = FOPEN_DIRECT_IO;
        return e.Reply(in.unique, 0, &oo, sizeof(oo));
      }
      case FUSE_READ:
        return e.Reply(in.unique, 0, "world", 5);
      case FUSE_FLUSH:
      case FUSE_RELEASE:
        return e.Reply(in.unique, 0, nullptr, 0);
      default:
        return e.Reply(in.unique, -ENOSYS, nullptr, 0);
    }
  }

  // One command on its own SQE; returns its res (or 1 if none arrived).
  int One(uring::IoRing& ring, const std::function<void(io_uring_sqe*)>& prep, uint64_t ud) {
    io_uring_sqe* sqe = ring.GetSqe();
    prep(sqe);
    sqe->user_data = ud;
    absl::Time deadline = absl::Now() + absl::Seconds(2);
    ring.Submit();
    while (absl::Now() < deadline) {
      int res = 1;
      for (const uring::Completion& c : Collect(ring, 1, absl::Milliseconds(10))) {
        if (c.user_data == ud) {
          res = c.res;
        } else if (&ring == &side_.ring()) {
          Handle(c);
        }
      }
      if (res != 1) return res;
    }
    return 1;
  }

  std::vector<std::unique_ptr<RawEntry>> entries_;
  std::vector<uring::Completion> late_;

 private:
  Side& side_;
  Observed* obs_;
};

InitParams PerEntryInit() {
  InitParams p;
  p.flags = FUSE_INIT_EXT | FUSE_OVER_IO_URING | FUSE_MAX_PAGES | FUSE_BIG_WRITES;
  p.max_write = kMaxWrite;
  p.max_pages = kMaxPages;
  p.minor_cap = 45;
  return p;
}

Observed RunScript(Side& side) {
  Observed o;
  Server server(side, &o);
  const int fd = side.fd();
  const unsigned nq = side.nr_queues();
  uring::IoRing& ring = side.ring();
  RawEntry spare(UringMinPayload(kMaxWrite, kMaxPages, 4096));

  // 1. before INIT
  o.res["register before INIT"] = server.One(
      ring, [&](io_uring_sqe* s) { PrepRegister(ring, s, fd, 0, spare, 0); }, 900);
  if (!side.FinishInit(PerEntryInit())) {
    ADD_FAILURE() << "INIT failed";
    return o;
  }
  // 2. the entries
  server.RegisterAll();
  absl::SleepFor(absl::Milliseconds(20));

  // 3. client operations
  const int last_cpu = static_cast<int>(nq) - 1;
  o.client["stat hello"] = server.RunClient(StatOp("hello"), 0);
  o.client["read hello"] = server.RunClient(ReadHelloOp(), last_cpu);
  o.client["stat missing"] = server.RunClient(StatOp("missing"), 0);
  o.client["stat bad"] = server.RunClient(StatOp("bad"), 0);
  o.client["stat mismatch"] = server.RunClient(StatOp("mismatch"), last_cpu);

  // 4. malformed REGISTERs
  {
    std::unique_ptr<uring::IoRing> small = side.NewRing(false);
    if (small) {
      o.res["register on a 64-byte SQE ring"] = server.One(
          *small, [&](io_uring_sqe* s) { PrepRegister(*small, s, fd, 0, spare, 0); }, 901);
    }
  }
  o.res["register qid == nr_queues"] = server.One(
      ring, [&](io_uring_sqe* s) { PrepRegister(ring, s, fd, static_cast<uint16_t>(nq), spare, 0); },
      902);
  RawEntry tiny(4096);
  o.res["register payload 4096"] = server.One(
      ring, [&](io_uring_sqe* s) { PrepRegister(ring, s, fd, 0, tiny, 0); }, 903);
  o.res["register sqe->len 1"] = server.One(
      ring,
      [&](io_uring_sqe* s) {
        PrepRegister(ring, s, fd, 0, spare, 0);
        s->len = 1;
      },
      904);
  o.res["register iovecs at NULL"] = server.One(
      ring,
      [&](io_uring_sqe* s) {
        PrepRegister(ring, s, fd, 0, spare, 0);
        s->addr = 0;
      },
      905);
  o.res["unknown cmd_op"] = server.One(
      ring, [&](io_uring_sqe* s) { PrepCmd(ring, s, fd, 99, 0, 0, 0); }, 906);

  // 5. commit of an id nobody holds
  o.res["commit unknown commit_id"] = server.One(
      ring,
      [&](io_uring_sqe* s) {
        PrepCmd(ring, s, fd, FUSE_IO_URING_CMD_COMMIT_AND_FETCH, 0, 0xdead0000, 0);
      },
      907);

  // 6. teardown: every idle entry completes with ENOTCONN
  side.Teardown();
  std::vector<uring::Completion> all = server.late_;
  for (const uring::Completion& c :
       Collect(ring, server.entries_.size(), absl::Seconds(5))) {
    all.push_back(c);
  }
  for (const uring::Completion& c : all) {
    if (c.user_data >= server.entries_.size()) continue;
    if (c.res == -ENOTCONN) {
      o.teardown_enotconn++;
    } else {
      o.teardown_other++;
    }
  }
  return o;
}

// Which entry and pool buffer a request lands in races the entry that
// committed the previous one: fuse_request_end() wakes the caller inside
// COMMIT_AND_FETCH before that entry's fetch half makes it available again
// and recycles its buffer, so a next request the caller sends in that window
// goes to another available entry and takes the next free buffer instead of
// the lowest one (both seen on 7.3 under load: offset 65536 where a quiet run
// gives 0, entry 2 where it gives 3; see docs/kernel-interfaces.md, section
// 5). With pool_buf_size set (bufpool scripts), a request that differs only
// in those two choices (offsets buffer-aligned) matches; every other field
// must still be equal.
bool SameButRaceChoice(Seen real, const Seen& model, size_t pool_buf_size) {
  if (pool_buf_size == 0 || real.offset % pool_buf_size != 0 ||
      model.offset % pool_buf_size != 0) {
    return false;
  }
  real.offset = model.offset;
  real.entry = model.entry;
  return real == model;
}

TEST(CrossCheckCompareTest, OnlyTheRacedEntryAndBufferMayDiffer) {
  Seen model{1, 25, 3, 64, 0, "", true, 0, 0, 0, 0, 40, 24, 3};
  Seen real = model;
  real.entry = 2;
  real.offset = 65536;
  EXPECT_TRUE(SameButRaceChoice(real, model, 65536));
  EXPECT_FALSE(SameButRaceChoice(real, model, 0));  // per-entry scripts: no race to accept
  Seen misaligned = real;
  misaligned.offset = 4096;
  EXPECT_FALSE(SameButRaceChoice(misaligned, model, 65536));
  Seen other_op = real;
  other_op.opcode = 18;
  EXPECT_FALSE(SameButRaceChoice(other_op, model, 65536));
  Seen other_queue = real;
  other_queue.qid = 0;
  EXPECT_FALSE(SameButRaceChoice(other_queue, model, 65536));
}

void Compare(const Observed& real, const Observed& model, size_t pool_buf_size = 0) {
  for (const auto& [name, res] : real.res) {
    auto it = model.res.find(name);
    ASSERT_NE(it, model.res.end()) << name;
    EXPECT_EQ(it->second, res) << name << ": real " << res << " (" << strerror(-res) << "), model "
                               << it->second;
  }
  for (const auto& [name, r] : real.client) {
    EXPECT_TRUE(model.client.at(name) == r)
        << name << ": real " << Str(r) << ", model " << Str(model.client.at(name));
  }
  ASSERT_EQ(real.seen.size(), model.seen.size());
  for (size_t i = 0; i < real.seen.size(); i++) {
    if (!(real.seen[i] == model.seen[i]) &&
        SameButRaceChoice(real.seen[i], model.seen[i], pool_buf_size)) {
      printf("request %zu: the kernel chose entry %d at pool offset %u, the model entry %d at %u "
             "(the committing entry was not available again yet)\n",
             i, real.seen[i].entry, real.seen[i].offset, model.seen[i].entry,
             model.seen[i].offset);
      continue;
    }
    EXPECT_TRUE(real.seen[i] == model.seen[i])
        << "request " << i << ": real " << Str(real.seen[i]) << ", model " << Str(model.seen[i]);
  }
  EXPECT_EQ(real.teardown_enotconn, model.teardown_enotconn);
  EXPECT_EQ(real.teardown_other, model.teardown_other);
  EXPECT_EQ(real.unexpected, model.unexpected);
}

// An Observed as text, one value per line (what Print shows).
std::vector<std::string> Lines(const Observed& o) {
  std::vector<std::string> l;
  for (const auto& [name, res] : o.res) l.push_back(absl::StrCat(name, " -> ", res));
  for (const auto& [name, r] : o.client) l.push_back(absl::StrCat(name, " -> ", Str(r)));
  for (const Seen& s : o.seen) l.push_back(absl::StrCat("seen ", Str(s)));
  l.push_back(absl::StrCat("teardown ENOTCONN ", o.teardown_enotconn, " other ", o.teardown_other));
  for (const std::string& u : o.unexpected) l.push_back(absl::StrCat("unexpected CQE ", u));
  return l;
}

void Print(const char* who, const Observed& o) {
  for (const std::string& line : Lines(o)) printf("%s: %s\n", who, line.c_str());
}

model::ModelOptions PerEntryModel(unsigned nr_queues, uint32_t minor) {
  model::ModelOptions o;
  o.mode = model::Mode::kPerEntry;
  o.nr_queues = static_cast<uint16_t>(nr_queues);
  o.max_write = kMaxWrite;
  o.max_pages = kMaxPages;
  o.init_done = false;
  o.minor = minor;
  o.poison_headers = false;  // compared byte for byte with the kernel
  return o;
}

// The kernel's behaviour follows the minor it offers (7.45: 6.14-6.18;
// 7.46: 7.3), so the model runs with the real kernel's.
uint32_t ModelMinor(uint32_t offered) { return offered >= 46 ? 46 : 45; }

TEST(UringCrossCheck, ModelMatchesTheRealKernel) {
  std::string skip;
  std::unique_ptr<RealSide> real = RealSide::Create(&skip);
  if (!real) GTEST_SKIP() << "real-kernel side unavailable: " << skip;
  Observed r = RunScript(*real);
  const uint32_t offered = real->offered_minor();
  const uint32_t minor = ModelMinor(offered);
  real.reset();  // unmount/abort before anything else
  Print("real", r);

  printf("kernel offers FUSE 7.%u: model runs as 7.%u\n", offered, minor);
  ModelSide model(PerEntryModel(PossibleCpus(), minor));
  Observed m = RunScript(model);
  Print("model", m);
  Compare(r, m);
  // The model also names the daemon bugs the script commits on purpose
  // (7.46 refuses the unknown commit_id before looking for it: io-uring is
  // off after the failed REGISTERs).
  std::vector<std::string> v = model.model().violations();
  EXPECT_EQ(v.size(), minor >= 46 ? 2u : 3u);  // error +1, unique mismatch, unknown commit_id
  for (const std::string& s : v) printf("model violation: %s\n", s.c_str());
}

void ExpectDelivery(const Observed& m) {
  // The kernel writes the 40-byte in header and in_args[0] only: nothing of
  // op_in for LOOKUP, fuse_open_in (8) for OPEN, fuse_read_in (40) for READ.
  ASSERT_EQ(m.seen.size(), 6u);
  for (const Seen& s : m.seen) {
    EXPECT_EQ(s.in_out_written, sizeof(fuse_in_header)) << Str(s);
    EXPECT_EQ(s.offset, 0u) << Str(s);
    uint32_t op = s.opcode == FUSE_OPEN ? sizeof(fuse_open_in)
                  : s.opcode == FUSE_READ ? sizeof(fuse_read_in) : 0;
    EXPECT_EQ(s.op_in_written, op) << Str(s);
  }
}

// The model side alone, on any machine: what the script expects from the
// 6.18 behaviour (kept in sync with the real kernel by the test above
// wherever it can run).
TEST(UringCrossCheck, ModelScriptExpectations745) {
  ModelSide model(PerEntryModel(2, 45));
  Observed m = RunScript(model);
  EXPECT_EQ(m.res["register before INIT"], -EAGAIN);
  EXPECT_EQ(m.res["register on a 64-byte SQE ring"], -EINVAL);
  EXPECT_EQ(m.res["register qid == nr_queues"], -EINVAL);
  EXPECT_EQ(m.res["register payload 4096"], -EINVAL);
  EXPECT_EQ(m.res["register sqe->len 1"], -EINVAL);
  EXPECT_EQ(m.res["register iovecs at NULL"], -EFAULT);
  EXPECT_EQ(m.res["unknown cmd_op"], -EINVAL);
  EXPECT_EQ(m.res["commit unknown commit_id"], -ENOENT);
  EXPECT_EQ(m.client["stat hello"].size, 5u);
  EXPECT_EQ(m.client["read hello"].data, "world");
  EXPECT_EQ(m.client["stat missing"].err, ENOENT);
  EXPECT_EQ(m.client["stat bad"].err, EINVAL);
  EXPECT_EQ(m.client["stat mismatch"].err, ENOENT);
  EXPECT_EQ(m.teardown_enotconn, 4);
  ExpectDelivery(m);
}

// As measured on 7.3: the first REGISTER that fails (qid == nr_queues; the
// 64-byte SQE ring is refused before the FUSE code runs) switches io-uring
// off for the connection, and every later command gets EOPNOTSUPP.
TEST(UringCrossCheck, ModelScriptExpectations746) {
  ModelSide model(PerEntryModel(2, 46));
  Observed m = RunScript(model);
  EXPECT_EQ(m.res["register before INIT"], -EAGAIN);
  EXPECT_EQ(m.res["register on a 64-byte SQE ring"], -EINVAL);
  EXPECT_EQ(m.res["register qid == nr_queues"], -EINVAL);
  for (const char* later : {"register payload 4096", "register sqe->len 1",
                            "register iovecs at NULL", "unknown cmd_op",
                            "commit unknown commit_id"}) {
    EXPECT_EQ(m.res[later], -EOPNOTSUPP) << later;
  }
  EXPECT_EQ(m.client["read hello"].data, "world");
  EXPECT_EQ(m.teardown_enotconn, 4);
  ExpectDelivery(m);
}

// ---- buffer pools (7.46) ---------------------------------------------------------
//
// The same raw-SQE sequence on the real kernel (where it offers
// FUSE_HAS_IO_URING_BUFPOOL, INIT flags2 bit 11: 7.3) and on the model in
// kBufpool mode, equal results required. Every name below is one observed
// value; the order of the steps is part of the script (on 7.3 a failed
// REGISTER switches io-uring off for the connection, so those come last).
//
// Main connection (max_write 32 KiB, max_pages 16: buffer size
// max(8192, 32 KiB, 16 * PAGE_SIZE) = 64 KiB; queue 0 has a registered
// pool of 2 buffers, the last queue an unregistered pool of 1, 2 entries
// each):
//   A00 ADD_QUEUE before INIT; A01-A17 setup errors and setup; A18 REGISTER
//   with {NULL, 0} payloads (no CQE while idle)
//   requests of every payload class: LOOKUP/GETATTR (reply args -> buffer,
//   offset), ACCESS/FSYNC/SETLK/FALLOCATE/FLUSH/RELEASE (no copyable
//   payload -> no buffer, offset 0), WRITE (data in the buffer)
//   a LOOKUP held on buffer 0 while another takes buffer 1 (offset 64 KiB),
//   then an ACCESS on that entry: offset 0 again
//   pool exhaustion on the last queue: a LOOKUP held on its only buffer, a
//   second LOOKUP waits, an ACCESS overtakes it, the waiting one follows on
//   the buffer the first one kept
//   K1 stale commit_id; K2 a COMMIT naming a buffer index that is not
//   registered, and what the caller and the next request see
//   R0-R3: REGISTER errors and what follows them
//   teardown with a request held by the server: its caller, the CQEs of the
//   idle entries, a COMMIT after the abort (ENOTCONN; ECONNABORTED only
//   with FUSE_ABORT_ERROR, which a second, short connection negotiates)
// Edge connections (setup only, each left unusable): uaddr 0, a length that
// is not a multiple of the buffer size, a fixed index with nothing
// registered; a queue REGISTER created; a zero-copy queue.

constexpr uint32_t kPoolMaxWrite = 32 * 1024;
constexpr uint32_t kPoolMaxPages = 16;

size_t PageSize() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }
size_t PoolBufSize() { return UringMinPayload(kPoolMaxWrite, kPoolMaxPages, PageSize()); }

// FUSE_PARALLEL_DIROPS: without it the kernel serializes LOOKUPs in one
// directory, and the steps that hold one LOOKUP while others run would stall.
InitParams PoolInit(bool abort_error) {
  InitParams p;
  p.flags = FUSE_INIT_EXT | FUSE_OVER_IO_URING | FUSE_HAS_IO_URING_BUFPOOL | FUSE_MAX_PAGES |
            FUSE_BIG_WRITES | FUSE_POSIX_LOCKS | FUSE_PARALLEL_DIROPS |
            (abort_error ? FUSE_ABORT_ERROR : 0);
  p.max_write = kPoolMaxWrite;
  p.max_pages = kPoolMaxPages;
  p.minor_cap = 46;
  return p;
}

model::ModelOptions PoolModel(unsigned nr_queues, uint32_t minor, bool abort_error) {
  model::ModelOptions o;
  o.mode = model::Mode::kBufpool;
  o.minor = minor;
  o.nr_queues = static_cast<uint16_t>(nr_queues);
  o.max_write = kPoolMaxWrite;
  o.max_pages = kPoolMaxPages;
  o.init_done = false;
  o.cap_from_submitter = true;
  o.abort_error = abort_error;
  o.poison_headers = false;
  return o;
}

// Why the real half of the bufpool scripts cannot run here ("" if it can).
std::string PoolSkipReason(const Side& real) {
  if (real.offered_flags() & FUSE_HAS_IO_URING_BUFPOOL) return "";
  return absl::StrCat("the kernel offers FUSE 7.", real.offered_minor(),
                      " without FUSE_HAS_IO_URING_BUFPOOL (INIT flags2 bit 11): no buffer pools");
}

// Drops CAP_SYS_ADMIN from the calling thread's effective set.
bool DropCapSysAdmin() {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2] = {};
  if (syscall(SYS_capget, &h, d) != 0) return false;
  d[CAP_SYS_ADMIN / 32].effective &= ~(1u << (CAP_SYS_ADMIN % 32));
  return syscall(SYS_capset, &h, d) == 0;
}

// An anonymous mapping for pools and payloads.
struct Mapping {
  explicit Mapping(size_t n) : len(n) {
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    base = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }
  ~Mapping() {
    if (base) munmap(base, len);
  }
  char* base;
  size_t len;
};

class PoolServer {
 public:
  struct Ent {
    fuse_uring_req_header hdr{};
    struct iovec iov[2]{};
    uint16_t qid = 0;
    uint32_t offset = 0;      // of the request it holds, as delivered
    char* payload = nullptr;  // a per-entry payload (no pool)
    uint16_t zc_slot = 0;     // REGISTER's ent_zero_copy_buf_index
  };
  struct Held {
    size_t ent;
    fuse_in_header in;
  };

  PoolServer(Side& side, Observed* obs) : side_(side), obs_(obs), fd_(side.fd()) {
    pools_.resize(side.nr_queues());
    fixed_.resize(side.nr_queues(), -1);
  }

  // One command on its own SQE; its res, or 1 when none came within
  // `wait` (a command the kernel keeps).
  int One(const std::function<void(io_uring_sqe*)>& prep,
          absl::Duration wait = absl::Milliseconds(500)) {
    uring::IoRing& ring = side_.ring();
    const uint64_t ud = next_ud_++;
    io_uring_sqe* sqe = ring.GetSqe();
    prep(sqe);
    sqe->user_data = ud;
    ring.Submit();
    absl::Time deadline = absl::Now() + wait;
    int res = 1;
    while (res == 1 && absl::Now() < deadline) {
      for (const uring::Completion& c : Pull()) {
        if (c.user_data == ud) {
          res = c.res;
        } else {
          Handle(c);
        }
      }
    }
    return res;
  }
  int Cmd(uint32_t op, uint16_t qid, uint64_t flags = 0, uint64_t commit_id = 0, int fixed = -1) {
    return One([&](io_uring_sqe* s) {
      fuse_uring_cmd_req_v46 c{};
      c.flags = flags;
      c.commit_id = commit_id;
      c.qid = qid;
      PrepCmdV46(s, fd_, op, c, 0, fixed);
    });
  }
  int AddPool(uint16_t qid, uint64_t uaddr, uint32_t len, int fixed = -1, uint64_t flags = 0,
              uint32_t reserved = 0) {
    return One([&](io_uring_sqe* s) {
      fuse_uring_cmd_req_v46 c{};
      c.flags = flags;
      c.qid = qid;
      c.bufpool.uaddr = uaddr;
      c.bufpool.len = len;
      c.bufpool.reserved = reserved;
      PrepCmdV46(s, fd_, FUSE_IO_URING_CMD_ADD_BUFPOOL, c, 0, fixed);
    });
  }
  // A pool of n buffers for qid that claims to be registered buffer `index`
  // although nothing is registered there; the queue's SQEs then carry it.
  int SetupPoolBadIndex(uint16_t qid, unsigned n, int index) {
    pools_[qid] = std::make_unique<Mapping>(n * PoolBufSize());
    fixed_[qid] = index;
    return AddPool(qid, reinterpret_cast<uint64_t>(pools_[qid]->base),
                   static_cast<uint32_t>(pools_[qid]->len), index);
  }
  // A pool of n buffers for qid; fixed: registered as the ring's buffer 0.
  int SetupPool(uint16_t qid, unsigned n, bool fixed) {
    pools_[qid] = std::make_unique<Mapping>(n * PoolBufSize());
    if (fixed) {
      struct iovec iov = {pools_[qid]->base, pools_[qid]->len};
      int rc = side_.ring().RegisterRaw(0 /* IORING_REGISTER_BUFFERS */, &iov, 1);
      if (rc != 0) return rc;
      fixed_[qid] = 0;
    }
    return AddPool(qid, reinterpret_cast<uint64_t>(pools_[qid]->base),
                   static_cast<uint32_t>(pools_[qid]->len), fixed_[qid]);
  }
  // REGISTERs `per_queue` entries on every queue with a {NULL, 0} payload.
  // Returns the CQEs that came at once (none: every entry waits).
  int RegisterAll(unsigned per_queue) {
    uring::IoRing& ring = side_.ring();
    for (uint16_t q = 0; q < side_.nr_queues(); q++) {
      for (unsigned i = 0; i < per_queue; i++) {
        ents_.push_back(std::make_unique<Ent>());
        Ent& e = *ents_.back();
        e.qid = q;
        FillHeaderTail(e.hdr);
        e.iov[0] = {&e.hdr, sizeof(e.hdr)};
        e.iov[1] = {nullptr, 0};
        fuse_uring_cmd_req_v46 c{};
        c.qid = q;
        if (zc_slots_) c.ent_zero_copy_buf_index = static_cast<uint16_t>(ents_.size());
        e.zc_slot = c.ent_zero_copy_buf_index;
        io_uring_sqe* sqe = ring.GetSqe();
        PrepCmdV46(sqe, fd_, FUSE_IO_URING_CMD_REGISTER, c, ents_.size() - 1, fixed_[q]);
        sqe->addr = reinterpret_cast<uint64_t>(e.iov);
        sqe->len = 2;
      }
    }
    ring.Submit();
    return static_cast<int>(Collect(ring, 1, absl::Milliseconds(100)).size());
  }

  void Handle(const uring::Completion& c) {
    if (c.user_data >= ents_.size() || c.res < 0) {
      late_.push_back(c);
      obs_->unexpected.push_back(absl::StrCat("entry ", c.user_data, " res ", c.res));
      return;
    }
    Ent& e = *ents_[c.user_data];
    fuse_in_header in;
    std::memcpy(&in, e.hdr.in_out, sizeof(in));
    fuse_uring_ent_in_out ent;
    std::memcpy(&ent, &e.hdr.ring_ent_in_out, sizeof(ent));
    Seen s{};
    // Background requests (RELEASE) go to a queue of the kernel's choice.
    s.qid = in.opcode == FUSE_RELEASE ? 0xffff : e.qid;
    s.opcode = in.opcode;
    s.nodeid = in.nodeid;
    s.len = in.len;
    s.payload_sz = ent.payload_sz;
    s.commit_id_is_unique = ent.commit_id == in.unique;
    s.offset = ent.offset;
    s.flags = ent.flags;
    s.entry = mask_entry_ ? -1 : static_cast<int>(c.user_data);
    e.offset = ent.offset;
    s.in_out_written = WrittenPrefix(e.hdr.in_out, sizeof(e.hdr.in_out));
    s.op_in_written = WrittenPrefix(e.hdr.op_in, sizeof(e.hdr.op_in));
    const char* buf = e.payload ? e.payload : Buffer(e.qid, ent.offset);
    const bool zc = (ent.flags & FUSE_URING_ENT_ZERO_COPY) != 0;
    // A zero-copy request's payload is in the caller's pages, not here.
    if (buf != nullptr && !zc) s.payload.assign(buf, std::min<size_t>(ent.payload_sz, 64));
    if (in.nodeid == kZcIno && (in.opcode == FUSE_READ || in.opcode == FUSE_WRITE)) {
      // size and offset of fuse_read_in / fuse_write_in
      fuse_read_in ri;
      fuse_write_in wi;
      std::memcpy(&ri, e.hdr.op_in, sizeof(ri));
      std::memcpy(&wi, e.hdr.op_in, sizeof(wi));
      s.read_size = in.opcode == FUSE_READ ? ri.size : wi.size;
      s.read_offset = in.opcode == FUSE_READ ? ri.offset : wi.offset;
      // Buffered I/O comes from readahead / writeback: background requests
      // on a queue of the kernel's choice.
      const uint32_t fflags = in.opcode == FUSE_READ ? ri.flags : wi.flags;
      if (!(fflags & O_DIRECT)) s.qid = 0xffff;
    }
    obs_->seen.push_back(s);
    std::string name = in.opcode == FUSE_LOOKUP && buf ? std::string(buf) : "";
    if (name.rfind("hold", 0) == 0) {
      held_.push_back({c.user_data, in});
      return;
    }
    Answer(c.user_data, in);
  }

  // Replies to the request entry `i` holds and commits it.
  void Answer(size_t i, const fuse_in_header& in, int fixed_override = -2) {
    if (i >= ents_.size()) return;
    Ent& e = *ents_[i];
    fuse_uring_ent_in_out ent;
    std::memcpy(&ent, &e.hdr.ring_ent_in_out, sizeof(ent));
    char* buf = e.payload ? e.payload : Buffer(e.qid, e.offset);
    std::string args;
    int32_t error = 0;
    uint32_t zc_payload = 0;  // a zero-copy READ's reply bytes (in the pages)
    const bool zc = (ent.flags & FUSE_URING_ENT_ZERO_COPY) != 0;
    switch (in.opcode) {
      case FUSE_LOOKUP: {
        std::string name = buf ? std::string(buf) : "";
        if (name == "missing") {
          error = -ENOENT;
          break;
        }
        fuse_entry_out eo{};
        eo.nodeid = kHelloIno;
        eo.entry_valid = eo.attr_valid = 100;
        eo.attr = HelloAttr();
        if (name == "zc") {
          eo.nodeid = kZcIno;
          eo.attr = ZcAttr();
        }
        args = Bytes(eo);
        break;
      }
      case FUSE_WRITE:
        if (in.nodeid != kZcIno) {
          fuse_write_out wo{};
          fuse_write_in wi;
          std::memcpy(&wi, e.hdr.op_in, sizeof(wi));
          wo.size = wi.size;
          args = Bytes(wo);
          break;
        }
        [[fallthrough]];
      case FUSE_READ: {
        if (in.nodeid != kZcIno || backing_fd_ < 0) {
          error = -ENOSYS;
          break;
        }
        fuse_read_in ri;
        fuse_write_in wi;
        std::memcpy(&ri, e.hdr.op_in, sizeof(ri));
        std::memcpy(&wi, e.hdr.op_in, sizeof(wi));
        const bool write = in.opcode == FUSE_WRITE;
        const uint32_t size = write ? wi.size : ri.size;
        const uint64_t off = write ? wi.offset : ri.offset;
        int n;
        if (zc) {
          // The caller's pages are in the entry's slot, a buffer at address 0.
          n = FixedOp(write, e.zc_slot, 0, size, off);
          last_zc_slot_ = e.zc_slot;
        } else if (write) {
          n = static_cast<int>(pwrite(backing_fd_, buf, size, static_cast<off_t>(off)));
          if (n < 0) n = -errno;
        } else {
          n = buf ? static_cast<int>(pread(backing_fd_, buf, size, static_cast<off_t>(off))) : -EIO;
          if (n < 0) n = -errno;
        }
        if (n < 0) {
          error = n;
        } else if (write) {
          fuse_write_out wo{};
          wo.size = static_cast<uint32_t>(n);
          args = Bytes(wo);
        } else if (zc) {
          zc_payload = static_cast<uint32_t>(n);
        } else {
          std::string got(buf, static_cast<size_t>(n));
          args = got;
        }
        break;
      }
      case FUSE_GETATTR: {
        fuse_attr_out ao{};
        ao.attr_valid = 100;
        ao.attr = in.nodeid == kZcIno ? ZcAttr() : HelloAttr();
        args = Bytes(ao);
        break;
      }
      case FUSE_OPEN: {
        fuse_open_out oo{};
        oo.fh = 7;
        oo.open_flags = FOPEN_DIRECT_IO;
        if (in.nodeid == kZcIno) {
          oo.fh = 9;
          oo.open_flags = FOPEN_IO_URING_ZERO_COPY;
        }
        args = Bytes(oo);
        break;
      }
      case FUSE_ACCESS:
      case FUSE_FSYNC:
      case FUSE_SETLK:
      case FUSE_FALLOCATE:
      case FUSE_FLUSH:
      case FUSE_RELEASE:
        break;
      default:
        error = -ENOSYS;
    }
    if (!args.empty() && buf != nullptr) std::memcpy(buf, args.data(), args.size());
    if (buf == nullptr) args.clear();
    const uint32_t reply_len = zc_payload ? zc_payload : static_cast<uint32_t>(args.size());
    fuse_out_header out{static_cast<uint32_t>(sizeof(out) + reply_len), error, in.unique};
    std::memcpy(e.hdr.in_out, &out, sizeof(out));
    FillHeaderTail(e.hdr);
    ent.payload_sz = reply_len;
    ent.offset = 0xdeadbeef;  // ignored on commit; the kernel rewrites it
    std::memcpy(&e.hdr.ring_ent_in_out, &ent, sizeof(ent));
    fuse_uring_cmd_req_v46 c{};
    c.qid = e.qid;
    c.commit_id = in.unique;
    int fixed = fixed_override == -2 ? fixed_[e.qid] : fixed_override;
    PrepCmdV46(side_.ring().GetSqe(), fd_, FUSE_IO_URING_CMD_COMMIT_AND_FETCH, c, i, fixed);
    side_.ring().Submit();
  }

  // Serves requests for `d`.
  void Serve(absl::Duration d) {
    absl::Time deadline = absl::Now() + d;
    while (absl::Now() < deadline) {
      for (const uring::Completion& c : Pull()) Handle(c);
    }
  }
  // Serves until the client in `slot` finished (10 s at most), then 50 ms
  // more for requests it left behind (an async RELEASE).
  ClientResult RunOp(const ClientOp& op, int cpu) {
    fprintf(stderr, "bufpool script: %s on cpu %d\n", op.name.c_str(), cpu);
    int slot = side_.StartOp(op, cpu);
    ServeUntil([&] { return side_.OpDone(slot); });
    Serve(absl::Milliseconds(50));
    return side_.OpResult(slot);
  }
  bool ServeUntil(const std::function<bool()>& done) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!done() && absl::Now() < deadline) {
      for (const uring::Completion& c : Pull()) Handle(c);
    }
    return done();
  }
  // Starts op and serves until it holds `n` requests in total.
  int StartHeld(const ClientOp& op, int cpu, size_t n) {
    fprintf(stderr, "bufpool script: %s on cpu %d (held)\n", op.name.c_str(), cpu);
    int slot = side_.StartOp(op, cpu);
    ServeUntil([&] { return held_.size() >= n; });
    return slot;
  }

  // One more entry on qid: header of hdr_len bytes, payload iovec of
  // payload_len bytes (0: {NULL, 0}). Its res, 1 if the kernel keeps it.
  int RegisterOne(uint16_t qid, int fixed, size_t hdr_len, size_t payload_len,
                  uint16_t zc_index = 0) {
    ents_.push_back(std::make_unique<Ent>());
    Ent& e = *ents_.back();
    e.qid = qid;
    FillHeaderTail(e.hdr);
    if (payload_len) payloads_.push_back(std::make_unique<Mapping>(payload_len));
    e.iov[0] = {&e.hdr, hdr_len};
    e.payload = payload_len ? payloads_.back()->base : nullptr;
    e.iov[1] = {e.payload, payload_len};
    const uint64_t ud = ents_.size() - 1;
    uring::IoRing& ring = side_.ring();
    io_uring_sqe* sqe = ring.GetSqe();
    fuse_uring_cmd_req_v46 c{};
    c.qid = qid;
    c.ent_zero_copy_buf_index = zc_index;
    e.zc_slot = zc_index;
    PrepCmdV46(sqe, fd_, FUSE_IO_URING_CMD_REGISTER, c, ud, fixed);
    sqe->addr = reinterpret_cast<uint64_t>(e.iov);
    sqe->len = 2;
    ring.Submit();
    for (const uring::Completion& c : Collect(ring, 1, absl::Milliseconds(300))) {
      if (c.user_data == ud) return c.res;
      Handle(c);
    }
    return 1;
  }
  // After Teardown: the CQEs of entries within `wait`.
  void CountTeardown(Observed* o, absl::Duration wait) {
    std::vector<uring::Completion> all = Collect(side_.ring(), ents_.size(), wait);
    for (const uring::Completion& c : all) {
      if (c.user_data >= ents_.size()) continue;
      if (c.res == -ENOTCONN) {
        o->teardown_enotconn++;
      } else {
        o->teardown_other++;
      }
    }
  }

  // The i-th request held so far; a failure (and an empty request) if the
  // script got fewer.
  Held HeldAt(size_t i) {
    if (i < held_.size()) return held_[i];
    ADD_FAILURE() << "request " << i << " was never held (" << held_.size() << " held)";
    return Held{SIZE_MAX, fuse_in_header{}};
  }
  std::vector<Held>& held() { return held_; }
  // Zero-copy: REGISTER names slot (entry index + 1); READ/WRITE of kZcIno
  // go to/from `fd`.
  void set_zero_copy(bool zc_slots, int backing_fd) {
    zc_slots_ = zc_slots;
    backing_fd_ = backing_fd;
  }
  // Seen.entry is not recorded (-1): which idle entry takes the request a
  // caller sends right after its zero-copy WRITE completed races on 7.3
  // (the committing one or the other, seen both ways).
  void set_mask_entry(bool mask) { mask_entry_ = mask; }
  // The slot of the last zero-copy request answered (-1: none).
  int last_zc_slot() const { return last_zc_slot_; }
  // A READ_FIXED/WRITE_FIXED on the server's ring against the backing fd;
  // completions of other SQEs that arrive meanwhile are kept for Pull().
  int FixedOp(bool write, uint16_t slot, uint64_t addr, unsigned len, uint64_t off) {
    uring::IoRing& ring = side_.ring();
    const uint64_t ud = next_ud_++;
    io_uring_sqe* sqe = ring.GetSqe();
    if (write) {
      uring::PrepWriteFixed(sqe, backing_fd_, addr, len, off, slot, ud);
    } else {
      uring::PrepReadFixed(sqe, backing_fd_, addr, len, off, slot, ud);
    }
    ring.Submit();
    absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (absl::Now() < deadline) {
      for (const uring::Completion& c : Collect(ring, 1, absl::Milliseconds(5))) {
        if (c.user_data == ud) return c.res;
        deferred_.push_back(c);
      }
    }
    return 1;
  }
  void SetupSparseTable(unsigned slots, int* table_rc, int* update_rc, Mapping* pool) {
    *table_rc = uring::RegisterSparseBuffers(side_.ring(), slots);
    struct iovec iov = {pool->base, pool->len};
    *update_rc = uring::UpdateBuffers(side_.ring(), 0, &iov, 1);
  }
  // Queue qid's pool inside `pool` (a range of registered slot `index`).
  int AddSharedPool(uint16_t qid, Mapping* pool, size_t off, size_t len, int index) {
    fixed_[qid] = index;
    shared_pool_ = pool;
    pool_off_.resize(side_.nr_queues(), 0);
    pool_off_[qid] = off;
    return AddPool(qid, reinterpret_cast<uint64_t>(pool->base + off), static_cast<uint32_t>(len),
                   index);
  }
  std::vector<uring::Completion>& late() { return late_; }
  size_t entries() const { return ents_.size(); }
  uint16_t QidOfEnt(size_t i) const { return ents_[i]->qid; }

 private:
  std::vector<uring::Completion> Pull() {
    std::vector<uring::Completion> out;
    out.swap(deferred_);
    if (out.empty()) out = Collect(side_.ring(), 1, absl::Milliseconds(5));
    return out;
  }
  char* Buffer(uint16_t qid, uint32_t offset) {
    if (shared_pool_ != nullptr) {
      if (pool_off_[qid] + offset >= shared_pool_->len) return nullptr;
      return shared_pool_->base + pool_off_[qid] + offset;
    }
    if (qid >= pools_.size() || !pools_[qid] || offset >= pools_[qid]->len) return nullptr;
    return pools_[qid]->base + offset;
  }

  Side& side_;
  Observed* obs_;
  const int fd_;
  uint64_t next_ud_ = 1000;
  std::vector<std::unique_ptr<Ent>> ents_;
  std::vector<std::unique_ptr<Mapping>> pools_;
  std::vector<std::unique_ptr<Mapping>> payloads_;
  std::vector<int> fixed_;
  std::vector<Held> held_;
  std::vector<uring::Completion> late_;
  std::vector<uring::Completion> deferred_;
  bool zc_slots_ = false;
  bool mask_entry_ = false;
  int backing_fd_ = -1;
  int last_zc_slot_ = -1;
  Mapping* shared_pool_ = nullptr;
  std::vector<size_t> pool_off_;
};

// The main bufpool script; abort_error: the short connection that
// negotiates FUSE_ABORT_ERROR and only checks teardown.
Observed RunPoolMain(Side& side, bool abort_error, std::string* skip) {
  Observed o;
  PoolServer sv(side, &o);
  const unsigned nq = side.nr_queues();
  const uint16_t last = static_cast<uint16_t>(nq - 1);
  const size_t bs = PoolBufSize();
  const bool full = !abort_error;
  Mapping scratch(2 * bs);
  const uint64_t scratch_addr = reinterpret_cast<uint64_t>(scratch.base);
  constexpr uint32_t kAddQueue = FUSE_IO_URING_CMD_ADD_QUEUE;
  constexpr uint32_t kCommit = FUSE_IO_URING_CMD_COMMIT_AND_FETCH;

  if (full) o.res["A00 add_queue before INIT"] = sv.Cmd(kAddQueue, 0);
  if (!side.FinishInit(PoolInit(abort_error))) {
    *skip = "INIT does not offer FUSE_OVER_IO_URING";
    return o;
  }
  *skip = PoolSkipReason(side);
  if (!skip->empty()) return o;

  // Setup errors and setup.
  if (full) {
    o.res["A01 add_queue unknown flag"] = sv.Cmd(kAddQueue, 0, 1u << 1);
    o.res["A02 add_queue qid == nr_queues"] = sv.Cmd(kAddQueue, static_cast<uint16_t>(nq));
    int r = 2;  // 2: could not drop CAP_SYS_ADMIN
    std::thread t([&] {
      if (DropCapSysAdmin()) r = sv.Cmd(kAddQueue, 0, FUSE_URING_ZERO_COPY);
    });
    t.join();
    o.res["A03 add_queue zero-copy without CAP_SYS_ADMIN"] = r;
    o.res["A04 add_bufpool before add_queue"] = sv.AddPool(0, scratch_addr, bs);
    o.res["A05 commit on a queue that does not exist"] = sv.Cmd(kCommit, 0, 0, 42);
  }
  for (uint16_t q = 0; q < nq; q++) {
    o.res[absl::StrCat("A06 add_queue q", q)] = sv.Cmd(kAddQueue, q);
  }
  if (full) {
    o.res["A07 add_queue twice"] = sv.Cmd(kAddQueue, 0);
    o.res["A08 commit on a queue without entries"] = sv.Cmd(kCommit, 0, 0, 42);
    o.res["A09 add_bufpool flags 1"] = sv.AddPool(0, scratch_addr, bs, -1, 1);
    o.res["A10 add_bufpool reserved 1"] = sv.AddPool(0, scratch_addr, bs, -1, 0, 1);
    o.res["A11 add_bufpool len max_write (half a buffer)"] =
        sv.AddPool(0, scratch_addr, kPoolMaxWrite);
  }
  o.res["A15 add_bufpool q0 registered, 2 buffers"] = sv.SetupPool(0, 2, true);
  if (full) o.res["A16 add_bufpool twice"] = sv.AddPool(0, scratch_addr, bs);
  for (uint16_t q = 1; q < nq; q++) {
    o.res[absl::StrCat("A17 add_bufpool q", q, " 1 buffer")] = sv.SetupPool(q, 1, false);
  }
  o.res["A18 register 2 entries per queue: CQEs at once"] = sv.RegisterAll(2);

  // Requests of every payload class.
  o.client["C1 stat hello"] = sv.RunOp(StatOp("hello"), 0);
  if (full) {
    // Buffer 1 (offset = buffer size) while a LOOKUP holds buffer 0; then a
    // request without payload on that entry: no buffer, offset 0.
    int h1 = sv.StartHeld(StatOp("hold1"), 0, 1);
    o.client["C2 stat c"] = sv.RunOp(StatOp("c"), 0);
    o.client["C3 access hello"] = sv.RunOp(AccessOp(), 0);
    sv.Answer(sv.HeldAt(0).ent, sv.HeldAt(0).in);
    sv.ServeUntil([&] { return side.OpDone(h1); });
    o.client["C2 stat hold1"] = side.OpResult(h1);
    o.client["C4 file ops"] = sv.RunOp(FileOpsOp(), 0);
    o.client["C5 getattr hello"] = sv.RunOp(GetattrOp(), 0);

    // Pool exhaustion on the last queue (1 buffer, 2 entries).
    int h2 = sv.StartHeld(StatOp("hold2"), last, 2);
    int w = side.StartOp(StatOp("wait"), last);
    sv.Serve(absl::Milliseconds(300));
    o.client["E2 access while a LOOKUP waits for a buffer"] = sv.RunOp(AccessOp(), last);
    o.res["E3 the waiting LOOKUP finished before the holder committed"] = side.OpDone(w);
    sv.Answer(sv.HeldAt(1).ent, sv.HeldAt(1).in);
    sv.ServeUntil([&] { return side.OpDone(h2) && side.OpDone(w); });
    o.client["E4 stat hold2"] = side.OpResult(h2);
    o.client["E5 stat wait"] = side.OpResult(w);

    // Commit errors.
    o.res["K1 commit a stale commit_id"] = sv.Cmd(kCommit, last, 0, sv.HeldAt(1).in.unique);
    // A COMMIT naming buffer index 5 (nothing registered there) on the
    // registered pool of queue 0.
    int k2 = sv.StartHeld(StatOp("hold-k2"), 0, 3);
    const size_t late_before = sv.late().size();
    const PoolServer::Held hk = sv.HeldAt(2);
    sv.Answer(hk.ent, hk.in, /*fixed_override=*/5);
    sv.Serve(absl::Milliseconds(300));
    int k2res = 1;
    for (size_t i = late_before; i < sv.late().size(); i++) {
      if (sv.late()[i].user_data == hk.ent) k2res = sv.late()[i].res;
    }
    o.res["K2 commit naming buffer index 5"] = k2res;
    if (k2res < 0) sv.Answer(hk.ent, hk.in);  // refused: commit properly
    sv.ServeUntil([&] { return side.OpDone(k2); });
    o.client["K2 stat hold-k2"] = side.OpResult(k2);
    o.client["K3 stat after the bad index"] = sv.RunOp(StatOp("k3"), 0);
  }

  // Teardown with a request the server holds.
  const size_t nheld = sv.held().size();
  int h3 = sv.StartHeld(StatOp("hold3"), last, nheld + 1);
  const fuse_in_header held3 = sv.held().size() > nheld ? sv.held()[nheld].in : fuse_in_header{};
  if (full) {
    o.res["R0 register q0 without IORING_URING_CMD_FIXED"] =
        sv.RegisterOne(0, -1, sizeof(fuse_uring_req_header), 0);
    o.res["R1 register with a 100-byte header"] = sv.RegisterOne(last, -1, 100, 0);
    o.res["R2 commit after a failed REGISTER"] = sv.Cmd(kCommit, last, 0, 12345);
    o.res["R3 add_queue after a failed REGISTER"] = sv.Cmd(kAddQueue, 0);
  }
  side.Teardown();
  o.client["T1 the held stat at teardown"] = side.OpResult(h3);
  sv.CountTeardown(&o, absl::Seconds(1));
  o.res["T2 commit the held request after teardown"] = sv.Cmd(kCommit, last, 0, held3.unique);
  return o;
}

// Setup-only connections, each left unusable by what it checks.
Observed RunPoolEdges(Side& side, int which, std::string* skip) {
  Observed o;
  PoolServer sv(side, &o);
  const size_t bs = PoolBufSize();
  Mapping scratch(2 * bs);
  const uint64_t scratch_addr = reinterpret_cast<uint64_t>(scratch.base);
  constexpr uint32_t kAddQueue = FUSE_IO_URING_CMD_ADD_QUEUE;
  if (!side.FinishInit(PoolInit(false))) {
    *skip = "INIT does not offer FUSE_OVER_IO_URING";
    return o;
  }
  *skip = PoolSkipReason(side);
  if (!skip->empty()) return o;
  switch (which) {
    case 0:
      o.res["B0 add_queue q0"] = sv.Cmd(kAddQueue, 0);
      o.res["B0 add_queue q1"] = sv.Cmd(kAddQueue, 1);
      o.res["B1 add_bufpool with fixed index 3, nothing registered"] =
          sv.AddPool(0, scratch_addr, bs, 3);
      o.res["B2 add_bufpool uaddr 0"] = sv.AddPool(0, 0, bs);
      o.res["B3 add_bufpool 1.5 buffers"] = sv.AddPool(1, scratch_addr, bs + bs / 2);
      break;
    case 1:
      o.res["C1 register q0 with a payload (no ADD_QUEUE)"] =
          sv.RegisterOne(0, -1, sizeof(fuse_uring_req_header), bs);
      o.res["C2 add_queue on the queue REGISTER created"] = sv.Cmd(kAddQueue, 0);
      o.res["C3 add_bufpool on the queue REGISTER created"] = sv.AddPool(0, scratch_addr, bs);
      o.res["C4 add_queue q1"] = sv.Cmd(kAddQueue, 1);
      o.res["C5 register q1 with a payload after ADD_QUEUE, no pool"] =
          sv.RegisterOne(1, -1, sizeof(fuse_uring_req_header), bs);
      break;
    case 3: {
      // A pool "registered" under an index with no buffer behind it: the
      // SQEs agree with it, the request fails when the kernel imports it.
      o.res["F0 add_queue q0"] = sv.Cmd(kAddQueue, 0);
      o.res["F0 add_queue q1"] = sv.Cmd(kAddQueue, 1);
      o.res["F1 add_bufpool q0 fixed index 3, nothing registered"] = sv.SetupPoolBadIndex(0, 2, 3);
      o.res["F2 add_bufpool q1"] = sv.SetupPool(1, 1, false);
      o.res["F3 register 2 entries per queue: CQEs at once"] = sv.RegisterAll(2);
      o.client["F4 stat f4 (queue 0)"] = sv.RunOp(StatOp("f4"), 0);
      o.client["F5 stat hello (queue 1)"] = sv.RunOp(StatOp("hello"), 1);
      o.client["F6 access hello (queue 0, no buffer to import)"] = sv.RunOp(AccessOp(), 0);
      o.client["F7 stat f7 (queue 0)"] = sv.RunOp(StatOp("f7"), 0);
      break;
    }
    case 2:
      o.res["D1 add_queue q0 zero-copy (CAP_SYS_ADMIN)"] =
          sv.Cmd(kAddQueue, 0, FUSE_URING_ZERO_COPY);
      o.res["D2 add_bufpool unregistered on a zero-copy queue"] =
          sv.AddPool(0, scratch_addr, bs);
      o.res["D3 register q0 with a payload on a zero-copy queue"] =
          sv.RegisterOne(0, -1, sizeof(fuse_uring_req_header), bs);
      o.res["D4 add_queue q1 after the failed REGISTER"] = sv.Cmd(kAddQueue, 1);
      break;
  }
  side.Teardown();
  sv.CountTeardown(&o, absl::Milliseconds(300));
  return o;
}

// ---- zero-copy (7.46, FUSE_URING_ZERO_COPY) ---------------------------------------
//
// Zero-copy queues with the pools of every queue in registered slot 0 of a
// sparse buffer table (1 + one slot per entry: entry i names slot i + 1 in
// REGISTER), an OPEN of "zc" answered with FOPEN_IO_URING_ZERO_COPY, and
// the caller's pread/pwrite (O_DIRECT and buffered) served with
// READ_FIXED/WRITE_FIXED at address 0 of the entry's slot against a memfd.
// The callers check the bytes they read, the script the bytes written.

unsigned char ZcByte(int seed, size_t i) { return static_cast<unsigned char>((i * 7 + 3 + seed * 101) & 0xff); }

// Real: open("zc", rw | direct), one pread/pwrite of len at off, close.
// Kernel: OPEN, READ/WRITE (pages), FLUSH, RELEASE. A read compares with
// `expect` (the file's bytes at off); data: "ok" or the first mismatch.
// getattr: the kernel revalidates the size first (a read past the cached
// i_size); xattr: the first write of the connection asks for
// security.capability first (file_modified; the server's ENOSYS stops it).
ClientOp ZcIoOp(const std::string& name, bool write, bool direct, uint64_t off, size_t len, int seed,
                const std::string& expect, bool getattr = false, bool xattr = false) {
  ClientOp op;
  op.name = name;
  auto check = [expect](const char* got, size_t n) {
    for (size_t i = 0; i < n; i++) {
      if (i >= expect.size() || got[i] != expect[i]) return absl::StrCat("mismatch at ", i);
    }
    return std::string("ok");
  };
  const int flags = (write ? O_WRONLY : O_RDONLY) | (direct ? O_DIRECT : 0);
  op.real = [=](const std::string& dir) {
    ClientResult r;
    int f = open((dir + "/zc").c_str(), flags | O_CLOEXEC);
    if (f < 0) {
      r.err = errno;
      return r;
    }
    void* mem = nullptr;
    if (posix_memalign(&mem, 4096, len) != 0) abort();
    char* b = static_cast<char*>(mem);
    for (size_t i = 0; i < len; i++) b[i] = static_cast<char>(write ? ZcByte(seed, off + i) : 0);
    ssize_t n = write ? pwrite(f, b, len, static_cast<off_t>(off)) : pread(f, b, len, static_cast<off_t>(off));
    if (n < 0) {
      r.err = errno;
    } else {
      r.size = static_cast<uint64_t>(n);
      if (!write) r.data = check(b, static_cast<size_t>(n));
    }
    free(mem);
    close(f);
    return r;
  };
  op.model = [=](ModelClient& c) {
    ClientResult r;
    fuse_open_in oi{};
    oi.flags = flags | O_LARGEFILE;
    std::string d;
    r.err = c.Call(FUSE_OPEN, kZcIno, Bytes(oi), "", sizeof(fuse_open_out), &d);
    if (r.err) return r;
    fuse_open_out oo;
    std::memcpy(&oo, d.data(), sizeof(oo));
    if (getattr) {
      fuse_getattr_in g{};
      c.Call(FUSE_GETATTR, kZcIno, Bytes(g), "", sizeof(fuse_attr_out));
    }
    if (xattr) {
      fuse_getxattr_in gx{};
      c.Call(FUSE_GETXATTR, kZcIno, Bytes(gx), std::string("security.capability") + '\0',
             sizeof(fuse_getxattr_out));
    }
    if (write) {
      fuse_write_in wi{};
      wi.fh = oo.fh;
      wi.offset = off;
      wi.size = static_cast<uint32_t>(len);
      wi.flags = flags | O_LARGEFILE;
      std::string pages(len, '\0');
      for (size_t i = 0; i < len; i++) pages[i] = static_cast<char>(ZcByte(seed, off + i));
      r.err = c.CallPages(FUSE_WRITE, kZcIno, Bytes(wi), pages, sizeof(fuse_write_out), &d);
      if (r.err == 0) {
        fuse_write_out wo;
        std::memcpy(&wo, d.data(), sizeof(wo));
        r.size = wo.size;
      }
    } else {
      fuse_read_in ri{};
      ri.fh = oo.fh;
      ri.offset = off;
      const uint32_t wl = static_cast<uint32_t>(len);
      ri.size = wl;
      ri.flags = flags | O_LARGEFILE;
      r.err = c.CallPages(FUSE_READ, kZcIno, Bytes(ri), std::string(wl, '\0'), wl, &d);
      if (r.err == 0) {
        r.size = d.size();
        r.data = check(d.data(), d.size());
      }
    }
    fuse_flush_in fi{};
    fi.fh = oo.fh;
    c.Call(FUSE_FLUSH, kZcIno, Bytes(fi), "", 0);
    fuse_release_in rl{};
    rl.fh = oo.fh;
    rl.flags = flags | O_LARGEFILE;
    c.Call(FUSE_RELEASE, kZcIno, Bytes(rl), "", 0);
    return r;
  };
  return op;
}

// A memfd of kZcSize bytes of seed 0.
struct Backing {
  Backing() {
    fd = static_cast<int>(syscall(SYS_memfd_create, "kmfuse-xcheck-zc", 0));
    std::string b(kZcSize, '\0');
    for (size_t i = 0; i < kZcSize; i++) b[i] = static_cast<char>(ZcByte(0, i));
    if (fd >= 0 && pwrite(fd, b.data(), b.size(), 0) != static_cast<ssize_t>(b.size())) abort();
    expect = b;
  }
  ~Backing() {
    if (fd >= 0) close(fd);
  }
  void Wrote(int seed, uint64_t off, size_t len) {
    for (size_t i = 0; i < len; i++) expect[off + i] = static_cast<char>(ZcByte(seed, off + i));
  }
  int Matches() const {
    std::string b(kZcSize, '\0');
    if (pread(fd, b.data(), b.size(), 0) != static_cast<ssize_t>(b.size())) return -1;
    return b == expect ? 1 : 0;
  }
  int fd = -1;
  std::string expect;
};

// which: 0 the main script; 1 mixed queues (q0 zero-copy, the others not)
// and an open with the flag; 2 REGISTER with a slot on a queue that is not
// zero-copy; 3 REGISTER with slot 0 on a zero-copy queue; 4 a zero-copy
// queue whose pool is registered in slot 1; 5 no zero-copy queue and an
// open with the flag. 1 and 3-5 then serve a stat and O_DIRECT preads on
// queue 0 and queue 1.
Observed RunZeroCopy(Side& side, int which, std::string* skip) {
  Observed o;
  PoolServer sv(side, &o);
  const unsigned nq = side.nr_queues();
  const size_t bs = PoolBufSize();
  constexpr uint32_t kAddQueue = FUSE_IO_URING_CMD_ADD_QUEUE;
  Backing backing;
  if (!side.FinishInit(PoolInit(false))) {
    *skip = "INIT does not offer FUSE_OVER_IO_URING";
    return o;
  }
  *skip = PoolSkipReason(side);
  if (!skip->empty()) return o;
  sv.set_zero_copy(which == 0, backing.fd);
  sv.set_mask_entry(which == 0);
  const bool serve = which == 0 || which == 1 || which == 3 || which == 4 || which == 5;
  Mapping pool(nq * 2 * bs);
  const unsigned slots = 1 + 2 * nq;
  if (which == 1) o.res["Y0 add_queue zero-copy with an unknown flag"] =
      sv.Cmd(kAddQueue, 0, FUSE_URING_ZERO_COPY | (1u << 1));
  for (uint16_t q = 0; q < nq; q++) {
    const bool zc = which == 0 || which == 3 || which == 4 || (which == 1 && q == 0);
    if (which == 5) {
      o.res[absl::StrCat("Z00 add_queue q", q)] = sv.Cmd(kAddQueue, q);
      continue;
    }
    o.res[absl::StrCat("Z00 add_queue q", q, zc ? " zero-copy" : "")] =
        sv.Cmd(kAddQueue, q, zc ? FUSE_URING_ZERO_COPY : 0);
  }
  int table_rc = 0, update_rc = 0;
  const int pool_slot = which == 4 ? 1 : 0;
  {
    table_rc = uring::RegisterSparseBuffers(side.ring(), slots);
    struct iovec iov = {pool.base, pool.len};
    update_rc = uring::UpdateBuffers(side.ring(), static_cast<unsigned>(pool_slot), &iov, 1);
  }
  o.res["Z01 sparse buffer table"] = table_rc;
  o.res[absl::StrCat("Z02 pool memory into slot ", pool_slot)] = update_rc;
  for (uint16_t q = 0; q < nq; q++) {
    o.res[absl::StrCat("Z03 add_bufpool q", q, " registered slot ", pool_slot)] =
        sv.AddSharedPool(q, &pool, q * 2 * bs, 2 * bs, pool_slot);
  }
  switch (which) {
    case 0:
      o.res["Z04 register 2 entries per queue with slots: CQEs at once"] = sv.RegisterAll(2);
      break;
    case 1:
      for (uint16_t q = 0; q < nq; q++) {
        for (int i = 0; i < 2; i++) {
          const uint16_t slot = q == 0 ? static_cast<uint16_t>(sv.entries() + 1) : 0;
          o.res[absl::StrCat("Y1 register q", q, " entry ", i, " slot ", slot)] =
              sv.RegisterOne(q, 0, sizeof(fuse_uring_req_header), 0, slot);
        }
      }
      break;
    case 2:
      o.res["Y2 register slot 1 on a queue without zero-copy"] =
          sv.RegisterOne(0, 0, sizeof(fuse_uring_req_header), 0, 1);
      break;
    case 3:
      o.res["Y3 register slot 0 on a zero-copy queue"] =
          sv.RegisterOne(0, 0, sizeof(fuse_uring_req_header), 0, 0);
      for (uint16_t q = 1; q < nq; q++) {
        o.res[absl::StrCat("Y3 register q", q, " slot ", sv.entries() + 1)] = sv.RegisterOne(
            q, 0, sizeof(fuse_uring_req_header), 0, static_cast<uint16_t>(sv.entries() + 1));
      }
      break;
    case 4:
      // Entry i names slot i + 2 (slot 1 is the pool).
      for (uint16_t q = 0; q < nq; q++) {
        o.res[absl::StrCat("Y4 register q", q, " slot ", sv.entries() + 2,
                           " on a zero-copy queue whose pool is slot 1")] =
            sv.RegisterOne(q, 1, sizeof(fuse_uring_req_header), 0,
                           static_cast<uint16_t>(sv.entries() + 2));
      }
      break;
    case 5:
      for (uint16_t q = 0; q < nq; q++) {
        o.res[absl::StrCat("Y5 register q", q, " (no zero-copy)")] =
            sv.RegisterOne(q, 0, sizeof(fuse_uring_req_header), 0, 0);
      }
      break;
  }
  if (which == 0) {
    o.client["Z10 stat zc"] = sv.RunOp(StatOp("zc"), 0);
    o.client["Z11 pread O_DIRECT 8192@0"] =
        sv.RunOp(ZcIoOp("pread direct", false, true, 0, 8192, 0, backing.expect.substr(0, 8192)), 0);
    const int slot = sv.last_zc_slot();
    o.res["Z12 read_fixed on the slot after its commit"] =
        slot < 0 ? 1 : sv.FixedOp(false, static_cast<uint16_t>(slot), 0, 4096, 0);
    o.client["Z13 pwrite O_DIRECT 4096@4096"] =
        sv.RunOp(ZcIoOp("pwrite direct", true, true, 4096, 4096, 1, "", false, true), 0);
    backing.Wrote(1, 4096, 4096);
    o.client["Z14 pwrite buffered 4096@16384"] =
        sv.RunOp(ZcIoOp("pwrite buffered", true, false, 16384, 4096, 2, ""), 0);
    backing.Wrote(2, 16384, 4096);
    o.client["Z15 pread buffered 4096@4096"] = sv.RunOp(
        ZcIoOp("pread buffered", false, false, 4096, 4096, 0, backing.expect.substr(4096, 4096)), 0);
    // Past the size the kernel cached: GETATTR, then the whole READ, which
    // READ_FIXED answers short (4096 bytes to EOF).
    o.client["Z16 pread O_DIRECT 8192@kZcSize-4096 (short)"] = sv.RunOp(
        ZcIoOp("pread direct short", false, true, kZcSize - 4096, 8192, 0,
               backing.expect.substr(kZcSize - 4096), true),
        0);
    o.res["Z17 the backing file holds the written bytes"] = backing.Matches();
  } else if (serve) {
    sv.set_zero_copy(false, backing.fd);
    o.client["Y6 stat zc"] = sv.RunOp(StatOp("zc"), 0);
    o.client["Y7 pread O_DIRECT 4096@0 on queue 0"] = sv.RunOp(
        ZcIoOp("pread q0", false, true, 0, 4096, 0, backing.expect.substr(0, 4096)), 0);
    o.client["Y8 pread O_DIRECT 4096@8192 on queue 1"] = sv.RunOp(
        ZcIoOp("pread q1", false, true, 8192, 4096, 0, backing.expect.substr(8192, 4096)), 1);
  }
  side.Teardown();
  sv.CountTeardown(&o, absl::Milliseconds(300));
  return o;
}

// Per-entry teardown (every kernel with FUSE-over-io_uring): a request held
// by the server when the connection ends; abort_error negotiates
// FUSE_ABORT_ERROR.
Observed RunPerEntryTeardown(Side& side, bool abort_error, std::string* skip) {
  Observed o;
  PoolServer sv(side, &o);
  InitParams p = PerEntryInit();
  if (abort_error) p.flags |= FUSE_ABORT_ERROR;
  if (!side.FinishInit(p)) {
    *skip = "INIT does not offer FUSE_OVER_IO_URING";
    return o;
  }
  const size_t payload = UringMinPayload(kMaxWrite, kMaxPages, PageSize());
  for (uint16_t q = 0; q < side.nr_queues(); q++) {
    for (int i = 0; i < 2; i++) {
      o.res[absl::StrCat("P0 register q", q, " entry ", i)] =
          sv.RegisterOne(q, -1, sizeof(fuse_uring_req_header), payload);
    }
  }
  o.client["P1 stat hello"] = sv.RunOp(StatOp("hello"), 0);
  int h = sv.StartHeld(StatOp("hold"), 0, 1);
  const fuse_in_header held = sv.HeldAt(0).in;
  side.Teardown();
  o.client["P2 the held stat at teardown"] = side.OpResult(h);
  sv.CountTeardown(&o, absl::Seconds(1));
  o.res["P3 commit the held request after teardown"] =
      sv.Cmd(FUSE_IO_URING_CMD_COMMIT_AND_FETCH, 0, 0, held.unique);
  o.res["P4 register after teardown"] =
      sv.RegisterOne(0, -1, sizeof(fuse_uring_req_header), payload);
  return o;
}

TEST(UringCrossCheck, PerEntryTeardownMatchesTheRealKernel) {
  for (bool abort_error : {false, true}) {
    SCOPED_TRACE(abort_error ? "FUSE_ABORT_ERROR" : "no FUSE_ABORT_ERROR");
    std::string skip;
    std::unique_ptr<RealSide> real = RealSide::Create(&skip);
    if (!real) GTEST_SKIP() << "real-kernel side unavailable: " << skip;
    Observed r = RunPerEntryTeardown(*real, abort_error, &skip);
    const uint32_t offered = real->offered_minor();
    real.reset();
    if (!skip.empty()) GTEST_SKIP() << skip;
    printf("--- per-entry teardown, abort_error %d (kernel offers 7.%u)\n", abort_error, offered);
    Print("real", r);
    model::ModelOptions mo = PerEntryModel(PossibleCpus(), ModelMinor(offered));
    mo.abort_error = abort_error;
    ModelSide model(mo);
    Observed m = RunPerEntryTeardown(model, abort_error, &skip);
    Print("model", m);
    Compare(r, m);
  }
}

struct PoolScript {
  const char* name;
  bool abort_error;
  std::function<Observed(Side&, std::string*)> run;
};

std::vector<PoolScript> PoolScripts() {
  return {
      {"main", false, [](Side& s, std::string* k) { return RunPoolMain(s, false, k); }},
      {"abort-error", true, [](Side& s, std::string* k) { return RunPoolMain(s, true, k); }},
      {"edges-pool", false, [](Side& s, std::string* k) { return RunPoolEdges(s, 0, k); }},
      {"edges-register", false, [](Side& s, std::string* k) { return RunPoolEdges(s, 1, k); }},
      {"edges-zero-copy", false, [](Side& s, std::string* k) { return RunPoolEdges(s, 2, k); }},
      {"edges-bad-index", false, [](Side& s, std::string* k) { return RunPoolEdges(s, 3, k); }},
      {"zero-copy", false, [](Side& s, std::string* k) { return RunZeroCopy(s, 0, k); }},
      {"zero-copy-mixed", false, [](Side& s, std::string* k) { return RunZeroCopy(s, 1, k); }},
      {"zero-copy-slot-plain", false, [](Side& s, std::string* k) { return RunZeroCopy(s, 2, k); }},
      {"zero-copy-slot-0", false, [](Side& s, std::string* k) { return RunZeroCopy(s, 3, k); }},
      {"zero-copy-pool-slot-1", false, [](Side& s, std::string* k) { return RunZeroCopy(s, 4, k); }},
      {"zero-copy-none", false, [](Side& s, std::string* k) { return RunZeroCopy(s, 5, k); }},
  };
}

// What 7.3 answered to each bufpool script (tools/vm, 2 CPUs, 7.3~rc7),
// line by line as Lines() prints an Observed. The model must give the same
// on any machine (BufpoolModelScriptExpectations).
const std::map<std::string, std::vector<std::string>>& Golden73() {
  static const auto* golden = new std::map<std::string, std::vector<std::string>>{
      {"main",
       {
           R"(A00 add_queue before INIT -> -11)",
           R"(A01 add_queue unknown flag -> -22)",
           R"(A02 add_queue qid == nr_queues -> -22)",
           R"(A03 add_queue zero-copy without CAP_SYS_ADMIN -> -1)",
           R"(A04 add_bufpool before add_queue -> -22)",
           R"(A05 commit on a queue that does not exist -> -107)",
           R"(A06 add_queue q0 -> 0)",
           R"(A06 add_queue q1 -> 0)",
           R"(A07 add_queue twice -> -17)",
           R"(A08 commit on a queue without entries -> -2)",
           R"(A09 add_bufpool flags 1 -> -22)",
           R"(A10 add_bufpool reserved 1 -> -22)",
           R"(A11 add_bufpool len max_write (half a buffer) -> -22)",
           R"(A15 add_bufpool q0 registered, 2 buffers -> 0)",
           R"(A16 add_bufpool twice -> -22)",
           R"(A17 add_bufpool q1 1 buffer -> 0)",
           R"(A18 register 2 entries per queue: CQEs at once -> 0)",
           R"(E3 the waiting LOOKUP finished before the holder committed -> 0)",
           R"(K1 commit a stale commit_id -> -2)",
           R"(K2 commit naming buffer index 5 -> -22)",
           R"(R0 register q0 without IORING_URING_CMD_FIXED -> -22)",
           R"(R1 register with a 100-byte header -> -95)",
           R"(R2 commit after a failed REGISTER -> -95)",
           R"(R3 add_queue after a failed REGISTER -> -95)",
           R"(T2 commit the held request after teardown -> -107)",
           R"(C1 stat hello -> {err 0, size 5, ino 2, data ''})",
           R"(C2 stat c -> {err 0, size 5, ino 2, data ''})",
           R"(C2 stat hold1 -> {err 0, size 5, ino 2, data ''})",
           R"(C3 access hello -> {err 0, size 0, ino 0, data ''})",
           R"(C4 file ops -> {err 0, size 10, ino 0, data ''})",
           R"(C5 getattr hello -> {err 0, size 5, ino 2, data ''})",
           R"(E2 access while a LOOKUP waits for a buffer -> {err 0, size 0, ino 0, data ''})",
           R"(E4 stat hold2 -> {err 0, size 5, ino 2, data ''})",
           R"(E5 stat wait -> {err 0, size 5, ino 2, data ''})",
           R"(K2 stat hold-k2 -> {err 0, size 5, ino 2, data ''})",
           R"(K3 stat after the bad index -> {err 0, size 5, ino 2, data ''})",
           R"(T1 the held stat at teardown -> {err 103, size 0, ino 0, data ''})",
           R"(seen {q0 op 1 node 1 len 46 payload_sz 6 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry 1 payload 'hello\x00'})",
           R"(seen {q0 op 1 node 1 len 46 payload_sz 6 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry 1 payload 'hold1\x00'})",
           R"(seen {q0 op 1 node 1 len 42 payload_sz 2 commit_id==unique 1 read 0@0 offset 65536 flags 0 wrote in_out 40 op_in 0 entry 0 payload 'c\x00'})",
           R"(seen {q0 op 34 node 2 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry 0 payload ''})",
           R"(seen {q0 op 14 node 2 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry 1 payload ''})",
           R"(seen {q0 op 16 node 2 len 90 payload_sz 10 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 40 entry 1 payload '0123456789'})",
           R"(seen {q0 op 20 node 2 len 56 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 16 entry 1 payload ''})",
           R"(seen {q0 op 32 node 2 len 88 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 48 entry 1 payload ''})",
           R"(seen {q0 op 22 node 2 len 68 payload_sz 20 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry 1 payload 'security.capabil'})",
           R"(seen {q0 op 43 node 2 len 72 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 32 entry 1 payload ''})",
           R"(seen {q0 op 25 node 2 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 1 payload ''})",
           R"(seen {q65535 op 18 node 2 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 1 payload ''})",
           R"(seen {q0 op 3 node 2 len 56 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 16 entry 1 payload ''})",
           R"(seen {q1 op 1 node 1 len 46 payload_sz 6 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry 3 payload 'hold2\x00'})",
           R"(seen {q1 op 34 node 2 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry 2 payload ''})",
           R"(seen {q1 op 1 node 1 len 45 payload_sz 5 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry 3 payload 'wait\x00'})",
           R"(seen {q0 op 1 node 1 len 48 payload_sz 8 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry 1 payload 'hold-k2\x00'})",
           R"(seen {q0 op 1 node 1 len 43 payload_sz 3 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry 1 payload 'k3\x00'})",
           R"(seen {q1 op 1 node 1 len 46 payload_sz 6 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry 3 payload 'hold3\x00'})",
           R"(teardown ENOTCONN 3 other 0)",
           R"(unexpected CQE entry 1 res -22)",
       }},
      {"abort-error",
       {
           R"(A06 add_queue q0 -> 0)",
           R"(A06 add_queue q1 -> 0)",
           R"(A15 add_bufpool q0 registered, 2 buffers -> 0)",
           R"(A17 add_bufpool q1 1 buffer -> 0)",
           R"(A18 register 2 entries per queue: CQEs at once -> 0)",
           R"(T2 commit the held request after teardown -> -107)",
           R"(C1 stat hello -> {err 0, size 5, ino 2, data ''})",
           R"(T1 the held stat at teardown -> {err 103, size 0, ino 0, data ''})",
           R"(seen {q0 op 1 node 1 len 46 payload_sz 6 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry 1 payload 'hello\x00'})",
           R"(seen {q1 op 1 node 1 len 46 payload_sz 6 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry 3 payload 'hold3\x00'})",
           R"(teardown ENOTCONN 3 other 0)",
       }},
      {"edges-pool",
       {
           R"(B0 add_queue q0 -> 0)",
           R"(B0 add_queue q1 -> 0)",
           R"(B1 add_bufpool with fixed index 3, nothing registered -> 0)",
           R"(B2 add_bufpool uaddr 0 -> -22)",
           R"(B3 add_bufpool 1.5 buffers -> 0)",
           R"(teardown ENOTCONN 0 other 0)",
       }},
      {"edges-register",
       {
           R"(C1 register q0 with a payload (no ADD_QUEUE) -> 1)",
           R"(C2 add_queue on the queue REGISTER created -> -17)",
           R"(C3 add_bufpool on the queue REGISTER created -> -22)",
           R"(C4 add_queue q1 -> 0)",
           R"(C5 register q1 with a payload after ADD_QUEUE, no pool -> 1)",
           R"(teardown ENOTCONN 2 other 0)",
       }},
      {"edges-zero-copy",
       {
           R"(D1 add_queue q0 zero-copy (CAP_SYS_ADMIN) -> 0)",
           R"(D2 add_bufpool unregistered on a zero-copy queue -> 0)",
           R"(D3 register q0 with a payload on a zero-copy queue -> -22)",
           R"(D4 add_queue q1 after the failed REGISTER -> -95)",
           R"(teardown ENOTCONN 0 other 0)",
       }},
      {"edges-bad-index",
       {
           R"(F0 add_queue q0 -> 0)",
           R"(F0 add_queue q1 -> 0)",
           R"(F1 add_bufpool q0 fixed index 3, nothing registered -> 0)",
           R"(F2 add_bufpool q1 -> 0)",
           R"(F3 register 2 entries per queue: CQEs at once -> 0)",
           R"(F4 stat f4 (queue 0) -> {err 14, size 0, ino 0, data ''})",
           R"(F5 stat hello (queue 1) -> {err 0, size 5, ino 2, data ''})",
           R"(F6 access hello (queue 0, no buffer to import) -> {err 0, size 0, ino 0, data ''})",
           R"(F7 stat f7 (queue 0) -> {err 14, size 0, ino 0, data ''})",
           R"(seen {q1 op 1 node 1 len 46 payload_sz 6 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry 3 payload 'hello\x00'})",
           R"(seen {q0 op 34 node 2 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry 1 payload ''})",
           R"(teardown ENOTCONN 4 other 0)",
       }},
      {"zero-copy",
       {
           R"(Z00 add_queue q0 zero-copy -> 0)",
           R"(Z00 add_queue q1 zero-copy -> 0)",
           R"(Z01 sparse buffer table -> 0)",
           R"(Z02 pool memory into slot 0 -> 1)",
           R"(Z03 add_bufpool q0 registered slot 0 -> 0)",
           R"(Z03 add_bufpool q1 registered slot 0 -> 0)",
           R"(Z04 register 2 entries per queue with slots: CQEs at once -> 0)",
           R"(Z12 read_fixed on the slot after its commit -> -14)",
           R"(Z17 the backing file holds the written bytes -> 1)",
           R"(Z10 stat zc -> {err 0, size 65536, ino 3, data ''})",
           R"(Z11 pread O_DIRECT 8192@0 -> {err 0, size 8192, ino 0, data 'ok'})",
           R"(Z13 pwrite O_DIRECT 4096@4096 -> {err 0, size 4096, ino 0, data ''})",
           R"(Z14 pwrite buffered 4096@16384 -> {err 0, size 4096, ino 0, data ''})",
           R"(Z15 pread buffered 4096@4096 -> {err 0, size 4096, ino 0, data 'ok'})",
           R"(Z16 pread O_DIRECT 8192@kZcSize-4096 (short) -> {err 0, size 4096, ino 0, data 'ok'})",
           R"(seen {q0 op 1 node 1 len 43 payload_sz 3 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry -1 payload 'zc\x00'})",
           R"(seen {q0 op 14 node 3 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry -1 payload ''})",
           R"(seen {q0 op 15 node 3 len 80 payload_sz 0 commit_id==unique 1 read 8192@0 offset 0 flags 1 wrote in_out 40 op_in 40 entry -1 payload ''})",
           R"(seen {q0 op 25 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry -1 payload ''})",
           R"(seen {q65535 op 18 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry -1 payload ''})",
           R"(seen {q0 op 14 node 3 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry -1 payload ''})",
           R"(seen {q0 op 22 node 3 len 68 payload_sz 20 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry -1 payload 'security.capabil'})",
           R"(seen {q0 op 16 node 3 len 4176 payload_sz 4096 commit_id==unique 1 read 4096@4096 offset 0 flags 1 wrote in_out 40 op_in 40 entry -1 payload ''})",
           R"(seen {q0 op 25 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry -1 payload ''})",
           R"(seen {q65535 op 18 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry -1 payload ''})",
           R"(seen {q0 op 14 node 3 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry -1 payload ''})",
           R"(seen {q65535 op 16 node 3 len 4176 payload_sz 4096 commit_id==unique 1 read 4096@16384 offset 0 flags 1 wrote in_out 40 op_in 40 entry -1 payload ''})",
           R"(seen {q0 op 25 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry -1 payload ''})",
           R"(seen {q65535 op 18 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry -1 payload ''})",
           R"(seen {q0 op 14 node 3 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry -1 payload ''})",
           R"(seen {q65535 op 15 node 3 len 80 payload_sz 0 commit_id==unique 1 read 4096@4096 offset 0 flags 1 wrote in_out 40 op_in 40 entry -1 payload ''})",
           R"(seen {q0 op 25 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry -1 payload ''})",
           R"(seen {q65535 op 18 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry -1 payload ''})",
           R"(seen {q0 op 14 node 3 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry -1 payload ''})",
           R"(seen {q0 op 3 node 3 len 56 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 16 entry -1 payload ''})",
           R"(seen {q0 op 15 node 3 len 80 payload_sz 0 commit_id==unique 1 read 8192@61440 offset 0 flags 1 wrote in_out 40 op_in 40 entry -1 payload ''})",
           R"(seen {q0 op 25 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry -1 payload ''})",
           R"(seen {q65535 op 18 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry -1 payload ''})",
           R"(teardown ENOTCONN 4 other 0)",
       }},
      {"zero-copy-mixed",
       {
           R"(Y0 add_queue zero-copy with an unknown flag -> -22)",
           R"(Y1 register q0 entry 0 slot 1 -> 1)",
           R"(Y1 register q0 entry 1 slot 2 -> 1)",
           R"(Y1 register q1 entry 0 slot 0 -> 1)",
           R"(Y1 register q1 entry 1 slot 0 -> 1)",
           R"(Z00 add_queue q0 zero-copy -> 0)",
           R"(Z00 add_queue q1 -> 0)",
           R"(Z01 sparse buffer table -> 0)",
           R"(Z02 pool memory into slot 0 -> 1)",
           R"(Z03 add_bufpool q0 registered slot 0 -> 0)",
           R"(Z03 add_bufpool q1 registered slot 0 -> 0)",
           R"(Y6 stat zc -> {err 0, size 65536, ino 3, data ''})",
           R"(Y7 pread O_DIRECT 4096@0 on queue 0 -> {err 0, size 4096, ino 0, data 'ok'})",
           R"(Y8 pread O_DIRECT 4096@8192 on queue 1 -> {err 0, size 4096, ino 0, data 'ok'})",
           R"(seen {q0 op 1 node 1 len 43 payload_sz 3 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry 1 payload 'zc\x00'})",
           R"(seen {q0 op 14 node 3 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry 1 payload ''})",
           R"(seen {q0 op 15 node 3 len 80 payload_sz 0 commit_id==unique 1 read 4096@0 offset 0 flags 1 wrote in_out 40 op_in 40 entry 1 payload ''})",
           R"(seen {q0 op 25 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 1 payload ''})",
           R"(seen {q65535 op 18 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 1 payload ''})",
           R"(seen {q1 op 14 node 3 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry 3 payload ''})",
           R"(seen {q1 op 15 node 3 len 80 payload_sz 0 commit_id==unique 1 read 4096@8192 offset 0 flags 0 wrote in_out 40 op_in 40 entry 3 payload ''})",
           R"(seen {q1 op 25 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 3 payload ''})",
           R"(seen {q65535 op 18 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 3 payload ''})",
           R"(teardown ENOTCONN 4 other 0)",
       }},
      {"zero-copy-slot-plain",
       {
           R"(Y2 register slot 1 on a queue without zero-copy -> -22)",
           R"(Z00 add_queue q0 -> 0)",
           R"(Z00 add_queue q1 -> 0)",
           R"(Z01 sparse buffer table -> 0)",
           R"(Z02 pool memory into slot 0 -> 1)",
           R"(Z03 add_bufpool q0 registered slot 0 -> 0)",
           R"(Z03 add_bufpool q1 registered slot 0 -> 0)",
           R"(teardown ENOTCONN 0 other 0)",
       }},
      {"zero-copy-slot-0",
       {
           R"(Y3 register q1 slot 3 -> 1)",
           R"(Y3 register slot 0 on a zero-copy queue -> 1)",
           R"(Z00 add_queue q0 zero-copy -> 0)",
           R"(Z00 add_queue q1 zero-copy -> 0)",
           R"(Z01 sparse buffer table -> 0)",
           R"(Z02 pool memory into slot 0 -> 1)",
           R"(Z03 add_bufpool q0 registered slot 0 -> 0)",
           R"(Z03 add_bufpool q1 registered slot 0 -> 0)",
           R"(Y6 stat zc -> {err 0, size 65536, ino 3, data ''})",
           R"(Y7 pread O_DIRECT 4096@0 on queue 0 -> {err 16, size 0, ino 0, data ''})",
           R"(Y8 pread O_DIRECT 4096@8192 on queue 1 -> {err 0, size 4096, ino 0, data 'ok'})",
           R"(seen {q0 op 1 node 1 len 43 payload_sz 3 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry 0 payload 'zc\x00'})",
           R"(seen {q0 op 14 node 3 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry 0 payload ''})",
           R"(seen {q0 op 25 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 0 payload ''})",
           R"(seen {q65535 op 18 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 0 payload ''})",
           R"(seen {q1 op 14 node 3 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry 1 payload ''})",
           R"(seen {q1 op 15 node 3 len 80 payload_sz 0 commit_id==unique 1 read 4096@8192 offset 0 flags 1 wrote in_out 40 op_in 40 entry 1 payload ''})",
           R"(seen {q1 op 25 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 1 payload ''})",
           R"(seen {q65535 op 18 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 1 payload ''})",
           R"(teardown ENOTCONN 2 other 0)",
       }},
      {"zero-copy-pool-slot-1",
       {
           R"(Y4 register q0 slot 3 on a zero-copy queue whose pool is slot 1 -> 1)",
           R"(Y4 register q1 slot 4 on a zero-copy queue whose pool is slot 1 -> 1)",
           R"(Z00 add_queue q0 zero-copy -> 0)",
           R"(Z00 add_queue q1 zero-copy -> 0)",
           R"(Z01 sparse buffer table -> 0)",
           R"(Z02 pool memory into slot 1 -> 1)",
           R"(Z03 add_bufpool q0 registered slot 1 -> 0)",
           R"(Z03 add_bufpool q1 registered slot 1 -> 0)",
           R"(Y6 stat zc -> {err 0, size 65536, ino 3, data ''})",
           R"(Y7 pread O_DIRECT 4096@0 on queue 0 -> {err 0, size 4096, ino 0, data 'ok'})",
           R"(Y8 pread O_DIRECT 4096@8192 on queue 1 -> {err 0, size 4096, ino 0, data 'ok'})",
           R"(seen {q0 op 1 node 1 len 43 payload_sz 3 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry 0 payload 'zc\x00'})",
           R"(seen {q0 op 14 node 3 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry 0 payload ''})",
           R"(seen {q0 op 15 node 3 len 80 payload_sz 0 commit_id==unique 1 read 4096@0 offset 0 flags 1 wrote in_out 40 op_in 40 entry 0 payload ''})",
           R"(seen {q0 op 25 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 0 payload ''})",
           R"(seen {q65535 op 18 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 0 payload ''})",
           R"(seen {q1 op 14 node 3 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry 1 payload ''})",
           R"(seen {q1 op 15 node 3 len 80 payload_sz 0 commit_id==unique 1 read 4096@8192 offset 0 flags 1 wrote in_out 40 op_in 40 entry 1 payload ''})",
           R"(seen {q1 op 25 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 1 payload ''})",
           R"(seen {q65535 op 18 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 1 payload ''})",
           R"(teardown ENOTCONN 2 other 0)",
       }},
      {"zero-copy-none",
       {
           R"(Y5 register q0 (no zero-copy) -> 1)",
           R"(Y5 register q1 (no zero-copy) -> 1)",
           R"(Z00 add_queue q0 -> 0)",
           R"(Z00 add_queue q1 -> 0)",
           R"(Z01 sparse buffer table -> 0)",
           R"(Z02 pool memory into slot 0 -> 1)",
           R"(Z03 add_bufpool q0 registered slot 0 -> 0)",
           R"(Z03 add_bufpool q1 registered slot 0 -> 0)",
           R"(Y6 stat zc -> {err 0, size 65536, ino 3, data ''})",
           R"(Y7 pread O_DIRECT 4096@0 on queue 0 -> {err 0, size 4096, ino 0, data 'ok'})",
           R"(Y8 pread O_DIRECT 4096@8192 on queue 1 -> {err 0, size 4096, ino 0, data 'ok'})",
           R"(seen {q0 op 1 node 1 len 43 payload_sz 3 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 0 entry 0 payload 'zc\x00'})",
           R"(seen {q0 op 14 node 3 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry 0 payload ''})",
           R"(seen {q0 op 15 node 3 len 80 payload_sz 0 commit_id==unique 1 read 4096@0 offset 0 flags 0 wrote in_out 40 op_in 40 entry 0 payload ''})",
           R"(seen {q0 op 25 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 0 payload ''})",
           R"(seen {q65535 op 18 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 0 payload ''})",
           R"(seen {q1 op 14 node 3 len 48 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 8 entry 1 payload ''})",
           R"(seen {q1 op 15 node 3 len 80 payload_sz 0 commit_id==unique 1 read 4096@8192 offset 0 flags 0 wrote in_out 40 op_in 40 entry 1 payload ''})",
           R"(seen {q1 op 25 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 1 payload ''})",
           R"(seen {q65535 op 18 node 3 len 64 payload_sz 0 commit_id==unique 1 read 0@0 offset 0 flags 0 wrote in_out 40 op_in 24 entry 1 payload ''})",
           R"(teardown ENOTCONN 2 other 0)",
       }},
  };
  return *golden;
}

TEST(UringCrossCheck, BufpoolModelMatchesTheRealKernel) {
  if (PossibleCpus() < 2) GTEST_SKIP() << "the bufpool script needs two queues (possible CPUs)";
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (geteuid() != 0) GTEST_SKIP() << "needs root (mount, CAP_SYS_ADMIN)";
  for (const PoolScript& script : PoolScripts()) {
    SCOPED_TRACE(script.name);
    std::string skip;
    std::unique_ptr<RealSide> real = RealSide::Create(&skip);
    if (!real) GTEST_SKIP() << "real-kernel side unavailable: " << skip;
    Observed r = script.run(*real, &skip);
    const uint32_t offered = real->offered_minor();
    real.reset();
    if (!skip.empty()) GTEST_SKIP() << skip;
    printf("--- bufpool script %s (kernel offers 7.%u)\n", script.name, offered);
    Print("real", r);
    ModelSide model(PoolModel(PossibleCpus(), ModelMinor(offered), script.abort_error));
    std::string mskip;
    Observed m = script.run(model, &mskip);
    ASSERT_EQ(mskip, "");
    Print("model", m);
    Compare(r, m, PoolBufSize());
    for (const std::string& v : model.model().violations()) printf("model violation: %s\n", v.c_str());
  }
}

// The model alone, on any machine: every bufpool script gives what 7.3 gave
// (Golden73, measured with 2 CPUs, so the model runs 2 queues).
TEST(UringCrossCheck, BufpoolModelScriptExpectations) {
  for (const PoolScript& script : PoolScripts()) {
    SCOPED_TRACE(script.name);
    const std::string name = script.name;
    if (geteuid() != 0 && (name == "edges-zero-copy" || name == "zero-copy" ||
                           name == "zero-copy-mixed" || name == "zero-copy-slot-0" ||
                           name == "zero-copy-pool-slot-1")) {
      continue;  // ADD_QUEUE with FUSE_URING_ZERO_COPY needs CAP_SYS_ADMIN in the submitting thread
    }
    ModelSide model(PoolModel(2, 46, script.abort_error));
    std::string skip;
    Observed m = script.run(model, &skip);
    ASSERT_EQ(skip, "");
    std::vector<std::string> got = Lines(m);
    const std::vector<std::string>& want = Golden73().at(script.name);
    for (size_t i = 0; i < std::max(got.size(), want.size()); i++) {
      EXPECT_EQ(i < got.size() ? got[i] : "(missing)", i < want.size() ? want[i] : "(none)")
          << "line " << i;
    }
    // The zero-copy script touches a slot after the commit that dropped its
    // pages (Z12) on purpose: the model names it, and nothing else.
    std::vector<std::string> v = model.model().violations();
    if (name == "zero-copy") {
      ASSERT_EQ(v.size(), 1u);
      EXPECT_NE(v[0].find("READ_FIXED on slot 2 after the commit"), std::string::npos) << v[0];
    } else if (name.rfind("zero-copy", 0) == 0) {
      EXPECT_TRUE(v.empty()) << v.front();
    }
  }
}

}  // namespace
}  // namespace kmfuse::testing
