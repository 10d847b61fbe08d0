// Forward pass against the reference loop, on every Highway target this CPU supports: the ResNet-50
// layers (spatially reduced), the first 7x7 stride-2 layer with C = 3, a seeded random sweep with
// remainders in every dimension, and every epilogue.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "hwyconv/hwyconv.hpp"
#include "conv_util.hpp"
#include "test_util.hpp"

namespace hwyconv::test {
namespace {

/// The 20 distinct ResNet-50 layers (C K H R stride; 3x3 layers pad 1, conv1 pad 3), with H reduced
/// (224 -> 56, 56 -> 14, 28 -> 14) to keep the double-precision reference fast; strides, pads, filter
/// sizes and channel counts are the real ones.
std::vector<ConvDesc> resnet50_reduced(int64_t N) {
  struct L {
    int64_t c, k, h, r, s;
  };
  const L layers[] = {{3, 64, 224, 7, 2},    {64, 256, 56, 1, 1},    {64, 64, 56, 1, 1},
                      {64, 64, 56, 3, 1},    {256, 64, 56, 1, 1},    {256, 512, 56, 1, 2},
                      {256, 128, 56, 1, 2},  {128, 128, 28, 3, 1},   {128, 512, 28, 1, 1},
                      {512, 128, 28, 1, 1},  {512, 1024, 28, 1, 2},  {512, 256, 28, 1, 2},
                      {256, 256, 14, 3, 1},  {256, 1024, 14, 1, 1},  {1024, 256, 14, 1, 1},
                      {1024, 2048, 14, 1, 2}, {1024, 512, 14, 1, 2}, {512, 512, 7, 3, 1},
                      {512, 2048, 7, 1, 1},  {2048, 512, 7, 1, 1}};
  std::vector<ConvDesc> out;
  for (const L& l : layers) {
    const int64_t h = l.h == 224 ? 56 : (l.h >= 28 ? 14 : l.h);
    out.push_back(ConvDesc(N, l.c, l.k, h, h, l.r, l.r, l.s, l.r == 7 ? 3 : (l.r == 3 ? 1 : 0)));
  }
  return out;
}

/// Seeded random shapes with remainders everywhere: C, K not multiples of 16, odd H, W, strides 1-3,
/// asymmetric pads, dilation, R, S from 1 to 11.
std::vector<ConvDesc> random_sweep(int count, uint32_t seed) {
  std::mt19937 g(seed);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(g); };
  std::vector<ConvDesc> out;
  while (int(out.size()) < count) {
    ConvDesc d(pick(1, 2), pick(1, 40), pick(1, 40), pick(1, 24), pick(1, 40), pick(1, 11), pick(1, 11));
    d = d.with_stride(pick(1, 3), pick(1, 3));
    if (pick(0, 4) == 0) d = d.with_dilation(pick(1, 2), pick(1, 2));
    const int64_t eh = d.dil_h * (d.R - 1) + 1, ew = d.dil_w * (d.S - 1) + 1;
    d = d.with_pad(pick(0, eh - 1), pick(0, ew - 1), pick(0, eh - 1), pick(0, ew - 1));
    if (d.check().ok() && d.P() * d.Q() * d.C * d.K * d.R * d.S < 4'000'000) out.push_back(d);
  }
  return out;
}

/// Runs Conv::forward (with bias) on a problem and checks every output and every padded channel.
/// With `layout` nhwc, src is given channels-last (Options::src_layout). Planned for Machine{}, as
/// the plan assertions are, so that the paths they name are the ones run on every machine.
void check_forward(const FwdProblem& pb, int threads = 1, SrcLayout layout = SrcLayout::nChw16c) {
  const ConvDesc& d = pb.d;
  INFO(describe(d) << (layout == SrcLayout::nhwc ? " src nhwc" : ""));
  Conv conv(d, {.threads = threads, .src_layout = layout, .machine = Machine{}});
  check_invariants(conv);
  std::vector<float> dst(size_t(pb.dst_blocked_size()), 7.0f);  // garbage the kernel must overwrite
  if (layout == SrcLayout::nhwc) {
    std::vector<float> nhwc(size_t(d.N * d.H * d.W * d.C));
    reorder_nChw16c_to_nhwc(pb.bsrc, nhwc, d.N, d.C, d.H, d.W);
    conv.forward(nhwc, pb.bwei, pb.bias, dst);
  } else {
    conv.forward(pb.bsrc, pb.bwei, pb.bias, dst);
  }
  std::vector<float> plain(pb.ref.size());
  reorder_nChw16c_to_nchw(dst, plain, d.N, d.K, d.P(), d.Q());
  std::string worst;
  CHECK_MESSAGE(count_mismatches(plain, pb.ref, pb.ref_abs, d.C * d.R * d.S + 1, &worst) == 0, worst);
  // Padded output channels (k >= K in the last block) are exactly zero.
  int64_t nonzero_pad = 0;
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t k = d.K; k < round_up(d.K, kBlock); ++k)
      for (int64_t pq = 0; pq < d.P() * d.Q(); ++pq)
        nonzero_pad += dst[size_t(((n * d.Kb() + k / kBlock) * d.P() * d.Q() + pq) * kBlock + k % kBlock)] != 0.0f;
  CHECK(nonzero_pad == 0);
}

