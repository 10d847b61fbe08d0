// hwyconv/kernels/args.hpp - what a microkernel receives (target-independent types).
//
// The per-target microkernels (kernels/fwd-inl.h) are reached through a KernelTable of function
// pointers, one table per Highway target, selected at run time by the CPU (dispatch/dispatch.hpp).
#pragma once

#include <cstdint>

#include "hwyconv/kernels/variants.hpp"
#include "hwyconv/plan/kernel_plan.hpp"
#include "hwyconv/stream/kernel_stream.hpp"

namespace hwyconv {

/// Loop-invariant arguments of the forward microkernels for one layer execution. Pointers are the
/// bases that StreamEntry offsets are added to; bias/scale/shift are padded to Kb*16 floats.
struct FwdArgs {
  const float* in = nullptr;        ///< working input (see FwdPlan)
  const float* wei = nullptr;       ///< weights [Kb][Cr][taps][16 i][16 o]
  float* out = nullptr;             ///< dst nChw16c
  const float* bias = nullptr;      ///< kEpiBias: [Kb*16]
  const float* scale = nullptr;     ///< kEpiScaleShift: [Kb*16]
  const float* shift = nullptr;     ///< kEpiScaleShift: [Kb*16]
  const float* residual = nullptr;  ///< kEpiResidual: nChw16c, same shape as dst
  const Tap* tap = nullptr;         ///< taps[taps], a grid of rows of tap_cols (StreamEntry's ranges)
  int64_t taps = 0;
  int64_t tap_cols = 1;
  int64_t in_row = 0, in_cb = 0, wei_cb = 0, out_row = 0;
  int64_t wei_kb = 0, out_kb = 0;   ///< strides of one K block (blocks with kbs > 1)
  int64_t out_px = kBlock;          ///< floats between output pixels of a row
  int64_t in_px = kBlock;           ///< floats between input pixels of a row (read by the dense form)
  int64_t tap_channels = kBlock;    ///< channels per tap and C block (S*C: FwdPlan::fold_in_place)
  /// Output channels that exist (K); the final store zeroes the lanes at or past it. INT64_MAX
  /// where the output has no padding lanes to keep (a column buffer).
  int64_t k_valid = INT64_MAX;
  float clamp_lo = 0, clamp_hi = 0;  ///< kEpiClamp bounds
  unsigned ops = 0;                 ///< op mask, read by the kEpiGeneric instantiation only
  int epilogue = 0;                 ///< index into kEpilogues of the instantiation to run
};

/// A forward microkernel: runs call `e` of a kernel stream; `l1` and `l2` are the calls whose data
/// it prefetches into L1 and L2 (the next one, and kL2PrefetchDistance ahead).
using FwdKernelFn = void (*)(const FwdArgs& a, const StreamEntry& e, const StreamEntry& l1,
                             const StreamEntry& l2);

/// Arguments of the weight-update microkernel for one execution (see kernels/bwd_w-inl.h).
struct BwdWArgs {
  const float* in = nullptr;    ///< working input of the forward plan
  const float* ddst = nullptr;  ///< nChw16c [N][Kb][P][Q][16]
  const float* mask = nullptr;  ///< optional ReLU output, same layout as ddst: ddst counts where > 0
  float* dwei = nullptr;        ///< [Kb][Cr][taps][16 i][16 o]
  float* dbias = nullptr;       ///< [Kb*16] or nullptr
  const Tap* tap = nullptr;
  int64_t in_row = 0, in_cb = 0, in_n = 0;
  int64_t P = 0, Q = 0, ddst_kb = 0, ddst_n = 0;
  int64_t wei_kb = 0, wei_cb = 0;
  int64_t n0 = 0, n1 = 0;       ///< images reduced over by this call
  int64_t p0 = 0, p1 = 0;       ///< output rows reduced over by this call
  int64_t in_p0 = 0;            ///< output row whose input row `in` starts with (a row-block ring)
  int64_t tap_channels = 0;     ///< in place (FwdPlan::fold_in_place): the S*C channels of a tap
  int64_t in_px = kBlock;       ///< floats between input pixels (blocked: 16, or 32 for 1x1 stride 2)
  int64_t pf_rows = 0;          ///< rows ahead whose src and ddst the kernel prefetches (0: none)
  bool accumulate = false;      ///< add into dwei / dbias instead of overwriting
};

/// One weight-update task: the 16 x 16 blocks (K blocks [kb, kb + kbs), C block cb) of tap t.
struct BwdWTask {
  int64_t kb = 0, cb = 0, t = 0;
  /// The working input's C block the task reads: cb, or with groups its group's first block + cb
  /// (cb itself indexes the weights of K block kb).
  int64_t src_cb = 0;
  int64_t kbs = 1;  ///< K blocks, 1 .. KernelTable::bwd_w_kbs
  /// The output rows [p_lo, p_hi) and columns [q_lo, q_hi) for which tap t reads the source (the
  /// others read only padding and add nothing).
  int64_t p_lo = 0, p_hi = 0, q_lo = 0, q_hi = 0;
};

/// A weight-update microkernel: computes task t (and dbias[kb] when t is its (cb 0, tap 0) task).
using BwdWKernelFn = void (*)(const BwdWArgs& a, const BwdWTask& t);

/// A run of pixels of a depthwise row call that read the same taps: pixels j in [j0, j1) read taps k
/// = 0 .. taps - 1 of every tap row, the input at in_off + k*DwArgs::tap_in + j*DwArgs::in_px and
/// the weights at w_off + k*DwArgs::tap_w (floats from DwArgs::in and DwArgs::wei). Pixels near the
/// row's ends have fewer taps (the others would read padding).
struct DwSegment {
  int64_t j0 = 0, j1 = 0, taps = 0;
  int64_t in_off = 0, w_off = 0;
};

/// Arguments of the depthwise row microkernel (kernels/depthwise-inl.h): one row of pixels of cbs
/// channel blocks, out[j*out_px] = epilogue(sum over tap rows and taps of in * wei), each channel its
/// own group. Forward: a row of dst; backward data: the pixels of a row of dsrc in one column phase
/// (out_px = stride_w*16), each tap a weight times a ddst vector. The epilogue fields are FwdArgs's.
struct DwArgs {
  const float* in = nullptr;        ///< the first tap row's input of channel block 0
  const float* wei = nullptr;       ///< the first tap row's weights of channel block 0 (Goihw16g)
  float* out = nullptr;             ///< pixel 0 of channel block 0
  const DwSegment* seg = nullptr;   ///< the row's pixels, in runs of the same taps
  int64_t segs = 0;
  int64_t rows = 0;                 ///< tap rows
  int64_t row_in = 0, row_w = 0;    ///< floats between tap rows (input, weights)
  int64_t tap_in = 0, tap_w = 0;    ///< floats between the taps of a tap row (input, weights)
  int64_t in_px = kBlock, out_px = kBlock;  ///< floats between pixels j
  int64_t cbs = 1;                  ///< channel blocks of the call
  int64_t in_cb = 0, out_cb = 0, wei_cb = 0;  ///< floats between channel blocks
  const float* bias = nullptr;      ///< kEpiBias: [Kb*16] (as FwdArgs)
  const float* scale = nullptr;     ///< kEpiScaleShift: [Kb*16]
  const float* shift = nullptr;
  const float* residual = nullptr;  ///< kEpiResidual: laid out as out
  int64_t ch = 0;                   ///< first channel of block 0 (index into bias, scale, shift)
  int64_t k_valid = INT64_MAX;      ///< channels that exist; lanes at or past it are stored as 0
  float clamp_lo = 0, clamp_hi = 0;  ///< kEpiClamp bounds
  unsigned ops = 0;                 ///< EpilogueOp mask
};

/// A depthwise row microkernel.
using DwRowFn = void (*)(const DwArgs& a);

/// Arguments of the depthwise weight-update microkernel: for one 16-channel block, one tap row r
/// and taps s0 .. s0 + kSn - 1 of it, dwei[t] = sum over images, output rows [p_lo, p_hi) and
/// columns q of src[n][p*stride_h + r*dil_h - pad_t][q*stride_w + s*dil_w - pad_l] * ddst[n][p][q].
struct DwBwdWArgs {
  const float* src = nullptr;   ///< channel block's plane of image 0: nChw16c
  const float* ddst = nullptr;  ///< channel block's plane of image 0: nChw16c
  float* dwei = nullptr;        ///< where tap s0's 16 floats go (Goihw16g; the next taps follow)
  int64_t N = 1, src_n = 0, ddst_n = 0;  ///< images and the floats between them
  int64_t W = 0, Q = 0;         ///< row lengths, in pixels
  int64_t p_lo = 0, p_hi = 0;   ///< output rows whose input row is inside src
  int64_t h0 = 0, stride_h = 1; ///< input row of output row p: h0 + p*stride_h
  int64_t w0 = 0, stride_w = 1, dil_w = 1;  ///< input column of (q, tap s0 + i): w0 + q*stride_w + i*dil_w
  int64_t q_lo[4] = {}, q_hi[4] = {};  ///< per tap of the call: columns q that read inside src
};

/// A depthwise weight-update microkernel (one per tap count kSn = 1 .. 4).
using DwBwdWFn = void (*)(const DwBwdWArgs& a);

/// The microkernels of one Highway target: fwd[block] follows kFwdBlocks. Each contains every
/// epilogue of kEpilogues (chosen by FwdArgs::epilogue once per block).
struct KernelTable {
  FwdKernelFn fwd[kNumFwdBlocks];
  FwdKernelFn fwd_s2[kNumFwdBlocks];  ///< input pixel stride 2: the kStride2Blocks, null elsewhere
  FwdKernelFn fwd_dense[kNumFwdBlocks];  ///< fold_in_place: the kDenseBlocks, null elsewhere
  BwdWKernelFn bwd_w[2];  ///< [0]: plain ddst, [1]: ddst masked by a ReLU output
  BwdWKernelFn bwd_w_dense[2];  ///< the same, reading dense rows (fold_in_place)
  DwRowFn dw_row;               ///< depthwise forward and backward data
  DwBwdWFn dw_bwd_w[4];         ///< depthwise weight update, [kSn - 1]
  const char* target;  ///< Highway's name of the target these were compiled for ("AVX3", "NEON", ...)
  int max_pixels;      ///< pixels per register sub-block on this target (register budget)
  int vec_per_block;   ///< vectors that hold 16 channels on this target
  int bwd_w_kbs;       ///< K blocks one weight-update call can take (BwdWTask::kbs)
};

}  // namespace hwyconv
