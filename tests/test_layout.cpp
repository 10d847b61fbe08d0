// Tests of the blocked layouts and reorders (hwyconv/layout/reorder.hpp) and of the reference loops
// (hwyconv/reference.hpp). The doctest main lives in a separate translation unit.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "hwyconv/desc.hpp"
#include "hwyconv/layout/reorder.hpp"
#include "hwyconv/reference.hpp"

namespace {

using hwyconv::ConvDesc;
using hwyconv::Error;

constexpr float kSentinel = -12345.5f;

std::vector<float> iota_floats(int64_t n, float start = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + static_cast<float>(i);
  return v;
}

std::vector<float> random_floats(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

bool all_equal(const std::vector<float>& v, float x) {
  for (float y : v)
    if (!(y == x)) return false;
  return true;
}

/// Runs f, requires that it throws hwyconv::Error with the given field.
void require_error_field(const std::function<void()>& f, const std::string& field) {
  bool thrown = false;
  try {
    f();
  } catch (const Error& e) {
    thrown = true;
    CHECK(e.field() == field);
  }
  CHECK_MESSAGE(thrown, "expected hwyconv::Error for field ", field);
}

double dot(const std::vector<double>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * double(b[i]);
  return s;
}

const int64_t kOddChannels[] = {1, 3, 15, 16, 17, 33};

}  // namespace

// ------------------------------------------------------------------------------------------------
// Sizes

TEST_CASE("blocked sizes") {
  static_assert(hwyconv::act_blocked_size(1, 1, 1, 1) == 16);
  static_assert(hwyconv::act_blocked_size(2, 17, 3, 5) == 2 * 2 * 3 * 5 * 16);
  static_assert(hwyconv::wei_blocked_size(1, 1, 1, 1) == 256);
  static_assert(hwyconv::wei_blocked_size(33, 16, 3, 2) == 3 * 1 * 3 * 2 * 256);
  CHECK(hwyconv::act_blocked_size(3, 32, 4, 4) == 3 * 32 * 16);
  CHECK(hwyconv::wei_blocked_size(17, 15, 1, 1) == 2 * 1 * 256);
}

// ------------------------------------------------------------------------------------------------
// Activation reorders

TEST_CASE("nchw <-> nChw16c round trip is exact and padding is zero") {
  std::mt19937 rng(1);
  for (int64_t C : kOddChannels) {
    CAPTURE(C);
    const int64_t N = 2, H = 3, W = 5;
    const std::vector<float> src = random_floats(N * C * H * W, rng);
    std::vector<float> blocked(size_t(hwyconv::act_blocked_size(N, C, H, W)), kSentinel);
    hwyconv::reorder_nchw_to_nChw16c(src, blocked, N, C, H, W);
    // Every padded channel slot is exactly 0 (and was written: no sentinel left anywhere).
    const int64_t Cb = hwyconv::div_up(C, 16);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t cb = 0; cb < Cb; ++cb)
        for (int64_t hw = 0; hw < H * W; ++hw)
          for (int64_t c = 0; c < 16; ++c) {
            const float v = blocked[size_t(((n * Cb + cb) * H * W + hw) * 16 + c)];
            if (cb * 16 + c >= C) {
              CHECK(v == 0.0f);
              CHECK(!std::signbit(v));
            }
            CHECK(v != kSentinel);
          }
    std::vector<float> back(src.size(), kSentinel);
    hwyconv::reorder_nChw16c_to_nchw(blocked, back, N, C, H, W);
    CHECK(back == src);
  }
}

TEST_CASE("nhwc <-> nChw16c round trip is exact and padding is zero") {
  std::mt19937 rng(2);
  for (int64_t C : kOddChannels) {
    CAPTURE(C);
    const int64_t N = 2, H = 4, W = 3;
    const std::vector<float> src = random_floats(N * H * W * C, rng);
    std::vector<float> blocked(size_t(hwyconv::act_blocked_size(N, C, H, W)), kSentinel);
    hwyconv::reorder_nhwc_to_nChw16c(src, blocked, N, C, H, W);
    const int64_t Cb = hwyconv::div_up(C, 16);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t cb = 0; cb < Cb; ++cb)
        for (int64_t hw = 0; hw < H * W; ++hw)
          for (int64_t c = 0; c < 16; ++c) {
            const float v = blocked[size_t(((n * Cb + cb) * H * W + hw) * 16 + c)];
            if (cb * 16 + c >= C) CHECK(v == 0.0f);
            CHECK(v != kSentinel);
          }
    std::vector<float> back(src.size(), kSentinel);
    hwyconv::reorder_nChw16c_to_nhwc(blocked, back, N, C, H, W);
    CHECK(back == src);
  }
}

