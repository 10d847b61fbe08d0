// hwyconv/kernels/fwd-inl.h - the forward microkernel, per Highway target (toggle include guard).
//
// One call computes a register block of RB_P x RB_Q output pixels x 16 output channels (paper SC18,
// forward propagation: the input value is broadcast and multiplied with a vector of weights, FMA
// into accumulators that stay in registers), reducing over the call's C blocks, the filter taps and
// the 16 input channels of each block. The code is written once: the lane count of the target
// decides how many vectors make 16 channels (1 on AVX-512, 2 on AVX2, 4 on SSE4/NEON, 16 scalar).
//
// Accumulators are a parameter pack of vectors, one local per accumulator (fold expressions over
// the pack), not an array: arrays of vectors spill with gcc and do not compile for SVE.
// A block larger than the target's register budget runs as sub-blocks of at most kMaxPixels pixels,
// each over the full reduction (weights are re-read from L1); see RunBlock.

#if defined(HWYCONV_FWD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HWYCONV_FWD_INL_H_
#undef HWYCONV_FWD_INL_H_
#else
#define HWYCONV_FWD_INL_H_
#endif

#include <cstddef>
#include <utility>

#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include "hwyconv/epilogue/epilogue-inl.h"
#include "hwyconv/kernels/args.hpp"

