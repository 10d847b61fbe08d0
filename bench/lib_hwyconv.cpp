// bench/lib_hwyconv.cpp - the hwyconv runners. The only translation unit of the bench that includes
// <hwyconv/hwyconv.hpp> (its Highway foreach_target chain compiles every microkernel for every target).
//
// Data arrive in plain layouts and are reordered once, outside the timing, with hwyconv's reorders
// (nchw -> nChw16c, goihw -> gOIhw16i16o (OIhw16i16o for one group) or, depthwise, goihw ->
// Goihw16g); the result is reordered back to nchw for the cross-check.
// Adding a pass: write one runner below and put it in hwyconv_library()'s table.
#include <hwyconv/hwyconv.hpp>

#include <span>
#include <stdexcept>
#include <string>

#include "problem.hpp"

namespace bench {
namespace {

/// Creations timed for the median plan cost (the Conv constructor costs microseconds).
constexpr int kCreateReps = 25;

/// hwyconv's descriptor of a layer at minibatch mb (dilations are "1 = dense" in both).
hwyconv::ConvDesc desc_of(const Layer& l, int64_t mb) {
  hwyconv::ConvDesc d = hwyconv::ConvDesc(mb, l.ic, l.oc, l.ih, l.iw, l.kh, l.kw)
                            .with_stride(l.sh, l.sw)
                            .with_pad(l.ph, l.pw, l.ph_r, l.pw_r)
                            .with_dilation(l.dh, l.dw);
  d.groups = l.g;
  return d;
}

/// The problem's plain weights in the layout `conv` takes (Conv::wei_layout()).
Buffer make_wei(const Problem& p, const hwyconv::Conv& conv) {
  const Layer& l = p.layer;
  Buffer wei(size_t(conv.wei_size()));
  if (conv.desc().depthwise())
    hwyconv::reorder_goihw_to_Goihw16g(p.wei, wei, l.g, l.kh, l.kw);
  else
    hwyconv::reorder_goihw_to_gOIhw16i16o(p.wei, wei, l.g, l.oc, l.ic, l.kh, l.kw);
  return wei;
}

/// What ran: the target and the chosen implementation with its plan in a few words.
std::string describe(const hwyconv::Conv& conv, hwyconv::Pass pass) {
  return std::string(hwyconv::Conv::target()) + " " + conv.describe(pass);
}

/// Options of a layer's Conv: src in the layout the forward implementation reads directly
/// (SrcLayout::any: nhwc for folded channels, the first layer), as oneDNN's format_tag::any picks nhwc
/// there; nChw16c otherwise.
hwyconv::Options options_of(int threads) { return {.threads = threads, .src_layout = hwyconv::SrcLayout::any}; }

/// src of a problem in the layout `conv` takes (Options::src_layout), from its plain nchw copy.
Buffer make_src(const Problem& p, const hwyconv::Conv& conv) {
  const Layer& l = p.layer;
  Buffer src(size_t(conv.src_size()));
  if (conv.src_layout() == hwyconv::SrcLayout::nChw16c) {
    hwyconv::reorder_nchw_to_nChw16c(p.src, src, p.mb, l.ic, l.ih, l.iw);
  } else {
    Buffer blocked(size_t(conv.dsrc_size()));
    hwyconv::reorder_nchw_to_nChw16c(p.src, blocked, p.mb, l.ic, l.ih, l.iw);
    hwyconv::reorder_nChw16c_to_nhwc(blocked, src, p.mb, l.ic, l.ih, l.iw);
  }
  return src;
}

/// Forward: Conv(desc, options_of) then forward(src, wei, bias, dst) with bias, no other post-op.
Measurement hwyconv_fwd(const Problem& p, const RunConfig& cfg) {
  const Layer& l = p.layer;
  const hwyconv::ConvDesc d = desc_of(l, p.mb);
  const hwyconv::Options opt = options_of(cfg.threads);
  Measurement m;
  m.create_ms = median_call_ms([&] { hwyconv::Conv c(d, opt); }, kCreateReps);
  hwyconv::Conv conv(d, opt);
  if (d.P() != l.oh || d.Q() != l.ow) throw std::runtime_error("hwyconv's output size differs from the descriptor's");

  Buffer src = make_src(p, conv), wei = make_wei(p, conv), dst(size_t(conv.dst_size()));
  const std::span<const float> bias(p.bias.data(), p.bias.size());
  m.time = measure([&] { conv.forward(src, wei, bias, dst); }, cfg.timing);

  m.output.resize(size_t(p.dst_elems()));
  hwyconv::reorder_nChw16c_to_nchw(dst, m.output, p.mb, l.oc, l.oh, l.ow);
  m.impl = describe(conv, hwyconv::Pass::fwd);
  m.ran = true;
  return m;
}

/// Backward data: reorder_weights_bwd_d once (outside the timing, as once per training step), then
/// backward_data(ddst, wei_bwd_d, dsrc). The first call (which builds the phase streams) is warm-up.
Measurement hwyconv_bwd_d(const Problem& p, const RunConfig& cfg) {
  const Layer& l = p.layer;
  const hwyconv::ConvDesc d = desc_of(l, p.mb);
  hwyconv::Conv conv(d, {.threads = cfg.threads});
  Measurement m;
  Buffer wei = make_wei(p, conv), wbd(size_t(conv.wei_size())), ddst(size_t(conv.dst_size())),
      dsrc(size_t(conv.dsrc_size()));
  hwyconv::reorder_nchw_to_nChw16c(p.diff_dst, ddst, p.mb, l.oc, l.oh, l.ow);
  m.create_ms = median_call_ms([&] { conv.reorder_weights_bwd_d(wei, wbd); }, 5);
  m.time = measure([&] { conv.backward_data(ddst, wbd, dsrc); }, cfg.timing);
  m.output.resize(size_t(p.src_elems()));
  hwyconv::reorder_nChw16c_to_nchw(dsrc, m.output, p.mb, l.ic, l.ih, l.iw);
  m.impl = describe(conv, hwyconv::Pass::bwd_d);
  m.ran = true;
  return m;
}

/// Backward weights (no bias gradient, as oneDNN's runner): backward_weights(src, ddst, dwei, {}),
/// src in the layout of options_of.
Measurement hwyconv_bwd_w(const Problem& p, const RunConfig& cfg) {
  const Layer& l = p.layer;
  const hwyconv::ConvDesc d = desc_of(l, p.mb);
  hwyconv::Conv conv(d, options_of(cfg.threads));
  Measurement m;
  Buffer src = make_src(p, conv), ddst(size_t(conv.dst_size())), dwei(size_t(conv.wei_size()));
  hwyconv::reorder_nchw_to_nChw16c(p.diff_dst, ddst, p.mb, l.oc, l.oh, l.ow);
  m.time = measure([&] { conv.backward_weights(src, ddst, dwei, {}); }, cfg.timing);
  m.output.resize(size_t(p.wei_elems()));
  if (d.depthwise())
    hwyconv::reorder_Goihw16g_to_goihw(dwei, m.output, l.g, l.kh, l.kw);
  else
    hwyconv::reorder_gOIhw16i16o_to_goihw(dwei, m.output, l.g, l.oc, l.ic, l.kh, l.kw);
  m.impl = describe(conv, hwyconv::Pass::bwd_w);
  m.ran = true;
  return m;
}

/// Threads: Options::threads partitions the kernel stream; it runs on hwyconv's global pool.
std::string hwyconv_threads(int threads) {
  const int pool = hwyconv::ThreadPool::global().size();
  std::string s = "Options{.threads = " + std::to_string(threads) + "} (kernel stream in " +
                  std::to_string(threads) + " parts) on hwyconv's global ThreadPool of " +
                  std::to_string(pool) + " threads";
  if (pool < threads) s += " -- WARNING: fewer pool threads than parts, parts run in turn";
  return s;
}

}  // namespace

Library hwyconv_library() {
  Library lib;
  lib.name = "hwyconv";
  lib.runners[int(Pass::kFwd)] = hwyconv_fwd;
  lib.runners[int(Pass::kBwdD)] = hwyconv_bwd_d;
  lib.runners[int(Pass::kBwdW)] = hwyconv_bwd_w;
  lib.threads_info = hwyconv_threads;
  lib.version = std::string("hwyconv, Highway target ") + hwyconv::Conv::target();
  return lib;
}

}  // namespace bench
