// hwyconv/threading/parallel_for.hpp - how hwyconv runs work on several threads.
//
// hwyconv never creates threads behind a caller's back if the caller brings its own: pass a
// ParallelFor (e.g. wrapping OpenMP, TBB or your engine's pool) in Options. Otherwise a process-wide
// ThreadPool with std::thread::hardware_concurrency() threads is created on first use.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "hwyconv/desc.hpp"

namespace hwyconv {

/// A parallel-for: must call fn(i) exactly once for every i in [0, n), in any order, on any threads,
/// and return when all calls have returned. hwyconv calls it with n = the plan's thread count.
using ParallelFor = std::function<void(int64_t n, const std::function<void(int64_t)>& fn)>;

/// Tells the CPU this thread is in a spin-wait loop (x86 pause, Arm yield).
inline void spin_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield");
#endif
}

/// A small fixed pool: size() - 1 worker threads plus the calling thread. One job at a time; a
/// run() issued from inside a job (nested) runs serially on the calling thread. Between jobs the
/// workers spin for up to kSpinMicros before they sleep on a condition variable (as OpenMP runtimes
/// do): a layer's transform and compute, and consecutive layers, follow each other within
/// microseconds, and waking a sleeping thread costs tens of microseconds, which a 0.3 ms layer run
/// on two threads cannot afford (measured: 64 -> 64 1x1 at 56x56, N = 1, ran no faster on 2 threads
/// than on 1 with sleeping workers).
class ThreadPool {
 public:
  /// How long an idle worker (and a caller waiting for the workers) spins before it sleeps.
  static constexpr int64_t kSpinMicros = 1000;

  /// threads >= 1 (values below are taken as 1). Throws std::system_error when a thread cannot be
  /// created, after stopping and joining the ones that were.
  explicit ThreadPool(int threads) : size_(std::max(threads, 1)) {
    try {
      workers_.reserve(size_t(size_ - 1));
      for (int i = 1; i < size_; ++i) workers_.emplace_back([this] { worker(); });
    } catch (...) {
      stop_and_join();
      throw;
    }
  }
  ~ThreadPool() { stop_and_join(); }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// Threads that run jobs, the caller included.
  int size() const { return size_; }

  /// Calls fn(i) for i in [0, n) on the pool; returns when all are done.
  void run(int64_t n, const std::function<void(int64_t)>& fn) {
    if (n <= 0) return;
    if (n == 1 || size_ == 1 || in_job()) {  // serial: an exception of fn propagates at once
      for (int64_t i = 0; i < n; ++i) fn(i);
      return;
    }
    std::lock_guard<std::mutex> serial(run_mu_);  // one job at a time
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      n_ = n;
      next_.store(0);
      busy_.store(int(workers_.size()));
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    work();
    if (!spin_until([this] { return busy_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(mu_);
      done_.wait(lock, [this] { return busy_.load() == 0; });
    }
    fn_ = nullptr;
    // The first exception any call of fn threw (the other calls still ran), on the calling thread.
    if (std::exception_ptr e = std::exchange(error_, nullptr)) std::rethrow_exception(e);
  }

  /// std::thread::hardware_concurrency(), at least 1.
  static int hardware_threads() { return int(std::max(1u, std::thread::hardware_concurrency())); }

  /// The process-wide pool (hardware_threads() threads), created on first use.
  static ThreadPool& global() {
    static ThreadPool pool(hardware_threads());
    return pool;
  }

 private:
  static bool& in_job() {
    thread_local bool flag = false;
    return flag;
  }
  /// Spins until done() or kSpinMicros have passed; returns done().
  template <class Done>
  static bool spin_until(Done&& done) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
    for (;;) {
      for (int i = 0; i < 64; ++i) {
        if (done()) return true;
        spin_pause();
      }
      if (std::chrono::steady_clock::now() > until) return done();
    }
  }
  /// Runs items until none is left. An exception of fn is kept (the first one) for run() to rethrow;
  /// the thread's "inside a job" flag is cleared whatever happens.
  void work() {
    in_job() = true;
    for (int64_t i; (i = next_.fetch_add(1)) < n_;) {
      try {
        (*fn_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
    in_job() = false;
  }
  void stop_and_join() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
  }
  void worker() {
    uint64_t seen = 0;
    for (;;) {
      auto ready = [&] { return stop_.load() || generation_.load(std::memory_order_acquire) != seen; };
      if (!spin_until(ready)) {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, ready);
      }
      if (stop_.load()) return;
      seen = generation_.load(std::memory_order_acquire);
      work();
      if (busy_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mu_);  // pairs with the caller's wait under mu_
        done_.notify_one();
      }
    }
  }

  int size_;
  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_, error_mu_;
  std::exception_ptr error_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> busy_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
};

/// Runs fn over [0, n) with `pf` if set, else on ThreadPool::global(). A caller's parallel-for is
/// held to its contract where that is cheap: an index outside [0, n) is not run, and after pf returns
/// Error("parallel_for") is thrown for it or for a count of calls other than n (some index skipped:
/// part of the output is not written).
inline void parallel_run(const ParallelFor& pf, int64_t n, const std::function<void(int64_t)>& fn) {
  if (!pf) {
    ThreadPool::global().run(n, fn);
    return;
  }
  std::atomic<int64_t> calls{0};
  std::atomic<bool> out_of_range{false};
  std::atomic<int64_t> bad_index{0};
  const std::function<void(int64_t)> checked = [&](int64_t i) {
    if (i < 0 || i >= n) {
      bad_index.store(i, std::memory_order_relaxed);
      out_of_range.store(true, std::memory_order_release);
      return;
    }
    calls.fetch_add(1, std::memory_order_relaxed);
    fn(i);
  };
  pf(n, checked);
  if (out_of_range.load(std::memory_order_acquire))
    throw Error("parallel_for", "called fn(" + std::to_string(bad_index.load()) + ") outside [0, " + std::to_string(n) + ")");
  if (calls.load() != n)
    throw Error("parallel_for", "called fn " + std::to_string(calls.load()) + " times for n = " + std::to_string(n) +
                                    " (each index exactly once is the contract)");
}

}  // namespace hwyconv
