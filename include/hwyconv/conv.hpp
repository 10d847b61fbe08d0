// hwyconv/conv.hpp - the user-facing convolution objects: Conv (shape known at run time) and
// StaticConv<desc> (shape known at compile time). Both check the arguments of a call once, here, then
// run the implementation chosen for the pass (impl/list.hpp); they differ only in when the plans and
// streams are made.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "hwyconv/desc.hpp"
#include "hwyconv/detail/buffer.hpp"
#include "hwyconv/detail/checks.hpp"
#include "hwyconv/impl/list.hpp"
#include "hwyconv/layout/reorder.hpp"
#include "hwyconv/options.hpp"

namespace hwyconv {

namespace detail {

/// Floats of a src of d in a layout: N*H*W*C (nhwc) or act_blocked_size (nChw16c).
constexpr int64_t src_floats(const ConvDesc& d, SrcLayout layout) {
  return layout == SrcLayout::nhwc ? d.N * d.H * d.W * d.C : act_blocked_size(d.N, d.C, d.H, d.W);
}

inline const char* layout_name(SrcLayout l) { return l == SrcLayout::nhwc ? "nhwc" : "nChw16c"; }

/// Floats of the weights of d: OIhw16i16o (and its transpose IOhw16o16i), gOIhw16i16o for a grouped
/// layer (wei_grouped_size), or Goihw16g for a depthwise layer.
constexpr int64_t wei_floats(const ConvDesc& d) {
  return d.depthwise() ? wei_depthwise_size(d.groups, d.R, d.S) : wei_grouped_size(d.groups, d.K, d.C, d.R, d.S);
}
/// The layout of the weights forward() and backward_weights() take (and give).
constexpr const char* wei_layout(const ConvDesc& d) {
  return d.depthwise() ? "Goihw16g" : d.groups > 1 ? "gOIhw16i16o" : "OIhw16i16o";
}
/// The layout of the weights backward_data() takes: the forward weights transposed per 16x16 block,
/// or (depthwise: nothing to transpose) the forward weights themselves.
constexpr const char* wei_bwd_d_layout(const ConvDesc& d) {
  return d.depthwise() ? "Goihw16g" : d.groups > 1 ? "gIOhw16o16i" : "IOhw16o16i";
}

/// Checks the arguments of a forward call (src in `layout`, weights of `wei_need` floats in
/// `wei_layout`) and returns the epilogue's op mask; throws Error naming the first bad one.
inline unsigned check_forward(const ConvDesc& d, SrcLayout layout, std::span<const float> src, std::span<const float> wei,
                              int64_t wei_need, const char* wei_layout, std::span<const float> bias,
                              std::span<float> dst, const PostOps& post) {
  const int64_t dst_need = act_blocked_size(d.N, d.K, d.P(), d.Q());
  check_span("src", src.size(), src_floats(d, layout), layout_name(layout));
  check_span("weights", wei.size(), wei_need, wei_layout);
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
  if (post.clamp) {
    if (!(post.clamp->lo <= post.clamp->hi)) throw Error("clamp", "lo must be <= hi (and neither NaN)");
    ops |= kEpiClamp;
  }
  check_disjoint("dst", dst, {{"src", src}, {"weights", wei}, {"bias", bias}, {"scale", post.scale}, {"shift", post.shift}});
  return ops;
}

/// Checks the arguments of a backward-data call (weights of `wei_need` floats in `wei_layout`).
inline void check_backward_data(const ConvDesc& d, std::span<const float> ddst, std::span<const float> wei,
                                int64_t wei_need, const char* wei_layout, std::span<float> dsrc,
                                const BwdPostOps& post) {
  const int64_t ddst_need = act_blocked_size(d.N, d.K, d.P(), d.Q());
  check_span("ddst", ddst.size(), ddst_need, "nChw16c");
  check_span("wei_bwd_d", wei.size(), wei_need, wei_layout);
  check_span("dsrc", dsrc.size(), act_blocked_size(d.N, d.C, d.H, d.W), "nChw16c");
  if (!post.relu_mask.empty()) check_span("relu_mask", post.relu_mask.size(), ddst_need, "nChw16c, like ddst");
  check_disjoint("dsrc", dsrc, {{"ddst", ddst}, {"wei_bwd_d", wei}, {"relu_mask", post.relu_mask}});
}

/// Checks the arguments of a weight-update call (src in `layout`).
inline void check_backward_weights(const ConvDesc& d, SrcLayout layout, std::span<const float> src,
                                   std::span<const float> ddst, std::span<float> dwei, std::span<float> dbias,
                                   const BwdPostOps& post) {
  const int64_t ddst_need = act_blocked_size(d.N, d.K, d.P(), d.Q());
  check_span("src", src.size(), src_floats(d, layout), layout_name(layout));
  check_span("ddst", ddst.size(), ddst_need, "nChw16c");
  check_span("dweights", dwei.size(), wei_floats(d), wei_layout(d));
  if (!dbias.empty()) check_span("dbias", dbias.size(), d.K, "K");
  if (!post.relu_mask.empty()) check_span("relu_mask", post.relu_mask.size(), ddst_need, "nChw16c, like ddst");
  check_disjoint("dweights", dwei, {{"src", src}, {"ddst", ddst}, {"relu_mask", post.relu_mask}});
  check_disjoint("dbias", dbias, {{"src", src}, {"ddst", ddst}, {"relu_mask", post.relu_mask}, {"dweights", dwei}});
}

/// A caller's workspace, checked (size, no overlap with the call's tensors) and aligned to 64 bytes.
inline float* checked_workspace(std::span<float> ws, int64_t need, std::initializer_list<NamedSpan> tensors) {
  check_span("workspace", ws.size(), need, "floats: workspace_size()");
  check_disjoint("workspace", ws, tensors);
  return aligned_part(ws).data();
}

/// The arguments of a forward call for the implementation (src in the layout it reads; weights
/// OIhw16i16o or its packed form).
inline impl::FwdCall fwd_call(const float* src, const float* wei, const float* packed, std::span<const float> bias,
                              std::span<float> dst, const PostOps& post, unsigned ops) {
  impl::FwdCall c;
  c.src = src;
  c.wei = wei;
  c.packed = packed;
  c.bias = bias.empty() ? nullptr : bias.data();
  c.scale = post.scale.empty() ? nullptr : post.scale.data();
  c.shift = post.shift.empty() ? nullptr : post.shift.data();
  c.residual = post.residual.empty() ? nullptr : post.residual.data();
  if (post.clamp) {
    c.clamp_lo = post.clamp->lo;
    c.clamp_hi = post.clamp->hi;
  }
  c.ops = ops;
  c.dst = dst.data();
  return c;
}

/// The arguments of a backward-data call (weights IOhw16o16i or the packed form).
inline impl::BwdDataCall bwd_d_call(std::span<const float> ddst, const float* wei, const float* packed,
                                    std::span<float> dsrc, const BwdPostOps& post) {
  impl::BwdDataCall c;
  c.ddst = ddst.data();
  c.wei = wei;
  c.packed = packed;
  c.mask = post.relu_mask.empty() ? nullptr : post.relu_mask.data();
  c.dsrc = dsrc.data();
  return c;
}

/// The arguments of a weight-update call (src in the layout the implementation reads).
inline impl::BwdWeightsCall bwd_w_call(const float* src, std::span<const float> ddst, std::span<float> dwei,
                                       std::span<float> dbias, const BwdPostOps& post) {
  impl::BwdWeightsCall c;
  c.src = src;
  c.ddst = ddst.data();
  c.mask = post.relu_mask.empty() ? nullptr : post.relu_mask.data();
  c.dwei = dwei.data();
  c.dbias = dbias.empty() ? nullptr : dbias.data();
  return c;
}

/// Threads a plan is partitioned for: Options::threads, or hardware_concurrency for 0.
inline int threads_of(const Options& o) { return o.threads > 0 ? o.threads : ThreadPool::hardware_threads(); }

}  // namespace detail

/// Weights in the layout one implementation of one pass reads (folded for the first layer's forward,
/// IOhw16o16i for backward data, ...), made once by Conv::pack_weights instead of on every call.
/// Usable by any Conv with the same descriptor that chose the same implementation for the pass.
class PackedWeights {
 public:
  PackedWeights() = default;
  /// The pass these weights were packed for.
  Pass pass() const { return pass_; }
  /// The packed floats (layout private to the implementation).
  std::span<const float> data() const { return data_.span(); }