TEST_CASE("nchw and nhwc agree through nChw16c") {
  std::mt19937 rng(3);
  const int64_t N = 2, C = 19, H = 3, W = 4;
  const std::vector<float> nchw = random_floats(N * C * H * W, rng);
  std::vector<float> nhwc(nchw.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w)
          nhwc[size_t(((n * H + h) * W + w) * C + c)] = nchw[size_t(((n * C + c) * H + h) * W + w)];
  std::vector<float> b1(size_t(hwyconv::act_blocked_size(N, C, H, W)), kSentinel);
  std::vector<float> b2(b1.size(), kSentinel);
  hwyconv::reorder_nchw_to_nChw16c(nchw, b1, N, C, H, W);
  hwyconv::reorder_nhwc_to_nChw16c(nhwc, b2, N, C, H, W);
  CHECK(b1 == b2);
  std::vector<float> nhwc_back(nhwc.size(), kSentinel);
  hwyconv::reorder_nChw16c_to_nhwc(b1, nhwc_back, N, C, H, W);
  CHECK(nhwc_back == nhwc);
}

TEST_CASE("nChw16c index formula, known elements") {
  // N=2, C=20 (Cb=2), H=3, W=5; element (n=1, c=18, h=2, w=3) sits at
  // ((((1*2 + 18/16)*3 + 2)*5 + 3)*16 + 18%16 = 930.
  const int64_t N = 2, C = 20, H = 3, W = 5;
  std::vector<float> blocked(size_t(hwyconv::act_blocked_size(N, C, H, W)), kSentinel);
  SUBCASE("from nchw") {
    // src[i] = i, so the value is the nchw offset ((1*20 + 18)*3 + 2)*5 + 3 = 583.
    const std::vector<float> src = iota_floats(N * C * H * W, 0.0f);
    hwyconv::reorder_nchw_to_nChw16c(src, blocked, N, C, H, W);
    CHECK(blocked[930] == 583.0f);
    // (n=0, c=1, h=0, w=1): blocked offset (0*5 + 1)*16 + 1 = 17, nchw offset 1*15 + 1 = 16.
    CHECK(blocked[17] == 16.0f);
    // A wrong channel index: (n=0, c=0, h=0, w=0) is 0 and (c=15) at blocked offset 15 is nchw 225.
    CHECK(blocked[15] == 225.0f);
  }
  SUBCASE("from nhwc") {
    // nhwc offset ((1*3 + 2)*5 + 3)*20 + 18 = 578.
    const std::vector<float> src = iota_floats(N * H * W * C, 0.0f);
    hwyconv::reorder_nhwc_to_nChw16c(src, blocked, N, C, H, W);
    CHECK(blocked[930] == 578.0f);
    CHECK(blocked[17] == 21.0f);  // (0, c=1, 0, w=1): nhwc offset 1*20 + 1
  }
  SUBCASE("to nchw and nhwc") {
    const std::vector<float> src = iota_floats(blocked.size(), 0.0f);
    std::vector<float> nchw(size_t(N * C * H * W), kSentinel), nhwc(nchw.size(), kSentinel);
    hwyconv::reorder_nChw16c_to_nchw(src, nchw, N, C, H, W);
    hwyconv::reorder_nChw16c_to_nhwc(src, nhwc, N, C, H, W);
    CHECK(nchw[583] == 930.0f);
    CHECK(nhwc[578] == 930.0f);
  }
}

// ------------------------------------------------------------------------------------------------
// Weight reorders

