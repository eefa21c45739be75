#include "tests/model_harness.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>

namespace kmfuse::testing {

using namespace kmfuse::abi;  // NOLINT: ABI names read like the kernel's

namespace {
template <typename T>
std::string Bytes(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(v));
}
template <typename T>
bool Decode(const std::string& s, T* out) {
  if (s.size() < sizeof(T)) return false;
  if (out) std::memcpy(out, s.data(), sizeof(T));
  return true;
}
}  // namespace

ModelHarness::ModelHarness(HarnessOptions options) : options_(std::move(options)) {
  model_ = std::make_unique<model::KernelModel>(options_.model);
  if (options_.fs != nullptr) {
    fs_ = options_.fs;
  } else {
    memfs_ = MemFs::Create();
    fs_ = memfs_.get();
  }
  dispatcher_ = std::make_unique<proto::Dispatcher>(fs_, &hooks_, false);
  const size_t payload = options_.payload_size ? options_.payload_size
                                               : ((model_->max_payload() + 4095) & ~size_t{4095});
  for (uint16_t q = 0; q < options_.model.nr_queues; q++) {
    UringQueueConfig cfg;
    cfg.qid = q;
    cfg.entries = options_.entries;
    cfg.payload_size = payload;
    cfg.fuse_fd = model_->fuse_fd();
    cfg.zero_copy_ready = &zero_copy_ready_;
    queues_.push_back(std::make_unique<UringQueue>(cfg, options_.policy(), dispatcher_.get()));
  }
  threads_.resize(queues_.size());
}

ModelHarness::~ModelHarness() {
  absl::Status s = Stop();
  (void)s;
}

void ModelHarness::RunQueue(uint16_t qid) {
  model::KernelModel* m = model_.get();
  RingFactory rings = [m](uint16_t, unsigned entries)
      -> absl::StatusOr<std::unique_ptr<uring::IoRing>> { return m->NewRing(entries, true); };
  absl::Status s = queues_[qid]->Run(rings, &registered_);
  if (!s.ok()) {
    MutexLock l(&mu_);
    if (status_.ok()) status_ = s;
  }
  exited_.fetch_add(1);
}

void ModelHarness::StartQueue(uint16_t qid) {
  started_++;
  threads_[qid] = std::thread([this, qid] { RunQueue(qid); });
}

absl::Status ModelHarness::Start() {
  std::vector<uint16_t> qs = options_.start_queues;
  if (qs.empty()) {
    for (uint16_t q = 0; q < queues_.size(); q++) qs.push_back(q);
  }
  for (uint16_t q : qs) StartQueue(q);
  registered_.WaitFor(static_cast<unsigned>(qs.size()), absl::Seconds(10));
  absl::Status st = QueueStatus();
  if (st.ok() && options_.zero_copy_ready) zero_copy_ready_.store(true, std::memory_order_release);
  return st;
}

absl::Status ModelHarness::QueueStatus() {
  MutexLock l(&mu_);
  return status_;
}

