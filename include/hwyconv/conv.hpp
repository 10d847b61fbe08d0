// hwyconv/conv.hpp - the user-facing convolution objects: Conv (shape known at run time) and
// StaticConv<desc> (shape known at compile time). Both execute describe -> plan -> kernel stream ->
// microkernels -> epilogue; they differ only in when the plan and stream are built.
#pragma once

#include <algorithm>
#include <memory>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "hwyconv/desc.hpp"
#include "hwyconv/dispatch/dispatch.hpp"
#include "hwyconv/layout/bwd_transform.hpp"
#include "hwyconv/layout/input_transform.hpp"
#include "hwyconv/layout/reorder.hpp"
#include "hwyconv/plan/bwd_plan.hpp"
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

/// Options of the training passes.
struct BwdPostOps {
  /// ReLU backward fused on read: when set (same layout and size as ddst, normally the forward dst
  /// of this layer computed with PostOps::relu), ddst counts only where relu_mask > 0.
  std::span<const float> relu_mask{};
};

/// Memory layout of the src tensor given to Conv::forward and Conv::backward_weights, in oneDNN's
/// format-tag names. dst, ddst and dsrc are always nChw16c.
enum class SrcLayout : uint8_t {
  nChw16c,  ///< [N][div_up(C,16)][H][W][16]: channels in blocks of 16, padded slots zero (default)
  nhwc,     ///< [N][H][W][C]: channels last, unpadded (images as decoders give them, e.g. RGB)
};

