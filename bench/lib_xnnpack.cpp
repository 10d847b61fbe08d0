// bench/lib_xnnpack.cpp - the XNNPACK runner (compiled when Debian's libxnnpack-dev is found): forward
// only, in XNNPACK's NHWC layout with its grouped OHWI weights, as an edge deployment would run it.
// Operator creation (which packs the weights) is timed on its own; setup, and the reorders of the
// plain nchw / oihw data into nhwc / ohwi and of the result back, are outside the timing.
#include <xnnpack.h>
#include <pthreadpool.h>

#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

#include "problem.hpp"

namespace bench {
namespace {

/// Creations timed for the median creation cost.
constexpr int kCreateReps = 5;

/// xnn_initialize once per process; throws if XNNPACK cannot run on this CPU.
void initialize() {
  static const xnn_status s = xnn_initialize(nullptr);
  if (s != xnn_status_success) throw std::runtime_error("xnn_initialize failed (status " + std::to_string(int(s)) + ")");
}

void check(xnn_status s, const char* what) {
  if (s != xnn_status_success) throw std::runtime_error(std::string(what) + " failed (status " + std::to_string(int(s)) + ")");
}

struct OpDeleter {
  void operator()(xnn_operator_t op) const { xnn_delete_operator(op); }
};
struct PoolDeleter {
  void operator()(pthreadpool_t p) const { pthreadpool_destroy(p); }
};

/// Forward with bias: dst = conv(src, weights) + bias, every tensor NHWC, weights [g][oc/g][kh][kw][ic/g].
Measurement xnnpack_fwd(const Problem& p, const RunConfig& cfg) {
  initialize();
  const Layer& l = p.layer;
  const int64_t N = p.mb, C = l.ic, K = l.oc, H = l.ih, W = l.iw, P = l.oh, Q = l.ow, R = l.kh, S = l.kw;
  const int64_t Cg = C / l.g, Kg = K / l.g;
  Buffer src(size_t(N * H * W * C)), wei(size_t(K * R * S * Cg)), dst(size_t(N * P * Q * K));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t hw = 0; hw < H * W; ++hw) src[size_t((n * H * W + hw) * C + c)] = p.src[size_t((n * C + c) * H * W + hw)];
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t rs = 0; rs < R * S; ++rs) wei[size_t((k * R * S + rs) * Cg + c)] = p.wei[size_t((k * Cg + c) * R * S + rs)];
  constexpr float kInf = std::numeric_limits<float>::infinity();
  auto create = [&] {
    xnn_operator_t op = nullptr;
    check(xnn_create_convolution2d_nhwc_f32(uint32_t(l.ph), uint32_t(l.pw_r), uint32_t(l.ph_r), uint32_t(l.pw),
                                            uint32_t(R), uint32_t(S), uint32_t(l.sh), uint32_t(l.sw), uint32_t(l.dh),
                                            uint32_t(l.dw), uint32_t(l.g), size_t(Cg), size_t(Kg), size_t(C), size_t(K),
                                            wei.data(), p.bias.data(), -kInf, kInf, 0, &op),
          "xnn_create_convolution2d_nhwc_f32");
    return std::unique_ptr<xnn_operator, OpDeleter>(op);
  };
  Measurement m;
  m.create_ms = median_call_ms([&] { create(); }, kCreateReps);
  const auto op = create();
  const std::unique_ptr<pthreadpool, PoolDeleter> pool(cfg.threads > 1 ? pthreadpool_create(size_t(cfg.threads)) : nullptr);
  check(xnn_setup_convolution2d_nhwc_f32(op.get(), size_t(N), size_t(H), size_t(W), src.data(), dst.data(), pool.get()),
        "xnn_setup_convolution2d_nhwc_f32");
  m.time = measure([&] { check(xnn_run_operator(op.get(), pool.get()), "xnn_run_operator"); }, cfg.timing);
  m.output.resize(size_t(p.dst_elems()));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t pq = 0; pq < P * Q; ++pq)
        m.output[size_t((n * K + k) * P * Q + pq)] = dst[size_t((n * P * Q + pq) * K + k)];
  m.impl = l.g > 1 && l.g == C && l.g == K ? "depthwise (nhwc)" : "convolution (nhwc)";
  m.ran = true;
  return m;
}

/// Threads: a pthreadpool of that many threads (none for one: the caller's thread runs it).
std::string xnnpack_threads(int threads) {
  return threads > 1 ? "pthreadpool_create(" + std::to_string(threads) + ")" : "no pthreadpool (calling thread)";
}

}  // namespace

Library xnnpack_library() {
  Library lib;
  lib.name = "XNNPACK";
  lib.runners[int(Pass::kFwd)] = xnnpack_fwd;
  lib.threads_info = xnnpack_threads;
  lib.version = "XNNPACK (Debian libxnnpack-dev), f32 NHWC operators";
  return lib;
}

}  // namespace bench
