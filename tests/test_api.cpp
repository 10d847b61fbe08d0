// The API around the kernels: descriptor validation (each bad field named, outputs untouched),
// argument checks of forward(), the kernel stream's invariants, and StaticConv (compile-time plan
// and stream) against Conv (run-time).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "hwyconv/hwyconv.hpp"
#include "conv_util.hpp"
#include "test_util.hpp"

namespace hwyconv::test {
namespace {

/// Expects `f` to throw hwyconv::Error naming `field`.
template <class F>
void expect_error(const std::string& field, F&& f) {
  INFO("expected an Error naming " << field);
  bool thrown = false;
  try {
    f();
  } catch (const Error& e) {
    thrown = true;
    CHECK(e.field() == field);
    CHECK(std::string(e.what()).find(field) != std::string::npos);
  }
  CHECK(thrown);
}

}  // namespace

TEST_CASE("desc: every invalid field is reported by name") {
  const ConvDesc ok(2, 16, 32, 10, 12, 3, 3, 1, 1);
  CHECK(ok.check().ok());
  CHECK(ok.P() == 10);
  CHECK(ok.Q() == 12);
  struct Bad {
    const char* field;
    ConvDesc d;
  };
  auto set = [&](auto member, int64_t v) {
    ConvDesc d = ok;
    d.*member = v;
    return d;
  };
  const Bad bad[] = {
      {"N", set(&ConvDesc::N, 0)},          {"C", set(&ConvDesc::C, -1)},
      {"K", set(&ConvDesc::K, 0)},          {"H", set(&ConvDesc::H, 0)},
      {"W", set(&ConvDesc::W, -5)},         {"R", set(&ConvDesc::R, 0)},
      {"S", set(&ConvDesc::S, 0)},          {"stride_h", set(&ConvDesc::stride_h, 0)},
      {"stride_w", set(&ConvDesc::stride_w, -1)}, {"dil_h", set(&ConvDesc::dil_h, 0)},
      {"dil_w", set(&ConvDesc::dil_w, 0)},  {"groups", set(&ConvDesc::groups, 0)},
      {"pad_t", set(&ConvDesc::pad_t, -1)}, {"pad_l", set(&ConvDesc::pad_l, 3)},
      {"pad_b", set(&ConvDesc::pad_b, 7)},  {"pad_r", set(&ConvDesc::pad_r, -2)},
      {"P", ConvDesc(1, 1, 1, 2, 8, 5, 1)}, {"Q", ConvDesc(1, 1, 1, 8, 2, 1, 5)},
      {"N", set(&ConvDesc::N, int64_t{1} << 21)},
      {"src", ConvDesc(1 << 20, 1 << 10, 1, 1 << 10, 1 << 10, 1, 1)},
      // 2^40 pixels of one channel (2^44 blocked elements): rejected before any planning.
      {"src", ConvDesc(1, 1, 1, 1 << 20, 1 << 20, 1, 1)},
      {"dst", ConvDesc(1, 16, 1 << 20, 1 << 10, 1 << 10, 1, 1)},
  };
  for (const Bad& b : bad) {
    INFO("field " << b.field);
    const Status s = b.d.check();
    CHECK(!s.ok());
    CHECK(std::string(s.field ? s.field : "") == b.field);
    expect_error(b.field, [&] { b.d.validate(); });
    expect_error(b.field, [&] { Conv c(b.d); });
  }
  expect_error("threads", [&] { Conv c(ok, {.threads = -1}); });
}

TEST_CASE("forward: bad buffers are named and nothing is written") {
  const ConvDesc d(2, 20, 24, 9, 11, 3, 3, 1, 1);
  Conv conv(d, {.threads = 2});
  std::vector<float> src(size_t(conv.src_size()), 1.0f), wei(size_t(conv.wei_size()), 1.0f), bias(size_t(d.K)),
      dst(size_t(conv.dst_size()), 42.0f), res(size_t(conv.dst_size())), k(size_t(d.K));
  auto untouched = [&] { return std::all_of(dst.begin(), dst.end(), [](float v) { return v == 42.0f; }); };
  using S = std::span<const float>;
  using SO = std::span<float>;
  expect_error("src", [&] { conv.forward(S(src).first(src.size() - 1), wei, bias, dst); });
  expect_error("weights", [&] { conv.forward(src, S(wei).first(10), bias, dst); });
  expect_error("bias", [&] { conv.forward(src, wei, S(bias).first(3), dst); });
  expect_error("dst", [&] { conv.forward(src, wei, bias, SO(dst).first(dst.size() - 16)); });
  expect_error("residual", [&] { conv.forward(src, wei, bias, dst, {.residual = S(res).first(5)}); });
  expect_error("residual", [&] { conv.forward(src, wei, bias, dst, {.residual = S(dst)}); });
  expect_error("shift", [&] { conv.forward(src, wei, bias, dst, {.scale = k}); });
  expect_error("scale", [&] { conv.forward(src, wei, bias, dst, {.shift = k}); });
  expect_error("scale", [&] { conv.forward(src, wei, bias, dst, {.scale = S(k).first(2), .shift = k}); });
  expect_error("dst", [&] { conv.forward(S(dst), wei, bias, dst); });
  CHECK(untouched());
  // And the same call with good arguments does write.
  conv.forward(src, wei, bias, dst);
  CHECK(!untouched());
}

/// Kernel-stream invariants: every output block is finished (epilogue + final store) by exactly one
/// call, and every (output pixel, C block) pair of the reduction is visited by exactly one call;
/// the first call of each pixel starts from zero.
void check_stream_invariants(const FwdPlan& fp, const RuntimeStream& s) {
  const KernelGeometry& p = fp.g;
  INFO(describe(fp.desc) << " threads " << fp.b.threads);
  const int64_t pixels = fp.desc.N * p.Kb * p.P * p.Q;
  std::vector<int> finished(size_t(pixels), 0), started(size_t(pixels), 0);
  std::vector<int> reduced(size_t(pixels * p.Cr), 0);
  REQUIRE(s.begin.size() == size_t(fp.b.threads) + 1);
  CHECK(s.begin.front() == 0);
  CHECK(s.begin.back() == int64_t(s.entries.size()));
  for (const StreamEntry& e : s.entries) {
    const RegBlock rb = kFwdBlocks[e.block];
    const int64_t c0 = (e.w_off % p.wei_kb) / p.wei_cb;
    CHECK(e.kb + rb.kbs <= p.Kb);
    for (int64_t k = 0; k < rb.kbs; ++k) {  // a block over kbs K blocks covers kb, kb + 1, ...
      const int64_t pix0 = e.out_off / kBlock + k * p.P * p.Q;  // [n][kb][p][q] pixel index
      CHECK(e.kb + k == (pix0 / (p.P * p.Q)) % p.Kb);
      for (int64_t i = 0; i < rb.rb_p; ++i)
        for (int64_t j = 0; j < rb.rb_q; ++j) {
          const int64_t pix = pix0 + i * p.Q + j;
          REQUIRE(pix < pixels);
          CHECK((pix0 % p.Q) + j < p.Q);  // never past the row
          if (e.flags & StreamEntry::kLast) ++finished[size_t(pix)];
          if (e.flags & StreamEntry::kFirst) {
            CHECK(c0 == 0);
            ++started[size_t(pix)];
          }
          for (int64_t c = c0; c < c0 + e.c_blocks; ++c) ++reduced[size_t(pix * p.Cr + c)];
        }
    }
  }
  // A call skips a tap only when it reads padding for every pixel of the call, and runs the others.
  const int64_t rows = p.taps / p.tap_cols;
  int64_t wrong = 0;
  for (const StreamEntry& e : s.entries) {
    const RegBlock rb = kFwdBlocks[e.block];
    const int64_t pix = e.out_off / kBlock % (p.P * p.Q), py = pix / p.Q, qx = pix % p.Q;
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t off = fp.tap[size_t(i * p.tap_cols)].row;
      bool reads = false;
      for (int64_t y = py; y < py + rb.rb_p; ++y) reads |= y * p.row_step + off >= 0 && y * p.row_step + off < p.src_rows;
      wrong += reads != (i >= e.tap_r0 && i < e.tap_r1);
    }
    for (int64_t j = 0; j < p.tap_cols; ++j) {
      const int64_t off = fp.tap[size_t(j)].col;
      bool reads = false;
      for (int64_t x = qx; x < qx + rb.rb_q; ++x) reads |= x * p.col_step + off >= 0 && x * p.col_step + off < p.src_cols;
      wrong += reads != (j >= e.tap_s0 && j < e.tap_s1);
    }
  }
  CHECK(wrong == 0);
  if (fp.b.overlap) {
    // A row's last block moved back over the one before (Blocking::overlap): each call is a whole
    // reduction, so a pixel two calls cover is computed twice, the same way; none is missed.
    for (const StreamEntry& e : s.entries)
      CHECK((e.flags & StreamEntry::kFirst && e.flags & StreamEntry::kLast && e.c_blocks == p.Cr));
    CHECK(std::count(finished.begin(), finished.end(), 0) == 0);
    CHECK(std::count_if(finished.begin(), finished.end(), [](int f) { return f > 2; }) == 0);
    if (p.Q % kFwdBlocks[fp.b.block].rb_q != 0) CHECK(std::count(finished.begin(), finished.end(), 2) > 0);
    return;
  }
  CHECK(std::count(finished.begin(), finished.end(), 1) == pixels);
  CHECK(std::count(started.begin(), started.end(), 1) == pixels);
  CHECK(std::count(reduced.begin(), reduced.end(), 1) == pixels * p.Cr);
}

