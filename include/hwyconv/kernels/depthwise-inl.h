// hwyconv/kernels/depthwise-inl.h - the depthwise microkernels, per Highway target (toggle include
// guard).
//
// Depthwise layers (groups == C == K) have one channel per group: the 16 channels of a block are 16
// independent convolutions, so the vector lanes hold channels and each FMA multiplies an input vector
// by a weight vector (no broadcast, unlike the dense kernel). A call handles one row of pixels of one
// channel block: register blocks of kDwPixels pixels with every tap valid, then the pixels at the
// row's ends, where some taps read padding, one at a time. The same row kernel runs the forward pass
// (a dst row) and backward data (the pixels of a dsrc row in one column phase, each tap a weight
// times a ddst vector). The weight update keeps one accumulator per tap of a tap row for two
// columns at a time and reduces over images and pixels.

#if defined(HWYCONV_DEPTHWISE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HWYCONV_DEPTHWISE_INL_H_
#undef HWYCONV_DEPTHWISE_INL_H_
#else
#define HWYCONV_DEPTHWISE_INL_H_
#endif

#include <cstddef>
#include <utility>

#include <hwy/highway.h>

#include "hwyconv/epilogue/epilogue-inl.h"
#include "hwyconv/kernels/args.hpp"
#include "hwyconv/kernels/fwd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace hwyconv {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// Pixels of a depthwise register block: 8 accumulators cover the FMA latency of two pipes (4
/// cycles) and leave room for the weight and the loads on 16-register targets.
inline constexpr size_t kDwPixels = 8;

/// Stores pixels j + I of lanes [lane, lane + kLanes) through the generic epilogue.
template <class D, size_t... I>
HWY_INLINE void DwStore(D d, const DwArgs& a, int64_t j, size_t lane, std::index_sequence<I...>,
                        VecAt<D, I>... acc) {
  float* HWY_RESTRICT out = a.out + j * a.out_px + int64_t(lane);
  // Without a residual, `res` points at out (never read: the epilogue reads it only for kEpiResidual).
  const float* HWY_RESTRICT res = a.residual ? a.residual + j * a.out_px + int64_t(lane) : out;
  const int64_t px = a.out_px, ch = a.ch + int64_t(lane);
  (hn::StoreU(ApplyEpilogue<kEpiGeneric>(d, acc, a, ch, res + int64_t(I) * px), d, out + int64_t(I) * px), ...);
}

/// Pixels j .. j + sizeof...(I) - 1, every tap inside the source: one weight load per tap, one input
/// load and FMA per tap and pixel.
template <class D, size_t... I>
HWY_INLINE void DwBlock(D d, const DwArgs& a, int64_t j, size_t lane, std::index_sequence<I...> seq,
                        VecAt<D, I>... acc) {
  const int64_t in_px = a.in_px;
  const float* HWY_RESTRICT in = a.in + j * in_px + int64_t(lane);
  const float* HWY_RESTRICT wei = a.wei + int64_t(lane);
  for (int64_t t = 0; t < a.taps; ++t) {
    const DwTap& tap = a.tap[t];
    const float* HWY_RESTRICT x = in + tap.in_off;
    const auto w = hn::LoadU(d, wei + tap.w_off);
    ((acc = hn::MulAdd(hn::LoadU(d, x + int64_t(I) * in_px), w, acc)), ...);
  }
  DwStore(d, a, j, lane, seq, acc...);
}

template <size_t kN, class D>
HWY_INLINE void DwBlockOf(D d, const DwArgs& a, int64_t j, size_t lane) {
  [&]<size_t... I>(std::index_sequence<I...> seq) {
    DwBlock(d, a, j, lane, seq, (void(I), hn::Zero(d))...);
  }(std::make_index_sequence<kN>());
}

/// Pixel j at a row end: only the taps whose source pixel is inside.
template <class D>
HWY_INLINE void DwEdgePixel(D d, const DwArgs& a, int64_t j, size_t lane) {
  auto acc = hn::Zero(d);
  const float* HWY_RESTRICT in = a.in + j * a.in_px + int64_t(lane);
  for (int64_t t = 0; t < a.taps; ++t) {
    const DwTap& tap = a.tap[t];
    if (j >= tap.j_lo && j < tap.j_hi)
      acc = hn::MulAdd(hn::LoadU(d, in + tap.in_off), hn::LoadU(d, a.wei + tap.w_off + int64_t(lane)), acc);
  }
  DwStore(d, a, j, lane, std::index_sequence<0>(), acc);
}