absl::Status ModelHarness::Stop(absl::Duration timeout) {
  if (stopped_) return QueueStatus();
  stopped_ = true;
  model_->Abort();
  absl::Time deadline = absl::Now() + timeout;
  while (exited_.load() < started_) {
    if (absl::Now() > deadline) {
      fprintf(stderr, "model harness: %u of %u queue threads did not exit after Abort\n",
              started_ - exited_.load(), started_);
      abort();  // a hang is a test failure; never leave a blocked thread behind
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  // Rings (owned by the queues) go before the model.
  queues_.clear();
  return QueueStatus();
}

uint64_t ModelHarness::Send(uint16_t qid, uint32_t opcode, uint64_t nodeid, const std::string& op,
                            const std::string& payload, uint32_t out_max) {
  fuse_in_header in{};
  in.opcode = opcode;
  in.nodeid = nodeid;
  in.uid = getuid();
  in.gid = getgid();
  in.pid = getpid();
  return model_->Inject(qid, in, op, payload, out_max);
}

Result ModelHarness::Wait(uint64_t ticket, absl::Duration timeout) {
  std::optional<model::ModelReply> r = model_->WaitReply(ticket, timeout);
  Result res;
  if (!r) {
    res.error = ETIMEDOUT;
    return res;
  }
  res.error = -r->error;
  res.data = std::move(r->data);
  return res;
}

Result ModelHarness::Call(uint16_t qid, uint32_t opcode, uint64_t nodeid, const std::string& op,
                          const std::string& payload, uint32_t out_max) {
  return Wait(Send(qid, opcode, nodeid, op, payload, out_max));
}

std::string ModelHarness::WriteIn(uint64_t fh, uint64_t off, uint32_t size) {
  fuse_write_in w{};
  w.fh = fh;
  w.offset = off;
  w.size = size;
  return Bytes(w);
}

std::string ModelHarness::ReadIn(uint64_t fh, uint64_t off, uint32_t size) {
  fuse_read_in r{};
  r.fh = fh;
  r.offset = off;
  r.size = size;
  return Bytes(r);
}

int ModelHarness::Lookup(uint16_t qid, uint64_t parent, const std::string& name,
                         fuse_entry_out* out) {
  Result r = Call(qid, FUSE_LOOKUP, parent, "", name + '\0', sizeof(fuse_entry_out));
  if (r.error == 0 && !Decode(r.data, out)) return EPROTO;
  return r.error;
}

int ModelHarness::Getattr(uint16_t qid, uint64_t ino, fuse_attr_out* out) {
  fuse_getattr_in g{};
  Result r = Call(qid, FUSE_GETATTR, ino, Bytes(g), "", sizeof(fuse_attr_out));
  if (r.error == 0 && !Decode(r.data, out)) return EPROTO;
  return r.error;
}

int ModelHarness::Create(uint16_t qid, uint64_t parent, const std::string& name, uint32_t mode,
                         fuse_entry_out* entry, fuse_open_out* open) {
  fuse_create_in c{};
  c.flags = O_RDWR | O_CREAT;
  c.mode = S_IFREG | mode;
  Result r = Call(qid, FUSE_CREATE, parent, Bytes(c), name + '\0',
                  sizeof(fuse_entry_out) + sizeof(fuse_open_out));
  if (r.error != 0) return r.error;
  if (r.data.size() != sizeof(fuse_entry_out) + sizeof(fuse_open_out)) return EPROTO;
  if (entry) std::memcpy(entry, r.data.data(), sizeof(*entry));
  if (open) std::memcpy(open, r.data.data() + sizeof(fuse_entry_out), sizeof(*open));
  return 0;
}

int ModelHarness::Write(uint16_t qid, uint64_t ino, uint64_t fh, uint64_t off,
                        const std::string& data, uint32_t* written) {
  Result r = Call(qid, FUSE_WRITE, ino, WriteIn(fh, off, static_cast<uint32_t>(data.size())), data,
                  sizeof(fuse_write_out));
  if (r.error != 0) return r.error;
  fuse_write_out w{};
  if (!Decode(r.data, &w)) return EPROTO;
  if (written) *written = w.size;
  return 0;
}

int ModelHarness::Read(uint16_t qid, uint64_t ino, uint64_t fh, uint64_t off, uint32_t size,
                       std::string* out) {
  Result r = Call(qid, FUSE_READ, ino, ReadIn(fh, off, size), "", size);
  if (r.error == 0 && out) *out = std::move(r.data);
  return r.error;
}

int ModelHarness::Open(uint16_t qid, uint64_t ino, uint32_t flags, fuse_open_out* out) {
  fuse_open_in o{};
  o.flags = flags;
  Result r = Call(qid, FUSE_OPEN, ino, Bytes(o), "", sizeof(fuse_open_out));
  if (r.error != 0) return r.error;
  fuse_open_out oo{};
  if (!Decode(r.data, &oo)) return EPROTO;
  if (out) *out = oo;
  return 0;
}

int ModelHarness::ReadPages(uint16_t qid, uint64_t ino, uint64_t fh, uint64_t off, uint32_t size,
                            std::string* out) {
  fuse_in_header in{};
  in.opcode = FUSE_READ;
  in.nodeid = ino;
  uint64_t t = model_->InjectPages(qid, in, ReadIn(fh, off, size), std::string(size, '\0'), size);
  Result r = Wait(t);
  if (r.error == 0 && out) *out = std::move(r.data);
  return r.error;
}

int ModelHarness::WritePages(uint16_t qid, uint64_t ino, uint64_t fh, uint64_t off,
                             const std::string& data, uint32_t* written) {
  fuse_in_header in{};
  in.opcode = FUSE_WRITE;
  in.nodeid = ino;
  uint64_t t = model_->InjectPages(qid, in, WriteIn(fh, off, static_cast<uint32_t>(data.size())),
                                   data, sizeof(fuse_write_out));
  Result r = Wait(t);
  if (r.error != 0) return r.error;
  fuse_write_out w{};
  if (!Decode(r.data, &w)) return EPROTO;
  if (written) *written = w.size;
  return 0;
}

int ModelHarness::Release(uint16_t qid, uint64_t ino, uint64_t fh) {
  fuse_release_in rel{};
  rel.fh = fh;
  return Call(qid, FUSE_RELEASE, ino, Bytes(rel), "", 0).error;
}

int ModelHarness::ListDir(uint16_t qid, uint64_t ino, std::vector<std::string>* names) {
  fuse_open_in o{};
  o.flags = O_RDONLY;
  Result r = Call(qid, FUSE_OPENDIR, ino, Bytes(o), "", sizeof(fuse_open_out));
  if (r.error != 0) return r.error;
  fuse_open_out oo{};
  if (!Decode(r.data, &oo)) return EPROTO;
  uint64_t off = 0;
  for (;;) {
    const uint32_t size = 4096;
    Result d = Call(qid, FUSE_READDIR, ino, ReadIn(oo.fh, off, size), "", size);
    if (d.error != 0) return d.error;
    if (d.data.empty()) break;
    size_t pos = 0;
    while (pos + sizeof(fuse_dirent) <= d.data.size()) {
      fuse_dirent de;
      std::memcpy(&de, d.data.data() + pos, sizeof(de));
      std::string name = d.data.substr(pos + sizeof(de), de.namelen);
      if (name != "." && name != "..") names->push_back(name);
      off = de.off;
      pos += (sizeof(de) + de.namelen + 7) & ~size_t{7};
    }
  }
  fuse_release_in rel{};
  rel.fh = oo.fh;
  return Call(qid, FUSE_RELEASEDIR, ino, Bytes(rel), "", 0).error;
}

}  // namespace kmfuse::testing