TEST_CASE("stream: every output is finished exactly once and every C block reduced once") {
  // Among them: taps that read only padding for a whole call (a 1x1 map with a 3x3 filter, a dilated
  // 3x3 whose outer taps leave a 9x9 map), skipped per call; folded channels read in place with rows
  // of 16 and 33 pixels (the last block of a row moved back).
  const ConvDesc shapes[] = {
      ConvDesc(1, 64, 64, 56, 56, 3, 3, 1, 1),  ConvDesc(2, 600, 40, 9, 13, 3, 3, 2, 1),
      ConvDesc(1, 3, 64, 224, 224, 7, 7, 2, 3), ConvDesc(3, 17, 33, 7, 7, 1, 1),
      ConvDesc(1, 2048, 512, 7, 7, 1, 1),        ConvDesc(1, 1, 1, 1, 1, 1, 1),
      ConvDesc(1, 40, 36, 1, 1, 3, 3, 1, 1),    ConvDesc(2, 24, 20, 9, 9, 3, 3, 1, 6).with_dilation(6, 6),
      ConvDesc(2, 3, 20, 33, 31, 7, 7, 2, 3),   ConvDesc(1, 3, 24, 12, 33, 5, 5, 1, 2),
      // 1-D signals: rows split into column segments among threads (dense form with overlap too).
      ConvDesc(1, 32, 32, 1, 500, 1, 1),        ConvDesc(1, 1, 32, 1, 401, 1, 2).with_pad(0, 1, 0, 0)};
  for (const ConvDesc& d : shapes)
    for (int threads : {1, 2, 5}) {
      const Conv c(d, {.threads = threads});
      check_stream_invariants(fwd_plan(c), fwd_stream(c));
    }
  // A plan with C chunking (C blocks split over several calls) is among them, and one with overlap.
  const Conv chunked(shapes[1], {.threads = 1, .machine = Machine{}});
  CHECK(fwd_plan(chunked).b.c_chunk < fwd_plan(chunked).g.Cr);
  CHECK(fwd_plan(Conv(shapes[9], {.threads = 1, .machine = Machine{}})).b.overlap);
  CHECK(fwd_plan(Conv(shapes[10], {.threads = 2, .machine = Machine{}})).b.q_groups > 1);
  CHECK(fwd_plan(Conv(shapes[11], {.threads = 2, .machine = Machine{}})).b.q_groups > 1);
}

