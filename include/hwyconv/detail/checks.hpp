// hwyconv/detail/checks.hpp - the argument checks every entry point shares: dimensions, element
// counts without overflow, span sizes and overlaps. Each throws hwyconv::Error naming the field, before
// the caller writes anything.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <span>
#include <string>

#include "hwyconv/desc.hpp"

namespace hwyconv::detail {

/// A named dimension (for check_dims).
struct NamedDim {
  const char* name;
  int64_t value;
};

/// Throws Error(name) for the first dimension below 1. (Sizes are then bounded by checked_product.)
inline void check_dims(std::initializer_list<NamedDim> dims) {
  for (const NamedDim& d : dims)
    if (d.value < 1) throw Error(d.name, "must be >= 1 (got " + std::to_string(d.value) + ")");
}

/// Product of positive factors; throws Error(field) if it overflows int64_t.
inline int64_t checked_product(const char* field, std::initializer_list<int64_t> factors) {
  int64_t p = 1;
  for (int64_t f : factors)
    if (__builtin_mul_overflow(p, f, &p)) throw Error(field, "element count overflows int64_t");
  return p;
}

/// Throws Error(field) when a buffer of `have` elements is smaller than `need`; `layout` names what
/// the buffer holds ("nChw16c", "K", ...), for the message.
inline void check_span(const char* field, size_t have, int64_t need, const char* layout) {
  if (static_cast<uint64_t>(have) < static_cast<uint64_t>(need))
    throw Error(field, "needs at least " + std::to_string(need) + " elements (" + layout + "), got " +
                           std::to_string(have));
}

/// Whether two spans share memory (empty spans share nothing).
template <class A, class B>
bool overlaps(std::span<A> a, std::span<B> b) {
  if (a.empty() || b.empty()) return false;
  const auto* a0 = reinterpret_cast<const unsigned char*>(a.data());
  const auto* b0 = reinterpret_cast<const unsigned char*>(b.data());
  const std::less<const unsigned char*> lt;
  return lt(a0, b0 + b.size_bytes()) && lt(b0, a0 + a.size_bytes());
}

/// A named input buffer (for check_disjoint).
struct NamedSpan {
  const char* name;
  std::span<const float> span;
};

/// Throws Error(field) when the output buffer `out` overlaps one of the inputs: "must not overlap <input>".
inline void check_disjoint(const char* field, std::span<const float> out, std::initializer_list<NamedSpan> inputs) {
  for (const NamedSpan& in : inputs)
    if (overlaps(out, in.span)) throw Error(field, std::string("must not overlap ") + in.name);
}

}  // namespace hwyconv::detail
