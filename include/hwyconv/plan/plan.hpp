// hwyconv/plan/plan.hpp - the "plan" step: every blocking decision for one layer, as a value.
//
// make_fwd_plan(desc, threads) is constexpr: for a shape known at compile time the whole plan is a
// constant expression (StaticConv), for a runtime shape it costs a few microseconds (Conv). A plan is
// a plain struct in the spirit of libxsmm-dnn's config: input working layout, register block (RB_P x
// RB_Q), C-block cache blocking, thread count, scratch size. The kernel stream is lowered from it.
#pragma once

#include <array>
#include <cstdint>

#include "hwyconv/desc.hpp"
#include "hwyconv/kernels/variants.hpp"

namespace hwyconv {

/// Most filter taps (R*S) a plan holds; R = S = 16 at most for square filters.
inline constexpr int64_t kMaxTaps = 256;

/// How the microkernel sees the source tensor. The microkernel always runs a stride-1, unpadded
/// convolution over a "working input"; the plan says how that is made from the user's nChw16c src.
enum class InputMode : uint8_t {
  /// stride 1 and no padding: the working input is src itself, no copy.
  kDirect,
  /// padding and/or stride: src is copied once into zero-padded "phase images", one per distinct
  /// (r*dil_h mod stride_h, s*dil_w mod stride_w). In phase (a, b), pixel (y, x) is padded src pixel
  /// (y*stride_h + a, x*stride_w + b), so every tap of a strided convolution becomes a unit-stride
  /// read and no FMA is spent on a skipped pixel.
  kPhases,
  /// small C (e.g. the first layer, C = 3): (r, s, c) are folded into one channel dimension of
  /// div_up(R*S*C, 16) blocks (an im2col over the taps) and the convolution becomes 1x1. Avoids
  /// padding 3 channels up to 16 for each of the R*S taps (16/3 times the work otherwise).
  kFold,
};

/// One filter tap as the microkernel sees it: where it reads in the working input (relative to the
/// output pixel's position) and in the weights (relative to the C block), in floats.
struct Tap {
  int64_t in_off = 0;
  int64_t w_off = 0;
};

/// The forward plan. All offsets and strides are in floats. Working input layout:
/// [N][Cr][phases][Hph][Wph][16]; weights [Kb][Cr][taps][16 i][16 o] (OIhw16i16o for kDirect and
/// kPhases); dst nChw16c [N][Kb][P][Q][16].
struct FwdPlan {
  ConvDesc desc{};  ///< the layer (for backward-data phase plans: the layer being differentiated)
  int threads = 1;
  int64_t N = 0;                  ///< images
  int64_t P = 0, Q = 0;           ///< output rows and columns this stream computes
  int64_t Cb = 0, Kb = 0;         ///< input C blocks of src; output channel blocks

  InputMode mode = InputMode::kDirect;
  int64_t Cr = 0;        ///< C blocks the microkernel reduces over (Cb, or folded blocks)
  int64_t phases = 1;    ///< number of phase images per C block
  int64_t Hph = 0, Wph = 0;
  std::array<int64_t, kMaxTaps> phase_a{}, phase_b{};  ///< row/column phase of each phase image
  int64_t in_row = 0, in_cb = 0, in_n = 0;
  int64_t taps = 0;
  std::array<Tap, kMaxTaps> tap{};
  int64_t wei_cb = 0, wei_kb = 0;
  int64_t out_row = 0, out_kb = 0, out_n = 0;
  int64_t in_px = kBlock;   ///< floats between input pixels of a row: 32 reads every other pixel of
                            ///< src in place (kDirect for 1x1 stride 2, see make_fwd_plan);
                            ///< kDensePx with fold_in_place
  int64_t tap_channels = kBlock;  ///< channels one tap reduces per C block: 16, or S*C (fold_in_place)
  int64_t out_px = kBlock;  ///< floats between output pixels of a row (stride_w*16 in bwd_d phases)
  int64_t out_base = 0;     ///< offset of output pixel (0, 0) (the phase's first pixel in bwd_d)