 private:
  friend class Conv;
  Pass pass_ = Pass::fwd;
  ConvDesc desc_{};
  const char* impl_ = nullptr;
  AlignedBuffer data_;
};

/// A convolution whose shape is known at run time. Construction validates the descriptor and the
/// options (throws Error naming the field; Conv::check answers the same without throwing), then plans
/// the forward pass with the implementation of least estimated cost and builds its kernel stream: no
/// code is generated, it costs microseconds. The training passes are planned the same way on their
/// first use. Every call is const: one Conv may run from several threads at
/// once, each call with its own workspace (the caller's, or one leased from the Conv's pool).
/// Movable; a moved-from Conv throws Error("Conv") from every call but assignment and destruction
/// (the size queries, which read only the descriptor, still answer).
class Conv {
 public:
  /// Whether Conv(d, opt) constructs (then every pass can be planned and run): d.check(), and
  /// Options::threads in [0, kMaxThreads], a known src_layout.
  static Status check(const ConvDesc& d, const Options& opt = {}) {
    const Status s = d.check();
    if (!s.ok()) return s;
    if (opt.threads < 0) return {"threads", "must be >= 0", opt.threads};
    if (opt.threads > kMaxThreads) return {"threads", "must be <= 4096", opt.threads};
    if (opt.src_layout != SrcLayout::nChw16c && opt.src_layout != SrcLayout::nhwc && opt.src_layout != SrcLayout::any)
      return {"src_layout", "must be nChw16c, nhwc or any", int64_t(opt.src_layout)};
    return {};
  }