TEST_CASE("oihw <-> OIhw16i16o round trip is exact and padding is zero") {
  std::mt19937 rng(4);
  for (int64_t K : kOddChannels)
    for (int64_t C : kOddChannels) {
      CAPTURE(K);
      CAPTURE(C);
      const int64_t R = 3, S = 2;
      const std::vector<float> src = random_floats(K * C * R * S, rng);
      std::vector<float> blocked(size_t(hwyconv::wei_blocked_size(K, C, R, S)), kSentinel);
      hwyconv::reorder_oihw_to_OIhw16i16o(src, blocked, K, C, R, S);
      const int64_t Kb = hwyconv::div_up(K, 16), Cb = hwyconv::div_up(C, 16);
      int64_t bad_pad = 0, sentinels = 0;
      for (int64_t kb = 0; kb < Kb; ++kb)
        for (int64_t cb = 0; cb < Cb; ++cb)
          for (int64_t rs = 0; rs < R * S; ++rs)
            for (int64_t i = 0; i < 16; ++i)
              for (int64_t o = 0; o < 16; ++o) {
                const float v = blocked[size_t((((kb * Cb + cb) * R * S + rs) * 16 + i) * 16 + o)];
                if ((kb * 16 + o >= K || cb * 16 + i >= C) && v != 0.0f) ++bad_pad;
                if (v == kSentinel) ++sentinels;
              }
      CHECK(bad_pad == 0);
      CHECK(sentinels == 0);
      std::vector<float> back(src.size(), kSentinel);
      hwyconv::reorder_OIhw16i16o_to_oihw(blocked, back, K, C, R, S);
      CHECK(back == src);
    }
}

TEST_CASE("OIhw16i16o index formula, known elements") {
  // K=20 (Kb=2), C=18 (Cb=2), R=3, S=2, src[i] = i (the oihw offset).
  const int64_t K = 20, C = 18, R = 3, S = 2;
  const std::vector<float> src = iota_floats(K * C * R * S, 0.0f);
  std::vector<float> blocked(size_t(hwyconv::wei_blocked_size(K, C, R, S)), kSentinel);
  hwyconv::reorder_oihw_to_OIhw16i16o(src, blocked, K, C, R, S);
  // (k=17, c=5, r=1, s=1): ((((1*2 + 0)*3 + 1)*2 + 1)*256 + 5*16 + 1 = 3921; oihw ((17*18+5)*3+1)*2+1 = 1869.
  CHECK(blocked[3921] == 1869.0f);
  // The 16o16i transposition would put it at 3840 + 1*16 + 5 = 3861 instead.
  CHECK(blocked[3861] != 1869.0f);
  // (k=3, c=17, r=2, s=0): (((0*2 + 1)*3 + 2)*2 + 0)*256 + 1*16 + 3 = 2579; oihw ((3*18+17)*3+2)*2 = 430.
  CHECK(blocked[2579] == 430.0f);
  // (k=0, c=1, r=0, s=0): offset 16 (i is the slower of the two inner indices); oihw 1*6 = 6.
  CHECK(blocked[16] == 6.0f);
  // (k=1, c=0, r=0, s=0): offset 1; oihw 18*6 = 108.
  CHECK(blocked[1] == 108.0f);

  std::vector<float> back(src.size(), kSentinel);
  const std::vector<float> numbered = iota_floats(blocked.size(), 0.0f);
  hwyconv::reorder_OIhw16i16o_to_oihw(numbered, back, K, C, R, S);
  CHECK(back[1869] == 3921.0f);
  CHECK(back[430] == 2579.0f);
}

// ------------------------------------------------------------------------------------------------
// Reorder errors

