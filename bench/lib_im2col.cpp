// bench/lib_im2col.cpp - the classic baseline (compiled when OpenBLAS is found): per image, im2col
// into a [C*R*S][P*Q] matrix, then one cblas_sgemm with the [K][C*R*S] weights (plain nchw / oihw,
// no reorders). A 1x1, stride-1, unpadded layer skips im2col and multiplies src directly. The copy is
// serial; the sgemm runs on openblas_set_num_threads(threads) threads.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "problem.hpp"

namespace bench {
namespace {

/// Copies image `src` (C x H x W) into `col` ([C*R*S][P*Q]; zero where a tap reads padding).
void im2col(const Layer& l, const float* src, float* col) {
  const int64_t P = l.oh, Q = l.ow;
  for (int64_t c = 0; c < l.ic; ++c)
    for (int64_t r = 0; r < l.kh; ++r)
      for (int64_t s = 0; s < l.kw; ++s, col += P * Q)
        for (int64_t p = 0; p < P; ++p) {
          const int64_t y = p * l.sh - l.ph + r * l.dh;
          float* row = col + p * Q;
          if (y < 0 || y >= l.ih) {
            std::fill(row, row + Q, 0.0f);
            continue;
          }
          const float* in = src + (c * l.ih + y) * l.iw;
          for (int64_t q = 0; q < Q; ++q) {
            const int64_t x = q * l.sw - l.pw + s * l.dw;
            row[q] = (x >= 0 && x < l.iw) ? in[x] : 0.0f;
          }
        }
}

/// Forward with bias: dst[n] = W x im2col(src[n]) + bias, dst nchw.
Measurement im2col_fwd(const Problem& p, const RunConfig& cfg) {
  openblas_set_num_threads(cfg.threads);
  const Layer& l = p.layer;
  if (l.g != 1) return {};  // grouped layers: not implemented here (no note: not a failure)
  const int64_t crs = l.ic * l.kh * l.kw, pq = l.oh * l.ow;
  const bool direct = l.kh == 1 && l.kw == 1 && l.sh == 1 && l.sw == 1 && l.ph == 0 && l.pw == 0 &&
                      l.ph_r == 0 && l.pw_r == 0;
  Buffer col(direct ? 0 : size_t(crs * pq));
  Measurement m;
  m.output.resize(size_t(p.dst_elems()));
  float* dst = m.output.data();
  m.time = measure(
      [&] {
        for (int64_t n = 0; n < p.mb; ++n) {
          const float* b = p.src.data() + n * l.ic * l.ih * l.iw;
          if (!direct) {
            im2col(l, b, col.data());
            b = col.data();
          }
          float* out = dst + n * l.oc * pq;
          for (int64_t k = 0; k < l.oc; ++k) std::fill(out + k * pq, out + (k + 1) * pq, p.bias[size_t(k)]);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(l.oc), blasint(pq), blasint(crs),
                      1.0f, p.wei.data(), blasint(crs), b, blasint(pq), 1.0f, out, blasint(pq));
        }
      },
      cfg.timing);
  // OpenBLAS workers spin for a while after a call; let them go to sleep before the next library.
  if (cfg.threads > 1) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  m.impl = direct ? "sgemm (1x1: no im2col)" : "im2col + sgemm";
  m.ran = true;
  return m;
}

/// Sets OpenBLAS's thread count and reads it back.
std::string im2col_threads(int threads) {
  openblas_set_num_threads(threads);
  const int seen = openblas_get_num_threads();
  std::string s = "openblas_set_num_threads(" + std::to_string(threads) +
                  "); check: openblas_get_num_threads() = " + std::to_string(seen) + "; im2col copy serial";
  if (seen != threads) s += " -- WARNING: MISMATCH";
  return s;
}

}  // namespace

Library im2col_library() {
  Library lib;
  lib.name = "im2col";
  lib.runners[int(Pass::kFwd)] = im2col_fwd;
  lib.threads_info = im2col_threads;
  lib.version = std::string("im2col + OpenBLAS ") + openblas_get_config() + " (" + openblas_get_corename() + ")";
  return lib;
}

}  // namespace bench