  /// Throws Error for what check() rejects.
  explicit Conv(const ConvDesc& d, Options opt = {}) : desc_(d), opt_(std::move(opt)) {
    throw_if_error(check(d, opt_));
    const bool any = opt_.src_layout == SrcLayout::any;
    impl::PlanContext ctx{detail::threads_of(opt_), machine(opt_), any ? SrcLayout::nhwc : opt_.src_layout};
    threads_ = ctx.threads;
    fwd_ = impl::choose<impl::FwdCall, impl::FwdImpls>(d, ctx);
    if (!fwd_) throw std::logic_error("hwyconv: no implementation planned the layer");
    // `any`: nhwc when the forward implementation reads it itself (planned for nhwc above: a plan
    // that does not read it is the same for nChw16c), else nChw16c.
    layout_ = any ? (fwd_->reads_nhwc() ? SrcLayout::nhwc : SrcLayout::nChw16c) : opt_.src_layout;
    ctx.src_layout = layout_;
    lazy_->ctx = ctx;
  }

  const ConvDesc& desc() const { return desc_; }
  /// Parts the work of every pass is partitioned into.
  int threads() const { return threads_; }
  /// Name of the implementation chosen for a pass ("fwd_direct", "bwd_d_phases", ...).
  const char* impl_name(Pass p) const { return planned(p).name(); }
  /// The chosen plan of a pass in a few words (implementation, register block, loop order), for logs.
  std::string describe(Pass p) const { return std::string(planned(p).name()) + " " + planned(p).describe(); }
  /// The estimated cost of the chosen plan of a pass (plan/model.hpp), in cycles.
  double estimated_cycles(Pass p) const { return planned(p).cost(); }
  /// The layout src is taken in by forward() and backward_weights() (Options::src_layout, `any` resolved).
  SrcLayout src_layout() const { return layout_; }
  /// The src layout the forward implementation reads without a reorder (nhwc for folded channels).
  SrcLayout preferred_src_layout() const { return (live(), fwd_->prefers_nhwc()) ? SrcLayout::nhwc : SrcLayout::nChw16c; }
  /// Floats of src in src_layout(): N x Cb x H x W x 16 (nChw16c), or N x H x W x C (nhwc).
  int64_t src_size() const { return detail::src_floats(desc_, layout_); }
  /// Floats of dsrc (nChw16c whatever src_layout() is).
  int64_t dsrc_size() const { return act_blocked_size(desc_.N, desc_.C, desc_.H, desc_.W); }
  /// Floats of weights: OIhw16i16o (Kb x Cb x R x S x 16 x 16), for a grouped layer gOIhw16i16o
  /// (wei_grouped_size, reorder_goihw_to_gOIhw16i16o), or for a depthwise layer Goihw16g
  /// (div_up(G,16) x R x S x 16); wei_layout() names it.
  int64_t wei_size() const { return detail::wei_floats(desc_); }
  /// The layout of the weights of forward() and backward_weights(): "OIhw16i16o", "gOIhw16i16o"
  /// for a grouped layer (reorder_goihw_to_gOIhw16i16o), or "Goihw16g" for a depthwise layer
  /// (reorder_goihw_to_Goihw16g).
  const char* wei_layout() const { return detail::wei_layout(desc_); }
  /// Floats of dst (nChw16c, N x Kb x P x Q x 16).
  int64_t dst_size() const { return act_blocked_size(desc_.N, desc_.K, desc_.P(), desc_.Q()); }
  /// Floats of the workspace one call of pass p needs when the caller provides it (64-byte alignment
  /// slack included). Without one, each call leases a workspace from this Conv's pool.
  int64_t workspace_size(Pass p) const { return planned(p).workspace() + reorder_floats(p) + kAlignSlack; }

