// Tests of examples/fashion_mnist: the IDX reader on files written here (gzipped with zlib: good,
// truncated, wrong magic, damaged stream), the max pooling, a smoke training run (synthetic images,
// and the real Fashion-MNIST when installed), a finite-difference check of the network's gradients, the weights
// file round trip, and the learning-curve writers. Its own executable (links the example's library).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "curve.hpp"
#include "idx.hpp"
#include "net.hpp"
#include "ops.hpp"

namespace fs = std::filesystem;

namespace {

/// A fresh folder under the system's temporary folder, removed with its content at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("hwyconv_fmnist_test_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void put_be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}

/// IDX bytes: magic 0x0800 | dims.size(), the sizes, then `data`.
std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> v;
  put_be32(v, 0x0800u | uint32_t(dims.size()));
  for (uint32_t d : dims) put_be32(v, d);
  v.insert(v.end(), data.begin(), data.end());
  return v;
}

/// Writes `bytes` gzip-compressed with zlib's gz* interface.
void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

void write_raw(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

/// Calls f(), which must throw E; returns what().
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("no exception");
  return {};
}

std::vector<uint8_t> iota_bytes(size_t n, uint8_t start = 0) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(start + i);
  return v;
}

/// A synthetic 10-class set of 28x28 images: class k is a bright bar (horizontal for k < 5, else
/// vertical) at a position given by k, with noise. Easy to learn, so a few steps show progress.
fmnist::Dataset synthetic(int64_t count, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> noise(0, 60), cls(0, 9), jitter(-1, 1);
  fmnist::Dataset ds;
  ds.images.count = count;
  ds.images.rows = ds.images.cols = 28;
  ds.images.pixels.resize(size_t(count * 784));
  ds.labels.resize(size_t(count));
  for (int64_t i = 0; i < count; ++i) {
    const int k = cls(g);
    ds.labels[size_t(i)] = uint8_t(k);
    uint8_t* im = ds.images.pixels.data() + i * 784;
    for (int p = 0; p < 784; ++p) im[p] = uint8_t(noise(g));
    const int pos = 3 + 5 * (k % 5) + jitter(g);
    for (int t = 0; t < 28; ++t)
      for (int w = 0; w < 2; ++w) {
        const int y = k < 5 ? pos + w : t, x = k < 5 ? t : pos + w;
        im[y * 28 + x] = uint8_t(200 + noise(g) / 2);
      }
  }
  return ds;
}

/// Trains `epochs` passes over `ds` in order, in batches of `batch`.
void train(fmnist::Net& net, const fmnist::Dataset& ds, int epochs, int batch, float lr) {
  for (int e = 0; e < epochs; ++e)
    for (int64_t i = 0; i < ds.size(); i += batch) {
      const int64_t m = std::min<int64_t>(batch, ds.size() - i);
      net.train_step(ds.images.pixels.data() + i * 784, ds.labels.data() + i, m, lr, 0.9f);
    }
}

fmnist::BatchStats eval(fmnist::Net& net, const fmnist::Dataset& ds, std::vector<uint8_t>* pred = nullptr) {
  return net.evaluate(ds.images.pixels.data(), ds.labels.data(), ds.size(), 100, pred);
}

}  // namespace

TEST_CASE("idx: gzipped and plain image and label files read back exactly") {
  TempDir dir;
  const std::vector<uint8_t> pixels = iota_bytes(3 * 4 * 5, 7), labels = {2, 0, 9};
  write_gz(dir.file("train-images-idx3-ubyte.gz"), idx_bytes({3, 4, 5}, pixels));
  write_gz(dir.file("train-labels-idx1-ubyte.gz"), idx_bytes({3}, labels));
  const fmnist::IdxImages im = fmnist::read_idx_images(dir.file("train-images-idx3-ubyte.gz"));
  CHECK(im.count == 3);
  CHECK(im.rows == 4);
  CHECK(im.cols == 5);
  CHECK(im.pixels == pixels);
  CHECK(fmnist::read_idx_labels(dir.file("train-labels-idx1-ubyte.gz")) == labels);

  const fmnist::Dataset ds = fmnist::load_split(dir.path, "train", 10, 4, 5);
  CHECK(ds.size() == 3);
  CHECK(ds.labels == labels);
  CHECK(ds.images.pixels == pixels);

  // Unpacked files (as some MNIST copies come) are found and read the same way.
  write_raw(dir.file("t10k-images-idx3-ubyte"), idx_bytes({3, 4, 5}, pixels));
  write_raw(dir.file("t10k-labels-idx1-ubyte"), idx_bytes({3}, labels));
  const fmnist::Dataset plain = fmnist::load_split(dir.path, "t10k", 10, 4, 5);
  CHECK(plain.images.pixels == pixels);
  CHECK(plain.labels == labels);
}

