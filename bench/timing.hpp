// bench/timing.hpp - repeated timing of one call: warm-up, then a median over many calls.
#pragma once

#include <chrono>
#include <functional>

namespace bench {

/// How long and how often each measurement runs.
struct TimingOptions {
  double min_time_s = 0.3;  ///< timed calls continue until this much time has passed...
  int min_reps = 5;         ///< ...and at least this many calls were timed
  int max_reps = 5000;      ///< bound on timed calls (tiny layers)
};

/// Result of measure(): per-call times in milliseconds.
struct Stats {
  double median_ms = 0;
  double min_ms = 0;
  int reps = 0;
};

/// Seconds elapsed since `start` on the steady clock.
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Times fn(): one warm-up call plus further warm-up calls for a tenth of min_time_s (caches, page
/// faults, thread pools woken up), then timed calls, each timed alone, until both min_reps and
/// min_time_s are reached (or max_reps). Returns median and minimum.
Stats measure(const std::function<void()>& fn, const TimingOptions& opt);

/// Median of a few timed calls of fn(), in milliseconds (for creation costs; no warm-up).
double median_call_ms(const std::function<void()>& fn, int reps);

/// How busy the machine is with work other than this process: CPU time of all processes (Linux
/// /proc/stat) minus this process's own (getrusage), per second of wall time, i.e. the average number
/// of CPUs other work kept busy since start(). Other work distorts figures, multi-threaded ones most.
class OtherLoad {
 public:
  /// Starts (or restarts) the interval.
  void start();
  /// Average CPUs busy with other work since start(); NaN where /proc/stat is unavailable.
  double cpus() const;

 private:
  double busy0_ = 0, self0_ = 0;
  std::chrono::steady_clock::time_point t0_{};
};

}  // namespace bench
