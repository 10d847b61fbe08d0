// hwyconv/options.hpp - what a user passes besides the descriptor: the pass, the fused post-ops of each
// pass, the src layout, and the execution options (threads, parallel-for, the machine to plan for).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "hwyconv/plan/machine.hpp"
#include "hwyconv/threading/parallel_for.hpp"

namespace hwyconv {

/// The three passes of a convolution layer (paper SC18): forward propagation, backward data (dL/dsrc)
/// and backward weights (the weight update: dL/dweights, dL/dbias).
enum class Pass : uint8_t { fwd, bwd_d, bwd_w };

/// Name of a pass: "fwd", "bwd_d", "bwd_w".
constexpr const char* pass_name(Pass p) { return p == Pass::fwd ? "fwd" : (p == Pass::bwd_d ? "bwd_d" : "bwd_w"); }

/// Bounds of PostOps::clamp: values below lo become lo, above hi become hi (lo <= hi).
struct Clamp {
  float lo = 0.0f;
  float hi = 6.0f;
};

/// Fused operations after the forward convolution, applied in registers (epilogue/epilogue-inl.h):
/// dst = clamp?( relu?( (conv + bias) * scale + shift + residual ) ). Empty spans mean "absent".
struct PostOps {
  bool relu = false;                  ///< ReLU: 0 where below 0 (NaN stays NaN)
  std::span<const float> residual{};  ///< nChw16c, same shape as dst (a skip connection)
  std::span<const float> scale{};     ///< K floats (e.g. batch norm folded for inference); with shift
  std::span<const float> shift{};     ///< K floats; with scale
  /// Clamp last, as oneDNN's eltwise_clip and PyTorch's hardtanh: ReLU6 is Clamp{0, 6} (MobileNet
  /// v2). NaN stays NaN.
  std::optional<Clamp> clamp{};
};

/// Fused operations of the training passes.
struct BwdPostOps {
  /// ReLU backward fused on read: when set (same layout and size as ddst, normally the forward dst
  /// of this layer computed with PostOps::relu), ddst counts only where relu_mask > 0.
  std::span<const float> relu_mask{};
};

/// Memory layout of the src tensor given to Conv::forward and Conv::backward_weights, in oneDNN's
/// format-tag names. dst, ddst and dsrc are always nChw16c.
enum class SrcLayout : uint8_t {
  nChw16c,  ///< [N][div_up(C,16)][H][W][16]: channels in blocks of 16, padded slots zero (default)
  nhwc,     ///< [N][H][W][C]: channels last, unpadded (images as decoders give them, e.g. RGB)
  any,      ///< the layout the chosen implementation reads directly (Conv::src_layout() tells which)
};

/// Most threads a plan may be partitioned for.
inline constexpr int kMaxThreads = 4096;

/// Execution options.
struct Options {
  /// Threads the work is partitioned for; 0 = std::thread::hardware_concurrency() (the size of
  /// hwyconv's global pool, and the width assumed for a parallel_for of the caller's). At most
  /// kMaxThreads. Forward and backward-data results are bitwise the same for every value.
  int threads = 0;
  /// Caller's parallel-for; empty = hwyconv's global ThreadPool.
  ParallelFor parallel_for{};
  /// Layout of src. nhwc is read directly by layers whose channels are folded (C < 16 with R*S > 1,
  /// such as the first layer, 3 -> 64 7x7: 5.3x fewer bytes than nChw16c at C = 3); other layers
  /// reorder it to nChw16c in their workspace first, a copy per call. `any`: Conv chooses.
  SrcLayout src_layout = SrcLayout::nChw16c;
  /// Machine the plans are made for; empty = this machine (Machine::host(), with the register budget
  /// of the SIMD target chosen at run time).
  std::optional<Machine> machine{};
};

}  // namespace hwyconv