TEST_CASE("idx: truncated data, wrong magic, damaged gzip and trailing bytes are errors naming the file") {
  TempDir dir;
  const std::string path = dir.file("images.gz");
  SUBCASE("data shorter than the header announces") {
    write_gz(path, idx_bytes({3, 4, 5}, iota_bytes(2 * 4 * 5)));
    const std::string msg = error_of<fmnist::IdxError>([&] { fmnist::read_idx_images(path); });
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("truncated") != std::string::npos);
  }
  SUBCASE("header cut short") {
    write_gz(path, {0, 0, 8, 3, 0, 0});
    const std::string msg = error_of<fmnist::IdxError>([&] { fmnist::read_idx_images(path); });
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("truncated") != std::string::npos);
  }
  SUBCASE("wrong magic: a label file read as images, and garbage") {
    write_gz(path, idx_bytes({3}, {1, 2, 3}));
    std::string msg = error_of<fmnist::IdxError>([&] { fmnist::read_idx_images(path); });
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("wrong magic 0x00000801") != std::string::npos);
    write_gz(path, {'P', 'K', 3, 4, 0, 0, 0, 0});
    msg = error_of<fmnist::IdxError>([&] { fmnist::read_idx_labels(path); });
    CHECK(msg.find("wrong magic") != std::string::npos);
  }
  SUBCASE("gzip stream cut in the middle") {
    std::mt19937 g(1);
    std::vector<uint8_t> noisy(5000);
    for (uint8_t& b : noisy) b = uint8_t(g());  // incompressible, so the cut lands in the data
    write_gz(path, idx_bytes({5000}, noisy));
    const auto full = fs::file_size(path);
    fs::resize_file(path, full / 2);
    const std::string msg = error_of<fmnist::IdxError>([&] { fmnist::read_idx_labels(path); });
    CHECK(msg.find(path) != std::string::npos);
  }
  SUBCASE("gzip trailer missing (the checksum is never verified)") {
    write_gz(path, idx_bytes({3}, {1, 2, 3}));
    fs::resize_file(path, fs::file_size(path) - 4);
    const std::string msg = error_of<fmnist::IdxError>([&] { fmnist::read_idx_labels(path); });
    CHECK(msg.find(path) != std::string::npos);
  }
  SUBCASE("bytes after the announced data") {
    write_gz(path, idx_bytes({3}, {1, 2, 3, 4}));
    const std::string msg = error_of<fmnist::IdxError>([&] { fmnist::read_idx_labels(path); });
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("unexpected") != std::string::npos);
  }
  SUBCASE("missing file") {
    const std::string msg = error_of<fmnist::IdxError>([&] { fmnist::read_idx_labels(dir.file("nope.gz")); });
    CHECK(msg.find("nope.gz") != std::string::npos);
  }
}

TEST_CASE("idx: load_split names the Debian package for a missing folder and checks the pairing") {
  const std::string msg =
      error_of<fmnist::IdxError>([] { fmnist::load_split("/nonexistent/hwyconv-fashion-mnist", "train"); });
  CHECK(msg.find("/nonexistent/hwyconv-fashion-mnist") != std::string::npos);
  CHECK(msg.find("apt-get install dataset-fashion-mnist") != std::string::npos);

  TempDir dir;
  write_gz(dir.file("train-images-idx3-ubyte.gz"), idx_bytes({2, 28, 28}, std::vector<uint8_t>(2 * 784, 1)));
  SUBCASE("label count differs") {
    write_gz(dir.file("train-labels-idx1-ubyte.gz"), idx_bytes({3}, {1, 2, 3}));
    CHECK(error_of<fmnist::IdxError>([&] { fmnist::load_split(dir.path, "train"); }).find("3 labels") != std::string::npos);
  }
  SUBCASE("label out of range") {
    write_gz(dir.file("train-labels-idx1-ubyte.gz"), idx_bytes({2}, {1, 10}));
    CHECK(error_of<fmnist::IdxError>([&] { fmnist::load_split(dir.path, "train"); }).find("label 10") != std::string::npos);
  }
  SUBCASE("labels missing") {
    CHECK(error_of<fmnist::IdxError>([&] { fmnist::load_split(dir.path, "train"); }).find("train-labels-idx1-ubyte.gz") !=
          std::string::npos);
  }
}

