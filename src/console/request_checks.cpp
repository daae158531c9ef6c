#include "console/request_checks.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace torii::console {

namespace {

// Calls f with each piece of `text` between separators.
template <class F>
void split(std::string_view text, char separator, F f) {
  while (!text.empty()) {
    const auto end = text.find(separator);
    f(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
  }
}

std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  split(path, '/', [&](std::string_view s) {
    if (!s.empty()) out.push_back(s);
  });
  return out;
}

}  // namespace

std::optional<CookieSpan> find_cookie_value(std::string_view field_value, std::string_view name) {
  std::size_t start = 0;
  while (start < field_value.size()) {
    const std::size_t end = std::min(field_value.find(';', start), field_value.size());
    std::size_t first = start;
    while (first < end && field_value[first] == ' ') ++first;
    const std::string_view pair = field_value.substr(first, end - first);
    const auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
      return CookieSpan{first + eq + 1, end - (first + eq + 1)};
    }
    start = end + 1;
  }
  return std::nullopt;
}

std::optional<std::string> cookie_value(const Request& request, std::string_view name) {
  for (const auto& [field, value] : request.headers) {
    if (field != "cookie") continue;
    if (const auto at = find_cookie_value(value, name)) return value.substr(at->offset, at->length);
  }
  return std::nullopt;
}

std::optional<std::string> bearer_token(const Request& request) {
  std::optional<std::string> found;
  for (const auto& [field, value] : request.headers) {
    if (field != "authorization") continue;
    if (found) return std::string();  // a second field: ambiguous, refused
    constexpr std::string_view kScheme = "bearer ";
    std::string_view v = value;
    const bool bearer = v.size() > kScheme.size() &&
                        std::equal(kScheme.begin(), kScheme.end(), v.begin(),
                                   [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); });
    const std::string_view credential = bearer ? v.substr(kScheme.size()) : std::string_view();
    found = credential.find_first_of(" \t") == std::string_view::npos ? std::string(credential) : std::string();
  }
  return found;
}

bool query_carries_token(std::string_view query) {
  return query.find("torii_") != std::string_view::npos || query_parameter(query, "access_token").has_value();
}

std::optional<std::string> query_parameter(std::string_view query, std::string_view name) {
  std::optional<std::string> found;
  split(query, '&', [&](std::string_view pair) {
    const auto eq = pair.find('=');
    if (!found && pair.substr(0, eq) == name) {
      found = eq == std::string_view::npos ? std::string() : std::string(pair.substr(eq + 1));
    }
  });
  return found;
}

std::optional<std::vector<std::string>> query_list(std::string_view query, std::string_view name) {
  auto value = query_parameter(query, name);
  if (!value) return std::nullopt;
  for (auto at = value->find("%2"); at != std::string::npos; at = value->find("%2", at + 1)) {
    if (at + 2 < value->size() && ((*value)[at + 2] == 'C' || (*value)[at + 2] == 'c')) value->replace(at, 3, ",");
  }
  std::vector<std::string> items;
  split(*value, ',', [&](std::string_view item) { items.emplace_back(item); });
  return items;
}

bool match_route(std::string_view pattern, std::string_view path, std::map<std::string, std::string>& params) {
  const auto want = segments(pattern);
  const auto got = segments(path);
  if (want.size() != got.size()) return false;
  std::map<std::string, std::string> found;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (want[i].size() > 2 && want[i].starts_with('{') && want[i].ends_with('}')) {
      if (got[i].size() > 128) return false;
      found[std::string(want[i].substr(1, want[i].size() - 2))] = std::string(got[i]);
    } else if (want[i] != got[i]) {
      return false;
    }
  }
  params = std::move(found);
  return true;
}

bool same_origin(const Request& request) {
  if (auto site = request.header("sec-fetch-site"); site && *site != "same-origin" && *site != "none") return false;
  auto origin = request.header("origin");
  if (!origin) return true;
  auto host = request.header("host");
  return host && *origin == fmt::format("https://{}", *host);
}

