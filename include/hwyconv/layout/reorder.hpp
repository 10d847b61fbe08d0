// hwyconv/layout/reorder.hpp - blocked layouts and the reorders between them and plain layouts.
//
// Activations are blocked as nChw16c: [N][div_up(C,16)][H][W][16 c]. Weights are blocked as
// OIhw16i16o (oneDNN's spelling): [div_up(K,16)][div_up(C,16)][R][S][16 i][16 o], i.e. element
// (k, c, r, s) lives at ((((k/16)*Cb + c/16)*R + r)*S + s)*256 + (c%16)*16 + (k%16), Cb = div_up(C,16).
// Channel slots past C (or K) are padding; the to-blocked reorders write them as exact zeros.
//
// Plain C++ (no SIMD): these run once per tensor, outside the hot loops. Every reorder validates its
// dimensions and span sizes and throws hwyconv::Error before writing anything.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "hwyconv/desc.hpp"
#include "hwyconv/detail/checks.hpp"

namespace hwyconv {

/// Elements of an nChw16c activation tensor: N * div_up(C,16) * H * W * 16 (channels padded to 16).
/// No overflow check (constexpr helper for sizing buffers of valid shapes; the reorders check).
constexpr int64_t act_blocked_size(int64_t N, int64_t C, int64_t H, int64_t W) {
  return N * div_up(C, kBlock) * H * W * kBlock;
}

/// Elements of an OIhw16i16o weight tensor: div_up(K,16) * div_up(C,16) * R * S * 256.
/// No overflow check (constexpr helper for sizing buffers of valid shapes; the reorders check).
constexpr int64_t wei_blocked_size(int64_t K, int64_t C, int64_t R, int64_t S) {
  return div_up(K, kBlock) * div_up(C, kBlock) * R * S * kBlock * kBlock;
}

/// Elements of a gOIhw16i16o weight tensor of a layer of G groups (wei_block_groups(G,C,K) = Gw
/// blocked groups): Gw * div_up(K/Gw,16) * div_up(C/Gw,16) * R * S * 256; wei_blocked_size for G = 1.
/// No overflow check (constexpr helper for sizing buffers of valid shapes; the reorders check).
constexpr int64_t wei_grouped_size(int64_t G, int64_t K, int64_t C, int64_t R, int64_t S) {
  const int64_t Gw = wei_block_groups(G, C, K);
  return Gw * wei_blocked_size(K / Gw, C / Gw, R, S);
}

/// Elements of a Goihw16g depthwise weight tensor: div_up(G,16) * R * S * 16.
/// No overflow check (constexpr helper for sizing buffers of valid shapes; the reorders check).
constexpr int64_t wei_depthwise_size(int64_t G, int64_t R, int64_t S) { return div_up(G, kBlock) * R * S * kBlock; }

namespace layout_detail {

/// Number of 16-blocks of a positive count, without the overflow of (c + 15).
constexpr int64_t blocks_of(int64_t c) { return (c - 1) / kBlock + 1; }

/// Shared validation of the activation reorders (dimensions >= 1, element counts without overflow,
/// span sizes, no overlap).
inline void check_act(std::span<const float> src, std::span<float> dst, int64_t N, int64_t C, int64_t H,
                      int64_t W, bool to_blocked) {
  detail::check_dims({{"N", N}, {"C", C}, {"H", H}, {"W", W}});
  const int64_t plain = detail::checked_product(to_blocked ? "src" : "dst", {N, C, H, W});
  const int64_t blocked = detail::checked_product(to_blocked ? "dst" : "src", {N, blocks_of(C), H, W, kBlock});
  detail::check_span("src", src.size(), to_blocked ? plain : blocked, to_blocked ? "plain" : "nChw16c");
  detail::check_span("dst", dst.size(), to_blocked ? blocked : plain, to_blocked ? "nChw16c" : "plain");
  detail::check_disjoint("dst", dst, {{"src (reorders are out of place)", src}});
}

/// Shared validation of the weight reorders (blocked: OIhw16i16o or IOhw16o16i, the same size).
inline void check_wei(std::span<const float> src, std::span<float> dst, int64_t K, int64_t C, int64_t R,
                      int64_t S, const char* src_layout, const char* dst_layout, const char* src_name = "src",
                      const char* dst_name = "dst") {
  detail::check_dims({{"K", K}, {"C", C}, {"R", R}, {"S", S}});
  // An overflowing count is named after the buffer of that layout.
  const bool plain_src = std::string(src_layout) == "oihw";
  const int64_t plain = detail::checked_product(plain_src ? src_name : dst_name, {K, C, R, S});
  const int64_t blocked =
      detail::checked_product(plain_src ? dst_name : src_name, {blocks_of(K), blocks_of(C), R, S, kBlock * kBlock});
  auto need = [&](const char* layout) { return std::string(layout) == "oihw" ? plain : blocked; };
  detail::check_span(src_name, src.size(), need(src_layout), src_layout);
  detail::check_span(dst_name, dst.size(), need(dst_layout), dst_layout);
  detail::check_disjoint(dst_name, dst, {{src_name, src}});
}

}  // namespace layout_detail

/// nchw -> nChw16c. src: N*C*H*W floats, plain [N][C][H][W]; dst: at least act_blocked_size(N,C,H,W)
/// floats, [N][div_up(C,16)][H][W][16c]. Padded channel slots (c >= C) are written as 0; elements
/// of dst past act_blocked_size are not touched. src and dst must not overlap.
/// Throws Error("N"/"C"/"H"/"W") for a dimension < 1, Error("src"/"dst") for a span that is too small,
/// an element count that overflows int64_t, or overlapping spans; nothing is written then.
inline void reorder_nchw_to_nChw16c(std::span<const float> src, std::span<float> dst, int64_t N,
                                    int64_t C, int64_t H, int64_t W) {
  layout_detail::check_act(src, dst, N, C, H, W, true);
  const int64_t Cb = layout_detail::blocks_of(C), HW = H * W;
  float* out = dst.data();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t cb = 0; cb < Cb; ++cb) {
      const int64_t c0 = cb * kBlock;
      const int64_t nc = (C - c0 < kBlock) ? C - c0 : kBlock;
      const float* in = src.data() + (n * C + c0) * HW;
      for (int64_t hw = 0; hw < HW; ++hw, out += kBlock) {
        for (int64_t c = 0; c < nc; ++c) out[c] = in[c * HW + hw];
        for (int64_t c = nc; c < kBlock; ++c) out[c] = 0.0f;
      }
    }
}