namespace {
constexpr ConvDesc kLayer = ConvDesc(1, 32, 48, 14, 14, 3, 3, 1, 1);
constexpr ConvDesc kStrided = ConvDesc(2, 3, 20, 23, 23, 7, 7, 2, 3);
}  // namespace

TEST_CASE("StaticConv: compile-time plan and stream equal Conv's, and compute the same result") {
  using L1 = StaticConv<kLayer, 2>;
  using L2 = StaticConv<kStrided>;
  static_assert(L1::kCalls > 0 && L2::kCalls > 0);
  static_assert(L1::kStream.entries[0].flags & StreamEntry::kFirst);
  auto same = [](const auto& st, const RuntimeStream& rt) {
    return std::equal(st.entries.begin(), st.entries.end(), rt.entries.begin(), rt.entries.end()) &&
           std::equal(st.begin.begin(), st.begin.end(), rt.begin.begin(), rt.begin.end());
  };
  // Conv planned for the machine StaticConv plans for (Machine{}, the register budget of AVX-512).
  Conv c1(kLayer, {.threads = 2, .machine = Machine{}}), c2(kStrided, {.threads = 1, .machine = Machine{}});
  CHECK(same(L1::kStream, fwd_stream(c1)));
  CHECK(same(L2::kStream, fwd_stream(c2)));
  CHECK(L1::kPlan.b.block == fwd_plan(c1).b.block);
  CHECK(L2::kPlan.in.mode == fwd_plan(c2).in.mode);

  for (const ConvDesc& d : {kLayer, kStrided}) {
    const FwdProblem pb(d, 11);
    Conv conv(d, {.threads = d == kLayer ? 2 : 1});
    std::vector<float> a(size_t(pb.dst_blocked_size())), b(a.size());
    conv.forward(pb.bsrc, pb.bwei, pb.bias, a, {.relu = true});
    if (d == kLayer)
      L1::forward(pb.bsrc, pb.bwei, pb.bias, b, {.relu = true});
    else
      L2::forward(pb.bsrc, pb.bwei, pb.bias, b, {.relu = true});
    CHECK(a == b);
  }
}