  /// Weights for pass p (fwd or bwd_d) in the layout its implementation reads, from wei_layout() (K,
  /// C, R, S): do it once per weight update instead of on every call. Throws Error("weights") for a
  /// span too small, Error("pass") for bwd_w (it takes no weights).
  PackedWeights pack_weights(Pass p, std::span<const float> wei) const {
    if (p == Pass::bwd_w) throw Error("pass", "bwd_w takes no weights to pack");
    detail::check_span("weights", wei.size(), wei_size(), wei_layout());
    PackedWeights w;
    w.pass_ = p;
    w.desc_ = desc_;
    const int64_t own = planned(p).packed_size();
    w.impl_ = planned(p).name();
    w.data_ = AlignedBuffer(own > 0 ? own : wei_size());
    if (p == Pass::fwd) {
      if (own > 0)
        fwd_->pack(wei.data(), w.data_.data());
      else
        std::copy_n(wei.data(), wei_size(), w.data_.data());
      return w;
    }
    AlignedBuffer io_buf(own > 0 ? wei_size() : 0);
    float* io = own > 0 ? io_buf.data() : w.data_.data();
    reorder_weights_bwd_d(wei.first(size_t(wei_size())), std::span<float>(io, size_t(wei_size())));
    if (own > 0) bwd_d().pack(io, w.data_.data());
    return w;
  }

  /// Forward propagation: dst = post(conv(src, weights) + bias). src in src_layout() (N, C, H, W),
  /// weights in wei_layout() (K, C/G, R, S), bias K floats or empty, dst nChw16c (N, K, P, Q); padded
  /// channels of src and weights must be zero (the reorders make them so) and stay zero in dst.
  /// `workspace`: empty, or at least workspace_size(Pass::fwd) floats of the caller's. Throws Error
  /// (naming "src", "weights", "bias", "dst", "residual", "scale", "shift", "clamp" or "workspace")
  /// before writing anything.
  void forward(std::span<const float> src, std::span<const float> wei, std::span<const float> bias,
               std::span<float> dst, const PostOps& post = {}, std::span<float> workspace = {}) const {
    live();
    const unsigned ops = detail::check_forward(desc_, layout_, src, wei, wei_size(), wei_layout(), bias, dst, post);
    run_forward(src, wei.data(), nullptr, bias, dst, post, ops, workspace);
  }

  /// Forward with weights from pack_weights(Pass::fwd, ...). Throws Error("weights") for weights
  /// packed for another pass, layer or implementation.
  void forward(std::span<const float> src, const PackedWeights& wei, std::span<const float> bias,
               std::span<float> dst, const PostOps& post = {}, std::span<float> workspace = {}) const {
    live();
    check_packed(Pass::fwd, wei);
    const unsigned ops = detail::check_forward(desc_, layout_, src, wei.data(), wei.data().size(), "packed", bias, dst, post);
    const bool own = fwd_->packed_size() > 0;
    run_forward(src, own ? nullptr : wei.data().data(), own ? wei.data().data() : nullptr, bias, dst, post, ops, workspace);
  }

