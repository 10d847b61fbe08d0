// hwyconv/impl/bwd_w_common.hpp - what the two weight-update implementations share (paper SC18, weight
// update): the plan of the working input and the tasks, and the loop over images and row blocks that
// runs a range of tasks on each.
//
// dwei[k][c][r][s] = sum_{n,p,q} ddst[n][k][p][q] * src[n][c][h][w] (h, w as in forward) and
// dbias[k] = sum_{n,p,q} ddst[n][k][p][q]. The microkernel accumulates the 16 x 16 (input block x
// output block) sub-tensors of one tap (kernels/bwd_w-inl.h) over a block of output rows, reading src
// from the forward working input (phase images, src in place, or the folded channels of a small C).
// Tasks are (K group, C block, tap); each dwei block belongs to one task.
#pragma once

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>

#include "hwyconv/impl/common.hpp"
#include "hwyconv/layout/bwd_transform.hpp"
#include "hwyconv/layout/input_transform.hpp"
#include "hwyconv/layout/reorder.hpp"

namespace hwyconv::impl {

/// The weight-update plan: the working input (FwdPlan's geometry), the tasks, the pixel blocking and
/// the thread partition.
struct BwdWPlan {
  /// Working-input geometry (the forward plan of the layer; with fold_in_place, Cr blocks of 16 of
  /// the S*C channels of each filter row).
  FwdPlan in{};
  int threads = 1;
  /// Threads split the minibatch, each accumulating a private copy of dwei, summed in a fixed order
  /// afterwards; else they split the tasks.
  bool minibatch = false;
  /// Minibatch split with fewer images than threads: the items split are (image, block of `rows`
  /// rows), not images.
  bool row_split = false;
  int64_t tasks = 0;  ///< Kb * Cr * taps
  int64_t rows = 1;   ///< output rows per pass over the tasks (cache blocking of the pixels)
  /// Task order: C blocks outside the K groups, so that the tasks reading one C block's src rows run
  /// back to back and its lines come from memory once, not once per K group. Else K groups outside.
  bool c_outer = false;
  int64_t dwei_size = 0;  ///< floats of one dwei copy in the working layout [Kb][Cr][taps][16][16]
  /// kFold: floats per thread of a ring of `rows` folded rows and one dense image copy (only the
  /// dense copy with fold_in_place); 0 for the other modes.
  int64_t ring_size = 0;
  /// kPhases when each thread owns whole images: each thread makes an image's phase images in its
  /// own buffer right before reducing over it, instead of all N images first.
  bool thread_image = false;
  int64_t work_in = 0;  ///< floats of working input
  int64_t scratch = 0;  ///< floats: working input, private copies, folded dwei, dbias
  Cost cost{};          ///< estimated cycles (plan/model.hpp)
};

/// The weight update's working input (`fold`: folded channels) and tasks for d (the pixel blocking
/// and the thread partition are chosen by plan_bwd_w).
constexpr BwdWPlan bwd_w_base_plan(const ConvDesc& d, const PlanContext& ctx, bool fold) {
  BwdWPlan b{};
  const int threads = ctx.threads < 1 ? 1 : ctx.threads;
  if (fold) {
    b.in = fold_plan(d, threads);
    b.in.in.src_nhwc = ctx.src_layout == SrcLayout::nhwc;
    // src read in place from each image's dense copy, the S*C channels of a filter row as
    // div_up(S*C, 16) blocks of 16 (in_cb 16 floats apart), dwei in the forward's folded layout.
    if (fold_in_place_fits(d)) {
      set_fold_in_place(b.in);
      b.in.g.Cr = div_up(b.in.g.tap_channels, kBlock);
      b.in.g.in_cb = kBlock;
      b.in.g.wei_cb = kBlock * kBlock;
    }
  } else {
    b.in = blocked_input_plan(d, threads);
  }
  const KernelGeometry& g = b.in.g;
  b.threads = threads;
  b.tasks = g.Kb * g.Cr * g.taps;
  b.dwei_size = g.Kb * g.wei_kb;
  return b;
}

/// The K groups of the weight-update tasks: per weight group, its K blocks kbs at a time.
constexpr int64_t bwd_w_kgroups(const KernelGeometry& g, int64_t kbs) { return g.groups * div_up(g.group_kb(), kbs); }

/// K blocks one weight-update call takes on machine m (kernels/bwd_w-inl.h, kBwdWKbs), and the input
/// channels of one register group.
constexpr int64_t bwd_w_kbs(const Machine& m) { return m.vec_per_block == 1 && m.max_pixels >= 24 ? 4 : 1; }
constexpr int64_t bwd_w_group_channels(const Machine& m) {
  const int64_t kbs = bwd_w_kbs(m), ch = kbs > 1 ? 24 / kbs : m.max_pixels;
  return ch < 16 ? ch : 16;
}

/// Estimated cycles of a weight-update plan. Compute: per output pixel and task, 16 input channels x
/// kbs K blocks of FMAs against a broadcast per channel and the gradient loads of each register group;
/// per row block and task, the accumulators loaded and stored per piece and group. Traffic: the src
/// and ddst rows of a row block come from outside L2 once and are re-read by the thread's tasks as far
/// as they left L2; the dwei blocks (the thread's share, or its private copy) are read and written per
/// row block; a minibatch split reduces the private copies at the end.
constexpr Cost bwd_w_cost(const BwdWPlan& b, const Machine& m) {
  const KernelGeometry& g = b.in.g;
  const ConvDesc& d = b.in.desc;
  const double v = m.vec_per_block, kbs = double(bwd_w_kbs(m)), ch = double(bwd_w_group_channels(m));
  const double groups = double(div_up(kBlock, int64_t(ch)));
  const double tasks = double(bwd_w_kgroups(g, int64_t(kbs)) * g.Cr * g.taps), T = b.threads;
  const double row_blocks = double(div_up(g.P, b.rows)), N = double(d.N);
  // The busiest thread's share of the work.
  const double items = b.minibatch ? (b.row_split ? N * row_blocks : N) : tasks;
  const double share = double(div_up(int64_t(items), int64_t(T))) / items;
  const double fma = 16 * kbs * v, loads = 16 + groups * kbs * v;
  const double rate = model::fma_rate(m);
  const double per_pixel = (fma / rate > loads / 1.5 ? fma / rate : loads / 1.5) * double(g.tap_channels) / 16;
  const double pixels = N * double(g.P * g.Q), pieces = pixels / 64 > N * row_blocks ? pixels / 64 : N * row_blocks;
  Cost c;
  // Per piece and register group: the loops, the accumulators loaded, added to dwei and stored; per
  // task call, entering it (measured: 16 row blocks per image instead of 1 cost about 600 cycles per
  // extra task call of three groups of 24 accumulators).
  c.compute = share * tasks * (pixels * per_pixel + pieces * groups * (50 + 6 * ch * kbs * v) + N * row_blocks * 200);
  // Bytes per output row: ddst of all K blocks, src of all reduction blocks (the pixels between the
  // used ones come along when read in place at stride 2).
  const double src_px = g.in_px == 2 * kBlock ? 2.0 * double(g.Q) : double(b.in.in.phases * b.in.in.Wph);
  const double ddst_row = double(g.Kb * g.Q) * model::kLine, src_row = double(g.Cr) * src_px * model::kLine;
  const double block = double(b.rows) * (ddst_row + src_row), L2 = double(m.l2);
  const double dwei = double(b.dwei_size) * 4, dwei_mine = b.minibatch ? dwei : dwei / T;
  // Outside L2: every row block's rows once (the thread's images only with a minibatch split), again
  // for each further K group or C block of the task order as far as they left L2.
  const double reread = b.c_outer ? double(g.Cr - 1) * (1 - model::hit(block + dwei_mine, L2)) * ddst_row
                                  : double(div_up(g.Kb, int64_t(kbs)) - 1) * (1 - model::hit(block + dwei_mine, L2)) * src_row;
  const double rows_read = (b.minibatch ? share : 1.0) * N * double(g.P) * (ddst_row + src_row + reread);
  const double total = N * double(g.P) * (ddst_row + src_row);
  // dwei per row block, read and written, from L2 as far as it stays there with a row block.
  const double dwei_traffic = 2 * dwei_mine * (b.minibatch ? share * items : N * row_blocks) * (1 - model::hit(dwei_mine + block, L2));
  // The rows stream through the pieces' prefetches: as a kernel stream's traffic, half of it shows.
  c.outer = model::kStreamExposed *
            (model::outer_cycles(rows_read, total, m, b.threads) + model::outer_cycles(dwei_traffic, dwei * T, m, b.threads));
  // The reduction of the private copies: each thread sums its share of every copy, most of them dirty
  // in other cores' caches, and writes the result (measured with two threads: about 0.35 cycles per
  // byte of dwei, which this charges as three passes over dwei at the cross-core bandwidth).
  if (b.minibatch) c.copy = 3 * dwei / m.bw_share;
  // From L2 into L1: each task reads its C block's src rows and its K group's ddst rows of the row
  // block; consecutive tasks share the src rows (C blocks outside) or the ddst rows (K groups
  // outside), read once as far as a task's rows stay in half of L1.
  const double kgroups = double(bwd_w_kgroups(g, int64_t(kbs))), reductions = double(g.Cr * g.taps);
  const double src_task = double(b.rows) * src_px * model::kLine, ddst_task = double(b.rows) * double(g.Q) * kbs * model::kLine;
  const double half_l1 = double(m.l1) / 2;
  // Every task also loads and stores its dwei blocks (kbs x 16 x 16 floats) once per row block.
  const double reuse = 1 - model::hit(src_task + ddst_task, half_l1);
  const double per_block = (b.c_outer ? reductions * ((1 + (kgroups - 1) * reuse) * src_task + kgroups * ddst_task)
                                      : kgroups * ((1 + (reductions - 1) * reuse) * ddst_task + reductions * src_task)) +
                           kgroups * reductions * 2 * kbs * model::kWeightBlock;
  c.l2 = share * N * row_blocks * per_block / m.bw_l2;
  return c;
}

/// Completes a base plan for a strategy and a pixel blocking (`rows` output rows per row block): the
/// row split, the per-thread buffers and the scratch size.
constexpr void set_strategy(BwdWPlan& b, const ConvDesc& d, bool minibatch, int64_t rows) {
  const KernelGeometry& g = b.in.g;
  const bool folded = b.in.in.mode == InputMode::kFold;
  b.minibatch = minibatch;
  b.rows = rows;
  b.row_split = minibatch && d.N < b.threads;
  if (b.row_split) {  // whole row blocks per thread: a multiple of `threads` blocks
    const int64_t blocks = div_up(g.P, b.rows) * d.N;
    const int64_t per_image = div_up(round_up(blocks, b.threads), d.N);
    b.rows = div_up(g.P, per_image);
  }
  const int64_t copies = minibatch ? b.threads : 0;
  // + 16 floats of slack: the fold's copy chunks (kFoldSlack), or in place the channel group that
  // covers the end of the last run (at most 16 channels from the last block's start).
  b.ring_size = folded ? (b.in.in.fold_in_place ? 0 : b.rows * g.in_row) + b.in.in.dense_h * b.in.in.dense_w * d.C + kBlock
                       : 0;
  // Grouped: every thread copies only its tasks' groups of each image, right before their tasks.
  b.thread_image = b.in.in.mode == InputMode::kPhases &&
                   ((minibatch && !b.row_split) || b.threads == 1 || (g.groups > 1 && !minibatch));
  b.work_in = folded ? b.threads * b.ring_size : (b.thread_image ? b.threads * g.in_n : b.in.scratch_in);
  b.scratch = b.work_in + copies * (b.dwei_size + g.Kb * kBlock) + (folded ? b.dwei_size : 0) + g.Kb * kBlock;
}

/// Cycles of making the working input: phase images (each thread's own, or all first), the dense
/// copies and folded rows of a folded layer.
constexpr double bwd_w_input_cost(const BwdWPlan& b, const Machine& m) {
  const FwdPlan& f = b.in;
  const ConvDesc& d = f.desc;
  const double src = src_image_bytes(d, f.in.src_nhwc), N = double(d.N), T = b.threads;
  if (f.in.mode == InputMode::kDirect) return 0;
  if (f.in.mode == InputMode::kPhases) {
    const double image = double(f.g.in_n) * 4;
    return N / T * model::copy_cycles(src < 2 * image ? src : 2 * image, src * N, image, b.thread_image, m, b.threads);
  }
  const double dense = double(f.in.dense_h * f.in.dense_w * d.C) * 4;
  double c = model::copy_cycles(src, src * N, dense, true, m, b.threads);
  if (!f.in.fold_in_place) c += double(f.g.P * f.g.Q) * double(d.R * div_up(d.S * d.C, 8) + 2 * f.g.Cr);
  // Without a minibatch split every thread makes every image's copy (row split: its rows' share).
  return (b.minibatch ? N / T : N) * c;
}

/// Plans the weight update for a strategy: the working input (src in place, phase images, or folded
/// channels for C < 16), the row blocks and the task order, by least modelled cost. False when the strategy cannot
/// split the work (a minibatch split needs two threads and enough images or row blocks).
constexpr bool plan_bwd_w(const ConvDesc& d, const PlanContext& ctx, bool minibatch, BwdWPlan& out) {
  if (minibatch && ctx.threads < 2) return false;
  const BwdWPlan base = bwd_w_base_plan(d, ctx, false);
  bool any = false;
  auto consider = [&](BwdWPlan c) {
    const int64_t P = c.in.g.P;
    for (int64_t rows = P;; rows = div_up(rows, 2)) {
      for (int order = 0; order < 2; ++order) {
        BwdWPlan t = c;
        t.c_outer = order == 1;
        set_strategy(t, d, minibatch, rows);
        if (t.minibatch && t.row_split && div_up(P, t.rows) * d.N < t.threads) continue;
        t.cost = bwd_w_cost(t, ctx.machine);
        t.cost.copy += bwd_w_input_cost(t, ctx.machine);
        if (!any || t.cost.total() < out.cost.total()) out = t;
        any = true;
      }
      if (rows == 1) break;
    }
  };
  consider(base);
  if (strided_in_place_fits(d) && base.in.in.mode == InputMode::kPhases) {
    BwdWPlan s = base;
    set_strided_in_place(s.in);
    consider(s);
  }
  if (d.C < kBlock && d.R * d.S > 1) consider(bwd_w_base_plan(d, ctx, true));
  return any;
}

constexpr const char* bwd_w_invariant_violation(const BwdWPlan& b) {
  const KernelGeometry& g = b.in.g;
  if (b.tasks != g.Kb * g.Cr * g.taps) return "tasks != Kb * Cr * taps";
  if (b.rows < 1 || b.rows > g.P) return "row block out of range";
  if (b.row_split && !b.minibatch) return "row split without the minibatch strategy";
  if (b.thread_image && b.in.in.mode != InputMode::kPhases) return "per-thread image without phases";
  return nullptr;
}

inline std::string describe_bwd_w(const BwdWPlan& b) {
  const WorkingInput& in = b.in.in;
  std::ostringstream s;
  s << (in.mode == InputMode::kFold ? (in.fold_in_place ? "fold-in-place" : "fold")
        : in.mode == InputMode::kPhases ? "phases"
        : (b.in.g.in_px == 2 * kBlock ? "strided" : "direct"));
  s << " tasks" << b.tasks << " rows" << b.rows;
  if (b.row_split) s << " row-split";
  if (b.c_outer) s << " c-outer";
  return s.str();
}

/// Where dwei and dbias are accumulated in a workspace: the working input, the private copies
/// (minibatch), the folded dwei (kFold, unfolded at the end) and dbias padded to Kb*16.
struct BwdWBuffers {
  float* work;
  float* copies;
  float* dwei;   ///< the final dwei in the working layout: the user's, or the folded one
  float* dbias;  ///< Kb*16 floats
};

inline BwdWBuffers bwd_w_buffers(const BwdWPlan& b, float* ws, float* dwei) {
  const int64_t copy_size = b.dwei_size + b.in.g.Kb * kBlock, n_copies = b.minibatch ? b.threads : 0;
  const bool folded = b.in.in.mode == InputMode::kFold;
  float* copies = ws + b.work_in;
  float* after = copies + n_copies * copy_size;
  return {ws, copies, folded ? after : dwei, after + (folded ? b.dwei_size : 0)};
}

/// Microkernel arguments of the plan for one call (data pointers from the call).
inline BwdWArgs bwd_w_args(const BwdWPlan& b, const BwdWeightsCall& c, float* work) {
  const KernelGeometry& g = b.in.g;
  BwdWArgs a;
  a.in = b.in.in.mode == InputMode::kDirect ? c.src : work;
  a.ddst = c.ddst;
  a.mask = c.mask;
  a.tap = b.in.tap.data();
  a.in_row = g.in_row;
  a.in_cb = g.in_cb;
  a.in_n = g.in_n;
  a.P = g.P;
  a.Q = g.Q;
  a.ddst_kb = g.out_kb;
  a.ddst_n = g.out_n;
  a.wei_kb = g.wei_kb;
  a.wei_cb = g.wei_cb;
  a.tap_channels = g.tap_channels;
  a.in_px = g.in_px;
  return a;
}

/// Runs tasks [task0, task1) over the items [i0, i1) of (image, row block), accumulating into
/// a.dwei and a.dbias (overwritten by the first item). Thread t's buffers: its ring of folded rows
/// and dense image (kFold), or its phase images (thread_image).
inline void bwd_w_reduce(const BwdWPlan& b, const BwdWeightsCall& c, BwdWArgs a, float* work, int64_t t, int64_t i0,
                         int64_t i1, int64_t task0, int64_t task1) {
  const FwdPlan& f = b.in;
  const bool folded = f.in.mode == InputMode::kFold;
  const KernelTable& kt = kernels();
  const BwdWKernelFn kernel = (f.in.fold_in_place ? kt.bwd_w_dense : kt.bwd_w)[c.mask ? 1 : 0];
  const int64_t kbs = kt.bwd_w_kbs, taps = f.g.taps, Cr = f.g.Cr;
  const int64_t gkb = f.g.group_kb(), per_group = div_up(gkb, kbs), group_tasks = per_group * Cr * taps;
  // Tasks per weight group, then (K group, C block, tap), or (C block, K group, tap) with c_outer;
  // tap innermost. A K group is the K blocks one call takes (the last of a group may be smaller).
  auto task = [&](int64_t i) {
    const int64_t grp = i / group_tasks, j = i % group_tasks;
    const int64_t kg = b.c_outer ? j / taps % per_group : j / (Cr * taps);
    const int64_t kb = grp * gkb + kg * kbs;
    const int64_t cb = b.c_outer ? j / (taps * per_group) : j / taps % Cr;
    const Tap& tap = f.tap[size_t(i % taps)];
    const TapRange rows = valid_outputs(tap.row, f.g.row_step, f.g.src_rows, f.g.P);
    const TapRange cols = valid_outputs(tap.col, f.g.col_step, f.g.src_cols, f.g.Q);
    return BwdWTask{kb,        cb,         j % taps,   grp * Cr + cb, std::min(kbs, (grp + 1) * gkb - kb),
                    rows.first, rows.last, cols.first, cols.last};
  };
  // The tasks of one weight group at a time, over every item: a thread's own buffer (thread_image)
  // then holds only that group's blocks of an image.
  if (f.g.groups > 1 && task1 - task0 > 0) {
    const int64_t g0 = task0 / group_tasks, g1 = (task1 - 1) / group_tasks;
    if (g1 > g0) {
      for (int64_t grp = g0; grp <= g1; ++grp)
        bwd_w_reduce(b, c, a, work, t, i0, i1, std::max(task0, grp * group_tasks),
                     std::min(task1, (grp + 1) * group_tasks));
      return;
    }
  }
  const int64_t row_blocks = div_up(f.g.P, b.rows);
  if (row_blocks == 1 && !folded && !b.thread_image) {
    // Whole images read in place or from the phase images of all images: one call per task reduces
    // over all the images of the range (small maps: one call per image and task would cost more
    // than its FMAs).
    a.n0 = i0;
    a.n1 = i1;
    a.p0 = 0;
    a.p1 = f.g.P;
    if (i1 > i0)
      for (int64_t k = task0; k < task1; ++k) kernel(a, task(k));
    return;
  }
  float* ring = work + t * b.ring_size;
  float* dense = ring + (f.in.fold_in_place ? 0 : b.rows * f.g.in_row);
  for (int64_t i = i0, image = -1; i < i1; ++i) {
    const int64_t n = i / row_blocks, p0 = i % row_blocks * b.rows;
    if (n != image) {
      image = n;
      if (folded) fold_dense_image(f, c.src, dense, n);
      if (b.thread_image) {  // this thread's buffer holds image n only (grouped: this group of it)
        float* img = work + t * f.g.in_n;
        if (f.g.groups > 1) {
          const int64_t grp = task0 / group_tasks;
          for (int64_t cb = grp * Cr; cb < (grp + 1) * Cr; ++cb) phase_copy(f, c.src, img, n, cb);
        } else {
          phase_copy_image(f, c.src, img, n);
        }
        a.in = img;
        a.in_n = 0;
      }
    }
    a.n0 = n;
    a.n1 = n + 1;
    a.p0 = p0;
    a.p1 = std::min(f.g.P, p0 + b.rows);
    if (folded) {  // the tasks read the dense copy in place, or this block's folded rows
      a.in = f.in.fold_in_place ? dense : ring;
      a.in_n = 0;
      a.in_p0 = f.in.fold_in_place ? 0 : p0;
      if (!f.in.fold_in_place)
        for (int64_t y = p0; y < a.p1; ++y) fold_output_row(f, dense, ring + (y - p0) * f.g.in_row, y);
    }
    for (int64_t k = task0; k < task1; ++k) {
      const BwdWTask tk = task(k);
      // A tap that reads only padding for these rows adds nothing (the first item's call writes its
      // zeros); the task that also sums dbias always runs.
      const bool empty = std::max(a.p0, tk.p_lo) >= std::min(a.p1, tk.p_hi) || tk.q_lo >= tk.q_hi;
      if (a.accumulate && empty && !(a.dbias && tk.cb == 0 && tk.t == 0)) continue;
      kernel(a, tk);
    }
    a.accumulate = true;
  }
}

/// What the two weight-update implementations share of the implementation interface (impl/impl.hpp).
struct BwdWImpl {
  using Call = BwdWeightsCall;
  using Plan = BwdWPlan;
  struct Streams {};
  static constexpr bool kPrefersNhwc = false;
  static constexpr double cost(const Plan& b, const PlanContext&) { return b.cost.total(); }
  static constexpr int64_t workspace(const Plan& b) { return b.scratch; }
  static constexpr int64_t packed_size(const Plan&) { return 0; }
  static void pack(const Plan&, const float*, float*) {}
  static constexpr bool reads_nhwc(const Plan& b) { return b.in.in.src_nhwc; }
  static std::string describe(const Plan& b) { return describe_bwd_w(b); }
  static Streams make_streams(const Plan&) { return {}; }
};

/// Zeroes the gradient of the weights between channels of different layer groups that share a
/// weight group (wei_block_groups < G): those weights are zero and must stay so after an update in
/// the blocked layout.
inline void zero_between_groups(const ConvDesc& d, float* dwei) {
  if (d.groups == wei_block_groups(d.groups, d.C, d.K)) return;
  layout_detail::for_each_grouped_slot(d.groups, d.K, d.C, d.R * d.S,
                                       [&](int64_t off, int64_t, int64_t, int64_t, bool inside) {
                                         if (!inside) dwei[off] = 0.0f;
                                       });
}

/// The end of a weight update: dwei unfolded from the folded channels (kFold), the weights between
/// groups zeroed, dbias copied out.
inline void bwd_w_finish(const BwdWPlan& b, const BwdWeightsCall& c, const BwdWBuffers& buf) {
  if (b.in.in.mode == InputMode::kFold) unfold_weights(b.in, buf.dwei, c.dwei);
  zero_between_groups(b.in.desc, c.dwei);
  if (c.dbias) std::copy_n(buf.dbias, b.in.desc.K, c.dbias);
}

}  // namespace hwyconv::impl
