// bench/peak.cpp - the FMA peak of this machine, measured with Highway.
//
// This translation unit owns its own foreach_target chain, so it must not include hwyconv.hpp
// (Highway 1.0.3 allows one chain per TU; see HIGHWAY-NOTES.md). It is compiled with dynamic dispatch
// even when hwyconv itself is built with HWYCONV_STATIC_DISPATCH.
#undef HWY_COMPILE_ONLY_STATIC
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL 1
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "peak.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace bench {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// Runs 12 independent FMA chains of full vectors for `iters` iterations (12 covers the 4-cycle FMA
/// latency on 2 ports with room to spare, and fits the 16 registers of AVX2/SSE4 with the two
/// operands). Returns the flops done; `sink` receives the result so that nothing is optimized away.
double FmaChains(int64_t iters, float* sink) {
  const hn::ScalableTag<float> d;
  const auto m = hn::Set(d, 0.999999f), b = hn::Set(d, 1e-7f);
  auto a0 = hn::Set(d, 0.0f), a1 = hn::Set(d, 0.1f), a2 = hn::Set(d, 0.2f), a3 = hn::Set(d, 0.3f);
  auto a4 = hn::Set(d, 0.4f), a5 = hn::Set(d, 0.5f), a6 = hn::Set(d, 0.6f), a7 = hn::Set(d, 0.7f);
  auto a8 = hn::Set(d, 0.8f), a9 = hn::Set(d, 0.9f), a10 = hn::Set(d, 1.0f), a11 = hn::Set(d, 1.1f);
  for (int64_t i = 0; i < iters; ++i) {
    a0 = hn::MulAdd(a0, m, b), a1 = hn::MulAdd(a1, m, b), a2 = hn::MulAdd(a2, m, b);
    a3 = hn::MulAdd(a3, m, b), a4 = hn::MulAdd(a4, m, b), a5 = hn::MulAdd(a5, m, b);
    a6 = hn::MulAdd(a6, m, b), a7 = hn::MulAdd(a7, m, b), a8 = hn::MulAdd(a8, m, b);
    a9 = hn::MulAdd(a9, m, b), a10 = hn::MulAdd(a10, m, b), a11 = hn::MulAdd(a11, m, b);
  }
  const auto sum = hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)),
                           hn::Add(hn::Add(hn::Add(a4, a5), hn::Add(a6, a7)),
                                   hn::Add(hn::Add(a8, a9), hn::Add(a10, a11))));
  *sink = hn::GetLane(hn::SumOfLanes(d, sum));
  return 2.0 * 12.0 * double(hn::Lanes(d)) * double(iters);
}

/// Name of the target this copy was compiled for.
const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace bench
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "peak.hpp"

namespace bench {

HWY_EXPORT(FmaChains);
HWY_EXPORT(TargetName);

namespace {

/// One trial: `threads` threads start together and each runs `iters` iterations; the slowest one
/// sets the time (what a statically partitioned kernel sees too). Returns GFLOP/s.
double peak_trial(int threads, int64_t iters) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<double> flops(size_t(threads), 0.0);
  std::vector<float> sinks(size_t(threads) * 16, 0.0f);  // one cache line each
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t)
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      flops[size_t(t)] = HWY_DYNAMIC_DISPATCH(FmaChains)(iters, &sinks[size_t(t) * 16]);
    });
  while (ready.load() < threads - 1) std::this_thread::yield();
  const auto t0 = std::chrono::steady_clock::now();
  go.store(true);
  flops[0] = HWY_DYNAMIC_DISPATCH(FmaChains)(iters, &sinks[0]);
  for (std::thread& th : pool) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double total = 0;
  for (double f : flops) total += f;
  return total / s * 1e-9;
}

}  // namespace

Peak measure_peak(int threads, double seconds) {
  constexpr int kTrials = 5;  // the best trial counts: other work on the machine only slows one down
  threads = threads < 1 ? 1 : threads;
  float sink = 0;
  // Calibrate on one thread: iterations for one trial.
  int64_t iters = 1 << 14;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    HWY_DYNAMIC_DISPATCH(FmaChains)(iters, &sink);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0.01) {
      iters = int64_t(double(iters) * seconds / kTrials / s);
      break;
    }
    iters *= 4;
  }
  double best = 0;
  for (int i = 0; i < kTrials; ++i) best = std::max(best, peak_trial(threads, iters));
  return {best, HWY_DYNAMIC_DISPATCH(TargetName)()};
}

}  // namespace bench
#endif  // HWY_ONCE
