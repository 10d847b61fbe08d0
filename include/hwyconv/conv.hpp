// hwyconv/conv.hpp - the user-facing convolution objects: Conv (shape known at run time) and
// StaticConv<desc> (shape known at compile time). Both execute describe -> plan -> kernel stream ->
// microkernels -> epilogue; they differ only in when the plan and stream are built.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "hwyconv/desc.hpp"
#include "hwyconv/dispatch/dispatch.hpp"
#include "hwyconv/layout/input_transform.hpp"
#include "hwyconv/layout/reorder.hpp"
#include "hwyconv/plan/plan.hpp"
#include "hwyconv/stream/kernel_stream.hpp"
#include "hwyconv/threading/parallel_for.hpp"

namespace hwyconv {

/// Fused operations after the convolution, applied in registers (see epilogue/epilogue-inl.h):
/// dst = relu?( (conv + bias) * scale + shift + residual ). Empty spans mean "absent".
struct PostOps {
  bool relu = false;                  ///< max(., 0) last
  std::span<const float> residual{};  ///< nChw16c, same shape as dst (a skip connection)
  std::span<const float> scale{};     ///< K floats (e.g. batch norm folded for inference); with shift
  std::span<const float> shift{};     ///< K floats; with scale
};

/// Execution options.
struct Options {
  /// Threads the kernel stream is partitioned for; 0 = the global pool's size (hardware threads).
  /// Results are bitwise the same for every value.
  int threads = 0;
  /// Caller's parallel-for; empty = hwyconv's global ThreadPool.
  ParallelFor parallel_for{};
};

namespace detail {

inline void check_span(const char* name, size_t have, int64_t need, const char* layout) {
  if (int64_t(have) < need)
    throw Error(name, std::string("needs at least ") + std::to_string(need) + " floats (" + layout +
                          "), got " + std::to_string(have));
}

template <class A, class B>
bool overlaps(std::span<A> a, std::span<B> b) {
  if (a.empty() || b.empty()) return false;
  const auto a0 = reinterpret_cast<uintptr_t>(a.data()), a1 = a0 + a.size_bytes();
  const auto b0 = reinterpret_cast<uintptr_t>(b.data()), b1 = b0 + b.size_bytes();
  return a0 < b1 && b0 < a1;
}

/// Scratch floats a forward execution needs: padded bias/scale/shift, working input, folded weights.
constexpr int64_t fwd_scratch_size(const FwdPlan& p) {
  return 3 * p.Kb * kBlock + p.scratch_in + p.scratch_wei + 64;
}

/// Checks every argument of a forward call; throws Error naming the first bad one.
inline unsigned check_forward(const FwdPlan& p, std::span<const float> src, std::span<const float> wei,
                              std::span<const float> bias, std::span<float> dst, const PostOps& post) {
  const ConvDesc& d = p.desc;
  check_span("src", src.size(), act_blocked_size(d.N, d.C, d.H, d.W), "nChw16c");
  check_span("weights", wei.size(), wei_blocked_size(d.K, d.C, d.R, d.S), "OIhw16i16o");
  const int64_t dst_need = act_blocked_size(d.N, d.K, p.P, p.Q);
  check_span("dst", dst.size(), dst_need, "nChw16c");
  unsigned ops = post.relu ? kEpiRelu : 0u;
  if (!bias.empty()) {
    check_span("bias", bias.size(), d.K, "K");
    ops |= kEpiBias;
  }
  if (!post.residual.empty()) {
    check_span("residual", post.residual.size(), dst_need, "nChw16c");
    if (overlaps(post.residual, dst)) throw Error("residual", "must not overlap dst");
    ops |= kEpiResidual;
  }
  if (post.scale.empty() != post.shift.empty())
    throw Error(post.scale.empty() ? "scale" : "shift", "scale and shift come together");
  if (!post.scale.empty()) {
    check_span("scale", post.scale.size(), d.K, "K");
    check_span("shift", post.shift.size(), d.K, "K");
    ops |= kEpiScaleShift;
  }
  if (overlaps(src, dst)) throw Error("dst", "must not overlap src");
  if (overlaps(wei, dst)) throw Error("dst", "must not overlap weights");
  return ops;
}

/// Executes a forward pass from a plan and its stream (entries, per-thread begins). Arguments must
/// have passed check_forward; `scratch` holds fwd_scratch_size(p) floats.
inline void run_forward(const FwdPlan& p, const StreamEntry* entries, const int64_t* begin,
                        std::span<const float> src, std::span<const float> wei,
                        std::span<const float> bias, std::span<float> dst, const PostOps& post,
                        unsigned ops, float* scratch, const ParallelFor& pf) {
  const ConvDesc& d = p.desc;
  const int64_t kpad = p.Kb * kBlock;
  float* epi = scratch;  // bias | scale | shift, each padded to Kb*16 with zeros
  std::fill(epi, epi + 3 * kpad, 0.0f);
  if (!bias.empty()) std::copy_n(bias.data(), d.K, epi);
  if (!post.scale.empty()) {
    std::copy_n(post.scale.data(), d.K, epi + kpad);
    std::copy_n(post.shift.data(), d.K, epi + 2 * kpad);
  }
  float* work = epi + 3 * kpad;
  float* folded = work + p.scratch_in;

  FwdArgs a;
  a.in = p.mode == InputMode::kDirect ? src.data() : work;
  a.wei = p.mode == InputMode::kFold ? folded : wei.data();
  a.out = dst.data();
  a.bias = epi;
  a.scale = epi + kpad;
  a.shift = epi + 2 * kpad;
  a.residual = post.residual.empty() ? nullptr : post.residual.data();
  a.tap = p.tap.data();
  a.taps = p.taps;
  a.in_row = p.in_row;
  a.in_cb = p.in_cb;
  a.wei_cb = p.wei_cb;
  a.out_row = p.out_row;
  a.ops = ops;
  a.epilogue = find_epilogue(ops);

  if (p.mode == InputMode::kFold) fold_weights(p, wei.data(), folded);
  if (const int64_t items = input_transform_items(p)) {
    const int64_t per = div_up(items, p.threads);
    parallel_run(pf, p.threads, [&](int64_t t) {
      for (int64_t i = t * per; i < std::min(items, (t + 1) * per); ++i)
        transform_input(p, src.data(), work, i);
    });
  }
  const KernelTable& kt = kernels();
  parallel_run(pf, p.threads, [&](int64_t t) {
    const int64_t b = begin[t], e = begin[t + 1];
    for (int64_t i = b; i < e; ++i) {
      const StreamEntry& en = entries[i];
      const StreamEntry& l1 = entries[std::min(i + 1, e - 1)];
      const StreamEntry& l2 = entries[std::min(i + kL2PrefetchDistance, e - 1)];
      kt.fwd[en.block](a, en, l1, l2);
    }
  });
}

inline int default_threads(const Options& o) {
  if (o.threads > 0) return o.threads;
  return o.parallel_for ? 1 : ThreadPool::global().size();
}

}  // namespace detail

/// A convolution whose shape is known at run time. Construction validates the descriptor (throws
/// Error naming the field), plans the blocking and builds the kernel stream: no code is generated,
/// it costs microseconds. forward() may be called many times; one Conv must not run forward() from
/// two threads at once (it owns its scratch buffer).
class Conv {
 public:
  /// Throws Error for an invalid descriptor or options (field "threads" for threads < 0).
  explicit Conv(const ConvDesc& d, Options opt = {}) : opt_(std::move(opt)) {
    d.validate();
    if (d.R * d.S > kMaxTaps) throw Error("R", "R*S larger than 256 is not supported (got " + std::to_string(d.R * d.S) + ")");
    if (opt_.threads < 0) throw Error("threads", "must be >= 0 (got " + std::to_string(opt_.threads) + ")");
    plan_ = make_fwd_plan(d, detail::default_threads(opt_));
    stream_ = make_fwd_stream(plan_);
  }

