// hwyconv/layout/bwd_transform.hpp - layout work of the training passes: the zero-padded (optionally
// ReLU-masked) copy of ddst, the folded weights and col2im of backward data by folded channels, and the
// unfolding of weight gradients computed on folded channels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "hwyconv/desc.hpp"
#include "hwyconv/layout/reorder.hpp"
#include "hwyconv/plan/fwd_plan.hpp"

namespace hwyconv {

/// Whether tap r (or s) reaches the dsrc rows (columns) of stride phase a: stride divides
/// a + pad - r*dil (see impl/bwd_d_phases.hpp).
constexpr bool phase_hits(int64_t pad, int64_t dil, int64_t stride, int64_t a, int64_t r) {
  return (a + pad - r * dil) % stride == 0;
}

/// The ddst row (column) offset of tap r in phase a: row i of the phase reads ddst row i + offset.
constexpr int64_t phase_offset(int64_t pad, int64_t dil, int64_t stride, int64_t a, int64_t r) {
  return (a + pad - r * dil) / stride;
}

/// The zero-padded copy of ddst that backward data reads: [N][Kb][Hpad][Wpad][16], ddst pixel (p, q)
/// at (p + pad_h, q + pad_w). `direct`: no padding is needed and ddst is read as it is (a copy is
/// still made to apply a ReLU mask); `floats`: the size of the copy.
struct PaddedDdst {
  int64_t pad_h = 0, pad_w = 0, Hpad = 0, Wpad = 0;
  bool direct = true;
  int64_t floats = 0;
};

/// The padding the phases of d read around ddst: the extent of every tap offset of every phase with
/// rows, so that each phase is an unpadded stride-1 convolution over the copy.
constexpr PaddedDdst padded_ddst(const ConvDesc& d) {
  const int64_t P = d.P(), Q = d.Q();
  // ddst rows (columns) read along one dimension, [lo, hi): every tap offset of every phase with
  // input rows (columns), out = P (Q).
  struct Range {
    int64_t lo, hi;
  };
  auto extent = [](int64_t size, int64_t out, int64_t taps, int64_t pad, int64_t dil, int64_t stride) {
    Range e{0, out};
    for (int64_t a = 0; a < stride && a < size; ++a)
      for (int64_t r = 0; r < taps; ++r)
        if (phase_hits(pad, dil, stride, a, r)) {
          const int64_t off = phase_offset(pad, dil, stride, a, r), rows = div_up(size - a, stride);
          e.lo = off < e.lo ? off : e.lo;
          e.hi = off + rows > e.hi ? off + rows : e.hi;
        }
    return e;
  };
  const Range h = extent(d.H, P, d.R, d.pad_t, d.dil_h, d.stride_h), w = extent(d.W, Q, d.S, d.pad_l, d.dil_w, d.stride_w);
  const int64_t lo_h = h.lo, hi_h = h.hi, lo_w = w.lo, hi_w = w.hi;
  PaddedDdst p;
  p.pad_h = -lo_h;
  p.pad_w = -lo_w;
  p.Hpad = hi_h - lo_h;
  p.Wpad = hi_w - lo_w;
  p.direct = p.pad_h == 0 && p.pad_w == 0 && p.Hpad == P && p.Wpad == Q;
  p.floats = d.N * d.Kb() * p.Hpad * p.Wpad * kBlock;
  return p;
}

/// No padding: ddst as it is ([N][Kb][P][Q][16]); a copy only to apply a ReLU mask.
constexpr PaddedDdst unpadded_ddst(const ConvDesc& d) {
  return {0, 0, d.P(), d.Q(), true, d.N * d.Kb() * d.P() * d.Q() * kBlock};
}

/// Copies item i (image n, K block kb) of ddst [N][Kb][P][Q][16] into the zero-padded copy `out`;
/// with `mask` (same layout as ddst), values where mask <= 0 become 0 (ReLU backward).
inline void pad_ddst(const ConvDesc& d, const PaddedDdst& pd, const float* ddst, const float* mask, float* out,
                     int64_t i) {
  const int64_t P = d.P(), Q = d.Q();
  const float* g = ddst + i * P * Q * kBlock;
  const float* m = mask ? mask + i * P * Q * kBlock : nullptr;
  float* o = out + i * pd.Hpad * pd.Wpad * kBlock;
  std::fill(o, o + pd.Hpad * pd.Wpad * kBlock, 0.0f);
  for (int64_t p = 0; p < P; ++p) {
    float* row = o + ((p + pd.pad_h) * pd.Wpad + pd.pad_w) * kBlock;
    const int64_t off = p * Q * kBlock;
    if (!m) {
      std::memcpy(row, g + off, sizeof(float) * size_t(Q * kBlock));
    } else {
      for (int64_t j = 0; j < Q * kBlock; ++j) row[j] = m[off + j] > 0.0f ? g[off + j] : 0.0f;
    }
  }
}

/// Backward data with folded channels (impl/bwd_d_col2im.hpp): the weights of the 1x1 convolution
/// from K to F = R*S*C channels, [Fb][Kb][16 k][16 f] with f = (r*S + s)*C + c, from the IOhw16o16i
/// weights [Cb][Kb][R][S][16 k][16 c]; slots f >= F are zero.
inline void fold_weights_bwd_d(const ConvDesc& d, const float* wei_bwd_d, float* folded) {
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
inline void col2im_row(const ConvDesc& d, const float* col, float* dsrc, int64_t n, int64_t h) {
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
  for (int64_t kb = 0; kb < p.g.Kb; ++kb)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t r = 0; r < d.R; ++r)
        for (int64_t s = 0; s < d.S; ++s) {
          const int64_t f = (r * d.S + s) * d.C + c;
          const float* from = folded + kb * p.g.wei_kb + f * kBlock;
          float* to = wei + (((kb * d.Cb() + c / kBlock) * d.R + r) * d.S + s) * kBlock * kBlock + (c % kBlock) * kBlock;
          std::memcpy(to, from, sizeof(float) * kBlock);
        }
}

}  // namespace hwyconv
