// bench/peak.hpp - this machine's f32 FMA peak, measured (peak.cpp owns its own Highway chain).
#pragma once

#include <string>

namespace bench {

/// Measured peak of the best Highway target of this CPU.
struct Peak {
  double gflops = 0;   ///< all threads together
  std::string target;  ///< Highway target that ran, e.g. "AVX3_DL"
};

/// Runs independent FMA chains on `threads` threads for about `seconds` (5 trials; the best counts)
/// and returns the f32 GFLOP/s (an FMA counts 2 flops per lane): what a perfect kernel could reach.
Peak measure_peak(int threads, double seconds = 0.2);

}  // namespace bench
