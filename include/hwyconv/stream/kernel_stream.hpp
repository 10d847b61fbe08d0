// hwyconv/stream/kernel_stream.hpp - the paper's "kernel streams" (SC18, section on kernel streams).
//
// The plan's loop nest (per thread: images n, output channel blocks kb, C chunks, row groups, column
// blocks) is lowered ahead of execution into a flat table of microkernel calls: which register block,
// the src/weights/dst offsets, and whether the call starts (zeroes) or finishes (runs the epilogue
// on) its output block. Execution is then a replay loop: one indirect call per entry, no index
// arithmetic. The builder is constexpr: StaticConv keeps its table in read-only data.
//
// Prefetch: while entry i runs, the microkernel prefetches into L1 the inputs and weights of entry
// i + 1 and into L2 those of entry i + kL2PrefetchDistance (the replay passes both entries).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "hwyconv/plan/plan.hpp"

namespace hwyconv {

/// Entries ahead of the current one whose data is prefetched into L2.
inline constexpr int64_t kL2PrefetchDistance = 4;

/// One microkernel call of the forward kernel stream. Offsets in floats.
struct StreamEntry {
  int64_t in_off = 0;   ///< working input: image, first C block, output row/column of the block
  int64_t w_off = 0;    ///< weights: K block, first C block
  int64_t out_off = 0;  ///< dst (and residual): image, K block, row, column
  int32_t kb = 0;       ///< K block (offset of bias / scale / shift is kb * 16)
  uint16_t block = 0;   ///< register block, index into kFwdBlocks
  uint16_t c_blocks = 0;  ///< C blocks this call reduces over
  uint8_t flags = 0;    ///< kFirst: start from zero; kLast: apply the epilogue (final store)

  static constexpr uint8_t kFirst = 1;
  static constexpr uint8_t kLast = 2;
  friend constexpr bool operator==(const StreamEntry&, const StreamEntry&) = default;
};

/// Visits, in execution order, the calls of thread `t` of the plan: emit(const StreamEntry&).
/// Loop nest: image n, K group, C chunk, row group, pixel block, K block of the group (K group
/// outside the images with FwdPlan::images_inner). Work is split as contiguous ranges of (n, K group, row group) items; every output block belongs to exactly one
/// thread and is reduced in the same order whatever the thread count, so results are bitwise
/// independent of the number of threads.
template <class Emit>
constexpr void for_each_fwd_call(const FwdPlan& pl, int t, Emit&& emit) {
  const int64_t groups = pl.p_groups, kgroups = div_up(pl.Kb, pl.kb_group);
  const int64_t items = pl.N * kgroups * groups;
  // Whole images per thread when the plan makes working inputs per image.
  const int64_t begin = pl.per_image ? pl.N * t / pl.threads * kgroups * groups : items * t / pl.threads;
  const int64_t end = pl.per_image ? pl.N * (t + 1) / pl.threads * kgroups * groups : items * (t + 1) / pl.threads;
  const RegBlock rb = pl.rb();
  for (int64_t it = begin; it < end;) {
    const int64_t n = pl.images_inner ? (it / groups) % pl.N : it / (kgroups * groups);
    const int64_t kg = pl.images_inner ? it / (pl.N * groups) : (it / groups) % kgroups, g0 = it % groups;
    const int64_t g1 = (groups < g0 + (end - it)) ? groups : g0 + (end - it);
    const int64_t kb0 = kg * pl.kb_group, kb1 = kb0 + pl.kb_group < pl.Kb ? kb0 + pl.kb_group : pl.Kb;
    for (int64_t c0 = 0; c0 < pl.Cr; c0 += pl.c_chunk) {
      const int64_t cn = pl.Cr - c0 < pl.c_chunk ? pl.Cr - c0 : pl.c_chunk;
      const uint8_t flags = uint8_t((c0 == 0 ? StreamEntry::kFirst : 0) |
                                    (c0 + cn == pl.Cr ? StreamEntry::kLast : 0));
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t p0 = g * rb.rb_p;
        const int64_t rows = pl.P - p0 < rb.rb_p ? pl.P - p0 : rb.rb_p;
        plan_detail::for_each_block(pl.block, p0, rows, pl.Q, [&](int bk, int64_t p, int64_t q) {
          // kbs K blocks per call while they last, then the one-K-block form of the block.
          const int64_t kbs = kFwdBlocks[bk].kbs;
          for (int64_t kb = kb0; kb < kb1; kb += (kb + kbs <= kb1 ? kbs : 1)) {
            const int b = kb + kbs <= kb1 ? bk : single_kb_block(bk);
            StreamEntry e{};
            e.in_off = (pl.thread_image ? 0 : n) * pl.in_n + c0 * pl.in_cb +
                       (pl.ring_rows ? p % pl.ring_rows : p) * pl.in_row + q * pl.in_px;
            e.w_off = kb * pl.wei_kb + c0 * pl.wei_cb;
            e.out_off = pl.out_base + n * pl.out_n + kb * pl.out_kb + p * pl.out_row + q * pl.out_px;
            e.kb = int32_t(kb);
            e.block = uint16_t(b);
            e.c_blocks = uint16_t(cn);
            e.flags = flags;
            emit(e);
          }
        });
      }
    }
    it += g1 - g0;
  }
}

/// Number of calls of thread t.
constexpr int64_t fwd_stream_size(const FwdPlan& pl, int t) {
  int64_t n = 0;
  for_each_fwd_call(pl, t, [&](const StreamEntry&) { ++n; });
  return n;
}

/// Number of calls of all threads.
constexpr int64_t fwd_stream_size(const FwdPlan& pl) {
  int64_t n = 0;
  for (int t = 0; t < pl.threads; ++t) n += fwd_stream_size(pl, t);
  return n;
}

/// A kernel stream: all threads' entries back to back; thread t runs [begin[t], begin[t + 1]).
/// `Entries` and `Begins` are std::vector (built at plan time) or std::array (built at compile time).
template <class Entries, class Begins>
struct KernelStream {
  Entries entries{};
  Begins begin{};
};

/// The stream built at run time (Conv).
using RuntimeStream = KernelStream<std::vector<StreamEntry>, std::vector<int64_t>>;

/// Fills `out` (entries and begin of size threads + 1, already sized) from the plan. Constexpr.
template <class Stream>
constexpr void fill_fwd_stream(const FwdPlan& pl, Stream& out) {
  int64_t i = 0;
  for (int t = 0; t < pl.threads; ++t) {
    out.begin[t] = i;
    for_each_fwd_call(pl, t, [&](const StreamEntry& e) { out.entries[i++] = e; });
  }
  out.begin[pl.threads] = i;
}

/// Builds the runtime stream of a plan.
inline RuntimeStream make_fwd_stream(const FwdPlan& pl) {
  RuntimeStream s;
  s.entries.resize(size_t(fwd_stream_size(pl)));
  s.begin.resize(size_t(pl.threads) + 1);
  fill_fwd_stream(pl, s);
  return s;
}

/// The stream of a plan known at compile time: a constant table (kCount entries, kThreads threads).
template <int64_t kCount, int kThreads>
using StaticStream = KernelStream<std::array<StreamEntry, size_t(kCount)>, std::array<int64_t, kThreads + 1>>;

/// Builds the compile-time stream; kCount must be fwd_stream_size(pl).
template <int64_t kCount, int kThreads>
constexpr StaticStream<kCount, kThreads> make_static_fwd_stream(const FwdPlan& pl) {
  StaticStream<kCount, kThreads> s{};
  fill_fwd_stream(pl, s);
  return s;
}

}  // namespace hwyconv
