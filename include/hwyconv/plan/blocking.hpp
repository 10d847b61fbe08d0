// hwyconv/plan/blocking.hpp - register blocking: how the compiled register blocks (kernels/variants.hpp)
// cover an output plane, and what each covering costs in the microkernel (FMAs and loads per step).
#pragma once

#include <cstdint>

#include "hwyconv/kernels/variants.hpp"
#include "hwyconv/plan/kernel_plan.hpp"
#include "hwyconv/plan/machine.hpp"

namespace hwyconv {

/// How a microkernel finds the input pixels of a row: the form it is compiled in.
enum class PixelForm : uint8_t {
  kBlocked,  ///< 16-channel blocks, pixels FwdPlan::in_px = 16 floats apart (every block)
  kStride2,  ///< blocks, every other pixel (32 floats apart): kStride2Blocks
  kDense,    ///< pixels kDensePx floats apart in a dense H x W x C copy: kDenseBlocks
};

/// Floats between the input pixels of a row in form f.
constexpr int64_t pixel_stride(PixelForm f) {
  return f == PixelForm::kStride2 ? 2 * kBlock : (f == PixelForm::kDense ? kDensePx : kBlock);
}

/// Whether block b of kFwdBlocks is compiled in form f.
constexpr bool block_has_form(int b, PixelForm f) {
  return f == PixelForm::kBlocked || (f == PixelForm::kStride2 ? block_in(kStride2Blocks, b) : block_in(kDenseBlocks, b));
}

namespace plan_detail {

/// Relative cost, in twelfths of a cycle, of one step (one input channel, one tap) of a microkernel
/// call of `pixels` pixels x `kbs` K blocks on a core with 2 FMA ports: the larger of its FMAs
/// (pixels * kbs, at least 8 in flight for a 4-cycle latency) and its loads (one broadcast per
/// pixel, one weight vector per K block), which issue at about 1.5 per cycle on AVX-512.
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

}  // namespace plan_detail

/// Visits the microkernel calls that cover output rows [p, p + rows) of one (n, kb, C chunk):
/// f(block_index, row, col). Full RB_P x RB_Q blocks first, then rows left over under RB_P with the
/// largest block of the same RB_Q, then the columns left over under RB_Q, row by row, with single-row
/// blocks. No scalar remainder loop anywhere.
template <class F>
constexpr void for_each_block(int main, int64_t p, int64_t rows, int64_t Q, F&& f) {
  const int rb_q = kFwdBlocks[main].rb_q;
  while (rows > 0) {
    const int b = rows >= kFwdBlocks[main].rb_p ? main : plan_detail::rows_block(int(rows), rb_q);
    const int rp = kFwdBlocks[b].rb_p;
    int64_t q = 0;
    for (; q + rb_q <= Q; q += rb_q) f(b, p, q);
    for (int64_t i = 0; i < rp; ++i) {
      for (int64_t qq = q; qq < Q;) {
        const int c = plan_detail::cols_block(Q - qq);
        f(c, p + i, qq);
        qq += kFwdBlocks[c].rb_q;
      }
    }
    p += rp;
    rows -= rp;
  }
}

/// Visits the calls covering a whole P x Q plane of one (n, kb group, C chunk) with main block `main`.
template <class F>
constexpr void for_each_plane_block(int main, int64_t P, int64_t Q, F&& f) {
  const int rb_p = kFwdBlocks[main].rb_p;
  for (int64_t p = 0; p < P; p += rb_p) for_each_block(main, p, P - p < rb_p ? P - p : rb_p, Q, f);
}

/// Cost of covering a P x Q output plane of Kb K blocks with main block `main` (sum of step_cost
/// over calls; K blocks left over by a kbs > 1 block run its one-K-block form).
constexpr int64_t plane_cost(int main, int64_t P, int64_t Q, int64_t Kb) {
  int64_t cost = 0;
  for_each_plane_block(main, P, Q, [&](int b, int64_t, int64_t) {
    const int64_t kbs = kFwdBlocks[b].kbs, pix = kFwdBlocks[b].pixels();
    cost += Kb / kbs * plan_detail::step_cost(pix, kbs) + Kb % kbs * plan_detail::step_cost(pix, 1);
  });
  return cost;
}

/// Whether every call covering a P x Q plane of Kb K blocks with main block `main` is compiled in
/// form f, including the one-K-block form for K blocks left over.
constexpr bool plane_in(PixelForm f, int main, int64_t P, int64_t Q, int64_t Kb) {
  bool ok = true;
  for_each_plane_block(main, P, Q, [&](int b, int64_t, int64_t) {
    ok = ok && block_has_form(b, f) && (Kb % kFwdBlocks[b].kbs == 0 || block_has_form(single_kb_block(b), f));
  });
  return ok;
}

/// The main block with the lowest plane_cost over a P x Q plane of Kb K blocks among those whose
/// every call is compiled in form f; -1 if none is.
constexpr int cheapest_block(int64_t P, int64_t Q, int64_t Kb, PixelForm f = PixelForm::kBlocked) {
  int64_t best = -1;
  int block = -1;
  for (int b = 0; b < kNumFwdBlocks; ++b) {
    if (f != PixelForm::kBlocked && !plane_in(f, b, P, Q, Kb)) continue;
    const int64_t c = plane_cost(b, P, Q, Kb);
    if (best < 0 || c < best) {
      best = c;
      block = b;
    }
  }
  return block;
}

/// Chooses the register block (lowest modelled cost over the output plane among the blocks compiled
/// in form f), the row groups, the C chunk and the K group of a kernel geometry, and whether threads
/// own whole images (`copy`: the working input is made per image).
constexpr void choose_blocking(const KernelGeometry& g, Blocking& b, PixelForm f, bool copy) {
  b.block = cheapest_block(g.P, g.Q, g.Kb, f);
  const RegBlock rb = kFwdBlocks[b.block];
  b.p_groups = div_up(g.P, rb.rb_p);
  // Cache blocking over C: keep the weights one call streams through (C chunk x taps x 16 x 16
  // floats) within 256 KiB, in chunks of equal size.
  const int64_t kbs = rb.kbs;
  const int64_t per_block = (g.taps > 0 ? g.taps : 1) * kBlock * kBlock * 4 * kbs;
  int64_t chunk = (int64_t{256} * 1024) / per_block;
  chunk = chunk < 1 ? 1 : chunk;
  b.c_chunk = div_up(g.Cr, div_up(g.Cr, chunk));
  // Loop order: when one image's working input does not fit in 1 MiB, the K blocks of a group run
  // one after the other on each pixel block (group weights within 1 MiB); otherwise kb_group = 1.
  const int64_t group_bytes = b.c_chunk * per_block;
  int64_t kg = g.in_n * 4 > int64_t{1024} * 1024 ? (int64_t{1024} * 1024) / group_bytes : 1;
  kg = kg < 1 ? 1 : (kg > g.Kb ? g.Kb : kg);
  while (kg > 1 && g.N * div_up(g.Kb, kg) * b.p_groups < 4 * b.threads) kg = div_up(kg, 2);
  kg = round_up(kg, kbs);
  b.kb_group = kg > g.Kb ? g.Kb : kg;
  b.own_images = copy && g.N > 1 && g.N >= b.threads;
  const int64_t wei_bytes = g.Kb * g.wei_kb * 4;
  b.images_inner = g.N > 1 && g.P * g.Q < 128 && wei_bytes > int64_t{1024} * 1024;
  if (b.images_inner) b.own_images = false;
}

}  // namespace hwyconv
