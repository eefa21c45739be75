// Scenario suites for the three FUSE-over-io_uring payload policies, each
// served by the kernel model in the matching mode: UringQueue + the real
// Dispatcher + MemFs. These run on every kernel: kmbuf and bufpool exist in
// no kernel of this project, per-entry is also cross-checked on the real
// kernel (uring_crosscheck_test).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kmfuse/sync.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kmfuse/testing/pattern.h"
#include "tests/model_harness.h"

namespace kmfuse::testing {
namespace {

using namespace kmfuse::abi;  // NOLINT
using ::testing::IsEmpty;

struct Variant {
  const char* name;
  model::Mode mode;
  std::function<std::unique_ptr<PayloadPolicy>()> policy;
};

std::vector<Variant> Variants() {
  return {
      {"uring", model::Mode::kPerEntry, [] { return MakePerEntryPolicy(); }},
      {"kmbuf", model::Mode::kKmbuf, [] { return MakeKmbufPolicy(); }},
      {"bufpool", model::Mode::kBufpool, [] { return MakeBufpoolPolicy(); }},
      {"bufpool_registered", model::Mode::kBufpool,
       [] {
         BufpoolOptions o;
         o.registered = true;
         return MakeBufpoolPolicy(o);
       }},
  };
}

constexpr uint32_t kMaxWrite = 256 * 1024;

HarnessOptions Options(const Variant& v, unsigned entries = 4) {
  HarnessOptions o;
  o.model.mode = v.mode;
  o.model.nr_queues = 2;
  o.model.max_write = kMaxWrite;
  o.model.max_pages = kMaxWrite / 4096;
  o.policy = v.policy;
  o.entries = entries;
  return o;
}

class UringModelTest : public ::testing::TestWithParam<Variant> {};

TEST_P(UringModelTest, LookupGetattrCreateWriteReadEverySize) {
  ModelHarness h(Options(GetParam()));
  ASSERT_TRUE(h.Start().ok());
  ASSERT_TRUE(h.model().ready());
  fuse_entry_out e{};
  fuse_open_out o{};
  ASSERT_EQ(h.Lookup(0, FUSE_ROOT_ID, "f", &e), ENOENT);
  ASSERT_EQ(h.Create(0, FUSE_ROOT_ID, "f", 0644, &e, &o), 0);
  fuse_entry_out e2{};
  ASSERT_EQ(h.Lookup(1, FUSE_ROOT_ID, "f", &e2), 0);
  EXPECT_EQ(e2.nodeid, e.nodeid);
  int seed = 0;
  for (size_t size : {size_t{0}, size_t{1}, size_t{4095}, size_t{4096}, size_t{65537},
                      size_t{kMaxWrite}}) {
    SCOPED_TRACE(size);
    std::string data = Pattern(size, ++seed);
    uint16_t q = seed % 2;
    uint32_t written = 0;
    ASSERT_EQ(h.Write(q, e.nodeid, o.fh, 0, data, &written), 0);
    EXPECT_EQ(written, size);
    std::string back;
    ASSERT_EQ(h.Read(1 - q, e.nodeid, o.fh, 0, static_cast<uint32_t>(size), &back), 0);
    EXPECT_EQ(back.size(), size);
    EXPECT_TRUE(back == data);
  }
  fuse_attr_out a{};
  ASSERT_EQ(h.Getattr(1, e.nodeid, &a), 0);
  EXPECT_EQ(a.attr.size, kMaxWrite);
  EXPECT_EQ(a.attr.ino, e.nodeid);
  EXPECT_EQ(h.Release(0, e.nodeid, o.fh), 0);

  h.model().VerifyQuiescent();
  EXPECT_THAT(h.model().violations(), IsEmpty());
  if (GetParam().mode != model::Mode::kPerEntry) {
    model::ModelStats st = h.model().stats();
    EXPECT_GT(st.buffer_selections, 0u);
    EXPECT_GT(st.recycles, 0u);  // the kernel side recycles; the daemon cannot
    for (uint16_t q = 0; q < 2; q++) EXPECT_EQ(h.model().FreeBuffers(q), h.model().TotalBuffers(q));
  }
  EXPECT_TRUE(h.Stop().ok());
}

TEST_P(UringModelTest, Readdir) {
  ModelHarness h(Options(GetParam()));
  ASSERT_TRUE(h.Start().ok());
  std::set<std::string> want;
  for (int i = 0; i < 60; i++) {
    std::string name = "file-with-a-longish-name-" + std::to_string(i);
    fuse_open_out o{};
    fuse_entry_out e{};
    ASSERT_EQ(h.Create(i % 2, FUSE_ROOT_ID, name, 0600, &e, &o), 0);
    ASSERT_EQ(h.Release(i % 2, e.nodeid, o.fh), 0);
    want.insert(name);
  }
  std::vector<std::string> names;
  ASSERT_EQ(h.ListDir(1, FUSE_ROOT_ID, &names), 0);
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), want);
  EXPECT_EQ(names.size(), want.size());
  h.model().VerifyQuiescent();
  EXPECT_THAT(h.model().violations(), IsEmpty());
}

