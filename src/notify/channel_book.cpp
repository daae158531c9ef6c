#include "notify/channel_book.h"

#include <array>
#include <utility>

#include <fmt/format.h>

#include "policy/telemetry.h"

namespace torii::notify {

using nlohmann::json;

namespace {

constexpr std::array<std::string_view, 4> kSeverities = {"info", "warning", "critical", "none"};

// Position in kSeverities; kSeverities.size() for anything else.
std::size_t severity_rank(std::string_view severity) {
  std::size_t i = 0;
  while (i < kSeverities.size() && kSeverities[i] != severity) ++i;
  return i;
}

// The definition as sealed: what redacted_json shows, with the secret in place of
// "secret_set". parse_channel reads it back unchanged (a secret given is not generated again).
json sealed_form(const Channel& channel) {
  json out = redacted_json(channel);
  out.erase("secret_set");
  if (channel.type == ChannelType::webhook) out["secret"] = channel.secret;
  return out;
}

}  // namespace

bool valid_channel_id(std::string_view id) { return policy::valid_message_id(id); }

bool valid_min_severity(std::string_view min_severity) { return severity_rank(min_severity) < kSeverities.size(); }

bool severity_reaches(std::string_view severity, std::string_view min_severity) {
  const std::size_t floor = severity_rank(min_severity);
  const std::size_t rank = severity_rank(severity);
  // "none" is last, so nothing reaches it; an unknown alert severity reaches no floor either.
  return min_severity != "none" && rank < 3 && rank >= floor;
}

std::string channel_associated_data(std::string_view organisation_id, std::string_view id) {
  return fmt::format("notification_channel:{}:{}", organisation_id, id);
}

ChannelBook::ChannelBook(store::Store& store, keys::KeyRing& keys, const Clock& clock, Random& random, Changed changed)
    : store_(store), keys_(keys), clock_(clock), random_(random), changed_(std::move(changed)) {}

Result<ChannelOutcome> ChannelBook::create(std::string_view organisation_id, std::string_view id,
                                           std::string_view definition_json, std::string_view min_severity,
                                           std::string_view actor) {
  return write(organisation_id, id, definition_json, min_severity, actor, true);
}

Result<ChannelOutcome> ChannelBook::replace(std::string_view organisation_id, std::string_view id,
                                            std::string_view definition_json, std::string_view min_severity,
                                            std::string_view actor) {
  return write(organisation_id, id, definition_json, min_severity, actor, false);
}

Result<ChannelOutcome> ChannelBook::write(std::string_view organisation_id, std::string_view id,
                                          std::string_view definition_json, std::string_view min_severity,
                                          std::string_view actor, bool create) {
  if (organisation_id.empty()) return fail(Errc::invalid_argument, "notify: a channel needs an organisation");
  ChannelOutcome outcome;
  const std::string severity(min_severity.empty() ? kDefaultMinSeverity : min_severity);
  if (!valid_channel_id(id)) outcome.problems.push_back({"id", "must be 1..64 of A-Z, a-z, 0-9 and _.:-"});
  if (!valid_min_severity(severity)) {
    outcome.problems.push_back({"min_severity", "must be info, warning, critical or none"});
  }

  std::optional<store::NotificationChannelRecord> stored;
  if (outcome.problems.empty()) {
    auto found = store_.notification_channels().find(organisation_id, id);
    if (!found) return tl::unexpected(std::move(found.error()));
    stored = std::move(*found);
    if (create && stored) outcome.problems.push_back({"id", "is already in use"});
    if (!create && !stored) return fail(Errc::not_found, "notify: no such channel");
  }

  json definition = json::parse(definition_json, nullptr, false);
  if (definition.is_discarded()) {
    outcome.problems.push_back({"", "not valid JSON"});
    return outcome;
  }
  // A webhook edited without "secret" keeps the one its receiver verifies with.
  if (stored && stored->type == "webhook" && definition.is_object() && !definition.contains("secret") &&
      definition.value("type", json()) == "webhook" && outcome.problems.empty()) {
    auto previous = open(*stored);
    if (!previous) return tl::unexpected(std::move(previous.error()));
    definition["secret"] = previous->secret;
  }
  const bool generates = definition.is_object() && !definition.contains("secret");
  auto channel = parse_channel(definition, random_);
  if (!channel) {
    for (auto& p : channel.error()) outcome.problems.push_back(std::move(p));
  }
  if (!outcome.problems.empty()) return outcome;

  store::NotificationChannelRecord record;
  record.organisation_id = std::string(organisation_id);
  record.id = std::string(id);
  record.name = channel->name;
  record.type = std::string(channel_type_name(channel->type));
  record.min_severity = severity;
  record.key_id = std::string(kChannelKeyId);
  const UnixMillis now = to_unix_millis(clock_.now());
  record.created_by = stored ? stored->created_by : std::string(actor);
  record.created_at = stored ? stored->created_at : now;
  record.enabled = stored ? stored->enabled : true;
  record.updated_at = now;

  if (auto st = keys_.ensure_data_key(kChannelKeyId, "notification channels"); !st) {
    return tl::unexpected(std::move(st.error()));
  }
  const std::string plain = sealed_form(*channel).dump();
  auto sealed = keys_.seal(kChannelKeyId, as_bytes(plain), channel_associated_data(organisation_id, id));
  if (!sealed) return tl::unexpected(std::move(sealed.error()));
  record.definition_sealed = std::move(*sealed);

  auto& channels = store_.notification_channels();
  if (auto st = create ? channels.insert(record) : channels.replace(record); !st) {
    // Someone took the id between the look-up and the insert.
    if (create && st.error().is(Errc::already_exists)) {
      outcome.problems.push_back({"id", "is already in use"});
      return outcome;
    }
    return tl::unexpected(std::move(st.error()));
  }
  if (generates && channel->type == ChannelType::webhook) outcome.secret_shown_once = channel->secret;
  outcome.stored = StoredChannel{std::move(record), std::move(*channel)};
  notify_changed(organisation_id, id);
  return outcome;
}

Status ChannelBook::set_enabled(std::string_view organisation_id, std::string_view id, bool enabled) {
  auto found = store_.notification_channels().find(organisation_id, id);
  if (!found) return tl::unexpected(std::move(found.error()));
  if (!*found) return fail(Errc::not_found, "notify: no such channel");
  auto record = std::move(**found);
  if (record.enabled == enabled) return ok();
  record.enabled = enabled;
  record.updated_at = to_unix_millis(clock_.now());
  if (auto st = store_.notification_channels().replace(record); !st) return st;
  notify_changed(organisation_id, id);
  return ok();
}

Result<bool> ChannelBook::remove(std::string_view organisation_id, std::string_view id) {
  auto removed = store_.notification_channels().remove(organisation_id, id);
  if (removed && *removed) notify_changed(organisation_id, id);
  return removed;
}

Result<std::optional<store::NotificationChannelRecord>> ChannelBook::find(std::string_view organisation_id,
                                                                          std::string_view id) {
  return store_.notification_channels().find(organisation_id, id);
}

Result<std::vector<store::NotificationChannelRecord>> ChannelBook::list(std::string_view organisation_id) {
  return store_.notification_channels().list(organisation_id);
}

Result<Channel> ChannelBook::open(const store::NotificationChannelRecord& record) {
  auto plain =
      keys_.open(record.key_id, record.definition_sealed, channel_associated_data(record.organisation_id, record.id));
  if (!plain) return tl::unexpected(std::move(plain.error()));
  const std::string_view text(reinterpret_cast<const char*>(plain->data()), plain->size());
  // The secret is always in the sealed form, so nothing is drawn from random_ here.
  auto channel = parse_channel_text(text, random_);
  if (!channel) {
    // Problems name paths and rules, never values: nothing secret is repeated.
    std::string why;
    for (const auto& p : channel.error()) {
      why += (why.empty() ? "" : "; ") + (p.path.empty() ? "" : p.path + ": ") + p.message;
    }
    return fail(Errc::corrupt, "the stored definition is no longer valid (replace or delete the channel): " + why);
  }
  return std::move(*channel);
}

Result<json> ChannelBook::to_json(const store::NotificationChannelRecord& record) {
  auto channel = open(record);
  // One that no longer parses (an mqtt channel with the former "topic") is still listed, so
  // that it can be seen, replaced or deleted; it sends nothing meanwhile.
  if (!channel && !channel.error().is(Errc::corrupt)) return tl::unexpected(std::move(channel.error()));
  const auto iso = [](UnixMillis ms) { return format_utc_millis(from_unix_millis(ms)); };
  json out = {{"id", record.id},
              {"min_severity", record.min_severity},
              {"enabled", record.enabled},
              {"created_by", record.created_by},
              {"created_at", iso(record.created_at)},
              {"updated_at", iso(record.updated_at)},
              {"definition", channel ? redacted_json(*channel) : json(nullptr)}};
  if (!channel) out["problem"] = channel.error().message;
  out["name"] = record.name;
  out["type"] = record.type;
  return out;
}

void ChannelBook::notify_changed(std::string_view organisation_id, std::string_view id) const {
  if (changed_) changed_(std::string(organisation_id), std::string(id));
}

}  // namespace torii::notify
