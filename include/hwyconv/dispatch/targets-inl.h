// hwyconv/dispatch/targets-inl.h - instantiates every microkernel variant for one Highway target and
// returns them as a KernelTable. Re-included once per target by dispatch.hpp (toggle guard).

#if defined(HWYCONV_TARGETS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HWYCONV_TARGETS_INL_H_
#undef HWYCONV_TARGETS_INL_H_
#else
#define HWYCONV_TARGETS_INL_H_
#endif

#include <utility>

#include <hwy/highway.h>

#include "hwyconv/kernels/args.hpp"
#include "hwyconv/kernels/bwd_w-inl.h"
#include "hwyconv/kernels/fwd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace hwyconv {
namespace HWY_NAMESPACE {

template <size_t... kJ>
constexpr void MakeStride2(KernelTable& t, std::index_sequence<kJ...>) {
  ((t.fwd_s2[find_fwd_block(kStride2Blocks[kJ].rb_p, kStride2Blocks[kJ].rb_q, kStride2Blocks[kJ].kbs)] =
        &FwdMicrokernel<size_t(kStride2Blocks[kJ].rb_p), size_t(kStride2Blocks[kJ].rb_q),
                        size_t(kStride2Blocks[kJ].kbs), 2>),
   ...);
}

template <size_t... kB>
constexpr KernelTable MakeKernelTable(std::index_sequence<kB...>) {
  KernelTable t{};
  ((t.fwd[kB] = &FwdMicrokernel<size_t(kFwdBlocks[kB].rb_p), size_t(kFwdBlocks[kB].rb_q),
                                 size_t(kFwdBlocks[kB].kbs)>),
   ...);
  MakeStride2(t, std::make_index_sequence<size_t(kNumStride2Blocks)>());
  t.bwd_w[0] = &BwdWMicrokernel<false>;
  t.bwd_w[1] = &BwdWMicrokernel<true>;
  t.max_pixels = int(kMaxPixels);
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
