// The API around the kernels: descriptor validation (each bad field named, outputs untouched),
// argument checks of forward(), the kernel stream's invariants, and StaticConv (compile-time plan
// and stream) against Conv (run-time).
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "hwyconv/hwyconv.hpp"
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
      {"dil_w", set(&ConvDesc::dil_w, 0)},  {"groups", set(&ConvDesc::groups, 2)},
      {"pad_t", set(&ConvDesc::pad_t, -1)}, {"pad_l", set(&ConvDesc::pad_l, 3)},
      {"pad_b", set(&ConvDesc::pad_b, 7)},  {"pad_r", set(&ConvDesc::pad_r, -2)},
      {"P", ConvDesc(1, 1, 1, 2, 8, 5, 1)}, {"Q", ConvDesc(1, 1, 1, 8, 2, 1, 5)},
      {"N", set(&ConvDesc::N, int64_t{1} << 21)},
      {"src", ConvDesc(1 << 20, 1 << 10, 1, 1 << 10, 1 << 10, 1, 1)},
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
void check_stream_invariants(const FwdPlan& p, const RuntimeStream& s) {
  INFO(describe(p.desc) << " threads " << p.threads);
  const int64_t pixels = p.desc.N * p.Kb * p.P * p.Q;
  std::vector<int> finished(size_t(pixels), 0), started(size_t(pixels), 0);
  std::vector<int> reduced(size_t(pixels * p.Cr), 0);
  REQUIRE(s.begin.size() == size_t(p.threads) + 1);
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
  CHECK(std::count(finished.begin(), finished.end(), 1) == pixels);
  CHECK(std::count(started.begin(), started.end(), 1) == pixels);
  CHECK(std::count(reduced.begin(), reduced.end(), 1) == pixels * p.Cr);
}

