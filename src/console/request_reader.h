// Incremental HTTP/1.1 request parsing (Beast's parser behind a plain interface), so that
// the connection shell and the fuzz target share one path from bytes to a Request.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "console/http.h"

namespace torii::console {

class RequestReader {
 public:
  enum class State { need_more, done, refused };

  RequestReader(std::size_t max_header_bytes, std::size_t max_body_bytes);
  ~RequestReader();
  RequestReader(const RequestReader&) = delete;
  RequestReader& operator=(const RequestReader&) = delete;

  // Consumes what it can from the front of `pending` (bytes after the request stay there,
  // for the next reader). Once done or refused, further calls change nothing.
  State feed(std::string& pending);
  // When refused: 400, 413 or 431.
  [[nodiscard]] int refusal_status() const { return refusal_; }
  // When done: the request (once); afterwards keep_alive() tells whether the client keeps
  // the connection open.
  [[nodiscard]] Request take(std::string source);
  [[nodiscard]] bool keep_alive() const { return keep_alive_; }

 private:
  struct Parser;
  std::unique_ptr<Parser> parser_;
  State state_ = State::need_more;
  int refusal_ = 0;
  bool keep_alive_ = false;
};

}  // namespace torii::console
