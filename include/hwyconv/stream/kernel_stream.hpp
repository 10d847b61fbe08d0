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

#include "hwyconv/kernels/variants.hpp"
#include "hwyconv/plan/blocking.hpp"
#include "hwyconv/plan/kernel_plan.hpp"

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
  /// The taps this call runs: rows [tap_r0, tap_r1) x columns [tap_s0, tap_s1) of the geometry's tap
  /// grid; the others read only padding for every pixel of the call.
  uint16_t tap_r0 = 0, tap_r1 = 0, tap_s0 = 0, tap_s1 = 0;
  uint8_t flags = 0;    ///< kFirst: start from zero; kLast: apply the epilogue (final store)

  static constexpr uint8_t kFirst = 1;
  static constexpr uint8_t kLast = 2;
  friend constexpr bool operator==(const StreamEntry&, const StreamEntry&) = default;
};

/// Visits, in execution order, the calls of thread `t` of a kernel geometry, its taps and its
/// blocking: emit(const StreamEntry&). Loop nest: image n, K group, C chunk, row group (and column
/// segment), pixel block, K block of the group (K group outside the images with Blocking::images_inner).
/// Work is split as contiguous ranges of (n, K group, row group, column segment) items (whole images
/// with Blocking::own_images); every output block belongs to exactly one thread and is reduced in the same order whatever the thread count,
/// so results are bitwise independent of the number of threads.
template <class Emit>
constexpr void for_each_fwd_call(const KernelGeometry& g, const Blocking& bl, const Tap* taps, int t, Emit&& emit) {
  const int64_t groups = bl.p_groups * bl.q_groups, kgroups = div_up(g.Kb, bl.kb_group);
  const int64_t items = g.N * kgroups * groups;
  const int64_t per = kgroups * groups;
  const int64_t begin = bl.own_images ? g.N * t / bl.threads * per : items * t / bl.threads;
  const int64_t end = bl.own_images ? g.N * (t + 1) / bl.threads * per : items * (t + 1) / bl.threads;
  const RegBlock rb = kFwdBlocks[bl.block];
  const int64_t seg = segment_cols(g.Q, bl.q_groups, rb.rb_q);
  for (int64_t it = begin; it < end;) {
    const int64_t n = bl.images_inner ? (it / groups) % g.N : it / per;
    const int64_t kg = bl.images_inner ? it / (g.N * groups) : (it / groups) % kgroups, g0 = it % groups;
    const int64_t g1 = (groups < g0 + (end - it)) ? groups : g0 + (end - it);
    const int64_t kb0 = kg * bl.kb_group, kb1 = kb0 + bl.kb_group < g.Kb ? kb0 + bl.kb_group : g.Kb;
    for (int64_t c0 = 0; c0 < g.Cr; c0 += bl.c_chunk) {
      const int64_t cn = g.Cr - c0 < bl.c_chunk ? g.Cr - c0 : bl.c_chunk;
      const uint8_t flags = uint8_t((c0 == 0 ? StreamEntry::kFirst : 0) | (c0 + cn == g.Cr ? StreamEntry::kLast : 0));
      for (int64_t grp = g0; grp < g1; ++grp) {
        const int64_t p0 = (grp / bl.q_groups) * rb.rb_p, q0 = (grp % bl.q_groups) * seg;
        const int64_t rows = g.P - p0 < rb.rb_p ? g.P - p0 : rb.rb_p, q1 = g.Q - q0 < seg ? g.Q : q0 + seg;
        for_each_block_in(bl.block, p0, rows, q0, q1, [&](int bk, int64_t p, int64_t q) {
          const BlockTaps bt = block_taps(g, taps, p, kFwdBlocks[bk].rb_p, q, kFwdBlocks[bk].rb_q);
          // kbs K blocks per call while they last within the group, then the one-K-block form of
          // the block.
          const int64_t kbs = kFwdBlocks[bk].kbs, gkb = g.group_kb();
          auto whole = [&](int64_t kb) { return kb + kbs <= kb1 && kb % gkb + kbs <= gkb; };
          for (int64_t kb = kb0; kb < kb1; kb += (whole(kb) ? kbs : 1)) {
            StreamEntry e{};
            e.in_off = (bl.thread_image ? 0 : n) * g.in_n + kb / gkb * g.in_group() + c0 * g.in_cb +
                       (bl.ring_rows ? p % bl.ring_rows : p) * g.in_row + q * g.in_px;
            e.w_off = kb * g.wei_kb + c0 * g.wei_cb;
            e.out_off = g.out_base + n * g.out_n + kb * g.out_kb + p * g.out_row + q * g.out_px;
            e.kb = int32_t(kb);
            e.block = uint16_t(whole(kb) ? bk : single_kb_block(bk));
            e.c_blocks = uint16_t(cn);
            e.tap_r0 = uint16_t(bt.rows.first);
            e.tap_r1 = uint16_t(bt.rows.last);
            e.tap_s0 = uint16_t(bt.cols.first);
            e.tap_s1 = uint16_t(bt.cols.last);
            e.flags = flags;
            emit(e);
          }
        }, bl.overlap);
      }
    }
    it += g1 - g0;
  }
}

/// Number of calls of thread t.
constexpr int64_t fwd_stream_size(const KernelGeometry& g, const Blocking& b, const Tap* taps, int t) {
  int64_t n = 0;
  for_each_fwd_call(g, b, taps, t, [&](const StreamEntry&) { ++n; });
  return n;
}

/// Number of calls of all threads.
constexpr int64_t fwd_stream_size(const KernelGeometry& g, const Blocking& b, const Tap* taps) {
  int64_t n = 0;
  for (int t = 0; t < b.threads; ++t) n += fwd_stream_size(g, b, taps, t);
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
constexpr void fill_fwd_stream(const KernelGeometry& g, const Blocking& b, const Tap* taps, Stream& out) {
  int64_t i = 0;
  for (int t = 0; t < b.threads; ++t) {
    out.begin[size_t(t)] = i;
    for_each_fwd_call(g, b, taps, t, [&](const StreamEntry& e) { out.entries[size_t(i++)] = e; });
  }
  out.begin[size_t(b.threads)] = i;
}

/// Builds the runtime stream of a kernel geometry, its taps and its blocking.
inline RuntimeStream make_fwd_stream(const KernelGeometry& g, const Blocking& b, const Tap* taps) {
  RuntimeStream s;
  s.entries.resize(size_t(fwd_stream_size(g, b, taps)));
  s.begin.resize(size_t(b.threads) + 1);
  fill_fwd_stream(g, b, taps, s);
  return s;
}

/// The stream of a plan known at compile time: a constant table (kCount entries, kThreads threads).
template <int64_t kCount, int kThreads>
using StaticStream = KernelStream<std::array<StreamEntry, size_t(kCount)>, std::array<int64_t, kThreads + 1>>;

/// Builds the compile-time stream; kCount must be fwd_stream_size(g, b, taps).
template <int64_t kCount, int kThreads>
constexpr StaticStream<kCount, kThreads> make_static_fwd_stream(const KernelGeometry& g, const Blocking& b,
                                                               const Tap* taps) {
  StaticStream<kCount, kThreads> s{};
  fill_fwd_stream(g, b, taps, s);
  return s;
}

}  // namespace hwyconv
