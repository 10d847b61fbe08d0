// hwyconv/layout/bwd_transform.hpp - layout work of the training passes: the weights of backward
// data (IOhw16o16i), the zero-padded (optionally ReLU-masked) copy of ddst, and the unfolding of
// weight gradients computed on folded channels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "hwyconv/desc.hpp"
#include "hwyconv/layout/reorder.hpp"
#include "hwyconv/plan/bwd_plan.hpp"

namespace hwyconv {

/// Weights for backward data: OIhw16i16o [Kb][Cb][R][S][16 c][16 k] -> IOhw16o16i
/// [Cb][Kb][R][S][16 k][16 c] (each 16 x 16 block transposed, K and C blocks swapped; taps are not
/// flipped: the backward-data plan indexes taps explicitly). Do it once per training step, when
/// the weights change. Throws Error("weights" / "wei_bwd_d") when a span is too small or they overlap.
inline void reorder_weights_bwd_d(std::span<const float> wei, std::span<float> wei_bwd_d, int64_t K, int64_t C,
                                  int64_t R, int64_t S) {
  const int64_t need = wei_blocked_size(K, C, R, S);
  if (int64_t(wei.size()) < need)
    throw Error("weights", "needs at least " + std::to_string(need) + " floats (OIhw16i16o), got " + std::to_string(wei.size()));
  if (int64_t(wei_bwd_d.size()) < need)
    throw Error("wei_bwd_d", "needs at least " + std::to_string(need) + " floats (IOhw16o16i), got " +
                                 std::to_string(wei_bwd_d.size()));
  const float* src = wei.data();
  float* dst = wei_bwd_d.data();
  if (src < dst + need && dst < src + need) throw Error("wei_bwd_d", "must not overlap weights");
  const int64_t Kb = div_up(K, kBlock), Cb = div_up(C, kBlock), taps = R * S;
  for (int64_t kb = 0; kb < Kb; ++kb)
    for (int64_t cb = 0; cb < Cb; ++cb)
      for (int64_t t = 0; t < taps; ++t) {
        const float* from = src + ((kb * Cb + cb) * taps + t) * kBlock * kBlock;
        float* to = dst + ((cb * Kb + kb) * taps + t) * kBlock * kBlock;
        for (int64_t i = 0; i < kBlock; ++i)
          for (int64_t o = 0; o < kBlock; ++o) to[o * kBlock + i] = from[i * kBlock + o];
      }
}

/// Work items of the padded ddst copy: one per (image, K block).
constexpr int64_t padded_ddst_items(const BwdDataPlan& b) { return b.desc.N * b.desc.Kb(); }

/// Copies item i (image n, K block kb) of ddst [N][Kb][P][Q][16] into the zero-padded
/// [N][Kb][Hpad][Wpad][16] of the plan; with `mask` (same layout as ddst), values where mask <= 0
/// become 0 (ReLU backward).
inline void pad_ddst(const BwdDataPlan& b, const float* ddst, const float* mask, float* out, int64_t i) {
  const ConvDesc& d = b.desc;
  const int64_t P = d.P(), Q = d.Q();
  const float* g = ddst + i * P * Q * kBlock;
  const float* m = mask ? mask + i * P * Q * kBlock : nullptr;
  float* o = out + i * b.Hpad * b.Wpad * kBlock;
  std::fill(o, o + b.Hpad * b.Wpad * kBlock, 0.0f);
  for (int64_t p = 0; p < P; ++p) {
    float* row = o + ((p + b.pad_h) * b.Wpad + b.pad_w) * kBlock;
    const int64_t off = p * Q * kBlock;
    if (!m) {
      std::memcpy(row, g + off, sizeof(float) * size_t(Q * kBlock));
    } else {
      for (int64_t j = 0; j < Q * kBlock; ++j) row[j] = m[off + j] > 0.0f ? g[off + j] : 0.0f;
    }
  }
}

/// Backward data with folded channels (BwdDataPlan::fold): the weights of the 1x1 convolution from
/// K to F = R*S*C channels, OIhw16i16o [Fb][Kb][16 k][16 f] with f = (r*S + s)*C + c, from the
/// IOhw16o16i weights [Cb][Kb][R][S][16 k][16 c]; slots f >= F are zero.
inline void fold_weights_bwd_d(const BwdDataPlan& b, const float* wei_bwd_d, float* folded) {
  const ConvDesc& d = b.desc;
  const int64_t Kb = d.Kb(), Fb = div_up(d.R * d.S * d.C, kBlock);
  std::fill(folded, folded + Fb * Kb * kBlock * kBlock, 0.0f);
  for (int64_t kb = 0; kb < Kb; ++kb)
    for (int64_t r = 0; r < d.R; ++r)
      for (int64_t s = 0; s < d.S; ++s)
        for (int64_t c = 0; c < d.C; ++c) {
          const int64_t f = (r * d.S + s) * d.C + c;
          const float* from = wei_bwd_d + ((((c / kBlock) * Kb + kb) * d.R + r) * d.S + s) * kBlock * kBlock + c % kBlock;
          float* to = folded + ((f / kBlock) * Kb + kb) * kBlock * kBlock + f % kBlock;
          for (int64_t k = 0; k < kBlock; ++k) to[k * kBlock] = from[k * kBlock];
        }
}

/// Backward data with folded channels: row h of image n of dsrc (nChw16c [N][Cb][H][W][16], every C
/// block, padded channels 0) as the sum of the contributions in `col` (that image's [Fb][P][Q][16]
/// from the 1x1 convolution): dsrc(h, w, c) = sum over the taps (r, s) with h = p*stride_h - pad_t +
/// r*dil_h and w = q*stride_w - pad_l + s*dil_w of col(f = (r*S + s)*C + c, p, q). The terms are
/// added in a fixed order (r, s), whatever the thread count.
inline void col2im_row(const BwdDataPlan& b, const float* col, float* dsrc, int64_t n, int64_t h) {
  const ConvDesc& d = b.desc;
  const int64_t P = d.P(), Q = d.Q(), Cb = d.Cb(), plane = P * Q * kBlock;
  for (int64_t cb = 0; cb < Cb; ++cb) std::fill_n(dsrc + ((n * Cb + cb) * d.H + h) * d.W * kBlock, d.W * kBlock, 0.0f);
  for (int64_t r = 0; r < d.R; ++r) {
    const int64_t y = h + d.pad_t - r * d.dil_h;  // = p * stride_h
    if (y < 0 || y % d.stride_h != 0 || y / d.stride_h >= P) continue;
    const int64_t p = y / d.stride_h;
    for (int64_t s = 0; s < d.S; ++s) {
      // Columns q with w = q*stride_w + s*dil_w - pad_l in [0, W).
      const int64_t shift = s * d.dil_w - d.pad_l;
      const int64_t q0 = shift >= 0 ? 0 : div_up(-shift, d.stride_w);
      const int64_t q1 = std::min(Q, d.W - shift <= 0 ? int64_t{0} : div_up(d.W - shift, d.stride_w));
      for (int64_t c = 0; c < d.C; ++c) {
        const int64_t f = (r * d.S + s) * d.C + c;
        const float* from = col + (f / kBlock) * plane + p * Q * kBlock + f % kBlock;
        float* to = dsrc + ((n * Cb + c / kBlock) * d.H + h) * d.W * kBlock + c % kBlock + shift * kBlock;
        const int64_t step = d.stride_w * kBlock;
        for (int64_t q = q0; q < q1; ++q) to[q * step] += from[q * kBlock];
      }
    }
  }
}

/// Unfolds weight gradients computed on folded channels ([Kb][wei_kb / 16 f][16 k], f = (r*S + s)*C
/// + c, as fold_weights lays them out) into OIhw16i16o; padded input-channel slots become 0.
inline void unfold_weights(const FwdPlan& p, const float* folded, float* wei) {
  const ConvDesc& d = p.desc;
  std::fill(wei, wei + wei_blocked_size(d.K, d.C, d.R, d.S), 0.0f);
  for (int64_t kb = 0; kb < p.Kb; ++kb)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t r = 0; r < d.R; ++r)
        for (int64_t s = 0; s < d.S; ++s) {
          const int64_t f = (r * d.S + s) * d.C + c;
          const float* from = folded + kb * p.wei_kb + f * kBlock;
          float* to = wei + (((kb * p.Cb + c / kBlock) * d.R + r) * d.S + s) * kBlock * kBlock + (c % kBlock) * kBlock;
          std::memcpy(to, from, sizeof(float) * kBlock);
        }
}

}  // namespace hwyconv
