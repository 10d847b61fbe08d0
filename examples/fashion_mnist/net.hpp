// examples/fashion_mnist/net.hpp - a small CNN for 28x28 grey images, 10 classes, trained with SGD.
//
//   input 1x28x28 -> conv 3x3 1->32 pad 1 + ReLU -> max pool 2x2 -> 32x14x14
//                 -> conv 3x3 32->64 pad 1 + ReLU -> max pool 2x2 -> 64x7x7
//                 -> fully connected 3136->10 (a 7x7 convolution with K = 10) -> softmax cross-entropy
//
// Every convolution pass (forward, backward data, backward weights) runs in hwyconv, on its blocked
// layouts (activations nChw16c, weights OIhw16i16o, channels padded to 16 with zeros); pooling,
// softmax and the SGD update are plain loops in net.cpp. This header does not include hwyconv, so
// only net.cpp compiles hwyconv's kernels.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace fmnist {

/// A weights file that cannot be written, read, or does not fit the network; what() names the file.
class ModelFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Seconds spent in each part of the work since the last reset: hwyconv's forward passes, its
/// backward-data passes (weight reorders for them included), its backward-weights passes, and the
/// rest (input conversion, pooling, softmax, SGD update).
struct PhaseTimes {
  double fprop = 0, bwd_d = 0, bwd_w = 0, rest = 0;
  double total() const { return fprop + bwd_d + bwd_w + rest; }
};

/// Summed loss and correct predictions over `count` images.
struct BatchStats {
  double loss_sum = 0;
  int64_t correct = 0;
  int64_t count = 0;
  double mean_loss() const { return count ? loss_sum / double(count) : 0.0; }
  double accuracy() const { return count ? double(correct) / double(count) : 0.0; }
  BatchStats& operator+=(const BatchStats& o) {
    loss_sum += o.loss_sum;
    correct += o.correct;
    count += o.count;
    return *this;
  }
};

struct NetOptions {
  int threads = 0;     ///< hwyconv threads per convolution (0 = one per hardware thread)
  uint32_t seed = 42;  ///< He initialisation of the weights
};

/// One trainable layer as stored: weights in OIhw16i16o (K x C x R x S logical), bias K floats,
/// and their gradients from the last compute_gradients() in the same layouts.
struct ParamView {
  std::string name;
  int64_t K = 0, C = 0, R = 0, S = 0;
  std::span<float> weights, bias, dweights, dbias;
};

/// The network, its parameters, momentum buffers and per-batch-size working state.
class Net {
 public:
  static constexpr int kSide = 28;     ///< image rows and columns
  static constexpr int kClasses = 10;  ///< labels 0..9
  static constexpr int kLayers = 3;

  explicit Net(NetOptions opt = {});
  ~Net();
  Net(const Net&) = delete;
  Net& operator=(const Net&) = delete;

  /// One SGD step on `n` images (n*28*28 bytes, image after image) with their labels:
  /// compute_gradients, then apply_gradients. Returns the loss and accuracy before the update.
  BatchStats train_step(const uint8_t* pixels, const uint8_t* labels, int64_t n, float lr, float momentum);

  /// Forward and backward pass of a minibatch; the gradients of the mean cross-entropy are left in
  /// parameters()[i].dweights / dbias. Returns the loss and accuracy of the batch.
  BatchStats compute_gradients(const uint8_t* pixels, const uint8_t* labels, int64_t n);

  /// SGD with momentum from the last gradients: v = momentum * v - lr * g, w += v.
  void apply_gradients(float lr, float momentum);

  /// Forward passes over `n` images in batches of at most `batch`: loss and accuracy. When
  /// `predictions` is given it receives the predicted class of each image.
  BatchStats evaluate(const uint8_t* pixels, const uint8_t* labels, int64_t n, int64_t batch,
                      std::vector<uint8_t>* predictions = nullptr);

  /// The three layers' parameters and gradients (conv1, conv2, fc).
  std::vector<ParamView> parameters();

  /// Writes the weights (plain oihw, little-endian floats; format in net.cpp) to a temporary file
  /// in the same folder, then renames it to `path`: a reader never sees a half-written file.
  void save(const std::string& path) const;
  /// Reads weights written by save(); checks magic, version, shapes, size and checksum first and
  /// throws ModelFileError naming the file, leaving the network unchanged, when anything is off.
  void load(const std::string& path);

  /// Time split since the last reset_times().
  const PhaseTimes& times() const;
  void reset_times();

  /// hwyconv's Highway target on this CPU ("AVX3_DL", "AVX2", ...).
  static const char* target();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fmnist
