// hwyconv/desc.hpp - the shape of a convolution (the "describe" step).
//
// ConvDesc holds N, C, K, H, W, R, S, stride, padding and dilation, derives P and Q, and validates
// itself. Everything is 64-bit and constexpr, so a ConvDesc can be a template argument (StaticConv).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace hwyconv {

/// Channel block used by every blocked layout (nChw16c, OIhw16i16o), whatever the SIMD target: the
/// paper's VLEN fixed at 16 floats so that a tensor means the same thing on every machine.
inline constexpr int64_t kBlock = 16;

/// Error thrown for bad input. `field()` names the offending field ("C", "pad_l", "dst", ...);
/// `what()` is a full sentence with the value. Thrown before anything is written to outputs.
class Error : public std::invalid_argument {
 public:
  Error(std::string field, const std::string& message)
      : std::invalid_argument("hwyconv: " + field + ": " + message), field_(std::move(field)) {}
  /// The name of the field or argument that was rejected.
  const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

/// Result of a non-throwing check (`ConvDesc::check()`): `ok()` or the field and reason, in the
/// spirit of CUTLASS's can_implement. `field` and `reason` point to string literals.
struct Status {
  const char* field = nullptr;   ///< offending field, nullptr when ok
  const char* reason = nullptr;  ///< why it was rejected
  int64_t value = 0;             ///< the rejected value
  constexpr bool ok() const { return field == nullptr; }
};

/// Largest value of any one dimension, stride, pad or dilation (ConvDesc::check()): small enough that
/// a product of three of them cannot overflow int64_t.
inline constexpr int64_t kMaxDim = int64_t{1} << 20;

/// Most filter taps (R*S) a layer may have: the plans hold their taps in arrays of this size (R = S = 16
/// at most for square filters, e.g. a ViT patch embedding).
inline constexpr int64_t kMaxTaps = 256;

/// Throws Error for a Status that is not ok: "<field>: <reason> (got <value>)".
inline void throw_if_error(const Status& s) {
  if (!s.ok()) throw Error(s.field, std::string(s.reason) + " (got " + std::to_string(s.value) + ")");
}

/// Ceiling division for non-negative a and positive b.
constexpr int64_t div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }
/// a rounded up to a multiple of b.
constexpr int64_t round_up(int64_t a, int64_t b) { return div_up(a, b) * b; }

/// Groups of the blocked weights of a layer of G groups, C inputs and K outputs: G / m for the least m
/// dividing G such that m*C/G and m*K/G are multiples of 16, so that each blocked group holds m layer
/// groups in whole 16-channel blocks (weights between different layer groups of one blocked group are
/// zero); 1 when there is no such m (the whole layer is one block-diagonal OIhw16i16o tensor). G = 1
/// gives 1. Assumes G divides C and K.
constexpr int64_t wei_block_groups(int64_t G, int64_t C, int64_t K) {
  // m*C/G is a multiple of 16 exactly when m is a multiple of 16 / gcd(16, C/G); the least m for both
  // C and K is the larger of the two powers of two, and a larger multiple divides G only if it does.
  auto need = [](int64_t ch) {
    int64_t m = kBlock;
    while (m > 1 && ch % 2 == 0) m /= 2, ch /= 2;
    return m;
  };
  const int64_t mc = need(C / G), mk = need(K / G), m = mc > mk ? mc : mk;
  return G % m == 0 ? G / m : 1;
}

/// Shape of a 2-D convolution, in the field's names.
///   src  N x C x H x W, weights K x C x R x S, dst N x K x P x Q, with
///   P = (H + pad_t + pad_b - dil_h*(R-1) - 1) / stride_h + 1 (Q likewise with W, S, pad_l, pad_r).
/// Dilation is oneDNN's "dense" convention: 1 means no holes. With G = groups > 1 the channels split
/// into G groups and output channel k sees only the C/G input channels of its group (weights K x C/G
/// x R x S). Depthwise (G == C == K) layers run their own kernels; every other G runs the dense
/// kernels per group of whole 16-channel blocks (wei_block_groups).
struct ConvDesc {
  int64_t N = 1, C = 1, K = 1, H = 1, W = 1, R = 1, S = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_t = 0, pad_l = 0, pad_b = 0, pad_r = 0;
  int64_t dil_h = 1, dil_w = 1;
  int64_t groups = 1;

  constexpr ConvDesc() = default;
  /// Square stride and symmetric padding, as most layers are: {N, C, K, H, W, R, S, stride, pad}.
  constexpr ConvDesc(int64_t n, int64_t c, int64_t k, int64_t h, int64_t w, int64_t r, int64_t s,
                     int64_t stride = 1, int64_t pad = 0)
      : N(n), C(c), K(k), H(h), W(w), R(r), S(s), stride_h(stride), stride_w(stride), pad_t(pad),
        pad_l(pad), pad_b(pad), pad_r(pad) {}

  /// Copy with another stride (rows, columns).
  constexpr ConvDesc with_stride(int64_t h, int64_t w) const {
    ConvDesc d = *this;
    d.stride_h = h;
    d.stride_w = w;
    return d;
  }
  /// Copy with asymmetric padding (top, left, bottom, right), in pixels.
  constexpr ConvDesc with_pad(int64_t t, int64_t l, int64_t b, int64_t r) const {
    ConvDesc d = *this;
    d.pad_t = t;
    d.pad_l = l;
    d.pad_b = b;
    d.pad_r = r;
    return d;
  }
  /// Copy with another dilation (1 = dense).
  constexpr ConvDesc with_dilation(int64_t h, int64_t w) const {
    ConvDesc d = *this;
    d.dil_h = h;
    d.dil_w = w;
    return d;
  }

