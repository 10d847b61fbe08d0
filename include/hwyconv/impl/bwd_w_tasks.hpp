// hwyconv/impl/bwd_w_tasks.hpp - the weight update by task split (paper SC18, weight update, first
// parallel strategy): the independent (K group, C block, tap) tasks are split among the threads; each
// thread reads every image's src and ddst and writes only its own dwei blocks, so the result is
// bitwise independent of the thread count.
#pragma once

#include <cstdint>
#include <string>

#include "hwyconv/impl/bwd_w_common.hpp"

namespace hwyconv::impl {

struct BwdWTasks : BwdWImpl {
  static constexpr const char* kName = "bwd_w_tasks";

  static constexpr Status plan(const ConvDesc& d, const PlanContext& ctx, Plan& b) {
    if (d.depthwise()) return unimplemented("depthwise layer (bwd_w_depthwise runs it)");
    if (!plan_bwd_w(d, ctx, /*minibatch=*/false, b)) return unimplemented("no plan");
    return kOk;
  }
  static constexpr const char* invariant_violation(const Plan& b) {
    return b.minibatch ? "task split planned as a minibatch split" : bwd_w_invariant_violation(b);
  }

  /// Every thread runs its range of tasks over all (image, row block) items.
  static void run(const Plan& b, const Streams&, const BwdWeightsCall& c, float* ws, const ParallelFor& pf) {
    const BwdWBuffers buf = bwd_w_buffers(b, ws, c.dwei);
    const FwdPlan& f = b.in;
    if (f.in.mode == InputMode::kPhases && !b.thread_image) run_input_transform(pf, f, c.src, buf.work);
    BwdWArgs a = bwd_w_args(b, c, buf.work);
    a.dwei = buf.dwei;
    a.dbias = c.dbias ? buf.dbias : nullptr;  // no pass over ddst for a dbias nobody asked for
    const int64_t items = b.in.desc.N * div_up(f.g.P, b.rows);
    const int64_t tasks = bwd_w_kgroups(f.g, kernels().bwd_w_kbs) * f.g.Cr * f.g.taps;
    parallel_run(pf, b.threads, [&](int64_t t) {
      bwd_w_reduce(b, c, a, buf.work, t, 0, items, tasks * t / b.threads, tasks * (t + 1) / b.threads);
    });
    bwd_w_finish(b, c, buf);
  }
};

}  // namespace hwyconv::impl
