// bench/lib_onednn.cpp - the oneDNN runners (compiled when find_package(dnnl) succeeds): forward
// inference, backward data and backward weights, each with format_tag::any for activations and
// weights, so that oneDNN picks its own blocked layouts.
//
// Creation (primitive descriptor + primitive) is timed on its own with the primitive cache disabled,
// so every creation is a cold one; user data (plain nchw/oihw) are reordered into the chosen layouts
// outside the timing, and results back into plain layouts for the cross-check.
// Adding a pass: write one runner and put it in onednn_library()'s table.
#include <oneapi/dnnl/dnnl.hpp>

#include <string>
#include <unordered_map>

#ifdef HWYCONV_BENCH_HAVE_OPENMP
#include <omp.h>
#endif

#include "problem.hpp"

namespace bench {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

/// Creations timed for the median creation cost (each one JIT-compiles kernels: milliseconds).
constexpr int kCreateReps = 5;

/// The CPU engine, created once.
dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

/// Dimensions of one layer at minibatch mb, in oneDNN's terms (dilations are 0-based there).
struct Dims {
  memory::dims src, wei, bias, dst, strides, dilates, pad_l, pad_r;
  tag wei_tag = tag::oihw;  ///< plain weights: oihw, or goihw for g > 1 (the same floats)
};
Dims dims_of(const Problem& p) {
  const Layer& l = p.layer;
  Dims d{{p.mb, l.ic, l.ih, l.iw}, {l.oc, l.ic, l.kh, l.kw}, {l.oc}, {p.mb, l.oc, l.oh, l.ow},
         {l.sh, l.sw}, {l.dh - 1, l.dw - 1}, {l.ph, l.pw}, {l.ph_r, l.pw_r}};
  if (l.g > 1) {
    d.wei = {l.g, l.oc / l.g, l.ic / l.g, l.kh, l.kw};
    d.wei_tag = tag::goihw;
  }
  return d;
}

/// A memory descriptor of `dims` whose layout oneDNN chooses.
memory::desc any(const memory::dims& dims) { return memory::desc(dims, dt::f32, tag::any); }

/// A memory of layout `want` holding the plain data `plain` (of layout `plain_tag`), via a reorder.
memory import(const Buffer& plain, const memory::dims& dims, tag plain_tag, const memory::desc& want,
              dnnl::stream& s) {
  memory user(memory::desc(dims, dt::f32, plain_tag), engine(), const_cast<float*>(plain.data()));
  memory m(want, engine());
  dnnl::reorder(user, m).execute(s, user, m);
  s.wait();
  return m;
}

/// The contents of `m` in the plain layout `plain_tag`.
Buffer export_plain(memory m, const memory::dims& dims, tag plain_tag, dnnl::stream& s) {
  Buffer out(size_t(memory::desc(dims, dt::f32, plain_tag).get_size() / sizeof(float)));
  memory user(memory::desc(dims, dt::f32, plain_tag), engine(), out.data());
  dnnl::reorder(m, user).execute(s, m, user);
  s.wait();
  return out;
}

/// Times `create` (returns a primitive descriptor), builds the primitive from the last one, and
/// records the creation median and impl_info_str() in m. Returns {pd, primitive}.
template <class Prim, class Create>
std::pair<typename Prim::primitive_desc, Prim> create_timed(Measurement& m, Create create) {
  m.create_ms = median_call_ms([&] { Prim prim(create()); }, kCreateReps);
  typename Prim::primitive_desc pd = create();
  m.impl = pd.impl_info_str();
  return {pd, Prim(pd)};
}

/// Times prim.execute(args) followed by a stream wait.
Stats execute_timed(const dnnl::primitive& prim, const std::unordered_map<int, memory>& args,
                    dnnl::stream& s, const RunConfig& cfg) {
  return measure(
      [&] {
        prim.execute(s, args);
        s.wait();
      },
      cfg.timing);
}

/// Sets the OpenMP thread count oneDNN will use (it reads omp_get_max_threads()).
void set_threads(int threads) {
#ifdef HWYCONV_BENCH_HAVE_OPENMP
  omp_set_num_threads(threads);
#else
  (void)threads;
#endif
}

/// A forward primitive descriptor (training: the hint the backward passes need; or inference).
dnnl::convolution_forward::primitive_desc forward_pd(const Dims& d, dnnl::prop_kind kind) {
  const dnnl::convolution_forward::desc desc(kind, dnnl::algorithm::convolution_direct, any(d.src),
                                             any(d.wei), memory::desc(d.bias, dt::f32, tag::x),
                                             any(d.dst), d.strides, d.dilates, d.pad_l, d.pad_r);
  return dnnl::convolution_forward::primitive_desc(desc, engine());
}

/// Forward inference with bias: dst = conv(src, weights) + bias.
Measurement onednn_fwd(const Problem& p, const RunConfig& cfg) {
  set_threads(cfg.threads);
  const Dims d = dims_of(p);
  Measurement m;
  auto [pd, prim] = create_timed<dnnl::convolution_forward>(
      m, [&] { return forward_pd(d, dnnl::prop_kind::forward_inference); });
  dnnl::stream s(engine());
  const memory src = import(p.src, d.src, tag::nchw, pd.src_desc(), s);
  const memory wei = import(p.wei, d.wei, d.wei_tag, pd.weights_desc(), s);
  const memory bias = import(p.bias, d.bias, tag::x, pd.bias_desc(), s);
  const memory dst(pd.dst_desc(), engine());
  m.time = execute_timed(
      prim, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, dst}}, s,
      cfg);
  m.output = export_plain(dst, d.dst, tag::nchw, s);
  m.ran = true;
  return m;
}