  /// Output height. Meaningful only when check() is ok.
  constexpr int64_t P() const { return (H + pad_t + pad_b - dil_h * (R - 1) - 1) / stride_h + 1; }
  /// Output width. Meaningful only when check() is ok.
  constexpr int64_t Q() const { return (W + pad_l + pad_r - dil_w * (S - 1) - 1) / stride_w + 1; }
  /// Number of 16-channel blocks of the input (C padded up to a multiple of 16).
  constexpr int64_t Cb() const { return div_up(C, kBlock); }
  /// Number of 16-channel blocks of the output.
  constexpr int64_t Kb() const { return div_up(K, kBlock); }
  /// Depthwise: more than one group, each of one input and one output channel (G == C == K).
  constexpr bool depthwise() const { return groups > 1 && groups == C && groups == K; }
  /// Floating-point operations of one forward pass: 2*N*K*P*Q*(C/G)*R*S (also of bwd_d and bwd_w).
  constexpr double flops() const {
    return 2.0 * double(N) * double(K) * double(P()) * double(Q()) * double(C / groups) * double(R) * double(S);
  }

  /// Checks every field without throwing; the first bad field is reported. Rules: N, C, K, H, W, R,
  /// S, strides and dilations >= 1; pads >= 0 and each pad < the dilated filter extent (a pad that
  /// reaches past the filter would create outputs that see only padding); P, Q >= 1; R*S <= kMaxTaps;
  /// every tensor's element count (blocked, and the padded copy of src) below 2^40, 4 TiB of f32: no
  /// 64-bit overflow anywhere in the offsets, and a kernel stream that stays a small fraction of the
  /// tensors (a 1x1 layer on a 2^20 x 2^20 image is rejected here, not after minutes of planning);
  /// groups divides C and K. A descriptor that passes can be planned and run by every pass of Conv
  /// and StaticConv.
  constexpr Status check() const {
    struct Field {
      const char* name;
      int64_t value;
    };
    const Field positive[] = {{"N", N},           {"C", C},           {"K", K},
                              {"H", H},           {"W", W},           {"R", R},
                              {"S", S},           {"stride_h", stride_h}, {"stride_w", stride_w},
                              {"dil_h", dil_h},   {"dil_w", dil_w},   {"groups", groups}};
    for (const Field& f : positive)
      if (f.value < 1) return {f.name, "must be >= 1", f.value};
    // Each dimension alone must be small enough that products of three of them cannot overflow.
    for (const Field& f : positive)
      if (f.value > kMaxDim) return {f.name, "is larger than 2^20", f.value};
    if (C % groups != 0) return {"groups", "must divide C", groups};
    if (K % groups != 0) return {"groups", "must divide K", groups};
    const Field pads[] = {{"pad_t", pad_t}, {"pad_l", pad_l}, {"pad_b", pad_b}, {"pad_r", pad_r}};
    for (const Field& f : pads) {
      if (f.value < 0) return {f.name, "must be >= 0", f.value};
      if (f.value > kMaxDim) return {f.name, "is larger than 2^20", f.value};
    }
    const int64_t ext_h = dil_h * (R - 1) + 1, ext_w = dil_w * (S - 1) + 1;
    if (pad_t >= ext_h) return {"pad_t", "must be smaller than the dilated filter height", pad_t};
    if (pad_b >= ext_h) return {"pad_b", "must be smaller than the dilated filter height", pad_b};
    if (pad_l >= ext_w) return {"pad_l", "must be smaller than the dilated filter width", pad_l};
    if (pad_r >= ext_w) return {"pad_r", "must be smaller than the dilated filter width", pad_r};
    if (H + pad_t + pad_b < ext_h) return {"P", "padded height is smaller than the filter (P < 1)", P()};
    if (W + pad_l + pad_r < ext_w) return {"Q", "padded width is smaller than the filter (Q < 1)", Q()};
    if (R * S > kMaxTaps) return {"R", "R*S larger than 256 filter taps is not supported; R*S", R * S};
    // Element counts of the blocked tensors and of the padded scratch copy, in double so that the
    // check itself cannot overflow (every factor is below 2^23 here).
    constexpr double kMaxElems = double(int64_t{1} << 40);
    const double hp = double(H + pad_t + pad_b), wp = double(W + pad_l + pad_r);
    struct Count {
      const char* name;
      double value;
    };
    const Count counts[] = {
        {"src", double(N) * double(round_up(C, kBlock)) * hp * wp},
        {"dst", double(N) * double(round_up(K, kBlock)) * double(P()) * double(Q())},
        {"weights", depthwise() ? double(round_up(K, kBlock)) * double(R * S)
                                : double(round_up(K, kBlock)) * double(round_up(C, kBlock)) * double(R * S)}};
    // The count itself is reported, clamped to int64_t (it may exceed 2^63 for a degenerate shape).
    for (const Count& c : counts)
      if (c.value >= kMaxElems)
        return {c.name, "has 2^40 elements or more; elements", c.value < 9.2e18 ? int64_t(c.value) : INT64_MAX};
    return {};
  }

  /// Throws Error naming the first bad field (see check()).
  void validate() const { throw_if_error(check()); }

  friend constexpr bool operator==(const ConvDesc&, const ConvDesc&) = default;
};

}  // namespace hwyconv
