#include "console/request_reader.h"

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

namespace torii::console {

namespace http = boost::beast::http;

namespace {

std::string_view view(boost::beast::string_view s) { return {s.data(), s.size()}; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

struct RequestReader::Parser {
  http::request_parser<http::string_body> parser;
};

RequestReader::RequestReader(std::size_t max_header_bytes, std::size_t max_body_bytes)
    : parser_(std::make_unique<Parser>()) {
  parser_->parser.header_limit(static_cast<std::uint32_t>(max_header_bytes));
  parser_->parser.body_limit(max_body_bytes);
  parser_->parser.eager(true);
}

RequestReader::~RequestReader() = default;

RequestReader::State RequestReader::feed(std::string& pending) {
  auto& p = parser_->parser;
  while (state_ == State::need_more && !pending.empty()) {
    boost::system::error_code ec;
    const std::size_t used = p.put(boost::asio::buffer(pending), ec);
    pending.erase(0, used);
    if (ec == http::error::need_more) {
      if (used == 0) break;  // a partial header or chunk: wait for more bytes
      continue;
    }
    if (ec) {
      state_ = State::refused;
      refusal_ = ec == http::error::body_limit ? 413 : ec == http::error::header_limit ? 431 : 400;
      break;
    }
    if (p.is_done()) state_ = State::done;
  }
  return state_;
}

Request RequestReader::take(std::string source) {
  if (state_ != State::done) return {};
  auto message = parser_->parser.release();
  state_ = State::refused;  // taken: nothing more comes from this reader
  keep_alive_ = message.keep_alive();
  Request r;
  r.method = std::string(view(message.method_string()));
  const std::string_view target = view(message.target());
  const auto q = target.find('?');
  r.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) r.query = std::string(target.substr(q + 1));
  for (const auto& field : message)
    r.headers.emplace_back(lower(view(field.name_string())), std::string(view(field.value())));
  r.body = std::move(message.body());
  r.source = std::move(source);
  return r;
}

}  // namespace torii::console