  /// Weights for backward_data: OIhw16i16o -> IOhw16o16i (grouped: gOIhw16i16o -> gIOhw16o16i;
  /// wei_size() floats); a depthwise layer's Goihw16g weights are copied as they are. Do it once per
  /// training step, after the weights change (or pack_weights(Pass::bwd_d, ...)). Throws
  /// Error("weights", "wei_bwd_d") on bad spans.
  void reorder_weights_bwd_d(std::span<const float> wei, std::span<float> wei_bwd_d) const {
    if (!desc_.depthwise()) {
      hwyconv::reorder_weights_bwd_d(wei, wei_bwd_d, desc_.K, desc_.C, desc_.R, desc_.S, desc_.groups);
      return;
    }
    detail::check_span("weights", wei.size(), wei_size(), "Goihw16g");
    detail::check_span("wei_bwd_d", wei_bwd_d.size(), wei_size(), "Goihw16g");
    detail::check_disjoint("wei_bwd_d", wei_bwd_d, {{"weights", wei}});
    std::copy_n(wei.data(), wei_size(), wei_bwd_d.data());
  }

  /// Backward data: dsrc = dL/dsrc from ddst = dL/ddst. ddst nChw16c (N, K, P, Q), wei_bwd_d
  /// IOhw16o16i (grouped: gIOhw16o16i) or, depthwise, Goihw16g (reorder_weights_bwd_d), dsrc nChw16c
  /// (N, C, H, W), overwritten (padded channels 0).
  /// post.relu_mask fuses ReLU backward. Throws Error ("ddst", "wei_bwd_d", "dsrc", "relu_mask",
  /// "workspace") before writing anything.
  void backward_data(std::span<const float> ddst, std::span<const float> wei_bwd_d, std::span<float> dsrc,
                     const BwdPostOps& post = {}, std::span<float> workspace = {}) const {
    live();
    detail::check_backward_data(desc_, ddst, wei_bwd_d, wei_size(), detail::wei_bwd_d_layout(desc_), dsrc, post);
    run_backward_data(ddst, wei_bwd_d.data(), nullptr, dsrc, post, workspace, wei_bwd_d);
  }

  /// Backward data with weights from pack_weights(Pass::bwd_d, ...).
  void backward_data(std::span<const float> ddst, const PackedWeights& wei, std::span<float> dsrc,
                     const BwdPostOps& post = {}, std::span<float> workspace = {}) const {
    check_packed(Pass::bwd_d, wei);
    detail::check_backward_data(desc_, ddst, wei.data(), wei.data().size(), "packed", dsrc, post);
    const bool own = bwd_d().packed_size() > 0;
    run_backward_data(ddst, own ? nullptr : wei.data().data(), own ? wei.data().data() : nullptr, dsrc, post,
                      workspace, wei.data());
  }

  /// Backward weights: dwei = dL/dweights (wei_layout(), overwritten) and, unless dbias is empty,
  /// dbias = dL/dbias (K floats), from src (src_layout()) and ddst (nChw16c). post.relu_mask fuses
  /// ReLU backward. Results may differ in the last bits between thread counts when the minibatch is
  /// split (impl bwd_w_minibatch). Throws Error ("src", "ddst", "dweights", "dbias", "relu_mask",
  /// "workspace") before writing anything.
  void backward_weights(std::span<const float> src, std::span<const float> ddst, std::span<float> dwei,
                        std::span<float> dbias, const BwdPostOps& post = {}, std::span<float> workspace = {}) const {
    live();
    detail::check_backward_weights(desc_, layout_, src, ddst, dwei, dbias, post);
    Scratch ws(*this, Pass::bwd_w, workspace, {{"src", src}, {"ddst", ddst}, {"dweights", dwei}, {"dbias", dbias}});
    const float* in = blocked_src(src, bwd_w().reads_nhwc(), ws.data(), Pass::bwd_w);
    bwd_w().run(detail::bwd_w_call(in, ddst, dwei, dbias, post), ws.data() + reorder_floats(Pass::bwd_w),
                opt_.parallel_for);
  }

  /// Name of the Highway target whose microkernels run on this CPU ("AVX3_DL", "AVX2", ...).
  static const char* target() { return kernels().target; }

  /// The first broken invariant of the plans, or nullptr (every plan is checked by the tests).
  const char* invariant_violation() const {
    for (Pass p : {Pass::fwd, Pass::bwd_d, Pass::bwd_w})
      if (const char* v = planned(p).invariant_violation()) return v;
    return nullptr;
  }

