// bench/problem.cpp - see problem.hpp.
#include "problem.hpp"

#include <algorithm>
#include <random>

namespace bench {
namespace {

/// Fills `n` floats with uniform [-1, 1] values from `rng`.
Buffer random_buffer(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Buffer b(static_cast<size_t>(n));
  for (float& x : b) x = dist(rng);
  return b;
}

}  // namespace

std::optional<Pass> pass_from_name(const std::string& name) {
  for (int i = 0; i < kNumPasses; ++i)
    if (name == kPassNames[i]) return Pass(i);
  return std::nullopt;
}

Problem make_problem(const Layer& layer, int64_t mb, bool backward) {
  std::mt19937 rng(20240611u);
  Problem p;
  p.layer = layer;
  p.mb = mb;
  p.src = random_buffer(p.src_elems(), rng);
  p.wei = random_buffer(p.wei_elems(), rng);
  p.bias = random_buffer(layer.oc, rng);
  if (backward) p.diff_dst = random_buffer(p.dst_elems(), rng);
  return p;
}

double max_rel_error(const Buffer& out, const Buffer& ref) {
  if (out.size() != ref.size() || ref.empty()) return std::numeric_limits<double>::quiet_NaN();
  double max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double diff = std::fabs(double(out[i]) - double(ref[i]));
    if (std::isnan(diff)) return std::numeric_limits<double>::quiet_NaN();
    max_ref = std::max(max_ref, std::fabs(double(ref[i])));
    max_diff = std::max(max_diff, diff);
  }
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}

}  // namespace bench
