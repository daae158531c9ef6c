#include "notify/channel.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <utility>

#include "base/ip.h"
#include "crypto/sodium.h"
#include "mail/message.h"
#include "policy/acl.h"

namespace torii::notify {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxNameBytes = 100;
constexpr std::size_t kMaxUrlBytes = 2048;
constexpr std::size_t kMaxHostBytes = 253;
constexpr std::size_t kMaxAppNameBytes = 48;  // RFC 5424 §6.2.5
constexpr std::size_t kMaxCaBytes = std::size_t{64} * 1024;
constexpr int kMaxFacility = 23;
constexpr std::int64_t kMaxRate = 10'000;

bool has_control(std::string_view text) {
  return std::ranges::any_of(text, [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool printable_ascii(std::string_view text) {
  return std::ranges::all_of(text, [](char c) { return c > 0x20 && c < 0x7f; });
}

// A DNS name (letters, digits, '-', '.') or an IP address.
bool valid_host(std::string_view host) {
  if (host.empty() || host.size() > kMaxHostBytes) return false;
  if (IpAddress::parse(host)) return true;
  if (host.front() == '.' || host.front() == '-') return false;
  return std::ranges::all_of(host, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

class Parser {
 public:
  Parser(const json& definition, Random& random) : definition_(definition), random_(random) {}

  ChannelResult parse() {
    if (!definition_.is_object()) {
      add("", "a channel is a JSON object");
      return tl::unexpected(std::move(problems_));
    }
    name();
    const auto type = this->type();
    if (type) {
      channel_.type = *type;
      switch (*type) {
        case ChannelType::webhook: webhook(); break;
        case ChannelType::email: email(); break;
        case ChannelType::syslog: syslog(); break;
        case ChannelType::mqtt: mqtt(); break;
      }
      rate_limit();
      for (const auto& [key, value] : definition_.items()) {
        if (!known_.contains(key)) add(key, "not a member of a " + std::string(channel_type_name(*type)) + " channel");
      }
    }
    if (!problems_.empty()) return tl::unexpected(std::move(problems_));
    return std::move(channel_);
  }

 private:
  void add(std::string path, std::string message) { problems_.push_back({std::move(path), std::move(message)}); }

  // The member as a string; nullptr (and a problem when required) when missing or not one.
  const std::string* string(const std::string& key, bool required) {
    known_.insert(key);
    const auto it = definition_.find(key);
    if (it == definition_.end()) {
      if (required) add(key, "required");
      return nullptr;
    }
    if (!it->is_string()) {
      add(key, "must be a string");
      return nullptr;
    }
    return it->get_ptr<const std::string*>();
  }

  void name() {
    const auto* name = string("name", true);
    if (name == nullptr) return;
    if (name->empty() || name->size() > kMaxNameBytes || has_control(*name)) {
      add("name", "must be 1 to 100 characters without control characters");
      return;
    }
    channel_.name = *name;
  }

  std::optional<ChannelType> type() {
    const auto* type = string("type", true);
    if (type == nullptr) return std::nullopt;
    for (const auto t : {ChannelType::webhook, ChannelType::email, ChannelType::syslog, ChannelType::mqtt}) {
      if (*type == channel_type_name(t)) return t;
    }
    add("type", "must be one of webhook, email, syslog, mqtt");
    return std::nullopt;
  }

  void ca() {
    const auto* ca = string("ca", false);
    if (ca == nullptr) return;
    if (ca->size() > kMaxCaBytes || ca->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      add("ca", "must be PEM certificates (-----BEGIN CERTIFICATE-----), at most 64 KiB");
      return;
    }
    channel_.ca_pem = *ca;
  }

  void webhook() {
    if (const auto* url = string("url", true)) {
      auto parsed = parse_webhook_url(*url);
      if (parsed) {
        channel_.url = *url;
        channel_.webhook = std::move(*parsed);
      } else {
        add("url", parsed.error());
      }
    }
    if (const auto* secret = string("secret", false)) {
      if (secret->size() < kMinSecretChars || secret->size() > kMaxSecretChars || !printable_ascii(*secret)) {
        add("secret", "must be 32 to 256 printable ASCII characters (or omitted: one is generated)");
      } else {
        channel_.secret = *secret;
      }
    } else if (definition_.find("secret") == definition_.end()) {
      channel_.secret = crypto::random_token(random_);
    }
    ca();
  }

  void email() {
    string_list("to", "required", "must be a list of 1 to 20 addresses", channel_.to, [](const std::string& text) {
      auto st = mail::check_address(text, "the recipient");
      return st ? std::string() : st.error().message;
    });
  }

  // A list of 1 to kMaxRecipients distinct strings, each of which `problem` accepts (answers
  // empty), into `out`; every other entry is a problem at its index.
  template <class Check>
  void string_list(const std::string& key, std::string_view if_missing, std::string_view if_not_a_list,
                   std::vector<std::string>& out, Check problem) {
    known_.insert(key);
    const auto it = definition_.find(key);
    if (it == definition_.end()) {
      add(key, std::string(if_missing));
      return;
    }
    if (!it->is_array() || it->empty() || it->size() > kMaxRecipients) {
      add(key, std::string(if_not_a_list));
      return;
    }
    for (std::size_t i = 0; i < it->size(); ++i) {
      const std::string path = key + "[" + std::to_string(i) + "]";
      const auto& entry = (*it)[i];
      if (!entry.is_string()) {
        add(path, "must be a string");
        continue;
      }
      const auto& text = entry.get_ref<const std::string&>();
      if (auto why = problem(text); !why.empty()) {
        add(path, std::move(why));
        continue;
      }
      if (std::ranges::find(out, text) != out.end()) {
        add(path, "listed twice");
        continue;
      }
      out.push_back(text);
    }
  }

  // An integer member in [min, max]; nullopt (with a problem when present but wrong) otherwise.
  std::optional<std::int64_t> integer(const std::string& key, std::int64_t min, std::int64_t max) {
    known_.insert(key);
    const auto it = definition_.find(key);
    if (it == definition_.end()) return std::nullopt;
    if (!it->is_number_integer() || it->get<std::int64_t>() < min || it->get<std::int64_t>() > max) {
      add(key, "must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
      return std::nullopt;
    }
    return it->get<std::int64_t>();
  }

  void syslog() {
    if (const auto* host = string("host", true)) {
      if (valid_host(*host)) {
        channel_.host = *host;
      } else {
        add("host", "must be a DNS name or an IP address");
      }
    }
    if (const auto port = integer("port", 1, 65535)) channel_.port = static_cast<std::uint16_t>(*port);
    if (const auto* app = string("app_name", false)) {
      if (app->empty() || app->size() > kMaxAppNameBytes || !printable_ascii(*app)) {
        add("app_name", "must be 1 to 48 printable ASCII characters without spaces (RFC 5424 APP-NAME)");
      } else {
        channel_.app_name = *app;
      }
    }
    if (const auto facility = integer("facility", 0, kMaxFacility)) channel_.facility = static_cast<int>(*facility);
    ca();
  }

  void rate_limit() {
    known_.insert("rate_limit");
    const auto it = definition_.find("rate_limit");
    if (it == definition_.end()) return;
    if (!it->is_object()) {
      add("rate_limit", "must be an object: {\"burst\":10,\"per_minute\":30}");
      return;
    }
    for (const auto& [key, value] : it->items()) {
      const std::string path = "rate_limit." + key;
      if (key != "burst" && key != "per_minute") {
        add(path, "not a member of rate_limit (burst, per_minute)");
        continue;
      }
      if (!value.is_number_integer() || value.get<std::int64_t>() < 1 || value.get<std::int64_t>() > kMaxRate) {
        add(path, "must be an integer from 1 to 10000");
        continue;
      }
      (key == "burst" ? channel_.rate.burst : channel_.rate.per_minute) = value.get<std::size_t>();
    }
  }

  // The devices (backends) that receive the notifications on their own alerts topic.
  void mqtt() {
    string_list("devices", "required: the ids of the devices that receive the alerts on devices/<id>/alerts",
                "must be a list of 1 to 20 device ids", channel_.devices, [](const std::string& id) {
                  return policy::valid_device_id(id)
                             ? std::string()
                             : std::string(
                                   "must be a device id (1 to 63 of a-z, 0-9 and -, starting with a letter "
                                   "or digit)");
                });
  }

  const json& definition_;
  Random& random_;
  Channel channel_;
  std::vector<Problem> problems_;
  std::set<std::string, std::less<>> known_;
};

}  // namespace

std::string_view channel_type_name(ChannelType type) {
  switch (type) {
    case ChannelType::webhook: return "webhook";
    case ChannelType::email: return "email";
    case ChannelType::syslog: return "syslog";
    case ChannelType::mqtt: return "mqtt";
  }
  return "unknown";
}

std::string format_problems(const std::vector<Problem>& problems) {
  std::string out;
  for (const auto& p : problems)
    out += "  " + (p.path.empty() ? std::string("(channel)") : p.path) + ": " + p.message + "\n";
  return out;
}

tl::expected<WebhookUrl, std::string> parse_webhook_url(std::string_view url) {
  if (url.size() > kMaxUrlBytes) return tl::unexpected(std::string("is longer than 2048 characters"));
  if (!printable_ascii(url)) return tl::unexpected(std::string("must not contain spaces or control characters"));
  if (iequals_prefix(url, "http://")) {
    return tl::unexpected(std::string("webhooks are sent over HTTPS only: http:// is refused"));
  }
  if (!iequals_prefix(url, "https://")) return tl::unexpected(std::string("must start with https://"));
  std::string_view rest = url.substr(8);
  if (rest.find('#') != std::string_view::npos) return tl::unexpected(std::string("must not have a fragment (#)"));
  const auto end = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, end);
  std::string_view target = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) {
    return tl::unexpected(
        std::string("must not hold credentials (user@host): the signature authenticates notifications"));
  }
  WebhookUrl out;
  std::string_view port_text;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return tl::unexpected(std::string("has an unclosed IPv6 address"));
    out.host = std::string(authority.substr(1, close - 1));
    if (!IpAddress::parse(out.host)) return tl::unexpected(std::string("has a malformed IPv6 address"));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) return tl::unexpected(std::string("has a malformed host"));
    if (!after.empty()) port_text = after.substr(1);
    if (after == ":") return tl::unexpected(std::string("has an empty port"));
  } else {
    const auto colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return tl::unexpected(std::string("has an empty port"));
    }
    if (!valid_host(out.host)) return tl::unexpected(std::string("must name a host (a DNS name or an IP address)"));
  }
  if (!port_text.empty()) {
    unsigned port = 0;
    const auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || ptr != port_text.data() + port_text.size() || port == 0 || port > 65535) {
      return tl::unexpected(std::string("has a port that is not 1 to 65535"));
    }
    out.port = static_cast<std::uint16_t>(port);
  }
  out.target = target.starts_with('/') ? std::string(target) : "/" + std::string(target);
  return out;
}

