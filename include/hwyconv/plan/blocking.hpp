// hwyconv/plan/blocking.hpp - register blocking: how the compiled register blocks (kernels/variants.hpp)
// cover an output plane, and in which pixel forms they are compiled. What a covering costs is in
// plan/model.hpp.
#pragma once

#include <cstdint>

#include "hwyconv/kernels/variants.hpp"
#include "hwyconv/plan/kernel_plan.hpp"

namespace hwyconv {

/// How a microkernel finds the input pixels of a row: the form it is compiled in.
enum class PixelForm : uint8_t {
  kBlocked,  ///< 16-channel blocks, pixels 16 floats apart (every block)
  kStride2,  ///< blocks, every other pixel (32 floats apart): kStride2Blocks
  kDense,    ///< pixels stride_w * C floats apart in a dense H x W x C copy: kDenseBlocks
};

/// Whether a form covers the end of a row whose width is not a multiple of the block's with the
/// block moved back (overlapping; see kDenseBlocks) instead of narrower blocks.
constexpr bool overlaps_row_end(PixelForm f) { return f == PixelForm::kDense; }

/// Whether block b of kFwdBlocks is compiled in form f.
constexpr bool block_has_form(int b, PixelForm f) {
  return f == PixelForm::kBlocked || (f == PixelForm::kStride2 ? block_in(kStride2Blocks, b) : block_in(kDenseBlocks, b));
}

namespace plan_detail {

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

}  // namespace plan_detail

/// Visits the microkernel calls that cover output rows [p, p + rows), columns [q0, q1), of one (n, kb,
/// C chunk): f(block_index, row, col). Full RB_P x RB_Q blocks first (from q0 on), then rows left over
/// under RB_P with the largest block of the same RB_Q, then the columns left over under RB_Q, row by
/// row, with single-row blocks (or, `overlap`, one more block ending at q1). No scalar remainder loop
/// anywhere. With q0 a multiple of RB_Q, a row's segments are covered by the blocks of the whole row.
template <class F>
constexpr void for_each_block_in(int main, int64_t p, int64_t rows, int64_t q0, int64_t q1, F&& f, bool overlap = false) {
  const int rb_q = kFwdBlocks[main].rb_q;
  while (rows > 0) {
    const int b = rows >= kFwdBlocks[main].rb_p ? main : plan_detail::rows_block(int(rows), rb_q);
    const int rp = kFwdBlocks[b].rb_p;
    int64_t q = q0;
    for (; q + rb_q <= q1; q += rb_q) f(b, p, q);
    if (overlap && q < q1 && q1 - q0 >= rb_q) {
      f(b, p, q1 - rb_q);
      q = q1;
    }
    for (int64_t i = 0; i < rp && q < q1; ++i) {
      for (int64_t qq = q; qq < q1;) {
        const int c = plan_detail::cols_block(q1 - qq);
        f(c, p + i, qq);
        qq += kFwdBlocks[c].rb_q;
      }
    }
    p += rp;
    rows -= rp;
  }
}

/// for_each_block_in over whole rows [0, Q).
template <class F>
constexpr void for_each_block(int main, int64_t p, int64_t rows, int64_t Q, F&& f, bool overlap = false) {
  for_each_block_in(main, p, rows, 0, Q, f, overlap);
}

/// Whether q_groups column segments of rows of Q outputs are covered by the same blocks as whole
/// rows: with a block moved back to the row's end (`overlap`), the last segment must be at least a
/// block wide, so that the moved block stays inside it.
constexpr bool segments_fit(int main, int64_t Q, int64_t q_groups, bool overlap) {
  const int rb_q = kFwdBlocks[main].rb_q;
  const int64_t w = segment_cols(Q, q_groups, rb_q), n = div_up(Q, w);
  return n == q_groups && (!overlap || n == 1 || Q - (n - 1) * w >= rb_q);
}

/// Visits the calls covering a whole P x Q plane of one (n, kb group, C chunk) with main block `main`.
template <class F>
constexpr void for_each_plane_block(int main, int64_t P, int64_t Q, F&& f, bool overlap = false) {
  const int rb_p = kFwdBlocks[main].rb_p;
  for (int64_t p = 0; p < P; p += rb_p) for_each_block(main, p, P - p < rb_p ? P - p : rb_p, Q, f, overlap);
}

/// Whether every call covering a P x Q plane of Kb K blocks with main block `main` is compiled in
/// form f, including the one-K-block form for K blocks left over.
constexpr bool plane_in(PixelForm f, int main, int64_t P, int64_t Q, int64_t Kb) {
  bool ok = true;
  for_each_plane_block(main, P, Q, [&](int b, int64_t, int64_t) {
    ok = ok && block_has_form(b, f) && (Kb % kFwdBlocks[b].kbs == 0 || block_has_form(single_kb_block(b), f));
  }, overlaps_row_end(f));
  return ok;
}

}  // namespace hwyconv
