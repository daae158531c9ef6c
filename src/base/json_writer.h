// JSON text written straight into a string, for answers built in a hot path where building a
// document tree first (nlohmann::json) costs more than the answer itself: the console's
// device list, asked for on every refresh of every open console.
//
// The output is what nlohmann::json::dump() gives for the same values (compact, members in
// the order written, non-ASCII as UTF-8, control characters as \u00xx), except that bytes
// that are not valid UTF-8 are each replaced by U+FFFD instead of failing. The writer checks
// nothing about structure: a key is expected before each member of an object, and every
// begin_* closed by its end_*, in order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace torii {

class JsonWriter {
 public:
  JsonWriter& begin_object() { return open('{'); }
  JsonWriter& end_object() { return close('}'); }
  JsonWriter& begin_array() { return open('['); }
  JsonWriter& end_array() { return close(']'); }
  JsonWriter& key(std::string_view name);
  JsonWriter& string(std::string_view text);
  JsonWriter& number(std::int64_t value);
  JsonWriter& boolean(bool value);
  JsonWriter& null();

  // The text written so far; the writer is left empty.
  [[nodiscard]] std::string take();

 private:
  JsonWriter& open(char bracket);
  JsonWriter& close(char bracket);
  void before_value();
  void quoted(std::string_view text);

  std::string out_;
  // For each open object or array: whether a member or element was written in it yet.
  std::vector<bool> nonempty_;
  bool after_key_ = false;
};

}  // namespace torii
