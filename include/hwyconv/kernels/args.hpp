// hwyconv/kernels/args.hpp - what a microkernel receives (target-independent types).
//
// The per-target microkernels (kernels/fwd-inl.h) are reached through a KernelTable of function
// pointers, one table per Highway target, selected at run time by the CPU (dispatch/dispatch.hpp).
#pragma once

#include <cstdint>

#include "hwyconv/kernels/variants.hpp"
#include "hwyconv/plan/plan.hpp"
#include "hwyconv/stream/kernel_stream.hpp"

namespace hwyconv {

/// Loop-invariant arguments of the forward microkernels for one layer execution. Pointers are the
/// bases that StreamEntry offsets are added to; bias/scale/shift are padded to Kb*16 floats.
struct FwdArgs {
  const float* in = nullptr;        ///< working input (see FwdPlan)
  const float* wei = nullptr;       ///< weights [Kb][Cr][taps][16 i][16 o]
  float* out = nullptr;             ///< dst nChw16c
  const float* bias = nullptr;      ///< kEpiBias: [Kb*16]
  const float* scale = nullptr;     ///< kEpiScaleShift: [Kb*16]
  const float* shift = nullptr;     ///< kEpiScaleShift: [Kb*16]
  const float* residual = nullptr;  ///< kEpiResidual: nChw16c, same shape as dst
  const Tap* tap = nullptr;         ///< taps[taps]
  int64_t taps = 0;
  int64_t in_row = 0, in_cb = 0, wei_cb = 0, out_row = 0;
  unsigned ops = 0;                 ///< op mask, read by the kEpiGeneric instantiation only
  int epilogue = 0;                 ///< index into kEpilogues of the instantiation to run
};

/// A forward microkernel: runs call `e` of a kernel stream; `l1` and `l2` are the calls whose data
/// it prefetches into L1 and L2 (the next one, and kL2PrefetchDistance ahead).
using FwdKernelFn = void (*)(const FwdArgs& a, const StreamEntry& e, const StreamEntry& l1,
                             const StreamEntry& l2);

/// The microkernels of one Highway target: fwd[block] follows kFwdBlocks. Each contains every
/// epilogue of kEpilogues (chosen by FwdArgs::epilogue once per block).
struct KernelTable {
  FwdKernelFn fwd[kNumFwdBlocks];
  const char* target;  ///< Highway's name of the target these were compiled for ("AVX3", "NEON", ...)
  int max_pixels;      ///< pixels per register sub-block on this target (register budget)
};

}  // namespace hwyconv
