// examples/fashion_mnist/ops.hpp - the network's layers that are not convolutions: 2x2 max pooling
// on nChw16c activations (forward and backward). Plain C++ in its own translation unit (ops.cpp),
// compiled with -fno-trapping-math so that GCC vectorises the float compare-and-select loops.
#pragma once

#include <cstdint>

namespace fmnist {

/// 2x2 max pooling with stride 2 over `planes` nChw16c planes of H x W x 16 floats (H, W even).
/// Writes out (H/2 x W/2 x 16 per plane) and arg, the position of each maximum in its window
/// (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right; the first one on ties).
void max_pool_2x2_fwd(const float* in, float* out, uint8_t* arg, int64_t planes, int64_t H, int64_t W);

/// Backward of max_pool_2x2_fwd: din (H x W x 16 per plane, every element written) gets dout at
/// each window's maximum and 0 elsewhere.
void max_pool_2x2_bwd(const float* dout, const uint8_t* arg, float* din, int64_t planes, int64_t H, int64_t W);

}  // namespace fmnist
