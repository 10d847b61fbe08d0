// bench/lib_hwyconv.cpp - the hwyconv runners. The only translation unit of the bench that includes
// <hwyconv/hwyconv.hpp> (its Highway foreach_target chain compiles every microkernel for every target).
//
// Data arrive in plain layouts and are reordered once, outside the timing, with hwyconv's reorders
// (nchw -> nChw16c, oihw -> OIhw16i16o); the result is reordered back to nchw for the cross-check.
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
  return hwyconv::ConvDesc(mb, l.ic, l.oc, l.ih, l.iw, l.kh, l.kw)
      .with_stride(l.sh, l.sw)
      .with_pad(l.ph, l.pw, l.ph_r, l.pw_r)
      .with_dilation(l.dh, l.dw);
}

/// Short description of a forward plan: target, input mode, register block, C chunk.
std::string describe(const hwyconv::FwdPlan& p) {
  const char* mode = p.mode == hwyconv::InputMode::kDirect ? "direct"
                     : p.mode == hwyconv::InputMode::kPhases ? "phases"
                                                             : "fold";
  return std::string(hwyconv::Conv::target()) + " " + mode + " rb" + std::to_string(p.rb().rb_p) + "x" +
         std::to_string(p.rb().rb_q) + " cc" + std::to_string(p.c_chunk);
}

/// Forward: Conv(desc, {.threads}) then forward(src, wei, bias, dst) with bias, no other post-op.
Measurement hwyconv_fwd(const Problem& p, const RunConfig& cfg) {
  const Layer& l = p.layer;
  const hwyconv::ConvDesc d = desc_of(l, p.mb);
  const hwyconv::Options opt{.threads = cfg.threads};
  Measurement m;
  m.create_ms = median_call_ms([&] { hwyconv::Conv c(d, opt); }, kCreateReps);
  hwyconv::Conv conv(d, opt);
  if (conv.plan().P != l.oh || conv.plan().Q != l.ow)
    throw std::runtime_error("hwyconv's output size differs from the descriptor's");

  Buffer src(size_t(conv.src_size())), wei(size_t(conv.wei_size())), dst(size_t(conv.dst_size()));
  hwyconv::reorder_nchw_to_nChw16c(p.src, src, p.mb, l.ic, l.ih, l.iw);
  hwyconv::reorder_oihw_to_OIhw16i16o(p.wei, wei, l.oc, l.ic, l.kh, l.kw);
  const std::span<const float> bias(p.bias.data(), p.bias.size());
  m.time = measure([&] { conv.forward(src, wei, bias, dst); }, cfg.timing);

  m.output.resize(size_t(p.dst_elems()));
  hwyconv::reorder_nChw16c_to_nchw(dst, m.output, p.mb, l.oc, l.oh, l.ow);
  m.impl = describe(conv.plan());
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
  lib.threads_info = hwyconv_threads;
  lib.version = std::string("hwyconv, Highway target ") + hwyconv::Conv::target();
  return lib;
}

}  // namespace bench
