// Slow work (Argon2id hashing) off the I/O thread, with a bound on how much may wait.
//
// A login costs tens of milliseconds of CPU and tens of MiB of memory by design; run on the
// I/O thread it would stall every connection, and run without a bound a flood of logins
// would exhaust the machine (IIIT DI2: "logins cannot exhaust the CPU"). The pool runs at
// most `threads` jobs at once and refuses a job when `max_waiting` are already queued; the
// caller answers 503 with Retry-After. Everything else the server does keeps its thread.
//
// Lifetime: destroy the pool before the io_context whose coroutines await it (it joins its
// threads; a job finished after that point resumes nobody).
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>

namespace torii::console {

class WorkPool {
 public:
  // nice > 0: the pool's threads run at that lower scheduling priority (setpriority(2), per
  // thread), so that while they are all busy the thread serving the connections still gets
  // the CPU first; they take whatever it leaves.
  WorkPool(std::size_t threads, std::size_t max_waiting, int nice = 0)
      : pool_(threads), max_waiting_(max_waiting), nice_(nice) {}
  ~WorkPool() { pool_.join(); }
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Runs fn on a pool thread and resumes the caller on its own executor with the result;
  // nullopt (fn not run) when the pool is full. An exception from fn is rethrown here.
  template <class F>
  boost::asio::awaitable<std::optional<std::invoke_result_t<F>>> run(F fn) {
    using R = std::invoke_result_t<F>;
    if (waiting_.fetch_add(1) >= max_waiting_) {
      waiting_.fetch_sub(1);
      co_return std::nullopt;
    }
    struct Shared {
      std::optional<R> result;
      std::exception_ptr error;
    };
    auto shared = std::make_shared<Shared>();
    auto io = co_await boost::asio::this_coro::executor;
    boost::asio::steady_timer done(io, boost::asio::steady_timer::time_point::max());
    boost::asio::post(pool_, [this, shared, io, &done, fn = std::move(fn)]() mutable {
      lower_priority(nice_);
      try {
        shared->result.emplace(fn());
      } catch (...) {
        shared->error = std::current_exception();
      }
      waiting_.fetch_sub(1);
      boost::asio::post(io, [&done] { done.cancel(); });
    });
    boost::system::error_code ec;
    co_await done.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (shared->error) std::rethrow_exception(shared->error);
    co_return std::move(shared->result);
  }

 private:
  // Once per thread: a thread's niceness only ever goes up, and any user may raise it.
  static void lower_priority(int nice) {
    thread_local int applied = 0;
    if (nice <= applied) return;
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice) == 0) applied = nice;
  }

  boost::asio::thread_pool pool_;
  std::size_t max_waiting_;
  int nice_;
  std::atomic<std::size_t> waiting_{0};
};

}  // namespace torii::console
