// hwyconv/epilogue/epilogue-inl.h - fused epilogues, per Highway target (toggle include guard).
//
// Applied by the microkernel to each accumulator of a finished output block, in registers, before
// its only final store (as oneDNN's post-ops and CUTLASS's epilogue functors are). The op mask is a
// template argument: an op that is absent costs nothing. To add an op: a bit in EpilogueOp
// (kernels/variants.hpp), its pointer in FwdArgs, one line here.

#if defined(HWYCONV_EPILOGUE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HWYCONV_EPILOGUE_INL_H_
#undef HWYCONV_EPILOGUE_INL_H_
#else
#define HWYCONV_EPILOGUE_INL_H_
#endif

#include <hwy/highway.h>

#include "hwyconv/kernels/args.hpp"

HWY_BEFORE_NAMESPACE();
namespace hwyconv {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// v holds output channels [ch, ch + Lanes) of one pixel; `res` points to the same elements of the
/// residual tensor. Order: + bias; * scale + shift; + residual; ReLU; clamp; zero past K (a.k_valid).
/// Args: FwdArgs or DwArgs (the same epilogue fields).
template <unsigned kOps, class D, class V, class Args>
HWY_INLINE V ApplyEpilogue(D d, V v, const Args& a, int64_t ch, const float* HWY_RESTRICT res) {
  const unsigned ops = (kOps & kEpiGeneric) ? a.ops : kOps;
  if (ops & kEpiBias) v = hn::Add(v, hn::LoadU(d, a.bias + ch));
  if (ops & kEpiScaleShift) v = hn::MulAdd(v, hn::LoadU(d, a.scale + ch), hn::LoadU(d, a.shift + ch));
  if (ops & kEpiResidual) v = hn::Add(v, hn::LoadU(d, res));
  // ReLU keeps NaN (as PyTorch's and oneDNN's do): zero where v < 0, which NaN is not; Max(v, 0)
  // would turn NaN into 0.
  if (ops & kEpiRelu) v = hn::IfThenZeroElse(hn::Lt(v, hn::Zero(d)), v);
  // Clamp by comparisons, so that NaN (for which both are false) stays NaN.
  if (ops & kEpiClamp) {
    const auto lo = hn::Set(d, a.clamp_lo), hi = hn::Set(d, a.clamp_hi);
    v = hn::IfThenElse(hn::Lt(v, lo), lo, v);
    v = hn::IfThenElse(hn::Gt(v, hi), hi, v);
  }
  // Channels at or past K (the padding lanes of the last block) are exactly zero, whatever the
  // input held: NaN or Inf in src would otherwise reach them through the zero weights.
  if (ch + int64_t(hn::Lanes(d)) > a.k_valid)
    v = hn::IfThenElseZero(hn::FirstN(d, size_t(a.k_valid > ch ? a.k_valid - ch : 0)), v);
  return v;
}

}  // namespace HWY_NAMESPACE
}  // namespace hwyconv
HWY_AFTER_NAMESPACE();

#endif  // HWYCONV_EPILOGUE_INL_H_