  /// The plan of implementation I when it was chosen for its pass, else nullptr (tests, bench).
  template <class I>
  const typename I::Plan* plan() const {
    const auto* p = dynamic_cast<const impl::PlannedImpl<I>*>(holder<typename I::Call>());
    return p ? &p->plan : nullptr;
  }
  /// The kernel streams of implementation I when it was chosen for its pass, else nullptr.
  template <class I>
  const typename I::Streams* streams() const {
    const auto* p = dynamic_cast<const impl::PlannedImpl<I>*>(holder<typename I::Call>());
    return p ? &p->streams : nullptr;
  }

 private:
  /// The training passes are planned on their first use (once, thread-safe): an inference user
  /// pays only for the forward plan.
  struct Lazy {
    impl::PlanContext ctx;
    std::once_flag bwd_d_once, bwd_w_once;
    std::unique_ptr<impl::Planned<impl::BwdDataCall>> bwd_d;
    std::unique_ptr<impl::Planned<impl::BwdWeightsCall>> bwd_w;
  };
  const impl::Planned<impl::BwdDataCall>& bwd_d() const {
    std::call_once(lazy_->bwd_d_once, [&] { lazy_->bwd_d = impl::choose<impl::BwdDataCall, impl::BwdDataImpls>(desc_, lazy_->ctx); });
    return *lazy_->bwd_d;
  }
  const impl::Planned<impl::BwdWeightsCall>& bwd_w() const {
    std::call_once(lazy_->bwd_w_once, [&] { lazy_->bwd_w = impl::choose<impl::BwdWeightsCall, impl::BwdWeightsImpls>(desc_, lazy_->ctx); });
    return *lazy_->bwd_w;
  }

  /// Throws Error("Conv") on a moved-from Conv (its plans moved away), before anything is touched.
  void live() const {
    if (!fwd_ || !lazy_) throw Error("Conv", "used after being moved from (it can only be assigned to or destroyed)");
  }

  /// The implementation chosen for pass p.
  const impl::PlannedBase& planned(Pass p) const {
    live();
    if (p == Pass::fwd) return *fwd_;
    if (p == Pass::bwd_d) return bwd_d();
    return bwd_w();
  }
  template <class Call>
  const impl::Planned<Call>* holder() const {
    live();
    if constexpr (std::is_same_v<Call, impl::FwdCall>) return fwd_.get();
    else if constexpr (std::is_same_v<Call, impl::BwdDataCall>) return &bwd_d();
    else return &bwd_w();
  }

  static Machine machine(const Options& o) {
    if (o.machine) return *o.machine;
    Machine m = Machine::host();
    m.max_pixels = kernels().max_pixels;
    m.vec_per_block = kernels().vec_per_block;
    return m;
  }

  /// Floats of a pass's workspace that hold an nhwc src reordered to nChw16c (src_layout() nhwc,
  /// implementation reading nChw16c).
  int64_t reorder_floats(Pass p) const {
    const bool nhwc_read = p == Pass::fwd ? fwd_->reads_nhwc() : (p == Pass::bwd_w ? bwd_w().reads_nhwc() : true);
    return layout_ == SrcLayout::nhwc && !nhwc_read ? round_up(dsrc_size(), kAlignSlack) : 0;
  }

  /// src as the implementation reads it: an nhwc src it does not read itself is reordered into the
  /// front of the workspace.
  const float* blocked_src(std::span<const float> src, bool impl_reads_nhwc, float* ws, Pass p) const {
    if (layout_ != SrcLayout::nhwc || impl_reads_nhwc) return src.data();
    const ConvDesc& d = desc_;
    reorder_nhwc_to_nChw16c(src.first(size_t(detail::src_floats(d, SrcLayout::nhwc))),
                            std::span<float>(ws, size_t(reorder_floats(p))), d.N, d.C, d.H, d.W);
    return ws;
  }

  void check_packed(Pass p, const PackedWeights& w) const {
    if (w.pass_ != p || !(w.desc_ == desc_) || w.impl_ != planned(p).name())
      throw Error("weights", std::string("packed for another pass, layer or implementation (this call: ") + pass_name(p) +
                                 " " + planned(p).name() + ")");
  }

  /// A call's workspace: the caller's (checked, aligned) or one leased from the pool.
  class Scratch {
   public:
    Scratch(const Conv& c, Pass p, std::span<float> given, std::initializer_list<detail::NamedSpan> tensors)
        : lease_(given.empty() ? c.pool_->lease(c.workspace_size(p)) : detail::WorkspacePool::Lease(nullptr, {})),
          data_(given.empty() ? lease_.data() : detail::checked_workspace(given, c.workspace_size(p), tensors)) {}
    float* data() const { return data_; }