/// nChw16c -> nchw. src: at least act_blocked_size(N,C,H,W) floats, [N][div_up(C,16)][H][W][16c];
/// dst: N*C*H*W floats, plain [N][C][H][W]. Padded channel slots of src are ignored. src and dst
/// must not overlap.
/// Throws Error("N"/"C"/"H"/"W") for a dimension < 1, Error("src"/"dst") for a span that is too small,
/// an element count that overflows int64_t, or overlapping spans; nothing is written then.
inline void reorder_nChw16c_to_nchw(std::span<const float> src, std::span<float> dst, int64_t N,
                                    int64_t C, int64_t H, int64_t W) {
  layout_detail::check_act(src, dst, N, C, H, W, false);
  const int64_t Cb = layout_detail::blocks_of(C), HW = H * W;
  const float* in = src.data();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t cb = 0; cb < Cb; ++cb) {
      const int64_t c0 = cb * kBlock;
      const int64_t nc = (C - c0 < kBlock) ? C - c0 : kBlock;
      float* out = dst.data() + (n * C + c0) * HW;
      for (int64_t hw = 0; hw < HW; ++hw, in += kBlock)
        for (int64_t c = 0; c < nc; ++c) out[c * HW + hw] = in[c];
    }
}

/// nhwc -> nChw16c. src: N*H*W*C floats, plain [N][H][W][C]; dst: at least act_blocked_size(N,C,H,W)
/// floats, [N][div_up(C,16)][H][W][16c]. Padded channel slots (c >= C) are written as 0; elements
/// of dst past act_blocked_size are not touched. src and dst must not overlap.
/// Throws Error("N"/"C"/"H"/"W") for a dimension < 1, Error("src"/"dst") for a span that is too small,
/// an element count that overflows int64_t, or overlapping spans; nothing is written then.
inline void reorder_nhwc_to_nChw16c(std::span<const float> src, std::span<float> dst, int64_t N,
                                    int64_t C, int64_t H, int64_t W) {
  layout_detail::check_act(src, dst, N, C, H, W, true);
  const int64_t Cb = layout_detail::blocks_of(C), HW = H * W;
  float* out = dst.data();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t cb = 0; cb < Cb; ++cb) {
      const int64_t c0 = cb * kBlock;
      const int64_t nc = (C - c0 < kBlock) ? C - c0 : kBlock;
      const float* in = src.data() + n * HW * C + c0;
      for (int64_t hw = 0; hw < HW; ++hw, out += kBlock, in += C) {
        for (int64_t c = 0; c < nc; ++c) out[c] = in[c];
        for (int64_t c = nc; c < kBlock; ++c) out[c] = 0.0f;
      }
    }
}

