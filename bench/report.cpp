// bench/report.cpp - see report.hpp.
#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <tuple>

#include <nlohmann/json.hpp>

namespace bench {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// Results grouped by (pass, mb, threads), in that order.
using GroupKey = std::tuple<int, int64_t, int>;
std::map<GroupKey, std::vector<const Result*>> groups_of(const Report& rep) {
  std::map<GroupKey, std::vector<const Result*>> g;
  for (const Result& r : rep.results) g[{int(r.pass), r.mb, r.threads}].push_back(&r);
  return g;
}

/// Geometric mean of the finite positive values, NaN if there are none.
double geomean(const std::vector<double>& v) {
  double log_sum = 0;
  int n = 0;
  for (double x : v)
    if (std::isfinite(x) && x > 0) log_sum += std::log(x), ++n;
  return n ? std::exp(log_sum / n) : kNaN;
}

/// printf-style formatting of one number; "-" for NaN.
std::string num(double v, const char* format = "%.2f") {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

/// The layer name without its network prefix ("resnet_50:conv1" -> "conv1").
std::string short_name(const std::string& name) {
  const size_t colon = name.find(':');
  return colon == std::string::npos ? name : name.substr(colon + 1);
}

/// True when library `lib` implements r's pass (it ran, or tried and left a note).
bool attempted(const Result& r, int lib) { return r.m[size_t(lib)].ran || !r.m[size_t(lib)].note.empty(); }

/// time(oneDNN) / time(hwyconv) for r, NaN unless both ran (> 1: hwyconv faster).
double ratio(const Report& rep, const Result& r) {
  const int h = library_index(rep, "hwyconv"), o = library_index(rep, "oneDNN");
  if (h < 0 || o < 0 || !r.m[size_t(h)].ran || !r.m[size_t(o)].ran) return kNaN;
  return r.m[size_t(o)].time.median_ms / r.m[size_t(h)].time.median_ms;
}

/// A text table whose columns are sized to their widest cell.
struct Table {
  std::vector<std::string> header;
  std::vector<bool> left;  ///< left-aligned columns (text); the rest are right-aligned (numbers)
  std::vector<std::vector<std::string>> rows;  ///< an empty row prints a rule

  /// Prints the table with two spaces between columns.
  void print(std::ostream& os) const {
    std::vector<size_t> w(header.size());
    for (size_t c = 0; c < header.size(); ++c) w[c] = header[c].size();
    for (const auto& row : rows)
      for (size_t c = 0; c < row.size(); ++c) w[c] = std::max(w[c], row[c].size());
    size_t total = 0;
    for (size_t x : w) total += x + 2;
    auto line = [&](const std::vector<std::string>& row) {
      std::string s;
      for (size_t c = 0; c < row.size(); ++c) {
        const std::string pad(w[c] - row[c].size(), ' ');
        s += left[c] ? row[c] + pad : pad + row[c];
        if (c + 1 < row.size()) s += "  ";
      }
      while (!s.empty() && s.back() == ' ') s.pop_back();
      os << s << '\n';
    };
    line(header);
    os << std::string(total - 2, '-') << '\n';
    for (const auto& row : rows) {
      if (row.empty())
        os << std::string(total - 2, '-') << '\n';
      else
        line(row);
    }
  }
};

/// Quotes a CSV field (always; inner quotes doubled).
std::string csv_quote(const std::string& s) {
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

/// Escapes text for SVG.
std::string xml_escape(const std::string& s) {
  std::string e;
  for (char c : s) {
    if (c == '<') e += "&lt;";
    else if (c == '>') e += "&gt;";
    else if (c == '&') e += "&amp;";
    else if (c == '"') e += "&quot;";
    else e += c;
  }
  return e;
}

/// Opens `path` for writing or throws.
std::ofstream open_out(const std::string& path) {
  std::ofstream f(path);
  if (!f) throw std::runtime_error("cannot write '" + path + "'");
  return f;
}

/// A "nice" axis step (1, 2 or 5 times a power of ten) of about `raw`.
double nice_step(double raw) {
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (raw <= m * p) return m * p;
  return 10 * p;
}

}  // namespace

double gflops(const Result& r, int lib) {
  const Measurement& m = r.m[size_t(lib)];
  return m.ran ? r.flops / (m.time.median_ms * 1e-3) * 1e-9 : kNaN;
}

double pct_peak(const Report& rep, const Result& r, int lib) {
  const auto it = rep.peak.find(r.threads);
  return it == rep.peak.end() ? kNaN : 100.0 * gflops(r, lib) / it->second.gflops;
}

int library_index(const Report& rep, const std::string& name) {
  for (size_t i = 0; i < rep.libraries.size(); ++i)
    if (rep.libraries[i] == name) return int(i);
  return -1;
}

void print_tables(const Report& rep, std::ostream& os) {
  const int nlib = int(rep.libraries.size());
  const int hwy = library_index(rep, "hwyconv");
  // Libraries 0 and 1 (hwyconv, oneDNN) get full columns; later ones (im2col) GFLOP/s only.
  auto full = [&](int lib) { return lib < 2; };
  std::vector<std::vector<std::string>> summary;
  std::map<int, std::vector<const Result*>> by_pass;
  for (const auto& [key, results] : groups_of(rep)) {
    const auto& [pass, mb, threads] = key;
    const auto peak = rep.peak.find(threads);
    os << "\n== " << kPassNames[pass] << "  mb=" << mb << "  threads=" << threads << "  (peak "
       << (peak == rep.peak.end() ? std::string("?") : num(peak->second.gflops, "%.1f")) << " GFLOP/s) ==\n";
    Table t;
    t.header = {"layer", "shape"};
    for (int l = 0; l < nlib; ++l) {
      const std::string n = l == hwy ? "hwy" : rep.libraries[size_t(l)];
      if (full(l)) {
        t.header.insert(t.header.end(), {n + " ms", "GF/s", "%pk", l == hwy ? "plan us" : "create us"});
        if (l == 1) t.header.push_back("ratio");
      } else {
        t.header.push_back(n + " GF/s");
      }
    }
    t.header.push_back("rel err");
    for (int l = 0; l < std::min(nlib, 2); ++l) t.header.push_back(rep.libraries[size_t(l)] + " impl");
    t.left.assign(t.header.size(), false);
    t.left[0] = t.left[1] = true;
    for (int l = 0; l < std::min(nlib, 2); ++l) t.left[t.left.size() - 1 - size_t(l)] = true;

    std::vector<std::vector<double>> gf(static_cast<size_t>(nlib));
    std::vector<double> ratios, errs;
    std::vector<std::string> notes;
    for (const Result* r : results) {
      std::vector<std::string> row = {short_name(r->layer.name), r->layer.shape()};
      for (int l = 0; l < nlib; ++l) {
        const Measurement& m = r->m[size_t(l)];
        gf[size_t(l)].push_back(gflops(*r, l));
        if (full(l)) {
          row.push_back(m.ran ? num(m.time.median_ms, "%.3f") : "-");
          row.push_back(num(gflops(*r, l), "%.1f"));
          row.push_back(num(pct_peak(rep, *r, l), "%.0f"));
          row.push_back(num(m.create_ms * 1e3, "%.1f"));
          if (l == 1) row.push_back(num(ratio(rep, *r), "%.2f"));
        } else {
          row.push_back(num(gflops(*r, l), "%.1f"));
        }
        if (!m.ran && !m.note.empty()) notes.push_back(short_name(r->layer.name) + ": " + rep.libraries[size_t(l)] +
                                                       " failed: " + m.note);
      }
      ratios.push_back(ratio(rep, *r));
      const double err = hwy >= 0 ? r->rel_err[size_t(hwy)] : kNaN;
      errs.push_back(err);
      row.push_back(num(err, "%.1e") + (err > rep.tolerance ? " !" : ""));
      for (int l = 0; l < std::min(nlib, 2); ++l) row.push_back(r->m[size_t(l)].impl);
      t.rows.push_back(row);
      by_pass[pass].push_back(r);
    }
    // Geomean row (and the summary line of this group).
    std::vector<std::string> g = {"geomean", ""};
    std::vector<std::string> s = {kPassNames[pass], std::to_string(mb), std::to_string(threads)};
    for (int l = 0; l < nlib; ++l) {
      const double gm = geomean(gf[size_t(l)]);
      const double pk = peak == rep.peak.end() ? kNaN : 100 * gm / peak->second.gflops;
      if (full(l)) {
        g.insert(g.end(), {"", num(gm, "%.1f"), num(pk, "%.0f"), ""});
        if (l == 1) g.push_back(num(geomean(ratios), "%.2f"));
      } else {
        g.push_back(num(gm, "%.1f"));
      }
      s.push_back(num(gm, "%.1f"));
    }
    double max_err = kNaN;
    for (double e : errs)
      if (!std::isnan(e)) max_err = std::isnan(max_err) ? e : std::max(max_err, e);
    g.push_back(num(max_err, "%.1e"));
    for (int l = 0; l < std::min(nlib, 2); ++l) g.push_back("");
    // Sum of the layer times per library (NaN unless it ran every layer): a network's latency when
    // the list holds each of its layers (MobileNet's files do).
    std::vector<std::string> sum = {"sum ms", ""};
    std::vector<double> totals(static_cast<size_t>(nlib), 0.0);
    for (const Result* r : results)
      for (int l = 0; l < nlib; ++l)
        totals[size_t(l)] += r->m[size_t(l)].ran ? r->m[size_t(l)].time.median_ms : kNaN;
    for (int l = 0; l < nlib; ++l) {
      if (full(l)) {
        sum.insert(sum.end(), {num(totals[size_t(l)], "%.3f"), "", "", ""});
        if (l == 1) sum.push_back(num(hwy >= 0 ? totals[1] / totals[size_t(hwy)] : kNaN, "%.2f"));
      } else {
        sum.push_back("");
      }
    }
    t.rows.push_back({});
    t.rows.push_back(g);
    t.rows.push_back(sum);
    t.print(os);
    for (const std::string& n : notes) os << "  note: " << n << '\n';
    s.push_back(num(geomean(ratios), "%.2f"));
    summary.push_back(s);
  }

  // Summary: one geomean line per (pass, mb, threads), and one per pass over all of them.
  os << "\n== geomean per pass (GFLOP/s; ratio = time oneDNN / time hwyconv, > 1: hwyconv faster) ==\n";
  Table t;
  t.header = {"pass", "mb", "threads"};
  for (const std::string& n : rep.libraries) t.header.push_back(n + " GF/s");
  t.header.push_back("ratio");
  t.left.assign(t.header.size(), false);
  t.left[0] = true;
  t.rows = summary;
  for (const auto& [pass, results] : by_pass) {
    std::vector<std::string> row = {kPassNames[pass], "all", "all"};
    for (int l = 0; l < nlib; ++l) {
      std::vector<double> v;
      for (const Result* r : results) v.push_back(gflops(*r, l));
      row.push_back(num(geomean(v), "%.1f"));
    }
    std::vector<double> v;
    for (const Result* r : results) v.push_back(ratio(rep, *r));
    row.push_back(num(geomean(v), "%.2f"));
    t.rows.push_back({});
    t.rows.push_back(row);
  }
  t.print(os);
  print_class_table(rep, os);
}

std::vector<std::string> layer_classes(const Result& r, double onednn_ms) {
  const Layer& l = r.layer;
  std::vector<std::string> c;
  if (l.ic < 16) c.push_back("first layers (C < 16)");
  if (l.oh * l.ow <= 64) c.push_back("small maps (P*Q <= 64)");
  if (l.ic >= 16 && (l.oc % 16 != 0 || l.ic % 16 != 0)) c.push_back("C or K tails (not x16)");
  if (l.kh != l.kw) c.push_back("asymmetric filters (R != S)");
  if (l.sh > 1 || l.sw > 1) c.push_back("strides > 1");
  if (onednn_ms >= 5) c.push_back("large (oneDNN >= 5 ms)");
  return c;
}

void print_class_table(const Report& rep, std::ostream& os) {
  const int h = library_index(rep, "hwyconv"), o = library_index(rep, "oneDNN");
  if (h < 0) return;
  // (pass, mb, threads) -> class -> hwyconv/oneDNN ratios; plus each group's layer count.
  std::map<GroupKey, std::map<std::string, std::vector<double>>> by_class;
  for (const Result& r : rep.results) {
    const double o_ms = o >= 0 && r.m[size_t(o)].ran ? r.m[size_t(o)].time.median_ms : kNaN;
    const GroupKey key{int(r.pass), r.mb, r.threads};
    by_class[key]["all"].push_back(ratio(rep, r));
    for (const std::string& c : layer_classes(r, o_ms)) by_class[key][c].push_back(ratio(rep, r));
  }
  size_t classes = 0;
  for (const auto& [key, m] : by_class) classes = std::max(classes, m.size());
  if (classes <= 2) return;  // one class besides "all": the per-pass table says it
  os << "\n== geomean ratio per layer class (time oneDNN / time hwyconv, > 1: hwyconv faster; "
        "layers / worst) ==\n";
  Table t;
  t.header = {"pass", "mb", "threads", "class", "layers", "ratio", "worst"};
  t.left = {true, false, false, true, false, false, false};
  for (const auto& [key, m] : by_class) {
    for (const auto& [c, ratios] : m) {
      double worst = kNaN;
      for (double x : ratios)
        if (std::isfinite(x) && !(x >= worst)) worst = x;
      t.rows.push_back({kPassNames[std::get<0>(key)], std::to_string(std::get<1>(key)),
                        std::to_string(std::get<2>(key)), c, std::to_string(ratios.size()),
                        num(geomean(ratios), "%.2f"), num(worst, "%.2f")});
    }
    t.rows.push_back({});
  }
  t.print(os);
}

/// The classes of r's layer joined by "; " (oneDNN's time, when it ran, decides "large").
std::string classes_of(const Report& rep, const Result& r) {
  const int o = library_index(rep, "oneDNN");
  std::string s;
  for (const std::string& c : layer_classes(r, o >= 0 && r.m[size_t(o)].ran ? r.m[size_t(o)].time.median_ms : kNaN))
    s += (s.empty() ? "" : "; ") + c;
  return s;
}

void write_csv(const Report& rep, const std::string& path) {
  std::ofstream f = open_out(path);
  f << "layer,descriptor,pass,mb,threads,library,N,C,K,H,W,R,S,P,Q,stride_h,stride_w,pad_t,pad_l,pad_b,"
       "pad_r,dil_h,dil_w,gflop,median_ms,min_ms,reps,gflops,pct_peak,create_us,rel_err,reference,"
       "ratio_onednn_over_hwyconv,impl,note,classes\n";
  for (const Result& r : rep.results) {
    const Layer& l = r.layer;
    for (size_t i = 0; i < rep.libraries.size(); ++i) {
      if (!attempted(r, int(i))) continue;
      const Measurement& m = r.m[i];
      auto v = [](double x) { return std::isnan(x) ? std::string() : num(x, "%.6g"); };
      f << csv_quote(l.name) << ',' << csv_quote(l.descriptor) << ',' << pass_name(r.pass) << ',' << r.mb << ','
        << r.threads << ',' << rep.libraries[i] << ',' << r.mb << ',' << l.ic << ',' << l.oc << ',' << l.ih << ','
        << l.iw << ',' << l.kh << ',' << l.kw << ',' << l.oh << ',' << l.ow << ',' << l.sh << ',' << l.sw << ','
        << l.ph << ',' << l.pw << ',' << l.ph_r << ',' << l.pw_r << ',' << l.dh << ',' << l.dw << ','
        << v(r.flops * 1e-9) << ',' << (m.ran ? v(m.time.median_ms) : "") << ','
        << (m.ran ? v(m.time.min_ms) : "") << ',' << (m.ran ? std::to_string(m.time.reps) : "") << ','
        << v(gflops(r, int(i))) << ',' << v(pct_peak(rep, r, int(i))) << ',' << v(m.create_ms * 1e3) << ','
        << v(r.rel_err[i]) << ',' << (r.reference >= 0 ? rep.libraries[size_t(r.reference)] : "") << ','
        << v(ratio(rep, r)) << ',' << csv_quote(m.impl) << ',' << csv_quote(m.note) << ','
        << csv_quote(classes_of(rep, r)) << '\n';
    }
  }
}

void write_json(const Report& rep, const std::string& path) {
  using nlohmann::json;
  auto number = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
  json j;
  j["libraries"] = json::array();
  for (size_t i = 0; i < rep.libraries.size(); ++i)
    j["libraries"].push_back({{"name", rep.libraries[i]}, {"version", rep.versions[i]}});
  for (const auto& [threads, p] : rep.peak)
    j["peak"].push_back({{"threads", threads}, {"gflops", p.gflops}, {"target", p.target}});
  for (const auto& [threads, how] : rep.threads_set)
    for (size_t i = 0; i < how.size(); ++i)
      j["threads_set"][std::to_string(threads)][rep.libraries[i]] = how[i];
  j["options"] = rep.options;
  j["tolerance"] = rep.tolerance;
  j["total_seconds"] = rep.total_s;
  j["other_load_cpus"] = {{"before", number(rep.other_load_before)}, {"during", number(rep.other_load_during)}};
  j["results"] = json::array();
  for (const Result& r : rep.results) {
    const Layer& l = r.layer;
    json e = {{"layer", l.name},
              {"descriptor", l.descriptor},
              {"pass", pass_name(r.pass)},
              {"mb", r.mb},
              {"threads", r.threads},
              {"shape",
               {{"N", r.mb}, {"C", l.ic}, {"K", l.oc}, {"H", l.ih}, {"W", l.iw}, {"R", l.kh}, {"S", l.kw},
                {"P", l.oh}, {"Q", l.ow}, {"stride", {l.sh, l.sw}}, {"pad", {l.ph, l.pw, l.ph_r, l.pw_r}},
                {"dilation", {l.dh, l.dw}}}},
              {"gflop", r.flops * 1e-9},
              {"reference", r.reference >= 0 ? json(rep.libraries[size_t(r.reference)]) : json(nullptr)},
              {"ratio_onednn_over_hwyconv", number(ratio(rep, r))}};
    for (size_t i = 0; i < rep.libraries.size(); ++i) {
      if (!attempted(r, int(i))) continue;
      const Measurement& m = r.m[i];
      e["libraries"][rep.libraries[i]] = {{"ran", m.ran},
                                          {"median_ms", m.ran ? number(m.time.median_ms) : json(nullptr)},
                                          {"min_ms", m.ran ? number(m.time.min_ms) : json(nullptr)},
                                          {"reps", m.time.reps},
                                          {"gflops", number(gflops(r, int(i)))},
                                          {"pct_peak", number(pct_peak(rep, r, int(i)))},
                                          {"create_ms", number(m.create_ms)},
                                          {"rel_err", number(r.rel_err[i])},
                                          {"impl", m.impl},
                                          {"note", m.note}};
    }
    j["results"].push_back(e);
  }
  for (const auto& [key, results] : groups_of(rep)) {
    const auto& [pass, mb, threads] = key;
    json g = {{"pass", kPassNames[pass]}, {"mb", mb}, {"threads", threads}};
    for (size_t i = 0; i < rep.libraries.size(); ++i) {
      std::vector<double> v;
      for (const Result* r : results) v.push_back(gflops(*r, int(i)));
      g["gflops"][rep.libraries[i]] = number(geomean(v));
    }
    std::vector<double> v;
    for (const Result* r : results) v.push_back(ratio(rep, *r));
    g["ratio_onednn_over_hwyconv"] = number(geomean(v));
    j["geomean"].push_back(g);
  }
  open_out(path) << j.dump(2) << '\n';
}

void write_svg(const Report& rep, const std::string& path) {
  static const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"};
  constexpr double kBar = 9, kGap = 12, kLeft = 70, kPlotH = 220, kTitleH = 34, kLabelH = 120;
  const auto groups = groups_of(rep);
  size_t most = 1;
  for (const auto& [key, results] : groups) most = std::max(most, results.size());
  const double nlib = double(rep.libraries.size());
  const double group_w = nlib * kBar + kGap;
  const double width = std::max(560.0, kLeft + double(most) * group_w + 30);
  const double panel_h = kTitleH + kPlotH + kLabelH;
  const double height = 40 + double(groups.size()) * panel_h;

  std::ofstream f = open_out(path);
  f << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (size_t i = 0; i < rep.libraries.size(); ++i)  // legend
    f << "<rect x=\"" << kLeft + double(i) * 110 << "\" y=\"12\" width=\"12\" height=\"12\" fill=\"" << kColors[i % 5]
      << "\"/><text x=\"" << kLeft + double(i) * 110 + 17 << "\" y=\"22\">" << xml_escape(rep.libraries[i])
      << "</text>\n";
  double y0 = 40;
  for (const auto& [key, results] : groups) {
    const auto& [pass, mb, threads] = key;
    const auto peak = rep.peak.find(threads);
    double top = peak == rep.peak.end() ? 0 : peak->second.gflops;
    for (const Result* r : results)
      for (size_t i = 0; i < rep.libraries.size(); ++i)
        if (std::isfinite(gflops(*r, int(i)))) top = std::max(top, gflops(*r, int(i)));
    const double step = nice_step(std::max(top, 1.0) / 5);
    const double ymax = std::ceil(top / step) * step;
    const double base = y0 + kTitleH + kPlotH;
    auto y_of = [&](double v) { return base - v / ymax * kPlotH; };
    f << "<text x=\"" << kLeft << "\" y=\"" << y0 + 20 << "\" font-size=\"13\" font-weight=\"bold\">"
      << kPassNames[pass] << "  mb=" << mb << "  threads=" << threads << "  (GFLOP/s per layer)</text>\n";
    for (double v = 0; v <= ymax + step / 2; v += step)  // grid and y labels
      f << "<line x1=\"" << kLeft << "\" x2=\"" << width - 20 << "\" y1=\"" << y_of(v) << "\" y2=\"" << y_of(v)
        << "\" stroke=\"#ddd\"/><text x=\"" << kLeft - 6 << "\" y=\"" << y_of(v) + 4
        << "\" text-anchor=\"end\">" << v << "</text>\n";
    if (peak != rep.peak.end())
      f << "<line x1=\"" << kLeft << "\" x2=\"" << width - 20 << "\" y1=\"" << y_of(peak->second.gflops)
        << "\" y2=\"" << y_of(peak->second.gflops) << "\" stroke=\"#d62728\" stroke-dasharray=\"5,4\"/><text x=\""
        << width - 22 << "\" y=\"" << y_of(peak->second.gflops) - 4 << "\" text-anchor=\"end\" fill=\"#d62728\">"
        << "measured peak " << num(peak->second.gflops, "%.1f") << "</text>\n";
    for (size_t g = 0; g < results.size(); ++g) {
      const Result& r = *results[g];
      const double x0 = kLeft + kGap / 2 + double(g) * group_w;
      for (size_t i = 0; i < rep.libraries.size(); ++i) {
        const double v = gflops(r, int(i));
        if (!std::isfinite(v)) continue;
        f << "<rect x=\"" << x0 + double(i) * kBar << "\" y=\"" << y_of(v) << "\" width=\"" << kBar - 1
          << "\" height=\"" << base - y_of(v) << "\" fill=\"" << kColors[i % 5] << "\"><title>"
          << xml_escape(r.layer.name + " " + rep.libraries[i] + ": " + num(v, "%.1f")) << " GFLOP/s</title></rect>\n";
      }
      const double xl = x0 + nlib * kBar / 2;
      f << "<text x=\"" << xl << "\" y=\"" << base + 12 << "\" text-anchor=\"end\" transform=\"rotate(-50 " << xl
        << ' ' << base + 12 << ")\">" << xml_escape(short_name(r.layer.name)) << "</text>\n";
    }
    f << "<line x1=\"" << kLeft << "\" x2=\"" << width - 20 << "\" y1=\"" << base << "\" y2=\"" << base
      << "\" stroke=\"black\"/>\n";
    y0 += panel_h;
  }
  f << "</svg>\n";
}

}  // namespace bench
