// Grouped and depthwise convolutions against the reference loops on every Highway target this CPU
// supports. Depthwise (groups == C == K): forward with every post-op, backward data with the ReLU
// mask, the weight update with dbias; odd sizes, strides 1-3, padding, dilation, channel tails; 1 and
// 2 threads; StaticConv; the Goihw16g reorders and bad input. Grouped (any other G): the same passes
// over groups of whole 16-channel blocks, of a few channels (several groups per weight group) and
// channel multipliers; the gOIhw16i16o reorders. A finite-difference check of the gradients of a
// dense, a grouped and a depthwise layer.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "hwyconv/hwyconv.hpp"
#include "test_util.hpp"

namespace hwyconv::test {
namespace {

/// Weights goihw ([K][C/G][R][S]) in the layout a layer's Conv takes: Goihw16g (depthwise) or
/// gOIhw16i16o; and back.
std::vector<float> blocked_weights(const ConvDesc& d, const std::vector<float>& plain) {
  std::vector<float> b(size_t(d.depthwise() ? wei_depthwise_size(d.groups, d.R, d.S)
                                            : wei_grouped_size(d.groups, d.K, d.C, d.R, d.S)));
  if (d.depthwise())
    reorder_goihw_to_Goihw16g(plain, b, d.groups, d.R, d.S);
  else
    reorder_goihw_to_gOIhw16i16o(plain, b, d.groups, d.K, d.C, d.R, d.S);
  return b;
}
std::vector<float> plain_weights(const ConvDesc& d, const std::vector<float>& blocked) {
  std::vector<float> p(size_t(d.K * (d.C / d.groups) * d.R * d.S));
  if (d.depthwise())
    reorder_Goihw16g_to_goihw(blocked, p, d.groups, d.R, d.S);
  else
    reorder_gOIhw16i16o_to_goihw(blocked, p, d.groups, d.K, d.C, d.R, d.S);
  return p;
}

/// A grouped or depthwise problem: plain tensors (src nchw, weights goihw = [K][C/G][R][S], ddst
/// nkpq), their blocked copies (weights gOIhw16i16o, depthwise Goihw16g), the references of all three
/// passes and the sums of |terms|.
struct GroupedProblem {
  ConvDesc d;
  std::vector<float> src, wei, bias, ddst, mask;
  std::vector<float> bsrc, bwei, bddst, bmask;
  std::vector<double> dst, dst_abs, dsrc, dsrc_abs, dwei, dwei_abs, dbias, dbias_abs;