const std::vector<std::unique_ptr<FwdProblem>>& problems(const std::vector<ConvDesc>& shapes, uint32_t seed,
                                                         std::vector<std::unique_ptr<FwdProblem>>& cache) {
  if (cache.empty())
    for (const ConvDesc& d : shapes) cache.push_back(std::make_unique<FwdProblem>(d, seed++));
  return cache;
}

}  // namespace

TEST_CASE("fwd: ResNet-50 layers (reduced H, W) match the reference on every target") {
  static std::vector<std::unique_ptr<FwdProblem>> cache;
  const auto& pbs = problems(subset(resnet50_reduced(1), "fwd ResNet-50 layers"), 100, cache);
  for_each_target([&](const std::string& target) {
    CHECK(std::string(Conv::target()) == target);
    for (const auto& pb : pbs) check_forward(*pb);
  });
}

TEST_CASE("fwd: first layer 7x7 stride 2, C = 3 (folded path) at full size") {
  static std::vector<std::unique_ptr<FwdProblem>> cache;
  const auto& pbs = problems({ConvDesc(1, 3, 64, 224, 224, 7, 7, 2, 3), ConvDesc(2, 3, 20, 33, 23, 7, 7, 2, 3)}, 7, cache);
  const Conv c0(pbs[0]->d, {.threads = 1, .machine = Machine{}}), c1(pbs[1]->d, {.threads = 1, .machine = Machine{}});
  const Conv c1t2(pbs[1]->d, {.threads = 2, .machine = Machine{}});
  CHECK(fwd_plan(c0).in.mode == InputMode::kFold);
  // Q = 112: the folded channels are read in place from the dense copy (WorkingInput::fold_in_place).
  CHECK(fwd_plan(c0).in.fold_in_place);
  // Q = 12 is narrower than every block of that form: N = 2, each thread folds rows into its ring
  // right before computing them (Blocking::ring_rows).
  CHECK(!fwd_plan(c1).in.fold_in_place);
  CHECK(fwd_plan(c1).b.ring_rows > 0);
  CHECK(fwd_plan(c1t2).b.ring_rows > 0);
  for_each_target([&](const std::string&) {
    for (const auto& pb : pbs) check_forward(*pb);
  });
}