TEST_CASE("activation reorders reject bad dims and small spans without writing") {
  using Fn = void (*)(std::span<const float>, std::span<float>, int64_t, int64_t, int64_t, int64_t);
  struct Named {
    const char* name;
    Fn fn;
    bool to_blocked;
  };
  const Named fns[] = {{"nchw_to_nChw16c", hwyconv::reorder_nchw_to_nChw16c, true},
                       {"nChw16c_to_nchw", hwyconv::reorder_nChw16c_to_nchw, false},
                       {"nhwc_to_nChw16c", hwyconv::reorder_nhwc_to_nChw16c, true},
                       {"nChw16c_to_nhwc", hwyconv::reorder_nChw16c_to_nhwc, false}};
  const int64_t N = 2, C = 17, H = 3, W = 2;
  const int64_t plain = N * C * H * W, blocked = hwyconv::act_blocked_size(N, C, H, W);
  for (const Named& f : fns) {
    CAPTURE(f.name);
    const int64_t src_n = f.to_blocked ? plain : blocked, dst_n = f.to_blocked ? blocked : plain;
    const std::vector<float> src = iota_floats(src_n);
    std::vector<float> dst(size_t(dst_n), kSentinel);
    // Sanity: the right sizes work (and larger spans are fine).
    std::vector<float> big(size_t(dst_n + 7), kSentinel);
    f.fn(src, big, N, C, H, W);
    CHECK(big.back() == kSentinel);

    require_error_field([&] { f.fn(src, dst, 0, C, H, W); }, "N");
    require_error_field([&] { f.fn(src, dst, N, 0, H, W); }, "C");
    require_error_field([&] { f.fn(src, dst, N, C, -1, W); }, "H");
    require_error_field([&] { f.fn(src, dst, N, C, H, 0); }, "W");
    require_error_field([&] { f.fn(std::span<const float>(src).first(size_t(src_n - 1)), dst, N, C, H, W); },
                        "src");
    require_error_field([&] { f.fn(src, std::span<float>(dst).first(size_t(dst_n - 1)), N, C, H, W); },
                        "dst");
    require_error_field([&] { f.fn({}, dst, N, C, H, W); }, "src");
    // Overflowing element counts.
    const int64_t huge = int64_t{1} << 40;
    require_error_field([&] { f.fn(src, dst, huge, huge, H, W); }, f.to_blocked ? "src" : "dst");
    require_error_field([&] { f.fn(src, dst, N, std::numeric_limits<int64_t>::max(), H, W); },
                        f.to_blocked ? "src" : "dst");
    // Overlapping src and dst.
    std::vector<float> shared(size_t(plain + blocked), 0.0f);
    require_error_field([&] {
      f.fn(std::span<const float>(shared).first(size_t(src_n)),
           std::span<float>(shared).subspan(size_t(src_n) - 1, size_t(dst_n)), N, C, H, W);
    }, "dst");
    CHECK(all_equal(dst, kSentinel));
  }
}

TEST_CASE("weight reorders reject bad dims and small spans without writing") {
  using Fn = void (*)(std::span<const float>, std::span<float>, int64_t, int64_t, int64_t, int64_t);
  struct Named {
    const char* name;
    Fn fn;
    bool to_blocked;
  };
  const Named fns[] = {{"oihw_to_OIhw16i16o", hwyconv::reorder_oihw_to_OIhw16i16o, true},
                       {"OIhw16i16o_to_oihw", hwyconv::reorder_OIhw16i16o_to_oihw, false}};
  const int64_t K = 18, C = 3, R = 3, S = 1;
  const int64_t plain = K * C * R * S, blocked = hwyconv::wei_blocked_size(K, C, R, S);
  for (const Named& f : fns) {
    CAPTURE(f.name);
    const int64_t src_n = f.to_blocked ? plain : blocked, dst_n = f.to_blocked ? blocked : plain;
    const std::vector<float> src = iota_floats(src_n);
    std::vector<float> dst(size_t(dst_n), kSentinel);
    std::vector<float> big(size_t(dst_n + 5), kSentinel);
    f.fn(src, big, K, C, R, S);
    CHECK(big.back() == kSentinel);

    require_error_field([&] { f.fn(src, dst, 0, C, R, S); }, "K");
    require_error_field([&] { f.fn(src, dst, K, -3, R, S); }, "C");
    require_error_field([&] { f.fn(src, dst, K, C, 0, S); }, "R");
    require_error_field([&] { f.fn(src, dst, K, C, R, 0); }, "S");
    require_error_field([&] { f.fn(std::span<const float>(src).first(size_t(src_n - 1)), dst, K, C, R, S); },
                        "src");
    require_error_field([&] { f.fn(src, std::span<float>(dst).first(size_t(dst_n - 1)), K, C, R, S); },
                        "dst");
    const int64_t huge = int64_t{1} << 40;
    require_error_field([&] { f.fn(src, dst, K, C, huge, huge); }, f.to_blocked ? "src" : "dst");
    CHECK(all_equal(dst, kSentinel));
  }
}

