// hwyconv/impl/depthwise.hpp - depthwise convolutions (groups == C == K), all three passes: the 16
// channels of a block in the vector lanes, each its own group (kernels/depthwise-inl.h). Weights are
// Goihw16g, [div_up(G,16)][R][S][16 g], in every pass (backward data reads the forward weights as
// they are: no transpose, no flip). Forward and backward data run rows of pixels, split among the
// threads as contiguous ranges of (image, channel block, row); the weight update splits (channel
// block, tap row) tasks, each reducing over every image, so its result does not depend on the thread
// count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "hwyconv/dispatch/dispatch.hpp"
#include "hwyconv/impl/common.hpp"
#include "hwyconv/impl/impl.hpp"

namespace hwyconv::impl {

/// A depthwise plan: the layer and the threads. The row and task splits follow from them.
struct DwPlan {
  ConvDesc desc{};
  int threads = 1;
  double cost = 0;  ///< estimated cycles (see plan_depthwise)
};

/// Plans a depthwise layer (groups > 1 and G == C == K), else unimplemented. The cost estimate counts
/// the FMAs at the machine's peak (16-channel vectors over fma_per_cycle pipes), split over the
/// threads: depthwise has one implementation per pass, so it is for reports, not for a choice.
constexpr Status plan_depthwise(const ConvDesc& d, const PlanContext& ctx, DwPlan& p) {
  if (!d.depthwise()) return unimplemented("not a depthwise layer (groups == C == K)");
  p.desc = d;
  p.threads = ctx.threads;
  const double vec_fmas = double(d.N * d.Kb() * d.P() * d.Q() * d.R * d.S) * ctx.machine.vec_per_block;
  p.cost = vec_fmas / ctx.machine.fma_per_cycle / ctx.threads;
  return kOk;
}

/// What the three depthwise implementations share of the implementation interface.
template <class CallT>
struct DwImpl {
  using Call = CallT;
  using Plan = DwPlan;
  struct Streams {};
  static constexpr Status plan(const ConvDesc& d, const PlanContext& ctx, Plan& p) { return plan_depthwise(d, ctx, p); }
  static constexpr double cost(const Plan& p, const PlanContext&) { return p.cost; }
  static constexpr const char* invariant_violation(const Plan& p) {
    if (!p.desc.depthwise()) return "depthwise plan of a layer that is not depthwise";
    if (p.threads < 1) return "threads < 1";
    return nullptr;
  }
  static constexpr int64_t packed_size(const Plan&) { return 0; }
  static void pack(const Plan&, const float*, float*) {}
  static constexpr bool reads_nhwc(const Plan&) { return false; }
  static constexpr bool kPrefersNhwc = false;
  static std::string describe(const Plan& p) { return "rows, " + std::to_string(p.threads) + " threads"; }
  static Streams make_streams(const Plan&) { return {}; }
};

namespace dw_detail {

/// Channel blocks of one row kernel call (independent FMA chains on short rows).
inline constexpr int64_t kCallBlocks = 4;

/// Floor division (b > 0).
constexpr int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/// Greatest common divisor (a, b >= 1).
constexpr int64_t gcd(int64_t a, int64_t b) { return b == 0 ? a : gcd(b, a % b); }

/// The taps of a row of n pixels, in runs of pixels with the same taps. Tap k (0 .. count - 1) of
/// the row reads, for pixel j, source column first0 - k*step + j*j_step of a source `width` pixels
/// wide; pixel j runs the taps k inside the source, a contiguous range since the column is monotone
/// in k. A segment's in_off (the column of its first tap at pixel 0) is in source pixels and its
/// w_off (that tap) in taps: scale_segments makes them floats.
inline std::vector<DwSegment> row_segments(int64_t n, int64_t count, int64_t first0, int64_t step, int64_t j_step,
                                           int64_t width) {
  std::vector<DwSegment> segs;
  for (int64_t j = 0; j < n; ++j) {
    int64_t lo = count, hi = 0;
    for (int64_t k = 0; k < count; ++k) {
      const int64_t col = first0 - k * step + j * j_step;
      if (col >= 0 && col < width) {
        lo = std::min(lo, k);
        hi = k + 1;
      }
    }
    if (hi <= lo) lo = hi = 0;
    if (!segs.empty() && segs.back().j1 == j && segs.back().w_off == lo && segs.back().taps == hi - lo) {
      segs.back().j1 = j + 1;
      continue;
    }
    DwSegment sg;
    sg.j0 = j;
    sg.j1 = j + 1;
    sg.taps = hi - lo;
    sg.w_off = lo;                       // first tap, in taps
    sg.in_off = first0 - lo * step;      // its input column at pixel 0, in pixels
    segs.push_back(sg);
  }
  return segs;
}

/// Scales a row's segments from (pixels, taps) to floats: input pixels `in_px` floats apart, taps
/// `w_px` weight floats apart.
inline void scale_segments(std::vector<DwSegment>& segs, int64_t in_px, int64_t w_px) {
  for (DwSegment& sg : segs) {
    sg.in_off *= in_px;
    sg.w_off *= w_px;
  }
}

/// ddst with the ReLU mask applied (0 where the forward output was not > 0), into `out`: the
/// depthwise kernels then read one tensor.
inline void masked_ddst(const ConvDesc& d, int threads, const float* ddst, const float* mask, float* out,
                        const ParallelFor& pf) {
  const int64_t plane = d.P() * d.Q() * kBlock;
  run_items(pf, threads, d.N * d.Kb(), [&](int64_t i) {
    for (int64_t e = i * plane; e < (i + 1) * plane; ++e) out[e] = mask[e] > 0.0f ? ddst[e] : 0.0f;
  });
}

}  // namespace dw_detail

/// What the two depthwise backward implementations share: ddst as their kernels read it.
template <class CallT>
struct DwBackward : DwImpl<CallT> {
  /// Workspace: ddst with the ReLU mask applied (used only with a mask).
  static constexpr int64_t workspace(const DwPlan& p) {
    return act_blocked_size(p.desc.N, p.desc.K, p.desc.P(), p.desc.Q());
  }
  /// The call's ddst, or with a ReLU mask ddst masked into the workspace.
  static const float* gradients(const DwPlan& p, const CallT& c, float* ws, const ParallelFor& pf) {
    if (!c.mask) return c.ddst;
    dw_detail::masked_ddst(p.desc, p.threads, c.ddst, c.mask, ws, pf);
    return ws;
  }
};

/// Depthwise forward: each thread runs its range of (image, channel block, output row), one row
/// kernel call per row, the epilogue fused (bias, scale-shift, residual, ReLU).
struct FwdDepthwise : DwImpl<FwdCall> {
  static constexpr const char* kName = "fwd_depthwise";

