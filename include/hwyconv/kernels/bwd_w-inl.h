// hwyconv/kernels/bwd_w-inl.h - the weight-update microkernel, per Highway target (toggle guard).
//
// One call computes the 16 x 16 (input channel block x output channel block) sub-tensor of dwei for
// one filter tap (four K blocks' on AVX-512), reducing over output pixels (paper SC18, weight update:
// the input value is broadcast and multiplied with a vector of 16 output-channel gradients).
// Accumulators: input channels x K blocks x the vectors of 16 output channels, as a parameter pack
// (see fwd-inl.h), in register-sized groups of input channels.

#if defined(HWYCONV_BWD_W_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HWYCONV_BWD_W_INL_H_
#undef HWYCONV_BWD_W_INL_H_
#else
#define HWYCONV_BWD_W_INL_H_
#endif

#include <cstddef>
#include <utility>

#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include "hwyconv/kernels/args.hpp"
#include "hwyconv/kernels/fwd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace hwyconv {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// K blocks one call updates: 4 where registers allow (AVX-512: 32 registers, one vector per 16
/// channels), else 1. Each broadcast input value feeds one FMA per K block: per pixel and group of
/// 6 input channels, 6 broadcasts + 4 gradient loads for 24 FMAs (paper SC18, weight update:
/// register blocking over the output channels). Measured at N=16, one thread, geomean of ResNet-50:
/// ratio to oneDNN 0.72 with 1 K block, 0.82 with 2, 0.85 with 3 (8 channels); with 4 (6 channels)
/// every ResNet K (a multiple of 64) splits into whole groups, where 3 left a group of 1 K block.
#ifndef HWYCONV_BWD_W_KBS
#define HWYCONV_BWD_W_KBS 4
#endif
inline constexpr size_t kBwdWKbs = kVecPerBlock == 1 && kMaxPixels >= 24 ? HWYCONV_BWD_W_KBS : 1;

/// Input channels whose accumulators fit at once for kKbs K blocks: 24 accumulators on AVX-512
/// (6 channels x 4 K blocks, 8 x 3, 12 x 2, 16 x 1), else the forward kernel's pixel budget
/// (6 on AVX2, 2 on SSE4, 5 on NEON, 6 on SVE). kTight: 20 on AVX-512, for the ReLU-masked kernel
/// reading dense rows, where gcc 12 kept one of 24 accumulators on the stack (check_spills.py).
template <size_t kKbs, bool kTight = false>
inline constexpr size_t kBwdWChannels =
    kBwdWKbs > 1 ? ((kTight ? 20 : 24) / kKbs < 16 ? (kTight ? 20 : 24) / kKbs : 16)
                 : (kMaxPixels < 16 ? kMaxPixels : 16);

/// Pixels of one piece of the reduction (see BwdWMicrokernel): 64 pixels of one C block of src and
/// 4 K blocks of ddst are 20 KiB, so that a piece and the next one, prefetched while the piece's
/// second channel group runs, share L1 (N=16, one thread, against 128-pixel pieces without the
/// prefetch: res2b_branch2a 16.1 -> 13.4 ms, res3b_branch2a 14.4 -> 12.3, ResNet-50 geomean 1.03x).
#ifndef HWYCONV_BWD_W_PIECE
#define HWYCONV_BWD_W_PIECE 64
#endif
inline constexpr int64_t kBwdWPiecePixels = HWYCONV_BWD_W_PIECE;

/// Gradient vector v of the pixel at `g`; with kMask zero where the mask is <= 0 (ReLU backward
/// fused on read: the mask is the forward output of the ReLU).
template <bool kMask, class D>
HWY_INLINE hn::Vec<D> Grad(D d, const float* HWY_RESTRICT g, const float* HWY_RESTRICT m, int64_t off) {
  const auto gv = hn::LoadU(d, g + off);
  if constexpr (kMask) return hn::IfThenElseZero(hn::Gt(hn::LoadU(d, m + off), hn::Zero(d)), gv);
  return gv;
}