TEST_CASE("plan: register blocks and input modes chosen for typical layers") {
  // The plans the cost model makes for d and `threads` threads on Machine{} (the typical AVX-512
  // server core: 48 KiB L1D, 1 MiB L2, two 512-bit FMAs per cycle), whatever machine runs the test.
  auto fwd = [](const ConvDesc& d, int threads = 1) { return fwd_plan(Conv(d, {.threads = threads, .machine = Machine{}})); };
  auto bwd_w = [](const ConvDesc& d, int threads = 1) {
    return bwd_w_plan(Conv(d, {.threads = threads, .machine = Machine{}}));
  };
  // 64 -> 64 at 56x56: 14 pixels x 2 K blocks (28 accumulators, 16 loads per 28 FMAs).
  const RegBlock rb56 = fwd(ConvDesc(1, 64, 64, 56, 56, 3, 3, 1, 1)).rb();
  CHECK(rb56.rb_q == 14);
  CHECK(rb56.kbs == 2);
  // One K block (K = 16): the 28-pixel single-row block.
  CHECK(fwd(ConvDesc(1, 64, 16, 56, 56, 3, 3, 1, 1)).rb().rb_q == 28);
  CHECK(fwd(ConvDesc(1, 64, 64, 56, 56, 1, 1)).in.mode == InputMode::kDirect);
  CHECK(fwd(ConvDesc(1, 64, 64, 56, 56, 3, 3, 1, 1)).in.mode == InputMode::kPhases);
  // 1x1 stride 2: the microkernels read every other pixel of src in place (no copy, no FMA wasted);
  // the weight update with 2 MiB of dwei reads one phase, a quarter of the input, copied.
  const FwdPlan s2 = fwd(ConvDesc(1, 256, 512, 56, 56, 1, 1, 2, 0));
  CHECK(s2.in.mode == InputMode::kDirect);
  CHECK(s2.g.in_px == 2 * kBlock);
  const FwdPlan s2w = bwd_w(ConvDesc(1, 256, 1024, 56, 56, 1, 1, 2, 0)).in;
  CHECK(s2w.in.phases == 1);
  CHECK(s2w.in.Hph == 28);
  CHECK(s2w.g.in_px == kBlock);
  const RegBlock rb7 = fwd(ConvDesc(1, 64, 64, 7, 7, 3, 3, 1, 1)).rb();  // 1x7 x 3 K blocks
  CHECK(rb7.pixels() * rb7.kbs == 21);
  // One K block: a block of several rows of 7 (3x7: with the padding rows' taps skipped, the first
  // and last row groups run 2 of 3 tap rows).
  const RegBlock rb7k1 = fwd(ConvDesc(1, 64, 16, 7, 7, 3, 3, 1, 1)).rb();
  CHECK((rb7k1.rb_q == 7 && rb7k1.rb_p >= 3));
  // Small maps of detection heads: one call per K block covers the whole 3x3 or 5x5 output.
  CHECK((fwd(ConvDesc(1, 256, 84, 3, 3, 3, 3, 1, 1)).rb().rb_p == 3 && fwd(ConvDesc(1, 256, 84, 3, 3, 3, 3, 1, 1)).rb().rb_q == 3));
  CHECK(fwd(ConvDesc(1, 256, 126, 5, 5, 3, 3, 1, 1)).rb().pixels() == 25);
  // 1x1 stride 1 on a 17x17 map: the 289 pixels as one row (rows of 17 would end in a 1-pixel block).
  const FwdPlan flat = fwd(ConvDesc(1, 768, 192, 17, 17, 1, 1));
  CHECK((flat.g.P == 1 && flat.g.Q == 289));
  // conv1: (r, s, c) folded, 147 -> 160 channels (10 blocks); the forward reads the 7 runs of 21
  // folded channels in place (one tap per filter row), pixels stride_w * C = 6 floats apart.
  const FwdPlan c1 = fwd(ConvDesc(1, 3, 64, 224, 224, 7, 7, 2, 3));
  CHECK((c1.in.fold_in_place && c1.g.Cr == 1 && c1.g.taps == 7 && c1.g.tap_channels == 21 && c1.g.in_px == 6));
  CHECK(c1.g.wei_kb == 160 * kBlock);
  // The weight update reads them in place too, as 2 blocks (16 + 5) of each row's 21 channels;
  // C = 3 at stride 1 reads pixels 3 floats apart.
  const FwdPlan w1 = bwd_w(ConvDesc(16, 3, 64, 224, 224, 7, 7, 2, 3)).in;
  CHECK((w1.in.fold_in_place && w1.g.Cr == 2 && w1.g.taps == 7 && w1.g.in_cb == kBlock && w1.g.wei_kb == 160 * kBlock));
  const FwdPlan w3 = bwd_w(ConvDesc(1, 3, 64, 224, 224, 7, 7, 1, 3)).in;
  CHECK((w3.in.fold_in_place && w3.g.Cr == 2 && w3.g.in_px == 3));
  const FwdPlan f3 = fwd(ConvDesc(1, 3, 16, 32, 32, 5, 5, 1, 2));
  CHECK((f3.in.fold_in_place && f3.g.in_px == 3 && f3.g.tap_channels == 15));
  // The weight update of 1x1 stride 2 reads src in place while dwei is within 512 KiB.
  const FwdPlan u2 = bwd_w(ConvDesc(16, 256, 128, 56, 56, 1, 1, 2, 0)).in;
  CHECK((u2.in.mode == InputMode::kDirect && u2.g.in_px == 2 * kBlock && u2.g.in_row == 2 * 56 * kBlock));
  CHECK(bwd_w(ConvDesc(16, 512, 1024, 28, 28, 1, 1, 2, 0)).in.in.mode == InputMode::kPhases);
  // Backward data of a folded layer: a 1x1 convolution from K to the 147 folded channels, then
  // col2im; per thread and image when N >= threads.
  const Conv cd1(ConvDesc(16, 3, 64, 224, 224, 7, 7, 2, 3), {.threads = 2, .machine = Machine{}});
  const impl::BwdDataCol2imPlan* d1 = cd1.plan<impl::BwdDataCol2im>();
  REQUIRE(d1);
  CHECK((d1->per_image && d1->col.g.N == 1 && d1->col.g.Kb == 10));
  CHECK(d1->col_size == 10 * 112 * 112 * kBlock);
  CHECK(!Conv(ConvDesc(1, 3, 64, 224, 224, 7, 7, 2, 3), {.threads = 2, .machine = Machine{}}).plan<impl::BwdDataCol2im>()->per_image);
  CHECK(Conv(ConvDesc(1, 64, 64, 56, 56, 3, 3, 1, 1), {.machine = Machine{}}).plan<impl::BwdDataCol2im>() == nullptr);
  // Threads own whole images: one reused phase-image buffer per thread (N >= threads only).
  CHECK(fwd(ConvDesc(2, 64, 64, 56, 56, 3, 3, 1, 1), 2).b.thread_image);
  CHECK(!fwd(ConvDesc(1, 64, 64, 56, 56, 3, 3, 1, 1), 2).b.thread_image);
  // Large weights, few pixels (res5: 9 MiB, 7x7): the images run inside the K groups, so that a K
  // group's weights stay in L2 across the minibatch.
  CHECK(fwd(ConvDesc(16, 512, 512, 7, 7, 3, 3, 1, 1)).b.images_inner);
  CHECK(!fwd(ConvDesc(1, 512, 512, 7, 7, 3, 3, 1, 1)).b.images_inner);    // one image
  CHECK(!fwd(ConvDesc(16, 256, 256, 14, 14, 3, 3, 1, 1)).b.images_inner);  // 196 pixels
  CHECK(!fwd(ConvDesc(16, 64, 64, 7, 7, 3, 3, 1, 1)).b.images_inner);      // 144 KiB
}

}  // namespace hwyconv::test

