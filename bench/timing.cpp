// bench/timing.cpp - see timing.hpp.
#include "timing.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace bench {
namespace {

/// Median of a non-empty sample (sorts it).
double median_of(std::vector<double>& v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// CPU-seconds all CPUs spent busy since boot (first line of /proc/stat), -1 if unreadable.
double machine_busy_s() {
  std::ifstream f("/proc/stat");
  std::string line, cpu;
  if (!std::getline(f, line)) return -1;
  std::istringstream in(line);
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) || cpu != "cpu") return -1;
  return (user + nice + system + irq + softirq + steal) / double(sysconf(_SC_CLK_TCK));
}

/// CPU-seconds this process has used (all its threads).
double self_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

/// Milliseconds one call of fn() takes.
double time_call_ms(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return 1e3 * seconds_since(t0);
}

}  // namespace

Stats measure(const std::function<void()>& fn, const TimingOptions& opt) {
  const auto warm = std::chrono::steady_clock::now();
  do fn();
  while (seconds_since(warm) < 0.1 * opt.min_time_s);

  std::vector<double> ms;
  const auto start = std::chrono::steady_clock::now();
  while (int(ms.size()) < std::max(opt.min_reps, 1) ||
         (seconds_since(start) < opt.min_time_s && int(ms.size()) < opt.max_reps))
    ms.push_back(time_call_ms(fn));
  Stats s;
  s.reps = int(ms.size());
  s.min_ms = *std::min_element(ms.begin(), ms.end());
  s.median_ms = median_of(ms);
  return s;
}

void OtherLoad::start() {
  busy0_ = machine_busy_s();
  self0_ = self_cpu_s();
  t0_ = std::chrono::steady_clock::now();
}

double OtherLoad::cpus() const {
  const double busy = machine_busy_s();
  if (busy < 0 || busy0_ < 0) return std::numeric_limits<double>::quiet_NaN();
  const double wall = seconds_since(t0_);
  return wall > 0 ? std::max(0.0, (busy - busy0_) - (self_cpu_s() - self0_)) / wall : 0.0;
}

double median_call_ms(const std::function<void()>& fn, int reps) {
  std::vector<double> ms;
  for (int i = 0; i < std::max(reps, 1); ++i) ms.push_back(time_call_ms(fn));
  return median_of(ms);
}

}  // namespace bench