/// Accumulates input channels [kC0, kC0 + group) of kKbs K blocks (t.kb, t.kb + 1, ...) of one task
/// over the images [a.n0, a.n1) and output rows [a.p0, a.p1), then stores (or adds) them into dwei.
/// Accumulator i: input channel C(i), K block K(i), vector V(i) of the 16 output channels. kPx 16:
/// blocked input, pixels a.in_px floats apart (16, or 32 for 1x1 stride 2 read in place); kDenseForm:
/// a filter row's folded channels read in place (pixels a.in_px floats apart), where channels at or
/// past a.tap_channels belong to the next filter row and are not stored.
template <size_t kC0, bool kMask, size_t kKbs, size_t kPx, class D, size_t... I>
HWY_INLINE void BwdWGroup(D d, const BwdWArgs& a, const BwdWTask& t, std::index_sequence<I...>,
                          VecAt<D, I>... acc) {
  constexpr auto C = [](size_t i) { return kC0 + i / (kVecPerBlock * kKbs); };
  constexpr auto K = [](size_t i) { return int64_t(i / kVecPerBlock % kKbs); };
  constexpr auto V = [](size_t i) { return int64_t(i % kVecPerBlock * kLanes); };
  // The gradient vectors of one pixel (K blocks x vectors of 16 channels) and which one
  // accumulator i takes.
  constexpr size_t kGrads = kKbs * kVecPerBlock;
  constexpr auto J = [](size_t i) { return i % kGrads; };
  const int64_t Q = a.Q, g_kb = a.ddst_kb;
  auto GradAt = [g_kb](size_t j) { return int64_t(j / kVecPerBlock) * g_kb + int64_t(j % kVecPerBlock * kLanes); };
  // Floats between input pixels: 16, 32 (1x1 stride 2 in place) or, dense rows, stride_w * C.
  const int64_t px = a.in_px;
  // Only the pixels for which the tap reads the source: the others would add zeros.
  const int64_t p0 = a.p0 > t.p_lo ? a.p0 : t.p_lo, p1 = a.p1 < t.p_hi ? a.p1 : t.p_hi;
  const int64_t q0 = t.q_lo, q1 = t.q_hi;
  for (int64_t n = a.n0; n < a.n1; ++n) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* HWY_RESTRICT x =
          a.in + n * a.in_n + t.src_cb * a.in_cb + a.tap[t.t].in_off + (p - a.in_p0) * a.in_row;
      const int64_t g_off = n * a.ddst_n + t.kb * a.ddst_kb + p * Q * kBlock;
      const float* HWY_RESTRICT g = a.ddst + g_off;
      const float* HWY_RESTRICT m = kMask ? a.mask + g_off : nullptr;
      // The second channel group, which finds the piece in L1, prefetches the next piece (its
      // rows a.pf_rows further on) into L1: its lines then arrive while FMAs run, not at the start
      // of the next piece's first group.
      constexpr bool kPrefetch = kPx != kDenseForm && kC0 > 0 && kC0 == kBwdWChannels<kKbs>;
      if (kPrefetch && a.pf_rows > 0) {
        const float* xn = x + a.pf_rows * a.in_row;
        const float* gn = g + a.pf_rows * Q * kBlock;
        for (int64_t q = q0; q < q1; ++q) {
          hwy::Prefetch(xn + q * px);
          for (size_t k = 0; k < kKbs; ++k) hwy::Prefetch(gn + int64_t(k) * g_kb + q * kBlock);
          ((acc = hn::MulAdd(hn::Set(d, x[q * px + C(I)]),
                             Grad<kMask>(d, g, m, K(I) * g_kb + q * kBlock + V(I)), acc)),
           ...);
        }
        continue;
      }
      if constexpr (kGrads <= 4 && !(kMask && kPx == kDenseForm)) {
        // The pixel's gradient vectors loaded once each, in registers, for all the group's channels
        // (not for masked dense rows, where gcc 12 then put a vector on the stack in the loop).
        for (int64_t q = q0; q < q1; ++q) {
          const auto g0 = InRegister(Grad<kMask>(d, g, m, GradAt(0) + q * kBlock));
          const auto g1 = InRegister(Grad<kMask>(d, g, m, GradAt(kGrads > 1 ? 1 : 0) + q * kBlock));
          const auto g2 = InRegister(Grad<kMask>(d, g, m, GradAt(kGrads > 2 ? 2 : 0) + q * kBlock));
          const auto g3 = InRegister(Grad<kMask>(d, g, m, GradAt(kGrads > 3 ? 3 : 0) + q * kBlock));
          ((acc = hn::MulAdd(hn::Set(d, x[q * px + C(I)]),
                             J(I) == 0 ? g0 : (J(I) == 1 ? g1 : (J(I) == 2 ? g2 : g3)), acc)),
           ...);
        }
      } else {
        for (int64_t q = q0; q < q1; ++q)
          ((acc = hn::MulAdd(hn::Set(d, x[q * px + C(I)]), Grad<kMask>(d, g, m, K(I) * g_kb + q * kBlock + V(I)),
                             acc)),
           ...);
      }
    }
  }
  float* HWY_RESTRICT w = a.dwei + t.kb * a.wei_kb + t.cb * a.wei_cb + a.tap[t.t].w_off;
  const int64_t w_kb = a.wei_kb;
  if constexpr (kPx == kDenseForm) {
    const int64_t channels = a.tap_channels - t.cb * kBlock;
    if (a.accumulate)
      ((int64_t(C(I)) < channels ? hn::StoreU(hn::Add(acc, hn::LoadU(d, w + K(I) * w_kb + C(I) * kBlock + V(I))), d,
                                              w + K(I) * w_kb + C(I) * kBlock + V(I))
                                 : void()),
       ...);
    else
      ((int64_t(C(I)) < channels ? hn::StoreU(acc, d, w + K(I) * w_kb + C(I) * kBlock + V(I)) : void()), ...);
  } else if (a.accumulate) {
    (hn::StoreU(hn::Add(acc, hn::LoadU(d, w + K(I) * w_kb + C(I) * kBlock + V(I))), d,
                w + K(I) * w_kb + C(I) * kBlock + V(I)),
     ...);
  } else {
    (hn::StoreU(acc, d, w + K(I) * w_kb + C(I) * kBlock + V(I)), ...);
  }
}