  const ConvDesc& desc() const { return plan_.desc; }
  /// The blocking decisions (register block, input mode, C chunk, thread count).
  const FwdPlan& plan() const { return plan_; }
  /// The forward kernel stream (per-thread tables of microkernel calls).
  const RuntimeStream& stream() const { return stream_; }
  /// Floats of src (nChw16c, N x Cb x H x W x 16).
  int64_t src_size() const { return act_blocked_size(desc().N, desc().C, desc().H, desc().W); }
  /// Floats of weights (OIhw16i16o, Kb x Cb x R x S x 16 x 16).
  int64_t wei_size() const { return wei_blocked_size(desc().K, desc().C, desc().R, desc().S); }
  /// Floats of dst (nChw16c, N x Kb x P x Q x 16).
  int64_t dst_size() const { return act_blocked_size(desc().N, desc().K, plan_.P, plan_.Q); }

  /// Forward propagation: dst = post(conv(src, weights) + bias). src nChw16c (N, C, H, W), weights
  /// OIhw16i16o (K, C, R, S), bias K floats or empty, dst nChw16c (N, K, P, Q); padded channels of
  /// src and weights must be zero (the reorders make them so) and stay zero in dst. Throws Error
  /// (naming "src", "weights", "bias", "dst", "residual", "scale" or "shift") before writing anything.
  void forward(std::span<const float> src, std::span<const float> wei, std::span<const float> bias,
               std::span<float> dst, const PostOps& post = {}) {
    const unsigned ops = detail::check_forward(plan_, src, wei, bias, dst, post);
    scratch_.resize(size_t(detail::fwd_scratch_size(plan_)));
    detail::run_forward(plan_, stream_.entries.data(), stream_.begin.data(), src, wei, bias, dst, post,
                        ops, scratch_.data(), opt_.parallel_for);
  }

