// hwyconv/impl/bwd_d_col2im.hpp - backward data of a layer with folded channels (small C, the first
// layer) as a 1x1 convolution followed by col2im.
//
// Instead of phases whose outputs are C padded to 16 channels (C = 3: 13 of 16 FMAs on zeros), one 1x1
// convolution from the K channels of ddst to the F = R*S*C folded channels gives each output pixel's
// contributions to the R x S x C input pixels it sees ("col"), which col2im then sums into dsrc, each
// dsrc row in a fixed order.
#pragma once

#include <cstdint>
#include <string>

#include "hwyconv/impl/common.hpp"
#include "hwyconv/layout/bwd_transform.hpp"

namespace hwyconv::impl {

struct BwdDataCol2imPlan {
  ConvDesc desc{};
  int threads = 1;
  /// The 1x1 convolution from ddst (K channels) to col (F channels): of one image, run by each
  /// thread on its own images into its own col buffer (per_image), or of all images.
  FwdPlan col{};
  bool per_image = false;
  int64_t col_size = 0;  ///< floats of one image's col [Fb][P][Q][16]
  int64_t col_wei = 0;   ///< floats of the folded weights [Fb][Kb][16][16]
  Cost cost{};           ///< estimated cycles (plan/model.hpp)
};

struct BwdDataCol2im {
  static constexpr const char* kName = "bwd_d_col2im";
  using Call = BwdDataCall;
  using Plan = BwdDataCol2imPlan;
  using Streams = RuntimeStream;

  /// Plans layers with C < 16 and R*S > 1 (against bwd_d_phases, the cost model chooses).
  static constexpr Status plan(const ConvDesc& d, const PlanContext& ctx, Plan& b) {
    if (d.depthwise() || wei_block_groups(d.groups, d.C, d.K) > 1)
      return unimplemented("grouped layer of more than one weight group");
    if (d.C >= kBlock || d.R * d.S == 1) return unimplemented("nothing to fold: C >= 16 or a 1x1 filter");
    b.desc = d;
    b.threads = ctx.threads < 1 ? 1 : ctx.threads;
    b.per_image = d.N >= b.threads;
    const ConvDesc col(b.per_image ? 1 : d.N, d.K, d.R * d.S * d.C, d.P(), d.Q(), 1, 1);
    b.col = blocked_input_plan(col, b.per_image ? 1 : b.threads);
    model::StreamData data = fwd_stream_data(b.col, false);
    const PlannedBlocking pb = best_blocking(b.col.g, PixelForm::kBlocked, data, ctx.machine, b.col.b.threads, false);
    b.col.b = pb.b;
    b.col_size = col.Kb() * d.P() * d.Q() * kBlock;
    b.col_wei = b.col.g.Kb * b.col.g.wei_kb;
    // Per image (each thread its own images, one after the other) or all images split among threads.
    b.cost = pb.cost;
    const double images = b.per_image ? double(div_up(d.N, b.threads)) : 1.0;
    b.cost.compute *= images;
    b.cost.l2 *= images;
    b.cost.outer *= images;
    // col2im: each dsrc element sums its R*S contributions, one scalar add per folded channel and
    // output pixel, reading col from L2 (per image) or from outside it.
    const double adds = double(d.N * d.R * d.S * d.C * d.P() * d.Q()) / b.threads;
    const double col_image = double(b.col_size) * 4, col_all = col_image * double(d.N);
    const double dsrc = double(d.N * d.Cb() * d.H * d.W) * model::kLine;
    const double col_read = b.per_image ? images * col_image / ctx.machine.bw_l2
                                        : model::outer_cycles(col_all, col_all, ctx.machine, b.threads) / b.threads;
    b.cost.copy = adds + col_read + model::outer_cycles(2 * dsrc, dsrc, ctx.machine, b.threads) / b.threads;
    return kOk;
  }

  static constexpr double cost(const Plan& b, const PlanContext&) { return b.cost.total(); }

  static constexpr const char* invariant_violation(const Plan& b) {
    if (b.col.in.mode != InputMode::kDirect || b.col.g.taps != 1) return "col is a 1x1 convolution read in place";
    if (b.per_image && (b.col.g.N != 1 || b.col.b.threads != 1)) return "per-image col planned for more than one image";
    return nullptr;
  }

  /// Workspace: the (masked) ddst copy, the folded weights (unless packed), the col buffers.
  static constexpr int64_t workspace(const Plan& b) {
    return unpadded_ddst(b.desc).floats + b.col_wei + (b.per_image ? b.threads : b.desc.N) * b.col_size;
  }
  static constexpr int64_t packed_size(const Plan& b) { return b.col_wei; }
  /// Packs from IOhw16o16i (the backward-data weights).
  static void pack(const Plan& b, const float* wei_bwd_d, float* packed) { fold_weights_bwd_d(b.desc, wei_bwd_d, packed); }
  static constexpr bool reads_nhwc(const Plan&) { return false; }
  static constexpr bool kPrefersNhwc = false;

  static std::string describe(const Plan& b) { return "fold col2im " + describe_blocking(b.col.rb(), b.col.b); }

  static Streams make_streams(const Plan& b) { return make_fwd_stream(b.col.g, b.col.b, b.col.tap.data()); }

  static void run(const Plan& b, const Streams& s, const BwdDataCall& c, float* ws, const ParallelFor& pf) {
    const ConvDesc& d = b.desc;
    const PaddedDdst masked = unpadded_ddst(d);
    if (c.mask) run_items(pf, b.threads, d.N * d.Kb(), [&](int64_t i) { pad_ddst(d, masked, c.ddst, c.mask, ws, i); });
    float* wf = ws + masked.floats;
    float* col = wf + b.col_wei;
    if (!c.packed) fold_weights_bwd_d(d, c.wei, wf);
    FwdArgs a = kernel_args(b.col.g, b.col.tap.data());
    a.in = c.mask ? ws : c.ddst;
    a.wei = c.packed ? c.packed : wf;
    a.out = col;
    const FwdKernelFn* fns = fwd_kernels(PixelForm::kBlocked);
    if (b.per_image) {  // each thread: its images, one at a time, in its own col buffer
      const int64_t ddst_n = d.Kb() * d.P() * d.Q() * kBlock;
      parallel_run(pf, b.threads, [&](int64_t t) {
        FwdArgs at = a;
        at.out = col + t * b.col_size;
        for (int64_t n = d.N * t / b.threads; n < d.N * (t + 1) / b.threads; ++n) {
          at.in = a.in + n * ddst_n;
          replay(fns, at, view(s), 0);
          for (int64_t h = 0; h < d.H; ++h) col2im_row(d, at.out, c.dsrc, n, h);
        }
      });
      return;
    }
    // All images' col, then the rows of dsrc split among threads.
    parallel_run(pf, b.threads, [&](int64_t t) { replay(fns, a, view(s), t); });
    run_items(pf, b.threads, d.N * d.H, [&](int64_t i) { col2im_row(d, col + i / d.H * b.col_size, c.dsrc, i / d.H, i % d.H); });
  }
};

}  // namespace hwyconv::impl
