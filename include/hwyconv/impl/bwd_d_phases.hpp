// hwyconv/impl/bwd_d_phases.hpp - backward data by stride phases (paper SC18, backward propagation).
//
// dsrc[n][c][h][w] = sum_{k,r,s} ddst[n][k][p][q] * wei[k][c][r][s] over the (p, q) with
// h = p*stride_h + r*dil_h - pad_t (and w likewise). Rows h of one stride phase a = h mod stride_h see
// a fixed subset of the taps r, each at a fixed offset: for h = i*stride_h + a,
//   p = i + (a + pad_t - r*dil_h) / stride_h   whenever stride_h divides a + pad_t - r*dil_h.
// So each of the stride_h x stride_w phases is a stride-1 convolution over a zero-padded copy of ddst
// with its own taps: the forward microkernels and kernel streams run it unchanged, writing every
// stride-th pixel of dsrc directly (KernelGeometry::out_px, out_row). No FMA is spent on a zero. For
// stride 1 this is the paper's "swap C and K, rotate R and S by 180 degrees". Each tap belongs to
// exactly one phase, so at most R*S phases have taps; dsrc pixels of the phases no tap reaches (1x1
// stride 2: three of four) are zero, written by one memset per C block first.
// Weights are read in IOhw16o16i ([Cb][Kb][R][S][16 k][16 c], reorder_weights_bwd_d).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>

#include "hwyconv/impl/common.hpp"
#include "hwyconv/layout/bwd_transform.hpp"

namespace hwyconv::impl {

/// One phase with taps: its kernel geometry (P x Q = the phase's rows and columns of dsrc), blocking
/// and its taps (the plan's taps [tap0, tap0 + g.taps)).
struct BwdDataPhase {
  KernelGeometry g{};
  Blocking b{};
  int64_t tap0 = 0;
};

struct BwdDataPhasesPlan {
  ConvDesc desc{};
  int threads = 1;
  PaddedDdst pad{};       ///< the zero-padded copy of ddst the phases read ([N][Kb][Hpad][Wpad][16])
  int64_t phases = 0;     ///< phases with taps
  bool zero_phases = false;  ///< some phase has dsrc pixels but no tap: dsrc is zeroed first
  Taps tap{};             ///< the taps of all phases, phase by phase
  std::array<BwdDataPhase, kMaxTaps> phase{};
  Cost cost{};            ///< estimated cycles (plan/model.hpp)
};

struct BwdDataPhases {
  static constexpr const char* kName = "bwd_d_phases";
  using Call = BwdDataCall;
  using Plan = BwdDataPhasesPlan;
  using Streams = std::array<RuntimeStream, kMaxTaps>;