/// Backward data: diff_src = conv_transposed(diff_dst, weights).
Measurement onednn_bwd_d(const Problem& p, const RunConfig& cfg) {
  set_threads(cfg.threads);
  const Dims d = dims_of(p);
  const auto hint = forward_pd(d, dnnl::prop_kind::forward_training);
  Measurement m;
  auto [pd, prim] = create_timed<dnnl::convolution_backward_data>(m, [&] {
    const dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, any(d.src),
                                                     any(d.wei), any(d.dst), d.strides, d.dilates,
                                                     d.pad_l, d.pad_r);
    return dnnl::convolution_backward_data::primitive_desc(desc, engine(), hint);
  });
  dnnl::stream s(engine());
  const memory diff_dst = import(p.diff_dst, d.dst, tag::nchw, pd.diff_dst_desc(), s);
  const memory wei = import(p.wei, d.wei, d.wei_tag, pd.weights_desc(), s);
  const memory diff_src(pd.diff_src_desc(), engine());
  m.time = execute_timed(
      prim, {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DIFF_SRC, diff_src}}, s, cfg);
  m.output = export_plain(diff_src, d.src, tag::nchw, s);
  m.ran = true;
  return m;
}

/// Backward weights (no bias gradient): diff_weights = correlate(src, diff_dst).
Measurement onednn_bwd_w(const Problem& p, const RunConfig& cfg) {
  set_threads(cfg.threads);
  const Dims d = dims_of(p);
  const auto hint = forward_pd(d, dnnl::prop_kind::forward_training);
  Measurement m;
  auto [pd, prim] = create_timed<dnnl::convolution_backward_weights>(m, [&] {
    const dnnl::convolution_backward_weights::desc desc(dnnl::algorithm::convolution_direct, any(d.src),
                                                        any(d.wei), any(d.dst), d.strides, d.dilates,
                                                        d.pad_l, d.pad_r);
    return dnnl::convolution_backward_weights::primitive_desc(desc, engine(), hint);
  });
  dnnl::stream s(engine());
  const memory src = import(p.src, d.src, tag::nchw, pd.src_desc(), s);
  const memory diff_dst = import(p.diff_dst, d.dst, tag::nchw, pd.diff_dst_desc(), s);
  const memory diff_wei(pd.diff_weights_desc(), engine());
  m.time = execute_timed(
      prim, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, diff_wei}}, s, cfg);
  m.output = export_plain(diff_wei, d.wei, d.wei_tag, s);
  m.ran = true;
  return m;
}

/// Sets `threads` OpenMP threads and checks that a parallel region of the OpenMP runtime oneDNN uses
/// really gets that many; says how.
std::string onednn_threads(int threads) {
#if defined(HWYCONV_BENCH_HAVE_OPENMP) && DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
  set_threads(threads);
  int seen = 0;
#pragma omp parallel
  {
#pragma omp single
    seen = omp_get_num_threads();
  }
  std::string s = "omp_set_num_threads(" + std::to_string(threads) + ") (oneDNN built with OpenMP); " +
                  "check: omp_get_max_threads() = " + std::to_string(omp_get_max_threads()) +
                  ", a parallel region ran " + std::to_string(seen) + " threads";
  if (seen != threads) s += " -- WARNING: MISMATCH";
  return s;
#else
  (void)threads;
  return "NOT controlled: oneDNN's threading runtime is not OpenMP or OpenMP was not found; it uses its "
         "default";
#endif
}

}  // namespace

Library onednn_library() {
  dnnl::set_primitive_cache_capacity(0);  // every creation is measured cold
  Library lib;
  lib.name = "oneDNN";
  lib.runners[int(Pass::kFwd)] = onednn_fwd;
  lib.runners[int(Pass::kBwdD)] = onednn_bwd_d;
  lib.runners[int(Pass::kBwdW)] = onednn_bwd_w;
  lib.threads_info = onednn_threads;
  const dnnl_version_t* v = dnnl::version();
  lib.version = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                std::to_string(v->patch) + " (cpu runtime " +
                (v->cpu_runtime == DNNL_RUNTIME_OMP ? std::string("OpenMP") : std::to_string(v->cpu_runtime)) +
                "), primitive cache off";
  return lib;
}

}  // namespace bench
