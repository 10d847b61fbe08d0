// hwyconv/layout/input_transform.hpp - makes the plan's working input (and folded weights) from the
// user's blocked tensors. Plain C++: memory-bound copies; see InputMode in plan/plan.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "hwyconv/plan/fwd_plan.hpp"

namespace hwyconv {

/// Stages of the input transform (each a parallel loop over its items, in order): 1 for kPhases, 2
/// for kFold (a dense copy, then the folding; only the dense copy with fold_in_place), 0 for kDirect.
constexpr int input_transform_stages(const FwdPlan& p) {
  return p.in.mode == InputMode::kPhases ? 1 : (p.in.mode == InputMode::kFold ? (p.in.fold_in_place ? 1 : 2) : 0);
}

/// Work items of a stage: kPhases: N * Cb (one C block of one image each); kFold stage 0: N * dense_h
/// (one row of the dense copy), stage 1: N * P (one output row of one image).
constexpr int64_t input_transform_items(const FwdPlan& p, int stage) {
  if (p.in.mode == InputMode::kPhases) return p.desc.N * p.desc.Cb();
  if (p.in.mode == InputMode::kFold) return p.desc.N * (stage == 0 ? p.in.dense_h : p.g.P);
  return 0;
}

/// Items of `stage` that belong to image n: [first, last). Items are image-major in every stage.
constexpr std::pair<int64_t, int64_t> input_transform_image_items(const FwdPlan& p, int stage, int64_t n) {
  const int64_t per = input_transform_items(p, stage) / p.desc.N;
  return {n * per, (n + 1) * per};
}

/// Floats a kFold copy chunk may read past a run of the dense copy (which ends with that much
/// slack, FwdPlan::scratch_in) and write past it in the pixel buffer.
inline constexpr int64_t kFoldSlack = 8;

/// kFold, first step: row y of the dense copy of image n, dense[y][x][c] = src pixel
/// (y - pad_t, x - pad_l), channel c, or 0 (dense_w x C floats at `dense`, the image's copy; src
/// nChw16c, or nhwc with FwdPlan::src_nhwc): the C channels of a pixel next to each other, so that
/// the S*C folded channels of one filter row are one contiguous run.
inline void fold_dense_row(const FwdPlan& p, const float* src, float* dense, int64_t n, int64_t y) {
  const ConvDesc& d = p.desc;
  const int64_t C = d.C, Dw = p.in.dense_w, sy = y - d.pad_t;
  float* row = dense + y * Dw * C;
  std::fill(row, row + Dw * C, 0.0f);
  if (sy < 0 || sy >= d.H) return;
  const int64_t xs = Dw - d.pad_l < d.W ? Dw - d.pad_l : d.W;  // src columns the copy holds
  if (p.in.src_nhwc) {  // the row is already x-major with C channels per pixel: one run
    if (xs > 0) std::copy_n(src + (n * d.H + sy) * d.W * C, xs * C, row + d.pad_l * C);
    return;
  }
  for (int64_t cb = 0; cb < d.Cb(); ++cb) {
    const int64_t cn = C - cb * kBlock < kBlock ? C - cb * kBlock : kBlock;
    const float* srow = src + ((n * d.Cb() + cb) * d.H + sy) * d.W * kBlock;
    float* to = row + d.pad_l * C + cb * kBlock;
    for (int64_t x = 0; x < xs; ++x)
      for (int64_t c = 0; c < cn; ++c) to[x * C + c] = srow[x * kBlock + c];
  }
}

/// kFold, second step: output row y of one image from its dense copy, into `out` (the row's Cr
/// blocks of Q pixels, in_cb apart): folded channel f = (r*S + s)*C + c of pixel (y, q) is dense
/// (y*stride_h + r*dil_h, q*stride_w + s*dil_w), channel c; channels past R*S*C are zero.
inline void fold_output_row(const FwdPlan& p, const float* dense, float* out, int64_t y) {
  const ConvDesc& d = p.desc;
  const int64_t C = d.C, Dw = p.in.dense_w, folded = p.g.Cr * kBlock, run = d.S * C;
  // Pixels are gathered kFoldBatch at a time into `pixels`, then written out block by block: the
  // reads of a pixel's blocks come long after its (unaligned, overlapping) stores, which a read
  // right behind them would wait on (store forwarding fails across differently sized stores).
  constexpr int64_t kFoldBatch = 8;
  float pixels[kFoldBatch][kMaxTaps * kBlock + kFoldSlack];
  for (int64_t q0 = 0; q0 < p.g.Q; q0 += kFoldBatch) {
    const int64_t nq = p.g.Q - q0 < kFoldBatch ? p.g.Q - q0 : kFoldBatch;
    for (int64_t i = 0; i < nq; ++i) {
      float* pixel = pixels[i];
      const int64_t q = q0 + i;
      // Runs of S*C floats in chunks of kFoldSlack (fixed-size copies the compiler inlines; a
      // library call per short run cost more than the copy). A chunk may run past its run: the
      // next filter row's run overwrites it, and the tail after the last run is cleared below.
      for (int64_t r = 0; r < d.R; ++r) {
        const float* from = dense + ((y * d.stride_h + r * d.dil_h) * Dw + q * d.stride_w) * C;
        float* to = pixel + r * run;
        if (d.dil_w == 1) {
          for (int64_t j = 0; j < run; j += kFoldSlack) std::memcpy(to + j, from + j, sizeof(float) * kFoldSlack);
        } else {
          for (int64_t s = 0; s < d.S; ++s)
            for (int64_t c = 0; c < C; ++c) to[s * C + c] = from[s * d.dil_w * C + c];
        }
      }
      std::fill(pixel + d.R * run, pixel + folded, 0.0f);
    }
    for (int64_t cb = 0; cb < p.g.Cr; ++cb)
      for (int64_t i = 0; i < nq; ++i)
        std::memcpy(out + cb * p.g.in_cb + (q0 + i) * kBlock, pixels[i] + cb * kBlock, sizeof(float) * kBlock);
  }
}

/// kPhases: row y of phase ph (Wph pixels x 16 channels at `row`) from C block `block` of one image
/// of src ([H][W][16]): zero where the padding is.
inline void phase_row(const FwdPlan& p, const float* block, float* row, int64_t ph, int64_t y) {
  const ConvDesc& d = p.desc;
  constexpr size_t kPix = sizeof(float) * kBlock;
  const int64_t sy = y * d.stride_h + p.in.phase_a[ph] - d.pad_t;
  if (sy < 0 || sy >= d.H) {
    std::memset(row, 0, size_t(p.in.Wph) * kPix);
    return;
  }
  const float* srow = block + sy * d.W * kBlock;
  // Stride 1: one run of source pixels between the zeros of the left and right padding (one copy per
  // row instead of one per pixel; 3x3 layers at N = 16, interleaved A/B: 1-3 % faster forward).
  // (At stride 1 every phase starts at column 0: phase_b is 0.)
  if (d.stride_w == 1) {
    const int64_t x0 = std::min(d.pad_l, p.in.Wph), x1 = std::clamp<int64_t>(d.W + d.pad_l, x0, p.in.Wph);
    std::memset(row, 0, size_t(x0) * kPix);
    std::memcpy(row + x0 * kBlock, srow + (x0 - d.pad_l) * kBlock, size_t(x1 - x0) * kPix);
    std::memset(row + x1 * kBlock, 0, size_t(p.in.Wph - x1) * kPix);
    return;
  }
  for (int64_t x = 0; x < p.in.Wph; ++x) {
    const int64_t sx = x * d.stride_w + p.in.phase_b[ph] - d.pad_l;
    if (sx < 0 || sx >= d.W)
      std::memset(row + x * kBlock, 0, kPix);
    else
      std::memcpy(row + x * kBlock, srow + sx * kBlock, kPix);
  }
}

/// kPhases: the phase images of C block cb of image n, into `image` (that image's working input,
/// [Cr][phases][Hph][Wph][16]).
inline void phase_copy(const FwdPlan& p, const float* src, float* image, int64_t n, int64_t cb) {
  const float* block = src + (n * p.desc.Cb() + cb) * p.desc.H * p.desc.W * kBlock;
  for (int64_t ph = 0; ph < p.in.phases; ++ph)
    for (int64_t y = 0; y < p.in.Hph; ++y)
      phase_row(p, block, image + cb * p.g.in_cb + (ph * p.in.Hph + y) * p.in.Wph * kBlock, ph, y);
}

/// kFold: the whole dense copy of image n (fold_dense_row for every row) into `dense`.
inline void fold_dense_image(const FwdPlan& p, const float* src, float* dense, int64_t n) {
  for (int64_t y = 0; y < p.in.dense_h; ++y) fold_dense_row(p, src, dense, n, y);
}

/// kPhases: every C block's phase images of image n into `image` (one image's working input).
inline void phase_copy_image(const FwdPlan& p, const float* src, float* image, int64_t n) {
  for (int64_t cb = 0; cb < p.desc.Cb(); ++cb) phase_copy(p, src, image, n, cb);
}

/// Runs item `i` of `stage`: src is nChw16c [N][Cb][H][W][16], work the plan's working input
/// [N][Cr][phases][Hph][Wph][16] (kFold: [N][P][Cr][Q][16], followed by the dense copies
/// [N][dense_h][dense_w][C]; fold_in_place: the dense copies only). Not for a plan with ring_rows
/// (see run_forward).
/// Every float of the item's part of `work` is written.
inline void transform_input(const FwdPlan& p, const float* src, float* work, int stage, int64_t i) {
  const ConvDesc& d = p.desc;
  if (p.in.mode == InputMode::kPhases) {
    phase_copy(p, src, work + i / d.Cb() * p.g.in_n, i / d.Cb(), i % d.Cb());
    return;
  }
  if (p.in.mode != InputMode::kFold) return;
  // The dense copies follow the folded rows, or are the working input itself (fold_in_place).
  const int64_t image = p.in.fold_in_place ? p.g.in_n : p.in.dense_h * p.in.dense_w * d.C;
  float* dense = p.in.fold_in_place ? work : work + d.N * p.g.in_n;
  if (stage == 0) {
    fold_dense_row(p, src, dense + i / p.in.dense_h * image, i / p.in.dense_h, i % p.in.dense_h);
  } else {
    const int64_t n = i / p.g.P, y = i % p.g.P;
    fold_output_row(p, dense + n * image, work + n * p.g.in_n + y * p.g.in_row, y);
  }
}

/// Folds OIhw16i16o weights [Kb][Cb][R][S][16 i][16 o] into [Kb][wei_kb / 16][16 o] with input
/// channel f = (r*S + s)*C + c (kFold only: Cr blocks of 16 x 16, or with fold_in_place R*S*C rows
/// read R runs of S*C); padded slots are zero.
inline void fold_weights(const FwdPlan& p, const float* wei, float* folded) {
  const ConvDesc& d = p.desc;
  std::fill(folded, folded + p.scratch_wei, 0.0f);
  for (int64_t kb = 0; kb < p.g.Kb; ++kb)
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t r = 0; r < d.R; ++r)
        for (int64_t s = 0; s < d.S; ++s) {
          const int64_t f = (r * d.S + s) * d.C + c;
          const float* from =
              wei + (((kb * d.Cb() + c / kBlock) * d.R + r) * d.S + s) * kBlock * kBlock + (c % kBlock) * kBlock;
          float* to = folded + kb * p.g.wei_kb + f * kBlock;
          std::memcpy(to, from, sizeof(float) * kBlock);
        }
}

}  // namespace hwyconv
