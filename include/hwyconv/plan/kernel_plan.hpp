// hwyconv/plan/kernel_plan.hpp - the values a plan hands to the forward microkernels and their kernel
// stream: the geometry of the stride-1, unpadded convolution they run over a working input, and the
// blocking (register block, cache blocking, loop order, thread partition) of its loop nest.
//
// Every implementation that runs the forward microkernels (forward, each phase of backward data, the
// 1x1 convolution of backward data by col2im) describes its work in these terms: "output blocks" and
// "reduction blocks" are those of the microkernel, whatever the pass calls them.
#pragma once

#include <array>
#include <cstdint>

#include "hwyconv/desc.hpp"

namespace hwyconv {

/// One filter tap as the microkernel sees it: where it reads in the working input (relative to the
/// output pixel's position) and in the weights (relative to the reduction block), in floats; and
/// where it reads in the unpadded source, in rows and columns relative to the output pixel (p, q):
/// source row p * row_step + row, column q * col_step + col (KernelGeometry). A tap whose source row
/// or column lies outside the source for every pixel of a call reads only padding and is skipped.
struct Tap {
  int64_t in_off = 0;
  int64_t w_off = 0;
  int32_t row = 0, col = 0;
  friend constexpr bool operator==(const Tap&, const Tap&) = default;
};

/// The taps of a plan (R*S at most).
using Taps = std::array<Tap, kMaxTaps>;

/// A source extent no tap leaves (KernelGeometry::src_rows, src_cols).
inline constexpr int64_t kUnbounded = int64_t{1} << 40;

/// A range [first, last) of taps or outputs.
struct TapRange {
  int64_t first = 0, last = 0;
};

/// The outputs [first, last) of [0, out) for which a tap at source offset `off` reads the source:
/// 0 <= p * step + off < src.
constexpr TapRange valid_outputs(int64_t off, int64_t step, int64_t src, int64_t out) {
  const int64_t lo = off >= 0 ? 0 : (-off + step - 1) / step;
  const int64_t hi = src - 1 - off < 0 ? 0 : (src - 1 - off) / step + 1;
  TapRange r{lo, hi < out ? hi : out};
  if (r.last < r.first) r.last = r.first;
  return r;
}

/// The taps of a grid's rows [first, last) (or columns) that read some source row (column) for the
/// outputs [p, p + n): offsets off(i) = the Tap::row (col) of grid row (column) i, monotonic in i.
template <class Off>
constexpr TapRange valid_taps(int64_t count, Off&& off, int64_t p, int64_t n, int64_t step, int64_t src) {
  TapRange r{count, 0};
  for (int64_t i = 0; i < count; ++i) {
    const int64_t o = off(i);
    if ((p + n - 1) * step + o >= 0 && p * step + o < src) {
      r.first = i < r.first ? i : r.first;
      r.last = i + 1;
    }
  }
  if (r.last == 0) r.first = 0;
  return r;
}

/// Geometry of the convolution the forward microkernels run: N images of P x Q outputs in Kb blocks of
/// 16 channels, each reducing Cr blocks x taps x tap_channels inputs. Offsets and strides in floats.
/// Working input [N][Cr][...]: in_n, in_cb, in_row apart, input pixels in_px apart; weights
/// [Kb][Cr][taps][tap_channels][16] (wei_kb, wei_cb); output pixel (n, kb, p, q) at out_base +
/// n*out_n + kb*out_kb + p*out_row + q*out_px. Grouped (groups > 1): the output blocks of group
/// j = kb / (Kb / groups) reduce over the input blocks [j*Cr, (j + 1)*Cr), in_group() apart; the
/// weights of a K block stay [Cr][taps][...] (gOIhw16i16o).
struct KernelGeometry {
  int64_t N = 0, P = 0, Q = 0;
  int64_t Cr = 0, Kb = 0;
  int64_t groups = 1;
  int64_t taps = 0;
  /// The taps form a grid of taps / tap_cols rows x tap_cols columns (tap i * tap_cols + j); row i's
  /// taps share Tap::row, column j's Tap::col.
  int64_t tap_cols = 1;
  /// The unpadded source the taps' rows and columns refer to (Tap), and the output pixel's step in it.
  /// Unbounded (kUnbounded): no tap is ever skipped.
  int64_t src_rows = kUnbounded, src_cols = kUnbounded, row_step = 1, col_step = 1;
  int64_t tap_channels = kBlock;  ///< channels one tap reduces per block: 16, or S*C (folded, in place)
  int64_t in_row = 0, in_cb = 0, in_n = 0, in_px = kBlock;
  int64_t wei_cb = 0, wei_kb = 0;
  int64_t out_row = 0, out_kb = 0, out_n = 0, out_px = kBlock, out_base = 0;
  /// Output blocks per group, and the working-input offset of a group's first input block.
  constexpr int64_t group_kb() const { return Kb / groups; }
  constexpr int64_t in_group() const { return Cr * in_cb; }
  friend constexpr bool operator==(const KernelGeometry&, const KernelGeometry&) = default;
};

/// Whether some tap of geometry g reads only padding for some output row or column (then the kernel
/// stream's tap ranges skip it where it does, and the model counts the taps call by call).
constexpr bool some_tap_skipped(const KernelGeometry& g, const Tap* taps) {
  const int64_t rows = g.taps / g.tap_cols;
  for (int64_t i = 0; i < rows; ++i) {
    const TapRange v = valid_outputs(taps[i * g.tap_cols].row, g.row_step, g.src_rows, g.P);
    if (v.first > 0 || v.last < g.P) return true;
  }
  for (int64_t j = 0; j < g.tap_cols; ++j) {
    const TapRange v = valid_outputs(taps[j].col, g.col_step, g.src_cols, g.Q);
    if (v.first > 0 || v.last < g.Q) return true;
  }
  return false;
}

/// The taps a call of an RB_P x RB_Q block at output (p, q) runs: the grid rows and columns of taps
/// that read some source row and column for its pixels (the others read only padding).
struct BlockTaps {
  TapRange rows, cols;
  constexpr int64_t count() const { return (rows.last - rows.first) * (cols.last - cols.first); }
};
constexpr BlockTaps block_taps(const KernelGeometry& g, const Tap* taps, int64_t p, int rb_p, int64_t q, int rb_q) {
  auto row_off = [&](int64_t i) { return int64_t(taps[i * g.tap_cols].row); };
  auto col_off = [&](int64_t j) { return int64_t(taps[j].col); };
  return {valid_taps(g.taps / g.tap_cols, row_off, p, rb_p, g.row_step, g.src_rows),
          valid_taps(g.tap_cols, col_off, q, rb_q, g.col_step, g.src_cols)};
}

/// Columns of each of q_groups segments of a row of Q outputs: a multiple of RB_Q, so that the
/// segments are covered by the same blocks as the whole row (the last segment ends at Q).
constexpr int64_t segment_cols(int64_t Q, int64_t q_groups, int rb_q) {
  return div_up(div_up(Q, q_groups), rb_q) * rb_q;
}

/// The schedule of the kernel stream's loop nest (paper SC18: register blocking, cache blocking and
/// loop order, threading). Per thread: images n, K groups, C chunks, row groups, pixel blocks, the K
/// blocks of the group (K groups outside the images with images_inner).
struct Blocking {
  int threads = 1;
  int block = 0;           ///< main register block, index into kFwdBlocks
  int64_t c_chunk = 1;     ///< reduction blocks per microkernel call
  int64_t p_groups = 0;    ///< row groups: div_up(P, RB_P)
  /// Column segments of each row group (segment_cols wide), so that threads can split planes of
  /// few rows (1-D signals, 1x1 planes run as one row) and not only images, K groups and rows.
  int64_t q_groups = 1;
  int64_t kb_group = 1;    ///< K blocks run back to back on one pixel block
  /// Loop order: images inside the K groups, so that a K group's weights stay in cache across the
  /// minibatch, instead of all weights streaming once per image.
  bool images_inner = false;
  /// Threads own whole images (the partition is over images), so that each thread can make an
  /// image's working input right before computing it.
  bool own_images = false;
  /// Stream offsets have no image term: each thread's buffer holds the one image it computes.
  bool thread_image = false;
  /// Stream rows are slots of a ring of ring_rows rows (row p reads slot p % ring_rows); 0: none.
  int64_t ring_rows = 0;
  /// The end of a row narrower than a block is covered by a block moved back (overlaps_row_end).
  bool overlap = false;
  friend constexpr bool operator==(const Blocking&, const Blocking&) = default;
};

}  // namespace hwyconv
