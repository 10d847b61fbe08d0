// hwyconv/plan/model.hpp - the cost model plans are chosen by: microkernel cycles for the target's register
// budget, plus the bytes each loop nest moves into L1 from L2 and into L2 from the last-level cache or
// memory for this machine's cache sizes (in the spirit of PolyScientist, Tavarageri et al. 2020: the
// microkernels fixed, the loop order and tile sizes chosen by a model of data reuse).
//
// The estimate is in cycles of the busiest thread: compute (issue of FMAs and loads, per-call
// overhead), plus each level's bytes divided by its peak bandwidth. The traffic is added to the
// compute, not overlapped with it: the candidates the model ranks differ mostly in traffic, and timing
// the candidates of ResNet-50's layers (every C chunk, K group and loop order) ranked them best this
// way, with the peak bandwidths.
#pragma once

#include <cstdint>

#include "hwyconv/kernels/variants.hpp"
#include "hwyconv/plan/blocking.hpp"
#include "hwyconv/plan/kernel_plan.hpp"
#include "hwyconv/plan/machine.hpp"

namespace hwyconv {

/// Estimated cycles of a plan on the busiest thread, by where they go.
struct Cost {
  double compute = 0;  ///< microkernel issue cycles and per-call overhead
  double l2 = 0;       ///< bytes read from L2 into L1, over the L2 bandwidth
  double outer = 0;    ///< bytes read from the last-level cache or memory, over their bandwidth
  double copy = 0;     ///< transforms: phase copies, folding, padding, reductions
  constexpr double total() const { return compute + l2 + outer + copy; }
  constexpr Cost& operator+=(const Cost& o) {
    compute += o.compute;
    l2 += o.l2;
    outer += o.outer;
    copy += o.copy;
    return *this;
  }
};

namespace model {

/// Bytes of one 16-channel pixel (a cache line) and of one 16 x 16 weight block.
inline constexpr double kLine = 64, kWeightBlock = 1024;

/// Share of the last-level and memory traffic of a kernel stream that its prefetches leave exposed.
inline constexpr double kStreamExposed = 0.5;
/// Cycles a copy spends per cache line it writes besides the traffic (loop, bounds, 64-byte moves).
inline constexpr double kCopyLineCycles = 4;

/// Vector FMAs per cycle on machine m with its register budget's vector width.
constexpr double fma_rate(const Machine& m) { return m.half_rate_512 && m.vec_per_block == 1 ? 1.0 : m.fma_per_cycle; }

/// Cycles of one step (one input channel of one tap) of a register sub-block of `pixels` pixels x `kbs`
/// K blocks: the larger of its FMAs (pixels * kbs * vectors per 16 channels, fma_rate per cycle, at
/// least 8 in flight for a 4-cycle latency) and its loads (a broadcast per pixel, a weight vector per K
/// block and vector, 1.5 per cycle), plus a tenth of the smaller (they share the issue slots).
constexpr double sub_block_step(int64_t pixels, int64_t kbs, const Machine& m) {
  const double v = m.vec_per_block, fma = double(pixels * kbs) * v, loads = double(pixels) + double(kbs) * v;
  const double f = (fma < 8 ? 8 : fma) / fma_rate(m), l = loads / 1.5;
  return f > l ? f + 0.1 * l : l + 0.1 * f;
}

/// Cycles of one step of register block rb as the microkernel runs it on machine m: one sub-block when
/// its accumulators fit the register budget, else K block by K block, then rows of sub-blocks of at
/// most max_pixels pixels (kernels/fwd-inl.h, RunBlock).
constexpr double block_step(const RegBlock& rb, const Machine& m) {
  const int64_t budget = m.max_pixels, pixels = int64_t(rb.rb_p) * rb.rb_q;
  if (pixels * rb.kbs <= budget) return sub_block_step(pixels, rb.kbs, m);
  if (rb.kbs > 1) return double(rb.kbs) * block_step({rb.rb_p, rb.rb_q, 1}, m);
  if (pixels <= budget) return sub_block_step(pixels, 1, m);
  const int64_t full = rb.rb_q / budget, rest = rb.rb_q % budget;
  return double(rb.rb_p) * (double(full) * sub_block_step(budget, 1, m) + (rest ? sub_block_step(rest, 1, m) : 0.0));
}

/// Fixed cycles of one microkernel call besides its steps: the call through the stream, prefetches,
/// loading and storing the accumulators (pixels x K blocks x vectors) and the FMA chains restarting
/// (measured: a layer split into 8 or 16 C chunks instead of 1 or 2 costs 130-190 cycles per extra
/// call of 21 to 28 accumulators).
constexpr double call_overhead(const RegBlock& rb, const Machine& m) {
  return 50 + 5.0 * double(int64_t(rb.rb_p) * rb.rb_q * rb.kbs) * m.vec_per_block;
}

/// Microkernel work of covering one P x Q output plane of Kb K blocks with main block `main`: the sum
/// over calls of their step cycles (each call's steps scaled by the share of the taps it runs, as the
/// kernel stream's tap ranges skip those reading only padding: a block spanning more rows or columns
/// runs more of them), the calls, their fixed cycles, and the pixel blocks (calls of the first K
/// block). `taps` null: every call runs every tap.
struct PlaneWork {
  double step = 0;
  double overhead = 0;
  int64_t calls = 0;
  int64_t pixel_blocks = 0;
};

constexpr PlaneWork plane_work(int main, const KernelGeometry& g, const Tap* taps, const Machine& m, bool overlap = false) {
  PlaneWork w;
  const int64_t P = g.P, Q = g.Q;
  const int64_t tap_rows = g.taps / (g.tap_cols > 0 ? g.tap_cols : 1);
  auto run_share = [&](const RegBlock& rb, int64_t p, int64_t q) {
    return taps == nullptr ? 1.0 : double(block_taps(g, taps, p, rb.rb_p, q, rb.rb_q).count()) / double(g.taps);
  };
  const int rb_p = kFwdBlocks[main].rb_p;
  // Step and fixed cycles of each block's calls over the Kb K blocks, computed on first use.
  double step_of[kNumFwdBlocks] = {}, overhead_of[kNumFwdBlocks] = {};
  int64_t calls_of[kNumFwdBlocks] = {};
  auto add_rows = [&](int64_t p, int64_t rows, int64_t times) {
    for_each_block(main, p, rows, Q, [&](int b, int64_t bp, int64_t bq) {
      if (calls_of[b] == 0) {
        const RegBlock rb = kFwdBlocks[b], one{rb.rb_p, rb.rb_q, 1};
        const int64_t gkb = g.group_kb(), full = g.groups * (gkb / rb.kbs), left = g.groups * (gkb % rb.kbs);
        step_of[b] = double(full) * block_step(rb, m) + double(left) * block_step(one, m);
        overhead_of[b] = double(full) * call_overhead(rb, m) + double(left) * call_overhead(one, m);
        calls_of[b] = full + left;
      }
      w.step += double(times) * run_share(kFwdBlocks[b], bp, bq) * step_of[b];
      w.overhead += double(times) * overhead_of[b];
      w.calls += times * calls_of[b];
      w.pixel_blocks += times;
    }, overlap);
  };
  const int64_t groups = P / rb_p;
  // Full row groups whose rows all run every tap row, [lo, hi), cost the same (only those near the
  // top and bottom padding differ): cost one and multiply.
  int64_t lo = 0, hi = P;
  for (int64_t i = 0; taps != nullptr && i < tap_rows; ++i) {
    const TapRange v = valid_outputs(taps[i * g.tap_cols].row, g.row_step, g.src_rows, P);
    lo = v.first > lo ? v.first : lo;
    hi = v.last < hi ? v.last : hi;
  }
  const int64_t i0 = div_up(lo, rb_p) < groups ? div_up(lo, rb_p) : groups;
  const int64_t i1 = hi / rb_p > i0 ? (hi / rb_p < groups ? hi / rb_p : groups) : i0;
  for (int64_t i = 0; i < i0; ++i) add_rows(i * rb_p, rb_p, 1);
  if (i1 > i0) add_rows(i0 * rb_p, rb_p, i1 - i0);
  for (int64_t i = i1; i < groups; ++i) add_rows(i * rb_p, rb_p, 1);
  if (P % rb_p) add_rows(groups * rb_p, P % rb_p, 1);
  return w;
}

/// Cycles to bring `bytes` into L2 from where a tensor of `footprint` bytes lives: the last-level
/// cache when it fits this thread's share of it, else memory.
constexpr double outer_cycles(double bytes, double footprint, const Machine& m, int threads) {
  return bytes / (footprint <= double(m.l3_share(threads)) ? m.bw_l3 : m.bw_mem);
}

/// What the forward-stream model needs to know of a working input: bytes of one image as the
/// microkernels read it, and of all images; whether each thread makes an image in its own buffer
/// right before computing it (then it is read from L2 when it fits); the bytes of the output (a
/// nChw16c tensor, or the stride-phase part of one).
struct StreamData {
  double image = 0;
  double tensor = 0;
  bool fresh = false;
  double output = 0;     ///< bytes of all outputs the stream writes
  const Tap* taps = nullptr;  ///< the geometry's taps, when some may read only padding (plane_work)
};

/// Fraction of the reuses of a working set of `ws` bytes that hit in a cache of `cap` bytes: all of
/// them up to half the capacity, none from one and a half on, in between linearly (the cache also
/// holds the other operands, the stack and prefetched lines; replacement in current L2s keeps part
/// of a working set somewhat larger than the cache, unlike a strict LRU).
constexpr double hit(double ws, double cap) {
  const double h = 1.5 - ws / cap;
  return h > 1 ? 1 : (h < 0 ? 0 : h);
}

/// Share of the work (output rows x K blocks) of kernel geometry g that the busiest thread of blocking
/// b gets, as the kernel stream splits it (stream/kernel_stream.hpp: contiguous ranges of (image,
/// K group, row group, column segment) items, or whole images; the last K group, row group and
/// column segment may be partial).
constexpr double busiest_share(const KernelGeometry& g, const Blocking& b) {
  const int64_t qg = b.q_groups, groups = b.p_groups * qg, kgroups = div_up(g.Kb, b.kb_group);
  const int64_t rb_p = div_up(g.P, b.p_groups), seg = segment_cols(g.Q, qg, kFwdBlocks[b.block].rb_q);
  const int64_t items = g.N * kgroups * groups, per = kgroups * groups;
  auto kbs_before = [&](int64_t k) { return k * b.kb_group < g.Kb ? k * b.kb_group : g.Kb; };
  auto rows_before = [&](int64_t r) { return r * rb_p < g.P ? r * rb_p : g.P; };
  auto kbs_of = [&](int64_t k) { return kbs_before(k + 1) - kbs_before(k); };
  // Rows (in units of whole rows) of the first r groups of a plane, row-major over segments.
  auto groups_before = [&](int64_t r) {
    const int64_t row = r / qg, cols = (r % qg) * seg < g.Q ? (r % qg) * seg : g.Q;
    return double(rows_before(row)) + double(rows_before(row + 1) - rows_before(row)) * double(cols) / double(g.Q);
  };
  // Work of items [0, x).
  auto work = [&](int64_t x) -> double {
    if (b.images_inner) {  // (K group, image, group)
      const int64_t per_kg = g.N * groups, kg = x / per_kg, r = x % per_kg;
      return double(kbs_before(kg) * g.N * g.P) + double(kbs_of(kg)) * (double((r / groups) * g.P) + groups_before(r % groups));
    }
    const int64_t n = x / per, r = x % per, kg = r / groups;
    return double(n * g.Kb * g.P) + double(kbs_before(kg) * g.P) + double(kbs_of(kg)) * groups_before(r % groups);
  };
  double most = 0;
  for (int t = 0; t < b.threads; ++t) {
    const int64_t lo = b.own_images ? g.N * t / b.threads * per : items * t / b.threads;
    const int64_t hi = b.own_images ? g.N * (t + 1) / b.threads * per : items * (t + 1) / b.threads;
    const double w = work(hi) - work(lo);
    most = w > most ? w : most;
  }
  return most / double(g.N * g.Kb * g.P);
}

/// Estimated cycles of running kernel geometry g with blocking b (all threads; the busiest one); w is
/// plane_work of b's block.
constexpr Cost stream_cost(const KernelGeometry& g, const Blocking& b, const PlaneWork& w, const StreamData& in,
                           const Machine& m) {
  const RegBlock rb = kFwdBlocks[b.block];
  const int64_t kgroups = div_up(g.Kb, b.kb_group), chunks = div_up(g.Cr, b.c_chunk);
  const double share = busiest_share(g, b), N = double(g.N);
  Cost c;
  const double steps = double(g.Cr * g.taps * g.tap_channels);
  c.compute = N * share * (w.step * steps + w.overhead * double(chunks));

  const double L1 = double(m.l1), L2 = double(m.l2);
  const double wb = double(g.wei_cb) * 4;  // weight bytes of one K block and reduction block
  const double W = double(g.Kb * g.Cr) * wb, W_gc = double(b.kb_group * b.c_chunk) * wb;
  const double W_g = double(b.kb_group * g.Cr) * wb;
  // Pixel blocks a sweep over one (image, K group, C chunk) visits.
  const double blocks = double(w.pixel_blocks);
  // Per image, from L2 into L1. Weights: a sweep re-reads its weights from L1 when they fit half of it, else from L2 for every
  // pixel block. Input: a pixel block's lines for the chunk stay in L1 across the K blocks of the group
  // when they fit a quarter of it, else each K-block call re-reads them.
  const double wei_l2 = W_gc <= L1 / 2 ? W : W * blocks;
  const double block_in = double(rb.rb_p + 2) * double(rb.rb_q + 2) * double(b.c_chunk) * kLine;
  // Grouped: a K group reads the input blocks of the groups it spans only.
  const int64_t groups_spanned = div_up(b.kb_group, g.group_kb());
  const double spanned = double(groups_spanned < g.groups ? groups_spanned : g.groups);
  const double in_l2 = in.image * spanned / double(g.groups) * double(kgroups) *
                       (block_in <= L1 / 4 ? 1.0 : double(b.kb_group) / double(rb.kbs));
  // Partial sums of C chunks: re-read and rewritten, from L2 as far as a K group's outputs stay there
  // while a chunk's input and weights pass.
  const double O_n = in.output / N, O_g = O_n * double(b.kb_group) / double(g.Kb);
  const double partial = 2 * O_n * double(chunks - 1);
  const double partial_hit = hit(O_g + in.image / double(chunks) + W_gc, L2);
  c.l2 = N * share * (wei_l2 + in_l2 + partial * partial_hit) / m.bw_l2;

  // Per image, from the last-level cache or memory (added). Input: read once, and again for every
  // further K group as far as it left L2 (with a sweep's weights); an image the thread has just made
  // is in L2 when it fits.
  // Between two K groups of an image pass that image (images outside the K groups) or every image
  // (inside).
  // Grouped: the K groups read `distinct` parts of the input (each group's blocks, or those of the
  // groups a K group spans), each once and again for every further K group that reads it.
  const double between = (b.images_inner ? in.tensor : in.image) + W_gc;
  const double distinct = double(kgroups < g.groups ? kgroups : g.groups), part = in.image / distinct;
  double in_outer = in.image + part * (double(kgroups) - distinct) * (1 - hit(between, L2));
  if (in.fresh) in_outer -= in.image * hit(part + W_gc, L2);
  // Weights: a sweep's weights are read once and again for every further pixel block as far as they
  // left L2 (between two uses, one pixel block's input passes); across images (images outside the K groups: all weights; inside: one group's) they stay
  // in L2 as far as they fit with an image.
  const double sweep = 1 + (blocks - 1) * (1 - hit(W_gc + block_in, L2));
  const double across = b.images_inner ? hit(W_g + in.image, L2) : hit(W + in.image, L2);
  const double wei_outer = W * sweep * (1 - across * (N - 1) / N);
  const double out_outer = 2 * O_n + partial * (1 - partial_hit);
  // The microkernels prefetch their next call's lines while the FMAs run: half of this traffic is
  // hidden (a copy made before the FMAs hides none).
  c.outer = N * share * kStreamExposed *
            (outer_cycles(in_outer, in.tensor, m, b.threads) + outer_cycles(wei_outer, W, m, b.threads) +
             outer_cycles(out_outer, in.output, m, b.threads));
  return c;
}

/// Cycles of a copy that reads `read` bytes of a tensor of `footprint` bytes from outside L2 and writes
/// `write` bytes, into L2 (`into_l2`: a thread's own buffer, read again right after) or out to memory.
constexpr double copy_cycles(double read, double footprint, double write, bool into_l2, const Machine& m,
                             int threads) {
  return outer_cycles(read, footprint, m, threads) + write / kLine * kCopyLineCycles +
         (into_l2 ? write / m.bw_l2 : outer_cycles(2 * write, 2 * write, m, threads));
}

}  // namespace model

/// A blocking with its estimated cost (block -1: no register block has the form asked for).
struct PlannedBlocking {
  Blocking b{};
  Cost cost{};
};

/// The blocking of least modelled cost for kernel geometry g read in form f: the register block
/// (least microkernel cycles over the plane), then the C chunk, K group and loop order (least
/// stream_cost among equal chunks of C, K groups of 1, 2, 4, ... times the block's K blocks (or all),
/// images
/// outside or inside the K groups). `own_images`: threads own whole images (fixed by the caller);
/// `whole`: one C chunk and one K group only (a working input made per row group); `max_kb_group`:
/// K groups whose size divides it (0: any); block -1 when none does.
constexpr PlannedBlocking best_blocking(const KernelGeometry& g, PixelForm f, const model::StreamData& in,
                                        const Machine& m, int threads, bool own_images, bool whole = false,
                                        int64_t max_kb_group = 0) {
  PlannedBlocking out{};
  Blocking best{};
  best.threads = threads;
  best.own_images = own_images;
  double best_step = -1;
  for (int blk = 0; blk < kNumFwdBlocks; ++blk) {
    if (f != PixelForm::kBlocked && !plane_in(f, blk, g.P, g.Q, g.group_kb())) continue;
    const double s = model::plane_work(blk, g, in.taps, m, overlaps_row_end(f)).step;
    if (best_step < 0 || s < best_step) {
      best_step = s;
      best.block = blk;
    }
  }
  if (best_step < 0) {
    out.b.block = -1;
    return out;
  }
  const RegBlock rb = kFwdBlocks[best.block];
  best.p_groups = div_up(g.P, rb.rb_p);
  best.overlap = overlaps_row_end(f);
  const model::PlaneWork w = model::plane_work(best.block, g, in.taps, m, best.overlap);
  double best_cost = -1;
  Blocking b = best;
  for (int64_t chunks = 1; chunks <= (whole ? 1 : g.Cr); chunks = chunks < 4 ? chunks + 1 : chunks * 2) {
    b.c_chunk = div_up(g.Cr, chunks);
    if (chunks > 1 && div_up(g.Cr, b.c_chunk) != chunks) continue;  // the same chunk as fewer chunks
    // K groups from the largest down: of equal costs, the fewest passes over the input win.
    int64_t top = rb.kbs;
    while (top < g.Kb) top *= 2;
    for (int64_t kg = top;; kg /= 2) {
      b.kb_group = kg < g.Kb ? kg : g.Kb;
      if (max_kb_group > 0 && max_kb_group % b.kb_group != 0) {
        if (kg <= rb.kbs) break;
        continue;
      }
      for (int inner = 0; inner < (g.N > 1 && !own_images ? 2 : 1); ++inner) {
        b.images_inner = inner == 1;
        // Column segments where the other items are too few to keep every thread busy.
        const int64_t items = (own_images ? g.N : g.N * div_up(g.Kb, b.kb_group) * b.p_groups);
        for (int64_t qg = 1; qg == 1 || (!whole && !own_images && items * qg < 8 * int64_t(threads)); qg *= 2) {
          if (!segments_fit(b.block, g.Q, qg, b.overlap)) break;
          b.q_groups = qg;
          const Cost c = model::stream_cost(g, b, w, in, m);
          if (best_cost < 0 || c.total() < best_cost) {
            best_cost = c.total();
            out = {b, c};
          }
        }
        b.q_groups = 1;
      }
      if (whole || kg <= rb.kbs) break;
    }
  }
  if (best_cost < 0) out.b.block = -1;
  return out;
}

}  // namespace hwyconv
