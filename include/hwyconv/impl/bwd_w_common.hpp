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
};

/// The weight update's working input, tasks and row blocks for d (the strategy is set by the
/// implementation: set_strategy).
constexpr BwdWPlan bwd_w_base_plan(const ConvDesc& d, const PlanContext& ctx) {
  BwdWPlan b{};
  const int threads = ctx.threads < 1 ? 1 : ctx.threads;
  if (folds_channels(d)) {
    b.in = fold_plan(d, threads);
    b.in.in.src_nhwc = ctx.src_layout == SrcLayout::nhwc;
    // The first layer with C * stride_w = kDensePx: src read in place from each image's dense copy,
    // the S*C channels of a filter row as div_up(S*C, 16) blocks of 16 (in_cb 16 floats apart), dwei
    // in the forward's folded layout.
    if (fold_in_place_fits(d)) {
      set_fold_in_place(b.in);
      b.in.g.Cr = div_up(b.in.g.tap_channels, kBlock);
      b.in.g.in_cb = kBlock;
      b.in.g.wei_cb = kBlock * kBlock;
    }
  } else {
    b.in = blocked_input_plan(d, threads);
    // 1x1 stride 2 without padding: src read in place, every other pixel of every other row, instead
    // of a copy of its one phase first, when dwei is within 512 KiB (few K groups re-read the strided
    // src lines).
    if (strided_in_place_fits(d) && b.in.g.Kb * b.in.g.wei_kb * 4 <= int64_t{512} * 1024) set_strided_in_place(b.in);
  }
  const KernelGeometry& g = b.in.g;
  b.threads = threads;
  b.tasks = g.Kb * g.Cr * g.taps;
  b.dwei_size = g.Kb * g.wei_kb;
  // Pixels are reduced in blocks of rows: all tasks run over one block of ddst rows (all K blocks)
  // and the src rows they see, about 1 MiB kept in L2, before the next block. (Read in place at
  // stride 2, the pixels between the used ones come into cache with them.)
  const int64_t src_px = g.in_px == 2 * kBlock ? 2 * g.Q : b.in.in.phases * b.in.in.Wph;
  const int64_t row_bytes = (g.Kb * g.Q + g.Cr * src_px) * kBlock * 4;
  b.rows = (int64_t{1024} * 1024) / row_bytes;
  b.rows = b.rows < 1 ? 1 : (b.rows > g.P ? g.P : b.rows);
  b.c_outer = g.in_px == 2 * kBlock && g.Cr * src_px > g.Kb * g.Q;
  return b;
}

/// Whether the minibatch split is the better strategy: too few tasks to balance (fewer than 4 per
/// thread), or every thread can own whole images and the private copies are small (dwei within
/// 2 MiB); the folded layer with fewer images than threads splits row blocks.
constexpr bool prefers_minibatch(const BwdWPlan& b, const ConvDesc& d) {
  const bool few_tasks = b.tasks < 4 * b.threads, small_dwei = b.dwei_size * 4 <= int64_t{2} * 1024 * 1024;
  const bool folded = b.in.in.mode == InputMode::kFold;
  const bool row_split = b.threads > 1 && d.N < b.threads && (few_tasks || folded);
  return b.threads > 1 && (row_split || (d.N >= b.threads && (few_tasks || small_dwei)));
}

/// Completes a base plan for a strategy: the row split, the per-thread buffers and the scratch size.
constexpr void set_strategy(BwdWPlan& b, const ConvDesc& d, bool minibatch) {
  const KernelGeometry& g = b.in.g;
  const bool folded = b.in.in.mode == InputMode::kFold;
  b.minibatch = minibatch;
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
  b.thread_image = b.in.in.mode == InputMode::kPhases && ((minibatch && !b.row_split) || b.threads == 1);
  b.work_in = folded ? b.threads * b.ring_size : (b.thread_image ? b.threads * g.in_n : b.in.scratch_in);
  b.scratch = b.work_in + copies * (b.dwei_size + g.Kb * kBlock) + (folded ? b.dwei_size : 0) + g.Kb * kBlock;
}

constexpr const char* bwd_w_invariant_violation(const BwdWPlan& b) {
  const KernelGeometry& g = b.in.g;
  if (b.tasks != g.Kb * g.Cr * g.taps) return "tasks != Kb * Cr * taps";
  if (b.rows < 1 || b.rows > g.P) return "row block out of range";
  if (b.row_split && !b.minibatch) return "row split without the minibatch strategy";
  if (b.c_outer && g.in_px != 2 * kBlock) return "C blocks outside the K groups without the strided in-place read";
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
  const int64_t kbs = kt.bwd_w_kbs, kgroups = div_up(f.g.Kb, kbs), taps = f.g.taps, Cr = f.g.Cr;
  // Tasks (K group, C block, tap), or (C block, K group, tap) with c_outer; tap innermost. A K group
  // is the K blocks one call takes (the last group may be smaller).
  auto task = [&](int64_t i) {
    const int64_t kb = (b.c_outer ? i / taps % kgroups : i / (Cr * taps)) * kbs;
    const int64_t cb = b.c_outer ? i / (taps * kgroups) : i / taps % Cr;
    return BwdWTask{kb, cb, i % taps, std::min(kbs, f.g.Kb - kb)};
  };
  const int64_t row_blocks = div_up(f.g.P, b.rows);
  float* ring = work + t * b.ring_size;
  float* dense = ring + (f.in.fold_in_place ? 0 : b.rows * f.g.in_row);
  for (int64_t i = i0, image = -1; i < i1; ++i) {
    const int64_t n = i / row_blocks, p0 = i % row_blocks * b.rows;
    if (n != image) {
      image = n;
      if (folded) fold_dense_image(f, c.src, dense, n);
      if (b.thread_image) {  // this thread's buffer holds image n only
        float* img = work + t * f.g.in_n;
        phase_copy_image(f, c.src, img, n);
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
    for (int64_t k = task0; k < task1; ++k) kernel(a, task(k));
    a.accumulate = true;
  }
}

/// The end of a weight update: dwei unfolded from the folded channels (kFold), dbias copied out.
inline void bwd_w_finish(const BwdWPlan& b, const BwdWeightsCall& c, const BwdWBuffers& buf) {
  if (b.in.in.mode == InputMode::kFold) unfold_weights(b.in, buf.dwei, c.dwei);
  if (c.dbias) std::copy_n(buf.dbias, b.in.desc.K, c.dbias);
}

}  // namespace hwyconv::impl
