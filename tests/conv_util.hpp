// Access to the plans a Conv chose, for the tests that check planning decisions (the kernel tests
// include hwyconv.hpp; test_util.hpp does not).
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "hwyconv/hwyconv.hpp"

namespace hwyconv::test {

/// The forward plan of a Conv (fwd_direct or fwd_fold: both plan a FwdPlan).
inline const FwdPlan& fwd_plan(const Conv& c) {
  if (const FwdPlan* p = c.plan<impl::FwdDirect>()) return *p;
  return *c.plan<impl::FwdFold>();
}

/// The forward kernel stream of a Conv.
inline const RuntimeStream& fwd_stream(const Conv& c) {
  if (const RuntimeStream* s = c.streams<impl::FwdDirect>()) return *s;
  return *c.streams<impl::FwdFold>();
}

/// The weight-update plan of a Conv (either strategy).
inline const impl::BwdWPlan& bwd_w_plan(const Conv& c) {
  if (const impl::BwdWPlan* p = c.plan<impl::BwdWTasks>()) return *p;
  return *c.plan<impl::BwdWMinibatch>();
}

/// Every plan of the Conv keeps its invariants (run on every shape the kernel tests plan).
inline void check_invariants(const Conv& c) {
  const char* v = c.invariant_violation();
  CHECK_MESSAGE(v == nullptr, "plan invariant broken: " << std::string(v ? v : ""));
}

}  // namespace hwyconv::test