ChannelResult parse_channel_text(std::string_view json_text, Random& random) {
  json definition = json::parse(json_text, nullptr, false);
  if (definition.is_discarded()) return tl::unexpected(std::vector<Problem>{{"", "not valid JSON"}});
  return parse_channel(definition, random);
}

ChannelResult parse_channel(const nlohmann::json& definition, Random& random) {
  return Parser(definition, random).parse();
}

json redacted_json(const Channel& channel) {
  json out = {{"name", channel.name}, {"type", channel_type_name(channel.type)}};
  switch (channel.type) {
    case ChannelType::webhook:
      out["url"] = channel.url;
      out["secret_set"] = !channel.secret.empty();
      break;
    case ChannelType::email: out["to"] = channel.to; break;
    case ChannelType::syslog:
      out["host"] = channel.host;
      out["port"] = channel.port;
      out["app_name"] = channel.app_name;
      out["facility"] = channel.facility;
      break;
    case ChannelType::mqtt: out["devices"] = channel.devices; break;
  }
  if (channel.type == ChannelType::webhook || channel.type == ChannelType::syslog) {
    if (!channel.ca_pem.empty()) out["ca"] = channel.ca_pem;
  }
  out["rate_limit"] = {{"burst", channel.rate.burst}, {"per_minute", channel.rate.per_minute}};
  return out;
}

}  // namespace torii::notify
