// hwyconv/kernels/depthwise-inl.h - the depthwise microkernels, per Highway target (toggle include
// guard).
//
// Depthwise layers (groups == C == K) have one channel per group: the 16 channels of a block are 16
// independent convolutions, so the vector lanes hold channels and each FMA multiplies an input vector
// by a weight vector (no broadcast, unlike the dense kernel). A call handles one row of pixels of up
// to four channel blocks; its pixels come in segments that read the same taps (the row's ends read
// fewer: no tap that would read padding is run), each in register blocks of channel blocks x pixels.
// The same row kernel runs the forward pass (a dst row) and backward data (the pixels of a dsrc row in
// one column phase, each tap a weight times a ddst vector). The weight update keeps one accumulator
// per tap of a tap row for two columns at a time and reduces over images and pixels.

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

/// Whether the depthwise blocks may take 16 accumulators: on 32-register targets but NEON, where gcc
/// 12 kept accumulators and weights on the stack in the hot loops with them (scripts/check_spills.py
/// on the aarch64 object); NEON takes the 8 of 16-register targets.
inline constexpr bool kDwWide = kVecRegs >= 32 && HWY_TARGET != HWY_NEON;

/// Pixels of a register block of kCb channel blocks: 16 accumulators (kDwWide), else 8 (with kCb
/// weights and a load beside them). More channel blocks per block give independent FMA chains where
/// rows are short (small maps); more pixels where channels are few.
template <size_t kCb>
inline constexpr size_t kDwPixels = (kDwWide ? 16 : 8) / kCb;

/// Final store of a register block (pixels j .. j + kPx - 1, channel blocks cb .., accumulator I at
/// channel block I / kPx, pixel I % kPx) through the generic epilogue.
template <size_t kPx, class D, size_t... I>
HWY_INLINE void DwStore(D d, const DwArgs& a, int64_t j, int64_t cb, size_t lane, std::index_sequence<I...>,
                        VecAt<D, I>... acc) {
  float* HWY_RESTRICT out = a.out + cb * a.out_cb + j * a.out_px + int64_t(lane);
  // Without a residual, `res` points at out (never read: the epilogue reads it only for kEpiResidual).
  const float* HWY_RESTRICT res = a.residual ? a.residual + (out - a.out) : out;
  const int64_t out_px = a.out_px, out_cb = a.out_cb, ch = a.ch + cb * kBlock + int64_t(lane);
  auto at = [&](size_t i) { return int64_t(i / kPx) * out_cb + int64_t(i % kPx) * out_px; };
  (hn::StoreU(ApplyEpilogue<kEpiGeneric>(d, acc, a, ch + int64_t(I / kPx) * kBlock, res + at(I)), d, out + at(I)),
   ...);
}

/// A register block: pixels j .. j + kPx - 1 of a segment, channel blocks cb .. cb + kCb - 1 (kCb <=
/// 4), lanes [lane, lane + kLanes). Accumulator I: channel block I / kPx, pixel I % kPx. Each tap's
/// kCb weight vectors are loaded once and kept in registers.
template <size_t kCb, size_t kPx, class D, size_t... I>
HWY_INLINE void DwBlock(D d, const DwArgs& a, const DwSegment& sg, int64_t j, int64_t cb, size_t lane,
                        std::index_sequence<I...> seq, VecAt<D, I>... acc) {
  const int64_t in_px = a.in_px, in_cb = a.in_cb, wei_cb = a.wei_cb, tap_in = a.tap_in, tap_w = a.tap_w;
  const float* HWY_RESTRICT in = a.in + cb * in_cb + sg.in_off + j * in_px + int64_t(lane);
  const float* HWY_RESTRICT wei = a.wei + cb * wei_cb + sg.w_off + int64_t(lane);
  for (int64_t tr = 0; tr < a.rows; ++tr) {
    const float* HWY_RESTRICT x = in + tr * a.row_in;
    const float* HWY_RESTRICT w = wei + tr * a.row_w;
    for (int64_t k = 0; k < sg.taps; ++k) {
      const auto w0 = InRegister(hn::LoadU(d, w + k * tap_w));
      const auto w1 = InRegister(hn::LoadU(d, w + k * tap_w + (kCb > 1 ? 1 : 0) * wei_cb));
      const auto w2 = InRegister(hn::LoadU(d, w + k * tap_w + (kCb > 2 ? 2 : 0) * wei_cb));
      const auto w3 = InRegister(hn::LoadU(d, w + k * tap_w + (kCb > 3 ? 3 : 0) * wei_cb));
      ((acc = hn::MulAdd(hn::LoadU(d, x + k * tap_in + int64_t(I / kPx) * in_cb + int64_t(I % kPx) * in_px),
                         I / kPx == 0 ? w0 : (I / kPx == 1 ? w1 : (I / kPx == 2 ? w2 : w3)), acc)),
       ...);
    }
  }
  DwStore<kPx>(d, a, j, cb, lane, seq, acc...);
}

