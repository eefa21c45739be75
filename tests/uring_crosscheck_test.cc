// The same scripted FUSE-over-io_uring session, per-entry mode, against the
// real kernel and against the kernel model: the observable results must be
// equal. Where they differ the real kernel is right and the model is fixed.
//
// Script (raw SQEs, one SQE128 ring, 2 entries per queue):
//   1. REGISTER before the INIT reply           -> EAGAIN
//   2. INIT answered (FUSE_INIT_EXT | FUSE_OVER_IO_URING), entries registered
//   3. client: stat("hello") on CPU 0, open+read("hello") on the last CPU,
//      stat("missing"), stat("bad") (reply error +1), stat("mismatch")
//      (reply with a wrong unique); each request's header fields are recorded
//   4. malformed REGISTERs: 64-byte SQE ring, qid = nr_queues, payload iovec
//      too small, sqe->len 1, iovec array at NULL, unknown cmd_op
//   5. COMMIT_AND_FETCH with an unknown commit_id
//   6. teardown (umount / Abort): every idle entry completes with ENOTCONN
//
// The real side mounts a FUSE connection itself (as root) and skips with a
// reason when /dev/fuse, root or enable_uring is missing. It always detaches
// the mount and aborts the connection through fusectl before joining the
// client thread, also when an assertion fails.
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kmfuse/sync.h"
#include "gtest/gtest.h"
#include "tests/kernel_model/kernel_model.h"
#include "tests/uring_raw.h"
#include "uring/ring.h"

namespace kmfuse::testing {
namespace {

using namespace kmfuse::abi;  // NOLINT

constexpr uint32_t kMaxWrite = 128 * 1024;
constexpr uint32_t kMaxPages = kMaxWrite / 4096;
constexpr unsigned kPerQueue = 2;
constexpr uint64_t kHelloIno = 2;

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

enum class Op { kStatHello, kReadHello, kStatMissing, kStatBad, kStatMismatch };

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
  bool operator==(const Seen& o) const {
    return qid == o.qid && opcode == o.opcode && nodeid == o.nodeid && len == o.len &&
           payload_sz == o.payload_sz && payload == o.payload &&
           commit_id_is_unique == o.commit_id_is_unique && read_size == o.read_size &&
           read_offset == o.read_offset;
  }
};
std::string Str(const Seen& s) {
  return absl::StrCat("{q", s.qid, " op ", s.opcode, " node ", s.nodeid, " len ", s.len,
                      " payload_sz ", s.payload_sz, " commit_id==unique ", s.commit_id_is_unique,
                      " read ", s.read_size, "@", s.read_offset, "}");
}

// One side of the comparison: the real kernel or the model.
class Side {
 public:
  virtual ~Side() = default;
  virtual uring::IoRing& ring() = 0;
  virtual std::unique_ptr<uring::IoRing> NewRing(bool sqe128) = 0;
  virtual int fd() const = 0;
  virtual unsigned nr_queues() const = 0;
  // Answers INIT (real) / marks it processed (model).
  virtual bool FinishInit() = 0;
  // Runs op as a client on `cpu`, asynchronously.
  virtual void StartClient(Op op, int cpu) = 0;
  virtual bool ClientDone() = 0;
  virtual ClientResult ClientResultAndJoin() = 0;
  // Ends the connection (umount / Abort).
  virtual void Teardown() = 0;
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
    JoinClient();
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