  /// Workspace: the epilogue's per-channel vectors (padded to whole blocks).
  static constexpr int64_t workspace(const Plan& p) { return epilogue_floats(p.desc); }

  static void run(const Plan& p, const Streams&, const FwdCall& c, float* ws, const ParallelFor& pf) {
    const ConvDesc& d = p.desc;
    FwdArgs e;  // the epilogue's vectors, as the dense kernels get them
    set_epilogue(d, c, ws, e);
    const int64_t P = d.P(), Q = d.Q(), Kb = d.Kb(), groups = div_up(Kb, dw_detail::kCallBlocks);
    // Output column q, tap s reads input column q*stride_w + s*dil_w - pad_l.
    std::vector<DwSegment> segs = dw_detail::row_segments(Q, d.S, -d.pad_l, -d.dil_w, d.stride_w, d.W);
    dw_detail::scale_segments(segs, kBlock, kBlock);
    DwArgs base;
    base.seg = segs.data();
    base.segs = int64_t(segs.size());
    base.row_in = d.dil_h * d.W * kBlock;
    base.row_w = d.S * kBlock;
    base.tap_in = d.dil_w * kBlock;
    base.tap_w = kBlock;
    base.in_px = d.stride_w * kBlock;
    base.out_px = kBlock;
    base.in_cb = d.H * d.W * kBlock;
    base.out_cb = P * Q * kBlock;
    base.wei_cb = d.R * d.S * kBlock;
    base.bias = e.bias;
    base.scale = e.scale;
    base.shift = e.shift;
    base.clamp_lo = c.clamp_lo;
    base.clamp_hi = c.clamp_hi;
    base.ops = c.ops;
    base.k_valid = d.K;
    const DwRowFn row = kernels().dw_row;
    run_items(pf, p.threads, d.N * groups * P, [&](int64_t i) {
      const int64_t pp = i % P, grp = i / P % groups, n = i / P / groups, cb = grp * dw_detail::kCallBlocks;
      // Tap rows whose input row is inside src: 0 <= pp*stride_h + r*dil_h - pad_t < H.
      const int64_t h0 = pp * d.stride_h - d.pad_t;
      int64_t r0 = 0, r1 = d.R;
      while (r0 < d.R && h0 + r0 * d.dil_h < 0) ++r0;
      while (r1 > r0 && h0 + (r1 - 1) * d.dil_h >= d.H) --r1;
      DwArgs a = base;
      a.rows = r1 - r0;
      a.cbs = std::min(dw_detail::kCallBlocks, Kb - cb);
      a.in = c.src + ((n * Kb + cb) * d.H + h0 + r0 * d.dil_h) * d.W * kBlock;
      a.wei = c.wei + (cb * d.R + r0) * d.S * kBlock;
      const int64_t out_off = ((n * Kb + cb) * P + pp) * Q * kBlock;
      a.out = c.dst + out_off;
      a.residual = c.residual ? c.residual + out_off : nullptr;
      a.ch = cb * kBlock;
      row(a);
    });
  }
};

/// Depthwise backward data: each thread runs its range of (image, channel block, dsrc row), one row
/// kernel call per column phase of the row (stride_w of them), gathering from ddst.
struct BwdDataDepthwise : DwBackward<BwdDataCall> {
  static constexpr const char* kName = "bwd_d_depthwise";

