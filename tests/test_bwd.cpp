// Training passes against the reference loops, on every Highway target this CPU supports: backward
// data (strided layers included) and backward weights with dbias, thread-count independence, fused
// ReLU backward, and bad arguments (the finite-difference gradient check is in test_groups.cpp, with
// grouped and depthwise layers).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "hwyconv/hwyconv.hpp"
#include "conv_util.hpp"
#include "test_util.hpp"

namespace hwyconv::test {
namespace {

/// A training problem: src, weights and ddst with references for dsrc, dwei and dbias, and the
/// sums of absolute products (for the tolerance).
struct BwdProblem {
  ConvDesc d;
  std::vector<float> src, wei, ddst;          // nchw, oihw, nkpq
  std::vector<float> bsrc, bwei, bddst;       // blocked
  std::vector<double> dsrc, dsrc_abs, dwei, dwei_abs, dbias, dbias_abs;

  BwdProblem(const ConvDesc& desc, uint32_t seed) : d(desc) {
    std::mt19937 g(seed);
    const int64_t P = d.P(), Q = d.Q();
    src = random_floats(d.N * d.C * d.H * d.W, g);
    wei = random_floats(d.K * d.C * d.R * d.S, g);
    ddst = random_floats(d.N * d.K * P * Q, g);
    bsrc.resize(size_t(act_blocked_size(d.N, d.C, d.H, d.W)));
    bwei.resize(size_t(wei_blocked_size(d.K, d.C, d.R, d.S)));
    bddst.resize(size_t(act_blocked_size(d.N, d.K, P, Q)));
    reorder_nchw_to_nChw16c(src, bsrc, d.N, d.C, d.H, d.W);
    reorder_oihw_to_OIhw16i16o(wei, bwei, d.K, d.C, d.R, d.S);
    reorder_nchw_to_nChw16c(ddst, bddst, d.N, d.K, P, Q);
    dsrc.resize(src.size());
    dsrc_abs.resize(src.size());
    dwei.resize(wei.size());
    dwei_abs.resize(wei.size());
    dbias.resize(size_t(d.K));
    dbias_abs.resize(size_t(d.K));
    reference::conv_bwd_d(d, ddst, wei, dsrc);
    reference::conv_bwd_d(d, abs_of(ddst), abs_of(wei), dsrc_abs);
    reference::conv_bwd_w(d, src, ddst, dwei, dbias);
    reference::conv_bwd_w(d, abs_of(src), abs_of(ddst), dwei_abs, dbias_abs);
  }
};

/// Runs both passes through Conv and compares with the references. Reduction lengths: K*R*S terms
/// per dsrc element, N*P*Q per dwei and dbias element.
void check_backward(const BwdProblem& pb, int threads = 1, std::optional<Machine> machine = {}) {
  const ConvDesc& d = pb.d;
  INFO(describe(d) << " threads " << threads);
  Conv conv(d, {.threads = threads, .machine = machine});
  check_invariants(conv);
  std::vector<float> wbd(pb.bwei.size()), dsrc(pb.bsrc.size(), 5.0f), dwei(pb.bwei.size(), 5.0f), dbias(size_t(d.K), 5.0f);
  conv.reorder_weights_bwd_d(pb.bwei, wbd);
  conv.backward_data(pb.bddst, wbd, dsrc);
  conv.backward_weights(pb.bsrc, pb.bddst, dwei, dbias);

  std::vector<float> plain(pb.src.size());
  reorder_nChw16c_to_nchw(dsrc, plain, d.N, d.C, d.H, d.W);
  std::string worst;
  CHECK_MESSAGE(count_mismatches(plain, pb.dsrc, pb.dsrc_abs, d.K * d.R * d.S, &worst) == 0, "dsrc " << worst);
  int64_t pad_nonzero = 0;
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t c = d.C; c < round_up(d.C, kBlock); ++c)
      for (int64_t hw = 0; hw < d.H * d.W; ++hw)
        pad_nonzero += dsrc[size_t(((n * d.Cb() + c / kBlock) * d.H * d.W + hw) * kBlock + c % kBlock)] != 0.0f;
  CHECK(pad_nonzero == 0);

