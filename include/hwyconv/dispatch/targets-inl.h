// hwyconv/dispatch/targets-inl.h - instantiates every microkernel variant for one Highway target and
// returns them as a KernelTable. Re-included once per target by dispatch.hpp (toggle guard).

#if defined(HWYCONV_TARGETS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HWYCONV_TARGETS_INL_H_
#undef HWYCONV_TARGETS_INL_H_
#else
#define HWYCONV_TARGETS_INL_H_
#endif

#include <iterator>
#include <utility>

#include <hwy/highway.h>

#include "hwyconv/kernels/args.hpp"
#include "hwyconv/kernels/bwd_w-inl.h"
#include "hwyconv/kernels/depthwise-inl.h"
#include "hwyconv/kernels/fwd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace hwyconv {
namespace HWY_NAMESPACE {

/// Fills fns[block] for the blocks of kList (kStride2Blocks, kDenseBlocks), compiled in pixel form
/// kPx (32 floats apart, or kDenseForm).
template <const auto& kList, size_t kPx, size_t... kJ>
constexpr void MakeForm(FwdKernelFn* fns, std::index_sequence<kJ...>) {
  ((fns[find_fwd_block(kList[kJ].rb_p, kList[kJ].rb_q, kList[kJ].kbs)] =
        &FwdMicrokernel<size_t(kList[kJ].rb_p), size_t(kList[kJ].rb_q), size_t(kList[kJ].kbs), kPx>),
   ...);
}

template <size_t... kB>
constexpr KernelTable MakeKernelTable(std::index_sequence<kB...>) {
  KernelTable t{};
  ((t.fwd[kB] = &FwdMicrokernel<size_t(kFwdBlocks[kB].rb_p), size_t(kFwdBlocks[kB].rb_q),
                                 size_t(kFwdBlocks[kB].kbs)>),
   ...);
  MakeForm<kStride2Blocks, 2 * size_t(kBlock)>(t.fwd_s2, std::make_index_sequence<std::size(kStride2Blocks)>());
  MakeForm<kDenseBlocks, kDenseForm>(t.fwd_dense, std::make_index_sequence<std::size(kDenseBlocks)>());
  t.bwd_w[0] = &BwdWMicrokernel<false>;
  t.bwd_w[1] = &BwdWMicrokernel<true>;
  t.bwd_w_dense[0] = &BwdWMicrokernel<false, kDenseForm>;
  t.bwd_w_dense[1] = &BwdWMicrokernel<true, kDenseForm>;
  t.dw_row = &DwRowMicrokernel;
  t.dw_bwd_w[0] = &DwBwdWMicrokernel<1>;
  t.dw_bwd_w[1] = &DwBwdWMicrokernel<2>;
  t.dw_bwd_w[2] = &DwBwdWMicrokernel<3>;
  t.dw_bwd_w[3] = &DwBwdWMicrokernel<4>;
  t.max_pixels = int(kMaxPixels);
  t.vec_per_block = int(kVecPerBlock);
  t.bwd_w_kbs = int(kBwdWKbs);
  return t;
}

/// The kernel table of this target (exported for dynamic dispatch).
inline const KernelTable* GetKernelTable() {
  static const KernelTable table = [] {
    KernelTable t = MakeKernelTable(std::make_index_sequence<size_t(kNumFwdBlocks)>());
    t.target = hwy::TargetName(HWY_TARGET);
    return t;
  }();
  return &table;
}

}  // namespace HWY_NAMESPACE
}  // namespace hwyconv
HWY_AFTER_NAMESPACE();

#endif  // HWYCONV_TARGETS_INL_H_
