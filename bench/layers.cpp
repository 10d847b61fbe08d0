// bench/layers.cpp - benchdnn conv descriptor parsing (see layers.hpp for the rules).
#include "layers.hpp"

#include <cctype>
#include <fstream>
#include <stdexcept>
#include <string_view>

namespace bench {
namespace {

/// Removes leading and trailing white space.
std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

/// Output size along one dimension (benchdnn's dilation d is 0-based: 0 = dense).
int64_t out_size(int64_t i, int64_t k, int64_t s, int64_t p_l, int64_t p_r, int64_t d) {
  return (i + p_l + p_r - ((k - 1) * (d + 1) + 1)) / s + 1;
}

/// The raw fields of a descriptor; -1 = not given (pads), 0 = not given (sizes), as in benchdnn.
struct Raw {
  int64_t g = 1, mb = 0, ic = 0, ih = 0, iw = 0, oc = 0, oh = 0, ow = 0, kh = 0, kw = 0;
  int64_t sh = 0, sw = 0, ph = -1, pw = -1, dh = -1, dw = -1;
};

/// Resolves one spatial dimension in place: output from input, or padding from output. i, k: sizes;
/// s: stride; p: left pad (-1 = derive); d: 0-based dilation; o: output (0 = derive). Returns the
/// right pad.
int64_t resolve_dim(const char* what, int64_t i, int64_t k, int64_t s, int64_t& p, int64_t d, int64_t& o) {
  if (i <= 0 || k <= 0) throw std::runtime_error(std::string("needs i") + what + " and k" + what);
  const int64_t extent = (k - 1) * (d + 1) + 1;
  if (o <= 0) {
    if (p < 0) p = 0;
    o = out_size(i, k, s, p, p, d);
    if (o <= 0) throw std::runtime_error(std::string("o") + what + " would be < 1");
  } else if (p < 0) {
    p = ((o - 1) * s - i + extent) / 2;
  }
  int64_t p_r = (o - 1) * s - i + extent - p;
  if (p_r < 0) {
    // Input rows past the last window are simply not read; with p_r = 0 the output must still be o.
    p_r = 0;
    if (out_size(i, k, s, p, 0, d) != o)
      throw std::runtime_error(std::string("o") + what + " needs a negative right padding");
  }
  return p_r;
}

}  // namespace

std::string Layer::shape() const {
  // Appended piece by piece: gcc 12 warns (-Wrestrict, a false positive) on "literal" + std::string.
  std::string s;
  if (g > 1 && g == ic && g == oc) {
    s += "dw ";
    s += std::to_string(ic);
  } else {
    if (g > 1) {
      s += "g";
      s += std::to_string(g);
      s += " ";
    }
    s += std::to_string(ic);
    s += "->";
    s += std::to_string(oc);
  }
  s += ' ';
  s += std::to_string(ih) + "x" + std::to_string(iw) + " k" + std::to_string(kh) + "x" + std::to_string(kw);
  s += sh == sw ? " s" + std::to_string(sh) : " s" + std::to_string(sh) + "x" + std::to_string(sw);
  if (ph || pw || ph_r || pw_r) {
    const bool sym = ph == pw && ph == ph_r && pw == pw_r;
    s += sym ? " p" + std::to_string(ph)
             : " p" + std::to_string(ph) + "," + std::to_string(pw) + "," + std::to_string(ph_r) + "," +
                   std::to_string(pw_r);
  }
  if (dh != 1 || dw != 1) s += " d" + std::to_string(dh) + "x" + std::to_string(dw);
  return s;
}

Layer parse_layer(const std::string& descriptor) {
  static constexpr std::string_view kFields[] = {"g",  "mb", "ic", "ih", "iw", "oc", "oh", "ow",
                                                 "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw"};
  static constexpr std::string_view k3d[] = {"id", "od", "kd", "sd", "pd", "dd"};
  Raw r;
  int64_t* slot[] = {&r.g,  &r.mb, &r.ic, &r.ih, &r.iw, &r.oc, &r.oh, &r.ow,
                     &r.kh, &r.kw, &r.sh, &r.sw, &r.ph, &r.pw, &r.dh, &r.dw};
  Layer l;
  l.descriptor = descriptor;
  std::string_view s = descriptor;
  auto fail = [&](const std::string& why) {
    throw std::runtime_error("bad descriptor '" + descriptor + "': " + why);
  };
  while (!s.empty()) {
    if (s.front() == '_') {
      s.remove_prefix(1);
      continue;
    }
    bool matched = false;
    for (size_t f = 0; f < std::size(kFields) && !matched; ++f) {
      const std::string_view key = kFields[f];
      if (s.substr(0, key.size()) != key) continue;
      s.remove_prefix(key.size());
      size_t digits = 0;
      while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
      if (digits == 0 || digits > 9) fail(std::string(key) + " needs a number");
      *slot[f] = std::stoll(std::string(s.substr(0, digits)));
      s.remove_prefix(digits);
      matched = true;
    }
    if (matched) continue;
    for (std::string_view key : k3d)
      if (s.substr(0, key.size()) == key) fail("3-D descriptors (" + std::string(key) + ") are not supported");
    if (s.front() == 'n') {
      std::string name = trim(s.substr(1));
      if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = name.substr(1, name.size() - 2);
      l.name = name;
      break;
    }
    fail("unknown field at '" + std::string(s) + "'");
  }
  if (r.ic <= 0 || r.oc <= 0) fail("ic and oc are required");
  if (r.g < 1 || r.ic % r.g != 0 || r.oc % r.g != 0) fail("g must divide ic and oc");

  // A dimension is absent when none of its fields were given (benchdnn's no_h / no_w).
  const bool no_h = !r.ih && !r.kh && !r.oh && r.dh < 0 && r.sh == 0 && r.ph < 0;
  const bool no_w = !r.iw && !r.kw && !r.ow && r.dw < 0 && r.sw == 0 && r.pw < 0;
  if (no_h && no_w) fail("needs a spatial size (ih) and a kernel (kh)");
  if (no_w) {  // square: w copies h
    r.iw = r.ih, r.kw = r.kh, r.ow = r.oh, r.sw = r.sh, r.pw = r.ph, r.dw = r.dh;
  } else if (no_h) {  // 1-D along w: h is a unit dimension
    r.ih = r.kh = r.oh = r.sh = 1, r.ph = 0, r.dh = 0;
  }
  if (r.sh == 0) r.sh = 1;
  if (r.sw == 0) r.sw = 1;
  if (r.dh < 0) r.dh = 0;
  if (r.dw < 0) r.dw = 0;
  try {
    l.ph_r = resolve_dim("h", r.ih, r.kh, r.sh, r.ph, r.dh, r.oh);
    l.pw_r = resolve_dim("w", r.iw, r.kw, r.sw, r.pw, r.dw, r.ow);
  } catch (const std::runtime_error& e) {
    fail(e.what());
  }
  l.g = r.g, l.mb = r.mb, l.ic = r.ic, l.ih = r.ih, l.iw = r.iw, l.oc = r.oc, l.oh = r.oh, l.ow = r.ow;
  l.kh = r.kh, l.kw = r.kw, l.sh = r.sh, l.sw = r.sw, l.ph = r.ph, l.pw = r.pw;
  l.dh = r.dh + 1, l.dw = r.dw + 1;
  if (l.name.empty()) l.name = descriptor;
  return l;
}

std::vector<Layer> read_layers(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open layer file '" + path + "'");
  std::vector<Layer> layers;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string t = trim(line);
    if (t.empty() || t.front() == '#') continue;
    try {
      layers.push_back(parse_layer(t));
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(path + ":" + std::to_string(number) + ": " + e.what());
    }
  }
  if (layers.empty()) throw std::runtime_error("no layers in '" + path + "'");
  return layers;
}

}  // namespace bench