TEST_CASE("fwd: folded channels read in place (pixels stride_w * C floats apart) on every target and thread count") {
  // Q = 28: 1x14 x 2 K blocks, and K = 40 leaves one K block to the 1x14 form; N = 2 makes each
  // thread copy its image into its own buffer (thread_image), N = 1 copies every image first.
  // Asymmetric padding, a stride of 1 over rows (in_row of one dense row), C = 6 at stride 1; Q = 16
  // and Q = 33 end each row with a block moved back over the one before; C = 3 and C = 1 at stride 1,
  // C = 2 at stride 3.
  static std::vector<std::unique_ptr<FwdProblem>> cache;
  const auto& pbs = problems({ConvDesc(2, 3, 40, 55, 56, 7, 7, 2, 0).with_pad(3, 2, 2, 3),
                              ConvDesc(1, 3, 32, 20, 55, 5, 7, 2, 0).with_stride(1, 2).with_pad(2, 3, 1, 3),
                              ConvDesc(2, 6, 16, 9, 16, 3, 3, 1, 0), ConvDesc(2, 3, 20, 33, 31, 7, 7, 2, 3),
                              ConvDesc(1, 3, 24, 12, 33, 5, 5, 1, 2), ConvDesc(2, 1, 32, 17, 30, 3, 3, 1, 1),
                              ConvDesc(1, 2, 16, 20, 83, 4, 4, 3, 1)},
                             61, cache);
  for (const auto& pb : pbs) {
    INFO(describe(pb->d));
    const Conv conv(pb->d, {.threads = 2, .machine = Machine{}});
    CHECK(fwd_plan(conv).in.fold_in_place);
    CHECK(fwd_plan(conv).b.thread_image == (pb->d.N == 2));
  }
  for_each_target([&](const std::string&) {
    for (const auto& pb : pbs)
      for (int threads : {1, 2}) check_forward(*pb, threads);
  });
}

TEST_CASE("fwd: src in nhwc, read directly by folded layers and reordered by the others, on every target") {
  // Folded and read in place (N = 2: per-thread images; N = 1: all images first), folded through
  // the ring of folded rows (Q = 16), and two layers that reorder nhwc to nChw16c (3x3 with C = 20,
  // 1x1 stride 2 read in place).
  static std::vector<std::unique_ptr<FwdProblem>> cache;
  const auto& pbs = problems({ConvDesc(2, 3, 40, 55, 56, 7, 7, 2, 0).with_pad(3, 2, 2, 3),
                              ConvDesc(1, 3, 32, 20, 55, 5, 7, 2, 0).with_stride(1, 2).with_pad(2, 3, 1, 3),
                              ConvDesc(2, 3, 20, 33, 31, 7, 7, 2, 3), ConvDesc(2, 20, 24, 9, 11, 3, 3, 1, 1),
                              ConvDesc(2, 32, 32, 28, 28, 1, 1, 2, 0)},
                             71, cache);
  CHECK(fwd_plan(Conv(pbs[0]->d, {.src_layout = SrcLayout::nhwc, .machine = Machine{}})).in.src_nhwc);
  CHECK(fwd_plan(Conv(pbs[2]->d, {.src_layout = SrcLayout::nhwc, .machine = Machine{}})).in.src_nhwc);
  CHECK(!fwd_plan(Conv(pbs[3]->d, {.src_layout = SrcLayout::nhwc, .machine = Machine{}})).in.src_nhwc);
  CHECK(!fwd_plan(Conv(pbs[0]->d, {.machine = Machine{}})).in.src_nhwc);
  for_each_target([&](const std::string&) {
    for (const auto& pb : pbs)
      for (int threads : {1, 2}) check_forward(*pb, threads, SrcLayout::nhwc);
  });
}

TEST_CASE("fwd: an nhwc src too small, or an unknown src_layout, is named and nothing is written") {
  for (const ConvDesc& d : {ConvDesc(1, 3, 16, 12, 12, 7, 7, 2, 3), ConvDesc(1, 20, 16, 6, 6, 3, 3, 1, 1)}) {
    INFO(describe(d));
    Conv conv(d, {.src_layout = SrcLayout::nhwc});
    CHECK(conv.src_size() == d.N * d.H * d.W * d.C);
    std::vector<float> src(size_t(conv.src_size() - 1), 1.0f), wei(size_t(conv.wei_size()), 1.0f);
    std::vector<float> dst(size_t(conv.dst_size()), 3.0f);
    CHECK_THROWS_WITH_AS(conv.forward(src, wei, {}, dst), doctest::Contains("(nhwc)"), Error);
    CHECK(std::all_of(dst.begin(), dst.end(), [](float v) { return v == 3.0f; }));
    std::vector<float> dwei(size_t(conv.wei_size()), 3.0f);
    CHECK_THROWS_WITH_AS(conv.backward_weights(src, dst, dwei, {}), doctest::Contains("(nhwc)"), Error);
    CHECK(std::all_of(dwei.begin(), dwei.end(), [](float v) { return v == 3.0f; }));
  }
  CHECK_THROWS_WITH_AS(Conv(ConvDesc(1, 3, 16, 12, 12, 3, 3), {.src_layout = SrcLayout(7)}),
                       doctest::Contains("src_layout"), Error);
}

