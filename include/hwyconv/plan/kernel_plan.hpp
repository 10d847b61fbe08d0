// hwyconv/plan/kernel_plan.hpp - the values a plan hands to the forward microkernels and their kernel
// stream: the geometry of the stride-1, unpadded convolution they run over a working input, and the
// blocking (register block, cache blocking, loop order, thread partition) of its loop nest.
//
// Every implementation that runs the forward microkernels (forward, each phase of backward data, the
// 1x1 convolution of backward data by col2im) describes its work in these terms: "output blocks" and
// "reduction blocks" are those of the microkernel, whatever the pass calls them.
#pragma once

#include <array>
#include <cstdint>

#include "hwyconv/desc.hpp"

namespace hwyconv {

/// One filter tap as the microkernel sees it: where it reads in the working input (relative to the
/// output pixel's position) and in the weights (relative to the reduction block), in floats.
struct Tap {
  int64_t in_off = 0;
  int64_t w_off = 0;
  friend constexpr bool operator==(const Tap&, const Tap&) = default;
};

/// The taps of a plan (R*S at most).
using Taps = std::array<Tap, kMaxTaps>;

/// Geometry of the convolution the forward microkernels run: N images of P x Q outputs in Kb blocks of
/// 16 channels, each reducing Cr blocks x taps x tap_channels inputs. Offsets and strides in floats.
/// Working input [N][Cr][...]: in_n, in_cb, in_row apart, input pixels in_px apart; weights
/// [Kb][Cr][taps][tap_channels][16] (wei_kb, wei_cb); output pixel (n, kb, p, q) at out_base +
/// n*out_n + kb*out_kb + p*out_row + q*out_px.
struct KernelGeometry {
  int64_t N = 0, P = 0, Q = 0;
  int64_t Cr = 0, Kb = 0;
  int64_t taps = 0;
  int64_t tap_channels = kBlock;  ///< channels one tap reduces per block: 16, or S*C (folded, in place)
  int64_t in_row = 0, in_cb = 0, in_n = 0, in_px = kBlock;
  int64_t wei_cb = 0, wei_kb = 0;
  int64_t out_row = 0, out_kb = 0, out_n = 0, out_px = kBlock, out_base = 0;
  friend constexpr bool operator==(const KernelGeometry&, const KernelGeometry&) = default;
};

/// The schedule of the kernel stream's loop nest (paper SC18: register blocking, cache blocking and
/// loop order, threading). Per thread: images n, K groups, C chunks, row groups, pixel blocks, the K
/// blocks of the group (K groups outside the images with images_inner).
struct Blocking {
  int threads = 1;
  int block = 0;           ///< main register block, index into kFwdBlocks
  int64_t c_chunk = 1;     ///< reduction blocks per microkernel call
  int64_t p_groups = 0;    ///< row groups: div_up(P, RB_P)
  int64_t kb_group = 1;    ///< K blocks run back to back on one pixel block
  /// Loop order: images inside the K groups, so that a K group's weights stay in cache across the
  /// minibatch, instead of all weights streaming once per image.
  bool images_inner = false;
  /// Threads own whole images (the partition is over images), so that each thread can make an
  /// image's working input right before computing it.
  bool own_images = false;
  /// Stream offsets have no image term: each thread's buffer holds the one image it computes.
  bool thread_image = false;
  /// Stream rows are slots of a ring of ring_rows rows (row p reads slot p % ring_rows); 0: none.
  int64_t ring_rows = 0;
  friend constexpr bool operator==(const Blocking&, const Blocking&) = default;
};

}  // namespace hwyconv
