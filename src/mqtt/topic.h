// Topic names and topic filters (MQTT 5.0 §4.7, 3.1.1 §4.7). Pure.
#pragma once

#include <string_view>

namespace torii::mqtt {

// Well-formed UTF-8 without U+0000, as every MQTT string must be (§1.5.4); also refuses
// surrogates (U+D800..U+DFFF) and overlong forms.
[[nodiscard]] bool valid_utf8(std::string_view text);

// A topic name a PUBLISH may carry: 1..65535 bytes, valid UTF-8, no '+' or '#'.
[[nodiscard]] bool valid_topic_name(std::string_view topic);

// A topic filter: 1..65535 bytes, valid UTF-8, '+' only as a whole level, '#' only as the
// whole last level. Shared subscriptions ("$share/...") are valid syntax; whether they are
// supported is the broker's decision.
[[nodiscard]] bool valid_topic_filter(std::string_view filter);

// Whether the filter matches the topic name. Both must be valid. Wildcards at the first
// level do not match topics beginning with '$' (§4.7.2). A shared subscription matches by
// its own filter: strip "$share/{ShareName}/" first.
[[nodiscard]] bool topic_matches(std::string_view filter, std::string_view topic);

}  // namespace torii::mqtt