TEST_CASE("fwd: seeded random sweep with remainders in every dimension") {
  static std::vector<std::unique_ptr<FwdProblem>> cache;
  const auto& pbs = problems(subset(random_sweep(40, 2026), "fwd random sweep"), 1000, cache);
  for_each_target([&](const std::string&) {
    for (const auto& pb : pbs) check_forward(*pb);
  });
}

TEST_CASE("fwd: every register block and every remainder of Q and P is exercised") {
  // Q from 1 to 31 and P from 1 to 9 walk through every block of kFwdBlocks as main or remainder
  // (with 3x3 and 5x5 outputs of 3x3 filters for the small-map blocks);
  // K of 1 to 4 K blocks uses the blocks over 2 and 3 K blocks with and without a K block left over.
  static std::vector<std::unique_ptr<FwdProblem>> cache;
  std::vector<ConvDesc> shapes;
  for (int64_t q = 1; q <= 31; q += 1) shapes.push_back(ConvDesc(1, 17, 9 + 16 * (q % 4), 1 + q % 9, q, 1, 1));
  shapes.push_back(ConvDesc(1, 16, 16, 14, 14, 1, 1));
  shapes.push_back(ConvDesc(1, 16, 16, 7, 7, 1, 1));
  shapes.push_back(ConvDesc(1, 16, 16, 6, 7, 1, 1));
  shapes.push_back(ConvDesc(1, 16, 16, 7, 14, 1, 1));
  shapes.push_back(ConvDesc(1, 32, 40, 5, 5, 3, 3));        // 3x3 output
  shapes.push_back(ConvDesc(1, 32, 40, 7, 7, 3, 3));        // 5x5 output
  shapes.push_back(ConvDesc(1, 20, 24, 7, 5, 3, 3, 1, 1));  // 7x5
  const auto& pbs = problems(shapes, 3, cache);
  std::vector<int> used(kNumFwdBlocks, 0);
  for (const auto& pb : pbs) {
    const Conv conv(pb->d, {.threads = 1, .machine = Machine{}});
    for (const StreamEntry& e : fwd_stream(conv).entries) used[e.block] = 1;
  }
  for (int b = 0; b < kNumFwdBlocks; ++b) {
    INFO("block " << kFwdBlocks[b].rb_p << "x" << kFwdBlocks[b].rb_q << " x" << kFwdBlocks[b].kbs << " K blocks");
    CHECK(used[size_t(b)] == 1);
  }
  for_each_target([&](const std::string&) {
    for (const auto& pb : pbs) check_forward(*pb);
  });
}

TEST_CASE("fwd: 1-D signals split into column segments among threads, on every target") {
  // One image, one row, one or two K groups: the threads split the row (Blocking::q_groups); the
  // dense first-layer form moves the last block of the row back inside the last segment.
  static std::vector<std::unique_ptr<FwdProblem>> cache;
  const auto& pbs = problems({ConvDesc(1, 20, 16, 1, 333, 1, 3).with_pad(0, 1, 0, 1), ConvDesc(1, 32, 32, 1, 500, 1, 1),
                              ConvDesc(1, 1, 32, 1, 401, 1, 2).with_pad(0, 1, 0, 0), ConvDesc(1, 3, 16, 2, 97, 2, 5, 1, 1)},
                             77, cache);
  int split = 0;
  for (const auto& pb : pbs) split += fwd_plan(Conv(pb->d, {.threads = 2, .machine = Machine{}})).b.q_groups > 1;
  CHECK(split >= 3);
  for_each_target([&](const std::string&) {
    for (const auto& pb : pbs)
      for (int threads : {2, 3}) {
        check_forward(*pb, threads);
        check_forward(*pb, threads, SrcLayout::nhwc);
      }
  });
}

