// hwyconv/impl/common.hpp - pieces the drivers of several implementations share: work split among
// threads, the replay loop of a kernel stream, the microkernel arguments of a plan, the epilogue's
// per-channel vectors, and the working input made for all images at once.
#pragma once

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>

#include "hwyconv/dispatch/dispatch.hpp"
#include "hwyconv/impl/impl.hpp"
#include "hwyconv/layout/input_transform.hpp"
#include "hwyconv/plan/fwd_plan.hpp"
#include "hwyconv/stream/kernel_stream.hpp"
#include "hwyconv/threading/parallel_for.hpp"

namespace hwyconv::impl {

/// Runs `items` work items over `threads` parts in contiguous ranges.
template <class F>
void run_items(const ParallelFor& pf, int threads, int64_t items, F&& f) {
  if (items <= 0) return;
  parallel_run(pf, threads, [&](int64_t t) {
    for (int64_t i = items * t / threads; i < items * (t + 1) / threads; ++i) f(i);
  });
}

/// A kernel stream as the replay loop reads it: entries, and thread t's range [begin[t], begin[t + 1]).
struct StreamView {
  const StreamEntry* entries = nullptr;
  const int64_t* begin = nullptr;
};

inline StreamView view(const RuntimeStream& s) { return {s.entries.data(), s.begin.data()}; }

/// Replays thread t's part of a kernel stream; `before(entry)` runs ahead of each call (the
/// per-image input transforms use it). Each call prefetches the data of the next entry into L1 and
/// of the entry kL2PrefetchDistance ahead into L2.
template <class Before = void (*)(const StreamEntry&)>
void replay(const FwdKernelFn* fns, const FwdArgs& a, StreamView s, int64_t t,
            Before&& before = [](const StreamEntry&) {}) {
  const int64_t b = s.begin[t], e = s.begin[t + 1];
  for (int64_t i = b; i < e; ++i) {
    const StreamEntry& en = s.entries[i];
    before(en);
    fns[en.block](a, en, s.entries[std::min(i + 1, e - 1)], s.entries[std::min(i + kL2PrefetchDistance, e - 1)]);
  }
}

/// The forward microkernels compiled in form f for this CPU.
inline const FwdKernelFn* fwd_kernels(PixelForm f) {
  const KernelTable& kt = kernels();
  return f == PixelForm::kStride2 ? kt.fwd_s2 : (f == PixelForm::kDense ? kt.fwd_dense : kt.fwd);
}

/// Microkernel arguments of a kernel geometry (data pointers and epilogue are set by the caller).
inline FwdArgs kernel_args(const KernelGeometry& g, const Tap* taps) {
  FwdArgs a;
  a.tap = taps;
  a.taps = g.taps;
  a.tap_cols = g.tap_cols;
  a.in_row = g.in_row;
  a.in_cb = g.in_cb;
  a.wei_cb = g.wei_cb;
  a.wei_kb = g.wei_kb;
  a.out_row = g.out_row;
  a.out_kb = g.out_kb;
  a.out_px = g.out_px;
  a.in_px = g.in_px;
  a.tap_channels = g.tap_channels;
  a.epilogue = find_epilogue(kEpiNone);
  return a;
}

/// Floats of the epilogue's per-channel vectors in a forward workspace: bias, scale, shift, each
/// padded to Kb*16.
constexpr int64_t epilogue_floats(const ConvDesc& d) { return 3 * d.Kb() * kBlock; }

/// Sets the epilogue of a forward call: copies bias, scale and shift into `vecs` (epilogue_floats,
/// zero-padded to Kb*16 so a whole block can be loaded) and points the arguments at them.
inline void set_epilogue(const ConvDesc& d, const FwdCall& c, float* vecs, FwdArgs& a) {
  const int64_t kpad = d.Kb() * kBlock;
  std::fill(vecs, vecs + 3 * kpad, 0.0f);
  if (c.bias) std::copy_n(c.bias, d.K, vecs);
  if (c.scale) {
    std::copy_n(c.scale, d.K, vecs + kpad);
    std::copy_n(c.shift, d.K, vecs + 2 * kpad);
  }
  a.bias = vecs;
  a.scale = vecs + kpad;
  a.shift = vecs + 2 * kpad;
  a.residual = c.residual;
  a.clamp_lo = c.clamp_lo;
  a.clamp_hi = c.clamp_hi;
  a.ops = c.ops;
  a.epilogue = find_epilogue(c.ops);
  a.k_valid = d.K;
  a.out = c.dst;
}

/// Makes a plan's working input for all images at once (every stage, each a parallel loop).
inline void run_input_transform(const ParallelFor& pf, const FwdPlan& p, const float* src, float* work) {
  for (int stage = 0; stage < input_transform_stages(p); ++stage)
    run_items(pf, p.b.threads, input_transform_items(p, stage),
              [&](int64_t i) { transform_input(p, src, work, stage, i); });
}

/// What the forward implementations share of the implementation interface (impl/impl.hpp): a
/// FwdPlan, one kernel stream, and run() through I::run_stream (which StaticConv calls with its
/// constant stream).
template <class I>
struct FwdImpl {
  using Call = FwdCall;
  using Plan = FwdPlan;
  using Streams = RuntimeStream;
  static constexpr double cost(const Plan& p, const PlanContext&) { return p.cost.total(); }
  static Streams make_streams(const Plan& p) { return make_fwd_stream(p.g, p.b, p.tap.data()); }
  static void run(const Plan& p, const Streams& s, const FwdCall& c, float* ws, const ParallelFor& pf) {
    I::run_stream(p, view(s), c, ws, pf);
  }
};

/// Blocking of a forward plan in a few words: "rb1x14x2k cc4 kg2" (register block, C chunk, K group)
/// and the loop-order flags.
inline std::string describe_blocking(const RegBlock& rb, const Blocking& b) {
  std::ostringstream s;
  s << "rb" << rb.rb_p << "x" << rb.rb_q;
  if (rb.kbs > 1) s << "x" << rb.kbs << "k";
  s << " cc" << b.c_chunk << " kg" << b.kb_group;
  if (b.q_groups > 1) s << " qg" << b.q_groups;
  if (b.images_inner) s << " images-inner";
  return s.str();
}

}  // namespace hwyconv::impl
