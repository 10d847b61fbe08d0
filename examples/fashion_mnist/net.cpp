// examples/fashion_mnist/net.cpp - the CNN of net.hpp on hwyconv. The only translation unit of the
// example that includes hwyconv (it compiles every microkernel for every Highway target).
//
// Data flow of one training step, all activations nChw16c (N x ceil(C/16) x H x W x 16):
//   x --conv1 fwd+ReLU--> a1 --pool--> p1 --conv2 fwd+ReLU--> a2 --pool--> p2 --fc fwd--> z (logits)
//   dz = softmax(z) - onehot (per image, / N)
//   fc:    bwd_w(p2, dz) -> dW3, db3;             bwd_d(dz)  -> dp2;   pool bwd -> da2
//   conv2: bwd_w(p1, da2, mask a2) -> dW2, db2;   bwd_d(da2, mask a2) -> dp1;   pool bwd -> da1
//   conv1: bwd_w(x, da1, mask a1) -> dW1, db1     (no bwd_d: nothing below the input)
// The ReLU backward is fused into hwyconv's passes via relu_mask = the layer's forward output.
#include "net.hpp"
#include "ops.hpp"

#include <hwyconv/hwyconv.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>

namespace fmnist {
namespace {

using hwyconv::act_blocked_size;
using hwyconv::wei_blocked_size;
constexpr int64_t kB = hwyconv::kBlock;
constexpr int64_t kPixels = int64_t{Net::kSide} * Net::kSide;

/// Input normalisation: mean and standard deviation of Fashion-MNIST's training pixels / 255.
constexpr float kMean = 0.2860f, kStd = 0.3530f;

/// One convolution layer: C -> K channels over H x W, R x R kernel, stride 1, padding `pad`.
struct LayerSpec {
  const char* name;
  int64_t C, K, H, W, R, pad;
};
constexpr std::array<LayerSpec, Net::kLayers> kSpec = {{
    {"conv1", 1, 32, 28, 28, 3, 1},
    {"conv2", 32, 64, 14, 14, 3, 1},
    {"fc", 64, Net::kClasses, 7, 7, 7, 0},  // 3136 -> 10 as a 7x7 convolution, 1x1 output
}};

/// The hwyconv descriptor of layer `l` for a batch of n images.
hwyconv::ConvDesc desc_of(const LayerSpec& l, int64_t n) {
  return hwyconv::ConvDesc(n, l.C, l.K, l.H, l.W, l.R, l.R, 1, l.pad);
}

/// Runs f() and adds its wall time, in seconds, to `acc`.
template <class F>
void timed(double& acc, F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  acc += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Trainable tensors of one layer: weights w (OIhw16i16o) with gradient dw and momentum vw, bias b
/// (K floats) with db and vb, and w_bwd_d, the IOhw16o16i copy of w that backward data reads.
struct Layer {
  LayerSpec spec;
  std::vector<float> w, dw, vw, b, db, vb, w_bwd_d;
};

/// Runs fn(lo, hi) over [0, n) split into `parts` contiguous ranges on hwyconv's global pool.
template <class F>
void parallel_ranges(int64_t n, int parts, F&& fn) {
  hwyconv::ThreadPool::global().run(parts, [&](int64_t t) { fn(n * t / parts, n * (t + 1) / parts); });
}

}  // namespace

/// Working state for one batch size n: one hwyconv::Conv per layer (N is part of a convolution's
/// shape) and the activations and their gradients, all nChw16c.
struct Stage {
  int64_t n = 0;
  std::array<std::unique_ptr<hwyconv::Conv>, Net::kLayers> conv;
  std::vector<float> x, a1, p1, a2, p2, z;   // input, conv1+ReLU, pool, conv2+ReLU, pool, logits
  std::vector<uint8_t> arg1, arg2;           // max-pool positions
  std::vector<float> dz, dp2, da2, dp1, da1;  // gradients, allocated by the first backward pass
};

struct Net::Impl {
  NetOptions opt;
  std::array<Layer, kLayers> layers;
  std::map<int64_t, std::unique_ptr<Stage>> stages;
  PhaseTimes times;
  int pool_parts = 1;  // parts the plain loops are split into

