// hwyconv/impl/fwd_fold.hpp - forward of a layer with few input channels (the first layer, C = 3) by
// folded channels: (r, s, c) become one reduction of div_up(R*S*C, 16) blocks over a dense H x W x C
// copy of each image (an im2col over the taps), so no FMA multiplies the padding of C up to 16 for
// each tap. The folded channels are read in place from the dense copy (rows of at least one dense
// block), or written per output row into a ring each thread keeps in cache; the cost model chooses.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "hwyconv/impl/common.hpp"
#include "hwyconv/layout/input_transform.hpp"
#include "hwyconv/plan/fwd_plan.hpp"

namespace hwyconv::impl {

struct FwdFold : FwdImpl<FwdFold> {
  static constexpr const char* kName = "fwd_fold";

  /// Plans layers with C < 16 and R*S > 1; among its arrangements (folded channels read in place
  /// from the dense copies, folded rows made per row group into a ring, folded rows of all images made
  /// first) and against fwd_direct, the cost model chooses.
  static constexpr Status plan(const ConvDesc& d, const PlanContext& ctx, Plan& p) {
    if (d.depthwise() || wei_block_groups(d.groups, d.C, d.K) > 1)
      return unimplemented("grouped layer of more than one weight group");
    if (d.C >= kBlock || d.R * d.S == 1) return unimplemented("nothing to fold: C >= 16 or a 1x1 filter");
    FwdPlan base = fold_plan(d, ctx.threads);
    base.in.src_nhwc = ctx.src_layout == SrcLayout::nhwc;
    const int T = base.b.threads;
    const bool own = d.N > 1 && d.N >= T;
    bool any = false;
    auto consider = [&](FwdPlan c, bool own_images, bool ring) {
      const PlannedBlocking pb =
          best_blocking(c.g, c.form(), stream_data(c, own_images, ring), ctx.machine, T, own_images, ring);
      if (pb.b.block < 0) return;
      c.b = pb.b;
      if (c.in.fold_in_place) {  // the dense copies are the working input: one per thread, or per image
        c.b.thread_image = own_images;
        c.scratch_in = (own_images ? T : d.N) * c.g.in_n;
      } else if (ring) {  // each thread folds a row group's rows right before its calls
        c.b.ring_rows = c.rb().rb_p;
        c.ring_size = c.b.ring_rows * c.g.in_row + c.in.dense_h * c.in.dense_w * d.C + kFoldSlack;
        c.g.in_n = 0;
        c.scratch_in = T * c.ring_size;
      }
      c.cost = pb.cost;
      c.cost.copy = fold_cost(c, ctx.machine);
      if (!any || c.cost.total() < p.cost.total()) p = c;
      any = true;
    };
    if (fold_in_place_fits(d)) {
      FwdPlan in_place = base;
      set_fold_in_place(in_place);
      if (own) consider(in_place, true, false);
      consider(in_place, false, false);
    }
    if (own) consider(base, true, true);
    consider(base, false, false);
    return kOk;
  }

  /// The stream model's view of a working input: the dense copies (in place), the ring's rows, or
  /// every image's folded rows.
  static constexpr model::StreamData stream_data(const FwdPlan& c, bool own, bool ring) {
    model::StreamData s = fwd_stream_data(c, own || ring);
    if (ring) s.image = double(c.g.in_row) * 4 * 2;  // a ring of RB_P rows: 1 to 4 rows

    s.tensor = s.image * double(c.desc.N);
    return s;
  }

  /// Cycles of the transforms: each image's dense copy (src read, the copy written into L2 by a thread
  /// that owns its images, else out to memory) and, unless read in place, its folded rows (R runs of
  /// S*C floats and Cr blocks stored per output pixel, into the ring or out to memory).
  static constexpr double fold_cost(const FwdPlan& p, const Machine& m) {
    const ConvDesc& d = p.desc;
    const int T = p.b.threads;
    const bool own = p.b.own_images;
    const double share = own ? double(div_up(d.N, T)) : double(d.N) / T;
    const double dense = double(p.in.dense_h * p.in.dense_w * d.C) * 4;
    double c = model::copy_cycles(src_image_bytes(d, p.in.src_nhwc), src_image_bytes(d, p.in.src_nhwc) * double(d.N),
                                  dense, own, m, T);
    if (!p.in.fold_in_place) {
      const double pixels = double(p.g.P * p.g.Q), rows = double(p.g.Cr) * pixels * model::kLine;
      c += pixels * double(d.R * div_up(d.S * d.C, 8) + 2 * p.g.Cr) +
           (p.b.ring_rows > 0 ? rows / m.bw_l2 : model::outer_cycles(2 * rows, 2 * rows * double(d.N), m, T));
    }
    return share * c;
  }


