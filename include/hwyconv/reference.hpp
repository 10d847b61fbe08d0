// hwyconv/reference.hpp - plain reference loops: the definition of the math every kernel is tested
// against. Plain (unblocked) layouts, float inputs, double accumulation and double outputs. Slow on
// purpose: written straight from the formula, no tiling, no SIMD.
//
//   dst[n][k][p][q] = bias[k] + sum_{c,r,s} src[n][g*C/G + c][h][w] * wei[k][c][r][s],
//   h = p*stride_h + r*dil_h - pad_t,  w = q*stride_w + s*dil_w - pad_l,  out-of-range src = 0,
//   c over the C/G channels of k's group g = k / (K/G) (G = groups; 1: every channel).
// Weights are plain [K][C/G][R][S] (PyTorch's layout, oneDNN's goihw).
//
// bwd_d and bwd_w are the adjoints of that map with respect to src and wei (and bias).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "hwyconv/desc.hpp"
#include "hwyconv/detail/checks.hpp"

namespace hwyconv::reference {

namespace detail {

/// Throws Error(field) when the span holds fewer than `needed` elements (plain layouts).
template <class T>
inline void check_size(const char* field, std::span<T> s, int64_t needed) {
  hwyconv::detail::check_span(field, s.size(), needed, "plain");
}

}  // namespace detail

/// Forward convolution (cross-correlation, as in every framework).
/// src_nchw: N*C*H*W, plain [N][C][H][W]; wei_oihw: K*(C/G)*R*S, plain [K][C/G][R][S]; bias: empty for
/// none, else at least K (first K used); dst_nkpq: N*K*P*Q, plain [N][K][P][Q], overwritten.
/// Spans may be larger than needed; extra elements are ignored / untouched.
/// Throws Error naming the bad field (d.validate()), or "src"/"weights"/"bias"/"dst" for a span that
/// is too small, before writing anything.
inline void conv_fwd(const ConvDesc& d, std::span<const float> src_nchw,
                     std::span<const float> wei_oihw, std::span<const float> bias,
                     std::span<double> dst_nkpq) {
  d.validate();
  const int64_t N = d.N, C = d.C, K = d.K, H = d.H, W = d.W, R = d.R, S = d.S, P = d.P(), Q = d.Q();
  detail::check_size("src", src_nchw, N * C * H * W);
  const int64_t Cg = C / d.groups, Kg = K / d.groups;
  detail::check_size("weights", wei_oihw, K * Cg * R * S);
  if (!bias.empty()) detail::check_size("bias", bias, K);
  detail::check_size("dst", dst_nkpq, N * K * P * Q);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          double acc = bias.empty() ? 0.0 : double(bias[size_t(k)]);
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < R; ++r) {
              const int64_t h = p * d.stride_h + r * d.dil_h - d.pad_t;
              if (h < 0 || h >= H) continue;
              for (int64_t s = 0; s < S; ++s) {
                const int64_t w = q * d.stride_w + s * d.dil_w - d.pad_l;
                if (w < 0 || w >= W) continue;
                acc += double(src_nchw[size_t(((n * C + k / Kg * Cg + c) * H + h) * W + w)]) *
                       double(wei_oihw[size_t(((k * Cg + c) * R + r) * S + s)]);
              }
            }
          dst_nkpq[size_t(((n * K + k) * P + p) * Q + q)] = acc;
        }
}