/// nChw16c -> nhwc. src: at least act_blocked_size(N,C,H,W) floats, [N][div_up(C,16)][H][W][16c];
/// dst: N*H*W*C floats, plain [N][H][W][C]. Padded channel slots of src are ignored. src and dst
/// must not overlap.
/// Throws Error("N"/"C"/"H"/"W") for a dimension < 1, Error("src"/"dst") for a span that is too small,
/// an element count that overflows int64_t, or overlapping spans; nothing is written then.
inline void reorder_nChw16c_to_nhwc(std::span<const float> src, std::span<float> dst, int64_t N,
                                    int64_t C, int64_t H, int64_t W) {
  layout_detail::check_act(src, dst, N, C, H, W, false);
  const int64_t Cb = layout_detail::blocks_of(C), HW = H * W;
  const float* in = src.data();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t cb = 0; cb < Cb; ++cb) {
      const int64_t c0 = cb * kBlock;
      const int64_t nc = (C - c0 < kBlock) ? C - c0 : kBlock;
      float* out = dst.data() + n * HW * C + c0;
      for (int64_t hw = 0; hw < HW; ++hw, in += kBlock, out += C)
        for (int64_t c = 0; c < nc; ++c) out[c] = in[c];
    }
}

/// oihw -> OIhw16i16o. src: K*C*R*S floats, plain [K][C][R][S]; dst: at least
/// wei_blocked_size(K,C,R,S) floats, [div_up(K,16)][div_up(C,16)][R][S][16 i][16 o], element
/// (k,c,r,s) at ((((k/16)*Cb + c/16)*R + r)*S + s)*256 + (c%16)*16 + k%16. Every padded slot
/// (k >= K or c >= C) is written as 0; elements past wei_blocked_size are not touched. src and dst
/// must not overlap.
/// Throws Error("K"/"C"/"R"/"S") for a dimension < 1, Error("src"/"dst") for a span that is too small,
/// an element count that overflows int64_t, or overlapping spans; nothing is written then.
inline void reorder_oihw_to_OIhw16i16o(std::span<const float> src, std::span<float> dst, int64_t K,
                                       int64_t C, int64_t R, int64_t S) {
  layout_detail::check_wei(src, dst, K, C, R, S, "oihw", "OIhw16i16o");
  const int64_t Kb = layout_detail::blocks_of(K), Cb = layout_detail::blocks_of(C), RS = R * S;
  float* out = dst.data();
  for (int64_t kb = 0; kb < Kb; ++kb)
    for (int64_t cb = 0; cb < Cb; ++cb)
      for (int64_t rs = 0; rs < RS; ++rs)
        for (int64_t i = 0; i < kBlock; ++i)
          for (int64_t o = 0; o < kBlock; ++o, ++out) {
            const int64_t k = kb * kBlock + o, c = cb * kBlock + i;
            *out = (k < K && c < C) ? src[static_cast<size_t>((k * C + c) * RS + rs)] : 0.0f;
          }
}