/// The pixels [j, j1) of a segment in register blocks of kPx, kPx / 2, ..., 1 pixels.
template <size_t kCb, size_t kPx, class D>
HWY_INLINE void DwPixels(D d, const DwArgs& a, const DwSegment& sg, int64_t j, int64_t cb, size_t lane) {
  for (; j + int64_t(kPx) <= sg.j1; j += int64_t(kPx))
    [&]<size_t... I>(std::index_sequence<I...> seq) {
      DwBlock<kCb, kPx>(d, a, sg, j, cb, lane, seq, (void(I), hn::Zero(d))...);
    }(std::make_index_sequence<kCb * kPx>());
  if constexpr (kPx > 1) DwPixels<kCb, kPx / 2>(d, a, sg, j, cb, lane);
}

/// Channel blocks and pixels of a sliding-window register block (a tap row's input columns are
/// pixels kBlock floats apart, read by several pixels' taps: stride 1 or 2 forward, backward data):
/// accumulators, up to 3*kCb weights and kCb input columns fit the registers (16 + 6 + 2 where
/// kDwWide, else 8 + 3 + 1).
inline constexpr size_t kSlideBlocks = kDwWide ? 2 : 1;
template <size_t kCb>
inline constexpr size_t kSlidePixels = (kDwWide ? 16 : 8) / kCb;

/// Weight (channel block c, tap k) of a sliding block, among the six in registers.
template <size_t c, size_t k, class V>
HWY_INLINE V SlideWeight(V w00, V w01, V w02, V w10, V w11, V w12) {
  if constexpr (c == 0) return k == 0 ? w00 : (k == 1 ? w01 : w02);
  else return k == 0 ? w10 : (k == 1 ? w11 : w12);
}

/// Input column U of a sliding block (x0, x1: its vectors of channel blocks 0 and 1) into every
/// accumulator whose pixel reads it: pixel px reads columns px*kPs + k for its kT taps k.
template <size_t kPx, size_t kPs, size_t kT, size_t U, class V, size_t... I>
HWY_INLINE void SlideColumn(V x0, V x1, V w00, V w01, V w02, V w10, V w11, V w12, std::index_sequence<I...>,
                            VecAt<DF, I>&... acc) {
  ((U >= I % kPx * kPs && U - I % kPx * kPs < kT
        ? void(acc = hn::MulAdd(
                   I / kPx == 0 ? x0 : x1,
                   SlideWeight<I / kPx, (U >= I % kPx * kPs ? U - I % kPx * kPs : 0)>(w00, w01, w02, w10, w11, w12),
                   acc))
        : void()),
   ...);
}

/// A sliding register block: pixels j .. j + kPx - 1, channel blocks cb .. cb + kCb - 1 (kCb <= 2),
/// a segment of kT (2 or 3) taps, tap k of pixel px reading input column px*kPs + k (`in` and `wei`
/// at pixel j's tap 0, columns kBlock floats apart). Each input vector is loaded once for every FMA
/// that uses it: (kPx - 1)*kPs + kT loads for kT*kPx FMAs per channel block and tap row.
template <size_t kCb, size_t kPx, size_t kPs, size_t kT, size_t... I, size_t... U>
HWY_INLINE void DwSlide(const DwArgs& a, const float* HWY_RESTRICT in, const float* HWY_RESTRICT wei, int64_t tap_w,
                        int64_t j, int64_t cb, size_t lane, std::index_sequence<I...> seq, std::index_sequence<U...>,
                        VecAt<DF, I>... acc) {
  const DF d;
  const int64_t in_cb = a.in_cb, wei_cb = a.wei_cb;
  for (int64_t tr = 0; tr < a.rows; ++tr) {
    const float* HWY_RESTRICT x = in + tr * a.row_in;
    const float* HWY_RESTRICT w = wei + tr * a.row_w;
    const int64_t w1 = kCb > 1 ? wei_cb : 0, x1 = kCb > 1 ? in_cb : 0, t2 = kT > 2 ? 2 * tap_w : 0;
    // Weights and input columns are loaded once each into registers (gcc would otherwise fold a
    // load into each FMA that uses it). Unused ones (kCb = 1, kT = 2) are dead code.
    const auto w00 = InRegister(hn::LoadU(d, w)), w01 = InRegister(hn::LoadU(d, w + tap_w)),
               w02 = InRegister(hn::LoadU(d, w + t2));
    const auto w10 = InRegister(hn::LoadU(d, w + w1)), w11 = InRegister(hn::LoadU(d, w + w1 + tap_w)),
               w12 = InRegister(hn::LoadU(d, w + w1 + t2));
    (SlideColumn<kPx, kPs, kT, U>(InRegister(hn::LoadU(d, x + int64_t(U) * kBlock)),
                                  InRegister(hn::LoadU(d, x + x1 + int64_t(U) * kBlock)), w00, w01, w02, w10, w11,
                                  w12, seq, acc...),
     ...);
  }
  DwStore<kPx>(d, a, j, cb, lane, seq, acc...);
}

