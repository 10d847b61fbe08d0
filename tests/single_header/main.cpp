// tests/single_header/main.cpp - builds against single_include/hwyconv/hwyconv.hpp ALONE (the include
// path holds single_include/ and Highway, not include/): proves the generated single header is
// complete and survives Highway's foreach_target re-inclusion. Runs one convolution with bias and a
// fused ReLU through Conv (dynamic shape) and StaticConv (compile-time shape), compares both with
// hwyconv::reference::conv_fwd, prints the Highway target that ran, and returns 1 on any mismatch.
#include <hwyconv/hwyconv.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <span>
#include <vector>

namespace {

constexpr hwyconv::ConvDesc kDesc{1, 20, 24, 9, 11, 3, 3, 1, 1};  // N C K H W R S stride pad

/// Deterministic values in [-1, 1) (no <random>: same data on every standard library).
std::vector<float> Fill(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t x = seed;
  for (float& f : v) {
    x = x * 1664525u + 1013904223u;
    f = float(x >> 8) / float(1u << 23) - 1.0f;
  }
  return v;
}

/// Tolerance: the kernels accumulate C*R*S products in float (in an order that differs from the
/// reference, which accumulates in double), so the rounding error grows about like sqrt(C*R*S)
/// float epsilons per unit of magnitude. We accept |got - ref| <= 1e-4 * sqrt(C*R*S) * max(1, |ref|):
/// relative 1e-4, scaled by sqrt(C*R*S); far above rounding noise, far below any indexing bug
/// (which is off by whole products of values in [-1, 1)).
int Compare(const char* what, std::span<const float> got, std::span<const double> ref) {
  const double tol = 1e-4 * std::sqrt(double(kDesc.C * kDesc.R * kDesc.S));
  int bad = 0;
  double worst = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(double(got[i]) - ref[i]) / std::max(1.0, std::fabs(ref[i]));
    worst = std::max(worst, err);
    if (!(err <= tol)) {  // also catches NaN
      if (bad < 5) std::printf("%s: mismatch at %zu: got %.7g, want %.7g\n", what, i, double(got[i]), ref[i]);
      ++bad;
    }
  }
  std::printf("%s: %zu outputs, worst relative error %.3g (tolerance %.3g), %d mismatches\n", what,
              ref.size(), worst, tol, bad);
  return bad;
}

}  // namespace

int main() {
  try {
    const hwyconv::ConvDesc& d = kDesc;
    const int64_t P = d.P(), Q = d.Q();
    const std::vector<float> src = Fill(size_t(d.N * d.C * d.H * d.W), 1);
    const std::vector<float> wei = Fill(size_t(d.K * d.C * d.R * d.S), 2);
    const std::vector<float> bias = Fill(size_t(d.K), 3);

    // Reference in plain layouts, then the ReLU the kernels fuse.
    std::vector<double> ref(size_t(d.N * d.K * P * Q));
    hwyconv::reference::conv_fwd(d, src, wei, bias, ref);
    for (double& v : ref) v = std::max(v, 0.0);

    // Blocked layouts for the kernels.
    std::vector<float> src_b(size_t(hwyconv::act_blocked_size(d.N, d.C, d.H, d.W)));
    std::vector<float> wei_b(size_t(hwyconv::wei_blocked_size(d.K, d.C, d.R, d.S)));
    std::vector<float> dst_b(size_t(hwyconv::act_blocked_size(d.N, d.K, P, Q)));
    std::vector<float> dst(ref.size());
    hwyconv::reorder_nchw_to_nChw16c(src, src_b, d.N, d.C, d.H, d.W);
    hwyconv::reorder_oihw_to_OIhw16i16o(wei, wei_b, d.K, d.C, d.R, d.S);

    int bad = 0;
    hwyconv::Conv conv(d, {.threads = 2});
    conv.forward(src_b, wei_b, bias, dst_b, {.relu = true});
    hwyconv::reorder_nChw16c_to_nchw(dst_b, dst, d.N, d.K, P, Q);
    bad += Compare("Conv", dst, ref);

    std::fill(dst_b.begin(), dst_b.end(), -1.0f);
    hwyconv::StaticConv<kDesc>::forward(src_b, wei_b, bias, dst_b, {.relu = true});
    hwyconv::reorder_nChw16c_to_nchw(dst_b, dst, d.N, d.K, P, Q);
    bad += Compare("StaticConv", dst, ref);

    std::printf("single header: Highway target %s: %s\n", hwyconv::Conv::target(), bad ? "FAILED" : "ok");
    return bad ? 1 : 0;
  } catch (const hwyconv::Error& e) {
    std::printf("single header: hwyconv::Error (field %s): %s\n", e.field().c_str(), e.what());
    return 1;
  }
}