/// OIhw16i16o -> oihw. src: at least wei_blocked_size(K,C,R,S) floats, blocked as in
/// reorder_oihw_to_OIhw16i16o; dst: K*C*R*S floats, plain [K][C][R][S]. Padded slots of src are
/// ignored. src and dst must not overlap.
/// Throws Error("K"/"C"/"R"/"S") for a dimension < 1, Error("src"/"dst") for a span that is too small,
/// an element count that overflows int64_t, or overlapping spans; nothing is written then.
inline void reorder_OIhw16i16o_to_oihw(std::span<const float> src, std::span<float> dst, int64_t K,
                                       int64_t C, int64_t R, int64_t S) {
  layout_detail::check_wei(src, dst, K, C, R, S, "OIhw16i16o", "oihw");
  const int64_t Cb = layout_detail::blocks_of(C), RS = R * S;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t rs = 0; rs < RS; ++rs)
        dst[static_cast<size_t>((k * C + c) * RS + rs)] =
            src[static_cast<size_t>((((k / kBlock) * Cb + c / kBlock) * RS + rs) * kBlock * kBlock +
                                    (c % kBlock) * kBlock + k % kBlock)];
}

namespace layout_detail {

/// Shared validation of the grouped weight reorders (goihw <-> gOIhw16i16o and the backward-data
/// transpose): dimensions, G dividing C and K, span sizes, no overlap.
inline void check_wei_grouped(std::span<const float> src, std::span<float> dst, int64_t G, int64_t K, int64_t C,
                              int64_t R, int64_t S, const char* src_layout, const char* dst_layout,
                              const char* src_name = "src", const char* dst_name = "dst") {
  detail::check_dims({{"G", G}, {"K", K}, {"C", C}, {"R", R}, {"S", S}});
  if (C % G != 0) throw Error("G", "must divide C; G = " + std::to_string(G) + ", C = " + std::to_string(C));
  if (K % G != 0) throw Error("G", "must divide K; G = " + std::to_string(G) + ", K = " + std::to_string(K));
  const bool plain_src = std::string(src_layout) == "goihw";
  const int64_t plain = detail::checked_product(plain_src ? src_name : dst_name, {K, C / G, R, S});
  const int64_t Gw = wei_block_groups(G, C, K);
  const int64_t blocked = detail::checked_product(plain_src ? dst_name : src_name,
                                                  {Gw, blocks_of(K / Gw), blocks_of(C / Gw), R, S, kBlock * kBlock});
  auto need = [&](const char* layout) { return std::string(layout) == "goihw" ? plain : blocked; };
  detail::check_span(src_name, src.size(), need(src_layout), src_layout);
  detail::check_span(dst_name, dst.size(), need(dst_layout), dst_layout);
  detail::check_disjoint(dst_name, dst, {{src_name, src}});
}

/// Visits every slot of a gOIhw16i16o tensor of a layer of G groups (wei_block_groups(G, C, K)
/// weight groups) in memory order: f(offset, k, c, t, inside) with the slot's layer-wide output
/// channel k, input channel c and tap t; `inside`: k < K, c < C and both in the same layer group
/// (otherwise the slot is padding or between groups, and holds zero).
template <class F>
constexpr void for_each_grouped_slot(int64_t G, int64_t K, int64_t C, int64_t taps, F&& f) {
  const int64_t Gw = wei_block_groups(G, C, K), Kg = K / G, Cg = C / G, Kw = K / Gw, Cw = C / Gw;
  const int64_t Kb = blocks_of(Kw), Cb = blocks_of(Cw);
  int64_t off = 0;
  for (int64_t b = 0; b < Gw; ++b)
    for (int64_t kb = 0; kb < Kb; ++kb)
      for (int64_t cb = 0; cb < Cb; ++cb)
        for (int64_t t = 0; t < taps; ++t)
          for (int64_t i = 0; i < kBlock; ++i)
            for (int64_t o = 0; o < kBlock; ++o, ++off) {
              const int64_t kl = kb * kBlock + o, cl = cb * kBlock + i, k = b * Kw + kl, c = b * Cw + cl;
              f(off, k, c, t, kl < Kw && cl < Cw && k / Kg == c / Cg);
            }
}

}  // namespace layout_detail