  /// Weights drawn in oihw from a seeded normal distribution: He (std sqrt(2 / fan_in)) for the
  /// layers followed by a ReLU, LeCun (std sqrt(1 / fan_in)) for the output layer; zero biases.
  explicit Impl(NetOptions o) : opt(o) {
    std::mt19937 rng(opt.seed);
    for (int i = 0; i < kLayers; ++i) {
      const LayerSpec& s = kSpec[size_t(i)];
      Layer& l = layers[size_t(i)];
      l.spec = s;
      const float gain = i + 1 < kLayers ? 2.0f : 1.0f;
      std::normal_distribution<float> normal(0.0f, std::sqrt(gain / float(s.C * s.R * s.R)));
      std::vector<float> oihw(size_t(s.K * s.C * s.R * s.R));
      for (float& v : oihw) v = normal(rng);
      const size_t wsize = size_t(wei_blocked_size(s.K, s.C, s.R, s.R));
      l.w.assign(wsize, 0.0f);
      l.dw.assign(wsize, 0.0f);
      l.vw.assign(wsize, 0.0f);
      l.w_bwd_d.assign(wsize, 0.0f);
      l.b.assign(size_t(s.K), 0.0f);
      l.db.assign(size_t(s.K), 0.0f);
      l.vb.assign(size_t(s.K), 0.0f);
      hwyconv::reorder_oihw_to_OIhw16i16o(oihw, l.w, s.K, s.C, s.R, s.R);
    }
    pool_parts = opt.threads > 0 ? opt.threads : hwyconv::ThreadPool::global().size();
  }

  /// The state for batch size n, made on first use.
  Stage& stage(int64_t n) {
    auto& slot = stages[n];
    if (!slot) {
      slot = std::make_unique<Stage>();
      Stage& s = *slot;
      s.n = n;
      // The images go in as they are, one channel per pixel (nhwc): the first layer (C = 1, folded
      // channels) reads them directly.
      for (int i = 0; i < kLayers; ++i)
        s.conv[size_t(i)] = std::make_unique<hwyconv::Conv>(
            desc_of(kSpec[size_t(i)], n),
            hwyconv::Options{.threads = opt.threads,
                             .src_layout = i == 0 ? hwyconv::SrcLayout::nhwc : hwyconv::SrcLayout::nChw16c});
      s.x.resize(size_t(s.conv[0]->src_size()));
      s.a1.resize(size_t(s.conv[0]->dst_size()));
      s.p1.resize(size_t(act_blocked_size(n, 32, 14, 14)));
      s.a2.resize(size_t(s.conv[1]->dst_size()));
      s.p2.resize(size_t(act_blocked_size(n, 64, 7, 7)));
      s.z.resize(size_t(s.conv[2]->dst_size()));
      s.arg1.resize(s.p1.size());
      s.arg2.resize(s.p2.size());
    }
    return *slot;
  }

  /// Normalised pixels into the nhwc input (one channel).
  void load_input(Stage& s, const uint8_t* pixels) {
    const int64_t n = s.n;
    const float scale = 1.0f / (255.0f * kStd), shift = -kMean / kStd;
    for (int64_t i = 0; i < n * kPixels; ++i) s.x[size_t(i)] = float(pixels[i]) * scale + shift;
  }

