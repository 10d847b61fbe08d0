// hwyconv/plan/fwd_plan.hpp - the plan of a forward-microkernel pass over a working input made from src:
// what the forward implementations and the weight update share. The microkernel always runs a stride-1,
// unpadded convolution; the working input says how that is made from the user's src (in place, phase
// images, or folded channels), the kernel geometry where its calls read and write, the blocking how
// its loop nest runs.
#pragma once

#include <array>
#include <cstdint>

#include "hwyconv/desc.hpp"
#include "hwyconv/kernels/variants.hpp"
#include "hwyconv/plan/blocking.hpp"
#include "hwyconv/plan/kernel_plan.hpp"
#include "hwyconv/plan/model.hpp"

namespace hwyconv {

/// How the microkernels see the source tensor.
enum class InputMode : uint8_t {
  /// The working input is src itself, read in place (stride 1 without padding; or a stride read with
  /// every other pixel, KernelGeometry::in_px = 32, for 1x1 stride 2 without padding).
  kDirect,
  /// src is copied into zero-padded "phase images", one per distinct (r*dil_h mod stride_h,
  /// s*dil_w mod stride_w). In phase (a, b), pixel (y, x) is padded src pixel (y*stride_h + a,
  /// x*stride_w + b), so every tap of a strided convolution becomes a unit-stride read and no FMA is
  /// spent on a skipped pixel.
  kPhases,
  /// Small C (e.g. the first layer, C = 3): (r, s, c) are folded into one channel dimension of
  /// div_up(R*S*C, 16) blocks (an im2col over the taps) and the convolution becomes 1x1, instead of
  /// padding C up to 16 for each of the R*S taps. Made from a dense H x W x C copy of each image.
  kFold,
};

/// How the working input is made from src.
struct WorkingInput {
  InputMode mode = InputMode::kDirect;
  /// kPhases: phase images per C block, their size, and the row/column phase of each.
  int64_t phases = 1, Hph = 0, Wph = 0;
  std::array<int64_t, kMaxTaps> phase_a{}, phase_b{};
  /// kFold: the zero-padded dense H x W x C copy of one image.
  int64_t dense_h = 0, dense_w = 0;
  /// kFold read in place: the microkernels read the S*C folded channels of filter row r straight
  /// from the image's dense copy (one tap per r, tap_channels = S*C, pixels stride_w * C floats apart;
  /// the weights are the folded ones, [Kb][R*S*C][16 o]), so the folded rows are never written and no
  /// FMA is spent on the padding of R*S*C up to 16. The working input is the dense copies.
  bool fold_in_place = false;
  /// kFold: src is nhwc ([N][H][W][C], unpadded channels) instead of nChw16c; the dense copy of an
  /// image is then its rows with the padding around them.
  bool src_nhwc = false;
};

/// A forward-microkernel plan (forward, and the working input of the weight update). Working input
/// [N][Cr][phases][Hph][Wph][16] (kPhases), src itself (kDirect), or folded rows [N][P][Cr][Q][16]
/// followed by the dense copies (kFold; the dense copies only when read in place); weights
/// [Kb][Cr][taps][16 i][16 o] (OIhw16i16o unless folded); dst nChw16c [N][Kb][P][Q][16].
struct FwdPlan {
  ConvDesc desc{};
  WorkingInput in{};
  KernelGeometry g{};
  Blocking b{};
  Taps tap{};
  int64_t scratch_in = 0;   ///< floats of working input (0 in place), with the kFold dense copies
  int64_t scratch_wei = 0;  ///< floats of folded weights (kFold only)
  int64_t ring_size = 0;    ///< floats per thread of a ring of folded rows and its dense copy
  Cost cost{};              ///< estimated cycles (plan/model.hpp)

