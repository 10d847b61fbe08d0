// tests/test_wx.cpp - W^X: hwyconv generates no code at run time. Runs forward, backward_data and
// backward_weights (through Conv, on two threads, with the target dynamic dispatch picks), checks
// them against the reference, then reads /proc/self/maps and fails if
//   - any mapping is both writable and executable (a JIT's code buffer), or
//   - an anonymous executable mapping appeared that was not there before the passes ran (a W^X-aware
//     JIT writes code, then flips the page to r-x). Mappings present at start are the loader's and
//     the emulator's (qemu-user maps an anonymous r-x signal trampoline page for its guest).
// A control maps a writable+executable page on purpose afterwards and checks that the scan sees it
// (if not, as under qemu-user, the test exits 77: skipped).
// Its own executable, apart from the doctest binary, so that no other test shares its address space.
// Linux only (skips elsewhere). Prints the Highway target that ran; exit status 0 = pass.
#include <hwyconv/hwyconv.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

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

#ifdef __linux__
struct MapsScan {
  int checked = 0;                     ///< mappings read
  std::vector<std::string> wx;         ///< writable and executable
  std::vector<std::string> anon_exec;  ///< executable, not backed by a file (address range)
};

/// Reads /proc/self/maps ("start-end perms offset dev inode [path]", perms like "r-xp").
MapsScan ScanMaps() {
  MapsScan r;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, path;
    in >> range >> perms >> offset >> dev >> inode;
    std::getline(in >> std::ws, path);
    if (perms.size() < 3) continue;
    ++r.checked;
    const bool w = perms[1] == 'w', x = perms[2] == 'x';
    if (w && x) r.wx.push_back(line);
    // [vdso] and [vsyscall] are the kernel's; other [names] (heap, stack) and no name are anonymous.
    if (x && (path.empty() || (path[0] == '[' && path != "[vdso]" && path != "[vsyscall]")))
      r.anon_exec.push_back(range + " " + perms + " " + path);
  }
  return r;
}
#endif

}  // namespace

int main() {
#ifdef __linux__
  const MapsScan before = ScanMaps();
#endif
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
  const MapsScan after = ScanMaps();
  if (after.checked == 0) {
    std::printf("wx: FAILED: cannot read /proc/self/maps\n");
    return 1;
  }
  for (const std::string& m : after.wx) {
    std::printf("wx: FAILED: writable and executable mapping: %s\n", m.c_str());
    ++failures;
  }
  for (const std::string& m : after.anon_exec) {
    if (std::find(before.anon_exec.begin(), before.anon_exec.end(), m) != before.anon_exec.end()) continue;
    std::printf("wx: FAILED: new anonymous executable mapping: %s\n", m.c_str());
    ++failures;
  }
  // Control: a page mapped writable and executable (what a JIT does) must be seen by the scan; where
  // the system forbids such mappings (SELinux without execmem, PaX), mmap fails: nothing to check.
  // qemu-user's /proc/self/maps shows such a page as "rw-p": there the scan proves nothing, and the
  // test reports itself skipped (exit 77, ctest SKIP_RETURN_CODE) unless the passes were wrong.
  void* rwx = mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (rwx != MAP_FAILED) {
    const MapsScan control = ScanMaps();
    munmap(rwx, 4096);
    if (control.wx.empty()) {
      std::printf("wx: SKIP: /proc/self/maps here does not show a writable+executable page mapped on purpose "
                  "(qemu-user does this): the scan cannot see what it looks for\n");
      return failures ? 1 : 77;
    }
  } else {
    std::printf("wx: control skipped (the system refuses writable+executable mappings)\n");
  }
  std::printf("wx: %d mappings checked (%zu anonymous executable at start), %s\n", after.checked,
              before.anon_exec.size(), failures ? "FAILED" : "none writable+executable, none new executable");
#else
  std::printf("wx: SKIP: /proc/self/maps is Linux only\n");
#endif
  return failures ? 1 : 0;
}