  std::vector<float> wplain(pb.wei.size());
  reorder_OIhw16i16o_to_oihw(dwei, wplain, d.K, d.C, d.R, d.S);
  CHECK_MESSAGE(count_mismatches(wplain, pb.dwei, pb.dwei_abs, d.N * d.P() * d.Q(), &worst) == 0, "dwei " << worst);
  CHECK_MESSAGE(count_mismatches(dbias, pb.dbias, pb.dbias_abs, d.N * d.P() * d.Q(), &worst) == 0, "dbias " << worst);
  // Padded slots of the blocked weight gradient are zero.
  std::vector<float> reblocked(dwei.size());
  reorder_oihw_to_OIhw16i16o(wplain, reblocked, d.K, d.C, d.R, d.S);
  CHECK(reblocked == dwei);
}

/// Weight update with src given in nhwc (Options::src_layout) against the reference.
void check_backward_weights_nhwc(const BwdProblem& pb, int threads) {
  const ConvDesc& d = pb.d;
  INFO(describe(d) << " threads " << threads << " src nhwc");
  Conv conv(d, {.threads = threads, .src_layout = SrcLayout::nhwc});
  std::vector<float> nhwc(size_t(d.N * d.H * d.W * d.C)), dwei(pb.bwei.size(), 5.0f), dbias(size_t(d.K), 5.0f);
  reorder_nChw16c_to_nhwc(pb.bsrc, nhwc, d.N, d.C, d.H, d.W);
  conv.backward_weights(nhwc, pb.bddst, dwei, dbias);
  std::vector<float> wplain(pb.wei.size());
  reorder_OIhw16i16o_to_oihw(dwei, wplain, d.K, d.C, d.R, d.S);
  std::string worst;
  CHECK_MESSAGE(count_mismatches(wplain, pb.dwei, pb.dwei_abs, d.N * d.P() * d.Q(), &worst) == 0, "dwei " << worst);
  CHECK_MESSAGE(count_mismatches(dbias, pb.dbias, pb.dbias_abs, d.N * d.P() * d.Q(), &worst) == 0, "dbias " << worst);
}

std::vector<ConvDesc> training_shapes() {
  return {
      // ResNet-50 layer kinds (reduced spatially and in channels): 3x3 pad 1, 1x1, 1x1 stride 2.
      ConvDesc(2, 64, 64, 14, 14, 3, 3, 1, 1), ConvDesc(2, 64, 256, 14, 14, 1, 1),
      ConvDesc(2, 256, 128, 14, 14, 1, 1, 2, 0), ConvDesc(1, 128, 128, 7, 7, 3, 3, 1, 1),
      ConvDesc(1, 512, 64, 7, 7, 1, 1, 2, 0),
      // Stride 2 with 3x3 and padding, first layer 7x7 stride 2 C = 3 (folded), stride 3, dilation.
      ConvDesc(2, 32, 48, 15, 13, 3, 3, 2, 1), ConvDesc(1, 3, 64, 45, 45, 7, 7, 2, 3),
      ConvDesc(1, 20, 24, 17, 19, 5, 5, 3, 2), ConvDesc(1, 17, 19, 12, 11, 3, 3, 1, 2).with_dilation(2, 2),
      ConvDesc(2, 21, 18, 10, 9, 4, 2, 1, 0).with_stride(2, 1).with_pad(3, 1, 0, 0),
      // K blocks 7 and 5: weight-update calls of 4 K blocks followed by one of 3 and of 1.
      ConvDesc(1, 40, 112, 9, 9, 3, 3, 1, 1), ConvDesc(2, 24, 80, 8, 8, 1, 1),
      // Folded channels read in place by the weight update (pixels stride_w * C floats apart): 3 K
      // blocks (channel groups that read past a filter row's run), rows at stride 1, C = 6, 3 and 1
      // at stride 1.
      ConvDesc(2, 3, 40, 23, 30, 5, 7, 2, 0).with_stride(1, 2).with_pad(2, 3, 1, 3),
      ConvDesc(1, 6, 20, 9, 12, 3, 3, 1, 1), ConvDesc(1, 3, 24, 20, 33, 3, 3, 1, 1),
      ConvDesc(2, 1, 16, 15, 17, 5, 5, 1, 2),
      // Filter-row runs of 3, 2, 1, 4 and 5 channels (S*C) with 4, 2, 3, 4 and 1 K blocks per call: the
      // weight update's channel groups are sized to the run (kernels/bwd_w-inl.h, kDenseGroupSizes).
      ConvDesc(1, 1, 64, 9, 11, 3, 3, 1, 1), ConvDesc(1, 1, 32, 1, 40, 1, 2).with_pad(0, 1, 0, 0),
      ConvDesc(2, 1, 48, 7, 9, 3, 1, 1, 0), ConvDesc(1, 2, 64, 8, 10, 2, 2, 1, 0),
      ConvDesc(1, 1, 16, 12, 12, 1, 5).with_pad(0, 2, 0, 2),
      // Taps that read only padding, skipped: a 1x1 map with a 3x3 filter, a 3x3 dilated by 6 on a
      // 9x9 map (each output sees at most two of three rows and columns of taps), 5x5 maps at stride 2.
      ConvDesc(2, 20, 36, 1, 1, 3, 3, 1, 1), ConvDesc(1, 24, 20, 9, 9, 3, 3, 1, 6).with_dilation(6, 6),
      ConvDesc(2, 18, 30, 5, 5, 3, 3, 2, 1),
      // Small maps: a 1x1 layer on 17x17 as one row of 289 pixels (backward data "flat"), 3x3 and
      // 5x5 outputs in one register block.
      ConvDesc(1, 48, 40, 17, 17, 1, 1), ConvDesc(1, 40, 36, 5, 5, 3, 3), ConvDesc(2, 36, 40, 5, 5, 3, 3, 1, 1),
      // Several images per weight-update call and per piece (small maps read in place), and taps
      // that read only padding skipped after the first image (with dbias).
      ConvDesc(5, 24, 40, 3, 3, 3, 3), ConvDesc(4, 20, 24, 2, 2, 3, 3, 1, 1), ConvDesc(16, 256, 16, 1, 1, 3, 3, 1, 1),
      ConvDesc(3, 3, 20, 1, 2, 3, 3, 1, 1),
      // 1-D signals (rows split into column segments among threads).
      ConvDesc(1, 32, 20, 1, 300, 1, 2).with_pad(0, 1, 0, 0), ConvDesc(1, 24, 32, 1, 250, 1, 1),
  };
}

std::vector<ConvDesc> random_training_sweep(int count, uint32_t seed) {
  std::mt19937 g(seed);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(g); };
  std::vector<ConvDesc> out;
  while (int(out.size()) < count) {
    ConvDesc d(pick(1, 3), pick(1, 37), pick(1, 37), pick(1, 17), pick(1, 19), pick(1, 7), pick(1, 7));
    d = d.with_stride(pick(1, 3), pick(1, 3));
    if (pick(0, 4) == 0) d = d.with_dilation(pick(1, 2), pick(1, 2));
    const int64_t eh = d.dil_h * (d.R - 1) + 1, ew = d.dil_w * (d.S - 1) + 1;
    d = d.with_pad(pick(0, eh - 1), pick(0, ew - 1), pick(0, eh - 1), pick(0, ew - 1));
    if (d.check().ok()) out.push_back(d);
  }
  return out;
}

}  // namespace