/// Backward data: the gradient of conv_fwd with respect to src,
///   dsrc[n][c][h][w] = sum over (k of c's group, r, s, p, q) with h = p*stride_h + r*dil_h - pad_t
///                      and w = q*stride_w + s*dil_w - pad_l of ddst[n][k][p][q] * wei[k][c % (C/G)][r][s].
/// ddst_nkpq: N*K*P*Q, plain; wei_oihw: K*(C/G)*R*S, plain; dsrc_nchw: N*C*H*W, plain, overwritten
/// (input pixels that no output sees get 0). Spans may be larger than needed.
/// Throws Error naming the bad field (d.validate()), or "ddst"/"weights"/"dsrc" for a span that is
/// too small, before writing anything.
inline void conv_bwd_d(const ConvDesc& d, std::span<const float> ddst_nkpq,
                       std::span<const float> wei_oihw, std::span<double> dsrc_nchw) {
  d.validate();
  const int64_t N = d.N, C = d.C, K = d.K, H = d.H, W = d.W, R = d.R, S = d.S, P = d.P(), Q = d.Q();
  const int64_t Cg = C / d.groups, Kg = K / d.groups;
  detail::check_size("ddst", ddst_nkpq, N * K * P * Q);
  detail::check_size("weights", wei_oihw, K * Cg * R * S);
  detail::check_size("dsrc", dsrc_nchw, N * C * H * W);
  for (int64_t i = 0; i < N * C * H * W; ++i) dsrc_nchw[size_t(i)] = 0.0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          const double g = ddst_nkpq[size_t(((n * K + k) * P + p) * Q + q)];
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < R; ++r) {
              const int64_t h = p * d.stride_h + r * d.dil_h - d.pad_t;
              if (h < 0 || h >= H) continue;
              for (int64_t s = 0; s < S; ++s) {
                const int64_t w = q * d.stride_w + s * d.dil_w - d.pad_l;
                if (w < 0 || w >= W) continue;
                dsrc_nchw[size_t(((n * C + k / Kg * Cg + c) * H + h) * W + w)] +=
                    g * double(wei_oihw[size_t(((k * Cg + c) * R + r) * S + s)]);
              }
            }
        }
}

/// Backward weights: the gradient of conv_fwd with respect to the weights and the bias,
///   dwei[k][c][r][s] = sum_{n,p,q} src[n][g*C/G + c][p*stride_h + r*dil_h - pad_t][q*stride_w + s*dil_w - pad_l]
///                                  * ddst[n][k][p][q]   (out-of-range src = 0, g = k / (K/G)),
///   dbias[k]         = sum_{n,p,q} ddst[n][k][p][q].
/// src_nchw: N*C*H*W, plain; ddst_nkpq: N*K*P*Q, plain; dwei_oihw: K*(C/G)*R*S, plain, overwritten;
/// dbias: empty to skip, else at least K (first K overwritten). Spans may be larger than needed.
/// Throws Error naming the bad field (d.validate()), or "src"/"ddst"/"dweights"/"dbias" for a span
/// that is too small, before writing anything.
inline void conv_bwd_w(const ConvDesc& d, std::span<const float> src_nchw,
                       std::span<const float> ddst_nkpq, std::span<double> dwei_oihw,
                       std::span<double> dbias) {
  d.validate();
  const int64_t N = d.N, C = d.C, K = d.K, H = d.H, W = d.W, R = d.R, S = d.S, P = d.P(), Q = d.Q();
  const int64_t Cg = C / d.groups, Kg = K / d.groups;
  detail::check_size("src", src_nchw, N * C * H * W);
  detail::check_size("ddst", ddst_nkpq, N * K * P * Q);
  detail::check_size("dweights", dwei_oihw, K * Cg * R * S);
  if (!dbias.empty()) detail::check_size("dbias", dbias, K);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s) {
          double acc = 0.0;
          for (int64_t n = 0; n < N; ++n)
            for (int64_t p = 0; p < P; ++p) {
              const int64_t h = p * d.stride_h + r * d.dil_h - d.pad_t;
              if (h < 0 || h >= H) continue;
              for (int64_t q = 0; q < Q; ++q) {
                const int64_t w = q * d.stride_w + s * d.dil_w - d.pad_l;
                if (w < 0 || w >= W) continue;
                acc += double(src_nchw[size_t(((n * C + k / Kg * Cg + c) * H + h) * W + w)]) *
                       double(ddst_nkpq[size_t(((n * K + k) * P + p) * Q + q)]);
              }
            }
          dwei_oihw[size_t(((k * Cg + c) * R + r) * S + s)] = acc;
        }
  if (!dbias.empty())
    for (int64_t k = 0; k < K; ++k) {
      double acc = 0.0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t pq = 0; pq < P * Q; ++pq) acc += double(ddst_nkpq[size_t((n * K + k) * P * Q + pq)]);
      dbias[size_t(k)] = acc;
    }
}

}  // namespace hwyconv::reference