TEST_CASE("stream: every output is finished exactly once and every C block reduced once") {
  const ConvDesc shapes[] = {
      ConvDesc(1, 64, 64, 56, 56, 3, 3, 1, 1),  ConvDesc(2, 600, 40, 9, 13, 3, 3, 2, 1),
      ConvDesc(1, 3, 64, 224, 224, 7, 7, 2, 3), ConvDesc(3, 17, 33, 7, 7, 1, 1),
      ConvDesc(1, 2048, 512, 7, 7, 1, 1),        ConvDesc(1, 1, 1, 1, 1, 1, 1)};
  for (const ConvDesc& d : shapes)
    for (int threads : {1, 2, 5}) {
      const FwdPlan p = make_fwd_plan(d, threads);
      check_stream_invariants(p, make_fwd_stream(p));
    }
  // A plan with C chunking (C blocks split over several calls) is among them.
  CHECK(make_fwd_plan(shapes[1]).c_chunk < make_fwd_plan(shapes[1]).Cr);
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
  Conv c1(kLayer, {.threads = 2}), c2(kStrided, {.threads = 1});
  CHECK(same(L1::kStream, c1.stream()));
  CHECK(same(L2::kStream, c2.stream()));
  CHECK(L1::kPlan.block == c1.plan().block);
  CHECK(L2::kPlan.mode == c2.plan().mode);

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
  // 64 -> 64 at 56x56: 14 pixels x 2 K blocks (28 accumulators, 16 loads per 28 FMAs).
  const RegBlock rb56 = make_fwd_plan(ConvDesc(1, 64, 64, 56, 56, 3, 3, 1, 1)).rb();
  CHECK(rb56.rb_q == 14);
  CHECK(rb56.kbs == 2);
  // One K block (K = 16): the 28-pixel single-row block.
  CHECK(make_fwd_plan(ConvDesc(1, 64, 16, 56, 56, 3, 3, 1, 1)).rb().rb_q == 28);
  CHECK(make_fwd_plan(ConvDesc(1, 64, 64, 56, 56, 1, 1)).mode == InputMode::kDirect);
  CHECK(make_fwd_plan(ConvDesc(1, 64, 64, 56, 56, 3, 3, 1, 1)).mode == InputMode::kPhases);
  // 1x1 stride 2: the microkernels read every other pixel of src in place (no copy, no FMA wasted);
  // the weight update (no ring) reads one phase, a quarter of the input, copied.
  const FwdPlan s2 = make_fwd_plan(ConvDesc(1, 256, 512, 56, 56, 1, 1, 2, 0));
  CHECK(s2.mode == InputMode::kDirect);
  CHECK(s2.in_px == 2 * kBlock);
  const FwdPlan s2w = make_fwd_plan(ConvDesc(1, 256, 512, 56, 56, 1, 1, 2, 0), 1, /*ring=*/false);
  CHECK(s2w.phases == 1);
  CHECK(s2w.Hph == 28);
  CHECK(s2w.in_px == kBlock);
  const RegBlock rb7 = make_fwd_plan(ConvDesc(1, 64, 64, 7, 7, 3, 3, 1, 1)).rb();  // 1x7 x 3 K blocks
  CHECK(rb7.pixels() * rb7.kbs == 21);
  CHECK(make_fwd_plan(ConvDesc(1, 64, 16, 7, 7, 3, 3, 1, 1)).rb().pixels() == 28);  // 4x7
  // conv1: (r, s, c) folded, 147 -> 160 channels (10 blocks) as the weight update sees them; the
  // forward reads the 7 runs of 21 folded channels in place (one tap per filter row).
  const FwdPlan c1 = make_fwd_plan(ConvDesc(1, 3, 64, 224, 224, 7, 7, 2, 3));
  CHECK(make_fwd_plan(ConvDesc(1, 3, 64, 224, 224, 7, 7, 2, 3), 1, /*ring=*/false).Cr == 10);
  CHECK((c1.fold_in_place && c1.Cr == 1 && c1.taps == 7 && c1.tap_channels == 21 && c1.in_px == 6));
  CHECK(c1.wei_kb == 160 * kBlock);
  // The weight update reads them in place too, as 2 blocks (16 + 5) of each row's 21 channels;
  // C = 3 at stride 1 (3 floats between pixels) keeps the folded rows.
  const FwdPlan w1 = make_bwd_weights_plan(ConvDesc(16, 3, 64, 224, 224, 7, 7, 2, 3)).fwd;
  CHECK((w1.fold_in_place && w1.Cr == 2 && w1.taps == 7 && w1.in_cb == kBlock && w1.wei_kb == 160 * kBlock));
  CHECK(!make_bwd_weights_plan(ConvDesc(1, 3, 16, 32, 32, 5, 5, 1, 2)).fwd.fold_in_place);
  CHECK(!make_fwd_plan(ConvDesc(1, 3, 16, 32, 32, 5, 5, 1, 2)).fold_in_place);
  // The weight update of 1x1 stride 2 reads src in place while dwei is within 512 KiB.
  const FwdPlan u2 = make_bwd_weights_plan(ConvDesc(16, 256, 128, 56, 56, 1, 1, 2, 0)).fwd;
  CHECK((u2.mode == InputMode::kDirect && u2.in_px == 2 * kBlock && u2.in_row == 2 * 56 * kBlock));
  CHECK(make_bwd_weights_plan(ConvDesc(16, 512, 1024, 28, 28, 1, 1, 2, 0)).fwd.mode == InputMode::kPhases);
  // Backward data of a folded layer: a 1x1 convolution from K to the 147 folded channels, then
  // col2im; per thread and image when N >= threads.
  const BwdDataPlan d1 = make_bwd_data_plan(ConvDesc(16, 3, 64, 224, 224, 7, 7, 2, 3), 2);
  CHECK((d1.fold && d1.fold_images && d1.phases == 1 && d1.phase[0].N == 1 && d1.phase[0].Kb == 10));
  CHECK(d1.col_size == 10 * 112 * 112 * kBlock);
  CHECK(!make_bwd_data_plan(ConvDesc(1, 3, 64, 224, 224, 7, 7, 2, 3), 2).fold_images);
  CHECK(!make_bwd_data_plan(ConvDesc(1, 64, 64, 56, 56, 3, 3, 1, 1)).fold);
  // Threads own whole images: one reused phase-image buffer per thread (N >= threads only).
  CHECK(make_fwd_plan(ConvDesc(2, 64, 64, 56, 56, 3, 3, 1, 1), 2).thread_image);
  CHECK(!make_fwd_plan(ConvDesc(1, 64, 64, 56, 56, 3, 3, 1, 1), 2).thread_image);
  // Large weights, few pixels (res5: 9 MiB, 7x7): the images run inside the K groups.
  CHECK(make_fwd_plan(ConvDesc(16, 512, 512, 7, 7, 3, 3, 1, 1)).images_inner);
  CHECK(!make_fwd_plan(ConvDesc(1, 512, 512, 7, 7, 3, 3, 1, 1)).images_inner);    // one image
  CHECK(!make_fwd_plan(ConvDesc(16, 256, 256, 14, 14, 3, 3, 1, 1)).images_inner);  // 196 pixels
  CHECK(!make_fwd_plan(ConvDesc(16, 64, 64, 7, 7, 3, 3, 1, 1)).images_inner);      // 144 KiB
}

}  // namespace hwyconv::test