/// The pixels [j, j1) of a sliding segment (see Slide) in blocks of kPx, kPx / 2, ..., 1 pixels.
/// Taps running backwards (tap_in == -kBlock: backward data) are taken in reverse order, which makes
/// their columns run forwards.
template <size_t kCb, size_t kPx, size_t kPs, size_t kT>
HWY_INLINE void DwSlidePixels(const DwArgs& a, const DwSegment& sg, int64_t j, int64_t cb, size_t lane) {
  const bool reverse = a.tap_in < 0;
  const int64_t tap_w = reverse ? -a.tap_w : a.tap_w, last = int64_t(kT) - 1;
  const float* HWY_RESTRICT in = a.in + cb * a.in_cb + sg.in_off + (reverse ? last * a.tap_in : 0) + int64_t(lane);
  const float* HWY_RESTRICT wei = a.wei + cb * a.wei_cb + sg.w_off + (reverse ? last * a.tap_w : 0) + int64_t(lane);
  for (; j + int64_t(kPx) <= sg.j1; j += int64_t(kPx)) {
    const DF d;
    [&]<size_t... I>(std::index_sequence<I...> seq) {
      DwSlide<kCb, kPx, kPs, kT>(a, in + j * a.in_px, wei, tap_w, j, cb, lane, seq,
                                 std::make_index_sequence<(kPx - 1) * kPs + kT>(), (void(I), hn::Zero(d))...);
    }(std::make_index_sequence<kCb * kPx>());
  }
  if constexpr (kPx > 1) DwSlidePixels<kCb, kPx / 2, kPs, kT>(a, sg, j, cb, lane);
}

/// How a segment slides: 0 (it does not: register blocks), else 10*kPs + kT for kT = 2 or 3 taps
/// whose input columns are consecutive pixels kBlock floats apart, pixels kPs = 1 or 2 columns apart
/// (forward at stride 1 and 2, backward data).
HWY_INLINE int Slide(const DwArgs& a, const DwSegment& sg) {
  if ((sg.taps != 2 && sg.taps != 3) || (a.tap_in != kBlock && a.tap_in != -kBlock)) return 0;
  if (a.in_px == kBlock) return 10 + int(sg.taps);
  if (a.in_px == 2 * kBlock && a.tap_in > 0) return 20 + int(sg.taps);
  return 0;
}

/// Channel blocks [cb, cb + kCb) of a sliding segment, kSc at a time.
template <size_t kCb, size_t kSc, size_t kPs, size_t kT>
HWY_INLINE void DwSlideBlocks(const DwArgs& a, const DwSegment& sg, int64_t cb, size_t lane) {
  for (size_t c = 0; c < kCb; c += kSc) DwSlidePixels<kSc, kSlidePixels<kSc>, kPs, kT>(a, sg, sg.j0, cb + int64_t(c), lane);
}

/// Channel blocks [cb, cb + kCb) of every segment: sliding blocks where they apply, else register
/// blocks of kDwPixels<kCb>.
template <size_t kCb>
HWY_INLINE void DwSegments(const DwArgs& a, int64_t cb, size_t lane) {
  const DF d;
  constexpr size_t kSc = kCb % kSlideBlocks == 0 ? kSlideBlocks : 1;
  for (int64_t i = 0; i < a.segs; ++i) {
    const DwSegment& sg = a.seg[i];
    switch (Slide(a, sg)) {
      case 13: DwSlideBlocks<kCb, kSc, 1, 3>(a, sg, cb, lane); break;
      case 12: DwSlideBlocks<kCb, kSc, 1, 2>(a, sg, cb, lane); break;
      case 23: DwSlideBlocks<kCb, kSc, 2, 3>(a, sg, cb, lane); break;
      case 22: DwSlideBlocks<kCb, kSc, 2, 2>(a, sg, cb, lane); break;
      default: DwPixels<kCb, kDwPixels<kCb>>(d, a, sg, sg.j0, cb, lane);
    }
  }
}

/// The depthwise row microkernel (a DwRowFn): every segment of the row, for channel blocks in groups
/// of 4, 2 and 1, kLanes channels at a time.
inline HWY_NOINLINE void DwRowMicrokernel(const DwArgs& a) {
  for (size_t v = 0; v < kVecPerBlock; ++v) {
    const size_t lane = v * kLanes;
    int64_t cb = 0;
    for (; cb + 4 <= a.cbs; cb += 4) DwSegments<4>(a, cb, lane);
    for (; cb + 2 <= a.cbs; cb += 2) DwSegments<2>(a, cb, lane);
    for (; cb < a.cbs; ++cb) DwSegments<1>(a, cb, lane);
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
