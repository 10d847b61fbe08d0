// examples/minimal_layer - the smallest useful hwyconv program: one ResNet-50 layer (64 -> 64
// channels, 56 x 56, 3 x 3, stride 1, pad 1, bias, ReLU) forward on one image, a spot check of a
// few outputs against hwyconv::reference, and the Highway target that ran. Used to measure the
// binary size of hwyconv's kernels per build configuration (README, "Embedded and small builds").
//
// The spot check runs the reference loop on the 3 x 3 x 64 input window of each checked output (a
// 1 x 1 output problem, pad 0, with the zero padding written into the window): exact, and far
// cheaper than the whole reference layer, which matters under emulation.
#include <hwyconv/hwyconv.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

int main() {
  constexpr hwyconv::ConvDesc d{1, 64, 64, 56, 56, 3, 3, 1, 1};  // N C K H W R S stride pad
  const int64_t P = d.P(), Q = d.Q();

  uint32_t state = 2024;  // deterministic data in [-1, 1)
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return float(state >> 8) / float(1u << 23) - 1.0f;
  };
  std::vector<float> src(size_t(d.N * d.C * d.H * d.W)), wei(size_t(d.K * d.C * d.R * d.S)), bias(size_t(d.K));
  for (float& v : src) v = next();
  for (float& v : wei) v = next();
  for (float& v : bias) v = next();

  hwyconv::Conv conv(d);
  std::vector<float> bsrc(size_t(conv.src_size())), bwei(size_t(conv.wei_size())), bdst(size_t(conv.dst_size()));
  hwyconv::reorder_nchw_to_nChw16c(src, bsrc, d.N, d.C, d.H, d.W);
  hwyconv::reorder_oihw_to_OIhw16i16o(wei, bwei, d.K, d.C, d.R, d.S);
  conv.forward(bsrc, bwei, bias, bdst, {.relu = true});

  // Spot check: corners, edges and interior pixels, a few output channels each.
  const int64_t pix[][2] = {{0, 0}, {0, 55}, {55, 0}, {55, 55}, {0, 27}, {31, 0}, {28, 28}, {13, 41}};
  const int64_t chans[] = {0, 15, 16, 37, 63};
  const hwyconv::ConvDesc window{1, d.C, d.K, d.R, d.S, d.R, d.S, 1, 0};  // one output pixel
  std::vector<float> patch(size_t(d.C * d.R * d.S));
  std::vector<double> want(size_t(d.K));
  int checked = 0, bad = 0;
  double worst = 0;
  for (const auto& pq : pix) {
    const int64_t p = pq[0], q = pq[1];
    for (int64_t c = 0; c < d.C; ++c)
      for (int64_t r = 0; r < d.R; ++r)
        for (int64_t s = 0; s < d.S; ++s) {
          const int64_t h = p - d.pad_t + r, w = q - d.pad_l + s;
          const bool inside = h >= 0 && h < d.H && w >= 0 && w < d.W;
          patch[size_t((c * d.R + r) * d.S + s)] = inside ? src[size_t((c * d.H + h) * d.W + w)] : 0.0f;
        }
    hwyconv::reference::conv_fwd(window, patch, wei, bias, want);
    for (const int64_t k : chans) {
      const double ref = std::max(want[size_t(k)], 0.0);
      // nChw16c: [n][k / 16][p][q][k % 16]
      const double got = bdst[size_t((((k / 16) * P + p) * Q + q) * 16 + k % 16)];
      const double err = std::fabs(got - ref) / (1.0 + std::fabs(ref));
      worst = std::max(worst, err);
      bad += !(err <= 1e-5);  // 576 products of values below 1: float rounding stays near 1e-6
      ++checked;
    }
  }
  std::printf("minimal_layer: %s 64->64 56x56 3x3 forward on %s: %d outputs checked, worst error %.2g: %s\n",
              hwyconv::Conv::target(), HWY_ARCH_X86 ? "x86" : HWY_ARCH_ARM ? "Arm" : HWY_ARCH_RVV ? "RISC-V" : "this CPU", checked,
              worst, bad ? "FAILED" : "ok");
  return bad ? 1 : 0;
}
