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

/// Floor division (b > 0).
constexpr int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }


/// The taps of output row p (forward): tap rows whose input row is inside src, every column, with the
/// columns q of the row each reads inside src. Offsets are from the channel block's plane of src.
/// Returns the tap count; [lo, hi) gets the columns every tap reads inside.
inline int64_t fwd_row_taps(const ConvDesc& d, int64_t p, DwTap* taps, int64_t& lo, int64_t& hi) {
  int64_t n = 0;
  lo = 0;
  hi = d.Q();
  for (int64_t r = 0; r < d.R; ++r) {
    const int64_t h = p * d.stride_h + r * d.dil_h - d.pad_t;
    if (h < 0 || h >= d.H) continue;
    for (int64_t s = 0; s < d.S; ++s) {
      const int64_t w0 = s * d.dil_w - d.pad_l;  // input column of q = 0
      DwTap& t = taps[n++];
      t.in_off = (h * d.W + w0) * kBlock;
      t.w_off = (r * d.S + s) * kBlock;
      // 0 <= q*stride + w0 < W
      t.j_lo = w0 >= 0 ? 0 : div_up(-w0, d.stride_w);
      t.j_hi = std::min(d.Q(), floor_div(d.W - 1 - w0, d.stride_w) + 1);
      if (t.j_lo >= t.j_hi) {  // reads only padding
        --n;
        continue;
      }
      lo = std::max(lo, t.j_lo);
      hi = std::min(hi, t.j_hi);
    }
  }
  return n;
}

/// The taps of input row h, column phase f (backward data): the pixels w = f + j*stride_w of dsrc
/// row h gather ddst[o_h][o_w] * wei[r][s] over the taps with h = o_h*stride_h + r*dil_h - pad_t and
/// w = o_w*stride_w + s*dil_w - pad_l; for a tap that fits the phase, o_w = j + (f + pad_l -
/// s*dil_w) / stride_w: consecutive pixels of ddst. Offsets are from the block's plane of ddst.
inline int64_t bwd_d_row_taps(const ConvDesc& d, int64_t h, int64_t f, DwTap* taps, int64_t& lo, int64_t& hi) {
  const int64_t P = d.P(), Q = d.Q(), n_px = div_up(d.W - f, d.stride_w);
  int64_t n = 0;
  lo = 0;
  hi = n_px;
  for (int64_t r = 0; r < d.R; ++r) {
    const int64_t num_h = h + d.pad_t - r * d.dil_h;
    if (num_h < 0 || num_h % d.stride_h != 0 || num_h / d.stride_h >= P) continue;
    const int64_t oh = num_h / d.stride_h;
    for (int64_t s = 0; s < d.S; ++s) {
      const int64_t num_w = f + d.pad_l - s * d.dil_w;
      if (((num_w % d.stride_w) + d.stride_w) % d.stride_w != 0) continue;
      const int64_t ow0 = floor_div(num_w, d.stride_w);  // exact
      DwTap& t = taps[n++];
      t.in_off = (oh * Q + ow0) * kBlock;
      t.w_off = (r * d.S + s) * kBlock;
      // 0 <= j + ow0 < Q
      t.j_lo = std::max<int64_t>(0, -ow0);
      t.j_hi = std::min(n_px, Q - ow0);
      if (t.j_lo >= t.j_hi) {  // reads only padding
        --n;
        continue;
      }
      lo = std::max(lo, t.j_lo);
      hi = std::min(hi, t.j_hi);
    }
  }
  return n;
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
    const int64_t P = d.P(), Q = d.Q(), Kb = d.Kb();
    const DwRowFn row = kernels().dw_row;
    run_items(pf, p.threads, d.N * Kb * P, [&](int64_t i) {
      const int64_t pp = i % P, nk = i / P;  // nk = n*Kb + kb
      DwTap taps[kMaxTaps];
      DwArgs a;
      a.taps = dw_detail::fwd_row_taps(d, pp, taps, a.j_lo, a.j_hi);
      a.tap = taps;
      a.n = Q;
      a.in_px = d.stride_w * kBlock;
      a.in = c.src + nk * d.H * d.W * kBlock;
      a.wei = c.wei + (nk % Kb) * d.R * d.S * kBlock;
      const int64_t out_off = (nk * P + pp) * Q * kBlock;
      a.out = c.dst + out_off;
      a.residual = c.residual ? c.residual + out_off : nullptr;
      a.bias = e.bias;
      a.scale = e.scale;
      a.shift = e.shift;
      a.ops = c.ops;
      a.ch = (nk % Kb) * kBlock;
      a.k_valid = d.K;
      row(a);
    });
  }
};

/// Depthwise backward data: each thread runs its range of (image, channel block, dsrc row), one row
/// kernel call per column phase of the row (stride_w of them), gathering from ddst.
struct BwdDataDepthwise : DwImpl<BwdDataCall> {
  static constexpr const char* kName = "bwd_d_depthwise";

  /// Workspace: ddst with the ReLU mask applied (used only with a mask).
  static constexpr int64_t workspace(const Plan& p) {
    return act_blocked_size(p.desc.N, p.desc.K, p.desc.P(), p.desc.Q());
  }

  static void run(const Plan& p, const Streams&, const BwdDataCall& c, float* ws, const ParallelFor& pf) {
    const ConvDesc& d = p.desc;
    const float* ddst = c.ddst;
    if (c.mask) {
      dw_detail::masked_ddst(d, p.threads, c.ddst, c.mask, ws, pf);
      ddst = ws;
    }
    const float* wei = c.packed ? c.packed : c.wei;
    const int64_t P = d.P(), Q = d.Q(), Cb = d.Cb();
    const DwRowFn row = kernels().dw_row;
    run_items(pf, p.threads, d.N * Cb * d.H, [&](int64_t i) {
      const int64_t h = i % d.H, nc = i / d.H;  // nc = n*Cb + cb
      DwTap taps[kMaxTaps];
      for (int64_t f = 0; f < std::min(d.stride_w, d.W); ++f) {
        DwArgs a;
        a.taps = dw_detail::bwd_d_row_taps(d, h, f, taps, a.j_lo, a.j_hi);
        a.tap = taps;
        a.n = div_up(d.W - f, d.stride_w);
        a.in_px = kBlock;
        a.out_px = d.stride_w * kBlock;
        a.in = ddst + nc * P * Q * kBlock;
        a.wei = wei + (nc % Cb) * d.R * d.S * kBlock;
        a.out = c.dsrc + ((nc * d.H + h) * d.W + f) * kBlock;
        a.ch = (nc % Cb) * kBlock;
        a.k_valid = d.C;
        row(a);
      }
    });
  }
};

/// Depthwise weight update: (channel block, tap row, up to 4 taps of it) tasks split among the
/// threads, each reducing over every image and pixel in registers; dbias summed per channel block.
struct BwdWDepthwise : DwImpl<BwdWeightsCall> {
  static constexpr const char* kName = "bwd_w_depthwise";

  /// Workspace: ddst with the ReLU mask applied (used only with a mask).
  static constexpr int64_t workspace(const Plan& p) {
    return act_blocked_size(p.desc.N, p.desc.K, p.desc.P(), p.desc.Q());
  }

  static void run(const Plan& p, const Streams&, const BwdWeightsCall& c, float* ws, const ParallelFor& pf) {
    const ConvDesc& d = p.desc;
    const float* ddst = c.ddst;
    if (c.mask) {
      dw_detail::masked_ddst(d, p.threads, c.ddst, c.mask, ws, pf);
      ddst = ws;
    }
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