  /// Name of the Highway target whose microkernels run on this CPU ("AVX3_DL", "AVX2", ...).
  static const char* target() { return kernels().target; }

 private:
  Options opt_;
  FwdPlan plan_;
  RuntimeStream stream_;
  std::vector<float> scratch_;
};

/// A convolution whose shape is a compile-time constant: the plan and the kernel stream are constant
/// expressions (a read-only table), checked by static_assert; only the target is chosen at run time
/// (unless HWYCONV_STATIC_DISPATCH). kThreads: the partition of the stream (run on the global pool,
/// or the ParallelFor passed to forward()).
template <ConvDesc kDesc, int kThreads = 1>
struct StaticConv {
  static_assert(kDesc.check().ok(), "invalid ConvDesc: call kDesc.check() to see which field");
  static_assert(kDesc.R * kDesc.S <= kMaxTaps, "R*S larger than 256 is not supported");
  static_assert(kThreads >= 1, "kThreads must be >= 1");

  static constexpr FwdPlan kPlan = make_fwd_plan(kDesc, kThreads);
  static constexpr int64_t kCalls = fwd_stream_size(kPlan);
  static constexpr StaticStream<kCalls, kThreads> kStream = make_static_fwd_stream<kCalls, kThreads>(kPlan);
  static_assert(kStream.begin[kThreads] == kCalls, "kernel stream size mismatch");
  /// Scratch floats forward() needs (see the overload taking a workspace).
  static constexpr int64_t kScratch = detail::fwd_scratch_size(kPlan);

  /// As Conv::forward, with a caller-provided workspace of at least kScratch floats.
  static void forward(std::span<const float> src, std::span<const float> wei, std::span<const float> bias,
                      std::span<float> dst, std::span<float> workspace, const PostOps& post = {},
                      const ParallelFor& pf = {}) {
    const unsigned ops = detail::check_forward(kPlan, src, wei, bias, dst, post);
    detail::check_span("workspace", workspace.size(), kScratch, "StaticConv::kScratch");
    detail::run_forward(kPlan, kStream.entries.data(), kStream.begin.data(), src, wei, bias, dst, post, ops,
                        workspace.data(), pf);
  }
  /// As Conv::forward; the workspace is a thread-local buffer.
  static void forward(std::span<const float> src, std::span<const float> wei, std::span<const float> bias,
                      std::span<float> dst, const PostOps& post = {}, const ParallelFor& pf = {}) {
    thread_local std::vector<float> ws;
    ws.resize(size_t(kScratch));
    forward(src, wei, bias, dst, std::span<float>(ws), post, pf);
  }
};

}  // namespace hwyconv