  GroupedProblem(const ConvDesc& desc, uint32_t seed) : d(desc) {
    std::mt19937 g(seed);
    const int64_t P = d.P(), Q = d.Q();
    src = random_floats(d.N * d.C * d.H * d.W, g);
    wei = random_floats(d.K * (d.C / d.groups) * d.R * d.S, g);
    bias = random_floats(d.K, g);
    ddst = random_floats(d.N * d.K * P * Q, g);
    mask = random_floats(d.N * d.K * P * Q, g);
    bsrc.resize(size_t(act_blocked_size(d.N, d.C, d.H, d.W)));
    bddst.resize(size_t(act_blocked_size(d.N, d.K, P, Q)));
    bmask.resize(bddst.size());
    reorder_nchw_to_nChw16c(src, bsrc, d.N, d.C, d.H, d.W);
    bwei = blocked_weights(d, wei);
    reorder_nchw_to_nChw16c(ddst, bddst, d.N, d.K, P, Q);
    reorder_nchw_to_nChw16c(mask, bmask, d.N, d.K, P, Q);
    const size_t out = size_t(d.N * d.K * P * Q), in = src.size(), w = wei.size();
    dst.resize(out), dst_abs.resize(out), dsrc.resize(in), dsrc_abs.resize(in);
    dwei.resize(w), dwei_abs.resize(w), dbias.resize(size_t(d.K)), dbias_abs.resize(size_t(d.K));
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

/// Forward of a grouped or depthwise layer against the reference: plain, with scale-shift, residual
/// and ReLU, and with residual and clamp; padded channels of dst stay zero.
void check_forward(const GroupedProblem& pr, const Conv& conv, const std::string& what) {
  const ConvDesc& d = pr.d;
  const int64_t P = d.P(), Q = d.Q(), K = d.K;
  // Post-ops: residual, scale and shift of their own, then ReLU; the reference applies them in the
  // documented order (bias, scale-shift, residual, ReLU).
  std::mt19937 g(7);
  const std::vector<float> res = random_floats(d.N * K * P * Q, g), scale = random_floats(K, g),
                           shift = random_floats(K, g);
  std::vector<float> bres(size_t(act_blocked_size(d.N, K, P, Q)));
  reorder_nchw_to_nChw16c(res, bres, d.N, K, P, Q);
  for (int variant = 0; variant < 3; ++variant) {
    std::vector<float> dst(size_t(conv.dst_size()), 123.0f);
    PostOps post;
    if (variant == 1) post = {.relu = true, .residual = bres, .scale = scale, .shift = shift};
    if (variant == 2) post = {.residual = bres, .clamp = Clamp{-0.5f, 0.75f}};
    conv.forward(pr.bsrc, pr.bwei, pr.bias, dst, post);
    std::vector<double> want = pr.dst, want_abs = pr.dst_abs;
    for (int64_t i = 0; i < int64_t(want.size()); ++i) {
      const int64_t k = i / (P * Q) % K;
      double& w = want[size_t(i)];
      if (variant == 1) {
        w = std::max(0.0, w * scale[size_t(k)] + shift[size_t(k)] + res[size_t(i)]);
        want_abs[size_t(i)] = want_abs[size_t(i)] * std::fabs(scale[size_t(k)]) + std::fabs(shift[size_t(k)]) +
                              std::fabs(res[size_t(i)]);
      } else if (variant == 2) {
        w = std::min(0.75, std::max(-0.5, w + res[size_t(i)]));
        want_abs[size_t(i)] += std::fabs(res[size_t(i)]);
      }
    }
    std::string worst;
    const auto got = to_plain(dst, d.N, K, P, Q);
    CHECK_MESSAGE(count_mismatches(got, want, want_abs, d.C / d.groups * d.R * d.S + 3, &worst) == 0,
                  what << " fwd variant " << variant << ": " << worst);
    // Padded channels of dst are exactly zero.
    for (int64_t i = 0; i < int64_t(dst.size()); ++i)
      if (i % kBlock + (i / (P * Q * kBlock)) % d.Kb() * kBlock >= K) REQUIRE(dst[size_t(i)] == 0.0f);
  }
}

/// Backward data (plain and with the ReLU mask) and the weight update with dbias of a grouped or
/// depthwise layer against the reference. The blocked dwei holds zeros in its padding and between
/// groups (a round trip through goihw gives it back exactly), so that an update in the blocked layout
/// keeps them zero.
void check_backward(const GroupedProblem& pr, const Conv& conv, const std::string& what) {
  const ConvDesc& d = pr.d;
  const int64_t P = d.P(), Q = d.Q(), K = d.K;
  std::string worst;
  // Backward data, plain and with the ReLU mask (= masking ddst first).
  std::vector<float> wbd(size_t(conv.wei_size()));
  conv.reorder_weights_bwd_d(pr.bwei, wbd);
  std::vector<float> dsrc(size_t(conv.dsrc_size()), 123.0f);
  conv.backward_data(pr.bddst, wbd, dsrc);
  CHECK_MESSAGE(count_mismatches(to_plain(dsrc, d.N, d.C, d.H, d.W), pr.dsrc, pr.dsrc_abs, K / d.groups * d.R * d.S,
                                 &worst) == 0,
                what << " bwd_d: " << worst);
  // Weight update with dbias.
  std::vector<float> dwei(size_t(conv.wei_size()), 123.0f), dbias(size_t(K), 123.0f);
  conv.backward_weights(pr.bsrc, pr.bddst, dwei, dbias);
  const std::vector<float> dwei_plain = plain_weights(d, dwei), again = blocked_weights(d, dwei_plain);
  const int64_t n_red = d.N * P * Q;
  CHECK_MESSAGE(count_mismatches(dwei_plain, pr.dwei, pr.dwei_abs, n_red, &worst) == 0, what << " dwei: " << worst);
  CHECK_MESSAGE(count_mismatches(dbias, pr.dbias, pr.dbias_abs, n_red, &worst) == 0, what << " dbias: " << worst);
  CHECK_MESSAGE(again == dwei, what << " dwei between groups or in padding is not zero");

  // Fused ReLU backward equals the same pass with ddst masked first.
  std::vector<float> masked(pr.bddst.size());
  for (size_t i = 0; i < masked.size(); ++i) masked[i] = pr.bmask[i] > 0.0f ? pr.bddst[i] : 0.0f;
  std::vector<float> a(dsrc.size()), b(dsrc.size());
  conv.backward_data(pr.bddst, wbd, a, {.relu_mask = pr.bmask});
  conv.backward_data(masked, wbd, b);
  CHECK_MESSAGE(a == b, what << " bwd_d with the ReLU mask");
  std::vector<float> wa(dwei.size()), wb(dwei.size()), ba(static_cast<size_t>(K)), bb(static_cast<size_t>(K));
  conv.backward_weights(pr.bsrc, pr.bddst, wa, ba, {.relu_mask = pr.bmask});
  conv.backward_weights(pr.bsrc, masked, wb, bb);
  CHECK_MESSAGE((wa == wb && ba == bb), what << " bwd_w with the ReLU mask");
}

TEST_CASE("depthwise: nhwc src in forward and the weight update") {
  ConvDesc d(2, 24, 24, 9, 11, 3, 3, 2, 1);
  d.groups = 24;
  const GroupedProblem pr(d, 5);
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

/// StaticConv<kD> against Conv (one thread, as StaticConv's default) in all three passes: bitwise.
template <ConvDesc kD>
void check_static(uint32_t seed) {
  using SC = StaticConv<kD>;
  const GroupedProblem pr(kD, seed);
  const Conv conv(kD, {.threads = 1});
  std::vector<float> a(size_t(conv.dst_size())), b(a.size());
  conv.forward(pr.bsrc, pr.bwei, pr.bias, a, {.relu = true});
  SC::forward(pr.bsrc, pr.bwei, pr.bias, b, {.relu = true});
  CHECK(a == b);
  std::vector<float> wbd(size_t(conv.wei_size())), da(size_t(conv.dsrc_size())), db(da.size());
  conv.reorder_weights_bwd_d(pr.bwei, wbd);
  conv.backward_data(pr.bddst, wbd, da);
  SC::backward_data(pr.bddst, wbd, db);
  CHECK(da == db);
  std::vector<float> wa(size_t(conv.wei_size())), wb(wa.size()), ba(size_t(kD.K)), bb(ba.size());
  conv.backward_weights(pr.bsrc, pr.bddst, wa, ba);
  SC::backward_weights(pr.bsrc, pr.bddst, wb, bb);
  CHECK((wa == wb && ba == bb));
}

TEST_CASE("depthwise and grouped: StaticConv equals Conv") {
  constexpr ConvDesc kDw = [] {
    ConvDesc d(1, 32, 32, 14, 14, 3, 3, 2, 1);
    d.groups = 32;
    return d;
  }();
  constexpr ConvDesc kGrouped = [] {
    ConvDesc d(2, 64, 64, 9, 9, 3, 3, 1, 1);
    d.groups = 4;
    return d;
  }();
  check_static<kDw>(9);
  check_static<kGrouped>(13);
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
  d.groups = 2;  // grouped
  CHECK(d.check().ok());
  CHECK(std::string(Conv{d}.wei_layout()) == "gOIhw16i16o");
  d.groups = 32;
  d.K = 48;  // K not a multiple of G
  CHECK(field_of(d) == "groups");
  d.K = 64;  // channel multiplier 2: grouped
  CHECK(d.check().ok());
  CHECK(std::string(Conv{d}.wei_layout()) == "gOIhw16i16o");
  d.K = 32;
  CHECK(d.check().ok());
  const Conv conv(d);
  CHECK(std::string(conv.wei_layout()) == "Goihw16g");
  CHECK(conv.wei_size() == 2 * 9 * 16);
  std::vector<float> src(size_t(conv.src_size())), wei(size_t(conv.wei_size()) - 1), dst(size_t(conv.dst_size()), 5.0f);
  CHECK_THROWS_WITH_AS(conv.forward(src, wei, {}, dst), doctest::Contains("Goihw16g"), Error);
  CHECK(dst[0] == 5.0f);
}

/// hwyconv's result (nChw16c) against a reference (plain, with the sums of |terms|).
void check_close(const std::vector<float>& blocked, const std::vector<double>& ref, const std::vector<double>& ref_abs,
                 const ConvDesc& d, bool dst_shape, int64_t n_terms, const std::string& what) {
  const int64_t C = dst_shape ? d.K : d.C, H = dst_shape ? d.P() : d.H, W = dst_shape ? d.Q() : d.W;
  std::string worst;
  CHECK_MESSAGE(count_mismatches(to_plain(blocked, d.N, C, H, W), ref, ref_abs, n_terms, &worst) == 0,
                what << ": " << worst);
}

/// Applies the ReLU6 gradient to g (nChw16c): it passes where the forward output y was in (0, 6).
std::vector<float> relu6_backward(const std::vector<float>& g, const std::vector<float>& y) {
  std::vector<float> out(g.size());
  for (size_t i = 0; i < g.size(); ++i) out[i] = y[i] > 0.0f && y[i] < 6.0f ? g[i] : 0.0f;
  return out;
}

TEST_CASE("MobileNet v2 block: expand 1x1 + ReLU6, depthwise 3x3 + ReLU6, project 1x1 + residual, forward and "
          "backward against the reference") {
  // One inverted-residual block (t = 6): 16 -> 96 -> 96 -> 16 channels at 9x9, two images. Each layer
  // is checked on the inputs hwyconv gave it (so that the tolerance is the layer's own); ReLU6's
  // gradient mask is applied between the layers by the caller, as a framework does.
  const int64_t N = 2, C = 16, E = 96, H = 9;
  ConvDesc expand(N, C, E, H, H, 1, 1), dw(N, E, E, H, H, 3, 3, 1, 1), project(N, E, C, H, H, 1, 1);
  dw.groups = E;
  std::mt19937 g(11);
  auto scaled = [&](int64_t n, float s) {
    std::vector<float> v = random_floats(n, g);
    for (float& x : v) x *= s;
    return v;
  };
  // Weights scaled so that the activations cross both ends of ReLU6.
  const std::vector<float> x = scaled(N * C * H * H, 4.0f), w1 = scaled(E * C, 1.0f), b1 = scaled(E, 1.0f),
                           w2 = scaled(E * 9, 1.0f), b2 = scaled(E, 1.0f), w3 = scaled(C * E, 0.3f),
                           b3 = scaled(C, 1.0f), gy = scaled(N * C * H * H, 1.0f);
  auto blocked = [](const std::vector<float>& plain, int64_t n, int64_t c, int64_t h) {
    std::vector<float> b(size_t(act_blocked_size(n, c, h, h)));
    reorder_nchw_to_nChw16c(plain, b, n, c, h, h);
    return b;
  };
  std::vector<float> bw1(size_t(wei_blocked_size(E, C, 1, 1))), bw2(size_t(wei_depthwise_size(E, 3, 3))),
      bw3(size_t(wei_blocked_size(C, E, 1, 1)));
  reorder_oihw_to_OIhw16i16o(w1, bw1, E, C, 1, 1);
  reorder_goihw_to_Goihw16g(w2, bw2, E, 3, 3);
  reorder_oihw_to_OIhw16i16o(w3, bw3, C, E, 1, 1);
  const std::vector<float> bx = blocked(x, N, C, H), bgy = blocked(gy, N, C, H);

  for_each_target([&](const std::string& target) {
    const Conv c1(expand), c2(dw), c3(project);
    const PostOps relu6{.clamp = Clamp{0.0f, 6.0f}};
    std::vector<float> y1(size_t(c1.dst_size())), y2(size_t(c2.dst_size())), y3(size_t(c3.dst_size()));
    c1.forward(bx, bw1, b1, y1, relu6);
    c2.forward(y1, bw2, b2, y2, relu6);
    c3.forward(y2, bw3, b3, y3, {.residual = bx});

    // Forward, layer by layer.
    auto check_fwd = [&](const ConvDesc& d, const std::vector<float>& in, const std::vector<float>& wei,
                         const std::vector<float>& bias, const std::vector<float>& out, bool relu6_op,
                         const std::vector<float>* residual, const char* name) {
      const std::vector<float> in_plain = to_plain(in, d.N, d.C, d.H, d.W);
      const size_t n_out = size_t(d.N * d.K * d.P() * d.Q());
      std::vector<double> ref(n_out), ref_abs(n_out);
      reference::conv_fwd(d, in_plain, wei, bias, ref);
      reference::conv_fwd(d, abs_of(in_plain), abs_of(wei), abs_of(bias), ref_abs);
      for (size_t i = 0; i < n_out; ++i) {
        if (residual) ref[i] += (*residual)[i], ref_abs[i] += std::fabs((*residual)[i]);
        if (relu6_op) ref[i] = std::min(6.0, std::max(0.0, ref[i]));
      }
      check_close(out, ref, ref_abs, d, true, d.C / d.groups * d.R * d.S + 2, target + " fwd " + name);
    };
    check_fwd(expand, bx, w1, b1, y1, true, nullptr, "expand");
    check_fwd(dw, y1, w2, b2, y2, true, nullptr, "depthwise");
    check_fwd(project, y2, w3, b3, y3, false, &x, "project");
    // ReLU6 clamps at both ends somewhere (else the test would not test the clamp).
    CHECK(std::count(y1.begin(), y1.end(), 6.0f) > 0);
    CHECK(std::count(y2.begin(), y2.end(), 0.0f) > 0);

    // Backward, layer by layer: dL/dy3 = gy; ReLU6's gradient applied to the outputs of layers 1, 2.
    auto check_bwd = [&](const Conv& c, const ConvDesc& d, const std::vector<float>& in, const std::vector<float>& wei,
                         const std::vector<float>& bwei, const std::vector<float>& gout, std::vector<float>& gin,
                         const char* name) {
      std::vector<float> wbd(size_t(c.wei_size())), dwei(size_t(c.wei_size())), dbias(size_t(d.K));
      c.reorder_weights_bwd_d(bwei, wbd);
      gin.assign(size_t(c.dsrc_size()), 0.0f);
      c.backward_data(gout, wbd, gin);
      c.backward_weights(in, gout, dwei, dbias);
      const std::vector<float> in_plain = to_plain(in, d.N, d.C, d.H, d.W),
                               g_plain = to_plain(gout, d.N, d.K, d.P(), d.Q());
      const size_t n_in = in_plain.size(), n_w = wei.size();
      std::vector<double> ds(n_in), ds_abs(n_in), dw_ref(n_w), dw_abs(n_w), db(size_t(d.K)), db_abs(size_t(d.K));
      reference::conv_bwd_d(d, g_plain, wei, ds);
      reference::conv_bwd_d(d, abs_of(g_plain), abs_of(wei), ds_abs);
      reference::conv_bwd_w(d, in_plain, g_plain, dw_ref, db);
      reference::conv_bwd_w(d, abs_of(in_plain), abs_of(g_plain), dw_abs, db_abs);
      check_close(gin, ds, ds_abs, d, false, d.K / d.groups * d.R * d.S, target + " bwd_d " + name);
      std::vector<float> dw_plain(n_w);
      if (d.depthwise())
        reorder_Goihw16g_to_goihw(dwei, dw_plain, d.K, d.R, d.S);
      else
        reorder_OIhw16i16o_to_oihw(dwei, dw_plain, d.K, d.C, d.R, d.S);
      std::string worst;
      const int64_t n_red = d.N * d.P() * d.Q();
      CHECK_MESSAGE(count_mismatches(dw_plain, dw_ref, dw_abs, n_red, &worst) == 0, target << " dwei " << name << ": " << worst);
      CHECK_MESSAGE(count_mismatches(dbias, db, db_abs, n_red, &worst) == 0, target << " dbias " << name << ": " << worst);
    };
    std::vector<float> g2, g1, gx;
    check_bwd(c3, project, y2, w3, bw3, bgy, g2, "project");
    const std::vector<float> g2m = relu6_backward(g2, y2);
    check_bwd(c2, dw, y1, w2, bw2, g2m, g1, "depthwise");
    const std::vector<float> g1m = relu6_backward(g1, y1);
    check_bwd(c1, expand, bx, w1, bw1, g1m, gx, "expand");
  });
}

TEST_CASE("clamp: dense forward with Clamp equals the reference clamped; bad bounds are named") {
  const ConvDesc d(2, 20, 36, 7, 8, 3, 3, 1, 1);
  const FwdProblem pr(d, 21);
  for_each_target([&](const std::string& target) {
    const Conv conv(d);
    std::vector<float> dst(size_t(conv.dst_size()));
    conv.forward(pr.bsrc, pr.bwei, pr.bias, dst, {.relu = true, .clamp = Clamp{-1.0f, 1.5f}});
    std::vector<double> want = pr.ref;
    for (double& w : want) w = std::min(1.5, std::max(0.0, w));
    std::string worst;
    CHECK_MESSAGE(count_mismatches(to_plain(dst, d.N, d.K, d.P(), d.Q()), want, pr.ref_abs, d.C * d.R * d.S + 1,
                                   &worst) == 0,
                  target << ": " << worst);
  });
  const Conv conv(d);
  std::vector<float> dst(size_t(conv.dst_size()), 3.0f);
  CHECK_THROWS_WITH_AS(conv.forward(pr.bsrc, pr.bwei, pr.bias, dst, {.clamp = Clamp{2.0f, 1.0f}}),
                       doctest::Contains("clamp"), Error);
  CHECK_THROWS_WITH_AS(conv.forward(pr.bsrc, pr.bwei, pr.bias, dst, {.clamp = Clamp{NAN, 1.0f}}),
                       doctest::Contains("clamp"), Error);
  CHECK(dst[0] == 3.0f);
}

/// Grouped shapes: groups of whole 16-channel blocks (one weight group each), of 2-12 channels
/// (several groups per weight group, or all in one block-diagonal weight group), channel
/// multipliers; strides 1-2, padding, dilation, 1x1 in place and strided, C < 16, N = 1 and 2.
std::vector<ConvDesc> grouped_shapes() {
  auto gr = [](int64_t G, int64_t N, int64_t C, int64_t K, int64_t H, int64_t W, int64_t R, int64_t stride,
               int64_t pad) {
    ConvDesc d(N, C, K, H, W, R, R, stride, pad);
    d.groups = G;
    return d;
  };
  return subset(std::vector<ConvDesc>{
                    gr(2, 1, 32, 32, 9, 10, 3, 1, 1),                      // 16 channels per group
                    gr(4, 2, 64, 128, 11, 9, 3, 2, 1),                     // K/G = 32: two K blocks a group
                    gr(3, 1, 48, 48, 7, 7, 3, 1, 1),                       // odd G
                    gr(32, 1, 128, 128, 8, 7, 3, 1, 1),                    // ResNeXt 32x4d: 4 per group
                    gr(32, 2, 256, 256, 5, 5, 3, 2, 1),                    // 8 per group, stride 2
                    gr(2, 1, 24, 24, 6, 7, 3, 1, 1),                       // 12 per group: one weight group
                    gr(16, 1, 16, 32, 9, 9, 3, 1, 1),                      // channel multiplier 2
                    gr(8, 2, 16, 64, 6, 5, 3, 2, 1),                       // 2 in, 8 out per group
                    gr(2, 1, 64, 32, 10, 11, 1, 2, 0),                     // 1x1 stride 2 in place
                    gr(2, 2, 32, 64, 6, 6, 1, 1, 0),                       // 1x1 flat
                    gr(4, 1, 64, 64, 12, 12, 3, 1, 2).with_dilation(2, 2), // dilation 2
                    gr(2, 2, 6, 4, 9, 8, 3, 1, 1),                         // C < 16
                    gr(4, 1, 64, 64, 1, 1, 3, 1, 1),                       // 1x1 map
                    gr(2, 1, 32, 48, 13, 12, 5, 2, 2),                     // K/G = 24: K tail per group
                },
                "grouped shapes");
}

TEST_CASE("depthwise and grouped: all three passes match the reference on every target, 1 and 2 threads") {
  std::vector<ConvDesc> shapes = dw_shapes();
  const std::vector<ConvDesc> grouped = grouped_shapes();
  shapes.insert(shapes.end(), grouped.begin(), grouped.end());
  for_each_target([&](const std::string& target) {
    for (size_t i = 0; i < shapes.size(); ++i) {
      const ConvDesc& d = shapes[i];
      const GroupedProblem pr(d, uint32_t(100 + i));
      for (int threads : {1, 2}) {
        const Conv conv(d, {.threads = threads});
        const std::string what = target + " " + describe(d) + " threads " + std::to_string(threads);
        // Depthwise layers run their own implementation; grouped ones the dense implementations.
        const bool dw = d.depthwise();
        CHECK((std::string(conv.impl_name(Pass::fwd)) == "fwd_depthwise") == dw);
        CHECK((std::string(conv.impl_name(Pass::bwd_d)) == "bwd_d_depthwise") == dw);
        CHECK((std::string(conv.impl_name(Pass::bwd_w)) == "bwd_w_depthwise") == dw);
        CHECK(conv.invariant_violation() == nullptr);
        CHECK(conv.wei_size() == int64_t(pr.bwei.size()));
        check_forward(pr, conv, what);
        check_backward(pr, conv, what);
      }
    }
  });
}

TEST_CASE("grouped: gOIhw16i16o reorders, weight groups, bad input") {
  // Weight groups: whole 16-channel blocks per group, several groups per weight group, or one.
  CHECK(wei_block_groups(1, 64, 64) == 1);
  CHECK(wei_block_groups(4, 64, 64) == 4);     // 16 per group
  CHECK(wei_block_groups(32, 128, 128) == 8);  // 4 per group: 4 groups per weight group
  CHECK(wei_block_groups(32, 256, 512) == 16); // 8 in, 16 out: 2 groups per weight group
  CHECK(wei_block_groups(2, 24, 24) == 1);     // 12 per group: 4 would be needed, G = 2
  CHECK(wei_block_groups(16, 16, 32) == 1);    // channel multiplier: 16 groups of 1 input
  std::mt19937 g(5);
  const int64_t G = 8, K = 64, C = 32, R = 3, S = 2;  // 4 in, 8 out per group: weight groups of 4
  const std::vector<float> plain = random_floats(K * (C / G) * R * S, g);
  std::vector<float> blocked(size_t(wei_grouped_size(G, K, C, R, S)), 7.0f), back(plain.size());
  CHECK(blocked.size() == size_t(2 * 2 * 1 * R * S * 256));
  reorder_goihw_to_gOIhw16i16o(plain, blocked, G, K, C, R, S);
  reorder_gOIhw16i16o_to_goihw(blocked, back, G, K, C, R, S);
  CHECK(back == plain);
  // Element (k = 45, c = 1 of group 5 = input 21, r = 2, s = 1): weight group 1, its K block 0 (k - 32
  // = 13), its C block 0 (c - 16 = 5).
  const int64_t off = ((((1 * 2 + 0) * 1 + 0) * R + 2) * S + 1) * 256 + 5 * 16 + 13;
  CHECK(blocked[size_t(off)] == plain[size_t(((45 * 4 + 1) * R + 2) * S + 1)]);
  // Between groups: output 45 (group 5) and input 16 (group 4) share the weight group, weight 0.
  CHECK(blocked[size_t(off - 5 * 16)] == 0.0f);
  std::vector<float> small(blocked.size() - 1);
  CHECK_THROWS_WITH_AS(reorder_goihw_to_gOIhw16i16o(plain, small, G, K, C, R, S), doctest::Contains("dst"), Error);
  CHECK_THROWS_WITH_AS(reorder_goihw_to_gOIhw16i16o(plain, blocked, 5, K, C, R, S), doctest::Contains("G"), Error);
  CHECK_THROWS_WITH_AS(reorder_weights_bwd_d(blocked, small, K, C, R, S, G), doctest::Contains("wei_bwd_d"), Error);
}

TEST_CASE("dense, grouped and depthwise: finite-difference check of dsrc, dwei and dbias for L = sum(dst * G)") {
  // Grid inputs, so that the central difference equals the gradient up to double rounding
  // (finite_differences); the tolerance is the float accumulation bound of hwyconv's side over its
  // reduction length.
  ConvDesc dense(2, 5, 6, 7, 6, 3, 3, 2, 1), dw(2, 20, 20, 7, 6, 3, 3, 2, 1), grouped(1, 24, 20, 5, 6, 3, 3, 1, 1);
  dw.groups = 20;  // depthwise, a channel tail
  grouped.groups = 4;  // 6 in, 5 out per group: one block-diagonal weight group
  for (const ConvDesc& d : {dense, dw, grouped}) {
    std::mt19937 g(3);
    const int64_t P = d.P(), Q = d.Q(), Kg = d.K / d.groups;
    std::vector<float> src = grid_floats(d.N * d.C * d.H * d.W, g), wei = grid_floats(d.K * (d.C / d.groups) * d.R * d.S, g),
                       bias = grid_floats(d.K, g), G = grid_floats(d.N * d.K * P * Q, g);
    const std::vector<double> fd_src = finite_differences(d, src, wei, bias, G, src),
                              fd_wei = finite_differences(d, src, wei, bias, G, wei),
                              fd_bias = finite_differences(d, src, wei, bias, G, bias);
    std::vector<float> bsrc(size_t(act_blocked_size(d.N, d.C, d.H, d.W))), bG(size_t(act_blocked_size(d.N, d.K, P, Q)));
    const std::vector<float> bwei = blocked_weights(d, wei);
    reorder_nchw_to_nChw16c(src, bsrc, d.N, d.C, d.H, d.W);
    reorder_nchw_to_nChw16c(G, bG, d.N, d.K, P, Q);
    for_each_target([&](const std::string& target) {
      const Conv conv(d, {.threads = 2});
      std::vector<float> wbd(bwei.size()), dsrc(bsrc.size()), dwei(bwei.size()), dbias(size_t(d.K));
      conv.reorder_weights_bwd_d(bwei, wbd);
      conv.backward_data(bG, wbd, dsrc);
      conv.backward_weights(bsrc, bG, dwei, dbias);
      std::vector<float> dsrc_p(src.size());
      reorder_nChw16c_to_nchw(dsrc, dsrc_p, d.N, d.C, d.H, d.W);
      const std::vector<float> dwei_p = plain_weights(d, dwei);
      const double u = std::ldexp(1.0, -24), n_d = double(Kg * d.R * d.S), n_w = double(d.N * P * Q);
      int64_t bad = 0;
      for (size_t i = 0; i < src.size(); ++i) bad += std::fabs(dsrc_p[i] - fd_src[i]) > 4.0 * std::sqrt(n_d) * u * n_d;
      for (size_t i = 0; i < wei.size(); ++i) bad += std::fabs(dwei_p[i] - fd_wei[i]) > 4.0 * std::sqrt(n_w) * u * n_w;
      for (size_t i = 0; i < bias.size(); ++i) bad += std::fabs(dbias[i] - fd_bias[i]) > 4.0 * std::sqrt(n_w) * u * n_w;
      CHECK_MESSAGE(bad == 0, target << " " << describe(d) << ": " << bad << " gradients off the finite differences");
    });
  }
}

}  // namespace
}  // namespace hwyconv::test
