// bench/problem.hpp - what every library runner shares: the passes, one layer's data in plain
// layouts, the result of one measurement, and the table of runners a library provides.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "layers.hpp"
#include "timing.hpp"

namespace bench {

/// Propagation passes, named as on the command line.
enum class Pass { kFwd, kBwdD, kBwdW };
inline constexpr int kNumPasses = 3;
inline constexpr const char* kPassNames[kNumPasses] = {"fwd", "bwd_d", "bwd_w"};

/// The pass named `name` ("fwd", "bwd_d", "bwd_w"), or nullopt.
std::optional<Pass> pass_from_name(const std::string& name);
/// The command-line name of `p`.
inline const char* pass_name(Pass p) { return kPassNames[int(p)]; }

/// Allocator of 64-byte aligned memory (a cache line, an AVX-512 vector), so that every library gets
/// equally aligned buffers.
template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  /// n elements, 64-byte aligned; throws std::bad_alloc.
  T* allocate(size_t n) {
    const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
    if (void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes)) return static_cast<T*>(p);
    throw std::bad_alloc();
  }
  /// Frees memory from allocate().
  void deallocate(T* p, size_t) { std::free(p); }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const { return true; }
};
/// A float buffer, 64-byte aligned.
using Buffer = std::vector<float, AlignedAllocator<float>>;

/// One layer at one minibatch, with random data in plain layouts: src nchw, weights oihw (goihw: g x
/// oc/g x ic/g x kh x kw, the same floats as oc x ic/g x kh x kw), bias k,
/// diff_dst nchw (N x K x P x Q, only when a backward pass was asked for).
struct Problem {
  Layer layer;
  int64_t mb = 1;
  Buffer src, wei, bias, diff_dst;

  /// Elements of src, weights and dst in plain layouts.
  int64_t src_elems() const { return mb * layer.ic * layer.ih * layer.iw; }
  int64_t wei_elems() const { return layer.oc * (layer.ic / layer.g) * layer.kh * layer.kw; }
  int64_t dst_elems() const { return mb * layer.oc * layer.oh * layer.ow; }
};

/// Builds the data of `layer` at minibatch mb: uniform [-1, 1] from a fixed seed (the same numbers on
/// every run), diff_dst only when `backward`.
Problem make_problem(const Layer& layer, int64_t mb, bool backward);

/// What the runner of one library reports for one (problem, pass, threads).
struct Measurement {
  bool ran = false;
  std::string note;  ///< why it did not run (or the error it threw)
  Stats time;
  double create_ms = std::numeric_limits<double>::quiet_NaN();  ///< median setup cost, if meaningful
  std::string impl;  ///< which implementation ran (target, plan, oneDNN impl_info_str)
  /// The computed tensor in plain layout (fwd: dst nchw; bwd_d: diff_src nchw; bwd_w: diff_weights
  /// oihw), kept until the cross-check.
  Buffer output;
};

/// Settings of one measurement.
struct RunConfig {
  int threads = 1;
  TimingOptions timing;
};

/// A runner: measures one pass of one library on one problem.
using PassRunner = Measurement (*)(const Problem&, const RunConfig&);

/// A library under test: a runner per pass (nullptr = pass not implemented there) and a function that
/// sets up `threads` threads, checks it, and says how it did.
struct Library {
  std::string name;
  std::array<PassRunner, kNumPasses> runners{};
  std::string (*threads_info)(int threads) = nullptr;
  std::string version;  ///< version / configuration string for the report
};

/// Libraries compiled into this bench, in table order; each file defines its own.
Library hwyconv_library();
#ifdef HWYCONV_BENCH_HAVE_DNNL
Library onednn_library();
#endif
#ifdef HWYCONV_BENCH_HAVE_BLAS
Library im2col_library();
#endif
#ifdef HWYCONV_BENCH_HAVE_XNNPACK
Library xnnpack_library();
#endif

/// Largest |out - ref| divided by the largest |ref| (NaN if sizes differ or the output has a NaN).
double max_rel_error(const Buffer& out, const Buffer& ref);

}  // namespace bench