  /// Plans every layer; each phase's blocking is the one of least modelled cost.
  static constexpr Status plan(const ConvDesc& d, const PlanContext& ctx, Plan& b) {
    if (d.depthwise()) return unimplemented("depthwise layer (bwd_d_depthwise runs it)");
    b.desc = d;
    b.threads = ctx.threads < 1 ? 1 : ctx.threads;
    b.pad = padded_ddst(d);
    const int64_t Cb = d.Cb(), Kb = d.Kb();
    for (int64_t a = 0; a < d.stride_h; ++a) {
      for (int64_t c = 0; c < d.stride_w; ++c) {
        const int64_t rows = a < d.H ? div_up(d.H - a, d.stride_h) : 0, cols = c < d.W ? div_up(d.W - c, d.stride_w) : 0;
        if (rows == 0 || cols == 0) continue;
        BwdDataPhase& ph = b.phase[size_t(b.phases)];
        ph.tap0 = b.phases == 0 ? 0 : b.phase[size_t(b.phases - 1)].tap0 + b.phase[size_t(b.phases - 1)].g.taps;
        // The phase's taps, a grid of the rows r and columns s that reach it; each reads ddst row
        // i + oh (column j + ow) for the phase's output row i (column j).
        ph.g.taps = 0;
        ph.g.tap_cols = 0;
        for (int64_t s = 0; s < d.S; ++s) ph.g.tap_cols += phase_hits(d.pad_l, d.dil_w, d.stride_w, c, s);
        for (int64_t r = 0; r < d.R; ++r)
          for (int64_t s = 0; s < d.S; ++s)
            if (phase_hits(d.pad_t, d.dil_h, d.stride_h, a, r) && phase_hits(d.pad_l, d.dil_w, d.stride_w, c, s)) {
              const int64_t oh = phase_offset(d.pad_t, d.dil_h, d.stride_h, a, r);
              const int64_t ow = phase_offset(d.pad_l, d.dil_w, d.stride_w, c, s);
              b.tap[size_t(ph.tap0 + ph.g.taps++)] = {((oh + b.pad.pad_h) * b.pad.Wpad + ow + b.pad.pad_w) * kBlock,
                                                      (r * d.S + s) * kBlock * kBlock, int32_t(oh), int32_t(ow)};
            }
        if (ph.g.taps == 0) {
          b.zero_phases = true;
          continue;
        }
        KernelGeometry& g = ph.g;
        g.N = d.N;
        g.P = rows;
        g.Q = cols;
        g.src_rows = d.P();
        g.src_cols = d.Q();
        // Reduction over the K blocks of ddst (of the output's weight group), outputs the C blocks
        // of dsrc.
        g.groups = wei_block_groups(d.groups, d.C, d.K);
        g.Cr = div_up(d.K / g.groups, kBlock);
        g.Kb = Cb;
        g.in_row = b.pad.Wpad * kBlock;
        g.in_cb = b.pad.Hpad * b.pad.Wpad * kBlock;
        g.in_n = Kb * g.in_cb;
        g.wei_cb = d.R * d.S * kBlock * kBlock;
        g.wei_kb = g.Cr * g.wei_cb;
        g.out_row = d.stride_h * d.W * kBlock;
        g.out_px = d.stride_w * kBlock;
        g.out_kb = d.H * d.W * kBlock;
        g.out_n = Cb * g.out_kb;
        g.out_base = (a * d.W + c) * kBlock;
        PlannedBlocking pb = best_blocking(g, PixelForm::kBlocked, stream_data(g, b.tap.data() + ph.tap0), ctx.machine, b.threads, false);
        if (flat_fits(d) && g.P > 1) {  // 1x1 stride 1: the plane as one row, when the model prefers it
          KernelGeometry f = g;
          set_flat(f);
          const PlannedBlocking pf = best_blocking(f, PixelForm::kBlocked, stream_data(f, b.tap.data() + ph.tap0), ctx.machine, b.threads, false);
          if (pf.b.block >= 0 && pf.cost.total() < pb.cost.total()) {
            g = f;
            pb = pf;
          }
        }
        ph.b = pb.b;
        b.cost += pb.cost;
        ++b.phases;
      }
    }
    b.cost.copy = copy_cost(b, ctx.machine);
    return kOk;
  }

  /// What a phase's stream reads (the padded ddst copy, all K blocks of an image) and writes (its
  /// part of dsrc).
  static constexpr model::StreamData stream_data(const KernelGeometry& g, const Tap* taps) {
    model::StreamData s;
    s.taps = some_tap_skipped(g, taps) ? taps : nullptr;
    s.image = double(g.in_n) * 4;
    s.tensor = s.image * double(g.N);
    s.output = double(g.N * g.Kb * g.P * g.Q) * model::kLine;
    return s;
  }

  /// Cycles of the padded ddst copy (none when ddst is read as it is) and of zeroing the dsrc phases
  /// no tap reaches.
  static constexpr double copy_cost(const Plan& b, const Machine& m) {
    const ConvDesc& d = b.desc;
    const double ddst = double(d.N * d.Kb() * d.P() * d.Q()) * model::kLine, dsrc = double(d.N * d.Cb() * d.H * d.W) * model::kLine;
    const double pad = b.pad.direct ? 0 : model::copy_cycles(ddst, ddst, double(b.pad.floats) * 4, false, m, b.threads);
    return (pad + (b.zero_phases ? model::outer_cycles(dsrc, dsrc, m, b.threads) : 0)) / b.threads;
  }

