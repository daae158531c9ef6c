#include "policy/telemetry.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "policy/value_check.h"

// simdjson's header is not written for -Wshadow/-Wold-style-cast/-Wpedantic builds.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wnull-dereference"
#pragma GCC diagnostic ignored "-Wcast-align"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <simdjson.h>
#pragma GCC diagnostic pop

namespace torii::policy {
namespace {

using detail::Fault;
using detail::Scalar;

// Root object plus one level; deeper input stops the parser early (values must be scalars).
constexpr std::size_t kMaxJsonDepth = 2;
constexpr std::size_t kMaxMessageIdLength = 64;

Scalar to_scalar(simdjson::dom::element value) {
  Scalar s;
  switch (value.type()) {
    case simdjson::dom::element_type::ARRAY:
    case simdjson::dom::element_type::OBJECT: s.kind = Scalar::Kind::container; break;
    case simdjson::dom::element_type::INT64:
      s.kind = Scalar::Kind::int64;
      s.int64 = value.get_int64().value_unsafe();
      break;
    case simdjson::dom::element_type::UINT64:
      s.kind = Scalar::Kind::uint64;
      s.uint64 = value.get_uint64().value_unsafe();
      break;
    case simdjson::dom::element_type::DOUBLE:
      s.kind = Scalar::Kind::floating;
      s.floating = value.get_double().value_unsafe();
      break;
    case simdjson::dom::element_type::STRING:
      s.kind = Scalar::Kind::string;
      s.text = value.get_string().value_unsafe();
      break;
    case simdjson::dom::element_type::BOOL:
      s.kind = Scalar::Kind::boolean;
      s.boolean = value.get_bool().value_unsafe();
      break;
    case simdjson::dom::element_type::NULL_VALUE: s.kind = Scalar::Kind::null; break;
  }
  return s;
}

Scalar to_scalar(const nlohmann::json& value) {
  Scalar s;
  if (value.is_boolean()) {
    s.kind = Scalar::Kind::boolean;
    s.boolean = value.get<bool>();
  } else if (value.is_number_unsigned()) {
    const auto u = value.get<std::uint64_t>();
    if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      s.kind = Scalar::Kind::int64;
      s.int64 = static_cast<std::int64_t>(u);
    } else {
      s.kind = Scalar::Kind::uint64;
      s.uint64 = u;
    }
  } else if (value.is_number_integer()) {
    s.kind = Scalar::Kind::int64;
    s.int64 = value.get<std::int64_t>();
  } else if (value.is_number_float()) {
    s.kind = Scalar::Kind::floating;
    s.floating = value.get<double>();
  } else if (value.is_string()) {
    s.kind = Scalar::Kind::string;
    s.text = value.get_ref<const std::string&>();
  } else if (value.is_structured()) {
    s.kind = Scalar::Kind::container;
  }
  return s;
}

tl::unexpected<Refusal> refuse(RefusalKind kind, std::string reason) {
  return tl::unexpected<Refusal>(Refusal{kind, std::move(reason)});
}

// Parse errors, without detail from the payload.
tl::unexpected<Refusal> refuse_parse_error(simdjson::error_code error, std::string_view payload) {
  switch (error) {
    case simdjson::UTF8_ERROR: return refuse(RefusalKind::malformed, "invalid UTF-8");
    case simdjson::NUMBER_ERROR: return refuse(RefusalKind::malformed, "invalid or out-of-range number");
    case simdjson::DEPTH_ERROR: {
      const auto first = payload.find_first_not_of(" \t\r\n");
      if (first != std::string_view::npos && payload[first] != '{') {
        return refuse(RefusalKind::invalid, "not a JSON object");
      }
      return refuse(RefusalKind::invalid, "nested values are not allowed");
    }
    case simdjson::MEMALLOC:
    case simdjson::CAPACITY: return refuse(RefusalKind::too_large, "payload too large to parse");
    default: return refuse(RefusalKind::malformed, "not valid JSON");
  }
}

// The generic profile's value types, chosen by the JSON type of each value.
FieldSpec generic_spec(ValueType type) {
  FieldSpec spec;
  spec.type = type;
  spec.max_length = kDefaultMaxStringBytes;
  return spec;
}

}  // namespace

struct TelemetryValidator::Impl {
  simdjson::dom::parser parser{kMaxMessageBytes};
  std::vector<char> buffer;  // the payload copied, followed by the padding simdjson reads ahead into
  // Duplicate detection without clearing: seen[i] == generation means metric i occurred in
  // the current payload.
  std::vector<std::uint32_t> seen;
  std::uint32_t generation = 0;
  std::vector<std::string_view> generic_names;  // names seen in the current payload (generic profile)
  const FieldSpec generic_number = generic_spec(ValueType::number);
  const FieldSpec generic_boolean = generic_spec(ValueType::boolean);
  const FieldSpec generic_string = generic_spec(ValueType::string);

