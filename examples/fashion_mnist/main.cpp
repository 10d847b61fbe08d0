// examples/fashion_mnist/main.cpp - trains the CNN of net.hpp on Fashion-MNIST (or MNIST) and
// evaluates it; every convolution pass runs in hwyconv. See `fashion_mnist --help`.
//
// Output folder (--out): curve.csv and curve.svg (the learning curve, rewritten after every epoch)
// and weights.bin (the trained weights, rewritten after every epoch through a temporary file and a
// rename), which `--eval weights.bin` loads to reproduce the test accuracy.
#include <unistd.h>

#include <cxxopts.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "curve.hpp"
#include "idx.hpp"
#include "net.hpp"

namespace {

using fmnist::BatchStats;
using fmnist::Dataset;
using fmnist::Net;
using Clock = std::chrono::steady_clock;

/// Defaults of the main job (scripts/run.sh): about 91% test accuracy in 4 to 5 minutes on two cores.
constexpr int kDefaultEpochs = 5;
constexpr int kDefaultBatch = 64;
constexpr const char* kDefaultLr = "0.02";
constexpr int64_t kEvalBatch = 250;

/// Command-line settings (parse_args fills every field; the defaults are in its option list).
struct Config {
  std::string data, out, eval;
  int epochs = 0, batch = 0, threads = 0;
  float lr = 0, momentum = 0;
  int64_t limit = 0;
  uint32_t seed = 0;
};

/// Thrown for a bad command line; main prints it with a hint to --help and exits with status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Parses the command line. Returns nullopt when --help was printed.
std::optional<Config> parse_args(int argc, char** argv) {
  cxxopts::Options opts("fashion_mnist",
                        "Trains a small CNN on Fashion-MNIST with every convolution (forward, backward data, backward\n"
                        "weights) done by hwyconv, then reports the test accuracy.");
  Config c;
  // clang-format off
  opts.add_options()
    ("data", "folder with the (gzipped) IDX files", cxxopts::value<std::string>()->default_value(fmnist::kDefaultDataDir))
    ("epochs", "passes over the training set", cxxopts::value<int>()->default_value(std::to_string(kDefaultEpochs)))
    ("batch", "minibatch size", cxxopts::value<int>()->default_value(std::to_string(kDefaultBatch)))
    ("lr", "peak learning rate (100 warm-up steps, then cosine decay to 0)", cxxopts::value<float>()->default_value(kDefaultLr))
    ("momentum", "SGD momentum", cxxopts::value<float>()->default_value("0.9"))
    ("threads", "hwyconv threads (0 = one per hardware thread)", cxxopts::value<int>()->default_value("0"))
    ("out", "folder for curve.csv, curve.svg and weights.bin", cxxopts::value<std::string>()->default_value("fashion_mnist_out"))
    ("eval", "only evaluate the weights in this file on the test set", cxxopts::value<std::string>()->default_value(""))
    ("limit", "use only the first N training images (0 = all)", cxxopts::value<int64_t>()->default_value("0"))
    ("seed", "seed of the weight initialisation and the shuffling", cxxopts::value<uint32_t>()->default_value("42"))
    ("h,help", "print this help");
  // clang-format on
  cxxopts::ParseResult r;
  try {
    r = opts.parse(argc, argv);
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }
  if (r.count("help")) {
    std::printf("%s", opts.help().c_str());
    return std::nullopt;
  }
  if (!r.unmatched().empty()) throw UsageError("unexpected argument '" + r.unmatched().front() + "'");
  c.data = r["data"].as<std::string>();
  c.out = r["out"].as<std::string>();
  c.eval = r["eval"].as<std::string>();
  c.epochs = r["epochs"].as<int>();
  c.batch = r["batch"].as<int>();
  c.lr = r["lr"].as<float>();
  c.momentum = r["momentum"].as<float>();
  c.threads = r["threads"].as<int>();
  c.limit = r["limit"].as<int64_t>();
  c.seed = r["seed"].as<uint32_t>();
  if (c.epochs < 1) throw UsageError("--epochs must be at least 1");
  if (c.batch < 1 || c.batch > 4096) throw UsageError("--batch must be in [1, 4096]");
  if (!(c.lr > 0 && std::isfinite(c.lr))) throw UsageError("--lr must be a positive number");
  if (!(c.momentum >= 0 && c.momentum < 1)) throw UsageError("--momentum must be in [0, 1)");
  if (c.threads < 0 || c.threads > 256) throw UsageError("--threads must be in [0, 256]");
  if (c.limit < 0) throw UsageError("--limit must be >= 0");
  return c;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// Progress of one epoch: on a terminal a bar redrawn in place (at most 10 times a second), else a
/// plain line at every 20%.
class Progress {
 public:
  Progress(int epoch, int epochs, int64_t total) : epoch_(epoch), epochs_(epochs), total_(total), tty_(::isatty(1)) {}

  /// `done` of `total` images trained, with the running loss and accuracy, `secs` into the epoch.
  void update(int64_t done, const BatchStats& st, double secs) {
    const double frac = double(done) / double(total_);
    const double rate = secs > 0 ? double(done) / secs : 0;
    if (tty_) {
      if (done < total_ && secs - last_ < 0.1) return;
      last_ = secs;
      constexpr int kWidth = 30;
      const int fill = int(frac * kWidth);
      std::string bar(size_t(fill), '#');
      bar.append(size_t(kWidth - fill), '.');
      std::printf("\r  epoch %d/%d [%s] %3.0f%%  loss %.4f  acc %.2f%%  %.0f img/s  eta %.0f s \033[K", epoch_, epochs_,
                  bar.c_str(), 100 * frac, st.mean_loss(), 100 * st.accuracy(), rate,
                  rate > 0 ? double(total_ - done) / rate : 0.0);
      std::fflush(stdout);
    } else {
      const int step = int(frac * 5);  // 20% steps
      if (step <= shown_ || done == total_) return;
      shown_ = step;
      std::printf("  epoch %d/%d: %3d%%  %lld/%lld images  loss %.4f  acc %.2f%%  %.0f img/s\n", epoch_, epochs_, 20 * step,
                  static_cast<long long>(done), static_cast<long long>(total_), st.mean_loss(), 100 * st.accuracy(), rate);
      std::fflush(stdout);
    }
  }
  /// Clears the bar (terminal only), so that the epoch's summary line replaces it.
  void finish() {
    if (tty_) std::printf("\r\033[K");
  }

 private:
  int epoch_, epochs_;
  int64_t total_;
  bool tty_;
  double last_ = -1;
  int shown_ = 0;
};

/// Learning rate at step `step` of `steps`: cosine decay from `lr0` to 0, times a linear warm-up
/// over the first 100 steps (at most a tenth of the run), which keeps the first steps from
/// overshooting while the freshly initialised activations are large.
float lr_at(float lr0, int64_t step, int64_t steps) {
  const double warmup = double(std::max<int64_t>(1, std::min<int64_t>(100, steps / 10)));
  const double ramp = std::min(1.0, double(step + 1) / warmup);
  return float(ramp * 0.5 * lr0 * (1 + std::cos(M_PI * double(step) / double(steps))));
}

/// Trains one epoch over `train` in the order `order` (minibatches of cfg.batch; the last one may
/// be smaller). `step` counts SGD steps over the whole run. Returns the running loss and accuracy.
BatchStats train_epoch(Net& net, const Dataset& train, const std::vector<int64_t>& order, const Config& cfg, int epoch,
                       int64_t& step, int64_t total_steps) {
  const int64_t n = int64_t(order.size()), side = Net::kSide * Net::kSide;
  std::vector<uint8_t> pixels(size_t(cfg.batch * side)), labels(size_t(cfg.batch));
  Progress progress(epoch, cfg.epochs, n);
  BatchStats total;
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < n; i += cfg.batch) {
    const int64_t m = std::min<int64_t>(cfg.batch, n - i);
    for (int64_t j = 0; j < m; ++j) {
      const int64_t k = order[size_t(i + j)];
      std::copy_n(train.images.pixels.data() + k * side, side, pixels.data() + j * side);
      labels[size_t(j)] = train.labels[size_t(k)];
    }
    total += net.train_step(pixels.data(), labels.data(), m, lr_at(cfg.lr, step++, total_steps), cfg.momentum);
    progress.update(i + m, total, seconds_since(t0));
  }
  progress.finish();
  return total;
}

/// Evaluates `net` on `test` in batches of kEvalBatch.
BatchStats evaluate(Net& net, const Dataset& test) {
  return net.evaluate(test.images.pixels.data(), test.labels.data(), test.size(), kEvalBatch);
}

/// --eval: loads the weights and prints the test accuracy.
int run_eval(const Config& cfg) {
  const Dataset test = fmnist::load_split(cfg.data, "t10k");
  Net net({.threads = cfg.threads, .seed = cfg.seed});
  net.load(cfg.eval);
  const auto t0 = Clock::now();
  const BatchStats st = evaluate(net, test);
  std::printf("evaluated %s on %lld test images of %s in %.1f s (hwyconv on %s)\n", cfg.eval.c_str(),
              static_cast<long long>(st.count), cfg.data.c_str(), seconds_since(t0), Net::target());
  std::printf("test loss %.4f\n", st.mean_loss());
  std::printf("test accuracy: %.2f%%\n", 100 * st.accuracy());
  return 0;
}

/// Training run: epochs of SGD, a test evaluation and the outputs after each.
int run_training(const Config& cfg) {
  const auto t_start = Clock::now();
  Dataset train = fmnist::load_split(cfg.data, "train");
  const Dataset test = fmnist::load_split(cfg.data, "t10k");
  if (cfg.limit > 0 && cfg.limit < train.size()) {
    train.images.count = cfg.limit;
    train.images.pixels.resize(size_t(cfg.limit * Net::kSide * Net::kSide));
    train.labels.resize(size_t(cfg.limit));
  }
  std::filesystem::create_directories(cfg.out);
  const std::string csv = (std::filesystem::path(cfg.out) / "curve.csv").string();
  const std::string svg = (std::filesystem::path(cfg.out) / "curve.svg").string();
  const std::string weights = (std::filesystem::path(cfg.out) / "weights.bin").string();

  const int threads = cfg.threads > 0 ? cfg.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  std::printf("fashion_mnist: hwyconv on %s, %d threads\n", Net::target(), threads);
  std::printf("data: %s (%lld training, %lld test images)\n", cfg.data.c_str(), static_cast<long long>(train.size()),
              static_cast<long long>(test.size()));
  std::printf("network: conv3x3 1->32 + ReLU, maxpool 2, conv3x3 32->64 + ReLU, maxpool 2, fc 3136->10 (7x7 conv), softmax\n");
  std::printf("training: %d epochs, batch %d, lr %g (warm-up, cosine decay), momentum %g, seed %u\n", cfg.epochs, cfg.batch,
              double(cfg.lr), double(cfg.momentum), cfg.seed);
  std::fflush(stdout);

  Net net({.threads = cfg.threads, .seed = cfg.seed});
  std::vector<int64_t> order(size_t(train.size()));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::mt19937 shuffle_rng(cfg.seed + 1);
  const int64_t steps_per_epoch = (train.size() + cfg.batch - 1) / cfg.batch;
  int64_t step = 0;
  std::vector<fmnist::CurvePoint> curve;
  const auto t_train = Clock::now();
  BatchStats test_stats;
  for (int epoch = 1; epoch <= cfg.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), shuffle_rng);
    net.reset_times();
    const auto t0 = Clock::now();
    const BatchStats tr = train_epoch(net, train, order, cfg, epoch, step, steps_per_epoch * cfg.epochs);
    const double train_s = seconds_since(t0);
    const fmnist::PhaseTimes pt = net.times();
    const auto t1 = Clock::now();
    test_stats = evaluate(net, test);
    const double eval_s = seconds_since(t1);
    const double rest = std::max(0.0, train_s - pt.fprop - pt.bwd_d - pt.bwd_w);
    auto part = [&](const char* name, double s) { std::printf("  %s %.1f s (%.0f%%)", name, s, 100 * s / train_s); };
    std::printf("epoch %d/%d  loss %.4f  train %.2f%%  test %.2f%%  %.0f img/s  %.1f s (test %.1f s)\n", epoch, cfg.epochs,
                tr.mean_loss(), 100 * tr.accuracy(), 100 * test_stats.accuracy(), double(tr.count) / train_s, train_s, eval_s);
    std::printf("  time:");
    part("fprop", pt.fprop);
    part("bwd_d", pt.bwd_d);
    part("bwd_w", pt.bwd_w);
    part("rest", rest);
    std::printf("\n");
    std::fflush(stdout);

    curve.push_back({epoch, tr.mean_loss(), tr.accuracy(), test_stats.accuracy(), seconds_since(t_train)});
    fmnist::write_text_atomically(csv, fmnist::curve_csv(curve));
    fmnist::write_text_atomically(svg, fmnist::curve_svg(curve, "hwyconv CNN on Fashion-MNIST"));
    net.save(weights);
  }
  std::printf("wrote %s, %s, %s\n", csv.c_str(), svg.c_str(), weights.c_str());
  std::printf("total %.1f s (training %.1f s)\n", seconds_since(t_start), seconds_since(t_train));
  std::printf("test accuracy: %.2f%%\n", 100 * test_stats.accuracy());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::optional<Config> cfg = parse_args(argc, argv);
    if (!cfg) return 0;
    return cfg->eval.empty() ? run_training(*cfg) : run_eval(*cfg);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "fashion_mnist: %s (see --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fashion_mnist: error: %s\n", e.what());
    return 1;
  }
}
