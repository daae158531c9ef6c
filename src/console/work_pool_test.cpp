#include "console/work_pool.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <optional>
#include <thread>
#include <utility>

namespace torii::console {
namespace {

struct Ran {
  std::thread::id thread;
  int priority = 0;
};

Ran where_it_runs() { return {std::this_thread::get_id(), getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()))}; }

boost::asio::awaitable<void> run_once(WorkPool& pool, std::optional<std::optional<Ran>>& out,
                                      std::thread::id& resumed_on) {
  out = co_await pool.run(where_it_runs);
  resumed_on = std::this_thread::get_id();
}

// Runs one job through the pool from a coroutine on this thread.
std::pair<std::optional<Ran>, std::thread::id> run_one(WorkPool& pool) {
  boost::asio::io_context io;
  std::optional<std::optional<Ran>> out;
  std::thread::id resumed_on;
  boost::asio::co_spawn(io, run_once(pool, out, resumed_on), boost::asio::detached);
  io.run();
  EXPECT_TRUE(out.has_value()) << "the coroutine finished";
  return {out.value_or(std::nullopt), resumed_on};
}

TEST(WorkPool, RunsTheJobOnItsOwnThreadAndResumesTheCallerOnItsThread) {
  WorkPool pool(1, 4);
  const auto [ran, resumed_on] = run_one(pool);
  ASSERT_TRUE(ran.has_value());
  EXPECT_NE(ran->thread, std::this_thread::get_id());
  EXPECT_EQ(resumed_on, std::this_thread::get_id());
  EXPECT_EQ(ran->priority, getpriority(PRIO_PROCESS, 0)) << "no nice asked for: the process's own";
}

TEST(WorkPool, AJobIsRefusedAtOnceWhenTooManyWait) {
  WorkPool pool(1, 0);
  const auto [ran, resumed_on] = run_one(pool);
  EXPECT_FALSE(ran.has_value());
  EXPECT_EQ(resumed_on, std::this_thread::get_id());
}

TEST(WorkPool, ItsThreadsRunAtTheLowerPriorityAskedFor) {
  const int own = getpriority(PRIO_PROCESS, 0);
  WorkPool pool(2, 8, own + 5);
  for (int i = 0; i < 4; ++i) {
    const auto [ran, resumed_on] = run_one(pool);
    ASSERT_TRUE(ran.has_value());
    EXPECT_EQ(ran->priority, own + 5);
  }
  EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())), own) << "the caller's thread is untouched";
}

}  // namespace
}  // namespace torii::console