TEST_CASE("fwd: fused epilogues (bias, scale/shift, residual, ReLU) in every combination") {
  const ConvDesc d = ConvDesc(2, 21, 37, 9, 10, 3, 3, 1, 1).with_stride(2, 1);
  const FwdProblem pb(d, 42);
  std::mt19937 g(5);
  const int64_t P = d.P(), Q = d.Q(), out = d.N * d.K * P * Q;
  const std::vector<float> res_plain = random_floats(out, g), scale = random_floats(d.K, g),
                           shift = random_floats(d.K, g);
  std::vector<float> res(size_t(pb.dst_blocked_size()));
  reorder_nchw_to_nChw16c(res_plain, res, d.N, d.K, P, Q);
  for_each_target([&](const std::string&) {
    for (unsigned ops = 0; ops < 16; ++ops) {
      const bool bias = ops & 1, ss = ops & 2, residual = ops & 4, relu = ops & 8;
      INFO("bias " << bias << " scale/shift " << ss << " residual " << residual << " relu " << relu);
      Conv conv(d, {.threads = 2});
      PostOps post{.relu = relu};
      if (ss) post.scale = scale, post.shift = shift;
      if (residual) post.residual = res;
      std::vector<float> dst(static_cast<size_t>(pb.dst_blocked_size()), -3.0f), plain(static_cast<size_t>(out));
      conv.forward(pb.bsrc, pb.bwei, bias ? std::span<const float>(pb.bias) : std::span<const float>(), dst, post);
      reorder_nChw16c_to_nchw(dst, plain, d.N, d.K, P, Q);
      std::vector<double> want(static_cast<size_t>(out)), want_abs(static_cast<size_t>(out));
      for (int64_t i = 0; i < out; ++i) {
        const int64_t k = (i / (P * Q)) % d.K;
        double v = pb.ref[size_t(i)] - (bias ? 0.0 : pb.bias[size_t(k)]);
        double a = pb.ref_abs[size_t(i)];
        if (ss) v = v * scale[size_t(k)] + shift[size_t(k)], a = a * std::fabs(scale[size_t(k)]) + std::fabs(shift[size_t(k)]);
        if (residual) v += res_plain[size_t(i)], a += std::fabs(res_plain[size_t(i)]);
        if (relu) v = std::max(v, 0.0);
        want[size_t(i)] = v;
        want_abs[size_t(i)] = a;
      }
      std::string worst;
      CHECK_MESSAGE(count_mismatches(plain, want, want_abs, d.C * d.R * d.S + 3, &worst) == 0, worst);
    }
  });
}

TEST_CASE("fwd: 1x1 stride 2 read in place (every stride-2 block, K blocks left over) on every target") {
  // Q = 28 and 14 (1x14 x 2 K blocks, 5 K blocks: one left over), N = 2, odd H and W; Q = 13 and
  // Q = 7 have no stride-2 blocks and keep the phase copy.
  static std::vector<std::unique_ptr<FwdProblem>> cache;
  const auto& pbs = problems({ConvDesc(2, 40, 80, 56, 55, 1, 1, 2, 0), ConvDesc(1, 24, 70, 27, 28, 1, 1, 2, 0),
                              ConvDesc(2, 33, 64, 13, 14, 1, 1, 2, 0), ConvDesc(1, 20, 30, 25, 25, 1, 1, 2, 0)},
                             51, cache);
  std::vector<int> used(kNumFwdBlocks, 0);
  for (const auto& pb : pbs) {
    const Conv conv(pb->d, {.threads = 1, .machine = Machine{}});
    CHECK(fwd_plan(conv).g.in_px == (fwd_plan(conv).g.Q % 14 == 0 ? 2 : 1) * kBlock);
    if (fwd_plan(conv).g.in_px == 2 * kBlock)
      for (const StreamEntry& e : fwd_stream(conv).entries) used[e.block] = 1;
  }
  for (const RegBlock& r : kStride2Blocks) {
    INFO("stride-2 block " << r.rb_p << "x" << r.rb_q << " x" << r.kbs << " K blocks");
    CHECK(used[size_t(find_fwd_block(r.rb_p, r.rb_q, r.kbs))] == 1);
  }
  for_each_target([&](const std::string&) {
    for (const auto& pb : pbs)
      for (int threads : {1, 2}) check_forward(*pb, threads);
  });
}

