// examples/fashion_mnist/ops.cpp - see ops.hpp. The inner loops run over the 16 channels of a
// pixel and are branch-free, so the compiler turns them into SIMD code (examples/CMakeLists.txt
// adds -fno-trapping-math for this file: without it GCC does not if-convert float compares).
#include "ops.hpp"

#include <bit>

namespace fmnist {

namespace {
constexpr int64_t kB = 16;  // channels per block (nChw16c)
}

void max_pool_2x2_fwd(const float* in, float* out, uint8_t* arg, int64_t planes, int64_t H, int64_t W) {
  const int64_t Ho = H / 2, Wo = W / 2;
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t y = 0; y < Ho; ++y)
      for (int64_t x = 0; x < Wo; ++x) {
        const float* a = in + ((pl * H + 2 * y) * W + 2 * x) * kB;  // top-left; top-right at +16
        const float* b = a + W * kB;                                // bottom-left; bottom-right at +16
        float* o = out + ((pl * Ho + y) * Wo + x) * kB;
        uint8_t* g = arg + ((pl * Ho + y) * Wo + x) * kB;
        for (int64_t c = 0; c < kB; ++c) {
          const float v0 = a[c], v1 = a[kB + c], v2 = b[c], v3 = b[kB + c];
          const int32_t top = v1 > v0, bottom = v3 > v2;  // strict: the first position wins ties
          const float m0 = top ? v1 : v0, m1 = bottom ? v3 : v2;
          const int32_t low = m1 > m0;
          o[c] = low ? m1 : m0;
          g[c] = uint8_t(low ? 2 + bottom : top);
        }
      }
}

void max_pool_2x2_bwd(const float* dout, const uint8_t* arg, float* din, int64_t planes, int64_t H, int64_t W) {
  const int64_t Ho = H / 2, Wo = W / 2;
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t y = 0; y < Ho; ++y)
      for (int64_t x = 0; x < Wo; ++x) {
        const int64_t o = ((pl * Ho + y) * Wo + x) * kB;
        float* a = din + ((pl * H + 2 * y) * W + 2 * x) * kB;
        float* b = a + W * kB;
        for (int64_t c = 0; c < kB; ++c) {
          // dout where the maximum was, else +0.0: selected with bit masks (no float compare).
          const uint32_t k = arg[o + c], d = std::bit_cast<uint32_t>(dout[o + c]);
          a[c] = std::bit_cast<float>(d & (0u - uint32_t(k == 0)));
          a[kB + c] = std::bit_cast<float>(d & (0u - uint32_t(k == 1)));
          b[c] = std::bit_cast<float>(d & (0u - uint32_t(k == 2)));
          b[kB + c] = std::bit_cast<float>(d & (0u - uint32_t(k == 3)));
        }
      }
}

}  // namespace fmnist
