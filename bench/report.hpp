// bench/report.hpp - results of a bench run and their outputs: aligned tables, CSV, JSON, SVG.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "peak.hpp"
#include "problem.hpp"

namespace bench {

/// One (layer, pass, mb, threads): a measurement per library, in Report::libraries order.
struct Result {
  Layer layer;
  Pass pass = Pass::kFwd;
  int64_t mb = 1;
  int threads = 1;
  double flops = 0;
  std::vector<Measurement> m;   ///< outputs already released
  std::vector<double> rel_err;  ///< vs the reference library; NaN when not compared
  int reference = -1;           ///< index of the library the others were checked against, -1 none
};

/// Everything a run produced, plus what the outputs need to describe it.
struct Report {
  std::vector<std::string> libraries;  ///< names, e.g. hwyconv, oneDNN, im2col
  std::vector<std::string> versions;   ///< one per library
  std::map<int, Peak> peak;            ///< measured peak by thread count
  /// How each library's threads were set, by thread count: threads_set[threads][library].
  std::map<int, std::vector<std::string>> threads_set;
  std::vector<Result> results;
  double tolerance = 1e-3;       ///< max relative error accepted
  std::string options_summary;   ///< the command line's effect, for the headers
  std::map<std::string, std::string> options;  ///< option -> value, for JSON
  double total_s = 0;            ///< wall time of the whole run
  double other_load_before = 0;  ///< CPUs busy with other work just before the start (OtherLoad)
  double other_load_during = 0;  ///< ... on average during the run
};

/// GFLOP/s of library `lib` in `r` (median time), NaN if it did not run.
double gflops(const Result& r, int lib);
/// Percent of the measured peak at r.threads, NaN if unknown.
double pct_peak(const Report& rep, const Result& r, int lib);
/// Index of the library called `name`, or -1.
int library_index(const Report& rep, const std::string& name);

/// Prints one aligned table per (pass, mb, threads) with a geomean row, then a geomean summary and,
/// when the layers span several classes, the geomean ratio to oneDNN per layer class.
void print_tables(const Report& rep, std::ostream& os);
/// The classes of a layer for the per-class geomeans (a layer may be in several): first layers
/// (C < 16), small maps (P*Q <= 64), C or K tails (not multiples of 16, C >= 16), asymmetric filters
/// (R != S), strides > 1, large layers (oneDNN's time at least 5 ms; NaN: unknown).
std::vector<std::string> layer_classes(const Result& r, double onednn_ms);
/// The per-class table (see print_tables).
void print_class_table(const Report& rep, std::ostream& os);
/// One CSV row per (layer, pass, mb, threads, library).
void write_csv(const Report& rep, const std::string& path);
/// The whole report as JSON (machine, options, threads, every figure, geomeans).
void write_json(const Report& rep, const std::string& path);
/// Grouped bar charts of GFLOP/s per layer and library, one panel per (pass, mb, threads).
void write_svg(const Report& rep, const std::string& path);

}  // namespace bench