TEST_CASE("ops: 2x2 max pooling takes the first maximum of each window and routes the gradient there") {
  constexpr int64_t planes = 2, H = 4, W = 6, B = 16;
  std::mt19937 g(4);
  std::uniform_int_distribution<int> small(-3, 3);  // few distinct values: many ties
  std::vector<float> in(size_t(planes * H * W * B));
  for (float& v : in) v = float(small(g));
  std::vector<float> out(in.size() / 4), dout(out.size()), din(in.size(), std::numeric_limits<float>::quiet_NaN());
  std::vector<uint8_t> arg(out.size(), 99);
  for (size_t i = 0; i < dout.size(); ++i) dout[i] = float(i + 1);
  fmnist::max_pool_2x2_fwd(in.data(), out.data(), arg.data(), planes, H, W);
  fmnist::max_pool_2x2_bwd(dout.data(), arg.data(), din.data(), planes, H, W);
  auto at = [&](int64_t p, int64_t y, int64_t x, int64_t c) { return size_t(((p * H + y) * W + x) * B + c); };
  int64_t routed = 0;
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t y = 0; y < H / 2; ++y)
      for (int64_t x = 0; x < W / 2; ++x)
        for (int64_t c = 0; c < B; ++c) {
          const size_t o = size_t(((p * (H / 2) + y) * (W / 2) + x) * B + c);
          int first = 0;
          float m = in[at(p, 2 * y, 2 * x, c)];
          for (int k = 1; k < 4; ++k)
            if (in[at(p, 2 * y + k / 2, 2 * x + k % 2, c)] > m) {
              m = in[at(p, 2 * y + k / 2, 2 * x + k % 2, c)];
              first = k;
            }
          CHECK(out[o] == m);
          CHECK(int(arg[o]) == first);
          for (int k = 0; k < 4; ++k) {
            const float d = din[at(p, 2 * y + k / 2, 2 * x + k % 2, c)];
            CHECK(d == (k == first ? dout[o] : 0.0f));
            routed += k == first && d == dout[o];
          }
        }
  CHECK(routed == int64_t(out.size()));
}

TEST_CASE("net: a few SGD steps on synthetic images lower the loss") {
  const fmnist::Dataset ds = synthetic(320, 5);
  fmnist::Net net({.threads = 2, .seed = 7});
  const fmnist::BatchStats before = eval(net, ds);
  // Per-step losses of the first pass against the second.
  double first = 0, second = 0;
  for (int pass = 0; pass < 2; ++pass)
    for (int64_t i = 0; i < ds.size(); i += 32)
      (pass == 0 ? first : second) += net.train_step(ds.images.pixels.data() + i * 784, ds.labels.data() + i, 32, 0.02f, 0.9f).loss_sum;
  const fmnist::BatchStats after = eval(net, ds);
  MESSAGE("loss " << before.mean_loss() << " -> " << after.mean_loss() << ", accuracy " << before.accuracy() << " -> "
                  << after.accuracy());
  CHECK(second < first);
  CHECK(after.mean_loss() < 0.5 * before.mean_loss());
  CHECK(after.accuracy() > 0.8);
  CHECK(net.times().fprop > 0);
  CHECK(net.times().bwd_d > 0);
  CHECK(net.times().bwd_w > 0);
}

TEST_CASE("net: a few SGD steps on real Fashion-MNIST lower the loss (when installed)") {
  std::error_code ec;
  if (!fs::is_directory(fmnist::kDefaultDataDir, ec)) {
    MESSAGE("skipped: " << fmnist::kDefaultDataDir << " missing (apt-get install " << fmnist::kDebianPackage << ")");
    return;
  }
  fmnist::Dataset ds = fmnist::load_split(fmnist::kDefaultDataDir, "t10k");  // the smaller file
  ds.images.count = 512;
  ds.images.pixels.resize(512 * 784);
  ds.labels.resize(512);
  fmnist::Net net({.threads = 2, .seed = 3});
  const fmnist::BatchStats before = eval(net, ds);
  train(net, ds, 2, 64, 0.02f);
  const fmnist::BatchStats after = eval(net, ds);
  MESSAGE("loss " << before.mean_loss() << " -> " << after.mean_loss() << ", accuracy " << before.accuracy() << " -> "
                  << after.accuracy());
  CHECK(after.mean_loss() < 0.7 * before.mean_loss());
  CHECK(after.accuracy() > 0.6);
}