// ------------------------------------------------------------------------------------------------
// Reference convolution

TEST_CASE("reference conv_fwd, hand-computed cases") {
  // x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,2],[3,4]].
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<float> w = {1, 2, 3, 4};
  SUBCASE("stride 1, no padding, with bias") {
    const ConvDesc d(1, 1, 1, 3, 3, 2, 2);
    REQUIRE(d.P() == 2);
    std::vector<double> y(4, -1.0);
    const std::vector<float> b = {0.5f};
    hwyconv::reference::conv_fwd(d, x, w, b, y);
    CHECK(y == std::vector<double>{37.5, 47.5, 67.5, 77.5});
    hwyconv::reference::conv_fwd(d, x, w, {}, y);
    CHECK(y == std::vector<double>{37, 47, 67, 77});
  }
  SUBCASE("stride 2, padding 1") {
    const ConvDesc d(1, 1, 1, 3, 3, 2, 2, 2, 1);
    REQUIRE(d.P() == 2);
    REQUIRE(d.Q() == 2);
    std::vector<double> y(4, -1.0);
    hwyconv::reference::conv_fwd(d, x, w, {}, y);
    // y00 = x00*w11; y01 = x01*w10 + x02*w11; y10 = x10*w01 + x20*w11; y11 = full window at (1,1).
    CHECK(y == std::vector<double>{4, 18, 36, 77});
  }
  SUBCASE("asymmetric padding: top 1, left 0") {
    const ConvDesc d = ConvDesc(1, 1, 1, 3, 3, 2, 2).with_pad(1, 0, 0, 0);
    REQUIRE(d.P() == 3);
    REQUIRE(d.Q() == 2);
    std::vector<double> y(6, -1.0);
    hwyconv::reference::conv_fwd(d, x, w, {}, y);
    // Row 0 sees only x row 0 through w row 1: 1*3+2*4, 2*3+3*4; rows 1, 2 are the unpadded outputs.
    CHECK(y == std::vector<double>{11, 18, 37, 47, 67, 77});
  }
  SUBCASE("dilation 2") {
    const ConvDesc d = ConvDesc(1, 1, 1, 3, 3, 2, 2).with_dilation(2, 2);
    REQUIRE(d.P() == 1);
    std::vector<double> y(1, -1.0);
    hwyconv::reference::conv_fwd(d, x, w, {}, y);
    CHECK(y[0] == 1 * 1 + 3 * 2 + 7 * 3 + 9 * 4);
  }
  SUBCASE("two channels, two filters, batch 2") {
    // Channel 1 is all ones; filter 0 weights channel 1 by [[1,1],[1,1]] (+4), filter 1 is
    // -w on channel 0 and 0 on channel 1. Image 1 is image 0 times 2.
    const ConvDesc d(2, 2, 2, 3, 3, 2, 2);
    std::vector<float> x2(36);
    for (int i = 0; i < 9; ++i) {
      x2[size_t(i)] = x[size_t(i)];
      x2[size_t(9 + i)] = 1.0f;
      x2[size_t(18 + i)] = 2 * x[size_t(i)];
      x2[size_t(27 + i)] = 2.0f;
    }
    const std::vector<float> w2 = {1, 2, 3, 4, 1, 1, 1, 1, -1, -2, -3, -4, 0, 0, 0, 0};
    const std::vector<float> b2 = {0.0f, 100.0f};
    std::vector<double> y(16, -1.0);
    hwyconv::reference::conv_fwd(d, x2, w2, b2, y);
    CHECK(y == std::vector<double>{41, 51, 71, 81, 63, 53, 33, 23,  //
                                   82, 102, 142, 162, 26, 6, -34, -54});
  }
}