  static void run(const Plan& p, const Streams&, const BwdDataCall& c, float* ws, const ParallelFor& pf) {
    const ConvDesc& d = p.desc;
    const float* ddst = gradients(p, c, ws, pf);
    const float* wei = c.packed ? c.packed : c.wei;
    const int64_t P = d.P(), Q = d.Q(), Cb = d.Cb(), groups = div_up(Cb, dw_detail::kCallBlocks);
    // dsrc pixel w = f + j*stride_w (column phase f) gathers ddst column o_w = (w + pad_l - s*dil_w) /
    // stride_w over the taps s where that divides exactly: s = s_f + k*step_s, step_s = stride_w /
    // gcd(stride_w, dil_w), and then o_w = j + first_f - k*(step_s*dil_w/stride_w). Rows alike.
    const int64_t step_s = d.stride_w / dw_detail::gcd(d.stride_w, d.dil_w);
    const int64_t step_r = d.stride_h / dw_detail::gcd(d.stride_h, d.dil_h);
    const int64_t phases = std::min(d.stride_w, d.W);
    std::vector<std::vector<DwSegment>> segs(static_cast<size_t>(phases));
    std::vector<int64_t> phase_s0(static_cast<size_t>(phases), 0);
    for (int64_t f = 0; f < phases; ++f) {
      int64_t s0 = 0;
      while (s0 < d.S && (f + d.pad_l - s0 * d.dil_w) % d.stride_w != 0) ++s0;
      phase_s0[size_t(f)] = s0;
      if (s0 >= d.S) continue;  // no tap reaches this phase: its pixels get zeros (no segment: below)
      const int64_t count = (d.S - 1 - s0) / step_s + 1;
      const int64_t first0 = dw_detail::floor_div(f + d.pad_l - s0 * d.dil_w, d.stride_w);
      segs[size_t(f)] = dw_detail::row_segments(div_up(d.W - f, d.stride_w), count, first0,
                                                step_s * d.dil_w / d.stride_w, 1, Q);
      dw_detail::scale_segments(segs[size_t(f)], kBlock, step_s * kBlock);
    }
    DwArgs base;
    base.row_w = step_r * d.S * kBlock;
    base.row_in = -(step_r * d.dil_h / d.stride_h) * Q * kBlock;
    base.tap_w = step_s * kBlock;
    base.tap_in = -(step_s * d.dil_w / d.stride_w) * kBlock;
    base.in_px = kBlock;
    base.out_px = d.stride_w * kBlock;
    base.in_cb = P * Q * kBlock;
    base.out_cb = d.H * d.W * kBlock;
    base.wei_cb = d.R * d.S * kBlock;
    base.k_valid = d.C;
    const DwRowFn row = kernels().dw_row;
    run_items(pf, p.threads, d.N * groups * d.H, [&](int64_t i) {
      const int64_t h = i % d.H, grp = i / d.H % groups, n = i / d.H / groups, cb = grp * dw_detail::kCallBlocks;
      // Tap rows r = r0 + k*step_r with (h + pad_t - r*dil_h) / stride_h exact and in [0, P).
      int64_t r0 = 0;
      while (r0 < d.R && (h + d.pad_t - r0 * d.dil_h) % d.stride_h != 0) ++r0;
      int64_t rows = 0, first = 0;
      for (int64_t r = r0; r < d.R; r += step_r) {
        const int64_t num = h + d.pad_t - r * d.dil_h;
        if (num < 0 || num / d.stride_h >= P) {
          if (rows == 0) r0 = r + step_r;  // before the first row inside: skip
          continue;
        }
        if (rows == 0) first = num / d.stride_h;
        ++rows;
      }
      for (int64_t f = 0; f < phases; ++f) {
        DwArgs a = base;
        const std::vector<DwSegment>& sg = segs[size_t(f)];
        DwSegment none{0, div_up(d.W - f, d.stride_w), 0, 0, 0};  // a phase no tap reaches: zeros
        a.seg = sg.empty() ? &none : sg.data();
        a.segs = sg.empty() ? 1 : int64_t(sg.size());
        a.rows = rows;
        a.cbs = std::min(dw_detail::kCallBlocks, Cb - cb);
        a.in = ddst + ((n * Cb + cb) * P + first) * Q * kBlock;
        a.wei = wei + (cb * d.R + r0) * d.S * kBlock + phase_s0[size_t(f)] * kBlock;
        a.out = c.dsrc + ((n * Cb + cb) * d.H + h) * d.W * kBlock + f * kBlock;
        a.ch = cb * kBlock;
        row(a);
      }
    });
  }
};

/// Depthwise weight update: (channel block, tap row, up to 4 taps of it) tasks split among the
/// threads, each reducing over every image and pixel in registers; dbias summed per channel block.
struct BwdWDepthwise : DwBackward<BwdWeightsCall> {
  static constexpr const char* kName = "bwd_w_depthwise";