std::string address_of(std::string_view endpoint) {
  if (endpoint.starts_with('[')) {
    const auto end = endpoint.find(']');
    return std::string(endpoint.substr(1, end == std::string_view::npos ? std::string_view::npos : end - 1));
  }
  return std::string(endpoint.substr(0, endpoint.rfind(':')));
}

std::vector<FieldProblem> read_json_fields(std::string_view body, std::span<const FieldSpec> specs,
                                           std::map<std::string, std::string>& fields,
                                           std::map<std::string, std::vector<std::string>>& lists) {
  using nlohmann::json;
  std::vector<FieldProblem> problems;
  if (specs.empty()) {
    if (!body.empty() && body != "{}") problems.push_back({"", "unexpected_body", "this request takes no body"});
    return problems;
  }
  // A request whose members are all optional may come without a body (as before it took any).
  if (body.empty() && std::ranges::none_of(specs, [](const FieldSpec& f) { return f.required; })) return problems;
  const json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    problems.push_back({"", "not_an_object", "the body must be a JSON object"});
    return problems;
  }
  for (const auto& item : parsed.items()) {
    const std::string& key = item.key();
    const json& value = item.value();
    const auto spec = std::ranges::find_if(specs, [&](const FieldSpec& f) { return f.name == key; });
    if (spec == specs.end()) {
      problems.push_back({key, "unknown_field", "is not a member of this request"});
    } else if (spec->boolean) {
      if (value.is_boolean()) {
        fields[key] = value.get<bool>() ? "true" : "false";
      } else {
        problems.push_back({key, "wrong_type", "must be true or false"});
      }
    } else if (spec->max_items > 0) {
      if (!value.is_array() || !std::ranges::all_of(value, [](const json& v) { return v.is_string(); })) {
        problems.push_back({key, "wrong_type", "must be a list of strings"});
      } else if (value.size() > spec->max_items) {
        problems.push_back({key, "too_long", fmt::format("must have at most {} items", spec->max_items)});
      } else if (std::ranges::any_of(
                     value, [&](const json& v) { return v.get_ref<const std::string&>().size() > spec->max_bytes; })) {
        problems.push_back({key, "too_long", fmt::format("each item must be at most {} bytes", spec->max_bytes)});
      } else {
        lists[key] = value.get<std::vector<std::string>>();
      }
    } else if (spec->object) {
      // The parser accepted only valid UTF-8, so dumping cannot fail; replace to be certain.
      std::string text = value.is_object() ? value.dump(-1, ' ', false, json::error_handler_t::replace) : "";
      if (!value.is_object()) {
        problems.push_back({key, "wrong_type", "must be a JSON object"});
      } else if (text.size() > spec->max_bytes) {
        problems.push_back({key, "too_long", fmt::format("must be at most {} bytes", spec->max_bytes)});
      } else {
        fields[key] = std::move(text);
      }
    } else if (spec->integer) {
      if (!value.is_number_unsigned() || value.get<std::uint64_t>() > spec->max_bytes) {
        problems.push_back({key, "wrong_type", fmt::format("must be a whole number from 0 to {}", spec->max_bytes)});
      } else {
        fields[key] = std::to_string(value.get<std::uint64_t>());
      }
    } else if (!value.is_string()) {
      problems.push_back({key, "wrong_type", "must be a string"});
    } else if (value.get_ref<const std::string&>().size() > spec->max_bytes) {
      problems.push_back({key, "too_long", fmt::format("must be at most {} bytes", spec->max_bytes)});
    } else {
      fields[key] = value.get<std::string>();
    }
  }
  for (const auto& f : specs) {
    if (f.required && !parsed.contains(f.name)) problems.push_back({std::string(f.name), "missing", "is required"});
  }
  return problems;
}

}  // namespace torii::console
