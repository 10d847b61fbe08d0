// hwyconv/detail/buffer.hpp - memory hwyconv allocates itself: 64-byte aligned float buffers, and the pool
// of workspaces that lets several threads execute one Conv at the same time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <utility>
#include <vector>

namespace hwyconv {

/// Alignment of every buffer hwyconv allocates, and of a caller's workspace once hwyconv uses it: one
/// cache line (and one AVX-512 vector).
inline constexpr size_t kAlignment = 64;

/// Floats a caller's workspace holds beyond what an implementation uses, so that hwyconv can start
/// it at the next 64-byte boundary.
inline constexpr int64_t kAlignSlack = int64_t(kAlignment / sizeof(float));

/// An uninitialised heap array of floats starting at a 64-byte boundary.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  /// n floats (n >= 0). Throws std::bad_alloc.
  explicit AlignedBuffer(int64_t n)
      : data_(n > 0 ? static_cast<float*>(::operator new[](size_t(n) * sizeof(float), std::align_val_t(kAlignment)))
                    : nullptr),
        size_(n > 0 ? n : 0) {}
  float* data() const { return data_.get(); }
  int64_t size() const { return size_; }
  std::span<float> span() const { return {data_.get(), size_t(size_)}; }

 private:
  struct Free {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t(kAlignment)); }
  };
  std::unique_ptr<float[], Free> data_;
  int64_t size_ = 0;
};

/// The first 64-byte boundary in a caller's workspace, and the floats left from there.
inline std::span<float> aligned_part(std::span<float> ws) {
  void* p = ws.data();
  size_t space = ws.size() * sizeof(float);
  if (!std::align(kAlignment, sizeof(float), p, space)) return {};
  return {static_cast<float*>(p), space / sizeof(float)};
}

namespace detail {

/// Workspaces of one object, one per call in flight: a call leases a free buffer (or allocates one)
/// and returns it when done, so concurrent calls never share scratch memory and sequential calls
/// reuse the same buffer.
class WorkspacePool {
 public:
  /// A buffer of at least `floats` floats, owned by the caller until the lease ends.
  class Lease {
   public:
    Lease(WorkspacePool* pool, AlignedBuffer buf) : pool_(pool), buf_(std::move(buf)) {}
    Lease(Lease&& o) noexcept : pool_(std::exchange(o.pool_, nullptr)), buf_(std::move(o.buf_)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (pool_) pool_->give_back(std::move(buf_));
    }
    float* data() const { return buf_.data(); }

   private:
    WorkspacePool* pool_;
    AlignedBuffer buf_;
  };

  Lease lease(int64_t floats) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < free_.size(); ++i)
        if (free_[i].size() >= floats) {
          AlignedBuffer b = std::move(free_[i]);
          free_.erase(free_.begin() + std::ptrdiff_t(i));
          return Lease(this, std::move(b));
        }
    }
    return Lease(this, AlignedBuffer(floats));
  }

 private:
  void give_back(AlignedBuffer b) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(b));
  }
  std::mutex mu_;
  std::vector<AlignedBuffer> free_;
};

}  // namespace detail
}  // namespace hwyconv