  /// Forward pass of s.n images; logits in s.z ([n][16], classes 0..9).
  void forward(Stage& s, const uint8_t* pixels) {
    const int64_t n = s.n;
    Layer &l1 = layers[0], &l2 = layers[1], &l3 = layers[2];
    timed(times.rest, [&] { load_input(s, pixels); });
    timed(times.fprop, [&] { s.conv[0]->forward(s.x, l1.w, l1.b, s.a1, {.relu = true}); });
    timed(times.rest, [&] {
      parallel_ranges(n * 2, pool_parts, [&](int64_t lo, int64_t hi) {
        max_pool_2x2_fwd(s.a1.data() + lo * 28 * 28 * kB, s.p1.data() + lo * 14 * 14 * kB, s.arg1.data() + lo * 14 * 14 * kB,
                     hi - lo, 28, 28);
      });
    });
    timed(times.fprop, [&] { s.conv[1]->forward(s.p1, l2.w, l2.b, s.a2, {.relu = true}); });
    timed(times.rest, [&] {
      parallel_ranges(n * 4, pool_parts, [&](int64_t lo, int64_t hi) {
        max_pool_2x2_fwd(s.a2.data() + lo * 14 * 14 * kB, s.p2.data() + lo * 7 * 7 * kB, s.arg2.data() + lo * 7 * 7 * kB,
                     hi - lo, 14, 14);
      });
    });
    timed(times.fprop, [&] { s.conv[2]->forward(s.p2, l3.w, l3.b, s.z); });
  }

  /// Softmax cross-entropy of the logits against `labels`. With `grad`, writes s.dz = (softmax -
  /// onehot) / n, the gradient of the mean loss (padded channels 0). `pred` receives the argmax.
  BatchStats softmax_loss(Stage& s, const uint8_t* labels, bool grad, uint8_t* pred) {
    BatchStats st;
    timed(times.rest, [&] {
      if (grad) s.dz.assign(s.z.size(), 0.0f);
      for (int64_t i = 0; i < s.n; ++i) {
        const float* z = s.z.data() + i * kB;
        int best = 0;
        for (int k = 1; k < kClasses; ++k)
          if (z[k] > z[best]) best = k;
        double sum = 0;
        for (int k = 0; k < kClasses; ++k) sum += std::exp(double(z[k] - z[best]));
        st.loss_sum += std::log(sum) - double(z[labels[i]] - z[best]);
        st.correct += best == labels[i];
        if (pred) pred[i] = uint8_t(best);
        if (grad)
          for (int k = 0; k < kClasses; ++k) {
            const double p = std::exp(double(z[k] - z[best])) / sum;
            s.dz[size_t(i * kB + k)] = float((p - (k == labels[i] ? 1.0 : 0.0)) / double(s.n));
          }
      }
      st.count = s.n;
    });
    return st;
  }