/// The depthwise row microkernel (a DwRowFn): pixels [0, n) of a row, kLanes channels at a time.
inline HWY_NOINLINE void DwRowMicrokernel(const DwArgs& a) {
  const DF d;
  const int64_t lo = a.j_lo < a.n ? (a.j_lo > 0 ? a.j_lo : 0) : a.n;
  const int64_t hi = a.j_hi < a.n ? (a.j_hi > lo ? a.j_hi : lo) : a.n;
  for (size_t v = 0; v < kVecPerBlock; ++v) {
    const size_t lane = v * kLanes;
    int64_t j = 0;
    for (; j < lo; ++j) DwEdgePixel(d, a, j, lane);
    for (; j + int64_t(kDwPixels) <= hi; j += int64_t(kDwPixels)) DwBlockOf<kDwPixels>(d, a, j, lane);
    if (hi - j >= 4) {
      DwBlockOf<4>(d, a, j, lane);
      j += 4;
    }
    if (hi - j >= 2) {
      DwBlockOf<2>(d, a, j, lane);
      j += 2;
    }
    if (hi - j >= 1) DwBlockOf<1>(d, a, j++, lane);
    for (; j < a.n; ++j) DwEdgePixel(d, a, j, lane);
  }
}

/// Accumulator I of the weight update: tap I % kSn of the call, column parity I / kSn.
template <size_t kSn, class D, size_t... I>
HWY_INLINE void DwBwdWLanes(D d, const DwBwdWArgs& a, size_t lane, std::index_sequence<I...>, VecAt<D, I>... acc) {
  const int64_t sw = a.stride_w * kBlock, dw = a.dil_w * kBlock;
  int64_t lo = a.q_lo[0], hi = a.q_hi[0];
  for (size_t i = 1; i < kSn; ++i) {
    lo = a.q_lo[i] > lo ? a.q_lo[i] : lo;
    hi = a.q_hi[i] < hi ? a.q_hi[i] : hi;
  }
  if (hi < lo) hi = lo;
  for (int64_t n = 0; n < a.N; ++n) {
    for (int64_t p = a.p_lo; p < a.p_hi; ++p) {
      const float* HWY_RESTRICT g = a.ddst + n * a.ddst_n + p * a.Q * kBlock + int64_t(lane);
      // Input pixel of column q, tap 0: x + q*sw.
      const float* HWY_RESTRICT x = a.src + n * a.src_n + ((a.h0 + p * a.stride_h) * a.W + a.w0) * kBlock + int64_t(lane);
      // Pairs of columns inside [lo, hi) with every tap inside src; the rest one at a time, each tap
      // checked (no lambda: SVE vectors cannot be captured).
      for (int64_t q = 0; q < a.Q;) {
        if (q >= lo && q + 2 <= hi) {
          const auto g0 = hn::LoadU(d, g + q * kBlock), g1 = hn::LoadU(d, g + (q + 1) * kBlock);
          ((acc = hn::MulAdd(hn::LoadU(d, x + (q + int64_t(I / kSn)) * sw + int64_t(I % kSn) * dw),
                             I < kSn ? g0 : g1, acc)),
           ...);
          q += 2;
        } else {
          const auto gq = hn::LoadU(d, g + q * kBlock);
          ((acc = I < kSn && q >= a.q_lo[I % kSn] && q < a.q_hi[I % kSn]
                      ? hn::MulAdd(hn::LoadU(d, x + q * sw + int64_t(I % kSn) * dw), gq, acc)
                      : acc),
           ...);
          ++q;
        }
      }
    }
  }
  float* HWY_RESTRICT out = a.dwei + int64_t(lane);
  ((I < kSn ? hn::StoreU(acc, d, out + int64_t(I) * kBlock) : void()), ...);
  ((I >= kSn ? hn::StoreU(hn::Add(hn::LoadU(d, out + int64_t(I - kSn) * kBlock), acc), d,
                          out + int64_t(I - kSn) * kBlock)
             : void()),
   ...);
}

/// The depthwise weight-update microkernel for kSn taps of a tap row (a DwBwdWFn).
template <size_t kSn>
HWY_NOINLINE void DwBwdWMicrokernel(const DwBwdWArgs& a) {
  const DF d;
  for (size_t v = 0; v < kVecPerBlock; ++v)
    [&]<size_t... I>(std::index_sequence<I...> seq) {
      DwBwdWLanes<kSn>(d, a, v * kLanes, seq, (void(I), hn::Zero(d))...);
    }(std::make_index_sequence<2 * kSn>());
}

}  // namespace HWY_NAMESPACE
}  // namespace hwyconv
HWY_AFTER_NAMESPACE();

#endif  // HWYCONV_DEPTHWISE_INL_H_