HWY_BEFORE_NAMESPACE();
namespace hwyconv {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// The vector type that holds floats of this target; at most 16 lanes (one channel block). The
/// length-agnostic targets SVE and SVE2 use 128-bit vectors: every SVE vector holds 4 floats, so the
/// lane count is a compile-time constant there too (a CappedTag<float, 16> would hold 4, 8, 12 or 16
/// at run time). SVE_256 and SVE2_128 have a known width and keep their full vectors.
#if HWY_TARGET == HWY_SVE || HWY_TARGET == HWY_SVE2
using DF = hn::CappedTag<float, 4>;
#else
using DF = hn::CappedTag<float, 16>;
#endif
/// Lanes of DF and vectors per 16-channel block.
inline constexpr size_t kLanes = hn::MaxLanes(DF());
inline constexpr size_t kVecPerBlock = size_t(kBlock) / kLanes;
static_assert(kLanes * kVecPerBlock == size_t(kBlock), "lane count must divide 16");

/// Vector registers of the target: 32 on AVX-512 and Arm, 16 on AVX2/SSE4 (and assumed for scalar).
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL || HWY_ARCH_ARM
inline constexpr size_t kVecRegs = 32;
#else
inline constexpr size_t kVecRegs = 16;
#endif
/// Registers kept free beyond the weights and the broadcast. NEON: 4, because gcc 12 multiplies by
/// lanes of a loaded input vector (fmla by element) and with 6 pixels (24 accumulators) kept two
/// accumulators on the stack in the hot loop (scripts/check_spills.py on the aarch64 object).
#if HWY_TARGET == HWY_NEON
inline constexpr size_t kSpareRegs = 4;
#else
inline constexpr size_t kSpareRegs = 0;
#endif

/// Pixels whose accumulators fit at once: registers less one broadcast, kVecPerBlock weights and
/// kSpareRegs, capped at 28 (AVX-512: 28 accumulators + 1 weight + 1 broadcast + 2 spare).
inline constexpr size_t kMaxPixels = [] {
  const size_t used = kVecPerBlock + 1 + kSpareRegs;
  const size_t free_regs = kVecRegs > used ? kVecRegs - used : 0;
  const size_t pix = free_regs / kVecPerBlock;
  return pix < 1 ? size_t{1} : (pix > 28 ? size_t{28} : pix);
}();

template <class D, size_t>
using VecAt = hn::Vec<D>;

/// v, kept in a register: on x86 the compiler otherwise folds a load that several FMAs use into each
/// of them, one load per FMA, and the loads (not the FMAs) then bound the weight update.
template <class V>
HWY_INLINE V InRegister(V v) {
#if HWY_ARCH_X86 && (defined(__GNUC__) || defined(__clang__)) && HWY_TARGET != HWY_SCALAR && \
    HWY_TARGET != HWY_EMU128
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  asm("" : "+v"(v.raw));
#else
  asm("" : "+x"(v.raw));
#endif
#endif
  return v;
}

/// Unrolling of the loop over the 16 input channels of a block (a literal, for the pragma).
#ifndef HWYCONV_FWD_UNROLL
#define HWYCONV_FWD_UNROLL 4
#endif

/// Accumulator I of a sub-block kRBQ pixels wide over kKbs K blocks: its pixel row, column, K block
/// and which vector of the 16 channels it holds. Pixel-major: the K blocks of a pixel are adjacent,
/// so one broadcast of an input value feeds kKbs FMAs.
template <size_t kRBQ, size_t kKbs = 1>
struct AccIndex {
  static constexpr size_t Pixel(size_t i) { return i / kVecPerBlock / kKbs; }
  static constexpr size_t Row(size_t i) { return Pixel(i) / kRBQ; }
  static constexpr size_t Col(size_t i) { return Pixel(i) % kRBQ; }
  static constexpr size_t K(size_t i) { return i / kVecPerBlock % kKbs; }
  static constexpr size_t Vec(size_t i) { return i % kVecPerBlock; }
};

/// Final store of a finished block through epilogue kOps (a compile-time op mask).
template <size_t kRBQ, size_t kKbs, unsigned kOps, class D, size_t... I>
HWY_INLINE void StoreWithEpilogue(D d, const FwdArgs& a, const StreamEntry& e, std::index_sequence<I...>,
                                  VecAt<D, I>... acc) {
  using Ix = AccIndex<kRBQ, kKbs>;
  float* HWY_RESTRICT out = a.out + e.out_off;
  const float* HWY_RESTRICT res = a.residual + (a.residual ? e.out_off : 0);
  const int64_t out_row = a.out_row, out_px = a.out_px, out_kb = a.out_kb, ch = int64_t(e.kb) * kBlock;
  auto at = [&](size_t i) {
    return int64_t(Ix::K(i)) * out_kb + int64_t(Ix::Row(i)) * out_row + int64_t(Ix::Col(i)) * out_px +
           int64_t(Ix::Vec(i) * kLanes);
  };
  (hn::StoreU(ApplyEpilogue<kOps>(d, acc, a, ch + int64_t(Ix::K(I) * kBlock + Ix::Vec(I) * kLanes),
                                  res + (a.residual ? at(I) : 0)),
              d, out + at(I)),
   ...);
}

/// Picks the epilogue instantiation a.epilogue (index into kEpilogues) for the final store: one
/// branch per block, while each epilogue's ops are compile-time constants.
template <size_t kRBQ, size_t kKbs, class D, size_t... I, size_t... E>
HWY_INLINE void FinishBlock(D d, const FwdArgs& a, const StreamEntry& e, std::index_sequence<I...> seq,
                            std::index_sequence<E...>, VecAt<D, I>... acc) {
  (void)((a.epilogue == int(E) ? (StoreWithEpilogue<kRBQ, kKbs, kEpilogues[E]>(d, a, e, seq, acc...), true)
                               : false) ||
         ...);
}

/// Reduction of one register sub-block over the call's C blocks, taps (StreamEntry's ranges of the
/// tap grid) and 16 input channels, then its store. `acc` are the accumulators (zero, or the partial sums of an earlier C chunk).
template <size_t kRBQ, size_t kKbs, size_t kPx, class D, size_t... I>
HWY_INLINE void SubBlock(D d, const FwdArgs& a, const StreamEntry& e, const StreamEntry& l1,
                         std::index_sequence<I...> seq, VecAt<D, I>... acc) {
  using Ix = AccIndex<kRBQ, kKbs>;
  const float* HWY_RESTRICT in = a.in + e.in_off;
  const float* HWY_RESTRICT w = a.wei + e.w_off;
  const float* HWY_RESTRICT next_in = a.in + l1.in_off;
  const int64_t in_row = a.in_row, wei_kb = a.wei_kb;
  // Channels per tap: a 16-channel block, or (dense rows) the S*C folded channels of one filter row;
  // floats between input pixels: the form's, or (dense rows) the plan's.
  constexpr bool kDense = kPx == kDenseForm;
  const size_t channels = kDense ? size_t(a.tap_channels) : size_t(kBlock);
  const int64_t px = kDense ? a.in_px : int64_t(kPx);
  for (int64_t cb = 0; cb < e.c_blocks; ++cb) {
    // L1 prefetch of the next call's input rows for this C block (first tap), one line per pixel
    // (HWYCONV_NO_PREFETCH turns it off, for measurements).
#ifndef HWYCONV_NO_PREFETCH
    ((Ix::K(I) == 0 && Ix::Vec(I) == 0
          ? hwy::Prefetch(next_in + Ix::Row(I) * in_row + int64_t(Ix::Col(I)) * px)
          : void()),
     ...);
#endif
    // The call's taps: the rows and columns of the tap grid that read the source (the others read
    // only padding for every pixel of the call).
    for (int64_t tr = e.tap_r0; tr < e.tap_r1; ++tr) {
      for (int64_t ts = e.tap_s0; ts < e.tap_s1; ++ts) {
        const Tap& tap = a.tap[tr * a.tap_cols + ts];
        const float* HWY_RESTRICT x = in + tap.in_off;
        const float* HWY_RESTRICT wt = w + tap.w_off;
        HWY_UNROLL(HWYCONV_FWD_UNROLL)
        for (size_t ic = 0; ic < channels; ++ic) {
          ((acc = hn::MulAdd(hn::Set(d, x[Ix::Row(I) * in_row + int64_t(Ix::Col(I)) * px + int64_t(ic)]),
                             hn::LoadU(d, wt + int64_t(Ix::K(I)) * wei_kb + ic * kBlock + Ix::Vec(I) * kLanes), acc)),
           ...);
        }
      }
    }
    in += a.in_cb;
    w += a.wei_cb;
    next_in += a.in_cb;
  }
  if (e.flags & StreamEntry::kLast) {
    FinishBlock<kRBQ, kKbs>(d, a, e, seq, std::make_index_sequence<size_t(kNumEpilogues)>(), acc...);
  } else {
    float* HWY_RESTRICT out = a.out + e.out_off;
    const int64_t out_row = a.out_row, out_px = a.out_px, out_kb = a.out_kb;
    (hn::StoreU(acc, d,
                out + int64_t(Ix::K(I)) * out_kb + Ix::Row(I) * out_row + Ix::Col(I) * out_px + Ix::Vec(I) * kLanes),
     ...);
  }
}

/// Sixteen zeros: where a first C chunk loads its accumulators from (see StartSubBlock).
alignas(64) inline constexpr float kZeroBlock[kBlock] = {};

/// Starts a sub-block: accumulators are zero for the first C chunk, else the stored partial sums.
/// A first chunk loads every accumulator from kZeroBlock (all strides 0, so one L1 line) instead of
/// reading dst: no load waits on memory that is about to be overwritten, and dst's old content
/// (even NaN) never matters; one loop body serves both cases.
template <size_t kRBQ, size_t kKbs, size_t kPx, size_t... I>
HWY_INLINE void StartSubBlock(const FwdArgs& a, const StreamEntry& e, const StreamEntry& l1,
                              std::index_sequence<I...> seq) {
  using Ix = AccIndex<kRBQ, kKbs>;
  const DF d;
  const bool first = (e.flags & StreamEntry::kFirst) != 0;
  const float* HWY_RESTRICT src = first ? kZeroBlock : a.out + e.out_off;
  const int64_t row = first ? 0 : a.out_row, px = first ? 0 : a.out_px, kb = first ? 0 : a.out_kb;
  SubBlock<kRBQ, kKbs, kPx>(d, a, e, l1, seq,
                            hn::LoadU(d, src + int64_t(Ix::K(I)) * kb + Ix::Row(I) * row + Ix::Col(I) * px +
                                             Ix::Vec(I) * kLanes)...);
}

/// Moves an entry (and its prefetch partner) to the pixel `row`, `col` of its block (input pixels
/// kPx floats apart, or a.in_px in the dense form).
template <size_t kPx>
HWY_INLINE StreamEntry AtPixel(const FwdArgs& a, StreamEntry e, int64_t row, int64_t col) {
  e.in_off += row * a.in_row + col * (kPx == kDenseForm ? a.in_px : int64_t(kPx));
  e.out_off += row * a.out_row + col * a.out_px;
  return e;
}

/// Moves an entry to K block k of its block.
HWY_INLINE StreamEntry AtKb(const FwdArgs& a, StreamEntry e, int64_t k) {
  e.w_off += k * a.wei_kb;
  e.out_off += k * a.out_kb;
  e.kb += int32_t(k);
  return e;
}

/// Runs a kRBP x kRBQ x kKbs block. When its accumulators fit the target's registers (AVX-512 and
/// Arm for the one-K-block shapes) the block is one sub-block. Otherwise it runs K block by K block,
/// and (16-register targets) row by row, each row as a loop over sub-blocks of kMaxPixels columns
/// plus one sub-block for the columns left over: a run-time loop, so that narrow targets compile
/// two sub-block bodies per variant, not a dozen.
template <size_t kRBP, size_t kRBQ, size_t kKbs, size_t kPx>
HWY_INLINE void RunBlock(const FwdArgs& a, const StreamEntry& e, const StreamEntry& l1) {
  if constexpr (kRBP * kRBQ * kKbs <= kMaxPixels) {
    StartSubBlock<kRBQ, kKbs, kPx>(a, e, l1, std::make_index_sequence<kRBP * kRBQ * kKbs * kVecPerBlock>());
  } else if constexpr (kKbs > 1) {
    for (size_t k = 0; k < kKbs; ++k) RunBlock<kRBP, kRBQ, 1, kPx>(a, AtKb(a, e, int64_t(k)), l1);
  } else if constexpr (kRBP * kRBQ <= kMaxPixels) {
    StartSubBlock<kRBQ, 1, kPx>(a, e, l1, std::make_index_sequence<kRBP * kRBQ * kVecPerBlock>());
  } else {
    constexpr size_t kFull = kRBQ / kMaxPixels, kRest = kRBQ % kMaxPixels;
    for (size_t row = 0; row < kRBP; ++row) {
      for (size_t j = 0; j < kFull; ++j) {
        const int64_t col = int64_t(j * kMaxPixels);
        StartSubBlock<kMaxPixels, 1, kPx>(a, AtPixel<kPx>(a, e, int64_t(row), col),
                                          AtPixel<kPx>(a, l1, int64_t(row), col),
                                          std::make_index_sequence<kMaxPixels * kVecPerBlock>());
      }
      if constexpr (kRest > 0) {
        const int64_t col = int64_t(kFull * kMaxPixels);
        StartSubBlock<kRest, 1, kPx>(a, AtPixel<kPx>(a, e, int64_t(row), col),
                                     AtPixel<kPx>(a, l1, int64_t(row), col),
                                     std::make_index_sequence<kRest * kVecPerBlock>());
      }
    }
  }
}

/// The forward microkernel for register block kRBP x kRBQ pixels x kKbs K blocks (a FwdKernelFn);
/// input pixels kPx floats apart (16; 32 for the in-place 1x1 stride-2 path; kDenseForm: a.in_px,
/// for the folded first layer read in place, with a.tap_channels channels per tap).
template <size_t kRBP, size_t kRBQ, size_t kKbs, size_t kPx = size_t(kBlock)>
HWY_NOINLINE void FwdMicrokernel(const FwdArgs& a, const StreamEntry& e, const StreamEntry& l1,
                                 const StreamEntry& l2) {
  // L2 prefetch of the weights of a call further ahead (they change when K block or C chunk does).
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(a.wei + l2.w_off, 0, 2);  // locality 2: into L2 (hwy::Prefetch targets L1)
#else
  hwy::Prefetch(a.wei + l2.w_off);
#endif
  RunBlock<kRBP, kRBQ, kKbs, kPx>(a, e, l1);
}

}  // namespace HWY_NAMESPACE
}  // namespace hwyconv
HWY_AFTER_NAMESPACE();

#endif  // HWYCONV_FWD_INL_H_
