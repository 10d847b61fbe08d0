// hwyconv/kernels/variants.hpp - THE list of microkernel variants compiled ahead of time.
//
// This is the one place to add a variant. The planner picks register blocks only from kFwdBlocks,
// the dispatch table instantiates exactly kFwdBlocks x kEpilogues for every Highway target, and the
// tests and the bench enumerate the same arrays. Adding a register block is a one-line change here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hwyconv {

/// A register block of the forward microkernel: RB_P output rows x RB_Q output columns, each pixel
/// holding 16 output channels (one 16-channel block: 1 vector on AVX-512, 2 on AVX2, 4 on SSE4/NEON).
/// Paper: SC18 section on forward propagation, "register blocking" (RB_P, RB_Q).
struct RegBlock {
  int rb_p;
  int rb_q;
  int kbs = 1;  ///< K blocks per call: register blocking over the output channels too
  constexpr int pixels() const { return rb_p * rb_q; }
};

/// Register blocks compiled for the forward (and, through it, backward-data) microkernel. The first
/// entries are "main" blocks of up to 28 pixels (28 accumulators + 1 weight + 1 broadcast register
/// fit the 32 registers of AVX-512 and Arm); the (1, 2^k) blocks cover remainders of Q; (1, 7) and
/// (1, 14) cover remainders of P under the (4, 7) and (2, 14) blocks. (5, 5) and (3, 3) tile the
/// small maps of detection heads (5x5 and 3x3 outputs) as one call, where rows of 2- and 1-pixel
/// blocks would leave the FMA pipes waiting on one or two accumulators; (1, 5) and (1, 3) are their
/// single-row forms and cover remainders of Q. The last ones also block over
/// K (kbs K blocks per call, as oneDNN's and LIBXSMM's kernels do): 14 pixels x 2 K blocks and
/// 7 x 3 load one broadcast per pixel and one weight vector per K block, 16 (or 10) loads for 28
/// (or 21) FMAs instead of 29 for 28; a K block left over runs the kbs 1 block of the same shape. On targets with 16 registers the
/// microkernel runs a block as several register-sized sub-blocks (see kernels/fwd-inl.h).
/// Define HWYCONV_SMALL_BLOCKS for an embedded build with five single-row blocks only (smaller code,
/// slower on AVX-512 and Arm, where 28-pixel blocks fill the registers). Every main block needs its
/// single-row (1, RB_Q) form and the powers of two for the remainders of Q.
#ifdef HWYCONV_SMALL_BLOCKS
inline constexpr RegBlock kFwdBlocks[] = {{1, 16}, {1, 8}, {1, 4}, {1, 2}, {1, 1}};
#else
inline constexpr RegBlock kFwdBlocks[] = {
    {1, 28}, {2, 14}, {4, 7}, {3, 7}, {5, 5}, {3, 3}, {1, 14}, {1, 7}, {1, 5}, {1, 3},
    {1, 16}, {1, 8}, {1, 4}, {1, 2}, {1, 1}, {1, 14, 2}, {1, 7, 3},
};
#endif
inline constexpr int kNumFwdBlocks = int(sizeof(kFwdBlocks) / sizeof(kFwdBlocks[0]));

/// Blocks also compiled with input pixels two blocks apart, for 1x1 stride-2 layers that read src
/// in place (FwdPlan::in_px): the 14-pixel K-blocked block and its one-K-block form (ResNet-50's
/// 1x1 stride-2 layers at 56x56 and 28x28; at 14x14 the images run inside the K groups, which
/// re-read the input, and keep the phase copy). A plan takes that path only when its blocks are all
/// in this list. Each block adds about 11 KiB per target to the binary.
#ifdef HWYCONV_SMALL_BLOCKS
inline constexpr RegBlock kStride2Blocks[] = {{1, 16}, {1, 8}};
#else
inline constexpr RegBlock kStride2Blocks[] = {{1, 14, 2}, {1, 14}};
#endif

/// Blocks also compiled for reading the folded channels of the first layer in place (fold_in_place):
/// input pixels a run-time number of floats apart (FwdArgs::in_px = stride_w * C) in the dense
/// H x W x C copy of an image, where the S*C folded channels of one filter row are the S*C floats from
/// the pixel's first column on. A row whose width is not a multiple of the block's is covered with its
/// last block moved back to end at the row's end (overlapping the one before: both compute the same
/// outputs, and the whole reduction is one call).
#ifdef HWYCONV_SMALL_BLOCKS
inline constexpr RegBlock kDenseBlocks[] = {{1, 16}, {1, 8}};
#else
inline constexpr RegBlock kDenseBlocks[] = {{1, 14, 2}, {1, 14}};
#endif

/// The pixel form template argument of the dense microkernels (input pixels FwdArgs::in_px floats
/// apart, FwdArgs::tap_channels channels per tap), where the blocked forms take 16 or 32.
inline constexpr size_t kDenseForm = 0;

/// Index of block (rb_p, rb_q, kbs) in kFwdBlocks, or -1.
constexpr int find_fwd_block(int rb_p, int rb_q, int kbs = 1) {
  for (int i = 0; i < kNumFwdBlocks; ++i)
    if (kFwdBlocks[i].rb_p == rb_p && kFwdBlocks[i].rb_q == rb_q && kFwdBlocks[i].kbs == kbs) return i;
  return -1;
}

/// Whether block b of kFwdBlocks is in `list` (kStride2Blocks, kDenseBlocks): compiled in that form.
template <size_t kN>
constexpr bool block_in(const RegBlock (&list)[kN], int b) {
  for (const RegBlock& r : list)
    if (r.rb_p == kFwdBlocks[b].rb_p && r.rb_q == kFwdBlocks[b].rb_q && r.kbs == kFwdBlocks[b].kbs) return true;
  return false;
}

/// The one-K-block form of block b (b itself when kbs is 1).
constexpr int single_kb_block(int b) { return find_fwd_block(kFwdBlocks[b].rb_p, kFwdBlocks[b].rb_q); }

/// Epilogue operations, applied in registers to a finished output block before its only final store,
/// in this order: + bias[k]; * scale[k] + shift[k]; + residual; ReLU (0 where below 0, NaN kept).
enum EpilogueOp : unsigned {
  kEpiNone = 0,
  kEpiBias = 1,
  kEpiScaleShift = 2,
  kEpiResidual = 4,
  kEpiRelu = 8,
  kEpiClamp = 16,
  /// Not an op: marks the generic instantiation, whose ops are read from the call's arguments at run
  /// time (one predictable branch per block), used for combinations not listed in kEpilogues.
  kEpiGeneric = 0x100,
};

/// Epilogues compiled as their own instantiation of the final store (the op mask is a template
/// argument, so an absent op costs nothing). Everything else runs through the kEpiGeneric one. The
/// reduction loop is compiled once per block and target; only the store is compiled per epilogue.
inline constexpr unsigned kEpilogues[] = {
    kEpiNone, kEpiBias, kEpiBias | kEpiRelu, kEpiGeneric,
};
inline constexpr int kNumEpilogues = int(sizeof(kEpilogues) / sizeof(kEpilogues[0]));

/// Index in kEpilogues of the instantiation that runs the op mask `ops`.
constexpr int find_epilogue(unsigned ops) {
  for (int i = 0; i < kNumEpilogues; ++i)
    if (kEpilogues[i] == ops) return i;
  for (int i = 0; i < kNumEpilogues; ++i)
    if (kEpilogues[i] == kEpiGeneric) return i;
  return -1;
}

}  // namespace hwyconv
