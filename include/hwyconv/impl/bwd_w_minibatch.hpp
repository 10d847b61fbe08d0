// hwyconv/impl/bwd_w_minibatch.hpp - the weight update by minibatch split (paper SC18, weight update,
// second parallel strategy): each thread takes whole images (or, with fewer images than threads, whole
// blocks of rows) and accumulates a private copy of dwei and dbias over them; the copies are then
// summed in thread order. Each thread reads only its own share of src and ddst; the sums may differ in
// the last bits between thread counts.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "hwyconv/impl/bwd_w_common.hpp"

namespace hwyconv::impl {

struct BwdWMinibatch : BwdWImpl {
  static constexpr const char* kName = "bwd_w_minibatch";

  static constexpr Status plan(const ConvDesc& d, const PlanContext& ctx, Plan& b) {
    if (d.depthwise()) return unimplemented("depthwise layer (bwd_w_depthwise runs it)");
    if (!plan_bwd_w(d, ctx, /*minibatch=*/true, b)) return unimplemented("one thread: nothing to split");
    return kOk;
  }
  static constexpr const char* invariant_violation(const Plan& b) {
    return !b.minibatch ? "minibatch split planned as a task split" : bwd_w_invariant_violation(b);
  }

  static void run(const Plan& b, const Streams&, const BwdWeightsCall& c, float* ws, const ParallelFor& pf) {
    const BwdWBuffers buf = bwd_w_buffers(b, ws, c.dwei);
    const FwdPlan& f = b.in;
    const ConvDesc& d = f.desc;
    if (f.in.mode == InputMode::kPhases && !b.thread_image) run_input_transform(pf, f, c.src, buf.work);
    const BwdWArgs a = bwd_w_args(b, c, buf.work);
    const int64_t copy_size = b.dwei_size + f.g.Kb * kBlock, row_blocks = div_up(f.g.P, b.rows);
    const int64_t tasks = bwd_w_kgroups(f.g, kernels().bwd_w_kbs) * f.g.Cr * f.g.taps;
    parallel_run(pf, b.threads, [&](int64_t t) {
      BwdWArgs at = a;
      at.dwei = buf.copies + t * copy_size;
      at.dbias = c.dbias ? at.dwei + b.dwei_size : nullptr;
      // Whole images per thread, or (row_split) whole row blocks.
      const int64_t items = b.row_split ? d.N * row_blocks : d.N, per = b.row_split ? 1 : row_blocks;
      const int64_t i0 = items * t / b.threads, i1 = items * (t + 1) / b.threads;
      if (i0 == i1)
        std::fill(at.dwei, at.dwei + copy_size, 0.0f);
      else
        bwd_w_reduce(b, c, at, buf.work, t, i0 * per, i1 * per, 0, tasks);
    });
    sum_copies(b, buf, copy_size, c.dbias ? copy_size : b.dwei_size, pf);
    bwd_w_finish(b, c, buf);
  }

 private:
  /// dwei and dbias as the sum of the private copies, in thread order (the same for every run):
  /// the first `used` floats of each copy: dwei, and dbias when the call asked for it.
  static void sum_copies(const Plan& b, const BwdWBuffers& buf, int64_t copy_size, int64_t used, const ParallelFor& pf) {
    const int64_t chunk = 4096;
    run_items(pf, b.threads, div_up(used, chunk), [&](int64_t ch) {
      const int64_t lo = ch * chunk, hi = std::min(used, lo + chunk);
      for (int64_t j = lo; j < hi; ++j) {
        float sum = buf.copies[j];
        for (int64_t t = 1; t < b.threads; ++t) sum += buf.copies[t * copy_size + j];
        if (j < b.dwei_size)
          buf.dwei[j] = sum;
        else
          buf.dbias[j - b.dwei_size] = sum;
      }
    });
  }
};

}  // namespace hwyconv::impl
