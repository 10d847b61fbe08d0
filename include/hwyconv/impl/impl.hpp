// hwyconv/impl/impl.hpp - what an implementation is, and how Conv picks one per pass.
//
// An implementation is one algorithm for one pass (forward by direct blocking, backward data by
// phases, the weight update by task split, ...), in its own file under impl/. It is a type with:
//   Plan                                    a literal type: every decision, constexpr
//   plan(desc, ctx, Plan&) -> Status        can it run this layer? ("unimplemented" with the reason)
//   cost(Plan, ctx) -> double               estimated cycles (plan/model.hpp), to choose among several
//   invariant_violation(Plan) -> const char*  nullptr, or the first broken invariant of the plan
//   workspace(Plan) -> int64_t              floats of scratch one execution needs
//   packed_size(Plan), pack(...)            weights in the implementation's own layout (0: none)
//   reads_nhwc(Plan), kPrefersNhwc          whether it reads an nhwc src itself (planned for one)
//   Streams, make_streams(Plan)             its kernel streams (built once, at creation)
//   run(Plan, Streams, Call, workspace, parallel_for)
// as oneDNN's implementation list (each init_conf may answer "unimplemented") and XNNPACK's
// create_*_path are. The lists per pass are in impl/list.hpp; Conv holds the cheapest that can run.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "hwyconv/desc.hpp"
#include "hwyconv/options.hpp"
#include "hwyconv/plan/machine.hpp"
#include "hwyconv/threading/parallel_for.hpp"

namespace hwyconv::impl {

/// What a plan depends on besides the descriptor.
struct PlanContext {
  int threads = 1;                             ///< parts the work is partitioned into
  Machine machine{};                           ///< caches and register budget
  SrcLayout src_layout = SrcLayout::nChw16c;   ///< src as the user gives it (nChw16c or nhwc)
};

/// "Can run" for Status.
inline constexpr Status kOk{};

/// Status of an implementation that cannot run a layer: field "impl", the reason.
constexpr Status unimplemented(const char* reason) { return {"impl", reason, 0}; }

/// Arguments of a forward execution, already checked by the caller (sizes, overlaps). src is in the
/// layout the implementation reads (nhwc when reads_nhwc and the user's src is nhwc, else nChw16c);
/// `packed` is the implementation's packed weights or nullptr (then `wei`, OIhw16i16o, is used).
struct FwdCall {
  const float* src = nullptr;
  const float* wei = nullptr;
  const float* packed = nullptr;
  const float* bias = nullptr;  ///< K floats, or nullptr
  const float* scale = nullptr;
  const float* shift = nullptr;
  const float* residual = nullptr;
  float clamp_lo = 0, clamp_hi = 0;  ///< kEpiClamp bounds
  unsigned ops = 0;  ///< EpilogueOp mask
  float* dst = nullptr;
};

/// Arguments of a backward-data execution: ddst, weights IOhw16o16i (or packed), the optional ReLU
/// mask, dsrc.
struct BwdDataCall {
  const float* ddst = nullptr;
  const float* wei = nullptr;
  const float* packed = nullptr;
  const float* mask = nullptr;
  float* dsrc = nullptr;
};

/// Arguments of a weight-update execution: src (layout as in FwdCall), ddst, the optional ReLU mask,
/// dwei (OIhw16i16o) and dbias (K floats, or nullptr).
struct BwdWeightsCall {
  const float* src = nullptr;
  const float* ddst = nullptr;
  const float* mask = nullptr;
  float* dwei = nullptr;
  float* dbias = nullptr;
};

/// A planned implementation of one pass, as Conv holds it (type-erased). Everything is const: one
/// object serves concurrent calls, each with its own workspace.
class PlannedBase {
 public:
  virtual ~PlannedBase() = default;
  virtual const char* name() const = 0;
  /// The plan's decisions in a few words (register block, loop order, ...), for the bench.
  virtual std::string describe() const = 0;
  virtual int64_t workspace() const = 0;
  virtual int64_t packed_size() const = 0;
  virtual void pack(const float* wei, float* packed) const = 0;
  virtual bool reads_nhwc() const = 0;
  /// Whether the implementation reads an nhwc src without a reorder (when planned for one).
  virtual bool prefers_nhwc() const = 0;
  virtual const char* invariant_violation() const = 0;
  virtual double cost() const = 0;
  /// Builds the kernel streams of the plan (once, after the choice).
  virtual void build_streams() = 0;
};

/// A planned implementation of a pass whose calls take a Call.
template <class Call>
class Planned : public PlannedBase {
 public:
  virtual void run(const Call& call, float* workspace, const ParallelFor& pf) const = 0;
};

/// Implementation I with its plan and streams.
template <class I>
class PlannedImpl final : public Planned<typename I::Call> {
  using Call = typename I::Call;
 public:
  typename I::Plan plan{};
  typename I::Streams streams{};
  double estimate = 0;

  const char* name() const override { return I::kName; }
  std::string describe() const override { return I::describe(plan); }
  int64_t workspace() const override { return I::workspace(plan); }
  int64_t packed_size() const override { return I::packed_size(plan); }
  void pack(const float* wei, float* packed) const override { I::pack(plan, wei, packed); }
  bool reads_nhwc() const override { return I::reads_nhwc(plan); }
  bool prefers_nhwc() const override { return I::kPrefersNhwc; }
  const char* invariant_violation() const override { return I::invariant_violation(plan); }
  double cost() const override { return estimate; }
  void run(const Call& call, float* ws, const ParallelFor& pf) const override { I::run(plan, streams, call, ws, pf); }
  void build_streams() override { streams = I::make_streams(plan); }
};

/// Plans every implementation of the tuple List that can run the layer and keeps the one of least
/// estimated cost (the first of equal ones), with its streams. nullptr when none can run (each list
/// runs every layer ConvDesc::check() accepts).
template <class Call, class List>
std::unique_ptr<Planned<Call>> choose(const ConvDesc& d, const PlanContext& ctx) {
  std::unique_ptr<Planned<Call>> best;
  double best_cost = std::numeric_limits<double>::infinity();
  auto consider = [&](auto tag) {
    using I = typename decltype(tag)::type;
    auto p = std::make_unique<PlannedImpl<I>>();
    if (!I::plan(d, ctx, p->plan).ok()) return;
    p->estimate = I::cost(p->plan, ctx);
    if (best && !(p->estimate < best_cost)) return;
    best_cost = p->estimate;
    best = std::move(p);
  };
  [&]<class... Is>(std::tuple<Is...>*) { (consider(std::type_identity<Is>{}), ...); }(static_cast<List*>(nullptr));
  if (best) best->build_streams();
  return best;
}

/// Index in the tuple List of the implementation of least estimated cost that can run d (choose's
/// choice, at compile time, for StaticConv); -1 if none.
template <class List>
constexpr int choose_static(const ConvDesc& d, const PlanContext& ctx) {
  int best = -1, index = 0;
  double best_cost = std::numeric_limits<double>::infinity();
  auto consider = [&](auto tag) {
    using I = typename decltype(tag)::type;
    typename I::Plan p{};
    const bool ok = I::plan(d, ctx, p).ok();
    const double c = ok ? I::cost(p, ctx) : 0.0;
    if (ok && (best < 0 || c < best_cost)) {
      best = index;
      best_cost = c;
    }
    ++index;
  };
  [&]<class... Is>(std::tuple<Is...>*) { (consider(std::type_identity<Is>{}), ...); }(static_cast<List*>(nullptr));
  return best;
}

}  // namespace hwyconv::impl