TEST_CASE("reference backward passes are adjoints of conv_fwd") {
  std::mt19937 rng(5);
  const ConvDesc cases[] = {
      ConvDesc(2, 3, 5, 9, 8, 3, 3, 2, 1),
      ConvDesc(1, 4, 2, 11, 10, 3, 2).with_stride(2, 1).with_pad(2, 1, 3, 0).with_dilation(2, 2),
      ConvDesc(2, 2, 3, 7, 9, 2, 3).with_stride(2, 2).with_pad(1, 0, 1, 4).with_dilation(2, 2),
      ConvDesc(1, 17, 3, 6, 5, 1, 1).with_stride(2, 2),
      ConvDesc(3, 1, 1, 5, 5, 5, 5, 1, 2),
  };
  for (const ConvDesc& d : cases) {
    REQUIRE(d.check().ok());
    CAPTURE(d.N);
    CAPTURE(d.C);
    CAPTURE(d.K);
    CAPTURE(d.H);
    CAPTURE(d.W);
    const int64_t P = d.P(), Q = d.Q();
    const std::vector<float> x = random_floats(d.N * d.C * d.H * d.W, rng);
    const std::vector<float> w = random_floats(d.K * d.C * d.R * d.S, rng);
    const std::vector<float> g = random_floats(d.N * d.K * P * Q, rng);
    const std::vector<float> b = random_floats(d.K, rng);

    // Outputs start as garbage: every pass must overwrite (not accumulate into) its output.
    std::vector<double> y(g.size(), 3.0), dx(x.size(), 3.0), dw(w.size(), 3.0), db(size_t(d.K), 3.0),
        yb(g.size(), 3.0);
    hwyconv::reference::conv_fwd(d, x, w, {}, y);
    hwyconv::reference::conv_bwd_d(d, g, w, dx);
    hwyconv::reference::conv_bwd_w(d, x, g, dw, db);
    hwyconv::reference::conv_fwd(d, x, w, b, yb);

    const double fwd = dot(y, g), bwd_d = dot(dx, x), bwd_w = dot(dw, w);
    const double scale = std::max(1.0, std::abs(fwd));
    CHECK(std::abs(fwd - bwd_d) <= 1e-9 * scale);
    CHECK(std::abs(fwd - bwd_w) <= 1e-9 * scale);
    // Bias: <conv_fwd(x,w,b) - conv_fwd(x,w), g> = <b, dbias>.
    const double with_bias = dot(yb, g), bias_part = dot(db, b);
    CHECK(std::abs((with_bias - fwd) - bias_part) <= 1e-9 * std::max(1.0, std::abs(bias_part)));
    // dbias[k] is the plain sum of ddst over n, p, q.
    for (int64_t k = 0; k < d.K; ++k) {
      double s = 0.0;
      for (int64_t n = 0; n < d.N; ++n)
        for (int64_t pq = 0; pq < P * Q; ++pq) s += g[size_t((n * d.K + k) * P * Q + pq)];
      CHECK(db[size_t(k)] == doctest::Approx(s).epsilon(1e-12));
    }
  }
}

TEST_CASE("reference backward passes, finite differences") {
  // conv_fwd is linear, so a finite difference with a ~unit step is exact up to rounding:
  // d<y, g>/dx[i] = dsrc[i] and d<y, g>/dw[j] = dwei[j].
  std::mt19937 rng(6);
  const ConvDesc d = ConvDesc(1, 2, 2, 6, 7, 3, 2).with_stride(2, 2).with_pad(2, 1, 1, 0).with_dilation(2, 2);
  REQUIRE(d.check().ok());
  const std::vector<float> x = random_floats(d.N * d.C * d.H * d.W, rng);
  const std::vector<float> w = random_floats(d.K * d.C * d.R * d.S, rng);
  const std::vector<float> g = random_floats(d.N * d.K * d.P() * d.Q(), rng);
  std::vector<double> y(g.size()), dx(x.size()), dw(w.size());
  hwyconv::reference::conv_bwd_d(d, g, w, dx);
  hwyconv::reference::conv_bwd_w(d, x, g, dw, {});
  auto loss = [&](const std::vector<float>& xs, const std::vector<float>& ws) {
    hwyconv::reference::conv_fwd(d, xs, ws, {}, y);
    return dot(y, g);
  };
  const double base = loss(x, w);
  for (size_t i = 0; i < x.size(); ++i) {
    std::vector<float> xp = x;
    xp[i] += 1.0f;
    const double step = double(xp[i]) - double(x[i]);  // not exactly 1 after float rounding
    CHECK((loss(xp, w) - base) / step == doctest::Approx(dx[i]).epsilon(1e-9).scale(1.0));
  }
  for (size_t j = 0; j < w.size(); ++j) {
    std::vector<float> wp = w;
    wp[j] += 1.0f;
    const double step = double(wp[j]) - double(w[j]);
    CHECK((loss(x, wp) - base) / step == doctest::Approx(dw[j]).epsilon(1e-9).scale(1.0));
  }
}