  Impl() {
    // Failure to pre-allocate is not fatal: parse() allocates on demand and reports MEMALLOC.
    if (parser.allocate(kDefaultMaxMessageBytes, kMaxJsonDepth) != simdjson::SUCCESS) return;
  }

  bool first_occurrence(const Profile& profile, std::size_t index, std::string_view name) {
    if (profile.accepts_any_metric()) {
      if (std::find(generic_names.begin(), generic_names.end(), name) != generic_names.end()) return false;
      generic_names.push_back(name);
      return true;
    }
    if (seen[index] == generation) return false;
    seen[index] = generation;
    return true;
  }

  void start(const Profile& profile) {
    generic_names.clear();
    if (seen.size() < profile.metrics().size()) seen.resize(profile.metrics().size(), 0);
    if (++generation == 0) {  // wrapped: stale stamps could now match
      std::fill(seen.begin(), seen.end(), 0);
      generation = 1;
    }
  }

  const FieldSpec* generic_field(const Scalar& value) const {
    switch (value.kind) {
      case Scalar::Kind::int64:
      case Scalar::Kind::uint64:
      case Scalar::Kind::floating: return &generic_number;
      case Scalar::Kind::boolean: return &generic_boolean;
      case Scalar::Kind::string: return &generic_string;
      case Scalar::Kind::null:
      case Scalar::Kind::container: return nullptr;
    }
    return nullptr;
  }

  TelemetryResult validate(const Profile& profile, std::string_view payload) {
    if (payload.size() > profile.max_message_bytes()) {
      return refuse(RefusalKind::too_large, fmt::format("payload larger than {} bytes", profile.max_message_bytes()));
    }
    if (buffer.size() < payload.size() + simdjson::SIMDJSON_PADDING) {
      buffer.resize(payload.size() + simdjson::SIMDJSON_PADDING);
    }
    if (!payload.empty()) std::memcpy(buffer.data(), payload.data(), payload.size());

    simdjson::dom::element root;
    if (const auto error = parser.parse(buffer.data(), payload.size(), /*realloc_if_needed=*/false).get(root)) {
      return refuse_parse_error(error, payload);
    }
    simdjson::dom::object object;
    if (root.get(object) != simdjson::SUCCESS) return refuse(RefusalKind::invalid, "not a JSON object");

    start(profile);
    Telemetry out;
    const std::size_t max_metrics = profile.max_metrics_per_message();
    out.metrics.reserve(std::min(object.size(), max_metrics));
    bool have_ts = false;
    bool have_id = false;
    for (const auto field : object) {
      const std::string_view key = field.key;
      const Scalar value = to_scalar(field.value);
      if (key == "ts") {
        if (have_ts) return refuse(RefusalKind::invalid, "duplicate key 'ts'");
        have_ts = true;
        if (value.kind != Scalar::Kind::int64 || value.int64 < 0) {
          return refuse(RefusalKind::invalid, "'ts' must be a non-negative integer (milliseconds since the epoch)");
        }
        out.ts_ms = value.int64;
        continue;
      }
      if (key == "id") {
        if (have_id) return refuse(RefusalKind::invalid, "duplicate key 'id'");
        have_id = true;
        if (value.kind != Scalar::Kind::string || !valid_message_id(value.text)) {
          return refuse(RefusalKind::invalid, "'id' must be 1 to 64 characters of A-Z, a-z, 0-9 and _.:-");
        }
        out.message_id = std::string(value.text);
        continue;
      }
      // From here on `key` may be quoted: valid_name() admits only [a-z0-9_].
      if (!valid_name(key)) return refuse(RefusalKind::invalid, "invalid metric name");

      const FieldSpec* spec = nullptr;
      std::size_t index = 0;
      if (profile.accepts_any_metric()) {
        if (value.kind == Scalar::Kind::container) {
          return refuse(RefusalKind::invalid,
                        fmt::format("metric '{}' is not a scalar (nested values are not allowed)", key));
        }
        spec = generic_field(value);
        if (spec == nullptr) {
          return refuse(RefusalKind::invalid, fmt::format("metric '{}' must be a number, boolean or string", key));
        }
      } else {
        const auto found = profile.metric_index(key);
        if (!found) return refuse(RefusalKind::invalid, fmt::format("unknown metric '{}'", key));
        index = *found;
        spec = &profile.metrics()[index];
      }
      if (!first_occurrence(profile, index, key)) {
        return refuse(RefusalKind::invalid, fmt::format("duplicate key '{}'", key));
      }
      if (out.metrics.size() == max_metrics) {
        return refuse(RefusalKind::invalid, fmt::format("more than {} metrics", max_metrics));
      }
      MetricValue converted;
      if (const Fault fault = detail::check_value(*spec, value, converted); fault != Fault::none) {
        return refuse(RefusalKind::invalid, fmt::format("metric '{}' {}", key, detail::describe(fault, *spec)));
      }
      out.metrics.push_back(Metric{std::string(key), std::move(converted)});
    }
    if (out.metrics.empty()) return refuse(RefusalKind::invalid, "no metrics");
    return out;
  }
};