   private:
    detail::WorkspacePool::Lease lease_;
    float* data_;
  };

  void run_forward(std::span<const float> src, const float* wei, const float* packed, std::span<const float> bias,
                   std::span<float> dst, const PostOps& post, unsigned ops, std::span<float> workspace) const {
    Scratch ws(*this, Pass::fwd, workspace,
               {{"src", src}, {"bias", bias}, {"dst", dst}, {"residual", post.residual}, {"scale", post.scale},
                {"shift", post.shift}});
    const float* in = blocked_src(src, fwd_->reads_nhwc(), ws.data(), Pass::fwd);
    fwd_->run(detail::fwd_call(in, wei, packed, bias, dst, post, ops), ws.data() + reorder_floats(Pass::fwd),
              opt_.parallel_for);
  }

  void run_backward_data(std::span<const float> ddst, const float* wei, const float* packed, std::span<float> dsrc,
                         const BwdPostOps& post, std::span<float> workspace, std::span<const float> wei_span) const {
    Scratch ws(*this, Pass::bwd_d, workspace,
               {{"ddst", ddst}, {"wei_bwd_d", wei_span}, {"dsrc", dsrc}, {"relu_mask", post.relu_mask}});
    bwd_d().run(detail::bwd_d_call(ddst, wei, packed, dsrc, post), ws.data(), opt_.parallel_for);
  }

  ConvDesc desc_;
  Options opt_;
  SrcLayout layout_ = SrcLayout::nChw16c;
  int threads_ = 1;
  std::unique_ptr<impl::Planned<impl::FwdCall>> fwd_;
  std::unique_ptr<Lazy> lazy_ = std::make_unique<Lazy>();
  std::unique_ptr<detail::WorkspacePool> pool_ = std::make_unique<detail::WorkspacePool>();
};

/// A convolution whose shape is a compile-time constant: the implementations, plans and the forward
/// kernel stream are constant expressions (read-only tables), checked by static_assert; only the SIMD
/// target is chosen at run time (unless HWYCONV_STATIC_DISPATCH). kThreads: the partition of the work
/// (run on the global pool, or the ParallelFor passed to each call); kMachine: the machine the plans
/// are made for (default: Machine{}'s typical AVX-512 server core). src is nChw16c.
template <ConvDesc kDesc, int kThreads = 1, Machine kMachine = Machine{}>
struct StaticConv {
  static_assert(kDesc.check().ok(), "invalid ConvDesc: call kDesc.check() to see which field");
  static_assert(kThreads >= 1 && kThreads <= kMaxThreads, "kThreads must be in [1, kMaxThreads]");
  static constexpr impl::PlanContext kCtx{kThreads, kMachine, SrcLayout::nChw16c};

  using FwdImpl = std::tuple_element_t<size_t(impl::choose_static<impl::FwdImpls>(kDesc, kCtx)), impl::FwdImpls>;
  using BwdDataImpl =
      std::tuple_element_t<size_t(impl::choose_static<impl::BwdDataImpls>(kDesc, kCtx)), impl::BwdDataImpls>;
  using BwdWeightsImpl =
      std::tuple_element_t<size_t(impl::choose_static<impl::BwdWeightsImpls>(kDesc, kCtx)), impl::BwdWeightsImpls>;

  template <class I>
  static constexpr typename I::Plan make_plan() {
    typename I::Plan p{};
    I::plan(kDesc, kCtx, p);
    return p;
  }
  static constexpr typename FwdImpl::Plan kPlan = make_plan<FwdImpl>();
  static_assert(FwdImpl::invariant_violation(kPlan) == nullptr, "forward plan invariant broken");
  /// Whether the forward implementation runs a kernel stream (the dense ones; depthwise runs rows).
  static constexpr bool kStreamed = std::is_same_v<typename FwdImpl::Plan, FwdPlan>;
  template <class Plan>
  static constexpr int64_t stream_calls(const Plan& p) {
    if constexpr (std::is_same_v<Plan, FwdPlan>) return fwd_stream_size(p.g, p.b, p.tap.data());
    else return 0;
  }
  static constexpr int64_t kCalls = stream_calls(kPlan);
  template <class Plan>
  static constexpr StaticStream<kCalls, kThreads> make_stream(const Plan& p) {
    if constexpr (std::is_same_v<Plan, FwdPlan>) return make_static_fwd_stream<kCalls, kThreads>(p.g, p.b, p.tap.data());
    else return {};
  }
  static constexpr StaticStream<kCalls, kThreads> kStream = make_stream(kPlan);
  static_assert(!kStreamed || kStream.begin[kThreads] == kCalls, "kernel stream size mismatch");
  /// Workspace floats forward() needs (see the overload taking a workspace).
  static constexpr int64_t kScratch = FwdImpl::workspace(kPlan) + kAlignSlack;

