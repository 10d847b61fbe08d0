// tests/consumer/main.cpp - a program that uses hwyconv the way a downstream project does: one
// include, one convolution (3x3, stride 1, pad 1, bias, fused ReLU) through hwyconv::Conv, checked
// against hwyconv::reference::conv_fwd. Built by tests/consumer/CMakeLists.txt against the installed
// package, with add_subdirectory, or with the single header alone, and by scripts/test-consumer.sh
// with pkg-config. Prints the mode, the Highway target and the result; exit status 0 = correct.
#include <hwyconv/hwyconv.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#ifndef HWYCONV_CONSUMER_MODE
#define HWYCONV_CONSUMER_MODE "unknown"
#endif

int main() {
  const hwyconv::ConvDesc d(1, 19, 21, 8, 9, 3, 3, 1, 1);  // N C K H W R S stride pad
  const int64_t P = d.P(), Q = d.Q();
  // Deterministic inputs in [-1, 1).
  uint32_t state = 12345;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return float(state >> 8) / float(1u << 23) - 1.0f;
  };
  std::vector<float> src(size_t(d.N * d.C * d.H * d.W)), wei(size_t(d.K * d.C * d.R * d.S)), bias(size_t(d.K));
  for (float& v : src) v = next();
  for (float& v : wei) v = next();
  for (float& v : bias) v = next();

  hwyconv::Conv conv(d, {.threads = 1});
  std::vector<float> bsrc(size_t(conv.src_size())), bwei(size_t(conv.wei_size())), bdst(size_t(conv.dst_size()));
  hwyconv::reorder_nchw_to_nChw16c(src, bsrc, d.N, d.C, d.H, d.W);
  hwyconv::reorder_oihw_to_OIhw16i16o(wei, bwei, d.K, d.C, d.R, d.S);
  conv.forward(bsrc, bwei, bias, bdst, {.relu = true});
  std::vector<float> dst(size_t(d.N * d.K * P * Q));
  hwyconv::reorder_nChw16c_to_nchw(bdst, dst, d.N, d.K, P, Q);

  std::vector<double> ref(dst.size());
  hwyconv::reference::conv_fwd(d, src, wei, bias, ref);
  // |error| <= 1e-5 * (1 + |ref|): float sums of C*R*S = 171 products of values below 1 in magnitude
  // round to within a few 1e-6; any indexing error is off by whole products.
  int bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double want = std::max(ref[i], 0.0);
    if (!(std::fabs(double(dst[i]) - want) <= 1e-5 * (1.0 + std::fabs(want)))) ++bad;
  }
  std::printf("consumer (%s): target %s, %zu outputs, %d wrong: %s\n", HWYCONV_CONSUMER_MODE,
              hwyconv::Conv::target(), ref.size(), bad, bad ? "FAILED" : "ok");
  return bad ? 1 : 0;
}