template <size_t kC0, bool kMask, size_t kKbs, size_t kPx, size_t... I>
HWY_INLINE void StartBwdWGroup(const BwdWArgs& a, const BwdWTask& t, std::index_sequence<I...> seq) {
  const DF d;
  BwdWGroup<kC0, kMask, kKbs, kPx>(d, a, t, seq, ((void)I, hn::Zero(d))...);
}

/// dbias of one K block: sum of the (masked) gradients over the images and rows of the call.
template <bool kMask>
HWY_INLINE void BwdBias(const BwdWArgs& a, int64_t kb) {
  const DF d;
  for (size_t v = 0; v < kVecPerBlock; ++v) {
    auto s0 = hn::Zero(d), s1 = hn::Zero(d);
    for (int64_t n = a.n0; n < a.n1; ++n) {
      const int64_t off = n * a.ddst_n + kb * a.ddst_kb + a.p0 * a.Q * kBlock + int64_t(v * kLanes);
      const int64_t pixels = (a.p1 - a.p0) * a.Q;
      int64_t i = 0;
      for (; i + 2 <= pixels; i += 2) {
        s0 = hn::Add(s0, Grad<kMask>(d, a.ddst, a.mask, off + i * kBlock));
        s1 = hn::Add(s1, Grad<kMask>(d, a.ddst, a.mask, off + (i + 1) * kBlock));
      }
      if (i < pixels) s0 = hn::Add(s0, Grad<kMask>(d, a.ddst, a.mask, off + i * kBlock));
    }
    float* b = a.dbias + kb * kBlock + int64_t(v * kLanes);
    const auto s = hn::Add(s0, s1);
    hn::StoreU(a.accumulate ? hn::Add(s, hn::LoadU(d, b)) : s, d, b);
  }
}

/// The channel groups of a task, from channel kC0 on (in place: none past the filter row's run).
template <size_t kC0, bool kMask, size_t kKbs, size_t kPx>
HWY_INLINE void BwdWGroups(const BwdWArgs& a, const BwdWTask& t) {
  if constexpr (kC0 < size_t(kBlock)) {
    if constexpr (kPx == kDenseForm)
      if (int64_t(kC0) >= a.tap_channels - t.cb * kBlock) return;
    constexpr size_t kCh = kBwdWChannels<kKbs, kMask && kPx == kDenseForm>;
    constexpr size_t kN = size_t(kBlock) - kC0 < kCh ? size_t(kBlock) - kC0 : kCh;
    StartBwdWGroup<kC0, kMask, kKbs, kPx>(a, t, std::make_index_sequence<kN * kVecPerBlock * kKbs>());
    BwdWGroups<kC0 + kN, kMask, kKbs, kPx>(a, t);
  }
}

/// Channel counts a group reading dense rows is compiled for (up to the register budget kCh).
inline constexpr size_t kDenseGroupSizes[] = {1, 2, 3, 4, 6, 8, 12, 16};

/// Dense rows: one group of the channels [0, left) of `a` (whose `in`, `dwei` and `tap_channels`
/// start at the group's first channel), of the smallest compiled size that covers them: a filter
/// row of S*C = 3 channels takes 3 channels' FMAs, not a full group's.
template <bool kMask, size_t kKbs, size_t kCh, size_t kS = 0>
HWY_INLINE void BwdWDenseGroup(const BwdWArgs& a, const BwdWTask& t, int64_t left) {
  constexpr size_t kN = kDenseGroupSizes[kS] < kCh ? kDenseGroupSizes[kS] : kCh;
  if constexpr (kN < kCh) {
    if (left > int64_t(kN)) return BwdWDenseGroup<kMask, kKbs, kCh, kS + 1>(a, t, left);
  }
  StartBwdWGroup<0, kMask, kKbs, kDenseForm>(a, t, std::make_index_sequence<kN * kVecPerBlock * kKbs>());
}

