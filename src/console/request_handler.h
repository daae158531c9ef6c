// What the console's HTTPS shell (http_server.h) asks for an answer to each request. Kept
// apart from the shell so that handlers compile without the network headers.
#pragma once

#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>

#include "console/http.h"

namespace torii::console {

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // Runs on the listener's io_context thread; must not throw (the server answers 500 and
  // closes the connection if it does).
  virtual boost::asio::awaitable<Response> handle(Request request) = 0;
};

}  // namespace torii::console