  int block = 0;         ///< main register block, index into kFwdBlocks
  int64_t c_chunk = 1;   ///< C blocks per microkernel call (cache blocking over C)
  int64_t p_groups = 0;  ///< div_up(P, RB_P): row groups
  int64_t kb_group = 1;  ///< K blocks run back to back on one pixel block (loop order, see below)
  /// Threads own whole images and make each image's working input just before computing it (it is
  /// then still in L2), instead of one pass over all images first. When N >= threads and the
  /// working input is a copy.
  bool per_image = false;
  /// Loop nest with the images inside the K groups (K group, image, C chunk, ...) instead of
  /// outside: when the weights are large and an image has few pixels (ResNet-50 res5: 4-9 MiB of
  /// weights against 7x7 outputs, about 25 FLOP per weight byte per image), a K group's weights stay
  /// in L2 across all N images instead of all weights streaming from memory once per image.
  bool images_inner = false;

  int64_t dense_h = 0, dense_w = 0;  ///< kFold: zero-padded H x W x C copy of one image, see layout
  /// kFold with per_image, one K group and one C chunk: each thread folds the rows of a row group
  /// just before the group's calls into a ring of ring_rows rows (in_n is 0 and row p of the
  /// stream reads slot p % ring_rows), so the folded input is written and read in L1/L2 instead of
  /// going through memory (conv1 at N=16: 8 MiB per image). 0: the whole working input is made.
  int64_t ring_rows = 0;
  /// kPhases (and fold_in_place) with per_image: each thread makes every image's working input in
  /// the same buffer (one image, work + thread * in_n; the stream's offsets have no image term), so
  /// the copy writes lines already in cache instead of fetching fresh ones from memory per image.
  bool thread_image = false;
  int64_t ring_size = 0;   ///< floats per thread: ring slots, then the image's dense copy
  /// kFold read in place: the microkernels read the S*C folded channels of filter row r straight
  /// from the image's dense copy (one tap per r, tap_channels = S*C, pixels in_px = kDensePx floats
  /// apart; the weights are the folded ones, [Kb][R*S*C][16 o]), so the folded rows are never
  /// written and no FMA is spent on the padding of R*S*C up to 16 (conv1: 147 of 160). The working
  /// input is the dense copies ([N][in_n], or one per thread with thread_image).
  bool fold_in_place = false;
  /// kFold: src is nhwc ([N][H][W][C], channels unpadded) instead of nChw16c; the dense copy of an
  /// image is then its rows with the padding around them (a read of N*H*W*C floats, against
  /// N*16*H*W for C < 16 in nChw16c: 5.3x less at C = 3). Set by Conv for Options::src_layout.
  bool src_nhwc = false;
  int64_t scratch_in = 0;   ///< floats of working input (0 for kDirect), and the kFold dense copy
  int64_t scratch_wei = 0;  ///< floats of folded weights (kFold only)