namespace hwyconv::test {

TEST_CASE("Conv::check is ok exactly when the constructor succeeds, over a sweep of descriptors") {
  // Random descriptors around the limits (including invalid ones): check() ok must mean the
  // constructor plans every pass (and a forward call runs); not ok, that it throws Error naming the
  // same field.
  std::mt19937 g(99);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(g); };
  int ok = 0, bad = 0;
  for (int i = 0; i < 400; ++i) {
    // A plausible layer (filters up to 17x17, strides up to 17), then, half of the time, one field
    // pushed out of range.
    ConvDesc d(pick(1, 3), pick(1, 40), pick(1, 40), pick(1, 40), pick(1, 40), pick(1, 17), pick(1, 17));
    d = d.with_stride(pick(1, 17), pick(1, 17)).with_dilation(pick(1, 3), pick(1, 3));
    const int64_t eh = d.dil_h * (d.R - 1) + 1, ew = d.dil_w * (d.S - 1) + 1;
    d = d.with_pad(pick(0, eh - 1), pick(0, ew - 1), pick(0, eh - 1), pick(0, ew - 1));
    Options opt{.threads = int(pick(0, 5)), .src_layout = SrcLayout(pick(0, 2))};
    if (pick(0, 1)) {
      int64_t* fields[] = {&d.N, &d.C, &d.K, &d.H, &d.W, &d.R, &d.S, &d.stride_h, &d.stride_w, &d.dil_h, &d.pad_t, &d.pad_r};
      const int64_t f = pick(0, 13);
      if (f < 12) *fields[f] = pick(-2, 0) + (f >= 10 ? pick(0, 40) : 0);
      if (f == 12) opt.threads = int(pick(-3, -1));
      if (f == 13) opt.src_layout = SrcLayout(3);
    }
    const Status s = Conv::check(d, opt);
    INFO(describe(d) << " threads " << opt.threads << " layout " << int(opt.src_layout));
    if (s.ok()) {
      ++ok;
      const Conv c(d, opt);
      check_invariants(c);
      std::vector<float> src(size_t(c.src_size()), 1.0f), wei(size_t(c.wei_size()), 1.0f), dst(size_t(c.dst_size()));
      c.forward(src, wei, {}, dst);
    } else {
      ++bad;
      expect_error(s.field, [&] { Conv c(d, opt); });
    }
  }
  CHECK(ok > 20);
  CHECK(bad > 20);
}