/// Dense rows without a ReLU mask: the channels of the task's run (the S*C channels of a filter row
/// from C block t.cb on, at most 16) in groups of kCh, the last one sized to what is left. A group
/// never reaches past channel 16 of the block: from c0 = j * kCh on, the sizes up to kCh include
/// 16 - c0 (the masked kernel keeps BwdWGroups' fixed groups: gcc 12 put a vector on the stack in
/// the hot loop of the smaller masked ones).
template <size_t kKbs>
HWY_INLINE void BwdWDenseGroups(const BwdWArgs& a, const BwdWTask& t) {
  constexpr size_t kCh = kBwdWChannels<kKbs>;
  const int64_t left = a.tap_channels - t.cb * kBlock, run = left < kBlock ? left : kBlock;
  BwdWArgs g = a;
  for (int64_t c0 = 0; c0 < run; c0 += int64_t(kCh)) {
    g.in = a.in + c0;
    g.dwei = a.dwei + c0 * kBlock;
    g.tap_channels = t.cb * kBlock + run - c0;  // stores channels [c0, run) of the block only
    BwdWDenseGroup<false, kKbs, kCh>(g, t, run - c0);
  }
}

/// The channel groups of task t over one piece of pixels, for the task's t.kbs K blocks (kK is the
/// largest instantiated count: kBwdWKbs, then down to 1).
template <bool kMask, size_t kPx, size_t kK = kBwdWKbs>
HWY_INLINE void BwdWPiece(const BwdWArgs& a, const BwdWTask& t) {
  if constexpr (kK > 1) {
    if (t.kbs != int64_t(kK)) return BwdWPiece<kMask, kPx, kK - 1>(a, t);
  }
  if constexpr (kPx == kDenseForm && !kMask)
    BwdWDenseGroups<kK>(a, t);
  else
    BwdWGroups<0, kMask, kK, kPx>(a, t);
}

/// The weight-update microkernel (a BwdWKernelFn): task t of a, over K blocks [t.kb, t.kb + t.kbs)
/// (t.kbs <= kBwdWKbs; the caller sizes tasks by KernelTable::bwd_w_kbs); kPx: 16 for blocked input
/// (pixels a.in_px floats apart), kDenseForm for the folded first layer read in place.
template <bool kMask, size_t kPx = size_t(kBlock)>
HWY_NOINLINE void BwdWMicrokernel(const BwdWArgs& a, const BwdWTask& t) {
  // The pixels in L1-sized pieces (whole rows of about kBwdWPiecePixels pixels of one image), each
  // piece running all channel groups: the second group re-reads the piece's src and ddst lines from
  // L1 instead of L2, for one load and one store of each accumulator per piece.
  const int64_t rows = a.Q >= kBwdWPiecePixels ? 1 : kBwdWPiecePixels / a.Q;
  BwdWArgs piece = a;
  // Images smaller than a piece (small maps): several whole images per piece.
  const int64_t image = (a.p1 - a.p0) * a.Q;
  const int64_t images = image <= 0 || image >= kBwdWPiecePixels ? 1 : kBwdWPiecePixels / image;
  if (images > 1) {
    for (int64_t n = a.n0; n < a.n1; n += images) {
      piece.n0 = n;
      piece.n1 = n + images < a.n1 ? n + images : a.n1;
      piece.pf_rows = 0;
      BwdWPiece<kMask, kPx>(piece, t);
      piece.accumulate = true;
    }
  } else {
    for (int64_t n = a.n0; n < a.n1; ++n) {
      for (int64_t p = a.p0; p < a.p1; p += rows) {
        piece.n0 = n;
        piece.n1 = n + 1;
        piece.p0 = p;
        piece.p1 = p + rows < a.p1 ? p + rows : a.p1;
        piece.pf_rows = piece.p1 < a.p1 ? rows : 0;
        BwdWPiece<kMask, kPx>(piece, t);
        piece.accumulate = true;
      }
    }
  }
  if (a.dbias && t.cb == 0 && t.t == 0)
    for (int64_t k = 0; k < t.kbs; ++k) BwdBias<kMask>(a, t.kb + k);
}

}  // namespace HWY_NAMESPACE
}  // namespace hwyconv
HWY_AFTER_NAMESPACE();

#endif  // HWYCONV_BWD_W_INL_H_
