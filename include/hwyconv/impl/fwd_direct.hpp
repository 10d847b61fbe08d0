// hwyconv/impl/fwd_direct.hpp - forward by direct blocking (paper SC18, forward propagation): src read in
// place (stride 1 without padding; 1x1 stride 2 every other pixel) or copied into zero-padded phase
// images, the register-blocked microkernels run over it by the kernel stream, the epilogue fused.
#pragma once

#include <cstdint>
#include <string>

#include "hwyconv/impl/common.hpp"
#include "hwyconv/plan/fwd_plan.hpp"

namespace hwyconv::impl {

struct FwdDirect {
  static constexpr const char* kName = "fwd_direct";
  using Call = FwdCall;
  using Plan = FwdPlan;
  using Streams = RuntimeStream;

  /// Plans every layer (groups == 1) except those whose channels are folded (FwdFold).
  static constexpr Status plan(const ConvDesc& d, const PlanContext& ctx, Plan& p) {
    if (folds_channels(d)) return unimplemented("small C with R*S > 1: folded channels (fwd_fold)");
    p = blocked_input_plan(d, ctx.threads);
    choose_blocking(p.g, p.b, PixelForm::kBlocked, p.in.mode != InputMode::kDirect);
    // 1x1 stride 2 without padding: the microkernels read src in place, every other pixel of every
    // other row, instead of a phase copy made before the FMAs, when every block of the plane has a
    // stride-2 form and all K blocks can run on each pixel block while its input lines are in L1
    // (one K group: weights within 512 KiB and enough row groups for the threads).
    if (strided_in_place_fits(d) && !p.b.images_inner && p.g.Kb * p.g.wei_kb * 4 <= int64_t{512} * 1024 &&
        p.g.N * p.b.p_groups >= 4 * p.b.threads && plane_in(PixelForm::kStride2, p.b.block, p.g.P, p.g.Q, p.g.Kb)) {
      set_strided_in_place(p);
      p.b.own_images = false;
      p.b.kb_group = p.g.Kb;
    }
    // Threads that own whole images make each image's phase images in their own buffer right
    // before computing it, so the copy writes lines already in cache.
    if (p.in.mode == InputMode::kPhases && p.b.own_images) {
      p.b.thread_image = true;
      p.scratch_in = p.b.threads * p.g.in_n;
    }
    return kOk;
  }

  static constexpr double cost(const Plan&, const PlanContext&) { return 0; }

  static constexpr const char* invariant_violation(const Plan& p) {
    if (p.in.mode == InputMode::kFold) return "fwd_direct plans no folded input";
    if (!plane_in(p.form(), p.b.block, p.g.P, p.g.Q, p.g.Kb)) return "a block of the plane lacks the plan's pixel form";
    if (p.b.kb_group % p.rb().kbs != 0 && p.b.kb_group != p.g.Kb) return "K group not a multiple of the block's K blocks";
    if (p.b.c_chunk < 1 || p.b.c_chunk > p.g.Cr) return "C chunk out of range";
    if (p.b.thread_image && (!p.b.own_images || p.in.mode != InputMode::kPhases)) return "per-thread image without phases";
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
    const char* mode = p.in.mode == InputMode::kPhases ? "phases" : (p.g.in_px == 2 * kBlock ? "strided" : "direct");
    return std::string(mode) + " " + describe_blocking(p.rb(), p.b);
  }

  static Streams make_streams(const Plan& p) { return make_fwd_stream(p.g, p.b); }

  /// Workspace: the epilogue's vectors, then the working input (all images, or one per thread).
  static void run(const Plan& p, const Streams& s, const FwdCall& c, float* ws, const ParallelFor& pf) {
    run_stream(p, view(s), c, ws, pf);
  }

  /// As run, with the stream given as a view (StaticConv's constant table).
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
      int64_t n_made = -1;
      replay(fns, at, s, t, [&](const StreamEntry& e) {
        const int64_t n = e.out_off / p.g.out_n;
        if (n != n_made) phase_copy_image(p, c.src, image, n_made = n);
      });
    });
  }
};

}  // namespace hwyconv::impl
