// hwyconv/dispatch/dispatch.hpp - owns the single Highway foreach_target chain of a translation unit.
//
// Dynamic dispatch (default): every microkernel variant is compiled for every Highway target
// (foreach_target.h re-includes targets-inl.h once per target) and the best one the CPU supports is
// picked at run time (HWY_DYNAMIC_DISPATCH); links libhwy (hwy::hwy).
// Static dispatch (define HWYCONV_STATIC_DISPATCH, CMake option HWYCONV_STATIC_DISPATCH): only the
// target the compiler flags allow (HWY_STATIC_TARGET) is compiled; header-only, no libhwy needed.
//
// Rule for users: Highway 1.0.3's foreach_target.h has a plain include guard, so a translation unit
// that includes hwyconv (with dynamic dispatch) must not run a foreach_target chain of its own. Put
// your own Highway code with foreach_target in another .cpp file, or use static dispatch there.
#pragma once

// AVX3_DL (Ice Lake and later) is compiled too; must be seen before Highway's first header.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL 1
#endif

#include "hwyconv/kernels/args.hpp"

#if defined(HWY_HIGHWAY_INCLUDED) && !defined(HWYCONV_STATIC_DISPATCH)
#error "hwyconv: include <hwyconv/hwyconv.hpp> before <hwy/highway.h> (Highway's foreach_target.h must come first in a translation unit), or define HWYCONV_STATIC_DISPATCH"
#endif

#ifdef HWYCONV_STATIC_DISPATCH
#include <hwy/highway.h>
#include "hwyconv/dispatch/targets-inl.h"
#else
#undef HWY_TARGET_INCLUDE
#ifdef HWYCONV_SELF_INCLUDE
#define HWY_TARGET_INCLUDE HWYCONV_SELF_INCLUDE
#else
#define HWY_TARGET_INCLUDE "hwyconv/dispatch/targets-inl.h"
#endif
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include "hwyconv/dispatch/targets-inl.h"
#include <hwy/targets.h>
#endif

namespace hwyconv {

#ifndef HWYCONV_STATIC_DISPATCH
HWY_EXPORT(GetKernelTable);
#endif

/// The microkernels of the best Highway target this CPU supports (or the one target compiled with
/// HWYCONV_STATIC_DISPATCH). Cheap: an indexed load; follows hwy::SetSupportedTargetsForTest.
inline const KernelTable& kernels() {
#ifdef HWYCONV_STATIC_DISPATCH
  return *HWY_STATIC_DISPATCH(GetKernelTable)();
#else
  return *HWY_DYNAMIC_DISPATCH(GetKernelTable)();
#endif
}

}  // namespace hwyconv