/// Grouped weights, goihw -> gOIhw16i16o (oneDNN's spelling). A layer of G groups (G divides C and K)
/// has plain weights [K][C/G][R][S] (PyTorch's layout): output channel k of group g = k / (K/G) reads
/// input channels g*C/G + c, c < C/G. Blocked: Gw = wei_block_groups(G,C,K) groups, each an
/// OIhw16i16o tensor of its K/Gw outputs and C/Gw inputs ([Gw][div_up(K/Gw,16)][div_up(C/Gw,16)][R][S]
/// [16 i][16 o]); the weights between channels of different layer groups, and padded slots, are
/// written as 0. G = 1 is reorder_oihw_to_OIhw16i16o. src and dst must not overlap.
/// Throws Error("G"/"K"/"C"/"R"/"S") for a dimension < 1 or G not dividing C or K, Error("src"/"dst")
/// for a span that is too small (dst: wei_grouped_size floats), an element count that overflows
/// int64_t, or overlapping spans; nothing is written then.
inline void reorder_goihw_to_gOIhw16i16o(std::span<const float> src, std::span<float> dst, int64_t G, int64_t K,
                                         int64_t C, int64_t R, int64_t S) {
  layout_detail::check_wei_grouped(src, dst, G, K, C, R, S, "goihw", "gOIhw16i16o");
  const int64_t Cg = C / G, RS = R * S;
  layout_detail::for_each_grouped_slot(G, K, C, RS, [&](int64_t off, int64_t k, int64_t c, int64_t t, bool inside) {
    dst[size_t(off)] = inside ? src[size_t((k * Cg + c % Cg) * RS + t)] : 0.0f;
  });
}

/// gOIhw16i16o -> goihw (see reorder_goihw_to_gOIhw16i16o); the weights between groups and padded
/// slots of src are ignored. Throws as reorder_goihw_to_gOIhw16i16o; nothing is written then.
inline void reorder_gOIhw16i16o_to_goihw(std::span<const float> src, std::span<float> dst, int64_t G, int64_t K,
                                         int64_t C, int64_t R, int64_t S) {
  layout_detail::check_wei_grouped(src, dst, G, K, C, R, S, "gOIhw16i16o", "goihw");
  const int64_t Cg = C / G, RS = R * S;
  layout_detail::for_each_grouped_slot(G, K, C, RS, [&](int64_t off, int64_t k, int64_t c, int64_t t, bool inside) {
    if (inside) dst[size_t((k * Cg + c % Cg) * RS + t)] = src[size_t(off)];
  });
}

/// Weights for backward data: gOIhw16i16o [Gw][Kb][Cb][R][S][16 c][16 k] -> gIOhw16o16i
/// [Gw][Cb][Kb][R][S][16 k][16 c] (per blocked group: each 16 x 16 block transposed, K and C blocks
/// swapped; taps are not flipped: the backward-data plans index taps explicitly). G = 1 (the default)
/// is OIhw16i16o -> IOhw16o16i. Do it once per training step, when the weights change.
/// Throws Error("G"/"K"/"C"/"R"/"S") for a dimension < 1 or G not dividing C or K,
/// Error("weights"/"wei_bwd_d") for a span that is too small, an element count that overflows
/// int64_t, or overlapping spans; nothing is written then.
inline void reorder_weights_bwd_d(std::span<const float> wei, std::span<float> wei_bwd_d, int64_t K, int64_t C,
                                  int64_t R, int64_t S, int64_t G = 1) {
  if (G == 1)
    layout_detail::check_wei(wei, wei_bwd_d, K, C, R, S, "OIhw16i16o", "IOhw16o16i", "weights", "wei_bwd_d");
  else
    layout_detail::check_wei_grouped(wei, wei_bwd_d, G, K, C, R, S, "gOIhw16i16o", "gIOhw16o16i", "weights",
                                     "wei_bwd_d");
  const int64_t Gw = wei_block_groups(G, C, K);
  const int64_t Kb = div_up(K / Gw, kBlock), Cb = div_up(C / Gw, kBlock), taps = R * S;
  const int64_t group = Kb * Cb * taps * kBlock * kBlock;
  for (int64_t b = 0; b < Gw; ++b)
    for (int64_t kb = 0; kb < Kb; ++kb)
      for (int64_t cb = 0; cb < Cb; ++cb)
        for (int64_t t = 0; t < taps; ++t) {
          const float* from = wei.data() + b * group + ((kb * Cb + cb) * taps + t) * kBlock * kBlock;
          float* to = wei_bwd_d.data() + b * group + ((cb * Kb + kb) * taps + t) * kBlock * kBlock;
          for (int64_t i = 0; i < kBlock; ++i)
            for (int64_t o = 0; o < kBlock; ++o) to[o * kBlock + i] = from[i * kBlock + o];
        }
}

