// Fuzzes notify::parse_channel_text: a channel definition is text a person (or a script
// holding an API token) sends, and the syslog formatting of notices built from that text.
//
// Properties beyond "does not crash":
//   - the outcome is a channel or at least one problem;
//   - a webhook channel is HTTPS to a named host with a target starting with "/", and a
//     secret of 32 to 256 characters that its redacted view never holds;
//   - a syslog message whose title, summary, host and app name come from the input is one
//     line (no CR or LF), starts with "<PRI>1 ",
//     and its octet-counted frame announces its exact length.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "notify/channel.h"
#include "notify/notification.h"
#include "testing/fakes.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace torii;
  using fuzz::check;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  testing::SeededRandom random(size);
  const auto parsed = notify::parse_channel_text(text, random);
  if (!parsed) {
    check(!parsed.error().empty());
  } else if (parsed->type == notify::ChannelType::webhook) {
    check(!parsed->webhook.host.empty() && parsed->webhook.target.starts_with('/'));
    check(parsed->secret.size() >= notify::kMinSecretChars && parsed->secret.size() <= notify::kMaxSecretChars);
    check(notify::redacted_json(*parsed).dump().find(parsed->secret) == std::string::npos);
  }

  notify::AlertNotice notice;
  notice.title = std::string(text.substr(0, size / 2));
  notice.summary = std::string(text.substr(size / 2));
  notice.id = "al-1";
  notice.severity = "critical";
  const auto message = notify::syslog_message(notice, {notice.title, notice.summary, static_cast<int>(size)}, {});
  check(message.find_first_of("\r\n") == std::string::npos);
  check(message.starts_with('<') && message.find(">1 ") != std::string::npos);
  const auto frame = notify::octet_counted(message);
  check(frame == std::to_string(message.size()) + " " + message);
  return 0;
}
