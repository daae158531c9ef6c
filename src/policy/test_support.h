// Test-only helpers shared by the policy unit tests.
#pragma once

#include <string>
#include <string_view>

#include <gmock/gmock.h>

#include "policy/profile.h"

namespace torii::policy::test_data {

inline constexpr std::string_view kExampleProfile = R"({
  "metrics": [{"name":"temperature","type":"number","unit":"°C","min":-40,"max":125},
              {"name":"door_open","type":"boolean"},
              {"name":"mode","type":"string","max_length":32},
              {"name":"count","type":"integer","min":0}],
  "commands": [{"name":"set_interval","params":[{"name":"seconds","type":"integer","min":1,"max":86400,"required":true}]},
               {"name":"set_actuator","params":[{"name":"on","type":"boolean","required":true}]},
               {"name":"report_posture","params":[]}],
  "heartbeat_seconds": 60,
  "max_message_bytes": 4096})";

// Matches a Problem at exactly `path` whose message contains `text`.
inline auto problem_at(const std::string& path, const std::string& text) {
  return ::testing::AllOf(::testing::Field(&Problem::path, path),
                          ::testing::Field(&Problem::message, ::testing::HasSubstr(text)));
}

}  // namespace torii::policy::test_data