  static void run(const Plan& p, const Streams&, const BwdWeightsCall& c, float* ws, const ParallelFor& pf) {
    const ConvDesc& d = p.desc;
    const float* ddst = gradients(p, c, ws, pf);
    const int64_t P = d.P(), Q = d.Q(), Cb = d.Cb(), chunks = div_up(d.S, 4);
    const KernelTable& kt = kernels();
    run_items(pf, p.threads, Cb * d.R * chunks, [&](int64_t i) {
      const int64_t chunk = i % chunks, r = i / chunks % d.R, cb = i / chunks / d.R;
      const int64_t s0 = chunk * 4, sn = std::min<int64_t>(4, d.S - s0);
      DwBwdWArgs a;
      a.src = c.src + cb * d.H * d.W * kBlock;
      a.ddst = ddst + cb * P * Q * kBlock;
      a.dwei = c.dwei + ((cb * d.R + r) * d.S + s0) * kBlock;
      a.N = d.N;
      a.src_n = Cb * d.H * d.W * kBlock;
      a.ddst_n = Cb * P * Q * kBlock;
      a.W = d.W;
      a.Q = Q;
      a.h0 = r * d.dil_h - d.pad_t;
      a.stride_h = d.stride_h;
      // 0 <= h0 + p*stride_h < H
      a.p_lo = a.h0 >= 0 ? 0 : div_up(-a.h0, d.stride_h);
      a.p_hi = std::max(a.p_lo, std::min(P, (d.H - 1 - a.h0) / d.stride_h + 1));
      a.w0 = s0 * d.dil_w - d.pad_l;
      a.stride_w = d.stride_w;
      a.dil_w = d.dil_w;
      for (int64_t k = 0; k < sn; ++k) {
        const int64_t w0 = a.w0 + k * d.dil_w;  // 0 <= w0 + q*stride_w < W
        a.q_lo[k] = w0 >= 0 ? 0 : div_up(-w0, d.stride_w);
        a.q_hi[k] = std::max(a.q_lo[k], std::min(Q, (d.W - 1 - w0) / d.stride_w + 1));
      }
      kt.dw_bwd_w[sn - 1](a);
    });
    if (!c.dbias) return;
    // dbias[k] = sum over images and pixels of ddst: one pass per channel block, in 16 lanes.
    run_items(pf, p.threads, Cb, [&](int64_t cb) {
      float sum[kBlock] = {};
      for (int64_t n = 0; n < d.N; ++n) {
        const float* g = ddst + (n * Cb + cb) * P * Q * kBlock;
        for (int64_t px = 0; px < P * Q; ++px)
          for (int64_t l = 0; l < kBlock; ++l) sum[l] += g[px * kBlock + l];
      }
      for (int64_t l = 0; l < kBlock && cb * kBlock + l < d.K; ++l) c.dbias[cb * kBlock + l] = sum[l];
    });
  }
};

}  // namespace hwyconv::impl
