// hwyconv/impl/fwd_direct.hpp - forward by direct blocking (paper SC18, forward propagation): src read in
// place (stride 1 without padding; 1x1 stride 2 every other pixel) or copied into zero-padded phase
// images, the register-blocked microkernels run over it by the kernel stream, the epilogue fused.
#pragma once

#include <cstdint>
#include <string>

#include "hwyconv/impl/common.hpp"
#include "hwyconv/plan/fwd_plan.hpp"

namespace hwyconv::impl {

struct FwdDirect : FwdImpl<FwdDirect> {
  static constexpr const char* kName = "fwd_direct";

  /// Plans every layer but the depthwise ones (grouped: per weight group). The working input is
  /// chosen with the blocking by the cost model among: src in place (stride 1 without padding, 1x1
  /// layers also as one row of P*Q pixels; 1x1 stride 2 reading every other pixel, where the blocks
  /// of the plane have that form), phase images copied by each thread for its own images right
  /// before computing them, for all images first, or (grouped) by each thread for one group of an
  /// image right before the K groups that read it.
  static constexpr Status plan(const ConvDesc& d, const PlanContext& ctx, Plan& p) {
    if (d.depthwise()) return unimplemented("depthwise layer (fwd_depthwise runs it)");
    const FwdPlan base = blocked_input_plan(d, ctx.threads);
    const int T = base.b.threads;
    bool any = false;
    enum Copy { kAll, kOwnImages, kGroups };
    auto consider = [&](FwdPlan c, Copy copy) {
      const bool own = copy == kOwnImages, fresh = copy != kAll;
      const PlannedBlocking pb = best_blocking(c.g, c.form(), fwd_stream_data(c, fresh), ctx.machine, T, own, false,
                                               copy == kGroups ? c.g.group_kb() : 0);
      if (pb.b.block < 0) return;
      c.b = pb.b;
      if (fresh) {  // each thread copies phase images into its own buffer right before reading them
        c.b.thread_image = true;
        c.scratch_in = T * c.g.in_n;
      }
      c.cost = pb.cost;
      c.cost.copy = copy_cost(c, ctx.machine);
      if (!any || c.cost.total() < p.cost.total()) p = c;
      any = true;
    };
    if (base.in.mode == InputMode::kPhases && d.N > 1 && d.N >= T) consider(base, kOwnImages);
    if (base.in.mode == InputMode::kPhases && base.g.groups > 1) consider(base, kGroups);
    consider(base, kAll);
    if (flat_fits(d) && d.P() > 1) {
      FwdPlan f = base;
      set_flat(f.g);
      consider(f, kAll);
    }
    if (strided_in_place_fits(d)) {
      FwdPlan s = base;
      set_strided_in_place(s);
      consider(s, kAll);
    }
    return kOk;
  }

  /// Cycles of making the phase images (none in place): the src lines they hold are read (at stride 2,
  /// with the adjacent line of each: at most twice the phase images) and the images written, into L2
  /// by a thread that copies them right before reading them, else out to memory.
  static constexpr double copy_cost(const FwdPlan& p, const Machine& m) {
    if (p.in.mode != InputMode::kPhases) return 0;
    const ConvDesc& d = p.desc;
    const double image = double(p.g.in_n) * 4, src = src_image_bytes(d);
    const double read = src < 2 * image ? src : 2 * image;
    const int T = p.b.threads;
    const double share = p.b.own_images ? double(div_up(d.N, T)) : double(d.N) / T;
    return share * model::copy_cycles(read, src * double(d.N), image, p.b.thread_image, m, T);
  }


  static constexpr const char* invariant_violation(const Plan& p) {
    if (p.in.mode == InputMode::kFold) return "fwd_direct plans no folded input";
    if (!plane_in(p.form(), p.b.block, p.g.P, p.g.Q, p.g.group_kb())) return "a block of the plane lacks the plan's pixel form";
    if (p.b.kb_group % p.rb().kbs != 0 && p.b.kb_group != p.g.Kb) return "K group not a multiple of the block's K blocks";
    if (p.b.c_chunk < 1 || p.b.c_chunk > p.g.Cr) return "C chunk out of range";
    if (!segments_fit(p.b.block, p.g.Q, p.b.q_groups, p.b.overlap)) return "column segments not covered like whole rows";
    if (p.b.thread_image && p.in.mode != InputMode::kPhases) return "per-thread image without phases";
    if (p.b.thread_image && !p.b.own_images && p.g.groups == 1) return "per-thread image of images the thread does not own";
    if (p.b.thread_image && !p.b.own_images && p.g.group_kb() % p.b.kb_group != 0)
      return "per-thread group copy with K groups across groups";
    if (p.b.own_images && p.b.images_inner) return "threads own images with the images inside the K groups";
    if (p.in.mode == InputMode::kDirect && p.scratch_in != 0) return "working input copied in direct mode";
    return nullptr;
  }

  static constexpr int64_t workspace(const Plan& p) { return epilogue_floats(p.desc) + p.scratch_in; }
  static constexpr int64_t packed_size(const Plan&) { return 0; }
  static void pack(const Plan&, const float*, float*) {}
  static constexpr bool reads_nhwc(const Plan&) { return false; }
  static constexpr bool kPrefersNhwc = false;

  static std::string describe(const Plan& p) {
    const char* mode = p.in.mode == InputMode::kPhases ? "phases"
                       : p.g.in_px == 2 * kBlock     ? "strided"
                       : p.g.P < p.desc.P()          ? "flat"
                                                     : "direct";
    const char* copy = !p.b.thread_image ? "" : p.b.own_images ? " per-image" : " per-group";
    return std::string(mode) + copy + " " + describe_blocking(p.rb(), p.b);
  }

  /// Runs the plan over a kernel stream (Conv's, or StaticConv's constant table). Workspace: the
  /// epilogue's vectors, then the working input (all images, or one per thread, of which a grouped
  /// plan fills one group at a time).
  static void run_stream(const Plan& p, StreamView s, const FwdCall& c, float* ws, const ParallelFor& pf) {
    FwdArgs a = kernel_args(p.g, p.tap.data());
    set_epilogue(p.desc, c, ws, a);
    float* work = ws + epilogue_floats(p.desc);
    a.in = p.in.mode == InputMode::kDirect ? c.src : work;
    a.wei = c.wei;
    const FwdKernelFn* fns = fwd_kernels(p.form());
    if (!p.b.thread_image) {
      run_input_transform(pf, p, c.src, work);
      parallel_run(pf, p.b.threads, [&](int64_t t) { replay(fns, a, s, t); });
      return;
    }
    parallel_run(pf, p.b.threads, [&](int64_t t) {
      FwdArgs at = a;
      float* image = work + t * p.g.in_n;
      at.in = image;
      int64_t n_made = -1, group_made = -1;
      const int64_t gkb = p.g.group_kb();
      replay(fns, at, s, t, [&](const StreamEntry& e) {
        const int64_t n = e.out_off / p.g.out_n, group = p.b.own_images ? 0 : e.kb / gkb;
        if (n == n_made && group == group_made) return;
        n_made = n;
        group_made = group;
        if (p.b.own_images) {
          phase_copy_image(p, c.src, image, n);
        } else {
          for (int64_t cb = group * p.g.Cr; cb < (group + 1) * p.g.Cr; ++cb) phase_copy(p, c.src, image, n, cb);
        }
      });
    });
  }
};

}  // namespace hwyconv::impl