TEST_CASE("net: gradients of the largest entries match central differences of the loss") {
  const fmnist::Dataset ds = synthetic(6, 11);
  fmnist::Net net({.threads = 1, .seed = 5});
  train(net, synthetic(64, 12), 1, 32, 0.01f);  // move off the initialisation (non-zero biases)
  net.compute_gradients(ds.images.pixels.data(), ds.labels.data(), ds.size());
  auto params = net.parameters();
  // The analytic gradients are copied into the probes; evaluate() below runs forward passes only.
  struct Probe {
    float* value;
    double grad;
    std::string what;
  };
  std::vector<Probe> probes;
  for (auto& p : params) {
    for (auto [values, grads, kind] : {std::tuple{p.weights, p.dweights, "w"}, std::tuple{p.bias, p.dbias, "b"}}) {
      std::vector<size_t> idx(values.size());
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
      std::partial_sort(idx.begin(), idx.begin() + 3, idx.end(),
                        [&](size_t a, size_t b) { return std::fabs(grads[a]) > std::fabs(grads[b]); });
      for (int j = 0; j < 3; ++j)
        probes.push_back({&values[idx[size_t(j)]], grads[idx[size_t(j)]], p.name + "." + kind + "[" + std::to_string(idx[size_t(j)]) + "]"});
    }
  }
  auto loss = [&] { return eval(net, ds).mean_loss(); };
  int good = 0;
  for (const Probe& pr : probes) {
    const float x = *pr.value, h = 1e-2f;
    *pr.value = x + h;
    const double lp = loss();
    *pr.value = x - h;
    const double lm = loss();
    *pr.value = x;
    const double fd = (lp - lm) / (2.0 * double(h));
    const bool ok = std::fabs(fd - pr.grad) <= 0.05 * std::fabs(pr.grad) + 1e-4;
    good += ok;
    if (!ok) MESSAGE(pr.what << ": analytic " << pr.grad << ", central difference " << fd);
  }
  // A max-pool or ReLU switch inside [x - h, x + h] can spoil one probe; the rest must agree.
  CHECK(good >= int(probes.size()) - 1);
}

TEST_CASE("net: weights file round trip reproduces predictions, and damaged files are rejected") {
  TempDir dir;
  const fmnist::Dataset ds = synthetic(200, 21);
  fmnist::Net net({.threads = 2, .seed = 1});
  train(net, ds, 1, 50, 0.02f);
  std::vector<uint8_t> pred;
  const fmnist::BatchStats st = eval(net, ds, &pred);
  const std::string path = dir.file("weights.bin");
  net.save(path);
  net.save(path);  // replacing an existing file works too
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator{}) == 1);  // no temporary left

  fmnist::Net other({.threads = 1, .seed = 99});
  other.load(path);
  std::vector<uint8_t> pred2;
  const fmnist::BatchStats st2 = eval(other, ds, &pred2);
  CHECK(pred2 == pred);
  CHECK(st2.correct == st.correct);
  CHECK(std::fabs(st2.loss_sum - st.loss_sum) <= 1e-6 * std::fabs(st.loss_sum));

  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string bad = dir.file("bad.bin");
  auto rejected = [&](std::vector<uint8_t> b, const char* why) {
    write_raw(bad, b);
    const std::string msg = error_of<fmnist::ModelFileError>([&] { other.load(bad); });
    CHECK(msg.find(bad) != std::string::npos);
    CHECK_MESSAGE(msg.find(why) != std::string::npos, msg);
  };
  std::vector<uint8_t> b = bytes;
  b[0] = 'X';
  rejected(b, "wrong magic");
  rejected(std::vector<uint8_t>(bytes.begin(), bytes.begin() + bytes.size() / 2), "truncated");
  b = bytes;
  b[bytes.size() / 2] ^= 1;
  rejected(b, "checksum");
  b = bytes;
  b.push_back(0);
  rejected(b, "unexpected bytes");
  b = bytes;
  b[16] = 33;  // conv1's K
  rejected(b, "layer conv1");
  CHECK(error_of<fmnist::ModelFileError>([&] { other.load(dir.file("missing.bin")); }).find("missing.bin") != std::string::npos);
  // A rejected file leaves the network as it was.
  std::vector<uint8_t> pred3;
  eval(other, ds, &pred3);
  CHECK(pred3 == pred);
}

TEST_CASE("curve: CSV rows and an SVG with one line per series") {
  const std::vector<fmnist::CurvePoint> pts = {{1, 0.5, 0.81, 0.85, 30.5}, {2, 0.3, 0.89, 0.88, 61.0}};
  const std::string csv = fmnist::curve_csv(pts);
  CHECK(csv == "epoch,loss,train_acc,test_acc,seconds\n1,0.50000,81.000,85.000,30.50\n2,0.30000,89.000,88.000,61.00\n");
  const std::string svg = fmnist::curve_svg(pts, "t");
  CHECK(svg.rfind("<svg", 0) == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  size_t lines = 0;
  for (size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1)) ++lines;
  CHECK(lines == 3);
  TempDir dir;
  fmnist::write_text_atomically(dir.file("curve.csv"), csv);
  std::ifstream in(dir.file("curve.csv"));
  CHECK(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()) == csv);
}
