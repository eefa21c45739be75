// Costs on the data path: returning a buffer to a provided ring, and one nop
// through the ring (submit + wait + reap), the floor of any request.
#include <cstdio>
#include <cstdlib>

#include "benchmark/benchmark.h"
#include "uring/buffer_ring.h"
#include "uring/ring.h"

namespace kmfuse::uring {
namespace {

std::unique_ptr<Ring> MakeRing(benchmark::State& state) {
  auto ring = Ring::Create(RingOptions{});
  if (!ring.ok()) {
    state.SkipWithError(std::string(ring.status().message()).c_str());
    return nullptr;
  }
  return *std::move(ring);
}

// Recycle never enters the kernel: two stores plus a release store of the
// tail. The kernel is given no reads, so re-adding over consumed slots is
// harmless here.
void BM_Recycle(benchmark::State& state) {
  auto ring = MakeRing(state);
  if (ring == nullptr) return;
  BufferRingOptions o;
  o.entries = 64;
  o.buf_size = 4096;
  auto br = BufferRing::Create(*ring, o);
  if (!br.ok()) {
    state.SkipWithError(std::string(br.status().message()).c_str());
    return;
  }
  uint16_t bid = 0;
  for (auto _ : state) {
    (*br)->Recycle(bid);
    bid = (bid + 1) & 63;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Recycle);

// Stage a batch, publish once: the amortised form for a reaped CQ batch.
void BM_StagePublishBatch(benchmark::State& state) {
  auto ring = MakeRing(state);
  if (ring == nullptr) return;
  BufferRingOptions o;
  o.entries = 64;
  o.buf_size = 4096;
  auto br = BufferRing::Create(*ring, o);
  if (!br.ok()) {
    state.SkipWithError(std::string(br.status().message()).c_str());
    return;
  }
  const uint16_t batch = static_cast<uint16_t>(state.range(0));
  for (auto _ : state) {
    for (uint16_t bid = 0; bid < batch; ++bid) (*br)->Stage(bid);
    (*br)->Publish();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_StagePublishBatch)->Arg(8)->Arg(32);

void BM_NopRoundTrip(benchmark::State& state) {
  RingOptions o;
  o.single_issuer = state.range(0) != 0;
  o.defer_taskrun = state.range(0) != 0;
  auto created = Ring::Create(o);
  if (!created.ok()) {
    state.SkipWithError(std::string(created.status().message()).c_str());
    return;
  }
  Ring& ring = **created;
  uint64_t sum = 0;
  for (auto _ : state) {
    io_uring_sqe* sqe = ring.GetSqe();
    io_uring_prep_nop(sqe);
    sqe->user_data = 1;
    if (ring.SubmitAndWait(1) < 0) {
      state.SkipWithError("SubmitAndWait failed");
      break;
    }
    ring.Reap([&sum](const Completion& c) { sum += c.user_data; });
  }
  benchmark::DoNotOptimize(sum);
  state.SetLabel(SetupFlagsToString(ring.setup_flags()));
}
BENCHMARK(BM_NopRoundTrip)->Arg(0)->Arg(1);

}  // namespace
}  // namespace kmfuse::uring