TEST_CASE("reference loops reject bad descs and small spans without writing") {
  const ConvDesc d(2, 3, 4, 5, 5, 3, 3, 1, 1);
  const int64_t src_n = 2 * 3 * 25, wei_n = 4 * 3 * 9, dst_n = 2 * 4 * 25;
  const std::vector<float> x(size_t(src_n), 1.0f), w(size_t(wei_n), 1.0f), g(size_t(dst_n), 1.0f),
      b(4, 1.0f);
  using hwyconv::reference::conv_bwd_d;
  using hwyconv::reference::conv_bwd_w;
  using hwyconv::reference::conv_fwd;
  const double kS = -777.25;
  std::vector<double> y(size_t(dst_n), kS), dx(size_t(src_n), kS), dw(size_t(wei_n), kS), db(4, kS);
  auto untouched = [&](const std::vector<double>& v) {
    for (double e : v)
      if (e != kS) return false;
    return true;
  };
  auto cf = [](const std::vector<float>& v, int64_t drop) {
    return std::span<const float>(v).first(v.size() - size_t(drop));
  };
  auto cd = [](std::vector<double>& v, int64_t drop) {
    return std::span<double>(v).first(v.size() - size_t(drop));
  };

  SUBCASE("conv_fwd") {
    require_error_field([&] { conv_fwd(d, cf(x, 1), w, b, y); }, "src");
    require_error_field([&] { conv_fwd(d, x, cf(w, 1), b, y); }, "weights");
    require_error_field([&] { conv_fwd(d, x, w, cf(b, 1), y); }, "bias");
    require_error_field([&] { conv_fwd(d, x, w, b, cd(y, 1)); }, "dst");
    ConvDesc bad = d;
    bad.C = 0;
    require_error_field([&] { conv_fwd(bad, x, w, b, y); }, "C");
    require_error_field([&] { conv_fwd(d.with_pad(3, 1, 1, 1), x, w, b, y); }, "pad_t");
    CHECK(untouched(y));
  }
  SUBCASE("conv_bwd_d") {
    require_error_field([&] { conv_bwd_d(d, cf(g, 1), w, dx); }, "ddst");
    require_error_field([&] { conv_bwd_d(d, g, cf(w, 1), dx); }, "weights");
    require_error_field([&] { conv_bwd_d(d, g, w, cd(dx, 1)); }, "dsrc");
    require_error_field([&] { conv_bwd_d(d.with_stride(0, 1), g, w, dx); }, "stride_h");
    CHECK(untouched(dx));
  }
  SUBCASE("conv_bwd_w") {
    require_error_field([&] { conv_bwd_w(d, cf(x, 1), g, dw, db); }, "src");
    require_error_field([&] { conv_bwd_w(d, x, cf(g, 1), dw, db); }, "ddst");
    require_error_field([&] { conv_bwd_w(d, x, g, cd(dw, 1), db); }, "dweights");
    require_error_field([&] { conv_bwd_w(d, x, g, dw, cd(db, 1)); }, "dbias");
    require_error_field([&] { conv_bwd_w(d.with_dilation(1, 0), x, g, dw, db); }, "dil_w");
    CHECK(untouched(dw));
    CHECK(untouched(db));
  }
  SUBCASE("correct sizes work") {
    conv_fwd(d, x, w, b, y);
    conv_bwd_d(d, g, w, dx);
    conv_bwd_w(d, x, g, dw, db);
    // All-ones: the centre output sees 3*9 ones, plus bias 1.
    CHECK(y[size_t(2 * 5 + 2)] == 28.0);
    CHECK(db[0] == 50.0);
  }
}