  /// Backward-data and weight-update plans (constant); their streams are built on first use.
  static constexpr typename BwdDataImpl::Plan kBwdDataPlan = make_plan<BwdDataImpl>();
  static constexpr typename BwdWeightsImpl::Plan kBwdWeightsPlan = make_plan<BwdWeightsImpl>();
  static_assert(BwdDataImpl::invariant_violation(kBwdDataPlan) == nullptr, "backward-data plan invariant broken");
  static_assert(BwdWeightsImpl::invariant_violation(kBwdWeightsPlan) == nullptr, "weight-update plan invariant broken");

  /// As Conv::forward, with a caller-provided workspace of at least kScratch floats.
  static void forward(std::span<const float> src, std::span<const float> wei, std::span<const float> bias,
                      std::span<float> dst, std::span<float> workspace, const PostOps& post = {},
                      const ParallelFor& pf = {}) {
    const unsigned ops = detail::check_forward(kDesc, SrcLayout::nChw16c, src, wei, detail::wei_floats(kDesc),
                                               detail::wei_layout(kDesc), bias, dst, post);
    float* ws = detail::checked_workspace(workspace, kScratch,
                                          {{"src", src}, {"weights", wei}, {"bias", bias}, {"dst", dst},
                                           {"residual", post.residual}, {"scale", post.scale}, {"shift", post.shift}});
    const impl::FwdCall call = detail::fwd_call(src.data(), wei.data(), nullptr, bias, dst, post, ops);
    if constexpr (kStreamed)
      FwdImpl::run_stream(kPlan, {kStream.entries.data(), kStream.begin.data()}, call, ws, pf);
    else
      FwdImpl::run(kPlan, {}, call, ws, pf);
  }

  /// As Conv::forward; the workspace is a thread-local buffer.
  static void forward(std::span<const float> src, std::span<const float> wei, std::span<const float> bias,
                      std::span<float> dst, const PostOps& post = {}, const ParallelFor& pf = {}) {
    thread_local AlignedBuffer ws(kScratch);
    forward(src, wei, bias, dst, ws.span(), post, pf);
  }

  /// As Conv::backward_data (workspace: a thread-local buffer).
  static void backward_data(std::span<const float> ddst, std::span<const float> wei_bwd_d, std::span<float> dsrc,
                            const BwdPostOps& post = {}, const ParallelFor& pf = {}) {
    static const typename BwdDataImpl::Streams streams = BwdDataImpl::make_streams(kBwdDataPlan);
    detail::check_backward_data(kDesc, ddst, wei_bwd_d, detail::wei_floats(kDesc), detail::wei_bwd_d_layout(kDesc),
                                dsrc, post);
    thread_local AlignedBuffer ws(BwdDataImpl::workspace(kBwdDataPlan));
    BwdDataImpl::run(kBwdDataPlan, streams, detail::bwd_d_call(ddst, wei_bwd_d.data(), nullptr, dsrc, post), ws.data(), pf);
  }

  /// As Conv::backward_weights (workspace: a thread-local buffer).
  static void backward_weights(std::span<const float> src, std::span<const float> ddst, std::span<float> dwei,
                               std::span<float> dbias, const BwdPostOps& post = {}, const ParallelFor& pf = {}) {
    detail::check_backward_weights(kDesc, SrcLayout::nChw16c, src, ddst, dwei, dbias, post);
    thread_local AlignedBuffer ws(BwdWeightsImpl::workspace(kBwdWeightsPlan));
    BwdWeightsImpl::run(kBwdWeightsPlan, {}, detail::bwd_w_call(src.data(), ddst, dwei, dbias, post), ws.data(), pf);
  }
};

}  // namespace hwyconv