TEST_CASE("Conv: the limits are named: R*S, threads, src_layout; a ViT patch embedding (16x16 stride 16) runs") {
  expect_error("R", [] { Conv c(ConvDesc(1, 3, 8, 40, 40, 17, 16)); });
  expect_error("threads", [] { Conv c(ConvDesc(1, 3, 8, 8, 8, 3, 3), {.threads = kMaxThreads + 1}); });
  expect_error("src_layout", [] { Conv c(ConvDesc(1, 3, 8, 8, 8, 3, 3), {.src_layout = SrcLayout(9)}); });
  CHECK(Conv::check(ConvDesc(1, 3, 32, 64, 64, 16, 16, 16, 0)).ok());
}

TEST_CASE("Conv: a moved-from Conv throws Error(\"Conv\") from every pass, touching nothing") {
  const ConvDesc d(1, 20, 24, 9, 11, 3, 3, 1, 1);
  Conv a(d, {.threads = 2});
  Conv b(std::move(a));
  std::vector<float> src(size_t(b.src_size()), 1.0f), wei(size_t(b.wei_size()), 1.0f), dst(size_t(b.dst_size()), 42.0f),
      dsrc(size_t(b.dsrc_size()), 42.0f), dwei(size_t(b.wei_size()), 42.0f);
  expect_error("Conv", [&] { a.forward(src, wei, {}, dst); });
  expect_error("Conv", [&] { a.backward_data(dst, wei, dsrc); });
  expect_error("Conv", [&] { a.backward_weights(src, dst, dwei, {}); });
  expect_error("Conv", [&] { (void)a.workspace_size(Pass::fwd); });
  expect_error("Conv", [&] { (void)a.describe(Pass::bwd_w); });
  expect_error("Conv", [&] { (void)a.preferred_src_layout(); });
  CHECK(std::all_of(dst.begin(), dst.end(), [](float v) { return v == 42.0f; }));
  CHECK(std::all_of(dsrc.begin(), dsrc.end(), [](float v) { return v == 42.0f; }));
  CHECK(std::all_of(dwei.begin(), dwei.end(), [](float v) { return v == 42.0f; }));
  // The object moved to runs, and a moved-from one can be assigned a live one again.
  b.forward(src, wei, {}, dst);
  CHECK(dst[0] != 42.0f);
  a = Conv(d);
  a.forward(src, wei, {}, dst);
}