  constexpr RegBlock rb() const { return kFwdBlocks[b.block]; }
  /// Form of the microkernels this plan runs.
  constexpr PixelForm form() const {
    return in.fold_in_place ? PixelForm::kDense : (g.in_px == 2 * kBlock ? PixelForm::kStride2 : PixelForm::kBlocked);
  }
};

namespace plan_detail {

/// The source the taps of a forward plan refer to: src itself, the output pixel stepping by the
/// strides; the taps a grid of rows of `tap_cols`.
constexpr void set_source(KernelGeometry& g, const ConvDesc& d, int64_t tap_cols) {
  g.tap_cols = tap_cols;
  g.src_rows = d.H;
  g.src_cols = d.W;
  g.row_step = d.stride_h;
  g.col_step = d.stride_w;
}

/// Output geometry of the forward pass (dst nChw16c) and the image count.
constexpr void set_output(FwdPlan& p) {
  const ConvDesc& d = p.desc;
  p.g.N = d.N;
  p.g.P = d.P();
  p.g.Q = d.Q();
  p.g.Kb = d.Kb();
  p.g.out_row = p.g.Q * kBlock;
  p.g.out_kb = p.g.P * p.g.Q * kBlock;
  p.g.out_n = p.g.Kb * p.g.out_kb;
}

}  // namespace plan_detail

/// The working input of src in place (stride 1 without padding) or as phase images, with one tap
/// per (r, s), weights OIhw16i16o (grouped: gOIhw16i16o). Blocking is left to the caller.
constexpr FwdPlan blocked_input_plan(const ConvDesc& d, int threads) {
  FwdPlan p{};
  p.desc = d;
  p.b.threads = threads < 1 ? 1 : threads;
  plan_detail::set_output(p);
  const bool unit = d.stride_h == 1 && d.stride_w == 1;
  const bool unpadded = d.pad_t == 0 && d.pad_l == 0 && d.pad_b == 0 && d.pad_r == 0;
  WorkingInput& in = p.in;
  in.mode = unit && unpadded ? InputMode::kDirect : InputMode::kPhases;
  in.Hph = in.mode == InputMode::kDirect ? d.H : p.g.P + ((d.R - 1) * d.dil_h) / d.stride_h;
  in.Wph = in.mode == InputMode::kDirect ? d.W : p.g.Q + ((d.S - 1) * d.dil_w) / d.stride_w;
  in.phases = 0;
  // Grouped: the blocked weight groups (wei_block_groups), each reducing over its own C blocks.
  p.g.groups = wei_block_groups(d.groups, d.C, d.K);
  p.g.Cr = div_up(d.C / p.g.groups, kBlock);
  p.g.taps = d.R * d.S;
  for (int64_t r = 0; r < d.R; ++r) {
    for (int64_t s = 0; s < d.S; ++s) {
      const int64_t a = (r * d.dil_h) % d.stride_h, b = (s * d.dil_w) % d.stride_w;
      int64_t ph = 0;
      while (ph < in.phases && !(in.phase_a[size_t(ph)] == a && in.phase_b[size_t(ph)] == b)) ++ph;
      if (ph == in.phases) {
        in.phase_a[size_t(ph)] = a;
        in.phase_b[size_t(ph)] = b;
        ++in.phases;
      }
      const int64_t t = r * d.S + s;
      p.tap[size_t(t)].in_off =
          ph * in.Hph * in.Wph * kBlock + ((r * d.dil_h) / d.stride_h * in.Wph + (s * d.dil_w) / d.stride_w) * kBlock;
      p.tap[size_t(t)].w_off = t * kBlock * kBlock;
      p.tap[size_t(t)].row = int32_t(r * d.dil_h - d.pad_t);
      p.tap[size_t(t)].col = int32_t(s * d.dil_w - d.pad_l);
    }
  }
  plan_detail::set_source(p.g, d, d.S);
  p.g.in_row = in.Wph * kBlock;
  p.g.in_cb = in.phases * in.Hph * in.Wph * kBlock;
  p.g.in_n = d.Cb() * p.g.in_cb;
  p.g.wei_cb = p.g.taps * kBlock * kBlock;
  p.g.wei_kb = p.g.Cr * p.g.wei_cb;
  p.scratch_in = in.mode == InputMode::kDirect ? 0 : d.N * p.g.in_n;
  return p;
}

/// Whether src can be read in place with every other pixel of every other row (1x1, stride 2, no
/// padding): KernelGeometry::in_px = 32 floats, the kStride2Blocks.
constexpr bool strided_in_place_fits(const ConvDesc& d) {
  const bool unpadded = d.pad_t == 0 && d.pad_l == 0 && d.pad_b == 0 && d.pad_r == 0;
  return d.R * d.S == 1 && d.stride_h == 2 && d.stride_w == 2 && unpadded;
}

/// Turns a blocked_input_plan of a layer that strided_in_place_fits into one reading src in place.
constexpr void set_strided_in_place(FwdPlan& p) {
  const ConvDesc& d = p.desc;
  p.in.mode = InputMode::kDirect;
  p.g.in_px = 2 * kBlock;
  p.g.in_row = d.stride_h * d.W * kBlock;
  p.g.in_cb = d.H * d.W * kBlock;
  p.g.in_n = d.Cb() * p.g.in_cb;
  p.scratch_in = 0;
}

/// Whether the output pixels of an image can be run as one row of P*Q pixels (1x1, stride 1, no
/// padding): output pixel j reads input pixel j, so the rows of src and dst are contiguous and the
/// register blocks tile P*Q instead of each short row (a 3x3 map is one 9-pixel row, not three rows
/// of a 2-pixel and a 1-pixel block).
constexpr bool flat_fits(const ConvDesc& d) {
  const bool unpadded = d.pad_t == 0 && d.pad_l == 0 && d.pad_b == 0 && d.pad_r == 0;
  return d.R * d.S == 1 && d.stride_h == 1 && d.stride_w == 1 && unpadded;
}

/// Turns a geometry of a layer that flat_fits (input read in place, output pixels P x Q) into one
/// row of P*Q pixels.
constexpr void set_flat(KernelGeometry& g) {
  g.Q *= g.P;
  g.P = 1;
  g.src_rows = 1;
  g.src_cols = g.Q;
  g.in_row = g.Q * g.in_px;
  g.out_row = g.Q * g.out_px;
}

/// The working input of folded channels (InputMode::kFold): Cr = div_up(R*S*C, 16) blocks as one
/// output row's folded rows [N][P][Cr][Q][16], one tap; folded weights [Kb][Cr][16 i][16 o].
constexpr FwdPlan fold_plan(const ConvDesc& d, int threads) {
  FwdPlan p{};
  p.desc = d;
  p.b.threads = threads < 1 ? 1 : threads;
  plan_detail::set_output(p);
  p.in.mode = InputMode::kFold;
  p.in.Hph = p.g.P;
  p.in.Wph = p.g.Q;
  p.in.dense_h = (p.g.P - 1) * d.stride_h + (d.R - 1) * d.dil_h + 1;
  p.in.dense_w = (p.g.Q - 1) * d.stride_w + (d.S - 1) * d.dil_w + 1;
  p.g.Cr = round_up(d.R * d.S * d.C, kBlock) / kBlock;
  p.g.taps = 1;
  p.tap[0] = {0, 0};
  p.g.in_row = p.g.Cr * p.g.Q * kBlock;
  p.g.in_cb = p.g.Q * kBlock;
  p.g.in_n = p.g.P * p.g.in_row;
  p.g.wei_cb = kBlock * kBlock;
  p.g.wei_kb = p.g.Cr * p.g.wei_cb;
  p.scratch_in = d.N * p.g.in_n + d.N * p.in.dense_h * p.in.dense_w * d.C + 8;  // + kFoldSlack
  p.scratch_wei = p.g.Kb * p.g.wei_kb;
  return p;
}

/// Whether a fold_plan can read its folded channels in place: the S*C channels of a filter row
/// contiguous in the dense copy (dil_w 1); pixels stride_w * C floats apart.
constexpr bool fold_in_place_fits(const ConvDesc& d) { return d.dil_w == 1; }

/// Turns a fold_plan into the in-place one (WorkingInput::fold_in_place): one tap per filter row r,
/// reading the S*C floats from the pixel's first column of the image's dense copy, with the folded
/// weights (wei_kb unchanged, channel f = (r*S + s)*C + c at f*16).
constexpr void set_fold_in_place(FwdPlan& p) {
  const ConvDesc& d = p.desc;
  p.in.fold_in_place = true;
  p.g.taps = d.R;
  p.g.tap_channels = d.S * d.C;
  for (int64_t r = 0; r < d.R; ++r)
    p.tap[size_t(r)] = {r * d.dil_h * p.in.dense_w * d.C, r * d.S * d.C * kBlock, int32_t(r * d.dil_h - d.pad_t), 0};
  // One tap per filter row: a row of the dense copy that is padding is skipped; its columns are
  // folded into the tap's channels.
  plan_detail::set_source(p.g, d, 1);
  p.g.src_cols = kUnbounded;
  p.g.Cr = 1;
  p.g.wei_cb = p.g.wei_kb;  // one "C block": all R*S*C folded channels
  p.g.in_row = d.stride_h * p.in.dense_w * d.C;
  p.g.in_px = d.stride_w * d.C;
  p.g.in_cb = 0;
  p.g.in_n = p.in.dense_h * p.in.dense_w * d.C;
}

/// Bytes of one image of src in nChw16c (or nhwc, unpadded channels).
constexpr double src_image_bytes(const ConvDesc& d, bool nhwc = false) {
  return nhwc ? double(d.H * d.W * d.C) * 4 : double(d.Cb() * d.H * d.W) * model::kLine;
}

/// What the stream model needs of a forward plan's working input: its bytes per image as the
/// microkernels bring them into L2 (in place at stride 2, every other line of the rows used, and the
/// adjacent line the hardware fetches with it: half the image), whether each thread makes its images
/// in its own buffer right before computing them (`fresh`), and the output.
constexpr model::StreamData fwd_stream_data(const FwdPlan& p, bool fresh) {
  const ConvDesc& d = p.desc;
  model::StreamData s;
  s.image = p.in.mode == InputMode::kDirect ? src_image_bytes(d) / (p.g.in_px == 2 * kBlock ? 2 : 1)
                                            : double(p.g.in_n) * 4;
  if (p.b.ring_rows > 0) s.image = double(p.g.Cr * p.g.Q * kBlock * p.b.ring_rows) * 4;
  s.tensor = s.image * double(d.N);
  s.fresh = fresh;
  s.output = double(d.N * d.Kb() * d.P() * d.Q()) * model::kLine;
  s.taps = some_tap_skipped(p.g, p.tap.data()) ? p.tap.data() : nullptr;
  return s;
}

}  // namespace hwyconv