TEST_CASE("bwd: layer shapes and strided layers match the reference on every target") {
  // The 1x1 stride-2 shape below reads src in place with more src than ddst per row block: its
  // weight-update tasks run with the C blocks outside the K groups (BwdWPlan::c_outer).
  // (The order is chosen by the cost model; planned for a machine with an AVX2-like register budget,
  // one K block per weight-update call, the strided src rows outweigh the ddst rows.)
  Machine avx2 = Machine{};
  avx2.max_pixels = 6;
  avx2.vec_per_block = 2;
  CHECK(bwd_w_plan(Conv(ConvDesc(2, 256, 128, 14, 14, 1, 1, 2, 0), {.threads = 2, .machine = avx2})).c_outer);
  CHECK_FALSE(bwd_w_plan(Conv(ConvDesc(2, 64, 256, 14, 14, 1, 1), {.threads = 2, .machine = Machine{}})).c_outer);
  // A 1x1 layer on a 17x17 map: backward data runs the plane as one row of 289 pixels.
  for (const ConvDesc& d : {ConvDesc(1, 768, 192, 17, 17, 1, 1), ConvDesc(1, 48, 40, 17, 17, 1, 1)}) {
    INFO(d.C << "->" << d.K);
    CHECK(Conv(d, {.threads = 1, .machine = Machine{}}).describe(Pass::bwd_d).find("flat") != std::string::npos);
  }
  static std::vector<std::unique_ptr<BwdProblem>> pbs;
  if (pbs.empty()) {
    uint32_t seed = 300;
    for (const ConvDesc& d : subset(training_shapes(), "bwd layer shapes")) pbs.push_back(std::make_unique<BwdProblem>(d, seed++));
  }
  for_each_target([&](const std::string&) {
    for (const auto& pb : pbs) check_backward(*pb, 2);
    const BwdProblem c_outer(ConvDesc(2, 256, 128, 14, 14, 1, 1, 2, 0), 299);
    check_backward(c_outer, 2, avx2);
  });
}