  constexpr RegBlock rb() const { return kFwdBlocks[block]; }
};

namespace plan_detail {

/// Relative cost, in twelfths of a cycle, of one step (one input channel, one tap) of a microkernel
/// call of `pixels` pixels x `kbs` K blocks on a core with 2 FMA ports: the larger of its FMAs
/// (pixels * kbs, at least 8 in flight for a 4-cycle latency) and its loads (one broadcast per
/// pixel, one weight vector per K block), which measured to issue at about 1.5 per cycle on
/// AVX-512 (the 28-pixel block ran at 72 % of the FMA peak with all data in L1).
constexpr int64_t step_cost(int64_t pixels, int64_t kbs) {
  const int64_t fma = 6 * (pixels * kbs < 8 ? 8 : pixels * kbs), loads = 8 * (pixels + kbs);
  return fma > loads ? fma : loads;
}

/// Largest rb_p <= rows with a compiled block (rb_p, rb_q). (1, rb_q) exists for every main rb_q.
constexpr int rows_block(int rows, int rb_q) {
  for (int r = rows; r > 1; --r)
    if (find_fwd_block(r, rb_q) >= 0) return find_fwd_block(r, rb_q);
  return find_fwd_block(1, rb_q);
}

/// Largest single-row block of at most `cols` columns.
constexpr int cols_block(int64_t cols) {
  int best = -1;
  for (int i = 0; i < kNumFwdBlocks; ++i)
    if (kFwdBlocks[i].rb_p == 1 && kFwdBlocks[i].kbs == 1 && kFwdBlocks[i].rb_q <= cols &&
        (best < 0 || kFwdBlocks[i].rb_q > kFwdBlocks[best].rb_q))
      best = i;
  return best;
}

/// Visits the microkernel calls that cover output rows [p, p + rows) of one (n, kb, C chunk):
/// f(block_index, row, col). Full RB_P x RB_Q blocks first, then rows left over under RB_P with the
/// largest block of the same RB_Q, then the columns left over under RB_Q, row by row, with single-row
/// blocks. No scalar remainder loop anywhere.
template <class F>
constexpr void for_each_block(int main, int64_t p, int64_t rows, int64_t Q, F&& f) {
  const int rb_q = kFwdBlocks[main].rb_q;
  while (rows > 0) {
    const int b = rows >= kFwdBlocks[main].rb_p ? main : rows_block(int(rows), rb_q);
    const int rp = kFwdBlocks[b].rb_p;
    int64_t q = 0;
    for (; q + rb_q <= Q; q += rb_q) f(b, p, q);
    for (int64_t i = 0; i < rp; ++i) {
      for (int64_t qq = q; qq < Q;) {
        const int c = cols_block(Q - qq);
        f(c, p + i, qq);
        qq += kFwdBlocks[c].rb_q;
      }
    }
    p += rp;
    rows -= rp;
  }
}

/// Cost of covering a P x Q output plane of Kb K blocks with main block `main` (sum of step_cost
/// over calls; K blocks left over by a kbs > 1 block run its one-K-block form).
constexpr int64_t plane_cost(int main, int64_t P, int64_t Q, int64_t Kb) {
  int64_t cost = 0;
  const int rb_p = kFwdBlocks[main].rb_p;
  for (int64_t p = 0; p < P; p += rb_p)
    for_each_block(main, p, P - p < rb_p ? P - p : rb_p, Q, [&](int b, int64_t, int64_t) {
      const int64_t kbs = kFwdBlocks[b].kbs, pix = kFwdBlocks[b].pixels();
      cost += Kb / kbs * step_cost(pix, kbs) + Kb % kbs * step_cost(pix, 1);
    });
  return cost;
}

/// Whether every call covering a P x Q plane of Kb K blocks with main block `main` is compiled in
/// the form `list` (kStride2Blocks, kDenseBlocks), including the one-K-block form for K blocks left
/// over.
template <size_t kN>
constexpr bool plane_in(const RegBlock (&list)[kN], int main, int64_t P, int64_t Q, int64_t Kb) {
  bool ok = true;
  const int rb_p = kFwdBlocks[main].rb_p;
  for (int64_t p = 0; p < P; p += rb_p)
    for_each_block(main, p, P - p < rb_p ? P - p : rb_p, Q, [&](int b, int64_t, int64_t) {
      ok = ok && block_in(list, b) && (Kb % kFwdBlocks[b].kbs == 0 || block_in(list, single_kb_block(b)));
    });
  return ok;
}

/// The main block with the lowest plane_cost over a P x Q plane of Kb K blocks; with `dense`, among
/// those whose every call has a dense-row form (kDenseBlocks), -1 if none has.
constexpr int cheapest_block(int64_t P, int64_t Q, int64_t Kb, bool dense) {
  int64_t best = -1;
  int block = -1;
  for (int b = 0; b < kNumFwdBlocks; ++b) {
    if (dense && !plane_in(kDenseBlocks, b, P, Q, Kb)) continue;
    const int64_t c = plane_cost(b, P, Q, Kb);
    if (best < 0 || c < best) {
      best = c;
      block = b;
    }
  }
  return block;
}

}  // namespace plan_detail

/// Chooses the register block (lowest modelled cost over the P x Q output plane), the row groups
/// split among threads, and the C chunk, for a plan whose geometry (P, Q, Cr, taps, strides) is set.
constexpr void choose_blocking(FwdPlan& p) {
  // Register block: the compiled block with the lowest modelled cost over the output plane (among
  // those with a dense-row form for fold_in_place).
  p.block = plan_detail::cheapest_block(p.P, p.Q, p.Kb, p.fold_in_place);
  p.p_groups = div_up(p.P, p.rb().rb_p);
  // Cache blocking over C: keep the weights one call streams through (C chunk x taps x 16 x 16
  // floats) within 256 KiB, a share of L2 on the CPUs we target, in chunks of equal size; the output
  // block is reloaded per chunk (RB_P*RB_Q vector loads against chunk*taps*16*RB_P*RB_Q FMAs).
  const int64_t kbs = p.rb().kbs;
  const int64_t per_block = (p.taps > 0 ? p.taps : 1) * kBlock * kBlock * 4 * kbs;
  int64_t chunk = (int64_t{256} * 1024) / per_block;
  chunk = chunk < 1 ? 1 : chunk;
  p.c_chunk = div_up(p.Cr, div_up(p.Cr, chunk));
  // Loop order (paper SC18, cache blocking and loop order). When one image's working input does not
  // fit in half of a 2 MiB L2, the K blocks of a group run one after the other on each pixel block,
  // so the input is streamed from memory once per group instead of once per K block; the group's
  // weights (kb_group x chunk x taps KiB) stay within 1 MiB. Otherwise the input stays in L2 across
  // K blocks and consecutive calls share their weights (kb_group = 1), which measured faster for
  // small images with large weights (512 -> 512 3x3 at 7x7: 80 vs 55 GFLOP/s). Smaller groups when
  // the (image, K group, row group) items would be too few to share among the threads.
  const int64_t group_bytes = p.c_chunk * per_block;
  int64_t g = p.in_n * 4 > int64_t{1024} * 1024 ? (int64_t{1024} * 1024) / group_bytes : 1;
  g = g < 1 ? 1 : (g > p.Kb ? p.Kb : g);
  while (g > 1 && p.N * div_up(p.Kb, g) * p.p_groups < 4 * p.threads) g = div_up(g, 2);
  // A block over kbs K blocks needs groups of whole multiples of kbs (a group's weights: kbs times
  // those of one K block, per_block above).
  g = round_up(g, kbs);
  p.kb_group = g > p.Kb ? p.Kb : g;
  p.per_image = p.mode != InputMode::kDirect && p.N > 1 && p.N >= p.threads;
  const int64_t wei_bytes = p.Kb * p.wei_kb * 4;
  p.images_inner = p.N > 1 && p.P * p.Q < 128 && wei_bytes > int64_t{1024} * 1024;
  if (p.images_inner) p.per_image = false;
}

/// Whether (r, s, c) are folded into channels (InputMode::kFold): small C, when that saves at least
/// a quarter of the reduction padded per tap (C = 3, 7x7: 160 channels instead of 49 x 16).
constexpr bool folds_channels(const ConvDesc& d) {
  const int64_t taps = d.R * d.S;
  return taps > 1 && d.C < kBlock && round_up(taps * d.C, kBlock) * 4 <= taps * round_up(d.C, kBlock) * 3;
}

/// Whether a kFold plan can read its folded channels in place: the S*C channels of a filter row
/// contiguous (dil_w 1) and kDensePx floats between the pixels of a row.
constexpr bool fold_in_place_fits(const FwdPlan& p) {
  return p.mode == InputMode::kFold && p.desc.dil_w == 1 && p.desc.stride_w * p.desc.C == kDensePx;
}

/// Turns a kFold plan's geometry into the in-place one (FwdPlan::fold_in_place): one tap per filter
/// row r, reading the S*C floats from the pixel's first column of the image's dense copy, with the
/// folded weights (wei_kb unchanged, channel f = (r*S + s)*C + c at f*16).
constexpr void set_fold_in_place(FwdPlan& p) {
  const ConvDesc& d = p.desc;
  p.fold_in_place = true;
  p.taps = d.R;
  p.tap_channels = d.S * d.C;
  for (int64_t r = 0; r < d.R; ++r) p.tap[r] = {r * d.dil_h * p.dense_w * d.C, r * d.S * d.C * kBlock};
  p.Cr = 1;
  p.wei_cb = p.wei_kb;  // one "C block": all R*S*C folded channels
  p.in_row = d.stride_h * p.dense_w * d.C;
  p.in_px = kDensePx;
  p.in_cb = 0;
  p.in_n = p.dense_h * p.dense_w * d.C;
}

/// Plans the forward pass of `d` for `threads` threads (the partition of the kernel stream). Throws
/// nothing and validates nothing: call d.check()/validate() first (Conv does). Constexpr.
/// `ring`: allow the forward-only arrangements of the working input (the folded-row ring,
/// FwdPlan::ring_rows; per-thread phase images, thread_image; the in-place stride-2 read, in_px); the
/// weight update, which reads the whole working input in its own layout, plans without them.
constexpr FwdPlan make_fwd_plan(const ConvDesc& d, int threads = 1, bool ring = true) {
  FwdPlan p{};
  p.desc = d;
  p.threads = threads < 1 ? 1 : threads;
  p.N = d.N;
  p.P = d.P();
  p.Q = d.Q();
  p.Cb = d.Cb();
  p.Kb = d.Kb();

  const int64_t taps = d.R * d.S;
  const bool unit = d.stride_h == 1 && d.stride_w == 1;
  const bool unpadded = d.pad_t == 0 && d.pad_l == 0 && d.pad_b == 0 && d.pad_r == 0;
  const int64_t folded = round_up(taps * d.C, kBlock);
  const bool fold = folds_channels(d);

  if (fold) {
    p.mode = InputMode::kFold;
    p.Cr = folded / kBlock;
    p.phases = 1;
    p.Hph = p.P;
    p.Wph = p.Q;
    p.taps = 1;
    p.tap[0] = {0, 0};
  } else {
    p.mode = unit && unpadded ? InputMode::kDirect : InputMode::kPhases;
    p.Cr = p.Cb;
    p.Hph = p.mode == InputMode::kDirect ? d.H : p.P + ((d.R - 1) * d.dil_h) / d.stride_h;
    p.Wph = p.mode == InputMode::kDirect ? d.W : p.Q + ((d.S - 1) * d.dil_w) / d.stride_w;
    p.phases = 0;
    p.taps = taps;
    for (int64_t r = 0; r < d.R; ++r) {
      for (int64_t s = 0; s < d.S; ++s) {
        const int64_t a = (r * d.dil_h) % d.stride_h, b = (s * d.dil_w) % d.stride_w;
        int64_t ph = 0;
        while (ph < p.phases && !(p.phase_a[ph] == a && p.phase_b[ph] == b)) ++ph;
        if (ph == p.phases) {
          p.phase_a[ph] = a;
          p.phase_b[ph] = b;
          ++p.phases;
        }
        const int64_t t = r * d.S + s;
        p.tap[t].in_off = ph * p.Hph * p.Wph * kBlock +
                          ((r * d.dil_h) / d.stride_h * p.Wph + (s * d.dil_w) / d.stride_w) * kBlock;
        p.tap[t].w_off = t * kBlock * kBlock;
      }
    }
  }
  p.in_row = p.Wph * kBlock;
  p.in_cb = p.phases * p.Hph * p.Wph * kBlock;
  if (fold) {  // [N][P][Cr][Q][16]: the Cr blocks of one output row together
    p.in_row = p.Cr * p.Q * kBlock;
    p.in_cb = p.Q * kBlock;
  }
  p.in_n = fold ? p.P * p.in_row : p.Cr * p.in_cb;
  p.wei_cb = p.taps * kBlock * kBlock;
  p.wei_kb = p.Cr * p.wei_cb;
  p.out_row = p.Q * kBlock;
  p.out_kb = p.P * p.Q * kBlock;
  p.out_n = p.Kb * p.out_kb;
  p.scratch_in = p.mode == InputMode::kDirect ? 0 : d.N * p.in_n;
  if (fold) {
    p.dense_h = (p.P - 1) * d.stride_h + (d.R - 1) * d.dil_h + 1;
    p.dense_w = (p.Q - 1) * d.stride_w + (d.S - 1) * d.dil_w + 1;
    p.scratch_in += d.N * p.dense_h * p.dense_w * d.C + 8;  // + kFoldSlack (layout/input_transform.hpp)
  }
  p.out_px = kBlock;
  p.out_base = 0;
  p.scratch_wei = p.mode == InputMode::kFold ? p.Kb * p.wei_kb : 0;
  // The first layer with C * stride_w = kDensePx: the folded channels are read in place (see
  // fold_in_place) when some block covers the plane in that form (the blocking then picks one).
  if (ring && fold_in_place_fits(p) && plan_detail::cheapest_block(p.P, p.Q, p.Kb, true) >= 0)
    set_fold_in_place(p);

  choose_blocking(p);
  // 1x1 stride 2 without padding: the microkernels read src in place, every other pixel of every
  // other row (in_px = 2), instead of a phase copy made before the FMAs, when every block of the
  // plane has a stride-2 form and all K blocks can run on each pixel block while its input lines
  // are in L1 (one K group: weights within 512 KiB and enough row groups for the threads). The
  // strided reads from memory then overlap the FMAs (N = 16: res3a_branch2a 7.3 -> 5.9 ms); with
  // several K groups each would read src again, from memory (res4a_branch1 20.9 -> 23.0 ms).
  if (ring && p.mode == InputMode::kPhases && taps == 1 && d.stride_h == 2 && d.stride_w == 2 && unpadded &&
      !p.images_inner && p.Kb * p.wei_kb * 4 <= int64_t{512} * 1024 && p.N * p.p_groups >= 4 * p.threads &&
      plan_detail::plane_in(kStride2Blocks, p.block, p.P, p.Q, p.Kb)) {
    p.mode = InputMode::kDirect;
    p.in_px = 2 * kBlock;
    p.in_row = d.stride_h * d.W * kBlock;
    p.in_cb = d.H * d.W * kBlock;
    p.in_n = p.Cb * p.in_cb;
    p.scratch_in = 0;
    p.per_image = false;
    p.kb_group = p.Kb;
  }
  if (ring && p.mode == InputMode::kPhases && p.per_image) {
    p.thread_image = true;
    p.scratch_in = p.threads * p.in_n;
  }
  if (p.fold_in_place) {
    // The folded weights are small (R*S*C x 16 floats per K block): all K blocks run on each pixel
    // block while its input rows are in L1.
    p.kb_group = p.Kb;
    p.thread_image = p.per_image;
    p.scratch_in = (p.per_image ? p.threads : d.N) * p.in_n;
  }
  if (ring && fold && !p.fold_in_place && p.per_image && p.c_chunk == p.Cr && p.kb_group >= p.Kb) {
    p.ring_rows = p.rb().rb_p;
    p.ring_size = p.ring_rows * p.in_row + p.dense_h * p.dense_w * d.C + 8;  // + kFoldSlack
    p.in_n = 0;
    p.scratch_in = p.threads * p.ring_size;
  }
  return p;
}

}  // namespace hwyconv