  bool FinishInit() override {
    std::vector<char> buf(kMaxWrite + 4096);
    ssize_t n = read(fd_, buf.data(), buf.size());
    if (n < static_cast<ssize_t>(sizeof(fuse_in_header) + 8)) return false;
    fuse_in_header in;
    std::memcpy(&in, buf.data(), sizeof(in));
    if (in.opcode != FUSE_INIT) return false;
    fuse_init_in init{};
    std::memcpy(&init, buf.data() + sizeof(in),
                std::min(sizeof(init), static_cast<size_t>(n) - sizeof(in)));
    uint64_t offered = init.flags | (uint64_t{init.flags2} << 32);
    if (!(offered & FUSE_OVER_IO_URING)) return false;
    fuse_init_out out{};
    out.major = FUSE_KERNEL_VERSION;
    out.minor = std::min(init.minor, FUSE_KERNEL_MINOR_VERSION);
    out.max_readahead = init.max_readahead;
    uint64_t want = FUSE_INIT_EXT | FUSE_OVER_IO_URING | FUSE_MAX_PAGES | FUSE_BIG_WRITES;
    out.flags = static_cast<uint32_t>(want);
    out.flags2 = static_cast<uint32_t>(want >> 32);
    out.max_background = 16;
    out.congestion_threshold = 12;
    out.max_write = kMaxWrite;
    out.time_gran = 1;
    out.max_pages = kMaxPages;
    fuse_out_header oh{static_cast<uint32_t>(sizeof(oh) + sizeof(out)), 0, in.unique};
    struct iovec iov[2] = {{&oh, sizeof(oh)}, {&out, sizeof(out)}};
    return writev(fd_, iov, 2) == static_cast<ssize_t>(sizeof(oh) + sizeof(out));
  }

  void StartClient(Op op, int cpu) override {
    JoinClient();
    {
      MutexLock l(&mu_);
      done_ = false;
    }
    std::string base = dir_;
    client_ = std::thread([this, op, cpu, base] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
      ClientResult r;
      struct stat st;
      auto do_stat = [&](const char* name) {
        if (stat((base + "/" + name).c_str(), &st) != 0) {
          r.err = errno;
        } else {
          r.size = st.st_size;
          r.ino = st.st_ino;
        }
      };
      switch (op) {
        case Op::kStatHello: do_stat("hello"); break;
        case Op::kStatMissing: do_stat("missing"); break;
        case Op::kStatBad: do_stat("bad"); break;
        case Op::kStatMismatch: do_stat("mismatch"); break;
        case Op::kReadHello: {
          int f = open((base + "/hello").c_str(), O_RDONLY | O_CLOEXEC);
          if (f < 0) {
            r.err = errno;
            break;
          }
          char buf[100];
          ssize_t n = read(f, buf, sizeof(buf));
          if (n < 0) r.err = errno; else r.data.assign(buf, n);
          close(f);
          break;
        }
      }
      MutexLock l(&mu_);
      result_ = r;
      done_ = true;
    });
  }
  bool ClientDone() override {
    MutexLock l(&mu_);
    return done_;
  }
  ClientResult ClientResultAndJoin() override {
    if (!ClientDone()) {
      // Never join a thread blocked on the mount: end the connection first.
      Teardown();
      JoinClient();
      ClientResult r;
      r.err = ETIMEDOUT;
      return r;
    }
    JoinClient();
    MutexLock l(&mu_);
    return result_;
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
  void JoinClient() {
    if (client_.joinable()) client_.join();
  }

  std::string dir_;
  int fd_ = -1;
  unsigned long conn_ = 0;
  bool torn_down_ = true;
  std::unique_ptr<uring::Ring> ring_;
  std::thread client_;
  Mutex mu_;
  bool done_ = true;
  ClientResult result_;
};

// ---- the model -------------------------------------------------------------

class ModelSide final : public Side {
 public:
  explicit ModelSide(unsigned nr_queues) {
    model::ModelOptions o;
    o.mode = model::Mode::kPerEntry;
    o.nr_queues = static_cast<uint16_t>(nr_queues);
    o.max_write = kMaxWrite;
    o.max_pages = kMaxPages;
    o.init_done = false;
    model_ = std::make_unique<model::KernelModel>(o);
    ring_ = model_->NewRing(64, true);
  }
  ~ModelSide() override {
    Teardown();
    if (client_.joinable()) client_.join();
    ring_.reset();
  }
  model::KernelModel& model() { return *model_; }
  uring::IoRing& ring() override { return *ring_; }
  std::unique_ptr<uring::IoRing> NewRing(bool sqe128) override {
    return model_->NewRing(8, sqe128);
  }
  int fd() const override { return model_->fuse_fd(); }
  unsigned nr_queues() const override { return model_->options().nr_queues; }
  bool FinishInit() override {
    model_->SetInitDone();
    return true;
  }

