// Depthwise convolutions (groups == C == K) against the reference loops on every Highway target this
// CPU supports: forward with every post-op, backward data with the ReLU mask, the weight update with
// dbias; odd sizes, strides 1-3, padding, dilation, channel tails; 1 and 2 threads; StaticConv; the
// Goihw16g reorders and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "hwyconv/hwyconv.hpp"
#include "test_util.hpp"

namespace hwyconv::test {
namespace {

/// A depthwise problem: plain tensors (src nchw, weights goihw = [C][1][R][S], ddst nkpq), their
/// blocked copies, the references of all three passes and the sums of |terms| (tolerances).
struct DwProblem {
  ConvDesc d;
  std::vector<float> src, wei, bias, ddst, mask;
  std::vector<float> bsrc, bwei, bddst, bmask;
  std::vector<double> dst, dst_abs, dsrc, dsrc_abs, dwei, dwei_abs, dbias, dbias_abs;

  DwProblem(const ConvDesc& desc, uint32_t seed) : d(desc) {
    std::mt19937 g(seed);
    const int64_t C = d.C, P = d.P(), Q = d.Q();
    src = random_floats(d.N * C * d.H * d.W, g);
    wei = random_floats(C * d.R * d.S, g);
    bias = random_floats(C, g);
    ddst = random_floats(d.N * C * P * Q, g);
    mask = random_floats(d.N * C * P * Q, g);  // a ReLU output stand-in: about half > 0
    bsrc.resize(size_t(act_blocked_size(d.N, C, d.H, d.W)));
    bwei.resize(size_t(wei_depthwise_size(C, d.R, d.S)));
    bddst.resize(size_t(act_blocked_size(d.N, C, P, Q)));
    bmask.resize(bddst.size());
    reorder_nchw_to_nChw16c(src, bsrc, d.N, C, d.H, d.W);
    reorder_goihw_to_Goihw16g(wei, bwei, C, d.R, d.S);
    reorder_nchw_to_nChw16c(ddst, bddst, d.N, C, P, Q);
    reorder_nchw_to_nChw16c(mask, bmask, d.N, C, P, Q);
    const size_t out = size_t(d.N * C * P * Q), in = size_t(d.N * C * d.H * d.W), w = wei.size();
    dst.resize(out), dst_abs.resize(out), dsrc.resize(in), dsrc_abs.resize(in);
    dwei.resize(w), dwei_abs.resize(w), dbias.resize(size_t(C)), dbias_abs.resize(size_t(C));
    reference::conv_fwd(d, src, wei, bias, dst);
    reference::conv_fwd(d, abs_of(src), abs_of(wei), abs_of(bias), dst_abs);
    reference::conv_bwd_d(d, ddst, wei, dsrc);
    reference::conv_bwd_d(d, abs_of(ddst), abs_of(wei), dsrc_abs);
    reference::conv_bwd_w(d, src, ddst, dwei, dbias);
    reference::conv_bwd_w(d, abs_of(src), abs_of(ddst), dwei_abs, dbias_abs);
  }
};

std::vector<float> to_plain(const std::vector<float>& blocked, int64_t N, int64_t C, int64_t H, int64_t W) {
  std::vector<float> plain(size_t(N * C * H * W));
  reorder_nChw16c_to_nchw(blocked, plain, N, C, H, W);
  return plain;
}

/// Depthwise shapes: channel tails (C = 3, 24, 40), maps from 1x1 to 23x19, filters 1x1 to 7x7 and
/// asymmetric, strides 1-3, padding up to the filter extent less one, dilation 2, N = 1 and 2.
std::vector<ConvDesc> dw_shapes() {
  auto dw = [](int64_t N, int64_t C, int64_t H, int64_t W, int64_t R, int64_t S, int64_t stride, int64_t pad) {
    ConvDesc d(N, C, C, H, W, R, S, stride, pad);
    d.groups = C;
    return d;
  };
  return subset(std::vector<ConvDesc>{
                    dw(1, 32, 12, 13, 3, 3, 1, 1),                        // MobileNet-like, odd width
                    dw(2, 16, 11, 9, 3, 3, 2, 1),                         // stride 2
                    dw(1, 24, 7, 7, 3, 3, 1, 1),                          // channel tail, small map
                    dw(1, 40, 9, 10, 5, 5, 1, 2),                         // 5x5 (EfficientNet)
                    dw(1, 48, 15, 14, 5, 5, 2, 2),                        // 5x5 stride 2
                    dw(2, 3, 8, 8, 3, 3, 1, 0),                           // C < 16, no padding
                    dw(1, 16, 23, 19, 7, 7, 3, 3),                        // 7x7 stride 3
                    dw(1, 32, 1, 1, 3, 3, 1, 1),                          // 1x1 map: only the centre tap
                    dw(1, 16, 2, 3, 3, 3, 2, 1),                          // every pixel at an edge
                    dw(1, 16, 10, 11, 1, 1, 2, 0),                        // 1x1 stride 2: dsrc pixels no tap sees
                    dw(1, 32, 9, 30, 1, 7, 1, 0).with_pad(0, 3, 0, 3),    // 1x7
                    dw(1, 32, 13, 6, 7, 1, 1, 0).with_pad(3, 0, 3, 0),    // 7x1
                    dw(1, 16, 12, 12, 3, 3, 1, 2).with_dilation(2, 2),    // dilation 2
                    dw(1, 16, 9, 12, 3, 3, 1, 1).with_stride(2, 1),       // asymmetric stride
                    dw(1, 32, 8, 9, 2, 3, 2, 0).with_pad(0, 1, 1, 0),     // even filter, asymmetric pads
                    dw(1, 64, 5, 40, 3, 3, 1, 1),                         // long rows: full blocks
                },
                "depthwise shapes");
}

void check_forward(const DwProblem& pr, const Conv& conv, const std::string& what) {
  const ConvDesc& d = pr.d;
  const int64_t P = d.P(), Q = d.Q(), C = d.C;
  // Post-ops: residual, scale and shift of their own, then ReLU; the reference applies them in the
  // documented order (bias, scale-shift, residual, ReLU).
  std::mt19937 g(7);
  const std::vector<float> res = random_floats(d.N * C * P * Q, g), scale = random_floats(C, g),
                           shift = random_floats(C, g);
  std::vector<float> bres(size_t(act_blocked_size(d.N, C, P, Q)));
  reorder_nchw_to_nChw16c(res, bres, d.N, C, P, Q);
  for (int variant = 0; variant < 2; ++variant) {
    std::vector<float> dst(size_t(conv.dst_size()), 123.0f);
    PostOps post;
    if (variant == 1) post = {.relu = true, .residual = bres, .scale = scale, .shift = shift};
    conv.forward(pr.bsrc, pr.bwei, pr.bias, dst, post);
    std::vector<double> want = pr.dst, want_abs = pr.dst_abs;
    for (int64_t i = 0; i < int64_t(want.size()); ++i) {
      if (variant == 0) continue;
      const int64_t k = i / (P * Q) % C;
      want[size_t(i)] = std::max(0.0, want[size_t(i)] * scale[size_t(k)] + shift[size_t(k)] + res[size_t(i)]);
      want_abs[size_t(i)] = want_abs[size_t(i)] * std::fabs(scale[size_t(k)]) + std::fabs(shift[size_t(k)]) +
                            std::fabs(res[size_t(i)]);
    }
    std::string worst;
    const auto got = to_plain(dst, d.N, C, P, Q);
    CHECK_MESSAGE(count_mismatches(got, want, want_abs, d.R * d.S + 3, &worst) == 0,
                  what << " fwd variant " << variant << ": " << worst);
    // Padded channels of dst are exactly zero.
    for (int64_t i = 0; i < int64_t(dst.size()); ++i)
      if (i % kBlock + (i / (P * Q * kBlock)) % d.Kb() * kBlock >= C) REQUIRE(dst[size_t(i)] == 0.0f);
  }
}

void check_backward(const DwProblem& pr, const Conv& conv, const std::string& what) {
  const ConvDesc& d = pr.d;
  const int64_t P = d.P(), Q = d.Q(), C = d.C;
  std::string worst;
  // Backward data, plain and with the ReLU mask (= masking ddst first).
  std::vector<float> wbd(size_t(conv.wei_size()));
  conv.reorder_weights_bwd_d(pr.bwei, wbd);
  std::vector<float> dsrc(size_t(conv.dsrc_size()), 123.0f);
  conv.backward_data(pr.bddst, wbd, dsrc);
  CHECK_MESSAGE(count_mismatches(to_plain(dsrc, d.N, C, d.H, d.W), pr.dsrc, pr.dsrc_abs, d.R * d.S, &worst) == 0,
                what << " bwd_d: " << worst);
  // Weight update with dbias.
  std::vector<float> dwei(size_t(conv.wei_size()), 123.0f), dbias(size_t(C), 123.0f);
  conv.backward_weights(pr.bsrc, pr.bddst, dwei, dbias);
  std::vector<float> dwei_plain(pr.wei.size());
  reorder_Goihw16g_to_goihw(dwei, dwei_plain, C, d.R, d.S);
  const int64_t n_red = d.N * P * Q;
  CHECK_MESSAGE(count_mismatches(dwei_plain, pr.dwei, pr.dwei_abs, n_red, &worst) == 0, what << " dwei: " << worst);
  CHECK_MESSAGE(count_mismatches(dbias, pr.dbias, pr.dbias_abs, n_red, &worst) == 0, what << " dbias: " << worst);
  for (int64_t i = 0; i < int64_t(dwei.size()); ++i)
    if (i % kBlock + i / (d.R * d.S * kBlock) * kBlock >= C) REQUIRE(dwei[size_t(i)] == 0.0f);

  // Fused ReLU backward equals the same pass with ddst masked first.
  std::vector<float> masked(pr.bddst.size());
  for (size_t i = 0; i < masked.size(); ++i) masked[i] = pr.bmask[i] > 0.0f ? pr.bddst[i] : 0.0f;
  std::vector<float> a(dsrc.size()), b(dsrc.size());
  conv.backward_data(pr.bddst, wbd, a, {.relu_mask = pr.bmask});
  conv.backward_data(masked, wbd, b);
  CHECK_MESSAGE(a == b, what << " bwd_d with the ReLU mask");
  std::vector<float> wa(dwei.size()), wb(dwei.size()), ba(static_cast<size_t>(C)), bb(static_cast<size_t>(C));
  conv.backward_weights(pr.bsrc, pr.bddst, wa, ba, {.relu_mask = pr.bmask});
  conv.backward_weights(pr.bsrc, masked, wb, bb);
  CHECK_MESSAGE((wa == wb && ba == bb), what << " bwd_w with the ReLU mask");
}

TEST_CASE("depthwise: all three passes match the reference on every target, 1 and 2 threads") {
  const std::vector<ConvDesc> shapes = dw_shapes();
  for_each_target([&](const std::string& target) {
    for (size_t i = 0; i < shapes.size(); ++i) {
      const DwProblem pr(shapes[i], uint32_t(100 + i));
      for (int threads : {1, 2}) {
        const Conv conv(shapes[i], {.threads = threads});
        const std::string what = target + " " + describe(shapes[i]) + " threads " + std::to_string(threads);
        CHECK(std::string(conv.impl_name(Pass::fwd)) == "fwd_depthwise");
        CHECK(std::string(conv.impl_name(Pass::bwd_d)) == "bwd_d_depthwise");
        CHECK(std::string(conv.impl_name(Pass::bwd_w)) == "bwd_w_depthwise");
        CHECK(conv.invariant_violation() == nullptr);
        check_forward(pr, conv, what);
        check_backward(pr, conv, what);
      }
    }
  });
}

TEST_CASE("depthwise: nhwc src in forward and the weight update") {
  ConvDesc d(2, 24, 24, 9, 11, 3, 3, 2, 1);
  d.groups = 24;
  const DwProblem pr(d, 5);
  const Conv blocked(d), nhwc(d, {.src_layout = SrcLayout::nhwc});
  std::vector<float> src_nhwc(pr.src.size());
  reorder_nChw16c_to_nhwc(pr.bsrc, src_nhwc, d.N, d.C, d.H, d.W);
  std::vector<float> a(size_t(blocked.dst_size())), b(a.size());
  blocked.forward(pr.bsrc, pr.bwei, pr.bias, a);
  nhwc.forward(src_nhwc, pr.bwei, pr.bias, b);
  CHECK(a == b);
  std::vector<float> wa(size_t(blocked.wei_size())), wb(wa.size());
  blocked.backward_weights(pr.bsrc, pr.bddst, wa, {});
  nhwc.backward_weights(src_nhwc, pr.bddst, wb, {});
  CHECK(wa == wb);
}

TEST_CASE("depthwise: StaticConv equals Conv") {
  constexpr ConvDesc kD = [] {
    ConvDesc d(1, 32, 32, 14, 14, 3, 3, 2, 1);
    d.groups = 32;
    return d;
  }();
  using SC = StaticConv<kD>;
  const DwProblem pr(kD, 9);
  const Conv conv(kD);
  std::vector<float> a(size_t(conv.dst_size())), b(a.size());
  conv.forward(pr.bsrc, pr.bwei, pr.bias, a, {.relu = true});
  SC::forward(pr.bsrc, pr.bwei, pr.bias, b, {.relu = true});
  CHECK(a == b);
  std::vector<float> da(size_t(conv.dsrc_size())), db(da.size());
  conv.backward_data(pr.bddst, pr.bwei, da);
  SC::backward_data(pr.bddst, pr.bwei, db);
  CHECK(da == db);
  std::vector<float> wa(size_t(conv.wei_size())), wb(wa.size()), ba(32), bb(32);
  conv.backward_weights(pr.bsrc, pr.bddst, wa, ba);
  SC::backward_weights(pr.bsrc, pr.bddst, wb, bb);
  CHECK((wa == wb && ba == bb));
}

TEST_CASE("depthwise: Goihw16g reorders round-trip and zero the padded slots") {
  std::mt19937 g(3);
  const int64_t G = 20, R = 3, S = 5;
  const std::vector<float> plain = random_floats(G * R * S, g);
  std::vector<float> blocked(size_t(wei_depthwise_size(G, R, S)), 7.0f), back(plain.size());
  reorder_goihw_to_Goihw16g(plain, blocked, G, R, S);
  reorder_Goihw16g_to_goihw(blocked, back, G, R, S);
  CHECK(back == plain);
  // Element (g, r, s) at (((g/16)*R + r)*S + s)*16 + g%16.
  CHECK(blocked[size_t(((1 * R + 2) * S + 4) * 16 + 3)] == plain[size_t((19 * R + 2) * S + 4)]);
  CHECK(blocked[size_t(((1 * R + 0) * S + 0) * 16 + 4)] == 0.0f);
  std::vector<float> small(blocked.size() - 1);
  CHECK_THROWS_WITH_AS(reorder_goihw_to_Goihw16g(plain, small, G, R, S), doctest::Contains("dst"), Error);
}

TEST_CASE("depthwise and groups: bad input is named") {
  auto field_of = [](const ConvDesc& d) { return std::string(d.check().ok() ? "" : d.check().field); };
  ConvDesc d(1, 32, 32, 8, 8, 3, 3, 1, 1);
  d.groups = 3;  // divides neither
  CHECK(field_of(d) == "groups");
  CHECK_THROWS_WITH_AS(Conv{d}, doctest::Contains("must divide C"), Error);
  d.groups = 2;  // grouped, not depthwise: not implemented, said so
  CHECK_THROWS_WITH_AS(Conv{d}, doctest::Contains("depthwise"), Error);
  d.groups = 32;
  d.K = 48;  // channel multiplier: not implemented
  CHECK(field_of(d) == "groups");
  d.K = 32;
  CHECK(d.check().ok());
  const Conv conv(d);
  CHECK(std::string(conv.wei_layout()) == "Goihw16g");
  CHECK(conv.wei_size() == 2 * 9 * 16);
  std::vector<float> src(size_t(conv.src_size())), wei(size_t(conv.wei_size()) - 1), dst(size_t(conv.dst_size()), 5.0f);
  CHECK_THROWS_WITH_AS(conv.forward(src, wei, {}, dst), doctest::Contains("Goihw16g"), Error);
  CHECK(dst[0] == 5.0f);
}

}  // namespace
}  // namespace hwyconv::test
