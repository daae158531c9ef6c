// A deadline on a socket operation, shared by the network shells (listener, bench).
#pragma once

#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>

namespace torii::net {

// Closes a socket when a deadline passes, unless disarmed first. cancel() alone is not
// enough: when the timer expired in the same pass as the guarded operation completed, its
// handler is already queued and runs with success after the coroutine moved on, possibly
// after its frame (and the socket) are gone. The shared flag tells that handler to do nothing.
class SocketDeadline {
 public:
  SocketDeadline(boost::asio::ip::tcp::socket& socket, std::chrono::steady_clock::duration timeout)
      : timer_(socket.get_executor(), timeout), state_(std::make_shared<State>()) {
    timer_.async_wait([&socket, state = state_](const boost::system::error_code& ec) {
      if (ec || state->disarmed) return;
      state->fired = true;
      boost::system::error_code ignored;
      socket.close(ignored);
    });
  }
  SocketDeadline(const SocketDeadline&) = delete;
  SocketDeadline& operator=(const SocketDeadline&) = delete;
  ~SocketDeadline() { disarm(); }

  // Returns whether the deadline had already closed the socket.
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

}  // namespace torii::net