  /// Backward pass from s.dz: every layer's dweights and dbias.
  void backward(Stage& s) {
    const int64_t n = s.n;
    Layer &l1 = layers[0], &l2 = layers[1], &l3 = layers[2];
    if (s.da1.empty()) {
      s.dp2.resize(s.p2.size());
      s.da2.resize(s.a2.size());
      s.dp1.resize(s.p1.size());
      s.da1.resize(s.a1.size());
    }
    timed(times.bwd_w, [&] { s.conv[2]->backward_weights(s.p2, s.dz, l3.dw, l3.db); });
    timed(times.bwd_d, [&] {
      s.conv[2]->reorder_weights_bwd_d(l3.w, l3.w_bwd_d);
      s.conv[2]->backward_data(s.dz, l3.w_bwd_d, s.dp2);
    });
    timed(times.rest, [&] {
      parallel_ranges(n * 4, pool_parts, [&](int64_t lo, int64_t hi) {
        max_pool_2x2_bwd(s.dp2.data() + lo * 7 * 7 * kB, s.arg2.data() + lo * 7 * 7 * kB, s.da2.data() + lo * 14 * 14 * kB,
                     hi - lo, 14, 14);
      });
    });
    timed(times.bwd_w, [&] { s.conv[1]->backward_weights(s.p1, s.da2, l2.dw, l2.db, {.relu_mask = s.a2}); });
    timed(times.bwd_d, [&] {
      s.conv[1]->reorder_weights_bwd_d(l2.w, l2.w_bwd_d);
      s.conv[1]->backward_data(s.da2, l2.w_bwd_d, s.dp1, {.relu_mask = s.a2});
    });
    timed(times.rest, [&] {
      parallel_ranges(n * 2, pool_parts, [&](int64_t lo, int64_t hi) {
        max_pool_2x2_bwd(s.dp1.data() + lo * 14 * 14 * kB, s.arg1.data() + lo * 14 * 14 * kB, s.da1.data() + lo * 28 * 28 * kB,
                     hi - lo, 28, 28);
      });
    });
    timed(times.bwd_w, [&] { s.conv[0]->backward_weights(s.x, s.da1, l1.dw, l1.db, {.relu_mask = s.a1}); });
  }
};

Net::Net(NetOptions opt) : impl_(std::make_unique<Impl>(opt)) {}
Net::~Net() = default;

BatchStats Net::compute_gradients(const uint8_t* pixels, const uint8_t* labels, int64_t n) {
  Stage& s = impl_->stage(n);
  impl_->forward(s, pixels);
  const BatchStats st = impl_->softmax_loss(s, labels, true, nullptr);
  impl_->backward(s);
  return st;
}

void Net::apply_gradients(float lr, float momentum) {
  timed(impl_->times.rest, [&] {
    auto step = [&](std::vector<float>& w, std::vector<float>& v, const std::vector<float>& g) {
      for (size_t i = 0; i < w.size(); ++i) {
        v[i] = momentum * v[i] - lr * g[i];
        w[i] += v[i];
      }
    };
    for (Layer& l : impl_->layers) {
      step(l.w, l.vw, l.dw);  // padded slots: gradient 0, so they stay 0
      step(l.b, l.vb, l.db);
    }
  });
}

BatchStats Net::train_step(const uint8_t* pixels, const uint8_t* labels, int64_t n, float lr, float momentum) {
  const BatchStats st = compute_gradients(pixels, labels, n);
  apply_gradients(lr, momentum);
  return st;
}

BatchStats Net::evaluate(const uint8_t* pixels, const uint8_t* labels, int64_t n, int64_t batch,
                         std::vector<uint8_t>* predictions) {
  BatchStats total;
  if (predictions) predictions->assign(size_t(n), 0);
  for (int64_t i = 0; i < n; i += batch) {
    const int64_t m = std::min(batch, n - i);
    Stage& s = impl_->stage(m);
    impl_->forward(s, pixels + i * kPixels);
    total += impl_->softmax_loss(s, labels + i, false, predictions ? predictions->data() + i : nullptr);
  }
  return total;
}

std::vector<ParamView> Net::parameters() {
  std::vector<ParamView> out;
  for (Layer& l : impl_->layers)
    out.push_back({l.spec.name, l.spec.K, l.spec.C, l.spec.R, l.spec.R, l.w, l.b, l.dw, l.db});
  return out;
}

const PhaseTimes& Net::times() const { return impl_->times; }
void Net::reset_times() { impl_->times = {}; }
const char* Net::target() { return hwyconv::Conv::target(); }

// Weights file, all little-endian:
//   8 bytes  magic "HWCFMNW1"
//   u32      version (1)
//   u32      number of layers (3)
//   per layer: u32 K, C, R, S; K*C*R*S f32 weights in plain oihw order; K f32 biases
//   u64      FNV-1a hash of every byte before it
namespace {

constexpr char kMagic[8] = {'H', 'W', 'C', 'F', 'M', 'N', 'W', '1'};
constexpr uint32_t kVersion = 1;

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(v >> (8 * i)));
}
void put_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(v >> (8 * i)));
}
uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
uint64_t get_u64(const uint8_t* p) { return uint64_t(get_u32(p)) | (uint64_t(get_u32(p + 4)) << 32); }

/// 64-bit FNV-1a: detects a damaged or cut file.
uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
void write_atomically(const std::string& path, const std::vector<uint8_t>& bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw ModelFileError(path + ": cannot create " + tmp + " (" + std::strerror(errno) + ")");
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = std::fflush(f) == 0 && ok;
  ok = ::fsync(::fileno(f)) == 0 && ok;
  ok = std::fclose(f) == 0 && ok;
  std::error_code ec;
  if (ok) std::filesystem::rename(tmp, path, ec);
  if (!ok || ec) {
    std::filesystem::remove(tmp, ec);
    throw ModelFileError(path + ": writing the weights failed");
  }
}

}  // namespace