/// Execution options.
struct Options {
  /// Threads the kernel stream is partitioned for; 0 = the global pool's size (hardware threads).
  /// Results are bitwise the same for every value.
  int threads = 0;
  /// Caller's parallel-for; empty = hwyconv's global ThreadPool.
  ParallelFor parallel_for{};
  /// Layout of src. nhwc is read directly by layers whose channels are folded (C < 16 with R*S > 1,
  /// such as the first layer, 3 -> 64 7x7: 5.3x fewer bytes than nChw16c at C = 3); other layers
  /// reorder it to nChw16c in their scratch first, a copy per call.
  SrcLayout src_layout = SrcLayout::nChw16c;
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

/// Floats of a src of `d` in a layout: N*H*W*C (nhwc) or act_blocked_size (nChw16c).
constexpr int64_t src_floats(const ConvDesc& d, SrcLayout layout) {
  return layout == SrcLayout::nhwc ? d.N * d.H * d.W * d.C : act_blocked_size(d.N, d.C, d.H, d.W);
}

/// Floats of src a plan reads (nhwc with FwdPlan::src_nhwc).
constexpr int64_t src_need(const FwdPlan& p) {
  return src_floats(p.desc, p.src_nhwc ? SrcLayout::nhwc : SrcLayout::nChw16c);
}

/// Checks every argument of a forward call; throws Error naming the first bad one.
inline unsigned check_forward(const FwdPlan& p, std::span<const float> src, std::span<const float> wei,
                              std::span<const float> bias, std::span<float> dst, const PostOps& post) {
  const ConvDesc& d = p.desc;
  check_span("src", src.size(), src_need(p), p.src_nhwc ? "nhwc" : "nChw16c");
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

/// Replays thread t's part of a kernel stream; `before(entry)` runs ahead of each call (the
/// per-image input transform uses it).
template <class Before = void (*)(const StreamEntry&)>
void replay(const FwdKernelFn* fns, const FwdArgs& a, const StreamEntry* entries, const int64_t* begin, int64_t t,
            Before&& before = [](const StreamEntry&) {}) {
  const int64_t b = begin[t], e = begin[t + 1];
  for (int64_t i = b; i < e; ++i) {
    const StreamEntry& en = entries[i];
    before(en);
    fns[en.block](a, en, entries[std::min(i + 1, e - 1)], entries[std::min(i + kL2PrefetchDistance, e - 1)]);
  }
}

/// Microkernel arguments of a plan (geometry only; data pointers are set by the caller).
inline FwdArgs fwd_args(const FwdPlan& p) {
  FwdArgs a;
  a.tap = p.tap.data();
  a.taps = p.taps;
  a.in_row = p.in_row;
  a.in_cb = p.in_cb;
  a.wei_cb = p.wei_cb;
  a.wei_kb = p.wei_kb;
  a.out_row = p.out_row;
  a.out_kb = p.out_kb;
  a.out_px = p.out_px;
  a.tap_channels = p.tap_channels;
  return a;
}

/// Runs `items` work items over the plan's threads in contiguous ranges.
template <class F>
void run_items(const ParallelFor& pf, int threads, int64_t items, F&& f) {
  if (items <= 0) return;
  parallel_run(pf, threads, [&](int64_t t) {
    for (int64_t i = items * t / threads; i < items * (t + 1) / threads; ++i) f(i);
  });
}

/// Makes the plan's working input from src (all stages, each a parallel loop).
inline void run_input_transform(const ParallelFor& pf, const FwdPlan& p, const float* src, float* work) {
  for (int stage = 0; stage < input_transform_stages(p); ++stage)
    run_items(pf, p.threads, input_transform_items(p, stage), [&](int64_t i) { transform_input(p, src, work, stage, i); });
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

  FwdArgs a = fwd_args(p);
  a.in = p.mode == InputMode::kDirect ? src.data() : work;
  a.wei = p.mode == InputMode::kFold ? folded : wei.data();
  a.out = dst.data();
  a.bias = epi;
  a.scale = epi + kpad;
  a.shift = epi + 2 * kpad;
  a.residual = post.residual.empty() ? nullptr : post.residual.data();
  a.ops = ops;
  a.epilogue = find_epilogue(ops);

  if (p.mode == InputMode::kFold) fold_weights(p, wei.data(), folded);
  const KernelTable& kt = kernels();
  const FwdKernelFn* fns = p.fold_in_place ? kt.fwd_dense : (p.in_px == 2 * kBlock ? kt.fwd_s2 : kt.fwd);
  if (!p.per_image) {
    run_input_transform(pf, p, src.data(), work);
    parallel_run(pf, p.threads, [&](int64_t t) { replay(fns, a, entries, begin, t); });
    return;
  }
  // Threads own whole images and make what an image's calls read right before them: in the thread's
  // own buffer, a ring of folded rows (ring_rows, made per row group from the image's dense copy)
  // or one image's phase images (thread_image); otherwise the image's part of the working input.
  const bool own = p.ring_rows > 0 || p.thread_image;
  const int64_t own_size = p.ring_rows > 0 ? p.ring_size : p.in_n;
  parallel_run(pf, p.threads, [&](int64_t t) {
    FwdArgs at = a;
    float* buf = work + t * own_size;
    if (own) at.in = buf;
    float* dense = buf + p.ring_rows * p.in_row;  // ring_rows > 0 only
    int64_t image = -1, group = -1;
    replay(fns, at, entries, begin, t, [&](const StreamEntry& en) {
      const int64_t n = en.out_off / p.out_n;
      if (n != image) {
        image = n;
        group = -1;
        if (p.ring_rows > 0) {
          fold_dense_image(p, src.data(), dense, n);
        } else if (p.thread_image) {
          if (p.fold_in_place)
            fold_dense_image(p, src.data(), buf, n);
          else
            phase_copy_image(p, src.data(), buf, n);
        } else {
          for (int stage = 0; stage < input_transform_stages(p); ++stage) {
            const auto [lo, hi] = input_transform_image_items(p, stage, n);
            for (int64_t j = lo; j < hi; ++j) transform_input(p, src.data(), work, stage, j);
          }
        }
      }
      if (p.ring_rows == 0) return;
      const int64_t g = (en.out_off % p.out_kb) / p.out_row / p.ring_rows;
      if (g == group) return;
      group = g;
      for (int64_t y = g * p.ring_rows; y < std::min(p.P, (g + 1) * p.ring_rows); ++y)
        fold_output_row(p, dense, buf + (y % p.ring_rows) * p.in_row, y);
    });
  });
}

/// Streams of a backward-data plan, one per phase.
struct BwdDataStreams {
  BwdDataPlan plan;
  std::vector<RuntimeStream> phase;
};

inline BwdDataStreams make_bwd_data_streams(const BwdDataPlan& plan) {
  BwdDataStreams s{plan, {}};
  for (int64_t i = 0; i < s.plan.phases; ++i) s.phase.push_back(make_fwd_stream(s.plan.phase[size_t(i)]));
  return s;
}

inline void check_mask(const BwdPostOps& post, int64_t ddst_need) {
  if (!post.relu_mask.empty()) check_span("relu_mask", post.relu_mask.size(), ddst_need, "nChw16c, like ddst");
}

/// Backward data (see BwdDataPlan): dsrc from ddst and IOhw16o16i weights. Checks, then runs.
inline void run_backward_data(const BwdDataStreams& bs, std::span<const float> ddst, std::span<const float> wei_bwd_d,
                              std::span<float> dsrc, const BwdPostOps& post, std::vector<float>& scratch,
                              const ParallelFor& pf) {
  const BwdDataPlan& b = bs.plan;
  const ConvDesc& d = b.desc;
  const int64_t ddst_need = act_blocked_size(d.N, d.K, d.P(), d.Q());
  check_span("ddst", ddst.size(), ddst_need, "nChw16c");
  check_span("wei_bwd_d", wei_bwd_d.size(), wei_blocked_size(d.K, d.C, d.R, d.S), "IOhw16o16i");
  check_span("dsrc", dsrc.size(), act_blocked_size(d.N, d.C, d.H, d.W), "nChw16c");
  check_mask(post, ddst_need);
  if (overlaps(ddst, dsrc)) throw Error("dsrc", "must not overlap ddst");
  if (overlaps(wei_bwd_d, dsrc)) throw Error("dsrc", "must not overlap wei_bwd_d");
  if (overlaps(post.relu_mask, dsrc)) throw Error("dsrc", "must not overlap relu_mask");

  const bool copy = !b.direct || !post.relu_mask.empty();
  const int64_t Hpad = b.direct ? d.P() : b.Hpad, Wpad = b.direct ? d.Q() : b.Wpad;
  const int64_t copy_size = copy ? d.N * d.Kb() * Hpad * Wpad * kBlock : 0;
  const FwdPlan& cp = b.phase[0];  // fold: the 1x1 convolution to the folded channels
  const int64_t fold_wei = b.fold ? cp.Kb * cp.wei_kb : 0;
  const int64_t cols = b.fold ? (b.fold_images ? b.threads : d.N) * b.col_size : 0;
  scratch.resize(size_t(copy_size + fold_wei + cols) + 64);
  if (copy)
    run_items(pf, b.threads, padded_ddst_items(b), [&](int64_t i) {
      pad_ddst(b, ddst.data(), post.relu_mask.empty() ? nullptr : post.relu_mask.data(), scratch.data(), i);
    });
  const KernelTable& kt = kernels();
  if (b.fold) {  // 1x1 convolution to the folded channels (col), then col2im into dsrc
    float* wf = scratch.data() + copy_size;
    float* col = wf + fold_wei;
    fold_weights_bwd_d(b, wei_bwd_d.data(), wf);
    FwdArgs a = fwd_args(cp);
    a.in = copy ? scratch.data() : ddst.data();
    a.wei = wf;
    a.out = col;
    a.epilogue = find_epilogue(kEpiNone);
    const RuntimeStream& st = bs.phase[0];
    const int64_t ddst_n = d.Kb() * d.P() * d.Q() * kBlock;
    if (b.fold_images) {  // each thread: its images, one at a time, in its own col buffer
      parallel_run(pf, b.threads, [&](int64_t t) {
        FwdArgs at = a;
        at.out = col + t * b.col_size;
        for (int64_t n = d.N * t / b.threads; n < d.N * (t + 1) / b.threads; ++n) {
          at.in = a.in + n * ddst_n;
          replay(kt.fwd, at, st.entries.data(), st.begin.data(), 0);
          for (int64_t h = 0; h < d.H; ++h) col2im_row(b, at.out, dsrc.data(), n, h);
        }
      });
    } else {  // all images' col, then the rows of dsrc split among threads
      parallel_run(pf, b.threads, [&](int64_t t) { replay(kt.fwd, a, st.entries.data(), st.begin.data(), t); });
      run_items(pf, b.threads, d.N * d.H, [&](int64_t i) {
        col2im_row(b, col + i / d.H * b.col_size, dsrc.data(), i / d.H, i % d.H);
      });
    }
    return;
  }
  // Phases no tap reaches (1x1 stride 2: three of four) are zero: one memset of dsrc per C block
  // (full-line writes, no read for ownership), then only the phases with taps run. Measured against
  // running the zero phases as streams of calls that store zeros: 1x1 stride-2 layers 1.1-1.7x.
  bool zero_phases = false;
  for (int64_t ph = 0; ph < b.phases; ++ph) zero_phases |= b.phase[size_t(ph)].taps == 0;
  if (zero_phases) {  // one item per C block of an image, so that N = 1 splits too
    const int64_t plane = d.H * d.W * kBlock;
    run_items(pf, b.threads, d.N * d.Cb(), [&](int64_t i) {
      std::memset(dsrc.data() + i * plane, 0, sizeof(float) * size_t(plane));
    });
  }
  parallel_run(pf, b.threads, [&](int64_t t) {
    for (int64_t ph = 0; ph < b.phases; ++ph) {
      if (zero_phases && b.phase[size_t(ph)].taps == 0) continue;
      FwdArgs a = fwd_args(b.phase[size_t(ph)]);
      a.in = copy ? scratch.data() : ddst.data();
      a.wei = wei_bwd_d.data();
      a.out = dsrc.data();
      a.epilogue = find_epilogue(kEpiNone);
      const RuntimeStream& st = bs.phase[size_t(ph)];
      replay(kt.fwd, a, st.entries.data(), st.begin.data(), t);
    }
  });
}

/// Backward weights (see BwdWeightsPlan): dwei (OIhw16i16o) and dbias (K floats, optional).
inline void run_backward_weights(const BwdWeightsPlan& b, std::span<const float> src, std::span<const float> ddst,
                                 std::span<float> dwei, std::span<float> dbias, const BwdPostOps& post,
                                 std::vector<float>& scratch, const ParallelFor& pf) {
  const FwdPlan& f = b.fwd;
  const ConvDesc& d = f.desc;
  const int64_t ddst_need = act_blocked_size(d.N, d.K, f.P, f.Q);
  check_span("src", src.size(), src_need(f), f.src_nhwc ? "nhwc" : "nChw16c");
  check_span("ddst", ddst.size(), ddst_need, "nChw16c");
  check_span("dweights", dwei.size(), wei_blocked_size(d.K, d.C, d.R, d.S), "OIhw16i16o");
  if (!dbias.empty()) check_span("dbias", dbias.size(), d.K, "K");
  check_mask(post, ddst_need);
  for (const auto& in : {src, ddst, post.relu_mask}) {
    if (overlaps(in, dwei)) throw Error("dweights", "must not overlap the inputs");
    if (overlaps(in, dbias)) throw Error("dbias", "must not overlap the inputs");
  }
  if (overlaps(dwei, dbias)) throw Error("dbias", "must not overlap dweights");

  scratch.resize(size_t(b.scratch) + 64);
  float* work = scratch.data();
  const int64_t copy_size = b.dwei_size + f.Kb * kBlock;
  float* copies = work + b.work_in;
  const int64_t n_copies = b.strategy == BwdWeightsPlan::Strategy::kMinibatch ? b.threads : 0;
  const bool folded = f.mode == InputMode::kFold;
  float* final_dwei = folded ? copies + n_copies * copy_size : dwei.data();
  float* final_dbias = copies + n_copies * copy_size + (folded ? b.dwei_size : 0);

  if (!folded && !b.thread_image) run_input_transform(pf, f, src.data(), work);

  BwdWArgs a;
  a.in = f.mode == InputMode::kDirect ? src.data() : work;
  a.ddst = ddst.data();
  a.mask = post.relu_mask.empty() ? nullptr : post.relu_mask.data();
  a.tap = f.tap.data();
  a.in_row = f.in_row;
  a.in_cb = f.in_cb;
  a.in_n = f.in_n;
  a.P = f.P;
  a.Q = f.Q;
  a.ddst_kb = f.out_kb;
  a.ddst_n = f.out_n;
  a.wei_kb = f.wei_kb;
  a.wei_cb = f.wei_cb;
  a.tap_channels = f.tap_channels;
  const KernelTable& kt = kernels();
  a.in_px = f.in_px;
  const BwdWKernelFn kernel = (f.fold_in_place ? kt.bwd_w_dense : kt.bwd_w)[a.mask ? 1 : 0];
  // Tasks (K group, C block, tap), or (C block, K group, tap) with BwdWeightsPlan::c_outer; tap
  // innermost. A K group is the K blocks one call takes (the last group may be smaller). Each dwei
  // block belongs to one task whatever the thread count or order.
  const int64_t kbs = kt.bwd_w_kbs, kgroups = div_up(f.Kb, kbs), tasks = kgroups * f.Cr * f.taps;
  auto task = [&](int64_t i) {
    const int64_t kb = (b.c_outer ? i / f.taps % kgroups : i / (f.Cr * f.taps)) * kbs;
    const int64_t cb = b.c_outer ? i / (f.taps * kgroups) : i / f.taps % f.Cr;
    return BwdWTask{kb, cb, i % f.taps, std::min(kbs, f.Kb - kb)};
  };
  // Images, then blocks of rows, outermost; the thread's tasks innermost, accumulating into dwei.
  // Items [i0, i1) of (image, row block); kFold: thread t first folds the block's rows into its ring
  // (its own copy of the dense image).
  const int64_t row_blocks = div_up(f.P, b.rows);
  auto reduce = [&](BwdWArgs at, int64_t t, int64_t i0, int64_t i1, int64_t task0, int64_t task1) {
    bool first = true;
    float* ring = work + t * b.ring_size;
    float* dense = ring + (f.fold_in_place ? 0 : b.rows * f.in_row);
    for (int64_t i = i0, image = -1; i < i1; ++i) {
      const int64_t n = i / row_blocks, p0 = i % row_blocks * b.rows;
      if (n != image) {
        image = n;
        if (folded) fold_dense_image(f, src.data(), dense, n);
        if (b.thread_image) {  // this thread's buffer holds image n only
          float* img = work + t * f.in_n;
          phase_copy_image(f, src.data(), img, n);
          at.in = img;
          at.in_n = 0;
        }
      }
      at.n0 = n;
      at.n1 = n + 1;
      at.p0 = p0;
      at.p1 = std::min(f.P, p0 + b.rows);
      at.accumulate = !first;
      first = false;
      if (folded && f.fold_in_place) {  // the tasks read the dense copy in place
        at.in = dense;
        at.in_n = 0;
      } else if (folded) {
        for (int64_t y = p0; y < at.p1; ++y) fold_output_row(f, dense, ring + (y - p0) * f.in_row, y);
        at.in = ring;
        at.in_n = 0;
        at.in_p0 = p0;
      }
      for (int64_t k = task0; k < task1; ++k) kernel(at, task(k));
    }
  };
  if (n_copies == 0) {
    a.dwei = final_dwei;
    a.dbias = final_dbias;
    parallel_run(pf, b.threads, [&](int64_t t) {
      reduce(a, t, 0, d.N * row_blocks, tasks * t / b.threads, tasks * (t + 1) / b.threads);
    });
  } else {
    parallel_run(pf, b.threads, [&](int64_t t) {
      BwdWArgs at = a;
      at.dwei = copies + t * copy_size;
      at.dbias = at.dwei + b.dwei_size;
      // Whole images per thread, or (row_split) whole row blocks.
      const int64_t items = b.row_split ? d.N * row_blocks : d.N, per = b.row_split ? 1 : row_blocks;
      const int64_t i0 = items * t / b.threads, i1 = items * (t + 1) / b.threads;
      if (i0 == i1)
        std::fill(at.dwei, at.dwei + copy_size, 0.0f);
      else
        reduce(at, t, i0 * per, i1 * per, 0, tasks);
    });
    // Reduction of the private copies, in thread order (the same for every run).
    const int64_t chunk = 4096;
    run_items(pf, b.threads, div_up(copy_size, chunk), [&](int64_t c) {
      const int64_t lo = c * chunk, hi = std::min(copy_size, lo + chunk);
      for (int64_t j = lo; j < hi; ++j) {
        float sum = copies[j];
        for (int64_t t = 1; t < n_copies; ++t) sum += copies[t * copy_size + j];
        if (j < b.dwei_size)
          final_dwei[j] = sum;
        else
          final_dbias[j - b.dwei_size] = sum;
      }
    });
  }
  if (folded) unfold_weights(f, final_dwei, dwei.data());
  if (!dbias.empty()) std::copy_n(final_dbias, d.K, dbias.data());
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
    if (d.stride_h * d.stride_w > kMaxBwdPhases)
      throw Error("stride_h", "stride_h*stride_w larger than 16 is not supported (got " +
                                  std::to_string(d.stride_h * d.stride_w) + ")");
    if (opt_.threads < 0) throw Error("threads", "must be >= 0 (got " + std::to_string(opt_.threads) + ")");
    if (opt_.src_layout != SrcLayout::nChw16c && opt_.src_layout != SrcLayout::nhwc)
      throw Error("src_layout", "must be nChw16c or nhwc (got " + std::to_string(int(opt_.src_layout)) + ")");
    plan_ = make_fwd_plan(d, detail::default_threads(opt_));
    plan_.src_nhwc = reads_nhwc(plan_);
    stream_ = make_fwd_stream(plan_);
  }

  const ConvDesc& desc() const { return plan_.desc; }
  /// The blocking decisions (register block, input mode, C chunk, thread count).
  const FwdPlan& plan() const { return plan_; }
  /// The forward kernel stream (per-thread tables of microkernel calls).
  const RuntimeStream& stream() const { return stream_; }
  /// Floats of src: N x Cb x H x W x 16 (nChw16c), or N x H x W x C (Options::src_layout nhwc).
  int64_t src_size() const { return detail::src_floats(desc(), opt_.src_layout); }
  /// Floats of dsrc (nChw16c whatever Options::src_layout says).
  int64_t dsrc_size() const { return act_blocked_size(desc().N, desc().C, desc().H, desc().W); }
  /// Floats of weights (OIhw16i16o, Kb x Cb x R x S x 16 x 16).
  int64_t wei_size() const { return wei_blocked_size(desc().K, desc().C, desc().R, desc().S); }
  /// Floats of dst (nChw16c, N x Kb x P x Q x 16).
  int64_t dst_size() const { return act_blocked_size(desc().N, desc().K, plan_.P, plan_.Q); }

  /// Forward propagation: dst = post(conv(src, weights) + bias). src nChw16c (N, C, H, W) or nhwc
  /// (Options::src_layout), weights OIhw16i16o (K, C, R, S), bias K floats or empty, dst nChw16c
  /// (N, K, P, Q); padded channels of src and weights must be zero (the reorders make them so) and
  /// stay zero in dst. Throws Error (naming "src", "weights", "bias", "dst", "residual", "scale" or
  /// "shift") before writing anything.
  void forward(std::span<const float> src, std::span<const float> wei, std::span<const float> bias,
               std::span<float> dst, const PostOps& post = {}) {
    if (detail::overlaps(src, dst)) throw Error("dst", "must not overlap src");
    const std::span<const float> in = planned_src(src, plan_.src_nhwc);
    const unsigned ops = detail::check_forward(plan_, in, wei, bias, dst, post);
    scratch_.resize(size_t(detail::fwd_scratch_size(plan_)));
    detail::run_forward(plan_, stream_.entries.data(), stream_.begin.data(), in, wei, bias, dst, post, ops,
                        scratch_.data(), opt_.parallel_for);
  }

  /// Weights for backward_data: OIhw16i16o -> IOhw16o16i (wei_size() floats). Part of the plan made
  /// explicit: do it once per training step, after the weights change. Throws Error on bad spans.
  void reorder_weights_bwd_d(std::span<const float> wei, std::span<float> wei_bwd_d) const {
    hwyconv::reorder_weights_bwd_d(wei, wei_bwd_d, desc().K, desc().C, desc().R, desc().S);
  }

  /// Backward data: dsrc = dL/dsrc from ddst = dL/ddst. ddst nChw16c (N, K, P, Q), wei_bwd_d
  /// IOhw16o16i (from reorder_weights_bwd_d), dsrc nChw16c (N, C, H, W), overwritten (padded
  /// channels 0). Any stride, padding and dilation (strides split into phases, see BwdDataPlan).
  /// post.relu_mask fuses ReLU backward. Throws Error ("ddst", "wei_bwd_d", "dsrc", "relu_mask")
  /// before writing anything. The plan and streams are built on the first call.
  void backward_data(std::span<const float> ddst, std::span<const float> wei_bwd_d, std::span<float> dsrc,
                     const BwdPostOps& post = {}) {
    if (!bwd_d_) bwd_d_ = std::make_unique<detail::BwdDataStreams>(detail::make_bwd_data_streams(make_bwd_data_plan(desc(), plan_.threads)));
    detail::run_backward_data(*bwd_d_, ddst, wei_bwd_d, dsrc, post, scratch_, opt_.parallel_for);
  }

  /// Backward weights: dwei = dL/dweights (OIhw16i16o, overwritten) and, unless dbias is empty,
  /// dbias = dL/dbias (K floats), from src (nChw16c, or nhwc as Options::src_layout says) and ddst
  /// (nChw16c). post.relu_mask fuses ReLU backward. Results may differ in the last bits between thread counts when the plan splits the
  /// minibatch (BwdWeightsPlan::Strategy::kMinibatch). Throws Error ("src", "ddst", "dweights",
  /// "dbias", "relu_mask") before writing anything.
  void backward_weights(std::span<const float> src, std::span<const float> ddst, std::span<float> dwei,
                        std::span<float> dbias, const BwdPostOps& post = {}) {
    if (!bwd_w_) {
      bwd_w_ = std::make_unique<BwdWeightsPlan>(make_bwd_weights_plan(desc(), plan_.threads));
      bwd_w_->fwd.src_nhwc = reads_nhwc(bwd_w_->fwd);
    }
    if (detail::overlaps(src, dwei)) throw Error("dweights", "must not overlap the inputs");
    if (detail::overlaps(src, dbias)) throw Error("dbias", "must not overlap the inputs");
    detail::run_backward_weights(*bwd_w_, planned_src(src, bwd_w_->fwd.src_nhwc), ddst, dwei, dbias, post, scratch_,
                                 opt_.parallel_for);
  }

  /// Name of the Highway target whose microkernels run on this CPU ("AVX3_DL", "AVX2", ...).
  static const char* target() { return kernels().target; }

 private:
  /// Whether plan p reads an nhwc src directly: folded channels (the dense copy is made from it).
  bool reads_nhwc(const FwdPlan& p) const {
    return opt_.src_layout == SrcLayout::nhwc && p.mode == InputMode::kFold;
  }

  /// src as a plan reads it: an nhwc src that the plan does not read directly is checked, then
  /// reordered to nChw16c in src_blocked_ (outputs are not written before their own checks).
  std::span<const float> planned_src(std::span<const float> src, bool plan_reads_nhwc) {
    if (opt_.src_layout != SrcLayout::nhwc || plan_reads_nhwc) return src;
    const ConvDesc& d = desc();
    const int64_t need = detail::src_floats(d, SrcLayout::nhwc);
    detail::check_span("src", src.size(), need, "nhwc");
    src_blocked_.resize(size_t(act_blocked_size(d.N, d.C, d.H, d.W)));
    reorder_nhwc_to_nChw16c(src.first(size_t(need)), src_blocked_, d.N, d.C, d.H, d.W);
    return src_blocked_;
  }

  Options opt_;
  FwdPlan plan_;
  RuntimeStream stream_;
  std::vector<float> scratch_;
  std::vector<float> src_blocked_;  ///< nhwc src reordered for plans that read nChw16c
  std::unique_ptr<detail::BwdDataStreams> bwd_d_;
  std::unique_ptr<BwdWeightsPlan> bwd_w_;
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
  /// Backward-data plan (constant) and weight-update plan (constant); see Conv::backward_data and
  /// Conv::backward_weights. The per-phase kernel streams of backward data are built on first use.
  static constexpr BwdDataPlan kBwdDataPlan = make_bwd_data_plan(kDesc, kThreads);
  static constexpr BwdWeightsPlan kBwdWeightsPlan = make_bwd_weights_plan(kDesc, kThreads);
  static_assert(kDesc.stride_h * kDesc.stride_w <= kMaxBwdPhases, "stride_h*stride_w larger than 16");

  /// As Conv::backward_data (scratch: a thread-local buffer).
  static void backward_data(std::span<const float> ddst, std::span<const float> wei_bwd_d, std::span<float> dsrc,
                            const BwdPostOps& post = {}, const ParallelFor& pf = {}) {
    static const detail::BwdDataStreams streams = detail::make_bwd_data_streams(kBwdDataPlan);
    thread_local std::vector<float> ws;
    detail::run_backward_data(streams, ddst, wei_bwd_d, dsrc, post, ws, pf);
  }
  /// As Conv::backward_weights (scratch: a thread-local buffer).
  static void backward_weights(std::span<const float> src, std::span<const float> ddst, std::span<float> dwei,
                               std::span<float> dbias, const BwdPostOps& post = {}, const ParallelFor& pf = {}) {
    thread_local std::vector<float> ws;
    detail::run_backward_weights(kBwdWeightsPlan, src, ddst, dwei, dbias, post, ws, pf);
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