TEST_CASE("fwd: images inside the K groups (large weights, few pixels) on every target and thread count") {
  // 2 MiB of weights against 5x4 outputs: FwdPlan::images_inner, a loop nest the layer tests (N = 1)
  // never take. Strided and padded so the working input is a copy for all images.
  static std::vector<std::unique_ptr<FwdProblem>> cache;
  const auto& pbs = problems({ConvDesc(3, 260, 230, 9, 8, 3, 3, 2, 1)}, 41, cache);
  REQUIRE(fwd_plan(Conv(pbs[0]->d, {.threads = 1, .machine = Machine{}})).b.images_inner);
  for_each_target([&](const std::string&) {
    for (int threads : {1, 2, 3}) check_forward(*pbs[0], threads);
  });
}

TEST_CASE("fwd: results are bitwise independent of the thread count and of the parallel-for") {
  const FwdProblem pb(ConvDesc(3, 35, 40, 13, 17, 3, 3, 1, 1), 9);
  std::vector<float> first;
  for (int threads : {1, 2, 3, 7}) {
    Conv conv(pb.d, {.threads = threads});
    std::vector<float> dst(size_t(pb.dst_blocked_size()));
    conv.forward(pb.bsrc, pb.bwei, pb.bias, dst, {.relu = true});
    if (first.empty())
      first = dst;
    else
      CHECK_MESSAGE(dst == first, "threads = " << threads);
  }
  // A caller's parallel-for (here: a serial loop that records the tasks) is used instead of the pool.
  int64_t tasks = 0;
  Conv conv(pb.d, {.threads = 4, .parallel_for = [&](int64_t n, const std::function<void(int64_t)>& fn) {
                     for (int64_t i = n - 1; i >= 0; --i) fn(i);
                     tasks += n;
                   }});
  std::vector<float> dst(size_t(pb.dst_blocked_size()));
  conv.forward(pb.bsrc, pb.bwei, pb.bias, dst, {.relu = true});
  CHECK(tasks >= 4);
  CHECK(dst == first);
}

TEST_CASE("fwd: non-finite values propagate as IEEE says, ReLU keeps NaN, padded channels stay zero") {
  // K = 20: the second K block has 12 padding lanes. One NaN in src reaches every output that reads
  // it (through any weight, zero included), also past a fused ReLU; the padding lanes stay 0.
  const ConvDesc d = ConvDesc(1, 16, 20, 7, 7, 3, 3, 1, 1);
  FwdProblem pb(d, 61);
  const int64_t h0 = 3, w0 = 2, P = d.P(), Q = d.Q();
  pb.bsrc[size_t((h0 * d.W + w0) * kBlock + 5)] = std::nanf("");
  for_each_target([&](const std::string&) {
    for (bool relu : {false, true}) {
      INFO("relu " << relu);
      Conv conv(d, {.threads = 2});
      std::vector<float> dst(size_t(pb.dst_blocked_size()), -3.0f);
      conv.forward(pb.bsrc, pb.bwei, pb.bias, dst, {.relu = relu});
      int64_t wrong = 0;
      for (int64_t kb = 0; kb < d.Kb(); ++kb)
        for (int64_t p = 0; p < P; ++p)
          for (int64_t q = 0; q < Q; ++q)
            for (int64_t k = 0; k < kBlock; ++k) {
              const float v = dst[size_t(((kb * P + p) * Q + q) * kBlock + k)];
              const bool reads = std::abs(p - h0) <= 1 && std::abs(q - w0) <= 1;
              if (kb * kBlock + k >= d.K)
                wrong += v != 0.0f || std::signbit(v);
              else
                wrong += reads ? !std::isnan(v) : !std::isfinite(v) || (relu && v < 0);
            }
      CHECK(wrong == 0);
    }
  });
}

}  // namespace hwyconv::test
