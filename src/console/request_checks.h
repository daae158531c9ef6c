// The pure parts of the console's request chain: reading the session cookie, matching a
// path against a route, checking where a request comes from, and validating a JSON body
// against the members a request takes. No I/O; fuzzed (tests/fuzz/http_request_fuzz.cpp).
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "console/http.h"

namespace torii::console {

// The session cookie's name: the __Host- prefix makes browsers refuse it unless it is
// Secure, has Path=/ and no Domain (JPCERT III-3).
inline constexpr std::string_view kSessionCookie = "__Host-torii-session";

// The value of cookie `name` in the request's Cookie fields, if any: the first one, in the
// order of the fields and of the cookies within each.
[[nodiscard]] std::optional<std::string> cookie_value(const Request& request, std::string_view name);

// Where that value is within one Cookie field's value: its offset and length. cookie_value
// reads the value from here, so that what the WAF is not shown (waf.h) is exactly it.
struct CookieSpan {
  std::size_t offset = 0;
  std::size_t length = 0;
};
[[nodiscard]] std::optional<CookieSpan> find_cookie_value(std::string_view field_value, std::string_view name);

// The credentials of the Authorization field when its scheme is Bearer (RFC 6750 §2.1, the
// scheme's name in any case): nullopt without an Authorization field; "" when there is one
// but it is not exactly one Bearer credential (another scheme, empty, spaces, a second field).
[[nodiscard]] std::optional<std::string> bearer_token(const Request& request);

// Whether the query string looks like it carries an API token ("torii_" anywhere, or an
// access_token parameter): a credential in a URL ends up in logs and histories (RFC 6750 §5.3).
[[nodiscard]] bool query_carries_token(std::string_view query);

// The value of a query parameter, as sent (not percent-decoded), if any.
[[nodiscard]] std::optional<std::string> query_parameter(std::string_view query, std::string_view name);
// The items of a query parameter holding a comma-separated list, as sent, a comma also taken
// percent-encoded (%2C); empty for an empty value (and no item after a trailing comma).
[[nodiscard]] std::optional<std::vector<std::string>> query_list(std::string_view query, std::string_view name);

// "/api/v1/devices/{id}" against "/api/v1/devices/pump-1": true, params {id: pump-1}. A
// parameter matches one non-empty segment of at most 128 bytes.
[[nodiscard]] bool match_route(std::string_view pattern, std::string_view path,
                               std::map<std::string, std::string>& params);

// Whether what a browser says about the request's origin names this server (JPCERT
// III-7): Sec-Fetch-Site same-origin or none, and Origin (when sent) https://<Host>.
// Scripts send neither and pass.
[[nodiscard]] bool same_origin(const Request& request);

// "203.0.113.5" from "203.0.113.5:51234", "2001:db8::1" from "[2001:db8::1]:51234".
[[nodiscard]] std::string address_of(std::string_view endpoint);

struct FieldSpec {
  std::string_view name;
  bool required = true;
  std::size_t max_bytes = 1024;  // of a string, or of each string of a list
  bool boolean = false;          // true or false in JSON, "true" or "false" in the fields
  // > 0: an array of at most this many strings, which go to the lists, not the fields.
  std::size_t max_items = 0;
  // A JSON object (a profile's definition), kept in the fields as its compact JSON text,
  // which max_bytes bounds.
  bool object = false;
  // A whole JSON number from 0 to max_bytes (the bound), kept in the fields as decimal text.
  bool integer = false;
};

struct FieldProblem {
  std::string field;  // the member's name; empty for the body as a whole
  std::string code;
  std::string message;

  friend bool operator==(const FieldProblem&, const FieldProblem&) = default;
};

// Every problem of a body against the members a request takes (strings, or booleans or
// lists of strings or objects where the spec says so): not a JSON object, an unknown
// member, a member of the wrong type or too long, a required one missing. With no specs,
// only an empty body or {} is accepted; when every member is optional, so is an empty body. The values of the accepted
// members go to `fields` (objects as their compact JSON text), lists to `lists`.
[[nodiscard]] std::vector<FieldProblem> read_json_fields(std::string_view body, std::span<const FieldSpec> specs,
                                                         std::map<std::string, std::string>& fields,
                                                         std::map<std::string, std::vector<std::string>>& lists);

}  // namespace torii::console
