// bench/layers.hpp - convolution layers read from files in oneDNN benchdnn's descriptor syntax.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bench {

/// One 2-D convolution, with benchdnn's field names. Dilations are hwyconv's "1 = dense" (benchdnn's
/// dh0 is stored as 1). mb is 0 when the descriptor did not give one.
struct Layer {
  std::string name;        ///< n"..." without the quotes; the descriptor itself when absent
  std::string descriptor;  ///< the line as written in the file
  int64_t g = 1, mb = 0;
  int64_t ic = 0, ih = 0, iw = 0;
  int64_t oc = 0, oh = 0, ow = 0;
  int64_t kh = 0, kw = 0;
  int64_t sh = 1, sw = 1;
  int64_t ph = 0, pw = 0;      ///< top, left padding
  int64_t ph_r = 0, pw_r = 0;  ///< bottom, right padding (derived, as benchdnn does)
  int64_t dh = 1, dw = 1;

  /// Floating-point operations of one pass at minibatch `mb`: 2*mb*oc*oh*ow*(ic/g)*kh*kw.
  double flops(int64_t mb) const {
    return 2.0 * double(mb) * double(oc) * double(oh) * double(ow) * double(ic / g) * double(kh) * double(kw);
  }
  /// Compact shape for tables, e.g. "64->64 56x56 k3x3 s1 p1", "dw 32 112x112 k3x3 s1 p1" (depthwise),
  /// "g32 256->256 ..." (grouped).
  std::string shape() const;
};

/// Parses one benchdnn conv descriptor, e.g. mb16ic64ih56oc64oh56kh3ph1n"resnet_50:res2a_branch2b".
/// Fields g mb ic ih iw oc oh ow kh kw sh sw ph pw dh dw and n"name" in any order ('_' is ignored);
/// id/od/kd/sd/pd/dd (3-D) are rejected. Missing values are derived as benchdnn does: w from h (square),
/// oh from ih, kh, sh, ph, dh (ph = 0 then); ph from oh when only oh is given; bottom/right padding
/// = (oh-1)*sh - ih + (kh-1)*(dh+1) + 1 - ph, clamped at 0 (a negative one removes nothing). Throws
/// std::runtime_error naming the problem.
Layer parse_layer(const std::string& descriptor);

/// Reads a layer file: one descriptor per line; blank lines and lines starting with '#' are skipped.
/// Throws std::runtime_error with the file name and line number on a bad line.
std::vector<Layer> read_layers(const std::string& path);

}  // namespace bench
