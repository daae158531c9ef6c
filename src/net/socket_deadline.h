// Deadlines on socket operations, shared by the network shells (listener, bench, mail).
#pragma once

#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>

namespace torii::net {

// Runs `expire` when a deadline passes, unless disarmed first. cancel() alone is not enough:
// when the timer expired in the same pass as the guarded operation completed, its handler is
// already queued and runs with success after the coroutine moved on, possibly after its frame
// (and what `expire` refers to) is gone. The shared flag tells that handler to do nothing.
class Deadline {
 public:
  template <class Expire>
  Deadline(const boost::asio::any_io_executor& executor, std::chrono::steady_clock::duration timeout, Expire expire)
      : timer_(executor, timeout), state_(std::make_shared<State>()) {
    timer_.async_wait([state = state_, expire = std::move(expire)](const boost::system::error_code& ec) mutable {
      if (ec || state->disarmed) return;
      state->fired = true;
      expire();
    });
  }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  ~Deadline() { disarm(); }

  // Returns whether the deadline had already passed (and `expire` ran).
  bool disarm() {
    state_->disarmed = true;
    timer_.cancel();
    return state_->fired;
  }

 private:
  struct State {
    bool disarmed = false;
    bool fired = false;
  };
  boost::asio::steady_timer timer_;
  std::shared_ptr<State> state_;
};

// Closes a socket when a deadline passes, unless disarmed first.
class SocketDeadline {
 public:
  SocketDeadline(boost::asio::ip::tcp::socket& socket, std::chrono::steady_clock::duration timeout)
      : deadline_(socket.get_executor(), timeout, [&socket] {
          boost::system::error_code ignored;
          socket.close(ignored);
        }) {}

  // Returns whether the deadline had already closed the socket.
  bool disarm() { return deadline_.disarm(); }

 private:
  Deadline deadline_;
};

}  // namespace torii::net