void Net::save(const std::string& path) const {
  std::vector<uint8_t> out(std::begin(kMagic), std::end(kMagic));
  put_u32(out, kVersion);
  put_u32(out, kLayers);
  for (const Layer& l : impl_->layers) {
    const LayerSpec& s = l.spec;
    for (int64_t d : {s.K, s.C, s.R, s.R}) put_u32(out, uint32_t(d));
    std::vector<float> oihw(size_t(s.K * s.C * s.R * s.R));
    hwyconv::reorder_OIhw16i16o_to_oihw(l.w, oihw, s.K, s.C, s.R, s.R);
    for (float v : oihw) put_u32(out, std::bit_cast<uint32_t>(v));
    for (float v : l.b) put_u32(out, std::bit_cast<uint32_t>(v));
  }
  put_u64(out, fnv1a(out.data(), out.size()));
  write_atomically(path, out);
}

void Net::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelFileError(path + ": cannot open the weights file");
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto fail = [&](const std::string& why) { throw ModelFileError(path + ": " + why); };
  if (bytes.size() < 16 || std::memcmp(bytes.data(), kMagic, 8) != 0)
    fail("not a fashion_mnist weights file (wrong magic)");
  if (get_u32(bytes.data() + 8) != kVersion) fail("unsupported version " + std::to_string(get_u32(bytes.data() + 8)));
  if (get_u32(bytes.data() + 12) != uint32_t(kLayers))
    fail(std::to_string(get_u32(bytes.data() + 12)) + " layers, the network has " + std::to_string(kLayers));
  size_t pos = 16;
  std::array<std::vector<float>, kLayers> w, b;
  for (int i = 0; i < kLayers; ++i) {
    const LayerSpec& s = kSpec[size_t(i)];
    if (bytes.size() < pos + 16) fail("truncated");
    const int64_t dims[4] = {get_u32(&bytes[pos]), get_u32(&bytes[pos + 4]), get_u32(&bytes[pos + 8]),
                             get_u32(&bytes[pos + 12])};
    if (dims[0] != s.K || dims[1] != s.C || dims[2] != s.R || dims[3] != s.R)
      fail(std::string("layer ") + s.name + " is " + std::to_string(dims[0]) + "x" + std::to_string(dims[1]) + "x" +
           std::to_string(dims[2]) + "x" + std::to_string(dims[3]) + ", the network's is " + std::to_string(s.K) + "x" +
           std::to_string(s.C) + "x" + std::to_string(s.R) + "x" + std::to_string(s.R));
    pos += 16;
    const size_t nw = size_t(s.K * s.C * s.R * s.R), nb = size_t(s.K);
    if (bytes.size() < pos + 4 * (nw + nb)) fail("truncated");
    for (size_t j = 0; j < nw; ++j, pos += 4) w[size_t(i)].push_back(std::bit_cast<float>(get_u32(&bytes[pos])));
    for (size_t j = 0; j < nb; ++j, pos += 4) b[size_t(i)].push_back(std::bit_cast<float>(get_u32(&bytes[pos])));
  }
  if (bytes.size() != pos + 8) fail(bytes.size() < pos + 8 ? "truncated" : "unexpected bytes after the weights");
  if (get_u64(&bytes[pos]) != fnv1a(bytes.data(), pos)) fail("checksum mismatch (damaged file)");
  for (int i = 0; i < kLayers; ++i) {
    Layer& l = impl_->layers[size_t(i)];
    const LayerSpec& s = l.spec;
    hwyconv::reorder_oihw_to_OIhw16i16o(w[size_t(i)], l.w, s.K, s.C, s.R, s.R);
    l.b = b[size_t(i)];
    std::fill(l.vw.begin(), l.vw.end(), 0.0f);
    std::fill(l.vb.begin(), l.vb.end(), 0.0f);
  }
}

}  // namespace fmnist