TEST_CASE("Conv: one object runs from several threads at once, each call with its own workspace") {
  const ConvDesc d(2, 24, 40, 13, 11, 3, 3, 2, 1);
  const FwdProblem pb(d, 31);
  const Conv conv(d, {.threads = 2});
  std::vector<float> want(size_t(pb.dst_blocked_size())), wbd(pb.bwei.size()), want_dsrc(pb.bsrc.size()),
      want_dwei(pb.bwei.size());
  conv.forward(pb.bsrc, pb.bwei, pb.bias, want, {.relu = true});
  conv.reorder_weights_bwd_d(pb.bwei, wbd);
  conv.backward_data(want, wbd, want_dsrc);
  conv.backward_weights(pb.bsrc, want, want_dwei, {});
  std::atomic<int> mismatches{0};
  auto worker = [&] {
    std::vector<float> dst(want.size()), dsrc(want_dsrc.size()), dwei(want_dwei.size());
    for (int rep = 0; rep < 20; ++rep) {
      conv.forward(pb.bsrc, pb.bwei, pb.bias, dst, {.relu = true});
      conv.backward_data(want, wbd, dsrc);
      conv.backward_weights(pb.bsrc, want, dwei, {});
      mismatches += dst != want || dsrc != want_dsrc || dwei != want_dwei;
    }
  };
  std::thread a(worker), b(worker);
  a.join();
  b.join();
  CHECK(mismatches == 0);
}

TEST_CASE("Conv: caller workspaces (any alignment), packed weights, 64-byte aligned buffers") {
  for (const ConvDesc& d : {ConvDesc(2, 3, 20, 23, 23, 7, 7, 2, 3), ConvDesc(1, 20, 36, 9, 8, 3, 3, 1, 1)}) {
    INFO(describe(d));
    const FwdProblem pb(d, 13);
    const Conv conv(d, {.threads = 2});
    std::vector<float> want(size_t(pb.dst_blocked_size())), got(want.size());
    conv.forward(pb.bsrc, pb.bwei, pb.bias, want);
    // A caller's workspace starting 4 bytes past a 64-byte boundary: hwyconv aligns it itself.
    AlignedBuffer ws(conv.workspace_size(Pass::fwd) + 1);
    conv.forward(pb.bsrc, pb.bwei, pb.bias, got, {}, ws.span().subspan(1));
    CHECK(got == want);
    expect_error("workspace", [&] { conv.forward(pb.bsrc, pb.bwei, pb.bias, got, {}, ws.span().first(10)); });
    // Weights packed once give the same result; they are 64-byte aligned and refused by another pass.
    const PackedWeights fw = conv.pack_weights(Pass::fwd, pb.bwei);
    CHECK(reinterpret_cast<uintptr_t>(fw.data().data()) % kAlignment == 0);
    std::fill(got.begin(), got.end(), 0.0f);
    conv.forward(pb.bsrc, fw, pb.bias, got);
    CHECK(got == want);
    std::vector<float> wbd(pb.bwei.size()), a(pb.bsrc.size()), b(pb.bsrc.size());
    conv.reorder_weights_bwd_d(pb.bwei, wbd);
    conv.backward_data(want, wbd, a);
    const PackedWeights bw = conv.pack_weights(Pass::bwd_d, pb.bwei);
    conv.backward_data(want, bw, b);
    CHECK(a == b);
    expect_error("weights", [&] { conv.backward_data(want, fw, b); });
    expect_error("weights", [&] { Conv(ConvDesc(1, 20, 36, 9, 9, 3, 3, 1, 1)).forward(pb.bsrc, fw, pb.bias, got); });
    expect_error("pass", [&] { (void)conv.pack_weights(Pass::bwd_w, pb.bwei); });
  }
}

