// Hot-path micro-benchmarks: decode + gate + dispatch + encode of the
// requests that dominate fio runs, against the in-memory filesystem, with a
// sink that encodes the reply header in place but makes no syscall. Measures
// the daemon's own per-request CPU, apart from the kernel handoff.
#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>
#include <utility>
#include <vector>

#include "benchmark/benchmark.h"
#include "daemon/proto/dispatch.h"
#include "daemon/proto/reply_header.h"
#include "daemon/proto/request.h"
#include "fs/plan_executor.h"
#include "kmfuse/memfs.h"

namespace kmfuse::proto {
namespace {

using namespace kmfuse::abi;  // NOLINT

// Encodes the reply header in front of the args like the /dev/fuse sinks.
class BenchSink final : public ReplySink {
 public:
  explicit BenchSink(size_t cap) : buf_(cap + 4096) {}
  absl::Span<char> ArgArea() override { return {buf_.data() + 4096, buf_.size() - 4096}; }
  void Begin(const fuse_in_header& in) override { unique = in.unique; }
  void Commit(Answer answer) override {
    answer = AnswerInMemory(std::move(answer), ArgArea());
    WriteReplyHeader(buf_.data() + 4096 - sizeof(fuse_out_header), unique, answer.error,
                     answer.args_len);
    last_error = answer.error;
  }
  void Drop() override {}
  uint64_t unique = 0;
  int32_t last_error = 0;

 private:
  std::vector<char> buf_;
};

struct Fixture {
  Fixture() : fs(MemFs::Create()), d(fs.get(), nullptr, false), sink(1 << 20) {
    ConnectionInfo conn;
    (void)fs->Init(conn);
    // Create /f with 1 MiB of data through the dispatcher itself.
    std::vector<char> req;
    fuse_create_in c{};
    c.flags = O_RDWR;
    c.mode = S_IFREG | 0644;
    Build(FUSE_CREATE, FUSE_ROOT_ID, &c, sizeof(c), "f", 2, &req);
    Run(req);
    fuse_entry_out e;
    fuse_open_out o;
    std::memcpy(&e, sink.ArgArea().data(), sizeof(e));
    std::memcpy(&o, sink.ArgArea().data() + sizeof(e), sizeof(o));
    ino = e.nodeid;
    fh = o.fh;
    std::vector<char> data(1 << 20, 'x');
    fuse_write_in w{};
    w.fh = fh;
    w.size = static_cast<uint32_t>(data.size());
    Build(FUSE_WRITE, ino, &w, sizeof(w), data.data(), data.size(), &req);
    Run(req);
  }

  void Build(uint32_t op, uint64_t nodeid, const void* arg, size_t arg_len, const void* tail,
             size_t tail_len, std::vector<char>* out) {
    fuse_in_header in{};
    in.len = static_cast<uint32_t>(sizeof(in) + arg_len + tail_len);
    in.opcode = op;
    in.unique = ++unique;
    in.nodeid = nodeid;
    out->resize(in.len);
    std::memcpy(out->data(), &in, sizeof(in));
    std::memcpy(out->data() + sizeof(in), arg, arg_len);
    if (tail_len) std::memcpy(out->data() + sizeof(in) + arg_len, tail, tail_len);
  }

  void Run(const std::vector<char>& req) {
    if (d.Deliver(RequestBytes::Contiguous(req.data(), req.size()), &sink) != 0) abort();
  }

  std::unique_ptr<MemFs> fs;
  Dispatcher d;
  BenchSink sink;
  uint64_t unique = 0;
  uint64_t ino = 0;
  uint64_t fh = 0;
};

void BM_Getattr(benchmark::State& state) {
  Fixture f;
  fuse_getattr_in g{};
  std::vector<char> req;
  f.Build(FUSE_GETATTR, f.ino, &g, sizeof(g), nullptr, 0, &req);
  for (auto _ : state) f.Run(req);
  if (f.sink.last_error != 0) state.SkipWithError("GETATTR failed");
}
BENCHMARK(BM_Getattr);

void BM_Read(benchmark::State& state) {
  Fixture f;
  fuse_read_in r{};
  r.fh = f.fh;
  r.size = static_cast<uint32_t>(state.range(0));
  std::vector<char> req;
  f.Build(FUSE_READ, f.ino, &r, sizeof(r), nullptr, 0, &req);
  for (auto _ : state) f.Run(req);
  if (f.sink.last_error != 0) state.SkipWithError("READ failed");
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Read)->Arg(4096)->Arg(128 << 10)->Arg(1 << 20);

void BM_Write(benchmark::State& state) {
  Fixture f;
  fuse_write_in w{};
  w.fh = f.fh;
  w.size = static_cast<uint32_t>(state.range(0));
  std::vector<char> data(state.range(0), 'y');
  std::vector<char> req;
  f.Build(FUSE_WRITE, f.ino, &w, sizeof(w), data.data(), data.size(), &req);
  for (auto _ : state) f.Run(req);
  if (f.sink.last_error != 0) state.SkipWithError("WRITE failed");
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Write)->Arg(4096)->Arg(128 << 10);

// The gate alone: a malformed request rejected before any filesystem call.
void BM_RejectMalformed(benchmark::State& state) {
  Fixture f;
  std::vector<char> req;
  f.Build(FUSE_LOOKUP, FUSE_ROOT_ID, nullptr, 0, "no-nul", 6, &req);
  for (auto _ : state) f.Run(req);
  if (f.sink.last_error != -EINVAL) state.SkipWithError("not rejected");
}
BENCHMARK(BM_RejectMalformed);

}  // namespace
}  // namespace kmfuse::proto