TEST_CASE("bwd: weight update from an nhwc src (folded layers read it, others reorder) on every target") {
  // Folded and read in place (3 K blocks, rows at stride 1), folded into rows (Q = 23), and a 3x3
  // stride-2 layer that reorders nhwc to nChw16c.
  static std::vector<std::unique_ptr<BwdProblem>> pbs;
  if (pbs.empty()) {
    uint32_t seed = 500;
    for (const ConvDesc& d : {ConvDesc(2, 3, 40, 23, 30, 5, 7, 2, 0).with_stride(1, 2).with_pad(2, 3, 1, 3),
                              ConvDesc(1, 3, 64, 45, 45, 7, 7, 2, 3), ConvDesc(2, 32, 48, 15, 13, 3, 3, 2, 1)})
      pbs.push_back(std::make_unique<BwdProblem>(d, seed++));
  }
  for_each_target([&](const std::string&) {
    for (const auto& pb : pbs)
      for (int threads : {1, 2}) check_backward_weights_nhwc(*pb, threads);
  });
}

TEST_CASE("bwd: seeded random sweep with remainders in every dimension") {
  static std::vector<std::unique_ptr<BwdProblem>> pbs;
  if (pbs.empty()) {
    uint32_t seed = 900;
    for (const ConvDesc& d : subset(random_training_sweep(30, 77), "bwd random sweep")) pbs.push_back(std::make_unique<BwdProblem>(d, seed++));
  }
  for_each_target([&](const std::string&) {
    for (const auto& pb : pbs) check_backward(*pb, 1 + int(pb->d.N % 3));
  });
}

TEST_CASE("bwd: thread counts (1, 2, 3) and both weight-update strategies") {
  struct Case {
    ConvDesc d;
    bool split;  // weight update splits the pixels (minibatch or row blocks) at 2 and 3 threads
  };
  // 3x3 with N = 1: the task split, bitwise independent of the thread count.
  // 1x1 16 -> 16 with N = 4: one task, so 2 and 3 threads split the minibatch (private copies).
  // 260 <- 230 3x3 at 9x8, N = 3: 2 MiB of weights, backward data runs the images inside the K
  // groups (Blocking::images_inner). N = 1 with one task, and the folded first layer at N = 1 (90x88:
  // each thread's half of the rows outweighs the reduction of the private copies): the threads split
  // blocks of rows (BwdWPlan::row_split).
  const Case cases[] = {{ConvDesc(1, 40, 36, 11, 9, 3, 3, 2, 1), false},
                        {ConvDesc(4, 16, 16, 9, 9, 1, 1), true},
                        {ConvDesc(3, 260, 230, 9, 8, 3, 3, 1, 1), false},
                        {ConvDesc(1, 16, 20, 13, 11, 1, 1), true},
                        {ConvDesc(1, 3, 20, 90, 88, 7, 7, 2, 3), true}};
  for (const Case& c : cases) {
    const ConvDesc& d = c.d;
    const BwdProblem pb(d, 17);
    // The plans as the cost model makes them for Machine{} (the typical AVX-512 server core).
    if (d.C == 260)
      REQUIRE(Conv(d, {.threads = 2, .machine = Machine{}}).plan<impl::BwdDataPhases>()->phase[0].b.images_inner);
    if (d.N == 1 && c.split) REQUIRE(bwd_w_plan(Conv(d, {.threads = 2, .machine = Machine{}})).row_split);
    std::vector<float> first_dsrc, first_dwei;
    for (int threads : {1, 2, 3}) {
      INFO(describe(d) << " threads " << threads);
      check_backward(pb, threads, Machine{});
      Conv conv(d, {.threads = threads, .machine = Machine{}});
      std::vector<float> wbd(pb.bwei.size()), dsrc(pb.bsrc.size()), dwei(pb.bwei.size());
      conv.reorder_weights_bwd_d(pb.bwei, wbd);
      conv.backward_data(pb.bddst, wbd, dsrc);
      conv.backward_weights(pb.bsrc, pb.bddst, dwei, {});
      if (threads == 1) {
        first_dsrc = dsrc;
        first_dwei = dwei;
        continue;
      }
      CHECK(dsrc == first_dsrc);
      const bool split = bwd_w_plan(conv).minibatch;
      CHECK(split == c.split);
      if (!split) CHECK(dwei == first_dwei);  // else: within tolerance (checked by check_backward)
    }
  }
}

