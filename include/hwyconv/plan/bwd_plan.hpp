// hwyconv/plan/bwd_plan.hpp - plans of the training passes: backward data (bwd_d) and backward
// weights (bwd_w / update), paper SC18 sections on backward propagation and weight update.
#pragma once

#include <array>
#include <cstdint>

#include "hwyconv/plan/plan.hpp"

namespace hwyconv {

/// Most stride phases (stride_h * stride_w) backward data supports.
inline constexpr int64_t kMaxBwdPhases = 16;

/// Backward data: dsrc[n][c][h][w] = sum_{k,r,s} ddst[n][k][p][q] * wei[k][c][r][s] over the (p, q)
/// with h = p*stride_h + r*dil_h - pad_t (and w likewise). Rows h of one stride phase
/// a = h mod stride_h see a fixed subset of the taps r, each at a fixed offset: for h = i*stride_h + a
///   p = i + (a + pad_t - r*dil_h) / stride_h   whenever stride_h divides a + pad_t - r*dil_h.
/// So each of the stride_h x stride_w phases is a stride-1 convolution over a zero-padded copy of
/// ddst with its own taps: the forward microkernels and kernel streams run it unchanged, writing
/// every stride-th pixel of dsrc directly (FwdPlan::out_px / out_row). No FMA is spent on a zero.
/// For stride 1 this is the paper's "swap C and K, rotate R and S by 180 degrees".
/// Weights are read in IOhw16o16i ([Cb][Kb][R][S][16 k][16 c]), made by reorder_weights_bwd_d.
struct BwdDataPlan {
  ConvDesc desc{};
  int threads = 1;
  int64_t pad_h = 0, pad_w = 0;  ///< zero rows/columns before ddst in the padded copy
  int64_t Hpad = 0, Wpad = 0;    ///< padded copy: [N][Kb][Hpad][Wpad][16]
  bool direct = false;           ///< no padding needed: the kernels read ddst itself
  int64_t phases = 0;            ///< stride_h * stride_w (phases with no pixel are left out)
  std::array<FwdPlan, kMaxBwdPhases> phase{};
  int64_t scratch_in = 0;        ///< floats of the padded ddst copy (0 when direct)
  /// Small C with (r, s, c) folded (folds_channels, the first layer): instead of phases whose
  /// outputs are C padded to 16 channels (C = 3: 13 of 16 FMAs on zeros), one 1x1 convolution
  /// (phase[0], direct, one phase) from the K channels of ddst to the F = R*S*C folded channels
  /// gives each output pixel's contributions to the R x S x C input pixels it sees ("col" in
  /// col2im), which are then summed into dsrc (col2im_row). With fold_images, each thread runs
  /// phase[0] (planned for one image, one thread) on its own images into its own buffer; otherwise
  /// phase[0] covers all images and the col buffer holds them all.
  bool fold = false;
  bool fold_images = false;
  int64_t col_size = 0;  ///< floats of one image's col buffer [Fb][P][Q][16]
};

/// Plans backward data for `d` and `threads`. Requires d.check().ok() and
/// d.stride_h * d.stride_w <= kMaxBwdPhases (Conv checks both). Constexpr.
constexpr BwdDataPlan make_bwd_data_plan(const ConvDesc& d, int threads = 1) {
  BwdDataPlan b{};
  b.desc = d;
  b.threads = threads < 1 ? 1 : threads;
  const int64_t P = d.P(), Q = d.Q(), Cb = d.Cb(), Kb = d.Kb(), taps = d.R * d.S;
  if (folds_channels(d)) {
    b.fold = true;
    b.fold_images = d.N >= b.threads;
    b.direct = true;  // ddst is read as it is (a masked copy with post.relu_mask)
    b.Hpad = P;
    b.Wpad = Q;
    b.phases = 1;
    const ConvDesc col(b.fold_images ? 1 : d.N, d.K, taps * d.C, P, Q, 1, 1);
    b.phase[0] = make_fwd_plan(col, b.fold_images ? 1 : b.threads);
    b.col_size = col.Kb() * P * Q * kBlock;
    return b;
  }
  // Tap offsets (in ddst rows/columns) and the padding they need, over all phases.
  auto off_h = [&](int64_t a, int64_t r) { return (a + d.pad_t - r * d.dil_h) / d.stride_h; };
  auto off_w = [&](int64_t a, int64_t s) { return (a + d.pad_l - s * d.dil_w) / d.stride_w; };
  auto hits_h = [&](int64_t a, int64_t r) { return (a + d.pad_t - r * d.dil_h) % d.stride_h == 0; };
  auto hits_w = [&](int64_t a, int64_t s) { return (a + d.pad_l - s * d.dil_w) % d.stride_w == 0; };
  auto rows = [&](int64_t a) { return a < d.H ? div_up(d.H - a, d.stride_h) : 0; };
  auto cols = [&](int64_t a) { return a < d.W ? div_up(d.W - a, d.stride_w) : 0; };
  int64_t lo_h = 0, hi_h = P, lo_w = 0, hi_w = Q;  // ddst rows/cols read: [lo, hi)
  for (int64_t a = 0; a < d.stride_h; ++a)
    for (int64_t r = 0; r < d.R; ++r)
      if (hits_h(a, r) && rows(a) > 0) {
        lo_h = off_h(a, r) < lo_h ? off_h(a, r) : lo_h;
        hi_h = off_h(a, r) + rows(a) > hi_h ? off_h(a, r) + rows(a) : hi_h;
      }
  for (int64_t a = 0; a < d.stride_w; ++a)
    for (int64_t s = 0; s < d.S; ++s)
      if (hits_w(a, s) && cols(a) > 0) {
        lo_w = off_w(a, s) < lo_w ? off_w(a, s) : lo_w;
        hi_w = off_w(a, s) + cols(a) > hi_w ? off_w(a, s) + cols(a) : hi_w;
      }
  b.pad_h = -lo_h;
  b.pad_w = -lo_w;
  b.Hpad = hi_h - lo_h;
  b.Wpad = hi_w - lo_w;
  b.direct = b.pad_h == 0 && b.pad_w == 0 && b.Hpad == P && b.Wpad == Q;
  b.scratch_in = b.direct ? 0 : d.N * Kb * b.Hpad * b.Wpad * kBlock;

  for (int64_t a = 0; a < d.stride_h; ++a) {
    for (int64_t c = 0; c < d.stride_w; ++c) {
      if (rows(a) == 0 || cols(c) == 0) continue;
      FwdPlan p{};
      p.desc = d;
      p.threads = b.threads;
      p.N = d.N;
      p.P = rows(a);
      p.Q = cols(c);
      p.Cb = Kb;
      p.Kb = Cb;  // outputs are C blocks of dsrc
      p.mode = InputMode::kDirect;
      p.Cr = Kb;  // reduction over K blocks of ddst
      p.phases = 1;
      p.Hph = b.Hpad;
      p.Wph = b.Wpad;
      p.taps = 0;
      for (int64_t r = 0; r < d.R; ++r)
        for (int64_t s = 0; s < d.S; ++s)
          if (hits_h(a, r) && hits_w(c, s)) {
            p.tap[p.taps].in_off = ((off_h(a, r) + b.pad_h) * b.Wpad + off_w(c, s) + b.pad_w) * kBlock;
            p.tap[p.taps].w_off = (r * d.S + s) * kBlock * kBlock;
            ++p.taps;
          }
      // A phase no tap reaches (1x1 stride 2: three of four) is all zeros: one pass of calls that
      // reduce over nothing and store zeros, not a pass over every K block.
      if (p.taps == 0) p.Cr = 1;
      p.in_row = b.Wpad * kBlock;
      p.in_cb = b.Hpad * b.Wpad * kBlock;
      p.in_n = Kb * p.in_cb;
      p.wei_cb = taps * kBlock * kBlock;
      p.wei_kb = Kb * p.wei_cb;
      p.out_row = d.stride_h * d.W * kBlock;
      p.out_px = d.stride_w * kBlock;
      p.out_kb = d.H * d.W * kBlock;
      p.out_n = Cb * p.out_kb;
      p.out_base = (a * d.W + c) * kBlock;
      choose_blocking(p);
      // The kernel reads weights per tap through w_off; chunking over K blocks uses all R*S taps.
      b.phase[b.phases++] = p;
    }
  }
  return b;
}

/// Backward weights: dwei[k][c][r][s] = sum_{n,p,q} ddst[n][k][p][q] * src[n][c][h][w] (h, w as in
/// forward) and dbias[k] = sum_{n,p,q} ddst[n][k][p][q]. The microkernel accumulates one 16 x 16
/// (input block x output block) sub-tensor for one tap over the output pixels, reading src from the
/// forward plan's working input (padded phase images, or the folded (r, s, c) channels for small C).
/// Two parallel strategies (paper SC18, weight update): kTasks splits the independent
/// (K block, C block, tap) tasks among threads (results independent of the thread count);
/// kMinibatch, when there are too few tasks or dwei is small and every thread can own whole images,
/// splits the images, each thread accumulating a private copy of dwei, followed by a reduction in a
/// fixed order.
struct BwdWeightsPlan {
  enum class Strategy : uint8_t { kTasks, kMinibatch };
  FwdPlan fwd{};       ///< working-input geometry (forward plan of the same layer; with
                       ///< fold_in_place, Cr blocks of 16 of the S*C channels of each filter row)
  int threads = 1;
  Strategy strategy = Strategy::kTasks;
  /// kMinibatch with fewer images than threads: the items split among threads are (image, block of
  /// `rows` rows), not images.
  bool row_split = false;
  int64_t tasks = 0;   ///< Kb * Cr * taps
  int64_t rows = 1;    ///< output rows per pass over the tasks (cache blocking of the pixels)
  /// Task order (loop order of the weight update): C blocks outside the K groups, so that the tasks
  /// reading one C block's src rows run back to back and its lines come from memory once, not once
  /// per K group; the ddst rows of all K groups are re-read from L2 instead. Chosen for 1x1 stride 2
  /// read in place when a row block's src lines (with the unused pixels between) outweigh its ddst
  /// (N = 16, one thread, two interleaved A/B runs: res3a_branch2a 1.04-1.06x, res4a_branch2a
  /// 1.04-1.07x; for the other layers it measured no better). Else K groups outside: consecutive
  /// tasks share a K group's ddst.
  bool c_outer = false;
  int64_t dwei_size = 0;  ///< floats of one dwei copy in the working layout [Kb][Cr][taps][16][16]
  /// kFold: each thread folds the rows of a row block into its own ring of `rows` rows right before
  /// the tasks read them (and keeps one dense image copy), instead of folding all N images first
  /// (conv1 at N=16: 128 MiB); with fwd.fold_in_place only the dense image copy, which the tasks
  /// read in place. Floats per thread; 0 for the other modes.
  int64_t ring_size = 0;
  /// kPhases when each thread owns whole images (minibatch split, or one thread): each thread makes
  /// an image's phase images in its own buffer right before reducing over it, instead of all N
  /// images first (their copy would go through memory).
  bool thread_image = false;
  int64_t work_in = 0;    ///< floats of working input: fwd.scratch_in, threads * ring_size (kFold)
                          ///< or threads * fwd.in_n (thread_image)
  int64_t scratch = 0;    ///< floats: working input, private copies, folded dwei, padded dbias
};

/// Plans backward weights for `d` and `threads`. Constexpr.
constexpr BwdWeightsPlan make_bwd_weights_plan(const ConvDesc& d, int threads = 1) {
  BwdWeightsPlan b{};
  b.fwd = make_fwd_plan(d, threads, /*ring=*/false);
  // The first layer with C * stride_w = kDensePx: src read in place from each image's dense copy
  // (see fold_in_place), the S*C channels of a filter row as div_up(S*C, 16) blocks of 16 (in_cb 16
  // floats apart), dwei in the forward's folded layout.
  if (fold_in_place_fits(b.fwd)) {
    set_fold_in_place(b.fwd);
    b.fwd.Cr = div_up(b.fwd.tap_channels, kBlock);
    b.fwd.in_cb = kBlock;
    b.fwd.wei_cb = kBlock * kBlock;
  }
  // 1x1 stride 2 without padding: src read in place, every other pixel of every other row
  // (in_px = 32 floats), instead of a copy of its one phase first, when dwei is within 512 KiB (few
  // K groups re-read the strided src lines; N=16, one thread: res3a_branch2a 8.8 -> 7.9 ms,
  // res4a_branch2a 6.8 -> 6.3; with 2 MiB, res4a_branch1 and res5a_branch2a, 4-9 % slower).
  const bool unpadded = d.pad_t == 0 && d.pad_l == 0 && d.pad_b == 0 && d.pad_r == 0;
  if (b.fwd.mode == InputMode::kPhases && d.R * d.S == 1 && d.stride_h == 2 && d.stride_w == 2 && unpadded &&
      b.fwd.Kb * b.fwd.wei_kb * 4 <= int64_t{512} * 1024) {
    b.fwd.mode = InputMode::kDirect;
    b.fwd.in_px = 2 * kBlock;
    b.fwd.in_row = 2 * d.W * kBlock;
    b.fwd.in_cb = d.H * d.W * kBlock;
    b.fwd.in_n = b.fwd.Cb * b.fwd.in_cb;
    b.fwd.scratch_in = 0;
  }
  b.threads = b.fwd.threads;
  b.tasks = b.fwd.Kb * b.fwd.Cr * b.fwd.taps;
  b.dwei_size = b.fwd.Kb * b.fwd.wei_kb;
  // Pixels are reduced in blocks of rows (paper SC18, weight update: image and rows outermost, the
  // weight gradient accumulated in memory): all tasks run over one block of ddst rows (all K
  // blocks) and the src rows they see, about 1 MiB kept in L2, before the next block. Without it
  // each task would stream all of ddst and src from memory.
  // (Read in place at stride 2, the pixels between the used ones come into cache with them.)
  const int64_t src_px = b.fwd.in_px == 2 * kBlock ? 2 * b.fwd.Q : b.fwd.phases * b.fwd.Wph;
  const int64_t row_bytes = (b.fwd.Kb * b.fwd.Q + b.fwd.Cr * src_px) * kBlock * 4;
  b.rows = (int64_t{1024} * 1024) / row_bytes;
  b.rows = b.rows < 1 ? 1 : (b.rows > b.fwd.P ? b.fwd.P : b.rows);
  b.c_outer = b.fwd.in_px == 2 * kBlock && b.fwd.Cr * src_px > b.fwd.Kb * b.fwd.Q;
  // Minibatch split when there are too few tasks to balance (fewer than 4 per thread), or when every
  // thread can own whole images and the private copies are small (dwei within 2 MiB): each thread
  // then reads only its own images' src and ddst instead of both threads streaming all of them
  // (N = 16, 2 threads: geomean 223 -> 253 GFLOP/s, scaling 1.77x -> 1.98x; with larger dwei, as
  // 2048 -> 512 1x1, the reduction of the copies cost more than it saved). Else the task split.
  // With fewer images than threads the split is over blocks of rows (row_split): when tasks are too
  // few, and for kFold, where a task split had every thread fold every row (conv1, N = 1, 2 threads:
  // 1.44x of one thread).
  const bool few_tasks = b.tasks < 4 * b.threads, small_dwei = b.dwei_size * 4 <= int64_t{2} * 1024 * 1024;
  const bool folded = b.fwd.mode == InputMode::kFold;
  b.row_split = b.threads > 1 && d.N < b.threads && (few_tasks || folded);
  b.strategy = b.threads > 1 && (b.row_split || (d.N >= b.threads && (few_tasks || small_dwei)))
                   ? BwdWeightsPlan::Strategy::kMinibatch
                   : BwdWeightsPlan::Strategy::kTasks;
  if (b.row_split) {  // whole row blocks per thread: a multiple of `threads` blocks
    const int64_t blocks = div_up(b.fwd.P, b.rows) * d.N;
    const int64_t per_image = div_up(round_up(blocks, b.threads), d.N);
    b.rows = div_up(b.fwd.P, per_image);
  }
  const int64_t copies = b.strategy == BwdWeightsPlan::Strategy::kMinibatch ? b.threads : 0;
  // + 16 floats of slack: the fold's copy chunks (kFoldSlack), or in place the channel group that
  // covers the end of the last run (at most 16 channels from the last block's start).
  b.ring_size = folded ? (b.fwd.fold_in_place ? 0 : b.rows * b.fwd.in_row) + b.fwd.dense_h * b.fwd.dense_w * d.C + kBlock
                       : 0;
  b.thread_image = b.fwd.mode == InputMode::kPhases &&
                   ((b.strategy == BwdWeightsPlan::Strategy::kMinibatch && !b.row_split) || b.threads == 1);
  b.work_in = folded ? b.threads * b.ring_size : (b.thread_image ? b.threads * b.fwd.in_n : b.fwd.scratch_in);
  b.scratch = b.work_in + copies * (b.dwei_size + b.fwd.Kb * kBlock) + (folded ? b.dwei_size : 0) +
              b.fwd.Kb * kBlock;
  return b;
}

}  // namespace hwyconv