namespace layout_detail {

/// Shared validation of the depthwise weight reorders (Goihw16g and goihw).
inline void check_wei_depthwise(std::span<const float> src, std::span<float> dst, int64_t G, int64_t R, int64_t S,
                                bool to_blocked) {
  detail::check_dims({{"G", G}, {"R", R}, {"S", S}});
  const int64_t plain = detail::checked_product(to_blocked ? "src" : "dst", {G, R, S});
  const int64_t blocked = detail::checked_product(to_blocked ? "dst" : "src", {blocks_of(G), R, S, kBlock});
  detail::check_span("src", src.size(), to_blocked ? plain : blocked, to_blocked ? "goihw" : "Goihw16g");
  detail::check_span("dst", dst.size(), to_blocked ? blocked : plain, to_blocked ? "Goihw16g" : "goihw");
  detail::check_disjoint("dst", dst, {{"src (reorders are out of place)", src}});
}

}  // namespace layout_detail

/// Depthwise weights (groups G == C == K), goihw -> Goihw16g (oneDNN's spelling). src: G*R*S floats,
/// plain [G][1][1][R][S] (PyTorch's [C][1][R][S]); dst: at least wei_depthwise_size(G,R,S) floats,
/// [div_up(G,16)][R][S][16 g]: element (g, r, s) at (((g/16)*R + r)*S + s)*16 + g%16. Padded slots
/// (g >= G) are written as 0. src and dst must not overlap.
/// Throws Error("G"/"R"/"S") for a dimension < 1, Error("src"/"dst") for a span that is too small,
/// an element count that overflows int64_t, or overlapping spans; nothing is written then.
inline void reorder_goihw_to_Goihw16g(std::span<const float> src, std::span<float> dst, int64_t G, int64_t R,
                                      int64_t S) {
  layout_detail::check_wei_depthwise(src, dst, G, R, S, true);
  const int64_t Gb = layout_detail::blocks_of(G), RS = R * S;
  float* out = dst.data();
  for (int64_t gb = 0; gb < Gb; ++gb)
    for (int64_t rs = 0; rs < RS; ++rs)
      for (int64_t i = 0; i < kBlock; ++i, ++out) {
        const int64_t g = gb * kBlock + i;
        *out = g < G ? src[static_cast<size_t>(g * RS + rs)] : 0.0f;
      }
}

/// Goihw16g -> goihw (see reorder_goihw_to_Goihw16g). Padded slots of src are ignored.
/// Throws Error("G"/"R"/"S") for a dimension < 1, Error("src"/"dst") for a span that is too small,
/// an element count that overflows int64_t, or overlapping spans; nothing is written then.
inline void reorder_Goihw16g_to_goihw(std::span<const float> src, std::span<float> dst, int64_t G, int64_t R,
                                      int64_t S) {
  layout_detail::check_wei_depthwise(src, dst, G, R, S, false);
  const int64_t RS = R * S;
  for (int64_t g = 0; g < G; ++g)
    for (int64_t rs = 0; rs < RS; ++rs)
      dst[static_cast<size_t>(g * RS + rs)] = src[static_cast<size_t>(((g / kBlock) * RS + rs) * kBlock + g % kBlock)];
}

}  // namespace hwyconv