TEST_CASE("bwd: ReLU backward fused on read equals masking ddst first") {
  // Phase images, the first layer's folded channels read in place and 1x1 stride 2 read in place
  // (the other weight-update microkernels).
  for (const ConvDesc& d : {ConvDesc(2, 24, 20, 9, 8, 3, 3, 2, 1), ConvDesc(2, 3, 20, 17, 16, 7, 7, 2, 3),
                            ConvDesc(2, 24, 20, 9, 8, 1, 1, 2, 0)}) {
  INFO(describe(d));
  if (d.C == 3) REQUIRE(bwd_w_plan(Conv(d, {.threads = 2, .machine = Machine{}})).in.in.fold_in_place);
  if (d.R == 1) REQUIRE(bwd_w_plan(Conv(d, {.threads = 2, .machine = Machine{}})).in.g.in_px == 2 * kBlock);
  const BwdProblem pb(d, 23);
  std::mt19937 g(8);
  const std::vector<float> mask = random_floats(int64_t(pb.bddst.size()), g);  // > 0 about half the time
  std::vector<float> masked(pb.bddst.size());
  for (size_t i = 0; i < masked.size(); ++i) masked[i] = mask[i] > 0 ? pb.bddst[i] : 0.0f;
  for_each_target([&](const std::string&) {
    Conv conv(d, {.threads = 2, .machine = Machine{}});
    std::vector<float> wbd(pb.bwei.size()), a(pb.bsrc.size()), b(pb.bsrc.size()), wa(pb.bwei.size()),
        wb(pb.bwei.size()), ba(size_t(d.K)), bb(size_t(d.K));
    conv.reorder_weights_bwd_d(pb.bwei, wbd);
    conv.backward_data(pb.bddst, wbd, a, {.relu_mask = mask});
    conv.backward_data(masked, wbd, b);
    CHECK(a == b);
    conv.backward_weights(pb.bsrc, pb.bddst, wa, ba, {.relu_mask = mask});
    conv.backward_weights(pb.bsrc, masked, wb, bb);
    CHECK(wa == wb);
    CHECK(ba == bb);
  });
  }
}

TEST_CASE("bwd: a NaN in ddst reaches the dsrc that reads it; dsrc's padded channels stay zero") {
  // C = 20: 12 padding lanes in the second C block of dsrc; a stride-1 and a stride-2 layer.
  for (const ConvDesc& d : {ConvDesc(1, 20, 24, 7, 7, 3, 3, 1, 1), ConvDesc(1, 20, 24, 9, 9, 3, 3, 2, 1)}) {
    INFO(describe(d));
    BwdProblem pb(d, 71);
    const int64_t p0 = 2, q0 = 1;
    pb.bddst[size_t((p0 * d.Q() + q0) * kBlock + 3)] = std::nanf("");
    for_each_target([&](const std::string&) {
      Conv conv(d, {.threads = 2});
      std::vector<float> wbd(pb.bwei.size()), dsrc(pb.bsrc.size(), -3.0f);
      conv.reorder_weights_bwd_d(pb.bwei, wbd);
      conv.backward_data(pb.bddst, wbd, dsrc);
      int64_t wrong = 0, nans = 0;
      for (int64_t cb = 0; cb < d.Cb(); ++cb)
        for (int64_t i = 0; i < d.H * d.W; ++i)
          for (int64_t c = 0; c < kBlock; ++c) {
            const float v = dsrc[size_t((cb * d.H * d.W + i) * kBlock + c)];
            if (cb * kBlock + c >= d.C)
              wrong += v != 0.0f;
            else
              nans += std::isnan(v);
          }
      CHECK(wrong == 0);
      CHECK(nans >= d.C);  // at least the input pixel under the NaN's centre tap, in every channel
    });
  }
}