  static constexpr const char* invariant_violation(const Plan& p) {
    if (p.in.mode != InputMode::kFold) return "fwd_fold plans a folded input";
    if (!plane_in(p.form(), p.b.block, p.g.P, p.g.Q, p.g.Kb)) return "a block of the plane lacks the plan's pixel form";
    if (p.b.ring_rows > 0 && (!p.b.own_images || p.b.c_chunk != p.g.Cr || p.b.kb_group < p.g.Kb))
      return "ring of folded rows without whole images, one C chunk and one K group per thread";
    if (p.b.ring_rows > 0 && p.b.ring_rows != p.rb().rb_p) return "ring rows differ from RB_P";
    if (p.b.thread_image && !p.in.fold_in_place) return "per-thread image without the in-place form";
    if (p.b.own_images && p.b.images_inner) return "threads own images with the images inside the K groups";
    if (!segments_fit(p.b.block, p.g.Q, p.b.q_groups, p.b.overlap)) return "column segments not covered like whole rows";
    if (p.b.q_groups > 1 && (p.b.ring_rows > 0 || p.b.own_images)) return "column segments of a per-thread input";
    return nullptr;
  }

  /// Workspace: the epilogue's vectors, the working input, then the folded weights (unless packed).
  static constexpr int64_t workspace(const Plan& p) { return epilogue_floats(p.desc) + p.scratch_in + p.scratch_wei; }
  static constexpr int64_t packed_size(const Plan& p) { return p.scratch_wei; }
  static void pack(const Plan& p, const float* wei, float* packed) { fold_weights(p, wei, packed); }
  static constexpr bool reads_nhwc(const Plan& p) { return p.in.src_nhwc; }
  static constexpr bool kPrefersNhwc = true;

  static std::string describe(const Plan& p) {
    std::string s = p.in.fold_in_place ? "fold-in-place" : (p.b.ring_rows ? "fold-ring" : "fold");
    if (p.in.src_nhwc) s += "(nhwc)";
    return s + " " + describe_blocking(p.rb(), p.b);
  }

  /// Runs the plan over a kernel stream. Workspace: the epilogue's vectors, the working input, the
  /// folded weights.
  static void run_stream(const Plan& p, StreamView s, const FwdCall& c, float* ws, const ParallelFor& pf) {
    FwdArgs a = kernel_args(p.g, p.tap.data());
    set_epilogue(p.desc, c, ws, a);
    float* work = ws + epilogue_floats(p.desc);
    float* folded = work + p.scratch_in;
    if (!c.packed) fold_weights(p, c.wei, folded);
    a.wei = c.packed ? c.packed : folded;
    a.in = work;
    const FwdKernelFn* fns = fwd_kernels(p.form());
    if (!p.b.own_images) {
      run_input_transform(pf, p, c.src, work);
      parallel_run(pf, p.b.threads, [&](int64_t t) { replay(fns, a, s, t); });
      return;
    }
    parallel_run(pf, p.b.threads, [&](int64_t t) { run_images(p, s, c, a, work, t, fns); });
  }

 private:
  /// Thread t's images: each made right before its calls, in the thread's own buffer (a ring of
  /// folded rows with the image's dense copy, or the dense copy read in place), or into its part of
  /// the shared working input.
  static void run_images(const Plan& p, StreamView s, const FwdCall& c, FwdArgs a, float* work, int64_t t,
                         const FwdKernelFn* fns) {
    const bool own = p.b.ring_rows > 0 || p.b.thread_image;
    float* buf = work + t * (p.b.ring_rows > 0 ? p.ring_size : p.g.in_n);
    if (own) a.in = buf;
    float* dense = buf + p.b.ring_rows * p.g.in_row;
    int64_t image = -1, group = -1;
    replay(fns, a, s, t, [&](const StreamEntry& e) {
      const int64_t n = e.out_off / p.g.out_n;
      if (n != image) {
        image = n;
        group = -1;
        if (own) {
          fold_dense_image(p, c.src, dense, n);
        } else {
          for (int stage = 0; stage < input_transform_stages(p); ++stage) {
            const auto [lo, hi] = input_transform_image_items(p, stage, n);
            for (int64_t j = lo; j < hi; ++j) transform_input(p, c.src, work, stage, j);
          }
        }
      }
      if (p.b.ring_rows == 0) return;
      const int64_t grp = (e.out_off % p.g.out_kb) / p.g.out_row / p.b.ring_rows;
      if (grp == group) return;
      group = grp;
      for (int64_t y = grp * p.b.ring_rows; y < std::min(p.g.P, (grp + 1) * p.b.ring_rows); ++y)
        fold_output_row(p, dense, buf + (y % p.b.ring_rows) * p.g.in_row, y);
    });
  }
};

}  // namespace hwyconv::impl
