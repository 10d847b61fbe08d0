// hwyconv/hwyconv.hpp - the one header users include.
//
// hwyconv: header-only direct convolutions for CPUs, ahead-of-time microkernels over Google Highway
// (Georganas et al., "Anatomy of High-Performance Deep Learning Convolutions on SIMD Architectures",
// SC18, without the JIT). Layering, one folder each:
//   desc.hpp, options.hpp  the layer (ConvDesc), errors, what a call takes (Pass, PostOps, Options)
//   impl/           implementations, one file each (plan, stream, driver), and the list per pass
//   plan/           the machine model, the plan values they share (kernel geometry, blocking), constexpr
//   stream/         kernel streams: flat per-thread tables of microkernel calls, constexpr
//   kernels/        the variant list and the per-target microkernels (Highway, *-inl.h)
//   epilogue/       fused bias / scale-shift / residual / ReLU, in registers
//   layout/         blocked layouts, reorders, the working inputs the implementations make
//   dispatch/       the Highway foreach_target chain and the run-time target choice
//   threading/      parallel-for and the default thread pool
//   detail/         argument checks, aligned buffers
//   conv.hpp        Conv and StaticConv<desc>: argument checks, then the chosen implementation
#pragma once

#include "hwyconv/desc.hpp"
#include "hwyconv/layout/reorder.hpp"
#include "hwyconv/conv.hpp"
#include "hwyconv/reference.hpp"
