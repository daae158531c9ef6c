// Topic and payload templates of `torii bench`: text with {placeholders} expanded per
// connection and per message. Pure: no I/O, no clock (the caller passes the values).
//
//   --topic   'devices/{device}/telemetry'                   {device} {i}
//   --payload '{"id":"{device}-{seq}","temperature":21.5}'   {device} {i} {seq} {ts}
//
//   {device}  the connection's device id (<prefix><n>)
//   {i}       the connection's index, 0-based
//   {seq}     the message's sequence number on its connection, 0-based
//   {ts}      the send time (system clock since the Unix epoch) in the run's unit (µs or ns)
//
// A placeholder is '{', a name of letters, digits and '_', and '}'; every other brace is
// literal text, so JSON payloads are written as they are. An unknown name is an error, so a
// typo ({devcie}) never goes out as literal text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace torii::bench {

enum class Placeholder : std::uint8_t { device, index, seq, ts };
[[nodiscard]] std::string_view to_string(Placeholder p);

// The values a template is expanded with; only those the template names are read.
struct TemplateValues {
  std::string_view device;
  std::uint64_t index = 0;
  std::uint64_t seq = 0;
  std::uint64_t ts = 0;
};

class MessageTemplate {
 public:
  // `allowed` lists the placeholders this template may use; any other is an error naming it.
  [[nodiscard]] static Result<MessageTemplate> parse(std::string_view text, std::vector<Placeholder> allowed);

  // Appends the expansion to out (which keeps its capacity between messages).
  void expand(const TemplateValues& values, std::string& out) const;
  [[nodiscard]] std::string expand(const TemplateValues& values) const;

  [[nodiscard]] bool uses(Placeholder p) const;
  // The literal text with every placeholder removed (for checks such as "no MQTT wildcard").
  [[nodiscard]] std::string literal_text() const;

  // Recovers {ts} from a message this template produced: literal parts must match exactly,
  // {device}/{i}/{seq} match up to the next literal part, {ts} must be decimal digits. nullopt
  // when the text does not fit the template or the template has no {ts}.
  [[nodiscard]] std::optional<std::uint64_t> extract_ts(std::string_view text) const;

 private:
  struct Part {
    bool is_placeholder = false;
    Placeholder placeholder = Placeholder::device;
    std::string literal;
  };
  std::vector<Part> parts_;
};

}  // namespace torii::bench