TEST_P(UringModelTest, ManyConcurrentRequestsAcrossAllQueues) {
  ModelHarness h(Options(GetParam()));
  ASSERT_TRUE(h.Start().ok());
  constexpr int kThreads = 4, kOps = 150;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      fuse_entry_out e{};
      fuse_open_out o{};
      if (h.Create(t % 2, FUSE_ROOT_ID, "t" + std::to_string(t), 0600, &e, &o) != 0) {
        failures++;
        return;
      }
      for (int i = 0; i < kOps; i++) {
        uint16_t q = (t + i) % 2;
        std::string data = Pattern(1 + (i * 977) % 70000, t * 1000 + i);
        uint32_t written = 0;
        std::string back;
        if (h.Write(q, e.nodeid, o.fh, 0, data, &written) != 0 || written != data.size() ||
            h.Read(1 - q, e.nodeid, o.fh, 0, static_cast<uint32_t>(data.size()), &back) != 0 ||
            back != data) {
          failures++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(h.model().stats().delivered, uint64_t{kThreads} * kOps * 2);
  h.model().VerifyQuiescent();
  EXPECT_THAT(h.model().violations(), IsEmpty());
  EXPECT_TRUE(h.Stop().ok());
}

// More requests in flight than entries: the model queues them; all complete.
TEST_P(UringModelTest, MoreRequestsThanEntries) {
  ModelHarness h(Options(GetParam(), /*entries=*/2));
  ASSERT_TRUE(h.Start().ok());
  fuse_entry_out e{};
  fuse_open_out o{};
  ASSERT_EQ(h.Create(0, FUSE_ROOT_ID, "f", 0600, &e, &o), 0);
  std::vector<uint64_t> tickets;
  for (int i = 0; i < 64; i++) {
    std::string data = Pattern(4096, i);
    tickets.push_back(h.Send(i % 2, FUSE_WRITE, e.nodeid, ModelHarness::WriteIn(o.fh, i * 4096, 4096),
                             data, sizeof(fuse_write_out)));
  }
  for (uint64_t t : tickets) EXPECT_EQ(h.Wait(t).error, 0);
  fuse_attr_out a{};
  ASSERT_EQ(h.Getattr(0, e.nodeid, &a), 0);
  EXPECT_EQ(a.attr.size, 64u * 4096);
  EXPECT_THAT(h.model().violations(), IsEmpty());
}

// The daemon's async path: replies come from another thread (through the
// queue's wake fd read).
class AsyncFs : public FileSystem {
 public:
  explicit AsyncFs(FileSystem* inner) : inner_(inner), worker_([this] { Loop(); }) {}
  ~AsyncFs() override {
    {
      MutexLock l(&mu_);
      done_ = true;
    }
    worker_.join();
  }
  // While held, replies wait (to keep requests in flight).
  void Hold(bool hold) {
    MutexLock l(&mu_);
    hold_ = hold;
  }
  int waiting() {
    MutexLock l(&mu_);
    return static_cast<int>(tasks_.size());
  }

  void Lookup(const RequestContext& ctx, uint64_t parent, std::string_view name, Reply r) override {
    Later([=, n = std::string(name)](Reply r) { inner_->Lookup(ctx, parent, n, std::move(r)); },
          std::move(r));
  }
  void Getattr(const RequestContext& ctx, uint64_t ino, std::optional<uint64_t> fh,
               Reply r) override {
    Later([=](Reply r) { inner_->Getattr(ctx, ino, fh, std::move(r)); }, std::move(r));
  }
  void Create(const RequestContext& ctx, uint64_t parent, std::string_view name,
              const fuse_create_in& in, Reply r) override {
    Later([=, n = std::string(name)](Reply r) { inner_->Create(ctx, parent, n, in, std::move(r)); },
          std::move(r));
  }
  void Write(const RequestContext& ctx, uint64_t ino, const fuse_write_in& in,
             absl::Span<const char> data, Reply r) override {
    // data stays valid until the reply: the buffer belongs to the daemon.
    Later([=](Reply r) { inner_->Write(ctx, ino, in, data, std::move(r)); }, std::move(r));
  }
  void Read(const RequestContext& ctx, uint64_t ino, const fuse_read_in& in, Reply r) override {
    Later([=](Reply r) { inner_->Read(ctx, ino, in, std::move(r)); }, std::move(r));
  }

 private:
  void Later(std::function<void(Reply)> fn, Reply r) {
    auto reply = std::make_shared<Reply>(std::move(r));
    MutexLock l(&mu_);
    tasks_.push_back([fn = std::move(fn), reply] { fn(std::move(*reply)); });
  }
  void Loop() {
    for (;;) {
      std::function<void()> task;
      {
        MutexLock l(&mu_);
        auto ready = [this] { return done_ || (!hold_ && !tasks_.empty()); };
        mu_.Await(ready);
        if (tasks_.empty() || hold_) {
          if (done_) return;
          continue;
        }
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  FileSystem* inner_;
  Mutex mu_;
  bool done_ = false;
  bool hold_ = false;
  std::deque<std::function<void()>> tasks_;
  std::thread worker_;
};

TEST_P(UringModelTest, AsyncRepliesFromAnotherThread) {
  std::unique_ptr<MemFs> mem = MemFs::Create();
  AsyncFs fs(mem.get());
  HarnessOptions opts = Options(GetParam());
  opts.fs = &fs;
  ModelHarness h(opts);
  ASSERT_TRUE(h.Start().ok());
  fuse_entry_out e{};
  fuse_open_out o{};
  ASSERT_EQ(h.Create(0, FUSE_ROOT_ID, "a", 0600, &e, &o), 0);
  std::vector<uint64_t> tickets;
  for (int i = 0; i < 40; i++) {
    tickets.push_back(h.Send(i % 2, FUSE_WRITE, e.nodeid,
                             ModelHarness::WriteIn(o.fh, i * 100, 100), Pattern(100, i),
                             sizeof(fuse_write_out)));
  }
  for (uint64_t t : tickets) EXPECT_EQ(h.Wait(t).error, 0);
  std::string back;
  ASSERT_EQ(h.Read(1, e.nodeid, o.fh, 0, 4000, &back), 0);
  EXPECT_EQ(back.size(), 4000u);
  EXPECT_EQ(back.substr(3900), Pattern(100, 39));
  h.model().VerifyQuiescent();
  EXPECT_THAT(h.model().violations(), IsEmpty());
  EXPECT_TRUE(h.Stop().ok());
}

// Abort with requests held by the daemon and queued in the kernel: the
// callers get ECONNABORTED, the late commits fail with ENOTCONN, every queue
// thread exits in bounded time.
TEST_P(UringModelTest, TeardownWithRequestsInFlight) {
  std::unique_ptr<MemFs> mem = MemFs::Create();
  AsyncFs fs(mem.get());
  HarnessOptions opts = Options(GetParam(), /*entries=*/2);
  opts.fs = &fs;
  ModelHarness h(opts);
  ASSERT_TRUE(h.Start().ok());
  fs.Hold(true);
  std::vector<uint64_t> tickets;
  for (int i = 0; i < 10; i++) {
    fuse_getattr_in g{};
    tickets.push_back(h.Send(i % 2, FUSE_GETATTR, FUSE_ROOT_ID,
                             std::string(reinterpret_cast<char*>(&g), sizeof(g)), "",
                             sizeof(fuse_attr_out)));
  }
  // 2 queues x 2 entries are held by the daemon, the rest wait in the kernel.
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (fs.waiting() < 4 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_EQ(fs.waiting(), 4);
  EXPECT_EQ(h.model().Queued(0) + h.model().Queued(1), 6u);
  h.model().Abort();
  for (uint64_t t : tickets) EXPECT_EQ(h.Wait(t, absl::Seconds(1)).error, ECONNABORTED);
  fs.Hold(false);  // the held replies now commit into a dead connection
  absl::Time start = absl::Now();
  EXPECT_TRUE(h.Stop(absl::Seconds(5)).ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_THAT(h.model().violations(), IsEmpty());
}

// Nothing is routed until every queue has a registered entry.
TEST_P(UringModelTest, RequestsWaitUntilEveryQueueRegistered) {
  HarnessOptions opts = Options(GetParam());
  opts.start_queues = {0};
  ModelHarness h(opts);
  ASSERT_TRUE(h.Start().ok());
  EXPECT_FALSE(h.model().ready());
  fuse_getattr_in g{};
  uint64_t t = h.Send(0, FUSE_GETATTR, FUSE_ROOT_ID,
                      std::string(reinterpret_cast<char*>(&g), sizeof(g)), "",
                      sizeof(fuse_attr_out));
  EXPECT_EQ(h.Wait(t, absl::Milliseconds(100)).error, ETIMEDOUT);
  h.StartQueue(1);
  EXPECT_EQ(h.Wait(t, absl::Seconds(5)).error, 0);
  EXPECT_TRUE(h.model().ready());
}

// REGISTER before INIT is processed gets EAGAIN; the queue resubmits.
TEST_P(UringModelTest, RegisterBeforeInitIsRetried) {
  HarnessOptions opts = Options(GetParam());
  opts.model.init_done = false;
  ModelHarness h(opts);
  // bufpool's Setup (ADD_QUEUE) already waits for INIT; the others' REGISTERs.
  std::thread init([&h] {
    absl::SleepFor(absl::Milliseconds(30));
    EXPECT_FALSE(h.model().ready());
    h.model().SetInitDone();
  });
  absl::Status started = h.Start();
  init.join();
  ASSERT_TRUE(started.ok()) << started;
  fuse_attr_out a{};
  EXPECT_EQ(h.Getattr(1, FUSE_ROOT_ID, &a), 0);
  EXPECT_TRUE(h.model().ready());
  EXPECT_TRUE(h.Stop().ok());
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, UringModelTest, ::testing::ValuesIn(Variants()),
                         [](const ::testing::TestParamInfo<Variant>& i) { return i.param.name; });

// One regular file "f" (inode 2) on a memfd, answered the way a filesystem
// that opts in to zero-copy must: FOPEN_IO_URING_ZERO_COPY when the reply
// says it is available, READ by DataFromFd, WRITE by WriteToFd.
class FdFileFs : public FileSystem {
 public:
  static constexpr uint64_t kIno = 2;
  static constexpr size_t kSize = 1 << 20;
  FdFileFs() : fd_(memfd_create("kmfuse-model-zc", MFD_CLOEXEC)) {
    if (fd_ < 0 || ftruncate(fd_, kSize) != 0) abort();
  }

  void Lookup(const RequestContext&, uint64_t, std::string_view name, Reply r) override {
    if (name != "f") return r.Error(ENOENT);
    fuse_entry_out e{};
    e.nodeid = kIno;
    e.attr = Attr();
    r.Entry(e);
  }
  void Getattr(const RequestContext&, uint64_t, std::optional<uint64_t>, Reply r) override {
    fuse_attr_out a{};
    a.attr = Attr();
    r.Attr(a);
  }
  void Open(const RequestContext&, uint64_t, const fuse_open_in&, Reply r) override {
    fuse_open_out o{};
    o.fh = 1;
    if (r.ZeroCopyAvailable()) o.open_flags = FOPEN_IO_URING_ZERO_COPY;
    r.Open(o);
  }
  ~FdFileFs() override {
    std::vector<std::thread> threads;
    {
      MutexLock l(&mu_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
    close(fd_);
  }
  int fd() const { return fd_; }
  // READs answered from a thread of their own instead of the queue thread.
  void set_answer_elsewhere(bool v) { answer_elsewhere_ = v; }

  void Read(const RequestContext&, uint64_t, const fuse_read_in& in, Reply r) override {
    if (!answer_elsewhere_) return r.DataFromFd(fd_, static_cast<off_t>(in.offset), in.size);
    MutexLock l(&mu_);
    threads_.emplace_back([this, in, r = std::move(r)]() mutable {
      r.DataFromFd(fd_, static_cast<off_t>(in.offset), in.size);
    });
  }
  void Write(const RequestContext&, uint64_t, const fuse_write_in& in, absl::Span<const char> data,
             Reply r) override {
    if (r.WriteToFd(fd_, static_cast<off_t>(in.offset), in.size)) return;
    ssize_t n = pwrite(fd_, data.data(), data.size(), static_cast<off_t>(in.offset));
    if (n < 0) return r.Error(errno);
    r.Write(static_cast<uint32_t>(n));
  }
  void Flush(const RequestContext&, uint64_t, const fuse_flush_in&, Reply r) override { r.Empty(); }
  void Release(const RequestContext&, uint64_t, const fuse_release_in&, Reply r) override {
    r.Empty();
  }

 private:
  static fuse_attr Attr() {
    fuse_attr a{};
    a.ino = kIno;
    a.size = kSize;
    a.mode = S_IFREG | 0644;
    a.nlink = 1;
    return a;
  }
  const int fd_;
  bool answer_elsewhere_ = false;
  Mutex mu_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

// READ plans (Reply::DataFromFd) on copy queues, every policy: executed on
// the queue thread (a copy into the payload buffer that cannot block) and
// committed from another thread (read there into the payload buffer, the
// commit through the wake list). The bytes arrive intact, short past EOF, and
// no buffer is touched after its commit.
class ReadPlanTest : public ::testing::TestWithParam<Variant> {};

TEST_P(ReadPlanTest, OnTheQueueThreadAndFromAnotherThread) {
  for (bool elsewhere : {false, true}) {
    SCOPED_TRACE(elsewhere ? "answered from another thread" : "answered on the queue thread");
    FdFileFs fs;
    fs.set_answer_elsewhere(elsewhere);
    const std::string file = Pattern(FdFileFs::kSize, elsewhere ? 7 : 3);
    ASSERT_EQ(pwrite(fs.fd(), file.data(), file.size(), 0), static_cast<ssize_t>(file.size()));
    HarnessOptions o = Options(GetParam());
    o.fs = &fs;
    ModelHarness h(o);
    ASSERT_TRUE(h.Start().ok());
    fuse_entry_out e{};
    ASSERT_EQ(h.Lookup(0, FUSE_ROOT_ID, "f", &e), 0);
    fuse_open_out oo{};
    ASSERT_EQ(h.Open(0, e.nodeid, O_RDONLY, &oo), 0);
    int q = 0;
    for (size_t size : {size_t{1}, size_t{4096}, size_t{65537}, size_t{kMaxWrite}}) {
      SCOPED_TRACE(size);
      const uint64_t off = (size * 5) % (FdFileFs::kSize - size);
      std::string back;
      ASSERT_EQ(h.Read(q++ % 2, e.nodeid, oo.fh, off, static_cast<uint32_t>(size), &back), 0);
      EXPECT_TRUE(back == file.substr(off, size));
    }
    std::string tail;
    ASSERT_EQ(h.Read(1, e.nodeid, oo.fh, FdFileFs::kSize - 100, 4096, &tail), 0);
    EXPECT_EQ(tail, file.substr(FdFileFs::kSize - 100));
    EXPECT_EQ(h.Release(0, e.nodeid, oo.fh), 0);
    h.model().VerifyQuiescent();
    EXPECT_THAT(h.model().violations(), IsEmpty());
    EXPECT_TRUE(h.Stop().ok());
  }
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, ReadPlanTest, ::testing::ValuesIn(Variants()),
                         [](const ::testing::TestParamInfo<Variant>& i) { return i.param.name; });

// The daemon's zero-copy mode (registered pool in slot 0 of a sparse table,
// FUSE_URING_ZERO_COPY queues, one slot per entry) against the model's
// zero-copy rules (checked against 7.3 by uring_crosscheck_test): the open
// gets FOPEN_IO_URING_ZERO_COPY, every READ and WRITE of the file travels
// zero-copy and is served by READ_FIXED / WRITE_FIXED between the memfd and
// the caller's pages, the bytes arrive intact (short read at EOF included),
// and no slot is touched after its commit.
TEST(UringModelZeroCopyTest, ReadWriteThroughFixedOps) {
  FdFileFs fs;
  HarnessOptions o;
  o.model.mode = model::Mode::kBufpool;
  o.model.nr_queues = 2;
  o.model.max_write = kMaxWrite;
  o.model.max_pages = kMaxWrite / 4096;
  o.model.cap_sys_admin = true;
  o.policy = [] {
    BufpoolOptions b;
    b.registered = true;
    b.zero_copy = true;
    return MakeBufpoolPolicy(b);
  };
  o.entries = 4;
  o.fs = &fs;
  o.zero_copy_ready = true;
  ModelHarness h(o);
  ASSERT_TRUE(h.Start().ok());
  fuse_entry_out e{};
  ASSERT_EQ(h.Lookup(0, FUSE_ROOT_ID, "f", &e), 0);
  fuse_open_out oo{};
  ASSERT_EQ(h.Open(0, e.nodeid, O_RDWR, &oo), 0);
  ASSERT_NE(oo.open_flags & FOPEN_IO_URING_ZERO_COPY, 0u);

  std::string file(FdFileFs::kSize, '\0');
  int seed = 0;
  for (size_t size : {size_t{1}, size_t{4095}, size_t{4096}, size_t{65537}, size_t{kMaxWrite}}) {
    SCOPED_TRACE(size);
    const uint64_t off = (size * 3) % (FdFileFs::kSize - size);
    const std::string data = Pattern(size, ++seed);
    const uint16_t q = seed % 2;
    uint32_t written = 0;
    ASSERT_EQ(h.WritePages(q, e.nodeid, oo.fh, off, data, &written), 0);
    EXPECT_EQ(written, size);
    file.replace(off, size, data);
    std::string back;
    ASSERT_EQ(h.ReadPages(1 - q, e.nodeid, oo.fh, off, static_cast<uint32_t>(size), &back), 0);
    EXPECT_TRUE(back == data);
  }
  // A READ past EOF is answered short, through the caller's pages.
  std::string tail;
  ASSERT_EQ(h.ReadPages(1, e.nodeid, oo.fh, FdFileFs::kSize - 100, 4096, &tail), 0);
  EXPECT_EQ(tail, file.substr(FdFileFs::kSize - 100));
  std::string on_disk(FdFileFs::kSize, '\0');
  ASSERT_EQ(pread(fs.fd(), on_disk.data(), on_disk.size(), 0),
            static_cast<ssize_t>(on_disk.size()));
  EXPECT_TRUE(on_disk == file);
  EXPECT_EQ(h.Release(0, e.nodeid, oo.fh), 0);

  h.model().VerifyQuiescent();
  EXPECT_THAT(h.model().violations(), IsEmpty());
  model::ModelStats st = h.model().stats();
  EXPECT_EQ(st.zero_copy, 11u);  // 5 writes, 5 reads, the short read
  EXPECT_GE(st.fixed_ops, 11u);
  EXPECT_TRUE(h.Stop().ok());
}

// Fewer buffers than entries (only possible by configuration): requests wait
// for a buffer the kernel recycles; none is dropped.
struct ExhaustVariant {
  const char* name;
  model::Mode mode;
  std::function<std::unique_ptr<PayloadPolicy>()> policy;
};

class PoolExhaustionTest : public ::testing::TestWithParam<ExhaustVariant> {};

TEST_P(PoolExhaustionTest, AllRequestsCompleteWithTwoBuffers) {
  std::unique_ptr<MemFs> mem = MemFs::Create();
  AsyncFs fs(mem.get());
  HarnessOptions o;
  o.model.mode = GetParam().mode;
  o.model.nr_queues = 2;
  o.policy = GetParam().policy;
  o.entries = 8;
  o.fs = &fs;
  ModelHarness h(o);
  ASSERT_TRUE(h.Start().ok());
  ASSERT_EQ(h.model().TotalBuffers(0), 2u);
  fuse_entry_out e{};
  fuse_open_out op{};
  ASSERT_EQ(h.Create(0, FUSE_ROOT_ID, "x", 0600, &e, &op), 0);
  std::vector<std::thread> injectors;
  std::atomic<int> bad{0};
  for (int t = 0; t < 3; t++) {
    injectors.emplace_back([&, t] {
      std::vector<uint64_t> tickets;
      for (int i = 0; i < 40; i++) {
        int k = t * 40 + i;
        tickets.push_back(h.Send(k % 2, FUSE_WRITE, e.nodeid,
                                 ModelHarness::WriteIn(op.fh, k * 512, 512), Pattern(512, k),
                                 sizeof(fuse_write_out)));
      }
      for (uint64_t tk : tickets) bad += h.Wait(tk).error != 0;
    });
  }
  for (auto& t : injectors) t.join();
  EXPECT_EQ(bad.load(), 0);
  model::ModelStats st = h.model().stats();
  EXPECT_GT(st.waits_for_buffer, 0u);
  EXPECT_LE(st.max_buffers_in_use, 2u);
  std::string back;
  ASSERT_EQ(h.Read(1, e.nodeid, op.fh, 0, 120 * 512, &back), 0);
  for (int k = 0; k < 120; k++) ASSERT_EQ(back.substr(k * 512, 512), Pattern(512, k)) << k;
  h.model().VerifyQuiescent();
  EXPECT_THAT(h.model().violations(), IsEmpty());
  EXPECT_TRUE(h.Stop().ok());
}

INSTANTIATE_TEST_SUITE_P(
    BufferedPolicies, PoolExhaustionTest,
    ::testing::Values(ExhaustVariant{"kmbuf", model::Mode::kKmbuf,
                                     [] {
                                       KmbufOptions k;
                                       k.ring_entries = 2;
                                       return MakeKmbufPolicy(k);
                                     }},
                      ExhaustVariant{"bufpool", model::Mode::kBufpool,
                                     [] {
                                       BufpoolOptions b;
                                       b.bufs = 2;
                                       return MakeBufpoolPolicy(b);
                                     }}),
    [](const ::testing::TestParamInfo<ExhaustVariant>& i) { return i.param.name; });

}  // namespace
}  // namespace kmfuse::testing
