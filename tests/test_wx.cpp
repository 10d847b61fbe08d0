// tests/test_wx.cpp - W^X: hwyconv generates no code at run time. Runs forward, backward_data and
// backward_weights (through Conv, on two threads, with every target's microkernels reachable), then
// reads /proc/self/maps and fails if any mapping is both writable and executable, as a JIT's code
// buffer would be (or if the process mapped anything executable that is not a file: anonymous
// executable memory is where generated code lives). Its own executable, apart from the doctest
// binary, so no other test's allocations are in its address space. Linux only (skips elsewhere).
//
// Prints the Highway target that ran and the number of mappings checked; exit status 0 = pass.
#include <hwyconv/hwyconv.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::vector<float> Fill(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t x = seed;
  for (float& f : v) {
    x = x * 1664525u + 1013904223u;
    f = float(x >> 8) / float(1u << 23) - 1.0f;
  }
  return v;
}

/// Largest |got - want| / max(1, |want|) over plain-layout outputs.
double WorstError(const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = std::fabs(double(got[i]) - want[i]) / std::max(1.0, std::fabs(want[i]));
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
  }
  return worst;
}

}  // namespace

int main() {
  // A strided layer with remainders: every pass runs several microkernel variants.
  const hwyconv::ConvDesc d = hwyconv::ConvDesc(2, 24, 40, 11, 13, 3, 3, 2, 1);
  const int64_t P = d.P(), Q = d.Q();
  const auto src = Fill(size_t(d.N * d.C * d.H * d.W), 1), wei = Fill(size_t(d.K * d.C * d.R * d.S), 2),
             bias = Fill(size_t(d.K), 3), ddst = Fill(size_t(d.N * d.K * P * Q), 4);

  std::vector<float> bsrc(size_t(hwyconv::act_blocked_size(d.N, d.C, d.H, d.W)));
  std::vector<float> bwei(size_t(hwyconv::wei_blocked_size(d.K, d.C, d.R, d.S)));
  std::vector<float> bddst(size_t(hwyconv::act_blocked_size(d.N, d.K, P, Q)));
  hwyconv::reorder_nchw_to_nChw16c(src, bsrc, d.N, d.C, d.H, d.W);
  hwyconv::reorder_oihw_to_OIhw16i16o(wei, bwei, d.K, d.C, d.R, d.S);
  hwyconv::reorder_nchw_to_nChw16c(ddst, bddst, d.N, d.K, P, Q);

  hwyconv::Conv conv(d, {.threads = 2});
  std::vector<float> bdst(bddst.size()), wbd(bwei.size()), bdsrc(bsrc.size()), bdwei(bwei.size()),
      dbias(size_t(d.K));
  conv.forward(bsrc, bwei, bias, bdst, {.relu = true});
  conv.reorder_weights_bwd_d(bwei, wbd);
  conv.backward_data(bddst, wbd, bdsrc);
  conv.backward_weights(bsrc, bddst, bdwei, dbias);

  // The passes must have computed something sensible (not skipped): compare with the reference.
  std::vector<double> rdst(size_t(d.N * d.K * P * Q)), rdsrc(src.size()), rdwei(wei.size()), rdbias(size_t(d.K));
  hwyconv::reference::conv_fwd(d, src, wei, bias, rdst);
  for (double& v : rdst) v = std::max(v, 0.0);
  hwyconv::reference::conv_bwd_d(d, ddst, wei, rdsrc);
  hwyconv::reference::conv_bwd_w(d, src, ddst, rdwei, rdbias);
  std::vector<float> dst(rdst.size()), dsrc(rdsrc.size()), dwei(rdwei.size());
  hwyconv::reorder_nChw16c_to_nchw(bdst, dst, d.N, d.K, P, Q);
  hwyconv::reorder_nChw16c_to_nchw(bdsrc, dsrc, d.N, d.C, d.H, d.W);
  hwyconv::reorder_OIhw16i16o_to_oihw(bdwei, dwei, d.K, d.C, d.R, d.S);
  const double tol = 1e-4;
  const double e_fwd = WorstError(dst, rdst), e_bwd_d = WorstError(dsrc, rdsrc), e_bwd_w = WorstError(dwei, rdwei),
               e_bias = WorstError(dbias, rdbias);
  std::printf("wx: target %s; worst relative error fwd %.2g, bwd_d %.2g, bwd_w %.2g, dbias %.2g\n",
              hwyconv::Conv::target(), e_fwd, e_bwd_d, e_bwd_w, e_bias);
  int failures = 0;
  if (!(e_fwd <= tol && e_bwd_d <= tol && e_bwd_w <= tol && e_bias <= tol)) {
    std::printf("wx: FAILED: results differ from the reference (tolerance %.2g)\n", tol);
    ++failures;
  }

#ifdef __linux__
  std::ifstream maps("/proc/self/maps");
  if (!maps) {
    std::printf("wx: FAILED: cannot read /proc/self/maps\n");
    return 1;
  }
  // Line: "start-end perms offset dev inode [path]", perms like "r-xp".
  int checked = 0;
  for (std::string line; std::getline(maps, line);) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, path;
    in >> range >> perms >> offset >> dev >> inode;
    std::getline(in >> std::ws, path);
    if (perms.size() < 3) continue;
    ++checked;
    const bool w = perms[1] == 'w', x = perms[2] == 'x';
    // [vdso] and [vsyscall] are the kernel's; qemu-user shows the guest's maps the same way.
    const bool anon_exec = x && (path.empty() || (path[0] == '[' && path != "[vdso]" && path != "[vsyscall]"));
    if ((w && x) || anon_exec) {
      std::printf("wx: FAILED: %s mapping: %s\n", w && x ? "writable and executable" : "anonymous executable",
                  line.c_str());
      ++failures;
    }
  }
  std::printf("wx: %d mappings checked, %s\n", checked, failures ? "FAILED" : "none writable+executable");
#else
  std::printf("wx: SKIP: /proc/self/maps is Linux only\n");
#endif
  return failures ? 1 : 0;
}