TelemetryValidator::TelemetryValidator() : impl_(std::make_unique<Impl>()) {}
TelemetryValidator::~TelemetryValidator() = default;
TelemetryValidator::TelemetryValidator(TelemetryValidator&&) noexcept = default;
TelemetryValidator& TelemetryValidator::operator=(TelemetryValidator&&) noexcept = default;

TelemetryResult TelemetryValidator::validate(const Profile& profile, std::string_view payload) {
  return impl_->validate(profile, payload);
}

// --- commands ------------------------------------------------------------------------------

namespace {

struct PayloadTooDeep {};
constexpr int kMaxCommandDepth = 8;

}  // namespace

bool valid_message_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxMessageIdLength) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == ':' || c == '-';
  });
}

std::string message_id_of(std::string_view payload) {
  const auto json = nlohmann::json::parse(payload, nullptr, false);
  if (!json.is_object()) return {};
  const auto id = json.find("id");
  if (id == json.end() || !id->is_string()) return {};
  const auto& text = id->get_ref<const std::string&>();
  return valid_message_id(text) ? text : std::string();
}

std::vector<Problem> validate_command(const Profile& profile, std::string_view command_name,
                                      std::string_view params_json) {
  using nlohmann::json;
  std::vector<Problem> problems;
  const CommandSpec* command = profile.find_command(command_name);
  if (command == nullptr) {
    problems.push_back({"command", valid_name(command_name) ? fmt::format("unknown command '{}'", command_name)
                                                            : std::string("invalid command name")});
  }
  if (params_json.size() > profile.max_message_bytes()) {
    problems.push_back({"params", fmt::format("larger than {} bytes", profile.max_message_bytes())});
    return problems;
  }

  // Duplicate keys of the parameter object (depth 1); nlohmann would keep the last silently.
  std::set<std::string> keys;
  std::vector<std::string> duplicates;
  json params;
  try {
    params = json::parse(
        params_json.begin(), params_json.end(),
        [&](int depth, json::parse_event_t event, json& parsed) {
          if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
              depth >= kMaxCommandDepth) {
            throw PayloadTooDeep{};
          }
          if (event == json::parse_event_t::key && depth == 1) {
            auto key = parsed.get<std::string>();
            if (!keys.insert(key).second) duplicates.push_back(std::move(key));
          }
          return true;
        },
        /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const PayloadTooDeep&) {
    problems.push_back({"params", "nested values are not allowed"});
    return problems;
  } catch (const json::parse_error& e) {
    problems.push_back({"params", fmt::format("not valid JSON (at byte {})", e.byte)});
    return problems;
  } catch (const json::exception&) {
    problems.push_back({"params", "not valid JSON (a number is out of range)"});
    return problems;
  }
  if (!params.is_object()) {
    problems.push_back({"params", "must be a JSON object (\"{}\" for none)"});
    return problems;
  }
  if (command == nullptr) return problems;

  // Keys are quoted in paths only when they are valid names (no control characters in logs).
  const auto path_of = [](std::string_view key) {
    return valid_name(key) ? fmt::format("params.{}", key) : std::string("params");
  };
  for (const std::string& key : duplicates) problems.push_back({path_of(key), "duplicate key"});
  for (const auto& [key, value] : params.items()) {
    const auto spec = std::find_if(command->params.begin(), command->params.end(),
                                   [&key = key](const FieldSpec& p) { return p.name == key; });
    if (spec == command->params.end()) {
      problems.push_back(
          {path_of(key), valid_name(key) ? "unknown parameter" : "unknown parameter (not a valid name)"});
      continue;
    }
    MetricValue converted;
    if (const Fault fault = detail::check_value(*spec, to_scalar(value), converted); fault != Fault::none) {
      problems.push_back({path_of(key), detail::describe(fault, *spec)});
    }
  }
  for (const FieldSpec& spec : command->params) {
    if (spec.required && !params.contains(spec.name)) problems.push_back({path_of(spec.name), "is required"});
  }
  return problems;
}

}  // namespace torii::policy
