// examples/fashion_mnist/curve.hpp - the learning curve: one row per epoch, written as CSV and as a
// hand-made SVG plot (loss on the left, train and test accuracy on the right). Plain C++, no hwyconv.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fmnist {

/// One epoch of the learning curve. Accuracies in [0, 1]; seconds: wall time since training began.
struct CurvePoint {
  int epoch = 0;
  double loss = 0, train_acc = 0, test_acc = 0, seconds = 0;
};

/// Writes `text` to `path` through a temporary file and a rename (no half-written file is ever
/// seen under `path`). Throws std::runtime_error naming the file.
inline void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    if (!f) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw std::runtime_error(path + ": cannot write " + tmp);
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error(path + ": cannot rename " + tmp + " to it");
  }
}

/// CSV: header `epoch,loss,train_acc,test_acc,seconds`, accuracies in percent.
inline std::string curve_csv(const std::vector<CurvePoint>& pts) {
  std::ostringstream o;
  o << "epoch,loss,train_acc,test_acc,seconds\n";
  char line[128];
  for (const CurvePoint& p : pts) {
    std::snprintf(line, sizeof line, "%d,%.5f,%.3f,%.3f,%.2f\n", p.epoch, p.loss, 100 * p.train_acc, 100 * p.test_acc,
                  p.seconds);
    o << line;
  }
  return o.str();
}

namespace curve_detail {

/// A plot frame: data ranges mapped to a pixel rectangle.
struct Frame {
  double x0, y0, w, h;          // pixel rectangle (top-left, size)
  double xmin, xmax, ymin, ymax;  // data ranges
  double px(double x) const { return x0 + (x - xmin) / (xmax - xmin) * w; }
  double py(double y) const { return y0 + h - (y - ymin) / (ymax - ymin) * h; }
};

/// "Nice" tick step for a range to be cut into about `n` intervals: 1, 2 or 5 times a power of 10.
inline double tick_step(double range, int n) {
  const double raw = range / n, mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

inline std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", std::fabs(v) < 1e-12 ? 0.0 : v);
  return buf;
}

/// Axes, grid, tick labels and title of one panel.
inline void axes(std::ostringstream& o, const Frame& f, const std::string& title, const std::string& ylabel, int epochs) {
  o << "<rect x='" << num(f.x0) << "' y='" << num(f.y0) << "' width='" << num(f.w) << "' height='" << num(f.h)
    << "' fill='white' stroke='#333'/>\n";
  o << "<text x='" << num(f.x0 + f.w / 2) << "' y='" << num(f.y0 - 10) << "' text-anchor='middle' font-weight='bold'>"
    << title << "</text>\n";
  const double ys = tick_step(f.ymax - f.ymin, 5);
  for (double y = std::ceil(f.ymin / ys) * ys; y <= f.ymax + 1e-9; y += ys) {
    o << "<line x1='" << num(f.x0) << "' x2='" << num(f.x0 + f.w) << "' y1='" << num(f.py(y)) << "' y2='" << num(f.py(y))
      << "' stroke='#ddd'/>\n";
    o << "<text x='" << num(f.x0 - 6) << "' y='" << num(f.py(y) + 4) << "' text-anchor='end'>" << num(y) << "</text>\n";
  }
  const int xs = std::max(1, int(std::ceil(epochs / 10.0)));
  for (int e = 0; e <= epochs; e += xs)
    o << "<text x='" << num(f.px(e)) << "' y='" << num(f.y0 + f.h + 16) << "' text-anchor='middle'>" << e << "</text>\n";
  o << "<text x='" << num(f.x0 + f.w / 2) << "' y='" << num(f.y0 + f.h + 34) << "' text-anchor='middle'>epoch</text>\n";
  o << "<text transform='translate(" << num(f.x0 - 42) << "," << num(f.y0 + f.h / 2)
    << ") rotate(-90)' text-anchor='middle'>" << ylabel << "</text>\n";
}

/// A polyline with a dot at each point, and its legend entry at row `row`.
inline void series(std::ostringstream& o, const Frame& f, const std::vector<CurvePoint>& pts, double (*get)(const CurvePoint&),
                   const char* color, const char* name, int row) {
  o << "<polyline fill='none' stroke='" << color << "' stroke-width='2' points='";
  for (const CurvePoint& p : pts) o << num(f.px(p.epoch)) << "," << num(f.py(get(p))) << " ";
  o << "'/>\n";
  for (const CurvePoint& p : pts)
    o << "<circle cx='" << num(f.px(p.epoch)) << "' cy='" << num(f.py(get(p))) << "' r='3' fill='" << color << "'/>\n";
  const double lx = f.x0 + f.w - 110, ly = f.y0 + f.h - 14 - 18 * row;
  o << "<line x1='" << num(lx) << "' x2='" << num(lx + 20) << "' y1='" << num(ly) << "' y2='" << num(ly) << "' stroke='"
    << color << "' stroke-width='2'/>\n";
  o << "<text x='" << num(lx + 26) << "' y='" << num(ly + 4) << "'>" << name << "</text>\n";
}

}  // namespace curve_detail

/// SVG plot of the curve: training loss per epoch, and train and test accuracy (%) per epoch.
inline std::string curve_svg(const std::vector<CurvePoint>& pts, const std::string& title) {
  using namespace curve_detail;
  const int epochs = std::max(1, pts.empty() ? 1 : pts.back().epoch);
  double lmax = 0, amin = 1;
  for (const CurvePoint& p : pts) {
    lmax = std::max(lmax, p.loss);
    amin = std::min({amin, p.train_acc, p.test_acc});
  }
  const double ltop = lmax > 0 ? tick_step(lmax, 5) * std::ceil(lmax * 1.05 / tick_step(lmax, 5)) : 1.0;
  const double abot = std::min(90.0, std::floor(amin * 100 / 5) * 5 - 5);
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='800' height='340' font-family='sans-serif' font-size='12'>\n";
  o << "<rect width='800' height='340' fill='#fafafa'/>\n";
  o << "<text x='400' y='18' text-anchor='middle' font-size='14'>" << title << "</text>\n";
  const Frame loss{70, 50, 300, 240, 0, double(epochs), 0, ltop};
  axes(o, loss, "training loss", "cross-entropy", epochs);
  series(o, loss, pts, [](const CurvePoint& p) { return p.loss; }, "#d62728", "loss", 0);
  const Frame acc{480, 50, 300, 240, 0, double(epochs), std::max(0.0, abot), 100};
  axes(o, acc, "accuracy", "percent", epochs);
  series(o, acc, pts, [](const CurvePoint& p) { return 100 * p.train_acc; }, "#1f77b4", "train", 1);
  series(o, acc, pts, [](const CurvePoint& p) { return 100 * p.test_acc; }, "#2ca02c", "test", 0);
  o << "</svg>\n";
  return o.str();
}

}  // namespace fmnist