  static constexpr double cost(const Plan& b, const PlanContext&) { return b.cost.total(); }

  static constexpr const char* invariant_violation(const Plan& b) {
    int64_t taps = 0;
    for (int64_t i = 0; i < b.phases; ++i) {
      const BwdDataPhase& ph = b.phase[size_t(i)];
      if (ph.g.taps < 1 || ph.tap0 != taps) return "phase taps not consecutive";
      if (ph.g.tap_cols < 1 || ph.g.taps % ph.g.tap_cols != 0) return "phase taps not a grid";
      taps += ph.g.taps;
      if (ph.b.own_images || ph.b.thread_image || ph.b.ring_rows) return "a phase reads a per-image input";
      if (ph.b.c_chunk < 1 || ph.b.c_chunk > ph.g.Cr) return "C chunk out of range";
      if (!segments_fit(ph.b.block, ph.g.Q, ph.b.q_groups, ph.b.overlap)) return "column segments not covered like whole rows";
    }
    // Each tap belongs to one phase; the taps of phases without dsrc pixels (a >= H) are left out.
    if (taps > b.desc.R * b.desc.S) return "a tap in more than one phase";
    return nullptr;
  }

  /// Workspace: the padded (or masked) copy of ddst.
  static constexpr int64_t workspace(const Plan& b) { return b.pad.floats; }
  static constexpr int64_t packed_size(const Plan&) { return 0; }
  static void pack(const Plan&, const float*, float*) {}
  static constexpr bool reads_nhwc(const Plan&) { return false; }
  static constexpr bool kPrefersNhwc = false;

  static std::string describe(const Plan& b) {
    const RegBlock rb = kFwdBlocks[b.phase[0].b.block];
    std::ostringstream s;
    s << "phases" << b.phases << (b.pad.direct ? (b.phase[0].g.P < b.desc.H ? " flat " : " direct ") : " padded ") << describe_blocking(rb, b.phase[0].b);
    return s.str();
  }

  static Streams make_streams(const Plan& b) {
    Streams s;
    for (int64_t i = 0; i < b.phases; ++i) {
      const BwdDataPhase& ph = b.phase[size_t(i)];
      s[size_t(i)] = make_fwd_stream(ph.g, ph.b, b.tap.data() + ph.tap0);
    }
    return s;
  }

  static void run(const Plan& b, const Streams& s, const BwdDataCall& c, float* ws, const ParallelFor& pf) {
    const ConvDesc& d = b.desc;
    const bool copy = !b.pad.direct || c.mask;
    if (copy) run_items(pf, b.threads, d.N * d.Kb(), [&](int64_t i) { pad_ddst(d, b.pad, c.ddst, c.mask, ws, i); });
    if (b.zero_phases) {  // one item per C block of an image, so that N = 1 splits too
      const int64_t plane = d.H * d.W * kBlock;
      run_items(pf, b.threads, d.N * d.Cb(),
                [&](int64_t i) { std::memset(c.dsrc + i * plane, 0, sizeof(float) * size_t(plane)); });
    }
    const FwdKernelFn* fns = fwd_kernels(PixelForm::kBlocked);
    parallel_run(pf, b.threads, [&](int64_t t) {
      for (int64_t i = 0; i < b.phases; ++i) {
        const BwdDataPhase& ph = b.phase[size_t(i)];
        FwdArgs a = kernel_args(ph.g, b.tap.data() + ph.tap0);
        a.in = copy ? ws : c.ddst;
        a.wei = c.wei;
        a.out = c.dsrc;
        a.k_valid = d.C;  // dsrc's padding lanes stay zero
        replay(fns, a, view(s[size_t(i)]), t);
      }
    });
  }
};

}  // namespace hwyconv::impl