TEST_CASE("Conv: threads = 0 partitions for the hardware threads, with or without a caller's parallel-for") {
  const ConvDesc d(1, 16, 16, 8, 8, 3, 3, 1, 1);
  const int hw = ThreadPool::hardware_threads();
  CHECK(Conv(d).threads() == hw);
  CHECK(Conv(d, {.parallel_for = [](int64_t n, const std::function<void(int64_t)>& fn) {
                   for (int64_t i = 0; i < n; ++i) fn(i);
                 }}).threads() == hw);
  // The src layout: `any` takes nhwc where the forward implementation reads it (folded channels).
  CHECK(Conv(ConvDesc(1, 3, 16, 32, 32, 7, 7, 2, 3), {.src_layout = SrcLayout::any}).src_layout() == SrcLayout::nhwc);
  CHECK(Conv(ConvDesc(1, 3, 16, 32, 32, 7, 7, 2, 3)).preferred_src_layout() == SrcLayout::nhwc);
  CHECK(Conv(d, {.src_layout = SrcLayout::any}).src_layout() == SrcLayout::nChw16c);
  CHECK(Conv(d, {.src_layout = SrcLayout::nhwc}).preferred_src_layout() == SrcLayout::nChw16c);
}

}  // namespace hwyconv::test

namespace hwyconv::test {

TEST_CASE("Conv: a caller's parallel-for that breaks its contract gets Error(\"parallel_for\")") {
  const ConvDesc d(1, 20, 24, 9, 11, 3, 3, 1, 1);
  using Fn = const std::function<void(int64_t)>&;
  // Out of range: fn(n) is not run (it would index past the per-thread stream), then reported.
  const Conv past(d, {.threads = 2, .parallel_for = [](int64_t n, Fn fn) {
                        for (int64_t i = 0; i <= n; ++i) fn(i);
                      }});
  // An index skipped: part of dst is not written, reported.
  const Conv skip(d, {.threads = 2, .parallel_for = [](int64_t n, Fn fn) {
                        for (int64_t i = 1; i < n; ++i) fn(i);
                      }});
  std::vector<float> src(size_t(past.src_size()), 1.0f), wei(size_t(past.wei_size()), 1.0f), dst(size_t(past.dst_size())),
      dsrc(size_t(past.dsrc_size())), dwei(size_t(past.wei_size()));
  for (const Conv* c : {&past, &skip}) {
    expect_error("parallel_for", [&] { c->forward(src, wei, {}, dst); });
    expect_error("parallel_for", [&] { c->backward_data(dst, wei, dsrc); });
    expect_error("parallel_for", [&] { c->backward_weights(src, dst, dwei, {}); });
  }
}

TEST_CASE("ThreadPool: an exception of fn reaches the caller, and the pool stays parallel afterwards") {
  ThreadPool pool(2);
  CHECK_THROWS_AS(pool.run(4, [](int64_t i) {
    if (i == 1) throw std::runtime_error("item 1");
  }), std::runtime_error);
  // The calling thread is not left marked as inside a job: the next run uses both threads.
  std::mutex mu;
  std::set<std::thread::id> ids;
  for (int rep = 0; rep < 50 && ids.size() < 2; ++rep)
    pool.run(2, [&](int64_t) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      std::lock_guard<std::mutex> lock(mu);
      ids.insert(std::this_thread::get_id());
    });
  CHECK(ids.size() == 2);
}

}  // namespace hwyconv::test
