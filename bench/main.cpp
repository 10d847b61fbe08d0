// bench/main.cpp - hwyconv_bench: hwyconv against oneDNN and im2col + OpenBLAS, layer by layer.
//
// For every layer of a benchdnn-style list, minibatch, pass and thread count, each library runs the
// same random data; the table reports median times, GFLOP/s, percent of the FMA peak measured by the
// bench itself, creation costs, the oneDNN/hwyconv time ratio and hwyconv's error against oneDNN.
// Exit code: 0 ok, 1 a hwyconv result was wrong (error above --tolerance) or hwyconv failed, 2 bad
// usage or an error outside the measurements.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <cxxopts.hpp>

#include "layers.hpp"
#include "peak.hpp"
#include "problem.hpp"
#include "report.hpp"

namespace bench {
namespace {

/// The command line, parsed.
struct Settings {
  std::string layers_path;
  std::vector<int> mbs, threads;
  std::vector<Pass> passes;
  TimingOptions timing;
  std::string filter, csv, json, svg;
  bool quick = false;
  double tolerance = 1e-3;
  std::vector<std::string> libs;  ///< libraries to run (names, lower case); empty = every one compiled in
};

/// `name` as given if it exists, else in the bench's layers folder.
std::string find_layer_file(const std::string& name) {
  namespace fs = std::filesystem;
  if (fs::exists(name)) return name;
  const fs::path in_dir = fs::path(HWYCONV_BENCH_LAYERS_DIR) / name;
  if (fs::exists(in_dir)) return in_dir.string();
  throw std::runtime_error("layer file '" + name + "' not found (nor in " HWYCONV_BENCH_LAYERS_DIR ")");
}

/// Parses argv; prints help and exits on --help; throws on bad values.
Settings parse_args(int argc, char** argv) {
  const std::string out = HWYCONV_BENCH_OUTPUT_DIR;
  cxxopts::Options o("hwyconv_bench", "hwyconv direct convolutions against oneDNN and im2col + OpenBLAS");
  o.add_options()
      ("layers", "layer file (benchdnn conv descriptors); a bare name is looked up in " HWYCONV_BENCH_LAYERS_DIR,
       cxxopts::value<std::string>()->default_value("resnet50.txt"))
      ("mb", "minibatch sizes; 0 = the descriptor's mb (2 where it has none, as in benchdnn)",
       cxxopts::value<std::vector<int>>()->default_value("1,16"))
      ("threads", "thread counts", cxxopts::value<std::vector<int>>()->default_value("1,2"))
      ("pass", "passes: fwd, bwd_d, bwd_w", cxxopts::value<std::vector<std::string>>()->default_value("fwd"))
      ("min-time", "seconds of timed calls per measurement (at least)",
       cxxopts::value<double>()->default_value("0.3"))
      ("reps", "timed calls per measurement (at least)", cxxopts::value<int>()->default_value("5"))
      ("layer-filter", "only layers whose name or descriptor contains this", cxxopts::value<std::string>())
      ("csv", "CSV output", cxxopts::value<std::string>()->default_value(out + "/bench_results.csv"))
      ("json", "JSON output", cxxopts::value<std::string>()->default_value(out + "/bench_results.json"))
      ("svg", "SVG chart output", cxxopts::value<std::string>()->default_value(out + "/bench_results.svg"))
      ("tolerance", "max relative error (vs max |reference|) accepted",
       cxxopts::value<double>()->default_value("1e-3"))
      ("quick", "3 layers only (first, first larger than 1x1, last), for smoke tests")
      ("libs", "libraries to run: hwyconv, onednn, im2col (default: every one compiled in)",
       cxxopts::value<std::vector<std::string>>())
      ("h,help", "this help");
  const auto a = o.parse(argc, argv);
  if (a.count("help")) {
    std::cout << o.help() << '\n';
    std::exit(0);
  }
  Settings s;
  s.layers_path = find_layer_file(a["layers"].as<std::string>());
  s.mbs = a["mb"].as<std::vector<int>>();
  s.threads = a["threads"].as<std::vector<int>>();
  for (const std::string& p : a["pass"].as<std::vector<std::string>>()) {
    const auto pass = pass_from_name(p);
    if (!pass) throw std::runtime_error("unknown pass '" + p + "' (fwd, bwd_d, bwd_w)");
    s.passes.push_back(*pass);
  }
  s.timing.min_time_s = a["min-time"].as<double>();
  s.timing.min_reps = a["reps"].as<int>();
  if (a.count("layer-filter")) s.filter = a["layer-filter"].as<std::string>();
  s.csv = a["csv"].as<std::string>();
  s.json = a["json"].as<std::string>();
  s.svg = a["svg"].as<std::string>();
  s.quick = a.count("quick") > 0;
  if (a.count("libs")) s.libs = a["libs"].as<std::vector<std::string>>();
  s.tolerance = a["tolerance"].as<double>();
  for (int v : s.mbs)
    if (v < 0) throw std::runtime_error("--mb values must be >= 0");
  for (int v : s.threads)
    if (v < 1) throw std::runtime_error("--threads values must be >= 1");
  if (s.timing.min_time_s < 0 || s.timing.min_reps < 1) throw std::runtime_error("bad --min-time or --reps");
  return s;
}

/// The layers to run: the file, filtered, and cut to 3 with --quick.
std::vector<Layer> select_layers(const Settings& s) {
  std::vector<Layer> all = read_layers(s.layers_path), kept;
  for (const Layer& l : all)
    if (s.filter.empty() || l.name.find(s.filter) != std::string::npos ||
        l.descriptor.find(s.filter) != std::string::npos)
      kept.push_back(l);
  if (!s.quick || kept.size() <= 3) return kept;
  size_t wide = kept.size() / 2;  // first layer after the first with a filter larger than 1x1
  for (size_t i = 1; i + 1 < kept.size(); ++i)
    if (kept[i].kh > 1 || kept[i].kw > 1) {
      wide = i;
      break;
    }
  return {kept.front(), kept[wide], kept.back()};
}

/// `v` printf-formatted (two decimals by default).
std::string fixed2(double v, const char* format = "%.2f") {
  char buf[32];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

/// The libraries compiled in, hwyconv first, then oneDNN (the reference), then the baselines; only
/// those named in `only` (lower case) when it is not empty.
std::vector<Library> libraries(const std::vector<std::string>& only) {
  std::vector<Library> all = {hwyconv_library()};
#ifdef HWYCONV_BENCH_HAVE_DNNL
  all.push_back(onednn_library());
#endif
#ifdef HWYCONV_BENCH_HAVE_BLAS
  all.push_back(im2col_library());
#endif
#ifdef HWYCONV_BENCH_HAVE_XNNPACK
  all.push_back(xnnpack_library());
#endif
  std::vector<Library> libs;
  for (Library& l : all) {
    std::string lower = l.name;
    for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (only.empty() || std::find(only.begin(), only.end(), lower) != only.end()) libs.push_back(std::move(l));
  }
  if (libs.empty()) throw std::runtime_error("--libs names no library compiled into this bench");
  return libs;
}

/// Runs every library on one (problem, pass, threads) and cross-checks the outputs against the
/// reference (oneDNN if it ran, else the first other library that ran).
Result run_one(const std::vector<Library>& libs, const Problem& p, Pass pass, const RunConfig& cfg) {
  Result r;
  r.layer = p.layer;
  r.pass = pass;
  r.mb = p.mb;
  r.threads = cfg.threads;
  r.flops = p.layer.flops(p.mb);
  for (const Library& lib : libs) {
    Measurement m;
    if (PassRunner run = lib.runners[int(pass)]) {
      try {
        m = run(p, cfg);
      } catch (const std::exception& e) {
        m = Measurement();
        m.note = e.what();
      }
    }
    r.m.push_back(std::move(m));
  }
  for (size_t i = 0; i < libs.size(); ++i)
    if (r.m[i].ran && (libs[i].name == "oneDNN" || (r.reference < 0 && libs[i].name != "hwyconv"))) {
      r.reference = int(i);
    }
  r.rel_err.assign(libs.size(), std::numeric_limits<double>::quiet_NaN());
  for (size_t i = 0; i < libs.size(); ++i) {
    if (r.reference >= 0 && int(i) != r.reference && r.m[i].ran)
      r.rel_err[i] = max_rel_error(r.m[i].output, r.m[size_t(r.reference)].output);
  }
  for (Measurement& m : r.m) Buffer().swap(m.output);
  return r;
}

/// One progress line for the log (stderr), so that a long run shows it is alive.
void print_progress(const Report& rep, const Result& r, size_t index, size_t count) {
  std::fprintf(stderr, "[%2zu/%zu] %-28s %-5s mb%-3lld t%d:", index + 1, count, r.layer.name.c_str(),
               pass_name(r.pass), static_cast<long long>(r.mb), r.threads);
  for (size_t i = 0; i < r.m.size(); ++i) {
    if (r.m[i].ran)
      std::fprintf(stderr, "  %s %.3f ms", rep.libraries[i].c_str(), r.m[i].time.median_ms);
    else if (!r.m[i].note.empty())
      std::fprintf(stderr, "  %s FAILED", rep.libraries[i].c_str());
  }
  const int h = library_index(rep, "hwyconv");
  if (h >= 0 && !std::isnan(r.rel_err[size_t(h)])) std::fprintf(stderr, "  err %.1e", r.rel_err[size_t(h)]);
  std::fprintf(stderr, "\n");
}

/// Comma-separated list of the values.
template <class T, class F>
std::string join(const std::vector<T>& values, F to_string) {
  std::string s;
  for (const T& v : values) {
    if (!s.empty()) s += ',';
    s += to_string(v);
  }
  return s;
}

/// Prints what runs and how (libraries, threads, the machine's measured peak); fills rep's header
/// fields. Returns the CPUs other work kept busy just before.
double print_setup(const Settings& s, const std::vector<Layer>& layers, const std::vector<Library>& libs,
                   Report& rep) {
  auto itos = [](int v) { return std::to_string(v); };
  rep.tolerance = s.tolerance;
  for (const Library& l : libs) {
    rep.libraries.push_back(l.name);
    rep.versions.push_back(l.version);
  }
  rep.options = {{"layers", s.layers_path},
                 {"layer_count", std::to_string(layers.size())},
                 {"mb", join(s.mbs, itos)},
                 {"threads", join(s.threads, itos)},
                 {"pass", join(s.passes, pass_name)},
                 {"min_time_s", std::to_string(s.timing.min_time_s)},
                 {"min_reps", std::to_string(s.timing.min_reps)},
                 {"quick", s.quick ? "true" : "false"},
                 {"layer_filter", s.filter},
                 {"tolerance", std::to_string(s.tolerance)}};
  std::cout << "hwyconv_bench: " << layers.size() << " layers from " << s.layers_path << "\n  mb "
            << rep.options["mb"] << ", threads " << rep.options["threads"] << ", passes " << rep.options["pass"]
            << ", min-time " << s.timing.min_time_s << " s, reps >= " << s.timing.min_reps
            << " (median of timed calls after warm-up)\n  hardware threads: " << std::thread::hardware_concurrency()
            << "\n";
  for (const Library& l : libs) std::cout << "  " << l.name << ": " << l.version << "\n";

  OtherLoad other;
  other.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  const double before = other.cpus();
  std::cout << "  other work on this machine before the start: " << fixed2(before) << " CPUs busy\n";
  if (before >= 0.25) std::cout << "  WARNING: the machine is not idle; figures (multi-threaded ones most) will be low\n";

  std::cout << "threads are set as follows (and checked):\n";
  for (int t : s.threads)
    for (const Library& l : libs) {
      rep.threads_set[t].push_back(l.threads_info ? l.threads_info(t) : "n/a");
      std::cout << "  " << t << " thread(s), " << l.name << ": " << rep.threads_set[t].back() << "\n";
    }
  std::cout << "measured FMA peak (best of 5 trials of independent FMA chains, per thread count):\n";
  for (int t : s.threads) {
    rep.peak[t] = measure_peak(t);
    std::cout << "  " << t << " thread(s): " << fixed2(rep.peak[t].gflops) << " GFLOP/s (" << rep.peak[t].target
              << ")\n";
  }
  std::cout << std::flush;
  return before;
}

/// Prints every wrong or failed result; returns how many were hwyconv's (the exit code's concern).
int verdict(const Report& rep, std::ostream& os) {
  int bad = 0;
  const int h = library_index(rep, "hwyconv");
  for (const Result& r : rep.results)
    for (size_t i = 0; i < r.m.size(); ++i) {
      const double e = r.rel_err[i];
      const bool compared = r.m[i].ran && r.reference >= 0 && int(i) != r.reference;
      const bool wrong = compared && !(e <= rep.tolerance);  // NaN counts as wrong
      const bool failed = !r.m[i].ran && !r.m[i].note.empty();
      if (!wrong && !failed) continue;
      os << (int(i) == h ? "ERROR: " : "warning: ") << rep.libraries[i] << " " << r.layer.name << " "
         << pass_name(r.pass) << " mb" << r.mb << " t" << r.threads << ": "
         << (failed ? "failed: " + r.m[i].note : "max rel error " + fixed2(e, "%.2e")) << "\n";
      if (int(i) == h) ++bad;
    }
  if (bad) os << bad << " hwyconv result(s) wrong or failed (tolerance " << rep.tolerance << ")\n";
  return bad;
}

/// The whole run; returns the exit code.
int run(const Settings& s) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<Layer> layers = select_layers(s);
  const std::vector<Library> libs = libraries(s.libs);
  Report rep;
  rep.other_load_before = print_setup(s, layers, libs, rep);
  OtherLoad other;
  other.start();

  bool backward = false;
  for (Pass p : s.passes) backward |= p != Pass::kFwd;
  for (size_t li = 0; li < layers.size(); ++li)
    for (int mb : s.mbs) {
      const int64_t n = mb > 0 ? mb : layers[li].mb > 0 ? layers[li].mb : 2;
      const Problem p = make_problem(layers[li], n, backward);
      for (Pass pass : s.passes)
        for (int t : s.threads) {
          rep.results.push_back(run_one(libs, p, pass, RunConfig{t, s.timing}));
          print_progress(rep, rep.results.back(), li, layers.size());
        }
    }
  rep.total_s = seconds_since(start);
  rep.other_load_during = other.cpus();

  print_tables(rep, std::cout);
  write_csv(rep, s.csv);
  write_json(rep, s.json);
  write_svg(rep, s.svg);
  std::cout << "\nwrote " << s.csv << "\n      " << s.json << "\n      " << s.svg << "\ntotal " << fixed2(rep.total_s)
            << " s; other work kept " << fixed2(rep.other_load_during) << " CPUs busy on average during the run\n";
  if (rep.other_load_during >= 0.25)
    std::cout << "WARNING: the machine was shared during the run; rerun on an idle machine for reliable figures "
                 "(multi-threaded ones above all)\n";
  return verdict(rep, std::cout) ? 1 : 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  bench::Settings s;
  try {
    s = bench::parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "hwyconv_bench: " << e.what() << " (see --help)\n";
    return 2;
  }
  try {
    return bench::run(s);
  } catch (const std::exception& e) {
    std::cerr << "hwyconv_bench: " << e.what() << "\n";
    return 2;
  }
}
