// hwyconv/hwyconv.hpp - the one header users include.
//
// hwyconv: header-only direct convolutions for CPUs, ahead-of-time microkernels over Google Highway
// (Georganas et al., "Anatomy of High-Performance Deep Learning Convolutions on SIMD Architectures",
// SC18, without the JIT). Layering, one folder each:
//   desc.hpp        shape (ConvDesc) and errors
//   layout/         blocked layouts (nChw16c, OIhw16i16o), reorders, the plan's working input
//   plan/           blocking decisions (FwdPlan), constexpr
//   stream/         kernel streams: flat per-thread tables of microkernel calls, constexpr
//   kernels/        the variant list and the per-target microkernels (Highway, *-inl.h)
//   epilogue/       fused bias / scale-shift / residual / ReLU, in registers
//   dispatch/       the Highway foreach_target chain and the run-time target choice
//   threading/      parallel-for and the default thread pool
//   conv.hpp        Conv and StaticConv<desc>
#pragma once

#include "hwyconv/desc.hpp"
#include "hwyconv/layout/reorder.hpp"
#include "hwyconv/conv.hpp"
#include "hwyconv/reference.hpp"