TEST_CASE("bwd: bad buffers are named and nothing is written") {
  const ConvDesc d(2, 20, 24, 9, 11, 3, 3, 2, 1);
  Conv conv(d);
  const BwdProblem pb(d, 1);
  std::vector<float> wbd(pb.bwei.size()), dsrc(pb.bsrc.size(), 42.0f), dwei(pb.bwei.size(), 42.0f), dbias(size_t(d.K), 42.0f);
  conv.reorder_weights_bwd_d(pb.bwei, wbd);
  using S = std::span<const float>;
  using SO = std::span<float>;
  auto named = [](const char* field, auto&& f) {
    INFO(field);
    try {
      f();
      CHECK(false);
    } catch (const Error& e) {
      CHECK(e.field() == field);
    }
  };
  named("ddst", [&] { conv.backward_data(S(pb.bddst).first(7), wbd, dsrc); });
  named("wei_bwd_d", [&] { conv.backward_data(pb.bddst, S(wbd).first(7), dsrc); });
  named("dsrc", [&] { conv.backward_data(pb.bddst, wbd, SO(dsrc).first(7)); });
  named("relu_mask", [&] { conv.backward_data(pb.bddst, wbd, dsrc, {.relu_mask = S(pb.bddst).first(3)}); });
  named("src", [&] { conv.backward_weights(S(pb.bsrc).first(7), pb.bddst, dwei, dbias); });
  named("ddst", [&] { conv.backward_weights(pb.bsrc, S(pb.bddst).first(7), dwei, dbias); });
  named("dweights", [&] { conv.backward_weights(pb.bsrc, pb.bddst, SO(dwei).first(7), dbias); });
  named("dbias", [&] { conv.backward_weights(pb.bsrc, pb.bddst, dwei, SO(dbias).first(3)); });
  named("wei_bwd_d", [&] { conv.reorder_weights_bwd_d(pb.bwei, SO(wbd).first(9)); });
  CHECK(std::all_of(dsrc.begin(), dsrc.end(), [](float v) { return v == 42.0f; }));
  CHECK(std::all_of(dwei.begin(), dwei.end(), [](float v) { return v == 42.0f; }));
  CHECK(std::all_of(dbias.begin(), dbias.end(), [](float v) { return v == 42.0f; }));
}

namespace {
constexpr ConvDesc kTrain = ConvDesc(2, 19, 33, 12, 10, 3, 3, 2, 1);
}

TEST_CASE("StaticConv: backward passes equal Conv's") {
  using L = StaticConv<kTrain, 2>;
  static_assert(L::kBwdDataPlan.phases == 4);
  const BwdProblem pb(kTrain, 5);
  Conv conv(kTrain, {.threads = 2});
  std::vector<float> wbd(pb.bwei.size()), a(pb.bsrc.size()), b(pb.bsrc.size()), wa(pb.bwei.size()), wb(pb.bwei.size()),
      ba(size_t(kTrain.K)), bb(size_t(kTrain.K));
  conv.reorder_weights_bwd_d(pb.bwei, wbd);
  conv.backward_data(pb.bddst, wbd, a);
  L::backward_data(pb.bddst, wbd, b);
  CHECK(a == b);
  conv.backward_weights(pb.bsrc, pb.bddst, wa, ba);
  L::backward_weights(pb.bsrc, pb.bddst, wb, bb);
  CHECK(wa == wb);
  CHECK(ba == bb);
}

}  // namespace hwyconv::test
