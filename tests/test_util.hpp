// Shared helpers of the kernel tests: random problems in plain layouts, their blocked copies, the
// reference result, and the tolerance.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <hwy/targets.h>

#include "hwyconv/desc.hpp"
#include "hwyconv/layout/reorder.hpp"
#include "hwyconv/reference.hpp"

namespace hwyconv::test {

inline std::vector<float> random_floats(int64_t n, std::mt19937& g) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(g);
  return v;
}

/// n values on the grid of 2^-8 in [-1, 1]: with a step of 2^-4 (finite_difference) x +- h is exact
/// in float, and a product of two grid values is exact in double.
inline std::vector<float> grid_floats(int64_t n, std::mt19937& g) {
  std::uniform_int_distribution<int> q8(-256, 256);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = float(q8(g)) / 256.0f;
  return v;
}

/// Central differences with step 2^-4 of L = sum(conv_fwd(d, src, wei, bias) * G), double-accumulated
/// by the reference, with respect to every element of `v` (src, wei or bias itself). On grid values
/// (grid_floats) L is linear in each input and every term exact: the difference equals the gradient
/// up to double rounding.
inline std::vector<double> finite_differences(const ConvDesc& d, std::vector<float>& src, std::vector<float>& wei,
                                              std::vector<float>& bias, const std::vector<float>& G,
                                              std::vector<float>& v) {
  auto loss = [&] {
    std::vector<double> out(G.size());
    reference::conv_fwd(d, src, wei, bias, out);
    double l = 0;
    for (size_t i = 0; i < out.size(); ++i) l += out[i] * double(G[i]);
    return l;
  };
  const float h = 1.0f / 16;
  std::vector<double> fd(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const float x = v[i];
    v[i] = x + h;
    const double lp = loss();
    v[i] = x - h;
    const double lm = loss();
    v[i] = x;
    fd[i] = (lp - lm) / (2.0 * double(h));
  }
  return fd;
}

inline std::vector<float> abs_of(const std::vector<float>& v) {
  std::vector<float> a(v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
  return a;
}

/// A forward problem: plain tensors, blocked copies, the exact result and sum |src*wei| per output.
struct FwdProblem {
  ConvDesc d;
  std::vector<float> src, wei, bias;    // nchw, oihw, K
  std::vector<float> bsrc, bwei;        // nChw16c, OIhw16i16o
  std::vector<double> ref, ref_abs;     // nkpq: conv + bias, and sum |src*wei| + |bias|

  FwdProblem(const ConvDesc& desc, uint32_t seed) : d(desc) {
    std::mt19937 g(seed);
    src = random_floats(d.N * d.C * d.H * d.W, g);
    wei = random_floats(d.K * d.C * d.R * d.S, g);
    bias = random_floats(d.K, g);
    bsrc.resize(size_t(act_blocked_size(d.N, d.C, d.H, d.W)));
    bwei.resize(size_t(wei_blocked_size(d.K, d.C, d.R, d.S)));
    reorder_nchw_to_nChw16c(src, bsrc, d.N, d.C, d.H, d.W);
    reorder_oihw_to_OIhw16i16o(wei, bwei, d.K, d.C, d.R, d.S);
    const int64_t out = d.N * d.K * d.P() * d.Q();
    ref.resize(size_t(out));
    ref_abs.resize(size_t(out));
    reference::conv_fwd(d, src, wei, bias, ref);
    reference::conv_fwd(d, abs_of(src), abs_of(wei), abs_of(bias), ref_abs);
  }
  int64_t dst_blocked_size() const { return act_blocked_size(d.N, d.K, d.P(), d.Q()); }
};

/// Tolerance for one output that sums n = C*R*S (+1 bias) float products: rounding errors of a
/// float sum of n terms grow like sqrt(n) * u * sum|terms| with high probability (Higham,
/// "Accuracy and Stability of Numerical Algorithms", sec. 2.8; the worst case is n*u). The factor 4
/// gives margin for the FMA/partial-sum order; a missing or doubled term (about sum|terms|/n) is
/// still far above it for the sizes tested. u = 2^-24.
inline double tolerance(int64_t n, double sum_abs) {
  const double u = std::ldexp(1.0, -24);
  return 4.0 * std::sqrt(double(n)) * u * sum_abs + 1e-30;
}

/// Compares a float result (plain layout) with the reference; returns the number of elements out
/// of tolerance and reports the worst one.
inline int64_t count_mismatches(std::span<const float> got, std::span<const double> ref,
                                std::span<const double> ref_abs, int64_t n_terms, std::string* worst) {
  int64_t bad = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(double(got[i]) - ref[i]);
    const double tol = tolerance(n_terms, ref_abs[i]);
    const double ratio = err / tol;
    if (!(ratio <= 1.0)) ++bad;  // NaN counts as bad
    if (!(ratio <= worst_ratio)) {
      worst_ratio = ratio;
      if (worst)
        *worst = "index " + std::to_string(i) + ": got " + std::to_string(got[i]) + ", want " +
                 std::to_string(ref[i]) + " (err/tol " + std::to_string(ratio) + ")";
    }
  }
  return bad;
}

/// Short text for a shape, for test messages.
inline std::string describe(const ConvDesc& d) {
  std::ostringstream s;
  s << "N" << d.N << " C" << d.C << " K" << d.K << " H" << d.H << " W" << d.W << " R" << d.R << " S" << d.S
    << " s" << d.stride_h << "x" << d.stride_w << " p" << d.pad_t << "," << d.pad_l << "," << d.pad_b << ","
    << d.pad_r << " d" << d.dil_h << "x" << d.dil_w;
  return s.str();
}

/// Emulated runs (scripts/test-arm.sh) may test a subset of the sweeps' shape lists:
/// HWYCONV_TEST_SUBSET=N in the environment keeps shapes 0, N, 2N, ... of each list passed through
/// here (default, or N <= 1: all). Each shortened list says so on stdout.
template <class T>
std::vector<T> subset(std::vector<T> v, const char* what) {
  const char* env = std::getenv("HWYCONV_TEST_SUBSET");
  const long n = env ? std::strtol(env, nullptr, 10) : 1;
  if (n <= 1) return v;
  std::vector<T> out;
  for (size_t i = 0; i < v.size(); i += size_t(n)) out.push_back(v[i]);
  static std::set<std::string> said;  // once per list (a test case body runs once per subcase)
  if (said.insert(what).second)
    std::printf("[hwyconv tests] HWYCONV_TEST_SUBSET=%ld: %s: %zu of %zu shapes\n", n, what, out.size(), v.size());
  return out;
}

/// Runs `body(target_name)` once per Highway target this CPU supports and this binary compiled,
/// each as its own doctest SUBCASE named after the target (so `--subcase=AVX2` runs one), with
/// dispatch forced to that target; restores the default afterwards. With HWYCONV_STATIC_DISPATCH
/// there is one target (the compiler's) and no libhwy: body runs once, in a SUBCASE of that name.
template <class Body>
void for_each_target(Body&& body) {
#ifdef HWYCONV_STATIC_DISPATCH
  const std::string name = hwy::TargetName(HWY_STATIC_TARGET);
  SUBCASE(name.c_str()) { body(name); }
#else
  for (const int64_t t : hwy::SupportedAndGeneratedTargets()) {
    const std::string name = hwy::TargetName(t);
    SUBCASE(name.c_str()) {
      struct Restore {
        ~Restore() { hwy::SetSupportedTargetsForTest(0); }
      } restore;
      hwy::SetSupportedTargetsForTest(t);
      body(name);
    }
  }
#endif
}

}  // namespace hwyconv::test
