// hwyconv/plan/machine.hpp - what the planner knows of the machine: cache sizes and the register
// budget of the SIMD target. The plans are chosen by a data-reuse model (plan/model.hpp) that compares
// what each candidate loop nest touches with these sizes, so a plan carries over to a machine with
// other caches instead of following thresholds measured on one.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace hwyconv {

/// Cache sizes (bytes), register budget, FMA rate and bandwidths the planner models. Defaults: a
/// typical AVX-512 server core (48 KiB L1D, 1 MiB L2 per core, 32 MiB L3, two 512-bit FMAs per cycle);
/// Machine::host() reads this machine's caches and FMA rate.
/// A structural type, so that StaticConv can take one as a template argument.
struct Machine {
  int64_t l1 = int64_t{48} << 10;  ///< L1 data cache per core
  int64_t l2 = int64_t{1} << 20;   ///< L2 per core (private, or the share of a core)
  int64_t l3 = int64_t{32} << 20;  ///< last-level cache, shared by the cores that use it
  int l3_cores = 16;               ///< cores sharing l3
  /// Register budget of the target running the microkernels (KernelTable::max_pixels and
  /// vectors per 16 channels): accumulators of a register block beyond max_pixels run as sub-blocks.
  int max_pixels = 28;
  int vec_per_block = 1;
  /// Vector FMAs issued per cycle (two FMA ports), and whether a 512-bit FMA takes both (AMD Zen 4
  /// runs 512-bit operations as two 256-bit halves: one 16-lane FMA per cycle).
  double fma_per_cycle = 2;
  bool half_rate_512 = false;
  /// Peak bandwidths the cost model charges, in bytes per cycle of one core: L2 into L1 (two lines),
  /// the last-level cache into L2, memory into L2 (a core's share with every core streaming).
  double bw_l2 = 128;
  double bw_l3 = 32;
  double bw_mem = 16;
  /// Bytes per cycle a core reads of data another core has just written (dirty in that core's caches).
  double bw_share = 8;

  /// Bytes of the last-level cache one of `threads` cores may count on.
  constexpr int64_t l3_share(int threads) const {
    const int sharers = threads < l3_cores ? threads : l3_cores;
    return l3 / (sharers < 1 ? 1 : sharers);
  }
  friend constexpr bool operator==(const Machine&, const Machine&) = default;

  /// This machine's cache sizes (Linux sysfs, macOS sysctl, else x86 cpuid, else the defaults) and
  /// FMA rate (x86 cpuid), read once; the register budget is left at its default (Conv sets the
  /// target's).
  static const Machine& host();
};

namespace machine_detail {

/// Parses a sysfs cache size ("48K", "1024K", "32M") into bytes; 0 if unreadable.
inline int64_t read_size(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return 0;
  char buf[32] = {};
  const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  if (n == 0) return 0;
  char* end = nullptr;
  int64_t v = std::strtoll(buf, &end, 10);
  if (end && (*end == 'K' || *end == 'k')) v <<= 10;
  if (end && (*end == 'M' || *end == 'm')) v <<= 20;
  return v;
}

/// Reads a small text file (a sysfs field) into a string; empty if unreadable.
inline std::string read_text(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return {};
  char buf[256] = {};
  const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  std::string s(buf, n);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

/// Counts the CPUs of a sysfs cpu list ("0-3,8,10-11").
inline int count_cpu_list(const std::string& list) {
  int count = 0;
  size_t i = 0;
  while (i < list.size()) {
    char* end = nullptr;
    const long a = std::strtol(list.c_str() + i, &end, 10);
    long b = a;
    i = size_t(end - list.c_str());
    if (i < list.size() && list[i] == '-') b = std::strtol(list.c_str() + i + 1, &end, 10), i = size_t(end - list.c_str());
    count += int(b - a + 1);
    while (i < list.size() && (list[i] == ',' || list[i] == ' ')) ++i;
  }
  return count;
}

/// Linux: /sys/devices/system/cpu/cpu0/cache/index*/{level,type,size,shared_cpu_list}.
inline bool from_sysfs(Machine& m) {
  bool any = false;
  for (int i = 0; i < 8; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    const std::string level = read_text(dir + "level"), type = read_text(dir + "type");
    const int64_t size = read_size(dir + "size");
    if (level.empty() || size <= 0 || type == "Instruction") continue;
    any = true;
    if (level == "1") m.l1 = size;
    if (level == "2") m.l2 = size;
    if (level == "3") {
      m.l3 = size;
      const int sharers = count_cpu_list(read_text(dir + "shared_cpu_list"));
      if (sharers > 0) m.l3_cores = sharers;
    }
  }
  return any;
}

/// macOS: hw.l1dcachesize, hw.l2cachesize, hw.l3cachesize (no L3 on Apple silicon: the L2 is shared).
inline bool from_sysctl([[maybe_unused]] Machine& m) {
#if defined(__APPLE__)
  auto get = [](const char* name) -> int64_t {
    int64_t v = 0;
    size_t len = sizeof(v);
    return sysctlbyname(name, &v, &len, nullptr, 0) == 0 ? v : 0;
  };
  const int64_t l1 = get("hw.l1dcachesize"), l2 = get("hw.l2cachesize"), l3 = get("hw.l3cachesize");
  if (l1 > 0) m.l1 = l1;
  if (l2 > 0) m.l2 = l2;
  if (l3 > 0) m.l3 = l3;
  return l1 > 0 || l2 > 0;
#else
  return false;
#endif
}

/// x86: whether the CPU runs 512-bit FMAs at half rate (AMD family 19h, Zen 4).
inline void fma_rate([[maybe_unused]] Machine& m) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d) || b != 0x68747541) return;  // "Auth"enticAMD
  if (!__get_cpuid(1, &a, &b, &c, &d)) return;
  const unsigned family = ((a >> 8) & 15) + ((a >> 20) & 255);
  m.half_rate_512 = family == 0x19;
#endif
}

/// x86: cpuid's deterministic cache parameters (leaf 4 on Intel, 0x8000001D on AMD).
inline bool from_cpuid([[maybe_unused]] Machine& m) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
  const bool amd = b == 0x68747541;  // "Auth"enticAMD
  const unsigned leaf = amd ? 0x8000001D : 4;
  if (amd && __get_cpuid_max(0x80000000, nullptr) < leaf) return false;
  if (!amd && a < 4) return false;
  bool any = false;
  for (unsigned i = 0; i < 8; ++i) {
    __cpuid_count(leaf, i, a, b, c, d);
    const unsigned type = a & 31, level = (a >> 5) & 7;
    if (type == 0) break;
    if (type == 2) continue;  // instruction cache
    const int64_t size = int64_t((b >> 22) + 1) * (((b >> 12) & 1023) + 1) * ((b & 4095) + 1) * (int64_t(c) + 1);
    any = true;
    if (level == 1) m.l1 = size;
    if (level == 2) m.l2 = size;
    if (level == 3) m.l3 = size, m.l3_cores = int(((a >> 14) & 4095) + 1);
  }
  return any;
#else
  return false;
#endif
}

}  // namespace machine_detail

inline const Machine& Machine::host() {
  static const Machine m = [] {
    Machine h;
    if (!machine_detail::from_sysfs(h) && !machine_detail::from_sysctl(h)) machine_detail::from_cpuid(h);
    machine_detail::fma_rate(h);
    return h;
  }();
  return m;
}

}  // namespace hwyconv