  // The requests the kernel builds for each syscall (the dentry of "hello"
  // is cached after the first stat: entry_valid is 100 s).
  void StartClient(Op op, int cpu) override {
    if (client_.joinable()) client_.join();
    done_ = false;
    client_ = std::thread([this, op, cpu] {
      uint16_t q = static_cast<uint16_t>(cpu);
      ClientResult r;
      auto call = [&](uint32_t opcode, uint64_t node, std::string opb, std::string payload,
                      uint32_t out_max, std::string* data) {
        fuse_in_header in{};
        in.opcode = opcode;
        in.nodeid = node;
        uint64_t t = model_->Inject(q, in, opb, payload, out_max);
        std::optional<model::ModelReply> rep = model_->WaitReply(t, absl::Seconds(10));
        if (!rep) return ETIMEDOUT;
        if (data) *data = rep->data;
        return -rep->error;
      };
      auto lookup = [&](const char* name) {
        std::string d;
        r.err = call(FUSE_LOOKUP, FUSE_ROOT_ID, "", std::string(name) + '\0',
                     sizeof(fuse_entry_out), &d);
        if (r.err == 0) {
          fuse_entry_out e;
          std::memcpy(&e, d.data(), sizeof(e));
          r.size = e.attr.size;
          r.ino = e.attr.ino;
        }
      };
      switch (op) {
        case Op::kStatHello: lookup("hello"); break;
        case Op::kStatMissing: lookup("missing"); break;
        case Op::kStatBad: lookup("bad"); break;
        case Op::kStatMismatch: lookup("mismatch"); break;
        case Op::kReadHello: {
          fuse_open_in oi{};
          oi.flags = O_RDONLY | O_LARGEFILE;
          std::string d;
          r.err = call(FUSE_OPEN, kHelloIno, std::string(reinterpret_cast<char*>(&oi), sizeof(oi)),
                       "", sizeof(fuse_open_out), &d);
          if (r.err) break;
          fuse_open_out oo;
          std::memcpy(&oo, d.data(), sizeof(oo));
          fuse_read_in ri{};
          ri.fh = oo.fh;
          ri.size = 100;
          ri.flags = O_RDONLY | O_LARGEFILE;
          r.err = call(FUSE_READ, kHelloIno, std::string(reinterpret_cast<char*>(&ri), sizeof(ri)),
                       "", 100, &r.data);
          fuse_flush_in fi{};
          fi.fh = oo.fh;
          call(FUSE_FLUSH, kHelloIno, std::string(reinterpret_cast<char*>(&fi), sizeof(fi)), "", 0,
               nullptr);
          fuse_release_in rl{};
          rl.fh = oo.fh;
          rl.flags = O_RDONLY | O_LARGEFILE;
          call(FUSE_RELEASE, kHelloIno, std::string(reinterpret_cast<char*>(&rl), sizeof(rl)), "",
               0, nullptr);
          break;
        }
      }
      result_ = r;
      done_ = true;
    });
  }
  bool ClientDone() override { return done_.load(); }
  ClientResult ClientResultAndJoin() override {
    if (!done_.load()) Teardown();
    if (client_.joinable()) client_.join();
    if (!done_.load()) {
      ClientResult t;
      t.err = ETIMEDOUT;
      return t;
    }
    return result_;
  }
  void Teardown() override { model_->Abort(); }

