// hwyconv/layout/input_transform.hpp - makes the plan's working input (and folded weights) from the
// user's blocked tensors. Plain C++: memory-bound copies; see InputMode in plan/plan.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "hwyconv/plan/plan.hpp"

namespace hwyconv {

/// Work items of the input transform (they may run in parallel): N * Cb for kPhases (one C block of
/// one image each), N * P for kFold (one output row of one image each), 0 for kDirect.
constexpr int64_t input_transform_items(const FwdPlan& p) {
  switch (p.mode) {
    case InputMode::kPhases: return p.desc.N * p.Cb;
    case InputMode::kFold: return p.desc.N * p.P;
    default: return 0;
  }
}

/// Runs item `i` of the input transform: src is nChw16c [N][Cb][H][W][16], work the plan's working
/// input [N][Cr][phases][Hph][Wph][16]. Every float of the item's part of `work` is written.
inline void transform_input(const FwdPlan& p, const float* src, float* work, int64_t i) {
  const ConvDesc& d = p.desc;
  constexpr size_t kPix = sizeof(float) * kBlock;
  if (p.mode == InputMode::kPhases) {
    const int64_t n = i / p.Cb, cb = i % p.Cb;
    const float* s = src + (n * p.Cb + cb) * d.H * d.W * kBlock;
    float* w = work + n * p.in_n + cb * p.in_cb;
    for (int64_t ph = 0; ph < p.phases; ++ph) {
      for (int64_t y = 0; y < p.Hph; ++y) {
        float* row = w + (ph * p.Hph + y) * p.Wph * kBlock;
        const int64_t sy = y * d.stride_h + p.phase_a[ph] - d.pad_t;
        if (sy < 0 || sy >= d.H) {
          std::memset(row, 0, size_t(p.Wph) * kPix);
          continue;
        }
        const float* srow = s + sy * d.W * kBlock;
        for (int64_t x = 0; x < p.Wph; ++x) {
          const int64_t sx = x * d.stride_w + p.phase_b[ph] - d.pad_l;
          if (sx < 0 || sx >= d.W)
            std::memset(row + x * kBlock, 0, kPix);
          else
            std::memcpy(row + x * kBlock, srow + sx * kBlock, kPix);
        }
      }
    }
  } else if (p.mode == InputMode::kFold) {
    // Folded channel f = (r*S + s)*C + c of output pixel (y, q) is src pixel
    // (y*stride_h + r*dil_h - pad_t, q*stride_w + s*dil_w - pad_l), channel c.
    const int64_t n = i / p.P, y = i % p.P;
    const int64_t plane = p.Hph * p.Wph * kBlock;
    float* w = work + n * p.in_n + y * p.in_row;
    for (int64_t cb = 0; cb < p.Cr; ++cb) std::memset(w + cb * plane, 0, size_t(p.Wph) * kPix);
    for (int64_t r = 0; r < d.R; ++r) {
      const int64_t sy = y * d.stride_h + r * d.dil_h - d.pad_t;
      if (sy < 0 || sy >= d.H) continue;
      for (int64_t c = 0; c < d.C; ++c) {
        const float* srow = src + ((n * p.Cb + c / kBlock) * d.H + sy) * d.W * kBlock + c % kBlock;
        for (int64_t s = 0; s < d.S; ++s) {
          const int64_t f = (r * d.S + s) * d.C + c;
          float* dcol = w + (f / kBlock) * plane + f % kBlock;
          const int64_t x0 = s * d.dil_w - d.pad_l;
          for (int64_t q = 0; q < p.Q; ++q) {
            const int64_t sx = q * d.stride_w + x0;
            if (sx >= 0 && sx < d.W) dcol[q * kBlock] = srow[sx * kBlock];
          }
        }
      }
    }
  }
}

/// Folds OIhw16i16o weights [Kb][Cb][R][S][16 i][16 o] into [Kb][Cr][1][1][16 i][16 o] with input
/// channel f = (r*S + s)*C + c (kFold only); padded slots are zero.
inline void fold_weights(const FwdPlan& p, const float* wei, float* folded) {
  const ConvDesc& d = p.desc;
  std::fill(folded, folded + p.scratch_wei, 0.0f);
  for (int64_t kb = 0; kb < p.Kb; ++kb)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t r = 0; r < d.R; ++r)
        for (int64_t s = 0; s < d.S; ++s) {
          const int64_t f = (r * d.S + s) * d.C + c;
          const float* from =
              wei + (((kb * p.Cb + c / kBlock) * d.R + r) * d.S + s) * kBlock * kBlock + (c % kBlock) * kBlock;
          float* to = folded + (kb * p.Cr + f / kBlock) * kBlock * kBlock + (f % kBlock) * kBlock;
          std::memcpy(to, from, sizeof(float) * kBlock);
        }
}

}  // namespace hwyconv