 private:
  std::unique_ptr<model::KernelModel> model_;
  std::unique_ptr<uring::IoRing> ring_;
  std::thread client_;
  std::atomic<bool> done_{true};
  ClientResult result_;
};

// ---- the script --------------------------------------------------------------

struct Observed {
  std::map<std::string, int> res;  // case -> CQE res
  std::map<std::string, ClientResult> client;
  std::vector<Seen> seen;
  int teardown_enotconn = 0;
  int teardown_other = 0;
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
      PrepRegister(side_.ring(), side_.ring().GetSqe(), side_.fd(), QidOf(i), *entries_[i], i);
    }
    side_.ring().Submit();
  }

  // Serves requests until the client op finishes (or 10 s).
  ClientResult RunClient(Op op, int cpu) {
    side_.StartClient(op, cpu);
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!side_.ClientDone() && absl::Now() < deadline) {
      for (const uring::Completion& c : Collect(side_.ring(), 1, absl::Milliseconds(5))) Handle(c);
    }
    // Late requests of this op (an async RELEASE) are served by the next
    // call or drained here.
    for (const uring::Completion& c : Collect(side_.ring(), 1, absl::Milliseconds(50))) Handle(c);
    return side_.ClientResultAndJoin();
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
  if (!side.FinishInit()) {
    ADD_FAILURE() << "INIT failed";
    return o;
  }
  // 2. the entries
  server.RegisterAll();
  absl::SleepFor(absl::Milliseconds(20));

  // 3. client operations
  const int last_cpu = static_cast<int>(nq) - 1;
  o.client["stat hello"] = server.RunClient(Op::kStatHello, 0);
  o.client["read hello"] = server.RunClient(Op::kReadHello, last_cpu);
  o.client["stat missing"] = server.RunClient(Op::kStatMissing, 0);
  o.client["stat bad"] = server.RunClient(Op::kStatBad, 0);
  o.client["stat mismatch"] = server.RunClient(Op::kStatMismatch, last_cpu);

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

void Compare(const Observed& real, const Observed& model) {
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
    EXPECT_TRUE(real.seen[i] == model.seen[i])
        << "request " << i << ": real " << Str(real.seen[i]) << ", model " << Str(model.seen[i]);
  }
  EXPECT_EQ(real.teardown_enotconn, model.teardown_enotconn);
  EXPECT_EQ(real.teardown_other, model.teardown_other);
}

void Print(const char* who, const Observed& o) {
  for (const auto& [name, res] : o.res) printf("%s: %s -> %d\n", who, name.c_str(), res);
  for (const auto& [name, r] : o.client) printf("%s: %s -> %s\n", who, name.c_str(), Str(r).c_str());
  for (const Seen& s : o.seen) printf("%s: seen %s\n", who, Str(s).c_str());
  printf("%s: teardown ENOTCONN %d other %d\n", who, o.teardown_enotconn, o.teardown_other);
}

TEST(UringCrossCheck, ModelMatchesTheRealKernel) {
  std::string skip;
  std::unique_ptr<RealSide> real = RealSide::Create(&skip);
  if (!real) GTEST_SKIP() << "real-kernel side unavailable: " << skip;
  Observed r = RunScript(*real);
  real.reset();  // unmount/abort before anything else
  Print("real", r);

  ModelSide model(PossibleCpus());
  Observed m = RunScript(model);
  Print("model", m);
  Compare(r, m);
  // The model also names the daemon bugs the script commits on purpose.
  std::vector<std::string> v = model.model().violations();
  EXPECT_EQ(v.size(), 3u);  // error +1, unique mismatch, unknown commit_id
  for (const std::string& s : v) printf("model violation: %s\n", s.c_str());
}

// The model side alone, on any machine: what the script expects from the
// documented 6.18 behaviour (kept in sync with the real kernel by the test
// above wherever it can run).
TEST(UringCrossCheck, ModelScriptExpectations) {
  ModelSide model(2);
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
}

}  // namespace
}  // namespace kmfuse::testing
